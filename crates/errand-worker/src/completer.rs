//! The completer: records successes in batches.
//!
//! Executors send their successes on a channel and wait for the answer. The completer takes
//! whatever is queued (up to [`MAX_BATCH`]) and writes it with one `job_complete_many`, with
//! no artificial delay: under light load a success is written at once, under heavy load the
//! successes that piled up during one write go in the next, so batches grow with the load.

use crate::pool::Shared;
use crate::retry::persist;
use errand_store::{Ack, JobComplete};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
    let mut items = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        items.push(first.item);
        replies.push(first.reply);
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => {
                    items.push(r.item);
                    replies.push(r.reply);
                }
                Err(_) => break,
            }
        }
        tracing::debug!(batch = items.len(), "recording successes");
        let answer = persist(&shared, "job_complete_many", || {
            shared.store.job_complete_many(&items)
        })
        .await;
        match answer {
            Ok(acks) if acks.len() == replies.len() => {
                for (reply, ack) in replies.drain(..).zip(acks) {
                    let _ = reply.send(Ok(ack));
                }
            }
            Ok(acks) => {
                let msg = format!(
                    "job_complete_many answered {} acks for {} items",
                    acks.len(),
                    replies.len()
                );
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
        items.clear();
    }
}
