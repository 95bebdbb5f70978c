//! Fragment numbers: fixed-width 47-digit decimal strings, as KVS hands out
//! (`kvs-api.md` §7.2), so that lexical and numeric order agree.

use std::fmt;
use std::str::FromStr;

/// A fragment number. Internally a `u128` whose decimal form is zero-padded to 47 digits behind
/// a leading `9` (AWS numbers look like `91343852333181432511524306419788296366724229586`).
///
/// openkvs builds them as `server_start_micros << 20 | counter`, so they increase with
/// ingestion time and never repeat within a stream (see `openkvs-ingest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentNumber(pub u128);

/// Digits after the leading `9`.
const WIDTH: usize = 46;

impl FragmentNumber {
    /// The number for a fragment that started at `server_micros`, `counter` within that microsecond.
    pub fn from_time(server_micros: u64, counter: u32) -> Self {
        Self((u128::from(server_micros) << 20) | u128::from(counter & 0xF_FFFF))
    }

    /// The next number.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for FragmentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "9{:0WIDTH$}", self.0)
    }
}

/// Why a string is not a fragment number this server issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a fragment number of this server (47 digits starting with 9)")]
pub struct FragmentNumberError(String);

impl FromStr for FragmentNumber {
    type Err = FragmentNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || FragmentNumberError(s.chars().take(130).collect());
        let rest = s.strip_prefix('9').ok_or_else(err)?;
        if rest.len() != WIDTH || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        rest.parse::<u128>().map(Self).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_round_trip() {
        let n = FragmentNumber::from_time(1_795_308_023_083_000, 7);
        let s = n.to_string();
        assert_eq!(s.len(), 47);
        assert!(s.starts_with('9'));
        assert_eq!(s.parse::<FragmentNumber>().unwrap(), n);
        assert_eq!(
            FragmentNumber(0).to_string(),
            format!("9{}", "0".repeat(46))
        );
    }

    #[test]
    fn order_is_lexical_and_numeric() {
        let a = FragmentNumber::from_time(1_000_000, 0);
        let b = FragmentNumber::from_time(1_000_000, 1);
        let c = FragmentNumber::from_time(9_000_000_000_000_000, 0);
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
    }

    #[test]
    fn rejects_foreign_numbers() {
        for s in [
            "",
            "123",
            "91343852333181432511524306419788296366724229586x",
            "81343852333181432511524306419788296366724229586",
        ] {
            assert!(s.parse::<FragmentNumber>().is_err(), "{s}");
        }
    }
}
