//! Schema migrations: the embedded `migrations/*.sql` files and the `errand_migrations`
//! table that records which ones were applied.

use crate::error::OpError;
use crate::rows::micros_to_time;
use errand_store::{AppliedMigration, MigrationStatus, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// One embedded migration.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
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
    Migration {
        version: 9,
        name: "hot_counts",
        sql: include_str!("../migrations/0009_hot_counts.sql"),
    },
];

/// The highest version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS errand_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)";

fn too_new(current: i64) -> StoreError {
    StoreError::Schema(format!(
        "the database schema is at version {current}, newer than this build of errand \
         understands (latest known version {}); upgrade errand",
        latest_version()
    ))
}

/// Applies every pending migration, each in its own IMMEDIATE transaction that re-checks,
/// under the write lock, that the migration is still pending: when several processes start
/// together, the first applies it and the others find it done.
pub(crate) fn migrate(conn: &mut Connection, now: i64) -> Result<MigrationStatus, OpError> {
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(CREATE_MIGRATIONS_TABLE, [])?;
        let current = current_version(&tx)?;
        if current > latest_version() {
            return Err(too_new(current).into());
        }
        tx.commit()?;
    }
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = tx
            .query_row(
                "SELECT 1 FROM errand_migrations WHERE version = ?1",
                [m.version],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if done {
            continue; // the transaction rolls back on drop; it changed nothing
        }
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO errand_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, now],
        )?;
        tx.commit()?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied sqlite migration"
        );
    }
    status(conn)
}

fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM errand_migrations",
        [],
        |r| r.get(0),
    )
}

/// The applied and pending migrations. A database without the `errand_migrations` table is
/// at version 0. A database at a version newer than this build is a [`StoreError::Schema`].
pub(crate) fn status(conn: &Connection) -> Result<MigrationStatus, OpError> {
    let has_table = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'errand_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    let mut applied = Vec::new();
    if has_table {
        let mut stmt = conn
            .prepare("SELECT version, name, applied_at FROM errand_migrations ORDER BY version")?;
        let rows = stmt.query_map([], |r| {
            let at: i64 = r.get(2)?;
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                applied_at: micros_to_time(at),
            })
        })?;
        for row in rows {
            applied.push(row?);
        }
    }
    let current = applied.iter().map(|m| m.version).max().unwrap_or(0);
    if current > latest_version() {
        return Err(too_new(current).into());
    }
    let pending = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| (m.version, m.name.to_string()))
        .collect();
    Ok(MigrationStatus {
        current_version: current,
        latest_version: latest_version(),
        applied,
        pending,
    })
}
