//! The worker path: `job_claim` (order, delays, queues, pauses, concurrent claimers),
//! `job_complete_many`, `job_fail`, `job_heartbeat_many` and `job_release_many`.

use super::{chrono, claim, claim_one, fence, get, LEASE};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{
    decide_failure, Backoff, EventKind, FailAction, Fence, HandlerError, JobStatus, RunAt,
};
use errand_store::{Ack, JobComplete, JobFail, JobHeartbeat, Store};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
        j.args = json!({"tag": tag}).into();
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
                .map(|j| j.args.to_value()["tag"].as_str().unwrap().to_string()),
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
                super::complete(store.as_ref(), &jobs).await;
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
    // The claim hands each job its fence, the one the job's own row gives.
    for c in &jobs {
        assert_eq!(Some(c.fence.clone()), c.job.fence());
        assert_eq!((c.fence.attempt, c.fence.worker_id.as_str()), (1, "w"));
    }
    let not_held = Fence {
        attempt: jobs[2].attempt + 1, // not the attempt this worker holds
        ..jobs[2].fence.clone()
    };
    let missing = Fence {
        job_id: 999_999, // no such job
        ..jobs[0].fence.clone()
    };
    let beat = JobHeartbeat {
        lease: LEASE,
        fences: vec![
            jobs[0].fence.clone(),
            jobs[1].fence.clone(),
            not_held.clone(),
            missing.clone(),
        ],
    };
    let states = h.store.job_heartbeat_many(&beat).await.unwrap();
    // Each answer names the fence it was sent with.
    let sent: Vec<_> = states.iter().map(|s| s.fence.clone()).collect();
    assert_eq!(sent, beat.fences);
    let summary: Vec<_> = states
        .iter()
        .map(|s| (s.fence.job_id, s.held, s.cancel_requested))
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
        lease: LEASE,
        fences: vec![Fence {
            worker_id: "intruder".into(),
            ..jobs[0].fence.clone()
        }],
    };
    assert!(!h.store.job_heartbeat_many(&other).await.unwrap()[0].held);
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
