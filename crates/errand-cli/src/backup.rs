//! `errand backup PATH`: a consistent copy of an SQLite database in a new file, taken while
//! `errand serve` keeps running (the store's `backup`: `VACUUM INTO`). PostgreSQL is refused
//! with a pointer to `pg_dump`.

use crate::cli::BackupArgs;
use crate::config::Config;
use crate::operate::connect;
use crate::output::Out;
use crate::UsageError;
use errand::{Error, StoreError};
use serde_json::json;
use std::path::Path;

pub async fn run(config: &Config, args: &BackupArgs, out: &Out) -> anyhow::Result<()> {
    let to = Path::new(&args.path);
    check_destination(to)?;
    let client = connect(config).await?;
    let started = std::time::Instant::now();
    let report = match client.backup(to).await {
        Ok(report) => report,
        Err(e @ Error::Store(StoreError::Unsupported(_) | StoreError::Conflict(_))) => {
            return Err(UsageError(format!("{e}; nothing was written")).into())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("backing up to {}", to.display())))
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    if out.json() {
        return out.print_json(&json!({
            "path": to.display().to_string(),
            "bytes": report.bytes,
            "seconds": (seconds * 1000.0).round() / 1000.0,
        }));
    }
    out.line(&format!(
        "backed up to {} ({} bytes in {seconds:.2}s): a complete database file, open it with --database {}",
        to.display(),
        report.bytes,
        to.display()
    ));
    Ok(())
}

/// The destination must be a new file in an existing directory.
fn check_destination(to: &Path) -> Result<(), UsageError> {
    if to.as_os_str().is_empty() {
        return Err(UsageError("backup: PATH must not be empty".into()));
    }
    if to.exists() {
        return Err(UsageError(format!(
            "{} already exists: a backup never overwrites a file; choose a new name; nothing was written",
            to.display()
        )));
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "{}: the directory {} does not exist; nothing was written",
            to.display(),
            dir.display()
        )));
    }
    Ok(())
}
