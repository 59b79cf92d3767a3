//! Wake-up hints: `subscribe` delivers a hint for an insert of ready jobs, an operator retry, a
//! release and a rescue requeue, and none for jobs that are not ready.

use super::operator::make_failed;
use super::{claim, fence, LEASE};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{decide_rescue, FailAction, JobStatus, RunAt};
use errand_store::{Ack, JobFail, JobRescue, JobsReady, RetryFailed, RetryOutcome};
use std::time::Duration;

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
pub(super) fn job_in(queue: &str) -> errand_core::JobInsert {
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
