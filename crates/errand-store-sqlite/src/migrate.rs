//! Schema migrations: the embedded `migrations/*.sql` files, and SQLite's steps of the
//! shared runner (`errand_store::steps::migrate`): each migration in its own IMMEDIATE
//! transaction, whose write lock serialises processes starting at once.

use crate::error::OpError;
use crate::rows::micros_to_time;
use errand_store::steps::{self, Migration, MigrationTx};
use errand_store::{AppliedMigration, MigrationStatus};
use rusqlite::{Connection, OptionalExtension};

/// Every migration this build knows, in version order. SQLite has no 3 (a PostgreSQL index
/// fix); 6 is reserved for the HTTP API. 10 is the `errand_enqueue` view an application's own
/// connection inserts into (see its file). 11 adds a job's progress.
pub(crate) const MIGRATIONS: &[Migration] = errand_store::embed_migrations![
    "0001_jobs",
    "0002_workers",
    "0004_schedules",
    "0005_finished_index",
    "0007_queue_counts",
    "0008_lean_indexes",
    "0009_hot_counts",
    "0010_sql_enqueue",
    "0011_progress",
    "0012_flow_control",
    "0013_rate_limits",
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS errand_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)";

/// The writer connection, with the time the migrations are recorded at. Rolls back an open
/// transaction when dropped (a step that panicked), so the writer is left clean.
struct Migrator<'c> {
    conn: &'c mut Connection,
    now: i64,
}

impl Drop for Migrator<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl MigrationTx for Migrator<'_> {
    type Error = OpError;

    async fn begin(&mut self) -> Result<(), OpError> {
        Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?)
    }

    async fn commit(&mut self) -> Result<(), OpError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    async fn rollback(&mut self) -> Result<(), OpError> {
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }

    async fn create_bookkeeping(&mut self) -> Result<(), OpError> {
        self.conn.execute(CREATE_MIGRATIONS_TABLE, [])?;
        Ok(())
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, OpError> {
        applied(self.conn)
    }

    async fn apply(&mut self, m: &Migration) -> Result<(), OpError> {
        self.conn.execute_batch(m.sql)?;
        self.conn.execute(
            "INSERT INTO errand_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version(), m.name(), self.now],
        )?;
        Ok(())
    }
}

/// [`errand_store::Store::migrate`], on the writer connection.
pub(crate) fn migrate(conn: &mut Connection, now: i64) -> Result<MigrationStatus, OpError> {
    steps::run_now(steps::migrate(&mut Migrator { conn, now }, MIGRATIONS))
}

/// [`errand_store::Store::migration_status`].
pub(crate) fn status(conn: &Connection) -> Result<MigrationStatus, OpError> {
    Ok(steps::migration_status(MIGRATIONS, applied(conn)?)?)
}

/// The applied migrations; none when `errand_migrations` is missing.
fn applied(conn: &Connection) -> Result<Vec<AppliedMigration>, OpError> {
    let has_table = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'errand_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has_table {
        return Ok(Vec::new());
    }
    let mut stmt =
        conn.prepare("SELECT version, name, applied_at FROM errand_migrations ORDER BY version")?;
    let rows = stmt.query_map([], |r| {
        Ok(AppliedMigration {
            version: r.get(0)?,
            name: r.get(1)?,
            applied_at: micros_to_time(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
