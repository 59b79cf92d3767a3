//! The SQLite file on the disk: a full disk (a real one, a small tmpfs) is a 503 naming it
//! while `/health` says degraded, and both recover once space is freed; after any command or
//! `serve` exits, the `.db` file alone holds every commit; `errand backup` copies a live
//! database (and refuses PostgreSQL, pointing to pg_dump).

use crate::common::{self, e2e, json, Env, PATIENCE};
use errand::{Client, JobList, JobStatus};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

e2e!(backup_copies_a_live_sqlite_database_and_refuses_postgres);

/// A tmpfs of `size` mounted on a fresh folder, unmounted and removed when dropped (also when
/// the test panics). Mounting needs root (or CAP_SYS_ADMIN): without it the test fails, it
/// does not skip.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("errand-e2e-full-{}", common::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount(8)");
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "this test fills a real disk, a {size} tmpfs, and could not mount one on {} \
                 (it needs root or CAP_SYS_ADMIN): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes `path` until the disk is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull,
                    "filling the disk: {e}"
                );
                break;
            }
        }
    }
    let _ = f.sync_all();
    written
}

fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_disk_is_a_503_and_health_degraded_until_space_is_freed() {
    let disk = Tmpfs::mount("4m");
    let url = disk.dir.join("jobs.db").display().to_string();
    let outcome = common::run_in(disk.dir.clone(), url, full_disk).await;
    drop(disk);
    common::reraise(outcome);
}

async fn full_disk(env: Env) {
    common::ok(&env.run(&["migrate"]).await);
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;
    let http = crate::common::http_client();
    let enqueue = |args: Value| {
        http.post(format!("{base}/v1/jobs"))
            .json(&json!({"kind": "k", "args": args}))
            .send()
    };
    let health = || async {
        let r = http.get(format!("{base}/health")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(enqueue(json!({"n": 1})).await.unwrap().status(), 201);
    assert_eq!(health().await.0, 200);

    let filler = env.dir.join("filler");
    let filled = fill(&filler);
    // Bigger than anything the log already has room for, so the write needs new space.
    let big = json!({"blob": "x".repeat(900 * 1024)});
    let r = enqueue(big.clone()).await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    eprintln!("disk full after {filled} bytes of filler: POST /v1/jobs {status} {body}");
    assert_eq!(status, 503, "{body}\n{}", env.logs());
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the disk holding the database is full"),
        "{message}"
    );
    let (status, h) = health().await;
    assert_eq!(
        (status, h["status"].as_str()),
        (503, Some("degraded")),
        "{h}"
    );
    assert!(
        h["database"]
            .as_str()
            .unwrap()
            .contains("disk holding the database is full"),
        "{h}"
    );
    // The CLI says the same, as a runtime failure.
    let out = env
        .run_with_stdin(&["enqueue", "k", "--args", "-"], Some(&big.to_string()))
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("the disk holding the database is full"),
        "{out:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    let r = enqueue(big).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (status, h) = health().await;
    assert_eq!(status, 200, "after freeing space: {h}");
    assert_eq!(
        env.all_jobs().await.len(),
        2,
        "the refused writes left nothing behind"
    );
    serve.stop().await;
}

/// Copies the `.db` file alone (no `-wal`, no `-shm`) into a fresh folder and opens it.
async fn open_copy_of_file_alone(db: &Path) -> (Client, PathBuf) {
    let dir = std::env::temp_dir().join(format!("errand-e2e-copy-{}", common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy.db");
    std::fs::copy(db, &copy).unwrap();
    let client = Client::builder(copy.display().to_string())
        .migrate(false)
        .connect()
        .await
        .unwrap();
    (client, dir)
}

async fn jobs_in(client: &Client) -> Vec<errand::Job> {
    client
        .list(&JobList {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
}

fn wal_bytes(db: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_database_file_alone_holds_every_commit_after_a_clean_exit() {
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = dir.join("jobs.db").display().to_string();
    let outcome = common::run_in(dir.clone(), url, file_alone).await;
    let _ = std::fs::remove_dir_all(&dir);
    common::reraise(outcome);
}

async fn file_alone(env: Env) {
    let db = PathBuf::from(&env.url);
    common::ok(&env.run(&["migrate"]).await);
    for n in 0..3 {
        common::enqueued_id(
            &env.run(&["enqueue", "note", "--args", &json!({"n": n}).to_string()])
                .await,
        );
        assert_eq!(
            wal_bytes(&db),
            0,
            "`errand enqueue` left {} bytes of log",
            wal_bytes(&db)
        );
        let (copy, dir) = open_copy_of_file_alone(&db).await;
        assert_eq!(
            jobs_in(&copy).await.len(),
            n + 1,
            "the file alone lacks a job after enqueue"
        );
        drop(copy);
        let _ = std::fs::remove_dir_all(dir);
    }

    env.config("[tasks.note]\ncommand = [\"true\"]\n");
    let serve = env.spawn(&["serve"], &[]);
    serve.ready().await;
    for n in 3..23 {
        common::enqueued_id(
            &env.run(&["enqueue", "note", "--args", &json!({"n": n}).to_string()])
                .await,
        );
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while env
        .all_jobs()
        .await
        .iter()
        .any(|j| j.status != JobStatus::Succeeded)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs never all ran\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.stop().await;
    assert_eq!(
        wal_bytes(&db),
        0,
        "`errand serve` left {} bytes of log",
        wal_bytes(&db)
    );
    let (copy, dir) = open_copy_of_file_alone(&db).await;
    let jobs = jobs_in(&copy).await;
    assert_eq!(jobs.len(), 23);
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Succeeded),
        "{jobs:#?}"
    );
    drop(copy);
    let _ = std::fs::remove_dir_all(dir);
}

async fn backup_copies_a_live_sqlite_database_and_refuses_postgres(env: Env) {
    let help = env.run(&["backup", "--help"]).await;
    common::ok(&help);
    assert!(
        help.stdout.contains("VACUUM INTO") && help.stdout.contains("pg_dump"),
        "{}",
        help.stdout
    );
    common::ok(&env.run(&["migrate"]).await);
    let copy = env.path("copy.db");
    if env.url.starts_with("postgres") {
        let out = env.run(&["backup", &copy]).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains("pg_dump"), "{out:?}");
        assert!(
            !Path::new(&copy).exists(),
            "nothing is written for PostgreSQL"
        );
        return;
    }
    env.config("[tasks.note]\ncommand = [\"true\"]\n");
    let serve = env.spawn(&["serve"], &[]);
    serve.ready().await;
    for n in 0..5 {
        common::enqueued_id(
            &env.run(&["enqueue", "note", "--args", &json!({"n": n}).to_string()])
                .await,
        );
    }
    // Online, beside the running server.
    let out = env.run(&["backup", &copy]).await;
    common::ok(&out);
    assert!(out.stdout.contains("backed up to"), "{out:?}");
    let doc = json(&env.run(&["backup", &env.path("copy2.db"), "--json"]).await);
    assert_eq!(doc["path"], env.path("copy2.db"));
    assert!(doc["bytes"].as_u64().unwrap() > 0, "{doc}");
    for path in [&copy, &env.path("copy2.db")] {
        let client = Client::builder(path.clone())
            .migrate(false)
            .connect()
            .await
            .unwrap();
        assert_eq!(jobs_in(&client).await.len(), 5, "{path}");
        assert!(client.migration_status().await.unwrap().pending.is_empty());
    }
    // Bad destinations: refused, nothing changed.
    let before = std::fs::read(&copy).unwrap();
    env.expect_bad_input(&[
        (
            &["backup", &copy],
            "already exists: a backup never overwrites a file",
        ),
        (&["backup", &env.path("missing/x.db")], "does not exist"),
    ])
    .await;
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    assert!(!Path::new(&env.path("missing")).exists());
    serve.stop().await;
}
