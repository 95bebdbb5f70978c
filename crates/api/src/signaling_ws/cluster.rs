//! Signaling between nodes through Redis (`hub = "redis"`, issue 7).
//!
//! Every signaling channel has one *owner*: the node that runs its channel task (the parent
//! module), so the pure state machine — one master, viewer routing, message retention with its
//! TTL, rate limits — behaves exactly as on a single server. A connection that arrives at another
//! node is relayed to the owner:
//!
//! ```text
//!  viewer ──ws──► node B ──PUBLISH okvs:sig:node:<A> {connect|msg|act|disc}──► node A (owner)
//!                   ▲                                                          │ channel task
//!                   └───── PUBLISH okvs:sig:node:<B> {connected|out|close|dropped} ◄┘
//! ```
//!
//! - **Ownership** is a Redis key `okvs:sig:owner:<arn>` = node id with a 10 s expiry, claimed by
//!   the first node that needs the channel ([`CLAIM`]: keep it if it is ours, take it if it is
//!   free or its node is dead) and refreshed every 3 s while the task runs; released when the
//!   task ends. A node that finds it lost a lease (e.g. after a Redis restart another node took
//!   the channel) shuts that task down: its clients get `GO_AWAY` and reconnect.
//! - **Presence**: each node keeps `okvs:sig:alive:<node>` alive (10 s expiry, refreshed every
//!   3 s). When a peer's key is missing at two checks in a row, its relayed connections are
//!   dropped on this side: a dead owner's viewers get `GO_AWAY`; a dead node's viewers leave the
//!   owner's channel (so they stop counting against the viewer limit).
//! - **Ordering**: one publisher connection per node and one forwarding task per relayed
//!   connection keep each connection's frames in order, which is all the state machine needs.
//! - **Redis down**: new connections get 503 (the owner cannot be known); connections that cross
//!   nodes are closed with `GO_AWAY` (relayed frames may have been lost); connections whose
//!   master and viewers share one node keep working. After Redis returns, leases and presence
//!   are re-established within one refresh period.
//!
//! Messages are small JSON envelopes ([`Envelope`]); the node id is random per process, so a
//! restarted node never inherits a dead one's relays.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use kvs_core::{ClientId, ErrorKind};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use signaling::{ConnId, Role};
use tokio::sync::{mpsc, oneshot};

use super::{CONN_QUEUE, Cmd, ConnOut, Connection, Hub};
use crate::error::{ApiError, ApiResult};

/// How long an owner lease or a presence key lives without a refresh.
const LEASE: Duration = Duration::from_secs(10);
/// How often leases and presence are refreshed and peers checked.
const REFRESH: Duration = Duration::from_secs(3);
/// How long a relayed connect waits for the owner's answer.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Frames queued from a relayed socket to its forwarding task.
const FORWARD_QUEUE: usize = 256;
/// Consecutive checks a peer's presence key must be missing before it counts as dead.
const DEAD_AFTER: u8 = 2;
/// Delay between attempts to re-subscribe after losing Redis.
const RESUBSCRIBE_BACKOFF: Duration = Duration::from_millis(500);

/// Broadcast channel of all nodes (channel deletions).
const BROADCAST: &str = "okvs:sig:all";

fn inbox(node: &str) -> String {
    format!("okvs:sig:node:{node}")
}

fn alive_key(node: &str) -> String {
    format!("okvs:sig:alive:{node}")
}

fn owner_key(arn: &str) -> String {
    format!("okvs:sig:owner:{arn}")
}

/// Claims the channel `KEYS[1]` for node `ARGV[1]` for `ARGV[2]` ms and returns its owner: ours
/// (refreshed), a live other node's, or ours again when the recorded owner has no presence key.
/// Standalone Redis only (the presence key is derived inside the script).
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return owner
end
if owner and redis.call('EXISTS', 'okvs:sig:alive:' .. owner) == 1 then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// Deletes `KEYS[1]` if it still names node `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What nodes tell each other. `from` is the sender's node id; `conn` numbers a connection on
/// the node that holds its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Envelope {
    /// Socket node → owner: attach a new connection to the channel.
    Connect {
        from: String,
        conn: u64,
        arn: String,
        ttl_ms: u64,
        /// `None`: the master.
        client_id: Option<String>,
    },
    /// Socket node → owner: a text frame from the client.
    Msg {
        from: String,
        conn: u64,
        text: String,
    },
    /// Socket node → owner: a ping/pong from the client (idle timeout).
    Act { from: String, conn: u64 },
    /// Socket node → owner: the client went away.
    Disc { from: String, conn: u64 },
    /// Owner → socket node: the answer to [`Envelope::Connect`].
    Connected {
        from: String,
        conn: u64,
        error: Option<RemoteError>,
    },
    /// Owner → socket node: a frame for the client.
    Out {
        from: String,
        conn: u64,
        text: String,
    },
    /// Owner → socket node: close the client's socket.
    Close {
        from: String,
        conn: u64,
        code: u16,
        reason: String,
    },
    /// Owner → socket node: the channel forgot the connection (too slow, or gone).
    Dropped { from: String, conn: u64 },
    /// Any node → all: DeleteSignalingChannel.
    Deleted { from: String, arn: String },
}

/// A refusal of a relayed connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RemoteError {
    /// [`ErrorKind`] by its `Debug` name.
    kind: String,
    message: String,
    /// The channel has another owner now: ask that one.
    moved_to: Option<String>,
}

fn kind_name(kind: ErrorKind) -> String {
    format!("{kind:?}")
}

fn kind_from_name(name: &str) -> ErrorKind {
    ErrorKind::ALL
        .iter()
        .copied()
        .find(|k| kind_name(*k) == name)
        .unwrap_or(ErrorKind::Internal)
}

/// A connection whose socket is on this node and whose channel is on `owner`.
struct Outbound {
    owner: String,
    out: mpsc::Sender<ConnOut>,
    reply: Option<oneshot::Sender<Option<RemoteError>>>,
}

/// A connection of node `from` attached to a channel task on this node.
struct Inbound {
    conn: ConnId,
    tx: mpsc::Sender<Cmd>,
}

#[derive(Default)]
struct State {
    /// Channels whose lease this node held at the last refresh.
    owned: HashSet<String>,
    outbound: HashMap<u64, Outbound>,
    inbound: HashMap<(String, u64), Inbound>,
    /// Peers whose presence key was missing, with the count of consecutive misses.
    suspect: HashMap<String, u8>,
}

/// This node's membership in a Redis-connected group of nodes.
pub struct Cluster {
    node: String,
    hub: Weak<Hub>,
    con: ConnectionManager,
    claim: redis::Script,
    release: redis::Script,
    /// Serializes claims with releases, so a lease is never released under a task just started.
    claim_lock: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A Redis failure as the 503 a client sees.
fn unavailable(what: &str, e: &redis::RedisError) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("signaling between nodes is unavailable ({what}: Redis: {e}); retry shortly"),
    )
}

impl Hub {
    /// Joins the group of nodes sharing the Redis at `url` (`hub = "redis"`): from now on a
    /// channel's master and viewers may connect to different nodes. Returns once this node's
    /// inbox is subscribed. Fails if Redis cannot be reached.
    pub async fn attach_redis(self: &Arc<Self>, url: &str) -> Result<Arc<Cluster>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let con = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| format!("connecting to Redis: {e}"))?;
        let node = hex::encode(rand::random::<[u8; 8]>());
        let cl = Arc::new(Cluster {
            node,
            hub: Arc::downgrade(self),
            con,
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
            claim_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        });
        cl.refresh_presence()
            .await
            .map_err(|e| format!("registering this node in Redis: {e}"))?;
        let (ready_tx, ready) = oneshot::channel();
        tokio::spawn(cl.clone().subscriber(client, ready_tx));
        ready
            .await
            .map_err(|_| "subscribing to Redis failed".to_owned())?;
        tokio::spawn(cl.clone().maintenance());
        self.cluster
            .set(cl.clone())
            .map_err(|_| "a Redis hub is attached already".to_owned())?;
        tracing::info!(node = %cl.node, "signaling hub: Redis (channels shared with other nodes)");
        Ok(cl)
    }
}

impl Cluster {
    /// This node's id in Redis keys and envelopes.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Number of relayed connections: (sockets here whose channel is elsewhere, sockets
    /// elsewhere attached to channels here).
    pub fn relayed(&self) -> (usize, usize) {
        let st = self.state.lock().expect("cluster lock poisoned");
        (st.outbound.len(), st.inbound.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("cluster lock poisoned")
    }

    async fn publish(&self, node: &str, env: &Envelope) -> redis::RedisResult<i64> {
        let payload = serde_json::to_string(env).expect("envelopes serialize");
        let mut con = self.con.clone();
        redis::cmd("PUBLISH")
            .arg(inbox(node))
            .arg(payload)
            .query_async(&mut con)
            .await
    }

    /// Publishes off the caller's path; a failure is logged (the peer's checks clean up).
    fn publish_later(self: &Arc<Self>, node: String, env: Envelope) {
        let cl = self.clone();
        tokio::spawn(async move {
            if let Err(e) = cl.publish(&node, &env).await {
                tracing::debug!(peer = %node, error = %e, "signaling relay: publish failed");
            }
        });
    }

    async fn refresh_presence(&self) -> redis::RedisResult<()> {
        let mut con = self.con.clone();
        redis::cmd("SET")
            .arg(alive_key(&self.node))
            .arg(&self.node)
            .arg("PX")
            .arg(lease_ms())
            .query_async(&mut con)
            .await
    }

    /// Claims `arn` (see [`CLAIM`]) and returns its owner's node id.
    async fn claim(&self, arn: &str) -> redis::RedisResult<String> {
        let mut con = self.con.clone();
        self.claim
            .key(owner_key(arn))
            .arg(&self.node)
            .arg(lease_ms())
            .invoke_async(&mut con)
            .await
    }

    /// Finds (or becomes) the owner of `arn` and connects there.
    pub(super) async fn connect(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        arn: &str,
        ttl: Duration,
        role: Role,
    ) -> ApiResult<Connection> {
        for _ in 0..3 {
            let guard = self.claim_lock.lock().await;
            let owner = if hub.has_task(arn) && self.lock().owned.contains(arn) {
                self.node.clone()
            } else {
                self.claim(arn)
                    .await
                    .map_err(|e| unavailable("finding the channel's node", &e))?
            };
            if owner == self.node {
                self.lock().owned.insert(arn.to_owned());
                let (out, rx) = mpsc::channel(CONN_QUEUE);
                let pending = hub.start_connect(arn, ttl, role, out)?;
                drop(guard);
                let (conn, tx) = (pending.conn, pending.tx.clone());
                pending.finish(arn).await?;
                return Ok(Connection { conn, tx, rx });
            }
            drop(guard);
            match self.connect_remote(hub, &owner, arn, ttl, &role).await {
                Err(Relay::Moved) => {}
                Err(Relay::Refused(e)) => return Err(e),
                Ok(c) => return Ok(c),
            }
        }
        Err(ApiError::new(
            ErrorKind::Unavailable,
            format!("signaling channel {arn} keeps moving between nodes; retry shortly"),
        ))
    }

    /// Relays a new connection to the channel's owner.
    async fn connect_remote(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        owner: &str,
        arn: &str,
        ttl: Duration,
        role: &Role,
    ) -> Result<Connection, Relay> {
        let conn = hub.next_id();
        let (out, rx) = mpsc::channel(CONN_QUEUE);
        let (reply, answer) = oneshot::channel();
        self.lock().outbound.insert(
            conn,
            Outbound {
                owner: owner.to_owned(),
                out,
                reply: Some(reply),
            },
        );
        let env = Envelope::Connect {
            from: self.node.clone(),
            conn,
            arn: arn.to_owned(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            client_id: match role {
                Role::Master => None,
                Role::Viewer { client_id } => Some(client_id.as_str().to_owned()),
            },
        };
        let refuse = |cl: &Self, e: ApiError| {
            cl.lock().outbound.remove(&conn);
            Relay::Refused(e)
        };
        match self.publish(owner, &env).await {
            Ok(n) if n > 0 => {}
            Ok(_) => {
                return Err(refuse(
                    self,
                    ApiError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the node serving signaling channel {arn} does not answer; retry shortly"
                        ),
                    ),
                ));
            }
            Err(e) => return Err(refuse(self, unavailable("relaying the connect", &e))),
        }
        match tokio::time::timeout(CONNECT_WAIT, answer).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(e))) => {
                self.lock().outbound.remove(&conn);
                if e.moved_to.is_some() {
                    return Err(Relay::Moved);
                }
                return Err(Relay::Refused(ApiError::new(
                    kind_from_name(&e.kind),
                    e.message,
                )));
            }
            Ok(Err(_)) | Err(_) => {
                self.publish_later(
                    owner.to_owned(),
                    Envelope::Disc {
                        from: self.node.clone(),
                        conn,
                    },
                );
                return Err(refuse(
                    self,
                    ApiError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the node serving signaling channel {arn} did not answer within {} s; retry shortly",
                            CONNECT_WAIT.as_secs()
                        ),
                    ),
                ));
            }
        }
        let (tx, cmds) = mpsc::channel(FORWARD_QUEUE);
        tokio::spawn(self.clone().forward_cmds(owner.to_owned(), conn, cmds));
        Ok(Connection {
            conn: ConnId(conn),
            tx,
            rx,
        })
    }

    /// Socket → owner: relays what the socket task sends, in order.
    async fn forward_cmds(
        self: Arc<Self>,
        owner: String,
        conn: u64,
        mut cmds: mpsc::Receiver<Cmd>,
    ) {
        let from = || self.node.clone();
        while let Some(cmd) = cmds.recv().await {
            let (env, last) = match cmd {
                Cmd::Message { text, .. } => (
                    Envelope::Msg {
                        from: from(),
                        conn,
                        text,
                    },
                    false,
                ),
                Cmd::Activity { .. } => (Envelope::Act { from: from(), conn }, false),
                Cmd::Disconnect { .. } => (Envelope::Disc { from: from(), conn }, true),
                _ => continue,
            };
            match self.publish(&owner, &env).await {
                Ok(n) if n > 0 => {}
                other => {
                    if let Err(e) = other {
                        tracing::warn!(peer = %owner, error = %e, "signaling relay failed: closing the connection");
                    }
                    if let Some(o) = self.lock().outbound.remove(&conn) {
                        let _ = o.out.try_send(ConnOut::Close {
                            code: 1011,
                            reason: "signaling relay between nodes failed; reconnect".into(),
                        });
                    }
                    return;
                }
            }
            if last {
                break;
            }
        }
        self.lock().outbound.remove(&conn);
    }

    /// Owner → socket node: relays what the channel task sends to a connection of `peer`.
    async fn forward_out(
        self: Arc<Self>,
        peer: String,
        rconn: u64,
        mut rx: mpsc::Receiver<ConnOut>,
    ) {
        let mut closed = false;
        while let Some(out) = rx.recv().await {
            let env = match out {
                ConnOut::Text(text) => Envelope::Out {
                    from: self.node.clone(),
                    conn: rconn,
                    text,
                },
                ConnOut::Close { code, reason } => {
                    closed = true;
                    Envelope::Close {
                        from: self.node.clone(),
                        conn: rconn,
                        code,
                        reason: reason.into_owned(),
                    }
                }
            };
            if self.publish(&peer, &env).await.is_err() {
                break;
            }
            if closed {
                break;
            }
        }
        let gone = self.lock().inbound.remove(&(peer.clone(), rconn));
        if let Some(i) = gone
            && !closed
        {
            // The channel dropped the connection (or the relay failed): tell both sides.
            let _ = i.tx.try_send(Cmd::Disconnect { conn: i.conn });
            let _ = self
                .publish(
                    &peer,
                    &Envelope::Dropped {
                        from: self.node.clone(),
                        conn: rconn,
                    },
                )
                .await;
        }
    }

    /// Handles one envelope from the inbox or the broadcast channel.
    fn dispatch(self: &Arc<Self>, env: Envelope) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        match env {
            Envelope::Connect {
                from,
                conn,
                arn,
                ttl_ms,
                client_id,
            } => {
                tokio::spawn(
                    self.clone()
                        .accept_remote(hub, from, conn, arn, ttl_ms, client_id),
                );
            }
            Envelope::Msg { from, conn, text } => {
                self.to_channel(&from, conn, |c| Cmd::Message { conn: c, text })
            }
            Envelope::Act { from, conn } => {
                self.to_channel(&from, conn, |c| Cmd::Activity { conn: c });
            }
            Envelope::Disc { from, conn } => {
                if let Some(i) = self.lock().inbound.remove(&(from, conn)) {
                    send_or_spawn(&i.tx, Cmd::Disconnect { conn: i.conn });
                }
            }
            Envelope::Connected { conn, error, .. } => {
                let reply = self
                    .lock()
                    .outbound
                    .get_mut(&conn)
                    .and_then(|o| o.reply.take());
                if let Some(r) = reply {
                    let _ = r.send(error);
                }
            }
            Envelope::Out { from, conn, text } => {
                let mut st = self.lock();
                let delivered = st
                    .outbound
                    .get(&conn)
                    .is_some_and(|o| o.out.try_send(ConnOut::Text(text)).is_ok());
                if !delivered {
                    // Unknown here, or too slow to read (or gone): drop it, as a local channel
                    // would, and tell the owner.
                    st.outbound.remove(&conn);
                    drop(st);
                    self.publish_later(
                        from,
                        Envelope::Disc {
                            from: self.node.clone(),
                            conn,
                        },
                    );
                }
            }
            Envelope::Close {
                conn, code, reason, ..
            } => {
                if let Some(o) = self.lock().outbound.remove(&conn) {
                    let _ = o.out.try_send(ConnOut::Close {
                        code,
                        reason: reason.into(),
                    });
                }
            }
            Envelope::Dropped { conn, .. } => {
                // Dropping the sender ends the socket task (close 1011).
                self.lock().outbound.remove(&conn);
            }
            Envelope::Deleted { from, arn } => {
                if from != self.node {
                    hub.channel_deleted_here(&arn);
                }
            }
        }
    }

    /// Feeds a relayed connection's frame to its channel task; an unknown connection is told
    /// it was dropped, an overloaded channel drops it.
    fn to_channel(self: &Arc<Self>, from: &str, conn: u64, make: impl FnOnce(ConnId) -> Cmd) {
        let key = (from.to_owned(), conn);
        let mut st = self.lock();
        let Some(i) = st.inbound.get(&key) else {
            drop(st);
            self.publish_later(
                from.to_owned(),
                Envelope::Dropped {
                    from: self.node.clone(),
                    conn,
                },
            );
            return;
        };
        if i.tx.try_send(make(i.conn)).is_err() {
            let i = st.inbound.remove(&key).expect("present");
            drop(st);
            send_or_spawn(&i.tx, Cmd::Disconnect { conn: i.conn });
            self.publish_later(
                from.to_owned(),
                Envelope::Close {
                    from: self.node.clone(),
                    conn,
                    code: 1011,
                    reason: "signaling channel is overloaded".into(),
                },
            );
        }
    }

    /// Owner side of a relayed connect.
    async fn accept_remote(
        self: Arc<Self>,
        hub: Arc<Hub>,
        from: String,
        rconn: u64,
        arn: String,
        ttl_ms: u64,
        client_id: Option<String>,
    ) {
        let answer = |error: Option<RemoteError>| Envelope::Connected {
            from: self.node.clone(),
            conn: rconn,
            error,
        };
        let refusal = |e: &ApiError| RemoteError {
            kind: kind_name(e.kind()),
            message: e.message().to_owned(),
            moved_to: None,
        };
        let role = match client_id {
            None => Role::Master,
            Some(id) => match ClientId::parse(&id) {
                Ok(client_id) => Role::Viewer { client_id },
                Err(e) => {
                    let e = ApiError::invalid(format!("X-Amz-ClientId: {e}"));
                    let _ = self.publish(&from, &answer(Some(refusal(&e)))).await;
                    return;
                }
            },
        };
        let guard = self.claim_lock.lock().await;
        let owner = if hub.has_task(&arn) && self.lock().owned.contains(&arn) {
            Ok(self.node.clone())
        } else {
            self.claim(&arn).await
        };
        let owner = match owner {
            Ok(o) => o,
            Err(e) => {
                drop(guard);
                let e = unavailable("finding the channel's node", &e);
                let _ = self.publish(&from, &answer(Some(refusal(&e)))).await;
                return;
            }
        };
        if owner != self.node {
            drop(guard);
            let moved = RemoteError {
                kind: kind_name(ErrorKind::Unavailable),
                message: format!("signaling channel {arn} moved to another node"),
                moved_to: Some(owner),
            };
            let _ = self.publish(&from, &answer(Some(moved))).await;
            return;
        }
        self.lock().owned.insert(arn.clone());
        let (out, rx) = mpsc::channel(CONN_QUEUE);
        let pending = hub.start_connect(&arn, Duration::from_millis(ttl_ms), role, out);
        drop(guard);
        let pending = match pending {
            Ok(p) => p,
            Err(e) => {
                let _ = self.publish(&from, &answer(Some(refusal(&e)))).await;
                return;
            }
        };
        self.lock().inbound.insert(
            (from.clone(), rconn),
            Inbound {
                conn: pending.conn,
                tx: pending.tx.clone(),
            },
        );
        tokio::spawn(self.clone().forward_out(from.clone(), rconn, rx));
        let error = pending.finish(&arn).await.err().map(|e| refusal(&e));
        if error.is_some() {
            self.lock().inbound.remove(&(from.clone(), rconn));
        }
        match self.publish(&from, &answer(error)).await {
            Ok(n) if n > 0 => {}
            _ => {
                // The socket's node is gone already: detach.
                if let Some(i) = self.lock().inbound.remove(&(from, rconn)) {
                    send_or_spawn(&i.tx, Cmd::Disconnect { conn: i.conn });
                }
            }
        }
    }

    /// Receives this node's inbox and the broadcast channel, re-subscribing after Redis
    /// failures. Losing the subscription closes every relayed connection: frames may be lost.
    async fn subscriber(self: Arc<Self>, client: redis::Client, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        loop {
            match self.subscribe(&client).await {
                Ok(mut pubsub) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    } else {
                        tracing::info!("signaling hub: Redis subscription re-established");
                        // Presence and leases may have lapsed meanwhile (e.g. Redis restarted
                        // empty): re-assert them now, before another node claims our channels.
                        if self.refresh_presence().await.is_ok()
                            && let Some(hub) = self.hub.upgrade()
                        {
                            self.refresh_leases(&hub).await;
                        }
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                            Ok(env) => self.dispatch(env),
                            Err(e) => {
                                tracing::warn!(error = %e, "signaling relay: unreadable envelope")
                            }
                        }
                    }
                    tracing::warn!(
                        "signaling hub: lost the Redis subscription; closing connections relayed between nodes"
                    );
                    self.drop_relays(None);
                }
                Err(e) => {
                    if ready.is_some() {
                        // attach_redis reports it; the task ends.
                        tracing::error!(error = %e, "signaling hub: cannot subscribe to Redis");
                        return;
                    }
                    tracing::debug!(error = %e, "signaling hub: re-subscribing to Redis failed");
                }
            }
            if self.hub.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(RESUBSCRIBE_BACKOFF).await;
        }
    }

    async fn subscribe(&self, client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
            })??;
        pubsub.subscribe(inbox(&self.node)).await?;
        pubsub.subscribe(BROADCAST).await?;
        Ok(pubsub)
    }

    /// Closes relayed connections: all of them (`None`), or those of one dead peer.
    fn drop_relays(&self, peer: Option<&str>) {
        let (outbound, inbound) = {
            let mut st = self.lock();
            let out: Vec<u64> = st
                .outbound
                .iter()
                .filter(|(_, o)| peer.is_none_or(|p| o.owner == p))
                .map(|(k, _)| *k)
                .collect();
            let outbound: Vec<Outbound> =
                out.iter().filter_map(|k| st.outbound.remove(k)).collect();
            let inn: Vec<(String, u64)> = st
                .inbound
                .keys()
                .filter(|(n, _)| peer.is_none_or(|p| n == p))
                .cloned()
                .collect();
            let inbound: Vec<Inbound> = inn.iter().filter_map(|k| st.inbound.remove(k)).collect();
            (outbound, inbound)
        };
        for o in outbound {
            // The owner is gone (or unreachable): the client should reconnect.
            let _ = o.out.try_send(ConnOut::Text(signaling::go_away()));
            let _ = o.out.try_send(ConnOut::Close {
                code: 1001,
                reason: "signaling node went away; reconnect".into(),
            });
        }
        for i in inbound {
            send_or_spawn(&i.tx, Cmd::Disconnect { conn: i.conn });
        }
    }

    /// Every [`REFRESH`]: presence, leases, peers' presence.
    async fn maintenance(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(hub) = self.hub.upgrade() else {
                return;
            };
            if let Err(e) = self.refresh_presence().await {
                tracing::warn!(error = %e, "signaling hub: cannot refresh this node's presence in Redis");
                continue;
            }
            self.refresh_leases(&hub).await;
            self.check_peers().await;
        }
    }

    async fn refresh_leases(&self, hub: &Arc<Hub>) {
        let _guard = self.claim_lock.lock().await;
        let running: HashSet<String> = hub.task_arns().into_iter().collect();
        let previous = std::mem::take(&mut self.lock().owned);
        for arn in previous.difference(&running) {
            let mut con = self.con.clone();
            let r: redis::RedisResult<i64> = self
                .release
                .key(owner_key(arn))
                .arg(&self.node)
                .invoke_async(&mut con)
                .await;
            if let Err(e) = r {
                tracing::debug!(channel = %arn, error = %e, "signaling hub: lease release failed (it expires)");
            }
        }
        let claims =
            futures_util::future::join_all(running.iter().map(|arn| self.claim(arn))).await;
        let mut owned = HashSet::new();
        for (arn, r) in running.into_iter().zip(claims) {
            match r {
                Ok(owner) if owner == self.node => {
                    owned.insert(arn);
                }
                Ok(owner) => {
                    tracing::warn!(channel = %arn, %owner, "signaling hub: another node took this channel over; sending GO_AWAY to its clients here");
                    hub.send_existing(&arn, Cmd::Shutdown);
                }
                Err(e) => {
                    tracing::debug!(channel = %arn, error = %e, "signaling hub: lease refresh failed");
                    owned.insert(arn);
                }
            }
        }
        self.lock().owned = owned;
    }

    async fn check_peers(&self) {
        let peers: HashSet<String> = {
            let st = self.lock();
            st.outbound
                .values()
                .map(|o| o.owner.clone())
                .chain(st.inbound.keys().map(|(n, _)| n.clone()))
                .collect()
        };
        for peer in peers {
            let mut con = self.con.clone();
            let alive: redis::RedisResult<i64> = redis::cmd("EXISTS")
                .arg(alive_key(&peer))
                .query_async(&mut con)
                .await;
            let Ok(alive) = alive else { return };
            let dead = {
                let mut st = self.lock();
                if alive == 1 {
                    st.suspect.remove(&peer);
                    false
                } else {
                    let n = st.suspect.entry(peer.clone()).or_insert(0);
                    *n += 1;
                    *n >= DEAD_AFTER
                }
            };
            if dead {
                tracing::warn!(%peer, "signaling hub: node went away; dropping its relayed connections");
                self.lock().suspect.remove(&peer);
                self.drop_relays(Some(&peer));
            }
        }
    }

    /// Server shutdown: relayed sockets here get `GO_AWAY`; leases and presence are released
    /// so other nodes take over at once instead of after the expiry.
    pub(super) fn shutdown(self: &Arc<Self>) {
        self.drop_relays(None);
        let cl = self.clone();
        tokio::spawn(async move {
            let owned: Vec<String> = cl.lock().owned.drain().collect();
            let mut con = cl.con.clone();
            for arn in owned {
                let _: redis::RedisResult<i64> = cl
                    .release
                    .key(owner_key(&arn))
                    .arg(&cl.node)
                    .invoke_async(&mut con)
                    .await;
            }
            let _: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(alive_key(&cl.node))
                .query_async(&mut con)
                .await;
        });
    }

    /// DeleteSignalingChannel on this node: tell the others (the owner closes its sockets).
    pub(super) fn channel_deleted(self: &Arc<Self>, arn: &str) {
        let cl = self.clone();
        let env = Envelope::Deleted {
            from: self.node.clone(),
            arn: arn.to_owned(),
        };
        tokio::spawn(async move {
            let payload = serde_json::to_string(&env).expect("envelopes serialize");
            let mut con = cl.con.clone();
            let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(BROADCAST)
                .arg(payload)
                .query_async(&mut con)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "signaling hub: could not tell other nodes a channel was deleted");
            }
        });
    }
}

/// Why a relayed connect did not attach.
enum Relay {
    /// The channel moved to another node meanwhile: look it up again.
    Moved,
    Refused(ApiError),
}

fn lease_ms() -> u64 {
    u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX)
}

fn send_or_spawn(tx: &mpsc::Sender<Cmd>, cmd: Cmd) {
    if let Err(mpsc::error::TrySendError::Full(cmd)) = tx.try_send(cmd) {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(cmd).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_with_a_type_tag() {
        let all = [
            Envelope::Connect {
                from: "a".into(),
                conn: 7,
                arn: "arn:aws:kinesisvideo:us-east-1:1:channel/c/1".into(),
                ttl_ms: 60_000,
                client_id: Some("viewer-1".into()),
            },
            Envelope::Msg {
                from: "a".into(),
                conn: 7,
                text: r#"{"action":"SDP_OFFER"}"#.into(),
            },
            Envelope::Connected {
                from: "b".into(),
                conn: 7,
                error: Some(RemoteError {
                    kind: kind_name(ErrorKind::LimitExceeded),
                    message: "too many viewers".into(),
                    moved_to: None,
                }),
            },
            Envelope::Close {
                from: "b".into(),
                conn: 7,
                code: 1001,
                reason: "going away".into(),
            },
            Envelope::Deleted {
                from: "a".into(),
                arn: "x".into(),
            },
        ];
        for env in all {
            let text = serde_json::to_string(&env).unwrap();
            assert!(text.starts_with(r#"{"t":""#), "{text}");
            assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), env);
        }
    }

    #[test]
    fn error_kinds_survive_the_relay_by_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind_from_name(&kind_name(*kind)), *kind);
        }
        assert_eq!(kind_from_name("NoSuchKind"), ErrorKind::Internal);
    }
}
