//! Timers: idle timeout, maximum connection duration with GO_AWAY and grace, the deadline
//! contract, and RECONNECT_ICE_SERVER.

use std::time::Duration;

use openkvs_signaling::{CloseReason, Config, ConnId, Input, MonoTime, Output, Rate};

use crate::sim::*;

const GO_AWAY: &str = r#"{"messageType":"GO_AWAY"}"#;

/// No inbound frame for 10 minutes closes the connection; text frames and pings both count as
/// activity. Relayed traffic *to* a connection does not.
#[test]
fn idle_timeout() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let quiet = sim.connect_viewer("quiet").unwrap();
    let pinger = sim.connect_viewer("pinger").unwrap();
    let talker = sim.connect_viewer("talker").unwrap();
    let t0 = sim.now;
    for _ in 0..19 {
        sim.advance(secs(30));
        sim.activity(pinger);
        sim.activity(master);
        sim.send(talker, js("ICE_CANDIDATE", &payload("c"), None, None));
        assert!(sim.is_open(quiet), "at {}", sim.now);
    }
    sim.take(master);
    sim.advance_to(t0 + (secs(600) - ms(1)));
    assert!(sim.is_open(quiet));
    sim.progress();
    assert_eq!(sim.now, t0 + secs(600), "closed exactly on the deadline");
    assert_eq!(sim.closed.get(&quiet), Some(&CloseReason::IdleTimeout));
    assert!(sim.is_open(pinger) && sim.is_open(talker) && sim.is_open(master));
    assert!(
        sim.take(quiet).is_empty(),
        "an idle close sends nothing first"
    );
}

/// The idle timeout is configurable.
#[test]
fn idle_timeout_is_configurable() {
    let mut sim = Sim::new(Config {
        idle_timeout: secs(5),
        ..Config::default()
    });
    let v = sim.connect_viewer("v").unwrap();
    sim.advance(secs(5));
    assert_eq!(sim.closed.get(&v), Some(&CloseReason::IdleTimeout));
}

/// At the maximum connection duration (1 h) a connection gets GO_AWAY and is closed one minute
/// later (the grace period), while it can still send and receive.
#[test]
fn go_away_then_grace_close() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let t0 = sim.now;
    // Keep everyone busy so the idle timeout never fires.
    let keep_alive = |sim: &mut Sim, until: MonoTime| {
        while sim.now < until {
            let step = Duration::from_millis((until.as_ms() - sim.now.as_ms()).min(60_000));
            sim.advance(step);
            for conn in sim.open_conns() {
                sim.activity(conn);
            }
        }
    };
    keep_alive(&mut sim, t0 + secs(30 * 60));
    let v = sim.connect_viewer("v").unwrap();
    keep_alive(&mut sim, t0 + (secs(3600) - ms(1)));
    assert!(sim.take(master).is_empty());
    sim.advance(ms(1));
    assert_eq!(sim.take(master), [GO_AWAY]);
    assert!(sim.is_open(master));
    // Still relays during the grace period.
    sim.send(v, js("SDP_OFFER", &payload("o"), None, None));
    assert_eq!(sim.take(master).len(), 1);
    keep_alive(&mut sim, t0 + (secs(3660) - ms(1)));
    assert!(sim.is_open(master));
    sim.advance(ms(1));
    assert_eq!(sim.closed.get(&master), Some(&CloseReason::MaxDuration));
    assert_eq!(CloseReason::MaxDuration.ws_close_code(), 1001);
    // The viewer, connected 30 min later, is on its own schedule.
    assert!(sim.is_open(v));
    assert!(sim.take(v).is_empty());
    keep_alive(&mut sim, t0 + secs(5400));
    assert_eq!(sim.take(v), [GO_AWAY]);
    keep_alive(&mut sim, t0 + secs(5460));
    assert_eq!(sim.closed.get(&v), Some(&CloseReason::MaxDuration));
}

/// A late wake-up still sends GO_AWAY first and grants the full grace period from then.
#[test]
fn late_timeout_keeps_the_grace_period() {
    let mut sim = Sim::new(Config {
        max_connection_duration: secs(100),
        go_away_grace: secs(10),
        idle_timeout: secs(1000),
        ..Config::default()
    });
    let v = sim.connect_viewer("v").unwrap();
    let t0 = sim.now;
    sim.now = t0 + secs(500); // the shell slept through both deadlines
    sim.progress();
    assert_eq!(sim.take(v), [GO_AWAY]);
    assert!(sim.is_open(v));
    assert_eq!(sim.deadline, t0 + secs(510));
    sim.progress();
    assert_eq!(sim.closed.get(&v), Some(&CloseReason::MaxDuration));
}

/// RECONNECT_ICE_SERVER goes to every open connection, once.
#[test]
fn reconnect_ice_server_broadcast() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let vs: Vec<ConnId> = (0..4)
        .map(|i| sim.connect_viewer(&format!("v{i}")).unwrap())
        .collect();
    sim.disconnect(vs[2]);
    sim.input(Input::IceServerRotated { now: sim.now }).unwrap();
    for conn in [master, vs[0], vs[1], vs[3]] {
        assert_eq!(
            sim.take(conn),
            [r#"{"messageType":"RECONNECT_ICE_SERVER"}"#],
            "{conn}"
        );
    }
    sim.assert_quiet();
}

/// Every drain ends with exactly one Timeout, in the future: the earliest of idle, age and
/// message expiry; with nothing scheduled, some finite time later.
#[test]
fn deadline_contract() {
    let mut sim = Sim::new(Config {
        message_ttl: secs(30),
        ..Config::default()
    });
    let t0 = sim.now;
    assert_eq!(sim.deadline, t0 + secs(600), "nothing scheduled");
    let v = sim.connect_viewer("v").unwrap();
    assert_eq!(sim.deadline, t0 + secs(600), "idle timeout of v");
    sim.advance(secs(5));
    sim.send(v, js("SDP_OFFER", &payload("o"), None, None));
    assert_eq!(sim.deadline, t0 + secs(35), "expiry of the retained offer");
    sim.progress();
    assert_eq!(sim.deadline, t0 + secs(605), "idle timeout again");

    // Polling again without input yields nothing.
    assert!(sim.ch.poll_output().is_none());
    let ch = &mut sim.ch;
    ch.handle_input(Input::Timeout { now: t0 + secs(36) })
        .unwrap();
    assert!(matches!(ch.poll_output(), Some(Output::Timeout(_))));
    assert!(ch.poll_output().is_none());
}

/// Time never runs backwards: an input stamped earlier than the last is handled at the later
/// time, and nothing expires early or late because of it.
#[test]
fn time_going_backwards_is_clamped() {
    let mut sim = Sim::new(Config {
        message_ttl: secs(10),
        viewer_connect_rate: Rate::per_second(100),
        ..Config::default()
    });
    let v = sim.connect_viewer("v").unwrap();
    let t0 = sim.now;
    sim.send(v, js("SDP_OFFER", &payload("o"), None, None));
    sim.advance(secs(9));
    sim.input(Input::Timeout { now: sim.now }).unwrap();
    sim.input(Input::Timeout { now: t0 }).unwrap();
    assert_eq!(sim.ch.now(), t0 + secs(9));
    assert_eq!(sim.ch.pending_count(), 1);
    sim.input(Input::Timeout { now: t0 + secs(10) }).unwrap();
    assert_eq!(sim.ch.pending_count(), 0);
}
