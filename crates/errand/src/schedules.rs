//! Schedules through the client: create, update, pause, resume, delete, trigger now, list
//! with next and last run, one schedule with its next fires and run history, and the
//! reconciliation of configured schedules (`[schedules.NAME]`) with the stored ones.

use crate::client::Client;
use crate::error::Error;
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobStatus};
use errand_scheduler::{
    trigger_action, OverlapAction, OverlapPolicy, Schedule, ScheduleSpec, SkipReason,
};
use errand_store::{
    Enqueued, FireRecord, ScheduleFireList, ScheduleRecord, ScheduleSource, ScheduleWrite,
    StoreError,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many recent runs the duration figures of [`ScheduleDetail`] cover.
pub const HISTORY_RUNS: u32 = 100;

/// A schedule as listed: what it is, whether it is paused, and when it fires next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    /// The schedule as written.
    pub spec: serde_json::Value,
    pub kind: String,
    pub queue: String,
    pub paused: bool,
    pub source: ScheduleSource,
    /// The next fire after now; `None` when paused, or if it never fires again.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The latest fire handled (enqueued or skipped), or when it was created or resumed.
    pub last_fire_at: DateTime<Utc>,
    /// The latest run (fire or trigger) and its status now (`None` once purged).
    pub last_job_id: Option<JobId>,
    pub last_job_status: Option<JobStatus>,
    /// Why the stored spec cannot be read (it is then not fired), if so.
    pub problem: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Duration figures over a schedule's recent runs: the succeeded ones, as `errand stats`
/// does for a queue, since a failed run's time (a crash at once, a timeout) says little about
/// how long the job takes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct RunStats {
    /// Recent runs looked at (at most [`HISTORY_RUNS`]), finished or not.
    pub runs: usize,
    /// Of those, finished ones (succeeded, failed or cancelled).
    pub finished: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Succeeded runs with a start and an end: what `avg_ms`, `p95_ms` and `max_ms` are over.
    pub timed: usize,
    pub avg_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

/// One schedule in full: the listing, the next fires, run history and skipped fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleDetail {
    #[serde(flatten)]
    pub info: ScheduleInfo,
    /// The next fires from now (empty when paused).
    pub next: Vec<DateTime<Utc>>,
    /// The latest run: its status and duration.
    pub last_run: Option<FireRecord>,
    pub last_run_ms: Option<u64>,
    pub stats: RunStats,
    /// Recent runs, newest first (at most [`HISTORY_RUNS`]).
    pub runs: Vec<FireRecord>,
    /// Recent skipped fires with their reason, newest first (at most [`HISTORY_RUNS`]).
    pub skipped: Vec<FireRecord>,
}

/// What [`Client::schedule_trigger`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triggered {
    /// The schedule's job was enqueued now.
    Enqueued(Enqueued),
    /// Nothing was enqueued: the overlap policy says not to while the previous run is live.
    Skipped {
        /// Why (`overlap_skipped`).
        reason: SkipReason,
        /// The schedule's policy, and its live previous run with its status.
        overlap: OverlapPolicy,
        live_job_id: Option<JobId>,
        live_status: Option<JobStatus>,
    },
}

impl Triggered {
    /// For a skip, what to tell the operator (the CLI and the API say the same).
    pub fn skip_message(&self, name: &str) -> Option<String> {
        let Triggered::Skipped {
            overlap,
            live_job_id,
            live_status,
            ..
        } = self
        else {
            return None;
        };
        let job = live_job_id.map_or_else(String::new, |id| format!(" (job {id})"));
        let status = live_status.map_or("live", |s| s.as_str());
        Some(format!(
            "schedule `{name}` not triggered: its previous run{job} is still {status} and its \
             overlap policy is `{}`; force it to run beside that one",
            overlap.as_str()
        ))
    }
}

/// What [`Client::reconcile_schedules`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

fn duration_ms(f: &FireRecord) -> Option<u64> {
    let (start, end) = (f.job_started_at?, f.job_finished_at?);
    u64::try_from((end - start).num_milliseconds()).ok()
}

/// Average, 95th percentile (nearest rank) and maximum of the finished runs' durations.
pub fn run_stats(runs: &[FireRecord]) -> RunStats {
    let mut ms: Vec<u64> = runs
        .iter()
        .filter(|f| f.job_status == Some(JobStatus::Succeeded))
        .filter_map(duration_ms)
        .collect();
    ms.sort_unstable();
    let count = |s: JobStatus| runs.iter().filter(|f| f.job_status == Some(s)).count();
    let n = ms.len();
    RunStats {
        runs: runs.len(),
        finished: runs
            .iter()
            .filter(|f| matches!(f.job_status, Some(s) if s.is_finished()))
            .count(),
        succeeded: count(JobStatus::Succeeded),
        failed: count(JobStatus::Failed),
        timed: n,
        avg_ms: (n > 0).then(|| ms.iter().sum::<u64>() / n as u64),
        p95_ms: (n > 0).then(|| ms[(n * 95).div_ceil(100).max(1) - 1]),
        max_ms: ms.last().copied(),
    }
}

fn checked(name: &str, spec: &ScheduleSpec) -> Result<(Schedule, ScheduleWrite), Error> {
    let schedule = spec.validate(name)?;
    let value = serde_json::to_value(spec).map_err(|e| Error::Encode {
        kind: spec.kind.clone(),
        source: e,
    })?;
    let write = ScheduleWrite {
        name: name.to_string(),
        spec: value,
        kind: schedule.job.kind.clone(),
        queue: schedule
            .job
            .queue
            .clone()
            .unwrap_or_else(|| errand_core::validate::DEFAULT_QUEUE.to_string()),
        paused: spec.paused,
        source: ScheduleSource::Api,
    };
    Ok((schedule, write))
}

fn parse(record: &ScheduleRecord) -> Result<Schedule, String> {
    let spec: ScheduleSpec =
        serde_json::from_value(record.spec.clone()).map_err(|e| e.to_string())?;
    spec.validate(&record.name).map_err(|e| e.to_string())
}

fn not_found(name: &str) -> Error {
    Error::Store(StoreError::ScheduleNotFound(name.to_string()))
}

impl Client {
    fn info(&self, record: ScheduleRecord, now: DateTime<Utc>) -> (ScheduleInfo, Option<Schedule>) {
        let parsed = parse(&record);
        let schedule = parsed.as_ref().ok().cloned();
        let next_fire_at = match (&schedule, record.paused) {
            (Some(s), false) => s.next_after(now.max(record.last_fire_at)),
            _ => None,
        };
        let info = ScheduleInfo {
            name: record.name,
            spec: record.spec,
            kind: record.kind,
            queue: record.queue,
            paused: record.paused,
            source: record.source,
            next_fire_at,
            last_fire_at: record.last_fire_at,
            last_job_id: record.last_job_id,
            last_job_status: record.last_job_status,
            problem: parsed.err(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        };
        (info, schedule)
    }

    /// Creates a schedule at run time (`source = api`). Every bad field is named
    /// ([`Error::InvalidSchedule`]) and nothing is written; a taken name is
    /// [`StoreError::Conflict`].
    pub async fn schedule_create(
        &self,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<ScheduleInfo, Error> {
        let (_, write) = checked(name, spec)?;
        let record = self.store().schedule_create(&write).await?;
        Ok(self.info(record, self.now()).0)
    }

    /// Replaces a schedule's definition. Its fire history and `last_fire_at` stay (fires
    /// already handled are not repeated); the scheduler looks at it again at once. A
    /// schedule from the configuration file is [`Error::ConfigOwned`] (the file owns it).
    pub async fn schedule_update(
        &self,
        name: &str,
        spec: &ScheduleSpec,
    ) -> Result<ScheduleInfo, Error> {
        let (_, write) = checked(name, spec)?;
        self.not_config_owned(name).await?;
        let record = self.store().schedule_update(&write).await?;
        Ok(self.info(record, self.now()).0)
    }

    /// Deletes a schedule and its fire records; its jobs stay. False if there was none. A
    /// schedule from the configuration file is [`Error::ConfigOwned`].
    pub async fn schedule_delete(&self, name: &str) -> Result<bool, Error> {
        match self.store().schedule_get(name).await? {
            None => Ok(false),
            Some(r) if r.source == ScheduleSource::Config => Err(Error::ConfigOwned(r.name)),
            Some(_) => Ok(self.store().schedule_delete(name).await?),
        }
    }

    /// [`StoreError::ScheduleNotFound`] or [`Error::ConfigOwned`], unless the schedule exists
    /// and was created at run time. (A schedule created through the API under a name the file
    /// also has becomes configured at the next start, when the file is reconciled.)
    async fn not_config_owned(&self, name: &str) -> Result<(), Error> {
        match self.store().schedule_get(name).await? {
            None => Err(not_found(name)),
            Some(r) if r.source == ScheduleSource::Config => Err(Error::ConfigOwned(r.name)),
            Some(_) => Ok(()),
        }
    }

    /// Pauses a schedule: it does not fire until resumed.
    pub async fn schedule_pause(&self, name: &str) -> Result<ScheduleInfo, Error> {
        let record = self.store().schedule_pause(name).await?;
        Ok(self.info(record, self.now()).0)
    }

    /// Resumes a paused schedule. The fires it missed while paused are not run: it goes on
    /// from now.
    pub async fn schedule_resume(&self, name: &str) -> Result<ScheduleInfo, Error> {
        let record = self.store().schedule_resume(name).await?;
        Ok(self.info(record, self.now()).0)
    }

    /// Enqueues the schedule's job now ("trigger now"), even when paused, under its overlap
    /// policy ([`errand_scheduler::trigger_action`]): while its previous run is queued or
    /// running, `skip` and `queue` enqueue nothing and say so ([`Triggered::Skipped`]);
    /// `force` runs it anyway. Its fire times are not affected. The check reads the
    /// schedule's latest run before the insert, not in its transaction: two triggers at the
    /// same instant may both enqueue (each trigger's job has a key of its own).
    pub async fn schedule_trigger(&self, name: &str, force: bool) -> Result<Triggered, Error> {
        let record = self
            .store()
            .schedule_get(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let schedule = parse(&record).map_err(|problem| {
            Error::Store(StoreError::Database(format!(
                "schedule `{name}` cannot be read: {problem}"
            )))
        })?;
        if let OverlapAction::Skip(reason) =
            trigger_action(schedule.overlap, record.last_run_live(), force)
        {
            tracing::warn!(
                schedule = %name,
                reason = reason.as_str(),
                live_job_id = ?record.last_job_id,
                "trigger skipped: the previous run is still live"
            );
            return Ok(Triggered::Skipped {
                reason,
                overlap: schedule.overlap,
                live_job_id: record.last_job_id,
                live_status: record.last_job_status,
            });
        }
        let now = self.now();
        let mut job = schedule.new_job(now);
        job.unique_key = Some(format!(
            "schedule:{name}:trigger:{}",
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ));
        let job = self.prepare(&job, None)?;
        Ok(Triggered::Enqueued(
            self.store().schedule_trigger(name, &job).await?,
        ))
    }

    /// Every schedule by name, with its next fire and its latest run.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, Error> {
        let now = self.now();
        let records = self.store().schedule_list().await?;
        Ok(records.into_iter().map(|r| self.info(r, now).0).collect())
    }

    /// One schedule with its next `next` fires, its recent runs (with their status and
    /// duration), avg/p95/max duration over them, and its recent skipped fires.
    pub async fn schedule(&self, name: &str, next: usize) -> Result<ScheduleDetail, Error> {
        let record = self
            .store()
            .schedule_get(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let now = self.now();
        let (info, schedule) = self.info(record, now);
        let next = match (&schedule, info.paused) {
            (Some(s), false) => s.preview(next, now.max(info.last_fire_at)),
            _ => Vec::new(),
        };
        let list = |skipped| ScheduleFireList {
            name: name.to_string(),
            skipped,
            limit: HISTORY_RUNS,
        };
        let runs = self.store().schedule_fire_list(&list(false)).await?;
        let skipped = self.store().schedule_fire_list(&list(true)).await?;
        let last_run = runs.first().cloned();
        Ok(ScheduleDetail {
            info,
            next,
            last_run_ms: last_run.as_ref().and_then(duration_ms),
            last_run,
            stats: run_stats(&runs),
            runs,
            skipped,
        })
    }

    /// Makes the stored `config` schedules match `configured` (the `[schedules.NAME]` tables
    /// of `errand.toml`): adds the new ones, updates the changed ones (a schedule created
    /// through the API under a configured name becomes configured), deletes configured ones
    /// no longer listed. Schedules created through the API are left alone. Every spec is
    /// checked first: one bad field and nothing changes. Several processes may reconcile at
    /// once.
    pub async fn reconcile_schedules(
        &self,
        configured: &BTreeMap<String, ScheduleSpec>,
    ) -> Result<Reconciled, Error> {
        let mut writes = Vec::with_capacity(configured.len());
        for (name, spec) in configured {
            let (_, mut write) = checked(name, spec)?;
            write.source = ScheduleSource::Config;
            writes.push(write);
        }
        let stored: BTreeMap<String, ScheduleRecord> = self
            .store()
            .schedule_list()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut out = Reconciled::default();
        for write in writes {
            let name = write.name.clone();
            match stored.get(&name) {
                None => match self.store().schedule_create(&write).await {
                    Ok(_) => out.added.push(name),
                    // Another process added it just now: same file, same spec.
                    Err(StoreError::Conflict(_)) => out.unchanged.push(name),
                    Err(e) => return Err(e.into()),
                },
                Some(old) if old.spec == write.spec && old.source == ScheduleSource::Config => {
                    // An operator's pause survives restarts: the paused column is left alone.
                    out.unchanged.push(name)
                }
                Some(_) => {
                    self.store().schedule_update(&write).await?;
                    out.changed.push(name);
                }
            }
        }
        for (name, old) in &stored {
            if old.source == ScheduleSource::Config && !configured.contains_key(name) {
                self.store().schedule_delete(name).await?;
                out.removed.push(name.clone());
            }
        }
        Ok(out)
    }

    /// Starts the scheduler loop on this client's store (what `errand serve` runs).
    pub fn scheduler(
        &self,
        mut options: crate::scheduler::SchedulerOptions,
    ) -> crate::scheduler::SchedulerHandle {
        options.limits = *self.limits();
        options.tasks = self.tasks().clone();
        crate::scheduler::start(self.store().clone(), options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_store::FireKind;

    fn run(status: Option<JobStatus>, secs: Option<i64>) -> FireRecord {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        FireRecord {
            id: 1,
            schedule: "s".into(),
            fire_at: t,
            recorded_at: t,
            outcome: FireKind::Enqueued,
            reason: None,
            job_id: Some(1),
            job_status: status,
            job_started_at: secs.map(|_| t),
            job_finished_at: secs.map(|s| t + chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn run_times_are_over_succeeded_runs_only() {
        let runs = [
            run(Some(JobStatus::Succeeded), Some(40)),
            run(Some(JobStatus::Failed), Some(1)),
            run(Some(JobStatus::Succeeded), Some(44)),
            run(Some(JobStatus::Cancelled), Some(900)),
            run(Some(JobStatus::Running), None),
            run(None, None),
        ];
        let s = run_stats(&runs);
        assert_eq!(
            (s.runs, s.finished, s.succeeded, s.failed, s.timed),
            (6, 4, 2, 1, 2)
        );
        assert_eq!(
            (s.avg_ms, s.p95_ms, s.max_ms),
            (Some(42_000), Some(44_000), Some(44_000))
        );
        assert_eq!(run_stats(&[]).avg_ms, None);
        // Nearest rank: the 95th of 100 is the 95th smallest, of 20 the 19th.
        let hundred: Vec<_> = (1..=100)
            .map(|s| run(Some(JobStatus::Succeeded), Some(s)))
            .collect();
        assert_eq!(run_stats(&hundred).p95_ms, Some(95_000));
        assert_eq!(run_stats(&hundred[..20]).p95_ms, Some(19_000));
    }
}
