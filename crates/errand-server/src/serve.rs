//! Serving the router on a TCP listener so that no client can hold the server open: what
//! `errand serve` runs instead of `axum::serve`.
//!
//! Every connection is in one of three phases, and each phase has a clock:
//!
//! * **head**: the connection is new, or the first byte of its next request has arrived, and
//!   the request line and headers are not complete: [`ServeOptions::header_read_timeout`]
//!   from the connection's opening (or that first byte);
//! * **busy**: a request is being handled, from its complete headers until its response is
//!   ready; its body must arrive within [`ServeOptions::body_read_timeout`] (a `408` then;
//!   the deadline travels with the request as a [`BodyDeadline`], read by the body
//!   extractor); the handler itself has no clock here (a long-poll waits by design);
//! * **idle**: a kept-alive connection between requests (or one whose client is slow to read
//!   the response): [`ServeOptions::keep_alive_timeout`].
//!
//! A connection past its clock is closed. At most [`ServeOptions::max_connections`] are open
//! at once (a semaphore); when a new one arrives at the cap, the connection that has waited
//! longest in the head or idle phase is closed to make room, so clients that open
//! connections and never finish a request (slow-loris) push each other out and never shut
//! out a client that sends its request at once, such as a health probe. Only when every
//! open connection is busy does the listener wait, leaving new clients in the kernel's
//! backlog until a request finishes.
//!
//! A graceful stop closes the listener and every connection that is not busy, and waits for
//! the busy ones to send their responses (long-polls end early on the same signal).

use crate::extract::BodyDeadline;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How the listener treats its connections (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Longest a client may take to send a request line and its headers, counted from the
    /// connection's opening for its first request and from the first byte of each later one.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body once its headers are complete.
    /// Default 30 s.
    pub body_read_timeout: Duration,
    /// Longest a connection may stay idle between requests (or while its client does not read
    /// the response). Default 60 s.
    pub keep_alive_timeout: Duration,
    /// Most connections open at once. Default 1024.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The most connections [`ServeOptions::max_connections`] may allow (the semaphore's bound).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Serves `router` on `listener` until `shutdown` turns true, then stops gracefully (see the
/// module documentation). Returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let cap = options.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT);
    let permits = Arc::new(Semaphore::new(cap));
    let shared = Arc::new(Shared {
        options,
        waiting: Mutex::new(BTreeMap::new()),
        order: AtomicU64::new(0),
        evictions: Mutex::new(EvictionLog::default()),
    });
    loop {
        let stream = tokio::select! {
            biased;
            () = stopped(shutdown.clone()) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or memory (or an aborted handshake): make room
                    // if a waiting connection can give it, and try again shortly rather
                    // than spin.
                    if !is_per_connection(&e) {
                        tracing::warn!(error = %e, "HTTP API: accept failed");
                        shared.evict_oldest();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: push out the connection that has waited longest. If every one
                // is busy, look again every few milliseconds, since one that goes idle later
                // would otherwise keep its slot until its idle timeout.
                let mut got = None;
                while got.is_none() {
                    shared.evict_oldest();
                    tokio::select! {
                        biased;
                        () = stopped(shutdown.clone()) => break,
                        permit = permits.clone().acquire_owned() => {
                            got = Some(permit.expect("the semaphore is never closed"));
                        }
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
                match got {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = shared.open();
        tokio::spawn(connection(
            stream,
            conn,
            shared.clone(),
            router.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every connection holds a permit until it ends.
    let _all = permits.acquire_many(cap as u32).await;
    Ok(())
}

/// Resolves when `shutdown` turns true; never if its sender is gone without saying so.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Errors of `accept` that concern one connection only (the client gave up during the
/// handshake): nothing to wait for.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What every connection task shares: the options, and the connections that may be closed to
/// make room, oldest first.
struct Shared {
    options: ServeOptions,
    /// Connections in the head or idle phase, by the order in which they entered it.
    waiting: Mutex<BTreeMap<u64, Arc<Conn>>>,
    order: AtomicU64,
    evictions: Mutex<EvictionLog>,
}

/// Counts connections closed to make room, and says so in the log at most every
/// [`EvictionLog::EVERY`].
#[derive(Default)]
struct EvictionLog {
    since_last: u64,
    last: Option<Instant>,
}

impl EvictionLog {
    const EVERY: Duration = Duration::from_secs(10);
}

impl Shared {
    fn next_order(&self) -> u64 {
        self.order.fetch_add(1, Ordering::Relaxed)
    }

    /// A new connection, in the head phase.
    fn open(&self) -> Arc<Conn> {
        let order = self.next_order();
        let conn = Arc::new(Conn {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
                order,
            }),
            changed: Notify::new(),
        });
        lock(&self.waiting).insert(order, conn.clone());
        conn
    }

    /// Headers complete: the connection is busy and cannot be pushed out.
    fn busy(&self, conn: &Conn) {
        let mut waiting = lock(&self.waiting);
        let mut phase = lock(&conn.phase);
        if let Some(order) = phase.order() {
            waiting.remove(&order);
        }
        if !matches!(*phase, Phase::Closing) {
            *phase = Phase::Busy;
        }
        drop(phase);
        drop(waiting);
        conn.changed.notify_one();
    }

    /// The response is ready: the connection waits for its client again.
    fn idle(&self, conn: &Arc<Conn>) {
        let mut waiting = lock(&self.waiting);
        let mut phase = lock(&conn.phase);
        if matches!(*phase, Phase::Busy) {
            let order = self.next_order();
            *phase = Phase::Idle {
                since: Instant::now(),
                order,
            };
            waiting.insert(order, conn.clone());
        }
        drop(phase);
        drop(waiting);
        conn.changed.notify_one();
    }

    fn close(&self, conn: &Conn) {
        let mut waiting = lock(&self.waiting);
        let mut phase = lock(&conn.phase);
        if let Some(order) = phase.order() {
            waiting.remove(&order);
        }
        *phase = Phase::Closing;
    }

    /// Closes the connection that has waited longest without a request in flight. False if
    /// every connection is busy.
    fn evict_oldest(&self) -> bool {
        // Both locks in the order `busy` takes them, so a request that starts on this
        // connection either comes first (and the connection is no longer waiting) or finds it
        // closing; never a request cut off after it began.
        let mut waiting = lock(&self.waiting);
        let Some((_, conn)) = waiting.pop_first() else {
            return false;
        };
        *lock(&conn.phase) = Phase::Closing;
        drop(waiting);
        conn.changed.notify_one();
        let mut log = lock(&self.evictions);
        log.since_last += 1;
        if log.last.is_none_or(|t| t.elapsed() >= EvictionLog::EVERY) {
            tracing::warn!(
                closed = log.since_last,
                max_connections = self.options.max_connections,
                "HTTP API at its connection limit (server.max_connections): closing the \
                 connections that waited longest without sending a request"
            );
            log.since_last = 0;
            log.last = Some(Instant::now());
        }
        true
    }
}

/// One connection's phase, shared by its task, its I/O and its service.
struct Conn {
    phase: Mutex<Phase>,
    /// Woken on every change of phase, so the task looks at its clock again.
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Head {
        since: Instant,
        order: u64,
    },
    Busy,
    Idle {
        since: Instant,
        order: u64,
    },
    /// Pushed out to make room, or past its clock: the task drops the connection.
    Closing,
}

impl Phase {
    fn order(&self) -> Option<u64> {
        match self {
            Phase::Head { order, .. } | Phase::Idle { order, .. } => Some(*order),
            Phase::Busy | Phase::Closing => None,
        }
    }

    /// When the connection is closed unless its phase changes; `None` while busy.
    fn deadline(&self, options: &ServeOptions) -> Option<Instant> {
        match self {
            Phase::Head { since, .. } => Some(after(*since, options.header_read_timeout)),
            Phase::Idle { since, .. } => Some(after(*since, options.keep_alive_timeout)),
            Phase::Busy => None,
            Phase::Closing => Some(Instant::now()),
        }
    }
}

/// `since + d`, or a year on for a duration too long to add.
fn after(since: Instant, d: Duration) -> Instant {
    since
        .checked_add(d)
        .unwrap_or_else(|| since + Duration::from_secs(365 * 86_400))
}

impl Conn {
    fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    /// Bytes arrived: an idle connection's next request has begun, and its headers' clock
    /// starts now.
    fn bytes_arrived(&self) {
        let mut phase = lock(&self.phase);
        if let Phase::Idle { order, .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
                order,
            };
            drop(phase);
            self.changed.notify_one();
        }
    }
}

/// Runs one connection until it ends, passes its clock, is pushed out, or the server stops.
async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    router: Router,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let service = ConnService {
        router: TowerToHyperService::new(router),
        conn: conn.clone(),
        shared: shared.clone(),
    };
    let http = http1::Builder::new().serve_connection(io, service);
    tokio::pin!(http);
    let stop = stopped(shutdown);
    tokio::pin!(stop);
    let mut draining = false;
    loop {
        let phase = conn.phase();
        if matches!(phase, Phase::Closing) || (draining && !matches!(phase, Phase::Busy)) {
            break;
        }
        let deadline = phase.deadline(&shared.options);
        tokio::select! {
            biased;
            done = http.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                break;
            }
            () = conn.changed.notified() => {}
            () = sleep_until(deadline) => {
                if conn.phase().deadline(&shared.options).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(phase = ?conn.phase(), "HTTP connection closed: past its timeout");
                    break;
                }
            }
            () = &mut stop, if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
    shared.close(&conn);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The router as one connection's hyper service: marks the connection busy while a request is
/// handled, and gives the request its body deadline.
struct ConnService {
    router: TowerToHyperService<Router>,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.shared.busy(&self.conn);
        let deadline = after(Instant::now(), self.shared.options.body_read_timeout);
        req.extensions_mut().insert(BodyDeadline(deadline));
        let response = self.router.call(req);
        let conn = self.conn.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = response.await;
            shared.idle(&conn);
            response
        })
    }
}

/// The connection's socket, telling its [`Conn`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Locks a mutex, recovering from poisoning (no lock here guards a multi-step invariant that
/// a panic could break halfway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
