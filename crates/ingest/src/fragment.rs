//! A fragment being received: its frame table, media bytes and tags, and the timing rules of
//! kvs-api.md §7.2 (see DESIGN.md "Timestamps").

use std::sync::Arc;

use bytes::Bytes;
use kvs_core::FragmentNumber;
use store::{FrameEntry, NewFragment, TrackSet};

use crate::error::Error;
use crate::tags::TagAcc;

/// Limits that apply while a fragment is received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_fragment_bytes: u64,
    pub(crate) max_fragment_duration_ms: i64,
    pub(crate) max_tracks: usize,
    pub(crate) max_tags: usize,
}

/// Converts TimecodeScale ticks to ms, rounding towards −∞ and saturating.
pub(crate) fn ticks_to_ms(ticks: i128, timecode_scale_ns: u64) -> i64 {
    let ns = ticks.saturating_mul(i128::from(timecode_scale_ns));
    let ms = ns.div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// A frame's duration in ticks: `BlockDuration` if present, else the track's `DefaultDuration`
/// converted from ns (rounded to the nearest tick), else 0 (unknown). Saturates at `u32::MAX`.
pub(crate) fn frame_duration(
    block_duration: Option<u64>,
    default_duration_ns: Option<u64>,
    timecode_scale_ns: u64,
) -> u32 {
    let ticks = match (block_duration, default_duration_ns) {
        (Some(d), _) => d,
        (None, Some(ns)) => {
            let scale = timecode_scale_ns.max(1);
            ns.saturating_add(scale / 2) / scale
        }
        (None, None) => 0,
    };
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// The span of a frame table in ticks: `max(pts + duration) − min(pts)`. For each track
/// whose latest frame (by pts) has an unknown duration (0), that frame is taken to last as
/// long as the gap from the track's previous frame (by pts); a track with a single such frame
/// adds nothing.
pub(crate) fn duration_ticks(frames: &[FrameEntry]) -> i64 {
    let Some(min_pts) = frames.iter().map(|f| f.pts).min() else {
        return 0;
    };
    let mut end = frames
        .iter()
        .map(|f| f.pts.saturating_add(i64::from(f.duration)))
        .max()
        .expect("not empty");
    // Per track: the frame with the greatest pts and the next smaller pts.
    let mut tracks: Vec<(u64, &FrameEntry, Option<i64>)> = Vec::new();
    for f in frames {
        match tracks.iter_mut().find(|(t, _, _)| *t == f.track) {
            None => tracks.push((f.track, f, None)),
            Some((_, last, prev)) => {
                if f.pts > last.pts {
                    *prev = Some(last.pts);
                    *last = f;
                } else if f.pts < last.pts && prev.is_none_or(|p| f.pts > p) {
                    *prev = Some(f.pts);
                }
            }
        }
    }
    for (_, last, prev) in tracks {
        if let (0, Some(prev)) = (last.duration, prev) {
            end = end.max(last.pts.saturating_add(last.pts.saturating_sub(prev)));
        }
    }
    end.saturating_sub(min_pts)
}

/// A fragment that has a number and is collecting frames.
#[derive(Debug)]
pub(crate) struct OpenFragment {
    pub(crate) number: FragmentNumber,
    pub(crate) cluster_timecode: u64,
    pub(crate) producer_ms: i64,
    pub(crate) server_ms: i64,
    pub(crate) tracks: Arc<TrackSet>,
    pub(crate) frames: Vec<FrameEntry>,
    pub(crate) media: Vec<u8>,
    pub(crate) tags: TagAcc,
    /// Smallest and largest pts so far, for the early duration check.
    pts_range: Option<(i64, i64)>,
}

impl OpenFragment {
    pub(crate) fn new(
        number: FragmentNumber,
        cluster_timecode: u64,
        producer_ms: i64,
        server_ms: i64,
        tracks: Arc<TrackSet>,
        tags: TagAcc,
    ) -> Self {
        OpenFragment {
            number,
            cluster_timecode,
            producer_ms,
            server_ms,
            tracks,
            frames: Vec::new(),
            media: Vec::new(),
            tags,
            pts_range: None,
        }
    }

    /// Appends a frame from the cluster with Timecode `cluster_timecode`, or says which limit
    /// it breaks (then nothing was appended and the caller drops the fragment).
    pub(crate) fn push(
        &mut self,
        cluster_timecode: u64,
        f: &mkv::Frame,
        limits: &Limits,
    ) -> Result<(), Error> {
        let fragment_timecode = self.cluster_timecode;
        let Some(track) = self.tracks.tracks.iter().find(|t| t.number == f.track) else {
            return Err(Error::UnknownTrack {
                fragment_timecode,
                track: f.track,
                offset: f.block_offset,
            });
        };
        let size = f.payload.len() as u64;
        if self.media.len() as u64 + size > limits.max_fragment_bytes {
            return Err(Error::FragmentTooLarge {
                fragment_timecode,
                max_bytes: limits.max_fragment_bytes,
            });
        }
        let pts = i128::from(cluster_timecode) + i128::from(f.timecode_rel)
            - i128::from(fragment_timecode);
        let scale = self.tracks.timecode_scale_ns;
        // Laced frames share their block's timecode; Matroska spaces them by DefaultDuration.
        let lace_ticks = match (f.lace_count > 1, track.default_duration_ns) {
            (true, Some(ns)) => {
                (u128::from(f.lace_index) * u128::from(ns) + u128::from(scale / 2))
                    / u128::from(scale.max(1))
            }
            _ => 0,
        };
        let pts = pts.saturating_add(i128::try_from(lace_ticks).unwrap_or(i128::MAX));
        let pts = i64::try_from(pts).unwrap_or(if pts < 0 { i64::MIN } else { i64::MAX });
        let (lo, hi) = match self.pts_range {
            None => (pts, pts),
            Some((lo, hi)) => (lo.min(pts), hi.max(pts)),
        };
        let span_ms = ticks_to_ms(i128::from(hi) - i128::from(lo), scale);
        if span_ms > limits.max_fragment_duration_ms {
            return Err(Error::FragmentTooLong {
                fragment_timecode,
                duration_ms: span_ms,
                max_ms: limits.max_fragment_duration_ms,
            });
        }
        self.pts_range = Some((lo, hi));
        let offset = u32::try_from(self.media.len()).expect("max_fragment_bytes ≤ u32::MAX");
        self.frames.push(FrameEntry {
            track: f.track,
            keyframe: f.keyframe,
            pts,
            duration: frame_duration(f.duration, track.default_duration_ns, scale),
            offset,
            size: u32::try_from(size).expect("max_fragment_bytes ≤ u32::MAX"),
        });
        self.media.extend_from_slice(&f.payload);
        Ok(())
    }

    /// The fragment's duration in ms (§7.2, see [`duration_ticks`]).
    pub(crate) fn duration_ms(&self) -> i64 {
        ticks_to_ms(
            i128::from(duration_ticks(&self.frames)),
            self.tracks.timecode_scale_ns,
        )
    }

    /// Checks the rules that need the whole fragment (4011 then 4002) and builds what the
    /// store persists.
    pub(crate) fn finish(self, stream_arn: &str, limits: &Limits) -> Result<NewFragment, Error> {
        let fragment_timecode = self.cluster_timecode;
        if let Some(t) = self
            .tracks
            .tracks
            .iter()
            .find(|t| !self.frames.iter().any(|f| f.track == t.number))
        {
            return Err(Error::MissingTrack {
                fragment_timecode,
                track: t.number,
            });
        }
        let duration_ms = self.duration_ms();
        if duration_ms > limits.max_fragment_duration_ms {
            return Err(Error::FragmentTooLong {
                fragment_timecode,
                duration_ms,
                max_ms: limits.max_fragment_duration_ms,
            });
        }
        Ok(NewFragment {
            stream_arn: stream_arn.to_owned(),
            number: self.number,
            producer_ms: self.producer_ms,
            server_ms: self.server_ms,
            duration_ms,
            cluster_timecode: fragment_timecode,
            tracks: self.tracks,
            frames: self.frames,
            tags: self.tags.pairs,
            media: Bytes::from(self.media),
        })
    }

    pub(crate) fn check_invariants(&self, limits: &Limits) {
        assert!(
            self.media.len() as u64 <= limits.max_fragment_bytes,
            "open fragment holds {} bytes, limit {}",
            self.media.len(),
            limits.max_fragment_bytes
        );
        let mut next = 0u64;
        for f in &self.frames {
            assert_eq!(u64::from(f.offset), next, "frame table not contiguous");
            next += u64::from(f.size);
            assert!(
                self.tracks.tracks.iter().any(|t| t.number == f.track),
                "frame on unknown track {} kept",
                f.track
            );
        }
        assert_eq!(
            next,
            self.media.len() as u64,
            "frame table does not cover media"
        );
        self.tags.check_invariants(limits.max_tags);
        assert!(
            self.tags.violation.is_none(),
            "open fragment with a tag violation"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(track: u64, pts: i64, duration: u32) -> FrameEntry {
        FrameEntry {
            track,
            keyframe: false,
            pts,
            duration,
            offset: 0,
            size: 0,
        }
    }

    #[test]
    fn duration_table() {
        let cases: Vec<(&str, Vec<FrameEntry>, i64)> = vec![
            ("empty", vec![], 0),
            ("one frame, unknown duration", vec![fe(1, 0, 0)], 0),
            ("one frame, known duration", vec![fe(1, 0, 40)], 40),
            (
                "30 fps without durations: last gap repeats",
                (0..30).map(|i| fe(1, i * 33, 0)).collect(),
                29 * 33 + 33,
            ),
            (
                "default durations",
                (0..25).map(|i| fe(1, i * 40, 40)).collect(),
                1000,
            ),
            (
                "B-frames: decode order differs from pts order",
                vec![fe(1, 0, 0), fe(1, 120, 0), fe(1, 40, 0), fe(1, 80, 0)],
                160,
            ),
            (
                "audio before video, both without durations",
                vec![
                    fe(2, 0, 0),
                    fe(2, 20, 0),
                    fe(1, 30, 0),
                    fe(2, 40, 0),
                    fe(1, 70, 0),
                ],
                110,
            ),
            (
                "known duration of an earlier frame reaches further",
                vec![fe(1, 0, 500), fe(1, 40, 0), fe(1, 80, 0)],
                500,
            ),
            (
                "negative pts (a later cluster with a smaller timecode)",
                vec![fe(1, 0, 10), fe(1, -50, 10)],
                60,
            ),
        ];
        for (name, frames, want) in cases {
            assert_eq!(duration_ticks(&frames), want, "{name}");
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(ticks_to_ms(1_700_000_000_021, 1_000_000), 1_700_000_000_021);
        assert_eq!(ticks_to_ms(15, 100_000), 1);
        assert_eq!(ticks_to_ms(-1, 100_000), -1);
        assert_eq!(ticks_to_ms(i128::MAX, u64::MAX), i64::MAX);
        assert_eq!(frame_duration(Some(7), Some(40_000_000), 1_000_000), 7);
        assert_eq!(frame_duration(None, Some(40_000_000), 1_000_000), 40);
        assert_eq!(frame_duration(None, Some(21_333_333), 1_000_000), 21);
        assert_eq!(frame_duration(None, Some(21_500_000), 1_000_000), 22);
        assert_eq!(frame_duration(None, None, 1_000_000), 0);
        assert_eq!(frame_duration(Some(u64::MAX), None, 1), u32::MAX);
    }
}
