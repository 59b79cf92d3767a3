//! Rows to values and back: the column list of a job, row mapping for jobs and events, and
//! time conversion (INTEGER microseconds since the Unix epoch, UTC).

use chrono::{DateTime, Utc};
use errand_core::{Event, EventKind, Job, JobArgs, JobStatus};
use rusqlite::types::Type;
use rusqlite::Row;
use std::time::Duration;

/// Every column of `errand_jobs`, in the order [`job_from_row`] reads them. A macro so that
/// it can be pasted into SQL literals with `concat!`.
macro_rules! job_columns {
    () => {
        "id, queue, kind, args, status, priority, run_at, attempt, max_attempts, unique_key, \
         reference_type, reference_id, result, last_error, timeout_ms, worker_id, \
         lease_expires_at, cancel_requested_at, created_at, started_at, finished_at, updated_at, \
         progress, progress_at, concurrency_key, key_concurrency"
    };
}
pub(crate) use job_columns;

/// Every column of `errand_events`, in the order [`event_from_row`] reads them.
macro_rules! event_columns {
    () => {
        "id, job_id, at, kind, attempt, worker_id, message, data"
    };
}
pub(crate) use event_columns;

/// Microseconds since the epoch. Sub-microsecond precision is dropped (floored), so a value
/// read back equals the stored one.
pub(crate) fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant `us` microseconds after the epoch; `None` outside chrono's range.
pub(crate) fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// Like [`from_micros`] for values the store computed itself (always in range).
pub(crate) fn micros_to_time(us: i64) -> DateTime<Utc> {
    from_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `now + d` in microseconds, saturating at the largest time chrono can represent.
pub(crate) fn add_duration(now: i64, d: Duration) -> i64 {
    let d = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    now.saturating_add(d)
        .min(DateTime::<Utc>::MAX_UTC.timestamp_micros())
}

fn conversion_error(idx: usize, ty: Type, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, msg.into())
}

/// A NOT NULL time column.
pub(crate) fn time(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let us: i64 = row.get(idx)?;
    from_micros(us).ok_or_else(|| {
        conversion_error(idx, Type::Integer, format!("time {us} µs is out of range"))
    })
}

pub(crate) fn opt_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => time(row, idx).map(Some),
    }
}

fn opt_json(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    match row.get_ref(idx)?.as_str_or_null()? {
        None => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| conversion_error(idx, Type::Text, format!("invalid JSON: {e}"))),
    }
}

pub(crate) fn json(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
    opt_json(row, idx)?
        .ok_or_else(|| conversion_error(idx, Type::Null, "unexpected NULL JSON".into()))
}

/// A job's args: the column's text as it is, its syntax checked (no tree is built; the
/// handler decodes it).
fn args(row: &Row<'_>, idx: usize) -> rusqlite::Result<JobArgs> {
    let text: String = row.get(idx)?;
    JobArgs::from_json(text)
        .map_err(|e| conversion_error(idx, Type::Text, format!("invalid JSON: {e}")))
}

/// JSON text for a column.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A job from a row selected with [`job_columns!`].
pub(crate) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let status: String = row.get(4)?;
    let status = status
        .parse::<JobStatus>()
        .map_err(|e| conversion_error(4, Type::Text, e.to_string()))?;
    Ok(Job {
        id: row.get(0)?,
        queue: row.get(1)?,
        kind: row.get(2)?,
        args: args(row, 3)?,
        status,
        priority: row.get(5)?,
        run_at: time(row, 6)?,
        attempt: row.get(7)?,
        max_attempts: row.get(8)?,
        unique_key: row.get(9)?,
        reference_type: row.get(10)?,
        reference_id: row.get(11)?,
        result: opt_json(row, 12)?,
        last_error: row.get(13)?,
        timeout_ms: row.get(14)?,
        worker_id: row.get(15)?,
        lease_expires_at: opt_time(row, 16)?,
        cancel_requested_at: opt_time(row, 17)?,
        created_at: time(row, 18)?,
        started_at: opt_time(row, 19)?,
        finished_at: opt_time(row, 20)?,
        updated_at: time(row, 21)?,
        progress: opt_json(row, 22)?,
        progress_at: opt_time(row, 23)?,
        concurrency_key: row.get(24)?,
        key_concurrency: row.get(25)?,
    })
}

/// An event from a row selected with [`event_columns!`].
pub(crate) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get(3)?;
    let kind = kind
        .parse::<EventKind>()
        .map_err(|e| conversion_error(3, Type::Text, e))?;
    Ok(Event {
        id: row.get(0)?,
        job_id: row.get(1)?,
        at: time(row, 2)?,
        kind,
        attempt: row.get(4)?,
        worker_id: row.get(5)?,
        message: row.get(6)?,
        data: opt_json(row, 7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SubsecRound, TimeZone};

    #[test]
    fn time_round_trips_at_microsecond_precision() {
        let cases = [
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 45).unwrap(),
            DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(-1, 999_999_000).unwrap(),
            Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ];
        for t in cases {
            assert_eq!(from_micros(to_micros(t)), Some(t), "{t}");
        }
        assert_eq!(
            to_micros(DateTime::from_timestamp(1, 500).unwrap()),
            1_000_000
        );
        assert_eq!(
            to_micros(DateTime::from_timestamp(1, 2_500).unwrap()),
            1_000_002
        );
        // Before the epoch, sub-microsecond parts floor too.
        assert_eq!(
            to_micros(DateTime::from_timestamp(-1, 999_999_500).unwrap()),
            -1
        );
    }

    #[test]
    fn durations_add_and_saturate() {
        assert_eq!(add_duration(10, Duration::from_millis(3)), 3_010);
        assert_eq!(add_duration(10, Duration::from_nanos(999)), 10);
        let max = add_duration(0, Duration::MAX);
        assert_eq!(
            from_micros(max),
            Some(DateTime::<Utc>::MAX_UTC.trunc_subsecs(6))
        );
    }
}
