//! Samples and how their decode times follow from presentation times.
//!
//! Producers (Matroska) give each frame a presentation time only, in decode order. MP4 wants a
//! decode time per sample (as durations: `stts`/`trun` sample_duration) plus a composition
//! offset (`ctts`/`trun` sample_composition_time_offset) with `pts = dts + cts_offset`.
//!
//! [`timeline`] derives them the way ffmpeg's Matroska demuxer + MP4 muxer do: the i-th decode
//! time is the i-th smallest presentation time, moved back by one common `shift ≥ 0`, the least
//! that makes every offset non-negative:
//!
//! ```text
//! sorted = pts sorted ascending          (the decode slots: same spacing as display)
//! shift  = max(0, max_i(sorted[i] - pts[i]))
//! dts[i] = sorted[i] - shift             (non-decreasing, so durations are >= 0)
//! cts[i] = pts[i] - dts[i] >= 0          (version 0 ctts suffices)
//! ```
//!
//! Without B-frames `pts` is already sorted, so `shift == 0` and every offset is 0. With one
//! level of B-frames (`I P B B …`, pts `0 3 1 2`) the shift is one frame: dts `-1 0 1 2`,
//! offsets `1 3 0 0`. A progressive file then carries an edit list with `media_time = shift`
//! so playback starts at the first presented frame.
//!
//! fMP4 segments use [`Timeline::unshifted`] instead: `dts[i] = sorted[i]` exactly, offsets may
//! be negative (`trun` version 1, as CMAF does). Then each segment's `tfdt` is its earliest
//! presentation time, independent of the shift of its neighbours, so segments made
//! separately line up end to start without overlap.

use crate::error::{Error, Result};

/// One sample (an access unit: a video frame, an AAC frame, a block of G.711 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Decode duration in the track's timescale (`dts[i+1] - dts[i]`).
    pub duration: u32,
    /// Payload size in bytes.
    pub size: u32,
    /// Sync sample (an IDR/IRAP frame; every audio sample).
    pub sync: bool,
    /// `pts - dts` in the track's timescale.
    pub cts_offset: i32,
}

/// Input of [`timeline`]: one sample in decode order, with its presentation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedSample {
    /// Presentation time in the track's timescale (any origin).
    pub pts: i64,
    /// Payload size in bytes.
    pub size: u32,
    /// Sync sample.
    pub sync: bool,
}

/// Output of [`timeline`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    /// The samples, in decode order.
    pub samples: Vec<Sample>,
    /// Decode time of the first sample (same origin as the input pts).
    pub first_dts: i64,
    /// The common shift (see the module docs); `min(pts) - first_dts`, the edit list's
    /// `media_time` once the track's decode times are rebased to start at 0.
    pub shift: i64,
}

impl Timeline {
    /// Moves every decode time forward by `shift` (offsets down by it), so decode times are
    /// the sorted presentation times and `shift` becomes 0. Durations do not change.
    pub fn unshifted(mut self) -> Self {
        let shift = i32::try_from(self.shift).expect("offsets fit i32, so the shift does");
        for s in &mut self.samples {
            s.cts_offset -= shift;
        }
        self.first_dts += self.shift;
        self.shift = 0;
        self
    }
}

/// Derives decode times and offsets from presentation times in decode order (module docs).
/// The last sample's duration cannot be derived, so the caller gives it.
pub fn timeline(input: &[TimedSample], last_duration: u32) -> Result<Timeline> {
    let mut sorted: Vec<i64> = input.iter().map(|s| s.pts).collect();
    sorted.sort_unstable();
    let shift = input
        .iter()
        .zip(&sorted)
        .map(|(s, &slot)| slot - s.pts)
        .max()
        .unwrap_or(0)
        .max(0);
    let too_large = |what| Error::TooLarge { track_id: 0, what };
    let mut samples = Vec::with_capacity(input.len());
    for (i, s) in input.iter().enumerate() {
        let dts = sorted[i] - shift;
        let duration = match sorted.get(i + 1) {
            Some(next) => u32::try_from(next - shift - dts)
                .map_err(|_| too_large("sample duration above 2^32 ticks"))?,
            None => last_duration,
        };
        let cts_offset = i32::try_from(s.pts - dts)
            .map_err(|_| too_large("composition offset above 2^31 ticks"))?;
        samples.push(Sample {
            duration,
            size: s.size,
            sync: s.sync,
            cts_offset,
        });
    }
    Ok(Timeline {
        samples,
        first_dts: sorted.first().map_or(0, |s| s - shift),
        shift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(p: &[i64]) -> Vec<TimedSample> {
        p.iter()
            .enumerate()
            .map(|(i, &pts)| TimedSample {
                pts,
                size: 1,
                sync: i == 0,
            })
            .collect()
    }

    #[test]
    fn table() {
        // (pts in decode order, want dts durations, want offsets, want first_dts, want shift)
        type Case<'a> = (&'a [i64], &'a [u32], &'a [i32], i64, i64);
        let cases: &[Case<'_>] = &[
            (&[], &[], &[], 0, 0),
            (&[0, 1, 2, 3], &[1, 1, 1, 9], &[0, 0, 0, 0], 0, 0),
            // I P B B: the example in the module docs.
            (&[0, 3, 1, 2], &[1, 1, 1, 9], &[1, 3, 0, 0], -1, 1),
            // B-pyramid I P B b b: pts 0 4 2 1 3, shift 2.
            (&[0, 4, 2, 1, 3], &[1, 1, 1, 1, 9], &[2, 5, 2, 0, 1], -2, 2),
            // Starting at a large origin, 40 ms frames at 90 kHz.
            (
                &[900_000, 910_800, 903_600, 907_200],
                &[3600, 3600, 3600, 9],
                &[3600, 10800, 0, 0],
                896_400,
                3600,
            ),
        ];
        for &(p, durations, offsets, first_dts, shift) in cases {
            let t = timeline(&pts(p), 9).unwrap();
            let got_d: Vec<u32> = t.samples.iter().map(|s| s.duration).collect();
            let got_o: Vec<i32> = t.samples.iter().map(|s| s.cts_offset).collect();
            assert_eq!(
                (got_d.as_slice(), got_o.as_slice(), t.first_dts, t.shift),
                (durations, offsets, first_dts, shift),
                "{p:?}"
            );
            let u = t.clone().unshifted();
            assert_eq!(u.first_dts, p.iter().copied().min().unwrap_or(0));
            for (a, b) in t.samples.iter().zip(&u.samples) {
                assert_eq!(
                    (a.duration, i64::from(a.cts_offset) - shift),
                    (b.duration, i64::from(b.cts_offset))
                );
            }
        }
    }
}
