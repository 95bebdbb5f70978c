//! A virtual-time harness around one [`Channel`] (str0m `tests/common.rs` style): feed an
//! input, drain every output, check invariants, and track which connections a real shell would
//! still have open.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use kvs_core::ClientId;
use openkvs_signaling::{
    Channel, CloseReason, Config, ConnId, Error, Event, Input, MonoTime, Output, Role,
};

/// Where the simulated clock starts: not zero, so nothing depends on it.
pub(crate) const START: MonoTime = MonoTime::from_ms(1_000_000);

#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) ch: Channel,
    pub(crate) now: MonoTime,
    /// The deadline of the last drain.
    pub(crate) deadline: MonoTime,
    /// Connections the shell has open: accepted and neither closed by the channel nor
    /// disconnected by the client.
    open: BTreeSet<ConnId>,
    inbox: BTreeMap<ConnId, Vec<String>>,
    pub(crate) closed: BTreeMap<ConnId, CloseReason>,
    pub(crate) logs: Vec<Event>,
    next_conn: u64,
}

impl Sim {
    pub(crate) fn new(config: Config) -> Self {
        let mut sim = Self {
            ch: Channel::new(config, START).expect("valid config"),
            now: START,
            deadline: START,
            open: BTreeSet::new(),
            inbox: BTreeMap::new(),
            closed: BTreeMap::new(),
            logs: Vec::new(),
            next_conn: 1,
        };
        sim.drain();
        sim
    }

    /// Default config, but connects are not rate-limited, so tests about other things can
    /// connect many clients at one instant.
    pub(crate) fn unthrottled() -> Self {
        Self::new(Config {
            master_connect_rate: openkvs_signaling::Rate::per_second(1000),
            viewer_connect_rate: openkvs_signaling::Rate::per_second(1000),
            ..Config::default()
        })
    }

    /// Feeds one input at the current time's stamp (inputs carry their own `now`), drains, and
    /// checks invariants.
    pub(crate) fn input(&mut self, input: Input) -> Result<(), Error> {
        let connecting = match &input {
            Input::Connect { conn, .. } => Some(*conn),
            Input::Disconnect { conn, .. } => {
                self.open.remove(conn);
                None
            }
            _ => None,
        };
        let result = self.ch.handle_input(input);
        if let (Some(conn), Ok(())) = (connecting, &result) {
            // The shell upgrades only after `Ok`; outputs for the new connection follow.
            assert!(self.open.insert(conn), "{conn} accepted twice");
        }
        self.drain();
        result
    }

    fn drain(&mut self) {
        let mut saw_timeout = false;
        while let Some(out) = self.ch.poll_output() {
            assert!(!saw_timeout, "output after Timeout: {out:?}");
            match out {
                Output::Send { conn, text } => {
                    assert!(
                        self.open.contains(&conn),
                        "sent to {conn}, which is not open: {text}"
                    );
                    serde_json::from_str::<serde_json::Value>(&text).expect("outputs are JSON");
                    self.inbox.entry(conn).or_default().push(text);
                }
                Output::Close { conn, reason } => {
                    assert!(self.open.remove(&conn), "closed {conn}, which is not open");
                    self.closed.insert(conn, reason);
                }
                Output::Log(event) => self.logs.push(event),
                Output::Timeout(deadline) => {
                    assert!(
                        deadline > self.ch.now(),
                        "deadline {deadline} not after now {}",
                        self.ch.now()
                    );
                    self.deadline = deadline;
                    saw_timeout = true;
                }
            }
        }
        assert!(saw_timeout, "drain did not end with Timeout");
        self.ch.check_invariants();
        for conn in &self.open {
            assert!(
                self.ch.role(*conn).is_some(),
                "{conn} open in the shell but unknown to the channel"
            );
        }
    }

    fn new_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    pub(crate) fn connect(&mut self, role: Role) -> Result<ConnId, Error> {
        let conn = self.new_conn();
        self.input(Input::Connect {
            conn,
            role,
            now: self.now,
        })
        .map(|()| conn)
    }

    pub(crate) fn connect_master(&mut self) -> Result<ConnId, Error> {
        self.connect(Role::Master)
    }

    pub(crate) fn connect_viewer(&mut self, client_id: &str) -> Result<ConnId, Error> {
        self.connect(viewer(client_id))
    }

    pub(crate) fn send(&mut self, conn: ConnId, text: impl Into<String>) {
        let text = text.into();
        self.input(Input::Message {
            conn,
            text,
            now: self.now,
        })
        .expect("messages never fail handle_input");
    }

    pub(crate) fn activity(&mut self, conn: ConnId) {
        self.input(Input::Activity {
            conn,
            now: self.now,
        })
        .expect("activity never fails");
    }

    pub(crate) fn disconnect(&mut self, conn: ConnId) {
        self.input(Input::Disconnect {
            conn,
            now: self.now,
        })
        .expect("disconnect never fails");
    }

    /// Advances virtual time to the earliest deadline and fires it.
    pub(crate) fn progress(&mut self) {
        self.now = self.now.max(self.deadline);
        self.input(Input::Timeout { now: self.now })
            .expect("timeout never fails");
    }

    /// Advances to `t`, firing every deadline on the way exactly when it is due.
    pub(crate) fn advance_to(&mut self, t: MonoTime) {
        while self.deadline <= t {
            self.progress();
        }
        self.now = self.now.max(t);
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    /// Texts received by `conn` since the last call.
    pub(crate) fn take(&mut self, conn: ConnId) -> Vec<String> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// Drains every inbox; asserts they are all empty.
    pub(crate) fn assert_quiet(&mut self) {
        let inbox = std::mem::take(&mut self.inbox);
        assert!(
            inbox.values().all(Vec::is_empty),
            "unexpected messages: {inbox:?}"
        );
    }

    pub(crate) fn is_open(&self, conn: ConnId) -> bool {
        self.open.contains(&conn)
    }

    pub(crate) fn open_conns(&self) -> Vec<ConnId> {
        self.open.iter().copied().collect()
    }

    pub(crate) fn take_logs(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.logs)
    }
}

pub(crate) fn viewer(client_id: &str) -> Role {
    Role::Viewer {
        client_id: ClientId::parse(client_id).expect("valid client id"),
    }
}

/// base64 of a small JSON payload tagged `tag`, the shape the SDKs send.
pub(crate) fn payload(tag: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(r#"{{"type":"offer","sdp":"{tag}"}}"#))
}

/// A JS-SDK style (camelCase) client message.
pub(crate) fn js(
    action: &str,
    payload: &str,
    recipient: Option<&str>,
    correlation_id: Option<&str>,
) -> String {
    let mut obj = serde_json::json!({ "action": action, "messagePayload": payload });
    if let Some(r) = recipient {
        obj["recipientClientId"] = r.into();
    }
    if let Some(c) = correlation_id {
        obj["correlationId"] = c.into();
    }
    obj.to_string()
}

/// A C-SDK style (PascalCase, tab-indented, empty recipient when none, `IceServerList`) message.
pub(crate) fn c_sdk(
    action: &str,
    payload: &str,
    recipient: Option<&str>,
    correlation_id: Option<&str>,
) -> String {
    let corr = correlation_id
        .map(|c| format!(",\n\t\"CorrelationId\": \"{c}\""))
        .unwrap_or_default();
    format!(
        "{{\n\t\"action\": \"{action}\",\n\t\"RecipientClientId\": \"{}\",\n\t\"MessagePayload\": \"{payload}\"{corr},\n\t\"IceServerList\": [\n\t\t{{\n\t\t\t\"Password\": \"pw\",\n\t\t\t\"Ttl\": 287,\n\t\t\t\"Uris\": [\"turn:1.2.3.4:443?transport=udp\"],\n\t\t\t\"Username\": \"u\"\n\t\t}}\n\t]\n}}",
        recipient.unwrap_or("")
    )
}

/// What a recipient sees for a relayed message (§13.6).
pub(crate) fn relayed(message_type: &str, payload: &str, sender: Option<&str>) -> String {
    match sender {
        Some(s) => format!(
            r#"{{"messageType":"{message_type}","messagePayload":"{payload}","senderClientId":"{s}"}}"#
        ),
        None => format!(r#"{{"messageType":"{message_type}","messagePayload":"{payload}"}}"#),
    }
}

/// `(correlationId, errorType)` of a `STATUS_RESPONSE`, or `None` for another message.
pub(crate) fn status_of(text: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["messageType"] != "STATUS_RESPONSE" {
        return None;
    }
    let s = &v["statusResponse"];
    assert_eq!(
        s["statusCode"].as_str().map(str::len),
        Some(3),
        "statusCode is a 3-digit string: {text}"
    );
    assert!(
        s["description"].as_str().is_some_and(|d| !d.is_empty()),
        "description: {text}"
    );
    Some((
        s["correlationId"].as_str()?.to_owned(),
        s["errorType"].as_str()?.to_owned(),
    ))
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
