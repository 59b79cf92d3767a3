//! The completer: records successes in batches.
//!
//! Executors send their successes on a channel and wait for the answer. The completer takes
//! whatever is queued (up to [`MAX_BATCH`]) and writes it with one `job_complete_many`, with
//! no artificial delay: under light load a success is written at once, under heavy load the
//! successes that piled up during one write go in the next, so batches grow with the load.
//! As many batches are written at once as the store's tuning says
//! (`StoreTuning::completions_in_flight`): on PostgreSQL four, so that their round trips and
//! commits overlap; on SQLite two, so that the next batch waits at the store's one writer and
//! shares a commit with whatever else is queued there (a claim, usually: the store commits
//! queued writes together).
//!
//! A batch the store refuses (a row it cannot take) is split until the bad row is alone, so
//! one job's output never fails its neighbours' successes (see [`record::write_isolated`]).

use crate::pool::Shared;
use crate::record::{self, Success};
use crate::retry::RetryDelay;
use errand_store::Ack;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Most successes written by one `job_complete_many`.
pub(crate) const MAX_BATCH: usize = 500;

/// One success to record, and where to send the store's answer: the ack, or the store
/// error that made the completer give up.
pub(crate) struct CompleteRequest {
    pub item: Success,
    pub reply: oneshot::Sender<Result<Ack, String>>,
}

/// Runs until aborted (after shutdown has seen every executor get its answer).
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<CompleteRequest>) {
    let mut writes = JoinSet::new();
    let limit = shared.config.completions_in_flight.max(1);
    loop {
        // At the limit, wait for a write to finish before taking more.
        if writes.len() >= limit {
            writes.join_next().await;
            continue;
        }
        let first = tokio::select! {
            biased;
            Some(_) = writes.join_next(), if !writes.is_empty() => continue,
            first = rx.recv() => match first {
                Some(first) => first,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        writes.spawn(write(shared.clone(), batch));
    }
    while writes.join_next().await.is_some() {}
}

/// Writes one batch with [`record::write_isolated`] (a row the store refuses fails only
/// itself) and answers each of its executors. Items that met a transient error (the database
/// away) are written again with a capped backoff for up to `record_retry_for`, then given up:
/// their jobs are rescued after their lease.
async fn write(shared: Arc<Shared>, batch: Vec<CompleteRequest>) {
    let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|r| (r.item, r.reply)).unzip();
    let mut replies: Vec<Option<_>> = replies.into_iter().map(Some).collect();
    tracing::debug!(batch = items.len(), "recording successes");
    let started = Instant::now();
    let mut delay = RetryDelay::new();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    loop {
        let part: Vec<_> = pending.iter().map(|&i| items[i].clone()).collect();
        let answers = record::write_isolated(shared.store.as_ref(), &part).await;
        let give_up =
            shared.abandon.is_fired() || started.elapsed() >= shared.config.record_retry_for;
        let mut again = Vec::new();
        let mut last_error = None;
        for (&i, answer) in pending.iter().zip(answers) {
            match answer {
                Err(e) if e.is_transient() && !give_up => {
                    last_error = Some(e);
                    again.push(i);
                }
                answer => {
                    if let Some(reply) = replies[i].take() {
                        let _ = reply.send(answer.map_err(|e| e.to_string()));
                    }
                }
            }
        }
        if again.is_empty() {
            return;
        }
        let wait = delay.next_delay();
        tracing::warn!(
            op = "job_complete_many",
            jobs = again.len(),
            error = %last_error.map(|e| e.to_string()).unwrap_or_default(),
            retry_in_ms = wait.as_millis() as u64,
            "store error while recording successes; retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.abandon.fired() => {}
        }
        pending = again;
    }
}
