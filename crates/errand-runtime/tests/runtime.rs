//! A [`Runtime`] started from Rust, with no CLI and no configuration file, on SQLite and on
//! PostgreSQL: a command task, an HTTP task and an in-process Rust handler run through its
//! worker pool, a job is read back through its HTTP API, and a
//! [`Stopper`](errand_runtime::Stopper) stops it.
//!
//! This test binary has its own `main` (`harness = false`) because it is also its command
//! attempts' guard program, as any binary embedding the runtime is: it calls
//! [`errand_runtime::guard::run_if_requested`] first. `cargo test -p errand-runtime --test
//! runtime [sqlite|postgres]` runs both backends or one. PostgreSQL is
//! `ERRAND_TEST_DATABASE_URL` or the local server; unreachable, the test fails.

use axum::routing::post;
use axum::{Json, Router};
use errand::{Client, JobStatus};
use errand_runtime::{Handler, Runtime, ServerSettings, TaskDefinition, WorkerSettings};
use serde_json::{json, Value};
use sqlx::migrate::MigrateDatabase;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() {
    errand_runtime::guard::run_if_requested();
    // The test's own HTTP client: reqwest is built with rustls and no crypto provider of its
    // own, so the process installs ring, as the errand binary does.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut ran = 0;
    for backend in ["sqlite", "postgres"] {
        let name = format!("a_runtime_runs_command_and_http_tasks_{backend}");
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        runtime.block_on(a_runtime_runs_command_and_http_tasks(backend));
        println!("ok");
        ran += 1;
    }
    println!("\ntest result: ok. {ran} passed");
}

/// A database of its own for the backend, and how to drop it.
async fn database(backend: &str) -> (String, Option<String>) {
    let unique = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("errand-runtime-{unique}.db"));
            (path.display().to_string(), None)
        }
        _ => {
            let server = std::env::var("ERRAND_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
            let base = server.rsplit_once('/').expect("a database URL").0;
            let url = format!("{base}/errand_runtime_{unique}");
            sqlx::Postgres::create_database(&url)
                .await
                .unwrap_or_else(|e| panic!("creating a PostgreSQL database at {server}: {e}"));
            (url.clone(), Some(url))
        }
    }
}

/// An endpoint for the HTTP task: answers with what it was sent.
async fn endpoint() -> String {
    let app = Router::new().route(
        "/hook",
        post(|Json(args): Json<Value>| async move { Json(json!({ "echo": args })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

async fn a_runtime_runs_command_and_http_tasks(backend: &str) {
    let (url, drop_url) = database(backend).await;
    let hook = endpoint().await;
    let command = TaskDefinition::new(Handler::Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            r#"read -r args; echo "{\"kind\":\"$ERRAND_KIND\",\"args\":$args}""#.into(),
        ],
    });
    let http = TaskDefinition::new(Handler::Http {
        url: hook,
        headers: BTreeMap::new(),
        tls: Default::default(),
    })
    .queue("hooks");
    let handle = Runtime::builder(url.clone())
        .task("shell", command)
        .task("hook", http)
        .task("double", TaskDefinition::new(Handler::InProcess))
        .on_pool(|pool| {
            pool.register_kind("double", |_ctx, args: Value| async move {
                let n = args["n"].as_i64().unwrap_or(0);
                Ok::<_, errand::HandlerError>(json!({ "doubled": n * 2 }))
            })
        })
        .queue("default", 2)
        .queue("hooks", 1)
        .workers(WorkerSettings {
            poll_interval: Duration::from_millis(50),
            ..WorkerSettings::default()
        })
        .server(ServerSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerSettings::default()
        })
        .start()
        .await
        .unwrap_or_else(|e| panic!("{backend}: the runtime did not start: {e}"));
    let info = handle.info();
    assert!(info.claiming, "{info:?}");
    assert!(info.scheduling, "{info:?}");
    let addr = handle.http_addr().expect("the HTTP API runs");

    let client = handle.client().clone();
    let shell = client
        .enqueue_kind("shell", json!({"n": 1}))
        .send()
        .await
        .unwrap();
    // The task's queue comes from its definition, not from the caller.
    let hook = client
        .enqueue_kind("hook", json!({"n": 2}))
        .send()
        .await
        .unwrap();
    let double = client
        .enqueue_kind("double", json!({"n": 21}))
        .send()
        .await
        .unwrap();
    let shell = finished(&client, shell.id).await;
    assert_eq!(shell.status, JobStatus::Succeeded, "{shell:?}");
    assert_eq!(
        shell.result,
        Some(json!({"kind": "shell", "args": {"n": 1}})),
        "the command read its args on stdin and printed its result"
    );
    let double = finished(&client, double.id).await;
    assert_eq!(double.status, JobStatus::Succeeded, "{double:?}");
    assert_eq!(double.result, Some(json!({"doubled": 42})));
    let hook = finished(&client, hook.id).await;
    assert_eq!(hook.status, JobStatus::Succeeded, "{hook:?}");
    assert_eq!(hook.queue, "hooks");
    assert_eq!(hook.result, Some(json!({"echo": {"n": 2}})));

    // The HTTP API serves the same jobs.
    let response = reqwest::get(format!("http://{addr}/v1/jobs/{}", hook.id))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(field(&body, "kind"), Some(&json!("hook")), "{body}");

    // A stopper from elsewhere ends `wait`, which stops every service.
    let stopper = handle.stopper();
    tokio::spawn(async move { stopper.stop() });
    tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .expect("the runtime stops");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the HTTP API no longer listens"
    );
    drop(client);

    match drop_url {
        Some(url) => sqlx::Postgres::force_drop_database(&url).await.unwrap(),
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{url}{suffix}"));
            }
        }
    }
}

/// The job once it is finished (succeeded, failed or cancelled), within 30 seconds.
async fn finished(client: &Client, id: i64) -> errand::Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = client.job(id).await.unwrap().expect("the job exists");
        if job.status.is_finished() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished: {job:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The first value of `key` in `v`, at any depth (the job view may be wrapped).
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| field(v, key))),
        Value::Array(items) => items.iter().find_map(|v| field(v, key)),
        _ => None,
    }
}
