//! The channel's notion of time: milliseconds on the shell's monotonic clock.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time: milliseconds since an epoch the shell picks, on a monotonic clock.
///
/// The core never reads a clock (`clippy.toml` bans `Instant::now`); every input carries the
/// time. A shell typically fixes `let epoch = Instant::now()` once and passes
/// `MonoTime::from_ms(epoch.elapsed().as_millis() as u64)`; it turns a deadline back into an
/// `Instant` with `epoch + Duration::from_millis(deadline.as_ms())`.
///
/// A plain integer rather than [`std::time::Instant`] because tests and the proptest can then
/// start at zero and print readable times, and because millisecond resolution is all the
/// signaling limits need (the finest is 20 ICE candidates per second).
///
/// Arithmetic saturates: [`MonoTime::MAX`] is "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(u64);

impl MonoTime {
    /// The epoch.
    pub const ZERO: Self = Self(0);
    /// The far future; adding to it saturates.
    pub const MAX: Self = Self(u64::MAX);

    /// `ms` milliseconds after the epoch.
    pub const fn from_ms(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds after the epoch.
    pub const fn as_ms(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for MonoTime {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_ms(d)))
    }
}

impl fmt::Display for MonoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(MonoTime::MAX + Duration::from_secs(1), MonoTime::MAX);
        assert_eq!(
            MonoTime::from_ms(5).saturating_since(MonoTime::from_ms(9)),
            Duration::ZERO
        );
        assert_eq!(
            MonoTime::from_ms(1500) + Duration::from_micros(2500),
            MonoTime::from_ms(1502)
        );
        assert_eq!(MonoTime::from_ms(61_005).to_string(), "61.005s");
    }
}
