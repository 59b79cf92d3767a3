//! `JobContext::progress` in the pool, on both backends: a handler reporting in a tight loop
//! sees its last report on the job while it runs, the last report before returning is on the
//! finished job, reports from a thread outside the runtime are written too, values beyond
//! the limit or that do not serialise are refused at the call, and a report after the job
//! ended changes nothing.

mod common;

use common::*;
use errand_core::JobStatus;
use errand_store_tests::Harness;
use errand_worker::JobContext;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

errand_store_tests::both_backends!(
    reports_are_seen_while_running_and_the_last_one_is_kept,
    reports_from_a_thread_outside_the_runtime_are_written,
    a_report_after_the_job_ended_changes_nothing,
);

/// 1,000 reports without waiting: the job shows the last one while the handler still runs
/// (the writes coalesce, the newest is never lost), and the one made just before returning
/// is on the succeeded job. Refused values are errors at the call, naming the limit.
async fn reports_are_seen_while_running_and_the_last_one_is_kept(h: Harness) {
    let go = Arc::new(Notify::new());
    let g = go.clone();
    let worker = pool(&h)
        .queue("default", 2)
        .register_kind("copy", move |ctx: JobContext, _: Value| {
            let go = g.clone();
            async move {
                for done in 1..=1000 {
                    ctx.progress(json!({"done": done, "total": 1000}))
                        .expect("a small value is taken");
                }
                let too_big = ctx
                    .progress(json!({"blob": "x".repeat(errand_core::MAX_PROGRESS_BYTES)}))
                    .unwrap_err()
                    .to_string();
                let mut by_pair = HashMap::new();
                by_pair.insert((1, 2), 3);
                let not_json = ctx.progress(&by_pair).unwrap_err().to_string();
                go.notified().await;
                ctx.progress(json!({"done": 1000, "total": 1000, "message": "finished"}))
                    .unwrap();
                Ok(json!({"too_big": too_big, "not_json": not_json}))
            }
        })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("copy", json!({}))).await;
    let running = eventually("the last report on the running job", || async {
        let j = get(&h, id).await;
        (j.progress == Some(json!({"done": 1000, "total": 1000}))).then_some(j)
    })
    .await;
    assert_eq!(running.status, JobStatus::Running);
    assert!(running.progress_at.is_some());
    go.notify_one();
    let done = wait_status(&h, id, JobStatus::Succeeded).await;
    worker.shutdown().await;
    assert_eq!(
        done.progress,
        Some(json!({"done": 1000, "total": 1000, "message": "finished"})),
        "the report made just before returning is written before the outcome"
    );
    let result = done.result.unwrap();
    let too_big = result["too_big"].as_str().unwrap();
    assert!(
        too_big.starts_with("`progress` is 8203 bytes as compact JSON; the limit is 8192 bytes"),
        "{too_big}"
    );
    let not_json = result["not_json"].as_str().unwrap();
    assert!(
        not_json.starts_with("`progress` could not be serialised to JSON"),
        "{not_json}"
    );
}

/// Another language's handler reports from a thread the runtime does not know (Python's
/// sync handlers run on a thread pool of their own).
async fn reports_from_a_thread_outside_the_runtime_are_written(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("thread", |ctx: JobContext, _: Value| async move {
            let (tx, rx) = oneshot::channel();
            std::thread::spawn(move || {
                for step in ["reading", "writing"] {
                    ctx.progress(json!({ "step": step })).unwrap();
                }
                let _ = tx.send(());
            });
            rx.await.unwrap();
            Ok(())
        })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("thread", json!({}))).await;
    let done = wait_status(&h, id, JobStatus::Succeeded).await;
    worker.shutdown().await;
    assert_eq!(done.progress, Some(json!({"step": "writing"})));
}

/// A context kept past the handler's end: its report is taken (`Ok`), stale at the store,
/// and the finished job keeps the last report made while it ran.
async fn a_report_after_the_job_ended_changes_nothing(h: Harness) {
    let kept: Arc<Mutex<Option<JobContext>>> = Arc::default();
    let k = kept.clone();
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("keep", move |ctx: JobContext, _: Value| {
            let kept = k.clone();
            async move {
                ctx.progress("last while running").unwrap();
                *kept.lock().unwrap() = Some(ctx);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("keep", json!({}))).await;
    let done = wait_status(&h, id, JobStatus::Succeeded).await;
    assert_eq!(done.progress, Some(json!("last while running")));
    let ctx = kept.lock().unwrap().take().unwrap();
    ctx.progress("after the end").unwrap();
    // A second job through the same pool (a claim and a completion, several round trips):
    // a write of the late report, were it not stale, would have landed by then.
    let next = insert(&h, job("keep", json!({}))).await;
    wait_status(&h, next, JobStatus::Succeeded).await;
    worker.shutdown().await;
    let after = get(&h, id).await;
    assert_eq!(after.progress, Some(json!("last while running")));
    assert_eq!(after.progress_at, done.progress_at);
}
