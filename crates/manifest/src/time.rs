//! Text forms of times: ISO 8601 / xs:dateTime in UTC with milliseconds, xs:duration, and
//! fixed-point seconds. Integer arithmetic only, so output never depends on float rounding.

/// `2023-05-17T13:48:35.994Z` for milliseconds since the Unix epoch (the form of KVS's
/// `#EXT-X-PROGRAM-DATE-TIME`, kvs-api.md §11.2). Proleptic Gregorian, years 0..=9999.
pub(crate) fn iso8601_ms(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000);
    let (y, m, d) = kvs_core::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// `2.663` for 2663 ms: seconds with exactly three decimals (EXTINF, kvs-api.md §11.2).
pub(crate) fn seconds_3(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

/// xs:duration `PT2.663S` (no larger units: always valid, and what DASH packagers emit).
pub(crate) fn xs_duration(ms: i64) -> String {
    format!("PT{}S", seconds_3(ms.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_table() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z"),
            (1_684_331_315_994, "2023-05-17T13:48:35.994Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_164_799_999, "2024-02-28T23:59:59.999Z"),
            (1_709_251_199_000, "2024-02-29T23:59:59.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for &(ms, want) in cases {
            assert_eq!(iso8601_ms(ms), want, "{ms}");
        }
    }

    #[test]
    fn seconds_table() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "0.000", "PT0.000S"),
            (2663, "2.663", "PT2.663S"),
            (40, "0.040", "PT0.040S"),
            (10_000, "10.000", "PT10.000S"),
            (-5, "-0.005", "PT0.000S"),
        ];
        for &(ms, s, d) in cases {
            assert_eq!(seconds_3(ms), s);
            assert_eq!(xs_duration(ms), d);
        }
    }
}
