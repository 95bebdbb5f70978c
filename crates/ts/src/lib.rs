//! Pure MPEG-TS (ISO/IEC 13818-1) muxer for HLS `MPEG_TS` segments (kvs-api.md §11.2,
//! `getTSFragment.ts`): one program, H.264 or H.265 video and AAC audio.
//!
//! It converts what openkvs stores (Matroska frames: AVCC/HVCC length-prefixed NAL units with
//! the avcC/hvcC in `CodecPrivate`; raw AAC frames with the AudioSpecificConfig) into what TS
//! players expect: Annex B with an access unit delimiter before every access unit and the
//! parameter sets before every key frame, and ADTS-framed AAC. Output is whole 188-byte packets:
//! PAT+PMT at each segment start, before each video key frame and every N packets; one PES per
//! sample with PTS (and DTS when it differs); a PCR on the video PID at each key frame and at
//! least every 40 ms of DTS; continuity counters per PID; adaptation-field stuffing.
//!
//! It deliberately does not: do I/O or read a clock, reorder or interleave samples (it writes
//! them in call order, so feed them in DTS order), aggregate several audio frames per PES,
//! carry codecs other than H.264/H.265/AAC, write SCTE-35/ID3, or compute bitrates.
//!
//! # Drive loop
//!
//! ```
//! use openkvs_ts::{Muxer, Sample, StreamConfig};
//! # fn main() -> Result<(), openkvs_ts::Error> {
//! # let avcc = [1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE];
//! let mut mux = Muxer::new(&[StreamConfig::h264(1, &avcc)?, StreamConfig::aac(2, &[0x11, 0x90])?])?;
//! let mut out = Vec::new();
//! mux.segment_start(&mut out);      // PAT + PMT; next video sample gets a PCR
//! let idr = [0, 0, 0, 2, 0x65, 0x88];
//! mux.write_sample(&Sample { track: 1, pts_90k: 90_000, dts_90k: 90_000, sync: true, data: &idr }, &mut out)?;
//! mux.write_sample(&Sample { track: 2, pts_90k: 90_000, dts_90k: 90_000, sync: true, data: &[0x21, 0x10] }, &mut out)?;
//! assert_eq!(out.len() % 188, 0);
//! # Ok(()) }
//! ```
//!
//! Ordering rule: call [`Muxer::segment_start`] before the first sample of every segment, and
//! start segments with a video key frame. A muxer may serve many consecutive segments
//! (continuity counters carry on) or one (a server muxing each KVS fragment on request creates
//! a fresh muxer; counters then restart at 0 in every segment, which HLS clients accept because
//! every segment is demuxed from its own PAT/PMT).
//!
//! Design notes: `DESIGN.md` in this crate.
#![deny(missing_docs)]

mod codec;
mod error;
mod muxer;
mod packet;

pub use codec::{AudioSpecificConfig, Avcc, Hvcc, adts_header, avcc_parse, hvcc_parse};
pub use error::{ConfigRecord, Error, Result};
pub use muxer::{
    CodecConfig, DEFAULT_PSI_INTERVAL_PACKETS, FIRST_ES_PID, MAX_STREAMS, Muxer, PCR_DELAY_90K,
    PCR_INTERVAL_90K, PMT_PID, Sample, StreamConfig,
};
pub use packet::{PACKET_SIZE, SYNC_BYTE};
