//! PutMedia ACK events out of the response body (kvs-api.md §7.4), parsed the way the producer
//! SDK's incremental parser reads them: a stream of JSON objects, newlines optional, keys
//! case-sensitive, numbers quoted or not, unknown keys ignored.

use std::fmt;

use serde_json::Value;

/// `EventType` of an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckKind {
    Buffering,
    Received,
    Persisted,
    Error,
    Idle,
    /// An event type this client does not know; shown, otherwise ignored.
    Other(String),
}

impl AckKind {
    fn parse(s: &str) -> AckKind {
        match s {
            "BUFFERING" => AckKind::Buffering,
            "RECEIVED" => AckKind::Received,
            "PERSISTED" => AckKind::Persisted,
            "ERROR" => AckKind::Error,
            "IDLE" => AckKind::Idle,
            other => AckKind::Other(other.to_owned()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            AckKind::Buffering => "BUFFERING",
            AckKind::Received => "RECEIVED",
            AckKind::Persisted => "PERSISTED",
            AckKind::Error => "ERROR",
            AckKind::Idle => "IDLE",
            AckKind::Other(s) => s,
        }
    }
}

/// One ACK event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub(crate) kind: AckKind,
    /// The fragment's first cluster `Timecode`, exactly as this client sent it.
    pub(crate) fragment_timecode: Option<u64>,
    pub(crate) fragment_number: Option<String>,
    pub(crate) error_id: Option<u32>,
}

/// A number that may arrive as a JSON number or a quoted decimal string (the producer SDK
/// accepts both).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Ack {
    /// Parses one JSON object. `EventType` is required; so is `ErrorId` on `ERROR`.
    pub(crate) fn from_json(text: &[u8]) -> Result<Ack, String> {
        let v: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON ({e})"))?;
        let Value::Object(map) = v else {
            return Err("not a JSON object".to_owned());
        };
        let Some(Value::String(kind)) = map.get("EventType") else {
            return Err("no EventType".to_owned());
        };
        let kind = AckKind::parse(kind);
        let fragment_timecode = map.get("FragmentTimecode").and_then(number);
        let fragment_number = map.get("FragmentNumber").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let error_id = map
            .get("ErrorId")
            .and_then(number)
            .and_then(|n| u32::try_from(n).ok());
        if kind == AckKind::Error && error_id.is_none() {
            return Err("ERROR without ErrorId".to_owned());
        }
        Ok(Ack {
            kind,
            fragment_timecode,
            fragment_number,
            error_id,
        })
    }

    /// The wire form with KVS's key order (`EventType`, `FragmentTimecode`, `FragmentNumber`,
    /// `ErrorId`); absent members omitted.
    pub(crate) fn to_json(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string always serializes");
        let mut out = format!("{{\"EventType\":{}", quote(self.kind.as_str()));
        if let Some(tc) = self.fragment_timecode {
            out.push_str(&format!(",\"FragmentTimecode\":{tc}"));
        }
        if let Some(n) = &self.fragment_number {
            out.push_str(&format!(",\"FragmentNumber\":{}", quote(n)));
        }
        if let Some(id) = self.error_id {
            out.push_str(&format!(",\"ErrorId\":{id}"));
        }
        out.push('}');
        out
    }
}

impl fmt::Display for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<9}", self.kind.as_str())?;
        if let Some(tc) = self.fragment_timecode {
            write!(f, " timecode {tc}")?;
        }
        if let Some(n) = &self.fragment_number {
            write!(f, " fragment {n}")?;
        }
        if let Some(id) = self.error_id {
            write!(f, " ErrorId {id}: {}", error_id_meaning(id))?;
        }
        Ok(())
    }
}

/// What an `ErrorId` means (kvs-api.md §7.4).
pub(crate) fn error_id_meaning(id: u32) -> &'static str {
    match id {
        4000 => "error reading the data stream",
        4001 => "fragment larger than the limit (50 MB)",
        4002 => "fragment longer than the limit (10 s)",
        4003 => "connection open longer than allowed",
        4004 => "fragment timecode lower than the previous one",
        4005 => "more than one track (deprecated)",
        4006 => "not valid MKV, or an unsupported MKV structure",
        4007 => "invalid producer timestamp",
        4008 => "the stream no longer exists or is not active",
        4009 => "fragment metadata limit reached",
        4010 => "a block's track number is not in Tracks",
        4011 => "a track has no frame in the fragment",
        4012 => "more tracks than allowed (3)",
        4500..=4506 => "KMS key problem",
        4507 => "the stream was deleted",
        5000 => "internal server error",
        5001 => "the server failed to persist the fragment",
        _ => "unknown error",
    }
}

/// ErrorIds after which resending the same data cannot succeed: the stream is gone, its key is
/// unusable, or the input itself is not acceptable MKV.
pub(crate) fn error_id_is_fatal(id: u32) -> bool {
    matches!(id, 4006 | 4008 | 4500..=4507)
}

/// Longest ACK object accepted. The producer SDK allows 1024 characters; this is generous.
const MAX_OBJECT_BYTES: usize = 64 << 10;

/// Splits a byte stream into top-level JSON objects, whatever the chunking, with or without
/// separators between them.
#[derive(Debug, Default)]
pub(crate) struct AckScanner {
    buf: Vec<u8>,
    /// Scan position in `buf`.
    pos: usize,
    /// Start of the object being scanned.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl AckScanner {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete object, parsed; `None` when more bytes are needed. Bytes outside
    /// objects (newlines, commas, junk) are skipped.
    pub(crate) fn next_ack(&mut self) -> Option<Result<Ack, String>> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            let Some(start) = self.start else {
                if b == b'{' {
                    self.start = Some(self.pos - 1);
                    self.depth = 1;
                }
                continue;
            };
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        let parsed = Ack::from_json(&self.buf[start..self.pos]).map_err(|e| {
                            format!(
                                "{e}: {}",
                                String::from_utf8_lossy(&self.buf[start..self.pos])
                            )
                        });
                        self.buf.drain(..self.pos);
                        self.pos = 0;
                        self.start = None;
                        return Some(parsed);
                    }
                }
                _ => {}
            }
        }
        match self.start {
            None => {
                self.buf.clear();
                self.pos = 0;
            }
            Some(start) if self.pos - start > MAX_OBJECT_BYTES => {
                *self = AckScanner::default();
                return Some(Err(format!(
                    "an ACK object is longer than {MAX_OBJECT_BYTES} bytes"
                )));
            }
            Some(_) => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(kind: AckKind, tc: Option<u64>, n: Option<&str>, e: Option<u32>) -> Ack {
        Ack {
            kind,
            fragment_timecode: tc,
            fragment_number: n.map(str::to_owned),
            error_id: e,
        }
    }

    /// The lines of kvs-api.md §7.4 and the variants the producer SDK's parser accepts.
    #[test]
    fn parses_ack_objects() {
        let n = "91343852333181432511524306419788296366724229586";
        let cases: Vec<(&str, Result<Ack, &str>)> = vec![
            (
                r#"{"EventType":"BUFFERING","FragmentTimecode":1663277245152,"FragmentNumber":"91343852333181432511524306419788296366724229586"}"#,
                Ok(ack(AckKind::Buffering, Some(1663277245152), Some(n), None)),
            ),
            (
                r#"{"EventType":"PERSISTED","FragmentTimecode":1663277245152,"FragmentNumber":"91343852333181432511524306419788296366724229586"}"#,
                Ok(ack(AckKind::Persisted, Some(1663277245152), Some(n), None)),
            ),
            (
                r#"{"EventType":"IDLE"}"#,
                Ok(ack(AckKind::Idle, None, None, None)),
            ),
            (
                r#"{"EventType":"ERROR","FragmentTimecode":1663277247152,"ErrorId":4004}"#,
                Ok(ack(AckKind::Error, Some(1663277247152), None, Some(4004))),
            ),
            (
                "{ \"EventType\" : \"RECEIVED\",\n \"FragmentTimecode\": \"42\", \"Extra\": {\"a\": [1, \"}\"]}, \"FragmentNumber\": \"7\" }",
                Ok(ack(AckKind::Received, Some(42), Some("7"), None)),
            ),
            (
                r#"{"EventType":"ERROR","ErrorId":"5000"}"#,
                Ok(ack(AckKind::Error, None, None, Some(5000))),
            ),
            (
                r#"{"EventType":"NEW"}"#,
                Ok(ack(AckKind::Other("NEW".into()), None, None, None)),
            ),
            (r#"{"EventType":"ERROR"}"#, Err("without ErrorId")),
            (r#"{"eventtype":"IDLE"}"#, Err("no EventType")),
            (r#"{"EventType":"IDLE""#, Err("not JSON")),
        ];
        for (input, want) in cases {
            match (Ack::from_json(input.as_bytes()), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn to_json_round_trips_in_kvs_key_order() {
        let a = ack(AckKind::Persisted, Some(5), Some("0001"), None);
        assert_eq!(
            a.to_json(),
            r#"{"EventType":"PERSISTED","FragmentTimecode":5,"FragmentNumber":"0001"}"#
        );
        assert_eq!(Ack::from_json(a.to_json().as_bytes()).unwrap(), a);
        let e = ack(AckKind::Error, None, None, Some(4002));
        assert_eq!(e.to_json(), r#"{"EventType":"ERROR","ErrorId":4002}"#);
    }

    /// Objects split at every byte, with and without newlines between them, give the same ACKs.
    #[test]
    fn scanner_is_independent_of_chunking() {
        let objs = [
            r#"{"EventType":"BUFFERING","FragmentTimecode":1,"FragmentNumber":"1"}"#,
            r#"{"EventType":"RECEIVED","FragmentTimecode":1,"FragmentNumber":"1"}"#,
            r#"{"EventType":"ERROR","FragmentTimecode":2,"ErrorId":4002,"Note":"a \"}\" in a string"}"#,
            r#"{"EventType":"PERSISTED","FragmentTimecode":1,"FragmentNumber":"1"}"#,
        ];
        let want: Vec<Ack> = objs
            .iter()
            .map(|o| Ack::from_json(o.as_bytes()).unwrap())
            .collect();
        for sep in ["\n", "", "\r\n", " , "] {
            let stream = objs.join(sep) + sep;
            for split in 0..=stream.len() {
                let mut s = AckScanner::default();
                let mut got = Vec::new();
                for part in [&stream.as_bytes()[..split], &stream.as_bytes()[split..]] {
                    s.push(part);
                    while let Some(a) = s.next_ack() {
                        got.push(a.unwrap());
                    }
                }
                assert_eq!(got, want, "sep {sep:?} split {split}");
            }
        }
    }

    #[test]
    fn scanner_skips_junk_and_bounds_objects() {
        let mut s = AckScanner::default();
        s.push(b"garbage\n{\"EventType\":\"IDLE\"}");
        assert_eq!(s.next_ack().unwrap().unwrap().kind, AckKind::Idle);
        assert!(s.next_ack().is_none());
        s.push(b"{\"EventType\":\"");
        s.push(&vec![b'x'; MAX_OBJECT_BYTES + 1]);
        assert!(s.next_ack().unwrap().unwrap_err().contains("longer than"));
        s.push(b"{\"EventType\":\"IDLE\"}");
        assert_eq!(s.next_ack().unwrap().unwrap().kind, AckKind::Idle);
    }
}
