//! The maintenance chores run by every `serve` and `worker` process, several at once on one
//! store, as a fleet does: retention deletes each old finished job once and never a live or
//! recent one; rescue applies each decision once.

mod common;

use common::*;
use errand_core::JobStatus;
use errand_store::{JobClaim, JobComplete};
use errand_store_tests::Harness;
use errand_worker::maintenance::{apply_retention, rescue_expired, Retention};
use serde_json::json;
use std::time::Duration;

errand_store_tests::both_backends!(four_processes_apply_retention_and_rescue_at_once,);

async fn four_processes_apply_retention_and_rescue_at_once(h: Harness) {
    const OLD: usize = 2500;
    let batch: Vec<_> = (0..OLD).map(|i| job("k", json!({ "i": i }))).collect();
    h.store.job_insert_many(&batch).await.unwrap();
    // Claim and finish them all now, then let 2 days pass.
    let mut done = 0;
    while done < OLD {
        let jobs = h
            .store
            .job_claim(&JobClaim {
                queue: "default".into(),
                worker_id: "w".into(),
                limit: 500,
                lease: Duration::from_secs(30),
            })
            .await
            .unwrap();
        let items: Vec<_> = jobs
            .iter()
            .map(|j| JobComplete {
                fence: j.fence().unwrap(),
                result: None,
            })
            .collect();
        h.store.job_complete_many(&items).await.unwrap();
        done += jobs.len();
    }
    h.clock.advance(Duration::from_secs(2 * 86_400));
    // A job that finished just now, one running under a lease about to expire, and one
    // waiting for its run_at: retention leaves all three alone.
    let claim = |worker: &str| JobClaim {
        queue: "default".into(),
        worker_id: worker.into(),
        limit: 1,
        lease: Duration::from_secs(1),
    };
    let fresh = h.insert(job("k", json!({}))).await;
    let f = h.store.job_claim(&claim("w")).await.unwrap().remove(0);
    assert_eq!(f.id, fresh);
    h.store
        .job_complete_many(&[JobComplete {
            fence: f.fence().unwrap(),
            result: None,
        }])
        .await
        .unwrap();
    let live = h.insert(job("k", json!({}))).await;
    assert_eq!(
        h.store
            .job_claim(&claim("gone"))
            .await
            .unwrap()
            .remove(0)
            .id,
        live
    );
    let mut later = job("k", json!({}));
    later.run_at = errand_core::RunAt::After(Duration::from_secs(3600));
    let waiting = h.insert(later).await;
    h.clock.advance(Duration::from_secs(5));

    let policy = Retention {
        succeeded: Some(Duration::from_secs(86_400)),
        ..Retention::OFF
    };
    let now = h.now();
    let store = h.store.clone();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let deleted = apply_retention(store.as_ref(), &policy, now).await.unwrap();
            let rescued = rescue_expired(store.as_ref(), |_| {}).await.unwrap();
            (deleted, rescued)
        }));
    }
    let mut deleted = 0;
    let mut rescued = 0;
    for t in tasks {
        let (d, r) = t.await.unwrap();
        deleted += d;
        rescued += r;
    }
    assert_eq!(
        deleted, OLD as u64,
        "each old job deleted once, whoever did it"
    );
    assert_eq!(rescued, 1, "the expired lease rescued once");
    let left = all_jobs(&h).await;
    let mut ids: Vec<_> = left.iter().map(|j| j.id).collect();
    ids.sort();
    let mut expected = vec![fresh, live, waiting];
    expected.sort();
    assert_eq!(
        ids, expected,
        "only the recent, live and just-finished jobs remain"
    );
    let live_job = left.iter().find(|j| j.id == live).unwrap();
    assert_eq!((live_job.status, live_job.attempt), (JobStatus::Queued, 1));
}
