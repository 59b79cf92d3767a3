//! Maintenance: the chores that keep a store healthy whoever is doing the work, written once.
//!
//! | chore | what | how often |
//! | --- | --- | --- |
//! | rescue | running jobs whose lease expired are decided with `errand_core::decide_rescue` (requeue, fail on the last attempt, cancel after a cancel request) and applied with one fenced `job_rescue_many` per page | every lease/2 (±20 %) |
//! | prune | registry rows of workers not seen for 10 leases | with each rescue |
//! | retention | finished jobs past their age ([`Retention`]) deleted in batches of [`BULK_BATCH`], each its own short statement | every minute |
//!
//! Every process that holds the database for work runs these: `errand serve` and
//! `errand worker` start [`start`] whether or not they run handlers of their own (a server
//! whose jobs all go to remote workers still rescues them), and a library pool runs the rescue
//! and prune on its own unless told the process does. The store applies each decision only
//! under its fence (a rescue only while the lease is still expired, a purge only of finished
//! rows), so several processes doing the same chore at once stay correct: one applies, the
//! others find nothing left. The operator commands (`errand jobs rescue`, `errand jobs purge`)
//! call the same functions.

use chrono::{DateTime, Utc};
use errand_core::{decide_rescue, rescue_message, JobStatus};
use errand_store::{Ack, JobPurge, JobRescue, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Rows per statement for bulk chores (rescue, purge): small enough that no statement holds
/// locks for long.
pub const BULK_BATCH: u32 = 1000;

/// How long finished jobs are kept, by final state; `None` keeps them for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Age after which succeeded jobs are deleted.
    pub succeeded: Option<Duration>,
    /// Age after which cancelled jobs are deleted.
    pub cancelled: Option<Duration>,
    /// Age after which failed jobs are deleted.
    pub failed: Option<Duration>,
}

impl Default for Retention {
    /// Succeeded and cancelled jobs for 30 days, failed ones for 90 (long enough to notice
    /// and retry them).
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            succeeded: Some(Duration::from_secs(30 * DAY)),
            cancelled: Some(Duration::from_secs(30 * DAY)),
            failed: Some(Duration::from_secs(90 * DAY)),
        }
    }
}

impl Retention {
    /// Keeps everything.
    pub const OFF: Retention = Retention {
        succeeded: None,
        cancelled: None,
        failed: None,
    };
}

/// Settings of the maintenance service.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// The workers' lease: rescue runs every lease/2, and rows of workers not seen for 10
    /// leases are pruned.
    pub lease: Duration,
    /// How long finished jobs are kept.
    pub retention: Retention,
    /// How often retention runs (default 1 minute).
    pub retention_every: Duration,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            lease: Duration::from_secs(30),
            retention: Retention::default(),
            retention_every: Duration::from_secs(60),
        }
    }
}

/// Rescues every job whose lease has expired, a page at a time; calls `rescued` for each
/// one this call applied, and returns how many.
pub async fn rescue_expired(
    store: &dyn Store,
    mut rescued: impl FnMut(&JobRescue),
) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let stuck = store.job_list_stuck(BULK_BATCH).await?;
        let items: Vec<JobRescue> = stuck
            .iter()
            .filter_map(|job| {
                let fence = job.fence()?;
                let action = decide_rescue(
                    job.attempt,
                    job.max_attempts,
                    job.cancel_requested_at.is_some(),
                );
                let message = rescue_message(action, &fence.worker_id, job.attempt);
                Some(JobRescue {
                    fence,
                    action,
                    message,
                })
            })
            .collect();
        if items.is_empty() {
            return Ok(total);
        }
        let acks = store.job_rescue_many(&items).await?;
        let mut done = 0;
        for (item, ack) in items.iter().zip(acks) {
            if ack == Ack::Done {
                done += 1;
                rescued(item);
            }
        }
        total += done;
        // A short page is the last; a page where nothing applied (all raced) would repeat.
        if stuck.len() < BULK_BATCH as usize || done == 0 {
            return Ok(total);
        }
    }
}

/// Removes the registry rows of workers not seen since `last_seen_before`.
pub async fn prune_workers(store: &dyn Store, last_seen_before: DateTime<Utc>) -> StoreResult<u64> {
    store.worker_prune(last_seen_before).await
}

/// Deletes finished jobs of `statuses` (and their events) that finished before `before`, in
/// batches; calls `progress` with the running total after each. Never touches a live job.
pub async fn purge_finished(
    store: &dyn Store,
    statuses: Vec<JobStatus>,
    before: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> StoreResult<u64> {
    debug_assert!(statuses.iter().all(|s| s.is_finished()));
    let purge = JobPurge {
        statuses,
        finished_before: before,
        limit: BULK_BATCH,
    };
    let mut total = 0;
    loop {
        let n = store.job_purge(&purge).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
        progress(total);
        // Let other work in between batches.
        tokio::task::yield_now().await;
    }
}

/// One retention pass at `now`: each final state's jobs older than its age are purged.
/// Returns how many were deleted.
pub async fn apply_retention(
    store: &dyn Store,
    retention: &Retention,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut total = 0;
    for (status, age) in [
        (JobStatus::Succeeded, retention.succeeded),
        (JobStatus::Cancelled, retention.cancelled),
        (JobStatus::Failed, retention.failed),
    ] {
        let Some(age) = age else { continue };
        let Ok(age) = chrono::Duration::from_std(age) else {
            continue;
        };
        let Some(before) = now.checked_sub_signed(age) else {
            continue;
        };
        total += purge_finished(store, vec![status], before, |_| {}).await?;
    }
    Ok(total)
}

/// A running maintenance service; [`MaintenanceHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MaintenanceHandle {
    /// Stops after the chore in progress (each is safe to stop between statements).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts rescue, prune and retention on the current Tokio runtime.
pub fn start(store: Arc<dyn Store>, options: MaintenanceOptions) -> MaintenanceHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let period = options.lease / 2;
        let mut wait = period.mul_f64(0.2 * fastrand::f64());
        let mut next_retention = tokio::time::Instant::now()
            + options.retention_every.mul_f64(0.1 + 0.2 * fastrand::f64());
        tracing::info!(
            rescue_every_ms = period.as_millis() as u64,
            retention = ?options.retention,
            "maintenance started"
        );
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                () = tokio::time::sleep(wait) => {}
            }
            rescue_and_prune(store.as_ref(), options.lease, |_| {}).await;
            if tokio::time::Instant::now() >= next_retention {
                match apply_retention(store.as_ref(), &options.retention, Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention: removed old finished jobs"),
                    Err(e) => tracing::warn!(error = %e, "retention pass failed"),
                }
                next_retention = tokio::time::Instant::now() + options.retention_every;
            }
            wait = period.mul_f64(0.8 + 0.4 * fastrand::f64());
        }
        tracing::info!("maintenance stopped");
    });
    MaintenanceHandle { stop, task }
}

/// One rescue pass and one prune, logging what they did; `rescued` is also told of each
/// rescue. Run by the service and by a pool's own rescuer.
pub(crate) async fn rescue_and_prune(
    store: &dyn Store,
    lease: Duration,
    mut rescued: impl FnMut(&JobRescue),
) {
    let done = rescue_expired(store, |item| {
        rescued(item);
        tracing::info!(
            job_id = item.fence.job_id,
            attempt = item.fence.attempt,
            worker_id = %item.fence.worker_id,
            action = ?item.action,
            "rescued a job whose lease expired"
        );
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "rescuing jobs with expired leases failed");
    }
    // The cut-off is this host's clock: the wide margin (10 leases) covers clock skew.
    if let Ok(horizon) = chrono::Duration::from_std(lease * 10) {
        match prune_workers(store, Utc::now() - horizon).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                "removed the rows of workers not seen for 10 leases"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning worker rows failed"),
        }
    }
}
