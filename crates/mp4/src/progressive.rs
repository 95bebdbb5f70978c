//! A progressive (non-fragmented) MP4 planned from an index, for GetClip: header bytes are
//! computed up front, payloads are only *referenced*, and any byte range is served lazily
//! (moonfire-nvr `server/src/mp4.rs` `FileBuilder::build` / `Slices`).
//!
//! | offset | box | contents |
//! |---|---|---|
//! | 0 | `ftyp` | major `isom` minor 0x200, compatible `isom iso2 mp41` |
//! | | `moov` / `mvhd` | timescale 1000; duration = longest track (tkhd) |
//! | | `moov` / `trak`* / `tkhd` | duration = sum of the edit list, or the media duration in ms |
//! | | `moov` / `trak`* / `edts` / `elst` | only when the track starts late (empty edit, `media_time` -1) or its first presented sample has a non-zero composition time (`media_time` = that time) |
//! | | `moov` / `trak`* / `mdia` | `mdhd` (duration = Σ sample durations), `hdlr`, `minf` / `stbl`: `stsd stts [ctts] [stss] stsc stsz stco\|co64` |
//! | header_len − 8 or −16 | `mdat` header | 8 bytes, or 16 (largesize) when the media exceed 4 GiB − 8 |
//! | header_len | payloads | chunk by chunk in the caller's order; each chunk = one track's samples of one fragment |
//!
//! `co64` replaces `stco` (in every track) when any chunk offset exceeds `u32::MAX`. Memory is
//! O(samples): the header plus one [`Slice::Media`] span per run of contiguous source bytes.

use std::ops::Range;

use crate::codec::TrackConfig;
use crate::error::{Error, Result};
use crate::fmp4::check_ids;
use crate::ftyp;
use crate::moov::trak::mdia::minf::stbl::{ChunkEntry, Tables};
use crate::moov::trak::{Edit, TrakParams, write_trak};
use crate::moov::{to_movie_time, write_mvhd};
use crate::sample::Sample;
use crate::write::Writer;

/// One sample of a clip and where its payload is (`sample.size` bytes at `offset` of the
/// chunk's fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSample {
    /// Timing, size, sync.
    pub sample: Sample,
    /// Offset of the payload in the fragment's media bytes.
    pub offset: u64,
}

/// One chunk of a clip: samples of one track from one fragment, in decode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipChunk {
    /// Track id (a configured track).
    pub track_id: u32,
    /// Opaque to this crate; handed back in [`Slice::Media`].
    pub fragment_index: u32,
    /// The samples.
    pub samples: Vec<ClipSample>,
}

/// A piece of the output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice<'a> {
    /// Bytes of the plan's own header (ftyp, moov, mdat header).
    Bytes(&'a [u8]),
    /// `len` payload bytes at `offset` of fragment `fragment_index`'s media bytes.
    Media {
        /// As given in [`ClipChunk::fragment_index`].
        fragment_index: u32,
        /// Offset within that fragment's media bytes.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl Slice<'_> {
    /// Bytes this slice stands for.
    pub fn len(&self) -> u64 {
        match self {
            Slice::Bytes(b) => b.len() as u64,
            Slice::Media { len, .. } => *len,
        }
    }

    /// True when empty (never yielded by [`ProgressivePlan::slices`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A run of payload bytes contiguous in both the output and the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// Output offset of the first byte.
    out_start: u64,
    fragment_index: u32,
    offset: u64,
    len: u64,
}

/// A planned progressive MP4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressivePlan {
    header: Vec<u8>,
    spans: Vec<Span>,
    total_len: u64,
    sample_count: usize,
}

struct TrackBuild<'a> {
    config: &'a TrackConfig,
    delay: u64,
    samples: Vec<Sample>,
    /// (samples in chunk, output offset relative to the payload start)
    chunks: Vec<(u32, u64)>,
}

impl ProgressivePlan {
    /// Plans a clip where every track starts at the clip's start.
    pub fn build(tracks: &[TrackConfig], chunks: &[ClipChunk]) -> Result<Self> {
        Self::build_with_delays(tracks, &[], chunks)
    }

    /// Plans a clip; `delays[i]` (track timescale; missing = 0) delays track `i` with an empty
    /// edit, so tracks that start later than the earliest one stay in sync. Payloads are laid
    /// out chunk by chunk in `chunks` order (interleave fragments/tracks as wanted).
    pub fn build_with_delays(
        tracks: &[TrackConfig],
        delays: &[u64],
        chunks: &[ClipChunk],
    ) -> Result<Self> {
        check_ids(tracks)?;
        let mut builds: Vec<TrackBuild<'_>> = tracks
            .iter()
            .enumerate()
            .map(|(i, config)| TrackBuild {
                config,
                delay: delays.get(i).copied().unwrap_or(0),
                samples: Vec::new(),
                chunks: Vec::new(),
            })
            .collect();
        let mut spans: Vec<Span> = Vec::new();
        let mut pos = 0u64; // relative to the payload start
        for c in chunks {
            let b = builds
                .iter_mut()
                .find(|b| b.config.id == c.track_id)
                .ok_or(Error::UnknownTrack {
                    track_id: c.track_id,
                })?;
            if c.samples.is_empty() {
                continue;
            }
            b.chunks.push((c.samples.len() as u32, pos));
            for s in &c.samples {
                b.samples.push(s.sample);
                let len = u64::from(s.sample.size);
                if len == 0 {
                    continue;
                }
                match spans.last_mut() {
                    Some(last)
                        if last.fragment_index == c.fragment_index
                            && last.offset + last.len == s.offset
                            && last.out_start + last.len == pos =>
                    {
                        last.len += len
                    }
                    _ => spans.push(Span {
                        out_start: pos,
                        fragment_index: c.fragment_index,
                        offset: s.offset,
                        len,
                    }),
                }
                pos += len;
            }
        }
        let media_len = pos;
        let sample_count = builds.iter().map(|b| b.samples.len()).sum();

        // Size the header with 32-bit offsets; switch to co64 if the last byte is past 4 GiB.
        let header_len_stco = render(&builds, 0, false, media_len).len() as u64;
        let co64 = header_len_stco + 8 + media_len > u64::from(u32::MAX);
        let sized = render(&builds, 0, co64, media_len).len() as u64;
        let header = render(&builds, sized, co64, media_len);
        debug_assert_eq!(
            header.len() as u64,
            sized,
            "offsets do not change box sizes"
        );
        for s in &mut spans {
            s.out_start += sized;
        }
        Ok(Self {
            header,
            spans,
            total_len: sized + media_len,
            sample_count,
        })
    }

    /// Length of the whole file (the HTTP `Content-Length`).
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// `ftyp` + `moov` + `mdat` header: everything the plan stores itself. [`crate::dump`] of it
    /// is the debug view.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Samples over all tracks.
    pub fn sample_count(&self) -> usize {
        self.sample_count
    }

    /// The pieces covering `range` (clipped to the file), in order, none empty. Concatenated,
    /// they are exactly those bytes of the file.
    pub fn slices(&self, range: Range<u64>) -> impl Iterator<Item = Slice<'_>> + '_ {
        let end = range.end.min(self.total_len);
        let start = range.start.min(end);
        let hlen = self.header.len() as u64;
        let head = (start < hlen.min(end))
            .then(|| Slice::Bytes(&self.header[start as usize..hlen.min(end) as usize]));
        // First span that ends after `start`.
        let first = self.spans.partition_point(|s| s.out_start + s.len <= start);
        let media = self.spans[first..]
            .iter()
            .take_while(move |s| s.out_start < end)
            .map(move |s| {
                let from = start.max(s.out_start);
                let to = end.min(s.out_start + s.len);
                Slice::Media {
                    fragment_index: s.fragment_index,
                    offset: s.offset + (from - s.out_start),
                    len: to - from,
                }
            });
        head.into_iter().chain(media)
    }
}

/// Renders ftyp + moov + mdat header with chunk offsets based at `payload_start`.
fn render(builds: &[TrackBuild<'_>], payload_start: u64, co64: bool, media_len: u64) -> Vec<u8> {
    let mut w = Writer::new();
    ftyp::write(
        &mut w,
        b"ftyp",
        ftyp::PROGRESSIVE_MAJOR,
        ftyp::PROGRESSIVE_MINOR,
        ftyp::PROGRESSIVE_COMPATIBLE,
    );
    struct Track {
        media_duration: u64,
        edits: Vec<Edit>,
        movie_duration: u64,
        chunks: Vec<ChunkEntry>,
    }
    let tracks: Vec<Track> = builds
        .iter()
        .map(|b| {
            let ts = b.config.timescale;
            let media_duration: u64 = b.samples.iter().map(|s| u64::from(s.duration)).sum();
            let mut dts = 0i64;
            let mut first_pts = i64::MAX;
            for s in &b.samples {
                first_pts = first_pts.min(dts + i64::from(s.cts_offset));
                dts += i64::from(s.duration);
            }
            let media_time = if b.samples.is_empty() { 0 } else { first_pts };
            let mut edits = Vec::new();
            if b.delay > 0 {
                edits.push(Edit {
                    segment_duration: to_movie_time(b.delay, ts),
                    media_time: -1,
                });
            }
            if b.delay > 0 || media_time != 0 {
                let shown = media_duration.saturating_sub(media_time.max(0) as u64);
                edits.push(Edit {
                    segment_duration: to_movie_time(shown, ts),
                    media_time: media_time.max(0),
                });
            }
            let movie_duration = if edits.is_empty() {
                to_movie_time(media_duration, ts)
            } else {
                edits.iter().map(|e| e.segment_duration).sum()
            };
            Track {
                media_duration,
                edits,
                movie_duration,
                chunks: b
                    .chunks
                    .iter()
                    .map(|&(samples, rel)| ChunkEntry {
                        samples,
                        offset: payload_start + rel,
                    })
                    .collect(),
            }
        })
        .collect();
    w.boxed(b"moov", |w| {
        let duration = tracks.iter().map(|t| t.movie_duration).max().unwrap_or(0);
        let next = builds.iter().map(|b| b.config.id).max().unwrap_or(0) + 1;
        write_mvhd(w, duration, next);
        for (b, t) in builds.iter().zip(&tracks) {
            write_trak(
                w,
                b.config,
                &TrakParams {
                    movie_duration: t.movie_duration,
                    media_duration: t.media_duration,
                    edits: &t.edits,
                    tables: Some(Tables {
                        samples: &b.samples,
                        chunks: &t.chunks,
                        co64,
                    }),
                },
            );
        }
    });
    // mdat (ISO/IEC 14496-12 section 8.1.1).
    if media_len + 8 > u64::from(u32::MAX) {
        w.u32(1);
        w.bytes(b"mdat");
        w.u64(media_len + 16);
    } else {
        w.u32((media_len + 8) as u32);
        w.bytes(b"mdat");
    }
    w.buf
}
