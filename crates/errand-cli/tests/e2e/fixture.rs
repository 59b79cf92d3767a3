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
//!
//! With a [`ManualClock`] (the demo), time passes between the steps as it would in
//! production (runs take seconds, retries wait, jobs are spread over the last hour) and more
//! history follows (ids 13 and up), so ages and run-time figures read naturally; the tests
//! pass none and everything happens within milliseconds.

use errand::{Client, JobId, NewJob};
use errand_core::{FailAction, ManualClock};
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

/// Lets `d` pass on the demo's clock; nothing in the tests.
fn pass(clock: Option<&ManualClock>, d: Duration) {
    if let Some(c) = clock {
        c.advance(d);
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Fills the database with the jobs in the table above.
pub async fn every_state(client: &Client, clock: Option<&ManualClock>) {
    let w1 = "demo-host-1";
    if let Some(c) = clock {
        c.set(chrono::Utc::now() - chrono::TimeDelta::minutes(58));
    }
    // 1: succeeded.
    insert(client, job("email", "send_email", json!({"to": "ada@example.com"}))).await;
    pass(clock, secs(0.05));
    let j = claim(client, "email", w1, LEASE).await;
    pass(clock, secs(0.84));
    complete(client, &j, json!({"sent": true, "message_id": "<1@example.com>"})).await;
    pass(clock, secs(95.0));
    // 2: failed after two attempts.
    let mut two = job("email", "send_email", json!({"to": "bob@example.com"}));
    two.max_attempts = Some(2);
    two.reference_type = Some("user".into());
    two.reference_id = Some("7".into());
    insert(client, two).await;
    pass(clock, secs(0.1));
    let j = claim(client, "email", w1, LEASE).await;
    pass(clock, secs(2.3));
    let retry_in = if clock.is_some() { secs(5.4) } else { Duration::ZERO };
    fail(client, &j, FIRST_ERROR, FailAction::Retry { delay: retry_in }).await;
    pass(clock, secs(5.5));
    let j = claim(client, "email", w1, LEASE).await;
    pass(clock, secs(30.0));
    fail(client, &j, LAST_ERROR, FailAction::Fail).await;
    pass(clock, secs(240.0));
    // 3: running.
    insert(client, job("email", "send_email", json!({"to": "cy@example.com"}))).await;
    pass(clock, secs(0.2));
    claim(client, "email", w1, LEASE).await;
    pass(clock, secs(60.0));
    // 4: running with a lease that has run out: stuck.
    insert(client, job("email", "send_email", json!({"to": "di@example.com"}))).await;
    pass(clock, secs(0.1));
    let lease = if clock.is_some() { secs(30.0) } else { Duration::from_millis(1) };
    claim(client, "email", "demo-host-2", lease).await;
    pass(clock, secs(120.0));
    // 5: cancelled.
    let id = insert(client, job("email", "send_email", json!({"to": "ada@example.com"}))).await;
    pass(clock, secs(20.0));
    client.cancel(&[id], Some("duplicate of 1")).await.unwrap();
    pass(clock, secs(60.0));
    // 6: queued, 7: scheduled.
    insert(
        client,
        job("email", "send_email", json!({"to": "eve@example.com", "api_token": "s3cret"})),
    )
    .await;
    let mut later = job("email", "send_email", json!({"to": "fay@example.com"}));
    later.delay_ms = Some(if clock.is_some() { 9_000_000 } else { 3_600_000 });
    insert(client, later).await;
    pass(clock, secs(30.0));
    // 8, 9: succeeded; 10: failed.
    for (day, run) in [("2026-11-21", 41.5), ("2026-11-22", 38.2)] {
        insert(client, job("reports", "build_report", json!({"day": day}))).await;
        pass(clock, secs(0.3));
        let j = claim(client, "reports", w1, LEASE).await;
        pass(clock, secs(run));
        complete(client, &j, json!({"rows": 1200})).await;
        pass(clock, secs(10.0));
    }
    let mut once = job("reports", "build_report", json!({"day": "bad"}));
    once.max_attempts = Some(1);
    insert(client, once).await;
    pass(clock, secs(0.2));
    let j = claim(client, "reports", w1, LEASE).await;
    pass(clock, secs(0.4));
    fail(client, &j, "ValidationError: `day` must be a date, got \"bad\"", FailAction::Fail).await;
    pass(clock, secs(60.0));
    // 11: retrying.
    insert(client, job("reports", "build_report", json!({"day": "2026-11-23"}))).await;
    pass(clock, secs(0.2));
    let j = claim(client, "reports", w1, LEASE).await;
    pass(clock, secs(12.0));
    fail(client, &j, "DatabaseError: deadlock detected", NOW).await;
    pass(clock, secs(30.0));
    // 12: queued in a paused queue.
    let mut reindex = job("indexing", "reindex", json!({"file": 42}));
    reindex.reference_type = Some("file_upload".into());
    reindex.reference_id = Some("42".into());
    client.pause_queue("indexing").await.unwrap();
    pass(clock, secs(90.0));
    insert(client, reindex).await;

    if let Some(c) = clock {
        history(client, c).await;
        // Back to the present: the running job's worker is heartbeating.
        c.set(chrono::Utc::now() - chrono::TimeDelta::seconds(3));
        let running = client.job(RUNNING).await.unwrap().unwrap();
        client
            .store()
            .job_heartbeat_many(&errand_store::JobHeartbeat {
                worker_id: w1.into(),
                lease: LEASE,
                jobs: vec![(RUNNING, running.attempt)],
            })
            .await
            .unwrap();
    }

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

/// The demo's last 40 minutes of ordinary traffic: emails of about a second, reports of about
/// forty, now and then a failure that a retry fixes.
async fn history(client: &Client, clock: &ManualClock) {
    for i in 0..48u32 {
        let (queue, kind, run) = if i % 4 == 3 {
            ("reports", "build_report", 30.0 + f64::from(i % 7) * 4.5)
        } else {
            ("email", "send_email", 0.4 + f64::from(i % 9) * 0.35)
        };
        // Ahead of the fixture's ready jobs, which must stay queued.
        let mut j = job(queue, kind, json!({"n": i}));
        j.priority = Some(1);
        insert(client, j).await;
        clock.advance(secs(0.15));
        let j = claim(client, queue, "demo-host-1", LEASE).await;
        clock.advance(secs(run));
        if i % 11 == 5 {
            fail(client, &j, "ConnectionError: smtp.example.com:25 refused the connection", NOW).await;
            clock.advance(secs(5.0));
            let j = claim(client, queue, "demo-host-1", LEASE).await;
            clock.advance(secs(run));
            complete(client, &j, json!({"sent": true})).await;
        } else {
            complete(client, &j, json!({"ok": true})).await;
        }
        clock.advance(secs(35.0));
    }
}
