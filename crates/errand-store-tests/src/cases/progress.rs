//! A running job's progress report: `job_progress`, written under the fence like a
//! heartbeat, stale once the worker lost the job or it finished, cleared when an attempt
//! starts, kept after the job finishes; and the size limit, which no store is handed a value
//! beyond.

use super::{claim_one, fence, get, LEASE};
use crate::cases::rescue::rescue_all;
use crate::harness::{new_job, Harness};
use errand_core::{FailAction, Fence, JobStatus, Progress, MAX_PROGRESS_BYTES};
use errand_store::{Ack, JobComplete, JobFail, JobProgress};
use serde_json::{json, Value};
use std::time::Duration;

fn report(fence: &Fence, value: Value) -> JobProgress {
    JobProgress {
        fence: fence.clone(),
        progress: Progress::new(value).expect("a valid progress value"),
    }
}

async fn write(h: &Harness, fence: &Fence, value: Value) -> Ack {
    h.store.job_progress(&report(fence, value)).await.unwrap()
}

pub async fn job_progress_is_written_while_the_lease_is_held_and_kept_after_success(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "w").await;
    assert_eq!((j.progress.as_ref(), j.progress_at), (None, None));
    h.clock.advance(Duration::from_millis(250));
    let first = json!({"done": 40, "total": 100, "message": "copying"});
    assert_eq!(write(&h, &fence(&j), first.clone()).await, Ack::Done);
    let seen = get(&h, id).await;
    assert_eq!(seen.progress, Some(first));
    assert_eq!(seen.progress_at, Some(h.now()));
    assert_eq!(seen.status, JobStatus::Running);
    assert_eq!(seen.lease_expires_at, j.lease_expires_at, "not a heartbeat");

    // The next report replaces it; any JSON value is the handler's to choose.
    h.clock.advance(Duration::from_millis(250));
    assert_eq!(write(&h, &fence(&j), json!(0.99)).await, Ack::Done);
    let seen = get(&h, id).await;
    assert_eq!(seen.progress, Some(json!(0.99)));
    assert_eq!(seen.progress_at, Some(h.now()));
    let written_at = h.now();

    // Another worker, or another attempt of the same worker, is not the holder.
    let stranger = Fence {
        worker_id: "other".into(),
        ..fence(&j)
    };
    assert_eq!(write(&h, &stranger, json!(1)).await, Ack::Stale);
    let next_attempt = Fence {
        attempt: j.attempt + 1,
        ..fence(&j)
    };
    assert_eq!(write(&h, &next_attempt, json!(1)).await, Ack::Stale);

    h.clock.advance(Duration::from_millis(250));
    let done = h
        .store
        .job_complete_many(&[JobComplete {
            fence: fence(&j),
            result: None,
        }])
        .await
        .unwrap();
    assert_eq!(done, vec![Ack::Done]);
    // A finished job keeps its last report; a late one is stale and changes nothing.
    assert_eq!(write(&h, &fence(&j), json!("late")).await, Ack::Stale);
    let finished = get(&h, id).await;
    assert_eq!(finished.status, JobStatus::Succeeded);
    assert_eq!(finished.progress, Some(json!(0.99)));
    assert_eq!(finished.progress_at, Some(written_at));
}

pub async fn job_progress_is_stale_once_the_job_was_rescued_or_ended(h: Harness) {
    // Rescued after its lease ran out: the old holder's report is refused.
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "dead-worker").await;
    assert_eq!(write(&h, &fence(&j), json!({"done": 1})).await, Ack::Done);
    h.clock.advance(LEASE + Duration::from_millis(1));
    assert_eq!(rescue_all(&h, "lease expired").await, vec![Ack::Done]);
    assert_eq!(write(&h, &fence(&j), json!({"done": 2})).await, Ack::Stale);
    assert_eq!(get(&h, id).await.progress, Some(json!({"done": 1})));
    // The next holder reports under its own fence.
    let again = claim_one(&h, "live-worker").await;
    assert_eq!(again.id, id);
    assert_eq!(write(&h, &fence(&j), json!({"done": 3})).await, Ack::Stale);
    assert_eq!(
        write(&h, &fence(&again), json!({"done": 4})).await,
        Ack::Done
    );
    assert_eq!(get(&h, id).await.progress, Some(json!({"done": 4})));

    // Failed for good, cancelled, handed back: nobody holds the job any more.
    let failed = h.insert(new_job("k")).await;
    let f = claim_one(&h, "w").await;
    assert_eq!(f.id, failed);
    h.store
        .job_fail(&JobFail {
            fence: fence(&f),
            error: "boom".into(),
            action: FailAction::Fail,
        })
        .await
        .unwrap();
    assert_eq!(write(&h, &fence(&f), json!(1)).await, Ack::Stale);

    let cancelled = h.insert(new_job("k")).await;
    let c = claim_one(&h, "w").await;
    assert_eq!(c.id, cancelled);
    h.store.job_cancel_ack(&fence(&c), None).await.unwrap();
    assert_eq!(write(&h, &fence(&c), json!(1)).await, Ack::Stale);

    let released = h.insert(new_job("k")).await;
    let r = claim_one(&h, "w").await;
    assert_eq!(r.id, released);
    h.store.job_release_many(&[fence(&r)]).await.unwrap();
    assert_eq!(write(&h, &fence(&r), json!(1)).await, Ack::Stale);

    // A job that is not there at all.
    let missing = Fence {
        job_id: released + 1000,
        ..fence(&r)
    };
    assert_eq!(write(&h, &missing, json!(1)).await, Ack::Stale);
}

pub async fn job_progress_is_cleared_when_the_next_attempt_is_claimed(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let first = claim_one(&h, "w").await;
    assert_eq!(
        write(&h, &fence(&first), json!({"done": 7})).await,
        Ack::Done
    );
    h.store
        .job_fail(&JobFail {
            fence: fence(&first),
            error: "try again".into(),
            action: FailAction::Retry {
                delay: Duration::ZERO,
            },
        })
        .await
        .unwrap();
    // Waiting for its retry, the job still shows how far the failed attempt came.
    let waiting = get(&h, id).await;
    assert_eq!(waiting.status, JobStatus::Queued);
    assert_eq!(waiting.progress, Some(json!({"done": 7})));
    let second = claim_one(&h, "w").await;
    assert_eq!((second.id, second.attempt), (id, 2));
    assert_eq!((second.progress.as_ref(), second.progress_at), (None, None));
    let stored = get(&h, id).await;
    assert_eq!((stored.progress, stored.progress_at), (None, None));
}

pub async fn job_progress_refuses_values_beyond_the_limit(h: Harness) {
    let id = h.insert(new_job("k")).await;
    let j = claim_one(&h, "w").await;
    // The largest value there is: a string whose compact JSON is exactly the limit.
    let largest = Value::String("p".repeat(MAX_PROGRESS_BYTES - 2));
    assert_eq!(write(&h, &fence(&j), largest.clone()).await, Ack::Done);
    assert_eq!(get(&h, id).await.progress, Some(largest));
    // One byte more cannot become a `Progress`, so it never reaches a store.
    let e = Progress::new(Value::String("p".repeat(MAX_PROGRESS_BYTES - 1))).unwrap_err();
    assert!(e.to_string().starts_with("`progress` is 8193 bytes"), "{e}");
    assert!(e.problem.contains("8192 bytes (8 KiB)"), "{}", e.problem);
    let e = Progress::new(json!({"step": "a\u{0}"})).unwrap_err();
    assert!(e.problem.contains("NUL"), "{}", e.problem);
}
