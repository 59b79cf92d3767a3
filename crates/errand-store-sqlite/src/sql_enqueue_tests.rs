//! Tests of the `errand_enqueue` view (migration 10): a second connection on the store's file,
//! as an application's own, enqueues inside its own transaction. It agrees with errand-core's
//! validation and the library's insert on the same inputs, its jobs exist exactly when its
//! transaction commits while a worker claims beside it, and Python's `sqlite3` (the system's
//! SQLite library, not the one bundled here) can use it.

use crate::tests::TempDb;
use crate::{SqliteOptions, SqliteStore};
use cases::{cases, with, Expect};
use chrono::Utc;
use errand_core::{Job, Limits, NewJob, TaskCatalog};
use errand_store::*;
use rusqlite::{params, Connection};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "../../errand-store-tests/src/sql_enqueue_cases.rs"]
mod cases;

const INSERT: &str = "INSERT INTO errand_enqueue (kind, args, queue, priority, run_at, delay_ms, \
     max_attempts, unique_key, reference_type, reference_id, timeout_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const RESULT: &str = "SELECT id, inserted FROM errand_enqueue_result";

/// A migrated store on the system clock (the view reads SQLite's own clock).
async fn store(db: &TempDb) -> SqliteStore {
    let store = SqliteStore::open(&db.target(), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// The application's own connection to the file.
fn app_connection(db: &TempDb) -> Connection {
    app_connection_at(&db.0)
}

fn app_connection_at(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Inserts `job` into the view on `conn`, in whatever transaction `conn` has open, and reads
/// the outcome: the id and whether it was inserted, or SQLite's message.
fn view_enqueue(conn: &Connection, job: &NewJob) -> Result<Enqueued, String> {
    let args = serde_json::to_string(&job.args).unwrap();
    let run_at = job.run_at.map(|t| t.timestamp_micros());
    conn.execute(
        INSERT,
        params![
            job.kind,
            args,
            job.queue,
            job.priority,
            run_at,
            job.delay_ms,
            job.max_attempts,
            job.unique_key,
            job.reference_type,
            job.reference_id,
            job.timeout_ms,
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message,
        other => other.to_string(),
    })?;
    conn.query_row(RESULT, [], |r| {
        Ok(Enqueued {
            id: r.get(0)?,
            inserted: r.get(1)?,
        })
    })
    .map_err(|e| e.to_string())
}

/// Runs `job` through the library: the catalog (empty), validation, the store's insert.
async fn library_enqueue(store: &SqliteStore, job: &NewJob) -> Result<Enqueued, String> {
    let insert = TaskCatalog::new()
        .prepare(job, None, &Limits::default())
        .map_err(|e| e.to_string())?;
    let out = store
        .job_insert_many(&[insert])
        .await
        .map_err(|e| e.to_string())?;
    Ok(out[0])
}

/// A stored job as both paths must leave it: times as offsets from its creation (each path
/// ran at its own "now"), unless the caller gave an instant.
fn comparable(job: &Job, absolute: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(job).unwrap();
    let obj = v.as_object_mut().unwrap();
    for volatile in ["id", "created_at", "updated_at", "run_at"] {
        obj.remove(volatile);
    }
    let run_at = if absolute {
        json!(job.run_at)
    } else {
        json!((job.run_at - job.created_at).num_microseconds())
    };
    obj.insert("run_at".into(), run_at);
    v
}

fn count_jobs(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM errand_jobs", [], |r| r.get(0))
        .unwrap()
}

/// The inputs of errand-store-tests' table through the library and through the view: the
/// same accept/refuse naming the same field, the same row, nothing written on a refusal.
/// SQLite's RAISE takes a constant message, so the view's message is the library's without
/// the value it quotes (the args size alone is worded differently).
#[tokio::test]
async fn the_view_agrees_with_the_library_on_hostile_inputs() {
    let db = TempDb::new("sql-enqueue-cases");
    let store = store(&db).await;
    let conn = app_connection(&db);
    for (name, job, expect) in cases() {
        let lib = library_enqueue(&store, &job).await;
        let lib_row = match &lib {
            Ok(e) => Some(store.job_get(e.id).await.unwrap().unwrap()),
            Err(_) => None,
        };
        conn.execute("DELETE FROM errand_jobs", []).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let sql = view_enqueue(&conn, &job);
        conn.execute_batch("COMMIT").unwrap();
        let sql_row = match &sql {
            Ok(e) => Some(store.job_get(e.id).await.unwrap().unwrap()),
            Err(_) => None,
        };
        match expect {
            Expect::Accepted => {
                let (lib, sql) = (lib.unwrap(), sql.unwrap_or_else(|e| panic!("{name}: {e}")));
                assert!(lib.inserted && sql.inserted, "{name}");
                let absolute = job.run_at.is_some();
                let (lib_row, sql_row) = (lib_row.unwrap(), sql_row.unwrap());
                assert_eq!(
                    comparable(&lib_row, absolute),
                    comparable(&sql_row, absolute),
                    "{name}: the stored rows differ"
                );
                let age = Utc::now() - sql_row.created_at;
                assert!(
                    age >= chrono::Duration::zero() && age < chrono::Duration::seconds(5),
                    "{name}: created at {}",
                    sql_row.created_at
                );
                conn.execute("DELETE FROM errand_jobs", []).unwrap();
            }
            Expect::Refused(field) => {
                let (lib, sql) = (lib.unwrap_err(), sql.unwrap_err());
                let named = format!("invalid job: `{field}` ");
                assert!(lib.starts_with(&named), "{name}: library said {lib}");
                assert!(sql.starts_with(&named), "{name}: the view said {sql}");
                let size = sql == "invalid job: `args` is over the limit of 1048576 bytes";
                assert!(
                    lib.starts_with(&sql)
                        || size && lib.ends_with("over the limit of 1048576 bytes"),
                    "{name}: the view said {sql}, the library {lib}"
                );
            }
        }
        assert_eq!(count_jobs(&conn), 0, "{name}: something was left");
    }
    let nodes: i64 = conn
        .query_row("SELECT count(*) FROM errand_enqueue_nodes", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(nodes, 0, "the depth walk's scratch rows are cleared");
}

/// What only a SQL caller can send (a column's value of the wrong type, JSON that does not
/// parse) is refused too, naming the column, and writes nothing.
#[tokio::test]
async fn values_of_the_wrong_type_are_refused() {
    use rusqlite::types::Value as Sql;
    let db = TempDb::new("sql-enqueue-types");
    let _store = store(&db).await;
    let conn = app_connection(&db);
    let text = |s: &str| Sql::Text(s.into());
    let cases: Vec<(&str, Sql, &str)> = vec![
        (
            "args",
            text("{\"a\": 1"),
            "invalid job: `args` must be JSON text",
        ),
        (
            "args",
            text("{\"a\": \"x\u{1}\"}"),
            "invalid job: `args` must be JSON text",
        ),
        (
            "args",
            Sql::Blob(b"{}".to_vec()),
            "invalid job: `args` must be JSON text",
        ),
        (
            "args",
            Sql::Integer(1),
            "invalid job: `args` must be JSON text",
        ),
        (
            "priority",
            text("5"),
            "invalid job: `priority` must be an integer",
        ),
        (
            "priority",
            Sql::Real(1.5),
            "invalid job: `priority` must be an integer",
        ),
        (
            "priority",
            Sql::Integer(1 << 31),
            "invalid job: `priority` must be an integer",
        ),
        (
            "max_attempts",
            Sql::Integer(1 << 31),
            "invalid job: `max_attempts` must be an integer",
        ),
        (
            "max_attempts",
            text("3"),
            "invalid job: `max_attempts` must be an integer",
        ),
        (
            "delay_ms",
            Sql::Real(0.5),
            "invalid job: `delay_ms` must be an integer",
        ),
        (
            "timeout_ms",
            text("10m"),
            "invalid job: `timeout_ms` must be an integer",
        ),
        (
            "kind",
            Sql::Blob(b"k".to_vec()),
            "invalid job: `kind` must be text",
        ),
        ("kind", Sql::Integer(7), "invalid job: `kind` must be text"),
        (
            "queue",
            Sql::Blob(b"q".to_vec()),
            "invalid job: `queue` must be text",
        ),
        (
            "unique_key",
            Sql::Blob(b"key".to_vec()),
            "invalid job: `unique_key` must be text",
        ),
        (
            "unique_key",
            Sql::Integer(42),
            "invalid job: `unique_key` must be text",
        ),
        (
            "reference_type",
            Sql::Blob(b"user".to_vec()),
            "invalid job: `reference_type` must be text",
        ),
        (
            "reference_id",
            Sql::Blob(b"42".to_vec()),
            "invalid job: `reference_id` must be text",
        ),
        (
            "delay_ms",
            Sql::Integer(i64::MAX),
            "invalid job: `delay_ms` must be at most 300 years",
        ),
        (
            "run_at",
            Sql::Integer(i64::MAX),
            "invalid job: `run_at` must be within the years 0000 to 9999",
        ),
        (
            "run_at",
            Sql::Integer(i64::MIN),
            "invalid job: `run_at` must be within the years 0000 to 9999",
        ),
        (
            "run_at",
            text("2026-01-01T00:00:00Z"),
            "invalid job: `run_at` must be an integer (microseconds since the Unix epoch)",
        ),
    ];
    for (column, value, message) in cases {
        let sql = if column == "kind" {
            "INSERT INTO errand_enqueue (kind) VALUES (?1)".to_string()
        } else {
            format!("INSERT INTO errand_enqueue (kind, {column}) VALUES ('k', ?1)")
        };
        let err = conn.execute(&sql, [&value]).unwrap_err();
        let got = match err {
            rusqlite::Error::SqliteFailure(_, Some(m)) => m,
            other => other.to_string(),
        };
        assert_eq!(got, message, "{column} = {value:?}");
        assert_eq!(count_jobs(&conn), 0);
    }
    // The same values with the right types go in.
    conn.execute(
        "INSERT INTO errand_enqueue (kind, args, priority, max_attempts, delay_ms, timeout_ms) \
         VALUES ('k', '{\"a\": 1}', 5, 3, 0, 600000)",
        [],
    )
    .unwrap();
    assert_eq!(count_jobs(&conn), 1);
}

/// The library's unique-key rule, whichever path holds the key.
#[tokio::test]
async fn unique_keys_are_shared_with_the_library() {
    let db = TempDb::new("sql-enqueue-keys");
    let store = store(&db).await;
    let conn = app_connection(&db);
    let keyed = with("k", |j| j.unique_key = Some("welcome:42".into()));
    let first = library_enqueue(&store, &keyed).await.unwrap();
    assert_eq!(
        view_enqueue(&conn, &keyed).unwrap(),
        Enqueued {
            id: first.id,
            inserted: false
        }
    );
    let claimed = store.job_claim(&claim(1)).await.unwrap();
    assert_eq!(
        view_enqueue(&conn, &keyed).unwrap().id,
        first.id,
        "running holds it"
    );
    store
        .job_complete_many(&[JobComplete {
            fence: claimed[0].fence.clone(),
            result: None,
        }])
        .await
        .unwrap();
    let second = view_enqueue(&conn, &keyed).unwrap();
    assert!(second.inserted);
    assert_ne!(second.id, first.id);
    assert_eq!(
        library_enqueue(&store, &keyed).await.unwrap(),
        Enqueued {
            id: second.id,
            inserted: false
        }
    );
}

fn claim(limit: u32) -> JobClaim {
    JobClaim {
        queue: "default".into(),
        worker_id: "w".into(),
        limit,
        lease: Duration::from_secs(30),
    }
}

/// A worker claims and completes in a loop while the application's connection enqueues in
/// transactions of its own, one committed after holding the write lock a while, one rolled
/// back: the worker waits for the lock instead of failing, and runs only the committed job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_exists_exactly_when_the_applications_transaction_commits() {
    let db = TempDb::new("sql-enqueue-tx");
    let store = store(&db).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let worker = {
        let (store, stop, ran) = (store.clone(), stop.clone(), ran.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match store.job_claim(&claim(10)).await {
                    Ok(jobs) => {
                        for j in jobs {
                            ran.lock().unwrap().push(j.kind.clone());
                            let done = JobComplete {
                                fence: j.fence.clone(),
                                result: Some(json!({"ok": true})),
                            };
                            if let Err(e) = store.job_complete_many(&[done]).await {
                                errors.push(e.to_string());
                            }
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        })
    };

    let path = db.0.clone();
    let app = std::thread::spawn(move || {
        let conn = app_connection_at(&path);
        conn.execute_batch(
            "CREATE TABLE uploads (id INTEGER PRIMARY KEY, state TEXT); BEGIN IMMEDIATE;",
        )
        .unwrap();
        conn.execute("INSERT INTO uploads VALUES (1, 'received')", [])
            .unwrap();
        let committed =
            view_enqueue(&conn, &NewJob::new("committed", json!({"upload": 1}))).unwrap();
        // Hold the write lock: the worker's claims wait (busy_timeout) meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        conn.execute_batch("COMMIT").unwrap();

        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO uploads VALUES (2, 'received')", [])
            .unwrap();
        view_enqueue(&conn, &NewJob::new("rolled_back", json!({"upload": 2}))).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();

        // A refusal aborts the statement only; the transaction and its writes go on.
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO uploads VALUES (3, 'received')", [])
            .unwrap();
        let refused = view_enqueue(&conn, &with("bad", |j| j.max_attempts = Some(0)));
        conn.execute_batch("COMMIT").unwrap();
        (committed, refused)
    });
    let (committed, refused) = tokio::task::spawn_blocking(move || app.join().unwrap())
        .await
        .unwrap();
    assert!(committed.inserted);
    assert_eq!(
        refused.unwrap_err(),
        "invalid job: `max_attempts` must be at least 1"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = store.job_get(committed.id).await.unwrap().unwrap();
        if job.status.is_finished() {
            assert_eq!(job.result, Some(json!({"ok": true})));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the committed job never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the worker time to claim anything else there were.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let errors = worker.await.unwrap();
    assert!(
        errors.is_empty(),
        "the worker failed while the app wrote: {errors:?}"
    );
    assert_eq!(*ran.lock().unwrap(), vec!["committed".to_string()]);
    let conn = app_connection(&db);
    assert_eq!(count_jobs(&conn), 1);
    let uploads: i64 = conn
        .query_row("SELECT count(*) FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        uploads, 2,
        "the refused enqueue left the application's own write"
    );
}

/// The application's connection is Python's `sqlite3` on the system's SQLite library (older
/// than the one bundled here): the view, its trigger and the depth view must parse and run
/// there, in a transaction that commits and one that rolls back.
#[tokio::test]
async fn python_sqlite3_enqueues_in_its_own_transaction() {
    const SCRIPT: &str = r#"
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
out = {"sqlite": sqlite3.sqlite_version}

def enqueue(**job):
    cols = ", ".join(job)
    marks = ", ".join("?" for _ in job)
    conn.execute(f"INSERT INTO errand_enqueue ({cols}) VALUES ({marks})", list(job.values()))
    return list(conn.execute("SELECT id, inserted FROM errand_enqueue_result").fetchone())

conn.execute("CREATE TABLE uploads (id INTEGER PRIMARY KEY, state TEXT)")
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO uploads VALUES (1, 'received')")
out["committed"] = enqueue(kind="scan_upload", args=json.dumps({"upload": 1, "deep": [[[[1]]]] * 60}),
                           queue="ingest", unique_key="scan:1", reference_type="upload",
                           reference_id="1", delay_ms=30000)
out["again"] = enqueue(kind="scan_upload", unique_key="scan:1")
conn.execute("COMMIT")
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO uploads VALUES (2, 'received')")
out["rolled_back"] = enqueue(kind="scan_upload", args=json.dumps({"upload": 2}), queue="ingest")
conn.execute("ROLLBACK")
try:
    enqueue(kind="scan upload")
except sqlite3.IntegrityError as e:
    out["refused"] = str(e)
out["uploads"] = conn.execute("SELECT count(*) FROM uploads").fetchone()[0]
print(json.dumps(out))
"#;
    let db = TempDb::new("sql-enqueue-python");
    let store = store(&db).await;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&db.0)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test (Debian: apt-get install python3): {e}")
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = out["committed"][0].as_i64().unwrap();
    assert_eq!(out["committed"][1], 1);
    assert_eq!(out["again"], json!([id, 0]));
    assert_eq!(
        out["refused"],
        "invalid job: `kind` may hold only ASCII letters, digits and `_-.:/`"
    );
    assert_eq!(out["uploads"], 1);
    let job = store.job_get(id).await.unwrap().unwrap();
    assert_eq!(
        (job.kind.as_str(), job.queue.as_str()),
        ("scan_upload", "ingest")
    );
    assert_eq!(job.args.to_value()["upload"], 1);
    assert_eq!(
        (job.reference_type.as_deref(), job.reference_id.as_deref()),
        (Some("upload"), Some("1"))
    );
    assert_eq!(job.run_at - job.created_at, chrono::Duration::seconds(30));
    let rolled_back = out["rolled_back"][0].as_i64().unwrap();
    assert!(
        store.job_get(rolled_back).await.unwrap().is_none(),
        "the rolled-back job is not stored"
    );
    assert_eq!(count_jobs(&app_connection(&db)), 1);
    eprintln!("Python's SQLite: {}", out["sqlite"]);
}
