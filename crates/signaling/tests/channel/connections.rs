//! Connect rules (§13.4): one master, viewer limit, replacement, connect rate, shutdown.

use kvs_core::ErrorKind;
use openkvs_signaling::{CloseReason, Config, ConnId, Error, Event, Input, Rate};

use crate::sim::*;

/// A new master replaces the old one, which is closed; messages go to the new one.
#[test]
fn master_replacement() {
    let mut sim = Sim::unthrottled();
    let old = sim.connect_master().unwrap();
    let v = sim.connect_viewer("v").unwrap();
    let new = sim.connect_master().unwrap();
    assert!(!sim.is_open(old));
    assert_eq!(sim.closed.get(&old), Some(&CloseReason::Replaced));
    assert_eq!(sim.ch.master(), Some(new));
    let offer = payload("o");
    sim.send(v, js("SDP_OFFER", &offer, None, None));
    assert_eq!(sim.take(new), [relayed("SDP_OFFER", &offer, Some("v"))]);
    sim.assert_quiet();
    // A frame from the old master that raced with its close is ignored.
    sim.send(old, js("SDP_ANSWER", &payload("late"), Some("v"), None));
    sim.assert_quiet();
    assert!(matches!(sim.take_logs().as_slice(), [Event::UnknownConn { conn }] if *conn == old));
}

/// A viewer reconnecting with the same client id replaces its old connection, even when the
/// channel is at its viewer limit; answers go to the new connection.
#[test]
fn viewer_replacement_same_client_id() {
    let mut sim = Sim::new(Config {
        max_viewers: 2,
        viewer_connect_rate: Rate::per_second(1000),
        ..Config::default()
    });
    let master = sim.connect_master().unwrap();
    let v1 = sim.connect_viewer("v").unwrap();
    let _w = sim.connect_viewer("w").unwrap();
    let v2 = sim.connect_viewer("v").unwrap();
    assert_eq!(sim.closed.get(&v1), Some(&CloseReason::Replaced));
    assert_eq!(sim.ch.viewer_count(), 2);
    assert_eq!(
        sim.ch.viewer(&kvs_core::ClientId::parse("v").unwrap()),
        Some(v2)
    );
    let answer = payload("a");
    sim.send(master, js("SDP_ANSWER", &answer, Some("v"), None));
    assert_eq!(sim.take(v2), [relayed("SDP_ANSWER", &answer, None)]);
    sim.assert_quiet();
    // The old connection's disconnect arriving late does not disturb the new one.
    sim.disconnect(v1);
    assert_eq!(
        sim.ch.viewer(&kvs_core::ClientId::parse("v").unwrap()),
        Some(v2)
    );
}

/// Ten viewers fit, the eleventh is refused with a LimitExceeded (ClientLimitExceededException)
/// error and changes nothing; once one leaves, another may join.
#[test]
fn eleventh_viewer_refused() {
    let mut sim = Sim::unthrottled();
    let viewers: Vec<ConnId> = (0..10)
        .map(|i| sim.connect_viewer(&format!("v{i}")).unwrap())
        .collect();
    let err = sim.connect_viewer("v10").unwrap_err();
    assert!(matches!(err, Error::ViewerLimit { max: 10 }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    assert_eq!(sim.ch.viewer_count(), 10);
    // The master is not a viewer.
    sim.connect_master().unwrap();
    sim.disconnect(viewers[3]);
    sim.connect_viewer("v10").unwrap();
    assert_eq!(sim.ch.viewer_count(), 10);
}

/// The viewer limit is configurable.
#[test]
fn viewer_limit_is_configurable() {
    for max in [0, 1, 25] {
        let mut sim = Sim::new(Config {
            max_viewers: max,
            viewer_connect_rate: Rate::per_second(100),
            ..Config::default()
        });
        for i in 0..max {
            sim.connect_viewer(&format!("v{i}")).unwrap();
        }
        assert!(
            matches!(
                sim.connect_viewer("one-more"),
                Err(Error::ViewerLimit { .. })
            ),
            "max {max}"
        );
    }
}

/// 3 connects per second per role; the fourth within the second is refused; tokens come back at
/// one per 333 ms; master and viewer connects are counted separately.
#[test]
fn connect_rate_limit() {
    let mut sim = Sim::new(Config::default());
    for i in 0..3 {
        sim.connect_viewer(&format!("v{i}")).unwrap();
    }
    let err = sim.connect_viewer("v3").unwrap_err();
    assert!(
        matches!(err, Error::ConnectRate { role: "viewer", .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::LimitExceeded);
    // Replacing oneself is still a connect.
    assert!(sim.connect_viewer("v0").is_err());
    // The master has its own bucket.
    for _ in 0..3 {
        sim.connect_master().unwrap();
    }
    assert!(matches!(
        sim.connect_master(),
        Err(Error::ConnectRate { role: "master", .. })
    ));
    sim.advance(ms(333));
    assert!(sim.connect_viewer("v3").is_err());
    sim.advance(ms(1));
    sim.connect_viewer("v3").unwrap();
    assert!(sim.connect_viewer("v4").is_err());
    sim.advance(secs(10));
    for i in 4..7 {
        sim.connect_viewer(&format!("v{i}")).unwrap();
    }
    assert!(sim.connect_viewer("v7").is_err());
}

/// A refused connect (rate or limit) has no other effect, and connection ids must be unique.
#[test]
fn refused_connects_change_nothing() {
    let mut sim = Sim::new(Config {
        max_viewers: 1,
        ..Config::default()
    });
    let v = sim.connect_viewer("a").unwrap();
    assert!(sim.connect_viewer("b").is_err());
    assert_eq!(sim.ch.viewer_count(), 1);
    let err = sim
        .input(Input::Connect {
            conn: v,
            role: viewer("a"),
            now: sim.now,
        })
        .unwrap_err();
    assert!(matches!(err, Error::ConnIdInUse { .. }));
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(sim.is_open(v));
}

/// Shutdown: GO_AWAY then close to everyone, retained messages dropped, later connects refused
/// as Unavailable.
#[test]
fn shutdown() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let v = sim.connect_viewer("v").unwrap();
    sim.send(
        master,
        js("SDP_ANSWER", &payload("a"), Some("offline"), None),
    );
    assert_eq!(sim.ch.pending_count(), 1);
    sim.input(Input::Shutdown).unwrap();
    for conn in [master, v] {
        assert_eq!(sim.take(conn), [r#"{"messageType":"GO_AWAY"}"#]);
        assert_eq!(sim.closed.get(&conn), Some(&CloseReason::Shutdown));
    }
    assert!(sim.ch.is_shut_down() && sim.ch.is_vacant());
    let err = sim.connect_master().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    sim.input(Input::Shutdown).unwrap();
    sim.assert_quiet();
}

/// Inputs for connections the channel does not know are logged and ignored.
#[test]
fn unknown_connections_are_ignored() {
    let mut sim = Sim::unthrottled();
    let ghost = ConnId(999);
    sim.input(Input::Message {
        conn: ghost,
        text: "{}".to_owned(),
        now: sim.now,
    })
    .unwrap();
    sim.input(Input::Activity {
        conn: ghost,
        now: sim.now,
    })
    .unwrap();
    sim.input(Input::Disconnect {
        conn: ghost,
        now: sim.now,
    })
    .unwrap();
    assert_eq!(
        sim.take_logs()
            .iter()
            .filter(|e| matches!(e, Event::UnknownConn { .. }))
            .count(),
        3
    );
    assert!(sim.ch.is_vacant());
}

/// A channel is vacant (safe for the shell to drop) only once nothing is connected, nothing is
/// retained and the connect-rate buckets are full again, so dropping and re-creating channels
/// cannot be used to dodge the connect rate. The deadline reports the refill.
#[test]
fn vacancy() {
    let mut sim = Sim::new(Config::default());
    assert!(sim.ch.is_vacant());
    let t0 = sim.now;
    let v = sim.connect_viewer("v").unwrap();
    assert!(!sim.ch.is_vacant());
    sim.advance(ms(100));
    sim.disconnect(v);
    assert!(!sim.ch.is_vacant(), "viewer bucket still refilling");
    assert_eq!(sim.deadline, t0 + ms(334), "one token at 3/s");
    sim.progress();
    assert!(sim.ch.is_vacant());
    assert_eq!(sim.deadline, sim.now + secs(600), "nothing scheduled");

    // Retained messages keep it alive until they expire.
    let v = sim.connect_viewer("v").unwrap();
    sim.send(v, js("SDP_OFFER", &payload("o"), None, None));
    sim.disconnect(v);
    sim.advance(secs(59));
    assert!(!sim.ch.is_vacant());
    sim.advance(secs(1));
    assert!(sim.ch.is_vacant());
}
