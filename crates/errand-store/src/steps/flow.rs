//! The steps of a claim under flow control (`errand_core::flow`): a queue with a global limit
//! or a rate limit, or with jobs that carry a `concurrency_key`. Read the queue's state under its claim lock,
//! gather the candidates (the first ready jobs without a key, and the first ready jobs of
//! every key), let [`errand_core::flow::choose`] pick, start what it picked.
//!
//! The claim lock is what makes the limits exact across processes: no two limited claims of
//! one queue overlap, and each reads the running jobs after the previous one committed
//! (PostgreSQL: a transaction-scoped advisory lock taken before the reads, each read a new
//! snapshot; SQLite: the one writer).

use crate::{JobClaim, StoreError};
use errand_core::flow::{choose, global_room, rate_room, Candidate, QueueLimits, Running};
use errand_core::{ClaimedJob, Job, JobId};
use std::collections::HashMap;

/// What the claim needs to know of the queue, read under its claim lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueState {
    pub paused: bool,
    pub limits: QueueLimits,
    /// The queue's running jobs (held by a worker, whether started or waiting in its buffer).
    pub running: i64,
    /// With a rate limit: the starts within its window up to now (0 without one).
    pub recent_starts: i64,
}

/// Ready jobs a limited claim may start, and the running jobs of each of their keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidates {
    pub jobs: Vec<Candidate>,
    pub running_by_key: HashMap<String, i64>,
}

/// The steps of [`claim_limited`], inside one transaction.
#[allow(async_fn_in_trait)]
pub trait FlowClaimTx {
    type Error: From<StoreError>;

    /// Holding the queue's claim lock until the transaction ends (taken here, or when the
    /// transaction began), reads the queue's state (with a rate limit, the starts within its
    /// window) and the candidates: the first `limit` ready jobs without a key in claim order,
    /// and for every key with ready jobs its first ones (at most `limit`, and no more than
    /// its limit leaves room for), with each such key's running count.
    async fn lock_and_read(
        &mut self,
        queue: &str,
        limit: usize,
    ) -> Result<(QueueState, Candidates), Self::Error>;

    /// Starts the chosen jobs (those still queued) for the claim's worker and lease.
    async fn start(&mut self, ids: &[JobId], claim: &JobClaim) -> Result<Vec<Job>, Self::Error>;

    /// Records `n` starts now for the queue's rate limit, forgetting those older than
    /// `window`.
    async fn record_starts(
        &mut self,
        queue: &str,
        n: usize,
        window: std::time::Duration,
    ) -> Result<(), Self::Error>;
}

/// `Store::job_claim` for a queue under flow control.
pub async fn claim_limited<T: FlowClaimTx>(
    tx: &mut T,
    claim: &JobClaim,
) -> Result<Vec<ClaimedJob>, T::Error> {
    let (state, found) = tx.lock_and_read(&claim.queue, claim.limit as usize).await?;
    if state.paused {
        return Ok(Vec::new());
    }
    let want = global_room(&state.limits, state.running, claim.limit as usize);
    let want = rate_room(state.limits.rate_limit, state.recent_starts, want);
    if want == 0 {
        return Ok(Vec::new());
    }
    let running = Running {
        total: state.running,
        by_key: found.running_by_key,
    };
    let ids = choose(&state.limits, &running, found.jobs, want);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let jobs = tx.start(&ids, claim).await?;
    if let (Some(rate), false) = (state.limits.rate_limit, jobs.is_empty()) {
        tx.record_starts(&claim.queue, jobs.len(), rate.per).await?;
    }
    Ok(super::claimed(jobs)?)
}
