//! `errand schedules list|show|next|pause|resume|trigger`: the runbooks' scheduler chores
//! (is the nightly job on time, when does it run next, stop it, run it now) through the
//! library's schedule calls. Every name is checked before anything is changed: an unknown one
//! is bad input (exit 2) and leaves the others as they were too.

use crate::cli::{
    ScheduleNameArg, ScheduleNamesArg, ScheduleNextArgs, ScheduleTriggerArgs, SchedulesCommand,
};
use crate::config::Config;
use crate::operate::{connect, plural, PartlyApplied};
use crate::output::{format_duration_ms, when, Cell, Out, Style, Table};
use crate::UsageError;
use chrono::{DateTime, Utc};
use errand::views::{Redact, ScheduleDetailView, ScheduleView, Written};
use errand::{Client, FireRecord, Job, ScheduleDetail, ScheduleInfo, StoreError};
use serde_json::json;

/// Next fires `show` lists (`next` takes any number up to its flag's bound).
const SHOW_NEXT: usize = 5;
/// Runs and skipped fires `show` prints as tables; `--json` has all the library returns.
const SHOW_ROWS: usize = 10;

pub async fn run(config: &Config, command: &SchedulesCommand, out: &Out) -> anyhow::Result<()> {
    match command {
        SchedulesCommand::List => list(config, out).await,
        SchedulesCommand::Show(arg) => show(config, arg, out).await,
        SchedulesCommand::Next(args) => next(config, args, out).await,
        SchedulesCommand::Pause(args) => set_paused(config, args, true, out).await,
        SchedulesCommand::Resume(args) => set_paused(config, args, false, out).await,
        SchedulesCommand::Trigger(arg) => trigger(config, arg, out).await,
    }
}

/// An unknown name is bad input: exit 2, naming it. `action`: the command would have changed
/// something, so the message says that nothing was.
fn not_found(names: &[&str], action: bool) -> anyhow::Error {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let (what, list) = if names.len() == 1 {
        ("schedule", quoted[0].clone())
    } else {
        ("schedules", quoted.join(", "))
    };
    let unchanged = if action { ": nothing was changed" } else { "" };
    UsageError(format!(
        "{what} {list} not found{unchanged} (`errand schedules list` shows the names)"
    ))
    .into()
}

/// The library's "no such schedule" as bad input; anything else as it is.
fn named(e: errand::Error, name: &str, action: bool) -> anyhow::Error {
    match e {
        errand::Error::Store(StoreError::ScheduleNotFound(_)) => not_found(&[name], action),
        e => e.into(),
    }
}

/// One schedule with its next `n` fires and history, or exit 2.
async fn detail(
    client: &Client,
    name: &str,
    n: usize,
    action: bool,
) -> anyhow::Result<ScheduleDetail> {
    client
        .schedule(name, n)
        .await
        .map_err(|e| named(e, name, action))
}

/// The job of a schedule's last run, while it exists.
async fn last_job(client: &Client, info: &ScheduleInfo) -> anyhow::Result<Option<Job>> {
    match info.last_job_id {
        Some(id) => Ok(client.job(id).await?),
        None => Ok(None),
    }
}

/// The schedule as written, in one cell: `0 2 * * * (Europe/London)` or `every 15m`. Read
/// from the stored JSON itself, so a schedule this build cannot check still shows.
fn describe(info: &ScheduleInfo) -> String {
    let field = |k: &str| info.spec.get(k).and_then(|v| v.as_str());
    match (field("cron"), field("every")) {
        (Some(cron), _) => match field("timezone") {
            Some(tz) => format!("{cron} ({tz})"),
            None => cron.to_string(),
        },
        (None, Some(every)) => format!("every {every}"),
        (None, None) => "?".into(),
    }
}

/// The state word of a schedule: `active`, `paused`, or `unreadable` when its stored spec
/// cannot be checked (it does not fire; the problem is printed in full beside the table).
fn state(info: &ScheduleInfo) -> Cell {
    if info.problem.is_some() {
        Cell::text("unreadable").styled(Style::Red)
    } else if info.paused {
        Cell::state("paused")
    } else {
        Cell::text("active")
    }
}

/// `42 succeeded` in the colour of the job's state, `-` before the first run; a purged job
/// shows its id only.
fn last_job_cell(info: &ScheduleInfo, job: Option<&Job>) -> Cell {
    let status = job.map(|j| j.status).or(info.last_job_status);
    match (info.last_job_id, status) {
        (Some(id), Some(s)) => Cell::text(format!("{id} {s}")).styled(Style::of_state(s.as_str())),
        (Some(id), None) => Cell::text(format!("{id} (purged)")).styled(Style::Dim),
        (None, _) => Cell::text(""),
    }
}

async fn list(config: &Config, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let schedules = client.schedules().await?;
    let mut rows = Vec::with_capacity(schedules.len());
    for info in schedules {
        let job = last_job(&client, &info).await?;
        rows.push((info, job));
    }
    if out.json() {
        let list: Vec<_> = rows
            .iter()
            .map(|(i, j)| ScheduleView::new(i, j.as_ref()).redacted())
            .collect();
        return out.print_json(&json!({"schedules": list}));
    }
    let now = out.now();
    let mut table = Table::new([
        "NAME", "SCHEDULE", "KIND", "QUEUE", "STATE", "NEXT", "LAST RUN", "LAST JOB",
    ]);
    for (info, job) in &rows {
        table.row([
            Cell::text(&info.name).styled(Style::Bold),
            Cell::text(describe(info)),
            Cell::text(&info.kind),
            Cell::text(&info.queue),
            state(info),
            Cell::opt_time(now, info.next_fire_at),
            Cell::opt_time(now, job.as_ref().map(|j| j.created_at)),
            last_job_cell(info, job.as_ref()),
        ]);
    }
    out.table(
        &table,
        "no schedules: add [schedules.NAME] to errand.toml (errand serve stores them), or create them through the API",
    );
    for (info, _) in &rows {
        if let Some(problem) = &info.problem {
            out.line(&out.paint(
                Style::Red,
                &format!("{} cannot be read and does not fire: {problem}", info.name),
            ));
        }
    }
    Ok(())
}

/// `in 5h (2026-11-24 02:00:00Z)`, and the wall clock of a cron schedule's zone when that is
/// not UTC.
fn fire_cells(now: DateTime<Utc>, written: &Written, at: DateTime<Utc>) -> (Cell, Cell) {
    let local = written.local(at).map(|(_, text)| text);
    (Cell::time(now, at), Cell::opt(local))
}

/// The zone column's header, when the schedule has a zone other than UTC.
fn zone_header(info: &ScheduleInfo) -> Option<String> {
    Written::of(info).timezone().filter(|tz| tz != "UTC")
}

fn fires_table(
    out: &Out,
    info: &ScheduleInfo,
    written: &Written,
    fires: &[DateTime<Utc>],
) -> Table {
    let now = out.now();
    match zone_header(info) {
        Some(tz) => {
            let mut t = Table::new(["#", "WHEN (UTC)", tz.as_str()]);
            for (i, at) in fires.iter().enumerate() {
                let (utc, local) = fire_cells(now, written, *at);
                t.row([Cell::num(i + 1), utc, local]);
            }
            t
        }
        None => {
            let mut t = Table::new(["#", "WHEN (UTC)"]);
            for (i, at) in fires.iter().enumerate() {
                t.row([Cell::num(i + 1), Cell::time(now, *at)]);
            }
            t
        }
    }
}

/// Why there are no fires to list: paused, unreadable, or a time that never comes.
fn no_fires(info: &ScheduleInfo) -> String {
    let name = &info.name;
    if let Some(problem) = &info.problem {
        format!("{name} cannot be read and does not fire: {problem}")
    } else if info.paused {
        format!("{name} is paused: no fires until `errand schedules resume {name}`")
    } else {
        format!("{name} has no fire to come: its expression matches no time ahead")
    }
}

async fn next(config: &Config, args: &ScheduleNextArgs, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let d = detail(&client, &args.name, args.count as usize, false).await?;
    let w = Written::of(&d.info);
    if out.json() {
        let fires: Vec<_> = d
            .next
            .iter()
            .map(|t| errand::views::NextFireView::new(&w, *t))
            .collect();
        return out.print_json(&json!({
            "name": d.info.name,
            "timezone": w.timezone(),
            "paused": d.info.paused,
            "problem": d.info.problem,
            "next_fires": fires,
        }));
    }
    if d.next.is_empty() {
        out.line(&no_fires(&d.info));
        return Ok(());
    }
    out.line(&format!(
        "{}: {}; the next {}:",
        d.info.name,
        describe(&d.info),
        plural(d.next.len() as u64, "fire", "fires")
    ));
    out.table(&fires_table(out, &d.info, &w, &d.next), "");
    Ok(())
}

/// People's words for the recorded skip reasons.
fn skip_reason(reason: Option<&str>) -> String {
    let why = match reason {
        Some("missed_beyond_grace") => {
            "missed by more than misfire_grace (no scheduler was running)"
        }
        Some("coalesced") => "missed, and run once as a later fire (coalesce)",
        Some("overlap_skipped") => "the previous run was still queued or running (overlap = skip)",
        _ => "",
    };
    match (reason, why) {
        (Some(r), "") => r.to_string(),
        (Some(r), why) => format!("{r}: {why}"),
        (None, _) => "-".into(),
    }
}

fn run_duration(f: &FireRecord) -> Option<f64> {
    Some(
        (f.job_finished_at? - f.job_started_at?)
            .num_milliseconds()
            .max(0) as f64,
    )
}

async fn show(config: &Config, arg: &ScheduleNameArg, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let d = detail(&client, &arg.name, SHOW_NEXT, false).await?;
    let job = last_job(&client, &d.info).await?;
    let w = Written::of(&d.info);
    if out.json() {
        return out.print_json(&ScheduleDetailView::new(&d, job.as_ref()).redacted());
    }
    let now = out.now();
    let info = &d.info;
    let spec = w.spec.as_ref();
    let state_text = match (&info.problem, info.paused) {
        (Some(p), _) => Cell::text(format!("unreadable, does not fire: {p}")).styled(Style::Red),
        (None, true) => Cell::state("paused"),
        (None, false) => Cell::text("active"),
    };
    let mut fields = vec![
        ("schedule", Cell::text(&info.name).styled(Style::Bold)),
        ("state", state_text),
        ("fires", Cell::text(describe(info))),
        ("kind", Cell::text(&info.kind)),
        ("queue", Cell::text(&info.queue)),
    ];
    if let Some(s) = spec {
        fields.push((
            "args",
            Cell::text(errand_core::redact::redact(&s.args).to_string()),
        ));
        if let Some(p) = s.priority {
            fields.push(("priority", Cell::text(p.to_string())));
        }
        if let Some(m) = s.max_attempts {
            fields.push(("max attempts", Cell::text(m.to_string())));
        }
        fields.push(("overlap", Cell::text(s.overlap.as_str())));
    }
    if let Some(c) = &w.checked {
        fields.push((
            "misfire grace",
            Cell::text(crate::output::age(
                chrono::TimeDelta::from_std(c.misfire_grace).unwrap_or(chrono::TimeDelta::MAX),
            )),
        ));
        fields.push((
            "coalesce",
            Cell::text(if c.coalesce {
                "yes: missed fires run once"
            } else {
                "no: each missed fire runs"
            }),
        ));
    }
    let source = match info.source {
        errand::ScheduleSource::Config => "config (errand.toml; errand serve keeps it in step)",
        errand::ScheduleSource::Api => "api (created at run time)",
    };
    fields.push(("source", Cell::text(source)));
    fields.push(("created", Cell::time(now, info.created_at)));
    fields.push(("updated", Cell::time(now, info.updated_at)));
    fields.push(("next fire", Cell::opt_time(now, info.next_fire_at)));
    let last = match (info.last_job_id, &job) {
        (None, _) => Cell::text("none yet"),
        (Some(id), None) => Cell::text(format!("job {id} (purged)")).styled(Style::Dim),
        (Some(id), Some(j)) => {
            let mut text = format!(
                "job {id}, {}, enqueued {}",
                j.status,
                when(now, j.created_at)
            );
            if let (Some(s), Some(f)) = (j.started_at, j.finished_at) {
                text.push_str(&format!(
                    ", ran {}",
                    format_duration_ms((f - s).num_milliseconds().max(0) as f64)
                ));
            }
            Cell::text(text).styled(Style::of_state(j.status.as_str()))
        }
    };
    fields.push(("last run", last));
    // What the last run returned (the runbook's stats) or the error it failed with.
    if let Some(j) = &job {
        if let Some(result) = &j.result {
            fields.push((
                "last result",
                Cell::text(errand_core::redact::redact(result).to_string()),
            ));
        }
        if let Some(error) = &j.last_error {
            fields.push(("last error", Cell::text(error).styled(Style::Red)));
        }
    }
    out.fields(&fields);

    out.line("");
    out.line(&out.paint(Style::Bold, "Next fires"));
    if d.next.is_empty() {
        out.line(&no_fires(info));
    } else {
        out.table(&fires_table(out, info, &w, &d.next), "");
    }

    out.line("");
    let s = &d.stats;
    let figures = match (s.avg_ms, s.p95_ms, s.max_ms) {
        (Some(avg), Some(p95), Some(max)) => format!(
            "; run time of the {} succeeded: avg {}, p95 {}, max {}",
            s.timed,
            format_duration_ms(avg as f64),
            format_duration_ms(p95 as f64),
            format_duration_ms(max as f64)
        ),
        _ => String::new(),
    };
    out.line(&out.paint(
        Style::Bold,
        &format!(
            "Recent runs: {} ({} finished: {} succeeded, {} failed){figures}",
            s.runs, s.finished, s.succeeded, s.failed
        ),
    ));
    let mut runs = Table::new(["JOB", "FIRE TIME", "HOW", "STATE", "DURATION"]);
    for f in d.runs.iter().take(SHOW_ROWS) {
        let status = f.job_status.map(|s| s.as_str());
        runs.row([
            Cell::opt(f.job_id.map(|id| id.to_string())),
            Cell::time(now, f.fire_at),
            Cell::text(f.outcome.as_str()),
            match status {
                Some(s) => Cell::state(s),
                None => Cell::text("purged").styled(Style::Dim),
            },
            Cell::duration_ms(run_duration(f)),
        ]);
    }
    out.table(&runs, "no runs yet");
    more(out, d.runs.len(), "runs");

    out.line("");
    out.line(&out.paint(Style::Bold, "Skipped fires"));
    let mut skipped = Table::new(["FIRE TIME", "REASON"]);
    for f in d.skipped.iter().take(SHOW_ROWS) {
        skipped.row([
            Cell::time(now, f.fire_at),
            Cell::text(skip_reason(f.reason.as_deref())).styled(Style::Yellow),
        ]);
    }
    out.table(&skipped, "none: every fire enqueued its job");
    more(out, d.skipped.len(), "skipped fires");
    Ok(())
}

/// Under a table cut at [`SHOW_ROWS`]: how many more there are.
fn more(out: &Out, total: usize, what: &str) {
    if total > SHOW_ROWS {
        out.line(&out.paint(
            Style::Dim,
            &format!(
                "... {} earlier {what} (all {total} in --json)",
                total - SHOW_ROWS
            ),
        ));
    }
}

async fn set_paused(
    config: &Config,
    args: &ScheduleNamesArg,
    pause: bool,
    out: &Out,
) -> anyhow::Result<()> {
    let mut names: Vec<&str> = Vec::new();
    for n in &args.names {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let client = connect(config).await?;
    let all = client.schedules().await?;
    let find = |n: &str| all.iter().find(|s| s.name == n);
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| find(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(not_found(&missing, true));
    }
    // (name, changed, the schedule after)
    let mut done: Vec<(bool, ScheduleInfo)> = Vec::with_capacity(names.len());
    for name in names {
        let before = find(name).expect("checked above");
        if before.paused == pause {
            done.push((false, before.clone()));
            continue;
        }
        let after = if pause {
            client.schedule_pause(name).await
        } else {
            client.schedule_resume(name).await
        };
        done.push((true, after.map_err(|e| named(e, name, true))?));
    }
    if out.json() {
        let verb = if pause { "paused" } else { "resumed" };
        let list: Vec<_> = done
            .iter()
            .map(|(changed, s)| {
                json!({
                    "name": s.name,
                    "outcome": if *changed { verb } else { "unchanged" },
                    "paused": s.paused,
                    "next_fire_at": s.next_fire_at.map(crate::output::rfc3339),
                })
            })
            .collect();
        return out.print_json(&json!({"schedules": list}));
    }
    let now = out.now();
    for (changed, s) in &done {
        let name = &s.name;
        out.line(&match (pause, changed) {
            (true, true) => format!(
                "schedule {name}: paused; it does not fire until `errand schedules resume {name}` \
                 (its queued or running job is not touched)"
            ),
            (true, false) => format!("schedule {name}: already paused, unchanged"),
            (false, true) => match s.next_fire_at {
                Some(at) => format!(
                    "schedule {name}: resumed; next fire {}; fires missed while paused do not run",
                    when(now, at)
                ),
                None => format!("schedule {name}: resumed; {}", no_fires(s)),
            },
            (false, false) => format!("schedule {name}: not paused, unchanged"),
        });
    }
    Ok(())
}

async fn trigger(config: &Config, arg: &ScheduleTriggerArgs, out: &Out) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let name = arg.name.as_str();
    let d = detail(&client, name, 0, true).await?;
    if let Some(problem) = &d.info.problem {
        return Err(PartlyApplied(format!(
            "schedule {name} cannot be read, so nothing was enqueued: {problem}"
        ))
        .into());
    }
    let triggered = client
        .schedule_trigger(name, arg.force)
        .await
        .map_err(|e| named(e, name, true))?;
    let enqueued = match &triggered {
        errand::Triggered::Enqueued(e) => *e,
        errand::Triggered::Skipped {
            reason,
            live_job_id,
            ..
        } => {
            let message = triggered.skip_message(name).unwrap_or_default();
            if out.json() {
                out.print_json(&json!({
                    "name": name,
                    "job_id": null,
                    "skipped": true,
                    "reason": reason.as_str(),
                    "live_job_id": live_job_id,
                    "message": message,
                }))?;
            }
            return Err(PartlyApplied(format!("{message} (--force)")).into());
        }
    };
    if out.json() {
        return out.print_json(&json!({
            "name": name,
            "job_id": enqueued.id,
            "kind": d.info.kind,
            "queue": d.info.queue,
        }));
    }
    out.line(&format!(
        "schedule {name}: enqueued job {} ({} on queue {}); its next fire is unchanged{}",
        enqueued.id,
        d.info.kind,
        d.info.queue,
        if d.info.paused {
            ", the schedule stays paused"
        } else {
            ""
        }
    ));
    if let Some(at) = d.info.next_fire_at {
        out.line(&out.paint(Style::Dim, &format!("next fire: {}", when(out.now(), at))));
    }
    Ok(())
}
