//! `errand jobs ...`: the runbooks' list-failed, job-status, retry-job, retry-all-failed,
//! purge-old, and the SQL they ran by hand for stuck jobs and clearing pending jobs.

use crate::cli::{CancelArgs, JobIdArg, JobsCommand, JobsListArgs, LimitArg, PurgeArgs, RetryArgs};
use crate::config::Config;
use crate::operate::{
    confirm, connect, parse_age, parse_ids, parse_since, plural, require_jobs, PartlyApplied,
};
use crate::output::{absolute, age, rfc3339, when, Cell, Out, Progress, Style, Table};
use crate::views::{self, state_word};
use crate::UsageError;
use chrono::{DateTime, Utc};
use errand::views::{JobDetailView, JobPageView, JobView, Redact};
use errand::{
    CancelOutcome, Client, Event, EventKind, Job, JobList, JobStatus, RetryOutcome, StateFilter,
};
use serde_json::json;

pub async fn run(config: &Config, command: &JobsCommand, out: &Out) -> anyhow::Result<()> {
    match command {
        JobsCommand::List(args) => list(config, args, out).await,
        JobsCommand::Show(arg) => show(config, arg, out).await,
        JobsCommand::Retry(args) => retry(config, args, out).await,
        JobsCommand::Cancel(args) => cancel(config, args, out).await,
        JobsCommand::Purge(args) => purge(config, args, out).await,
        JobsCommand::Stuck(args) => stuck(config, args, out).await,
        JobsCommand::Rescue => rescue(config, out).await,
    }
}

/// The filter the flags describe; checked before the database is opened.
fn list_filter(args: &JobsListArgs, now: DateTime<Utc>) -> Result<JobList, UsageError> {
    let state = match &args.state {
        Some(s) => Some(
            s.parse::<StateFilter>()
                .map_err(|e| UsageError(format!("--state: {e}")))?,
        ),
        None => None,
    };
    let (reference_type, reference_id) = match &args.reference {
        None => (None, None),
        Some(r) => match r.split_once(':') {
            Some(("", _)) => {
                return Err(UsageError(format!(
                    "--reference: expected TYPE:ID or TYPE such as file_upload:42, got `{r}`"
                )))
            }
            Some((t, i)) => (Some(t.to_string()), Some(i.to_string())),
            None => (Some(r.clone()), None),
        },
    };
    let before_id = match &args.cursor {
        Some(c) => Some(c.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
            UsageError(format!(
                "--cursor: `{c}` is not a cursor printed by a previous page"
            ))
        })?),
        None => None,
    };
    Ok(JobList {
        state,
        queue: args.queue.clone(),
        kind: args.kind.clone(),
        reference_type,
        reference_id,
        since: args
            .since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()?,
        until: None,
        before_id,
        limit: args.limit,
    })
}

/// A job's row in a list: what a person scans for.
fn job_table(jobs: &[Job], now: DateTime<Utc>) -> Table {
    let mut table = Table::new([
        "ID",
        "STATE",
        "QUEUE",
        "KIND",
        "ATTEMPT",
        "CREATED",
        "LAST ERROR",
    ]);
    for j in jobs {
        table.row([
            Cell::num(j.id),
            Cell::state(state_word(j, now)),
            Cell::text(&j.queue),
            Cell::text(&j.kind),
            Cell::num(format!("{}/{}", j.attempt, j.max_attempts)),
            Cell::time(now, j.created_at),
            // A succeeded job has no error to scan for: an earlier attempt's is history,
            // in `errand jobs show`.
            Cell::opt(
                (j.status != JobStatus::Succeeded)
                    .then_some(j.last_error.as_deref())
                    .flatten()
                    .map(first_line),
            ),
        ]);
    }
    table
}

/// The first line of an error, at most 60 characters, for one table cell.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let mut cut: String = line.chars().take(60).collect();
    if cut.chars().count() < line.chars().count() || text.lines().nth(1).is_some() {
        cut.push('…');
    }
    cut
}

async fn list(config: &Config, args: &JobsListArgs, out: &Out) -> anyhow::Result<()> {
    let filter = list_filter(args, out.now())?;
    let client = connect(config).await?;
    let page = client.list(&filter).await?;
    let now = out.now();
    if out.json() {
        return out.print_json(&JobPageView::new(&page, now).redacted());
    }
    out.table(&job_table(&page.jobs, now), "no jobs match");
    if let Some(cursor) = page.next_cursor {
        out.line(&out.paint(
            Style::Dim,
            &format!(
                "more: add --cursor {cursor} for the next {} jobs",
                args.limit
            ),
        ));
    }
    Ok(())
}

async fn show(config: &Config, arg: &JobIdArg, out: &Out) -> anyhow::Result<()> {
    let id = parse_ids(std::slice::from_ref(&arg.id))?[0];
    let client = connect(config).await?;
    let Some(job) = client.job(id).await? else {
        return Err(UsageError(format!("job {id} not found")).into());
    };
    let events = client.job_with_events(id).await?.1;
    let now = out.now();
    if out.json() {
        return out.print_json(&JobDetailView::new(&job, &events, now).redacted());
    }
    print_job(&job, &events, out);
    Ok(())
}

fn print_job(job: &Job, events: &[Event], out: &Out) {
    let now = out.now();
    let state = match job.derived_state(now) {
        Some(d) => format!("{} ({})", job.status, d.as_str()),
        None => job.status.to_string(),
    };
    let mut fields = vec![
        ("job", Cell::text(job.id.to_string()).styled(Style::Bold)),
        (
            "state",
            Cell::text(state).styled(Style::of_state(state_word(job, now))),
        ),
        ("queue", Cell::text(&job.queue)),
        ("kind", Cell::text(&job.kind)),
        (
            "attempt",
            Cell::text(format!("{} of {}", job.attempt, job.max_attempts)),
        ),
        ("priority", Cell::text(job.priority.to_string())),
        ("run at", Cell::time(now, job.run_at)),
        ("created", Cell::time(now, job.created_at)),
        ("started", Cell::opt_time(now, job.started_at)),
        ("finished", Cell::opt_time(now, job.finished_at)),
    ];
    if let (Some(s), Some(f)) = (job.started_at, job.finished_at) {
        fields.push((
            "ran for",
            Cell::text(crate::output::format_duration_ms(
                (f - s).num_milliseconds() as f64,
            )),
        ));
    }
    if let Some(w) = &job.worker_id {
        fields.push(("worker", Cell::text(w)));
    }
    if let Some(l) = job.lease_expires_at {
        let style = if l < now { Style::Red } else { Style::Plain };
        fields.push(("lease until", Cell::time(now, l).styled(style)));
    }
    if let Some(c) = job.cancel_requested_at {
        fields.push(("cancel asked", Cell::time(now, c)));
    }
    if let Some(k) = &job.unique_key {
        fields.push(("unique key", Cell::text(k)));
    }
    if let Some(k) = &job.concurrency_key {
        // A key taken from a secret-looking argument is that secret: shown as the args are.
        let secret = errand_core::redact::secret_values(&job.args.to_value()).contains(k);
        let k = if secret {
            errand_core::redact::REDACTED
        } else {
            k.as_str()
        };
        let limit = match job.key_concurrency {
            Some(n) => format!(" (at most {n} at a time)"),
            None => String::new(),
        };
        fields.push(("concurrency key", Cell::text(format!("{k}{limit}"))));
    }
    if let (Some(t), Some(i)) = (&job.reference_type, &job.reference_id) {
        fields.push(("reference", Cell::text(format!("{t}:{i}"))));
    }
    if let Some(t) = job.timeout_ms {
        let text = if t == 0 {
            "none".to_string()
        } else {
            crate::output::format_duration_ms(t as f64)
        };
        fields.push(("timeout", Cell::text(text)));
    }
    fields.push((
        "args",
        Cell::text(errand_core::redact::redact(&job.args.to_value()).to_string()),
    ));
    if let Some(r) = &job.result {
        fields.push(("result", Cell::text(r.to_string())));
    }
    // The handler's own words, which may hold secrets as its args may.
    if let Some(p) = &job.progress {
        fields.push((
            "progress",
            Cell::text(errand_core::redact::redact(p).to_string()),
        ));
    }
    if let Some(at) = job.progress_at {
        fields.push(("progress at", Cell::time(now, at)));
    }
    out.fields(&fields);

    out.line("");
    out.line(&out.paint(Style::Bold, "Timeline"));
    let lines: Vec<(String, String)> = timeline(job, events)
        .into_iter()
        .map(|(at, what)| (when(now, at), what))
        .collect();
    let width = lines
        .iter()
        .map(|(w, _)| w.chars().count())
        .max()
        .unwrap_or(0);
    for (at, what) in lines {
        out.line(&format!("  {at:<width$}  {what}"));
    }
    let errors: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == EventKind::Error)
        .collect();
    if !errors.is_empty() || job.last_error.is_some() {
        out.line("");
        out.line(&out.paint(Style::Bold, "Errors"));
    }
    for e in &errors {
        out.line(&out.paint(
            Style::Red,
            &format!("  attempt {} at {}:", e.attempt, absolute(e.at)),
        ));
        for line in e.message.as_deref().unwrap_or("(no message)").lines() {
            out.line(&format!("    {line}"));
        }
    }
    // A last error without an error event: a rescue that failed the job, for example.
    if let Some(last) = &job.last_error {
        if !errors
            .iter()
            .any(|e| e.message.as_deref() == Some(last.as_str()))
        {
            out.line(&out.paint(Style::Red, "  last error:"));
            for line in last.lines() {
                out.line(&format!("    {line}"));
            }
        }
    }
}

/// The job's history for people: its own timestamps (the happy path writes no events) merged
/// with its events, oldest first.
fn timeline(job: &Job, events: &[Event]) -> Vec<(DateTime<Utc>, String)> {
    let mut items: Vec<(DateTime<Utc>, u8, String)> = vec![(job.created_at, 0, "created".into())];
    if job.run_at > job.created_at + chrono::TimeDelta::milliseconds(1) && events.is_empty() {
        items.push((job.run_at, 1, "due (run_at)".into()));
    }
    if let Some(s) = job.started_at {
        let worker = job
            .worker_id
            .as_deref()
            .map(|w| format!(" on {w}"))
            .unwrap_or_default();
        items.push((s, 1, format!("attempt {} started{worker}", job.attempt)));
    }
    for e in events {
        let who = e
            .worker_id
            .as_deref()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        let detail = match e.kind {
            EventKind::Error => {
                let next = match e
                    .data
                    .as_ref()
                    .and_then(|d| d.get("next"))
                    .and_then(|n| n.as_str())
                {
                    Some("retry") => {
                        let at = e
                            .data
                            .as_ref()
                            .and_then(|d| d.get("run_at"))
                            .and_then(|r| r.as_str());
                        let at = at
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| absolute(t.with_timezone(&Utc)));
                        format!(", retry at {}", at.as_deref().unwrap_or("?"))
                    }
                    Some("failed") => ", failed for good".into(),
                    _ => String::new(),
                };
                let msg = e.message.as_deref().map(first_line).unwrap_or_default();
                format!("attempt {} failed{who}: {msg}{next}", e.attempt)
            }
            EventKind::Note => {
                let msg = e.message.as_deref().map(first_line).unwrap_or_default();
                format!("note on attempt {}: {msg}", e.attempt)
            }
            EventKind::Rescued => {
                let action = match e
                    .data
                    .as_ref()
                    .and_then(|d| d.get("action"))
                    .and_then(|a| a.as_str())
                {
                    Some("requeue") => "requeued",
                    Some("fail") => "failed, no attempts left",
                    Some("cancel") => "cancelled, as asked",
                    _ => "?",
                };
                let on = e
                    .worker_id
                    .as_deref()
                    .map(|w| format!(" on {w}"))
                    .unwrap_or_default();
                format!(
                    "lease of attempt {}{on} expired, rescued: {action}",
                    e.attempt
                )
            }
            EventKind::CancelRequested => format!("cancel requested{}", reason(e)),
            EventKind::Cancelled => format!("cancelled{}", reason(e)),
            EventKind::Retried => format!("retried by an operator{}", reason(e)),
            EventKind::Released => format!("handed back on shutdown{who}, attempt not counted"),
        };
        items.push((e.at, 2, detail));
    }
    if let Some(f) = job.finished_at {
        let what = match job.status {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            _ => "finished",
        };
        // A failed or cancelled end already has its event at the same instant.
        if job.status == JobStatus::Succeeded {
            items.push((f, 3, what.into()));
        }
    }
    items.sort_by_key(|a| (a.0, a.1));
    items.into_iter().map(|(at, _, what)| (at, what)).collect()
}

fn reason(e: &Event) -> String {
    e.message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

async fn retry(config: &Config, args: &RetryArgs, out: &Out) -> anyhow::Result<()> {
    if args.failed {
        return retry_failed(config, args, out).await;
    }
    let ids = parse_ids(&args.ids)?;
    let client = connect(config).await?;
    require_jobs(&client, &ids).await?;
    let outcomes = client.retry(&ids).await?;
    let unchanged: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            RetryOutcome::Retried { .. } => None,
            RetryOutcome::Unchanged { id, status } => Some(format!("job {id} is {status}")),
            RetryOutcome::NotFound { id } => Some(format!("job {id} not found")),
        })
        .collect();
    if out.json() {
        let results: Vec<_> = outcomes.iter().map(views::retry_outcome).collect();
        out.print_json(&json!({"results": results}))?;
    } else {
        for o in &outcomes {
            match o {
                RetryOutcome::Retried { id } => out.line(&format!("job {id}: retried, queued to run now")),
                RetryOutcome::Unchanged { id, status } => out.line(&format!(
                    "job {id}: unchanged, it is {status} (only failed or cancelled jobs are retried)"
                )),
                RetryOutcome::NotFound { id } => out.line(&format!("job {id}: not found")),
            }
        }
    }
    partly(unchanged, "retried")
}

/// Exit 3 when some named jobs were left as they were.
fn partly(unchanged: Vec<String>, verb: &str) -> anyhow::Result<()> {
    if unchanged.is_empty() {
        Ok(())
    } else {
        Err(PartlyApplied(format!("not {verb}: {}", unchanged.join(", "))).into())
    }
}

async fn retry_failed(config: &Config, args: &RetryArgs, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let scope = scope(args.queue.as_deref(), args.kind.as_deref());
    let count = count_in(&client, args.queue.as_deref(), args.kind.is_none(), |s| {
        s.failed
    })
    .await?;
    let what = match count {
        Some(n) => plural(n, "failed job", "failed jobs"),
        None => "all failed jobs".into(),
    };
    if count != Some(0) {
        confirm(&format!("Retry {what}{scope}"), args.yes)?;
    }
    let mut progress = Progress::new("retried");
    let n = client
        .retry_failed(args.queue.as_deref(), args.kind.as_deref(), |n| {
            progress.update(n)
        })
        .await?;
    progress.finish();
    if out.json() {
        out.print_json(&json!({"retried": n}))
    } else {
        out.line(&format!(
            "retried {}{scope}",
            plural(n, "failed job", "failed jobs")
        ));
        Ok(())
    }
}

/// ` in queue Q of kind K`, or nothing.
fn scope(queue: Option<&str>, kind: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(q) = queue {
        s.push_str(&format!(" in queue {q}"));
    }
    if let Some(k) = kind {
        s.push_str(&format!(" of kind {k}"));
    }
    s
}

/// A count from the queue stats for the confirmation question, when it can be exact (no
/// kind filter: the stats count by queue only).
async fn count_in(
    client: &Client,
    queue: Option<&str>,
    exact: bool,
    pick: fn(&errand::QueueStats) -> u64,
) -> anyhow::Result<Option<u64>> {
    if !exact {
        return Ok(None);
    }
    let stats = client.queue_stats().await?;
    Ok(Some(
        stats
            .iter()
            .filter(|s| queue.is_none_or(|q| s.queue == q))
            .map(pick)
            .sum(),
    ))
}

async fn cancel(config: &Config, args: &CancelArgs, out: &Out) -> anyhow::Result<()> {
    if args.queued {
        return cancel_queued(config, args, out).await;
    }
    let ids = parse_ids(&args.ids)?;
    let client = connect(config).await?;
    require_jobs(&client, &ids).await?;
    let outcomes = client.cancel(&ids, args.reason.as_deref()).await?;
    let unchanged: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            CancelOutcome::Unchanged { id, status } => Some(format!("job {id} is {status}")),
            CancelOutcome::NotFound { id } => Some(format!("job {id} not found")),
            _ => None,
        })
        .collect();
    if out.json() {
        let results: Vec<_> = outcomes.iter().map(views::cancel_outcome).collect();
        out.print_json(&json!({"results": results}))?;
    } else {
        for o in &outcomes {
            out.line(&match o {
                CancelOutcome::Cancelled { id } => format!("job {id}: cancelled"),
                CancelOutcome::CancelRequested { id } => {
                    format!("job {id}: running; its worker was asked to stop it")
                }
                CancelOutcome::Unchanged { id, status } => {
                    format!("job {id}: unchanged, it is already {status}")
                }
                CancelOutcome::NotFound { id } => format!("job {id}: not found"),
            });
        }
    }
    partly(unchanged, "cancelled")
}

/// Cancels every queued job (of a queue / kind) that existed when the command started, a
/// page at a time, newest first: each page starts below the previous one's lowest id, so jobs
/// enqueued meanwhile (higher ids) are left alone. A job claimed between the listing and the
/// cancel is asked to stop, like `jobs cancel ID`, but not counted as cancelled.
async fn cancel_queued(config: &Config, args: &CancelArgs, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let scope = scope(args.queue.as_deref(), args.kind.as_deref());
    let count = count_in(&client, args.queue.as_deref(), args.kind.is_none(), |s| {
        s.queued
    })
    .await?;
    let what = match count {
        Some(n) => plural(n, "queued job", "queued jobs"),
        None => "all queued jobs".into(),
    };
    if count != Some(0) {
        confirm(
            &format!("Cancel {what}{scope} (they will not run)"),
            args.yes,
        )?;
    }
    let mut filter = JobList {
        state: Some(StateFilter::Status(JobStatus::Queued)),
        queue: args.queue.clone(),
        kind: args.kind.clone(),
        limit: 500,
        ..Default::default()
    };
    let mut progress = Progress::new("cancelled");
    let mut total = 0u64;
    loop {
        let page = client.list(&filter).await?;
        if page.jobs.is_empty() {
            break;
        }
        let ids: Vec<i64> = page.jobs.iter().map(|j| j.id).collect();
        let outcomes = client.cancel(&ids, args.reason.as_deref()).await?;
        let done = outcomes
            .iter()
            .filter(|o| matches!(o, CancelOutcome::Cancelled { .. }))
            .count() as u64;
        total += done;
        progress.update(total);
        // Whatever was not cancelled started meanwhile; step past this page either way.
        filter.before_id = ids.iter().min().copied();
        if page.next_cursor.is_none() {
            break;
        }
    }
    progress.finish();
    if out.json() {
        out.print_json(&json!({"cancelled": total}))
    } else {
        out.line(&format!(
            "cancelled {}{scope}",
            plural(total, "queued job", "queued jobs")
        ));
        Ok(())
    }
}

async fn purge(config: &Config, args: &PurgeArgs, out: &Out) -> anyhow::Result<()> {
    let age_limit = parse_age("--older-than", &args.older_than)?;
    let client = connect(config).await?;
    let before = Utc::now() - age_limit;
    let mut statuses = vec!["succeeded", "cancelled"];
    if args.include_failed {
        statuses.push("failed");
    }
    confirm(
        &format!(
            "Delete {} jobs that finished before {} ({} ago), with their history",
            statuses.join(", "),
            absolute(before),
            age(age_limit)
        ),
        args.yes,
    )?;
    let mut progress = Progress::new("deleted");
    let n = client
        .purge(before, args.include_failed, |n| progress.update(n))
        .await?;
    progress.finish();
    if out.json() {
        out.print_json(&json!({
            "purged": n,
            "finished_before": rfc3339(before),
            "statuses": statuses,
        }))
    } else {
        out.line(&format!(
            "deleted {} ({}) that finished before {}",
            plural(n, "job", "jobs"),
            statuses.join(", "),
            absolute(before)
        ));
        Ok(())
    }
}

async fn stuck(config: &Config, args: &LimitArg, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let jobs = client.stuck(args.limit).await?;
    let now = out.now();
    if out.json() {
        let jobs: Vec<_> = jobs
            .iter()
            .map(|j| JobView::new(j, now).redacted())
            .collect();
        return out.print_json(&json!({"jobs": jobs}));
    }
    let mut table = Table::new([
        "ID",
        "QUEUE",
        "KIND",
        "ATTEMPT",
        "WORKER",
        "STARTED",
        "LEASE EXPIRED",
    ]);
    for j in &jobs {
        table.row([
            Cell::num(j.id),
            Cell::text(&j.queue),
            Cell::text(&j.kind),
            Cell::num(format!("{}/{}", j.attempt, j.max_attempts)),
            Cell::opt(j.worker_id.clone()),
            Cell::opt_time(now, j.started_at),
            Cell::opt_time(now, j.lease_expires_at).styled(Style::Red),
        ]);
    }
    out.table(
        &table,
        "no stuck jobs: every running job's worker is heartbeating",
    );
    if !jobs.is_empty() {
        out.line(&out.paint(
            Style::Dim,
            "running workers rescue these within about one lease; `errand jobs rescue` does it now",
        ));
    }
    Ok(())
}

async fn rescue(config: &Config, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let n = client.rescue_stuck().await?;
    if out.json() {
        out.print_json(&json!({"rescued": n}))
    } else {
        out.line(&format!(
            "rescued {} (requeued if attempts remain, else failed; cancelled if asked)",
            plural(n, "stuck job", "stuck jobs")
        ));
        Ok(())
    }
}
