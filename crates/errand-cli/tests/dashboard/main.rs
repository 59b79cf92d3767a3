//! The dashboard in a real headless Chromium, against the real `errand serve` binary on a
//! database seeded with jobs in every state: each page loads and shows its data, the jobs
//! filter works, retrying a failed job and pausing a queue change what the page shows (and
//! the database), and a read-only token sees no action buttons.
//!
//! Screenshots of each page go to `target/tmp/screenshots/` on every run, and also to
//! `docs/screenshots/` when `ERRAND_UPDATE_SCREENSHOTS=1` is set (the committed pictures in
//! docs/dashboard.md are made that way; writing into the source tree on every `cargo test`
//! would leave every checkout dirty).
//!
//! Needs Debian's `chromium` and `chromium-driver` (installed by .ci/run); without them the
//! tests fail with the command to install them. `cargo test -p errand-cli --test dashboard`.

#![allow(dead_code)] // the shared e2e harness has helpers these tests do not use

#[path = "../e2e/common.rs"]
mod common;
mod webdriver;

use common::{e2e, Env, Proc};
use errand::{Client, JobId, JobStatus};
use errand_core::FailAction;
use errand_store::{JobClaim, JobComplete, JobFail, JobProgress, WorkerQueue, WorkerRegistration};
use serde_json::json;
use std::time::Duration;
use webdriver::Browser;

/// What the seed made, for the checks.
struct Seeded {
    failed: Vec<JobId>,
    queued: Vec<JobId>,
}

/// Jobs in every state over three queues, a failed job with a secret in its arguments (and
/// one in its progress report), and a registered worker.
async fn seed(client: &Client) -> Seeded {
    let store = errand::__private::store(client);
    // A nightly schedule in New York time, so the schedules page and the overview's next
    // fires have something to show.
    let nightly: errand::ScheduleSpec = serde_json::from_value(json!({
        "cron": "0 2 * * *", "timezone": "America/New_York", "kind": "render_report",
        "queue": "reports",
    }))
    .unwrap();
    client
        .schedule_create("nightly-report", &nightly)
        .await
        .unwrap();
    let mut queued = Vec::new();
    for i in 0..12 {
        let id = client
            .enqueue_kind("send_email", json!({"to": format!("user{i}@example.com")}))
            .queue("default")
            .reference("user", i.to_string())
            .send()
            .await
            .unwrap()
            .id;
        queued.push(id);
    }
    // Succeeded: claimed and completed.
    for i in 0..6 {
        client
            .enqueue_kind("render_report", json!({"report": i}))
            .queue("reports")
            .send()
            .await
            .unwrap();
    }
    let claimed = store
        .job_claim(&JobClaim {
            queue: "reports".into(),
            worker_id: "seed-worker".into(),
            limit: 6,
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let done: Vec<JobComplete> = claimed
        .iter()
        .map(|j| JobComplete {
            fence: j.fence().unwrap(),
            result: Some(json!({"pages": 3})),
        })
        .collect();
    store.job_complete_many(&done).await.unwrap();
    // Failed: one attempt, a permanent error with a multi-line message.
    for i in 0..3 {
        client
            .enqueue_kind(
                "charge_card",
                json!({"order": 100 + i, "api_token": "tok_live_SHOULD_NOT_SHOW"}),
            )
            .queue("billing")
            .concurrency_key(format!("order-{}", 100 + i))
            .key_concurrency(2)
            .max_attempts(1)
            .send()
            .await
            .unwrap();
    }
    let claimed = store
        .job_claim(&JobClaim {
            queue: "billing".into(),
            worker_id: "seed-worker".into(),
            limit: 3,
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let mut failed = Vec::new();
    for j in &claimed {
        if failed.is_empty() {
            // How far the first one came, with a secret in it.
            let progress = json!({"done": 3, "total": 4, "message": "charging the card",
                                  "api_token": "tok_live_SHOULD_NOT_SHOW"});
            store
                .job_progress(&JobProgress {
                    fence: j.fence().unwrap(),
                    progress: errand::Progress::new(progress).unwrap(),
                })
                .await
                .unwrap();
        }
        store
            .job_fail(&JobFail {
                fence: j.fence().unwrap(),
                error: "card declined\nstderr: gateway said 402 Payment Required".into(),
                action: FailAction::Fail,
            })
            .await
            .unwrap();
        failed.push(j.id);
    }
    client
        .set_queue_limits(
            "billing",
            errand::QueueLimits {
                global_concurrency: Some(2),
                key_concurrency: None,
                rate_limit: Some("100/1m".parse().unwrap()),
            },
        )
        .await
        .unwrap();
    store
        .worker_register(&WorkerRegistration {
            id: "web-1-4242-seed".into(),
            host: "web-1".into(),
            pid: 4242,
            version: "0.1.0".into(),
            queues: vec![WorkerQueue {
                name: "default".into(),
                concurrency: 8,
            }],
        })
        .await
        .unwrap();
    Seeded { failed, queued }
}

/// Starts `errand serve` with no workers (jobs stay where the test put them) and returns
/// the process and the dashboard's base URL.
async fn serve(env: &Env, tokens: Option<&str>) -> (Proc, String) {
    let mut vars = vec![("ERRAND_WORKERS_ENABLED", "false")];
    if let Some(t) = tokens {
        vars.push(("ERRAND_SERVER_TOKENS", t));
    }
    let proc = env.spawn(&["serve"], &vars);
    let line = proc.wait_for_line("HTTP API listening on").await;
    let start = line
        .find("http://")
        .expect("the listening line names the address");
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\u{1b}')
        .collect();
    (proc, url)
}

fn screenshot_paths(name: &str) -> Vec<std::path::PathBuf> {
    let mut out = vec![std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("screenshots")
        .join(format!("{name}.png"))];
    if std::env::var("ERRAND_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        out.push(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/screenshots")
                .join(format!("{name}.png")),
        );
    }
    out
}

async fn shoot(browser: &Browser, name: &str) {
    for p in screenshot_paths(name) {
        browser.screenshot(&p).await;
    }
}

/// Every page loads against a seeded database and shows its data; a screenshot of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_and_shows_its_data() {
    common::run(common::Backend::Sqlite, |env| async move {
        let client = env.client().await;
        let seeded = seed(client).await;
        let (_server, url) = serve(&env, None).await;
        let b = Browser::start().await;

        // Overview: one row per queue with its counts, the chart, the workers card.
        b.goto(&format!("{url}/")).await;
        b.wait("#queues tr[data-queue='billing']").await;
        let billing = b.text_of("#queues tr[data-queue='billing']").await;
        assert!(
            billing.contains('3'),
            "billing shows its 3 failed jobs: {billing}"
        );
        assert!(
            billing.contains("global 2, rate 100/1m"),
            "billing shows its limits: {billing}"
        );
        // The mix bar is drawn (its widths go through the CSSOM: the page's CSP refuses style
        // attributes, so a bar set that way would be empty).
        let width = b
            .execute(
                "const i = document.querySelector(\"#queues tr[data-queue='billing'] .mix i\"); \
                 return i ? i.getBoundingClientRect().width : -1;",
                json!([]),
            )
            .await;
        assert!(
            width.as_f64().unwrap_or(-1.0) > 10.0,
            "the mix bar has width: {width}"
        );
        // The chart, or a note where this server has no throughput series yet.
        b.wait("#throughput svg.chart, #throughput .empty").await;
        b.wait_text("#workers-card", "1").await;
        b.wait_text("#role", "no auth").await;
        shoot(&b, "overview").await;

        // Jobs: all 21, newest first; the failed ones link to their page.
        b.goto(&format!("{url}/#/jobs")).await;
        b.wait("#job-list tr[data-job]").await;
        assert_eq!(b.find_all("#job-list tr[data-job]").await.len(), 21);
        shoot(&b, "jobs").await;

        // A failed job: its error in full, its arguments with the secret redacted.
        let id = seeded.failed[0];
        b.goto(&format!("{url}/#/jobs/{id}")).await;
        b.wait_text("#job-body", "402 Payment Required").await;
        let page = b.text_of("main").await;
        assert!(
            page.contains("[redacted]"),
            "the secret is redacted:\n{page}"
        );
        assert!(
            !page.contains("tok_live_SHOULD_NOT_SHOW"),
            "the secret never shows:\n{page}"
        );
        assert!(
            page.contains("attempt failed"),
            "the timeline shows the error event:\n{page}"
        );
        assert!(
            page.contains("order-100") && page.contains("at most 2 at a time"),
            "its concurrency key and limit:\n{page}"
        );
        // Its last progress report: the bar, the message, the value with the secret redacted.
        let progress = b.wait_text("#job-progress", "charging the card").await;
        assert!(progress.contains("3 of 4 (75 %)"), "{progress}");
        b.wait("#job-progress .progress-bar .progress-fill").await;
        shoot(&b, "job").await;

        // Workers: the registered one, with its queue and concurrency.
        b.goto(&format!("{url}/#/workers")).await;
        let w = b.wait_text("#worker-list", "web-1").await;
        assert!(w.contains("default") && w.contains("×8"), "{w}");
        shoot(&b, "workers").await;

        // Schedules: a list, or a clear note when this server has no schedules API.
        b.goto(&format!("{url}/#/schedules")).await;
        let s = b.wait_text("#schedule-list", "nightly-report").await;
        assert!(
            s.contains("0 2 * * *"),
            "the schedule shows its expression: {s}"
        );
        assert!(
            !s.contains("Could not load"),
            "schedules page shows no error: {s}"
        );
        shoot(&b, "schedules").await;

        // One schedule's last run with what it returned (the runbook's stats).
        let Ok(errand::Triggered::Enqueued(e)) =
            client.schedule_trigger("nightly-report", false).await
        else {
            panic!("the schedule has no live run: the trigger enqueues");
        };
        let run = errand::__private::store(client)
            .job_claim(&JobClaim {
                queue: "reports".into(),
                worker_id: "seed-worker".into(),
                limit: 1,
                lease: Duration::from_secs(60),
            })
            .await
            .unwrap();
        assert_eq!(run[0].id, e.id);
        let done = JobComplete {
            fence: run[0].fence().unwrap(),
            result: Some(json!({"processed_users": 42, "due_items": 7})),
        };
        errand::__private::store(client)
            .job_complete_many(&[done])
            .await
            .unwrap();
        b.goto(&format!("{url}/#/schedules/nightly-report")).await;
        let last = b.wait_text("#last-run", "processed_users").await;
        assert!(
            last.contains("due_items")
                && last.contains("succeeded")
                && last.contains(&format!("#{}", e.id)),
            "{last}"
        );
        shoot(&b, "schedule").await;

        let _ = seeded.queued;
        b.close().await;
    })
    .await;
}

/// Filter by state, open a failed job, retry it, and see it queued; both backends.
async fn filter_and_retry_a_failed_job(env: Env) {
    let client = env.client().await;
    let seeded = seed(client).await;
    let (_server, url) = serve(&env, None).await;
    let b = Browser::start().await;

    b.goto(&format!("{url}/#/jobs")).await;
    b.wait("#job-list tr[data-job]").await;
    b.select("#f-state", "failed").await;
    // The view is mounted anew for the new filter: wait for its rows, not for the old ones to go.
    b.wait("#job-list tr[data-status='failed']").await;
    b.wait_gone("#job-list tr[data-status='queued']").await;
    let rows = b.find_all("#job-list tr[data-job]").await;
    assert_eq!(rows.len(), 3, "three failed jobs");
    assert!(
        b.url().await.contains("status=failed"),
        "the filter is in the address"
    );

    // Queue filter narrows further.
    let q = b.wait("#f-queue").await;
    b.type_into(&q, "default\n").await;
    b.wait_text("#job-list", "No jobs match").await;
    b.select("#f-state", "").await;
    b.wait("#job-list tr[data-status='queued']").await;
    assert!(b
        .find_all("#job-list tr[data-status='failed']")
        .await
        .is_empty());

    let id = seeded.failed[1];
    b.goto(&format!("{url}/#/jobs/{id}")).await;
    b.wait_text("h1", "failed").await;
    b.click_on("#job-retry").await;
    b.click_on("#confirm-yes").await;
    b.wait_text("h1", "queued").await;
    let job = client.job(id).await.unwrap().unwrap();
    assert_eq!(
        job.status,
        JobStatus::Queued,
        "the retry reached the database"
    );
    assert!(
        b.find_all("#job-retry").await.is_empty(),
        "a queued job offers no retry"
    );
    b.close().await;
}

/// Pause a queue from the overview (after confirming) and see it paused; both backends.
async fn pause_a_queue(env: Env) {
    let client = env.client().await;
    seed(client).await;
    let (_server, url) = serve(&env, None).await;
    let b = Browser::start().await;

    b.goto(&format!("{url}/")).await;
    b.click_on("#queues tr[data-queue='default'] button[data-action='pause']")
        .await;
    b.wait_text("#confirm-title", "Pause queue").await;
    // Keeping it as is changes nothing.
    b.click_on("#confirm-no").await;
    assert!(!client
        .queue_stats()
        .await
        .unwrap()
        .iter()
        .any(|q| q.queue == "default" && q.paused));
    b.click_on("#queues tr[data-queue='default'] button[data-action='pause']")
        .await;
    b.click_on("#confirm-yes").await;
    b.wait_text("#queues tr[data-queue='default']", "paused")
        .await;
    b.wait("#queues tr[data-queue='default'] button[data-action='resume']")
        .await;
    let stats = client.queue_stats().await.unwrap();
    assert!(
        stats.iter().any(|q| q.queue == "default" && q.paused),
        "paused in the database"
    );
    b.click_on("#queues tr[data-queue='default'] button[data-action='resume']")
        .await;
    b.wait("#queues tr[data-queue='default'] button[data-action='pause']")
        .await;
    b.close().await;
}

e2e!(filter_and_retry_a_failed_job, pause_a_queue);

/// With tokens configured the page asks for one; a read token sees everything but no
/// action button, an admin token gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_token_sees_no_buttons() {
    common::run(common::Backend::Sqlite, |env| async move {
        let client = env.client().await;
        let seeded = seed(client).await;
        let (_server, url) = serve(&env, Some("read:reader-secret,admin:admin-secret")).await;
        let b = Browser::start().await;

        b.goto(&format!("{url}/")).await;
        let input = b.wait("#token-dialog[open] #token-input").await;
        b.type_into(&input, "wrong-token\n").await;
        b.wait("#token-dialog[open] #token-error:not([hidden])")
            .await;
        let input = b.wait("#token-input").await;
        b.type_into(&input, "reader-secret\n").await;
        b.wait("#queues tr[data-queue='default']").await;
        b.wait_text("#role", "read").await;
        assert!(
            b.find_all("#queues button").await.is_empty(),
            "no pause buttons for read"
        );

        b.goto(&format!("{url}/#/jobs")).await;
        b.wait("#job-list tr[data-job]").await;
        assert!(
            b.find_all("#job-list input[type=checkbox]")
                .await
                .is_empty(),
            "no selection for read"
        );
        b.goto(&format!("{url}/#/jobs/{}", seeded.failed[0])).await;
        b.wait_text("#job-body", "402 Payment Required").await;
        assert!(
            b.find_all("#job-retry, #job-cancel").await.is_empty(),
            "no retry for read"
        );
        shoot(&b, "job-read-only").await;

        // Sign out, sign in as admin: the buttons appear.
        b.click_on("#signout").await;
        let input = b.wait("#token-dialog[open] #token-input").await;
        b.type_into(&input, "admin-secret\n").await;
        b.wait("#job-retry").await;
        b.close().await;
    })
    .await;
}
