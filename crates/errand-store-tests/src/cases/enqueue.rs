//! Schema and enqueue: `migrate`/`migration_status`, and `job_insert_many` (every field stored,
//! input order, batches with and without unique keys and mixing both, unique keys within a
//! batch, across batches and under concurrency, delays).

use super::{chrono, claim_one, fence, get};
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

/// A batch without unique keys whose columns differ from job to job (and one whose columns
/// are all alike): every job gets its own fields, and the ids come back in input order.
pub async fn job_insert_many_without_keys_keeps_each_jobs_fields(h: Harness) {
    let now = h.now();
    let jobs: Vec<_> = (0..30_i32)
        .map(|i| {
            let mut j = new_job(if i % 2 == 0 { "even" } else { "odd" });
            j.args = json!({"i": i}).into();
            j.queue = format!("q{}", i % 3);
            j.priority = i % 4;
            j.max_attempts = 1 + i % 5;
            j.run_at = match i % 3 {
                0 => RunAt::Now,
                1 => RunAt::After(Duration::from_secs(u64::try_from(i).unwrap())),
                _ => RunAt::At(now + ChronoDuration::minutes(i.into())),
            };
            if i % 4 == 1 {
                j.reference_type = Some("order".into());
                j.reference_id = Some(format!("o{i}"));
            }
            j.timeout_ms = (i % 2 == 1).then(|| 1000 + i64::from(i));
            j
        })
        .collect();
    let out = h.store.job_insert_many(&jobs).await.unwrap();
    assert_eq!(out.len(), jobs.len());
    for (e, want) in out.iter().zip(&jobs) {
        assert!(e.inserted);
        let got = get(&h, e.id).await;
        assert_eq!(
            got.args,
            serde_json::from_str::<serde_json::Value>(want.args.as_raw().get()).unwrap()
        );
        assert_eq!(got.kind, want.kind);
        assert_eq!(got.queue, want.queue);
        assert_eq!(got.priority, want.priority);
        assert_eq!(got.max_attempts, want.max_attempts);
        assert_eq!(got.reference_type, want.reference_type);
        assert_eq!(got.reference_id, want.reference_id);
        assert_eq!(got.timeout_ms, want.timeout_ms);
        let run_at = match want.run_at {
            RunAt::Now => now,
            RunAt::After(d) => now + chrono(d),
            RunAt::At(t) => t,
        };
        assert_eq!(got.run_at, run_at, "run_at of {}", got.args);
        assert_eq!(got.created_at, now);
    }
    assert!(
        out.windows(2).all(|w| w[0].id < w[1].id),
        "ids in input order"
    );

    // All alike: each column is one value for the whole batch.
    let mut same = new_job("same");
    same.queue = "bulk".into();
    same.priority = 3;
    same.timeout_ms = Some(250);
    same.reference_type = Some("import".into());
    same.reference_id = Some("7".into());
    let out = h
        .store
        .job_insert_many(&vec![same.clone(); 5])
        .await
        .unwrap();
    for e in &out {
        let got = get(&h, e.id).await;
        assert_eq!(
            (got.queue.as_str(), got.priority, got.timeout_ms),
            ("bulk", 3, Some(250))
        );
        assert_eq!(got.reference_id.as_deref(), Some("7"));
    }
    assert!(
        out.windows(2).all(|w| w[0].id < w[1].id),
        "ids in input order"
    );
}

/// A batch mixing keyed and unkeyed inputs: each input gets its own new job, the live job
/// holding its key (an earlier batch's, or an earlier input's of the same batch), in input
/// order.
pub async fn job_insert_many_mixing_keyed_and_unkeyed_inputs(h: Harness) {
    let keyed = |kind: &str, key: &str| {
        let mut j = new_job(kind);
        j.unique_key = Some(key.into());
        j
    };
    let held = h
        .store
        .job_insert_many(&[keyed("first", "held")])
        .await
        .unwrap()[0];
    let batch = vec![
        new_job("plain-a"),
        keyed("second", "held"),
        keyed("new", "fresh"),
        new_job("plain-b"),
        keyed("again", "fresh"),
        new_job("plain-c"),
    ];
    let out = h.store.job_insert_many(&batch).await.unwrap();
    let inserted: Vec<bool> = out.iter().map(|e| e.inserted).collect();
    assert_eq!(inserted, [true, false, true, true, false, true]);
    assert_eq!(out[1].id, held.id, "the live job holding the key");
    assert_eq!(
        out[4].id, out[2].id,
        "the earlier input with the same key wins"
    );
    for (i, kind) in [(0, "plain-a"), (2, "new"), (3, "plain-b"), (5, "plain-c")] {
        assert_eq!(get(&h, out[i].id).await.kind, kind, "entry {i}");
    }
    let new_ids = [out[0].id, out[2].id, out[3].id, out[5].id];
    assert!(
        new_ids.windows(2).all(|w| w[0] < w[1]),
        "new ids in input order"
    );
    let page = h.store.job_list(&JobList::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 5, "one job per key and three plain jobs");
}

/// Concurrent batches whose unique keys overlap (in different orders, beside unkeyed jobs):
/// one live job per key, and every input with that key is given its id.
pub async fn job_insert_many_concurrent_batches_with_overlapping_keys(h: Harness) {
    const KEYS: usize = 12;
    let mut tasks = Vec::new();
    for caller in 0..8_usize {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::new();
            for n in 0..KEYS {
                // Each caller walks the keys from a different start.
                let k = (n + caller * 5) % KEYS;
                let mut j = new_job("keyed");
                j.args = json!({"caller": caller, "key": k}).into();
                j.unique_key = Some(format!("k{k}"));
                batch.push(j);
                if n % 3 == 0 {
                    batch.push(new_job("plain"));
                }
            }
            let out = store.job_insert_many(&batch).await.unwrap();
            batch
                .into_iter()
                .zip(out)
                .map(|(j, e)| (j.unique_key, e))
                .collect::<Vec<_>>()
        }));
    }
    let mut per_key: std::collections::HashMap<String, Vec<(i64, bool)>> = Default::default();
    let mut plain = 0;
    for t in tasks {
        for (key, e) in t.await.unwrap() {
            match key {
                Some(k) => per_key.entry(k).or_default().push((e.id, e.inserted)),
                None => {
                    assert!(e.inserted);
                    plain += 1;
                }
            }
        }
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, got) in &per_key {
        let id = got[0].0;
        assert!(
            got.iter().all(|g| g.0 == id),
            "{key}: one job for every input"
        );
        assert_eq!(
            got.iter().filter(|g| g.1).count(),
            1,
            "{key}: inserted by exactly one input"
        );
        let job = get(&h, id).await;
        assert_eq!(job.unique_key.as_deref(), Some(key.as_str()));
    }
    let page = h
        .store
        .job_list(&JobList {
            limit: 1000,
            ..JobList::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), KEYS + plain);
}
