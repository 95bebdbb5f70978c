//! The crate's error type.

use kvs_core::{ErrorKind, FragmentNumber};

/// Which KVS archived-media exception an [`ExportError`] becomes (`kvs-api.md` §10, §11).
/// `openkvs-core`'s `ErrorKind` has no variants for these yet, so the API layer maps this
/// code to the exception name and status 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaErrorCode {
    /// `UnsupportedStreamMediaTypeException`: a CodecID we cannot put in MP4.
    UnsupportedStreamMediaType,
    /// `MissingCodecPrivateDataException`: a track lacks its CodecPrivate.
    MissingCodecPrivateData,
    /// `InvalidCodecPrivateDataException`: the CodecPrivate cannot be parsed.
    InvalidCodecPrivateData,
    /// `InvalidMediaFrameException`: frames cannot be used (e.g. a fragment not starting with
    /// a key frame).
    InvalidMediaFrame,
    /// Not the producer's fault (a broken index, or a file too large for the format).
    Internal,
}

impl MediaErrorCode {
    /// The KVS exception name, `None` for [`MediaErrorCode::Internal`].
    pub fn exception(self) -> Option<&'static str> {
        match self {
            Self::UnsupportedStreamMediaType => Some("UnsupportedStreamMediaTypeException"),
            Self::MissingCodecPrivateData => Some("MissingCodecPrivateDataException"),
            Self::InvalidCodecPrivateData => Some("InvalidCodecPrivateDataException"),
            Self::InvalidMediaFrame => Some("InvalidMediaFrameException"),
            Self::Internal => None,
        }
    }
}

/// Errors building MP4 output from stored fragments.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A track's CodecID has no MP4 mapping here.
    #[error("track {track}: codec {codec_id:?} is not supported in MP4")]
    UnsupportedCodec {
        /// MKV track number.
        track: u64,
        /// The CodecID.
        codec_id: String,
    },
    /// The MKV track number cannot be an MP4 track id (0 or above 2^32 - 1).
    #[error("track number {track} cannot be an MP4 track id")]
    TrackNumber {
        /// MKV track number.
        track: u64,
    },
    /// No track of that number in the track set.
    #[error("no track {track} in the track set")]
    NoSuchTrack {
        /// MKV track number.
        track: u64,
    },
    /// A frame of the index lies outside its fragment's media bytes.
    #[error("fragment {fragment}: frame at {offset}+{size} is outside its {media_len} media bytes")]
    FrameOutOfBounds {
        /// The fragment.
        fragment: FragmentNumber,
        /// Frame offset.
        offset: u32,
        /// Frame size.
        size: u32,
        /// The fragment's media size.
        media_len: u64,
    },
    /// The MP4 writer refused the input (codec private data, sync samples, sizes).
    #[error("track {track}: {source}")]
    Mp4 {
        /// MKV track number (0 when not about one track).
        track: u64,
        /// What it said.
        #[source]
        source: mp4::Error,
    },
}

impl ExportError {
    /// The KVS exception this becomes.
    pub fn code(&self) -> MediaErrorCode {
        match self {
            Self::UnsupportedCodec { .. } => MediaErrorCode::UnsupportedStreamMediaType,
            Self::Mp4 { source, .. } => match source {
                mp4::Error::MissingCodecPrivateData { .. } => {
                    MediaErrorCode::MissingCodecPrivateData
                }
                mp4::Error::InvalidCodecPrivateData { .. } => {
                    MediaErrorCode::InvalidCodecPrivateData
                }
                mp4::Error::NotSync { .. } => MediaErrorCode::InvalidMediaFrame,
                _ => MediaErrorCode::Internal,
            },
            Self::TrackNumber { .. } => MediaErrorCode::UnsupportedStreamMediaType,
            Self::NoSuchTrack { .. } | Self::FrameOutOfBounds { .. } => MediaErrorCode::Internal,
        }
    }

    /// Whose fault: the producer's (400) or ours (500).
    pub fn kind(&self) -> ErrorKind {
        match self.code() {
            MediaErrorCode::Internal => match self {
                Self::NoSuchTrack { .. } => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::InvalidArgument,
        }
    }
}
