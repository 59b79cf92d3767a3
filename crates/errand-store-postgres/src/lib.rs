//! Errand's PostgreSQL store: the [`errand_store::Store`] trait over a `sqlx` connection pool.
//!
//! This crate owns every SQL statement Errand runs against PostgreSQL, the schema migrations
//! (`migrations/*.sql`, embedded in the binary) and the mapping of rows to
//! [`errand_core::Job`] and [`errand_core::Event`].
//!
//! # Design
//!
//! - **Claims** pick ready jobs with `FOR UPDATE SKIP LOCKED` over the partial index
//!   `errand_jobs_claim` (queued rows only), so concurrent workers never wait on each other
//!   and never receive the same job, and claim speed does not depend on how much history the
//!   table holds.
//! - **Time** comes from the database (`now()`) unless [`PgOptions::clock`] is set, so hosts
//!   with skewed clocks agree on leases and run times. Each statement reads "now" once:
//!   the injected time is bound as a parameter and the SQL says
//!   `coalesce($n::timestamptz, now())`, and `now()` is fixed for a whole transaction.
//! - **Enqueue inside the application's transaction**: [`enqueue_in`] inserts jobs on a
//!   connection the caller controls, so a job exists only if the caller's own writes commit
//!   (the transactional outbox); `transaction` implements [`errand_store::CallerTransaction`]
//!   with it for sqlx's connection and transaction. [`errand_store::Store::job_insert_many`]
//!   runs the same code.
//!   Callers in other languages run the SQL function `errand_enqueue()` (migration 10, see
//!   its file and docs/design.md, Enqueue from SQL) in their transaction: errand-core's
//!   checks and the same unique-key rule, tested against the library (`sql_enqueue_tests`).
//! - **Fenced acknowledgements**: complete, fail, cancel-ack, release, rescue and heartbeat
//!   match on job id, attempt, worker id and `status = 'running'`; batches are one statement
//!   over `unnest` arrays, and the event rows they write are inserted by a data-modifying CTE
//!   of that same statement.
//! - **Schemas**: with [`PgOptions::schema`] every pooled connection runs
//!   `SET search_path TO <schema>`, which lets tests and tenants use a schema of their own.
//!   Nothing is migrated implicitly: call [`errand_store::Store::migrate`].
//! - **Wake-ups**: the statements that make jobs ready `NOTIFY` the channel
//!   `errand_ready_<schema>` (delivered on commit), and [`errand_store::Store::subscribe`]
//!   starts one `LISTEN` task per store that forwards them and reconnects on its own.
//! - **TLS** (`tls`): libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, from the URL
//!   or [`PgOptions::tls`], over rustls with the ring provider.

#[cfg(feature = "bench")]
pub mod baseline;
mod claim_cursor;
mod enqueue;
mod error;
mod flow;
mod migrate;
mod notify;
mod ops;
mod reads;
mod rows;
mod schedules;
mod sql;
mod store;
mod tls;
mod transaction;
mod worker_path;
mod workers;

#[cfg(test)]
mod claim_cursor_tests;
#[cfg(test)]
mod sql_enqueue_tests;
#[cfg(test)]
mod tests;

pub use enqueue::enqueue_in;
/// The sqlx this store is built on: the caller's-transaction enqueue
/// ([`errand_store::CallerTransaction`]) is implemented for its `PgConnection` and
/// `Transaction<Postgres>`, so an application uses this version for the pool it enqueues in.
pub use sqlx;
pub use tls::{PgTls, SslMode, UnknownSslMode};
pub use transaction::PgMarker;

use chrono::{DateTime, Utc};
use errand_core::Clock;
use errand_store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;

/// How long a new connection may take before the database counts as unreachable.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How to build a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Where "now" comes from. `None` (the default) uses the database's clock (`now()`);
    /// tests inject an [`errand_core::ManualClock`].
    pub clock: Option<Arc<dyn Clock>>,
    /// A schema to keep Errand's tables in (a plain identifier: `[a-z_][a-z0-9_]*`).
    /// When set, every pooled connection uses it as its `search_path` and
    /// [`errand_store::Store::migrate`] creates it if missing. `None` uses the connection's
    /// default `search_path` (normally `public`).
    pub schema: Option<String>,
    /// Pool size. Default 10.
    pub max_connections: u32,
    /// TLS settings on top of the URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
    /// (see [`PgTls`]). Default: none, the URL decides.
    pub tls: PgTls,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            clock: None,
            schema: None,
            max_connections: 10,
            tls: PgTls::default(),
        }
    }
}

/// The PostgreSQL implementation of [`errand_store::Store`]. Cloning is cheap: clones share
/// the pool and the wake-up listener.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Option<Arc<dyn Clock>>,
    schema: Option<String>,
    /// Wake-up hints: the subscribers' channel and the LISTEN task (see `notify`).
    wake: Arc<notify::Wake>,
    /// Where each queue's next claim starts (see `claim_cursor`), shared by the clones.
    cursors: Arc<claim_cursor::Cursors>,
    /// Which queues need the limited claim (see `flow`), shared by the clones.
    flow: Arc<flow::Flow>,
}

impl PgStore {
    /// Opens a pool to `url` (`postgres://user@host:port/db`, with libpq's `sslmode`,
    /// `sslrootcert`, `sslcert` and `sslkey` if wanted, overridden by [`PgOptions::tls`]).
    /// Connections report `application_name = errand` and, with [`PgOptions::schema`], use
    /// that schema.
    /// Opens one connection to check the database is reachable
    /// ([`StoreError::Unavailable`] if not). Does not migrate.
    pub async fn connect(url: &str, options: PgOptions) -> StoreResult<PgStore> {
        if let Some(schema) = &options.schema {
            validate_schema(schema)?;
        }
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid database URL: {e}")))?
            .application_name("errand");
        let connect = tls::apply(connect, url, &options.tls)?;
        let mut pool = PgPoolOptions::new().max_connections(options.max_connections.max(1));
        if let Some(schema) = options.schema.clone() {
            let set = format!("SET search_path TO {schema}");
            pool = pool.after_connect(move |conn, _meta| {
                let set = set.clone();
                Box::pin(async move {
                    conn.execute(set.as_str()).await?;
                    Ok(())
                })
            });
        }
        // Fail fast, and say why: one direct connection first. The pool's own first connect
        // retries a refused connection until its acquire timeout (30 s), then reports only
        // "timed out"; a direct attempt reports the cause (refused, unknown host, password,
        // TLS) at once, and one that hangs (a firewall dropping packets) ends after
        // CONNECT_TIMEOUT.
        let first = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&connect))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no answer from the server within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(error::map)?;
        let _ = first.close().await;
        let pool = pool.connect_with(connect).await.map_err(error::map)?;
        Ok(PgStore {
            pool,
            clock: options.clock,
            schema: options.schema,
            wake: Arc::new(notify::Wake::new()),
            cursors: Arc::default(),
            flow: Arc::default(),
        })
    }

    /// Wraps an existing pool. `options.max_connections` is ignored (the pool is already
    /// sized). When `options.schema` is set, the pool's connections must already use it as
    /// their `search_path` (e.g. via `PgPoolOptions::after_connect`); it is used here for
    /// [`errand_store::Store::migrate`] (create the schema) and [`PgStore::drop_schema`].
    pub fn from_pool(pool: PgPool, options: PgOptions) -> StoreResult<PgStore> {
        if let Some(schema) = &options.schema {
            validate_schema(schema)?;
        }
        Ok(PgStore {
            pool,
            clock: options.clock,
            schema: options.schema,
            wake: Arc::new(notify::Wake::new()),
            cursors: Arc::default(),
            flow: Arc::default(),
        })
    }

    /// The underlying pool, e.g. to open a transaction for [`enqueue_in`].
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema given in [`PgOptions::schema`], if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Drops the store's schema and everything in it (`DROP SCHEMA ... CASCADE`). For tests
    /// that must leave nothing behind. An error if the store was built without a schema,
    /// so this can never drop `public`. Stops the wake-up listener first (and waits until its
    /// connection is closed).
    pub async fn drop_schema(&self) -> StoreResult<()> {
        let schema = self.schema.as_deref().ok_or_else(|| {
            StoreError::Database("drop_schema needs a store built with PgOptions::schema".into())
        })?;
        self.wake.stop().await;
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        self.pool.execute(drop.as_str()).await.map_err(error::map)?;
        Ok(())
    }

    /// The injected time, or `None` to let the SQL use the database's `now()`.
    pub(crate) fn now(&self) -> Option<DateTime<Utc>> {
        self.clock.as_ref().map(|c| c.now())
    }
}

/// Checks that a schema name is a plain lower-case identifier, safe to splice into SQL.
fn validate_schema(schema: &str) -> StoreResult<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::Schema(format!(
            "invalid schema name `{schema}`: expected a plain identifier \
             ([a-z_][a-z0-9_]*, at most 63 characters)"
        )))
    }
}
