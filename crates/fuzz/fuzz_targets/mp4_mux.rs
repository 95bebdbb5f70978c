//! The MP4 muxers on fuzzed inputs: codec private data (avcC, hvcC, AudioSpecificConfig) and
//! frame tables (sizes, times, key flags) as openkvs-export would pass them from the store.
//! `timeline`, `init_segment`, `media_segment` and `ProgressivePlan::build` must return `Ok` or
//! an error, never panic, and what they plan must be self-consistent (header + media lengths,
//! slices covering exactly the requested range).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use openkvs_mp4::{
    ClipChunk, ClipSample, ProgressivePlan, Slice, TimedSample, TrackConfig, TrackRun,
    init_segment, media_segment, timeline,
};

fn track(u: &mut Unstructured<'_>, id: u32) -> Result<Option<TrackConfig>> {
    let cpd_len = u.int_in_range(0..=200)?;
    let cpd = u.bytes(cpd_len)?;
    let cpd = if u.arbitrary()? { Some(cpd) } else { None };
    let (w, h) = (u.arbitrary()?, u.arbitrary()?);
    Ok(match u.int_in_range(0..=3)? {
        0 => TrackConfig::avc(id, cpd, w, h).ok(),
        1 => TrackConfig::hevc(id, cpd, w, h).ok(),
        2 => TrackConfig::aac(id, cpd, u.arbitrary()?).ok(),
        _ => Some(TrackConfig::g711(
            id,
            u.arbitrary()?,
            u.int_in_range(1..=96_000)?,
            u.int_in_range(1..=8)?,
        )),
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut tracks = Vec::new();
    for id in 1..=u.int_in_range(1..=3u32)? {
        if let Some(t) = track(u, id)? {
            tracks.push(t);
        }
    }
    if tracks.is_empty() {
        return Ok(());
    }
    let _ = init_segment(&tracks);
    let mut runs = Vec::new();
    let mut chunks = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        let n = u.int_in_range(0..=64)?;
        let mut input = Vec::new();
        for k in 0..n {
            input.push(TimedSample {
                pts: u.int_in_range(-1_000_000i64..=1_000_000)?,
                size: u.int_in_range(0..=100_000)?,
                sync: k == 0 || u.arbitrary()?,
            });
        }
        let Ok(tl) = timeline(&input, u.arbitrary()?) else {
            continue;
        };
        let tl = if u.arbitrary()? { tl.unshifted() } else { tl };
        let id = i as u32 + 1;
        let _ = t;
        chunks.push(ClipChunk {
            track_id: id,
            fragment_index: 0,
            samples: tl
                .samples
                .iter()
                .scan(0u64, |off, s| {
                    let o = *off;
                    *off += u64::from(s.size);
                    Some(ClipSample {
                        sample: *s,
                        offset: o,
                    })
                })
                .collect(),
        });
        runs.push((id, tl));
    }
    let track_runs: Vec<TrackRun<'_>> = runs
        .iter()
        .map(|(id, tl)| TrackRun {
            track_id: *id,
            base_decode_time: 0,
            samples: &tl.samples,
        })
        .collect();
    if let Ok(plan) = media_segment(u.arbitrary()?, &track_runs) {
        assert_eq!(
            plan.total_len(),
            plan.header().len() as u64 + plan.media_len()
        );
        let _ = plan.payload_order().count();
    }
    if let Ok(plan) = ProgressivePlan::build(&tracks, &chunks) {
        let total = plan.total_len();
        let start = u.int_in_range(0..=total)?;
        let end = u.int_in_range(start..=total)?;
        let covered: u64 = plan
            .slices(start..end)
            .map(|s| match s {
                Slice::Bytes(b) => b.len() as u64,
                Slice::Media { len, .. } => len,
            })
            .sum();
        assert_eq!(
            covered,
            end - start,
            "slices must cover the requested range exactly"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
