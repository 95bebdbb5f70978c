//! `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 section 5.3.3.1).

use super::Reader;
use crate::error::{CodecName, Result};

/// What the boxes and codec string need from an avcC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high…).
    pub profile: u8,
    /// `profile_compatibility` (constraint_set flags).
    pub compatibility: u8,
    /// `AVCLevelIndication` (31 = level 3.1).
    pub level: u8,
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// Number of SPS.
    pub sps_count: u8,
    /// Number of PPS.
    pub pps_count: u8,
}

impl AvcConfig {
    /// Parses and validates the record: version 1, length size 1/2/4, at least one SPS, every
    /// parameter set within bounds. Bytes after the PPS (high-profile extensions) are allowed.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, CodecName::Avc);
        if r.u8("empty record")? != 1 {
            return Err(Reader::new(data, CodecName::Avc).invalid("configurationVersion is not 1"));
        }
        let profile = r.u8("truncated header")?;
        let compatibility = r.u8("truncated header")?;
        let level = r.u8("truncated header")?;
        let nal_length_size = (r.u8("truncated header")? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(r.invalid("lengthSizeMinusOne is 2"));
        }
        let sps_count = r.u8("truncated header")? & 0x1f;
        if sps_count == 0 {
            return Err(r.invalid("no SPS"));
        }
        for _ in 0..sps_count {
            let len = r.u16("truncated SPS length")?;
            let sps = r.take(usize::from(len), "truncated SPS")?;
            if sps.first().map(|b| b & 0x1f) != Some(7) {
                return Err(r.invalid("SPS entry is not an SPS NAL unit"));
            }
        }
        let pps_count = r.u8("truncated PPS count")?;
        for _ in 0..pps_count {
            let len = r.u16("truncated PPS length")?;
            r.take(usize::from(len), "truncated PPS")?;
        }
        Ok(Self {
            profile,
            compatibility,
            level,
            nal_length_size,
            sps_count,
            pps_count,
        })
    }

    /// `avc1.PPCCLL` (RFC 6381 section 3.3), lowercase hex as browsers print it.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// High profile level 3.1 avcC with a 4-byte SPS stub and a 2-byte PPS.
    const AVCC: &[u8] = &[
        0x01, // configurationVersion
        0x64, 0x00, 0x1f, // profile 100 (High), compatibility 0, level 31
        0xff, // reserved 6 bits, lengthSizeMinusOne = 3
        0xe1, // reserved 3 bits, numOfSequenceParameterSets = 1
        0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, // SPS length 4, SPS (nal_unit_type 7)
        0x01, // numOfPictureParameterSets
        0x00, 0x02, 0x68, 0xee, // PPS length 2, PPS
    ];

    #[test]
    fn parses() {
        let c = AvcConfig::parse(AVCC).unwrap();
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!((c.sps_count, c.pps_count), (1, 1));
    }

    #[test]
    fn rejects() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "empty record"),
            (
                &[0x02, 0x64, 0, 0x1f, 0xff, 0xe1],
                "configurationVersion is not 1",
            ),
            (&[0x01, 0x64, 0, 0x1f], "truncated header"),
            (
                &[0x01, 0x64, 0, 0x1f, 0xfe, 0xe1],
                "lengthSizeMinusOne is 2",
            ),
            (&[0x01, 0x64, 0, 0x1f, 0xff, 0xe0, 0], "no SPS"),
            (&AVCC[..8], "truncated SPS"),
            (&AVCC[..12], "truncated PPS count"),
            (&AVCC[..15], "truncated PPS"),
        ];
        for (input, want) in cases {
            match AvcConfig::parse(input) {
                Err(Error::InvalidCodecPrivateData { reason, .. }) => {
                    assert_eq!(reason, *want, "{input:02x?}")
                }
                other => panic!("{input:02x?}: {other:?}"),
            }
        }
    }
}
