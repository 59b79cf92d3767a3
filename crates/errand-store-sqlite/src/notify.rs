//! Wake-up hints on SQLite: an in-process [`tokio::sync::broadcast`] channel per store.
//!
//! The operations that make jobs ready now (an insert with `run_at <= now`, an operator
//! retry, a release, a rescue requeue) collect the queues they touched in a [`ReadyQueues`]
//! while their transaction runs, and [`SqliteStore::write_waking`] sends one
//! [`JobsReady`] per queue once the transaction has committed, so a subscriber that wakes
//! up and claims sees the jobs. A rolled-back transaction sends nothing.
//!
//! The channel lives in the store and is shared by its clones; other processes on the same
//! file (and other stores opened on it in this process) hear nothing and rely on their poll,
//! as the trait allows.

use crate::error::OpError;
use crate::SqliteStore;
use errand_store::{JobsReady, StoreResult};
use rusqlite::Transaction;
use std::collections::BTreeSet;
use tokio::sync::broadcast;

/// Hints buffered per subscriber before the slowest one starts losing the oldest
/// (`RecvError::Lagged`); a worker that lags simply claims, so losing hints is harmless.
pub(crate) const CAPACITY: usize = 1024;

/// The distinct queues in which a write made jobs ready now.
pub(crate) type ReadyQueues = BTreeSet<String>;

/// A new hint channel for a store.
pub(crate) fn channel() -> broadcast::Sender<JobsReady> {
    broadcast::channel(CAPACITY).0
}

impl SqliteStore {
    /// [`SqliteStore::write`] for operations that can make jobs ready: `f` adds the queue of
    /// every job it made ready to the set it is given, and after the commit one hint per
    /// queue goes to the subscribers. Sending never fails the operation (without
    /// subscribers there is nobody to tell).
    pub(crate) async fn write_waking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64, &mut ReadyQueues) -> Result<T, OpError> + Send + 'static,
    {
        let (out, ready) = self
            .write(move |tx, now| {
                let mut ready = ReadyQueues::new();
                let out = f(tx, now, &mut ready)?;
                Ok((out, ready))
            })
            .await?;
        // `write` returned Ok: the transaction has committed.
        for queue in ready {
            let _ = self.inner.wake.send(JobsReady { queue });
        }
        Ok(out)
    }

    /// A new receiver of this store's hints (see [`errand_store::Store::subscribe`]).
    pub(crate) fn subscribe_impl(&self) -> broadcast::Receiver<JobsReady> {
        self.inner.wake.subscribe()
    }
}
