//! What readers get, computed from the fragment index and media bytes: today the GetMedia /
//! GetMediaForFragmentList MKV chunk (`kvs-api.md` §8.1); MP4 clips and HLS/DASH segments follow.
//!
//! Pure functions: no I/O and no clock. The HTTP shell loads a fragment's frame table and media
//! bytes from the `FragmentStore`, calls these, and streams the result.
#![deny(missing_docs)]

mod mkv_chunk;

pub use mkv_chunk::{ChunkTags, mkv_chunk, mkv_error_chunk, track_entries};
