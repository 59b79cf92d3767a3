//! Running one job: results, errors and retries, permanent failures, panics, timeouts,
//! unknown kinds, undecodable args, operator cancel, and bad pool settings.

mod common;

use common::*;
use errand_core::{EventKind, JobStatus, Task};
use errand_store::CancelOutcome;
use errand_store_tests::Harness;
use errand_worker::{
    HandlerError, JobContext, JobOutcome, StartError, StopReason, TaskOptions, Worker,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

errand_store_tests::both_backends!(
    typed_job_runs_and_its_result_is_stored,
    handler_error_retries_then_succeeds,
    retries_exhausted_end_failed,
    permanent_errors_and_undecodable_args_fail_at_once,
    panic_is_captured_as_a_failed_attempt,
    job_without_a_handler_fails_the_attempt_naming_the_worker,
    timeout_fails_the_attempt,
    operator_cancel_stops_the_running_handler,
    bad_settings_are_rejected_at_start,
);

#[derive(Debug, Serialize, Deserialize)]
struct SendEmail {
    to: String,
}

impl Task for SendEmail {
    const KIND: &'static str = "send_email";
    const QUEUE: &'static str = "email";
}

async fn typed_job_runs_and_its_result_is_stored(h: Harness) {
    let worker = pool(&h)
        .queue("email", 2)
        .register(|ctx: JobContext, email: SendEmail| async move {
            Ok(json!({ "sent": true, "to": email.to, "attempt": ctx.attempt() }))
        })
        .register_kind("nothing_to_say", |_ctx, _args: Value| async move { Ok(()) })
        .start()
        .await
        .unwrap();
    let workers = h.store.worker_list().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].id, worker.id());
    assert_eq!(workers[0].queues[0].name, "email");

    let mut email = job("send_email", json!({ "to": "ada@example.com" }));
    email.queue = "email".into();
    let id = insert(&h, email).await;
    let mut quiet = job("nothing_to_say", json!({}));
    quiet.queue = "email".into();
    let quiet = insert(&h, quiet).await;

    let done = wait_status(&h, id, JobStatus::Succeeded).await;
    assert_eq!(
        done.result,
        Some(json!({ "sent": true, "to": "ada@example.com", "attempt": 1 }))
    );
    assert_eq!(done.attempt, 1);
    assert_eq!(done.worker_id.as_deref(), Some(worker.id()));
    assert!(
        event_kinds(&h, id).await.is_empty(),
        "the happy path writes no event"
    );
    let quiet = wait_status(&h, quiet, JobStatus::Succeeded).await;
    assert_eq!(quiet.result, None, "a unit result stores nothing");

    let report = worker.shutdown().await;
    assert_eq!((report.finished_during_grace, report.released), (0, 0));
    assert!(
        h.store.worker_list().await.unwrap().is_empty(),
        "shutdown removes the worker row"
    );
}

async fn handler_error_retries_then_succeeds(h: Harness) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("flaky", move |_ctx, _args: Value| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    // `?` turns any std error into an ordinary, retryable failure.
                    "not a number".parse::<i32>()?;
                }
                Ok(json!({ "calls": n + 1 }))
            }
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let id = insert(&h, job("flaky", json!({}))).await;

    let retrying = wait_queued_after(&h, id, 1).await;
    assert_eq!(
        retrying.last_error.as_deref(),
        Some("invalid digit found in string")
    );
    assert!(retrying.run_at > h.now(), "the retry waits for its backoff");
    match finished(&mut events, id).await {
        JobOutcome::Retrying { delay } => assert!(delay >= Duration::from_secs(4), "{delay:?}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    let ev = h.store.event_list(id).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Error);
    assert_eq!(ev[0].data.as_ref().unwrap()["next"], "retry");

    h.clock.advance(Duration::from_secs(10));
    let done = wait_status(&h, id, JobStatus::Succeeded).await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.result, Some(json!({ "calls": 2 })));
    worker.shutdown().await;
}

async fn retries_exhausted_end_failed(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("doomed", |ctx: JobContext, _args: Value| async move {
            Err::<(), _>(HandlerError::Error {
                message: format!("boom {}", ctx.attempt()),
            })
        })
        .task_options(
            "doomed",
            TaskOptions {
                timeout: None,
                backoff: Some(errand_core::Backoff {
                    base: Duration::from_secs(1),
                    cap: Duration::from_secs(1),
                    jitter: 0.0,
                }),
            },
        )
        .start()
        .await
        .unwrap();
    let mut doomed = job("doomed", json!({}));
    doomed.max_attempts = 2;
    let id = insert(&h, doomed).await;

    let first = wait_queued_after(&h, id, 1).await;
    assert_eq!(
        first.run_at,
        h.now() + chrono::Duration::seconds(1),
        "the task's backoff applies"
    );
    h.clock.advance(Duration::from_secs(2));
    let failed = wait_status(&h, id, JobStatus::Failed).await;
    assert_eq!(failed.attempt, 2);
    assert_eq!(failed.last_error.as_deref(), Some("boom 2"));
    let ev = h.store.event_list(id).await.unwrap();
    assert_eq!(
        ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Error; 2]
    );
    assert_eq!(ev[1].data.as_ref().unwrap()["next"], "failed");
    worker.shutdown().await;
}

async fn permanent_errors_and_undecodable_args_fail_at_once(h: Harness) {
    let worker = pool(&h)
        .queue("default", 2)
        .queue("email", 1)
        .register_kind("strict", |_ctx, _args: Value| async move {
            Err::<(), _>(HandlerError::permanent("bad input"))
        })
        .register(|_ctx, email: SendEmail| async move { Ok(email.to) })
        .start()
        .await
        .unwrap();
    let strict = insert(&h, job("strict", json!({}))).await;
    let mut garbled = job("send_email", json!({ "to": 5, "password": "hunter2" }));
    garbled.queue = "email".into();
    let garbled = insert(&h, garbled).await;

    let j = wait_status(&h, strict, JobStatus::Failed).await;
    assert_eq!((j.attempt, j.last_error.as_deref()), (1, Some("bad input")));
    let j = wait_status(&h, garbled, JobStatus::Failed).await;
    assert_eq!(j.attempt, 1, "a decode failure is permanent");
    let msg = j.last_error.unwrap();
    assert!(
        msg.contains("do not decode as") && msg.contains("SendEmail"),
        "{msg}"
    );
    assert!(
        msg.contains("invalid type: integer `5`, expected a string"),
        "{msg}"
    );
    worker.shutdown().await;
}

async fn panic_is_captured_as_a_failed_attempt(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .register_kind("explosive", |_ctx, _args: Value| async move {
            if true {
                panic!("kaboom");
            }
            Ok(())
        })
        .register_kind("calm", |_ctx, _args: Value| async move { Ok("fine") })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("explosive", json!({}))).await;
    let j = wait_queued_after(&h, id, 1).await;
    assert_eq!(j.last_error.as_deref(), Some("handler panicked: kaboom"));
    // The slot of the panicked job was given back: the next job runs on concurrency 1.
    let calm = insert(&h, job("calm", json!({}))).await;
    assert_eq!(
        wait_status(&h, calm, JobStatus::Succeeded).await.result,
        Some(json!("fine"))
    );
    worker.shutdown().await;
}

async fn job_without_a_handler_fails_the_attempt_naming_the_worker(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .worker_id("worker-without-mystery")
        .register_kind("known", |_ctx, _args: Value| async move { Ok(()) })
        .start()
        .await
        .unwrap();
    let id = insert(&h, job("mystery", json!({}))).await;
    let j = wait_queued_after(&h, id, 1).await;
    assert_eq!(
        j.last_error.as_deref(),
        Some("no handler registered for kind `mystery` on worker worker-without-mystery"),
        "an ordinary error: retried, another deployment may know the kind"
    );
    worker.shutdown().await;
}

async fn timeout_fails_the_attempt(h: Harness) {
    let worker = pool(&h)
        .queue("default", 1)
        .cancel_grace(Duration::from_millis(100))
        .register_kind("slow", |_ctx, _args: Value| async move {
            // Ignores the stop signal: it is aborted after the cancel grace.
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let mut slow = job("slow", json!({}));
    slow.timeout_ms = Some(200);
    let id = insert(&h, slow).await;

    assert!(matches!(
        finished(&mut events, id).await,
        JobOutcome::Retrying { .. }
    ));
    let j = get(&h, id).await;
    assert_eq!((j.status, j.attempt), (JobStatus::Queued, 1));
    let msg = j.last_error.unwrap();
    assert!(msg.starts_with("timed out after 0.2s"), "{msg}");
    assert!(msg.contains("aborted"), "{msg}");
    assert_eq!(event_kinds(&h, id).await, vec![EventKind::Error]);
    worker.shutdown().await;
}

async fn operator_cancel_stops_the_running_handler(h: Harness) {
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = pool(&h)
        .queue("default", 1)
        .lease(Duration::from_secs(3)) // heartbeat, which carries the request, every second
        .register_kind("long", move |ctx: JobContext, _args: Value| {
            let stopped_tx = stopped_tx.clone();
            async move {
                let reason = ctx.cancelled().await;
                stopped_tx.send(reason).unwrap();
                // Returning Ok after a stop request is not taken as success.
                Ok("stopped early")
            }
        })
        .start()
        .await
        .unwrap();
    let mut events = worker.events();
    let id = insert(&h, job("long", json!({}))).await;
    started(&mut events, id).await;

    let outcome = h
        .store
        .job_cancel(&[id], Some("operator says stop"))
        .await
        .unwrap();
    assert_eq!(outcome, vec![CancelOutcome::CancelRequested { id }]);
    let reason = tokio::time::timeout(PATIENCE, stopped_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, StopReason::Cancelled);
    assert_eq!(finished(&mut events, id).await, JobOutcome::Cancelled);
    let j = get(&h, id).await;
    assert_eq!((j.status, j.result), (JobStatus::Cancelled, None));
    let kinds = event_kinds(&h, id).await;
    assert_eq!(
        kinds,
        vec![EventKind::CancelRequested, EventKind::Cancelled]
    );
    worker.shutdown().await;
}

async fn bad_settings_are_rejected_at_start(h: Harness) {
    let err = Worker::builder(h.store.clone()).start().await.unwrap_err();
    assert!(matches!(err, StartError::NoQueues), "{err}");
    let err = Worker::builder(h.store.clone())
        .queue("a", 0)
        .start()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid worker setting `queue`: queue `a` has concurrency 0"
    );
    let err = Worker::builder(h.store.clone())
        .queue("a", 1)
        .register_kind("k", |_c, _a: Value| async move { Ok(()) })
        .register_kind("k", |_c, _a: Value| async move { Ok(()) })
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StartError::DuplicateHandler(ref k) if k == "k"),
        "{err}"
    );
    assert!(
        h.store.worker_list().await.unwrap().is_empty(),
        "nothing registered"
    );
}
