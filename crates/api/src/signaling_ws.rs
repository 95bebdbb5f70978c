//! WebRTC signaling over WebSocket (`kvs-api.md` §13.4–§13.7): the async shell around the pure
//! [`signaling::Channel`].
//!
//! ```text
//!  GET /?X-Amz-ChannelARN=…  ──► connect(): SigV4 (presigned, empty payload hash), channel
//!                                 lookup, ClientId ──Cmd::Connect──► channel task ──Ok/Err──►
//!                                 101 Switching Protocols, or the HTTP error (before upgrading)
//!  socket task ──Cmd::Message / Activity / Disconnect──► channel task (owns the Channel)
//!  socket task ◄──ConnOut::Text / Close────────────────── channel task
//! ```
//!
//! - [`Hub`]: one tokio task per *active* channel, keyed by ARN, spawned on the first connect.
//!   A task that has no connections and whose channel [`is_vacant`](signaling::Channel::is_vacant)
//!   removes itself from the map under the map's lock after checking that its queue is empty;
//!   commands to a channel are enqueued under that same lock, so none is lost.
//! - The channel task is the only owner of its `Channel`: it feeds one input, drains the outputs
//!   (`try_send` to per-connection queues, never blocking), and sleeps until the deadline.
//! - One task per socket ([`run_socket`]), generic over `Sink<Message>` and
//!   `Stream<Item = Result<Message, E>>`, so unit tests drive it with channels.
//!
//! Limits: the message TTL is read from the catalog when the channel task starts; an
//! `UpdateSignalingChannel` takes effect once the channel has been idle (no connections, no
//! retained messages).
//!
//! Several nodes (`hub = "redis"`, feature `redis`): the [`cluster`] module gives each channel
//! one owner node that runs its task; connections on other nodes are relayed to it through
//! Redis pub/sub, so the state machine and its ordering/TTL rules stay exactly as here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use kvs_core::{ClientId, ErrorKind, ResourceKind};
use serde::Deserialize;
use serde_json::{Value, json};
use signaling::{Channel, ConnId, Input, MonoTime, Output, Role};
use store::Selector;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};
use crate::validate as v;
use crate::{AppState, RequestCtx};

#[cfg(feature = "redis")]
pub mod cluster;

/// Commands queued per channel task; a full queue makes connects answer 503.
const CHANNEL_QUEUE: usize = 1024;
/// Frames queued per connection; a connection that falls this far behind is dropped.
const CONN_QUEUE: usize = 256;
/// Initial read buffer of a signaling WebSocket.
const SOCKET_READ_BUFFER: usize = 4 << 10;
/// How long SendAlexaOfferToMaster waits for the master's answer.
const ALEXA_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// What a socket task or a handler asks of a channel task.
#[derive(Debug)]
enum Cmd {
    Connect {
        conn: ConnId,
        role: Role,
        out: mpsc::Sender<ConnOut>,
        reply: oneshot::Sender<signaling::Result<()>>,
    },
    Message {
        conn: ConnId,
        text: String,
    },
    Activity {
        conn: ConnId,
    },
    Disconnect {
        conn: ConnId,
    },
    IceServerRotated,
    Shutdown,
    /// DeleteSignalingChannel: close every connection, drop retained messages, stop the task.
    Deleted,
}

/// What a channel task tells a socket task.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnOut {
    Text(String),
    Close {
        code: u16,
        reason: Cow<'static, str>,
    },
}

struct Entry {
    tx: mpsc::Sender<Cmd>,
    generation: u64,
}

/// All live signaling channels of this server.
pub struct Hub {
    epoch: Instant,
    base: signaling::Config,
    next_id: AtomicU64,
    channels: Mutex<HashMap<String, Entry>>,
    /// Set once by [`Hub::attach_redis`]: channels are then shared with other nodes.
    #[cfg(feature = "redis")]
    cluster: std::sync::OnceLock<Arc<cluster::Cluster>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.channels.lock().map_or(0, |m| m.len());
        f.debug_struct("Hub")
            .field("active_channels", &n)
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(signaling::Config::default())
    }
}

/// A connection accepted by a channel task, not yet attached to a socket.
#[derive(Debug)]
pub(crate) struct Connection {
    conn: ConnId,
    tx: mpsc::Sender<Cmd>,
    rx: mpsc::Receiver<ConnOut>,
}

impl Hub {
    /// A hub whose channels use `base` (the message TTL is taken from each channel's record).
    pub fn new(base: signaling::Config) -> Self {
        Self {
            epoch: Instant::now(),
            base,
            next_id: AtomicU64::new(1),
            channels: Mutex::new(HashMap::new()),
            #[cfg(feature = "redis")]
            cluster: std::sync::OnceLock::new(),
        }
    }

    fn now(&self) -> MonoTime {
        MonoTime::from_ms(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn instant(&self, t: MonoTime) -> Instant {
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        self.epoch
            .checked_add(Duration::from_millis(t.as_ms()))
            .map_or(far, |i| i.min(far))
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Enqueues `cmd` for the channel `arn`, starting its task if needed.
    fn send(self: &Arc<Self>, arn: &str, ttl: Duration, cmd: Cmd) -> ApiResult<mpsc::Sender<Cmd>> {
        let mut map = self.channels.lock().expect("hub lock poisoned");
        let mut cmd = cmd;
        for _ in 0..2 {
            let entry = map.entry(arn.to_owned()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
                let generation = self.next_id();
                let config = signaling::Config {
                    message_ttl: ttl,
                    ..self.base.clone()
                };
                tokio::spawn(channel_task(
                    self.clone(),
                    arn.to_owned(),
                    generation,
                    config,
                    rx,
                ));
                Entry { tx, generation }
            });
            match entry.tx.try_send(cmd) {
                Ok(()) => return Ok(entry.tx.clone()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(ApiError::new(
                        ErrorKind::Unavailable,
                        format!("signaling channel {arn} is overloaded"),
                    ));
                }
                Err(mpsc::error::TrySendError::Closed(c)) => {
                    // The task died (it removes itself before exiting normally): start anew.
                    map.remove(arn);
                    cmd = c;
                }
            }
        }
        Err(ApiError::new(
            ErrorKind::Internal,
            format!("signaling channel task for {arn} keeps failing"),
        ))
    }

    /// Asks the channel task to accept a connection; `Err` is the HTTP refusal. With a Redis
    /// cluster attached, the channel may live on another node; the connection is then relayed.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        arn: &str,
        message_ttl: Duration,
        role: Role,
    ) -> ApiResult<Connection> {
        #[cfg(feature = "redis")]
        if let Some(cl) = self.cluster.get() {
            return cl.connect(self, arn, message_ttl, role).await;
        }
        let (out, rx) = mpsc::channel(CONN_QUEUE);
        let pending = self.start_connect(arn, message_ttl, role, out)?;
        let tx = pending.tx.clone();
        let conn = pending.conn;
        pending.finish(arn).await?;
        Ok(Connection { conn, tx, rx })
    }

    /// Enqueues a connect on this node's task for `arn` (started if needed). Synchronous, so a
    /// caller holding a lock knows the task exists when it returns.
    fn start_connect(
        self: &Arc<Self>,
        arn: &str,
        message_ttl: Duration,
        role: Role,
        out: mpsc::Sender<ConnOut>,
    ) -> ApiResult<PendingConnect> {
        let conn = ConnId(self.next_id());
        let (reply, answer) = oneshot::channel();
        let tx = self.send(
            arn,
            message_ttl,
            Cmd::Connect {
                conn,
                role,
                out,
                reply,
            },
        )?;
        Ok(PendingConnect { conn, tx, answer })
    }

    /// Whether a channel task for `arn` runs on this node.
    #[cfg(feature = "redis")]
    fn has_task(&self, arn: &str) -> bool {
        self.channels.lock().is_ok_and(|m| m.contains_key(arn))
    }

    /// The ARNs of the channel tasks running on this node.
    #[cfg(feature = "redis")]
    fn task_arns(&self) -> Vec<String> {
        self.channels
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Enqueues `cmd` for a running channel task (none: dropped).
    #[cfg(feature = "redis")]
    fn send_existing(&self, arn: &str, cmd: Cmd) {
        let tx = self
            .channels
            .lock()
            .ok()
            .and_then(|m| m.get(arn).map(|e| e.tx.clone()));
        if let Some(tx) = tx
            && let Err(mpsc::error::TrySendError::Full(cmd)) = tx.try_send(cmd)
        {
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }

    fn broadcast(&self, make: fn() -> Cmd) {
        let map = self.channels.lock().expect("hub lock poisoned");
        for e in map.values() {
            let _ = e.tx.try_send(make());
        }
    }

    /// Sends `GO_AWAY` and closes every connection (server shutdown).
    pub fn shutdown(&self) {
        self.broadcast(|| Cmd::Shutdown);
        #[cfg(feature = "redis")]
        if let Some(cl) = self.cluster.get() {
            cl.shutdown();
        }
    }

    /// Tells every client to fetch new ICE servers (`RECONNECT_ICE_SERVER`).
    pub fn ice_servers_rotated(&self) {
        self.broadcast(|| Cmd::IceServerRotated);
    }

    /// Closes every live connection of the deleted channel `arn` (close code 1000, reason
    /// "signaling channel deleted"; no GO_AWAY, since reconnecting cannot succeed) and stops its
    /// task. Connections opened later are refused by the catalog lookup before upgrading.
    pub fn channel_deleted(&self, arn: &str) {
        #[cfg(feature = "redis")]
        if let Some(cl) = self.cluster.get() {
            cl.channel_deleted(arn);
        }
        self.channel_deleted_here(arn);
    }

    /// [`Hub::channel_deleted`] for this node's own task only.
    fn channel_deleted_here(&self, arn: &str) {
        let tx = {
            let map = self.channels.lock().expect("hub lock poisoned");
            match map.get(arn) {
                Some(e) => e.tx.clone(),
                None => return,
            }
        };
        match tx.try_send(Cmd::Deleted) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            // A busy channel still must hear it: wait for room off the request's path.
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                tokio::spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
        }
    }

    /// Relayed connections through Redis (see [`cluster::Cluster::relayed`]); `None` without
    /// a cluster.
    #[cfg(feature = "redis")]
    pub fn relayed(&self) -> Option<(usize, usize)> {
        self.cluster.get().map(|c| c.relayed())
    }

    /// Number of channels with a running task.
    pub fn active_channels(&self) -> usize {
        self.channels.lock().map_or(0, |m| m.len())
    }
}

/// A connect enqueued on a channel task, waiting for its answer.
struct PendingConnect {
    conn: ConnId,
    tx: mpsc::Sender<Cmd>,
    answer: oneshot::Receiver<signaling::Result<()>>,
}

impl PendingConnect {
    /// The channel task's answer as the HTTP refusal, if any.
    async fn finish(self, arn: &str) -> ApiResult<()> {
        match self.answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let kind = e.kind();
                Err(ApiError::new(kind, e.to_string()).with_source(e))
            }
            Err(_) => Err(ApiError::new(
                ErrorKind::Unavailable,
                format!("signaling channel {arn} stopped"),
            )),
        }
    }
}

/// The state a channel task owns.
struct ChannelShell {
    hub: Arc<Hub>,
    arn: String,
    ch: Channel,
    conns: HashMap<ConnId, mpsc::Sender<ConnOut>>,
    deadline: MonoTime,
    /// The channel was deleted: the task ends once its connections are closed.
    deleted: bool,
}

impl ChannelShell {
    fn feed(&mut self, input: Input) -> signaling::Result<()> {
        let r = self.ch.handle_input(input);
        self.drain();
        r
    }

    fn drain(&mut self) {
        let mut dropped = Vec::new();
        while let Some(out) = self.ch.poll_output() {
            match out {
                Output::Send { conn, text } => {
                    if let Some(tx) = self.conns.get(&conn)
                        && tx.try_send(ConnOut::Text(text)).is_err()
                    {
                        dropped.push(conn);
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(tx) = self.conns.remove(&conn) {
                        let _ = tx.try_send(ConnOut::Close {
                            code: reason.ws_close_code(),
                            reason: reason.as_str().into(),
                        });
                    }
                }
                Output::Log(ev) => tracing::debug!(channel = %self.arn, event = ?ev, "signaling"),
                Output::Timeout(t) => self.deadline = t,
            }
        }
        for conn in dropped {
            // Too slow to read (or gone): drop its queue, which ends its socket task.
            if self.conns.remove(&conn).is_some() {
                tracing::debug!(channel = %self.arn, %conn, "dropping a connection that does not keep up");
                let now = self.hub.now();
                let _ = self.feed(Input::Disconnect { conn, now });
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        let now = self.hub.now();
        match cmd {
            Cmd::Connect {
                conn,
                role,
                out,
                reply,
            } => {
                self.conns.insert(conn, out);
                let r = self.feed(Input::Connect { conn, role, now });
                if r.is_err() {
                    self.conns.remove(&conn);
                }
                if reply.send(r).is_err() {
                    // The requester went away (its HTTP request was dropped).
                    let _ = self.feed(Input::Disconnect { conn, now });
                    self.conns.remove(&conn);
                }
            }
            Cmd::Message { conn, text } => {
                let _ = self.feed(Input::Message { conn, text, now });
            }
            Cmd::Activity { conn } => {
                let _ = self.feed(Input::Activity { conn, now });
            }
            Cmd::Disconnect { conn } => {
                self.conns.remove(&conn);
                let _ = self.feed(Input::Disconnect { conn, now });
            }
            Cmd::IceServerRotated => {
                let _ = self.feed(Input::IceServerRotated { now });
            }
            Cmd::Shutdown => {
                let _ = self.feed(Input::Shutdown);
            }
            Cmd::Deleted => {
                self.deleted = true;
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    if let Some(tx) = self.conns.remove(&conn) {
                        let _ = tx.try_send(ConnOut::Close {
                            code: 1000,
                            reason: "signaling channel deleted".into(),
                        });
                    }
                    let _ = self.feed(Input::Disconnect { conn, now });
                }
                tracing::info!(channel = %self.arn, "signaling channel deleted: connections closed");
            }
        }
    }

    fn idle(&self) -> bool {
        self.conns.is_empty() && (self.deleted || self.ch.is_vacant() || self.ch.is_shut_down())
    }
}

async fn channel_task(
    hub: Arc<Hub>,
    arn: String,
    generation: u64,
    config: signaling::Config,
    mut rx: mpsc::Receiver<Cmd>,
) {
    let now = hub.now();
    let ch = match Channel::new(config, now) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(channel = %arn, error = %e, "invalid signaling config; using defaults");
            Channel::new(signaling::Config::default(), now).expect("defaults are valid")
        }
    };
    let mut sh = ChannelShell {
        hub: hub.clone(),
        arn,
        ch,
        conns: HashMap::new(),
        deadline: now,
        deleted: false,
    };
    sh.drain();
    tracing::debug!(channel = %sh.arn, "signaling channel task started");
    'run: loop {
        let deadline = sh.hub.instant(sh.deadline);
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => sh.handle(cmd),
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => {
                let now = sh.hub.now();
                let _ = sh.feed(Input::Timeout { now });
            }
        }
        // Re-checked after every queued command handled here: a Disconnect that arrives right
        // after the channel became idle (e.g. from a socket closed by deletion) must not leave
        // the task waiting for a deadline.
        while sh.idle() {
            let mut map = hub.channels.lock().expect("hub lock poisoned");
            match rx.try_recv() {
                Ok(cmd) => {
                    drop(map);
                    sh.handle(cmd);
                }
                Err(_) => {
                    if map.get(&sh.arn).is_some_and(|e| e.generation == generation) {
                        map.remove(&sh.arn);
                    }
                    break 'run;
                }
            }
        }
    }
    tracing::debug!(channel = %sh.arn, "signaling channel task stopped");
}

/// Drives one WebSocket: frames in → channel task, outputs → frames out. Returns when either
/// side closes. Generic so unit tests can use channels instead of a socket.
async fn run_socket<W, R, E>(mut sink: W, mut stream: R, c: Connection)
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let Connection { conn, tx, mut rx } = c;
    let disconnect = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(ConnOut::Text(t)) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break true;
                    }
                }
                Some(ConnOut::Close { code, reason }) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code, reason: reason.into_owned().into() })))
                        .await;
                    // The channel has forgotten this connection already.
                    break false;
                }
                None => {
                    // Dropped by the channel task (too slow, or the task ended).
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: 1011,
                            reason: "signaling connection dropped".into(),
                        })))
                        .await;
                    break false;
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str().to_owned();
                    if tx.send(Cmd::Message { conn, text }).await.is_err() {
                        break false;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    // axum answers pings itself; both count as activity.
                    if tx.send(Cmd::Activity { conn }).await.is_err() {
                        break false;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: 1003,
                            reason: "signaling messages must be text frames".into(),
                        })))
                        .await;
                    break true;
                }
                Some(Ok(Message::Close(_))) | None => break true,
                Some(Err(e)) => {
                    tracing::debug!(%conn, error = %e, "signaling socket error");
                    break true;
                }
            },
        }
    };
    if disconnect {
        let _ = tx.send(Cmd::Disconnect { conn }).await;
    }
    let _ = sink.close().await;
}

/// Whether a request is a signaling connect: `GET /` with a WebSocket upgrade or the
/// `X-Amz-ChannelARN` query parameter. Anything else on `GET /` falls through.
fn is_signaling_request(req: &Request) -> bool {
    if req.method() != Method::GET || req.uri().path() != "/" {
        return false;
    }
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    upgrade
        || query_params(req.uri().query().unwrap_or(""))
            .iter()
            .any(|(k, _)| k == "X-Amz-ChannelARN")
}

/// Percent-decoded query parameters; `+` is literal (SigV4 clients encode spaces as `%20`).
fn query_params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Middleware in front of the router: serves signaling connects on `GET /`, passes the rest on.
pub(crate) async fn intercept(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !is_signaling_request(&req) {
        return next.run(req).await;
    }
    connect(st, req).await.unwrap_or_else(|e| e.into_response())
}

/// ConnectAsMaster / ConnectAsViewer (§13.4). Every refusal is an HTTP error before the upgrade.
async fn connect(st: AppState, req: Request) -> ApiResult<Response> {
    let (mut parts, _body) = req.into_parts();
    let params = query_params(parts.uri.query().unwrap_or(""));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(arn) = param("X-Amz-ChannelARN") else {
        return Err(ApiError::invalid(
            "X-Amz-ChannelARN is required to connect to a signaling channel",
        ));
    };
    let cookie_auth =
        crate::web_session::cookie(&parts.headers, crate::web_session::SESSION_COOKIE).is_some()
            && !parts.headers.contains_key(header::AUTHORIZATION)
            && param("X-Amz-Signature").is_none();
    if cookie_auth && param("X-Amz-ClientId").is_none() {
        // The page only ever watches: a browser session may not connect as the master.
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            "a browser session connects as a viewer only (X-Amz-ClientId is required)",
        ));
    }
    let principal = crate::web_session::authenticate(
        &st,
        &parts,
        sigv4::PayloadHash::EmptyStreaming,
        crate::web_session::CookiePolicy::WebSocket,
    )?;
    if principal.role == crate::auth::Role::Viewer && param("X-Amz-ClientId").is_none() {
        // A read-only key watches; it may not become a channel's camera.
        return Err(ApiError::new(
            ErrorKind::NotAuthorized,
            "viewer credentials connect as a VIEWER only (X-Amz-ClientId is required); \
             a master needs admin credentials",
        ));
    }
    v::arn(
        arn,
        "X-Amz-ChannelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    let role = match param("X-Amz-ClientId") {
        None => Role::Master,
        Some(id) => Role::Viewer {
            client_id: ClientId::parse(id)
                .map_err(|e| ApiError::invalid(format!("X-Amz-ClientId: {e}")))?,
        },
    };
    let rec = st.catalog.channel(&Selector::Arn(arn.to_owned())).await?;
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &st)
        .await
        .map_err(|r| {
            ApiError::invalid(format!(
                "signaling endpoints need a WebSocket upgrade request: {}",
                r.body_text()
            ))
        })?;
    let ttl = Duration::from_secs(u64::from(rec.message_ttl_seconds));
    let c = st.signaling.connect(&rec.arn, ttl, role.clone()).await?;
    tracing::debug!(channel = %rec.arn, conn = %c.conn, ?role, "signaling connect");
    let (conn, tx) = (c.conn, c.tx.clone());
    let max = st.signaling.base.max_frame_len * 2;
    Ok(ws
        .protocols(["wss"])
        // tungstenite allocates its read buffer up front (128 KiB by default): that was most of
        // an idle connection's memory. Signaling frames are a few KB; the buffer still grows for
        // a larger frame (up to `max`). Measured with signaling_bench, BENCHMARKS.md.
        .read_buffer_size(SOCKET_READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_failed_upgrade(move |e| {
            tracing::debug!(%conn, error = %e, "signaling upgrade failed");
            let _ = tx.try_send(Cmd::Disconnect { conn });
        })
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            run_socket(sink, stream, c)
        }))
}

/// SendAlexaOfferToMaster input (§13.7).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SendAlexaOfferToMasterInput {
    #[serde(rename = "ChannelARN")]
    channel_arn: Option<String>,
    sender_client_id: Option<String>,
    message_payload: Option<String>,
}

/// Delivers the offer to the master as a viewer named `SenderClientId` would, and returns the
/// master's `SDP_ANSWER` if it arrives within [`ALEXA_ANSWER_WAIT`].
pub(crate) async fn send_alexa_offer_to_master(
    st: AppState,
    _ctx: RequestCtx,
    i: SendAlexaOfferToMasterInput,
) -> ApiResult<Value> {
    let arn = v::required(&i.channel_arn, "ChannelARN")?;
    v::arn(
        arn,
        "ChannelARN",
        Some(ResourceKind::Channel),
        ErrorKind::InvalidArgument,
    )?;
    let sender = v::required(&i.sender_client_id, "SenderClientId")?;
    let client_id =
        ClientId::parse(sender).map_err(|e| ApiError::invalid(format!("SenderClientId: {e}")))?;
    let payload = v::required(&i.message_payload, "MessagePayload")?;
    if payload.is_empty()
        || payload.len() > 10_000
        || !payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(ApiError::invalid(
            "MessagePayload must be 1 to 10000 characters of base64",
        ));
    }
    let rec = st.catalog.channel(&Selector::Arn(arn.clone())).await?;
    let ttl = Duration::from_secs(u64::from(rec.message_ttl_seconds));
    let mut c = st
        .signaling
        .connect(&rec.arn, ttl, Role::Viewer { client_id })
        .await?;
    let offer = json!({ "action": "SDP_OFFER", "messagePayload": payload }).to_string();
    let _ =
        c.tx.send(Cmd::Message {
            conn: c.conn,
            text: offer,
        })
        .await;
    let answer = tokio::time::timeout(ALEXA_ANSWER_WAIT, async {
        while let Some(out) = c.rx.recv().await {
            let ConnOut::Text(t) = out else { return None };
            let Ok(v) = serde_json::from_str::<Value>(&t) else {
                continue;
            };
            match v["messageType"].as_str() {
                Some("SDP_ANSWER") => return v["messagePayload"].as_str().map(str::to_owned),
                Some("STATUS_RESPONSE") => return None,
                _ => {}
            }
        }
        None
    })
    .await;
    let _ = c.tx.send(Cmd::Disconnect { conn: c.conn }).await;
    match answer {
        Ok(Some(a)) => Ok(json!({ "Answer": a })),
        _ => Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "no master of channel {} answered the offer within {} s",
                rec.name,
                ALEXA_ANSWER_WAIT.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_channel::mpsc as fmpsc;

    use super::*;

    const ARN: &str = "arn:aws:kinesisvideo:us-east-1:123456789012:channel/demo/1";
    const TTL: Duration = Duration::from_secs(60);

    /// The test's ends of one socket: what the client sends, what it receives.
    struct Client {
        to_server: fmpsc::UnboundedSender<Result<Message, Infallible>>,
        from_server: fmpsc::UnboundedReceiver<Message>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn send(&self, text: &str) {
            self.to_server
                .unbounded_send(Ok(Message::Text(text.into())))
                .unwrap();
        }

        async fn recv(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(5), self.from_server.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket open")
        }

        async fn recv_json(&mut self) -> Value {
            match self.recv().await {
                Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    fn viewer(id: &str) -> Role {
        Role::Viewer {
            client_id: ClientId::parse(id).unwrap(),
        }
    }

    async fn attach(hub: &Arc<Hub>, role: Role) -> Client {
        let c = hub.connect(ARN, TTL, role).await.expect("connect accepted");
        let (to_server, server_in) = fmpsc::unbounded();
        let (server_out, from_server) = fmpsc::unbounded();
        let task = tokio::spawn(run_socket(server_out, server_in, c));
        Client {
            to_server,
            from_server,
            task,
        }
    }

    fn payload(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[tokio::test(start_paused = true)]
    async fn routes_offer_answer_and_candidates() {
        let hub = Arc::new(Hub::default());
        let mut master = attach(&hub, Role::Master).await;
        let mut v1 = attach(&hub, viewer("viewer-1")).await;
        let v2 = attach(&hub, viewer("viewer-2")).await;
        assert_eq!(hub.active_channels(), 1);

        let offer = payload(r#"{"type":"offer","sdp":"v=0"}"#);
        v1.send(&json!({"action":"SDP_OFFER","messagePayload":offer}).to_string());
        let got = master.recv_json().await;
        assert_eq!(
            got,
            json!({"messageType":"SDP_OFFER","messagePayload":offer,"senderClientId":"viewer-1"})
        );
        // C SDK spelling, with the extra IceServerList member.
        let cand = payload(r#"{"candidate":"candidate:1"}"#);
        v2.send(
            &json!({"action":"ICE_CANDIDATE","RecipientClientId":"","MessagePayload":cand,"IceServerList":[]})
                .to_string(),
        );
        assert_eq!(master.recv_json().await["senderClientId"], "viewer-2");

        let answer = payload(r#"{"type":"answer","sdp":"v=0"}"#);
        master.send(
            &json!({"action":"SDP_ANSWER","messagePayload":answer,"recipientClientId":"viewer-1"})
                .to_string(),
        );
        assert_eq!(
            v1.recv_json().await,
            json!({"messageType":"SDP_ANSWER","messagePayload":answer})
        );
        // A refused message with a correlation id gets a STATUS_RESPONSE.
        master.send(
            &json!({"action":"SDP_ANSWER","messagePayload":answer,"correlationId":"c.1"})
                .to_string(),
        );
        let st = master.recv_json().await;
        assert_eq!(st["messageType"], "STATUS_RESPONSE");
        assert_eq!(st["statusResponse"]["correlationId"], "c.1");
        assert_eq!(st["statusResponse"]["statusCode"], "400");
        // Pings count as activity and need no answer from the shell.
        v2.to_server
            .unbounded_send(Ok(Message::Ping(bytes::Bytes::from_static(b"x"))))
            .unwrap();
        v2.to_server.close_channel();
        v2.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn replacement_closes_the_old_socket() {
        let hub = Arc::new(Hub::default());
        let mut first = attach(&hub, Role::Master).await;
        let _second = attach(&hub, Role::Master).await;
        match first.recv().await {
            Message::Close(Some(f)) => {
                assert_eq!(f.code, 1000);
                assert_eq!(f.reason.as_str(), "replaced by a newer connection");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        first.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn binary_frames_close_with_1003() {
        let hub = Arc::new(Hub::default());
        let mut v = attach(&hub, viewer("v")).await;
        v.to_server
            .unbounded_send(Ok(Message::Binary(bytes::Bytes::from_static(b"\0"))))
            .unwrap();
        match v.recv().await {
            Message::Close(Some(f)) => assert_eq!(f.code, 1003),
            other => panic!("expected a close frame, got {other:?}"),
        }
        v.task.await.unwrap();
        // The viewer is gone: a message from the master to it is retained, not delivered, and
        // the same client id may connect again.
        let _again = attach(&hub, viewer("v")).await;
    }

    #[tokio::test(start_paused = true)]
    async fn limits_refuse_before_upgrade() {
        let hub = Arc::new(Hub::default());
        let mut clients = Vec::new();
        for i in 0..10 {
            // 3 connects per second per role: pace them.
            tokio::time::sleep(Duration::from_millis(400)).await;
            clients.push(attach(&hub, viewer(&format!("v{i}"))).await);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let e = hub.connect(ARN, TTL, viewer("v10")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        // Rate: three masters at once pass, the fourth is refused.
        for _ in 0..3 {
            hub.connect(ARN, TTL, Role::Master).await.unwrap();
        }
        let e = hub.connect(ARN, TTL, Role::Master).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn retained_until_connect_and_task_ends_when_vacant() {
        let hub = Arc::new(Hub::default());
        let v = attach(&hub, viewer("early")).await;
        v.send(&json!({"action":"SDP_OFFER","messagePayload":"e30="}).to_string());
        v.to_server.close_channel();
        v.task.await.unwrap();
        let mut master = attach(&hub, Role::Master).await;
        assert_eq!(master.recv_json().await["senderClientId"], "early");
        master.to_server.close_channel();
        master.task.await.unwrap();
        // Nothing connected and nothing retained: the task goes away once the connect
        // buckets have refilled.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hub.active_channels(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_go_away_then_closes() {
        let hub = Arc::new(Hub::default());
        let mut m = attach(&hub, Role::Master).await;
        hub.shutdown();
        assert_eq!(m.recv_json().await, json!({"messageType":"GO_AWAY"}));
        match m.recv().await {
            Message::Close(Some(f)) => assert_eq!(f.code, 1001),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deleting_the_channel_closes_its_sockets_without_go_away() {
        let hub = Arc::new(Hub::default());
        let mut m = attach(&hub, Role::Master).await;
        let mut v = attach(&hub, viewer("v1")).await;
        // A message retained for an offline viewer must not keep the task alive.
        m.send(
            &json!({"action":"SDP_ANSWER","recipientClientId":"offline","messagePayload":"e30="})
                .to_string(),
        );
        hub.channel_deleted("arn:aws:kinesisvideo:us-east-1:123456789012:channel/other/1");
        hub.channel_deleted(ARN);
        for c in [&mut m, &mut v] {
            match c.recv().await {
                Message::Close(Some(f)) => {
                    assert_eq!(f.code, 1000);
                    assert_eq!(f.reason.as_str(), "signaling channel deleted");
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        m.task.await.unwrap();
        v.task.await.unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hub.active_channels(), 0);
    }

    #[test]
    fn signaling_request_detection() {
        let req = |method: &str, uri: &str, upgrade: bool| {
            let mut b = axum::http::Request::builder().method(method).uri(uri);
            if upgrade {
                b = b.header("upgrade", "websocket");
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let cases = [
            ("GET", "/", false, false),
            ("GET", "/", true, true),
            ("GET", "/?X-Amz-ChannelARN=arn%3Aaws", false, true),
            ("GET", "/?foo=bar", false, false),
            ("POST", "/?X-Amz-ChannelARN=x", true, false),
            ("GET", "/index.html", true, false),
        ];
        for (m, u, up, want) in cases {
            assert_eq!(is_signaling_request(&req(m, u, up)), want, "{m} {u} {up}");
        }
        assert_eq!(
            query_params("X-Amz-ChannelARN=arn%3Aaws%3Ax&X-Amz-ClientId=a+b&flag"),
            [
                ("X-Amz-ChannelARN".to_owned(), "arn:aws:x".to_owned()),
                ("X-Amz-ClientId".to_owned(), "a+b".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }
}
