//! A database holding jobs in every state, for the operator commands' tests and the demo
//! transcript. Built through the library (a job cannot be made `running` or `stuck` from the
//! command line without a worker), always in the same order, so ids are the same on both
//! backends:
//!
//! | id | queue | state |
//! | --- | --- | --- |
//! | 1 | email | succeeded |
//! | 2 | email | failed after 2 attempts (two errors; the last one's progress, a secret in it) |
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
//!
//! [`schedules`] adds schedules with a history, made by the real scheduler pass on a
//! [`ManualClock`] over the last days (see its table).

use errand::{Client, JobId, NewJob};
use errand_core::{FailAction, ManualClock};
use errand_store::{JobClaim, JobComplete, JobFail, JobProgress, WorkerQueue, WorkerRegistration};
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
    let mut jobs = errand::__private::store(client)
        .job_claim(&JobClaim {
            queue: queue.into(),
            worker_id: worker.into(),
            limit: 1,
            lease,
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one ready job in {queue}");
    jobs.remove(0).job
}

async fn complete(client: &Client, job: &errand::Job, result: serde_json::Value) {
    errand::__private::store(client)
        .job_complete_many(&[JobComplete {
            fence: job.fence().unwrap(),
            result: Some(result),
        }])
        .await
        .unwrap();
}

async fn fail(client: &Client, job: &errand::Job, error: &str, action: FailAction) {
    errand::__private::store(client)
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
    insert(
        client,
        job("email", "send_email", json!({"to": "ada@example.com"})),
    )
    .await;
    pass(clock, secs(0.05));
    let j = claim(client, "email", w1, LEASE).await;
    pass(clock, secs(0.84));
    complete(
        client,
        &j,
        json!({"sent": true, "message_id": "<1@example.com>"}),
    )
    .await;
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
    let retry_in = if clock.is_some() {
        secs(5.4)
    } else {
        Duration::ZERO
    };
    fail(
        client,
        &j,
        FIRST_ERROR,
        FailAction::Retry { delay: retry_in },
    )
    .await;
    pass(clock, secs(5.5));
    let j = claim(client, "email", w1, LEASE).await;
    pass(clock, secs(12.0));
    // How far the last attempt came, with a secret-looking key the output redacts.
    errand::__private::store(client)
        .job_progress(&JobProgress {
            fence: j.fence().unwrap(),
            progress: errand::Progress::new(json!({
                "done": 1, "total": 2, "message": "connecting", "smtp_password": "pw-1"
            }))
            .unwrap(),
        })
        .await
        .unwrap();
    pass(clock, secs(18.0));
    fail(client, &j, LAST_ERROR, FailAction::Fail).await;
    pass(clock, secs(240.0));
    // 3: running.
    insert(
        client,
        job("email", "send_email", json!({"to": "cy@example.com"})),
    )
    .await;
    pass(clock, secs(0.2));
    claim(client, "email", w1, LEASE).await;
    pass(clock, secs(60.0));
    // 4: running with a lease that has run out: stuck.
    insert(
        client,
        job("email", "send_email", json!({"to": "di@example.com"})),
    )
    .await;
    pass(clock, secs(0.1));
    let lease = if clock.is_some() {
        secs(30.0)
    } else {
        Duration::from_millis(1)
    };
    claim(client, "email", "demo-host-2", lease).await;
    pass(clock, secs(120.0));
    // 5: cancelled.
    let id = insert(
        client,
        job("email", "send_email", json!({"to": "ada@example.com"})),
    )
    .await;
    pass(clock, secs(20.0));
    client.cancel(&[id], Some("duplicate of 1")).await.unwrap();
    pass(clock, secs(60.0));
    // 6: queued, 7: scheduled.
    insert(
        client,
        job(
            "email",
            "send_email",
            json!({"to": "eve@example.com", "api_token": "s3cret"}),
        ),
    )
    .await;
    let mut later = job("email", "send_email", json!({"to": "fay@example.com"}));
    later.delay_ms = Some(if clock.is_some() {
        9_000_000
    } else {
        3_600_000
    });
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
    fail(
        client,
        &j,
        "ValidationError: `day` must be a date, got \"bad\"",
        FailAction::Fail,
    )
    .await;
    pass(clock, secs(60.0));
    // 11: retrying.
    insert(
        client,
        job("reports", "build_report", json!({"day": "2026-11-23"})),
    )
    .await;
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
        errand::__private::store(client)
            .job_heartbeat_many(&errand_store::JobHeartbeat {
                lease: LEASE,
                fences: vec![running.fence().unwrap()],
            })
            .await
            .unwrap();
    }

    errand::__private::store(client)
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
            fail(
                client,
                &j,
                "ConnectionError: smtp.example.com:25 refused the connection",
                NOW,
            )
            .await;
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

/// The schedules of [`schedules`].
pub const NIGHTLY: &str = "nightly_report";
pub const WEEKLY: &str = "weekly_cleanup";
pub const SYNC: &str = "sync_crm";
pub const LEGACY: &str = "legacy_export";

fn spec(value: serde_json::Value) -> errand::ScheduleSpec {
    serde_json::from_value(value).expect("a schedule spec")
}

/// One pass of the real scheduler at `at`; returns (jobs enqueued, fires skipped).
async fn pass_at(
    client: &Client,
    clock: &ManualClock,
    at: chrono::DateTime<chrono::Utc>,
) -> (usize, usize) {
    clock.set(at);
    let r = errand::scheduler::run_pass(
        errand::__private::store(client).as_ref(),
        &Default::default(),
    )
    .await
    .unwrap();
    (r.enqueued, r.skipped)
}

/// Adds four schedules with a history, in the same order on both backends, to a database
/// whose jobs (if any) leave the `reports` and `crm` queues without ready jobs. `client` must
/// read its time from `clock`, which moves from days ago to the present:
///
/// | schedule | source | what | history |
/// | --- | --- | --- | --- |
/// | `nightly_report` | config | cron `0 2 * * *` in Europe/London, queue reports, args with a password | fires 1-4 before now−3h: run 41.5 s, run failed after 38.2 s, missed by 3 h (skipped `missed_beyond_grace`), run 44 s; then a trigger, run 40.7 s |
/// | `weekly_cleanup` | config | cron `30 3 * * 0`, paused | none |
/// | `sync_crm` | api | every 15m, queue crm, overlap skip | from an hour after the nightly's fire 4: fire 1 runs 15 min, so fire 2 is skipped (`overlap_skipped`); fire 3 runs 2.1 s; fires 4 and 5 missed within the grace: 4 `coalesced`, 5 runs 1.8 s |
/// | `legacy_export` | api | a stored spec this build cannot read (unknown time zone) | none |
///
/// Without other jobs, the runs are jobs 1, 2, 3 (nightly fires), 4 (the trigger), 5, 6, 7
/// (sync_crm).
pub async fn schedules(client: &Client, clock: &ManualClock) {
    use chrono::TimeDelta;
    let now = chrono::Utc::now();
    let w1 = "demo-host-1";
    let nightly = spec(json!({
        "cron": "0 2 * * *", "timezone": "Europe/London", "kind": "build_report",
        "queue": "reports", "args": {"format": "pdf", "smtp_password": "hunter2"},
    }));
    let weekly = spec(json!({"cron": "30 3 * * 0", "kind": "purge_tmp", "paused": true}));
    let sync = spec(json!({
        "every": "15m", "kind": "sync_crm", "queue": "crm", "max_attempts": 3,
    }));
    let fires = nightly.validate(NIGHTLY).unwrap();
    let n4 = fires
        .trigger
        .last_at_or_before(now - TimeDelta::hours(3))
        .unwrap();
    let before = |t: chrono::DateTime<chrono::Utc>| {
        fires
            .trigger
            .last_at_or_before(t - TimeDelta::seconds(1))
            .unwrap()
    };
    let n3 = before(n4);
    let n2 = before(n3);
    let n1 = before(n2);

    clock.set(n1 - TimeDelta::minutes(10));
    let configured = [(NIGHTLY.to_string(), nightly), (WEEKLY.to_string(), weekly)].into();
    client.reconcile_schedules(&configured).await.unwrap();
    assert_eq!(
        pass_at(client, clock, n1 + TimeDelta::seconds(2)).await,
        (1, 0)
    );
    clock.advance(secs(0.3));
    let j = claim(client, "reports", w1, LEASE).await;
    clock.advance(secs(41.5));
    complete(client, &j, json!({"rows": 1180})).await;
    assert_eq!(
        pass_at(client, clock, n2 + TimeDelta::seconds(1)).await,
        (1, 0)
    );
    clock.advance(secs(0.2));
    let j = claim(client, "reports", w1, LEASE).await;
    clock.advance(secs(38.2));
    fail(
        client,
        &j,
        "DatabaseError: canceling statement due to statement timeout",
        FailAction::Fail,
    )
    .await;
    // No scheduler ran at n3: three hours late is beyond the hour of grace.
    assert_eq!(
        pass_at(client, clock, n3 + TimeDelta::hours(3)).await,
        (0, 1)
    );
    assert_eq!(
        pass_at(client, clock, n4 + TimeDelta::seconds(1)).await,
        (1, 0)
    );
    clock.advance(secs(0.2));
    let j = claim(client, "reports", w1, LEASE).await;
    clock.advance(secs(44.0));
    complete(client, &j, json!({"rows": 1215})).await;
    clock.set(n4 + TimeDelta::minutes(35));
    client.schedule_trigger(NIGHTLY, false).await.unwrap();
    clock.advance(secs(0.4));
    let j = claim(client, "reports", w1, LEASE).await;
    clock.advance(secs(40.7));
    complete(client, &j, json!({"rows": 1215})).await;

    let every = sync.validate(SYNC).unwrap();
    // Within the day after n4, so no pass below reaches the nightly's next fire.
    let s1 = every.trigger.next_after(n4 + TimeDelta::hours(1)).unwrap();
    let step = |k: i32| s1 + TimeDelta::minutes(15 * i64::from(k));
    clock.set(s1 - TimeDelta::minutes(1));
    client.schedule_create(SYNC, &sync).await.unwrap();
    assert_eq!(
        pass_at(client, clock, step(0) + TimeDelta::seconds(1)).await,
        (1, 0)
    );
    clock.advance(secs(0.2));
    let long = claim(client, "crm", w1, Duration::from_secs(3600)).await;
    // Still running at the next fire: skipped.
    assert_eq!(
        pass_at(client, clock, step(1) + TimeDelta::seconds(1)).await,
        (0, 1)
    );
    clock.set(step(1) + TimeDelta::seconds(40));
    complete(client, &long, json!({"contacts": 5120})).await;
    assert_eq!(
        pass_at(client, clock, step(2) + TimeDelta::seconds(1)).await,
        (1, 0)
    );
    clock.advance(secs(0.2));
    let j = claim(client, "crm", w1, LEASE).await;
    clock.advance(secs(2.1));
    complete(client, &j, json!({"contacts": 12})).await;
    // Down for two fires, within the grace: they run once.
    assert_eq!(
        pass_at(client, clock, step(4) + TimeDelta::seconds(10)).await,
        (1, 1)
    );
    clock.advance(secs(0.2));
    let j = claim(client, "crm", w1, LEASE).await;
    clock.advance(secs(1.8));
    complete(client, &j, json!({"contacts": 31})).await;

    // Stored by an errand whose time zone database knew a zone this one does not.
    clock.set(now - TimeDelta::seconds(2));
    errand::__private::store(client)
        .schedule_create(&errand_store::ScheduleWrite {
            name: LEGACY.into(),
            spec: json!({"cron": "0 4 * * *", "timezone": "Europe/Atlantis", "kind": "export_legacy"}),
            kind: "export_legacy".into(),
            queue: "default".into(),
            paused: false,
            source: errand::ScheduleSource::Api,
        })
        .await
        .unwrap();
}

/// [`schedules`] on the database at `url`, through a client of its own on a manual clock
/// (the tests' client reads the real one).
pub async fn with_schedules(url: &str) {
    let clock = ManualClock::new(chrono::Utc::now());
    let client = Client::builder(url.to_string())
        .clock(std::sync::Arc::new(clock.clone()))
        .postgres_max_connections(2)
        .connect()
        .await
        .expect("connect the fixture's client");
    schedules(&client, &clock).await;
}
