//! Errand on the embedded default: enqueue typed jobs into ./errand.db and run them with the
//! in-process worker pool.
//!
//! Run it with `cargo run -p errand --example quickstart`. It enqueues a few jobs (one unique,
//! one delayed, one that fails on its first attempt and is retried with backoff), starts a
//! worker pool beside them, waits until all are finished, prints what happened to each job,
//! and shuts the pool down gracefully.

use errand::{Client, HandlerError, JobContext, Task};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct SendEmail {
    to: String,
    subject: String,
}

impl Task for SendEmail {
    const KIND: &'static str = "send_email";
}

#[derive(Debug, Serialize, Deserialize)]
struct IngestFile {
    upload_id: i64,
}

impl Task for IngestFile {
    const KIND: &'static str = "file_ingestion";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("ERRAND_DATABASE_URL").unwrap_or_else(|_| "errand.db".into());
    let client = Client::connect(&url).await?;
    let status = client.migration_status().await?;
    println!(
        "errand: {} store at {url}, schema version {}",
        client.backend().as_str(),
        status.current_version
    );

    let welcome = client
        .enqueue(SendEmail {
            to: "ada@example.com".into(),
            subject: "Welcome".into(),
        })
        .priority(10)
        .unique_key("welcome:ada")
        .send()
        .await?;
    let again = client
        .enqueue(SendEmail {
            to: "ada@example.com".into(),
            subject: "Welcome".into(),
        })
        .unique_key("welcome:ada")
        .send()
        .await?;
    println!(
        "enqueued job {} (inserted: {}); same unique key again -> job {} (inserted: {})",
        welcome.id, welcome.inserted, again.id, again.inserted
    );
    let ingest = client
        .enqueue(IngestFile { upload_id: 42 })
        .reference("file_upload", 42)
        .send()
        .await?;
    let later = client
        .enqueue(SendEmail {
            to: "bob@example.com".into(),
            subject: "Reminder".into(),
        })
        .delay(Duration::from_secs(2))
        .send()
        .await?;
    println!(
        "enqueued file ingestion {} and an email delayed by 2 s: {}",
        ingest.id, later.id
    );

    let worker = client
        .worker()
        .queue("default", 4)
        .register(|ctx: JobContext, email: SendEmail| async move {
            println!(
                "  job {}: sending '{}' to {}",
                ctx.id(),
                email.subject,
                email.to
            );
            Ok(serde_json::json!({"delivered": true}))
        })
        .register(|ctx: JobContext, file: IngestFile| async move {
            if ctx.attempt() == 1 {
                // The first attempt fails, to show a retry (backoff shortened below).
                return Err(HandlerError::Error {
                    message: "ConnectionError: storage not ready".into(),
                });
            }
            println!(
                "  job {}: ingested upload {} on attempt {}",
                ctx.id(),
                file.upload_id,
                ctx.attempt()
            );
            Ok(serde_json::json!({"pages": 12}))
        })
        .task_options(
            "file_ingestion",
            errand::worker::TaskOptions {
                backoff: Some(errand::Backoff {
                    base: Duration::from_millis(500),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .start()
        .await?;
    println!("worker {} started", worker.id());

    let wanted = [welcome.id, ingest.id, later.id];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let mut finished = 0;
        for id in wanted {
            if client
                .job(id)
                .await?
                .is_some_and(|j| j.status.is_finished())
            {
                finished += 1;
            }
        }
        if finished == wanted.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = worker.shutdown().await;
    println!(
        "worker stopped ({} released)\n\nfinal states:",
        report.released
    );

    for id in wanted {
        let (job, events) = client.job_with_events(id).await?;
        println!(
            "  job {:>3} {:<15} {:<10} attempts {} result {}",
            job.id,
            job.kind,
            job.status.as_str(),
            job.attempt,
            job.result.map(|r| r.to_string()).unwrap_or_default()
        );
        for e in events {
            println!(
                "        event {} (attempt {}): {}",
                e.kind,
                e.attempt,
                e.message.unwrap_or_default()
            );
        }
    }
    for s in client.queue_stats().await? {
        println!(
            "queue {}: queued {} running {} succeeded {} failed {}",
            s.queue, s.queued, s.running, s.succeeded, s.failed
        );
    }
    Ok(())
}
