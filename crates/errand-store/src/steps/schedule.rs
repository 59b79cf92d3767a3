//! The steps of firing a schedule and of triggering one by hand: the compare-and-set that
//! makes one of several schedulers win, the jobs, the fire records in fire-time order, the
//! latest run, all in the caller's one transaction.

use crate::{Enqueued, FireKind, FireOutcome, ScheduleFire, StoreError};
use chrono::{DateTime, Utc};
use errand_core::{JobId, JobInsert};

/// One fire record to write: fire time, outcome, reason (skips), job (runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireRow<'a> {
    pub fire_at: DateTime<Utc>,
    pub outcome: FireKind,
    pub reason: Option<&'a str>,
    pub job_id: Option<JobId>,
}

/// The steps of [`schedule_fire`] and [`schedule_trigger`], inside one transaction.
#[allow(async_fn_in_trait)]
pub trait ScheduleTx {
    type Error: From<StoreError>;

    /// The compare-and-set: moves `last_fire_at` and `due_at` to the decision's values only
    /// if the schedule is unpaused with the expected `last_fire_at` and `updated_at`. False
    /// when it matched nothing.
    async fn move_fire_times(&mut self, fire: &ScheduleFire) -> Result<bool, Self::Error>;

    /// Locks the schedule's row for the rest of the transaction (a concurrent delete cannot
    /// leave a fire record behind); false if there is no such schedule.
    async fn lock_schedule(&mut self, name: &str) -> Result<bool, Self::Error>;

    /// Inserts jobs as `Store::job_insert_many` does (unique keys, wake-up hints).
    async fn insert_jobs(&mut self, jobs: &[JobInsert]) -> Result<Vec<Enqueued>, Self::Error>;

    /// The transaction's now, by the store's clock.
    async fn now(&mut self) -> Result<DateTime<Utc>, Self::Error>;

    /// Writes fire records (given in fire-time order), then keeps the newest
    /// [`FIRE_HISTORY_KEPT`](crate::FIRE_HISTORY_KEPT) of the schedule.
    async fn record_fires(&mut self, name: &str, fires: &[FireRow<'_>]) -> Result<(), Self::Error>;

    /// Points the schedule's `last_job_id` at its latest run.
    async fn set_last_job(&mut self, name: &str, job: JobId) -> Result<(), Self::Error>;
}

/// `Store::schedule_fire`: [`FireOutcome::Lost`] when the compare-and-set matched nothing
/// (the caller rolls back; nothing was written), else the runs' jobs, one record per run and
/// per skip, and the latest run.
pub async fn schedule_fire<T: ScheduleTx>(
    tx: &mut T,
    fire: &ScheduleFire,
) -> Result<FireOutcome, T::Error> {
    if !tx.move_fire_times(fire).await? {
        return Ok(FireOutcome::Lost);
    }
    let jobs: Vec<JobInsert> = fire.runs.iter().map(|(_, j)| j.clone()).collect();
    let enqueued = if jobs.is_empty() {
        Vec::new()
    } else {
        tx.insert_jobs(&jobs).await?
    };
    let mut rows: Vec<FireRow<'_>> = fire
        .runs
        .iter()
        .zip(&enqueued)
        .map(|((at, _), e)| FireRow {
            fire_at: *at,
            outcome: FireKind::Enqueued,
            reason: None,
            job_id: Some(e.id),
        })
        .chain(fire.skipped.iter().map(|(at, reason)| FireRow {
            fire_at: *at,
            outcome: FireKind::Skipped,
            reason: Some(reason.as_str()),
            job_id: None,
        }))
        .collect();
    // Records in fire-time order, whatever the mix of runs and skips (stable: a run before
    // a skip at the same instant).
    rows.sort_by_key(|r| r.fire_at);
    if !rows.is_empty() {
        tx.record_fires(&fire.name, &rows).await?;
    }
    if let Some(last) = enqueued.last() {
        tx.set_last_job(&fire.name, last.id).await?;
    }
    Ok(FireOutcome::Fired { enqueued })
}

/// `Store::schedule_trigger`: the job, a `triggered` record at now, the latest run;
/// `last_fire_at` does not move. [`StoreError::ScheduleNotFound`] (nothing written) if the
/// schedule does not exist.
pub async fn schedule_trigger<T: ScheduleTx>(
    tx: &mut T,
    name: &str,
    job: &JobInsert,
) -> Result<Enqueued, T::Error> {
    if !tx.lock_schedule(name).await? {
        return Err(StoreError::ScheduleNotFound(name.to_string()).into());
    }
    let enqueued = tx.insert_jobs(std::slice::from_ref(job)).await?[0];
    let at = tx.now().await?;
    let row = FireRow {
        fire_at: at,
        outcome: FireKind::Triggered,
        reason: None,
        job_id: Some(enqueued.id),
    };
    tx.record_fires(name, &[row]).await?;
    tx.set_last_job(name, enqueued.id).await?;
    Ok(enqueued)
}
