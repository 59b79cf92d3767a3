//! The completer: records successes in batches.
//!
//! Executors send their successes on a channel and wait for the answer. The completer takes
//! whatever is queued (up to [`MAX_BATCH`]) and writes it with one `job_complete_many`, with
//! no artificial delay: under light load a success is written at once, under heavy load the
//! successes that piled up during one write go in the next, so batches grow with the load.
//! On PostgreSQL up to four batches are written at once (`Config::writes_in_flight`), so
//! that their round trips and commits overlap; on SQLite two, so that the next batch waits
//! at the store's one writer and shares a commit with whatever else is queued there (a
//! claim, usually: the store commits queued writes together).

use crate::pool::Shared;
use crate::retry::persist;
use errand_store::{Ack, JobComplete};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Most successes written by one `job_complete_many`.
pub(crate) const MAX_BATCH: usize = 500;

/// One success to record, and where to send the store's answer: the ack, or the store
/// error that made the completer give up.
pub(crate) struct CompleteRequest {
    pub item: JobComplete,
    pub reply: oneshot::Sender<Result<Ack, String>>,
}

/// Runs until aborted (after shutdown has seen every executor get its answer).
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<CompleteRequest>) {
    let mut writes = JoinSet::new();
    let limit = shared.config.writes_in_flight.max(1);
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

/// Writes one batch and answers each of its executors.
async fn write(shared: Arc<Shared>, batch: Vec<CompleteRequest>) {
    let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|r| (r.item, r.reply)).unzip();
    tracing::debug!(batch = items.len(), "recording successes");
    let answer = persist(&shared, "job_complete_many", || {
        shared.store.job_complete_many(&items)
    })
    .await;
    match answer {
        Ok(acks) if acks.len() == replies.len() => {
            for (reply, ack) in replies.into_iter().zip(acks) {
                let _ = reply.send(Ok(ack));
            }
        }
        Ok(acks) => {
            let msg = format!(
                "job_complete_many answered {} acks for {} items",
                acks.len(),
                replies.len()
            );
            for reply in replies {
                let _ = reply.send(Err(msg.clone()));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(msg.clone()));
            }
        }
    }
}
