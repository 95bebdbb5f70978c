//! Routing and message validation (§13.5, §13.6).

use openkvs_signaling::{Error, Event};

use crate::sim::*;

/// A master and N viewers: every viewer's offer reaches the master with its `senderClientId`;
/// the master's answer reaches exactly the named viewer, without a sender.
#[test]
fn master_and_viewers_route_both_ways() {
    for n in [1, 3, 10] {
        let mut sim = Sim::unthrottled();
        let master = sim.connect_master().unwrap();
        let viewers: Vec<_> = (0..n)
            .map(|i| sim.connect_viewer(&format!("viewer-{i}")).unwrap())
            .collect();
        for (i, &v) in viewers.iter().enumerate() {
            let offer = payload(&format!("offer-{i}"));
            sim.send(v, js("SDP_OFFER", &offer, None, None));
            assert_eq!(
                sim.take(master),
                [relayed("SDP_OFFER", &offer, Some(&format!("viewer-{i}")))],
                "n={n} i={i}"
            );
        }
        for (i, &v) in viewers.iter().enumerate().rev() {
            // The master may send 5 answers per second (§15.3).
            sim.advance(ms(200));
            let answer = payload(&format!("answer-{i}"));
            sim.send(
                master,
                js("SDP_ANSWER", &answer, Some(&format!("viewer-{i}")), None),
            );
            assert_eq!(
                sim.take(v),
                [relayed("SDP_ANSWER", &answer, None)],
                "n={n} i={i}"
            );
            sim.assert_quiet();
        }
        // Trickle ICE both ways.
        let cand = payload("candidate");
        sim.send(viewers[0], js("ICE_CANDIDATE", &cand, None, None));
        sim.send(master, js("ICE_CANDIDATE", &cand, Some("viewer-0"), None));
        assert_eq!(
            sim.take(master),
            [relayed("ICE_CANDIDATE", &cand, Some("viewer-0"))]
        );
        assert_eq!(
            sim.take(viewers[0]),
            [relayed("ICE_CANDIDATE", &cand, None)]
        );
        sim.assert_quiet();
    }
}

/// Member names are case-insensitive: JS camelCase, C SDK PascalCase (with `IceServerList` and
/// an empty `RecipientClientId`), and shouting all work, from either side.
#[test]
fn camel_and_pascal_case_input() {
    type Fmt = fn(&str, &str, Option<&str>, Option<&str>) -> String;
    fn upper(action: &str, payload: &str, recipient: Option<&str>, corr: Option<&str>) -> String {
        js(action, payload, recipient, corr)
            .replace("messagePayload", "MESSAGEPAYLOAD")
            .replace("recipientClientId", "RECIPIENTCLIENTID")
            .replace("correlationId", "CORRELATIONID")
            .replace("\"action\"", "\"Action\"")
    }
    let formats: [(&str, Fmt); 3] = [("js", js), ("c sdk", c_sdk), ("upper", upper)];
    for (name, fmt) in formats {
        let mut sim = Sim::unthrottled();
        let master = sim.connect_master().unwrap();
        let v = sim.connect_viewer("cam-viewer").unwrap();
        let offer = payload("o");
        sim.send(v, fmt("SDP_OFFER", &offer, None, Some("corr-1")));
        assert_eq!(
            sim.take(master),
            [relayed("SDP_OFFER", &offer, Some("cam-viewer"))],
            "{name}"
        );
        let answer = payload("a");
        sim.send(
            master,
            fmt("SDP_ANSWER", &answer, Some("cam-viewer"), Some("corr-2")),
        );
        assert_eq!(
            sim.take(v),
            [relayed("SDP_ANSWER", &answer, None)],
            "{name}"
        );
        // The correlation id is found in every casing: a refusal is answered.
        sim.send(master, fmt("SDP_ANSWER", &answer, None, Some("corr-3")));
        let got: Vec<_> = sim
            .take(master)
            .iter()
            .filter_map(|t| status_of(t))
            .collect();
        assert_eq!(
            got,
            [("corr-3".to_owned(), "InvalidArgumentException".to_owned())],
            "{name}"
        );
        sim.assert_quiet();
    }
}

/// A viewer's `recipientClientId` is ignored: viewer messages always go to the master, never to
/// another viewer.
#[test]
fn viewer_recipient_is_ignored() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let a = sim.connect_viewer("a").unwrap();
    let _b = sim.connect_viewer("b").unwrap();
    let p = payload("x");
    for recipient in ["b", "a", "MASTER", "not a valid id!"] {
        sim.send(a, js("ICE_CANDIDATE", &p, Some(recipient), None));
        assert_eq!(
            sim.take(master),
            [relayed("ICE_CANDIDATE", &p, Some("a"))],
            "{recipient}"
        );
        sim.assert_quiet();
    }
}

/// Refusals: a `STATUS_RESPONSE` goes back to the sender only when the message carried a
/// `correlationId`; either way nothing is relayed and a log event explains why.
#[test]
fn refusals_and_status_responses() {
    let p = payload("p");
    let big = "A".repeat(10 * 1024 + 4);
    // (name, from master?, frame without correlation id, frame with "c1", errorType)
    let cases: Vec<(&str, bool, String, String, &str)> = vec![
        (
            "master without recipient",
            true,
            js("SDP_ANSWER", &p, None, None),
            js("SDP_ANSWER", &p, None, Some("c1")),
            "InvalidArgumentException",
        ),
        (
            "master, c sdk empty recipient",
            true,
            c_sdk("SDP_ANSWER", &p, None, None),
            c_sdk("SDP_ANSWER", &p, None, Some("c1")),
            "InvalidArgumentException",
        ),
        (
            "master, invalid recipient",
            true,
            js("SDP_ANSWER", &p, Some("AWS_reserved"), None),
            js("SDP_ANSWER", &p, Some("AWS_reserved"), Some("c1")),
            "InvalidArgumentException",
        ),
        (
            "unknown action",
            false,
            js("GO_AWAY", &p, None, None),
            js("GO_AWAY", &p, None, Some("c1")),
            "InvalidArgumentException",
        ),
        (
            "missing action",
            false,
            format!(r#"{{"messagePayload":"{p}"}}"#),
            format!(r#"{{"messagePayload":"{p}","correlationId":"c1"}}"#),
            "InvalidArgumentException",
        ),
        (
            "missing payload",
            false,
            r#"{"action":"SDP_OFFER"}"#.to_owned(),
            r#"{"action":"SDP_OFFER","correlationId":"c1"}"#.to_owned(),
            "InvalidArgumentException",
        ),
        (
            "payload not base64",
            false,
            js("SDP_OFFER", "%%%", None, None),
            js("SDP_OFFER", "%%%", None, Some("c1")),
            "InvalidArgumentException",
        ),
        (
            "payload too big",
            false,
            js("SDP_OFFER", &big, None, None),
            js("SDP_OFFER", &big, None, Some("c1")),
            "InvalidArgumentException",
        ),
    ];
    for (name, from_master, silent, answered, error_type) in cases {
        let mut sim = Sim::unthrottled();
        let master = sim.connect_master().unwrap();
        let viewer = sim.connect_viewer("v").unwrap();
        let sender = if from_master { master } else { viewer };

        sim.send(sender, silent);
        sim.assert_quiet();
        let logs = sim.take_logs();
        assert!(
            matches!(logs.as_slice(), [Event::MessageRefused { conn, status_sent: false, .. }] if *conn == sender),
            "{name}: {logs:?}"
        );

        sim.send(sender, answered);
        let got: Vec<_> = sim
            .take(sender)
            .iter()
            .map(|t| status_of(t).expect("a status response"))
            .collect();
        assert_eq!(got, [("c1".to_owned(), error_type.to_owned())], "{name}");
        sim.assert_quiet();
        let logs = sim.take_logs();
        assert!(
            matches!(
                logs.as_slice(),
                [Event::MessageRefused {
                    status_sent: true,
                    ..
                }]
            ),
            "{name}: {logs:?}"
        );
    }
}

/// Payload limit: 10 240 base64 characters pass, one more does not.
#[test]
fn payload_size_limit() {
    let mut sim = Sim::unthrottled();
    let master = sim.connect_master().unwrap();
    let v = sim.connect_viewer("v").unwrap();
    let at_limit = "A".repeat(10 * 1024);
    sim.send(v, js("SDP_OFFER", &at_limit, None, Some("ok")));
    assert_eq!(
        sim.take(master),
        [relayed("SDP_OFFER", &at_limit, Some("v"))]
    );
    let over = "A".repeat(10 * 1024 + 4);
    sim.send(v, js("SDP_OFFER", &over, None, Some("too-big")));
    let status = sim.take(v);
    assert_eq!(
        status_of(&status[0]),
        Some(("too-big".to_owned(), "InvalidArgumentException".to_owned()))
    );
    assert!(
        status[0].contains("longer than the maximum of 10240 bytes"),
        "{}",
        status[0]
    );
    sim.assert_quiet();
    let logs = sim.take_logs();
    assert!(matches!(
        logs.as_slice(),
        [Event::MessageRefused {
            error: Error::PayloadTooLarge {
                len: 10244,
                max: 10240
            },
            ..
        }]
    ));
}

/// Garbage never panics and never reaches anyone; a status response only when a correlation
/// id could be read.
#[test]
fn malformed_frames() {
    // (frame, answered?)
    let cases: Vec<(String, bool)> = vec![
        (String::new(), false),
        ("{".to_owned(), false),
        ("null".to_owned(), false),
        ("[]".to_owned(), false),
        ("42".to_owned(), false),
        ("{}".to_owned(), false),
        ("\u{0}\u{ffff}".to_owned(), false),
        ("[".repeat(100_000), false),
        (r#"{"correlationId":{"a":1}}"#.to_owned(), false),
        (r#"{"correlationId":"x"}"#.to_owned(), true),
        (r#"{"correlationId":"x","action":null}"#.to_owned(), true),
        (
            r#"{"correlationId":"x","action":["SDP_OFFER"]}"#.to_owned(),
            true,
        ),
        (
            r#"{"correlationId":"x","action":"SDP_OFFER","messagePayload":{}}"#.to_owned(),
            true,
        ),
        (
            r#"{"correlationId":"x","action":"SDP_OFFER","action":"ICE"}"#.to_owned(),
            true,
        ),
        (
            r#"{"correlationId":"bad id","action":"SDP_OFFER","messagePayload":"e30="}"#.to_owned(),
            true,
        ),
    ];
    for (frame, answered) in cases {
        let mut sim = Sim::unthrottled();
        let master = sim.connect_master().unwrap();
        let v = sim.connect_viewer("v").unwrap();
        for sender in [master, v] {
            sim.send(sender, frame.clone());
            let got = sim.take(sender);
            assert_eq!(got.len(), usize::from(answered), "{frame:.80}: {got:?}");
            if let Some(text) = got.first() {
                assert!(status_of(text).is_some(), "{text}");
            }
            sim.assert_quiet();
        }
    }
}
