//! Statistics: `queue_stats` (kept in step with every transition), `job_finished_stats` and
//! `job_throughput`.

use super::operator::make_failed;
use super::rescue::rescue_all;
use super::wakeups::job_in;
use super::{claim, fence, get};
use crate::harness::{new_job, Harness};
use chrono::Duration as ChronoDuration;
use errand_core::{FailAction, JobStatus, RunAt};
use errand_store::{
    Ack, FinishedStats, JobComplete, JobFail, JobFinishedStats, JobList, JobPurge, JobThroughput,
    RetryFailed, ThroughputBucket,
};
use std::collections::HashMap;
use std::time::Duration;

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
