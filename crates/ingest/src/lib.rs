//! The PutMedia session core: a PutMedia request body (one long MKV stream, kvs-api.md §7)
//! goes in as bytes; fragments to persist and ACK events come out.
//!
//! [`Session`] cuts the producer's clusters into KVS fragments that start on video key frames
//! and hold whole GOPs, assigns fragment numbers, computes producer/server timestamps and
//! durations, enforces the KVS limits with the ErrorIds of §7.4, recognises fragments a
//! restarting producer replays, and formats ACKs ([`Ack::to_json`]). `DESIGN.md` has the rules
//! and the reasons.
//!
//! It deliberately does not: do I/O, read a clock (`now_ms` is an argument), store anything
//! (the shell persists [`Output::Fragment`] with `openkvs-store` and sends `PERSISTED`),
//! send `IDLE` ACKs (a shell timer), or authenticate.
//!
//! # Drive loop
//!
//! ```
//! use openkvs_ingest::{Ack, Output, Session, SessionConfig};
//! # let body: Vec<(Vec<u8>, i64)> = Vec::new();
//! let mut s = Session::new(SessionConfig::new("arn:aws:kinesisvideo:us-east-1:1:stream/s/1"));
//! let mut handle = |out: Output| match out {
//!     Output::Ack(ack) => { /* write ack.to_json() + "\n" as one chunk, flush */ }
//!     Output::Fragment(f) => { /* persist f.fragment, then send Ack::persisted(..) */ }
//!     Output::Duplicate { number, fragment_timecode } => {
//!         let _ = Ack::persisted(fragment_timecode, number); // send it, store nothing
//!     }
//!     Output::Error(e) => { /* log e */ }
//!     Output::End { .. } => { /* send owed PERSISTED acks, end the response */ }
//! };
//! for (chunk, now_ms) in body {          // HTTP body chunks as they arrive
//!     s.push(&chunk, now_ms);
//!     while let Some(out) = s.poll() { handle(out) }
//!     if s.is_ended() { break }          // stream-level error: stop reading
//! }
//! s.finish(1_700_000_000_000);           // end of body
//! while let Some(out) = s.poll() { handle(out) }
//! ```
//!
//! Ordering rule: after every `push` and `finish`, drain [`Session::poll`] until `None` before
//! pushing again. Outputs are in causal order: per fragment `BUFFERING`, then `RECEIVED`
//! followed at once by its `Fragment` or `Duplicate` — or an [`Output::Error`] followed at
//! once by its `ERROR` ACK — and [`Output::End`] exactly once, last.
//!
//! # Memory
//!
//! A drained session holds at most one fragment's media (`max_fragment_bytes`, counting the
//! frames held while a cluster's role is undecided) plus the parser's bound
//! (`max_element_size` + 12 bytes), plus a few kB of track and replay tables. Outputs of one
//! `push` are at most the bytes pushed.
#![deny(missing_docs)]

mod ack;
mod config;
mod error;
pub mod error_id;
mod fragment;
mod session;
mod tags;

pub use ack::{Ack, AckEvent};
pub use config::{
    MAX_ELEMENT_SIZE, MAX_FRAGMENT_BYTES, MAX_FRAGMENT_DURATION_MS, MAX_TAG_NAME_BYTES,
    MAX_TAG_VALUE_BYTES, MAX_TAGS_PER_FRAGMENT, MAX_TRACKS, SessionConfig, TimecodeType,
    parse_producer_start_ms,
};
pub use error::Error;
pub use session::{CompletedFragment, MAX_REMEMBERED, Output, Session, SessionStats};
