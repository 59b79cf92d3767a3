//! Schema and enqueue: `migrate`/`migration_status`, and `job_insert_many` (every field stored,
//! input order, unique keys within a batch, across batches and under concurrency, delays).

use super::{claim_one, fence, get};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{JobStatus, RunAt};
use errand_store::{Ack, JobComplete, JobList};
use serde_json::json;
use std::time::Duration;

pub async fn migrate_is_idempotent_and_reports_version(h: Harness) {
    let first = h.store.migration_status().await.unwrap();
    assert_eq!(first.current_version, first.latest_version);
    assert!(first.current_version >= 1);
    assert!(first.pending.is_empty());
    assert_eq!(first.applied[0].version, 1);
    let again = h.store.migrate().await.unwrap();
    assert_eq!(again.current_version, first.current_version);
    assert_eq!(again.applied.len(), first.applied.len());
}

// ---- enqueue ----------------------------------------------------------------------------

pub async fn job_insert_stores_every_field(h: Harness) {
    let now = h.now();
    let mut job = new_job("send_email");
    job.queue = "email".into();
    job.args = json!({"to": "a@example.com", "n": 3}).into();
    job.priority = 7;
    job.max_attempts = 9;
    job.unique_key = Some("welcome:42".into());
    job.reference_type = Some("user".into());
    job.reference_id = Some("42".into());
    job.timeout_ms = Some(1500);
    let id = h.insert(job).await;
    let j = get(&h, id).await;
    assert_eq!(j.id, id);
    assert_eq!(j.queue, "email");
    assert_eq!(j.kind, "send_email");
    assert_eq!(j.args, json!({"to": "a@example.com", "n": 3}));
    assert_eq!(j.status, JobStatus::Queued);
    assert_eq!(j.priority, 7);
    assert_eq!(j.run_at, now);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.max_attempts, 9);
    assert_eq!(j.unique_key.as_deref(), Some("welcome:42"));
    assert_eq!(j.reference_type.as_deref(), Some("user"));
    assert_eq!(j.reference_id.as_deref(), Some("42"));
    assert_eq!(j.timeout_ms, Some(1500));
    assert_eq!(j.created_at, now);
    assert_eq!(j.updated_at, now);
    assert_eq!(j.result, None);
    assert_eq!(j.last_error, None);
    assert_eq!(j.worker_id, None);
    assert_eq!(j.lease_expires_at, None);
    assert_eq!(j.started_at, None);
    assert_eq!(j.finished_at, None);
}

pub async fn job_insert_many_returns_ids_in_input_order(h: Harness) {
    let jobs: Vec<_> = (0..50)
        .map(|i| {
            let mut j = new_job("batch");
            j.args = json!({"i": i}).into();
            if i % 10 == 0 {
                j.unique_key = Some(format!("k{i}"));
            }
            j
        })
        .collect();
    let out = h.store.job_insert_many(&jobs).await.unwrap();
    assert_eq!(out.len(), 50);
    for (i, e) in out.iter().enumerate() {
        assert!(e.inserted);
        assert_eq!(
            get(&h, e.id).await.args,
            json!({"i": i}),
            "entry {i} maps to its job"
        );
    }
    let mut ids: Vec<_> = out.iter().map(|e| e.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in input order"
    );
}

pub async fn job_insert_many_dedups_unique_keys_within_and_across_batches(h: Harness) {
    let mut a = new_job("u");
    a.unique_key = Some("same".into());
    let b = new_job("plain");
    let out = h
        .store
        .job_insert_many(&[a.clone(), b, a.clone()])
        .await
        .unwrap();
    assert!(out[0].inserted && out[1].inserted);
    assert!(!out[2].inserted);
    assert_eq!(out[2].id, out[0].id);
    let again = h.store.job_insert_many(&[a]).await.unwrap();
    assert_eq!(again[0].id, out[0].id);
    assert!(!again[0].inserted);
    let page = h.store.job_list(&JobList::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 2, "one unique job and one plain job");
}

pub async fn job_insert_unique_key_is_free_again_once_finished(h: Harness) {
    let mut a = new_job("u");
    a.unique_key = Some("nightly".into());
    let first = h.store.job_insert_many(&[a.clone()]).await.unwrap()[0];
    // Still live while running.
    let j = claim_one(&h, "w1").await;
    let dup = h.store.job_insert_many(&[a.clone()]).await.unwrap()[0];
    assert_eq!((dup.id, dup.inserted), (first.id, false));
    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&j),
            result: None,
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Done]);
    let next = h.store.job_insert_many(&[a]).await.unwrap()[0];
    assert!(next.inserted);
    assert_ne!(next.id, first.id);
}

pub async fn job_insert_concurrent_unique_key_gives_one_job(h: Harness) {
    let store = h.store.clone();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut j = new_job("report");
            j.args = json!({"caller": i}).into();
            j.unique_key = Some("report:2026-11-23".into());
            store.job_insert_many(&[j]).await.unwrap()[0]
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let inserted = results.iter().filter(|r| r.inserted).count();
    assert_eq!(inserted, 1, "exactly one caller inserted");
    let id = results[0].id;
    assert!(
        results.iter().all(|r| r.id == id),
        "everyone got the same job"
    );
    let page = h.store.job_list(&JobList::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
}

pub async fn job_insert_delayed_and_absolute_run_at(h: Harness) {
    let now = h.now();
    let mut delayed = new_job("d");
    delayed.run_at = RunAt::After(Duration::from_millis(90_500));
    let mut at = new_job("a");
    at.run_at = RunAt::At(now + ChronoDuration::hours(2));
    let ids = h.store.job_insert_many(&[delayed, at]).await.unwrap();
    assert_eq!(
        get(&h, ids[0].id).await.run_at,
        now + ChronoDuration::milliseconds(90_500)
    );
    assert_eq!(
        get(&h, ids[1].id).await.run_at,
        now + ChronoDuration::hours(2)
    );
}
