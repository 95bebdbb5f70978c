//! The channel state machine: connections, routing, retention, timers.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use kvs_core::ClientId;

use crate::config::{Config, Rate};
use crate::error::{Error, Result};
use crate::pending::{self, Pending};
use crate::rate::TokenBucket;
use crate::time::MonoTime;
use crate::wire;

/// A WebSocket connection, numbered by the shell. Ids must be unique among the channel's live
/// connections; the shell should simply never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Who a connection is (§13.4): the master connects without a client id, a viewer with one.
/// Also names senders and recipients of messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The channel's one master (ConnectAsMaster).
    Master,
    /// A viewer (ConnectAsViewer), identified by its `X-Amz-ClientId`.
    Viewer {
        /// The viewer's client id; the master addresses it by this.
        client_id: ClientId,
    },
}

impl Role {
    fn kind_str(&self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Viewer { .. } => "viewer",
        }
    }
}

/// A client action (§13.5); relayed with the same name as `messageType` (§13.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `SDP_OFFER`.
    SdpOffer,
    /// `SDP_ANSWER`.
    SdpAnswer,
    /// `ICE_CANDIDATE`.
    IceCandidate,
}

impl Action {
    /// The wire name.
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::SdpOffer => "SDP_OFFER",
            Self::SdpAnswer => "SDP_ANSWER",
            Self::IceCandidate => "ICE_CANDIDATE",
        }
    }

    /// Parses a wire name; exact, upper case, as both SDKs send it.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "SDP_OFFER" => Some(Self::SdpOffer),
            "SDP_ANSWER" => Some(Self::SdpAnswer),
            "ICE_CANDIDATE" => Some(Self::IceCandidate),
            _ => None,
        }
    }

    fn rate(self, config: &Config) -> Rate {
        match self {
            Self::SdpOffer => config.sdp_offer_rate,
            Self::SdpAnswer => config.sdp_answer_rate,
            Self::IceCandidate => config.ice_candidate_rate,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire())
    }
}

/// Something that happened to the channel. Feed one, then drain [`Channel::poll_output`].
#[derive(Debug)]
pub enum Input {
    /// A client asks to connect (before the WebSocket upgrade). `handle_input` returns `Err` to
    /// refuse; the shell then answers with the HTTP error of [`Error::kind`] and does not
    /// upgrade. If the upgrade fails after `Ok`, the shell sends [`Input::Disconnect`].
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// Master, or viewer with its client id (validated by the caller).
        role: Role,
        /// Current time.
        now: MonoTime,
    },
    /// A text frame from a client.
    Message {
        /// The sender.
        conn: ConnId,
        /// The frame, unparsed.
        text: String,
        /// Current time.
        now: MonoTime,
    },
    /// A frame other than text (ping, pong) from a client: proof of life for the idle timeout.
    /// The C SDK pings every 10 s; browsers cannot, so a silent JS client is closed when idle,
    /// as on AWS.
    Activity {
        /// The connection.
        conn: ConnId,
        /// Current time.
        now: MonoTime,
    },
    /// The client closed the socket or it broke. No [`Output::Close`] follows.
    Disconnect {
        /// The connection.
        conn: ConnId,
        /// Current time.
        now: MonoTime,
    },
    /// The last [`Output::Timeout`] deadline was reached (early or late is fine).
    Timeout {
        /// Current time.
        now: MonoTime,
    },
    /// TURN credentials or servers changed: tell every client to fetch new ones
    /// (`RECONNECT_ICE_SERVER`, §13.6).
    IceServerRotated {
        /// Current time.
        now: MonoTime,
    },
    /// The server is going down: `GO_AWAY` and close every connection now, drop retained
    /// messages, refuse later connects. Waiting out the grace period is the shell's choice.
    Shutdown,
}

/// Something the shell must do or may log. Drain with [`Channel::poll_output`] after every input.
#[derive(Debug)]
pub enum Output {
    /// Send a text frame.
    Send {
        /// The recipient connection.
        conn: ConnId,
        /// Exact JSON of §13.6.
        text: String,
    },
    /// Close the connection (after sending everything queued for it before this output). The
    /// channel has forgotten it already; a later [`Input::Disconnect`] for it is ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// A decision worth a log line; needs no action.
    Log(Event),
    /// Feed [`Input::Timeout`] at this time. Always the last output of a drain.
    Timeout(MonoTime),
}

/// Why the channel closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A newer connection took its place: a new master, or a viewer with the same client id.
    Replaced,
    /// No inbound frame for [`Config::idle_timeout`].
    IdleTimeout,
    /// [`Config::go_away_grace`] passed after the `GO_AWAY` sent at
    /// [`Config::max_connection_duration`].
    MaxDuration,
    /// [`Input::Shutdown`].
    Shutdown,
}

impl CloseReason {
    /// A suggested WebSocket close code (RFC 6455 §7.4.1): 1001 "going away" where the client
    /// should reconnect (AWS closes aged connections with 1001), 1000 otherwise.
    pub fn ws_close_code(self) -> u16 {
        match self {
            Self::MaxDuration | Self::Shutdown => 1001,
            Self::Replaced | Self::IdleTimeout => 1000,
        }
    }

    /// Short text for logs and the close frame.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replaced => "replaced by a newer connection",
            Self::IdleTimeout => "idle timeout",
            Self::MaxDuration => "maximum connection duration reached",
            Self::Shutdown => "server shutting down",
        }
    }
}

/// Why a retained message was dropped undelivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its recipient did not connect within [`Config::message_ttl`].
    Expired,
    /// A newer `SDP_OFFER` from the same sender to the same recipient replaced it.
    Superseded,
    /// [`Input::Shutdown`].
    Shutdown,
}

/// Log events ([`Output::Log`]).
#[derive(Debug)]
pub enum Event {
    /// A client message was not relayed. A `STATUS_RESPONSE` was sent iff `status_sent`
    /// (only when the message had a usable `correlationId`).
    MessageRefused {
        /// The sender.
        conn: ConnId,
        /// Why.
        error: Error,
        /// Whether the client was told.
        status_sent: bool,
    },
    /// A message was kept for a recipient that is not connected.
    MessageRetained {
        /// Sender.
        from: Role,
        /// Recipient.
        to: Role,
        /// What it was.
        action: Action,
    },
    /// A retained message was dropped undelivered.
    MessageDropped {
        /// Sender.
        from: Role,
        /// Recipient.
        to: Role,
        /// What it was.
        action: Action,
        /// Why.
        reason: DropReason,
    },
    /// An input named a connection the channel does not know, typically a frame that raced with
    /// an [`Output::Close`]. Ignored.
    UnknownConn {
        /// The connection.
        conn: ConnId,
    },
}

/// One connection's state.
#[derive(Debug)]
struct Conn {
    role: Role,
    connected_at: MonoTime,
    last_activity: MonoTime,
    /// When `GO_AWAY` was sent; the close is due `go_away_grace` later.
    go_away_at: Option<MonoTime>,
    offers: TokenBucket,
    answers: TokenBucket,
    candidates: TokenBucket,
}

impl Conn {
    fn bucket(&mut self, action: Action) -> &mut TokenBucket {
        match action {
            Action::SdpOffer => &mut self.offers,
            Action::SdpAnswer => &mut self.answers,
            Action::IceCandidate => &mut self.candidates,
        }
    }

    fn idle_deadline(&self, config: &Config) -> MonoTime {
        self.last_activity + config.idle_timeout
    }

    /// When the max-duration timer next fires: `GO_AWAY`, or the close after it.
    fn age_deadline(&self, config: &Config) -> MonoTime {
        match self.go_away_at {
            None => self.connected_at + config.max_connection_duration,
            Some(t) => t + config.go_away_grace,
        }
    }
}

/// One signaling channel: its master, its viewers and its undelivered messages.
///
/// See the crate docs for the drive loop.
#[derive(Debug)]
pub struct Channel {
    config: Config,
    /// Latest time seen; inputs with an earlier time are treated as happening now.
    now: MonoTime,
    conns: BTreeMap<ConnId, Conn>,
    master: Option<ConnId>,
    viewers: BTreeMap<ClientId, ConnId>,
    pending: Pending,
    master_connects: TokenBucket,
    viewer_connects: TokenBucket,
    outputs: VecDeque<Output>,
    /// Whether the current drain still owes its final [`Output::Timeout`].
    timeout_owed: bool,
    shut_down: bool,
}

impl Channel {
    /// A channel with no connections. `now` starts its clock; it may be any value.
    pub fn new(config: Config, now: MonoTime) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            master_connects: TokenBucket::full(config.master_connect_rate, now),
            viewer_connects: TokenBucket::full(config.viewer_connect_rate, now),
            config,
            now,
            conns: BTreeMap::new(),
            master: None,
            viewers: BTreeMap::new(),
            pending: Pending::default(),
            outputs: VecDeque::new(),
            timeout_owed: true,
            shut_down: false,
        })
    }

    /// Feeds one input. Only [`Input::Connect`] can fail: `Err` refuses the connection and
    /// touches no other connection (timers due by `now` still fire, and the attempt may have
    /// spent a connect-rate token). Call [`Channel::poll_output`] until `None` afterwards, error
    /// or not.
    pub fn handle_input(&mut self, input: Input) -> Result<()> {
        self.timeout_owed = true;
        match input {
            Input::Connect { conn, role, now } => {
                self.advance(now);
                self.connect(conn, role)
            }
            Input::Message { conn, text, now } => {
                self.advance(now);
                self.message(conn, &text);
                Ok(())
            }
            Input::Activity { conn, now } => {
                self.advance(now);
                match self.conns.get_mut(&conn) {
                    Some(c) => c.last_activity = self.now,
                    None => self.log(Event::UnknownConn { conn }),
                }
                Ok(())
            }
            Input::Disconnect { conn, now } => {
                self.advance(now);
                if self.forget(conn).is_none() {
                    self.log(Event::UnknownConn { conn });
                }
                Ok(())
            }
            Input::Timeout { now } => {
                self.advance(now);
                Ok(())
            }
            Input::IceServerRotated { now } => {
                self.advance(now);
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    self.outputs.push_back(Output::Send {
                        conn,
                        text: wire::reconnect_ice_server(),
                    });
                }
                Ok(())
            }
            Input::Shutdown => {
                self.shutdown();
                Ok(())
            }
        }
    }

    /// The next output; after the last real one, one [`Output::Timeout`], then `None` until
    /// the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(out) = self.outputs.pop_front() {
            return Some(out);
        }
        if self.timeout_owed {
            self.timeout_owed = false;
            return Some(Output::Timeout(self.next_deadline()));
        }
        None
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest time the channel has seen.
    pub fn now(&self) -> MonoTime {
        self.now
    }

    /// The master's connection, if one is connected.
    pub fn master(&self) -> Option<ConnId> {
        self.master
    }

    /// The connection of the viewer with this client id, if connected.
    pub fn viewer(&self, client_id: &ClientId) -> Option<ConnId> {
        self.viewers.get(client_id).copied()
    }

    /// How many viewers are connected.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// The role of a live connection.
    pub fn role(&self, conn: ConnId) -> Option<&Role> {
        self.conns.get(&conn).map(|c| &c.role)
    }

    /// How many messages wait for offline recipients.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Nothing worth keeping: no connections, no retained messages, and full connect-rate
    /// buckets (as of the last input). The shell may then drop the channel after draining
    /// outputs and create a fresh one on the next connect request without weakening the connect
    /// rate limit. The deadline of a channel that is only waiting for its buckets to refill is
    /// the refill time, so the shell learns about vacancy from the next [`Input::Timeout`].
    pub fn is_vacant(&self) -> bool {
        self.conns.is_empty()
            && self.pending.len() == 0
            && (self.shut_down || self.connect_buckets_full_at().is_none())
    }

    /// When both connect buckets are full, if that is still in the future.
    fn connect_buckets_full_at(&self) -> Option<MonoTime> {
        let master = self
            .master_connects
            .full_at(self.config.master_connect_rate);
        let viewer = self
            .viewer_connects
            .full_at(self.config.viewer_connect_rate);
        master.max(viewer).filter(|t| *t > self.now)
    }

    /// Whether [`Input::Shutdown`] was handled.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Panics if an internal invariant is broken. For tests and fuzz targets, after every step.
    pub fn check_invariants(&self) {
        let c = &self.config;
        let masters: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.role == Role::Master)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(
            masters,
            self.master.into_iter().collect::<Vec<_>>(),
            "master index"
        );
        let viewer_conns = self
            .conns
            .values()
            .filter(|conn| conn.role != Role::Master)
            .count();
        assert_eq!(viewer_conns, self.viewers.len(), "viewer index size");
        for (client_id, id) in &self.viewers {
            let role = self.conns.get(id).map(|conn| &conn.role);
            assert_eq!(
                role,
                Some(&Role::Viewer {
                    client_id: client_id.clone()
                }),
                "viewer index"
            );
        }
        assert!(self.viewers.len() <= c.max_viewers, "over max_viewers");
        for (id, conn) in &self.conns {
            assert!(
                conn.connected_at <= conn.last_activity,
                "{id}: activity before connect"
            );
            assert!(
                conn.last_activity <= self.now,
                "{id}: activity in the future"
            );
            assert!(
                self.now < conn.idle_deadline(c),
                "{id}: idle timeout overdue"
            );
            assert!(self.now < conn.age_deadline(c), "{id}: age timer overdue");
            if let Some(t) = conn.go_away_at {
                assert!(
                    conn.connected_at + c.max_connection_duration <= t,
                    "{id}: GO_AWAY too early"
                );
                assert!(t <= self.now, "{id}: GO_AWAY in the future");
            }
            conn.offers.check_invariants(c.sdp_offer_rate, self.now);
            conn.answers.check_invariants(c.sdp_answer_rate, self.now);
            conn.candidates
                .check_invariants(c.ice_candidate_rate, self.now);
        }
        self.master_connects
            .check_invariants(c.master_connect_rate, self.now);
        self.viewer_connects
            .check_invariants(c.viewer_connect_rate, self.now);
        self.pending.check_invariants(self.now, c);
        for to in self.pending.recipients() {
            assert!(
                self.conn_of(to).is_none(),
                "messages retained for connected {to:?}"
            );
        }
        if self.shut_down {
            assert!(
                self.conns.is_empty() && self.pending.len() == 0,
                "state left after shutdown"
            );
        }
        assert!(
            self.now < self.next_deadline(),
            "deadline not in the future"
        );
    }

    /// Moves the clock to `now` (never backwards) and fires due timers.
    fn advance(&mut self, now: MonoTime) {
        self.now = self.now.max(now);
        let now = self.now;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let conn = self.conns.get_mut(&id).expect("id just listed");
            if now >= conn.idle_deadline(&self.config) {
                self.close(id, CloseReason::IdleTimeout);
            } else if now >= conn.age_deadline(&self.config) {
                if conn.go_away_at.is_none() {
                    // §13.4: GO_AWAY at the maximum duration, close after the grace period,
                    // counted from when GO_AWAY actually went out.
                    conn.go_away_at = Some(now);
                    self.outputs.push_back(Output::Send {
                        conn: id,
                        text: wire::go_away(),
                    });
                } else {
                    self.close(id, CloseReason::MaxDuration);
                }
            }
        }
        self.pending
            .expire(now, self.config.message_ttl, &mut self.outputs);
    }

    fn next_deadline(&self) -> MonoTime {
        let c = &self.config;
        let conns = self
            .conns
            .values()
            .map(|conn| conn.idle_deadline(c).min(conn.age_deadline(c)));
        let refill = if self.conns.is_empty() && self.pending.len() == 0 {
            // Only to report vacancy promptly, see `is_vacant`.
            self.connect_buckets_full_at()
        } else {
            None
        };
        conns
            .chain(self.pending.next_expiry(c.message_ttl))
            .chain(refill)
            .min()
            // Nothing is scheduled; any wake-up is harmless, and a finite one keeps the shell's
            // `Instant` arithmetic from overflowing.
            .unwrap_or(self.now + c.idle_timeout)
    }

    /// ConnectAsMaster / ConnectAsViewer (§13.4).
    fn connect(&mut self, conn: ConnId, role: Role) -> Result<()> {
        if self.shut_down {
            return Err(Error::ShuttingDown);
        }
        if self.conns.contains_key(&conn) {
            return Err(Error::ConnIdInUse { conn });
        }
        // The rate counts attempts, so it is checked (and a token spent) before the viewer
        // limit. Separate buckets per role, as in the quota table: a viewer storm cannot lock
        // the master out.
        let (bucket, rate) = match role {
            Role::Master => (&mut self.master_connects, self.config.master_connect_rate),
            Role::Viewer { .. } => (&mut self.viewer_connects, self.config.viewer_connect_rate),
        };
        if !bucket.try_take(rate, self.now) {
            return Err(Error::ConnectRate {
                role: role.kind_str(),
                rate,
            });
        }
        let replaced = match &role {
            Role::Master => self.master,
            Role::Viewer { client_id } => {
                let old = self.viewers.get(client_id).copied();
                if old.is_none() && self.viewers.len() >= self.config.max_viewers {
                    return Err(Error::ViewerLimit {
                        max: self.config.max_viewers,
                    });
                }
                old
            }
        };
        if let Some(old) = replaced {
            self.close(old, CloseReason::Replaced);
        }
        match &role {
            Role::Master => self.master = Some(conn),
            Role::Viewer { client_id } => {
                self.viewers.insert(client_id.clone(), conn);
            }
        }
        let c = &self.config;
        let now = self.now;
        let delivered = self.pending.take(&role);
        self.conns.insert(
            conn,
            Conn {
                role,
                connected_at: now,
                last_activity: now,
                go_away_at: None,
                offers: TokenBucket::full(c.sdp_offer_rate, now),
                answers: TokenBucket::full(c.sdp_answer_rate, now),
                candidates: TokenBucket::full(c.ice_candidate_rate, now),
            },
        );
        for m in delivered {
            self.outputs.push_back(Output::Send { conn, text: m.text });
        }
        Ok(())
    }

    /// A client text frame (§13.5).
    fn message(&mut self, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get_mut(&conn) else {
            self.log(Event::UnknownConn { conn });
            return;
        };
        c.last_activity = self.now;
        if let Err((correlation_id, error)) = self.route(conn, text) {
            let status_sent = correlation_id.is_some();
            if let Some(id) = correlation_id {
                self.outputs.push_back(Output::Send {
                    conn,
                    text: wire::status_response(&id, &error),
                });
            }
            self.log(Event::MessageRefused {
                conn,
                error,
                status_sent,
            });
        }
    }

    /// Validates, rate-limits and delivers or retains one message. `Err` carries the
    /// `correlationId` to answer, if there is one.
    fn route(&mut self, conn: ConnId, text: &str) -> Result<(), (Option<String>, Error)> {
        let max = self.config.max_frame_len;
        if text.len() > max {
            return Err((
                None,
                Error::FrameTooLarge {
                    len: text.len(),
                    max,
                },
            ));
        }
        let parsed = wire::parse(text, self.config.max_payload_len).map_err(|e| (None, e))?;
        let correlation_id = parsed.correlation_id;
        let fail = |e| (correlation_id.clone(), e);
        let msg = parsed.message.map_err(fail)?;
        let c = self
            .conns
            .get_mut(&conn)
            .expect("caller checked the connection");
        let from = c.role.clone();
        let rate = msg.action.rate(&self.config);
        if !c.bucket(msg.action).try_take(rate, self.now) {
            return Err(fail(Error::MessageRate {
                action: msg.action,
                rate,
            }));
        }
        // Viewers always talk to the master, whatever recipient they name (§13.5); the master
        // must name a viewer.
        let (to, text) = match &from {
            Role::Viewer { client_id } => (
                Role::Master,
                wire::relay(msg.action, &msg.payload, Some(client_id.as_str())),
            ),
            Role::Master => {
                let recipient = msg
                    .recipient
                    .as_deref()
                    .ok_or_else(|| fail(Error::MissingRecipient))?;
                let client_id =
                    ClientId::parse(recipient).map_err(|e| fail(Error::InvalidRecipient(e)))?;
                (
                    Role::Viewer { client_id },
                    wire::relay(msg.action, &msg.payload, None),
                )
            }
        };
        if let Some(target) = self.conn_of(&to) {
            self.outputs.push_back(Output::Send { conn: target, text });
            return Ok(());
        }
        let retained = pending::Message {
            from,
            action: msg.action,
            text,
            received_at: self.now,
        };
        self.pending
            .push(to, retained, &self.config, &mut self.outputs)
            .map_err(fail)
    }

    fn conn_of(&self, role: &Role) -> Option<ConnId> {
        match role {
            Role::Master => self.master,
            Role::Viewer { client_id } => self.viewers.get(client_id).copied(),
        }
    }

    /// Removes a connection from every index. `None` if unknown.
    fn forget(&mut self, conn: ConnId) -> Option<Conn> {
        let c = self.conns.remove(&conn)?;
        match &c.role {
            Role::Master => self.master = None,
            Role::Viewer { client_id } => {
                self.viewers.remove(client_id);
            }
        }
        Some(c)
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.forget(conn).expect("closing a live connection");
        self.outputs.push_back(Output::Close { conn, reason });
    }

    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            self.outputs.push_back(Output::Send {
                conn,
                text: wire::go_away(),
            });
            self.close(conn, CloseReason::Shutdown);
        }
        self.pending.clear(&mut self.outputs);
    }

    fn log(&mut self, event: Event) {
        self.outputs.push_back(Output::Log(event));
    }
}
