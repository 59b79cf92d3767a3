//! Operator actions: `job_cancel`, `job_retry`, `job_retry_failed` and `job_purge`.

use super::{claim, claim_one, fence, get};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{EventKind, FailAction, JobStatus};
use errand_store::{CancelOutcome, JobComplete, JobFail, JobPurge, RetryFailed, RetryOutcome};
use std::time::Duration;

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

pub(super) async fn make_failed(h: &Harness, kind: &str, queue: &str) -> i64 {
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

/// Fails the one ready job (which must be `id`) for good.
async fn fail_for_good(h: &Harness, id: i64) {
    let j = claim_one(h, "w").await;
    assert_eq!(j.id, id);
    h.store
        .job_fail(&JobFail {
            fence: fence(&j),
            error: "x".into(),
            action: FailAction::Fail,
        })
        .await
        .unwrap();
}

pub async fn job_retry_never_gives_a_live_unique_key_to_a_second_job(h: Harness) {
    let mut keyed = new_job("k");
    keyed.unique_key = Some("one".into());
    let failed = h.insert(keyed.clone()).await;
    fail_for_good(&h, failed).await;
    // The key is free once its job finished: a new job takes it.
    let live = h.insert(keyed).await;
    assert_ne!(live, failed);
    assert_eq!(
        h.store.job_retry(&[failed, 999_999]).await.unwrap(),
        vec![
            RetryOutcome::Unchanged {
                id: failed,
                status: JobStatus::Failed
            },
            RetryOutcome::NotFound { id: 999_999 },
        ],
        "a live job holds the key"
    );
    let all = RetryFailed {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        h.store.job_retry_failed(&all).await.unwrap(),
        0,
        "bulk retry skips it, so a caller looping until 0 stops"
    );
    assert_eq!(get(&h, failed).await.status, JobStatus::Failed);
    // Once the live job is gone, the failed one may have its key back.
    h.store.job_cancel(&[live], None).await.unwrap();
    assert_eq!(
        h.store.job_retry(&[failed]).await.unwrap(),
        vec![RetryOutcome::Retried { id: failed }]
    );
    assert_eq!(
        h.store.job_retry(&[live]).await.unwrap(),
        vec![RetryOutcome::Unchanged {
            id: live,
            status: JobStatus::Cancelled
        }],
        "now the retried job holds the key"
    );
}

pub async fn job_retry_of_several_jobs_with_one_key_retries_only_one(h: Harness) {
    let mut keyed = new_job("k");
    keyed.unique_key = Some("one".into());
    let mut failed = Vec::new();
    for _ in 0..3 {
        let id = h.insert(keyed.clone()).await;
        fail_for_good(&h, id).await;
        failed.push(id);
    }
    // By id: the first named one.
    assert_eq!(
        h.store.job_retry(&[failed[1], failed[0]]).await.unwrap(),
        vec![
            RetryOutcome::Retried { id: failed[1] },
            RetryOutcome::Unchanged {
                id: failed[0],
                status: JobStatus::Failed
            },
        ]
    );
    h.store.job_cancel(&[failed[1]], None).await.unwrap();
    // In bulk: the oldest, then nothing more.
    let all = RetryFailed {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(h.store.job_retry_failed(&all).await.unwrap(), 1);
    assert_eq!(h.store.job_retry_failed(&all).await.unwrap(), 0);
    let statuses = [
        get(&h, failed[0]).await.status,
        get(&h, failed[1]).await.status,
        get(&h, failed[2]).await.status,
    ];
    assert_eq!(
        statuses,
        [JobStatus::Queued, JobStatus::Cancelled, JobStatus::Failed]
    );
}
