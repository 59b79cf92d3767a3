//! The client API on both backends: typed enqueue, bad input, reference lookup, bulk
//! operator actions, and (PostgreSQL) enqueue inside the caller's transaction.

use errand::{Client, Error, Job, JobList, JobStatus, Limits, NewJob, Task};
use errand_store_tests::{run, Harness, TestBackend};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(
    typed_enqueue_applies_every_builder_option,
    unique_enqueue_reports_existing_job,
    bad_input_is_rejected_by_name_and_writes_nothing,
    oversized_args_are_rejected_with_sizes,
    find_by_reference_returns_the_entitys_jobs,
    purge_and_rescue_report_progress_and_counts,
);

#[derive(Debug, Serialize, Deserialize)]
struct IngestFile {
    path: String,
}

impl Task for IngestFile {
    const KIND: &'static str = "file_ingestion";
    const QUEUE: &'static str = "ingest";
    const MAX_ATTEMPTS: i32 = 6;
}

#[derive(Debug, Serialize, Deserialize)]
struct NotAnObject(u32, u32);

impl Task for NotAnObject {
    const KIND: &'static str = "tuple";
}

fn client(h: &Harness) -> Client {
    Client::from_store(h.store.clone())
}

async fn count_jobs(c: &Client) -> usize {
    c.list(&JobList {
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .jobs
    .len()
}

async fn typed_enqueue_applies_every_builder_option(h: Harness) {
    let c = client(&h);
    let r = c
        .enqueue(IngestFile {
            path: "/up/a.pdf".into(),
        })
        .priority(3)
        .delay(Duration::from_secs(90))
        .unique_key("ingest:a")
        .reference("file_upload", 42)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert!(r.inserted);
    let j: Job = c.job(r.id).await.unwrap().unwrap();
    assert_eq!(j.kind, "file_ingestion");
    assert_eq!(j.queue, "ingest", "the task's queue is the default");
    assert_eq!(j.max_attempts, 6, "the task's max_attempts is the default");
    assert_eq!(j.args, json!({"path": "/up/a.pdf"}));
    assert_eq!(j.priority, 3);
    assert_eq!(j.run_at, h.now() + chrono::Duration::seconds(90));
    assert_eq!(j.unique_key.as_deref(), Some("ingest:a"));
    assert_eq!(
        (j.reference_type.as_deref(), j.reference_id.as_deref()),
        (Some("file_upload"), Some("42"))
    );
    assert_eq!(j.timeout_ms, Some(120_000));
    let args: IngestFile = j.args.decode().unwrap();
    assert_eq!(args.path, "/up/a.pdf");
    let other = c
        .enqueue(IngestFile { path: "b".into() })
        .queue("bulk")
        .max_attempts(1)
        .run_at(h.now() + chrono::Duration::hours(1))
        .send()
        .await
        .unwrap();
    let o = c.job(other.id).await.unwrap().unwrap();
    assert_eq!((o.queue.as_str(), o.max_attempts), ("bulk", 1));
    assert_eq!(o.run_at, h.now() + chrono::Duration::hours(1));
}

async fn unique_enqueue_reports_existing_job(h: Harness) {
    let c = client(&h);
    let first = c
        .enqueue_kind("regen", json!({}))
        .unique_key("nightly")
        .send()
        .await
        .unwrap();
    let second = c
        .enqueue_kind("regen", json!({}))
        .unique_key("nightly")
        .send()
        .await
        .unwrap();
    assert!(first.inserted);
    assert!(!second.inserted);
    assert_eq!(first.id, second.id);
}

async fn bad_input_is_rejected_by_name_and_writes_nothing(h: Harness) {
    let c = client(&h);
    let cases: Vec<(NewJob, &str, &str)> = vec![
        (NewJob::new("", json!({})), "kind", "must not be empty"),
        (
            NewJob::new("k", json!([1, 2])),
            "args",
            "must be a JSON object, got an array",
        ),
        (NewJob::new("k", json!("text")), "args", "got a string"),
        (
            NewJob {
                delay_ms: Some(-1000),
                ..NewJob::new("k", json!({}))
            },
            "delay_ms",
            "must not be negative, got -1000",
        ),
        (
            NewJob {
                max_attempts: Some(0),
                ..NewJob::new("k", json!({}))
            },
            "max_attempts",
            "at least 1",
        ),
        (
            NewJob {
                queue: Some("".into()),
                ..NewJob::new("k", json!({}))
            },
            "queue",
            "must not be empty",
        ),
    ];
    for (bad, field, problem) in cases {
        // A good job first, then the bad one: the batch is all or nothing.
        let err = c
            .enqueue_many(&[NewJob::new("good", json!({})), bad])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::InvalidInBatch { index: 1, source } if source.field == field),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("`{field}`")) && msg.contains(problem),
            "{msg}"
        );
        assert_eq!(count_jobs(&c).await, 0, "nothing written after: {msg}");
    }
    // The typed path names the problem too.
    let err = c.enqueue(NotAnObject(1, 2)).send().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("`args` must be a JSON object, got an array"),
        "{err}"
    );
    let err = c
        .enqueue_kind("k", json!({}))
        .reference("user", "")
        .send()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reference_id"), "{err}");
    assert_eq!(count_jobs(&c).await, 0);
    // And an empty batch is simply empty.
    assert!(c.enqueue_many(&[]).await.unwrap().is_empty());
}

async fn oversized_args_are_rejected_with_sizes(h: Harness) {
    let c = client(&h);
    let big = "x".repeat(1024 * 1024);
    let err = c
        .enqueue_kind("k", json!({"blob": big}))
        .send()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`args` is 1048587 bytes, over the limit of 1048576 bytes"),
        "{msg}"
    );
    let small = Client::from_store(h.store.clone()).with_limits(Limits { max_args_bytes: 64 });
    let err = small
        .enqueue_kind("k", json!({"blob": "y".repeat(100)}))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 64 bytes"),
        "{err}"
    );
    assert_eq!(count_jobs(&c).await, 0);
}

async fn find_by_reference_returns_the_entitys_jobs(h: Harness) {
    let c = client(&h);
    let a = c
        .enqueue_kind("file_ingestion", json!({}))
        .reference("file_upload", 7)
        .send()
        .await
        .unwrap();
    let b = c
        .enqueue_kind("embedding_generation", json!({}))
        .reference("file_upload", 7)
        .send()
        .await
        .unwrap();
    c.enqueue_kind("file_ingestion", json!({}))
        .reference("file_upload", 8)
        .send()
        .await
        .unwrap();
    c.enqueue_kind("file_ingestion", json!({}))
        .reference("user", 7)
        .send()
        .await
        .unwrap();
    let jobs = c.find_by_reference("file_upload", "7").await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![b.id, a.id]
    );
}

async fn purge_and_rescue_report_progress_and_counts(h: Harness) {
    let c = client(&h);
    let store = h.store.clone();
    for _ in 0..3 {
        c.enqueue_kind("k", json!({})).send().await.unwrap();
    }
    let claim = errand_store::JobClaim {
        queue: "default".into(),
        worker_id: "gone".into(),
        limit: 10,
        lease: Duration::from_secs(30),
    };
    let jobs = store.job_claim(&claim).await.unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(c.rescue_stuck().await.unwrap(), 0, "leases still alive");
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(c.stuck(10).await.unwrap().len(), 3);
    assert_eq!(c.rescue_stuck().await.unwrap(), 3);
    let back = c.job(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(back.status, JobStatus::Queued);
    // Cancel them all, then purge what finished more than a day ago.
    c.cancel(&jobs.iter().map(|j| j.id).collect::<Vec<_>>(), Some("test"))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(2 * 86_400));
    let mut seen = Vec::new();
    let purged = c
        .purge(h.now() - chrono::Duration::days(1), false, |n| seen.push(n))
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(seen, vec![3]);
    assert_eq!(count_jobs(&c).await, 0);
}

// ---- PostgreSQL: enqueue inside the caller's transaction --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_send_in_commits_and_rolls_back_with_the_callers_transaction() {
    run(TestBackend::Postgres, |h: Harness| async move {
        let c = client(&h);
        let pool = h.pg.as_ref().unwrap().pool().clone();

        let mut tx = pool.begin().await.unwrap();
        let rolled = c
            .enqueue_kind("send_receipt", json!({"order": 1}))
            .send_in(&mut tx)
            .await
            .unwrap();
        assert!(rolled.inserted);
        // Not visible outside the transaction before it commits.
        assert!(c.job(rolled.id).await.unwrap().is_none());
        tx.rollback().await.unwrap();
        assert!(
            c.job(rolled.id).await.unwrap().is_none(),
            "rolled back: no job"
        );
        assert_eq!(count_jobs(&c).await, 0);

        let mut tx = pool.begin().await.unwrap();
        let kept = c
            .enqueue_kind("send_receipt", json!({"order": 2}))
            .send_in(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let j = c
            .job(kept.id)
            .await
            .unwrap()
            .expect("committed: job exists");
        assert_eq!(j.args, json!({"order": 2}));

        // Bad input inside a transaction fails before touching it.
        let mut tx = pool.begin().await.unwrap();
        let err = c
            .enqueue_kind("", json!({}))
            .send_in(&mut tx)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("`kind` must not be empty"),
            "{err}"
        );
        tx.commit().await.unwrap();
        assert_eq!(count_jobs(&c).await, 1);
    })
    .await;
}
