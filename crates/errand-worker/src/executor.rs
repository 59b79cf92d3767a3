//! The executor: runs one claimed job and records its outcome.
//!
//! Each job gets a supervisor task, and its handler a task of its own, so that a panic is
//! caught (it fails the attempt like an error) and a handler that will not stop can be
//! aborted. The supervisor races the handler against the job's timeout and its stop signal
//! (operator cancel and lost lease arrive through the heartbeat, shutdown through the
//! handle). Once a stop is requested the handler has `cancel_grace` (for a lost lease, at most
//! a twelfth of the lease) to return before it is
//! aborted, and whatever it returns is not taken as the outcome (a handler that stopped early
//! may return `Ok`); the reason decides instead:
//!
//! | how it ended | recorded |
//! | --- | --- |
//! | returned `Ok(result)` | `succeeded` via the completer (batched) |
//! | returned `Err`, or panicked | `errand_core::decide_failure`, then `job_fail` |
//! | timeout | a failed attempt, "timed out after Xs", retried while attempts remain |
//! | operator cancel | `job_cancel_ack`: `cancelled` |
//! | lease lost | nothing: another worker holds the job |
//! | shutdown after the grace | handed back by shutdown with `job_release_many` |
//!
//! Every record is fenced by (job id, attempt, worker id); a stale one is logged and dropped.
//! The handler's last progress report is written before its outcome (`progress`).
//!
//! A held job starts only while its lease is known to be held for a while yet: checked when
//! the supervisor starts, and again as the first step of the handler's own task, so that a
//! process frozen between the two (SIGSTOP, a stalled VM) does not run a job another worker
//! may have taken back meanwhile. A freeze after that step is a freeze of a running handler:
//! the lease watchdog stops it once the process runs again.

use crate::completer::CompleteRequest;
use crate::event::{JobOutcome, WorkerEvent};
use crate::handler::{HandlerOutput, JobContext};
use crate::pool::Shared;
use crate::producer::Slot;
use crate::progress::ProgressWriter;
use crate::record;
use crate::retry::persist;
use crate::signal::{JobStop, StopReason};
use errand_core::{AfterError, Backoff, ClaimedJob, FailAction, Fence, HandlerError, Job};
use errand_store::{Ack, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};

/// The execution limit when neither the job nor its task sets one (design.md, Job model).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Registers a claimed job with the worker (see [`crate::pool::Registry::hold`]) before it
/// starts; false if the worker is closing (the job is left to the rescuer). `claim_sent` is
/// when the claim that leased it was sent: the lease runs from no earlier than that.
pub(crate) fn hold(
    shared: &Shared,
    claimed: &ClaimedJob,
    claim_sent: tokio::time::Instant,
) -> bool {
    let held = shared.running.hold(
        &claimed.fence,
        JobStop::default(),
        claim_sent + shared.config.lease,
    );
    if !held {
        tracing::warn!(
            job_id = claimed.fence.job_id,
            attempt = claimed.fence.attempt,
            "worker is closing: claimed job not started; the rescuer requeues it after its lease"
        );
    }
    held
}

/// Starts a held job. `permit` is the job's slot in its queue's concurrency; it is given back
/// as soon as the handler has ended.
pub(crate) fn spawn(shared: &Arc<Shared>, claimed: ClaimedJob, permit: Slot) {
    let fence = claimed.fence.clone();
    let Some(stop) = shared.running.stop_signal(&fence) else {
        return;
    };
    let started = shared.running.start(&fence, || {
        tokio::spawn(supervise(shared.clone(), claimed, stop, permit))
    });
    if !started {
        tracing::warn!(
            job_id = fence.job_id,
            attempt = fence.attempt,
            "worker is closing: claimed job not started; the rescuer requeues it after its lease"
        );
    }
}

/// Gives a held job that never started back to shutdown, which releases it to `queued`
/// without spending its attempt (unless something stopped it first: a cancel is
/// acknowledged, a lost lease records nothing).
pub(crate) async fn hand_back(shared: &Shared, claimed: ClaimedJob) {
    let ClaimedJob { fence, job } = claimed;
    if let Some(stop) = shared.running.stop_signal(&fence) {
        stop.stop(StopReason::Shutdown);
        let reason = stop.reason().unwrap_or(StopReason::Shutdown);
        shared.running.handler_done(&fence);
        let ending = Ending::Stopped {
            reason,
            aborted: false,
        };
        if let Some(outcome) = record(shared, &job, &fence, ending).await {
            shared.emit(WorkerEvent::JobFinished {
                job_id: job.id,
                kind: job.kind.clone(),
                attempt: job.attempt,
                outcome,
            });
        }
        shared.running.finish(&fence);
    }
}

async fn supervise(shared: Arc<Shared>, claimed: ClaimedJob, stop: JobStop, permit: Slot) {
    let ClaimedJob { fence, job } = claimed;
    let job = Arc::new(job);
    // Stopped while it waited for a slot (cancelled, lease lost): the handler never runs.
    // Nor does it when the lease may have run out meanwhile (the process was frozen, or the
    // heartbeat could not reach the store): another worker may be running it already.
    let left = shared.running.lease_left(&fence);
    let ending = match stop.reason() {
        Some(reason) => Ending::Stopped {
            reason,
            aborted: false,
        },
        None if left < start_margin(shared.config.lease) => {
            tracing::warn!(
                job_id = job.id,
                kind = %job.kind,
                attempt = job.attempt,
                lease_left_ms = left.as_millis() as u64,
                "not starting a claimed job: its lease has run out or nearly, so another \
                 worker may hold it; recording nothing"
            );
            stop.stop(StopReason::LeaseLost);
            Ending::Stopped {
                reason: StopReason::LeaseLost,
                aborted: false,
            }
        }
        None => {
            tracing::debug!(job_id = job.id, kind = %job.kind, attempt = job.attempt, "job started");
            shared.emit(WorkerEvent::JobStarted {
                job_id: job.id,
                kind: job.kind.clone(),
                attempt: job.attempt,
            });
            let progress = ProgressWriter::new(shared.store.clone(), fence.clone());
            let ending = run_handler(&shared, &job, &fence, &stop, &progress).await;
            // The last progress report is written before the outcome.
            progress.finish().await;
            ending
        }
    };
    shared.running.handler_done(&fence);
    drop(permit);
    if let Some(outcome) = record(&shared, &job, &fence, ending).await {
        shared.emit(WorkerEvent::JobFinished {
            job_id: job.id,
            kind: job.kind.clone(),
            attempt: job.attempt,
            outcome,
        });
    }
    shared.running.finish(&fence);
}

/// How the handler ended.
enum Ending {
    /// On its own, with this output (a panic is an error here).
    Returned(HandlerOutput),
    /// It was asked to stop; `aborted` if it did not return within the cancel grace.
    Stopped { reason: StopReason, aborted: bool },
}

/// Aborts the handler's task if the supervisor is dropped (a handle dropped without shutdown).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_handler(
    shared: &Arc<Shared>,
    job: &Arc<Job>,
    fence: &Fence,
    stop: &JobStop,
    progress: &Arc<ProgressWriter>,
) -> Ending {
    let Some(handler) = shared.handlers.get(&job.kind).cloned() else {
        // An ordinary error, retried per budget: another deployment may know the kind.
        return Ending::Returned(Err(HandlerError::Error {
            message: format!(
                "no handler registered for kind `{}` on worker {}",
                job.kind, shared.worker_id
            ),
        }));
    };
    let timeout = effective_timeout(job.timeout_ms, shared.options(&job.kind).timeout);
    let ctx = JobContext::new(
        job.clone(),
        stop.clone(),
        shared.worker_id.clone(),
        timeout,
        progress.clone(),
    );
    let handler = handler(ctx);
    let (held, fence, first_stop) = (shared.clone(), fence.clone(), stop.clone());
    let margin = start_margin(shared.config.lease);
    let mut task = AbortOnDrop(tokio::spawn(async move {
        // The handler's first step, in its own task, checks the lease again: the process may
        // have been frozen between the decision to start and this task's first poll, long
        // enough for another worker to take the job back. Nothing of the handler runs then.
        if held.running.lease_left(&fence) < margin {
            first_stop.stop(StopReason::LeaseLost);
            return Ok(None);
        }
        handler.await
    }));
    let deadline = async move {
        match timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    let reason = tokio::select! {
        biased;
        joined = &mut task.0 => match stop.reason() {
            None => return Ending::Returned(output_of(joined)),
            // Asked to stop before we saw it return: the reason decides, as always after a stop.
            Some(reason) => return Ending::Stopped { reason, aborted: false },
        },
        () = &mut deadline => {
            stop.stop(StopReason::Timeout);
            // A stop that came first (say, shutdown) keeps its reason.
            stop.reason().unwrap_or(StopReason::Timeout)
        }
        reason = stop.stopped() => reason,
    };
    tracing::info!(
        job_id = job.id,
        kind = %job.kind,
        attempt = job.attempt,
        reason = ?reason,
        "asking the handler to stop"
    );
    // A lost lease leaves no time to be graceful: another worker may take the job once the
    // lease ends, and the watchdog stops a handler a sixth of a lease before that.
    let grace = match reason {
        StopReason::LeaseLost => shared.config.cancel_grace.min(shared.config.lease / 12),
        _ => shared.config.cancel_grace,
    };
    let aborted = match tokio::time::timeout(grace, &mut task.0).await {
        Ok(_) => false,
        Err(_) => {
            tracing::warn!(
                job_id = job.id,
                kind = %job.kind,
                attempt = job.attempt,
                "handler did not stop within the cancel grace; aborting it"
            );
            task.0.abort();
            let _ = (&mut task.0).await;
            true
        }
    };
    Ending::Stopped { reason, aborted }
}

/// The least lease a claimed job must have left to be started: a fifth of the lease, so a
/// start never races the lease's end (and a heartbeat is due well before it).
pub(crate) fn start_margin(lease: Duration) -> Duration {
    lease / 5
}

/// The job's `timeout_ms` (0 = none), else the task's timeout, else 30 minutes; a zero
/// duration means no limit.
pub(crate) fn effective_timeout(job_ms: Option<i64>, task: Option<Duration>) -> Option<Duration> {
    let limit = match job_ms {
        Some(ms) if ms >= 0 => Duration::from_millis(ms as u64),
        _ => task.unwrap_or(DEFAULT_TIMEOUT),
    };
    (!limit.is_zero()).then_some(limit)
}

fn output_of(joined: Result<HandlerOutput, JoinError>) -> HandlerOutput {
    match joined {
        Ok(output) => output,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_string());
            Err(HandlerError::Error {
                message: format!("handler panicked: {text}"),
            })
        }
        Err(_) => Err(HandlerError::Error {
            message: "handler task was cancelled".to_string(),
        }),
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Records how an attempt ended, under the fence its claim gave it.
async fn record(shared: &Shared, job: &Job, fence: &Fence, ending: Ending) -> Option<JobOutcome> {
    let fence = fence.clone();
    let aborted_note = |aborted: bool| {
        if aborted {
            format!(
                " (the handler did not stop within {} and was aborted)",
                secs(shared.config.cancel_grace)
            )
        } else {
            String::new()
        }
    };
    let outcome = match ending {
        Ending::Returned(Ok(result)) => complete(shared, job, fence, result).await,
        Ending::Returned(Err(error)) => fail(shared, job, fence, error).await,
        Ending::Stopped {
            reason: StopReason::Timeout,
            aborted,
        } => {
            let limit = effective_timeout(job.timeout_ms, shared.options(&job.kind).timeout)
                .unwrap_or_default();
            let message = format!("timed out after {}{}", secs(limit), aborted_note(aborted));
            fail(shared, job, fence, HandlerError::Error { message }).await
        }
        Ending::Stopped {
            reason: StopReason::Cancelled,
            aborted,
        } => {
            let message = format!("cancelled while running{}", aborted_note(aborted));
            cancel_ack(shared, job, fence, &message).await
        }
        Ending::Stopped {
            reason: StopReason::LeaseLost,
            ..
        } => {
            tracing::warn!(
                job_id = job.id,
                kind = %job.kind,
                attempt = job.attempt,
                "lease lost: another worker holds the job; recording nothing"
            );
            JobOutcome::LeaseLost
        }
        Ending::Stopped {
            reason: StopReason::Shutdown,
            ..
        } => {
            shared
                .to_release
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((fence, job.kind.clone()));
            return None;
        }
    };
    Some(outcome)
}

async fn complete(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    result: Option<serde_json::Value>,
) -> JobOutcome {
    let (reply, answer) = oneshot::channel();
    let request = CompleteRequest {
        item: record::success(job, fence, result.as_ref()),
        reply,
    };
    let answer = match shared.completer.send(request) {
        Ok(()) => answer
            .await
            .unwrap_or_else(|_| Err("the completer stopped".into())),
        Err(_) => Err("the completer stopped".into()),
    };
    match answer {
        Ok(Ack::Done) => {
            tracing::debug!(job_id = job.id, kind = %job.kind, attempt = job.attempt, "job succeeded");
            JobOutcome::Succeeded
        }
        Ok(Ack::Stale) => stale(job, "success"),
        Err(e) => unrecorded(job, "success", &e),
    }
}

/// Records a failed attempt through [`record::failure`], the path the remote-worker protocol
/// takes too. The handler's message is stored (redacted) but never logged: it may hold a
/// program's output.
async fn fail(shared: &Shared, job: &Job, fence: Fence, error: HandlerError) -> JobOutcome {
    let backoff = shared.options(&job.kind).backoff.unwrap_or_default();
    let unit = Backoff::random_unit();
    let recorded = persist(shared, "job_fail", || {
        record::failure(shared.store.as_ref(), &fence, &error, &backoff, unit)
    })
    .await;
    match recorded {
        Ok(done) => match done.decision {
            AfterError::Apply(FailAction::Retry { delay }) => {
                tracing::warn!(
                    job_id = job.id,
                    kind = %job.kind,
                    attempt = job.attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "job attempt failed; it will be retried (`errand jobs show {}` has the error)",
                    job.id
                );
                JobOutcome::Retrying { delay }
            }
            AfterError::Apply(FailAction::Fail) => {
                tracing::warn!(
                    job_id = job.id,
                    kind = %job.kind,
                    attempt = job.attempt,
                    "job failed for good (`errand jobs show {}` has the error)",
                    job.id
                );
                JobOutcome::Failed
            }
            AfterError::Cancel => {
                tracing::info!(job_id = job.id, kind = %job.kind, attempt = job.attempt, "job cancelled (it failed after a cancel request)");
                JobOutcome::Cancelled
            }
        },
        Err(StoreError::Stale { .. }) => stale(job, "failure"),
        Err(e) => unrecorded(job, "failure", &e.to_string()),
    }
}

async fn cancel_ack(shared: &Shared, job: &Job, fence: Fence, message: &str) -> JobOutcome {
    let message = errand_core::recorded::recorded_error(message, &job.args);
    let message = message.as_str();
    match persist(shared, "job_cancel_ack", || {
        shared.store.job_cancel_ack(&fence, Some(message))
    })
    .await
    {
        Ok(_) => {
            tracing::info!(job_id = job.id, kind = %job.kind, attempt = job.attempt, "job cancelled");
            JobOutcome::Cancelled
        }
        Err(StoreError::Stale { .. }) => stale(job, "cancellation"),
        Err(e) => unrecorded(job, "cancellation", &e.to_string()),
    }
}

fn stale(job: &Job, what: &str) -> JobOutcome {
    tracing::info!(
        job_id = job.id,
        kind = %job.kind,
        attempt = job.attempt,
        "stale {what} dropped: this worker no longer holds the job"
    );
    JobOutcome::Stale
}

fn unrecorded(job: &Job, what: &str, error: &str) -> JobOutcome {
    tracing::error!(
        job_id = job.id,
        kind = %job.kind,
        attempt = job.attempt,
        error,
        "could not record the job's {what}; it stays running until its lease expires and the \
         rescuer requeues it"
    );
    JobOutcome::Unrecorded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_precedence_job_then_task_then_default_and_zero_is_none() {
        let task = Some(Duration::from_secs(60));
        assert_eq!(
            effective_timeout(Some(200), task),
            Some(Duration::from_millis(200))
        );
        assert_eq!(effective_timeout(Some(0), task), None);
        assert_eq!(effective_timeout(None, task), Some(Duration::from_secs(60)));
        assert_eq!(effective_timeout(None, Some(Duration::ZERO)), None);
        assert_eq!(effective_timeout(None, None), Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(secs(Duration::from_millis(200)), "0.2s");
        assert_eq!(secs(Duration::from_secs(1800)), "1800s");
    }
}
