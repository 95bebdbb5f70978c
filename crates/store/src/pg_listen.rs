//! Cross-node "a fragment was stored" announcements over PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! The S3 store's index insert runs `pg_notify(FRAGMENT_CHANNEL, '<number> <stream ARN>')` in
//! the fragment's transaction, so PostgreSQL delivers it at commit, and only if the commit
//! succeeded: a node never announces a fragment that is not durable. Every node runs
//! [`spawn_fragment_listener`] on its own connection (outside the pool) and hands each
//! announcement to its local live readers (GetMedia tails).
//!
//! Notifications are not queued for a listener that is not connected. After the connection was
//! lost (PostgreSQL restart, network) and is back, the listener reports
//! [`FragmentEvent::Resync`], on which callers wake every local reader to re-query the index,
//! so nothing stored during the gap is missed.

use std::time::{Duration, Instant};

use kvs_core::FragmentNumber;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::pg::PgPool;

/// The `NOTIFY` channel of stored fragments.
pub const FRAGMENT_CHANNEL: &str = "openkvs_fragment";

/// The notification payload of a stored fragment: `<number> <stream ARN>` (a fragment number
/// has no space; an ARN may in principle, so it goes last).
#[cfg_attr(not(feature = "s3"), allow(dead_code))] // written only by the S3 store
pub(crate) fn payload(stream_arn: &str, number: FragmentNumber) -> String {
    format!("{number} {stream_arn}")
}

/// Parses [`payload`]'s output.
fn parse_payload(p: &str) -> Option<(FragmentNumber, &str)> {
    let (number, arn) = p.split_once(' ')?;
    let number = number.parse().ok()?;
    (!arn.is_empty()).then_some((number, arn))
}

/// What the listener reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentEvent {
    /// A node committed this fragment to the shared index.
    Stored {
        /// The stream.
        stream_arn: String,
        /// The fragment.
        number: FragmentNumber,
    },
    /// The listener is listening (again): announcements from before, e.g. while it was
    /// disconnected, are lost, so every live reader should re-query the index. Reported after
    /// the first `LISTEN` too, so a caller knows from when on announcements arrive.
    Resync,
}

/// Tuning of [`spawn_fragment_listener`].
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// First delay before reconnecting (default 100 ms); doubles per failed attempt.
    pub min_backoff: Duration,
    /// Largest delay between reconnection attempts (default 2 s): after PostgreSQL is back,
    /// readers rely on their slower poll for at most this long.
    pub max_backoff: Duration,
    /// How often an idle connection is checked with a query (default 15 s), so a silently
    /// dead connection (no FIN/RST, e.g. a network partition) is noticed.
    pub keepalive: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Listens on [`FRAGMENT_CHANNEL`] until the returned task is aborted, calling `on_event` for
/// every announcement; reconnects with exponential backoff when the connection is lost,
/// logging the loss and the reconnection, and reports [`FragmentEvent::Resync`] each time it
/// is listening (first connection and every reconnection). `on_event` runs on the listener
/// task: keep it short and non-blocking.
pub fn spawn_fragment_listener(
    pg: &PgPool,
    options: ListenOptions,
    on_event: impl Fn(FragmentEvent) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let config = pg.config().clone();
    tokio::spawn(async move {
        let mut backoff = options.min_backoff;
        // When the last good connection was lost; `None` before the first one.
        let mut lost_at: Option<Instant> = None;
        let mut attempts = 0u32;
        loop {
            match listen_once(&config, &options, &on_event, lost_at).await {
                Listened::Lost(why) => {
                    tracing::warn!(error = %why, "PostgreSQL fragment listener lost its connection; reconnecting (live readers fall back to polling meanwhile)");
                    lost_at = Some(Instant::now());
                    backoff = options.min_backoff;
                    attempts = 0;
                }
                Listened::ConnectFailed(e) => {
                    let e = describe(&e);
                    attempts += 1;
                    // Every attempt at first, then at powers of two: a long outage does not
                    // flood the log.
                    if attempts <= 3 || attempts.is_power_of_two() {
                        tracing::warn!(error = %e, attempts, retry_in_ms = backoff.as_millis() as u64, "PostgreSQL fragment listener cannot connect");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(options.max_backoff);
        }
    })
}

/// An error with what tokio-postgres keeps in its sources (its `Display` alone says only "db
/// error" or "error connecting to server").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

enum Listened {
    /// Could not connect or `LISTEN`.
    ConnectFailed(tokio_postgres::Error),
    /// Listened, then the connection ended.
    Lost(String),
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    options: &ListenOptions,
    on_event: &(impl Fn(FragmentEvent) + Send + Sync),
    lost_at: Option<Instant>,
) -> Listened {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(c) => c,
        Err(e) => return Listened::ConnectFailed(e),
    };
    // The connection must be polled for the client to work; it forwards notifications.
    let (tx, mut rx) = mpsc::unbounded_channel::<AsyncMessage>();
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(m)) => {
                    if tx.send(m).is_err() {
                        return "listener gone".to_owned();
                    }
                }
                Some(Err(e)) => return describe(&e),
                None => return "connection closed".to_owned(),
            }
        }
    });
    let _abort = AbortOnDrop(driver.abort_handle());
    if let Err(e) = client
        .batch_execute(&format!("LISTEN {FRAGMENT_CHANNEL}"))
        .await
    {
        return Listened::ConnectFailed(e);
    }
    match lost_at {
        Some(t) => tracing::info!(
            down_ms = t.elapsed().as_millis() as u64,
            "PostgreSQL fragment listener reconnected; waking every live reader to re-read the index"
        ),
        None => tracing::info!(
            channel = FRAGMENT_CHANNEL,
            "listening for fragments stored by any node"
        ),
    }
    on_event(FragmentEvent::Resync);
    let mut tick = tokio::time::interval(options.keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(AsyncMessage::Notification(n)) => {
                    if n.channel() != FRAGMENT_CHANNEL {
                        continue;
                    }
                    match parse_payload(n.payload()) {
                        Some((number, arn)) => on_event(FragmentEvent::Stored {
                            stream_arn: arn.to_owned(),
                            number,
                        }),
                        None => tracing::warn!(payload = n.payload(), "ignoring a malformed fragment notification"),
                    }
                }
                Some(AsyncMessage::Notice(n)) => {
                    tracing::debug!(notice = %n, "PostgreSQL notice on the fragment listener");
                }
                Some(_) => {}
                None => {
                    let why = (&mut driver)
                        .await
                        .unwrap_or_else(|e| format!("connection task failed: {e}"));
                    return Listened::Lost(why);
                }
            },
            _ = tick.tick() => {
                match tokio::time::timeout(options.keepalive, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Listened::Lost(describe(&e)),
                    Err(_) => return Listened::Lost("keepalive query timed out".to_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let arn = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam 1/1700000000000";
        let n = FragmentNumber::from_time(1_795_308_023_083_000, 7);
        let p = payload(arn, n);
        assert_eq!(parse_payload(&p), Some((n, arn)));
        assert_eq!(parse_payload("12"), None);
        assert_eq!(parse_payload("12 "), None);
        assert_eq!(parse_payload("x arn"), None);
    }
}
