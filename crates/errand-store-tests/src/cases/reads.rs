//! Reads: `job_list` (filters, derived states, paging) and the event log (`event_insert`,
//! `event_list`).

use super::{claim_one, fence, get};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{EventKind, FailAction, JobStatus, NewEvent, RunAt};
use errand_store::{Ack, JobComplete, JobFail, JobList, JobPage, StateFilter, StoreError};
use serde_json::json;
use std::time::Duration;

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
    let missing = h
        .store
        .event_insert(&NewEvent {
            job_id: 999_999,
            kind: EventKind::Cancelled,
            attempt: 0,
            worker_id: None,
            message: None,
            data: None,
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(999_999))),
        "{missing:?}"
    );
}
