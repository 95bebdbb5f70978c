//! The crate's error type.

use kvs_core::ErrorKind;

/// Which codec a codec-private error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// H.264 (`avcC`, ISO/IEC 14496-15 section 5.3.3.1).
    Avc,
    /// H.265 (`hvcC`, ISO/IEC 14496-15 section 8.3.3.1).
    Hevc,
    /// AAC (`AudioSpecificConfig`, ISO/IEC 14496-3 section 1.6.2.1).
    Aac,
    /// G.711 (Microsoft `WAVEFORMATEX`).
    G711,
}

impl std::fmt::Display for CodecName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodecName::Avc => "avcC",
            CodecName::Hevc => "hvcC",
            CodecName::Aac => "AudioSpecificConfig",
            CodecName::G711 => "WAVEFORMATEX",
        })
    }
}

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A track has no codec private data but its codec needs it (GetClip's
    /// `MissingCodecPrivateDataException`).
    #[error("{codec} codec private data is missing")]
    MissingCodecPrivateData {
        /// The codec.
        codec: CodecName,
    },
    /// The codec private data cannot be parsed (GetClip's `InvalidCodecPrivateDataException`).
    #[error("invalid {codec} codec private data at byte {pos}: {reason}")]
    InvalidCodecPrivateData {
        /// The codec.
        codec: CodecName,
        /// Byte offset within the codec private data where parsing failed.
        pos: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A run or clip names a track id that is not among the track configs.
    #[error("track id {track_id} is not configured")]
    UnknownTrack {
        /// The id.
        track_id: u32,
    },
    /// Two track configs share an id, or an id is 0.
    #[error("track id {track_id} is 0 or used twice")]
    BadTrackId {
        /// The id.
        track_id: u32,
    },
    /// A fragment's video run does not begin with a sync sample, so it cannot be decoded alone.
    #[error("track {track_id}: media segment {sequence_number} does not begin with a sync sample")]
    NotSync {
        /// The track.
        track_id: u32,
        /// The segment's sequence number.
        sequence_number: u32,
    },
    /// A media segment or clip holds more bytes than 32-bit `trun`/`stsz` fields can describe.
    #[error("track {track_id}: media too large for the box fields ({what})")]
    TooLarge {
        /// The track.
        track_id: u32,
        /// Which limit.
        what: &'static str,
    },
}

impl Error {
    /// Whose fault: bad codec data is the producer's (400); the rest are our invariants.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::MissingCodecPrivateData { .. }
            | Error::InvalidCodecPrivateData { .. }
            | Error::NotSync { .. } => ErrorKind::InvalidArgument,
            Error::UnknownTrack { .. } | Error::BadTrackId { .. } | Error::TooLarge { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
