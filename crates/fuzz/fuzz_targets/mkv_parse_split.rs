//! The same input split at every point (two pieces), and byte by byte, must give the same
//! events and the same error as the whole input (STYLE.md §4, after retina's
//! `roundtrip_rtsp_message`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openkvs_mkv::{Event, Parser};

/// Events and the error as text: `Event` holds f64s (Duration, SamplingFrequency), and a NaN
/// from fuzzed bytes is not `==` to itself, while its Debug text is stable.
fn run(data: &[u8], splits: &[usize]) -> String {
    let mut p = Parser::builder().max_element_size(4096).build();
    let mut events: Vec<Event> = Vec::new();
    let mut start = 0;
    let mut err = None;
    'outer: for &end in splits.iter().chain(std::iter::once(&data.len())) {
        p.push(&data[start..end]);
        start = end;
        loop {
            match p.poll() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'outer;
                }
            }
        }
        p.check_invariants();
    }
    if err.is_none() {
        match p.finish() {
            Ok(()) => {
                while let Ok(Some(ev)) = p.poll() {
                    events.push(ev);
                }
            }
            Err(e) => {
                while let Ok(Some(ev)) = p.poll() {
                    events.push(ev);
                }
                err = Some(e);
            }
        }
    }
    format!("{events:?} {err:?}")
}

fuzz_target!(|data: &[u8]| {
    // Quadratic in the input length; 2 KiB keeps an iteration fast.
    let data = &data[..data.len().min(2048)];
    let whole = run(data, &[]);
    for at in 0..=data.len() {
        assert_eq!(whole, run(data, &[at]), "split at {at}");
    }
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(whole, run(data, &bytewise), "byte by byte");
});
