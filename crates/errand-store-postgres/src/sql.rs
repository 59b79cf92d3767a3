//! SQL fragments shared by several statements.

use std::time::Duration;

/// A duration as whole microseconds, for `$n * interval '1 microsecond'` (saturating).
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A `LIMIT` value from a caller's `u32`.
pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// An SQL expression that renders the timestamptz expression `{t}` as RFC 3339 in UTC, the
/// way `chrono` serialises a `DateTime<Utc>` (`2026-01-01T12:00:00Z`, with `.mmm` or
/// `.uuuuuu` only when the fraction is non-zero), so event data reads the same as JSON
/// written from Rust, whatever the session's `TimeZone`.
pub(crate) fn rfc3339(t: &str) -> String {
    format!(
        "(to_char(({t}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || \
         CASE WHEN extract(microseconds FROM ({t}))::bigint % 1000000 = 0 THEN '' \
              WHEN extract(microseconds FROM ({t}))::bigint % 1000 = 0 \
                   THEN to_char(({t}) AT TIME ZONE 'UTC', '.MS') \
              ELSE to_char(({t}) AT TIME ZONE 'UTC', '.US') END || 'Z')"
    )
}
