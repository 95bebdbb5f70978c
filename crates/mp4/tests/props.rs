//! Property tests of the plans' invariants.

use openkvs_mp4::{
    ClipChunk, ClipSample, ProgressivePlan, Sample, Slice, TrackConfig, TrackRun, media_segment,
    to_movie_time,
};
use proptest::prelude::*;

const AVCC: &[u8] = &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 1, 0x68];
const ASC: &[u8] = &[0x11, 0x90];

fn configs() -> Vec<TrackConfig> {
    vec![
        TrackConfig::avc(1, Some(AVCC), 320, 240).unwrap(),
        TrackConfig::aac(2, Some(ASC), None).unwrap(),
    ]
}

fn sample() -> impl Strategy<Value = Sample> {
    (0u32..5000, 0u32..40, any::<bool>(), 0i32..20000).prop_map(
        |(duration, size, sync, cts_offset)| Sample {
            duration,
            size,
            sync,
            cts_offset,
        },
    )
}

/// Chunks: (track index, fragment index, samples).
fn chunks() -> impl Strategy<Value = Vec<(usize, u32, Vec<Sample>)>> {
    prop::collection::vec(
        (0usize..2, 0u32..4, prop::collection::vec(sample(), 0..12)),
        0..8,
    )
}

/// Finds the bodies of all boxes at `path` (e.g. `["moov", "trak", "mdia", "mdhd"]`).
fn find<'a>(data: &'a [u8], path: &[&str], out: &mut Vec<&'a [u8]>) {
    let mut p = 0;
    while p + 8 <= data.len() {
        let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
        let kind = &data[p + 4..p + 8];
        let end = (p + size).min(data.len());
        if kind == path[0].as_bytes() {
            let body = &data[p + 8..end];
            if path.len() == 1 {
                out.push(body);
            } else {
                find(body, &path[1..], out);
            }
        }
        if size < 8 {
            break;
        }
        p = end;
    }
}

fn all<'a>(data: &'a [u8], path: &[&str]) -> Vec<&'a [u8]> {
    let mut v = Vec::new();
    find(data, path, &mut v);
    v
}

fn u32_at(b: &[u8], i: usize) -> u64 {
    u64::from(u32::from_be_bytes(b[i..i + 4].try_into().unwrap()))
}

/// Media of each fragment: distinct bytes, so a misplaced slice shows.
fn media() -> Vec<Vec<u8>> {
    (0..4)
        .map(|f| (0..2000u32).map(|i| ((i * 7 + f) % 251) as u8).collect())
        .collect()
}

struct Built {
    plan: ProgressivePlan,
    file: Vec<u8>,
    per_track: Vec<Vec<Sample>>,
}

fn build(input: &[(usize, u32, Vec<Sample>)], delays: &[u64]) -> Built {
    let cfgs = configs();
    let media = media();
    let mut next_offset = [0u64; 4];
    let mut per_track = vec![Vec::new(), Vec::new()];
    let chunks: Vec<ClipChunk> = input
        .iter()
        .map(|(t, f, samples)| ClipChunk {
            track_id: cfgs[*t].id,
            fragment_index: *f,
            samples: samples
                .iter()
                .map(|s| {
                    per_track[*t].push(*s);
                    let offset = next_offset[*f as usize];
                    // Leave a gap now and then so spans split.
                    next_offset[*f as usize] += u64::from(s.size) + u64::from(s.size % 3 == 0);
                    ClipSample { sample: *s, offset }
                })
                .collect(),
        })
        .collect();
    let plan = ProgressivePlan::build_with_delays(&cfgs, delays, &chunks).unwrap();
    let mut file = Vec::new();
    for s in plan.slices(0..plan.total_len()) {
        match s {
            Slice::Bytes(b) => file.extend_from_slice(b),
            Slice::Media {
                fragment_index,
                offset,
                len,
            } => file.extend_from_slice(
                &media[fragment_index as usize][offset as usize..(offset + len) as usize],
            ),
        }
    }
    Built {
        plan,
        file,
        per_track,
    }
}

proptest! {
    /// mdhd = Σ sample durations; tkhd = the edit list (or mdhd in ms); mvhd = the longest tkhd.
    #[test]
    fn durations_sum(input in chunks(), delays in prop::collection::vec(0u64..100_000, 0..3)) {
        let b = build(&input, &delays);
        let cfgs = configs();
        let mdhd = all(&b.file, &["moov", "trak", "mdia", "mdhd"]);
        let tkhd = all(&b.file, &["moov", "trak", "tkhd"]);
        let mvhd = all(&b.file, &["moov", "mvhd"]);
        prop_assert_eq!(mdhd.len(), 2);
        let mut longest = 0;
        for (i, samples) in b.per_track.iter().enumerate() {
            let ts = cfgs[i].timescale;
            let sum: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            prop_assert_eq!(u32_at(mdhd[i], 16), sum, "mdhd of track {}", i);
            let mut dts = 0i64;
            let mut first = i64::MAX;
            for s in samples {
                first = first.min(dts + i64::from(s.cts_offset));
                dts += i64::from(s.duration);
            }
            let media_time = if samples.is_empty() { 0 } else { first };
            let delay = delays.get(i).copied().unwrap_or(0);
            let want = if delay == 0 && media_time == 0 {
                to_movie_time(sum, ts)
            } else {
                to_movie_time(delay, ts) * u64::from(delay > 0)
                    + to_movie_time(sum.saturating_sub(media_time as u64), ts)
            };
            prop_assert_eq!(u32_at(tkhd[i], 20), want, "tkhd of track {}", i);
            longest = longest.max(want);
        }
        prop_assert_eq!(u32_at(mvhd[0], 16), longest);
        prop_assert_eq!(b.plan.sample_count(), b.per_track.iter().map(Vec::len).sum::<usize>());
    }

    /// Any range's slices, concatenated, are exactly those bytes of the whole file.
    #[test]
    fn slices_cover_ranges(input in chunks(), a in 0u64..6000, len in 0u64..3000) {
        let b = build(&input, &[]);
        let total = b.plan.total_len();
        prop_assert_eq!(b.file.len() as u64, total);
        let (start, end) = (a.min(total), (a + len).min(total));
        let media = media();
        let mut got = Vec::new();
        for s in b.plan.slices(a..a + len) {
            prop_assert!(!s.is_empty());
            match s {
                Slice::Bytes(x) => got.extend_from_slice(x),
                Slice::Media { fragment_index, offset, len } => got.extend_from_slice(
                    &media[fragment_index as usize][offset as usize..(offset + len) as usize],
                ),
            }
        }
        prop_assert_eq!(&got[..], &b.file[start as usize..end as usize]);
    }

    /// A media segment is refused unless every run begins with a sync sample; when accepted,
    /// every trun's first sample carries the sync flags and data offsets point past the header.
    #[test]
    fn segments_begin_with_sync(runs in prop::collection::vec(prop::collection::vec(sample(), 0..10), 1..3)) {
        let trs: Vec<TrackRun<'_>> = runs.iter().enumerate().map(|(i, s)| TrackRun {
            track_id: i as u32 + 1,
            base_decode_time: 1000,
            samples: s,
        }).collect();
        let ok = runs.iter().all(|r| r.first().is_none_or(|s| s.sync));
        match media_segment(7, &trs) {
            Err(_) => prop_assert!(!ok),
            Ok(plan) => {
                prop_assert!(ok);
                let truns = all(plan.header(), &["moof", "traf", "trun"]);
                let mut offset = plan.header().len() as u64;
                for (t, r) in truns.iter().zip(&runs) {
                    prop_assert_eq!(u32_at(t, 8), offset);
                    if !r.is_empty() {
                        prop_assert_eq!(u32_at(t, 12 + 8), 0x0200_0000);
                    }
                    offset += r.iter().map(|s| u64::from(s.size)).sum::<u64>();
                }
                prop_assert_eq!(offset, plan.total_len());
            }
        }
    }
}
