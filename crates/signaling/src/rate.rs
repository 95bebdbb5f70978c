//! Token buckets in integer milli-tokens, so refill is exact and needs no floats.

use crate::config::Rate;
use crate::time::MonoTime;

/// Milli-tokens per token.
const MILLI: u64 = 1000;

/// A token bucket. It does not store its [`Rate`]: the owner passes the same rate every call,
/// which keeps the bucket two words and the rate in one place ([`crate::Config`]).
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    milli_tokens: u64,
    last: MonoTime,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(rate: Rate, now: MonoTime) -> Self {
        Self {
            milli_tokens: capacity(rate),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, rate: Rate, now: MonoTime) -> bool {
        // `per_second` tokens per 1000 ms is exactly `per_second` milli-tokens per ms.
        let elapsed_ms = now.as_ms().saturating_sub(self.last.as_ms());
        self.last = self.last.max(now);
        let refill = elapsed_ms.saturating_mul(u64::from(rate.per_second));
        self.milli_tokens = self.milli_tokens.saturating_add(refill).min(capacity(rate));
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }

    /// When the bucket will be full again if nothing is taken; `None` if it is full now.
    pub(crate) fn full_at(&self, rate: Rate) -> Option<MonoTime> {
        let missing = capacity(rate) - self.milli_tokens;
        (missing > 0).then(|| {
            let ms = missing.div_ceil(u64::from(rate.per_second));
            MonoTime::from_ms(self.last.as_ms().saturating_add(ms))
        })
    }

    /// For `check_invariants`.
    pub(crate) fn check_invariants(&self, rate: Rate, now: MonoTime) {
        assert!(self.milli_tokens <= capacity(rate), "bucket over capacity");
        assert!(self.last <= now, "bucket refilled in the future");
    }
}

fn capacity(rate: Rate) -> u64 {
    u64::from(rate.burst) * MILLI
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (time in ms, granted?) for a 5/s bucket with burst 5.
    #[test]
    fn five_per_second() {
        let rate = Rate::per_second(5);
        let mut b = TokenBucket::full(rate, MonoTime::ZERO);
        let cases: &[(u64, bool)] = &[
            (0, true),
            (0, true),
            (0, true),
            (0, true),
            (0, true),
            (0, false), // burst spent
            (199, false),
            (200, true), // 1 token per 200 ms
            (200, false),
            (10_000, true), // refill caps at the burst
            (10_000, true),
            (10_000, true),
            (10_000, true),
            (10_000, true),
            (10_000, false),
        ];
        for (i, &(ms, want)) in cases.iter().enumerate() {
            assert_eq!(
                b.try_take(rate, MonoTime::from_ms(ms)),
                want,
                "case {i} at {ms} ms"
            );
            b.check_invariants(rate, MonoTime::from_ms(ms));
        }
    }

    #[test]
    fn full_at() {
        let rate = Rate::per_second(3);
        let mut b = TokenBucket::full(rate, MonoTime::ZERO);
        assert_eq!(b.full_at(rate), None);
        assert!(b.try_take(rate, MonoTime::from_ms(100)));
        // 1000 milli-tokens at 3 per ms: 334 ms.
        assert_eq!(b.full_at(rate), Some(MonoTime::from_ms(434)));
        assert!(b.try_take(rate, MonoTime::from_ms(434)));
        assert_eq!(b.full_at(rate), Some(MonoTime::from_ms(768)));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let rate = Rate {
            per_second: 1,
            burst: 1,
        };
        let mut b = TokenBucket::full(rate, MonoTime::from_ms(5000));
        assert!(b.try_take(rate, MonoTime::from_ms(5000)));
        assert!(!b.try_take(rate, MonoTime::from_ms(1000)));
        assert!(!b.try_take(rate, MonoTime::from_ms(5999)));
        assert!(b.try_take(rate, MonoTime::from_ms(6000)));
    }
}
