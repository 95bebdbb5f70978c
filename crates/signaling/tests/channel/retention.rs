//! Messages to offline recipients: TTL delivery, newest offer wins, per-sender order (§13.5
//! "Delivery semantics").

use std::time::Duration;

use openkvs_signaling::{Config, DropReason, Error, Event, Rate};

use crate::sim::*;

fn with_ttl(ttl_secs: u64) -> Sim {
    Sim::new(Config {
        message_ttl: Duration::from_secs(ttl_secs),
        master_connect_rate: Rate::per_second(1000),
        viewer_connect_rate: Rate::per_second(1000),
        ..Config::default()
    })
}

/// A message to an offline master is delivered when it connects within the TTL and dropped once
/// the TTL has passed: deliverable while `now < received + ttl`.
#[test]
fn offline_master_ttl() {
    // (ttl s, connect after, delivered?)
    let cases: &[(u64, Duration, bool)] = &[
        (60, Duration::ZERO, true),
        (60, secs(30), true),
        (60, secs(60) - ms(1), true),
        (60, secs(60), false),
        (60, secs(61), false),
        (5, secs(5) - ms(1), true),
        (5, secs(5), false),
        (120, secs(119), true),
        (120, secs(120), false),
    ];
    for &(ttl, wait, delivered) in cases {
        let mut sim = with_ttl(ttl);
        let v = sim.connect_viewer("v").unwrap();
        let offer = payload("o");
        sim.send(v, js("SDP_OFFER", &offer, None, Some("c")));
        sim.assert_quiet(); // retained, not refused
        assert_eq!(sim.ch.pending_count(), 1);
        sim.advance(wait);
        let master = sim.connect_master().unwrap();
        let want = if delivered {
            vec![relayed("SDP_OFFER", &offer, Some("v"))]
        } else {
            vec![]
        };
        assert_eq!(sim.take(master), want, "ttl {ttl}s, wait {wait:?}");
        assert_eq!(sim.ch.pending_count(), 0);
        let expired = sim.take_logs().iter().any(|e| {
            matches!(
                e,
                Event::MessageDropped {
                    reason: DropReason::Expired,
                    ..
                }
            )
        });
        assert_eq!(expired, !delivered, "ttl {ttl}s, wait {wait:?}");
    }
}

/// The expiry is a timer of its own: the channel wakes up for it and drops the message even if
/// nobody connects.
#[test]
fn expiry_fires_on_its_deadline() {
    let mut sim = with_ttl(10);
    let v = sim.connect_viewer("v").unwrap();
    let t0 = sim.now;
    sim.send(v, js("SDP_OFFER", &payload("o"), None, None));
    assert_eq!(sim.deadline, t0 + secs(10));
    sim.progress();
    assert_eq!(sim.now, t0 + secs(10));
    assert_eq!(sim.ch.pending_count(), 0);
}

/// The master's messages to an offline (or not yet connected) viewer wait for that client id.
#[test]
fn offline_viewer_receives_on_connect() {
    let mut sim = with_ttl(60);
    let master = sim.connect_master().unwrap();
    let v = sim.connect_viewer("v").unwrap();
    sim.disconnect(v);
    let answer = payload("answer");
    let cand = payload("cand");
    sim.send(master, js("SDP_ANSWER", &answer, Some("v"), None));
    sim.send(master, js("ICE_CANDIDATE", &cand, Some("v"), None));
    sim.send(
        master,
        js("ICE_CANDIDATE", &cand, Some("never-connects"), None),
    );
    sim.assert_quiet();
    sim.advance(secs(20));
    let other = sim.connect_viewer("other").unwrap();
    assert!(sim.take(other).is_empty());
    let v2 = sim.connect_viewer("v").unwrap();
    assert_eq!(
        sim.take(v2),
        [
            relayed("SDP_ANSWER", &answer, None),
            relayed("ICE_CANDIDATE", &cand, None)
        ]
    );
    assert_eq!(sim.ch.pending_count(), 1);
    sim.advance(secs(40));
    assert_eq!(sim.ch.pending_count(), 0);
}

/// A newer offer from the same sender replaces its older undelivered offer, together with the
/// ICE candidates of the superseded session; other senders' messages are untouched and
/// candidates after the new offer keep their order.
#[test]
fn newest_offer_wins() {
    let mut sim = with_ttl(60);
    let a = sim.connect_viewer("a").unwrap();
    let b = sim.connect_viewer("b").unwrap();
    let (o1, o2, o3) = (
        payload("a-offer-1"),
        payload("a-offer-2"),
        payload("a-offer-3"),
    );
    let c = |n: u32| payload(&format!("cand-{n}"));
    sim.send(a, js("SDP_OFFER", &o1, None, None));
    sim.send(a, js("ICE_CANDIDATE", &c(1), None, None));
    sim.send(b, js("SDP_OFFER", &payload("b-offer"), None, None));
    sim.send(a, js("ICE_CANDIDATE", &c(2), None, None));
    sim.advance(secs(1));
    sim.send(a, js("SDP_OFFER", &o2, None, None));
    sim.send(a, js("ICE_CANDIDATE", &c(3), None, None));
    sim.send(b, js("ICE_CANDIDATE", &c(9), None, None));
    sim.send(a, js("ICE_CANDIDATE", &c(4), None, None));
    let superseded = sim
        .take_logs()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::MessageDropped {
                    reason: DropReason::Superseded,
                    ..
                }
            )
        })
        .count();
    assert_eq!(superseded, 3, "offer 1 and candidates 1, 2");
    let master = sim.connect_master().unwrap();
    assert_eq!(
        sim.take(master),
        [
            relayed("SDP_OFFER", &payload("b-offer"), Some("b")),
            relayed("SDP_OFFER", &o2, Some("a")),
            relayed("ICE_CANDIDATE", &c(3), Some("a")),
            relayed("ICE_CANDIDATE", &c(9), Some("b")),
            relayed("ICE_CANDIDATE", &c(4), Some("a")),
        ]
    );
    // Once delivered, an offer is never taken back: a third offer is simply relayed.
    sim.send(a, js("SDP_OFFER", &o3, None, None));
    assert_eq!(sim.take(master), [relayed("SDP_OFFER", &o3, Some("a"))]);
}

/// Retained messages come out in arrival order, so each sender's order is preserved, across
/// senders, actions and a reconnect of the sender.
#[test]
fn per_sender_order() {
    let mut sim = with_ttl(60);
    let mut sent = Vec::new();
    let mut conns = [
        sim.connect_viewer("a").unwrap(),
        sim.connect_viewer("b").unwrap(),
    ];
    for round in 0..6 {
        for (i, id) in ["a", "b"].iter().enumerate() {
            let p = payload(&format!("{id}-{round}"));
            let action = if round == 0 {
                "SDP_OFFER"
            } else {
                "ICE_CANDIDATE"
            };
            sim.send(conns[i], js(action, &p, None, None));
            sent.push(relayed(action, &p, Some(id)));
        }
        sim.advance(ms(150));
        if round == 2 {
            // "a" reconnects mid-stream; its earlier messages stay queued.
            sim.disconnect(conns[0]);
            conns[0] = sim.connect_viewer("a").unwrap();
        }
    }
    let master = sim.connect_master().unwrap();
    assert_eq!(sim.take(master), sent);
}

/// Retention is bounded per sender and per channel; over the bound the message is refused
/// (`ClientLimitExceededException` when it has a correlation id), and a re-offer still fits
/// because it replaces what it supersedes.
#[test]
fn pending_limits() {
    let mut sim = Sim::new(Config {
        max_pending: 5,
        max_pending_per_sender: 3,
        viewer_connect_rate: Rate::per_second(1000),
        ice_candidate_rate: Rate::per_second(1000),
        ..Config::default()
    });
    let a = sim.connect_viewer("a").unwrap();
    let b = sim.connect_viewer("b").unwrap();
    for i in 0..3 {
        sim.send(
            a,
            js("ICE_CANDIDATE", &payload(&i.to_string()), None, Some("c")),
        );
    }
    sim.assert_quiet();
    sim.send(a, js("ICE_CANDIDATE", &payload("3"), None, Some("c")));
    let got: Vec<_> = sim.take(a).iter().filter_map(|t| status_of(t)).collect();
    assert_eq!(
        got,
        [("c".to_owned(), "ClientLimitExceededException".to_owned())]
    );
    // A new offer supersedes a's three candidates, so it fits.
    sim.send(a, js("SDP_OFFER", &payload("offer"), None, Some("c")));
    sim.assert_quiet();
    assert_eq!(sim.ch.pending_count(), 1);
    for i in 0..3 {
        sim.send(b, js("ICE_CANDIDATE", &payload(&i.to_string()), None, None));
    }
    sim.send(a, js("ICE_CANDIDATE", &payload("x"), None, None));
    assert_eq!(sim.ch.pending_count(), 5);
    sim.send(a, js("ICE_CANDIDATE", &payload("y"), None, Some("full")));
    let refused = sim.take_logs().into_iter().any(|e| {
        matches!(
            e,
            Event::MessageRefused {
                error: Error::PendingLimit { max: 5 },
                status_sent: true,
                ..
            }
        )
    });
    assert!(refused);
    assert_eq!(
        status_of(&sim.take(a)[0]).unwrap().1,
        "ClientLimitExceededException"
    );
}
