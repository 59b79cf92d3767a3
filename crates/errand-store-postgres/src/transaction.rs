//! The caller's transaction: [`errand_store::CallerTransaction`] for sqlx's PostgreSQL
//! connection and transaction, so `errand`'s `Enqueue::send_in(&mut tx)` takes them without
//! naming a driver type in its own signature.
//!
//! Both run [`crate::enqueue_in`], the statement [`errand_store::Store::job_insert_many`]
//! runs, on the caller's connection; the wake-up `NOTIFY` it sends is delivered when the
//! caller commits.

use errand_core::JobInsert;
use errand_store::{CallerTransaction, Enqueued, StoreResult};
use sqlx::{PgConnection, Postgres, Transaction};

/// Marks this crate's implementations of [`CallerTransaction`] (the orphan rule wants a type
/// of this crate in them); callers never name it.
#[derive(Debug)]
pub enum PgMarker {}

#[async_trait::async_trait]
impl CallerTransaction<PgMarker> for PgConnection {
    async fn job_insert_many(&mut self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        crate::enqueue_in(self, jobs).await
    }
}

#[async_trait::async_trait]
impl CallerTransaction<PgMarker> for Transaction<'_, Postgres> {
    async fn job_insert_many(&mut self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>> {
        crate::enqueue_in(self, jobs).await
    }
}
