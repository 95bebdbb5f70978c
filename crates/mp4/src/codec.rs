//! Track configurations and the codec private data they carry: validation, and what the boxes
//! and RFC 6381 `codecs` strings need from it.

mod aac;
mod avc;
mod g711;
mod hevc;

pub use aac::AudioSpecificConfig;
pub use avc::AvcConfig;
pub use g711::WaveFormatEx;
pub use hevc::HevcConfig;

use crate::error::{CodecName, Error, Result};

/// One track of an MP4 file or fMP4 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// `track_ID` (non-zero, unique within a file).
    pub id: u32,
    /// Media timescale: ticks per second of every duration and time in the track.
    pub timescale: u32,
    /// Codec and its parameters.
    pub kind: TrackKind,
}

/// Video or audio, with codec parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    /// A video track.
    Video {
        /// The codec.
        codec: VideoCodec,
        /// Width in pixels (informative; decoders use the SPS).
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// An audio track.
    Audio {
        /// The codec.
        codec: AudioCodec,
        /// Sampling rate in Hz.
        sample_rate: u32,
        /// Channel count.
        channels: u16,
    },
}

/// Video codecs with their decoder configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264; samples are length-prefixed NAL units.
    Avc {
        /// `AVCDecoderConfigurationRecord` (the avcC box body), validated.
        avcc: Vec<u8>,
    },
    /// H.265; samples are length-prefixed NAL units.
    Hevc {
        /// `HEVCDecoderConfigurationRecord` (the hvcC box body), validated.
        hvcc: Vec<u8>,
    },
}

/// Audio codecs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC; samples are raw access units.
    Aac {
        /// `AudioSpecificConfig`, validated.
        asc: Vec<u8>,
    },
    /// G.711 A-law (`alaw`) or µ-law (`ulaw`), 8 bits per sample.
    G711 {
        /// A-law if true, µ-law otherwise.
        alaw: bool,
    },
}

/// Video timescale: 90 kHz, the MPEG convention; exact for ms and µs-multiple tick sizes
/// commonly used by producers (1 ms ticks become 90 units).
pub const VIDEO_TIMESCALE: u32 = 90_000;

fn missing(codec: CodecName) -> Error {
    Error::MissingCodecPrivateData { codec }
}

impl TrackConfig {
    /// An H.264 track from its avcC (`None` or empty: missing codec private data).
    pub fn avc(id: u32, avcc: Option<&[u8]>, width: u16, height: u16) -> Result<Self> {
        let avcc = avcc
            .filter(|b| !b.is_empty())
            .ok_or(missing(CodecName::Avc))?;
        AvcConfig::parse(avcc)?;
        Ok(Self {
            id,
            timescale: VIDEO_TIMESCALE,
            kind: TrackKind::Video {
                codec: VideoCodec::Avc {
                    avcc: avcc.to_vec(),
                },
                width,
                height,
            },
        })
    }

    /// An H.265 track from its hvcC.
    pub fn hevc(id: u32, hvcc: Option<&[u8]>, width: u16, height: u16) -> Result<Self> {
        let hvcc = hvcc
            .filter(|b| !b.is_empty())
            .ok_or(missing(CodecName::Hevc))?;
        HevcConfig::parse(hvcc)?;
        Ok(Self {
            id,
            timescale: VIDEO_TIMESCALE,
            kind: TrackKind::Video {
                codec: VideoCodec::Hevc {
                    hvcc: hvcc.to_vec(),
                },
                width,
                height,
            },
        })
    }

    /// An AAC track; sample rate, timescale and channel count come from the
    /// AudioSpecificConfig (channel configuration 0 falls back to `channels_hint`, else 2).
    pub fn aac(id: u32, asc: Option<&[u8]>, channels_hint: Option<u16>) -> Result<Self> {
        let asc = asc
            .filter(|b| !b.is_empty())
            .ok_or(missing(CodecName::Aac))?;
        let parsed = AudioSpecificConfig::parse(asc)?;
        let channels = match parsed.channel_configuration {
            0 => channels_hint.unwrap_or(2),
            7 => 8,
            c @ 1..=6 => u16::from(c),
            c => channels_hint.unwrap_or(u16::from(c)),
        };
        Ok(Self {
            id,
            timescale: parsed.sample_rate,
            kind: TrackKind::Audio {
                codec: AudioCodec::Aac { asc: asc.to_vec() },
                sample_rate: parsed.sample_rate,
                channels,
            },
        })
    }

    /// A G.711 track.
    pub fn g711(id: u32, alaw: bool, sample_rate: u32, channels: u16) -> Self {
        Self {
            id,
            timescale: sample_rate,
            kind: TrackKind::Audio {
                codec: AudioCodec::G711 { alaw },
                sample_rate,
                channels,
            },
        }
    }

    /// Checks the codec private data again (configs may be built by hand).
    pub fn validate(&self) -> Result<()> {
        match &self.kind {
            TrackKind::Video {
                codec: VideoCodec::Avc { avcc },
                ..
            } => AvcConfig::parse(avcc).map(drop),
            TrackKind::Video {
                codec: VideoCodec::Hevc { hvcc },
                ..
            } => HevcConfig::parse(hvcc).map(drop),
            TrackKind::Audio {
                codec: AudioCodec::Aac { asc },
                ..
            } => AudioSpecificConfig::parse(asc).map(drop),
            TrackKind::Audio {
                codec: AudioCodec::G711 { .. },
                ..
            } => Ok(()),
        }
    }

    /// True for video tracks.
    pub fn is_video(&self) -> bool {
        matches!(self.kind, TrackKind::Video { .. })
    }

    /// The RFC 6381 `codecs` parameter: `avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`,
    /// `alaw`/`ulaw`.
    pub fn codec_string(&self) -> Result<String> {
        Ok(match &self.kind {
            TrackKind::Video {
                codec: VideoCodec::Avc { avcc },
                ..
            } => AvcConfig::parse(avcc)?.codec_string(),
            TrackKind::Video {
                codec: VideoCodec::Hevc { hvcc },
                ..
            } => HevcConfig::parse(hvcc)?.codec_string(),
            TrackKind::Audio {
                codec: AudioCodec::Aac { asc },
                ..
            } => AudioSpecificConfig::parse(asc)?.codec_string(),
            TrackKind::Audio {
                codec: AudioCodec::G711 { alaw },
                ..
            } => (if *alaw { "alaw" } else { "ulaw" }).to_owned(),
        })
    }
}

/// A bounds-checked big-endian reader over codec private data.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    codec: CodecName,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], codec: CodecName) -> Self {
        Self {
            data,
            pos: 0,
            codec,
        }
    }
    pub(crate) fn invalid(&self, reason: &'static str) -> Error {
        Error::InvalidCodecPrivateData {
            codec: self.codec,
            pos: self.pos,
            reason,
        }
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.invalid(what))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}
