//! `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 section 8.3.3.1).

use super::Reader;
use crate::error::{CodecName, Result};

/// What the boxes and codec string need from an hvcC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcConfig {
    /// `general_profile_space` (0..=3).
    pub profile_space: u8,
    /// `general_tier_flag`: High tier.
    pub high_tier: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10…).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`.
    pub compatibility_flags: u32,
    /// `general_constraint_indicator_flags` (48 bits, first byte first).
    pub constraint_flags: [u8; 6],
    /// `general_level_idc` (30 × level: 93 = level 3.1).
    pub level_idc: u8,
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// Parameter set arrays present (VPS/SPS/PPS/SEI).
    pub array_count: u8,
}

impl HevcConfig {
    /// Parses and validates: version 0 or 1 (0 is what some early muxers wrote), 23-byte
    /// header, NAL arrays within bounds, length size 1/2/4.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, CodecName::Hevc);
        if r.u8("empty record")? > 1 {
            return Err(Reader::new(data, CodecName::Hevc).invalid("configurationVersion is not 1"));
        }
        let b = r.u8("truncated header")?;
        let flags = r.take(4, "truncated header")?;
        let compatibility_flags = u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]]);
        let mut constraint_flags = [0; 6];
        constraint_flags.copy_from_slice(r.take(6, "truncated header")?);
        let level_idc = r.u8("truncated header")?;
        // min_spatial_segmentation (2), parallelismType, chromaFormat, bitDepthLuma,
        // bitDepthChroma (1 each), avgFrameRate (2).
        r.take(8, "truncated header")?;
        let nal_length_size = (r.u8("truncated header")? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(r.invalid("lengthSizeMinusOne is 2"));
        }
        let array_count = r.u8("truncated header")?;
        for _ in 0..array_count {
            r.u8("truncated array")?; // array_completeness, reserved, NAL_unit_type
            let n = r.u16("truncated array")?;
            for _ in 0..n {
                let len = r.u16("truncated NAL unit length")?;
                r.take(usize::from(len), "truncated NAL unit")?;
            }
        }
        Ok(Self {
            profile_space: b >> 6,
            high_tier: b & 0x20 != 0,
            profile_idc: b & 0x1f,
            compatibility_flags,
            constraint_flags,
            level_idc,
            nal_length_size,
            array_count,
        })
    }

    /// `hvc1.<space><profile>.<compat>.<tier><level>[.<constraint bytes>]` (ISO/IEC 14496-15
    /// Annex E.3): the compatibility flags bit-reversed in hex, trailing zero constraint bytes
    /// omitted — e.g. `hvc1.1.6.L93.B0` for Main profile level 3.1.
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.profile_space & 3)];
        let tier = if self.high_tier { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.profile_idc,
            self.compatibility_flags.reverse_bits(),
            self.level_idc
        );
        let keep = self
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_flags[..keep] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// Main profile, level 3.1 header with no arrays.
    const HVCC: &[u8] = &[
        0x01, // configurationVersion
        0x01, // profile_space 0, tier Main, profile_idc 1
        0x60, 0x00, 0x00, 0x00, // compatibility flags: Main and Main 10
        0xb0, 0x00, 0x00, 0x00, 0x00,
        0x00, // progressive, interlaced=0, non-packed, frame-only
        0x5d, // level_idc 93
        0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, // segmentation..avgFrameRate
        0x0f, // constantFrameRate 0, numTemporalLayers 1, nested 1, lengthSizeMinusOne 3
        0x00, // numOfArrays
    ];

    #[test]
    fn parses() {
        let c = HevcConfig::parse(HVCC).unwrap();
        assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
        assert_eq!(c.nal_length_size, 4);
        let mut high = HVCC.to_vec();
        high[1] = 0x22; // tier High, Main 10
        high[2..6].copy_from_slice(&[0x20, 0, 0, 0]);
        assert_eq!(
            HevcConfig::parse(&high).unwrap().codec_string(),
            "hvc1.2.4.H93.B0"
        );
    }

    #[test]
    fn rejects() {
        let mut one_array = HVCC.to_vec();
        one_array[22] = 1;
        one_array.extend_from_slice(&[0x20, 0x00, 0x01, 0x00, 0x05, 0x40]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty record"),
            (vec![2; 23], "configurationVersion is not 1"),
            (HVCC[..20].to_vec(), "truncated header"),
            (HVCC[..22].to_vec(), "truncated header"),
            (one_array[..24].to_vec(), "truncated array"),
            (one_array, "truncated NAL unit"),
        ];
        for (input, want) in cases {
            match HevcConfig::parse(&input) {
                Err(Error::InvalidCodecPrivateData { reason, .. }) => {
                    assert_eq!(reason, want, "{input:02x?}")
                }
                other => panic!("{input:02x?}: {other:?}"),
            }
        }
    }
}
