//! What a session needs to know before the first byte: the PutMedia request headers (§7.1),
//! the KVS limits (§7.3, §15.2) and what the store already holds.

use kvs_core::FragmentNumber;

/// `x-amzn-fragment-timecode-type` (kvs-api.md §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimecodeType {
    /// Cluster timecodes are the producer's clock (epoch, in TimecodeScale ticks).
    Absolute,
    /// Cluster timecodes count from `x-amzn-producer-start-timestamp`.
    Relative,
}

impl TimecodeType {
    /// Parses the header value (`ABSOLUTE` / `RELATIVE`, as producers send them).
    pub fn from_header(value: &str) -> Option<Self> {
        match value.trim() {
            "ABSOLUTE" => Some(TimecodeType::Absolute),
            "RELATIVE" => Some(TimecodeType::Relative),
            _ => None,
        }
    }
}

/// KVS's maximum fragment size, 50 MiB (ErrorId 4001; kvs-api.md §7.3, §15.2).
pub const MAX_FRAGMENT_BYTES: u64 = 50 << 20;
/// KVS's maximum fragment duration, 10 s (ErrorId 4002).
pub const MAX_FRAGMENT_DURATION_MS: i64 = 10_000;
/// KVS's maximum number of tracks (ErrorId 4012; PIC `MAX_SUPPORTED_TRACK_COUNT_PER_STREAM`).
pub const MAX_TRACKS: usize = 3;
/// KVS's maximum producer metadata tags per fragment (ErrorId 4009).
pub const MAX_TAGS_PER_FRAGMENT: usize = 10;
/// Longest producer tag name in bytes (PIC `MKV_MAX_TAG_NAME_LEN`).
pub const MAX_TAG_NAME_BYTES: usize = 128;
/// Longest producer tag value in bytes (PIC `MKV_MAX_TAG_VALUE_LEN`).
pub const MAX_TAG_VALUE_BYTES: usize = 256;
/// Default parser bound on one buffered element (a SimpleBlock, Tracks...): 16 MiB.
pub const MAX_ELEMENT_SIZE: u64 = mkv::DEFAULT_MAX_ELEMENT_SIZE;

/// Everything a [`crate::Session`] is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The stream's ARN, copied into every fragment.
    pub stream_arn: String,
    /// `x-amzn-fragment-timecode-type`.
    pub timecode_type: TimecodeType,
    /// `x-amzn-producer-start-timestamp` in epoch ms (see [`parse_producer_start_ms`]); only
    /// used in RELATIVE mode. When it is missing there, the server time of the session's
    /// first fragment stands in for it.
    pub producer_start_ms: Option<i64>,
    /// Largest fragment in media bytes (4001). Values above `u32::MAX` are treated as
    /// `u32::MAX`: frame offsets in the store's frame table are `u32`.
    pub max_fragment_bytes: u64,
    /// Longest fragment in ms (4002).
    pub max_fragment_duration_ms: i64,
    /// Most tracks a `Tracks` element may list (4012).
    pub max_tracks: usize,
    /// Most producer tags per fragment (4009); names ≤ 128 bytes and values ≤ 256 bytes are
    /// fixed by KVS.
    pub max_tags_per_fragment: usize,
    /// The MKV parser's bound on one buffered element (SimpleBlock, Tracks, Tags...); larger
    /// elements end the session with 4001.
    pub max_element_size: u64,
    /// The stream's newest stored fragment number: every number this session assigns is
    /// greater.
    pub last_number: Option<FragmentNumber>,
    /// `(producer_ms, number)` of recently stored fragments, in any order: a fragment whose
    /// producer timestamp is among them is a replay (see [`crate::Output::Duplicate`]).
    pub recent: Vec<(i64, FragmentNumber)>,
}

impl SessionConfig {
    /// KVS defaults (ABSOLUTE timecodes, 50 MiB / 10 s fragments, 3 tracks, 10 tags, 16 MiB
    /// elements) and an empty stream history.
    pub fn new(stream_arn: impl Into<String>) -> Self {
        SessionConfig {
            stream_arn: stream_arn.into(),
            timecode_type: TimecodeType::Absolute,
            producer_start_ms: None,
            max_fragment_bytes: MAX_FRAGMENT_BYTES,
            max_fragment_duration_ms: MAX_FRAGMENT_DURATION_MS,
            max_tracks: MAX_TRACKS,
            max_tags_per_fragment: MAX_TAGS_PER_FRAGMENT,
            max_element_size: MAX_ELEMENT_SIZE,
            last_number: None,
            recent: Vec::new(),
        }
    }
}

/// Parses `x-amzn-producer-start-timestamp`: epoch **seconds** as a decimal, e.g.
/// `1732012345.678` → `1732012345678` ms. Digits past milliseconds are truncated (Python
/// clients send microseconds). The C producer prints the millisecond part without zero
/// padding, so it sends 5 ms as `.5`; that reads as 500 ms here, as it does at KVS
/// (kvs-api.md §7.1). `None` for anything that is not a non-negative decimal.
pub fn parse_producer_start_ms(header: &str) -> Option<i64> {
    let s = header.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ms = 0i64;
    for i in 0..3 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        ms = ms * 10 + d;
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_start_timestamp() {
        let cases = [
            ("1795306204.485", Some(1_795_306_204_485)),
            ("1732012345.678", Some(1_732_012_345_678)),
            ("1732012345.5", Some(1_732_012_345_500)),
            ("1732012345.6789012", Some(1_732_012_345_678)),
            ("1732012345", Some(1_732_012_345_000)),
            ("1732012345.", Some(1_732_012_345_000)),
            (" 0 ", Some(0)),
            (".25", Some(250)),
            ("", None),
            (".", None),
            ("-1.0", None),
            ("1e9", None),
            ("12.3.4", None),
            ("99999999999999999999", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_producer_start_ms(input), want, "{input:?}");
        }
    }

    #[test]
    fn timecode_type_header() {
        assert_eq!(
            TimecodeType::from_header("ABSOLUTE"),
            Some(TimecodeType::Absolute)
        );
        assert_eq!(
            TimecodeType::from_header("RELATIVE"),
            Some(TimecodeType::Relative)
        );
        assert_eq!(TimecodeType::from_header("absolute"), None);
    }
}
