//! Errand on the embedded default: enqueue typed jobs into ./errand.db and process them.
//!
//! Run it with `cargo run --example quickstart`. It enqueues a few jobs (one delayed, one
//! unique, one that fails once and is retried with backoff), then drains them with a small
//! processing loop built on the client's store, and prints what happened to each job.
//! (The full worker pool and `errand serve` replace this loop; the enqueue side stays.)

use errand::{Client, HandlerError, JobList, Task};
use errand_core::{decide_failure, Backoff, FailAction, JobStatus};
use errand_store::{JobClaim, JobComplete, JobFail};
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
    println!("errand: {} store at {url}, schema version {}", client.backend().as_str(), status.current_version);

    let welcome = client
        .enqueue(SendEmail { to: "ada@example.com".into(), subject: "Welcome".into() })
        .priority(10)
        .unique_key("welcome:ada")
        .send()
        .await?;
    let again = client
        .enqueue(SendEmail { to: "ada@example.com".into(), subject: "Welcome".into() })
        .unique_key("welcome:ada")
        .send()
        .await?;
    println!("enqueued job {} (inserted: {}); same key again -> job {} (inserted: {})",
        welcome.id, welcome.inserted, again.id, again.inserted);
    let ingest = client
        .enqueue(IngestFile { upload_id: 42 })
        .reference("file_upload", 42)
        .send()
        .await?;
    let later = client
        .enqueue(SendEmail { to: "bob@example.com".into(), subject: "Reminder".into() })
        .delay(Duration::from_secs(1))
        .send()
        .await?;
    println!("enqueued file ingestion {} and a delayed email {}", ingest.id, later.id);

    // A minimal processing loop: claim, run, record. Uploads fail on their first attempt to
    // show the retry; the backoff here is shortened so the example finishes quickly.
    let backoff = Backoff { base: Duration::from_millis(300), ..Backoff::default() };
    let store = client.store().clone();
    let wanted = [welcome.id, ingest.id, later.id];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let claim = JobClaim {
            queue: "default".into(),
            worker_id: format!("quickstart-{}", std::process::id()),
            limit: 10,
            lease: Duration::from_secs(30),
        };
        for job in store.job_claim(&claim).await? {
            let fence = job.fence().expect("claimed job has a holder");
            let outcome: Result<serde_json::Value, HandlerError> = match job.kind.as_str() {
                "send_email" => {
                    let email: SendEmail = serde_json::from_value(job.args.clone())?;
                    println!("  job {}: sending '{}' to {}", job.id, email.subject, email.to);
                    Ok(serde_json::json!({"delivered": true}))
                }
                "file_ingestion" if job.attempt == 1 => Err(HandlerError::Error {
                    message: "ConnectionError: storage not ready".into(),
                }),
                "file_ingestion" => Ok(serde_json::json!({"pages": 12})),
                other => Err(HandlerError::Permanent { message: format!("no handler for `{other}`") }),
            };
            match outcome {
                Ok(result) => {
                    store.job_complete_many(&[JobComplete { fence, result: Some(result) }]).await?;
                }
                Err(err) => {
                    let action = decide_failure(job.attempt, job.max_attempts, &err, &backoff, Backoff::random_unit());
                    if let FailAction::Retry { delay } = action {
                        println!("  job {}: attempt {} failed ({}), retrying in {:?}", job.id, job.attempt, err.message(), delay);
                    }
                    store.job_fail(&JobFail { fence, error: err.message().into(), action }).await?;
                }
            }
        }
        let mut done = true;
        for id in wanted {
            let job = client.job(id).await?.expect("job exists");
            done &= job.status.is_finished();
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("\nfinal states:");
    for id in wanted {
        let (job, events) = client.job_with_events(id).await?;
        println!("  job {:>3} {:<15} {:<10} attempts {} result {}", job.id, job.kind, job.status.as_str(), job.attempt,
            job.result.map(|r| r.to_string()).unwrap_or_default());
        for e in events {
            println!("        event {} (attempt {}): {}", e.kind, e.attempt, e.message.unwrap_or_default());
        }
    }
    for s in client.queue_stats().await? {
        println!("queue {}: queued {} running {} succeeded {} failed {}", s.queue, s.queued, s.running, s.succeeded, s.failed);
    }
    let failed = client.list(&JobList { state: Some(errand::StateFilter::Status(JobStatus::Failed)), ..Default::default() }).await?;
    println!("failed jobs: {}", failed.jobs.len());
    Ok(())
}
