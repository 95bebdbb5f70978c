//! The signaling channel's message decoder on arbitrary text frames, through the public state
//! machine: a master and two viewers connected, then every frame from the input (split at 0xFF
//! bytes, each sent by a connection chosen by its first byte) fed as `Input::Message`. Nothing
//! may panic, the channel's invariants must hold after every step, and outputs drain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openkvs_signaling::{Channel, Config, ConnId, Input, MonoTime, Role};

fuzz_target!(|data: &[u8]| {
    let mut now = MonoTime::from_ms(1_000);
    let Ok(mut ch) = Channel::new(Config::default(), now) else {
        return;
    };
    let roles = [
        Role::Master,
        Role::Viewer {
            client_id: kvs_core::ClientId::parse("viewer-1").expect("valid id"),
        },
        Role::Viewer {
            client_id: kvs_core::ClientId::parse("viewer-2").expect("valid id"),
        },
    ];
    for (i, role) in roles.into_iter().enumerate() {
        if ch
            .handle_input(Input::Connect {
                conn: ConnId(i as u64),
                role,
                now,
            })
            .is_err()
        {
            return;
        }
        while ch.poll_output().is_some() {}
        now = MonoTime::from_ms(now.as_ms() + 400); // connect rate: 3 per second
    }
    for frame in data.split(|&b| b == 0xFF) {
        let Some((&who, text)) = frame.split_first() else {
            continue;
        };
        let conn = ConnId(u64::from(who % 4)); // 3 is not connected
        let text = String::from_utf8_lossy(text).into_owned();
        let _ = ch.handle_input(Input::Message { conn, text, now });
        ch.check_invariants();
        while ch.poll_output().is_some() {}
        now = MonoTime::from_ms(now.as_ms() + u64::from(who));
    }
    let _ = ch.handle_input(Input::Timeout {
        now: MonoTime::from_ms(now.as_ms() + 3_600_000),
    });
    ch.check_invariants();
    while ch.poll_output().is_some() {}
});
