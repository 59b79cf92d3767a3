//! `errand queues list|pause|resume` and `errand workers list`: the lanes and the processes
//! that work them.

use crate::cli::{QueueLimitArgs, QueueNameArgs, QueuesCommand, WorkersCommand};
use crate::config::Config;
use crate::operate::connect;
use crate::output::{Cell, Out, Style, Table};
use errand::views::{QueueView, WorkerView};
use errand::Client;
use serde_json::json;

pub async fn run(config: &Config, command: &QueuesCommand, out: &mut Out) -> anyhow::Result<()> {
    match command {
        QueuesCommand::List => list(config, out).await,
        QueuesCommand::Pause(args) => set_paused(config, args, true, out).await,
        QueuesCommand::Resume(args) => set_paused(config, args, false, out).await,
        QueuesCommand::Limit(args) => set_limits(config, args, out).await,
    }
}

async fn list(config: &Config, out: &mut Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let stats = client.queue_stats().await?;
    let settings = client.queues().await?;
    if let Some(s) = stats.first() {
        out.set_now(s.as_of);
    }
    let now = out.now();
    let paused_at = |q: &str| {
        settings
            .iter()
            .find(|s| s.name == q)
            .and_then(|s| s.paused_at)
    };
    if out.json() {
        // The view `errand stats` and `GET /v1/queues` print: what finished in the last hour.
        let window = chrono::TimeDelta::hours(1);
        let finished = client.finished_stats(now - window, None, None).await?;
        let queues = QueueView::list(&stats, &settings, &finished, window);
        return out.print_json(&json!({"queues": queues}));
    }
    let mut table = Table::new([
        "QUEUE",
        "STATE",
        "QUEUED",
        "RUNNING",
        "FAILED",
        "PAUSED SINCE",
        "LIMITS",
    ]);
    let limits = |q: &str| {
        settings
            .iter()
            .find(|s| s.name == q)
            .map(|s| limits_text(&s.limits))
            .unwrap_or_else(|| "-".into())
    };
    for s in &stats {
        table.row([
            Cell::text(&s.queue).styled(Style::Bold),
            if s.paused {
                Cell::state("paused")
            } else {
                Cell::text("active")
            },
            Cell::count(s.queued),
            Cell::count(s.running),
            Cell::count(s.failed).styled(if s.failed > 0 { Style::Red } else { Style::Dim }),
            Cell::opt_time(now, paused_at(&s.queue)),
            Cell::text(limits(&s.queue)),
        ]);
    }
    out.table(&table, "no queues yet: nothing was ever enqueued or paused");
    Ok(())
}

/// A queue's limits as the table shows them: `global 3, per key 1`, or `-`.
fn limits_text(l: &errand::QueueLimits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = l.global_concurrency {
        parts.push(format!("global {n}"));
    }
    if let Some(n) = l.key_concurrency {
        parts.push(format!("per key {n}"));
    }
    if let Some(r) = l.rate_limit {
        parts.push(format!("rate {r}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

async fn set_limits(config: &Config, args: &QueueLimitArgs, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let named = QueueNameArgs {
        queues: vec![args.queue.clone()],
        all: false,
        force: args.force,
    };
    let queue = targets(&client, config, &named).await?.remove(0);
    let limits = errand::QueueLimits {
        global_concurrency: args.global_concurrency,
        key_concurrency: args.key_concurrency,
        rate_limit: args.rate_limit,
    };
    client.set_queue_limits(&queue, limits).await?;
    if out.json() {
        return out.print_json(&json!({
            "name": queue,
            "global_concurrency": limits.global_concurrency,
            "key_concurrency": limits.key_concurrency,
            "rate_limit": limits.rate_limit.map(|r| r.to_string()),
        }));
    }
    out.line(&format!("queue {queue}: limits {}", limits_text(&limits)));
    Ok(())
}

/// The queues a pause or resume applies to: the named ones (each checked), or with `--all`
/// every queue that has jobs or settings. A name that neither the configuration nor the store
/// knows is refused (a typo would otherwise leave a paused queue nobody declared) unless
/// `--force`; every name is checked before anything changes.
async fn targets(
    client: &Client,
    config: &Config,
    args: &QueueNameArgs,
) -> anyhow::Result<Vec<String>> {
    if args.all {
        return Ok(client
            .queue_stats()
            .await?
            .into_iter()
            .map(|s| s.queue)
            .collect());
    }
    for q in &args.queues {
        errand_core::validate::validate_queue_name(q)
            .map_err(|e| crate::UsageError(format!("queue `{q}`: {}", e.problem)))?;
    }
    if !args.force {
        let declared: Vec<String> = config.queues.keys().cloned().collect();
        for q in &args.queues {
            match client.check_queue_known(q, &declared).await {
                Ok(()) => {}
                Err(e @ errand::Error::UnknownQueue { .. }) => {
                    return Err(crate::UsageError(format!(
                        "{e}; nothing was changed. Pass --force to use it anyway"
                    ))
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(args.queues.clone())
}

async fn set_paused(
    config: &Config,
    args: &QueueNameArgs,
    pause: bool,
    out: &Out,
) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let queues = targets(&client, config, args).await?;
    for q in &queues {
        if pause {
            client.pause_queue(q).await?;
        } else {
            client.resume_queue(q).await?;
        }
    }
    if out.json() {
        let list: Vec<_> = queues
            .iter()
            .map(|q| json!({"name": q, "paused": pause}))
            .collect();
        return out.print_json(&json!({"queues": list}));
    }
    if queues.is_empty() {
        out.line("no queues yet: nothing to do");
    }
    for q in &queues {
        out.line(&if pause {
            format!("queue {q}: paused; workers claim nothing from it until `errand queues resume {q}` (running jobs finish)")
        } else {
            format!("queue {q}: resumed")
        });
    }
    Ok(())
}

pub async fn workers(config: &Config, command: &WorkersCommand, out: &Out) -> anyhow::Result<()> {
    match command {
        WorkersCommand::List => {}
    }
    let client = connect(config).await?;
    let workers = client.workers().await?;
    let now = out.now();
    if out.json() {
        let list: Vec<_> = workers.iter().map(|w| WorkerView::new(w, now)).collect();
        return out.print_json(&json!({"workers": list}));
    }
    let mut table = Table::new([
        "ID",
        "HOST",
        "PID",
        "VERSION",
        "QUEUES",
        "STARTED",
        "LAST SEEN",
    ]);
    for w in &workers {
        let queues: Vec<String> = w
            .queues
            .iter()
            .map(|q| format!("{}:{}", q.name, q.concurrency))
            .collect();
        // A worker heartbeats every few seconds; a minute of silence means trouble.
        let stale = now - w.last_seen_at > chrono::TimeDelta::minutes(1);
        table.row([
            Cell::text(&w.id),
            Cell::text(&w.host),
            Cell::num(w.pid),
            Cell::text(&w.version),
            Cell::text(queues.join(",")),
            Cell::time(now, w.started_at),
            Cell::time(now, w.last_seen_at).styled(if stale { Style::Red } else { Style::Plain }),
        ]);
    }
    out.table(
        &table,
        "no workers registered: start `errand serve` or `errand worker`",
    );
    Ok(())
}
