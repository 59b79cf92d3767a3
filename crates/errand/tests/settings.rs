//! Task settings reach every job, whichever library path made it: a typed enqueue, a raw
//! enqueue, a batch, a schedule's fire and a trigger, on both backends. Unknown kinds are
//! refused on each path when the catalog declares tasks.

use chrono::{DateTime, Utc};
use errand::scheduler::{run_pass, SchedulerOptions};
use errand::{Client, Error, NewJob, Rejection, ScheduleSpec, Task, TaskCatalog, TaskSettings};
use errand_store_tests::Harness;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

errand_store_tests::both_backends!(
    every_enqueue_path_takes_the_task_settings,
    schedule_fires_and_triggers_take_the_task_settings,
    unknown_kinds_are_refused_on_every_path,
);

#[derive(Debug, Serialize, Deserialize)]
struct Reindex {
    id: i64,
}

impl Task for Reindex {
    const KIND: &'static str = "reindex";
    const QUEUE: &'static str = "typed-queue";
    const MAX_ATTEMPTS: i32 = 2;
}

fn catalog() -> TaskCatalog {
    let mut tasks = TaskCatalog::new();
    tasks.insert(
        "reindex",
        TaskSettings {
            queue: Some("search".into()),
            max_attempts: Some(11),
            priority: Some(5),
            timeout: Some(Duration::from_secs(45)),
            ..TaskSettings::default()
        },
    );
    tasks.insert(
        "nightly_report",
        TaskSettings {
            queue: Some("reports".into()),
            ..TaskSettings::default()
        },
    );
    tasks
}

fn client(h: &Harness) -> Client {
    h.clock
        .set("2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
    Client::from_store(h.store.clone())
        .with_clock(Arc::new(h.clock.clone()))
        .with_tasks(catalog())
}

async fn every_enqueue_path_takes_the_task_settings(h: Harness) {
    let c = client(&h);
    let typed = c.enqueue(Reindex { id: 1 }).send().await.unwrap();
    let raw = c
        .enqueue_kind("reindex", json!({"id": 2}))
        .send()
        .await
        .unwrap();
    let batch = c
        .enqueue_many(&[NewJob::new("reindex", json!({"id": 3}))])
        .await
        .unwrap();
    for id in [typed.id, raw.id, batch[0].id] {
        let j = c.job(id).await.unwrap().unwrap();
        assert_eq!(
            (j.queue.as_str(), j.max_attempts, j.priority, j.timeout_ms),
            ("search", 11, 5, Some(45_000)),
            "job {id}: the configured settings beat the typed constants"
        );
    }
    // The caller's own values win over the settings.
    let own = c
        .enqueue(Reindex { id: 4 })
        .queue("urgent")
        .max_attempts(1)
        .send()
        .await
        .unwrap();
    let j = c.job(own.id).await.unwrap().unwrap();
    assert_eq!((j.queue.as_str(), j.max_attempts), ("urgent", 1));
    // Without settings, the typed constants apply.
    let plain = Client::from_store(h.store.clone());
    let j = plain.enqueue(Reindex { id: 5 }).send().await.unwrap();
    let j = plain.job(j.id).await.unwrap().unwrap();
    assert_eq!((j.queue.as_str(), j.max_attempts), ("typed-queue", 2));
}

async fn schedule_fires_and_triggers_take_the_task_settings(h: Harness) {
    let c = client(&h);
    let spec = ScheduleSpec {
        every: Some("1m".into()),
        kind: "nightly_report".into(),
        args: json!({}),
        coalesce: true,
        ..Default::default()
    };
    c.schedule_create("report", &spec).await.unwrap();
    h.clock.advance(Duration::from_secs(61));
    let options = SchedulerOptions {
        tasks: c.tasks().clone(),
        ..SchedulerOptions::default()
    };
    let report = run_pass(h.store.as_ref(), &options).await.unwrap();
    assert_eq!(report.enqueued, 1);
    let fired = c.list(&errand::JobList::default()).await.unwrap().jobs;
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0].queue, "reports",
        "the fire's job takes the task's queue"
    );
    // The fire's job is still queued: force the trigger past the overlap policy.
    let errand::Triggered::Enqueued(triggered) = c.schedule_trigger("report", true).await.unwrap()
    else {
        panic!("a forced trigger enqueues");
    };
    assert_eq!(c.job(triggered.id).await.unwrap().unwrap().queue, "reports");
}

async fn unknown_kinds_are_refused_on_every_path(h: Harness) {
    let c = client(&h);
    let unknown = |e: Error| match e {
        Error::Invalid(v) => {
            assert_eq!((v.field, v.rejection), ("kind", Rejection::UnknownKind));
            assert!(
                v.problem.contains("did you mean `reindex`?"),
                "{}",
                v.problem
            );
        }
        Error::InvalidInBatch { index, source } => {
            assert_eq!((index, source.rejection), (1, Rejection::UnknownKind));
        }
        other => panic!("expected an unknown kind, got {other:?}"),
    };
    unknown(
        c.enqueue_kind("reindx", json!({}))
            .send()
            .await
            .unwrap_err(),
    );
    unknown(
        c.enqueue_many(&[
            NewJob::new("reindex", json!({})),
            NewJob::new("nope", json!({})),
        ])
        .await
        .unwrap_err(),
    );
    assert!(c
        .list(&errand::JobList::default())
        .await
        .unwrap()
        .jobs
        .is_empty());
}
