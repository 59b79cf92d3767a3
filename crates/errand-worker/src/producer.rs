//! The producer: one claim loop per queue.
//!
//! A semaphore of `concurrency` slots bounds the queue's running handlers. Claimed jobs wait
//! in a buffer ordered like the claim (priority, then run_at, then id) and start as slots
//! free up. The loop claims whenever the jobs it holds (running, waiting, and asked for by
//! claims in flight) fall below `concurrency + ahead`, up to `max_claim_batch` per claim, so
//! that jobs keep starting while the next claim is on its way. On PostgreSQL up to four
//! claims may be in flight at once (`Config::claims_in_flight`, from the store's tuning), served side by side; on
//! SQLite two, the second queued at the store's one writer, where it shares a commit with
//! whatever else waits there.
//!
//! While jobs still wait in the buffer, a claim waits until half of that target is free,
//! so that each round trip brings many jobs rather than one or two.
//!
//! `ahead` is how many jobs to hold beyond the free slots: twice the number of handlers that
//! ended while the last claim was in flight (the work one round trip to the database is
//! worth), at most `max_claim_batch` times one more than the claims in flight, halving claim by claim when the
//! handlers slow down. Jobs that take longer than a round trip give `ahead = 0`: the worker
//! claims only for free slots and holds nothing another worker could run. Short jobs give
//! large claims, which is what makes a backlog of them cheap to drain (one claim per many
//! jobs, not per few), each held job starting within about a round trip.
//!
//! A claim that came back short means the queue looks drained; the loop then waits for the
//! first of:
//!
//! - a wake-up hint from [`errand_store::Store::subscribe`] for this queue (or `*`), or a
//!   `Lagged` error, which may have swallowed one;
//! - the poll interval, which finds delayed jobs whose `run_at` has come, jobs enqueued by
//!   other processes on SQLite (hints stay in-process there) and hints that were lost;
//! - shutdown.
//!
//! A held job is registered with the worker (the heartbeat extends its lease, a cancel or a
//! lost lease reaches it). When claiming stops (shutdown), the jobs still buffered are handed
//! back without running: shutdown releases them to `queued` without spending their attempt.
//!
//! A store error (the database restarting, say) is logged and the claim retried after a
//! backoff of 100 ms doubling to 5 s. Jobs already started are not affected.

use crate::event::WorkerEvent;
use crate::executor;
use crate::pool::Shared;
use crate::retry::RetryDelay;
use errand_core::ClaimedJob;
use errand_store::{JobClaim, JobsReady, StoreResult};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Hints for every queue carry this name.
const ANY_QUEUE: &str = "*";

/// A running job's place in its queue's concurrency. Dropping it (when the handler has
/// ended) frees the slot and tells the producer.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    ended: Arc<Ended>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.ended.count.fetch_add(1, Ordering::Relaxed);
        self.ended.notify.notify_one();
    }
}

/// Handlers of one queue that have ended, and a wake-up for the producer on each.
#[derive(Default)]
struct Ended {
    count: AtomicU64,
    notify: Notify,
}

/// What a claim task returns: how many it asked for, `Ended::count` when it was sent, when it
/// was sent (the leases it took run from no earlier), and the store's answer.
type ClaimDone = (usize, u64, Instant, StoreResult<Vec<ClaimedJob>>);

/// A claimed job waiting for a slot, ordered like the claim (priority, then run_at, then id)
/// so that overlapping claims still start the most urgent job first.
struct Waiting(ClaimedJob);

impl Waiting {
    fn key(&self) -> (std::cmp::Reverse<i32>, chrono::DateTime<chrono::Utc>, i64) {
        let job = &self.0.job;
        (std::cmp::Reverse(job.priority), job.run_at, job.id)
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    /// Reversed: `BinaryHeap` pops the greatest, and the first in claim order must pop first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
}

/// What the loop waits for besides slots and claims in flight.
enum Idle {
    /// Nothing: claim whenever there is room.
    No,
    /// The queue looked drained: a hint or the poll interval.
    Drained,
    /// A claim failed: until this instant.
    Backoff(Instant),
}

/// How many jobs to hold beyond the free slots after a claim during which `ended` handlers
/// ended; `previous` is the last value; `cap` the most.
fn next_ahead(previous: usize, ended: u64, cap: usize) -> usize {
    let wanted = usize::try_from(ended.saturating_mul(2)).unwrap_or(usize::MAX);
    wanted.max(previous / 2).min(cap)
}

/// How many jobs to claim now: room up to `concurrency + ahead` held jobs (running, waiting
/// for a slot, or asked for by claims in flight), at most a batch.
fn claim_size(concurrency: usize, ahead: usize, held: usize, max_batch: usize) -> usize {
    (concurrency + ahead).saturating_sub(held).min(max_batch)
}

/// The smallest claim worth a round trip now. While jobs still wait in the buffer, slots
/// will not idle before the next claim returns, so wait until half the held target is
/// free and claim that much at once, rather than a job or two per round trip; with an
/// empty buffer, claim whatever there is room for.
fn min_claim(concurrency: usize, ahead: usize, buffered: usize, max_batch: usize) -> usize {
    if buffered == 0 {
        1
    } else {
        ((concurrency + ahead) / 2).clamp(1, max_batch)
    }
}

pub(crate) async fn run(shared: Arc<Shared>, queue: String, concurrency: u32) {
    let concurrency = concurrency as usize;
    let slots = Arc::new(Semaphore::new(concurrency));
    let ended = Arc::new(Ended::default());
    let mut hints = Some(shared.store.subscribe());
    let mut retry = RetryDelay::new();
    let max_batch = shared.config.max_claim_batch.max(1) as usize;
    let claims_in_flight = shared.config.claims_in_flight.max(1);
    // Room for every claim in flight to come back full, and one more batch, so that a claim
    // waits for, and brings, a whole batch.
    let ahead_cap = max_batch * (claims_in_flight + 1);
    let stop = shared.stop_claiming.clone();
    let mut buffer: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut ahead = 0usize;
    let mut claims: JoinSet<ClaimDone> = JoinSet::new();
    let mut asked = 0usize; // jobs asked for by the claims in flight
    let mut idle = Idle::No;

    loop {
        // Start waiting jobs while slots are free.
        while !buffer.is_empty() {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => start(&shared, &ended, buffer.pop(), permit),
                Err(_) => break,
            }
        }
        if stop.is_fired() {
            break;
        }
        while matches!(idle, Idle::No) && claims.len() < claims_in_flight {
            let running = concurrency - slots.available_permits();
            let want = claim_size(
                concurrency,
                ahead,
                running + buffer.len() + asked,
                max_batch,
            );
            if want < min_claim(concurrency, ahead, buffer.len(), max_batch) {
                break;
            }
            // Hints sent until now are covered by this claim.
            drain(&mut hints);
            let claim = JobClaim {
                queue: queue.clone(),
                worker_id: shared.worker_id.to_string(),
                limit: want as u32,
                lease: shared.config.lease,
            };
            let store = shared.store.clone();
            let ended_before = ended.count.load(Ordering::Relaxed);
            let sent = Instant::now();
            claims.spawn(async move { (want, ended_before, sent, store.job_claim(&claim).await) });
            asked += want;
        }
        let has_buffer = !buffer.is_empty();
        let claiming = !claims.is_empty();
        let drained = matches!(idle, Idle::Drained);
        let backoff_until = match idle {
            Idle::Backoff(at) => Some(at),
            _ => None,
        };
        tokio::select! {
            biased;
            () = stop.fired() => break,
            Some(done) = claims.join_next(), if claiming => {
                let Ok((want, ended_before, sent, result)) = done else {
                    // Only if the claim task panicked: a store bug. Claim again.
                    continue;
                };
                asked -= want;
                match result {
                    Ok(jobs) => {
                        retry.reset();
                        let got = jobs.len();
                        shared.emit(WorkerEvent::Claimed { queue: queue.clone(), count: got });
                        if got > want {
                            // A store bug; the extra jobs are run all the same (each is held).
                            tracing::error!(queue, want, got, "job_claim returned more jobs than asked for");
                        }
                        buffer.extend(
                            jobs.into_iter()
                                .filter(|j| executor::hold(&shared, j, sent))
                                .map(Waiting),
                        );
                        let ended_during = ended.count.load(Ordering::Relaxed) - ended_before;
                        ahead = next_ahead(ahead, ended_during, ahead_cap);
                        if got < want && matches!(idle, Idle::No) {
                            idle = Idle::Drained;
                        }
                    }
                    Err(e) => {
                        let wait = retry.next_delay();
                        tracing::warn!(
                            queue,
                            error = %e,
                            retry_in_ms = wait.as_millis() as u64,
                            "claiming jobs failed; retrying"
                        );
                        idle = Idle::Backoff(Instant::now() + wait);
                    }
                }
            }
            permit = slots.clone().acquire_owned(), if has_buffer => {
                let permit = permit.expect("the slots semaphore is never closed");
                start(&shared, &ended, buffer.pop(), permit);
            }
            // A handler ended: maybe room to claim.
            () = ended.notify.notified(), if !has_buffer && !drained && backoff_until.is_none() => {}
            () = next_hint(&mut hints, &queue), if drained => idle = Idle::No,
            () = tokio::time::sleep(shared.config.poll_interval), if drained => idle = Idle::No,
            () = tokio::time::sleep_until(backoff_until.unwrap_or_else(Instant::now)), if backoff_until.is_some() => idle = Idle::No,
        }
    }

    // Claiming stopped. Claims in flight are seen through (shutdown bounds how long), so
    // that what they claimed is handed back now rather than rescued after its lease.
    while let Some(done) = claims.join_next().await {
        if let Ok((_, _, sent, Ok(jobs))) = done {
            buffer.extend(
                jobs.into_iter()
                    .filter(|j| executor::hold(&shared, j, sent))
                    .map(Waiting),
            );
        }
    }
    if !buffer.is_empty() {
        tracing::debug!(
            queue,
            jobs = buffer.len(),
            "handing back claimed jobs that never started"
        );
    }
    for Waiting(job) in buffer.into_sorted_vec() {
        executor::hand_back(&shared, job).await;
    }
    tracing::debug!(queue, "producer stopped claiming");
}

fn start(
    shared: &Arc<Shared>,
    ended: &Arc<Ended>,
    job: Option<Waiting>,
    permit: OwnedSemaphorePermit,
) {
    if let Some(Waiting(job)) = job {
        let slot = Slot {
            permit: Some(permit),
            ended: ended.clone(),
        };
        executor::spawn(shared, job, slot);
    }
}

/// Completes on a hint for `queue` (or any queue), or on `Lagged`. Never completes once the
/// channel is closed (the poll interval takes over).
async fn next_hint(hints: &mut Option<broadcast::Receiver<JobsReady>>, queue: &str) {
    if let Some(rx) = hints.as_mut() {
        loop {
            match rx.recv().await {
                Ok(h) if h.queue == queue || h.queue == ANY_QUEUE => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => break,
            }
        }
        tracing::debug!(queue, "wake-up hints closed; relying on the poll interval");
        *hints = None;
    }
    std::future::pending().await
}

fn drain(hints: &mut Option<broadcast::Receiver<JobsReady>>) {
    if let Some(rx) = hints.as_mut() {
        loop {
            match rx.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Closed) => {
                    *hints = None;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahead_follows_the_handlers_that_ended_during_a_claim() {
        // Slow handlers: none ended during the round trip, nothing is held ahead.
        assert_eq!(next_ahead(0, 0, 100), 0);
        // Fast handlers: twice what one round trip consumed, up to a batch.
        assert_eq!(next_ahead(0, 16, 100), 32);
        assert_eq!(next_ahead(32, 48, 100), 96);
        assert_eq!(next_ahead(96, 200, 100), 100);
        // Slowing down halves it, step by step.
        assert_eq!(next_ahead(100, 0, 100), 50);
        assert_eq!(next_ahead(50, 0, 100), 25);
    }

    #[test]
    fn with_jobs_waiting_a_claim_waits_for_half_the_target() {
        assert_eq!(min_claim(16, 0, 0, 100), 1, "nothing waiting: any room");
        assert_eq!(min_claim(16, 100, 0, 100), 1);
        assert_eq!(min_claim(16, 100, 40, 100), 58);
        assert_eq!(min_claim(16, 400, 40, 100), 100, "at most a batch");
        assert_eq!(min_claim(1, 0, 3, 100), 1);
    }

    #[test]
    fn waiting_jobs_start_in_claim_order() {
        let at = chrono::Utc::now();
        let job = |id, priority, secs| {
            Waiting(
                ClaimedJob::new(errand_core::Job {
                    id,
                    queue: "default".into(),
                    kind: "k".into(),
                    args: errand_core::JobArgs::empty(),
                    status: errand_core::JobStatus::Running,
                    priority,
                    run_at: at + chrono::Duration::seconds(secs),
                    attempt: 1,
                    max_attempts: 3,
                    unique_key: None,
                    reference_type: None,
                    reference_id: None,
                    result: None,
                    last_error: None,
                    timeout_ms: None,
                    worker_id: Some("w".into()),
                    lease_expires_at: None,
                    cancel_requested_at: None,
                    created_at: at,
                    started_at: Some(at),
                    finished_at: None,
                    updated_at: at,
                    progress: None,
                    progress_at: None,
                    concurrency_key: None,
                    key_concurrency: None,
                })
                .unwrap(),
            )
        };
        let mut heap: BinaryHeap<Waiting> = [
            job(4, 0, 0),
            job(2, 5, 9),
            job(3, 0, -1),
            job(1, 5, 9),
            job(5, 0, 0),
        ]
        .into_iter()
        .collect();
        let order: Vec<i64> = std::iter::from_fn(|| heap.pop().map(|w| w.0.id)).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn claims_fill_free_slots_plus_ahead_and_never_exceed_a_batch() {
        assert_eq!(claim_size(16, 0, 0, 100), 16);
        assert_eq!(claim_size(16, 0, 16, 100), 0, "full, nothing ahead");
        assert_eq!(claim_size(16, 0, 15, 100), 1);
        assert_eq!(claim_size(16, 100, 14, 100), 100);
        assert_eq!(claim_size(16, 40, 46, 100), 10);
        assert_eq!(claim_size(1, 0, 0, 100), 1);
    }
}
