//! A queue's statistics (`errand stats`, `errand queues list`, `GET /v1/queues`) and a
//! registered worker process.

use chrono::{DateTime, TimeDelta, Utc};
use errand_store::{FinishedStats, QueueInfo, QueueStats, WorkerRecord};
use schemars::JsonSchema;
use serde::Serialize;

/// A queue's jobs by stored state now (`scheduled`: those of `queued` whose `run_at` is
/// still ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "QueueCounts")]
pub struct CountsView {
    pub queued: u64,
    pub scheduled: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// What finished in a queue over the recent window, and how long the succeeded jobs ran.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "QueueRecent")]
pub struct RecentView {
    /// How far back the window reaches, in milliseconds.
    pub window_ms: i64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Finished jobs (succeeded and failed) per minute over the window.
    pub throughput_per_min: f64,
    pub duration_avg_ms: Option<f64>,
    pub duration_p95_ms: Option<f64>,
    pub duration_max_ms: Option<f64>,
}

/// A queue: paused or not, its jobs by state, the oldest job ready to run and how long it
/// has waited, and what finished in the recent window.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Queue")]
pub struct QueueView {
    pub name: String,
    pub paused: bool,
    /// Since when it is paused (null when it is not).
    pub paused_at: Option<DateTime<Utc>>,
    /// At most this many of its jobs run at once across every worker process (null: no
    /// limit).
    pub global_concurrency: Option<i32>,
    /// At most this many running jobs per `concurrency_key`, for keyed jobs with no limit of
    /// their own (null: 1).
    pub key_concurrency: Option<i32>,
    /// At most N starts in any window of the duration, e.g. `100/1m` (null: no limit).
    pub rate_limit: Option<String>,
    pub counts: CountsView,
    /// `run_at` of the oldest job ready to run now, or null.
    pub oldest_ready_run_at: Option<DateTime<Utc>>,
    /// How long that job has waited, in milliseconds.
    pub oldest_ready_age_ms: Option<i64>,
    pub recent: RecentView,
}

impl QueueView {
    /// The view of every queue: its counts (`stats`), its settings (`settings`: when it was
    /// paused), and what finished in the `window` before the counts (`finished`).
    pub fn list(
        stats: &[QueueStats],
        settings: &[QueueInfo],
        finished: &[FinishedStats],
        window: TimeDelta,
    ) -> Vec<QueueView> {
        stats
            .iter()
            .map(|s| {
                let mut v = QueueView::new(s, finished.iter().find(|f| f.queue == s.queue), window);
                let stored = settings.iter().find(|q| q.name == s.queue);
                v.paused_at = stored.and_then(|q| q.paused_at).filter(|_| s.paused);
                if let Some(q) = stored {
                    v.global_concurrency = q.limits.global_concurrency;
                    v.key_concurrency = q.limits.key_concurrency;
                    v.rate_limit = q.limits.rate_limit.map(|r| r.to_string());
                }
                v
            })
            .collect()
    }

    /// The view of a queue's counts, with what finished in the `window` before them (and no
    /// `paused_at`: see [`QueueView::list`]).
    pub fn new(s: &QueueStats, finished: Option<&FinishedStats>, window: TimeDelta) -> QueueView {
        let minutes = (window.num_milliseconds() as f64 / 60_000.0).max(f64::MIN_POSITIVE);
        let done = finished.map_or(0, |f| f.succeeded + f.failed);
        QueueView {
            name: s.queue.clone(),
            paused: s.paused,
            paused_at: None,
            global_concurrency: None,
            key_concurrency: None,
            rate_limit: None,
            counts: CountsView {
                queued: s.queued,
                scheduled: s.scheduled,
                running: s.running,
                succeeded: s.succeeded,
                failed: s.failed,
                cancelled: s.cancelled,
            },
            oldest_ready_run_at: s.oldest_ready_run_at,
            oldest_ready_age_ms: s
                .oldest_ready_run_at
                .map(|t| (s.as_of - t).num_milliseconds().max(0)),
            recent: RecentView {
                window_ms: window.num_milliseconds(),
                succeeded: finished.map_or(0, |f| f.succeeded),
                failed: finished.map_or(0, |f| f.failed),
                cancelled: finished.map_or(0, |f| f.cancelled),
                throughput_per_min: done as f64 / minutes,
                duration_avg_ms: finished.and_then(|f| f.duration_avg_ms),
                duration_p95_ms: finished.and_then(|f| f.duration_p95_ms),
                duration_max_ms: finished.and_then(|f| f.duration_max_ms),
            },
        }
    }

    /// A queue with no jobs (one just paused that nothing has used yet).
    pub fn empty(name: &str, paused: bool, window: TimeDelta) -> QueueView {
        let stats = QueueStats {
            queue: name.to_string(),
            paused,
            queued: 0,
            scheduled: 0,
            running: 0,
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            oldest_ready_run_at: None,
            as_of: Utc::now(),
        };
        QueueView::new(&stats, None, window)
    }
}

/// A queue a worker serves, with how many of its jobs it runs at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "WorkerQueue")]
pub struct WorkerQueueView {
    pub name: String,
    pub concurrency: u32,
}

/// A registered worker process (in-process or remote) and its last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "Worker")]
pub struct WorkerView {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub queues: Vec<WorkerQueueView>,
    /// The sum of its queues' concurrency.
    pub concurrency: u64,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// How long ago it was last seen at `now`, in milliseconds.
    pub last_seen_age_ms: i64,
}

impl WorkerView {
    pub fn new(w: &WorkerRecord, now: DateTime<Utc>) -> WorkerView {
        WorkerView {
            id: w.id.clone(),
            host: w.host.clone(),
            pid: w.pid,
            version: w.version.clone(),
            queues: w
                .queues
                .iter()
                .map(|q| WorkerQueueView {
                    name: q.name.clone(),
                    concurrency: q.concurrency,
                })
                .collect(),
            concurrency: w.queues.iter().map(|q| u64::from(q.concurrency)).sum(),
            started_at: w.started_at,
            last_seen_at: w.last_seen_at,
            last_seen_age_ms: (now - w.last_seen_at).num_milliseconds().max(0),
        }
    }
}
