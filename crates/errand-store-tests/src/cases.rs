//! The cases of the behaviour suite. Each takes a fresh [`Harness`] and panics on failure.
//! Named after the store operation they exercise (`job_claim_*`, `queue_pause_*`), so one grep
//! finds an operation's trait method, its SQL in each backend and its tests.

use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{
    decide_failure, decide_rescue, Backoff, EventKind, FailAction, Fence, HandlerError, Job,
    JobStatus, NewEvent, RescueAction, RunAt,
};
use errand_store::{
    Ack, CancelOutcome, FinishedStats, JobClaim, JobComplete, JobFail, JobFinishedStats,
    JobHeartbeat, JobList, JobPage, JobPurge, JobRescue, JobThroughput, JobsReady, RetryFailed,
    RetryOutcome, StateFilter, Store, StoreError, ThroughputBucket, WorkerQueue,
    WorkerRegistration,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn claim(queue: &str, worker: &str, limit: u32) -> JobClaim {
    JobClaim {
        queue: queue.into(),
        worker_id: worker.into(),
        limit,
        lease: LEASE,
    }
}

async fn claim_one(h: &Harness, worker: &str) -> Job {
    let mut jobs = h
        .store
        .job_claim(&claim("default", worker, 1))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "expected one job to claim");
    jobs.remove(0)
}

async fn get(h: &Harness, id: i64) -> Job {
    h.store.job_get(id).await.unwrap().expect("job exists")
}

fn fence(job: &Job) -> Fence {
    job.fence().expect("running job has a worker")
}

fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap()
}

// ---- schema -----------------------------------------------------------------------------

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
    job.args = json!({"to": "a@example.com", "n": 3});
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
            j.args = json!({"i": i});
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
            j.args = json!({"caller": i});
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

// ---- claim ------------------------------------------------------------------------------

pub async fn job_claim_sets_running_attempt_and_lease(h: Harness) {
    let now = h.now();
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "worker-a").await;
    assert_eq!(j.id, id);
    assert_eq!(j.status, JobStatus::Running);
    assert_eq!(j.attempt, 1);
    assert_eq!(j.worker_id.as_deref(), Some("worker-a"));
    assert_eq!(j.started_at, Some(now));
    assert_eq!(j.lease_expires_at, Some(now + chrono(LEASE)));
    assert_eq!(get(&h, id).await, j, "the claimed row is what is stored");
    let none = h
        .store
        .job_claim(&claim("default", "worker-b", 10))
        .await
        .unwrap();
    assert!(none.is_empty(), "a running job is not claimed twice");
}

pub async fn job_claim_orders_by_priority_then_run_at_then_id(h: Harness) {
    let now = h.now();
    let mk = |p: i32, back_secs: i64, tag: &str| {
        let mut j = new_job("order");
        j.priority = p;
        j.run_at = RunAt::At(now - ChronoDuration::seconds(back_secs));
        j.args = json!({"tag": tag});
        j
    };
    let batch = vec![
        mk(0, 10, "p0-old"),
        mk(5, 1, "p5-new"),
        mk(0, 10, "p0-old-later-id"),
        mk(-3, 100, "neg"),
        mk(5, 5, "p5-old"),
        mk(0, 20, "p0-oldest"),
    ];
    h.store.job_insert_many(&batch).await.unwrap();
    let mut order = Vec::new();
    // Claim in batches of 2 to check the order holds across calls and within one batch.
    loop {
        let jobs = h.store.job_claim(&claim("default", "w", 2)).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        order.extend(
            jobs.into_iter()
                .map(|j| j.args["tag"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(
        order,
        vec![
            "p5-old",
            "p5-new",
            "p0-oldest",
            "p0-old",
            "p0-old-later-id",
            "neg"
        ]
    );
}

pub async fn job_claim_skips_delayed_jobs_until_run_at(h: Harness) {
    let mut j = new_job("later");
    j.run_at = RunAt::After(Duration::from_secs(60));
    let id = h.insert(j).await;
    assert!(h
        .store
        .job_claim(&claim("default", "w", 10))
        .await
        .unwrap()
        .is_empty());
    h.clock.advance(Duration::from_millis(59_999));
    assert!(h
        .store
        .job_claim(&claim("default", "w", 10))
        .await
        .unwrap()
        .is_empty());
    h.clock.advance(Duration::from_millis(1));
    let got = h.store.job_claim(&claim("default", "w", 10)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
}

pub async fn job_claim_only_takes_its_queue(h: Harness) {
    let mut e = new_job("mail");
    e.queue = "email".into();
    let email_id = h.insert(e).await;
    h.insert(new_job("other")).await;
    let got = h.store.job_claim(&claim("email", "w", 10)).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![email_id]);
    assert!(h
        .store
        .job_claim(&claim("nope", "w", 10))
        .await
        .unwrap()
        .is_empty());
}

pub async fn queue_pause_stops_claims_until_resumed(h: Harness) {
    let id = h.insert(new_job("k")).await;
    h.store.queue_pause("default").await.unwrap();
    h.store.queue_pause("default").await.unwrap(); // idempotent
    assert!(h
        .store
        .job_claim(&claim("default", "w", 10))
        .await
        .unwrap()
        .is_empty());
    let queues = h.store.queue_list().await.unwrap();
    assert_eq!(queues.len(), 1);
    assert!(queues[0].paused && queues[0].paused_at.is_some());
    let stats = h.store.queue_stats().await.unwrap();
    assert!(stats.iter().find(|s| s.queue == "default").unwrap().paused);
    h.store.queue_resume("default").await.unwrap();
    assert!(!h.store.queue_list().await.unwrap()[0].paused);
    let got = h.store.job_claim(&claim("default", "w", 10)).await.unwrap();
    assert_eq!(got[0].id, id);
    // Pausing a queue that has no jobs yet is allowed and shows in the stats.
    h.store.queue_pause("empty").await.unwrap();
    let stats = h.store.queue_stats().await.unwrap();
    let empty = stats
        .iter()
        .find(|s| s.queue == "empty")
        .expect("paused empty queue listed");
    assert!(empty.paused);
    assert_eq!(empty.queued, 0);
}

pub async fn job_claim_concurrent_claimers_take_each_job_exactly_once(h: Harness) {
    const JOBS: usize = 10_000;
    const CLAIMERS: usize = 8;
    let batch: Vec<_> = (0..JOBS).map(|_| new_job("drain")).collect();
    for chunk in batch.chunks(1000) {
        h.store.job_insert_many(chunk).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..CLAIMERS {
        let store: Arc<dyn Store> = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("claimer-{w}");
            let mut seen = Vec::new();
            loop {
                let jobs = store
                    .job_claim(&claim("default", &worker, 25))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    break;
                }
                let items: Vec<_> = jobs
                    .iter()
                    .map(|j| JobComplete {
                        fence: fence(j),
                        result: None,
                    })
                    .collect();
                let acks = store.job_complete_many(&items).await.unwrap();
                assert!(acks.iter().all(|a| *a == Ack::Done), "own leases complete");
                seen.extend(jobs.iter().map(|j| j.id));
            }
            seen
        }));
    }
    let mut counts: HashMap<i64, usize> = HashMap::new();
    let mut per_worker = Vec::new();
    for t in tasks {
        let seen = t.await.unwrap();
        per_worker.push(seen.len());
        for id in seen {
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), JOBS, "every job claimed");
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "jobs claimed more than once: {twice:?}");
    assert_eq!(per_worker.iter().sum::<usize>(), JOBS);
    let stats = h.store.queue_stats().await.unwrap();
    let d = stats.iter().find(|s| s.queue == "default").unwrap();
    assert_eq!((d.succeeded, d.queued, d.running), (JOBS as u64, 0, 0));
}

// ---- complete ---------------------------------------------------------------------------

pub async fn job_complete_stores_result_and_writes_no_event(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "w").await;
    h.clock.advance(Duration::from_millis(1234));
    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&j),
            result: Some(json!({"processed_users": 12})),
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Done]);
    let done = get(&h, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"processed_users": 12})));
    assert_eq!(done.finished_at, Some(h.now()));
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.attempt, 1);
    assert!(
        h.store.event_list(id).await.unwrap().is_empty(),
        "success path writes no event"
    );
    // A second acknowledgement of the same attempt is stale and changes nothing.
    let again = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&j),
            result: Some(json!({"x": 1})),
        }])
        .await
        .unwrap();
    assert_eq!(again, vec![Ack::Stale]);
    assert_eq!(
        get(&h, id).await.result,
        Some(json!({"processed_users": 12}))
    );
}

pub async fn job_complete_many_mixes_done_and_stale_in_input_order(h: Harness) {
    h.store
        .job_insert_many(&[new_job("a"), new_job("b")])
        .await
        .unwrap();
    let jobs = h.store.job_claim(&claim("default", "w", 2)).await.unwrap();
    let mut bogus = fence(&jobs[0]);
    bogus.worker_id = "someone-else".into();
    let acks = h
        .store
        .job_complete_many(&[
            JobComplete {
                fence: bogus,
                result: None,
            },
            JobComplete {
                fence: fence(&jobs[1]),
                result: None,
            },
            // The same fence again: it held when the batch was written, so it is done too.
            JobComplete {
                fence: fence(&jobs[1]),
                result: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Stale, Ack::Done, Ack::Done]);
    assert_eq!(get(&h, jobs[0].id).await.status, JobStatus::Running);
    assert_eq!(get(&h, jobs[1].id).await.status, JobStatus::Succeeded);
}

// ---- fail -------------------------------------------------------------------------------

pub async fn job_fail_with_retry_requeues_after_backoff(h: Harness) {
    let id = h.insert(new_job("flaky")).await;
    let j = claim_one(&h, "w").await;
    let err = HandlerError::Error {
        message: "ConnectionError: refused".into(),
    };
    // The policy decides (jitter sample 0.5 = no jitter): attempt 1 of 4 retries after 5 s.
    let action = decide_failure(j.attempt, j.max_attempts, &err, &Backoff::default(), 0.5);
    assert_eq!(
        action,
        FailAction::Retry {
            delay: Duration::from_secs(5)
        }
    );
    let after = h
        .store
        .job_fail(&JobFail {
            fence: fence(&j),
            error: err.message().into(),
            action,
        })
        .await
        .unwrap();
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(after.run_at, h.now() + ChronoDuration::seconds(5));
    assert_eq!(
        after.last_error.as_deref(),
        Some("ConnectionError: refused")
    );
    assert_eq!(after.lease_expires_at, None);
    assert_eq!(after.attempt, 1);
    assert_eq!(get(&h, id).await, after);
    let events = h.store.event_list(id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Error);
    assert_eq!(events[0].attempt, 1);
    assert_eq!(events[0].worker_id.as_deref(), Some("w"));
    assert_eq!(
        events[0].message.as_deref(),
        Some("ConnectionError: refused")
    );
    assert_eq!(events[0].data.as_ref().unwrap()["next"], "retry");
    // Not claimable during the backoff, claimable right after it.
    h.clock.advance(Duration::from_millis(4_999));
    assert!(h
        .store
        .job_claim(&claim("default", "w", 1))
        .await
        .unwrap()
        .is_empty());
    h.clock.advance(Duration::from_millis(1));
    let second = claim_one(&h, "w2").await;
    assert_eq!((second.id, second.attempt), (id, 2));
}

pub async fn job_fail_after_last_attempt_ends_failed_with_every_error_kept(h: Harness) {
    let mut job = new_job("doomed");
    job.max_attempts = 3;
    let id = h.insert(job).await;
    let backoff = Backoff::default();
    for attempt in 1..=3 {
        let j = claim_one(&h, "w").await;
        assert_eq!(j.attempt, attempt);
        let err = HandlerError::Error {
            message: format!("boom {attempt}"),
        };
        let action = decide_failure(j.attempt, j.max_attempts, &err, &backoff, 0.5);
        let after = h
            .store
            .job_fail(&JobFail {
                fence: fence(&j),
                error: err.message().into(),
                action,
            })
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(after.status, JobStatus::Queued);
            h.clock.advance(Duration::from_secs(3600));
        } else {
            assert_eq!(after.status, JobStatus::Failed);
            assert_eq!(after.finished_at, Some(h.now()));
            assert_eq!(after.last_error.as_deref(), Some("boom 3"));
        }
    }
    let events = h.store.event_list(id).await.unwrap();
    let msgs: Vec<_> = events.iter().map(|e| e.message.clone().unwrap()).collect();
    assert_eq!(msgs, vec!["boom 1", "boom 2", "boom 3"]);
    assert_eq!(events[2].data.as_ref().unwrap()["next"], "failed");
    assert!(h
        .store
        .job_claim(&claim("default", "w", 1))
        .await
        .unwrap()
        .is_empty());
}

pub async fn job_fail_permanent_error_fails_at_once(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "w").await;
    let err = HandlerError::Permanent {
        message: "ValidationError: bad email".into(),
    };
    let action = decide_failure(j.attempt, j.max_attempts, &err, &Backoff::default(), 0.5);
    let after = h
        .store
        .job_fail(&JobFail {
            fence: fence(&j),
            error: err.message().into(),
            action,
        })
        .await
        .unwrap();
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(after.attempt, 1);
    assert_eq!(get(&h, id).await.status, JobStatus::Failed);
}

// ---- heartbeat --------------------------------------------------------------------------

pub async fn job_heartbeat_extends_leases_and_reports_lost_and_cancelled_jobs(h: Harness) {
    h.store
        .job_insert_many(&[new_job("a"), new_job("b"), new_job("c")])
        .await
        .unwrap();
    let jobs = h.store.job_claim(&claim("default", "w", 3)).await.unwrap();
    h.clock.advance(Duration::from_secs(20));
    h.store
        .job_cancel(&[jobs[1].id], Some("operator"))
        .await
        .unwrap();
    let beat = JobHeartbeat {
        worker_id: "w".into(),
        lease: LEASE,
        jobs: vec![
            (jobs[0].id, jobs[0].attempt),
            (jobs[1].id, jobs[1].attempt),
            (jobs[2].id, jobs[2].attempt + 1), // not the attempt this worker holds
            (999_999, 1),                      // no such job
        ],
    };
    let states = h.store.job_heartbeat_many(&beat).await.unwrap();
    let summary: Vec<_> = states
        .iter()
        .map(|s| (s.job_id, s.held, s.cancel_requested))
        .collect();
    assert_eq!(
        summary,
        vec![
            (jobs[0].id, true, false),
            (jobs[1].id, true, true),
            (jobs[2].id, false, false),
            (999_999, false, false),
        ]
    );
    let extended = get(&h, jobs[0].id).await.lease_expires_at.unwrap();
    assert_eq!(extended, h.now() + chrono(LEASE));
    // The job whose beat did not match kept its old lease.
    assert_eq!(
        get(&h, jobs[2].id).await.lease_expires_at,
        jobs[2].lease_expires_at
    );
    // A heartbeat from another worker never extends someone else's lease.
    let other = JobHeartbeat {
        worker_id: "intruder".into(),
        lease: LEASE,
        jobs: vec![(jobs[0].id, jobs[0].attempt)],
    };
    assert!(!h.store.job_heartbeat_many(&other).await.unwrap()[0].held);
}

// ---- rescue -----------------------------------------------------------------------------

async fn rescue_all(h: &Harness, message: &str) -> Vec<Ack> {
    let stuck = h.store.job_list_stuck(100).await.unwrap();
    let items: Vec<_> = stuck
        .iter()
        .map(|j| JobRescue {
            fence: fence(j),
            action: decide_rescue(j.attempt, j.max_attempts, j.cancel_requested_at.is_some()),
            message: message.into(),
        })
        .collect();
    h.store.job_rescue_many(&items).await.unwrap()
}

pub async fn job_rescue_requeues_expired_leases_and_counts_the_attempt(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "dead-worker").await;
    assert!(
        h.store.job_list_stuck(10).await.unwrap().is_empty(),
        "lease still alive"
    );
    h.clock.advance(LEASE + Duration::from_millis(1));
    // Enqueued while the dead worker held the job: the rescued job still goes first.
    let later = h.insert(new_job("k")).await;
    let stuck = h.store.job_list_stuck(10).await.unwrap();
    assert_eq!(stuck.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let listed = h
        .store
        .job_list(&JobList {
            state: Some(StateFilter::Derived(errand_core::DerivedState::Stuck)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(rescue_all(&h, "lease expired").await, vec![Ack::Done]);
    let back = get(&h, id).await;
    assert_eq!(back.status, JobStatus::Queued);
    assert_eq!(back.attempt, 1, "the lost attempt counts");
    assert_eq!(
        back.run_at, j.run_at,
        "a rescued job keeps its place in the claim order"
    );
    assert_eq!(back.lease_expires_at, None);
    let events = h.store.event_list(id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Rescued);
    assert_eq!(events[0].worker_id.as_deref(), Some("dead-worker"));
    assert_eq!(events[0].data.as_ref().unwrap()["action"], "requeue");
    let again = claim_one(&h, "live-worker").await;
    assert_eq!((again.id, again.attempt), (j.id, 2));
    assert_eq!(claim_one(&h, "live-worker").await.id, later);
}

pub async fn job_rescue_fails_jobs_without_attempts_left_and_cancels_requested_ones(h: Harness) {
    let mut last = new_job("last-try");
    last.max_attempts = 1;
    last.priority = 1;
    let last_id = h.insert(last).await;
    let cancel_id = h.insert(new_job("to-cancel")).await;
    let jobs = h.store.job_claim(&claim("default", "w", 2)).await.unwrap();
    assert_eq!(jobs.len(), 2);
    h.store.job_cancel(&[cancel_id], None).await.unwrap();
    h.clock.advance(LEASE * 2);
    assert_eq!(
        rescue_all(&h, "lease expired").await,
        vec![Ack::Done, Ack::Done]
    );
    let failed = get(&h, last_id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("lease expired"));
    assert_eq!(failed.finished_at, Some(h.now()));
    assert_eq!(get(&h, cancel_id).await.status, JobStatus::Cancelled);
}

pub async fn job_rescue_leaves_a_job_whose_lease_was_renewed(h: Harness) {
    h.insert(new_job("k")).await;
    let j = claim_one(&h, "slow-worker").await;
    h.clock.advance(LEASE + Duration::from_secs(1));
    let stuck = h.store.job_list_stuck(10).await.unwrap();
    assert_eq!(stuck.len(), 1);
    // The worker comes back to life and heartbeats before the rescuer acts.
    let beat = JobHeartbeat {
        worker_id: "slow-worker".into(),
        lease: LEASE,
        jobs: vec![(j.id, 1)],
    };
    assert!(h.store.job_heartbeat_many(&beat).await.unwrap()[0].held);
    let acks = h
        .store
        .job_rescue_many(&[JobRescue {
            fence: fence(&stuck[0]),
            action: RescueAction::Requeue,
            message: "lease expired".into(),
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Stale]);
    assert_eq!(get(&h, j.id).await.status, JobStatus::Running);
}

pub async fn job_stale_worker_cannot_record_after_rescue(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let a = claim_one(&h, "worker-a").await;
    h.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(rescue_all(&h, "lease expired").await, vec![Ack::Done]);
    let b = claim_one(&h, "worker-b").await;
    assert_eq!(b.attempt, 2);
    // Worker A wakes up and tries to record its outcome: every path is refused.
    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&a),
            result: Some(json!({"from": "a"})),
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Stale]);
    let err = h
        .store
        .job_fail(&JobFail {
            fence: fence(&a),
            error: "late".into(),
            action: FailAction::Fail,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Stale { job_id, attempt: 1 } if job_id == id),
        "{err}"
    );
    assert!(err.to_string().contains("stale"));
    let beat = JobHeartbeat {
        worker_id: "worker-a".into(),
        lease: LEASE,
        jobs: vec![(id, 1)],
    };
    assert!(!h.store.job_heartbeat_many(&beat).await.unwrap()[0].held);
    assert_eq!(
        h.store.job_release_many(&[fence(&a)]).await.unwrap(),
        vec![Ack::Stale]
    );
    assert!(matches!(
        h.store.job_cancel_ack(&fence(&a), None).await,
        Err(StoreError::Stale { .. })
    ));
    let now_job = get(&h, id).await;
    assert_eq!(now_job.status, JobStatus::Running);
    assert_eq!(now_job.worker_id.as_deref(), Some("worker-b"));
    // Worker B, the rightful holder, completes.
    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&b),
            result: Some(json!({"from": "b"})),
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Done]);
    assert_eq!(get(&h, id).await.result, Some(json!({"from": "b"})));
}

// ---- release (graceful shutdown) --------------------------------------------------------

pub async fn job_release_hands_back_without_spending_the_attempt(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "w").await;
    h.clock.advance(Duration::from_secs(3));
    assert_eq!(
        h.store.job_release_many(&[fence(&j)]).await.unwrap(),
        vec![Ack::Done]
    );
    let back = get(&h, id).await;
    assert_eq!(back.status, JobStatus::Queued);
    assert_eq!(back.attempt, 0);
    assert_eq!(back.run_at, h.now());
    assert_eq!(back.lease_expires_at, None);
    let ev = h.store.event_list(id).await.unwrap();
    assert_eq!(
        ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Released]
    );
    assert_eq!(claim_one(&h, "w2").await.attempt, 1);
}

// ---- cancel -----------------------------------------------------------------------------

pub async fn job_cancel_queued_running_finished_and_missing(h: Harness) {
    let queued = h.insert(new_job("q")).await;
    let mut r = new_job("r");
    r.queue = "busy".into();
    let running = h.insert(r).await;
    let run = h
        .store
        .job_claim(&claim("busy", "w", 1))
        .await
        .unwrap()
        .remove(0);
    let out = h
        .store
        .job_cancel(&[queued, running, 424_242], Some("not needed"))
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            CancelOutcome::Cancelled { id: queued },
            CancelOutcome::CancelRequested { id: running },
            CancelOutcome::NotFound { id: 424_242 },
        ]
    );
    let q = get(&h, queued).await;
    assert_eq!(q.status, JobStatus::Cancelled);
    assert_eq!(q.finished_at, Some(h.now()));
    let ev = h.store.event_list(queued).await.unwrap();
    assert_eq!(ev[0].kind, EventKind::Cancelled);
    assert_eq!(ev[0].message.as_deref(), Some("not needed"));
    let rj = get(&h, running).await;
    assert_eq!(
        rj.status,
        JobStatus::Running,
        "a running job stops through its worker"
    );
    assert_eq!(rj.cancel_requested_at, Some(h.now()));
    // Its worker stops the handler and acknowledges.
    let done = h
        .store
        .job_cancel_ack(&fence(&run), Some("stopped by signal"))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.finished_at, Some(h.now()));
    let kinds: Vec<_> = h
        .store
        .event_list(running)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![EventKind::CancelRequested, EventKind::Cancelled]
    );
    // Cancelling finished jobs changes nothing.
    let again = h.store.job_cancel(&[queued, running], None).await.unwrap();
    assert_eq!(
        again,
        vec![
            CancelOutcome::Unchanged {
                id: queued,
                status: JobStatus::Cancelled
            },
            CancelOutcome::Unchanged {
                id: running,
                status: JobStatus::Cancelled
            },
        ]
    );
}

// ---- operator retry ---------------------------------------------------------------------

async fn make_failed(h: &Harness, kind: &str, queue: &str) -> i64 {
    let mut j = new_job(kind);
    j.queue = queue.into();
    j.max_attempts = 1;
    j.priority = 100; // claimed ahead of whatever else the test queued
    let id = h.insert(j).await;
    let job = h
        .store
        .job_claim(&claim(queue, "w", 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.id, id);
    h.store
        .job_fail(&JobFail {
            fence: fence(&job),
            error: "boom".into(),
            action: FailAction::Fail,
        })
        .await
        .unwrap();
    id
}

pub async fn job_retry_gives_failed_and_cancelled_jobs_a_fresh_budget(h: Harness) {
    let failed = make_failed(&h, "k", "default").await;
    let cancelled = h.insert(new_job("c")).await;
    h.store.job_cancel(&[cancelled], None).await.unwrap();
    let queued = h.insert(new_job("q")).await;
    h.clock.advance(Duration::from_secs(10));
    let out = h
        .store
        .job_retry(&[failed, cancelled, queued, 777_777])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            RetryOutcome::Retried { id: failed },
            RetryOutcome::Retried { id: cancelled },
            RetryOutcome::Unchanged {
                id: queued,
                status: JobStatus::Queued
            },
            RetryOutcome::NotFound { id: 777_777 },
        ]
    );
    let f = get(&h, failed).await;
    assert_eq!(f.status, JobStatus::Queued);
    assert_eq!(f.attempt, 0);
    assert_eq!(f.run_at, h.now());
    assert_eq!(f.finished_at, None);
    let ev = h.store.event_list(failed).await.unwrap();
    let retried = ev.last().unwrap();
    assert_eq!(retried.kind, EventKind::Retried);
    assert_eq!(retried.data.as_ref().unwrap()["previous_status"], "failed");
    assert_eq!(retried.data.as_ref().unwrap()["previous_attempt"], 1);
    // The whole budget is available again: a fresh claim is attempt 1 of 1.
    let again = h.store.job_claim(&claim("default", "w", 10)).await.unwrap();
    assert!(again.iter().any(|j| j.id == failed && j.attempt == 1));
}

pub async fn job_retry_failed_in_batches_filtered_by_queue(h: Harness) {
    for _ in 0..5 {
        make_failed(&h, "mail", "email").await;
    }
    let other = make_failed(&h, "index", "indexing").await;
    let mut total = 0;
    loop {
        let n = h
            .store
            .job_retry_failed(&RetryFailed {
                queue: Some("email".into()),
                kind: None,
                limit: 2,
            })
            .await
            .unwrap();
        assert!(n <= 2);
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 5);
    assert_eq!(
        get(&h, other).await.status,
        JobStatus::Failed,
        "other queues untouched"
    );
    let n = h
        .store
        .job_retry_failed(&RetryFailed {
            queue: None,
            kind: Some("index".into()),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}

// ---- purge ------------------------------------------------------------------------------

pub async fn job_purge_deletes_old_finished_jobs_in_batches_with_their_events(h: Harness) {
    let old_failed = make_failed(&h, "k", "default").await;
    let mut old_done = Vec::new();
    for _ in 0..5 {
        h.insert(new_job("ok")).await;
        let j = claim_one(&h, "w").await;
        h.store
            .job_complete_many(&[JobComplete {
                fence: fence(&j),
                result: None,
            }])
            .await
            .unwrap();
        old_done.push(j.id);
    }
    h.clock.advance(Duration::from_secs(31 * 86_400));
    let cutoff = h.now() - ChronoDuration::days(30);
    h.insert(new_job("ok")).await;
    let recent = claim_one(&h, "w").await;
    h.store
        .job_complete_many(&[JobComplete {
            fence: fence(&recent),
            result: None,
        }])
        .await
        .unwrap();
    let queued = h.insert(new_job("waiting")).await;

    let purge = |statuses: Vec<JobStatus>| JobPurge {
        statuses,
        finished_before: cutoff,
        limit: 2,
    };
    let mut deleted = 0;
    loop {
        let n = h
            .store
            .job_purge(&purge(vec![JobStatus::Succeeded, JobStatus::Cancelled]))
            .await
            .unwrap();
        assert!(n <= 2, "batches respect the limit");
        if n == 0 {
            break;
        }
        deleted += n;
    }
    assert_eq!(deleted, 5);
    for id in &old_done {
        assert!(h.store.job_get(*id).await.unwrap().is_none());
    }
    assert!(
        h.store.job_get(recent.id).await.unwrap().is_some(),
        "recent job kept"
    );
    assert!(
        h.store.job_get(queued).await.unwrap().is_some(),
        "unfinished job kept"
    );
    assert!(
        h.store.job_get(old_failed).await.unwrap().is_some(),
        "failed kept unless included"
    );
    assert_eq!(
        h.store
            .job_purge(&purge(vec![JobStatus::Failed]))
            .await
            .unwrap(),
        1
    );
    assert!(h.store.job_get(old_failed).await.unwrap().is_none());
    assert!(
        h.store.event_list(old_failed).await.unwrap().is_empty(),
        "events went with the job"
    );
    // Asking to purge live states deletes nothing.
    assert_eq!(
        h.store
            .job_purge(&purge(vec![JobStatus::Queued, JobStatus::Running]))
            .await
            .unwrap(),
        0
    );
}

// ---- reads ------------------------------------------------------------------------------

pub async fn job_list_filters_and_pages(h: Harness) {
    let t0 = h.now();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut j = new_job(if i % 2 == 0 { "even" } else { "odd" });
        j.queue = if i < 4 { "a".into() } else { "b".into() };
        if i == 3 {
            j.reference_type = Some("file_upload".into());
            j.reference_id = Some("42".into());
        }
        if i == 6 {
            j.run_at = RunAt::After(Duration::from_secs(600));
        }
        ids.push(h.insert(j).await);
        h.clock.advance(Duration::from_secs(60));
    }
    let list = |f: JobList| {
        let store = h.store.clone();
        async move { store.job_list(&f).await.unwrap() }
    };
    let all = list(JobList::default()).await;
    assert_eq!(
        all.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(all.next_cursor, None);

    let p1 = list(JobList {
        limit: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(p1.jobs.len(), 3);
    let cursor = p1.next_cursor.expect("more pages");
    let p2 = list(JobList {
        limit: 3,
        before_id: Some(cursor),
        ..Default::default()
    })
    .await;
    let p3 = list(JobList {
        limit: 3,
        before_id: p2.next_cursor,
        ..Default::default()
    })
    .await;
    assert_eq!(p3.jobs.len(), 1);
    assert_eq!(p3.next_cursor, None, "last page has no cursor");
    let mut paged: Vec<_> = [p1, p2, p3]
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id))
        .collect();
    paged.reverse();
    assert_eq!(paged, ids);

    let by_queue = list(JobList {
        queue: Some("b".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_queue.jobs.len(), 3);
    let by_kind = list(JobList {
        kind: Some("odd".into()),
        queue: Some("a".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_kind.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[3], ids[1]]
    );
    let by_ref = list(JobList {
        reference_type: Some("file_upload".into()),
        reference_id: Some("42".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_ref.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[3]]
    );
    let window = list(JobList {
        since: Some(t0 + ChronoDuration::seconds(120)),
        until: Some(t0 + ChronoDuration::seconds(240)),
        ..Default::default()
    })
    .await;
    assert_eq!(
        window.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    let scheduled = list(JobList {
        state: Some(StateFilter::Derived(errand_core::DerivedState::Scheduled)),
        ..Default::default()
    })
    .await;
    assert_eq!(
        scheduled.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[6]]
    );
    let queued = list(JobList {
        state: Some(StateFilter::Status(JobStatus::Queued)),
        ..Default::default()
    })
    .await;
    assert_eq!(queued.jobs.len(), 7);
}

/// Every status is found by every filter that should find it: the PostgreSQL store keeps
/// running and succeeded rows out of some indexes and lists them through other paths.
pub async fn job_list_finds_every_status_by_kind_state_and_queue(h: Harness) {
    // Per kind, one job in each status, claimed and finished one at a time in id order.
    let mut by_status: Vec<(JobStatus, i64, &str)> = Vec::new();
    for kind in ["k", "other"] {
        for status in [
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Running,
            JobStatus::Cancelled,
            JobStatus::Queued,
        ] {
            let mut job = new_job(kind);
            job.max_attempts = 1;
            if status == JobStatus::Queued {
                // Not ready, so that later claims take the job meant for them.
                job.run_at = RunAt::After(Duration::from_secs(600));
            }
            let id = h.insert(job).await;
            match status {
                JobStatus::Queued => {}
                JobStatus::Cancelled => {
                    h.store.job_cancel(&[id], None).await.unwrap();
                }
                _ => {
                    let j = claim_one(&h, "w").await;
                    assert_eq!(j.id, id);
                    if status == JobStatus::Succeeded {
                        let acks = h
                            .store
                            .job_complete_many(&[JobComplete {
                                fence: fence(&j),
                                result: None,
                            }])
                            .await
                            .unwrap();
                        assert_eq!(acks, vec![Ack::Done]);
                    } else if status == JobStatus::Failed {
                        h.store
                            .job_fail(&JobFail {
                                fence: fence(&j),
                                error: "no".into(),
                                action: FailAction::Fail,
                            })
                            .await
                            .unwrap();
                    }
                }
            }
            assert_eq!(get(&h, id).await.status, status);
            by_status.push((status, id, kind));
        }
    }
    let list = |f: JobList| {
        let store = h.store.clone();
        async move { store.job_list(&f).await.unwrap() }
    };
    let ids = |page: &JobPage| page.jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    let newest_first = |keep: &dyn Fn(JobStatus, &str) -> bool| {
        let mut v: Vec<i64> = by_status
            .iter()
            .filter(|(s, _, k)| keep(*s, k))
            .map(|(_, id, _)| *id)
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };

    let of_k = list(JobList {
        kind: Some("k".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&of_k),
        newest_first(&|_, k| k == "k"),
        "every status of kind k"
    );
    // Paging by kind crosses the running job and the rest in id order.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(JobList {
            kind: Some("k".into()),
            limit: 2,
            before_id: cursor,
            ..Default::default()
        })
        .await;
        paged.extend(ids(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, newest_first(&|_, k| k == "k"));

    for status in [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ] {
        let state = Some(StateFilter::Status(status));
        let all = list(JobList {
            state,
            ..Default::default()
        })
        .await;
        assert_eq!(
            ids(&all),
            newest_first(&|s, _| s == status),
            "state {status:?}"
        );
        let one_kind = list(JobList {
            state,
            kind: Some("other".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(
            ids(&one_kind),
            newest_first(&|s, k| s == status && k == "other"),
            "state {status:?}, kind other"
        );
        let in_queue = list(JobList {
            state,
            queue: Some("default".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(
            ids(&in_queue),
            newest_first(&|s, _| s == status),
            "state {status:?}, queue default"
        );
        let no_queue = list(JobList {
            state,
            queue: Some("elsewhere".into()),
            ..Default::default()
        })
        .await;
        assert!(
            no_queue.jobs.is_empty(),
            "state {status:?}, queue elsewhere"
        );
    }
}

pub async fn job_list_retrying_state(h: Harness) {
    let id = h.insert(new_job("k")).await;
    h.insert(new_job("fresh")).await;
    let j = claim_one(&h, "w").await;
    assert_eq!(j.id, id);
    h.store
        .job_fail(&JobFail {
            fence: fence(&j),
            error: "x".into(),
            action: FailAction::Retry {
                delay: Duration::ZERO,
            },
        })
        .await
        .unwrap();
    let retrying = h
        .store
        .job_list(&JobList {
            state: Some(StateFilter::Derived(errand_core::DerivedState::Retrying)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        retrying.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id]
    );
}

pub async fn queue_stats_counts_by_status_and_oldest_ready(h: Harness) {
    let t0 = h.now();
    let mut e = new_job("mail");
    e.queue = "email".into();
    h.insert(e.clone()).await; // will run
    h.clock.advance(Duration::from_secs(10));
    h.insert(e.clone()).await; // stays queued, oldest ready
    let mut later = e.clone();
    later.run_at = RunAt::After(Duration::from_secs(3600));
    h.insert(later).await; // scheduled
    make_failed(&h, "mail", "email").await;
    let j = h
        .store
        .job_claim(&claim("email", "w", 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(j.created_at, t0);
    h.clock.advance(Duration::from_secs(5));
    let stats = h.store.queue_stats().await.unwrap();
    let s = stats.iter().find(|s| s.queue == "email").unwrap();
    assert_eq!(
        (
            s.queued,
            s.scheduled,
            s.running,
            s.failed,
            s.succeeded,
            s.cancelled
        ),
        (2, 1, 1, 1, 0, 0)
    );
    assert_eq!(
        s.oldest_ready_run_at,
        Some(t0 + ChronoDuration::seconds(10))
    );
    assert_eq!(s.as_of, h.now());
    assert!(!s.paused);
}

/// The counts by status as listing every job says they are, per queue.
async fn counted_by_listing(h: &Harness) -> HashMap<(String, JobStatus), u64> {
    let page = h
        .store
        .job_list(&JobList {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = HashMap::new();
    for j in page.jobs {
        *out.entry((j.queue, j.status)).or_insert(0) += 1;
    }
    out
}

/// What `queue_stats` says, in the same shape (zeros left out).
async fn counted_by_stats(h: &Harness) -> HashMap<(String, JobStatus), u64> {
    let mut out = HashMap::new();
    for s in h.store.queue_stats().await.unwrap() {
        for (status, n) in [
            (JobStatus::Queued, s.queued),
            (JobStatus::Running, s.running),
            (JobStatus::Succeeded, s.succeeded),
            (JobStatus::Failed, s.failed),
            (JobStatus::Cancelled, s.cancelled),
        ] {
            if n > 0 {
                out.insert((s.queue.clone(), status), n);
            }
        }
    }
    out
}

/// The counts `queue_stats` reports stay equal to the jobs' states through every kind of
/// write: batch insert (with a unique-key duplicate), claim, complete, fail with retry, fail
/// for good, cancel, release, retry, bulk retry, rescue and purge.
pub async fn queue_stats_counts_follow_every_transition(h: Harness) {
    let check = |step: &'static str| {
        let h = &h;
        async move {
            assert_eq!(
                counted_by_stats(h).await,
                counted_by_listing(h).await,
                "after {step}"
            );
        }
    };
    let mut batch: Vec<_> = (0..6).map(|_| job_in("a")).collect();
    batch.extend((0..4).map(|_| job_in("b")));
    batch[0].unique_key = Some("k".into());
    batch[1].unique_key = Some("k".into());
    h.store.job_insert_many(&batch).await.unwrap();
    check("insert").await;
    let claimed = h.store.job_claim(&claim("a", "w", 3)).await.unwrap();
    check("claim").await;
    h.store
        .job_complete_many(&[JobComplete {
            fence: fence(&claimed[0]),
            result: None,
        }])
        .await
        .unwrap();
    check("complete").await;
    h.store
        .job_fail(&JobFail {
            fence: fence(&claimed[1]),
            error: "again".into(),
            action: FailAction::Retry {
                delay: Duration::from_secs(1),
            },
        })
        .await
        .unwrap();
    check("fail with retry").await;
    h.store
        .job_release_many(&[fence(&claimed[2])])
        .await
        .unwrap();
    check("release").await;
    let failed = make_failed(&h, "wake", "b").await;
    make_failed(&h, "wake", "b").await;
    check("fail for good").await;
    let queued_b = h
        .store
        .job_list(&JobList {
            queue: Some("b".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
        .into_iter()
        .find(|j| j.status == JobStatus::Queued)
        .unwrap();
    h.store.job_cancel(&[queued_b.id], None).await.unwrap();
    check("cancel").await;
    h.store.job_retry(&[failed]).await.unwrap();
    check("retry").await;
    h.store
        .job_retry_failed(&RetryFailed {
            queue: Some("b".into()),
            kind: None,
            limit: 10,
        })
        .await
        .unwrap();
    check("bulk retry").await;
    let held = h.store.job_claim(&claim("b", "w2", 1)).await.unwrap();
    assert_eq!(held.len(), 1);
    h.clock.advance(Duration::from_secs(120));
    rescue_all(&h, "lease expired").await;
    check("rescue").await;
    let done = h.store.job_claim(&claim("b", "w3", 10)).await.unwrap();
    let acks: Vec<JobComplete> = done
        .iter()
        .map(|j| JobComplete {
            fence: fence(j),
            result: None,
        })
        .collect();
    h.store.job_complete_many(&acks).await.unwrap();
    h.clock.advance(Duration::from_secs(3600));
    let purge = JobPurge {
        statuses: vec![
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ],
        finished_before: h.now(),
        limit: 100,
    };
    while h.store.job_purge(&purge).await.unwrap() > 0 {}
    check("purge").await;
    assert!(
        counted_by_stats(&h).await.keys().all(|(q, _)| q == "a"),
        "queue b emptied"
    );
}

/// Inserts a job of `kind` in `queue`, claims it, lets `run` pass on the clock and completes it.
async fn make_succeeded(h: &Harness, kind: &str, queue: &str, run: Duration) -> i64 {
    let mut j = new_job(kind);
    j.queue = queue.into();
    j.priority = 100;
    let id = h.insert(j).await;
    let job = h
        .store
        .job_claim(&claim(queue, "w", 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.id, id);
    h.clock.advance(run);
    let acks = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&job),
            result: None,
        }])
        .await
        .unwrap();
    assert_eq!(acks, vec![Ack::Done]);
    id
}

pub async fn job_finished_stats_counts_outcomes_and_durations_since(h: Harness) {
    // Before the window: not counted.
    make_succeeded(&h, "mail", "email", Duration::from_secs(500)).await;
    h.clock.advance(Duration::from_secs(1));
    let since = h.now();
    // In the window: 20 successes of 1..=20 s, then 250 ms (21 runs in all), a failure, a
    // cancel, and one success in another queue and kind.
    for secs in 1..=20 {
        make_succeeded(&h, "mail", "email", Duration::from_secs(secs)).await;
    }
    make_succeeded(&h, "mail", "email", Duration::from_millis(250)).await;
    make_failed(&h, "mail", "email").await;
    let mut c = new_job("mail");
    c.queue = "email".into();
    let cancelled = h.insert(c).await;
    h.store.job_cancel(&[cancelled], None).await.unwrap();
    make_succeeded(&h, "report", "default", Duration::from_secs(2)).await;
    // Still live: not finished, not counted.
    let mut live = new_job("mail");
    live.queue = "email".into();
    h.insert(live).await;

    let all = JobFinishedStats {
        since,
        queue: None,
        kind: None,
    };
    let stats = h.store.job_finished_stats(&all).await.unwrap();
    assert_eq!(
        stats,
        vec![
            FinishedStats {
                queue: "default".into(),
                succeeded: 1,
                failed: 0,
                cancelled: 0,
                duration_avg_ms: Some(2000.0),
                duration_p95_ms: Some(2000.0),
                duration_max_ms: Some(2000.0),
            },
            FinishedStats {
                queue: "email".into(),
                succeeded: 21,
                failed: 1,
                cancelled: 1,
                // (1 + ... + 20) s + 0.25 s over 21 runs.
                duration_avg_ms: Some(210_250.0 / 21.0),
                // Nearest rank: the 20th of 21 sorted runs (ceil(0.95 * 21) = 20): 19 s.
                duration_p95_ms: Some(19_000.0),
                duration_max_ms: Some(20_000.0),
            },
        ]
    );

    // Filters by queue and by kind.
    let email = JobFinishedStats {
        since,
        queue: Some("email".into()),
        kind: None,
    };
    let stats = h.store.job_finished_stats(&email).await.unwrap();
    assert_eq!(
        stats.iter().map(|s| s.queue.as_str()).collect::<Vec<_>>(),
        vec!["email"]
    );
    let report = JobFinishedStats {
        since,
        queue: None,
        kind: Some("report".into()),
    };
    let stats = h.store.job_finished_stats(&report).await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].queue.as_str(), stats[0].succeeded),
        ("default", 1)
    );

    // A window in the future: nothing. Failures only: counted, without durations.
    let future = JobFinishedStats {
        since: h.now() + ChronoDuration::seconds(1),
        queue: None,
        kind: None,
    };
    assert_eq!(h.store.job_finished_stats(&future).await.unwrap(), vec![]);
    let one = make_failed(&h, "lonely", "solo").await;
    let solo = JobFinishedStats {
        since: h.now(),
        queue: Some("solo".into()),
        kind: None,
    };
    let stats = h.store.job_finished_stats(&solo).await.unwrap();
    assert_eq!(
        stats,
        vec![FinishedStats {
            queue: "solo".into(),
            failed: 1,
            ..Default::default()
        }],
        "job {one}"
    );
}

/// The start of the `width`-wide bucket (aligned to the epoch) that holds `t`.
fn bucket_of(t: chrono::DateTime<chrono::Utc>, width: Duration) -> chrono::DateTime<chrono::Utc> {
    let w = width.as_micros() as i64;
    let us = t.timestamp_micros();
    chrono::DateTime::from_timestamp_micros(us.div_euclid(w) * w).unwrap()
}

pub async fn job_throughput_buckets_by_time_and_queue(h: Harness) {
    let minute = Duration::from_secs(60);
    make_succeeded(&h, "mail", "email", Duration::from_secs(1)).await; // before `since`
    h.clock.advance(Duration::from_secs(1));
    let since = h.now();
    let a = make_succeeded(&h, "mail", "email", Duration::from_millis(10)).await;
    let b = make_succeeded(&h, "mail", "email", Duration::from_millis(10)).await;
    let first = h.now();
    h.clock.advance(Duration::from_secs(120));
    let c = make_failed(&h, "mail", "email").await;
    let d = make_succeeded(&h, "report", "default", Duration::from_millis(10)).await;
    let e = h.insert(new_job("report")).await;
    h.store.job_cancel(&[e], None).await.unwrap();
    let second = h.now();
    // The test's jobs finish in two buckets two minutes apart (or one more, if the first two
    // straddle a bucket boundary): compute what each bucket must hold from the jobs' times.
    let mut expected: Vec<ThroughputBucket> = Vec::new();
    for (id, queue, status) in [
        (a, "email", "succeeded"),
        (b, "email", "succeeded"),
        (c, "email", "failed"),
        (d, "default", "succeeded"),
        (e, "default", "cancelled"),
    ] {
        let start = bucket_of(get(&h, id).await.finished_at.unwrap(), minute);
        let i = match expected
            .iter()
            .position(|x| x.start == start && x.queue == queue)
        {
            Some(i) => i,
            None => {
                expected.push(ThroughputBucket {
                    start,
                    queue: queue.into(),
                    succeeded: 0,
                    failed: 0,
                    cancelled: 0,
                });
                expected.len() - 1
            }
        };
        match status {
            "succeeded" => expected[i].succeeded += 1,
            "failed" => expected[i].failed += 1,
            _ => expected[i].cancelled += 1,
        }
    }
    expected.sort_by(|x, y| (x.start, &x.queue).cmp(&(y.start, &y.queue)));
    assert!(bucket_of(second, minute) > bucket_of(first, minute));
    let series = JobThroughput {
        since,
        bucket: minute,
        queue: None,
        kind: None,
    };
    assert_eq!(h.store.job_throughput(&series).await.unwrap(), expected);
    assert_eq!(
        expected
            .iter()
            .map(|b| b.succeeded + b.failed + b.cancelled)
            .sum::<u64>(),
        5
    );

    // Filtered by queue and kind; one bucket as wide as the window.
    let email = JobThroughput {
        queue: Some("email".into()),
        ..series.clone()
    };
    let got = h.store.job_throughput(&email).await.unwrap();
    assert!(got.iter().all(|b| b.queue == "email"));
    assert_eq!(got.iter().map(|b| b.succeeded).sum::<u64>(), 2);
    assert_eq!(got.iter().map(|b| b.failed).sum::<u64>(), 1);
    let hour = JobThroughput {
        bucket: Duration::from_secs(86_400 * 365 * 100),
        kind: Some("report".into()),
        ..series
    };
    let got = h.store.job_throughput(&hour).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].succeeded, got[0].cancelled), (1, 1));
    assert_eq!(
        got[0].start,
        bucket_of(since, Duration::from_secs(86_400 * 365 * 100))
    );
}

// ---- events -----------------------------------------------------------------------------

pub async fn event_insert_and_list_in_order(h: Harness) {
    let id = h.insert(new_job("k")).await;
    for (i, msg) in ["first", "second"].iter().enumerate() {
        let e = h
            .store
            .event_insert(&NewEvent {
                job_id: id,
                kind: EventKind::Retried,
                attempt: i as i32,
                worker_id: None,
                message: Some(msg.to_string()),
                data: Some(json!({"by": "ops"})),
            })
            .await
            .unwrap();
        assert_eq!(e.job_id, id);
        assert_eq!(e.at, h.now());
        h.clock.advance(Duration::from_secs(1));
    }
    let events = h.store.event_list(id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.message.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["first", "second"]
    );
    assert_eq!(events[1].data, Some(json!({"by": "ops"})));
    assert!(events[0].id < events[1].id);
}

// ---- workers ----------------------------------------------------------------------------

fn registration(
    id: &str,
    host: &str,
    pid: i64,
    version: &str,
    queues: &[(&str, u32)],
) -> WorkerRegistration {
    WorkerRegistration {
        id: id.into(),
        host: host.into(),
        pid,
        version: version.into(),
        queues: queues
            .iter()
            .map(|&(name, concurrency)| WorkerQueue {
                name: name.into(),
                concurrency,
            })
            .collect(),
    }
}

pub async fn worker_register_heartbeat_list_remove_prune(h: Harness) {
    assert!(h.store.worker_list().await.unwrap().is_empty());
    let t0 = h.now();
    let a = registration(
        "host-a-11-x1",
        "host-a",
        11,
        "0.1.0",
        &[("default", 4), ("email", 2)],
    );
    h.store.worker_register(&a).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    let t1 = h.now();
    let b = registration("host-b-22-y2", "host-b", 22, "0.1.0", &[]);
    h.store.worker_register(&b).await.unwrap();

    let list = h.store.worker_list().await.unwrap();
    assert_eq!(list.len(), 2);
    let (wa, wb) = (&list[0], &list[1]);
    assert_eq!(wa.id, a.id, "oldest started_at first");
    assert_eq!(
        (wa.host.as_str(), wa.pid, wa.version.as_str()),
        ("host-a", 11, "0.1.0")
    );
    assert_eq!(
        wa.queues, a.queues,
        "queues round-trip with their concurrency"
    );
    assert_eq!((wa.started_at, wa.last_seen_at), (t0, t0));
    assert_eq!(wb.id, b.id);
    assert!(wb.queues.is_empty());
    assert_eq!((wb.started_at, wb.last_seen_at), (t1, t1));

    // Registering again refreshes the row but keeps when the worker started.
    h.clock.advance(Duration::from_secs(1));
    let t2 = h.now();
    let a2 = registration(&a.id, "host-a2", 12, "0.2.0", &[("bulk", 8)]);
    h.store.worker_register(&a2).await.unwrap();
    let list = h.store.worker_list().await.unwrap();
    assert_eq!(list.len(), 2);
    let wa = &list[0];
    assert_eq!(wa.id, a.id, "still first: started_at did not move");
    assert_eq!(
        (wa.host.as_str(), wa.pid, wa.version.as_str()),
        ("host-a2", 12, "0.2.0")
    );
    assert_eq!(
        wa.queues,
        vec![WorkerQueue {
            name: "bulk".into(),
            concurrency: 8
        }]
    );
    assert_eq!((wa.started_at, wa.last_seen_at), (t0, t2));

    // Heartbeats move last_seen_at; an unknown id says so, so its worker registers again.
    h.clock.advance(Duration::from_secs(10));
    let t3 = h.now();
    assert!(h.store.worker_heartbeat(&b.id).await.unwrap());
    assert!(!h.store.worker_heartbeat("nobody").await.unwrap());
    let list = h.store.worker_list().await.unwrap();
    assert_eq!(
        list.len(),
        2,
        "a heartbeat for an unknown id creates nothing"
    );
    assert_eq!((list[0].last_seen_at, list[1].last_seen_at), (t2, t3));
    assert_eq!(list[1].started_at, t1);

    // Prune takes only the workers not seen since the cut-off (strictly before it).
    assert_eq!(h.store.worker_prune(t2).await.unwrap(), 0);
    assert_eq!(h.store.worker_prune(t3).await.unwrap(), 1);
    let list = h.store.worker_list().await.unwrap();
    assert_eq!(
        list.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        vec![b.id.as_str()]
    );
    assert_eq!(h.store.worker_prune(t3).await.unwrap(), 0);
    assert!(
        !h.store.worker_heartbeat(&a.id).await.unwrap(),
        "a pruned worker must register again"
    );

    // Remove is idempotent.
    h.store.worker_remove(&b.id).await.unwrap();
    h.store.worker_remove(&b.id).await.unwrap();
    h.store.worker_remove("never-registered").await.unwrap();
    assert!(h.store.worker_list().await.unwrap().is_empty());
}

// ---- wake-ups ---------------------------------------------------------------------------

/// The queue the wake-up cases use to find out that hints flow; its hints are skipped.
const WARM_UP: &str = "warm-up";

/// The next hint that is not from [`WARM_UP`], waiting at most `wait`.
async fn next_hint(
    rx: &mut tokio::sync::broadcast::Receiver<JobsReady>,
    wait: Duration,
) -> Option<String> {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(hint)) if hint.queue == WARM_UP => continue,
            Ok(Ok(hint)) => return Some(hint.queue),
            Ok(Err(RecvError::Lagged(_))) => continue,
            Ok(Err(RecvError::Closed)) => {
                panic!("the wake-up channel closed while the store lives")
            }
        }
    }
}

/// Waits for a hint of `queue`, failing after 5 s or on a hint of another queue.
async fn expect_hint(rx: &mut tokio::sync::broadcast::Receiver<JobsReady>, queue: &str) {
    let got = next_hint(rx, Duration::from_secs(5)).await;
    assert_eq!(
        got.as_deref(),
        Some(queue),
        "expected a wake-up hint for queue `{queue}`"
    );
}

/// A ready job in `queue`.
fn job_in(queue: &str) -> errand_core::JobInsert {
    let mut j = new_job("wake");
    j.queue = queue.into();
    j
}

/// Subscribes and returns once hints flow. On PostgreSQL, `subscribe` starts the LISTEN
/// task in the background and returns at once, and a hint sent before that task listens is
/// lost (the trait allows it: workers also poll). So the case enqueues a ready job in the
/// [`WARM_UP`] queue and waits up to 2 s for its hint, up to 5 times, before it tests
/// anything. On SQLite the first hint arrives at once.
async fn subscribe_and_warm_up(h: &Harness) -> tokio::sync::broadcast::Receiver<JobsReady> {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = h.store.subscribe();
    for _ in 0..5 {
        h.insert(job_in(WARM_UP)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(hint)) if hint.queue == WARM_UP => return rx,
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => continue,
                Ok(Err(RecvError::Closed)) => panic!("the wake-up channel closed"),
                Err(_) => break,
            }
        }
    }
    panic!("no wake-up hint arrived after 5 ready inserts");
}

pub async fn subscribe_hints_on_insert_of_ready_jobs(h: Harness) {
    let mut rx = subscribe_and_warm_up(&h).await;
    expect_nothing_pending(&mut rx).await;

    // A delayed job makes nothing ready: the first hint after it is the ready job's. (On
    // both backends hints arrive in commit order, so a `later` hint would come first.)
    let mut delayed = job_in("later");
    delayed.run_at = RunAt::After(Duration::from_secs(3600));
    h.insert(delayed).await;
    h.insert(job_in("now")).await;
    expect_hint(&mut rx, "now").await;

    // A batch hints each queue that got a ready job; a job whose run_at is already past
    // counts as ready.
    let mut past = job_in("past");
    past.run_at = RunAt::At(h.now() - ChronoDuration::seconds(5));
    let mut delayed = job_in("later");
    delayed.run_at = RunAt::At(h.now() + ChronoDuration::seconds(60));
    let batch = [job_in("a"), job_in("a"), delayed, past, job_in("b")];
    h.store.job_insert_many(&batch).await.unwrap();
    h.insert(job_in("sentinel")).await;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let q = next_hint(&mut rx, Duration::from_secs(5))
            .await
            .expect("hints for the batch");
        if q == "sentinel" {
            break;
        }
        seen.insert(q);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["a", "b", "past"]);

    // A duplicate unique key inserts nothing and makes nothing ready.
    let mut keyed = job_in("dup");
    keyed.unique_key = Some("once".into());
    assert!(
        h.store
            .job_insert_many(std::slice::from_ref(&keyed))
            .await
            .unwrap()[0]
            .inserted
    );
    expect_hint(&mut rx, "dup").await;
    assert!(!h.store.job_insert_many(&[keyed]).await.unwrap()[0].inserted);
    h.insert(job_in("sentinel-2")).await;
    expect_hint(&mut rx, "sentinel-2").await;

    // Claiming, completing and failing with a delay make nothing ready.
    let j = h
        .store
        .job_claim(&claim("now", "w", 1))
        .await
        .unwrap()
        .remove(0);
    h.store
        .job_fail(&JobFail {
            fence: fence(&j),
            error: "x".into(),
            action: FailAction::Retry { delay: LEASE },
        })
        .await
        .unwrap();
    h.insert(job_in("sentinel-3")).await;
    expect_hint(&mut rx, "sentinel-3").await;
    // Nothing stray follows.
    expect_nothing_pending(&mut rx).await;
}

/// No hint (other than warm-up ones) arrives within 300 ms.
async fn expect_nothing_pending(rx: &mut tokio::sync::broadcast::Receiver<JobsReady>) {
    let stray = next_hint(rx, Duration::from_millis(300)).await;
    assert_eq!(stray, None, "no hint was expected");
}

pub async fn subscribe_hints_on_retry_and_release(h: Harness) {
    let mut rx = subscribe_and_warm_up(&h).await;

    // Operator retry of one job, and bulk retry of failed jobs.
    let failed = make_failed(&h, "k", "retry-one").await;
    expect_hint(&mut rx, "retry-one").await; // from its insert
    assert_eq!(
        h.store.job_retry(&[failed]).await.unwrap(),
        vec![RetryOutcome::Retried { id: failed }]
    );
    expect_hint(&mut rx, "retry-one").await;
    make_failed(&h, "k", "retry-bulk").await;
    expect_hint(&mut rx, "retry-bulk").await;
    let filter = RetryFailed {
        queue: Some("retry-bulk".into()),
        kind: None,
        limit: 10,
    };
    assert_eq!(h.store.job_retry_failed(&filter).await.unwrap(), 1);
    expect_hint(&mut rx, "retry-bulk").await;
    // Nothing to retry: no hint.
    assert_eq!(h.store.job_retry_failed(&filter).await.unwrap(), 0);
    assert_eq!(
        h.store.job_retry(&[failed]).await.unwrap(),
        vec![RetryOutcome::Unchanged {
            id: failed,
            status: JobStatus::Queued
        }]
    );

    // Release on shutdown hands jobs back, ready at once.
    h.insert(job_in("release")).await;
    expect_hint(&mut rx, "release").await;
    let j = h
        .store
        .job_claim(&claim("release", "w", 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        h.store.job_release_many(&[fence(&j)]).await.unwrap(),
        vec![Ack::Done]
    );
    expect_hint(&mut rx, "release").await;
    // A stale release writes nothing and hints nothing.
    assert_eq!(
        h.store.job_release_many(&[fence(&j)]).await.unwrap(),
        vec![Ack::Stale]
    );
    h.insert(job_in("sentinel")).await;
    expect_hint(&mut rx, "sentinel").await;
}

pub async fn subscribe_hints_on_rescue_requeue_only(h: Harness) {
    let mut rx = subscribe_and_warm_up(&h).await;
    let mut last = job_in("rescue-fail");
    last.max_attempts = 1;
    h.insert(last).await;
    expect_hint(&mut rx, "rescue-fail").await;
    h.insert(job_in("rescue-requeue")).await;
    expect_hint(&mut rx, "rescue-requeue").await;
    h.store
        .job_claim(&claim("rescue-fail", "w", 1))
        .await
        .unwrap();
    h.store
        .job_claim(&claim("rescue-requeue", "w", 1))
        .await
        .unwrap();
    h.clock.advance(LEASE + Duration::from_secs(1));
    let stuck = h.store.job_list_stuck(10).await.unwrap();
    assert_eq!(stuck.len(), 2);
    let items: Vec<_> = stuck
        .iter()
        .map(|j| JobRescue {
            fence: fence(j),
            action: decide_rescue(j.attempt, j.max_attempts, false),
            message: "lease expired".into(),
        })
        .collect();
    assert_eq!(
        h.store.job_rescue_many(&items).await.unwrap(),
        vec![Ack::Done, Ack::Done]
    );
    // Only the requeued job's queue is hinted; the failed one's is not.
    expect_hint(&mut rx, "rescue-requeue").await;
    h.insert(job_in("sentinel")).await;
    expect_hint(&mut rx, "sentinel").await;
}
