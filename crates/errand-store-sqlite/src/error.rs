//! Mapping SQLite errors to [`StoreError`].

use errand_store::StoreError;
use rusqlite::ErrorCode;

/// The error type of the closures that run inside a transaction: either a driver error or
/// a store outcome decided by the operation (stale fence, not found). `?` works on both.
#[derive(Debug)]
pub(crate) enum OpError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Sql(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

impl From<OpError> for StoreError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Sql(e) => map_sql(e),
            OpError::Store(e) => e,
        }
    }
}

/// Busy or locked after `busy_timeout` => [`StoreError::Unavailable`] (retry later);
/// `SQLITE_FULL` (no space left on the device) => [`StoreError::DiskFull`]; a missing
/// errand table => [`StoreError::Schema`] (run migrate); anything else =>
/// [`StoreError::Database`] with SQLite's message.
pub(crate) fn map_sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &e {
        if matches!(
            code.code,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
        ) {
            return StoreError::Unavailable(format!(
                "sqlite database is locked by another connection: {e}"
            ));
        }
        if code.code == ErrorCode::DiskFull {
            return StoreError::DiskFull(format!(
                "SQLite could not grow the database or its log ({e})"
            ));
        }
    }
    let msg = e.to_string();
    if let Some(pos) = msg.find("no such table: errand_") {
        let table = msg[pos + "no such table: ".len()..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("errand_jobs");
        return StoreError::Schema(format!(
            "the database has no `{table}` table: the errand schema is not installed; \
             run `errand migrate` first"
        ));
    }
    StoreError::Database(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::os::raw::c_int, msg: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(msg.to_string()))
    }

    #[test]
    fn busy_is_unavailable_and_missing_table_is_schema() {
        assert!(matches!(
            map_sql(failure(rusqlite::ffi::SQLITE_BUSY, "database is locked")),
            StoreError::Unavailable(_)
        ));
        match map_sql(failure(
            rusqlite::ffi::SQLITE_ERROR,
            "no such table: errand_jobs",
        )) {
            StoreError::Schema(m) => {
                assert!(m.contains("errand migrate"), "{m}");
                assert!(m.contains("`errand_jobs`"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map_sql(failure(
                rusqlite::ffi::SQLITE_FULL,
                "database or disk is full"
            )),
            StoreError::DiskFull(_)
        ));
        assert!(matches!(
            map_sql(failure(
                rusqlite::ffi::SQLITE_CONSTRAINT,
                "CHECK constraint failed"
            )),
            StoreError::Database(_)
        ));
    }
}
