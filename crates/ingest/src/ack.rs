//! PutMedia ACK events (kvs-api.md §7.4): the JSON objects streamed in the response body.

use std::fmt;

use kvs_core::FragmentNumber;
use serde::Serialize;

/// `EventType` of an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckEvent {
    /// The first frame of a fragment arrived.
    Buffering,
    /// The whole fragment arrived.
    Received,
    /// The fragment is durably stored (sent by the shell once the store returns).
    Persisted,
    /// Something failed; `ErrorId` says what.
    Error,
    /// The session is alive but no data arrives (sent by the shell on a timer).
    Idle,
}

impl AckEvent {
    /// The wire spelling: `BUFFERING`, `RECEIVED`, `PERSISTED`, `ERROR`, `IDLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckEvent::Buffering => "BUFFERING",
            AckEvent::Received => "RECEIVED",
            AckEvent::Persisted => "PERSISTED",
            AckEvent::Error => "ERROR",
            AckEvent::Idle => "IDLE",
        }
    }
}

impl fmt::Display for AckEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ACK event. Build it with the constructors; [`Ack::to_json`] gives the wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// `EventType`.
    pub event: AckEvent,
    /// `FragmentTimecode`: the fragment's opening cluster `Timecode` exactly as the producer
    /// wrote it (TimecodeScale ticks, not converted, not offset).
    pub fragment_timecode: Option<u64>,
    /// `FragmentNumber`.
    pub fragment_number: Option<FragmentNumber>,
    /// `ErrorId` (kvs-api.md §7.4; see [`crate::error_id`]); only on `ERROR`.
    pub error_id: Option<u32>,
}

impl Ack {
    /// `BUFFERING` for a fragment.
    pub fn buffering(fragment_timecode: u64, number: FragmentNumber) -> Self {
        Self::with_number(AckEvent::Buffering, fragment_timecode, number)
    }

    /// `RECEIVED` for a fragment.
    pub fn received(fragment_timecode: u64, number: FragmentNumber) -> Self {
        Self::with_number(AckEvent::Received, fragment_timecode, number)
    }

    /// `PERSISTED` for a fragment the shell stored (or found stored: a replay).
    pub fn persisted(fragment_timecode: u64, number: FragmentNumber) -> Self {
        Self::with_number(AckEvent::Persisted, fragment_timecode, number)
    }

    /// `ERROR` with an ErrorId, for the fragment at `fragment_timecode` if one is affected.
    /// The producer applies an ERROR without a (known) timecode to its oldest unacknowledged
    /// fragment.
    pub fn error(fragment_timecode: Option<u64>, error_id: u32) -> Self {
        Ack {
            event: AckEvent::Error,
            fragment_timecode,
            fragment_number: None,
            error_id: Some(error_id),
        }
    }

    /// `IDLE` (no timecode, no number).
    pub fn idle() -> Self {
        Ack {
            event: AckEvent::Idle,
            fragment_timecode: None,
            fragment_number: None,
            error_id: None,
        }
    }

    fn with_number(event: AckEvent, fragment_timecode: u64, number: FragmentNumber) -> Self {
        Ack {
            event,
            fragment_timecode: Some(fragment_timecode),
            fragment_number: Some(number),
            error_id: None,
        }
    }

    /// The wire form, e.g.
    /// `{"EventType":"PERSISTED","FragmentTimecode":1663277245152,"FragmentNumber":"9134…"}`:
    /// keys in the order `EventType`, `FragmentTimecode`, `FragmentNumber`, `ErrorId`, absent
    /// members omitted, `FragmentNumber` a string, `ErrorId` a number, no spaces, no newline.
    /// Shells write one object per line (`to_json() + "\n"`), each flushed as its own chunk.
    pub fn to_json(&self) -> String {
        let wire = WireAck {
            event_type: self.event.as_str(),
            fragment_timecode: self.fragment_timecode,
            fragment_number: self.fragment_number.map(|n| n.to_string()),
            error_id: self.error_id,
        };
        serde_json::to_string(&wire).expect("a struct of strings and integers always serializes")
    }
}

/// The JSON shape the producer SDK's ACK parser reads (kvs-api.md §7.4). Field order is the
/// key order on the wire.
#[derive(Serialize)]
struct WireAck {
    #[serde(rename = "EventType")]
    event_type: &'static str,
    #[serde(rename = "FragmentTimecode", skip_serializing_if = "Option::is_none")]
    fragment_timecode: Option<u64>,
    #[serde(rename = "FragmentNumber", skip_serializing_if = "Option::is_none")]
    fragment_number: Option<String>,
    #[serde(rename = "ErrorId", skip_serializing_if = "Option::is_none")]
    error_id: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example lines of kvs-api.md §7.4 (and DESIGN.md), byte for byte, with the number
    /// openkvs gives a fragment opened at 1663277245152 ms (AWS's own 47-digit numbers do not
    /// fit our `u128`; only the shape matters to producers).
    #[test]
    fn wire_examples() {
        let n = FragmentNumber::from_time(1_663_277_245_152_000, 0);
        assert_eq!(
            n.to_string(),
            "90000000000000000000000001744072600612503552000"
        );
        let cases = [
            (
                Ack::buffering(1663277245152, n),
                r#"{"EventType":"BUFFERING","FragmentTimecode":1663277245152,"FragmentNumber":"90000000000000000000000001744072600612503552000"}"#,
            ),
            (
                Ack::received(1663277245152, n),
                r#"{"EventType":"RECEIVED","FragmentTimecode":1663277245152,"FragmentNumber":"90000000000000000000000001744072600612503552000"}"#,
            ),
            (
                Ack::persisted(1663277245152, n),
                r#"{"EventType":"PERSISTED","FragmentTimecode":1663277245152,"FragmentNumber":"90000000000000000000000001744072600612503552000"}"#,
            ),
            (Ack::idle(), r#"{"EventType":"IDLE"}"#),
            (
                Ack::error(Some(1663277247152), 4004),
                r#"{"EventType":"ERROR","FragmentTimecode":1663277247152,"ErrorId":4004}"#,
            ),
            (
                Ack::error(None, 4006),
                r#"{"EventType":"ERROR","ErrorId":4006}"#,
            ),
        ];
        let design = include_str!("../DESIGN.md");
        for (ack, want) in cases {
            assert_eq!(ack.to_json(), want, "{ack:?}");
            assert!(
                design.contains(&format!("\n{want}\n")),
                "DESIGN.md lacks {want}"
            );
        }
    }

    /// Decoding the wire form (as a producer would) gives back every member.
    #[test]
    fn json_round_trip() {
        let n = FragmentNumber::from_time(1_795_306_204_485_000, 3);
        for ack in [
            Ack::buffering(0, n),
            Ack::received(u64::MAX, n),
            Ack::persisted(1_795_306_204_485, n),
            Ack::error(Some(7), 4001),
            Ack::error(None, 5001),
            Ack::idle(),
        ] {
            let v: serde_json::Value = serde_json::from_str(&ack.to_json()).unwrap();
            let back = Ack {
                event: match v["EventType"].as_str().unwrap() {
                    "BUFFERING" => AckEvent::Buffering,
                    "RECEIVED" => AckEvent::Received,
                    "PERSISTED" => AckEvent::Persisted,
                    "ERROR" => AckEvent::Error,
                    "IDLE" => AckEvent::Idle,
                    other => panic!("{other}"),
                },
                fragment_timecode: v.get("FragmentTimecode").map(|t| t.as_u64().unwrap()),
                fragment_number: v
                    .get("FragmentNumber")
                    .map(|s| s.as_str().unwrap().parse().unwrap()),
                error_id: v
                    .get("ErrorId")
                    .map(|e| u32::try_from(e.as_u64().unwrap()).unwrap()),
            };
            assert_eq!(back, ack);
            assert!(!ack.to_json().contains([' ', '\n']));
        }
    }
}
