//! In-process live state per stream: "a fragment was stored" notifications for live readers
//! (GetMedia, later HLS/DASH LIVE), the one active producer ("newest connection wins"), and
//! the short in-memory buffer of streams that keep no data (retention 0).
//!
//! With the scale-out store (PostgreSQL fragment index), fragments persisted on other nodes are
//! announced here too: the server runs the store's `LISTEN` task and forwards each notification
//! to [`Hub::published`], and a reconnection of that task to [`Hub::wake_all`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kvs_core::FragmentNumber;
use store::{FragmentMeta, FrameEntry, TrackSet};
use tokio::sync::watch;

/// A fragment kept only in memory (retention-0 streams).
#[derive(Debug, Clone)]
pub struct MemFragment {
    /// Its metadata.
    pub meta: FragmentMeta,
    /// Tracks.
    pub tracks: Arc<TrackSet>,
    /// Frame table.
    pub frames: Arc<Vec<FrameEntry>>,
    /// Media bytes.
    pub media: Bytes,
}

/// How much of a retention-0 stream stays readable (KVS: about 5 minutes / 200 MB).
const MEM_MAX_MS: i64 = 5 * 60 * 1000;
const MEM_MAX_BYTES: usize = 200 << 20;

#[derive(Debug)]
struct StreamLive {
    newest: watch::Sender<Option<FragmentNumber>>,
    producer: Option<(u64, watch::Sender<bool>)>,
    memory: VecDeque<MemFragment>,
    memory_bytes: usize,
}

impl StreamLive {
    fn new() -> Self {
        Self {
            newest: watch::channel(None).0,
            producer: None,
            memory: VecDeque::new(),
            memory_bytes: 0,
        }
    }
}

/// Live state of all streams.
#[derive(Debug, Default)]
pub struct Hub {
    streams: Mutex<HashMap<String, StreamLive>>,
    next_id: std::sync::atomic::AtomicU64,
    shutdown: ShutdownFlag,
}

/// A latch: once set, every waiter (now and later) returns at once.
#[derive(Debug)]
struct ShutdownFlag(watch::Sender<bool>);

impl Default for ShutdownFlag {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

/// Held by a PutMedia session; dropping it unregisters the producer.
#[derive(Debug)]
pub struct ProducerGuard {
    hub: Arc<Hub>,
    arn: String,
    id: u64,
    /// Becomes `true` when a newer connection for the same stream takes over.
    pub replaced: watch::Receiver<bool>,
}

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        let mut m = self.hub.streams.lock().expect("hub mutex");
        if let Some(s) = m.get_mut(&self.arn)
            && s.producer.as_ref().is_some_and(|(id, _)| *id == self.id)
        {
            s.producer = None;
        }
    }
}

impl Hub {
    /// Ends every PutMedia session and live GetMedia (graceful server shutdown): long-lived
    /// streams would otherwise hold the shutdown for its whole grace period.
    pub fn shutdown(&self) {
        self.shutdown.0.send_replace(true);
    }

    /// Resolves once [`Self::shutdown`] was called.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.0.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    fn with<T>(&self, arn: &str, f: impl FnOnce(&mut StreamLive) -> T) -> T {
        let mut m = self.streams.lock().expect("hub mutex");
        f(m.entry(arn.to_owned()).or_insert_with(StreamLive::new))
    }

    /// Registers a new producer for the stream; the previous one (if any) is told to stop.
    pub fn register_producer(self: &Arc<Self>, arn: &str) -> ProducerGuard {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        let old = self.with(arn, |s| s.producer.replace((id, tx)));
        if let Some((old_id, old_tx)) = old {
            tracing::info!(
                stream_arn = arn,
                old_id,
                new_id = id,
                "a newer PutMedia connection replaces the active one"
            );
            let _ = old_tx.send(true);
        }
        ProducerGuard {
            hub: self.clone(),
            arn: arn.to_owned(),
            id,
            replaced: rx,
        }
    }

    /// Announces a newly stored fragment.
    pub fn published(&self, arn: &str, number: FragmentNumber) {
        self.with(arn, |s| {
            s.newest.send_replace(Some(number));
        });
    }

    /// Announces a fragment another node stored (the cross-node listener). Unlike
    /// [`Self::published`] it creates no state for a stream nobody here reads or produces.
    pub fn published_elsewhere(&self, arn: &str, number: FragmentNumber) {
        if let Some(s) = self.streams.lock().expect("hub mutex").get(arn) {
            s.newest.send_replace(Some(number));
        }
    }

    /// Wakes every reader of every stream, e.g. after announcements may have been lost (the
    /// cross-node listener reconnected): each re-reads the index and finds what it missed.
    pub fn wake_all(&self) {
        let m = self.streams.lock().expect("hub mutex");
        for s in m.values() {
            s.newest.send_modify(|_| {});
        }
    }

    /// Waits for announcements on a stream.
    pub fn subscribe(&self, arn: &str) -> watch::Receiver<Option<FragmentNumber>> {
        self.with(arn, |s| s.newest.subscribe())
    }

    /// Keeps a retention-0 fragment in memory and announces it.
    pub fn keep_in_memory(&self, f: MemFragment) {
        let arn = f.meta.stream_arn.clone();
        let number = f.meta.number;
        self.with(&arn, |s| {
            s.memory_bytes += f.media.len();
            let newest_ms = f.meta.server_ms;
            s.memory.push_back(f);
            while let Some(front) = s.memory.front() {
                if s.memory.len() > 1
                    && (s.memory_bytes > MEM_MAX_BYTES
                        || newest_ms - front.meta.server_ms > MEM_MAX_MS)
                {
                    s.memory_bytes -= front.media.len();
                    s.memory.pop_front();
                } else {
                    break;
                }
            }
            s.newest.send_replace(Some(number));
        });
    }

    /// In-memory fragments after `after` (all if `None`).
    pub fn memory_after(&self, arn: &str, after: Option<FragmentNumber>) -> Vec<MemFragment> {
        self.with(arn, |s| {
            s.memory
                .iter()
                .filter(|f| after.is_none_or(|a| f.meta.number > a))
                .cloned()
                .collect()
        })
    }

    /// Forgets a deleted stream (readers and the producer see it gone).
    pub fn remove(&self, arn: &str) {
        let removed = self.streams.lock().expect("hub mutex").remove(arn);
        if let Some(s) = removed
            && let Some((_, tx)) = s.producer
        {
            let _ = tx.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remote_announcements_and_wake_all_reach_subscribers() {
        let hub = Hub::default();
        let n = FragmentNumber(7);
        // Nobody reads "b": no state is created for it.
        hub.published_elsewhere("b", n);
        assert!(hub.streams.lock().unwrap().get("b").is_none());

        let mut rx = hub.subscribe("a");
        rx.borrow_and_update();
        hub.published_elsewhere("a", n);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Some(n));

        // wake_all: a change without a new number, for every stream.
        let mut rx2 = hub.subscribe("c");
        rx2.borrow_and_update();
        assert!(!rx.has_changed().unwrap());
        hub.wake_all();
        assert!(rx.has_changed().unwrap() && rx2.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Some(n));
    }
}
