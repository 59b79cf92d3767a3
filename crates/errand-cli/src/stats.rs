//! `errand stats`: the runbooks' queue-stats script. Per queue: jobs by state now, the oldest
//! job ready to run and how long it has waited, and what finished in the recent window
//! (throughput, average / p95 / max run time of the succeeded jobs).

use crate::cli::StatsArgs;
use crate::config::Config;
use crate::operate::{connect, parse_age};
use crate::output::{absolute, age, Cell, Out, Style, Table};
use errand::views::QueueView;
use serde_json::json;

pub async fn run(config: &Config, args: &StatsArgs, out: &mut Out) -> anyhow::Result<()> {
    let window = parse_age("--window", &args.window)?;
    if window <= chrono::TimeDelta::zero() {
        return Err(crate::UsageError("--window must be longer than 0".into()).into());
    }
    let client = connect(config).await?;
    let stats = client.queue_stats().await?;
    // The store's clock (the database's on PostgreSQL) is "now" for ages and the window.
    if let Some(s) = stats.first() {
        out.set_now(s.as_of);
    }
    let now = out.now();
    let since = now - window;
    let finished = client.finished_stats(since, None, None).await?;
    let settings = client.queues().await?;
    let recent = |q: &str| finished.iter().find(|f| f.queue == q);

    if out.json() {
        let queues = QueueView::list(&stats, &settings, &finished, window);
        return out.print_json(&json!({
            "as_of": crate::output::rfc3339(now),
            "window_ms": window.num_milliseconds(),
            "since": crate::output::rfc3339(since),
            "queues": queues,
        }));
    }

    let mut now_table = Table::new([
        "QUEUE",
        "STATE",
        "QUEUED",
        "SCHEDULED",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "OLDEST READY",
    ]);
    for s in &stats {
        now_table.row([
            Cell::text(&s.queue).styled(Style::Bold),
            if s.paused {
                Cell::state("paused")
            } else {
                Cell::text("active")
            },
            Cell::count(s.queued),
            Cell::count(s.scheduled),
            Cell::count(s.running),
            Cell::count(s.succeeded),
            Cell::count(s.failed).styled(if s.failed > 0 { Style::Red } else { Style::Dim }),
            Cell::count(s.cancelled),
            Cell::opt_time(now, s.oldest_ready_run_at),
        ]);
    }
    out.table(&now_table, "no queues yet: nothing was ever enqueued");
    if stats.is_empty() {
        return Ok(());
    }

    let minutes = window.num_milliseconds() as f64 / 60_000.0;
    let mut recent_table = Table::new([
        "QUEUE",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "PER MIN",
        "AVG",
        "P95",
        "MAX",
    ]);
    for s in &stats {
        let f = recent(&s.queue);
        let n = |pick: fn(&errand::FinishedStats) -> u64| f.map_or(0, pick);
        recent_table.row([
            Cell::text(&s.queue).styled(Style::Bold),
            Cell::count(n(|f| f.succeeded)),
            Cell::count(n(|f| f.failed)).styled(if n(|f| f.failed) > 0 {
                Style::Red
            } else {
                Style::Dim
            }),
            Cell::count(n(|f| f.cancelled)),
            Cell::num(format!(
                "{:.1}",
                (n(|f| f.succeeded) + n(|f| f.failed)) as f64 / minutes
            )),
            Cell::duration_ms(f.and_then(|f| f.duration_avg_ms)),
            Cell::duration_ms(f.and_then(|f| f.duration_p95_ms)),
            Cell::duration_ms(f.and_then(|f| f.duration_max_ms)),
        ]);
    }
    out.line("");
    out.line(&format!(
        "Finished in the last {} (since {}); run times of succeeded jobs:",
        age(window),
        absolute(since)
    ));
    out.table(&recent_table, "");
    Ok(())
}
