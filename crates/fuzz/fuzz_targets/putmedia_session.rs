//! The PutMedia session on arbitrary bodies, pushed in pieces whose sizes come from the input:
//! it must never panic, its invariants must hold after every step, and the session must end
//! exactly once (`Output::End` last).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openkvs_ingest::{Output, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let step = usize::from(split).max(1);
    let mut s = Session::new(SessionConfig::new("arn:aws:kinesisvideo:us-east-1:123456789012:stream/fuzz/1"));
    let mut ends = 0;
    let mut now = 1_700_000_000_000;
    for chunk in body.chunks(step) {
        s.push(chunk, now);
        now += 1;
        s.check_invariants();
        while let Some(o) = s.poll() {
            if matches!(o, Output::End { .. }) {
                ends += 1;
            }
        }
    }
    s.finish(now);
    s.check_invariants();
    while let Some(o) = s.poll() {
        if matches!(o, Output::End { .. }) {
            ends += 1;
        }
    }
    assert_eq!(ends, 1, "a session ends exactly once");
});
