//! A tiny HTTP/1.1 server that counts the side effects of HTTP jobs: every request is one
//! side effect, recorded under its `Errand-Job-Id` header before the answer (an empty 200)
//! goes back. Connections are kept alive, as the worker's pooled client expects, so tens of
//! thousands of jobs cost no more than their requests. Each request is also kept as a [`Run`]
//! (job, attempt, when it arrived, when its answer was written), to check that no job ran
//! twice at once.

use errand::JobId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server and what it has seen so far.
pub struct Sink {
    /// The base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    seen: Arc<Mutex<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Seen {
    /// Requests per job id.
    per_job: HashMap<JobId, u32>,
    /// Requests without a readable job id.
    anonymous: u64,
    /// Connections accepted (few: the workers' HTTP client keeps them alive).
    connections: u64,
    /// Every request with a job id, in the order their answers were written.
    runs: Vec<Run>,
}

/// One request of a job: one attempt's side effect, from its arrival to its answer.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub job: JobId,
    /// `Errand-Attempt`, 0 when missing.
    pub attempt: u32,
    pub start: Instant,
    /// When the answer was written (or could not be: the worker was gone).
    pub end: Instant,
}

impl Sink {
    /// Starts the server on a free loopback port; each answer waits `delay` first (to keep
    /// jobs in flight for a while).
    pub async fn start(delay: Duration) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let server = {
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    seen.lock().unwrap().connections += 1;
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, seen.clone(), delay));
                }
            })
        };
        Sink { url, seen, server }
    }

    /// How many requests each job id made.
    pub fn per_job(&self) -> HashMap<JobId, u32> {
        self.seen.lock().unwrap().per_job.clone()
    }

    /// Every request with a job id that has been answered.
    pub fn runs(&self) -> Vec<Run> {
        self.seen.lock().unwrap().runs.clone()
    }

    /// Every request, with or without a job id.
    pub fn total(&self) -> u64 {
        let seen = self.seen.lock().unwrap();
        seen.per_job.values().map(|&n| u64::from(n)).sum::<u64>() + seen.anonymous
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.seen.lock().unwrap().connections
    }

    /// Requests that carried no job id (a handler bug if not zero).
    pub fn anonymous(&self) -> u64 {
        self.seen.lock().unwrap().anonymous
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves requests on one connection until the client closes it.
async fn connection(mut stream: TcpStream, seen: Arc<Mutex<Seen>>, delay: Duration) {
    let mut data: Vec<u8> = Vec::with_capacity(4096);
    let mut buf = [0u8; 8192];
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        };
        let start = Instant::now();
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let mut length = 0usize;
        let mut job: Option<JobId> = None;
        let mut attempt = 0;
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("errand-job-id") {
                    job = value.parse().ok();
                } else if name.eq_ignore_ascii_case("errand-attempt") {
                    attempt = value.parse().unwrap_or(0);
                }
            }
        }
        // The body (its content does not matter here).
        let total = head_end + 4 + length;
        while data.len() < total {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        data.drain(..total);
        {
            let mut seen = seen.lock().unwrap();
            match job {
                Some(id) => *seen.per_job.entry(id).or_insert(0) += 1,
                None => seen.anonymous += 1,
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let written = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await;
        if let Some(job) = job {
            seen.lock().unwrap().runs.push(Run {
                job,
                attempt,
                start,
                end: Instant::now(),
            });
        }
        if written.is_err() {
            return;
        }
    }
}
