//! Sans-IO ISO-BMFF (MP4) writer for KVS playback: fragmented MP4 init and media segments for
//! HLS/DASH (`kvs-api.md` §11) and progressive MP4 clips for GetClip (§10).
//!
//! Everything here is a pure function of its inputs (track configs and sample tables). It
//! deliberately does not: read media bytes, do I/O, read a clock, parse MP4 in general, or know
//! about Matroska or the store — `openkvs-export` converts stored fragments into these inputs.
//!
//! # Plan, then stream
//!
//! Outputs are *plans*: the header bytes this crate computes (box sizes, sample tables, chunk
//! and data offsets) plus references to payload bytes that the caller streams from storage
//! without copying them into a buffer (STYLE.md §2, moonfire-nvr's `FileBuilder`):
//!
//! ```
//! use openkvs_mp4::{ClipChunk, ClipSample, ProgressivePlan, Sample, Slice, TrackConfig};
//! # fn main() -> Result<(), openkvs_mp4::Error> {
//! # let avcc = [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 1, 0x68];
//! let video = TrackConfig::avc(1, Some(&avcc), 320, 240)?;
//! let key = Sample { duration: 3600, size: 5, sync: true, cts_offset: 0 };
//! let chunk = ClipChunk {
//!     track_id: 1,
//!     fragment_index: 0,
//!     samples: vec![ClipSample { sample: key, offset: 0 }],
//! };
//! let plan = ProgressivePlan::build(&[video], &[chunk])?;
//! // An HTTP Range request for bytes 0..=99:
//! for slice in plan.slices(0..100) {
//!     match slice {
//!         Slice::Bytes(b) => { /* send b */ }
//!         Slice::Media { fragment_index, offset, len } => { /* read and send from storage */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! For fMP4, [`init_segment`] returns whole bytes (it holds no media) and [`media_segment`]
//! returns a [`SegmentPlan`]: send its header, then the payloads in
//! [`SegmentPlan::payload_order`].
//!
//! # Timing
//!
//! Callers give presentation times in decode order; [`timeline`] derives decode times and
//! composition offsets (see [`sample`] for the rule). Byte layouts and box order are in
//! `DESIGN.md` beside this crate, and as tables in [`fmp4`] and [`progressive`].
//!
//! Bump [`FORMAT_VERSION`] whenever the bytes for the same input change, and hash it into
//! ETags so caches drop old files.
#![deny(missing_docs)]

mod codec;
mod dump;
mod error;
pub mod fmp4;
mod ftyp;
mod moof;
mod moov;
pub mod progressive;
pub mod sample;
mod write;

pub use codec::{
    AudioCodec, AudioSpecificConfig, AvcConfig, HevcConfig, TrackConfig, TrackKind,
    VIDEO_TIMESCALE, VideoCodec, WaveFormatEx,
};
pub use dump::dump;
pub use error::{CodecName, Error, Result};
pub use fmp4::{SegmentPlan, TrackRun, init_segment, media_segment};
pub use ftyp::styp;
pub use moov::{MOVIE_TIMESCALE, to_movie_time};
pub use progressive::{ClipChunk, ClipSample, ProgressivePlan, Slice};
pub use sample::{Sample, TimedSample, Timeline, timeline};

/// Version of the byte layout produced for a given input. Hash it into HTTP ETags (with the
/// fragment numbers and ranges a file was built from) and bump it with every layout change;
/// the golden tests' hashes fail until it is bumped (brittle on purpose).
pub const FORMAT_VERSION: u32 = 1;
