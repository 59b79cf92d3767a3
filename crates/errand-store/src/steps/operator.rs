//! The steps of an operator's cancel and retry by id: lock the named jobs, decide per job
//! with `errand-core`'s rules (`decide_cancel`, `may_retry`), keep retried jobs from sharing
//! a live unique key, write, and answer one outcome per id in input order.

use crate::{CancelOutcome, RetryOutcome, StoreError};
use errand_core::{decide_cancel, may_retry, CancelAction, JobId, JobStatus};
use std::collections::{HashMap, HashSet};

/// What the decisions need of a locked job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedJob {
    pub status: JobStatus,
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub cancel_requested: bool,
    pub unique_key: Option<String>,
}

/// The steps of [`job_cancel`] and [`job_retry`], inside one transaction.
#[allow(async_fn_in_trait)]
pub trait OperatorTx {
    type Error: From<StoreError>;

    /// Reads the named jobs that exist, locked until the transaction ends (PostgreSQL: row
    /// locks taken in id order; SQLite: the write transaction).
    async fn lock_jobs(&mut self, ids: &[JobId]) -> Result<HashMap<JobId, LockedJob>, Self::Error>;

    /// Cancels the queued jobs `cancel` at once and asks the running jobs `stop` to stop,
    /// with a `cancelled` or `cancel_requested` event each.
    async fn apply_cancel(
        &mut self,
        cancel: &[JobId],
        stop: &[JobId],
        reason: Option<&str>,
    ) -> Result<(), Self::Error>;

    /// Which of these unique keys a live (queued or running) job holds.
    async fn live_keys(&mut self, keys: &[&str]) -> Result<HashSet<String>, Self::Error>;

    /// Puts failed or cancelled jobs back to `queued` with a fresh budget and a `retried`
    /// event each, and sends their queues' wake-up hints after commit.
    async fn apply_retry(&mut self, ids: &[JobId]) -> Result<(), Self::Error>;
}

/// `Store::job_cancel`.
pub async fn job_cancel<T: OperatorTx>(
    tx: &mut T,
    ids: &[JobId],
    reason: Option<&str>,
) -> Result<Vec<CancelOutcome>, T::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let current = tx.lock_jobs(ids).await?;
    let mut cancel = Vec::new();
    let mut stop = Vec::new();
    let mut seen = HashSet::new();
    for &id in ids {
        let Some(job) = current.get(&id) else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        match decide_cancel(job.status, job.cancel_requested) {
            CancelAction::Cancel => cancel.push(id),
            CancelAction::RequestStop => stop.push(id),
            CancelAction::Unchanged => {}
        }
    }
    if !cancel.is_empty() || !stop.is_empty() {
        tx.apply_cancel(&cancel, &stop, reason).await?;
    }
    Ok(ids
        .iter()
        .map(|&id| match current.get(&id) {
            None => CancelOutcome::NotFound { id },
            Some(_) if cancel.contains(&id) => CancelOutcome::Cancelled { id },
            Some(_) if stop.contains(&id) => CancelOutcome::CancelRequested { id },
            Some(job) => CancelOutcome::Unchanged {
                id,
                status: job.status,
            },
        })
        .collect())
}

/// `Store::job_retry`. A job whose unique key a live job holds is left alone (reported
/// unchanged), and of several named jobs with one key only the first is retried.
pub async fn job_retry<T: OperatorTx>(
    tx: &mut T,
    ids: &[JobId],
) -> Result<Vec<RetryOutcome>, T::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let current = tx.lock_jobs(ids).await?;
    let keys: Vec<&str> = current
        .values()
        .filter(|j| may_retry(j.status))
        .filter_map(|j| j.unique_key.as_deref())
        .collect();
    let mut taken = if keys.is_empty() {
        HashSet::new()
    } else {
        tx.live_keys(&keys).await?
    };
    let mut chosen: Vec<JobId> = Vec::new();
    for &id in ids {
        let Some(job) = current.get(&id) else {
            continue;
        };
        if !may_retry(job.status) || chosen.contains(&id) {
            continue;
        }
        if let Some(key) = &job.unique_key {
            if !taken.insert(key.clone()) {
                continue;
            }
        }
        chosen.push(id);
    }
    if !chosen.is_empty() {
        tx.apply_retry(&chosen).await?;
    }
    Ok(ids
        .iter()
        .map(|&id| match current.get(&id) {
            None => RetryOutcome::NotFound { id },
            Some(_) if chosen.contains(&id) => RetryOutcome::Retried { id },
            Some(job) => RetryOutcome::Unchanged {
                id,
                status: job.status,
            },
        })
        .collect())
}
