//! Fragmented MP4 (ISO/IEC 14496-12 section 8.8; CMAF-style): the init segment and one media
//! segment per KVS fragment, for HLS (`getMP4InitFragment.mp4` / `getMP4MediaFragment.mp4`)
//! and DASH.
//!
//! | init segment | |
//! |---|---|
//! | `ftyp` | major `iso6`, compatible `iso6 cmfc mp41` |
//! | `moov` / `mvhd` | timescale 1000, duration 0 (unknown: fragments follow) |
//! | `moov` / `trak`* | `tkhd`, `mdia` (`mdhd` duration 0, `hdlr`, `minf` with empty `stts stsc stsz stco` and a full `stsd`) |
//! | `moov` / `mvex` / `trex`* | sample description 1, no defaults |
//!
//! | media segment | |
//! |---|---|
//! | (`styp`) | optional, see [`crate::styp`] |
//! | `moof` / `mfhd` | sequence_number |
//! | `moof` / `traf`* | `tfhd` (default-base-is-moof), `tfdt` v1, `trun` (data offset, per-sample duration, size, flags, and cts offset when any is non-zero) |
//! | `mdat` | payloads: run 0's samples in order, then run 1's… |

use crate::codec::TrackConfig;
use crate::error::{Error, Result};
use crate::moov::trak::TrakParams;
use crate::moov::{write_mvex, write_mvhd};
use crate::sample::Sample;
use crate::write::Writer;
use crate::{ftyp, moof, moov};

/// The samples of one track in one media segment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// Track id (as in the init segment).
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt`).
    pub base_decode_time: u64,
    /// Samples in decode order; the first must be a sync sample.
    pub samples: &'a [Sample],
}

/// A media segment, planned: header bytes (`moof` + `mdat` header) to send first, then the
/// sample payloads in [`SegmentPlan::payload_order`], taken by the caller straight from
/// storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlan {
    header: Vec<u8>,
    run_lens: Vec<usize>,
    media_len: u64,
}

impl SegmentPlan {
    /// `moof` and the `mdat` box header.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Bytes of payload that follow the header.
    pub fn media_len(&self) -> u64 {
        self.media_len
    }

    /// Length of the whole segment.
    pub fn total_len(&self) -> u64 {
        self.header.len() as u64 + self.media_len
    }

    /// `(run index, sample index)` of each payload, in the order they must follow the header:
    /// every sample of run 0, then of run 1, and so on.
    pub fn payload_order(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.run_lens
            .iter()
            .enumerate()
            .flat_map(|(run, &n)| (0..n).map(move |i| (run, i)))
    }
}

pub(crate) fn check_ids(tracks: &[TrackConfig]) -> Result<()> {
    for (i, t) in tracks.iter().enumerate() {
        if t.id == 0 || tracks[..i].iter().any(|o| o.id == t.id) {
            return Err(Error::BadTrackId { track_id: t.id });
        }
        t.validate()?;
    }
    Ok(())
}

/// The init segment: `ftyp` + `moov` for these tracks (HLS serves one per track).
pub fn init_segment(tracks: &[TrackConfig]) -> Result<Vec<u8>> {
    check_ids(tracks)?;
    let mut w = Writer::new();
    ftyp::write(
        &mut w,
        b"ftyp",
        ftyp::FRAGMENTED_MAJOR,
        0,
        ftyp::FRAGMENTED_COMPATIBLE,
    );
    w.boxed(b"moov", |w| {
        let next = tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1;
        write_mvhd(w, 0, next);
        for t in tracks {
            moov::trak::write_trak(
                w,
                t,
                &TrakParams {
                    movie_duration: 0,
                    media_duration: 0,
                    edits: &[],
                    tables: None,
                },
            );
        }
        write_mvex(w, tracks);
    });
    Ok(w.buf)
}

/// Plans one media segment. Every non-empty run must begin with a sync sample, so each
/// segment decodes on its own (KVS fragments begin with a key frame).
pub fn media_segment(sequence_number: u32, runs: &[TrackRun<'_>]) -> Result<SegmentPlan> {
    for r in runs {
        if r.samples.first().is_some_and(|s| !s.sync) {
            return Err(Error::NotSync {
                track_id: r.track_id,
                sequence_number,
            });
        }
    }
    let mut w = Writer::new();
    let positions = moof::write_moof(&mut w, sequence_number, runs);
    let moof_len = w.buf.len() as u64;
    let media_len: u64 = runs
        .iter()
        .flat_map(|r| r.samples)
        .map(|s| u64::from(s.size))
        .sum();
    // mdat (section 8.1.1): 16-byte header with largesize only when needed.
    let large = media_len + 8 > u64::from(u32::MAX);
    let mdat_header_len = if large { 16 } else { 8 };
    let mut offset = moof_len + mdat_header_len;
    for (r, pos) in runs.iter().zip(positions) {
        let data_offset = i32::try_from(offset).map_err(|_| Error::TooLarge {
            track_id: r.track_id,
            what: "trun data_offset above 2 GiB",
        })?;
        w.buf[pos..pos + 4].copy_from_slice(&data_offset.to_be_bytes());
        offset += r.samples.iter().map(|s| u64::from(s.size)).sum::<u64>();
    }
    if large {
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(media_len + 16);
    } else {
        w.u32((media_len + 8) as u32);
        w.bytes(b"mdat");
    }
    Ok(SegmentPlan {
        header: w.buf,
        run_lens: runs.iter().map(|r| r.samples.len()).collect(),
        media_len,
    })
}
