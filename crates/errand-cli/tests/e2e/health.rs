//! `errand health`, the probe of containers and orchestrators: healthy only when the database
//! answers and is migrated (and, with `--workers`, a worker of this host heartbeats); unhealthy
//! with the reason, fast, when the database is missing, behind or down.

use crate::common::{e2e, json, Env};
use std::time::{Duration, Instant};

e2e!(health_probe_reports_schema_and_workers,);

async fn health_probe_reports_schema_and_workers(env: Env) {
    // Before `migrate`: the database may exist (PostgreSQL) or not (SQLite); either way, not
    // healthy, and the probe created nothing.
    let before = env.run(&["health"]).await;
    assert_eq!(before.code, Some(1), "{before:?}");
    assert!(before.stdout.starts_with("unhealthy: "), "{before:?}");
    assert!(
        before.stdout.contains("no database at") || before.stdout.contains("no Errand schema"),
        "{before:?}"
    );
    if !env.url.starts_with("postgres") {
        assert!(
            !std::path::Path::new(&env.url).exists(),
            "the probe created the database"
        );
    }

    assert_eq!(env.run(&["migrate"]).await.code, Some(0));
    let ok = env.run(&["health"]).await;
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(ok.stdout.starts_with("ok: "), "{ok:?}");
    let doc = json(&env.run(&["health", "--json"]).await);
    assert_eq!(doc["status"], "ok", "{doc}");
    assert!(doc["schema_version"].as_i64().unwrap() >= 1, "{doc}");
    assert!(doc["problem"].is_null(), "{doc}");

    // --workers: no worker runs yet, so this host has none.
    let none = env.run(&["health", "--workers", "--json"]).await;
    assert_eq!(none.code, Some(1), "{none:?}");
    let doc: serde_json::Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(doc["status"], "unhealthy");
    assert!(
        doc["problem"]
            .as_str()
            .unwrap()
            .contains("no worker of host"),
        "{doc}"
    );

    // A worker of this host: healthy while it runs.
    env.config("[queues.default]\nconcurrency = 1\n[tasks.noop]\ncommand = [\"true\"]\n");
    let worker = env.spawn(&["worker"], &[]);
    worker.ready().await;
    let live = env.run(&["health", "--workers", "--json"]).await;
    assert_eq!(live.code, Some(0), "{live:?}");
    let doc: serde_json::Value = serde_json::from_str(&live.stdout).unwrap();
    assert_eq!(doc["live_workers"], 1, "{doc}");
    worker.stop().await;
    // A clean stop removes the worker's row: unhealthy again at once.
    let gone = env.run(&["health", "--workers"]).await;
    assert_eq!(gone.code, Some(1), "{gone:?}");

    // A killed worker leaves its row behind: healthy while the row is fresh, unhealthy once it
    // is two leases old (the liveness probe's case).
    env.config(
        "[workers]\nlease = \"1s\"\n[queues.default]\nconcurrency = 1\n\
         [tasks.noop]\ncommand = [\"true\"]\n",
    );
    let worker = env.spawn(&["worker"], &[]);
    worker.ready().await;
    assert_eq!(env.run(&["health", "--workers"]).await.code, Some(0));
    let mut worker = worker;
    worker.signal(libc::SIGKILL);
    worker.exit().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = env.run(&["health", "--workers", "--json"]).await;
        if out.code == Some(1) {
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert!(
                doc["problem"]
                    .as_str()
                    .unwrap()
                    .contains("no worker of host"),
                "{doc}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still healthy: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A PostgreSQL server that does not answer (a port nobody listens on, and a server that
/// accepts the connection and then says nothing, as one behind a stalled network does):
/// unhealthy within the probe's 2 s, with the cause and no password shown.
#[tokio::test]
async fn health_probe_is_fast_when_postgres_is_down() {
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", crate::common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let (silent_port, held) = silent_server().await;
    let hanging = format!("postgres://errand:hunter2@127.0.0.1:{silent_port}/jobs");
    for (url, cause) in [
        ("postgres://errand:hunter2@127.0.0.1:1/jobs", "refused"),
        (hanging.as_str(), "did not answer"),
    ] {
        let started = Instant::now();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
            .args(["--database", url, "health"])
            .env_remove("ERRAND_CONFIG")
            .env_remove("ERRAND_DATABASE_URL")
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stdout} {stderr}");
        assert!(stdout.to_lowercase().contains(cause), "{url}: {stdout}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "{stdout} {stderr}"
        );
        assert!(
            took < Duration::from_secs(2),
            "{url}: the probe took {took:?}"
        );
    }
    held.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `errand serve` with a database it cannot use fails at once (well before the pool's 30 s),
/// with the cause and the URL with its password hidden: connection refused, an unknown host,
/// a role the server does not know. (TLS failures: `tls_postgres`, on a private server whose
/// certificates the test makes.)
#[tokio::test]
async fn serve_fails_fast_naming_why_the_database_is_unusable() {
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", crate::common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = crate::common::postgres_server(); // postgres://postgres@127.0.0.1:5432/...
                                                   // A server that accepts and then says nothing: the connect gives up after its 5 s.
    let (silent_port, held) = silent_server().await;
    let host = server
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let cases = [
        (
            "postgres://errand:hunter2@127.0.0.1:1/jobs".to_string(),
            "refused",
        ),
        (
            "postgres://errand:hunter2@no-such-host.invalid/jobs".to_string(),
            "lookup",
        ),
        (
            format!("postgres://no_such_role:hunter2@{host}/test"),
            "no_such_role",
        ),
        (
            format!("postgres://errand:hunter2@127.0.0.1:{silent_port}/jobs"),
            "no answer",
        ),
    ];
    for (url, cause) in cases {
        let started = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
                .args(["--database", &url, "serve"])
                .env_remove("ERRAND_CONFIG")
                .env_remove("ERRAND_DATABASE_URL")
                .env("ERRAND_SERVER_LISTEN", "127.0.0.1:0")
                .current_dir(&dir)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{url}: serve did not give up within 20 s"))
        .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.to_lowercase().contains(cause), "{url}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "the password is shown: {stderr}"
        );
        assert!(took < Duration::from_secs(10), "{url}: took {took:?}");
    }
    held.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that accepts connections and never says a word, as a database behind a stalled
/// network does: its port, and the task holding the connections (abort it when done).
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn); // keep it open, answer nothing
        }
    });
    (port, held)
}
