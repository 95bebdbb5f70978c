//! Why a fragment or a session was rejected. Each error is reported twice: as
//! [`crate::Output::Error`] for logs and metrics, then on the wire as an `ERROR` ACK carrying
//! only [`Error::error_id`].

use kvs_core::ErrorKind;

use crate::error_id;

/// A rejected fragment (the session goes on) or a failed session (it ends), see
/// [`Error::ends_session`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fragment's media bytes exceed `max_fragment_bytes` (4001).
    #[error("fragment at timecode {fragment_timecode} exceeds {max_bytes} bytes")]
    FragmentTooLarge {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// The fragment lasts longer than `max_fragment_duration_ms` (4002).
    #[error(
        "fragment at timecode {fragment_timecode} lasts {duration_ms} ms; the limit is {max_ms} ms"
    )]
    FragmentTooLong {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// Its duration so far (at least).
        duration_ms: i64,
        /// The limit.
        max_ms: i64,
    },
    /// The fragment does not start after the previous fragment of the session (4004).
    #[error(
        "fragment timecode {fragment_timecode} is not after the previous fragment's {previous}"
    )]
    TimecodeNotIncreasing {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// The previous fragment's.
        previous: u64,
    },
    /// More producer tags than `max_tags_per_fragment` (4009).
    #[error(
        "fragment at timecode {fragment_timecode} has {count} producer tags; the limit is {max}"
    )]
    TooManyTags {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// Tags seen.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A producer tag's name or value is too long (4009).
    #[error(
        "fragment at timecode {fragment_timecode}: tag {name:?} has a {name_bytes}-byte name and a \
         {value_bytes}-byte value; the limits are 128 and 256"
    )]
    TagTooLong {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// The tag name (its first 64 characters).
        name: String,
        /// Name length.
        name_bytes: usize,
        /// Value length.
        value_bytes: usize,
    },
    /// A frame's track number is not in `Tracks` (4010).
    #[error(
        "block at byte {offset} is on track {track}, which Tracks does not list (fragment at timecode {fragment_timecode})"
    )]
    UnknownTrack {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// The block's track number.
        track: u64,
        /// Offset of the block in the body.
        offset: u64,
    },
    /// A track from `Tracks` has no frame in the fragment (4011).
    #[error("fragment at timecode {fragment_timecode} has no frame on track {track}")]
    MissingTrack {
        /// The fragment's opening cluster Timecode.
        fragment_timecode: u64,
        /// The track without frames.
        track: u64,
    },
    /// `Tracks` lists more than `max_tracks` tracks (4012; ends the session).
    #[error("Tracks at byte {offset} lists {count} tracks; the limit is {max}")]
    TooManyTracks {
        /// Offset of the Tracks element.
        offset: u64,
        /// Tracks listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// `Tracks` lists a track number twice (4006; ends the session).
    #[error("Tracks at byte {offset} lists track number {track} twice")]
    DuplicateTrack {
        /// Offset of the Tracks element.
        offset: u64,
        /// The repeated number.
        track: u64,
    },
    /// The body is not valid MKV, or ended inside an element (4006; ends the session).
    #[error("invalid MKV")]
    InvalidMkv(#[source] mkv::Error),
    /// An element is larger than `max_element_size` (4001; ends the session: the parser cannot
    /// skip what it was asked to buffer).
    #[error("MKV element over the size limit")]
    ElementTooLarge(#[source] mkv::Error),
}

impl Error {
    /// The ACK `ErrorId` (kvs-api.md §7.4).
    pub fn error_id(&self) -> u32 {
        match self {
            Error::FragmentTooLarge { .. } | Error::ElementTooLarge(_) => error_id::FRAGMENT_SIZE,
            Error::FragmentTooLong { .. } => error_id::FRAGMENT_DURATION,
            Error::TimecodeNotIncreasing { .. } => error_id::FRAGMENT_TIMECODE_NOT_MONOTONIC,
            Error::TooManyTags { .. } | Error::TagTooLong { .. } => {
                error_id::FRAGMENT_METADATA_LIMIT
            }
            Error::UnknownTrack { .. } => error_id::TRACK_NUMBER_MISMATCH,
            Error::MissingTrack { .. } => error_id::FRAMES_MISSING_FOR_TRACK,
            Error::TooManyTracks { .. } => error_id::MORE_THAN_ALLOWED_TRACKS,
            Error::DuplicateTrack { .. } | Error::InvalidMkv(_) => error_id::INVALID_MKV_DATA,
        }
    }

    /// True for stream-level failures, after which the session emits [`crate::Output::End`]
    /// and reads no more; false when only one fragment is dropped.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            Error::TooManyTracks { .. }
                | Error::DuplicateTrack { .. }
                | Error::InvalidMkv(_)
                | Error::ElementTooLarge(_)
        )
    }

    /// Whose fault: the producer's. Size limits are `LimitExceeded`, the rest
    /// `InvalidArgument`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::FragmentTooLarge { .. }
            | Error::FragmentTooLong { .. }
            | Error::TooManyTags { .. }
            | Error::TagTooLong { .. }
            | Error::TooManyTracks { .. }
            | Error::ElementTooLarge(_) => ErrorKind::LimitExceeded,
            Error::TimecodeNotIncreasing { .. }
            | Error::UnknownTrack { .. }
            | Error::MissingTrack { .. }
            | Error::DuplicateTrack { .. }
            | Error::InvalidMkv(_) => ErrorKind::InvalidArgument,
        }
    }
}
