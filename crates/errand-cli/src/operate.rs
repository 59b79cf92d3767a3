//! What the operator commands share: opening the database without changing it, reading ids,
//! ages and times from the command line, the confirmation prompt of bulk destructive
//! actions, and the errors that choose the exit code (see `EXIT_CODES` in `cli`).

use crate::config::Config;
use crate::UsageError;
use anyhow::Context;
use chrono::{DateTime, Utc};
use errand::{Client, JobId};
use errand_core::parse_duration;
use errand_runtime::redact_url;
use std::io::{BufRead, IsTerminal, Write};

/// Some named jobs (or a schedule) were not in a state the action applies to: exit code 3.
/// The report on stdout, or this error's message, says which.
#[derive(Debug)]
pub struct PartlyApplied(pub String);

impl std::fmt::Display for PartlyApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for PartlyApplied {}

/// The operator said no at the confirmation prompt: exit code 4.
#[derive(Debug)]
pub struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not confirmed: nothing was changed")
    }
}
impl std::error::Error for Declined {}

/// Opens the configured database for an operator command. It never creates a database or
/// changes the schema: a missing SQLite file is bad input (a typo in `--database` must not
/// leave an empty database behind), and a schema behind this build asks for
/// `errand migrate`.
pub async fn connect(config: &Config) -> anyhow::Result<Client> {
    let url = &config.database_url;
    if let Some(path) = sqlite_path(url) {
        if !std::path::Path::new(path).exists() {
            return Err(UsageError(format!(
                "no database at {path}: pass --database (or set ERRAND_DATABASE_URL), or \
                 create it with `errand migrate`"
            ))
            .into());
        }
    }
    let client = config
        .client()
        .migrate(false)
        .postgres_max_connections(2)
        .max_args_bytes(config.limits.max_args_bytes)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?
        .with_tasks(config.task_catalog());
    let status = client.migration_status().await?;
    if status.current_version == 0 {
        anyhow::bail!(
            "{} holds no Errand schema: run `errand migrate` (or start `errand serve`) first",
            redact_url(url)
        );
    }
    if !status.pending.is_empty() {
        let pending: Vec<String> = status.pending.iter().map(|(v, _)| v.to_string()).collect();
        anyhow::bail!(
            "the schema of {} lacks migration{} {} of this errand: run `errand migrate` first",
            redact_url(url),
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        );
    }
    Ok(client)
}

/// The file an SQLite URL names (`sqlite:PATH`, `sqlite://PATH` or a plain path).
pub fn sqlite_path(url: &str) -> Option<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Job ids from the command line, every bad one named.
pub fn parse_ids(raw: &[String]) -> Result<Vec<JobId>, UsageError> {
    let mut ids = Vec::with_capacity(raw.len());
    for r in raw {
        match errand_core::parse_job_id(r.trim()) {
            Some(id) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            None => {
                return Err(UsageError(format!(
                    "`{r}` is not a job id (a positive whole number such as 42)"
                )))
            }
        }
    }
    Ok(ids)
}

/// Checks that every id names a job, before anything is changed: an unknown id is bad input
/// (exit 2) and leaves the others untouched too.
pub async fn require_jobs(client: &Client, ids: &[JobId]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for &id in ids {
        if client.job(id).await?.is_none() {
            missing.push(id.to_string());
        }
    }
    match missing.len() {
        0 => Ok(()),
        1 => Err(UsageError(format!("job {} not found: nothing was changed", missing[0])).into()),
        _ => Err(UsageError(format!(
            "jobs {} not found: nothing was changed",
            missing.join(", ")
        ))
        .into()),
    }
}

/// An age such as `30d` for `flag`, as a span back from now.
pub fn parse_age(flag: &str, text: &str) -> Result<chrono::TimeDelta, UsageError> {
    let d = parse_duration(text).map_err(|e| UsageError(format!("{flag}: {e}")))?;
    chrono::TimeDelta::from_std(d)
        .ok()
        .filter(|d| *d < chrono::TimeDelta::days(365 * 1000))
        .ok_or_else(|| UsageError(format!("{flag}: `{text}` is too long")))
}

/// `--since`: an age back from `now` (`24h`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    match parse_age("--since", text) {
        Ok(age) => Ok(now - age),
        Err(_) => Err(UsageError(format!(
            "--since: `{text}` is neither an age such as 24h or 7d nor an RFC 3339 time such \
             as 2026-11-23T09:00:00Z"
        ))),
    }
}

/// Asks before a bulk destructive action. `--yes` skips the question; without it, stdin must
/// be a terminal to answer on (a script that forgot `--yes` is refused, not left hanging).
/// The question goes to stderr so stdout stays the command's report.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{question}: refusing without --yes, because stdin is not a terminal to confirm on; \
             nothing was changed"
        ))
        .into());
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question}? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Declined.into()),
    }
}

/// `n thing` or `n things`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_ages_and_times_name_what_is_wrong() {
        assert_eq!(
            parse_ids(&["42".into(), " 7".into(), "42".into()]).unwrap(),
            vec![42, 7]
        );
        for bad in ["x", "-1", "0", "4.2", "", "+1"] {
            let e = parse_ids(&[bad.into()]).unwrap_err().0;
            assert!(e.contains(&format!("`{bad}` is not a job id")), "{e}");
        }
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 13, 0, 0).unwrap();
        assert_eq!(
            parse_since("2h", now).unwrap(),
            now - chrono::TimeDelta::hours(2)
        );
        assert_eq!(
            parse_since("2026-11-23T09:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
        );
        assert!(parse_since("yesterday", now)
            .unwrap_err()
            .0
            .contains("`yesterday` is neither"));
        let e = parse_age("--older-than", "30x").unwrap_err().0;
        assert!(
            e.starts_with("--older-than: invalid duration `30x`: unknown unit `x`"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_paths_are_recognised() {
        assert_eq!(sqlite_path("errand.db"), Some("errand.db"));
        assert_eq!(sqlite_path("sqlite:/tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
