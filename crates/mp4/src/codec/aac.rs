//! `AudioSpecificConfig` (ISO/IEC 14496-3 section 1.6.2.1), the part every decoder reads first.

use crate::error::{CodecName, Error, Result};

/// `samplingFrequencyIndex` table (ISO/IEC 14496-3 Table 1.18); 13 and 14 are reserved.
const FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The leading fields of an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// `audioObjectType` (2 = AAC LC, 5 = SBR, 29 = PS), escape decoded.
    pub object_type: u8,
    /// Sampling frequency in Hz (from the index table or the explicit 24-bit value).
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined in a program config element).
    pub channel_configuration: u8,
}

struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32> {
        let mut v = 0;
        for _ in 0..n {
            let byte = *self
                .data
                .get(self.bit / 8)
                .ok_or(Error::InvalidCodecPrivateData {
                    codec: CodecName::Aac,
                    pos: self.bit / 8,
                    reason: "truncated",
                })?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }
}

impl AudioSpecificConfig {
    /// Parses the object type, frequency and channel configuration.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let invalid = |pos, reason| Error::InvalidCodecPrivateData {
            codec: CodecName::Aac,
            pos,
            reason,
        };
        let mut b = Bits { data, bit: 0 };
        let mut object_type = b.read(5)?;
        if object_type == 31 {
            object_type = 32 + b.read(6)?;
        }
        if object_type == 0 {
            return Err(invalid(0, "audioObjectType 0 (null)"));
        }
        let index = b.read(4)?;
        let sample_rate = match index {
            15 => b.read(24)?,
            i => *FREQUENCIES
                .get(i as usize)
                .ok_or(invalid(0, "reserved samplingFrequencyIndex"))?,
        };
        if sample_rate == 0 {
            return Err(invalid(1, "sampling frequency 0"));
        }
        let channel_configuration = b.read(4)? as u8;
        Ok(Self {
            object_type: u8::try_from(object_type).expect("at most 32 + 63"),
            sample_rate,
            channel_configuration,
        })
    }

    /// `mp4a.40.<audioObjectType>` (RFC 6381 section 3.3).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        type Case<'a> = (&'a [u8], Option<(u8, u32, u8)>);
        let cases: &[Case<'_>] = &[
            // 00010 0011 0010 000: AAC LC, 48 kHz, stereo
            (&[0x11, 0x90], Some((2, 48000, 2))),
            // 00010 1011 0001 000: AAC LC, 8 kHz, mono
            (&[0x15, 0x88], Some((2, 8000, 1))),
            // 00010 1111 <24-bit 0x00_5622 = 22050> 0001
            (&[0x17, 0x80, 0x2b, 0x11, 0x08], Some((2, 22050, 1))),
            // 11111 000011 (escape: 32 + 3 = 35) 0100 (44.1 kHz) 0010
            (&[0xf8, 0x68, 0x40], Some((35, 44100, 2))),
            (&[0x12], None),       // truncated
            (&[0x16, 0x90], None), // index 13: reserved
            (&[0x01, 0x90], None), // object type 0
        ];
        for (input, want) in cases {
            let got = AudioSpecificConfig::parse(input)
                .ok()
                .map(|c| (c.object_type, c.sample_rate, c.channel_configuration));
            assert_eq!(got, *want, "{input:02x?}");
        }
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11, 0x90])
                .unwrap()
                .codec_string(),
            "mp4a.40.2"
        );
    }
}
