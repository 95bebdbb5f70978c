//! The crate error. Codec-configuration errors name the structure and byte offset; sample
//! errors name the track and the byte offset inside the sample.

use kvs_core::ErrorKind;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which codec configuration record an [`Error::InvalidCodecConfig`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigRecord {
    /// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
    Avcc,
    /// `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1).
    Hvcc,
    /// `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
    AudioSpecificConfig,
}

impl std::fmt::Display for ConfigRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigRecord::Avcc => "avcC",
            ConfigRecord::Hvcc => "hvcC",
            ConfigRecord::AudioSpecificConfig => "AudioSpecificConfig",
        })
    }
}

/// Invalid codec configuration, an unusable sample, or a misuse of the muxer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A codec configuration record is truncated or malformed.
    #[error("invalid {record} at byte {offset}: {what}")]
    InvalidCodecConfig {
        /// The record.
        record: ConfigRecord,
        /// Offset in the record where parsing failed.
        offset: usize,
        /// What was expected there (a fixed description, not data).
        what: &'static str,
    },
    /// AAC configuration that ADTS cannot carry (ADTS has 2 profile bits, 13 rate indices and
    /// no program config element).
    #[error(
        "AAC object type {object_type}, sampling frequency index {sampling_frequency_index}, \
         channel configuration {channel_configuration} cannot be carried in ADTS"
    )]
    UnsupportedAac {
        /// Audio object type (2 = AAC-LC).
        object_type: u8,
        /// Sampling frequency index (15 = explicit frequency).
        sampling_frequency_index: u8,
        /// Channel configuration (0 = defined by a PCE).
        channel_configuration: u8,
    },
    /// An AAC frame is too long for the 13-bit ADTS `frame_length`.
    #[error("AAC frame of {len} bytes does not fit in ADTS (max 8184)")]
    AdtsFrameTooLarge {
        /// Raw frame length.
        len: usize,
    },
    /// A length-prefixed NAL unit runs past the end of its sample.
    #[error(
        "track {track}: NAL unit at byte {offset} of the sample claims {nal_len} bytes, {remaining} remain"
    )]
    NalTruncated {
        /// Track of the sample.
        track: u64,
        /// Offset of the length prefix in the sample.
        offset: usize,
        /// Length the prefix claims.
        nal_len: usize,
        /// Bytes left after the prefix.
        remaining: usize,
    },
    /// A sample names a track that was not configured.
    #[error("sample for unknown track {track}")]
    UnknownTrack {
        /// The track number.
        track: u64,
    },
    /// Two stream configurations share a track number.
    #[error("track {track} configured twice")]
    DuplicateTrack {
        /// The track number.
        track: u64,
    },
    /// [`crate::Muxer::new`] got no streams, or more than [`crate::MAX_STREAMS`].
    #[error("{count} streams configured; a TS program here carries 1..=16")]
    StreamCount {
        /// How many were given.
        count: usize,
    },
}

impl Error {
    /// Whose fault it is: everything here comes from the producer's media or the caller's
    /// configuration, so all are [`ErrorKind::InvalidArgument`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidCodecConfig { .. }
            | Error::UnsupportedAac { .. }
            | Error::AdtsFrameTooLarge { .. }
            | Error::NalTruncated { .. }
            | Error::UnknownTrack { .. }
            | Error::DuplicateTrack { .. }
            | Error::StreamCount { .. } => ErrorKind::InvalidArgument,
        }
    }
}
