//! Command-line values with units: durations (`300`, `15m`, `1h`, `7d`) and byte sizes
//! (`128MiB`).

use std::time::Duration;

/// Parses a duration: a whole number with an optional unit `s`, `m`, `h` or `d` (seconds
/// without a unit), e.g. `300`, `90s`, `15m`, `1h`, `7d`. Zero is rejected.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a duration: write a number with an optional unit s, m, h or d, e.g. 300, 15m, 1h, 7d"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is too large"))?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use s, m, h or d (e.g. 15m, 1h, 7d)"
            ));
        }
    };
    let secs = n
        .checked_mul(unit_secs)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if secs == 0 {
        return Err("the duration must be at least 1 second".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Longest presigned-URL lifetime SigV4 allows: 7 days (`X-Amz-Expires` ≤ 604800).
pub(crate) const MAX_PRESIGN_EXPIRES: Duration = Duration::from_secs(7 * 86_400);

/// [`parse_duration`] limited to [`MAX_PRESIGN_EXPIRES`], for `--expires`.
pub(crate) fn parse_expires(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > MAX_PRESIGN_EXPIRES {
        return Err(format!(
            "`{s}` is longer than 7d, the longest lifetime of a presigned URL (SigV4 X-Amz-Expires ≤ 604800 s)"
        ));
    }
    Ok(d)
}

/// Parses a byte size: a whole number with an optional unit `K`/`KiB`, `M`/`MiB`, `G`/`GiB`
/// (all powers of 1024, case-insensitive, optional `B`), e.g. `128MiB`, `64M`, `1048576`.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size: write a number with an optional unit KiB, MiB or GiB, e.g. 128MiB"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`: use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: [(&str, Option<u64>); 14] = [
            ("300", Some(300)),
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("1h", Some(3600)),
            ("7d", Some(604_800)),
            (" 2h ", Some(7200)),
            ("0", None),
            ("0s", None),
            ("", None),
            ("h", None),
            ("1.5h", None),
            ("1w", None),
            ("-5", None),
            ("99999999999999999999d", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).ok().map(|d| d.as_secs());
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn expires_is_at_most_seven_days() {
        assert_eq!(parse_expires("7d").unwrap().as_secs(), 604_800);
        assert_eq!(parse_expires("604800").unwrap().as_secs(), 604_800);
        let err = parse_expires("604801").unwrap_err();
        assert!(err.contains("7d"), "{err}");
        assert!(parse_expires("8d").is_err());
    }

    #[test]
    fn byte_sizes() {
        let cases: [(&str, Option<u64>); 9] = [
            ("1048576", Some(1 << 20)),
            ("128MiB", Some(128 << 20)),
            ("64M", Some(64 << 20)),
            ("1gib", Some(1 << 30)),
            ("16 KiB", Some(16 << 10)),
            ("5B", Some(5)),
            ("MiB", None),
            ("3TiB", None),
            ("99999999999GiB", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_bytes(input).ok(), want, "{input:?}");
        }
    }
}
