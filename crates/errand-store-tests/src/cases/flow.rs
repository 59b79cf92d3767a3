//! Flow control in the claim (`errand_core::flow`): a queue's global limit, the per-key limit
//! (the job's own, else the queue's, else 1), no head-of-line blocking by a busy key, and the
//! limits holding while many claimers on two stores (two processes' worth of connections)
//! claim at once.

use super::{claim, complete, get, LEASE};
use crate::cases::rescue::rescue_all;
use crate::harness::{new_job, Harness};
use errand_core::{JobInsert, JobStatus, QueueLimits};
use errand_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn keyed(kind: &str, key: &str) -> JobInsert {
    JobInsert {
        concurrency_key: Some(key.into()),
        ..new_job(kind)
    }
}

fn limits(global: Option<i32>, key: Option<i32>) -> QueueLimits {
    QueueLimits {
        global_concurrency: global,
        key_concurrency: key,
        rate_limit: None,
    }
}

async fn take(h: &Harness, queue: &str, n: u32) -> Vec<errand_core::ClaimedJob> {
    h.store.job_claim(&claim(queue, "w", n)).await.unwrap()
}

pub async fn job_claim_global_concurrency_caps_the_queue_until_jobs_end_or_are_rescued(h: Harness) {
    h.store
        .queue_limits_set("default", limits(Some(3), None))
        .await
        .unwrap();
    for _ in 0..10 {
        h.insert(new_job("k")).await;
    }
    let other = JobInsert {
        queue: "other".into(),
        ..new_job("k")
    };
    for _ in 0..5 {
        h.insert(other.clone()).await;
    }
    let first = take(&h, "default", 10).await;
    assert_eq!(first.len(), 3, "three may run at once");
    assert!(
        take(&h, "default", 10).await.is_empty(),
        "the queue is full"
    );
    assert_eq!(
        take(&h, "other", 10).await.len(),
        5,
        "other queues are not limited"
    );

    complete(h.store.as_ref(), &first[..1]).await;
    assert_eq!(take(&h, "default", 10).await.len(), 1, "one slot freed");

    // A dead worker's jobs hold their slots until they are rescued.
    h.clock.advance(LEASE + Duration::from_millis(1));
    assert!(take(&h, "default", 10).await.is_empty());
    rescue_all(&h, "worker gone").await;
    let again = take(&h, "default", 10).await;
    assert_eq!(again.len(), 3, "rescued jobs freed their slots");

    // A pause still holds, and lifting the limit lets the rest go.
    complete(h.store.as_ref(), &again).await;
    h.store.queue_pause("default").await.unwrap();
    assert!(take(&h, "default", 10).await.is_empty(), "paused");
    h.store.queue_resume("default").await.unwrap();
    h.store
        .queue_limits_set("default", QueueLimits::default())
        .await
        .unwrap();
    assert_eq!(
        take(&h, "default", 10).await.len(),
        6,
        "no limit: every ready job"
    );
}

pub async fn job_claim_key_concurrency_runs_one_per_key_and_a_busy_key_blocks_no_other(h: Harness) {
    // A backlog of one key ahead of everything else.
    let big: Vec<_> = (0..200).map(|_| keyed("k", "big")).collect();
    h.store.job_insert_many(&big).await.unwrap();
    let mut others = Vec::new();
    for i in 0..10 {
        others.push(h.insert(keyed("k", &format!("key-{i}"))).await);
    }
    let plain = h.insert(new_job("k")).await;

    let got = take(&h, "default", 100).await;
    let keys: Vec<_> = got
        .iter()
        .map(|j| j.concurrency_key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        got.len(),
        12,
        "one of `big`, each other key, the unkeyed job: {keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| *k == "big").count(), 1);
    for id in others.iter().chain([&plain]) {
        assert!(got.iter().any(|j| j.id == *id), "job {id} started");
    }
    assert!(
        take(&h, "default", 100).await.is_empty(),
        "every key is busy"
    );

    // Its job ending lets the key's next job start, in claim order.
    let first_big = got
        .iter()
        .find(|j| j.concurrency_key.as_deref() == Some("big"))
        .unwrap();
    complete(h.store.as_ref(), std::slice::from_ref(first_big)).await;
    let next = take(&h, "default", 100).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].concurrency_key.as_deref(), Some("big"));
    assert!(next[0].id > first_big.id);
    let waiting = get(&h, next[0].id + 1).await;
    assert_eq!(waiting.status, JobStatus::Queued, "held back, not dropped");
    assert_eq!(waiting.attempt, 0, "waiting spends no attempt");
}

pub async fn job_claim_key_limit_is_the_jobs_then_the_queues_then_one(h: Harness) {
    for _ in 0..5 {
        h.insert(keyed("k", "a")).await;
    }
    assert_eq!(
        take(&h, "default", 10).await.len(),
        1,
        "a key alone: one at a time"
    );

    h.store
        .queue_limits_set("default", limits(None, Some(2)))
        .await
        .unwrap();
    assert_eq!(
        take(&h, "default", 10).await.len(),
        1,
        "the queue's 2, one already runs"
    );

    let own = JobInsert {
        key_concurrency: Some(4),
        ..keyed("k", "b")
    };
    for _ in 0..6 {
        h.insert(own.clone()).await;
    }
    let got = take(&h, "default", 10).await;
    assert_eq!(got.len(), 4, "the job's own limit wins");
    assert!(got
        .iter()
        .all(|j| j.concurrency_key.as_deref() == Some("b")));
    assert_eq!(got[0].key_concurrency, Some(4), "stored with the job");

    // Both limits together: the global limit caps what the keys would allow.
    h.store
        .queue_limits_set("default", limits(Some(7), Some(2)))
        .await
        .unwrap();
    for i in 0..5 {
        h.insert(keyed("k", &format!("c{i}"))).await;
    }
    assert_eq!(
        take(&h, "default", 10).await.len(),
        1,
        "7 minus the 6 running"
    );
}

pub async fn job_claim_limits_hold_with_many_claimers_on_two_stores(h: Harness) {
    const GLOBAL: i64 = 4;
    const JOBS: usize = 600;
    h.store
        .queue_limits_set("default", limits(Some(GLOBAL as i32), Some(1)))
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for i in 0..JOBS {
        jobs.push(if i % 3 == 0 {
            new_job("k")
        } else {
            keyed("k", &format!("key-{}", i % 3))
        });
    }
    h.store.job_insert_many(&jobs).await.unwrap();
    let second = h.open_again().await;

    // What the claimers hold right now: added when a claim returns, removed before the
    // completion is written, so it is never more than the database counts as running.
    #[derive(Default)]
    struct Held {
        total: i64,
        by_key: HashMap<String, i64>,
        most: i64,
    }
    let held = Arc::new(Mutex::new(Held::default()));
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store: Arc<dyn Store> = if w % 2 == 0 {
            h.store.clone()
        } else {
            second.clone()
        };
        let held = held.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("claimer-{w}");
            let mut done = 0;
            let mut idle = 0;
            while idle < 50 {
                let got = store
                    .job_claim(&claim("default", &worker, 3))
                    .await
                    .unwrap();
                if got.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                idle = 0;
                {
                    let mut s = held.lock().unwrap();
                    s.total += got.len() as i64;
                    s.most = s.most.max(s.total);
                    assert!(s.total <= GLOBAL, "{} jobs held, limit {GLOBAL}", s.total);
                    for j in &got {
                        if let Some(k) = &j.concurrency_key {
                            let n = s.by_key.entry(k.clone()).or_default();
                            *n += 1;
                            assert!(*n <= 1, "key {k} held twice");
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                {
                    let mut s = held.lock().unwrap();
                    s.total -= got.len() as i64;
                    for j in &got {
                        if let Some(k) = &j.concurrency_key {
                            *s.by_key.get_mut(k).unwrap() -= 1;
                        }
                    }
                }
                complete(store.as_ref(), &got).await;
                done += got.len();
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, JOBS, "every job ran once");
    let most = held.lock().unwrap().most;
    assert!(
        most >= 2,
        "the claimers overlapped (at most {most} held at once)"
    );
    let stats = h.store.queue_stats().await.unwrap();
    let d = stats.iter().find(|s| s.queue == "default").unwrap();
    assert_eq!((d.succeeded, d.queued, d.running), (JOBS as u64, 0, 0));
}

pub async fn job_claim_rate_limit_counts_starts_in_a_sliding_window(h: Harness) {
    let rate = QueueLimits {
        rate_limit: Some("5/1s".parse().unwrap()),
        ..QueueLimits::default()
    };
    h.store.queue_limits_set("default", rate).await.unwrap();
    let batch: Vec<_> = (0..30).map(|_| new_job("k")).collect();
    h.store.job_insert_many(&batch).await.unwrap();

    let first = take(&h, "default", 2).await;
    assert_eq!(first.len(), 2);
    h.clock.advance(Duration::from_millis(500));
    let second = take(&h, "default", 30).await;
    assert_eq!(second.len(), 3, "five starts per second");
    // Starts count, not running jobs: finishing them frees nothing.
    complete(h.store.as_ref(), &first).await;
    complete(h.store.as_ref(), &second).await;
    assert!(take(&h, "default", 30).await.is_empty());
    let held = get(&h, second[2].id + 1).await;
    assert_eq!(
        (held.status, held.attempt),
        (JobStatus::Queued, 0),
        "waits unspent"
    );

    // 1.1 s after the first two: they left the window, the three of 0.5 s have not. A
    // calendar window would have reset at 1 s and allowed five.
    h.clock.advance(Duration::from_millis(600));
    assert_eq!(take(&h, "default", 30).await.len(), 2, "a sliding window");
    h.clock.advance(Duration::from_millis(500));
    assert_eq!(take(&h, "default", 30).await.len(), 3);

    // Listed in its one form, and lifted.
    let listed = h.store.queue_list().await.unwrap();
    let q = listed.iter().find(|q| q.name == "default").unwrap();
    assert_eq!(
        q.limits.rate_limit.map(|r| r.to_string()).as_deref(),
        Some("5/1s")
    );
    h.store
        .queue_limits_set("default", QueueLimits::default())
        .await
        .unwrap();
    assert_eq!(take(&h, "default", 30).await.len(), 30 - 10);
}

pub async fn queue_limits_set_is_listed_and_replaced(h: Harness) {
    h.store
        .queue_limits_set("email", limits(Some(2), Some(1)))
        .await
        .unwrap();
    let listed = h.store.queue_list().await.unwrap();
    let email = listed.iter().find(|q| q.name == "email").expect("a row");
    assert_eq!(email.limits, limits(Some(2), Some(1)));
    assert!(!email.paused);
    h.store.queue_pause("email").await.unwrap();
    h.store
        .queue_limits_set("email", limits(None, Some(3)))
        .await
        .unwrap();
    let listed = h.store.queue_list().await.unwrap();
    let email = listed.iter().find(|q| q.name == "email").unwrap();
    assert_eq!(email.limits, limits(None, Some(3)), "both replaced");
    assert!(email.paused, "the pause is kept");
}
