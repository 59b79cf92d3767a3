//! A database holding jobs in every state, for the operator commands' tests and the demo
//! transcript. Built through the library (a job cannot be made `running` or `stuck` from the
//! command line without a worker), always in the same order, so ids are the same on both
//! backends:
//!
//! | id | queue | state |
//! | --- | --- | --- |
//! | 1 | email | succeeded |
//! | 2 | email | failed after 2 attempts (two errors) |
//! | 3 | email | running (lease held by demo-host-1) |
//! | 4 | email | running, stuck (lease expired, demo-host-2) |
//! | 5 | email | cancelled ("duplicate of 1") |
//! | 6 | email | queued (args hold a token: redacted in output) |
//! | 7 | email | queued, scheduled (run_at in an hour) |
//! | 8, 9 | reports | succeeded |
//! | 10 | reports | failed (one attempt) |
//! | 11 | reports | queued, retrying (attempt 1 failed) |
//! | 12 | indexing | queued, in a paused queue, reference file_upload:42 |
//!
//! and one registered worker process, `demo-host-1`.

use errand::{Client, JobId, NewJob};
use errand_core::FailAction;
use errand_store::{JobClaim, JobComplete, JobFail, WorkerQueue, WorkerRegistration};
use serde_json::json;
use std::time::Duration;

pub const SUCCEEDED: JobId = 1;
pub const FAILED: JobId = 2;
pub const RUNNING: JobId = 3;
pub const STUCK: JobId = 4;
pub const CANCELLED: JobId = 5;
pub const QUEUED: JobId = 6;
pub const SCHEDULED: JobId = 7;
pub const REPORT_FAILED: JobId = 10;
pub const RETRYING: JobId = 11;
pub const PAUSED_QUEUED: JobId = 12;

pub const FIRST_ERROR: &str = "ConnectionError: smtp.example.com:25 refused the connection\n  \
    at send_email (mailer.rs:42)\n  at run (worker.rs:7)";
pub const LAST_ERROR: &str = "TimeoutError: no answer from smtp.example.com within 30s\n  \
    at send_email (mailer.rs:48)";

async fn insert(client: &Client, job: NewJob) -> JobId {
    client.enqueue_many(&[job]).await.unwrap()[0].id
}

fn job(queue: &str, kind: &str, args: serde_json::Value) -> NewJob {
    let mut j = NewJob::new(kind, args);
    j.queue = Some(queue.into());
    j
}

/// Claims the one ready job of `queue` for `worker`.
async fn claim(client: &Client, queue: &str, worker: &str, lease: Duration) -> errand::Job {
    let mut jobs = client
        .store()
        .job_claim(&JobClaim {
            queue: queue.into(),
            worker_id: worker.into(),
            limit: 1,
            lease,
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one ready job in {queue}");
    jobs.remove(0)
}

async fn complete(client: &Client, job: &errand::Job, result: serde_json::Value) {
    client
        .store()
        .job_complete_many(&[JobComplete {
            fence: job.fence().unwrap(),
            result: Some(result),
        }])
        .await
        .unwrap();
}

async fn fail(client: &Client, job: &errand::Job, error: &str, action: FailAction) {
    client
        .store()
        .job_fail(&JobFail {
            fence: job.fence().unwrap(),
            error: error.into(),
            action,
        })
        .await
        .unwrap();
}

const LEASE: Duration = Duration::from_secs(600);
const NOW: FailAction = FailAction::Retry {
    delay: Duration::ZERO,
};

/// Fills the database with the jobs in the table above.
pub async fn every_state(client: &Client) {
    let w1 = "demo-host-1";
    // 1: succeeded.
    insert(client, job("email", "send_email", json!({"to": "ada@example.com"}))).await;
    let j = claim(client, "email", w1, LEASE).await;
    complete(client, &j, json!({"sent": true, "message_id": "<1@example.com>"})).await;
    // 2: failed after two attempts.
    let mut two = job("email", "send_email", json!({"to": "bob@example.com"}));
    two.max_attempts = Some(2);
    two.reference_type = Some("user".into());
    two.reference_id = Some("7".into());
    insert(client, two).await;
    let j = claim(client, "email", w1, LEASE).await;
    fail(client, &j, FIRST_ERROR, NOW).await;
    let j = claim(client, "email", w1, LEASE).await;
    fail(client, &j, LAST_ERROR, FailAction::Fail).await;
    // 3: running.
    insert(client, job("email", "send_email", json!({"to": "cy@example.com"}))).await;
    claim(client, "email", w1, LEASE).await;
    // 4: running with a lease that expires at once: stuck.
    insert(client, job("email", "send_email", json!({"to": "di@example.com"}))).await;
    claim(client, "email", "demo-host-2", Duration::from_millis(1)).await;
    // 5: cancelled.
    let id = insert(client, job("email", "send_email", json!({"to": "ada@example.com"}))).await;
    client.cancel(&[id], Some("duplicate of 1")).await.unwrap();
    // 6: queued, 7: scheduled.
    insert(
        client,
        job("email", "send_email", json!({"to": "eve@example.com", "api_token": "s3cret"})),
    )
    .await;
    let mut later = job("email", "send_email", json!({"to": "fay@example.com"}));
    later.delay_ms = Some(3_600_000);
    insert(client, later).await;
    // 8, 9: succeeded; 10: failed.
    for day in ["2026-11-21", "2026-11-22"] {
        insert(client, job("reports", "build_report", json!({"day": day}))).await;
        let j = claim(client, "reports", w1, LEASE).await;
        complete(client, &j, json!({"rows": 1200})).await;
    }
    let mut once = job("reports", "build_report", json!({"day": "bad"}));
    once.max_attempts = Some(1);
    insert(client, once).await;
    let j = claim(client, "reports", w1, LEASE).await;
    fail(client, &j, "ValidationError: `day` must be a date, got \"bad\"", FailAction::Fail).await;
    // 11: retrying.
    insert(client, job("reports", "build_report", json!({"day": "2026-11-23"}))).await;
    let j = claim(client, "reports", w1, LEASE).await;
    fail(client, &j, "DatabaseError: deadlock detected", NOW).await;
    // 12: queued in a paused queue.
    let mut reindex = job("indexing", "reindex", json!({"file": 42}));
    reindex.reference_type = Some("file_upload".into());
    reindex.reference_id = Some("42".into());
    insert(client, reindex).await;
    client.pause_queue("indexing").await.unwrap();

    client
        .store()
        .worker_register(&WorkerRegistration {
            id: w1.into(),
            host: "demo-host".into(),
            pid: 4242,
            version: "0.1.0".into(),
            queues: vec![
                WorkerQueue {
                    name: "email".into(),
                    concurrency: 4,
                },
                WorkerQueue {
                    name: "reports".into(),
                    concurrency: 1,
                },
            ],
        })
        .await
        .unwrap();
    // Let the 1 ms lease of job 4 run out.
    tokio::time::sleep(Duration::from_millis(20)).await;
}
