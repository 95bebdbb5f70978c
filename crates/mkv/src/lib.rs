//! Sans-IO streaming EBML/Matroska reader and a small writer, the core of PutMedia ingest.
//!
//! The reader takes bytes in whatever pieces an HTTP chunked body delivers them, splits
//! anywhere, and yields owned [`Event`]s: EBML header, Segment start/end, Info, Tracks, Tags,
//! Cluster start/end and one [`Frame`] per (laced) frame of every SimpleBlock and BlockGroup.
//! It handles what real producers send (kvs-api.md §7.3, kvssink-behaviour.md §5): unknown-size
//! Segment and Cluster, Tags between or inside Clusters, several EBML documents concatenated
//! in one body (a KVS producer restarting), NUL-terminated CodecIDs (GStreamer), CRC-32
//! elements (ffmpeg; verified), Xiph/fixed/EBML lacing (mkvmerge).
//!
//! It deliberately does not: do I/O, read a clock, seek, interpret SeekHead/Cues/Chapters/
//! Attachments (skipped by size), decode codec data, or enforce KVS fragment rules (track
//! count, fragment duration...) — that is `openkvs-ingest`'s job, from these events.
//!
//! # Drive loop
//!
//! ```
//! use openkvs_mkv::{Event, Parser};
//! # fn main() -> Result<(), openkvs_mkv::Error> {
//! # let chunks: Vec<Vec<u8>> = vec![openkvs_mkv::Writer::new().into_bytes()];
//! let mut p = Parser::builder().max_element_size(16 << 20).build();
//! for chunk in chunks {            // e.g. HTTP body chunks as they arrive
//!     p.push(&chunk);
//!     while let Some(ev) = p.poll()? {
//!         if let Event::Frame(f) = &ev { /* store f.payload */ }
//!     }
//!     p.check_invariants(); // tests and fuzzing only
//! }
//! p.finish()?;                     // end of body: errors if it stopped mid-element
//! while let Some(_ev) = p.poll()? { /* ClusterEnd / SegmentEnd of unknown-size elements */ }
//! # Ok(()) }
//! ```
//!
//! Ordering rule: after each [`Parser::push`], call [`Parser::poll`] until it returns
//! `Ok(None)` before pushing again. Pushing without draining is allowed but the input then
//! stays buffered, so the memory bound below only holds for a drained parser.
//! `Ok(None)` means "need more bytes" and is never an error; `Err` means the input is invalid
//! and is sticky (every later `poll`/`finish` returns it again).
//!
//! # Memory bound
//!
//! A drained parser holds at most [`ParserBuilder::max_element_size`] + 12 bytes: only
//! elements that are parsed whole (SimpleBlock, BlockGroup, Info, Tracks, Tags, EBML header)
//! are buffered, each until it is complete; Segment and Cluster are streamed and everything
//! else is skipped by size as it passes. An element above the limit fails with
//! [`Error::ElementTooLarge`] as soon as its header is read.
//!
//! # Writer
//!
//! [`Writer`] produces the subset of Matroska that GetMedia output (kvs-api.md §8.1) and tests
//! need; `decode(encode(x)) == x` holds for every element it writes.
#![deny(missing_docs)]

mod block;
mod crc;
pub mod ebml;
mod error;
mod event;
mod header;
pub mod ids;
mod info;
mod master;
mod parser;
mod tags;
mod tracks;
mod writer;

pub use block::Lacing;
pub use crc::{Crc32, crc32};
pub use error::{Error, Result};
pub use event::{Event, Frame};
pub use header::EbmlHeader;
pub use ids::ElementId;
pub use info::{DEFAULT_TIMECODE_SCALE_NS, Info};
pub use parser::{DEFAULT_MAX_ELEMENT_SIZE, Parser, ParserBuilder};
pub use tags::{
    AWS_KINESISVIDEO_END_OF_FRAGMENT, AWS_KINESISVIDEO_PREFIX, SimpleTag, Tag, TagValue, Targets,
};
pub use tracks::{Audio, TrackEntry, TrackKind, Video};
pub use writer::{Block, BlockKind, SizeMode, Writer};

/// Parses a complete input in one go: push, poll, finish, poll. For tests and tools.
pub fn parse_all(data: &[u8], builder: ParserBuilder) -> Result<Vec<Event>> {
    let mut p = builder.build();
    let mut events = Vec::new();
    p.push(data);
    while let Some(ev) = p.poll()? {
        events.push(ev);
    }
    p.finish()?;
    while let Some(ev) = p.poll()? {
        events.push(ev);
    }
    Ok(events)
}
