//! Rescue of expired leases: `job_list_stuck` and `job_rescue_many` (requeue, fail, cancel,
//! a renewed lease left alone), and the fence that keeps a rescued job's old worker out.

use super::{claim, claim_one, fence, get, LEASE};
use crate::harness::{new_job, Harness};
use errand_core::{decide_rescue, EventKind, FailAction, Fence, JobStatus, RescueAction};
use errand_store::{
    Ack, JobComplete, JobFail, JobHeartbeat, JobList, JobRescue, StateFilter, StoreError,
};
use serde_json::json;
use std::time::Duration;

pub(super) async fn rescue_all(h: &Harness, message: &str) -> Vec<Ack> {
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
        lease: LEASE,
        fences: vec![fence(&j)],
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
        lease: LEASE,
        fences: vec![Fence {
            job_id: id,
            attempt: 1,
            worker_id: "worker-a".into(),
        }],
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
