//! The worker registry: `worker_register`, `worker_heartbeat`, `worker_list`, `worker_remove`,
//! `worker_prune`.

use crate::harness::Harness;
use errand_store::{WorkerQueue, WorkerRegistration};
use std::time::Duration;

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
