//! Schema migrations: the embedded `migrations/*.sql` files, applied in order, each in its own
//! transaction under a transaction-scoped advisory lock so that many processes starting at
//! once apply each migration exactly once.

use crate::error::map;
use crate::PgStore;
use errand_store::{AppliedMigration, MigrationStatus, StoreError, StoreResult};
use sqlx::{Connection, Executor, PgConnection, Row};

/// One embedded migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    sql: &'static str,
}

/// Every migration this build knows, in version order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs",
        sql: include_str!("../migrations/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "workers",
        sql: include_str!("../migrations/0002_workers.sql"),
    },
    Migration {
        version: 3,
        name: "claim_plan",
        sql: include_str!("../migrations/0003_claim_plan.sql"),
    },
    Migration {
        version: 4,
        name: "schedules",
        sql: include_str!("../migrations/0004_schedules.sql"),
    },
    Migration {
        version: 5,
        name: "finished_index",
        sql: include_str!("../migrations/0005_finished_index.sql"),
    },
    // 6 is reserved for the HTTP API.
    Migration {
        version: 7,
        name: "queue_counts",
        sql: include_str!("../migrations/0007_queue_counts.sql"),
    },
    Migration {
        version: 8,
        name: "lean_indexes",
        sql: include_str!("../migrations/0008_lean_indexes.sql"),
    },
];

/// The highest version this build knows.
fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS errand_migrations (\
     version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)";

/// A stable 64-bit FNV-1a hash, for the advisory lock key of a schema.
fn fnv1a(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

impl PgStore {
    /// The advisory lock key that serialises migrations of this store's schema.
    fn migration_lock_key(&self) -> i64 {
        let schema = self.schema.as_deref().unwrap_or("public");
        fnv1a(format!("errand.migrate.{schema}").as_bytes())
    }

    /// Applies pending migrations (see [`errand_store::Store::migrate`]).
    pub(crate) async fn migrate_impl(&self) -> StoreResult<MigrationStatus> {
        let key = self.migration_lock_key();
        let mut conn = self.pool.acquire().await.map_err(map)?;

        // The schema and the bookkeeping table, under the lock (`IF NOT EXISTS` alone
        // races when two processes create the same object at once).
        let mut tx = conn.begin().await.map_err(map)?;
        lock(&mut tx, key).await?;
        if let Some(schema) = &self.schema {
            let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            tx.execute(create.as_str()).await.map_err(map)?;
        }
        tx.execute(CREATE_TABLE).await.map_err(map)?;
        tx.commit().await.map_err(map)?;

        for m in MIGRATIONS {
            let mut tx = conn.begin().await.map_err(map)?;
            lock(&mut tx, key).await?;
            // Re-read inside the lock: another process may have applied it meanwhile.
            let current = current_version(&mut tx).await?;
            check_not_newer(current)?;
            let done: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM errand_migrations WHERE version = $1)",
            )
            .bind(m.version)
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
            if done {
                tx.rollback().await.map_err(map)?;
                continue;
            }
            tx.execute(m.sql).await.map_err(|e| {
                StoreError::Schema(format!(
                    "migration {} ({}) failed: {}",
                    m.version,
                    m.name,
                    map(e)
                ))
            })?;
            sqlx::query(
                "INSERT INTO errand_migrations (version, name, applied_at) \
                 VALUES ($1, $2, coalesce($3::timestamptz, now()))",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(self.now())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            tx.commit().await.map_err(map)?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        status(&mut conn).await
    }

    /// Reports applied and pending migrations (see [`errand_store::Store::migration_status`]).
    pub(crate) async fn migration_status_impl(&self) -> StoreResult<MigrationStatus> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        status(&mut conn).await
    }
}

async fn lock(conn: &mut PgConnection, key: i64) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(conn)
        .await
        .map_err(map)?;
    Ok(())
}

async fn current_version(conn: &mut PgConnection) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT coalesce(max(version), 0)::bigint FROM errand_migrations")
        .fetch_one(conn)
        .await
        .map_err(map)
}

fn check_not_newer(current: i64) -> StoreResult<()> {
    if current > latest() {
        Err(StoreError::Schema(format!(
            "the database schema is at version {current}, newer than version {} known to this \
             build of errand; upgrade errand",
            latest()
        )))
    } else {
        Ok(())
    }
}

/// Reads `errand_migrations` (absent = nothing applied).
async fn status(conn: &mut PgConnection) -> StoreResult<MigrationStatus> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('errand_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let applied = if exists {
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
            .collect::<StoreResult<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let current_version = applied.iter().map(|m| m.version).max().unwrap_or(0);
    check_not_newer(current_version)?;
    let pending = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| (m.version, m.name.to_string()))
        .collect();
    Ok(MigrationStatus {
        current_version,
        latest_version: latest(),
        applied,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_lock_keys_differ_per_schema() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(latest(), MIGRATIONS.last().unwrap().version);
        assert_ne!(fnv1a(b"errand.migrate.a"), fnv1a(b"errand.migrate.b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325_u64 as i64);
    }
}
