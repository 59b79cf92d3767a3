//! Schema migrations: the embedded `migrations/*.sql` files, and PostgreSQL's steps of the
//! shared runner (`errand_store::steps::migrate`): each migration in its own transaction
//! under a transaction-scoped advisory lock, so that many processes starting at once apply
//! each exactly once.

use crate::error::map;
use crate::PgStore;
use errand_store::steps::{self, Migration, MigrationTx};
use errand_store::{AppliedMigration, MigrationStatus, StoreError, StoreResult};
use sqlx::{Executor, PgConnection, Postgres, Row, Transaction};

/// Every migration this build knows, in version order. PostgreSQL has no 9 (SQLite's
/// counting change); 6 is reserved for the HTTP API. 10 installs `errand_enqueue()`, the
/// insert any SQL client runs in its own transaction (see its file). 11 adds a job's progress.
pub(crate) const MIGRATIONS: &[Migration] = errand_store::embed_migrations![
    "0001_jobs",
    "0002_workers",
    "0003_claim_plan",
    "0004_schedules",
    "0005_finished_index",
    "0007_queue_counts",
    "0008_lean_indexes",
    "0010_sql_enqueue",
    "0011_progress",
    "0012_flow_control",
    "0013_rate_limits",
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS errand_migrations (\
     version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)";

/// A stable 64-bit FNV-1a hash, for advisory lock keys (a schema's migrations, a queue's
/// limited claims).
pub(crate) fn fnv1a(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// PostgreSQL's steps of the shared runner: each transaction takes the schema's advisory
/// lock first (`IF NOT EXISTS` alone races when two processes create the same object).
struct Migrator<'s> {
    store: &'s PgStore,
    key: i64,
    tx: Option<Transaction<'static, Postgres>>,
}

impl Migrator<'_> {
    fn tx(&mut self) -> StoreResult<&mut PgConnection> {
        match self.tx.as_mut() {
            Some(tx) => Ok(&mut **tx),
            None => Err(StoreError::Database(
                "migration step outside a transaction".into(),
            )),
        }
    }
}

impl MigrationTx for Migrator<'_> {
    type Error = StoreError;

    async fn begin(&mut self) -> StoreResult<()> {
        let mut tx = self.store.pool.begin().await.map_err(map)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.key)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        self.tx = Some(tx);
        Ok(())
    }

    async fn commit(&mut self) -> StoreResult<()> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(map),
            None => Ok(()),
        }
    }

    async fn rollback(&mut self) -> StoreResult<()> {
        match self.tx.take() {
            Some(tx) => tx.rollback().await.map_err(map),
            None => Ok(()),
        }
    }

    async fn create_bookkeeping(&mut self) -> StoreResult<()> {
        let schema = self.store.schema.clone();
        let tx = self.tx()?;
        if let Some(schema) = schema {
            let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            tx.execute(create.as_str()).await.map_err(map)?;
        }
        tx.execute(CREATE_TABLE).await.map_err(map)?;
        Ok(())
    }

    async fn applied(&mut self) -> StoreResult<Vec<AppliedMigration>> {
        match self.tx.as_mut() {
            Some(tx) => applied(tx).await,
            None => applied(&mut *self.store.pool.acquire().await.map_err(map)?).await,
        }
    }

    async fn apply(&mut self, m: &Migration) -> StoreResult<()> {
        let now = self.store.now();
        let tx = self.tx()?;
        tx.execute(m.sql).await.map_err(|e| {
            StoreError::Schema(format!(
                "migration {} ({}) failed: {}",
                m.version(),
                m.name(),
                map(e)
            ))
        })?;
        sqlx::query(
            "INSERT INTO errand_migrations (version, name, applied_at) \
             VALUES ($1, $2, coalesce($3::timestamptz, now()))",
        )
        .bind(m.version())
        .bind(m.name())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        Ok(())
    }
}

impl PgStore {
    /// The advisory lock key that serialises migrations of this store's schema.
    fn migration_lock_key(&self) -> i64 {
        let schema = self.schema.as_deref().unwrap_or("public");
        fnv1a(format!("errand.migrate.{schema}").as_bytes())
    }

    /// Applies pending migrations (see [`errand_store::Store::migrate`]).
    pub(crate) async fn migrate_impl(&self) -> StoreResult<MigrationStatus> {
        let mut migrator = Migrator {
            store: self,
            key: self.migration_lock_key(),
            tx: None,
        };
        steps::migrate(&mut migrator, MIGRATIONS).await
    }

    /// Reports applied and pending migrations (see [`errand_store::Store::migration_status`]).
    pub(crate) async fn migration_status_impl(&self) -> StoreResult<MigrationStatus> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        steps::migration_status(MIGRATIONS, applied(&mut conn).await?)
    }
}

/// Reads `errand_migrations` (absent = nothing applied).
async fn applied(conn: &mut PgConnection) -> StoreResult<Vec<AppliedMigration>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('errand_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query("SELECT version, name, applied_at FROM errand_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
    rows.iter()
        .map(|r| {
            Ok(AppliedMigration {
                version: r.try_get("version").map_err(map)?,
                name: r.try_get("name").map_err(map)?,
                applied_at: r.try_get("applied_at").map_err(map)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_lock_keys_differ_per_schema() {
        assert!(MIGRATIONS
            .windows(2)
            .all(|w| w[0].version() < w[1].version()));
        assert_ne!(fnv1a(b"errand.migrate.a"), fnv1a(b"errand.migrate.b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325_u64 as i64);
    }
}
