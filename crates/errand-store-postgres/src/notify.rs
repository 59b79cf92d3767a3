//! Wake-up hints on PostgreSQL: `NOTIFY` in the statements that make jobs ready, and one
//! `LISTEN` task per store that forwards the notifications to the store's subscribers.
//!
//! # Sending
//!
//! The statements that make jobs ready now (the insert, also through [`crate::enqueue_in`];
//! operator retry; release; rescue requeue) carry a [`notify_cte!`] that calls `pg_notify`
//! once per distinct queue they touched, with the queue name as payload, on the channel
//! `errand_ready_<schema>`. The channel is computed in SQL from `current_schema()`, so an
//! insert on a caller's connection notifies the schema it actually wrote to. PostgreSQL
//! delivers notifications only when the transaction commits (nothing on rollback) and folds
//! identical (channel, payload) pairs of one transaction into one.
//!
//! # Listening
//!
//! [`Wake::subscribe`] hands out receivers of a [`broadcast`] channel. The first call (and
//! the first one after the listener stopped) spawns the listener task: its own connection
//! (the store's connect options, `application_name = errand-listener`), `LISTEN` on the
//! channel, each notification forwarded as [`JobsReady`]. On a lost connection it logs a
//! warning and reconnects forever with a backoff from 100 ms doubling to 5 s; after a
//! reconnect it sends [`JobsReady`] with queue `"*"` ("anything may be ready"), since what
//! was notified meanwhile is lost. The task stops, closing its connection:
//!
//! - when the store (every clone) is dropped, or [`crate::PgStore::drop_schema`] runs;
//! - when no receiver is left, noticed at the next notification or at an idle check every
//!   5 s (a later `subscribe` starts a new task).

use crate::{PgStore, CONNECT_TIMEOUT};
use errand_store::JobsReady;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Hints buffered per subscriber before the slowest one starts losing the oldest
/// (`RecvError::Lagged`); a worker that lags simply claims, so losing hints is harmless.
const CAPACITY: usize = 1024;
/// Channel names start with this, followed by the schema.
const CHANNEL_PREFIX: &str = "errand_ready_";
/// PostgreSQL's longest identifier (NAMEDATALEN - 1); `pg_notify` rejects longer channels.
const MAX_CHANNEL_LEN: usize = 63;
/// The queue of the hint sent after a reconnect: anything may be ready.
pub(crate) const ANY_QUEUE: &str = "*";
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle listener checks whether anyone still subscribes.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Longest wait for the listener to close its connection when stopped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQL expression of the hint channel of the current schema (see [`channel_for`]).
macro_rules! channel_sql {
    () => {
        "left('errand_ready_' || current_schema(), 63)"
    };
}
pub(crate) use channel_sql;

/// A CTE named `notified` that sends one hint per distinct `queue` of `$source`: the name
/// of an earlier CTE with a `queue` column, optionally followed by a `WHERE` clause that
/// keeps the rows that became ready. It yields one row,
/// so the statement's final `SELECT` must reference it (`CROSS JOIN notified`): a
/// non-data-modifying CTE that is not referenced is never evaluated.
macro_rules! notify_cte {
    ($source:literal) => {
        concat!(
            "notified AS (SELECT count(pg_notify(",
            $crate::notify::channel_sql!(),
            ", queue)) AS n FROM (SELECT DISTINCT queue FROM ",
            $source,
            ") ready_queues)"
        )
    };
}
pub(crate) use notify_cte;

/// The channel of a schema, as [`channel_sql!`] computes it (schema names are ASCII).
pub(crate) fn channel_for(schema: &str) -> String {
    let mut channel = format!("{CHANNEL_PREFIX}{schema}");
    channel.truncate(MAX_CHANNEL_LEN);
    channel
}

/// Locks, recovering from poisoning (the state stays consistent across a panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A store's hint channel and its listener task. Shared by the store's clones; dropping
/// the last one stops the task.
pub(crate) struct Wake {
    tx: broadcast::Sender<JobsReady>,
    /// The listener epoch: bumping it stops the running listener; dropping it (with the
    /// store) stops it too.
    stop: watch::Sender<u64>,
    state: Arc<Mutex<State>>,
}

/// Which listener runs, shared with the task.
#[derive(Default)]
struct State {
    /// The epoch the running listener was started in; `None` when none runs.
    running: Option<u64>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("receivers", &self.tx.receiver_count())
            .field("listening", &lock(&self.state).running.is_some())
            .finish()
    }
}

impl Wake {
    pub(crate) fn new() -> Wake {
        Wake {
            tx: broadcast::channel(CAPACITY).0,
            stop: watch::channel(0).0,
            state: Arc::default(),
        }
    }

    /// A hint for `queue` to this process's subscribers only (no `NOTIFY`).
    pub(crate) fn local(&self, queue: String) {
        let _ = self.tx.send(JobsReady { queue });
    }

    /// A new receiver; starts the listener task if none runs. Outside a tokio runtime no
    /// task can start: the receiver then gets nothing and the worker relies on its poll.
    pub(crate) fn subscribe(&self, store: &PgStore) -> broadcast::Receiver<JobsReady> {
        let mut state = lock(&self.state);
        // Subscribed under the lock, so a listener deciding whether to stop sees it.
        let rx = self.tx.subscribe();
        let epoch = *self.stop.borrow();
        if state.running == Some(epoch) {
            return rx;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("subscribe() outside a tokio runtime: no wake-up listener started");
            return rx;
        };
        let connect: PgConnectOptions = (*store.pool.connect_options())
            .clone()
            .application_name("errand-listener");
        let listener = Listener {
            tx: self.tx.clone(),
            state: self.state.clone(),
            epoch,
            connect,
            channel: store.schema.as_deref().map(channel_for),
            pool: store.pool.clone(),
        };
        state.task = Some(runtime.spawn(listener.run(self.stop.subscribe())));
        state.running = Some(epoch);
        rx
    }

    /// Stops the listener task, if one runs, and waits (up to 10 s) until it has closed its
    /// connection. A later [`Wake::subscribe`] starts a new one.
    pub(crate) async fn stop(&self) {
        let task = {
            let mut state = lock(&self.state);
            self.stop.send_modify(|epoch| *epoch += 1);
            state.running = None;
            state.task.take()
        };
        if let Some(task) = task {
            if tokio::time::timeout(CLOSE_TIMEOUT * 2, task).await.is_err() {
                tracing::warn!("the wake-up listener did not stop in time");
            }
        }
    }
}

/// Why forwarding ended.
enum Ended {
    /// Stop for good (store gone, stopped, or nobody subscribes).
    Stop,
    /// The connection broke: reconnect.
    Lost(String),
}

/// The listener task's state.
struct Listener {
    tx: broadcast::Sender<JobsReady>,
    state: Arc<Mutex<State>>,
    epoch: u64,
    connect: PgConnectOptions,
    /// Resolved from the store's schema, else on first connect from the store's pool.
    channel: Option<String>,
    /// The store's pool, to resolve `current_schema()` as the store's statements see it.
    pool: PgPool,
}

/// Resolves when the listener of `epoch` must stop: the epoch moved on or the store is gone.
async fn stopped(stop: &mut watch::Receiver<u64>, epoch: u64) {
    loop {
        if *stop.borrow_and_update() != epoch {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl Listener {
    /// The task: listen, forward, reconnect, until [`stopped`] or nobody subscribes.
    async fn run(mut self, mut stop: watch::Receiver<u64>) {
        let epoch = self.epoch;
        let mut delay = MIN_BACKOFF;
        let mut listened = false;
        let mut failures = 0_u32;
        loop {
            let attempt = tokio::select! {
                attempt = self.listen() => attempt,
                () = stopped(&mut stop, epoch) => break,
            };
            match attempt {
                Ok((pool, mut listener)) => {
                    if listened {
                        tracing::info!(channel = self.channel(), "wake-up listener reconnected");
                        let _ = self.tx.send(JobsReady {
                            queue: ANY_QUEUE.into(),
                        });
                    } else {
                        tracing::debug!(channel = self.channel(), "wake-up listener started");
                    }
                    listened = true;
                    failures = 0;
                    delay = MIN_BACKOFF;
                    let ended = self.forward(&mut listener, &mut stop).await;
                    drop(listener);
                    match ended {
                        Ended::Stop => {
                            // Let the listener's connection go back (after UNLISTEN) and close.
                            let _ = tokio::time::timeout(CLOSE_TIMEOUT, pool.close()).await;
                            break;
                        }
                        Ended::Lost(error) => tracing::warn!(
                            channel = self.channel(),
                            %error,
                            "wake-up listener lost its connection; reconnecting"
                        ),
                    }
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(
                            channel = self.channel(),
                            %error,
                            "wake-up listener cannot connect; retrying with backoff"
                        );
                    } else {
                        tracing::debug!(failures, %error, "wake-up listener still cannot connect");
                    }
                }
            }
            if self.unwanted() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut stop, epoch) => break,
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
        self.finish();
    }

    fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or("?")
    }

    /// A fresh connection (in a one-connection pool of its own) listening on the channel.
    async fn listen(&mut self) -> Result<(PgPool, PgListener), sqlx::Error> {
        if self.channel.is_none() {
            let sql = concat!(
                "SELECT coalesce(",
                channel_sql!(),
                ", 'errand_ready_public')"
            );
            let channel: String = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
            self.channel = Some(channel);
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.connect.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // A lost connection returns from `try_recv` at once; `run` reconnects with backoff.
        listener.eager_reconnect(false);
        listener.listen(self.channel()).await?;
        Ok((pool, listener))
    }

    /// Forwards notifications until the connection breaks or the listener must stop.
    async fn forward(&self, listener: &mut PgListener, stop: &mut watch::Receiver<u64>) -> Ended {
        let start = tokio::time::Instant::now() + IDLE_CHECK;
        let mut idle = tokio::time::interval_at(start, IDLE_CHECK);
        loop {
            let got = tokio::select! {
                got = listener.try_recv() => got,
                _ = idle.tick() => {
                    if self.unwanted() {
                        return Ended::Stop;
                    }
                    continue;
                }
                () = stopped(stop, self.epoch) => return Ended::Stop,
            };
            match got {
                Ok(Some(n)) => {
                    let hint = JobsReady {
                        queue: n.payload().to_owned(),
                    };
                    if self.tx.send(hint).is_err() && self.unwanted() {
                        return Ended::Stop;
                    }
                }
                Ok(None) => return Ended::Lost("the connection closed".into()),
                Err(e) => return Ended::Lost(e.to_string()),
            }
        }
    }

    /// True (and the listener is marked stopped) when nobody subscribes any more. Checked
    /// under the state lock, so a concurrent `subscribe` either is seen here or starts a
    /// new listener.
    fn unwanted(&self) -> bool {
        let mut state = lock(&self.state);
        if self.tx.receiver_count() > 0 && state.running == Some(self.epoch) {
            return false;
        }
        if state.running == Some(self.epoch) {
            state.running = None;
            state.task = None;
        }
        true
    }

    /// Marks this listener stopped (unless a newer one took over).
    fn finish(&self) {
        let mut state = lock(&self.state);
        if state.running == Some(self.epoch) {
            state.running = None;
            state.task = None;
        }
        tracing::debug!(channel = self.channel(), "wake-up listener stopped");
    }
}
