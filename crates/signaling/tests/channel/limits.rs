//! Per-connection message rates (§15.3): SDP offer 5/s, SDP answer 5/s, ICE candidate 20/s.

use openkvs_signaling::{Action, Error, Event};

use crate::sim::*;

/// Within one instant, `limit` messages of an action pass and the next is refused; the bucket
/// refills at `limit` per second; each action and each connection has its own bucket.
#[test]
fn message_rate_limits() {
    // (action, from master?, limit per second)
    let cases = [
        ("SDP_OFFER", false, 5u64),
        ("SDP_ANSWER", true, 5),
        ("ICE_CANDIDATE", false, 20),
        ("ICE_CANDIDATE", true, 20),
    ];
    for (action, from_master, limit) in cases {
        let mut sim = Sim::unthrottled();
        let master = sim.connect_master().unwrap();
        let v = sim.connect_viewer("v").unwrap();
        let other = sim.connect_viewer("other").unwrap();
        let (sender, recipient) = if from_master {
            (master, v)
        } else {
            (v, master)
        };
        let to = from_master.then_some("v");
        for i in 0..limit {
            sim.send(sender, js(action, &payload(&i.to_string()), to, Some("c")));
        }
        assert_eq!(sim.take(recipient).len() as u64, limit, "{action}");
        sim.send(sender, js(action, &payload("over"), to, Some("over")));
        sim.send(sender, js(action, &payload("over, silent"), to, None));
        assert!(sim.take(recipient).is_empty(), "{action}");
        let statuses: Vec<_> = sim
            .take(sender)
            .iter()
            .filter_map(|t| status_of(t))
            .collect();
        assert_eq!(
            statuses,
            [("over".to_owned(), "ClientLimitExceededException".to_owned())],
            "{action}"
        );
        let refusals: Vec<_> = sim
            .take_logs()
            .into_iter()
            .filter_map(|e| match e {
                Event::MessageRefused {
                    error: Error::MessageRate { action, rate },
                    status_sent,
                    ..
                } => Some((action, rate.per_second, status_sent)),
                _ => None,
            })
            .collect();
        let want_action = Action::from_wire(action).unwrap();
        assert_eq!(
            refusals,
            [
                (want_action, limit as u32, true),
                (want_action, limit as u32, false)
            ],
            "{action}"
        );

        // Another action on the same connection, and the same action on another connection,
        // are unaffected.
        let (other_action, other_to) = if from_master {
            ("ICE_CANDIDATE", Some("v"))
        } else {
            ("SDP_ANSWER", None)
        };
        let other_action = if action == "ICE_CANDIDATE" && !from_master {
            "SDP_OFFER"
        } else {
            other_action
        };
        let other_action = if action == "ICE_CANDIDATE" && from_master {
            "SDP_ANSWER"
        } else {
            other_action
        };
        sim.send(
            sender,
            js(other_action, &payload("other action"), other_to, None),
        );
        assert_eq!(sim.take(recipient).len(), 1, "{action} then {other_action}");
        if !from_master {
            sim.send(other, js(action, &payload("other conn"), None, None));
            assert_eq!(sim.take(master).len(), 1, "{action} from another viewer");
        }

        // One token every 1000/limit ms.
        let step = 1000 / limit;
        sim.advance(ms(step - 1));
        sim.send(sender, js(action, &payload("early"), to, None));
        assert!(
            sim.take(recipient).is_empty(),
            "{action} after {} ms",
            step - 1
        );
        sim.advance(ms(1));
        sim.send(sender, js(action, &payload("refilled"), to, None));
        assert_eq!(sim.take(recipient).len(), 1, "{action} after {step} ms");
    }
}
