//! Enqueue inside a transaction the application owns: the job exists only if the
//! application's own writes commit (the transactional outbox).
//!
//! A [`Store`](crate::Store) runs each operation in a transaction of its own. When the caller
//! holds a transaction on the same database, a store crate implements [`CallerTransaction`]
//! for that driver's transaction and connection types (errand-store-postgres: sqlx's
//! `PgConnection` and `Transaction<Postgres>`), so the public library takes any
//! `&mut impl CallerTransaction` and never names a driver type. Another binding (a Python
//! package, a SQLite caller's transaction) implements the same trait for its own handle.
//!
//! The type parameter is a marker type of the implementing crate (errand-store-postgres's
//! `PgMarker`): Rust lets a crate implement a trait of another crate for a driver's type only
//! when one of the impl's types is its own. Callers never write it; with one implementation
//! per transaction type, the compiler infers it.

use crate::{Enqueued, StoreResult};
use async_trait::async_trait;
use errand_core::JobInsert;

/// A database transaction (or connection) of the caller's that jobs can be inserted into.
/// `Marker` names the store crate implementing it (see the module doc).
#[async_trait]
pub trait CallerTransaction<Marker>: Send {
    /// [`Store::job_insert_many`](crate::Store::job_insert_many) on this transaction: the
    /// same statement, the same unique-key rule, one [`Enqueued`] per input in input order.
    /// Nothing is committed: the jobs (and the workers' wake-up) exist once the caller
    /// commits, and never if it rolls back. The transaction must see Errand's tables.
    async fn job_insert_many(&mut self, jobs: &[JobInsert]) -> StoreResult<Vec<Enqueued>>;
}
