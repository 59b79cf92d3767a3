//! The scheduler service: the stateful loop over the pure rules of `errand-scheduler`, as its
//! crate doc designs it. Every `errand serve` process runs one; there is no leader.
//!
//! Each pass reads the schedules that are due by the store's clock
//! ([`Store::schedule_list_due`], an index scan of due rows only), decides for each one with
//! [`decide_misfires`] and [`overlap_action`], and hands the decision to
//! [`Store::schedule_fire`], which applies it only if the schedule row still has the
//! `last_fire_at` it was decided on, inserting the jobs (each with its fire's unique key) and
//! recording the skipped fires in the same transaction. Of several processes deciding the same
//! fire, one applies it and the others lose quietly; a process that dies mid-pass leaves
//! nothing half-done, and the others fire on.
//!
//! Then it sleeps until the next due time, at most [`SchedulerOptions::max_sleep`] (1 s), so a
//! schedule created or changed by another process is seen within a second.
//!
//! The loop records its state in a [`SchedulerStatus`] (started, the end of each pass, the
//! error of a failed pass, stopped or died), which `/health/scheduler` reads to say whether
//! scheduling is healthy (the rules are `errand_scheduler::health`).
//!
//! Overlap: `skip` records the due fires as `overlap_skipped` while the previous run (fire or
//! trigger) is queued or running; `allow` enqueues them; `queue` holds them (does not decide)
//! until the previous run has finished, then enqueues the oldest held fire, one at a time,
//! so runs follow each other. Held fires still age: one held past `misfire_grace` is skipped
//! as `missed_beyond_grace`.

use chrono::{DateTime, TimeDelta, Utc};
use errand_core::{Limits, TaskCatalog};
use errand_scheduler::LoopState;
use errand_scheduler::{
    decide_misfires, overlap_action, OverlapAction, OverlapPolicy, Schedule, ScheduleSpec,
    SkipReason,
};
use errand_store::{FireOutcome, ScheduleFire, ScheduleRecord, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a schedule whose stored spec cannot be read is looked at again (after an
/// operator fixes it, an update makes it due at once anyway).
const BROKEN_RECHECK: TimeDelta = TimeDelta::minutes(5);
/// How far ahead a schedule that never fires again is looked at (`0 0 30 2 *`).
const NEVER_RECHECK: TimeDelta = TimeDelta::days(1);

/// Settings of the scheduler loop.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The longest sleep between passes (default 1 s): bounds how late a schedule created
    /// or changed by another process is noticed.
    pub max_sleep: Duration,
    /// Due schedules read per query (default 500); a full batch is followed by another pass
    /// at once.
    pub batch: u32,
    /// The limits the jobs of fires are checked against.
    pub limits: Limits,
    /// The task settings the jobs of fires take (as every new job does). `Client::scheduler`
    /// passes the client's.
    pub tasks: Arc<TaskCatalog>,
    /// Where the loop records its state (give a clone to whoever reports on it, such as the
    /// HTTP API's `/health/scheduler`).
    pub status: SchedulerStatus,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_sleep: Duration::from_secs(1),
            batch: 500,
            limits: Limits::default(),
            tasks: Arc::new(TaskCatalog::new()),
            status: SchedulerStatus::default(),
        }
    }
}

/// The state of this process's scheduler loop, shared between the loop (which records it) and
/// its readers: [`LoopState::NotStarted`] until a loop starts with it, `Running` with the end
/// of its latest pass (the wall clock), `Stopped` when it ends, also when its task dies.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStatus(Arc<Mutex<LoopState>>);

impl SchedulerStatus {
    /// A status that says the scheduler is switched off in this process.
    pub fn disabled() -> SchedulerStatus {
        SchedulerStatus(Arc::new(Mutex::new(LoopState::Disabled)))
    }

    /// The state now.
    pub fn state(&self) -> LoopState {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, f: impl FnOnce(&mut LoopState)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    fn passed(&self, error: Option<String>) {
        self.set(|s| {
            if let LoopState::Running {
                last_pass_at,
                failing,
                ..
            } = s
            {
                if error.is_none() {
                    *last_pass_at = Some(Utc::now());
                }
                *failing = error;
            }
        });
    }
}

/// Marks the status stopped when the loop's task ends, however it ends.
struct StopGuard {
    status: SchedulerStatus,
    why: &'static str,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            "the scheduler loop panicked"
        } else {
            self.why
        };
        self.status.set(|s| {
            *s = LoopState::Stopped {
                at: Utc::now(),
                why: why.to_string(),
            }
        });
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Due schedules looked at.
    pub looked_at: usize,
    /// Jobs enqueued (new ones; a fire whose job already existed is not counted).
    pub enqueued: usize,
    /// Fires recorded as skipped.
    pub skipped: usize,
    /// Decisions another process applied first (or the schedule changed meanwhile).
    pub lost: usize,
    /// More due schedules than one batch were found: pass again at once.
    pub more: bool,
    /// When to look again: the next due time (the store's clock), if any.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The store's now during the pass.
    pub now: Option<DateTime<Utc>>,
}

/// One pass over the due schedules: decide and apply. The loop calls this; tests call it to
/// step the scheduler under a manual clock.
pub async fn run_pass(
    store: &dyn Store,
    options: &SchedulerOptions,
) -> Result<PassReport, StoreError> {
    let due = store.schedule_list_due(options.batch).await?;
    let mut report = PassReport {
        looked_at: due.schedules.len(),
        more: due.schedules.len() as u32 >= options.batch,
        next_due_at: due.next_due_at,
        now: Some(due.now),
        ..Default::default()
    };
    for record in &due.schedules {
        let fire = decide(record, due.now, options);
        let Some(fire) = fire else { continue };
        match store.schedule_fire(&fire).await {
            Ok(FireOutcome::Fired { enqueued }) => {
                for ((fire_at, _), e) in fire.runs.iter().zip(&enqueued) {
                    tracing::info!(
                        schedule = %record.name,
                        fire_at = %fire_at.to_rfc3339(),
                        job_id = e.id,
                        new = e.inserted,
                        "schedule fired"
                    );
                }
                for (fire_at, reason) in &fire.skipped {
                    tracing::warn!(
                        schedule = %record.name,
                        fire_at = %fire_at.to_rfc3339(),
                        reason = %reason,
                        "schedule fire skipped"
                    );
                }
                report.enqueued += enqueued.iter().filter(|e| e.inserted).count();
                report.skipped += fire.skipped.len();
                if fire.due_at <= due.now {
                    report.more = true;
                }
                report.next_due_at = match report.next_due_at {
                    Some(t) => Some(t.min(fire.due_at)),
                    None => Some(fire.due_at),
                };
            }
            Ok(FireOutcome::Lost) => {
                tracing::debug!(schedule = %record.name, "another process handled this fire");
                report.lost += 1;
            }
            Err(e) => {
                tracing::warn!(schedule = %record.name, error = %e, "could not apply a fire; retrying on the next pass");
                if e.is_transient() {
                    return Err(e);
                }
            }
        }
    }
    Ok(report)
}

/// The decision for one due schedule as a [`ScheduleFire`] to apply, or `None` to leave the
/// row as it is (a fire held by `overlap = "queue"`).
fn decide(
    record: &ScheduleRecord,
    now: DateTime<Utc>,
    options: &SchedulerOptions,
) -> Option<ScheduleFire> {
    let cas = |last_fire_at, due_at, runs, skipped| ScheduleFire {
        name: record.name.clone(),
        expected_last_fire_at: record.last_fire_at,
        expected_updated_at: record.updated_at,
        last_fire_at,
        due_at,
        runs,
        skipped,
    };
    let schedule = match parse(record) {
        Ok(s) => s,
        Err(problem) => {
            tracing::error!(schedule = %record.name, %problem, "stored schedule cannot be read; not firing it");
            return Some(cas(
                record.last_fire_at,
                now + BROKEN_RECHECK,
                vec![],
                vec![],
            ));
        }
    };
    let decision = decide_misfires(&schedule, record.last_fire_at, now);
    let mut skipped: Vec<(DateTime<Utc>, String)> = decision
        .skipped
        .iter()
        .map(|(t, r)| (*t, r.as_str().to_string()))
        .collect();
    let mut runs = decision.run.clone();
    if !runs.is_empty() {
        match overlap_action(schedule.overlap, record.last_run_live()) {
            OverlapAction::Enqueue if schedule.overlap == OverlapPolicy::Queue => {
                // One at a time: the later runs wait for this one.
                runs.truncate(1);
            }
            OverlapAction::Enqueue => {}
            OverlapAction::EnqueueAfterPrevious => return None,
            OverlapAction::Skip(reason) => {
                debug_assert_eq!(reason, SkipReason::OverlapSkipped);
                skipped.extend(runs.drain(..).map(|t| (t, reason.as_str().to_string())));
                skipped.sort_by_key(|(t, _)| *t);
            }
        }
    }
    let latest = runs
        .iter()
        .chain(skipped.iter().map(|(t, _)| t))
        .max()
        .copied()
        .unwrap_or(record.last_fire_at);
    // At or before now when fires are still pending (held by `queue`): the next pass.
    let due_at = schedule.next_after(latest).unwrap_or(now + NEVER_RECHECK);
    let mut jobs = Vec::with_capacity(runs.len());
    for t in runs {
        match options
            .tasks
            .prepare(&schedule.new_job(t), None, &options.limits)
        {
            Ok(job) => jobs.push((t, job)),
            Err(e) => {
                tracing::error!(schedule = %record.name, error = %e, "the schedule's job is invalid; fire skipped");
                skipped.push((t, "invalid_job".into()));
            }
        }
    }
    Some(cas(latest, due_at, jobs, skipped))
}

fn parse(record: &ScheduleRecord) -> Result<Schedule, String> {
    let spec: ScheduleSpec =
        serde_json::from_value(record.spec.clone()).map_err(|e| e.to_string())?;
    spec.validate(&record.name).map_err(|e| e.to_string())
}

/// A running scheduler loop; [`SchedulerHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops the loop after its current pass (a pass never leaves a fire half-applied).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the scheduler loop on the current tokio runtime.
pub fn start(store: Arc<dyn Store>, options: SchedulerOptions) -> SchedulerHandle {
    let (stop, mut stopped) = watch::channel(false);
    options.status.set(|s| {
        *s = LoopState::Running {
            started_at: Utc::now(),
            last_pass_at: None,
            failing: None,
        }
    });
    let task = tokio::spawn(async move {
        let mut guard = StopGuard {
            status: options.status.clone(),
            why: "the scheduler loop ended unexpectedly",
        };
        tracing::info!(
            max_sleep_ms = options.max_sleep.as_millis() as u64,
            "scheduler started"
        );
        let mut failures: u32 = 0;
        loop {
            let sleep = match run_pass(store.as_ref(), &options).await {
                Ok(report) => {
                    failures = 0;
                    options.status.passed(None);
                    if report.more {
                        Duration::ZERO
                    } else {
                        let until = match (report.next_due_at, report.now) {
                            (Some(next), Some(now)) => (next - now).to_std().unwrap_or_default(),
                            _ => options.max_sleep,
                        };
                        until.min(options.max_sleep)
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    options.status.passed(Some(e.to_string()));
                    let backoff = options.max_sleep * failures.min(10);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "scheduler pass failed");
                    backoff
                }
            };
            if *stopped.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = stopped.changed() => break,
            }
        }
        guard.why = "shut down";
        tracing::info!("scheduler stopped");
    });
    SchedulerHandle { stop, task }
}
