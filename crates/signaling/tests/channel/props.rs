//! Property test: random input sequences never panic, invariants hold after every step (the
//! harness checks them), and every `Send` targets a connection that is open at that moment (the
//! harness asserts it while draining).

use std::time::Duration;

use openkvs_signaling::{Config, ConnId, Input, Rate};
use proptest::prelude::*;

use crate::sim::*;

#[derive(Debug, Clone)]
enum Op {
    ConnectMaster,
    ConnectViewer(u8),
    /// A message from the `n`th open connection (modulo), or from a stale id.
    Message {
        from: u8,
        frame: Frame,
    },
    Activity(u8),
    Disconnect(u8),
    /// Advance virtual time by this many ms (possibly past several deadlines at once).
    Sleep(u32),
    /// Fire the next deadline exactly.
    Progress,
    /// An input stamped in the past.
    Backwards(u16),
    IceServerRotated,
    Shutdown,
}

#[derive(Debug, Clone)]
enum Frame {
    Valid {
        action: u8,
        recipient: Option<u8>,
        correlation: bool,
        pascal: bool,
        size: u16,
    },
    Garbage(String),
}

const ACTIONS: [&str; 4] = ["SDP_OFFER", "SDP_ANSWER", "ICE_CANDIDATE", "BOGUS"];

fn client_id(n: u8) -> String {
    format!("viewer-{}", n % 14) // more ids than the viewer limit
}

fn render(frame: &Frame) -> String {
    match frame {
        Frame::Garbage(s) => s.clone(),
        Frame::Valid {
            action,
            recipient,
            correlation,
            pascal,
            size,
        } => {
            let action = ACTIONS[usize::from(*action) % ACTIONS.len()];
            // Sizes around the payload limit; base64 of zeros is all 'A'.
            let payload = "A".repeat(usize::from(*size) / 4 * 4);
            let payload = if payload.is_empty() {
                "e30=".to_owned()
            } else {
                payload
            };
            let recipient = recipient.map(client_id);
            let corr = correlation.then_some("corr-1");
            if *pascal {
                c_sdk(action, &payload, recipient.as_deref(), corr)
            } else {
                js(action, &payload, recipient.as_deref(), corr)
            }
        }
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => (any::<u8>(), proptest::option::of(any::<u8>()), any::<bool>(), any::<bool>(), prop_oneof![0u16..64, 10_200u16..10_300])
            .prop_map(|(action, recipient, correlation, pascal, size)| Frame::Valid { action, recipient, correlation, pascal, size }),
        1 => "\\PC{0,40}".prop_map(Frame::Garbage),
        1 => proptest::sample::select(vec![
            r#"{"correlationId":"x"}"#, r#"{"Action":"SDP_OFFER","action":"SDP_OFFER"}"#, "[]", "null", "{",
            r#"{"action":"SDP_OFFER","messagePayload":"@@@","correlationId":"x y"}"#,
        ]).prop_map(|s| Frame::Garbage(s.to_owned())),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::ConnectMaster),
        4 => any::<u8>().prop_map(Op::ConnectViewer),
        10 => (any::<u8>(), frame()).prop_map(|(from, frame)| Op::Message { from, frame }),
        1 => any::<u8>().prop_map(Op::Activity),
        2 => any::<u8>().prop_map(Op::Disconnect),
        3 => prop_oneof![0u32..2_000, 0u32..200_000, 3_000_000u32..4_000_000].prop_map(Op::Sleep),
        2 => Just(Op::Progress),
        1 => any::<u16>().prop_map(Op::Backwards),
        1 => Just(Op::IceServerRotated),
        // Rare, since it ends the interesting part of a run.
        1 => proptest::bool::weighted(0.1).prop_map(|b| if b { Op::Shutdown } else { Op::Progress }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (5u64..=120, 0usize..12, 1u32..6, 1usize..20, 1u64..100).prop_map(
        |(ttl, max_viewers, connect_rate, per_sender, grace_s)| Config {
            message_ttl: Duration::from_secs(ttl),
            max_viewers,
            viewer_connect_rate: Rate::per_second(connect_rate),
            max_pending_per_sender: per_sender,
            max_pending: per_sender * 3,
            go_away_grace: Duration::from_secs(grace_s),
            ..Config::default()
        },
    )
}

/// Picks the `n`th open connection, or occasionally an id the channel never saw or already closed.
fn pick(sim: &Sim, n: u8) -> ConnId {
    let open = sim.open_conns();
    if open.is_empty() || n % 16 == 15 {
        ConnId(u64::from(n) % 8 + 1)
    } else {
        open[usize::from(n) % open.len()]
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_keep_invariants(config in config(), ops in proptest::collection::vec(op(), 1..120)) {
        let mut sim = Sim::new(config);
        for op in ops {
            match op {
                Op::ConnectMaster => { let _ = sim.connect_master(); }
                Op::ConnectViewer(n) => { let _ = sim.connect_viewer(&client_id(n)); }
                Op::Message { from, frame } => {
                    let conn = pick(&sim, from);
                    sim.send(conn, render(&frame));
                }
                Op::Activity(n) => { let conn = pick(&sim, n); sim.activity(conn); }
                Op::Disconnect(n) => { let conn = pick(&sim, n); sim.disconnect(conn); }
                Op::Sleep(ms) => sim.advance(Duration::from_millis(u64::from(ms))),
                Op::Progress => sim.progress(),
                Op::Backwards(ms) => {
                    let past = openkvs_signaling::MonoTime::from_ms(sim.now.as_ms().saturating_sub(u64::from(ms)));
                    sim.input(Input::Timeout { now: past }).unwrap();
                }
                Op::IceServerRotated => sim.input(Input::IceServerRotated { now: sim.now }).unwrap(),
                Op::Shutdown => sim.input(Input::Shutdown).unwrap(),
            }
            // Every open connection is known to the channel (checked in the harness); the
            // channel's master, if any, is open in the shell.
            if let Some(m) = sim.ch.master() {
                prop_assert!(sim.is_open(m));
            }
        }
    }
}
