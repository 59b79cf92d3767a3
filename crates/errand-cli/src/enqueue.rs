//! `errand enqueue`: add one job from the command line. The input is checked before anything
//! is opened, so bad input writes nothing (not even a new database file).

use crate::cli::EnqueueArgs;
use crate::config::Config;
use crate::output::Out;
use crate::UsageError;
use anyhow::Context;
use chrono::{DateTime, Utc};
use errand::{NewJob, ValidationError};
use errand_core::parse_duration;
use errand_runtime::redact_url;
use std::io::Read;

pub async fn run(config: &Config, args: &EnqueueArgs, out: &Out) -> anyhow::Result<()> {
    let job = new_job(args)?;
    // The check every path makes ([`errand::Client::prepare`]), before anything is opened.
    let tasks = config.task_catalog();
    tasks
        .prepare(&job, None, &config.limits)
        .map_err(flag_error)?;

    let client = config
        .client()
        .max_args_bytes(config.limits.max_args_bytes)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact_url(&config.database_url)))?
        .with_tasks(tasks);
    let enqueued = client
        .enqueue_many(std::slice::from_ref(&job))
        .await?
        .remove(0);
    if out.json() {
        // One line, not pretty: `--json` of enqueue is read by scripts line by line.
        out.line(
            &serde_json::json!({ "id": enqueued.id, "inserted": enqueued.inserted }).to_string(),
        );
    } else if enqueued.inserted {
        out.line(&format!("enqueued job {}", enqueued.id));
    } else {
        out.line(&format!(
            "job {} already exists (unique key \"{}\")",
            enqueued.id,
            job.unique_key.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// The job the flags describe; the task's configured settings fill the rest when it is
/// prepared.
fn new_job(args: &EnqueueArgs) -> Result<NewJob, UsageError> {
    let text = if args.args == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| UsageError(format!("--args -: cannot read stdin: {e}")))?;
        s
    } else {
        args.args.clone()
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("--args is not valid JSON: {e}")))?;
    let mut job = NewJob::new(args.kind.clone(), json);
    job.queue = args.queue.clone();
    job.max_attempts = args.max_attempts;
    job.priority = args.priority;
    job.unique_key = args.unique_key.clone();
    job.concurrency_key = args.concurrency_key.clone();
    job.key_concurrency = args.key_concurrency;
    if let Some(delay) = &args.delay {
        let d = parse_duration(delay).map_err(|e| UsageError(format!("--delay: {e}")))?;
        job.delay_ms = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    if let Some(at) = &args.run_at {
        let at = DateTime::parse_from_rfc3339(at).map_err(|e| {
            UsageError(format!(
                "--run-at: `{at}` is not an RFC 3339 time such as 2030-01-01T09:00:00Z: {e}"
            ))
        })?;
        job.run_at = Some(at.with_timezone(&Utc));
    }
    if let Some(reference) = &args.reference {
        let (kind, id) = reference.split_once(':').ok_or_else(|| {
            UsageError(format!(
                "--reference: expected TYPE:ID such as file_upload:42, got `{reference}`"
            ))
        })?;
        job.reference_type = Some(kind.to_string());
        job.reference_id = Some(id.to_string());
    }
    if let Some(timeout) = &args.timeout {
        let d = parse_duration(timeout).map_err(|e| UsageError(format!("--timeout: {e}")))?;
        job.timeout_ms = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    Ok(job)
}

/// A validation error in the words of the command line: the flag instead of the field.
fn flag_error(e: ValidationError) -> UsageError {
    let flag = match e.field {
        "kind" => "KIND",
        "args" => "--args",
        "queue" => "--queue",
        "priority" => "--priority",
        "run_at" => "--run-at",
        "delay_ms" => "--delay",
        "max_attempts" => "--max-attempts",
        "unique_key" => "--unique-key",
        "reference_type" | "reference_id" => "--reference",
        "timeout_ms" => "--timeout",
        "concurrency_key" => "--concurrency-key",
        "key_concurrency" => "--key-concurrency",
        other => other,
    };
    UsageError(format!("invalid job: {flag} {}", e.problem))
}
