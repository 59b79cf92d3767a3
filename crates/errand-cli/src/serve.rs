//! `errand serve` and `errand worker`: the configuration turned into an
//! [`errand_runtime::Runtime`], started, announced (the start-up banner), run until SIGTERM
//! or SIGINT. What runs, in which order, and how it stops is the runtime's.

use crate::config::Config;
use crate::UsageError;
use anyhow::Context;
use errand_runtime::{Runtime, RuntimeInfo, Signals, Stopped};
use std::collections::BTreeMap;
use std::io::Write;

/// Which services to run.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// Everything (`errand serve`).
    #[default]
    Serve,
    /// The worker pool only (`errand worker`), optionally restricted.
    Worker {
        /// Claim only from these queues (empty: all configured).
        queues: Vec<String>,
        /// Override every queue's concurrency.
        concurrency: Option<u32>,
    },
}

/// Runs `role` until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config, role: Role) -> anyhow::Result<()> {
    // Before anything else, so that a signal during start-up is a clean stop, not a kill.
    let signals = Signals::new().context("installing the SIGTERM and SIGINT handlers")?;
    let queues = queues_for(&config, &role)?;
    if matches!(role, Role::Serve) {
        config.check_exposure()?;
    }
    if !config.workers.enabled {
        tracing::warn!(
            "not claiming jobs: {} (workers.enabled)",
            config.origin("workers.enabled", "false")
        );
    }
    let mut runtime = Runtime::builder(config.database_url.clone())
        .postgres_tls(config.database_tls.clone())
        .limits(config.limits)
        .tasks(config.tasks.clone())
        .queues(queues)
        .queue_limits(config.queue_limits.clone())
        .workers(config.workers.clone())
        .server(config.server.clone())
        .scheduler(config.scheduler.clone())
        .schedules(config.schedules.clone())
        .retention(config.retention);
    if !matches!(role, Role::Serve) {
        runtime = runtime.workers_only();
    }
    let handle = runtime.start().await?;
    let info = handle.info();
    tracing::info!(
        database = %info.database,
        backend = info.backend.as_str(),
        schema_version = info.schema_version,
        config = %config.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none (zero config)".into()),
        queues = %list(info.queues.iter().map(|(q, n)| format!("{q}={n}"))),
        tasks = %list(info.tasks.iter().map(|(k, t)| format!("{k}({})", t.handler.kind()))),
        claiming = info.claiming,
        schedules = %list(info.schedules.iter().cloned()),
        scheduling = info.scheduling,
        "errand ready"
    );
    if matches!(role, Role::Serve) {
        // A closed stdout (a service manager's) is no reason to stop.
        let _ = std::io::stdout().write_all(banner(&config, info).as_bytes());
        let _ = std::io::stdout().flush();
    }
    match handle.run_until_signal(signals).await {
        Stopped::Drained => Ok(()),
        Stopped::Abandoned => std::process::exit(1),
    }
}

/// What `errand serve` prints on stdout once it is ready: where the dashboard is, the
/// database, the tasks and queues served, and (with no task yet) how to add one.
pub fn banner(config: &Config, info: &RuntimeInfo) -> String {
    let mut out = String::from("errand is running\n");
    let line = |out: &mut String, label: &str, value: &str| {
        out.push_str(&format!("  {label:<10} {value}\n"));
    };
    match info.http_addr {
        Some(addr) => {
            line(&mut out, "dashboard", &format!("http://{addr}/"));
            line(
                &mut out,
                "API",
                &format!("http://{addr}/v1 (OpenAPI: /v1/openapi.json)"),
            );
        }
        None => line(&mut out, "dashboard", "off (server.enabled = false)"),
    }
    line(
        &mut out,
        "database",
        &format!("{} ({})", info.database, info.backend.as_str()),
    );
    let config_file = match &config.source {
        Some(path) => path.display().to_string(),
        None => "none (zero config: add an errand.toml here)".into(),
    };
    line(&mut out, "config", &config_file);
    let tasks = words(
        info.tasks
            .iter()
            .map(|(k, t)| format!("{k} ({}, queue {})", t.handler.kind(), t.queue)),
    );
    line(&mut out, "tasks", &tasks);
    let queues = if info.claiming {
        words(
            info.queues
                .iter()
                .map(|(q, n)| format!("{q} ({n} at a time)")),
        )
    } else {
        "none claimed here".into()
    };
    line(&mut out, "queues", &queues);
    if !info.schedules.is_empty() {
        line(
            &mut out,
            "schedules",
            &words(info.schedules.iter().cloned()),
        );
    }
    if info.tasks.is_empty() {
        let api = info
            .http_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| errand_runtime::DEFAULT_LISTEN.into());
        out.push_str(&format!(
            "\nAdd a first task: put this in errand.toml, then restart `errand serve`:\n\n\
             \x20 [tasks.hello]\n\
             \x20 command = [\"sh\", \"-c\", \"cat; echo\"]\n\n\
             and enqueue a job:\n\n\
             \x20 errand enqueue hello --args '{{\"name\":\"Ada\"}}'\n\
             \x20 curl -X POST http://{api}/v1/jobs -H 'content-type: application/json' \\\n\
             \x20      -d '{{\"kind\":\"hello\",\"args\":{{\"name\":\"Ada\"}}}}'\n\n"
        ));
    }
    out.push_str("Stop with Ctrl-C (running jobs may finish).\n");
    out
}

/// The queues to claim from with their concurrency: the configured ones, restricted and
/// overridden by `errand worker`'s flags.
fn queues_for(config: &Config, role: &Role) -> Result<BTreeMap<String, u32>, UsageError> {
    let Role::Worker {
        queues,
        concurrency,
    } = role
    else {
        return Ok(config.queues.clone());
    };
    let mut chosen = BTreeMap::new();
    if queues.is_empty() {
        chosen = config.queues.clone();
    } else {
        for q in queues {
            let Some(n) = config.queues.get(q) else {
                let known = if config.queues.is_empty() {
                    "none".to_string()
                } else {
                    list(config.queues.keys().cloned())
                };
                return Err(UsageError(format!(
                    "--queues: queue \"{q}\" is not configured (configured: {known})"
                )));
            };
            chosen.insert(q.clone(), *n);
        }
    }
    if let Some(n) = concurrency {
        chosen.values_mut().for_each(|c| *c = *n);
    }
    Ok(chosen)
}

fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

/// `items` for people: comma and space, or "none".
fn words(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn worker_flags_restrict_and_override_queues() {
        let text = "[queues.default]\nconcurrency = 10\n[queues.email]\nconcurrency = 4\n";
        let config = config::parse("errand.toml", Some(text), &|_| None).unwrap();
        let all = queues_for(&config, &Role::Serve).unwrap();
        assert_eq!(all.len(), 2);
        let role = Role::Worker {
            queues: vec!["email".into()],
            concurrency: Some(2),
        };
        let only = queues_for(&config, &role).unwrap();
        assert_eq!(only, BTreeMap::from([("email".to_string(), 2)]));
        let role = Role::Worker {
            queues: vec!["nope".into()],
            concurrency: None,
        };
        let e = queues_for(&config, &role).unwrap_err();
        assert!(
            e.0.contains("\"nope\" is not configured (configured: default,email)"),
            "{}",
            e.0
        );
    }
}
