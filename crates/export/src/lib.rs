//! What readers get, computed from the fragment index and media bytes: today the GetMedia /
//! GetMediaForFragmentList MKV chunk (`kvs-api.md` §8.1), GetClip's progressive MP4 (§10) and
//! the fMP4 init/media segments of HLS/DASH (§11), planned with `openkvs-mp4`.
//!
//! Pure functions: no I/O and no clock. The HTTP shell loads a fragment's frame table and media
//! bytes from the `FragmentStore`, calls these, and streams the result.
#![deny(missing_docs)]

mod error;
mod mkv_chunk;
mod mp4_export;
mod ts_export;

pub use error::{ExportError, MediaErrorCode};
pub use mkv_chunk::{ChunkTags, mkv_chunk, mkv_error_chunk, track_entries};
pub use mp4_export::{
    Fmp4Segment, TrackSamples, clip_plan, fmp4_init, fmp4_segment, samples_for, track_configs,
};
pub use ts_export::ts_segment;
