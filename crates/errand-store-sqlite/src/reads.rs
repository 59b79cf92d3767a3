//! Reads, run on the reader pool inside one read transaction each.

use crate::error::OpError;
use crate::rows::{
    event_columns, event_from_row, from_micros, job_columns, job_from_row, micros_to_time,
};
use chrono::{DateTime, Utc};
use errand_core::{DerivedState, Event, Job, JobId, JobStatus};
use errand_store::{
    FinishedStats, JobFinishedStats, JobList, JobPage, JobThroughput, QueueInfo, QueueStats,
    StateFilter, ThroughputBucket,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};
use std::collections::BTreeMap;

/// [`errand_store::Store::job_get`].
pub(crate) fn job_get(tx: &Transaction<'_>, id: JobId) -> Result<Option<Job>, OpError> {
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        job_columns!(),
        " FROM errand_jobs WHERE id = ?1"
    ))?;
    Ok(stmt.query_row([id], job_from_row).optional()?)
}

/// Running jobs with an expired lease, oldest lease first. Pinned to the partial index
/// `errand_jobs_lease` (without it the planner prefers `errand_jobs_status_id` and sorts).
pub(crate) const STUCK_SQL: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM errand_jobs INDEXED BY errand_jobs_lease \
     WHERE status = 'running' AND lease_expires_at < ?1 \
     ORDER BY lease_expires_at, id LIMIT ?2"
);

/// [`errand_store::Store::job_list_stuck`].
pub(crate) fn job_list_stuck(
    tx: &Transaction<'_>,
    now: i64,
    limit: u32,
) -> Result<Vec<Job>, OpError> {
    let mut stmt = tx.prepare_cached(STUCK_SQL)?;
    let rows = stmt.query_map(params![now, limit], job_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `status = '<s>'` and the WHERE term of the partial index that holds such rows, by
/// queue when `by_queue` (see migration 8); `as_str` gives one of five fixed words.
fn status_terms(s: JobStatus, by_queue: bool) -> String {
    let status = s.as_str();
    match s {
        JobStatus::Running => "status = 'running'".to_string(),
        JobStatus::Succeeded => "status = 'succeeded'".to_string(),
        JobStatus::Failed | JobStatus::Cancelled if by_queue => {
            format!("status = '{status}' AND status NOT IN ('queued', 'running', 'succeeded')")
        }
        _ => format!("status = '{status}' AND status NOT IN ('running', 'succeeded')"),
    }
}

/// [`errand_store::Store::job_list`]: every given filter applies; newest first; fetches one
/// row more than the page to know whether another page exists.
pub(crate) fn job_list(tx: &Transaction<'_>, now: i64, list: &JobList) -> Result<JobPage, OpError> {
    if list.limit == 0 {
        return Ok(JobPage {
            jobs: Vec::new(),
            next_cursor: None,
        });
    }
    let (sql, args) = list_sql(now, list);
    let limit = list.limit as usize;
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), job_from_row)?;
    let mut jobs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let next_cursor = if jobs.len() > limit {
        jobs.truncate(limit);
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(JobPage { jobs, next_cursor })
}

/// The statement of [`job_list`] and its parameters.
pub(crate) fn list_sql(now: i64, list: &JobList) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    // Binds a value and gives its placeholder.
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    // Running rows are few and all in the lease index; without the hint SQLite prefers to
    // walk the whole table in id order rather than sort them.
    let by_lease = "errand_jobs INDEXED BY errand_jobs_lease";
    let mut table = "errand_jobs";
    // The state is written as a literal, with the WHERE term of the partial index that holds
    // it (migration 8): SQLite uses a partial index only for a query that repeats that term.
    match list.state {
        None => {}
        Some(StateFilter::Status(s)) => {
            conds.push(status_terms(s, list.queue.is_some()));
            if s == JobStatus::Running {
                table = by_lease;
            }
        }
        Some(StateFilter::Derived(DerivedState::Scheduled)) => {
            conds.push(status_terms(JobStatus::Queued, false));
            conds.push(format!("run_at > {}", arg(Value::Integer(now))));
            conds.push(format!("attempt = {}", arg(Value::Integer(0))));
        }
        Some(StateFilter::Derived(DerivedState::Retrying)) => {
            conds.push(status_terms(JobStatus::Queued, false));
            conds.push(format!("attempt >= {}", arg(Value::Integer(1))));
        }
        Some(StateFilter::Derived(DerivedState::Stuck)) => {
            conds.push(status_terms(JobStatus::Running, false));
            conds.push(format!("lease_expires_at < {}", arg(Value::Integer(now))));
            table = by_lease;
        }
    }
    let text = |v: &String| Value::Text(v.clone());
    if let Some(q) = &list.queue {
        conds.push(format!("queue = {}", arg(text(q))));
    }
    if let Some(k) = &list.kind {
        conds.push(format!("kind = {}", arg(text(k))));
    }
    if let Some(t) = &list.reference_type {
        conds.push(format!("reference_type = {}", arg(text(t))));
    }
    if let Some(r) = &list.reference_id {
        conds.push(format!("reference_id = {}", arg(text(r))));
    }
    if let Some(t) = list.since {
        let since = arg(Value::Integer(crate::rows::to_micros(t)));
        conds.push(format!("created_at >= {since}"));
    }
    if let Some(t) = list.until {
        let until = arg(Value::Integer(crate::rows::to_micros(t)));
        conds.push(format!("created_at < {until}"));
    }
    if let Some(id) = list.before_id {
        conds.push(format!("id < {}", arg(Value::Integer(id))));
    }
    let limit = arg(Value::Integer(i64::from(list.limit) + 1));
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM {table}{filter} ORDER BY id DESC LIMIT {limit}",
        job_columns!()
    );
    (sql, args)
}

/// Per queue: scheduled (future) jobs and the oldest ready `run_at` of the jobs without a key.
/// Reads only the partial claim index, which covers (queue, run_at) for those queued rows and
/// is already grouped by queue.
pub(crate) const QUEUED_STATS_SQL: &str =
    "SELECT queue, SUM(run_at > ?1), MIN(CASE WHEN run_at <= ?1 THEN run_at END) \
     FROM errand_jobs INDEXED BY errand_jobs_claim \
     WHERE status = 'queued' AND concurrency_key IS NULL GROUP BY queue";

/// The same for keyed jobs, from the keyed claim index (queue first, so grouped the same).
pub(crate) const QUEUED_KEYED_STATS_SQL: &str =
    "SELECT queue, SUM(run_at > ?1), MIN(CASE WHEN run_at <= ?1 THEN run_at END) \
     FROM errand_jobs INDEXED BY errand_jobs_claim_keyed \
     WHERE status = 'queued' AND concurrency_key IS NOT NULL GROUP BY queue";

/// The stats entry of queue `q`, created empty on first use.
fn stats_of(
    map: &mut BTreeMap<String, QueueStats>,
    q: String,
    as_of: DateTime<Utc>,
) -> &mut QueueStats {
    map.entry(q.clone()).or_insert_with(|| QueueStats {
        queue: q,
        as_of,
        ..Default::default()
    })
}

/// [`errand_store::Store::queue_stats`], sorted by queue name.
pub(crate) fn queue_stats(tx: &Transaction<'_>, now: i64) -> Result<Vec<QueueStats>, OpError> {
    let as_of = micros_to_time(now);
    let mut by_queue: BTreeMap<String, QueueStats> = BTreeMap::new();
    // Kept by triggers (migration 7): a few rows, however many jobs there are.
    let mut counts =
        tx.prepare_cached("SELECT queue, status, n FROM errand_queue_counts WHERE n <> 0")?;
    let rows = counts.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (queue, status, n) = row?;
        let s = stats_of(&mut by_queue, queue, as_of);
        let n = n as u64;
        match status.parse::<JobStatus>() {
            Ok(JobStatus::Queued) => s.queued = n,
            Ok(JobStatus::Running) => s.running = n,
            Ok(JobStatus::Succeeded) => s.succeeded = n,
            Ok(JobStatus::Failed) => s.failed = n,
            Ok(JobStatus::Cancelled) => s.cancelled = n,
            Err(_) => {} // the CHECK constraint makes this impossible
        }
    }

    for sql in [QUEUED_STATS_SQL, QUEUED_KEYED_STATS_SQL] {
        let mut queued = tx.prepare_cached(sql)?;
        let rows = queued.query_map([now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        for row in rows {
            let (queue, scheduled, oldest) = row?;
            let s = stats_of(&mut by_queue, queue, as_of);
            s.scheduled += scheduled as u64;
            let oldest = oldest.and_then(from_micros);
            s.oldest_ready_run_at = match (s.oldest_ready_run_at, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    let mut queues = tx.prepare_cached("SELECT name, paused_at IS NOT NULL FROM errand_queues")?;
    let rows = queues.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
    for row in rows {
        let (name, paused) = row?;
        stats_of(&mut by_queue, name, as_of).paused = paused;
    }
    Ok(by_queue.into_values().collect())
}

/// [`errand_store::Store::event_list`], oldest first.
pub(crate) fn event_list(tx: &Transaction<'_>, job_id: JobId) -> Result<Vec<Event>, OpError> {
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        event_columns!(),
        " FROM errand_events WHERE job_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([job_id], event_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// [`errand_store::Store::queue_list`], sorted by name.
pub(crate) fn queue_list(tx: &Transaction<'_>) -> Result<Vec<QueueInfo>, OpError> {
    let mut stmt = tx.prepare_cached(
        "SELECT name, paused_at, updated_at, global_concurrency, key_concurrency, rate_limit, \
         rate_window_ms FROM errand_queues ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        let paused_at: Option<i64> = r.get(1)?;
        Ok(QueueInfo {
            name: r.get(0)?,
            paused: paused_at.is_some(),
            paused_at: paused_at.map(micros_to_time),
            updated_at: micros_to_time(r.get(2)?),
            limits: errand_core::QueueLimits {
                global_concurrency: r.get(3)?,
                key_concurrency: r.get(4)?,
                rate_limit: errand_core::flow::RateLimit::from_parts(r.get(5)?, r.get(6)?),
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `AND queue = ?n AND kind = ?m` for the optional filters, binding into `args`.
fn queue_kind_filter(
    queue: &Option<String>,
    kind: &Option<String>,
    args: &mut Vec<Value>,
) -> String {
    let mut sql = String::new();
    for (column, value) in [("queue", queue), ("kind", kind)] {
        if let Some(v) = value {
            args.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    sql
}

/// [`errand_store::Store::job_finished_stats`]: counts, then durations with the nearest-rank
/// p95 in exact integer arithmetic (`rn * 20 >= n * 19` is `rn >= 0.95 n`), as on PostgreSQL.
pub(crate) fn job_finished_stats(
    tx: &Transaction<'_>,
    p: &JobFinishedStats,
) -> Result<Vec<FinishedStats>, OpError> {
    let mut args = vec![Value::Integer(crate::rows::to_micros(p.since))];
    let filter = queue_kind_filter(&p.queue, &p.kind, &mut args);
    let mut by_queue: BTreeMap<String, FinishedStats> = BTreeMap::new();
    let counts = format!(
        "SELECT queue, status, COUNT(*) FROM errand_jobs INDEXED BY errand_jobs_finished \
         WHERE finished_at >= ?1 AND finished_at IS NOT NULL{filter} GROUP BY queue, status"
    );
    let mut stmt = tx.prepare_cached(&counts)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (queue, status, n) = row?;
        let s = by_queue
            .entry(queue.clone())
            .or_insert_with(|| FinishedStats {
                queue,
                ..Default::default()
            });
        match status.parse::<JobStatus>() {
            Ok(JobStatus::Succeeded) => s.succeeded = n as u64,
            Ok(JobStatus::Failed) => s.failed = n as u64,
            Ok(JobStatus::Cancelled) => s.cancelled = n as u64,
            _ => {}
        }
    }
    let durations = format!(
        "WITH d AS (SELECT queue, finished_at - started_at AS us, \
           ROW_NUMBER() OVER (PARTITION BY queue ORDER BY finished_at - started_at) AS rn, \
           COUNT(*) OVER (PARTITION BY queue) AS n \
         FROM errand_jobs INDEXED BY errand_jobs_finished \
         WHERE finished_at >= ?1 AND finished_at IS NOT NULL AND status = 'succeeded' \
           AND started_at IS NOT NULL{filter}) \
         SELECT queue, AVG(us), MIN(CASE WHEN rn * 20 >= n * 19 THEN us END), MAX(us) \
         FROM d GROUP BY queue"
    );
    let mut stmt = tx.prepare_cached(&durations)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<f64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (queue, avg, p95, max) = row?;
        if let Some(s) = by_queue.get_mut(&queue) {
            s.duration_avg_ms = avg.map(|us| us / 1000.0);
            s.duration_p95_ms = p95.map(|us| us as f64 / 1000.0);
            s.duration_max_ms = max.map(|us| us as f64 / 1000.0);
        }
    }
    Ok(by_queue.into_values().collect())
}

/// [`errand_store::Store::job_throughput`]: integer division aligns buckets to the epoch.
pub(crate) fn job_throughput(
    tx: &Transaction<'_>,
    p: &JobThroughput,
) -> Result<Vec<ThroughputBucket>, OpError> {
    let bucket_us = i64::try_from(p.bucket.as_micros())
        .unwrap_or(i64::MAX)
        .max(1000);
    let mut args = vec![
        Value::Integer(crate::rows::to_micros(p.since)),
        Value::Integer(bucket_us),
    ];
    let filter = queue_kind_filter(&p.queue, &p.kind, &mut args);
    let sql = format!(
        "SELECT (finished_at / ?2) * ?2 AS bucket, queue, \
           SUM(status = 'succeeded'), SUM(status = 'failed'), SUM(status = 'cancelled') \
         FROM errand_jobs INDEXED BY errand_jobs_finished \
         WHERE finished_at >= ?1 AND finished_at IS NOT NULL{filter} \
         GROUP BY bucket, queue ORDER BY bucket, queue"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok(ThroughputBucket {
            start: micros_to_time(r.get(0)?),
            queue: r.get(1)?,
            succeeded: r.get::<_, i64>(2)? as u64,
            failed: r.get::<_, i64>(3)? as u64,
            cancelled: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
