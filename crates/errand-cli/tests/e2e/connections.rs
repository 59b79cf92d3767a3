//! The real `errand serve` against clients that hold connections open, over real sockets:
//! a slow-loris crowd far larger than the server's descriptors leaves `/health` answering
//! (the server keeps its connections under its cap, so it never runs out of descriptors);
//! headers, bodies and idle keep-alive connections are cut off at their timeouts; and
//! `/health` answers 503 within about 2 s when PostgreSQL is down.

use crate::common::{self, e2e, Env, PATIENCE};
use crate::private_pg::PrivatePostgres;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

e2e!(
    a_slow_loris_crowd_leaves_health_answering,
    headers_bodies_and_idle_connections_are_cut_off_at_their_timeouts,
);

/// Connections the crowd opens before the measurements, and more during them: together
/// eight times the server's cap and four times its descriptors.
const CROWD: usize = 3000;
const CROWD_DURING: usize = 1000;
/// The server's cap, and its open-file limit (set for its process, soft and hard, so it
/// cannot raise it): the old server ran out of descriptors at this limit.
const MAX_CONNECTIONS: usize = 500;
const SERVER_FILES: u64 = 1024;

/// The API's address, from `serve`'s log line.
fn address(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line") + "http://".len();
    line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// One request on a fresh connection with `Connection: close`: the status and how long it
/// took from connecting to the end of the response.
async fn get(addr: &str, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (status_of(&response), started.elapsed())
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// Opens a connection and sends the start of a request that never ends.
async fn slow_loris(addr: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .ok()?;
    Some(s)
}

/// True once the server has closed `s` (end of file or reset).
fn closed_by_server(s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Lets this test process hold the crowd: the soft open-file limit up to the hard one.
fn raise_own_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "this test needs {needed} open files and the hard limit is {}: raise it (ulimit -Hn)",
        limit.rlim_max
    );
}

/// `serve` with `files` as its open-file limit (soft and hard).
fn serve_with_file_limit(env: &Env, files: u64) -> common::Proc {
    let mut cmd = env.errand(&["serve"]);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    env.spawn_command(cmd, "errand serve")
}

fn open_files(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn a_slow_loris_crowd_leaves_health_answering(env: Env) {
    raise_own_file_limit((CROWD + CROWD_DURING) as u64 + 256);
    env.config(&format!(
        // A long header timeout, so that only the cap keeps the server free.
        "[server]\nmax_connections = {MAX_CONNECTIONS}\nheader_read_timeout = \"5m\"\n"
    ));
    env.run(&["migrate"]).await;
    let serve = serve_with_file_limit(&env, SERVER_FILES);
    let addr = address(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;
    let pid = serve.pid();

    let started = Instant::now();
    let mut crowd = Vec::with_capacity(CROWD + CROWD_DURING);
    for _ in 0..CROWD {
        if let Some(s) = slow_loris(&addr).await {
            crowd.push(s);
        }
    }
    let opened = started.elapsed();
    // More of the crowd arrives while /health is asked.
    let more = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut more = Vec::with_capacity(CROWD_DURING);
            for _ in 0..CROWD_DURING {
                if let Some(s) = slow_loris(&addr).await {
                    more.push(s);
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            more
        })
    };
    let mut times = Vec::new();
    for _ in 0..20 {
        let (status, took) = get(&addr, "/health").await;
        assert_eq!(status, 200, "/health under the crowd\n{}", env.logs());
        times.push(took);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crowd.extend(more.await.unwrap());
    let files = open_files(pid);
    times.sort();
    // The last arrivals may still be in the backlog, and the connections they push out not
    // yet dropped: count until the bound holds or the patience runs out.
    let deadline = Instant::now() + PATIENCE;
    let mut closed = crowd.iter().filter(|s| closed_by_server(s)).count();
    while closed < crowd.len() - MAX_CONNECTIONS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        closed = crowd.iter().filter(|s| closed_by_server(s)).count();
    }
    eprintln!(
        "slow-loris: {} connections opened ({CROWD} in {opened:?}), {closed} closed by the \
         server; /health min {:?} median {:?} max {:?}; the server holds {files} files",
        crowd.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
    );
    assert!(
        crowd.len() >= CROWD + CROWD_DURING - 10,
        "the crowd could open only {} connections\n{}",
        crowd.len(),
        env.logs()
    );
    // Every /health was answered 200 (a server out of descriptors leaves new connections in
    // the backlog unanswered, and `get` fails after its patience): the times printed above
    // are for reading, not asserted (speed is the benchmarks' business).
    assert!(
        files <= MAX_CONNECTIONS + 200,
        "the server holds {files} open files with server.max_connections = {MAX_CONNECTIONS}"
    );
    assert!(
        closed >= crowd.len() - MAX_CONNECTIONS,
        "only {closed} of {} idle connections were closed with a cap of {MAX_CONNECTIONS}",
        crowd.len()
    );
    drop(crowd);
    let log = serve.stop().await;
    assert!(
        log.contains("at its connection limit (server.max_connections)"),
        "{log}"
    );
}

async fn headers_bodies_and_idle_connections_are_cut_off_at_their_timeouts(env: Env) {
    env.config(
        "[server]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nkeep_alive_timeout = \"1s\"\n",
    );
    env.run(&["migrate"]).await;
    let serve = env.spawn(&["serve"], &[]);
    let addr = address(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;

    // Headers that never end: closed after header_read_timeout.
    let mut s = slow_loris(&addr).await.expect("connect");
    let started = Instant::now();
    let n = tokio::time::timeout(PATIENCE, s.read(&mut [0u8; 256]))
        .await
        .expect("closed")
        .unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0, "closed without a response");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "headers cut off after {took:?}"
    );

    // A body that never ends: 408 after body_read_timeout, nothing enqueued.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        status_of(&response),
        408,
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(String::from_utf8_lossy(&response).contains("server.body_read_timeout"));
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "body cut off after {took:?}"
    );
    assert!(env.all_jobs().await.is_empty());

    // Kept alive: a second request within the idle timeout is served on the same
    // connection; then, idle, it is closed after keep_alive_timeout.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    for _ in 0..2 {
        s.write_all(request).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(status_of(&buf[..n]), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_since = Instant::now() - Duration::from_millis(500);
    let n = tokio::time::timeout(PATIENCE, s.read(&mut [0u8; 256]))
        .await
        .expect("closed")
        .unwrap_or(0);
    let idle = idle_since.elapsed();
    assert_eq!(n, 0);
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "idle connection closed after {idle:?}"
    );
    serve.stop().await;
}

/// `/health` and `/health/ready` with the database gone: 503 within about 2 s, not the pool's
/// 30 s; `/health/live` still 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_health_answers_503_within_two_seconds() {
    let bin = PrivatePostgres::binaries().expect(
        "this test needs initdb and pg_ctl (Debian: postgresql-15, in /usr/lib/postgresql/15/bin; \
         ERRAND_TEST_PG_BIN names another folder)",
    );
    let pg = Arc::new(PrivatePostgres::start(bin).await);
    let url = common::create_database(&pg.url("postgres")).await;
    let dir = std::env::temp_dir().join(format!("errand-e2e-{}", common::unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let outcome = common::run_in(dir.clone(), url, {
        let pg = pg.clone();
        move |env| health_with_the_database_down(env, pg)
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.is_err() {
        eprintln!("--- private PostgreSQL's log:\n{}", pg.log());
    }
    drop(pg);
    common::reraise(outcome);
}

async fn health_with_the_database_down(env: Env, pg: Arc<PrivatePostgres>) {
    env.run(&["migrate"]).await;
    let serve = env.spawn(&["serve"], &[]);
    let addr = address(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;
    assert_eq!(get(&addr, "/health").await.0, 200);
    assert_eq!(get(&addr, "/health/ready").await.0, 200);
    assert_eq!(get(&addr, "/health/live").await.0, 200);
    pg.kill().await;
    for _ in 0..3 {
        for path in ["/health", "/health/ready"] {
            let (status, took) = get(&addr, path).await;
            eprintln!("{path} with PostgreSQL down: {status} in {took:?}");
            assert_eq!(status, 503, "{path}");
            assert!(
                took < Duration::from_millis(2500),
                "{path} took {took:?} with the database down"
            );
        }
        // Liveness does not ask the database: the process is alive, no restart wanted.
        assert_eq!(get(&addr, "/health/live").await.0, 200);
    }
    pg.start_again().await;
    let deadline = Instant::now() + PATIENCE;
    while get(&addr, "/health").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/health never recovered\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    serve.stop().await;
}
