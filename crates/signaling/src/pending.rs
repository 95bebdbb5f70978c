//! Messages retained for recipients that are not connected (`kvs-api.md` §13.5, "Delivery
//! semantics").
//!
//! One FIFO queue per recipient. Messages enter in arrival order and `now` never decreases, so
//! each queue is sorted by arrival time and expiry only ever pops from the front.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::channel::{Action, DropReason, Event, Output, Role};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::time::MonoTime;

/// One retained message, already rendered for its recipient.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) from: Role,
    pub(crate) action: Action,
    pub(crate) text: String,
    pub(crate) received_at: MonoTime,
}

/// All retained messages of a channel.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    queues: BTreeMap<Role, VecDeque<Message>>,
    per_sender: BTreeMap<Role, usize>,
    total: usize,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// Retains `msg` for `to`.
    ///
    /// An `SDP_OFFER` starts a new WebRTC session, so it supersedes everything its sender still
    /// has queued for the same recipient: the older offer ("newest offer wins") and the ICE
    /// candidates of that older session, which would only confuse the new one. Those are
    /// dropped (logged) before the limits are checked, so a re-offer always fits where the old
    /// one did. On refusal nothing changes.
    pub(crate) fn push(
        &mut self,
        to: Role,
        msg: Message,
        config: &Config,
        out: &mut VecDeque<Output>,
    ) -> Result<()> {
        let queue = self.queues.get(&to);
        let superseded = if msg.action == Action::SdpOffer {
            queue.map_or(0, |q| q.iter().filter(|m| m.from == msg.from).count())
        } else {
            0
        };
        let from_sender = self.per_sender.get(&msg.from).copied().unwrap_or(0);
        if from_sender - superseded >= config.max_pending_per_sender {
            return Err(Error::PendingPerSenderLimit {
                max: config.max_pending_per_sender,
            });
        }
        if self.total - superseded >= config.max_pending {
            return Err(Error::PendingLimit {
                max: config.max_pending,
            });
        }
        self.adjust_sender(&msg.from, superseded);
        *self.per_sender.entry(msg.from.clone()).or_default() += 1;
        self.total = self.total - superseded + 1;
        let queue = self.queues.entry(to.clone()).or_default();
        if superseded > 0 {
            let from = &msg.from;
            queue.retain(|m| {
                let keep = m.from != *from;
                if !keep {
                    out.push_back(Output::Log(Event::MessageDropped {
                        from: m.from.clone(),
                        to: to.clone(),
                        action: m.action,
                        reason: DropReason::Superseded,
                    }));
                }
                keep
            });
        }
        out.push_back(Output::Log(Event::MessageRetained {
            from: msg.from.clone(),
            to,
            action: msg.action,
        }));
        queue.push_back(msg);
        Ok(())
    }

    /// Removes `n` messages from `from`'s count.
    fn adjust_sender(&mut self, from: &Role, n: usize) {
        if n == 0 {
            return;
        }
        let count = self
            .per_sender
            .get_mut(from)
            .expect("sender of a queued message is counted");
        *count -= n;
        if *count == 0 {
            self.per_sender.remove(from);
        }
    }

    /// Everything retained for `to`, in arrival order, removed from the store.
    pub(crate) fn take(&mut self, to: &Role) -> VecDeque<Message> {
        let queue = self.queues.remove(to).unwrap_or_default();
        for m in &queue {
            self.adjust_sender(&m.from, 1);
        }
        self.total -= queue.len();
        queue
    }

    /// Drops messages older than `ttl`: a message received at `t` is deliverable while
    /// `now < t + ttl`.
    pub(crate) fn expire(&mut self, now: MonoTime, ttl: Duration, out: &mut VecDeque<Output>) {
        let mut dropped = Vec::new();
        self.queues.retain(|to, queue| {
            while queue.front().is_some_and(|m| m.received_at + ttl <= now) {
                let m = queue.pop_front().expect("front exists");
                out.push_back(Output::Log(Event::MessageDropped {
                    from: m.from.clone(),
                    to: to.clone(),
                    action: m.action,
                    reason: DropReason::Expired,
                }));
                dropped.push(m.from);
            }
            !queue.is_empty()
        });
        for from in &dropped {
            self.adjust_sender(from, 1);
        }
        self.total -= dropped.len();
    }

    /// Drops everything (shutdown).
    pub(crate) fn clear(&mut self, out: &mut VecDeque<Output>) {
        for (to, queue) in std::mem::take(&mut self.queues) {
            for m in queue {
                out.push_back(Output::Log(Event::MessageDropped {
                    from: m.from,
                    to: to.clone(),
                    action: m.action,
                    reason: DropReason::Shutdown,
                }));
            }
        }
        self.per_sender.clear();
        self.total = 0;
    }

    /// When the oldest message expires.
    pub(crate) fn next_expiry(&self, ttl: Duration) -> Option<MonoTime> {
        self.queues
            .values()
            .filter_map(|q| q.front())
            .map(|m| m.received_at + ttl)
            .min()
    }

    /// Recipients with retained messages.
    pub(crate) fn recipients(&self) -> impl Iterator<Item = &Role> {
        self.queues.keys()
    }

    pub(crate) fn check_invariants(&self, now: MonoTime, config: &Config) {
        let mut total = 0;
        let mut per_sender: BTreeMap<&Role, usize> = BTreeMap::new();
        for (to, queue) in &self.queues {
            assert!(!queue.is_empty(), "empty queue kept for {to:?}");
            let mut prev = MonoTime::ZERO;
            let mut seen_senders: Vec<&Role> = Vec::new();
            for m in queue {
                assert!(
                    prev <= m.received_at,
                    "queue for {to:?} not in arrival order"
                );
                prev = m.received_at;
                assert!(m.received_at <= now, "message from the future");
                assert!(
                    now < m.received_at + config.message_ttl,
                    "expired message kept for {to:?}"
                );
                // Newest offer wins: an offer is its sender's first queued message to `to`.
                let first_from_sender = !seen_senders.contains(&&m.from);
                if m.action == Action::SdpOffer {
                    assert!(
                        first_from_sender,
                        "older message from {:?} kept before its offer to {to:?}",
                        m.from
                    );
                }
                if first_from_sender {
                    seen_senders.push(&m.from);
                }
                *per_sender.entry(&m.from).or_default() += 1;
                total += 1;
            }
        }
        assert_eq!(total, self.total, "pending total");
        assert!(self.total <= config.max_pending, "over max_pending");
        assert_eq!(
            per_sender.len(),
            self.per_sender.len(),
            "pending sender count"
        );
        for (from, n) in &self.per_sender {
            assert_eq!(per_sender.get(from), Some(n), "pending count of {from:?}");
            assert!(
                *n <= config.max_pending_per_sender,
                "over max_pending_per_sender"
            );
        }
    }
}
