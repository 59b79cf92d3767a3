//! The outcome recorder: the one way an attempt's outcome reaches the store, shared by the
//! in-process executor and the remote-worker protocol of `errand-server`.
//!
//! | outcome | how it is recorded |
//! | --- | --- |
//! | success | [`success`] prepares the `job_complete_many` item (result redacted and made storable by `errand_core::recorded`); [`write_isolated`] writes a batch so that one bad row never fails its neighbours; a note event says when the result had to be changed |
//! | error | [`failure`]: reads the job under the fence, decides with `errand_core::decide_after_error` (a cancel request wins; else retry-or-fail with the kind's backoff), writes the decision with `job_fail` or `job_cancel_ack`, the error text redacted and made storable |
//!
//! Both paths record the same way for the same report, so a job behaves the same whether a
//! Rust handler, a command, an HTTP task or a worker in another language ran it.

use errand_core::recorded::{recorded_error, recorded_result};
use errand_core::{
    decide_after_error, AfterError, Backoff, EventKind, FailAction, Fence, HandlerError, Job,
    JobStatus, NewEvent,
};
use errand_store::{Ack, JobComplete, JobFail, Store, StoreError, StoreResult};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A success ready to write, and the note to record if it is written.
#[derive(Debug, Clone)]
pub struct Success {
    /// The row to write.
    pub item: JobComplete,
    /// Said in a `note` event once the row is written.
    pub note: Option<String>,
}

/// The success of `job`'s attempt under `fence` with `result`, prepared for the store.
pub fn success(job: &Job, fence: Fence, result: Option<&Value>) -> Success {
    let (result, note) = recorded_result(result, &job.args);
    Success {
        item: JobComplete { fence, result },
        note,
    }
}

/// Records a note event on a job (best effort: the outcome it explains is already stored).
pub async fn note(store: &dyn Store, fence: &Fence, message: String) {
    let event = NewEvent {
        job_id: fence.job_id,
        kind: EventKind::Note,
        attempt: fence.attempt,
        worker_id: Some(fence.worker_id.clone()),
        message: Some(message),
        data: None,
    };
    if let Err(e) = store.event_insert(&event).await {
        tracing::warn!(job_id = fence.job_id, error = %e, "could not record a note on the job");
    }
}

/// Writes a batch of successes so that one row the store refuses never fails the others: a
/// batch that fails with a non-transient error is split in halves and each half written on
/// its own, down to single items; a single item the store still refuses is written without
/// its result, with a note saying why. Transient errors (the database away) are returned for
/// the whole batch, for the caller to retry. The answer has one entry per item, in order.
pub async fn write_isolated(store: &dyn Store, items: &[Success]) -> Vec<StoreResult<Ack>> {
    let mut out = Vec::with_capacity(items.len());
    write_part(store, items, &mut out).await;
    out
}

fn write_part<'a>(
    store: &'a dyn Store,
    items: &'a [Success],
    out: &'a mut Vec<StoreResult<Ack>>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let batch: Vec<JobComplete> = items.iter().map(|s| s.item.clone()).collect();
        match store.job_complete_many(&batch).await {
            Ok(acks) if acks.len() == items.len() => {
                for (s, ack) in items.iter().zip(&acks) {
                    if *ack == Ack::Done {
                        if let Some(n) = &s.note {
                            note(store, &s.item.fence, n.clone()).await;
                        }
                    }
                }
                out.extend(acks.into_iter().map(Ok));
            }
            Ok(acks) => {
                let e = StoreError::Database(format!(
                    "job_complete_many answered {} acks for {} items",
                    acks.len(),
                    items.len()
                ));
                out.extend(items.iter().map(|_| Err(e.clone())));
            }
            Err(e) if e.is_transient() => out.extend(items.iter().map(|_| Err(e.clone()))),
            Err(e) if items.len() > 1 => {
                tracing::warn!(
                    batch = items.len(),
                    error = %e,
                    "a batch of successes was refused; writing it in smaller parts"
                );
                let (left, right) = items.split_at(items.len() / 2);
                write_part(store, left, out).await;
                write_part(store, right, out).await;
            }
            Err(e) => {
                let s = &items[0];
                tracing::warn!(
                    job_id = s.item.fence.job_id,
                    error = %e,
                    "the store refused a job's result; recording the success without it"
                );
                let bare = JobComplete {
                    fence: s.item.fence.clone(),
                    result: None,
                };
                match store.job_complete_many(std::slice::from_ref(&bare)).await {
                    Ok(acks) if acks.len() == 1 => {
                        if acks[0] == Ack::Done {
                            let why = format!(
                                "the result could not be stored ({e}); the success is recorded without it"
                            );
                            note(store, &bare.fence, why).await;
                        }
                        out.push(Ok(acks[0]));
                    }
                    Ok(_) => out.push(Err(e)),
                    Err(again) => out.push(Err(again)),
                }
            }
        }
    })
}

/// What [`failure`] recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The decision: cancelled, retried after a delay, or failed for good.
    pub decision: AfterError,
    /// The job as stored afterwards.
    pub job: Job,
}

/// The message stored for an attempt that ended in `error`.
pub fn failure_message(job: &Job, error: &HandlerError) -> String {
    recorded_error(error.message(), &job.args)
}

/// Records that the attempt under `fence` ended in `error`: reads the job (it must still be
/// running under the fence, else [`StoreError::Stale`]), decides, and writes the decision.
/// `backoff` is the kind's ([`errand_core::TaskCatalog::backoff`]); `unit` the jitter sample.
pub async fn failure(
    store: &dyn Store,
    fence: &Fence,
    error: &HandlerError,
    backoff: &Backoff,
    unit: f64,
) -> StoreResult<Failure> {
    let stale = || StoreError::Stale {
        job_id: fence.job_id,
        attempt: fence.attempt,
    };
    let job = store.job_get(fence.job_id).await?.ok_or_else(stale)?;
    if job.status != JobStatus::Running || job.fence().as_ref() != Some(fence) {
        return Err(stale());
    }
    let decision = decide_after_error(
        job.attempt,
        job.max_attempts,
        job.cancel_requested_at.is_some(),
        error,
        backoff,
        unit,
    );
    let message = failure_message(&job, error);
    let after = match decision {
        AfterError::Cancel => store.job_cancel_ack(fence, Some(&message)).await?,
        AfterError::Apply(action) => {
            store
                .job_fail(&JobFail {
                    fence: fence.clone(),
                    error: message,
                    action,
                })
                .await?
        }
    };
    Ok(Failure {
        decision,
        job: after,
    })
}

/// True when the decision puts the job back in the queue.
pub fn is_retry(decision: &AfterError) -> bool {
    matches!(decision, AfterError::Apply(FailAction::Retry { .. }))
}
