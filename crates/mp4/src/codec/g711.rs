//! Microsoft `WAVEFORMATEX`, the CodecPrivate of Matroska `A_MS/ACM` tracks (Matroska codec
//! mapping, "A_MS/ACM"); all fields little-endian.

use crate::error::{CodecName, Error, Result};

/// The fields of a WAVEFORMATEX that G.711 needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveFormatEx {
    /// `wFormatTag`: 6 = A-law, 7 = µ-law.
    pub format_tag: u16,
    /// `nChannels`.
    pub channels: u16,
    /// `nSamplesPerSec`.
    pub sample_rate: u32,
    /// `wBitsPerSample`.
    pub bits_per_sample: u16,
}

impl WaveFormatEx {
    /// `wFormatTag` of G.711 A-law.
    pub const ALAW: u16 = 6;
    /// `wFormatTag` of G.711 µ-law.
    pub const MULAW: u16 = 7;

    /// Parses the 16-byte WAVEFORMAT part (cbSize and extra bytes are optional).
    pub fn parse(data: &[u8]) -> Result<Self> {
        if data.len() < 16 {
            return Err(Error::InvalidCodecPrivateData {
                codec: CodecName::G711,
                pos: data.len(),
                reason: "shorter than 16 bytes",
            });
        }
        let u16le = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]);
        let w = Self {
            format_tag: u16le(0),
            channels: u16le(2),
            sample_rate: u32::from_le_bytes([data[4], data[5], data[6], data[7]]),
            bits_per_sample: u16le(14),
        };
        if w.channels == 0 || w.sample_rate == 0 {
            return Err(Error::InvalidCodecPrivateData {
                codec: CodecName::G711,
                pos: 2,
                reason: "zero channels or sample rate",
            });
        }
        Ok(w)
    }

    /// True for A-law or µ-law.
    pub fn is_g711(&self) -> bool {
        matches!(self.format_tag, Self::ALAW | Self::MULAW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alaw() {
        let wfx = [
            0x06, 0x00, // wFormatTag A-law
            0x01, 0x00, // nChannels 1
            0x40, 0x1f, 0x00, 0x00, // nSamplesPerSec 8000
            0x40, 0x1f, 0x00, 0x00, // nAvgBytesPerSec 8000
            0x01, 0x00, // nBlockAlign 1
            0x08, 0x00, // wBitsPerSample 8
            0x00, 0x00, // cbSize 0
        ];
        let w = WaveFormatEx::parse(&wfx).unwrap();
        assert_eq!((w.format_tag, w.channels, w.sample_rate), (6, 1, 8000));
        assert!(w.is_g711());
        assert!(WaveFormatEx::parse(&wfx[..10]).is_err());
    }
}
