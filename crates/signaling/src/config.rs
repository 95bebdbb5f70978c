//! Limits and durations of one signaling channel. Defaults are the KVS quotas
//! (`kvs-api.md` §13.4, §13.5, §15.3).

use std::time::Duration;

use crate::error::{Error, Result};

/// A token-bucket rate: `per_second` tokens are added each second, at most `burst` are kept.
///
/// A bucket starts full, so a fresh connection may send `burst` messages at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate, events per second. At least 1.
    pub per_second: u32,
    /// Bucket size. At least 1.
    pub burst: u32,
}

impl Rate {
    /// `n` per second with a burst of `n`: what the KVS quota tables mean by "n TPS".
    pub const fn per_second(n: u32) -> Self {
        Self {
            per_second: n,
            burst: n,
        }
    }
}

/// Limits of one channel. Build with struct update syntax:
/// `Config { max_viewers: 20, ..Config::default() }`, then [`crate::Channel::new`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The channel's `MessageTtlSeconds`: how long a message for an offline recipient is kept.
    /// 5 s to 120 s, default 60 s (§15.1).
    pub message_ttl: Duration,
    /// Concurrent viewers per channel. Default 10 (a soft limit in KVS, §15.3).
    pub max_viewers: usize,
    /// ConnectAsMaster attempts per channel. Default 3 per second (§15.3).
    pub master_connect_rate: Rate,
    /// ConnectAsViewer attempts per channel, all viewers together. Default 3 per second (§15.3).
    pub viewer_connect_rate: Rate,
    /// `SDP_OFFER` messages per connection. Default 5 per second (§15.3).
    pub sdp_offer_rate: Rate,
    /// `SDP_ANSWER` messages per connection. Default 5 per second (§15.3).
    pub sdp_answer_rate: Rate,
    /// `ICE_CANDIDATE` messages per connection. Default 20 per second (§15.3).
    pub ice_candidate_rate: Rate,
    /// Longest `messagePayload`, in bytes of its base64 text. KVS says "10 K"; the model's
    /// `SendAlexaOfferToMaster` caps at 10 000. Default 10 240, the lenient reading, so no
    /// message AWS accepts is refused here.
    pub max_payload_len: usize,
    /// Longest text frame the channel will parse at all, in bytes. Default 64 KiB: a 10 K payload
    /// plus the C SDK's `IceServerList` fits easily. The shell should also configure its
    /// WebSocket with this as the maximum message size.
    pub max_frame_len: usize,
    /// A connection with no inbound frame (text or ping/pong) for this long is closed.
    /// Default 10 min (§13.4).
    pub idle_timeout: Duration,
    /// A connection this old is sent `GO_AWAY`. Default 1 h (§13.4).
    pub max_connection_duration: Duration,
    /// After `GO_AWAY` the connection is closed this much later. Default 1 min (§13.4).
    pub go_away_grace: Duration,
    /// Messages retained for offline recipients, whole channel. Default 1000 (not a KVS quota:
    /// our bound on memory, about 10 MB at the largest payload).
    pub max_pending: usize,
    /// Messages retained from one sender (the master, or one viewer client id). Default 100, so
    /// one chatty client cannot fill [`Config::max_pending`] and starve the others; a WebRTC
    /// session needs one offer or answer plus a few dozen ICE candidates.
    pub max_pending_per_sender: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            message_ttl: Duration::from_secs(60),
            max_viewers: 10,
            master_connect_rate: Rate::per_second(3),
            viewer_connect_rate: Rate::per_second(3),
            sdp_offer_rate: Rate::per_second(5),
            sdp_answer_rate: Rate::per_second(5),
            ice_candidate_rate: Rate::per_second(20),
            max_payload_len: 10 * 1024,
            max_frame_len: 64 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
            max_connection_duration: Duration::from_secs(60 * 60),
            go_away_grace: Duration::from_secs(60),
            max_pending: 1000,
            max_pending_per_sender: 100,
        }
    }
}

impl Config {
    /// The `MessageTtlSeconds` range of CreateSignalingChannel (§15.1).
    pub const MESSAGE_TTL_RANGE_SECS: std::ops::RangeInclusive<u64> = 5..=120;

    /// Checks ranges; [`crate::Channel::new`] calls this.
    pub fn validate(&self) -> Result<()> {
        let ttl_ok = self.message_ttl.subsec_nanos() == 0
            && Self::MESSAGE_TTL_RANGE_SECS.contains(&self.message_ttl.as_secs());
        if !ttl_ok {
            return Err(Error::InvalidConfig {
                field: "message_ttl",
                reason: "must be a whole number of seconds from 5 to 120",
            });
        }
        let rates = [
            ("master_connect_rate", self.master_connect_rate),
            ("viewer_connect_rate", self.viewer_connect_rate),
            ("sdp_offer_rate", self.sdp_offer_rate),
            ("sdp_answer_rate", self.sdp_answer_rate),
            ("ice_candidate_rate", self.ice_candidate_rate),
        ];
        for (field, rate) in rates {
            if rate.per_second == 0 || rate.burst == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "per_second and burst must be at least 1",
                });
            }
        }
        let positive = [
            ("max_payload_len", self.max_payload_len),
            ("max_frame_len", self.max_frame_len),
            ("max_pending_per_sender", self.max_pending_per_sender),
        ];
        for (field, n) in positive {
            if n == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be at least 1",
                });
            }
        }
        if self.max_pending < self.max_pending_per_sender {
            return Err(Error::InvalidConfig {
                field: "max_pending",
                reason: "must be at least max_pending_per_sender",
            });
        }
        let durations = [
            ("idle_timeout", self.idle_timeout),
            ("max_connection_duration", self.max_connection_duration),
            ("go_away_grace", self.go_away_grace),
        ];
        for (field, d) in durations {
            if d < Duration::from_millis(1) {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be at least 1 ms",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn validation() {
        let cases: Vec<(&str, Config, Option<&str>)> = vec![
            (
                "ttl 5 s",
                Config {
                    message_ttl: Duration::from_secs(5),
                    ..Config::default()
                },
                None,
            ),
            (
                "ttl 120 s",
                Config {
                    message_ttl: Duration::from_secs(120),
                    ..Config::default()
                },
                None,
            ),
            (
                "ttl 4 s",
                Config {
                    message_ttl: Duration::from_secs(4),
                    ..Config::default()
                },
                Some("message_ttl"),
            ),
            (
                "ttl 121 s",
                Config {
                    message_ttl: Duration::from_secs(121),
                    ..Config::default()
                },
                Some("message_ttl"),
            ),
            (
                "ttl 5.5 s",
                Config {
                    message_ttl: Duration::from_millis(5500),
                    ..Config::default()
                },
                Some("message_ttl"),
            ),
            (
                "no viewers",
                Config {
                    max_viewers: 0,
                    ..Config::default()
                },
                None,
            ),
            (
                "zero rate",
                Config {
                    ice_candidate_rate: Rate {
                        per_second: 0,
                        burst: 1,
                    },
                    ..Config::default()
                },
                Some("ice_candidate_rate"),
            ),
            (
                "zero burst",
                Config {
                    viewer_connect_rate: Rate {
                        per_second: 1,
                        burst: 0,
                    },
                    ..Config::default()
                },
                Some("viewer_connect_rate"),
            ),
            (
                "zero payload",
                Config {
                    max_payload_len: 0,
                    ..Config::default()
                },
                Some("max_payload_len"),
            ),
            (
                "pending below per-sender",
                Config {
                    max_pending: 10,
                    max_pending_per_sender: 11,
                    ..Config::default()
                },
                Some("max_pending"),
            ),
            (
                "zero grace",
                Config {
                    go_away_grace: Duration::ZERO,
                    ..Config::default()
                },
                Some("go_away_grace"),
            ),
        ];
        for (name, config, want) in cases {
            let got = match config.validate() {
                Ok(()) => None,
                Err(Error::InvalidConfig { field, .. }) => Some(field),
                Err(e) => panic!("{name}: unexpected {e}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }
}
