//! `Store::backup` on SQLite: a consistent copy of the whole database in a new file, taken
//! while the store keeps reading and writing.
//!
//! `VACUUM INTO` reads one snapshot of the database (a read transaction: the writer goes on,
//! and nothing committed after the snapshot is in the copy) and writes it, compacted, to a
//! file of its own with no log beside it. The copy goes to a hidden temporary name next to
//! the destination, is synced, and is then linked to the destination, which fails rather than
//! overwrite a file that appeared meanwhile; so the destination is either absent or whole.

use crate::error::map_sql;
use errand_store::{BackupReport, StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Copies the database at `source` into the new file `to`.
pub(crate) fn run(source: &Path, to: &Path) -> StoreResult<BackupReport> {
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists: a backup never overwrites a file",
            to.display()
        )));
    }
    let partial = partial_name(to);
    let copied = copy(source, &partial).and_then(|()| {
        std::fs::hard_link(&partial, to).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Conflict(format!(
                    "{} appeared during the backup: a backup never overwrites a file",
                    to.display()
                ))
            } else {
                io_error(to, e)
            }
        })
    });
    let _ = std::fs::remove_file(&partial);
    copied?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name itself is durable only once its directory is.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    let bytes = std::fs::metadata(to).map_err(|e| io_error(to, e))?.len();
    Ok(BackupReport { bytes })
}

/// `VACUUM INTO` the partial file, then sync it.
fn copy(source: &Path, partial: &Path) -> StoreResult<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(source, flags).map_err(map_sql)?;
    conn.busy_timeout(crate::BUSY_TIMEOUT).map_err(map_sql)?;
    let target = partial.to_str().ok_or_else(|| {
        StoreError::Unsupported(format!(
            "{} is not valid UTF-8, which SQLite needs for a file name",
            partial.display()
        ))
    })?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(|e| {
        let _ = std::fs::remove_file(partial);
        map_sql(e)
    })?;
    drop(conn);
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(partial, e))
}

/// `.NAME.partial-PID` beside `to`.
fn partial_name(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    to.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return StoreError::DiskFull(format!("writing {}: {e}", path.display()));
    }
    StoreError::Database(format!("writing {}: {e}", path.display()))
}
