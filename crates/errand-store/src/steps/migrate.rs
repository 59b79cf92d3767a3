//! The migration runner: which migrations are pending, applying each exactly once in its own
//! locked transaction while many processes start at once, and the status report.

use crate::{AppliedMigration, MigrationStatus, StoreError, StoreResult};

/// One embedded migration: `migrations/NNNN_name.sql` beside the store, see
/// [`embed_migrations!`](crate::embed_migrations).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file's stem, `NNNN_name`.
    pub file: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The version, the file's leading number.
    pub fn version(&self) -> i64 {
        let digits = self.file.split('_').next().unwrap_or_default();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("migration file `{}` has no leading version", self.file))
    }

    /// The name, what follows the version.
    pub fn name(&self) -> &'static str {
        self.file
            .split_once('_')
            .map_or(self.file, |(_, name)| name)
    }
}

/// Embeds a store's migrations, in version order, from the `migrations` folder beside the
/// invoking crate's `src`: `embed_migrations!["0001_jobs", "0002_workers"]`.
#[macro_export]
macro_rules! embed_migrations {
    ($($file:literal),* $(,)?) => {
        &[$($crate::steps::Migration {
            file: $file,
            sql: include_str!(concat!("../migrations/", $file, ".sql")),
        }),*]
    };
}

/// The steps of migrating, on one database.
#[allow(async_fn_in_trait)]
pub trait MigrationTx {
    type Error: From<StoreError>;

    /// Starts a transaction that holds the store's migration lock (PostgreSQL: an advisory
    /// lock per schema; SQLite: the write lock of an immediate transaction).
    async fn begin(&mut self) -> Result<(), Self::Error>;

    async fn commit(&mut self) -> Result<(), Self::Error>;

    async fn rollback(&mut self) -> Result<(), Self::Error>;

    /// Creates what the bookkeeping needs (the schema, `errand_migrations`) if missing.
    async fn create_bookkeeping(&mut self) -> Result<(), Self::Error>;

    /// The applied migrations, in version order; none when `errand_migrations` is missing.
    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, Self::Error>;

    /// Runs a migration's SQL and records it as applied.
    async fn apply(&mut self, migration: &Migration) -> Result<(), Self::Error>;
}

/// Applies every pending migration of `known`, each in its own transaction that re-reads,
/// under the lock, whether it is still pending: of several processes starting together,
/// the first applies it and the others find it done. Refuses a database newer than this
/// build.
pub async fn migrate<T: MigrationTx>(
    tx: &mut T,
    known: &[Migration],
) -> Result<MigrationStatus, T::Error> {
    tx.begin().await?;
    let prepared = async {
        tx.create_bookkeeping().await?;
        let applied = tx.applied().await?;
        check_not_newer(&applied, known)?;
        Ok::<_, T::Error>(())
    }
    .await;
    finish(tx, prepared.map(|()| true)).await?;
    for m in known {
        tx.begin().await?;
        let applied = async {
            // Re-read inside the lock: another process may have applied it meanwhile.
            let applied = tx.applied().await?;
            check_not_newer(&applied, known)?;
            if applied.iter().any(|a| a.version == m.version()) {
                return Ok(false);
            }
            tx.apply(m).await?;
            Ok::<_, T::Error>(true)
        }
        .await;
        if finish(tx, applied).await? {
            tracing::info!(version = m.version(), name = m.name(), "applied migration");
        }
    }
    let applied = tx.applied().await?;
    Ok(migration_status(known, applied)?)
}

/// Commits when the steps wrote something, else rolls back (also on an error, which is
/// passed on).
async fn finish<T: MigrationTx>(
    tx: &mut T,
    outcome: Result<bool, T::Error>,
) -> Result<bool, T::Error> {
    match outcome {
        Ok(true) => {
            tx.commit().await?;
            Ok(true)
        }
        Ok(false) => {
            tx.rollback().await?;
            Ok(false)
        }
        Err(e) => {
            // The error that stopped the steps is the one to report.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

fn latest(known: &[Migration]) -> i64 {
    known.iter().map(Migration::version).max().unwrap_or(0)
}

fn check_not_newer(applied: &[AppliedMigration], known: &[Migration]) -> StoreResult<()> {
    let current = applied.iter().map(|m| m.version).max().unwrap_or(0);
    if current > latest(known) {
        Err(StoreError::Schema(format!(
            "the database schema is at version {current}, newer than version {} known to this \
             build of errand; upgrade errand",
            latest(known)
        )))
    } else {
        Ok(())
    }
}

/// The applied and pending migrations; a database at a version newer than this build is a
/// [`StoreError::Schema`]. Versions are compared by membership, so a gap in one store's
/// numbering (a migration only the other store needs) is fine.
pub fn migration_status(
    known: &[Migration],
    applied: Vec<AppliedMigration>,
) -> StoreResult<MigrationStatus> {
    check_not_newer(&applied, known)?;
    let pending = known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version()))
        .map(|m| (m.version(), m.name().to_string()))
        .collect();
    Ok(MigrationStatus {
        current_version: applied.iter().map(|m| m.version).max().unwrap_or(0),
        latest_version: latest(known),
        applied,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration {
            file: "0001_jobs",
            sql: "",
        },
        Migration {
            file: "0004_schedules",
            sql: "",
        },
    ];

    fn applied(version: i64) -> AppliedMigration {
        AppliedMigration {
            version,
            name: "x".into(),
            applied_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn version_and_name_come_from_the_file_name() {
        assert_eq!(KNOWN[1].version(), 4);
        assert_eq!(KNOWN[1].name(), "schedules");
        assert_eq!(latest(KNOWN), 4);
    }

    #[test]
    fn status_lists_pending_by_membership_and_refuses_a_newer_database() {
        let s = migration_status(KNOWN, vec![applied(1)]).unwrap();
        assert_eq!(s.current_version, 1);
        assert_eq!(s.latest_version, 4);
        assert_eq!(s.pending, vec![(4, "schedules".to_string())]);
        let err = migration_status(KNOWN, vec![applied(1), applied(5)]).unwrap_err();
        assert!(matches!(err, StoreError::Schema(m) if m.contains("version 5")));
    }
}
