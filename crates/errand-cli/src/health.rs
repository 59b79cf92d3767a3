//! `errand health`: the probe a container or an orchestrator runs. Healthy (exit 0) when the
//! database answers and its schema is the one this binary needs; with `--workers`, also when a
//! worker of this host has heartbeated within two leases. Otherwise exit 1 with the reason. It
//! never changes anything, and it answers within `--timeout` (2 s) even when the database is
//! unreachable, so a probe never hangs.

use crate::cli::HealthArgs;
use crate::config::Config;
use crate::output::Out;
use chrono::Utc;
use errand_core::parse_duration;
use errand_runtime::redact_url;
use serde::Serialize;

/// What the probe found; printed as one line, or as JSON with `--json`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// The database, with any password hidden.
    pub database: String,
    /// The schema version found, when the database answered.
    pub schema_version: Option<i64>,
    /// This host's worker processes that heartbeat in time (only with `--workers`).
    pub live_workers: Option<usize>,
    /// Why it is unhealthy.
    pub problem: Option<String>,
}

/// Not healthy: exit code 1, after the report is printed.
#[derive(Debug)]
pub struct Unhealthy(pub String);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Unhealthy {}

pub async fn run(config: &Config, args: &HealthArgs, out: &Out) -> anyhow::Result<()> {
    let limit =
        parse_duration(&args.timeout).map_err(|e| crate::UsageError(format!("--timeout: {e}")))?;
    let database = redact_url(&config.database_url);
    let checked = match tokio::time::timeout(limit, check(config, args.workers)).await {
        Ok(result) => result,
        Err(_) => Err((
            None,
            format!("the database did not answer within {}", args.timeout),
        )),
    };
    let health = match checked {
        Ok((version, workers)) => Health {
            status: "ok",
            database,
            schema_version: Some(version),
            live_workers: workers,
            problem: None,
        },
        Err((version, problem)) => Health {
            status: "unhealthy",
            database,
            schema_version: version,
            live_workers: None,
            problem: Some(problem),
        },
    };
    if out.json() {
        out.print_json(&health)?;
    } else if let Some(problem) = &health.problem {
        out.line(&format!("unhealthy: {problem} ({})", health.database));
    } else {
        let workers = match health.live_workers {
            Some(n) => format!(
                ", {n} live worker{} on this host",
                if n == 1 { "" } else { "s" }
            ),
            None => String::new(),
        };
        out.line(&format!(
            "ok: {} answers, schema at version {}{workers}",
            health.database,
            health.schema_version.unwrap_or_default()
        ));
    }
    match health.problem {
        Some(problem) => Err(Unhealthy(problem).into()),
        None => Ok(()),
    }
}

type Checked = Result<(i64, Option<usize>), (Option<i64>, String)>;

async fn check(config: &Config, workers: bool) -> Checked {
    let url = &config.database_url;
    if let Some(path) = crate::operate::sqlite_path(url) {
        if !std::path::Path::new(path).exists() {
            return Err((None, format!("no database at {path}")));
        }
    }
    let client = config
        .client()
        .migrate(false)
        .postgres_max_connections(1)
        .connect()
        .await
        .map_err(|e| (None, format!("cannot connect: {e}")))?;
    let status = client
        .migration_status()
        .await
        .map_err(|e| (None, format!("cannot read the schema: {e}")))?;
    let version = status.current_version;
    if version == 0 {
        return Err((Some(0), "no Errand schema: run `errand migrate`".into()));
    }
    if !status.pending.is_empty() {
        let pending: Vec<String> = status.pending.iter().map(|(v, _)| v.to_string()).collect();
        return Err((
            Some(version),
            format!(
                "schema lacks migration(s) {}: run `errand migrate`",
                pending.join(", ")
            ),
        ));
    }
    if !workers {
        return Ok((version, None));
    }
    let records = client.workers().await.map_err(|e| {
        (
            Some(version),
            format!("cannot read the worker registry: {e}"),
        )
    })?;
    let host = errand::worker::host_name();
    // A worker renews its row many times per lease; two leases without it means it is gone.
    let stale = chrono::Duration::from_std(config.workers.lease * 2).unwrap_or_default();
    let now = Utc::now();
    let live = records
        .iter()
        .filter(|w| w.host == host && now - w.last_seen_at <= stale)
        .count();
    if live == 0 {
        return Err((
            Some(version),
            format!(
                "no worker of host {host} has heartbeated in the last {}s",
                stale.num_seconds()
            ),
        ));
    }
    Ok((version, Some(live)))
}
