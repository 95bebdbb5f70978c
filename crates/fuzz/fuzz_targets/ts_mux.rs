//! The MPEG-TS muxer on fuzzed codec private data (avcC, hvcC, AudioSpecificConfig) and
//! samples: `StreamConfig` and `write_sample` return errors or whole 188-byte packets, never
//! panic.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use openkvs_ts::{Muxer, Sample, StreamConfig};

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut streams = Vec::new();
    for track in 1..=u.int_in_range(1..=3u64)? {
        let len = u.int_in_range(0..=200)?;
        let cpd = u.bytes(len)?;
        let s = match u.int_in_range(0..=2)? {
            0 => StreamConfig::h264(track, cpd),
            1 => StreamConfig::h265(track, cpd),
            _ => StreamConfig::aac(track, cpd),
        };
        if let Ok(s) = s {
            streams.push(s);
        }
    }
    let Ok(mut mux) = Muxer::new(&streams) else {
        return Ok(());
    };
    let mut out = Vec::new();
    mux.segment_start(&mut out);
    for _ in 0..u.int_in_range(0..=64)? {
        if u.arbitrary()? {
            mux.segment_start(&mut out);
        }
        let len = u.int_in_range(0..=4096)?;
        let data = u.bytes(len)?;
        let sample = Sample {
            track: u.int_in_range(0..=4)?,
            pts_90k: u.arbitrary()?,
            dts_90k: u.arbitrary()?,
            sync: u.arbitrary()?,
            data,
        };
        let _ = mux.write_sample(&sample, &mut out);
        assert_eq!(out.len() % 188, 0, "whole packets only");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
