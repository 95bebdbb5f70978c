//! Any input: the parser must not panic, must keep its invariants after every call, and must
//! respect its buffering bound. The first two bytes pick the chunk size, so one corpus entry
//! exercises both whole and split input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openkvs_mkv::Parser;

fuzz_target!(|data: &[u8]| {
    let (chunk, data) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])).max(1), rest),
        _ => (1, data),
    };
    // A small limit so ElementTooLarge paths are reached too.
    let mut p = Parser::builder().max_element_size(4096).build();
    for piece in data.chunks(chunk) {
        p.push(piece);
        p.check_invariants();
        loop {
            match p.poll() {
                Ok(Some(_)) => p.check_invariants(),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        p.check_invariants();
    }
    if p.finish().is_err() {
        return;
    }
    p.check_invariants();
    while let Ok(Some(_)) = p.poll() {}
    p.check_invariants();
});
