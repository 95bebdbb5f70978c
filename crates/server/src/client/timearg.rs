//! Points in time on the command line (`--start`, `--end`): ISO-8601 / RFC 3339
//! (`2026-11-22T10:00:00Z`, `2026-11-22T11:00:00+01:00`), epoch seconds (`1795341600`,
//! `1795341600.5`), `now`, and times relative to now (`-15m`, `-2h`, `now-90s`).

use crate::client::duration::parse_duration;

/// A time as written: absolute, or an offset back from the moment the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeArg {
    /// Epoch milliseconds.
    At(i64),
    /// This many milliseconds before now (0 for `now`).
    Ago(i64),
}

impl TimeArg {
    /// Epoch milliseconds, with `now_ms` as the present.
    pub(crate) fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeArg::At(ms) => ms,
            TimeArg::Ago(ms) => now_ms.saturating_sub(ms),
        }
    }
}

const FORMS: &str = "write ISO-8601 (2026-11-22T10:00:00Z), epoch seconds (1795341600), `now`, \
or a time before now (-15m, -2h, -1d, now-90s)";

/// Parses a `--start` / `--end` value.
pub(crate) fn parse_time(s: &str) -> Result<TimeArg, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(TimeArg::Ago(0));
    }
    let rel = t
        .strip_prefix('-')
        .or_else(|| {
            t.get(..4)
                .filter(|p| p.eq_ignore_ascii_case("now-"))
                .map(|_| &t[4..])
        })
        .map(str::trim);
    if let Some(rel) = rel {
        let d = parse_duration(rel).map_err(|e| format!("`{s}`: {e}"))?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| format!("`{s}` is too far back"))?;
        return Ok(TimeArg::Ago(ms));
    }
    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() || frac.contains('.') || frac.len() > 3 {
            return Err(format!(
                "`{s}` is not epoch seconds: at most 3 decimals, e.g. 1795341600.250"
            ));
        }
        let secs: i64 = whole.parse().map_err(|_| format!("`{s}` is too large"))?;
        let ms: i64 = format!("{frac:0<3}").parse().unwrap_or(0);
        return secs
            .checked_mul(1000)
            .and_then(|x| x.checked_add(ms))
            .map(TimeArg::At)
            .ok_or_else(|| format!("`{s}` is too large"));
    }
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            if t.contains('T')
                && !t.ends_with(['Z', 'z'])
                && !t[t.len().saturating_sub(6)..].contains(['+', '-'])
            {
                format!("`{s}` has no time zone: add Z for UTC or an offset like +01:00")
            } else {
                format!("`{s}` is not a time: {FORMS}")
            }
        })?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000)
        .map(TimeArg::At)
        .map_err(|_| format!("`{s}` is out of range"))
}

/// Epoch milliseconds as epoch seconds, the way KVS timestamps are written: `1795341600`, or
/// `1795341600.25` when there are milliseconds.
pub(crate) fn epoch_secs(ms: i64) -> String {
    let (s, r) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if r == 0 {
        s.to_string()
    } else {
        format!("{s}.{r:03}").trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

    #[test]
    fn times() {
        let cases: [(&str, Option<TimeArg>); 24] = [
            ("2026-11-22T10:00:00Z", Some(TimeArg::At(T))),
            ("2026-11-22T10:00:00z", Some(TimeArg::At(T))),
            ("2026-11-22T11:00:00+01:00", Some(TimeArg::At(T))),
            ("2026-11-22T10:00:00.250Z", Some(TimeArg::At(T + 250))),
            ("1795341600", Some(TimeArg::At(T))),
            ("1795341600.25", Some(TimeArg::At(T + 250))),
            ("1795341600.007", Some(TimeArg::At(T + 7))),
            (" 1795341600 ", Some(TimeArg::At(T))),
            ("now", Some(TimeArg::Ago(0))),
            ("NOW", Some(TimeArg::Ago(0))),
            ("-15m", Some(TimeArg::Ago(900_000))),
            ("-2h", Some(TimeArg::Ago(7_200_000))),
            ("-90s", Some(TimeArg::Ago(90_000))),
            ("-1d", Some(TimeArg::Ago(86_400_000))),
            ("-300", Some(TimeArg::Ago(300_000))),
            ("now-15m", Some(TimeArg::Ago(900_000))),
            ("2026-11-22T10:00:00", None),
            ("2026-11-22", None),
            ("yesterday", None),
            ("", None),
            ("-", None),
            ("-1.5h", None),
            ("1795341600.1234", None),
            ("1.2.3", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_time(input).ok(), want, "{input:?}");
        }
    }

    #[test]
    fn relative_times_resolve_against_now() {
        assert_eq!(parse_time("-15m").unwrap().resolve(T), T - 900_000);
        assert_eq!(parse_time("now").unwrap().resolve(T), T);
        assert_eq!(parse_time("1795341600").unwrap().resolve(0), T);
    }

    #[test]
    fn missing_zone_is_explained() {
        let e = parse_time("2026-11-22T10:00:00").unwrap_err();
        assert!(e.contains("time zone"), "{e}");
    }

    #[test]
    fn epoch_seconds_text() {
        assert_eq!(epoch_secs(T), "1795341600");
        assert_eq!(epoch_secs(T + 250), "1795341600.25");
        assert_eq!(epoch_secs(T + 7), "1795341600.007");
        assert_eq!(epoch_secs(0), "0");
    }
}
