//! SigV4 timestamps: the ISO 8601 basic form `yyyyMMdd'T'HHmmss'Z'` (`X-Amz-Date`) and the
//! RFC 7231 `Date` header, both as Unix seconds.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// First and last instants `yyyyMMdd'T'HHmmss'Z'` can express: 0000-01-01 and 9999-12-31.
const MIN_UNIX: i64 = -62_167_219_200;
const MAX_UNIX: i64 = 253_402_300_799;

/// Formats Unix seconds as `yyyyMMdd'T'HHmmss'Z'`. Instants outside years 0000..=9999 are
/// clamped to that range: only a broken clock produces them and they still must not panic.
pub(crate) fn format_amz(unix: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(unix.clamp(MIN_UNIX, MAX_UNIX))
        .expect("clamped into the range time supports");
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parses exactly `yyyyMMdd'T'HHmmss'Z'` (16 bytes, nothing else) into Unix seconds.
pub(crate) fn parse_amz(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[4..6])?;
    let day = digits(&b[6..8])?;
    let hour = digits(&b[9..11])?;
    let minute = digits(&b[11..13])?;
    let second = digits(&b[13..15])?;
    to_unix(year, month, day, hour, minute, second)
}

/// Parses an RFC 7231 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`. Also accepts the zones
/// `UTC`, `+0000` and `-0000`, because botocore writes the `Date` header with Python's
/// `email.utils.formatdate()`, which ends in `-0000`.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    // The weekday is redundant; skip it without checking it, as most servers do.
    let (_, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day = parts.next()?;
    let month = parts.next()?;
    let year = parts.next()?;
    let hms = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() || !matches!(zone, "GMT" | "UTC" | "+0000" | "-0000") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let hms = hms.as_bytes();
    if day.len() != 2 || year.len() != 4 || hms.len() != 8 || hms[2] != b':' || hms[5] != b':' {
        return None;
    }
    to_unix(
        digits(year.as_bytes())?,
        u32::try_from(month).ok()?,
        digits(day.as_bytes())?,
        digits(&hms[0..2])?,
        digits(&hms[3..5])?,
        digits(&hms[6..8])?,
    )
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn to_unix(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Describes a duration the way AWS's skew messages do: `15 min.` for whole minutes.
pub(crate) fn window_text(secs: i64) -> String {
    if secs % 60 == 0 {
        format!("{} min.", secs / 60)
    } else {
        format!("{secs} sec.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_round_trip_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("20240101T120000Z", Some(1_704_110_400)),
            ("19700101T000000Z", Some(0)),
            ("20150830T123600Z", Some(1_440_938_160)),
            ("20240229T235959Z", Some(1_709_251_199)),
            ("20230229T000000Z", None), // not a leap year
            ("20240101T240000Z", None),
            ("20240101T120000", None),
            ("20240101 120000Z", None),
            ("2024-01-01T12:00:00Z", None),
            ("2024010AT120000Z", None),
            ("+0240101T120000Z", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_amz(input), *want, "{input}");
            if let Some(unix) = want {
                assert_eq!(format_amz(*unix), *input);
            }
        }
    }

    #[test]
    fn format_clamps_instead_of_panicking() {
        assert_eq!(format_amz(i64::MAX), "99991231T235959Z");
        assert_eq!(format_amz(i64::MIN), "00000101T000000Z");
    }

    #[test]
    fn http_date_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("Mon, 01 Jan 2024 12:00:00 GMT", Some(1_704_110_400)),
            ("Mon, 01 Jan 2024 12:00:00 -0000", Some(1_704_110_400)),
            ("Mon, 01 Jan 2024 12:00:00 +0000", Some(1_704_110_400)),
            ("Mon, 01 Jan 2024 12:00:00 UTC", Some(1_704_110_400)),
            ("Mon, 01 Jan 2024 12:00:00 +0100", None),
            ("Mon, 1 Jan 2024 12:00:00 GMT", None),
            ("Mon, 01 Foo 2024 12:00:00 GMT", None),
            ("Monday, 01-Jan-24 12:00:00 GMT", None),
            ("20240101T120000Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_http_date(input), *want, "{input}");
        }
    }

    #[test]
    fn window_text_table() {
        assert_eq!(window_text(900), "15 min.");
        assert_eq!(window_text(300), "5 min.");
        assert_eq!(window_text(90), "90 sec.");
    }
}
