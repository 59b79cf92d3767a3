//! The orchestration both stores share, written once.
//!
//! A store operation is a few steps in one transaction: read and lock, decide (with
//! `errand-core`'s rules), write, record. The steps' order, the decisions between them and
//! the results they build are the same on SQLite and PostgreSQL; only the SQL of each step
//! differs. So each multi-step operation here is an `async fn` generic over a small
//! per-dialect trait whose methods are those steps ([`MigrationTx`], [`ScheduleTx`],
//! [`OperatorTx`], [`FlowClaimTx`]), and each store implements the traits on its own transaction type with
//! its own SQL. What is left in a store crate is dialect: SQL text, row decoding, and the
//! engine specifics (SQLite's writer thread, group commit and checkpointing; PostgreSQL's
//! pool, `LISTEN`/`NOTIFY` and `unnest` batches).
//!
//! PostgreSQL awaits these functions. SQLite runs them on its writer thread, inside the
//! write transaction, through [`run_now`]: its step methods are `async` only to share the
//! trait and never wait, so the future completes on its first poll.
//!
//! Each trait has an `Error` type that a [`StoreError`] converts into, so a store keeps its
//! own error type through the steps (SQLite's driver error, which decides whether a failed
//! write is a full disk) and the shared code can still report a stale fence or a missing
//! schedule.

mod flow;
mod migrate;
mod operator;
mod schedule;

pub use flow::{claim_limited, Candidates, FlowClaimTx, QueueState};
pub use migrate::{migrate, migration_status, Migration, MigrationTx};
pub use operator::{job_cancel, job_retry, LockedJob, OperatorTx};
pub use schedule::{schedule_fire, schedule_trigger, FireRow, ScheduleTx};

use crate::{StoreError, StoreResult};
use errand_core::{ClaimedJob, Job};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future that never waits (SQLite's steps, on the writer thread) to completion.
///
/// # Panics
///
/// If the future returns `Pending`: a step that waits has no place on the writer thread.
pub fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a store step that must not wait returned Pending"),
    }
}

/// A claim's rows as `job_claim` answers them: in claim order (highest priority, then
/// earliest `run_at`, then lowest id; `RETURNING` gives rows in no particular order), each
/// with its fence.
pub fn claimed(mut jobs: Vec<Job>) -> StoreResult<Vec<ClaimedJob>> {
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    jobs.into_iter()
        .map(|job| {
            let id = job.id;
            ClaimedJob::new(job).ok_or_else(|| {
                StoreError::Database(format!("claimed job {id} came back without a worker"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_now_completes_a_future_that_does_not_wait() {
        async fn two() -> u8 {
            2
        }
        assert_eq!(run_now(async { two().await + 1 }), 3);
    }

    #[test]
    #[should_panic(expected = "must not wait")]
    fn run_now_refuses_a_future_that_waits() {
        run_now(std::future::pending::<()>());
    }
}
