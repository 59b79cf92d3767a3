//! The harness of the end-to-end tests: each test gets a temporary directory (the binary's
//! working directory, for errand.toml, scripts and pid files) and a database of its own (an
//! SQLite file there, or a fresh PostgreSQL database, dropped afterwards even when the test
//! panics), runs the real `errand` binary, and checks the outcome with the library client.
//! Waits are on something happening (a log line, a job's state), bounded by [`PATIENCE`].

use errand::{Client, Event, EventKind, Job, JobId, JobList};
use sqlx::migrate::MigrateDatabase;
use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, OnceCell};

/// The longest any single wait may take. It bounds a hang; it is not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Expands each case (an `async fn(Env)` in the invoking module) into a `sqlite::case` and a
/// `postgres::case` test.
macro_rules! e2e {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::common::run($crate::common::Backend::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::common::run($crate::common::Backend::Postgres, super::$case).await;
                }
            )*
        }
    };
}
pub(crate) use e2e;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server: `ERRAND_TEST_DATABASE_URL`, else the local one.
pub fn postgres_server() -> String {
    std::env::var("ERRAND_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A client for the tests' own HTTP requests. reqwest is built with rustls and no crypto
/// provider of its own (the binary installs ring at start), so the test process installs ring
/// first.
pub fn http_client() -> reqwest::Client {
    http_builder().build().unwrap()
}

/// [`http_client`]'s builder, for tests that need other settings.
pub fn http_builder() -> reqwest::ClientBuilder {
    #[allow(deprecated)] // ring has no post-quantum key exchange; the binary uses it too
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn unique() -> String {
    format!("{}_{:016x}", std::process::id(), fastrand_u64())
}

/// A random number without a dependency: the hash of a fresh `RandomState`.
fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// A process's log lines, shared with the task reading them.
type Lines = Arc<Mutex<Vec<String>>>;

/// Everything a test case works with.
///
/// Cases create the database with their first command (`enqueue`, `migrate`) before they start
/// a worker beside it: two processes opening a fresh SQLite file at the same instant can fail
/// with "database is locked" (switching a new file to WAL does not wait for the lock; an issue
/// of `errand-store-sqlite`, reported).
pub struct Env {
    /// The binary's working directory.
    pub dir: PathBuf,
    /// The database URL passed with `--database`.
    pub url: String,
    client: OnceCell<Client>,
    logs: Arc<Mutex<Vec<(String, Lines)>>>,
}

/// Runs one case on one backend: makes its directory and database, runs it, removes them,
/// then re-raises the case's panic, if any.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = match backend {
        Backend::Sqlite => dir.join("jobs.db").display().to_string(),
        Backend::Postgres => create_database(&postgres_server()).await,
    };
    let outcome = run_in(dir.clone(), url.clone(), case).await;
    if backend == Backend::Postgres {
        if let Err(e) = sqlx::Postgres::force_drop_database(&url).await {
            eprintln!("could not drop the test database {url}: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    reraise(outcome);
}

/// Creates a fresh database on the PostgreSQL `server` and returns its URL.
pub async fn create_database(server: &str) -> String {
    let mut url = reqwest::Url::parse(server).expect("the PostgreSQL server URL is a URL");
    url.set_path(&format!("/errand_e2e_{}", unique()));
    let url = url.to_string();
    sqlx::Postgres::create_database(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the postgres tests and could not create a database \
                 on {server}: {e}"
            )
        });
    url
}

/// Runs `case` in its own task with `dir` as the binary's working directory and `url` as its
/// database; the caller cleans up, then passes the outcome to [`reraise`].
pub async fn run_in<F, Fut>(
    dir: PathBuf,
    url: String,
    case: F,
) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = Env {
        dir,
        url,
        client: OnceCell::new(),
        logs: Arc::default(),
    };
    tokio::spawn(case(env)).await
}

/// Re-raises a case's panic, if any.
pub fn reraise(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Asserts the run exited 0.
pub fn ok(out: &Output) {
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// Asserts the run exited 0 and returns its stdout as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    ok(out);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

impl Env {
    /// The binary with `--database` set, in the test's directory, with no `ERRAND_*` or
    /// `RUST_LOG` variable from the environment the tests run in. The HTTP API of `serve`
    /// listens on a free loopback port (its log line "HTTP API listening on" names it), so
    /// tests running at once do not fight over 7070.
    pub fn errand(&self, args: &[&str]) -> Command {
        let mut cmd = self.errand_bare(&["--database", &self.url]);
        cmd.args(args);
        cmd
    }

    /// The binary without `--database`: the database is what the configuration (or its
    /// absence) says.
    pub fn errand_bare(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_errand"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ERRAND_") || name == "RUST_LOG" {
                cmd.env_remove(name);
            }
        }
        cmd.env("ERRAND_SERVER_LISTEN", "127.0.0.1:0");
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs each command line, which must be refused as bad input: exit 2, nothing on
    /// stdout, and stderr containing its expected words.
    pub async fn expect_bad_input(&self, cases: &[(&[&str], &str)]) {
        for (args, expected) in cases {
            let out = self.run(args).await;
            assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
            assert!(
                out.stderr.contains(expected),
                "{args:?}: stderr {:?} lacks {expected:?}",
                out.stderr
            );
            assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        }
    }

    /// Runs the binary to its end.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs the binary to its end, feeding `stdin`.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.errand(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn errand");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("errand {args:?} did not finish within {PATIENCE:?}"))
            .unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes `errand.toml` in the test's directory (where the binary looks by default).
    pub fn config(&self, toml: &str) {
        std::fs::write(self.dir.join("errand.toml"), toml).unwrap();
    }

    /// Writes a shell script into the test's directory and returns its path.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        path.display().to_string()
    }

    /// A path in the test's directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The library client on the test's database.
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                Client::builder(self.url.clone())
                    .postgres_max_connections(2)
                    .connect()
                    .await
                    .expect("connect the test client")
            })
            .await
    }

    /// Starts the binary in the background (`worker`, `serve`), capturing its log.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = self.errand(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.spawn_command(cmd, &format!("errand {}", args.join(" ")))
    }

    /// Starts `cmd` (from [`Env::errand`] or [`Env::errand_bare`]) in the background,
    /// capturing its log under `name`.
    pub fn spawn_command(&self, mut cmd: Command, name: &str) -> Proc {
        let mut child = cmd.spawn().expect("spawn errand");
        let lines: Lines = Arc::default();
        let notify = Arc::new(Notify::new());
        let stderr = child.stderr.take().unwrap();
        {
            let lines = lines.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                    notify.notify_waiters();
                }
            });
        }
        let name = name.to_string();
        self.logs
            .lock()
            .unwrap()
            .push((name.clone(), lines.clone()));
        Proc {
            name,
            child,
            lines,
            notify,
        }
    }

    /// Every background process's log so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, lines) in self.logs.lock().unwrap().iter() {
            out.push_str(&format!("--- log of `{name}`:\n"));
            for l in lines.lock().unwrap().iter() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub async fn job(&self, id: JobId) -> Job {
        self.client()
            .await
            .job(id)
            .await
            .unwrap()
            .expect("the job exists")
    }

    pub async fn events(&self, id: JobId) -> Vec<Event> {
        self.client().await.job_with_events(id).await.unwrap().1
    }

    pub async fn events_of(&self, id: JobId, kind: EventKind) -> Vec<Event> {
        self.events(id)
            .await
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// Every job in the database.
    pub async fn all_jobs(&self) -> Vec<Job> {
        let list = JobList {
            limit: 1000,
            ..Default::default()
        };
        self.client().await.list(&list).await.unwrap().jobs
    }

    /// Every job in the database, however many, newest first.
    pub async fn every_job(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut list = JobList {
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = self.client().await.list(&list).await.unwrap();
            jobs.extend(page.jobs);
            match page.next_cursor {
                Some(cursor) => list.before_id = Some(cursor),
                None => return jobs,
            }
        }
    }

    /// Job counts by state over every queue: (queued, running, succeeded, failed, cancelled).
    pub async fn counts(&self) -> [u64; 5] {
        let stats = self.client().await.queue_stats().await.unwrap();
        let mut c = [0; 5];
        for q in stats {
            c[0] += q.queued;
            c[1] += q.running;
            c[2] += q.succeeded;
            c[3] += q.failed;
            c[4] += q.cancelled;
        }
        c
    }

    /// Polls the job until `done` holds, failing with the job and the logs after [`PATIENCE`].
    pub async fn wait_job(&self, id: JobId, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "job {id} never became {what}; it is {job:#?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a file exists and holds a pid.
    pub async fn wait_pid_file(&self, path: &str) -> i32 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{path} never held a pid\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until process `pid` is gone (and reaped: a zombie still has its /proc entry).
    pub async fn wait_process_gone(&self, pid: i32) {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while proc.exists() {
            if tokio::time::Instant::now() > deadline {
                let status = std::fs::read_to_string(proc.join("status")).unwrap_or_default();
                panic!("process {pid} is still there:\n{status}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A background `errand` process.
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: Lines,
    notify: Arc<Notify>,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle` and returns it.
    pub async fn wait_for_line(&self, needle: &str) -> String {
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(l) = self
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l.contains(needle))
                {
                    return l.clone();
                }
                notified.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "`{}` never logged {needle:?}; its log:\n{}",
                self.name,
                self.log()
            )
        })
    }

    /// Waits until the process is ready to work: its start-up line.
    pub async fn ready(&self) -> String {
        self.wait_for_line("errand ready").await
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child; no memory is involved.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit by itself.
    pub async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("`{}` did not exit; its log:\n{}", self.name, self.log()),
        }
    }

    /// SIGTERM, then waits for the exit and asserts it was clean (code 0).
    pub async fn stop(self) -> String {
        self.stop_with(libc::SIGTERM).await
    }

    /// `signal` (SIGTERM or SIGINT), then waits for the exit and asserts it was clean.
    pub async fn stop_with(mut self, signal: i32) -> String {
        self.signal(signal);
        let status = self.exit().await;
        assert_eq!(
            status.code(),
            Some(0),
            "`{}` exited with {status}; its log:\n{}",
            self.name,
            self.log()
        );
        self.log()
    }
}

/// Parses `enqueued job 42` (or the JSON form) into the id.
pub fn enqueued_id(out: &Output) -> JobId {
    assert_eq!(out.code, Some(0), "enqueue failed: {out:?}");
    let text = out.stdout.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return v["id"].as_i64().expect("an id");
    }
    text.strip_prefix("enqueued job ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected enqueue output: {text}"))
}

/// The live (not zombie) processes whose environment `wanted` accepts (its `NAME=value`
/// entries): pid and command line. How the guard and flow-control cases find the processes of
/// the commands they started.
pub fn live_processes(wanted: impl Fn(&[&[u8]]) -> bool) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        if !wanted(&vars) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
        if state.as_deref() == Some("Z") || state.is_none() {
            continue; // a zombie is dead already (or it is gone)
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        found.push((pid, cmdline.trim().to_string()));
    }
    found
}
