//! Tests of `errand_enqueue()`, the SQL function of migration 10: that it agrees with
//! errand-core's validation and the library's insert on the same hostile inputs (same
//! accept/refuse, same message, same stored row), follows the caller's transaction, keeps the
//! unique-key rule across concurrent transactions, wakes listeners only on commit, and works
//! from `psql`.

use crate::enqueue_in;
use crate::tests::{next_hint, subscribe_and_warm_up, url, with_store};
use cases::{cases, job, with, Expect};
use chrono::{DateTime, Utc};
use errand_core::{JobStatus, Limits, NewJob, TaskCatalog};
use errand_store::*;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use std::time::Duration;

#[path = "../../errand-store-tests/src/sql_enqueue_cases.rs"]
mod cases;

/// The statement a SQL caller runs, with every parameter given by name; the library's
/// milliseconds become intervals.
const CALL: &str = "SELECT id, inserted FROM errand_enqueue($1, $2, queue => $3, \
     priority => $4, run_at => $5, delay => $6::bigint * interval '1 millisecond', \
     max_attempts => $7, unique_key => $8, reference_type => $9, reference_id => $10, \
     timeout => $11::bigint * interval '1 millisecond')";

/// Runs `job` through the function on `conn`: the outcome, or the database's message.
async fn sql_enqueue(conn: &mut PgConnection, job: &NewJob) -> Result<Enqueued, String> {
    let row = sqlx::query(CALL)
        .bind(&job.kind)
        .bind(sqlx::types::Json(job.args.as_raw()))
        .bind(&job.queue)
        .bind(job.priority)
        .bind(job.run_at)
        .bind(job.delay_ms)
        .bind(job.max_attempts)
        .bind(&job.unique_key)
        .bind(&job.reference_type)
        .bind(&job.reference_id)
        .bind(job.timeout_ms)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) => db.message().to_owned(),
            other => other.to_string(),
        })?;
    Ok(Enqueued {
        id: row.get("id"),
        inserted: row.get("inserted"),
    })
}

/// Runs `job` through the library: the catalog (empty: every kind, the global defaults),
/// validation, and the store's insert on the caller's connection.
async fn library_enqueue(conn: &mut PgConnection, job: &NewJob) -> Result<Enqueued, String> {
    let insert = TaskCatalog::new()
        .prepare(job, None, &Limits::default())
        .map_err(|e| e.to_string())?;
    let out = enqueue_in(conn, &[insert])
        .await
        .map_err(|e| e.to_string())?;
    Ok(out[0])
}

/// What a stored row holds, with times as offsets from its creation (each path ran in its
/// own transaction, at its own "now") unless the caller gave an instant.
#[derive(Debug, PartialEq)]
struct Stored {
    queue: String,
    kind: String,
    args: Value,
    status: String,
    priority: i32,
    run_at: Result<DateTime<Utc>, i64>,
    attempt: i32,
    max_attempts: i32,
    unique_key: Option<String>,
    reference_type: Option<String>,
    reference_id: Option<String>,
    timeout_ms: Option<i64>,
    created_is_now: bool,
}

async fn stored(conn: &mut PgConnection, id: i64, absolute: bool) -> Stored {
    let r = sqlx::query(
        "SELECT queue, kind, args, status, priority, run_at, \
                (extract(epoch FROM run_at - created_at) * 1000000)::bigint AS offset_us, \
                attempt, max_attempts, unique_key, reference_type, reference_id, timeout_ms, \
                created_at = now() AND updated_at = now() AS created_is_now \
         FROM errand_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    Stored {
        queue: r.get("queue"),
        kind: r.get("kind"),
        args: r.get("args"),
        status: r.get("status"),
        priority: r.get("priority"),
        run_at: if absolute {
            Ok(r.get("run_at"))
        } else {
            Err(r.get("offset_us"))
        },
        attempt: r.get("attempt"),
        max_attempts: r.get("max_attempts"),
        unique_key: r.get("unique_key"),
        reference_type: r.get("reference_type"),
        reference_id: r.get("reference_id"),
        timeout_ms: r.get("timeout_ms"),
        created_is_now: r.get("created_is_now"),
    }
}

async fn count_jobs(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM errand_jobs")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// The function's parameter for a library field given in milliseconds.
fn interval_parameter(field: &str) -> Option<&'static str> {
    match field {
        "delay_ms" => Some("delay"),
        "timeout_ms" => Some("timeout"),
        _ => None,
    }
}

/// The same hostile inputs through the library and the function: the same answer, the same
/// message (or at least the same field), the same row; nothing written on a refusal.
#[tokio::test]
async fn the_function_agrees_with_the_library_on_hostile_inputs() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        for (name, job, expect) in cases() {
            // Each path in its own transaction, rolled back, so both see an empty table.
            let mut tx = conn.begin().await.unwrap();
            let lib = library_enqueue(&mut tx, &job).await;
            let lib_row = match &lib {
                Ok(e) => Some(stored(&mut tx, e.id, job.run_at.is_some()).await),
                Err(_) => None,
            };
            tx.rollback().await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            let sql = sql_enqueue(&mut tx, &job).await;
            let sql_row = match &sql {
                Ok(e) => Some(stored(&mut tx, e.id, job.run_at.is_some()).await),
                Err(_) => None,
            };
            tx.rollback().await.unwrap();
            match expect {
                Expect::Accepted => {
                    let (lib, sql) = (lib.unwrap(), sql.unwrap_or_else(|e| panic!("{name}: {e}")));
                    assert!(lib.inserted && sql.inserted, "{name}");
                    assert_eq!(lib_row, sql_row, "{name}: the stored rows differ");
                    let row = sql_row.unwrap();
                    assert_eq!(row.status, "queued", "{name}");
                    assert!(
                        row.created_is_now,
                        "{name}: created at the transaction's now"
                    );
                }
                Expect::Refused(field) => {
                    let (lib, sql) = (lib.unwrap_err(), sql.unwrap_err());
                    assert!(
                        lib.starts_with(&format!("invalid job: `{field}` ")),
                        "{name}: library said {lib}"
                    );
                    if lib.contains("NUL") || lib.contains("U+0000") {
                        // PostgreSQL refuses a NUL in text or jsonb itself, before the
                        // function runs, with its own message.
                        assert!(
                            sql.contains("0x00") || sql.contains("Unicode escape"),
                            "{name}: PostgreSQL refused with {sql}"
                        );
                    } else if let Some(sql_field) = interval_parameter(field) {
                        // An interval where the library takes milliseconds: the same
                        // problem, the value written as an interval.
                        assert!(
                            sql.starts_with(&format!("invalid job: `{sql_field}` ")),
                            "{name}: {sql}"
                        );
                        let problem = |m: &str| {
                            m.split_once("` ")
                                .unwrap()
                                .1
                                .split(", got")
                                .next()
                                .unwrap()
                                .to_owned()
                        };
                        assert_eq!(problem(&lib), problem(&sql), "{name}");
                    } else {
                        assert_eq!(sql, lib, "{name}: the messages differ");
                    }
                }
            }
            assert_eq!(
                count_jobs(&mut conn).await,
                0,
                "{name}: something was written"
            );
        }
    })
    .await;
}

/// A timeout is kept in whole milliseconds, rounded up: below a millisecond it must not become
/// 0, which means no limit.
#[tokio::test]
async fn a_timeout_below_a_millisecond_is_rounded_up() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        for (interval, ms) in [("0.5 ms", 1i64), ("1 ms", 1), ("1.001 ms", 2), ("0", 0)] {
            let id: i64 = sqlx::query_scalar(
                "SELECT id FROM errand_enqueue('k', '{}', timeout => $1::interval)",
            )
            .bind(interval)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            let got: Option<i64> =
                sqlx::query_scalar("SELECT timeout_ms FROM errand_jobs WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            assert_eq!(got, Some(ms), "{interval}");
        }
    })
    .await;
}

/// The library's unique-key rule, whichever path holds the key: a live job's id comes back
/// with `inserted = false`; once it finished, the key is free.
#[tokio::test]
async fn unique_keys_are_shared_with_the_library() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        let keyed = with("k", |j| j.unique_key = Some("welcome:42".into()));
        let first = library_enqueue(&mut conn, &keyed).await.unwrap();
        let again = sql_enqueue(&mut conn, &keyed).await.unwrap();
        assert_eq!(
            again,
            Enqueued {
                id: first.id,
                inserted: false
            }
        );

        // Running still holds the key; a success frees it.
        let claimed = store
            .job_claim(&JobClaim {
                queue: "default".into(),
                worker_id: "w".into(),
                limit: 1,
                lease: Duration::from_secs(30),
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(sql_enqueue(&mut conn, &keyed).await.unwrap().id, first.id);
        store
            .job_complete_many(&[JobComplete {
                fence: claimed[0].fence.clone(),
                result: None,
            }])
            .await
            .unwrap();
        let second = sql_enqueue(&mut conn, &keyed).await.unwrap();
        assert!(second.inserted);
        assert_ne!(second.id, first.id);
        // And the library sees the function's job as the key's holder.
        let third = library_enqueue(&mut conn, &keyed).await.unwrap();
        assert_eq!(
            third,
            Enqueued {
                id: second.id,
                inserted: false
            }
        );
    })
    .await;
}

#[tokio::test]
async fn the_job_exists_exactly_when_the_callers_transaction_commits() {
    with_store(None, true, |store| async move {
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query("CREATE TABLE uploads (id bigint PRIMARY KEY, state text)")
            .execute(&mut *conn)
            .await
            .unwrap();

        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO uploads VALUES (1, 'received')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let rolled_back = sql_enqueue(&mut tx, &job("scan")).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(store.job_get(rolled_back.id).await.unwrap(), None);

        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO uploads VALUES (2, 'received')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let committed = sql_enqueue(&mut tx, &job("scan")).await.unwrap();
        // Not visible to others (a worker) before the commit.
        assert_eq!(store.job_get(committed.id).await.unwrap(), None);
        tx.commit().await.unwrap();
        let claimed = store
            .job_claim(&JobClaim {
                queue: "default".into(),
                worker_id: "w".into(),
                limit: 10,
                lease: Duration::from_secs(30),
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "only the committed job runs");
        assert_eq!(claimed[0].id, committed.id);
        assert_eq!(claimed[0].status, JobStatus::Running);

        // A refused call aborts the caller's transaction: its own writes go too.
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO uploads VALUES (3, 'received')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sql_enqueue(&mut tx, &with("scan", |j| j.max_attempts = Some(0)))
            .await
            .unwrap_err();
        assert_eq!(err, "invalid job: `max_attempts` must be at least 1, got 0");
        assert!(
            tx.commit().await.is_ok(),
            "a failed transaction's COMMIT rolls back"
        );
        let uploads: i64 = sqlx::query_scalar("SELECT count(*) FROM uploads")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(uploads, 1);
        assert_eq!(count_jobs(&mut conn).await, 1);
    })
    .await;
}

/// Several connections enqueue the same key in transactions that overlap: each waits for the
/// one holding the key, and all get its id; one job exists. A holder that rolls back leaves
/// the key to the next.
#[tokio::test]
async fn unique_keys_hold_across_concurrent_transactions() {
    with_store(None, true, |store| async move {
        let keyed = with("k", |j| j.unique_key = Some("one-at-a-time".into()));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, keyed, barrier) = (store.pool().clone(), keyed.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut conn = pool.acquire().await.unwrap();
                    let mut tx = conn.begin().await.unwrap();
                    barrier.wait().await;
                    let out = sql_enqueue(&mut tx, &keyed).await.unwrap();
                    // Hold the transaction open a while, so the others queue up behind it.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    tx.commit().await.unwrap();
                    out
                })
            })
            .collect();
        let mut outs = Vec::new();
        for t in tasks {
            outs.push(t.await.unwrap());
        }
        assert_eq!(outs.iter().filter(|e| e.inserted).count(), 1, "{outs:?}");
        assert!(outs.iter().all(|e| e.id == outs[0].id), "{outs:?}");
        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(count_jobs(&mut conn).await, 1);

        // The holder rolls back while another waits on the key: the waiter inserts.
        let rolled = with("k", |j| j.unique_key = Some("handed-on".into()));
        let mut holder = store.pool().acquire().await.unwrap();
        let mut tx = holder.begin().await.unwrap();
        let held = sql_enqueue(&mut tx, &rolled).await.unwrap();
        assert!(held.inserted);
        let (pool, waiting_job) = (store.pool().clone(), rolled.clone());
        let waiter = tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            sql_enqueue(&mut conn, &waiting_job).await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiter.is_finished(),
            "the waiter waits for the holder's transaction"
        );
        tx.rollback().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter finishes once the holder rolled back")
            .unwrap();
        assert!(got.inserted);
        assert_ne!(got.id, held.id);
        assert_eq!(count_jobs(&mut conn).await, 2);
    })
    .await;
}

/// The function wakes listening workers like a library enqueue: on commit, on the schema's
/// channel, with the queue; nothing for a rollback or a delayed job.
#[tokio::test]
async fn the_function_wakes_workers_on_commit_only() {
    with_store(None, true, |store| async move {
        let mut rx = subscribe_and_warm_up(&store).await;
        let mut conn = store.pool().acquire().await.unwrap();

        let mut tx = conn.begin().await.unwrap();
        sql_enqueue(&mut tx, &with("k", |j| j.queue = Some("sql-tx".into())))
            .await
            .unwrap();
        assert_eq!(next_hint(&mut rx, Duration::from_millis(500)).await, None);
        tx.commit().await.unwrap();
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(5)).await.as_deref(),
            Some("sql-tx")
        );

        let mut tx = conn.begin().await.unwrap();
        sql_enqueue(
            &mut tx,
            &with("k", |j| j.queue = Some("rolled-back".into())),
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        sql_enqueue(
            &mut conn,
            &with("k", |j| {
                j.queue = Some("delayed".into());
                j.delay_ms = Some(3_600_000);
            }),
        )
        .await
        .unwrap();
        sql_enqueue(&mut conn, &with("k", |j| j.queue = Some("sentinel".into())))
            .await
            .unwrap();
        // Notifications arrive in commit order: a hint of the two above would come first.
        assert_eq!(
            next_hint(&mut rx, Duration::from_secs(5)).await.as_deref(),
            Some("sentinel")
        );
        assert_eq!(next_hint(&mut rx, Duration::from_millis(300)).await, None);
    })
    .await;
}

/// `psql -c`, as any shell script or other language would: the function is reached by its
/// schema-qualified name without touching the search_path, and a refusal exits non-zero with
/// the message on stderr.
#[tokio::test]
async fn psql_enqueues_and_is_told_what_is_wrong() {
    with_store(None, true, |store| async move {
        let schema = store.schema().unwrap().to_owned();
        let psql = |sql: String| {
            let out = std::process::Command::new("psql")
                .args([url().as_str(), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"])
                .arg(sql)
                .output()
                .unwrap_or_else(|e| {
                    panic!("psql is needed for this test (Debian: apt-get install postgresql-client): {e}")
                });
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (ok, stdout, stderr) = psql(format!(
            "SELECT * FROM {schema}.errand_enqueue('send_email', '{{\"to\": \"a\"}}', queue => 'email', delay => '30 seconds')"
        ));
        assert!(ok, "{stderr}");
        let (id, inserted) = stdout.split_once('|').unwrap_or_else(|| panic!("{stdout}"));
        assert_eq!(inserted, "t");
        let job = store.job_get(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!((job.kind.as_str(), job.queue.as_str()), ("send_email", "email"));
        assert_eq!(job.args, json!({"to": "a"}));
        assert_eq!(job.run_at - job.created_at, chrono::Duration::seconds(30));

        let (ok, _, stderr) = psql(format!(
            "SELECT * FROM {schema}.errand_enqueue('send email', '{{}}')"
        ));
        assert!(!ok);
        assert!(
            stderr.contains("invalid job: `kind` may hold only ASCII letters, digits and `_-.:/`, found U+0020"),
            "{stderr}"
        );
        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(count_jobs(&mut conn).await, 1);
    })
    .await;
}

/// Another role may call the function once granted EXECUTE, and needs no right on the tables
/// (the function is SECURITY DEFINER): it can enqueue without reading anyone's jobs. The role
/// lives in a transaction that is rolled back, so nothing is left on the server.
#[tokio::test]
async fn another_role_enqueues_with_execute_alone() {
    with_store(None, true, |store| async move {
        let schema = store.schema().unwrap().to_owned();
        let role = format!("{schema}_app");
        let mut conn = store.pool().acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for sql in [
            format!("CREATE ROLE {role} NOLOGIN"),
            format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
            format!("SET LOCAL ROLE {role}"),
        ] {
            sqlx::query(&sql).execute(&mut *tx).await.unwrap();
        }
        // Inside a savepoint each, since a refusal aborts the (sub)transaction.
        let call = format!("SELECT id, inserted FROM {schema}.errand_enqueue('k')");
        let mut sp = tx.begin().await.unwrap();
        let err = sqlx::query(&call).fetch_one(&mut *sp).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("permission denied for function errand_enqueue"),
            "{err}"
        );
        sp.rollback().await.unwrap();
        for sql in [
            "RESET ROLE".to_string(),
            format!("GRANT EXECUTE ON FUNCTION {schema}.errand_enqueue TO {role}"),
            format!("SET LOCAL ROLE {role}"),
        ] {
            sqlx::query(&sql).execute(&mut *tx).await.unwrap();
        }
        let row = sqlx::query(&call).fetch_one(&mut *tx).await.unwrap();
        assert!(row.get::<bool, _>("inserted"));
        let mut sp = tx.begin().await.unwrap();
        let read = format!("SELECT args FROM {schema}.errand_jobs");
        let err = sqlx::query(&read).fetch_all(&mut *sp).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("permission denied for table errand_jobs"),
            "{err}"
        );
        sp.rollback().await.unwrap();
        tx.rollback().await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
            .bind(&role)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "the role was rolled back with its transaction");
    })
    .await;
}
