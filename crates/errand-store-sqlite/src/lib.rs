//! Errand's embedded store: the [`errand_store::Store`] trait on one SQLite file.
//!
//! This crate owns everything Errand does with SQLite: opening the file and setting its
//! pragmas, the embedded schema migrations (`migrations/*.sql`), and the SQL of every store
//! operation. No other crate links `rusqlite`.
//!
//! # Design
//!
//! * **One writer, group commit.** SQLite allows one writer at a time per file, so the store
//!   keeps exactly one [`rusqlite::Connection`] for writing, on a thread of its own (`writer`).
//!   Every operation that writes is sent to that thread and runs inside a `BEGIN IMMEDIATE`
//!   transaction; operations queued at the same moment share one transaction and one commit
//!   (each in its own savepoint, so one that fails undoes only itself), which spends one
//!   disk flush on the group instead of one each. IMMEDIATE takes the database's write lock
//!   at the start, so a transaction never has to upgrade a read lock to a write lock later
//!   (the upgrade is what fails with `SQLITE_BUSY` at once when another *process* writes;
//!   with IMMEDIATE the other process simply waits up to `busy_timeout`, 5 s). Holding the
//!   write lock for the whole operation is also what makes read-then-write steps (unique
//!   keys, cancel, retry) race-free.
//! * **Readers.** Reads (`job_get`, `job_list`, `queue_stats`, ...) use a small pool of
//!   separate connections. The file is in WAL mode, so readers see the last committed state
//!   and never block the writer or each other. Each read runs in one read transaction so the
//!   queries of one operation see one snapshot.
//! * **Blocking work off the runtime.** Writes run on the writer thread and reads in
//!   [`tokio::task::spawn_blocking`]; either owns its connection and transaction from
//!   `BEGIN` to `COMMIT`. Dropping the async future (a timeout, a cancelled request)
//!   therefore cannot leave a transaction open or half applied: an operation once sent runs
//!   to its end, and its caller simply does not hear the outcome.
//! * **Time.** Every operation reads "now" once from the clock ([`SqliteOptions::clock`],
//!   else the system clock) when it starts, holding its lock, and stores times as INTEGER microseconds
//!   since the Unix epoch (UTC), so times compare exactly in indexes.
//!
//! * **Wake-ups.** Writes that make jobs ready now send a hint per queue after they commit,
//!   on an in-process broadcast channel shared by the store's clones
//!   ([`errand_store::Store::subscribe`]); other processes rely on their poll.
//!
//! * **Other writers.** The file may have other writers (other Errand processes, and the
//!   application's own connection enqueueing through the `errand_enqueue` view of migration
//!   10 in its own transaction); the writer waits for their lock up to `busy_timeout`.
//!
//! Migrations are not applied by [`SqliteStore::open`]; call [`errand_store::Store::migrate`].
//! Operations on a database that was never migrated fail with
//! [`errand_store::StoreError::Schema`] telling the operator to run `errand migrate`.

mod backup;
#[cfg(feature = "bench")]
pub mod baseline;
mod checkpoint;
mod enqueue;
mod error;
mod flow;
mod migrate;
mod notify;
mod ops;
mod reads;
mod rows;
mod schedules;
mod store;
mod target;
mod worker_path;
mod workers;
mod writer;

use errand_core::{Clock, SystemClock};
use errand_store::{StoreError, StoreResult};
use error::{map_sql, OpError};
use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a connection waits for another connection's lock before giving up with
/// [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Prepared statements kept per connection (the hot paths use `prepare_cached`).
const STATEMENT_CACHE: usize = 64;

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is durable once it returns, even across a power cut (the default).
    #[default]
    Full,
    /// Faster commits in WAL mode; a power cut (not a process crash) may lose the last
    /// commits, never corrupt the file.
    Normal,
}

impl Synchronous {
    /// The pragma value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options of [`SqliteStore::open`].
#[derive(Clone)]
pub struct SqliteOptions {
    /// Where "now" comes from; `None` means the system clock. Tests pass a
    /// [`errand_core::ManualClock`].
    pub clock: Option<Arc<dyn Clock>>,
    /// Durability of commits; a `?synchronous=` suffix on the target overrides it.
    pub synchronous: Synchronous,
    /// Most reader connections open at once (at least 1). Default 4.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            clock: None,
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("clock", &self.clock)
            .field("synchronous", &self.synchronous)
            .field("readers", &self.readers)
            .finish()
    }
}

/// A [`errand_store::Store`] on one SQLite file: one writer connection and a small pool of
/// reader connections (see the crate documentation). Cloning is cheap and shares them.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    synchronous: Synchronous,
    clock: Arc<dyn Clock>,
    /// Copies the WAL back in the background (see `checkpoint`); stops when dropped, before
    /// the writer (fields drop in order).
    _checkpointer: checkpoint::Checkpointer,
    /// The writer connection, on its own thread, committing in groups (see `writer`); when
    /// dropped, it truncates the WAL into the file and closes.
    writer: writer::Writer,
    idle_readers: Mutex<Vec<Connection>>,
    reader_slots: Arc<Semaphore>,
    readers: usize,
    /// Wake-up hints, sent after commit (see `notify`).
    wake: tokio::sync::broadcast::Sender<errand_store::JobsReady>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("synchronous", &self.inner.synchronous)
            .field("readers", &self.inner.readers)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) the database at `target`, which is a file path,
    /// `sqlite:PATH` or `sqlite://PATH` (so `sqlite:///var/lib/errand.db` is an absolute
    /// path), optionally followed by `?synchronous=normal` or `?synchronous=full`, which
    /// overrides [`SqliteOptions::synchronous`].
    ///
    /// Puts the file in WAL mode. Async because opening touches the disk (run on tokio's
    /// blocking pool); needs a tokio runtime. Does not apply migrations: call
    /// [`errand_store::Store::migrate`]. In-memory databases (`:memory:`) are not supported,
    /// because the writer and the readers are separate connections and must share one file.
    pub async fn open(target: &str, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let parsed = target::parse(target)?;
        let synchronous = parsed.synchronous.unwrap_or(options.synchronous);
        let path = parsed.path;
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let writer_clock = clock.clone();
        let (writer, checkpointer, path) = run_blocking(move || {
            let writer =
                open_connection(&path, synchronous, false).map_err(|e| open_error(&path, e))?;
            writer
                .pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)
                .map_err(|e| open_error(&path, e))?;
            let conn =
                open_connection(&path, synchronous, false).map_err(|e| open_error(&path, e))?;
            let checkpointer = checkpoint::start(conn).map_err(|e| {
                StoreError::Unavailable(format!("cannot start the WAL checkpoint thread: {e}"))
            })?;
            let writer = writer::Writer::start(writer, writer_clock).map_err(|e| {
                StoreError::Unavailable(format!("cannot start the writer thread: {e}"))
            })?;
            Ok((writer, checkpointer, path))
        })
        .await?;
        let readers = options.readers.max(1);
        let store = SqliteStore {
            inner: Arc::new(Inner {
                clock,
                writer,
                idle_readers: Mutex::new(Vec::with_capacity(readers)),
                reader_slots: Arc::new(Semaphore::new(readers)),
                readers,
                synchronous,
                path,
                wake: notify::channel(),
                _checkpointer: checkpointer,
            }),
        };
        tracing::debug!(
            path = %store.inner.path.display(),
            ?synchronous,
            readers,
            "opened sqlite store"
        );
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The `synchronous` setting in force (after any `?synchronous=` override).
    pub fn synchronous(&self) -> Synchronous {
        self.inner.synchronous
    }

    /// Runs `f` on the writer connection alone, outside any transaction, on the writer
    /// thread. `f` is given the store's "now" in microseconds. Once sent, `f` runs to the end
    /// even if the caller's future is dropped.
    pub(crate) async fn with_writer<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> Result<T, OpError> + Send + 'static,
    {
        self.inner.writer.with_connection(f).await
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer thread, possibly
    /// together with other operations queued at the same moment (group commit, see
    /// `writer`), and resolves once that transaction has committed; if `f` fails, its
    /// writes are undone and the others' are not. "Now" is read when `f` starts, under the
    /// write lock, so the order of writes and the order of their times agree.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, OpError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Runs `f` inside one read transaction on a pooled reader connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, OpError> + Send + 'static,
    {
        let permit = self
            .inner
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let inner = self.inner.clone();
        run_blocking(move || {
            let _permit = permit;
            let pooled = lock(&inner.idle_readers).pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, inner.synchronous, true)
                    .map_err(|e| open_error(&inner.path, e))?,
            };
            let run = |conn: &mut Connection| -> Result<T, OpError> {
                let tx = conn.transaction()?;
                let now = inner.now_micros();
                let out = f(&tx, now)?;
                tx.commit()?;
                Ok(out)
            };
            let out = run(&mut conn);
            lock(&inner.idle_readers).push(conn);
            out.map_err(StoreError::from)
        })
        .await
    }
}

impl Inner {
    fn now_micros(&self) -> i64 {
        rows::to_micros(self.clock.now())
    }
}

/// Locks the idle-reader list, recovering from poisoning (a panic while holding it cannot
/// leave the `Vec` inconsistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs blocking database work on tokio's blocking pool. A panic in `f` resumes in the caller.
async fn run_blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "store task did not finish: {e}"
        ))),
    }
}

/// Opens one connection with the store's pragmas. The writer also switches the file to WAL
/// (a persistent setting); readers are marked `query_only`.
fn open_connection(path: &Path, sync: Synchronous, reader: bool) -> rusqlite::Result<Connection> {
    // No SQLITE_OPEN_URI: the path is taken literally.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !reader {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "sqlite did not switch to WAL mode");
        }
    }
    conn.pragma_update(None, "synchronous", sync.as_str())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if reader {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let context = |msg: String| format!("cannot open sqlite database {}: {msg}", path.display());
    match map_sql(e) {
        StoreError::Database(msg) => StoreError::Database(context(msg)),
        StoreError::Unavailable(msg) => StoreError::Unavailable(context(msg)),
        other => other,
    }
}

#[cfg(test)]
mod sql_enqueue_tests;
#[cfg(test)]
mod tests;
