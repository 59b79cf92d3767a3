//! A schedule (as written, its state, next fire and last run) and a schedule in full (next
//! fires, recent runs with durations, skipped fires).

use super::{redact_value, schema, Redact};
use crate::schedules::{RunStats, ScheduleDetail, ScheduleInfo};
use chrono::{DateTime, SecondsFormat, Utc};
use errand_core::{Job, JobId, JobStatus};
use errand_scheduler::{OverlapPolicy, Schedule, ScheduleSpec, Trigger};
use errand_store::{FireKind, FireRecord, ScheduleSource};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// A stored schedule read back: as written, and checked. Either is `None` when the stored
/// spec cannot be read by this build (then [`ScheduleInfo::problem`] says why).
pub struct Written {
    pub spec: Option<ScheduleSpec>,
    pub checked: Option<Schedule>,
}

impl Written {
    pub fn of(info: &ScheduleInfo) -> Written {
        let spec: Option<ScheduleSpec> = serde_json::from_value(info.spec.clone()).ok();
        let checked = spec.as_ref().and_then(|s| s.validate(&info.name).ok());
        Written { spec, checked }
    }

    /// The zone a `cron` schedule is read in (as written, else UTC); `None` for `every`,
    /// which counts in UTC from the epoch.
    pub fn timezone(&self) -> Option<String> {
        let spec = self.spec.as_ref()?;
        spec.cron
            .as_ref()
            .map(|_| spec.timezone.clone().unwrap_or_else(|| "UTC".into()))
    }

    /// A fire time on the wall clock of the schedule's zone (`cron` only): RFC 3339 with the
    /// offset for scripts, and `2026-11-24 02:00:00 GMT` for people (the abbreviation shows
    /// on which side of a DST change it falls).
    pub fn local(&self, at: DateTime<Utc>) -> Option<(String, String)> {
        match &self.checked.as_ref()?.trigger {
            Trigger::Cron { timezone, .. } => {
                let l = at.with_timezone(timezone);
                Some((
                    l.to_rfc3339_opts(SecondsFormat::Micros, false),
                    l.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
                ))
            }
            Trigger::Every(_) => None,
        }
    }
}

fn run_ms(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> Option<i64> {
    Some((finished? - started?).num_milliseconds().max(0))
}

/// A schedule's latest run (a fire that enqueued a job, or a trigger) and its job now.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "LastRun")]
pub struct LastRunView {
    pub job_id: JobId,
    /// The job's status, or null once it was purged.
    #[schemars(schema_with = "schema::status_or_null")]
    pub status: Option<JobStatus>,
    pub created_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// What the run returned (redacted as a job's `args` is).
    #[schemars(schema_with = "schema::any_or_null")]
    pub result: Option<Value>,
    /// The error it failed with.
    pub last_error: Option<String>,
}

impl LastRunView {
    /// The run of job `id` whose last known status is `status`; `job` is that job, if it
    /// still exists.
    pub fn new(id: JobId, status: Option<JobStatus>, job: Option<&Job>) -> LastRunView {
        LastRunView {
            job_id: id,
            status: job.map(|j| j.status).or(status),
            created_at: job.map(|j| j.created_at),
            started_at: job.and_then(|j| j.started_at),
            finished_at: job.and_then(|j| j.finished_at),
            duration_ms: job.and_then(|j| run_ms(j.started_at, j.finished_at)),
            result: job.and_then(|j| j.result.clone()),
            last_error: job.and_then(|j| j.last_error.clone()),
        }
    }
}

impl Redact for LastRunView {
    fn redacted(mut self) -> Self {
        if let Some(r) = &mut self.result {
            redact_value(r);
        }
        self
    }
}

/// A schedule: the spec as written, its state, next fire and last run.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Schedule")]
pub struct ScheduleView {
    pub name: String,
    /// A cron expression, or null for an `every` schedule.
    pub cron: Option<String>,
    /// A fixed interval (`30s`, `1h30m`), or null for a `cron` schedule.
    pub every: Option<String>,
    /// The zone `cron` is read in (UTC unless written); null for `every`.
    pub timezone: Option<String>,
    pub kind: String,
    pub queue: String,
    /// The arguments each fire enqueues (redacted as a job's `args` is); null when the
    /// stored spec cannot be read.
    #[schemars(schema_with = "schema::any_or_null")]
    pub args: Option<Value>,
    pub priority: Option<i32>,
    pub max_attempts: Option<i32>,
    /// What a fire does while the previous run is live.
    #[schemars(schema_with = "schema::overlap_or_null")]
    pub overlap: Option<OverlapPolicy>,
    /// How late a missed fire may still run, in milliseconds.
    pub misfire_grace_ms: Option<u64>,
    /// Whether several missed fires run once.
    pub coalesce: Option<bool>,
    pub paused: bool,
    /// Why the stored spec cannot be read (it then does not fire), or null.
    pub problem: Option<String>,
    /// `config`: from errand.toml (it may be paused, resumed and triggered, not changed or
    /// deleted through the API); `api`: created through the API.
    #[schemars(schema_with = "schema::source")]
    pub source: ScheduleSource,
    /// The next fire after now; null when paused or if it never fires again.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The latest fire handled, or when it was created or resumed.
    pub last_fire_at: DateTime<Utc>,
    pub last_run: Option<LastRunView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleView {
    /// The view of a schedule; `last` is the job of its last run, if it still exists.
    pub fn new(info: &ScheduleInfo, last: Option<&Job>) -> ScheduleView {
        let w = Written::of(info);
        let spec = w.spec.as_ref();
        ScheduleView {
            name: info.name.clone(),
            cron: spec.and_then(|s| s.cron.clone()),
            every: spec.and_then(|s| s.every.clone()),
            timezone: w.timezone(),
            kind: info.kind.clone(),
            queue: info.queue.clone(),
            args: spec.map(|s| s.args.clone()),
            priority: spec.and_then(|s| s.priority),
            max_attempts: spec.and_then(|s| s.max_attempts),
            overlap: spec.map(|s| s.overlap),
            misfire_grace_ms: w
                .checked
                .as_ref()
                .map(|c| c.misfire_grace.as_millis() as u64),
            coalesce: spec.map(|s| s.coalesce),
            paused: info.paused,
            problem: info.problem.clone(),
            source: info.source,
            next_fire_at: info.next_fire_at,
            last_fire_at: info.last_fire_at,
            last_run: info
                .last_job_id
                .map(|id| LastRunView::new(id, info.last_job_status, last)),
            created_at: info.created_at,
            updated_at: info.updated_at,
        }
    }
}

impl Redact for ScheduleView {
    fn redacted(mut self) -> Self {
        if let Some(a) = &mut self.args {
            redact_value(a);
        }
        self.last_run = self.last_run.map(Redact::redacted);
        self
    }
}

/// A fire time to come: UTC, and on the schedule's wall clock (null for `every`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "NextFire")]
pub struct NextFireView {
    pub at: DateTime<Utc>,
    /// RFC 3339 with the zone's offset.
    pub local: Option<String>,
}

impl NextFireView {
    pub fn new(written: &Written, at: DateTime<Utc>) -> NextFireView {
        NextFireView {
            at,
            local: written.local(at).map(|(rfc, _)| rfc),
        }
    }
}

/// A run of a schedule (a fire that enqueued a job, or a trigger) and its job now.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ScheduleRun")]
pub struct FireView {
    pub job_id: Option<JobId>,
    pub fire_at: DateTime<Utc>,
    #[schemars(schema_with = "schema::run_outcome")]
    pub outcome: FireKind,
    /// The job's status now, or null once it was purged.
    #[schemars(schema_with = "schema::status_or_null")]
    pub status: Option<JobStatus>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

impl From<&FireRecord> for FireView {
    fn from(f: &FireRecord) -> FireView {
        FireView {
            job_id: f.job_id,
            fire_at: f.fire_at,
            outcome: f.outcome,
            status: f.job_status,
            started_at: f.job_started_at,
            finished_at: f.job_finished_at,
            duration_ms: run_ms(f.job_started_at, f.job_finished_at),
        }
    }
}

/// A fire that enqueued nothing, and why.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "SkippedFire")]
pub struct SkippedFireView {
    pub fire_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub reason: Option<String>,
}

impl From<&FireRecord> for SkippedFireView {
    fn from(f: &FireRecord) -> SkippedFireView {
        SkippedFireView {
            fire_at: f.fire_at,
            recorded_at: f.recorded_at,
            reason: f.reason.clone(),
        }
    }
}

/// Duration figures over a schedule's recent runs (see [`RunStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "RunStats")]
pub struct RunStatsView {
    /// Recent runs looked at, finished or not.
    pub runs: u64,
    pub finished: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Succeeded runs with a start and an end: what the figures are over.
    pub timed: u64,
    pub avg_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

impl From<&RunStats> for RunStatsView {
    fn from(s: &RunStats) -> RunStatsView {
        RunStatsView {
            runs: s.runs as u64,
            finished: s.finished as u64,
            succeeded: s.succeeded as u64,
            failed: s.failed as u64,
            timed: s.timed as u64,
            avg_ms: s.avg_ms,
            p95_ms: s.p95_ms,
            max_ms: s.max_ms,
        }
    }
}

/// A schedule in full (`schedules show`, `GET /v1/schedules/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ScheduleDetail")]
pub struct ScheduleDetailView {
    pub schedule: ScheduleView,
    /// The next fires from now (empty when paused).
    pub next_fires: Vec<NextFireView>,
    pub stats: RunStatsView,
    /// Recent runs, newest first.
    pub runs: Vec<FireView>,
    /// Recent skipped fires with their reason, newest first.
    pub skipped: Vec<SkippedFireView>,
}

impl ScheduleDetailView {
    /// `last` is the job of its last run, if it still exists.
    pub fn new(d: &ScheduleDetail, last: Option<&Job>) -> ScheduleDetailView {
        let w = Written::of(&d.info);
        ScheduleDetailView {
            schedule: ScheduleView::new(&d.info, last),
            next_fires: d.next.iter().map(|t| NextFireView::new(&w, *t)).collect(),
            stats: RunStatsView::from(&d.stats),
            runs: d
                .runs
                .iter()
                .filter(|f| f.outcome != FireKind::Skipped)
                .map(FireView::from)
                .collect(),
            skipped: d.skipped.iter().map(SkippedFireView::from).collect(),
        }
    }
}

impl Redact for ScheduleDetailView {
    fn redacted(mut self) -> Self {
        self.schedule = self.schedule.redacted();
        self
    }
}
