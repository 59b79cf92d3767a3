//! The writer thread and its group commit.
//!
//! SQLite has one writer per file, and with `synchronous=FULL` (the default) each commit waits
//! for the disk to flush: a few hundred microseconds to a millisecond on the machines we
//! measure, which was most of what a single enqueue, claim or completion cost. So the store's
//! one writer connection lives on a thread of its own, and operations are sent to it over a
//! channel. The thread takes the first operation waiting, and every other one already
//! queued behind it (up to [`MAX_GROUP`]), and runs them all in one `BEGIN IMMEDIATE`
//! transaction with one commit: one flush for the group. Under load (an HTTP server's
//! concurrent enqueues, a worker pool's claim and completion in flight together) operations
//! share flushes; alone, an operation is a group of one and pays what it paid before.
//!
//! A group stops taking operations once it has worked for [`GROUP_BUDGET`] (5 ms), and the
//! rest wait for the next one, so a fast operation's answer never waits for more than that
//! much of other operations' work plus the one it ran beside.
//!
//! Each operation of a group of several runs inside its own `SAVEPOINT`: one that fails is
//! rolled back to its savepoint and reports its error, and the others commit. An operation
//! sees the writes of the operations before it in the group, exactly as if it had run in
//! its own transaction right after theirs. Its result is handed back only after the commit,
//! so a caller never acts on a write that could still be lost; if the commit itself fails,
//! every operation of the group reports that error and none of them is applied.
//!
//! A panic inside an operation is caught, its savepoint rolled back, and the panic resumed
//! in the caller's task, so a bug in one operation fails its caller, not the writer. The thread stops, and closes the
//! connection, when the store's last clone is dropped; before that it copies the whole WAL
//! back into the database file and truncates it ([`close_checkpoint`]), so the file alone
//! holds every commit and copying it is a backup.
//!
//! A write that fails because the disk is full ([`StoreError::DiskFull`]) is remembered as the
//! store's write problem until a later group commits a change ([`Writer::problem`], read by
//! `/health`).

use crate::error::{map_sql, OpError};
use errand_core::Clock;
use errand_store::{StoreError, StoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most operations committed together. Bounds how long one transaction holds the write lock
/// (other processes on the file wait for it) and how much a failed commit takes down with it.
pub(crate) const MAX_GROUP: usize = 64;

/// A group stops taking operations once it has worked this long, and commits: every answer
/// waits for its group's commit, so this bounds how long a fast operation waits for the ones
/// grouped after it. A commit's flush costs well under a millisecond on the disks measured, so
/// past a few milliseconds of work, sharing it saves little.
pub(crate) const GROUP_BUDGET: Duration = Duration::from_millis(5);

/// What an operation reports once its group is over, given the commit's error if any.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// An operation for a group transaction. Given the transaction and "now", it runs and
/// returns whether it succeeded (so the thread keeps or rolls back its savepoint); given
/// `None` (the group could not start) it does not run. Either way it returns how to report.
type InTx = Box<dyn FnOnce(Option<(&Transaction<'_>, i64)>) -> (bool, Finish) + Send>;

/// An operation that needs the bare connection (migrations manage their own transactions).
type Bare = Box<dyn FnOnce(&mut Connection, i64) + Send>;

enum Op {
    InTx(InTx),
    Bare(Bare),
}

/// A panic, or the operation's result.
type Reply<T> = std::thread::Result<StoreResult<T>>;

/// The sending side of the writer thread; dropping it stops the thread and closes the
/// connection (after the group in progress).
pub(crate) struct Writer {
    ops: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
    problem: Problem,
}

/// Why writes fail, while they fail for a full disk (see the module documentation).
type Problem = Arc<Mutex<Option<String>>>;

/// How long the last checkpoint waits for other connections (other processes' readers) before
/// giving up: a process that is stopping should not hang on a busy file; the last one to close
/// copies the log back anyway.
const CLOSE_CHECKPOINT_WAIT: Duration = Duration::from_millis(500);

/// Group transactions run so far, and the operations in them (for tests and diagnosis).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub groups: AtomicU64,
    pub ops: AtomicU64,
}

impl Writer {
    /// Starts the writer thread on `conn`, which reads "now" from `clock`.
    pub(crate) fn start(conn: Connection, clock: Arc<dyn Clock>) -> std::io::Result<Writer> {
        let (ops, queue) = mpsc::channel();
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let problem = Problem::default();
        let cleared = problem.clone();
        let thread = std::thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                run(&mut conn, &*clock, &queue, &counted, &cleared);
            })?;
        Ok(Writer {
            ops: Some(ops),
            thread: Some(thread),
            counts,
            problem,
        })
    }

    /// Why writes are failing, if the last one that needed the disk found it full and no
    /// change has committed since.
    pub(crate) fn problem(&self) -> Option<String> {
        lock(&self.problem).clone()
    }

    /// How many group transactions have run, and how many operations they held.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.groups.load(Ordering::Relaxed),
            self.counts.ops.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` in a group transaction (see the module documentation); resolves once the
    /// group has committed, or with `f`'s error, or with the commit's.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, OpError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Reply<T>>();
        let problem = self.problem.clone();
        let op: InTx = Box::new(move |run| {
            let out = run.map(|(tx, now)| catch_unwind(AssertUnwindSafe(|| f(tx, now))));
            let ok = matches!(out, Some(Ok(Ok(_))));
            let finish: Finish = Box::new(move |commit: Option<&StoreError>| {
                let reply_with = match out {
                    Some(Err(panic)) => Err(panic),
                    Some(Ok(Err(e))) => Ok(Err(StoreError::from(e))),
                    Some(Ok(Ok(v))) => Ok(match commit {
                        None => Ok(v),
                        Some(e) => Err(e.clone()),
                    }),
                    None => Ok(Err(commit.cloned().unwrap_or_else(|| {
                        StoreError::Unavailable("the operation was not run".into())
                    }))),
                };
                if let Ok(Err(StoreError::DiskFull(why))) = &reply_with {
                    *lock(&problem) = Some(format!("the disk holding the database is full: {why}"));
                }
                let _ = reply.send(reply_with);
            });
            (ok, finish)
        });
        self.send(Op::InTx(op), answer).await
    }

    /// Runs `f` on the connection alone, outside any group.
    pub(crate) async fn with_connection<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> Result<T, OpError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Reply<T>>();
        let op: Bare = Box::new(move |conn, now| {
            let out = catch_unwind(AssertUnwindSafe(|| f(conn, now).map_err(StoreError::from)));
            let _ = reply.send(out);
        });
        self.send(Op::Bare(op), answer).await
    }

    async fn send<T>(&self, op: Op, answer: oneshot::Receiver<Reply<T>>) -> StoreResult<T> {
        let closed = || StoreError::Unavailable("the store's writer has stopped".into());
        self.ops
            .as_ref()
            .ok_or_else(closed)?
            .send(op)
            .map_err(|_| closed())?;
        match answer.await {
            Ok(Ok(out)) => out,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(closed()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let (groups, ops) = self.counts();
        tracing::debug!(
            groups,
            ops,
            "sqlite writer stopping: {ops} operations in {groups} commits"
        );
        drop(self.ops.take());
        if let Some(thread) = self.thread.take() {
            // The thread holds no store handle, so the last one cannot be dropped on it; the
            // check keeps a future mistake from becoming a deadlock.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn run(
    conn: &mut Connection,
    clock: &dyn Clock,
    queue: &mpsc::Receiver<Op>,
    counts: &Counts,
    problem: &Mutex<Option<String>>,
) {
    let now = || crate::rows::to_micros(clock.now());
    // An operation taken off the queue that could not join the group before it.
    let mut next: Option<Op> = None;
    loop {
        let first = match next.take() {
            Some(op) => op,
            None => match queue.recv() {
                Ok(op) => op,
                Err(_) => {
                    close_checkpoint(conn);
                    return;
                }
            },
        };
        let first = match first {
            Op::Bare(f) => {
                f(conn, now());
                continue;
            }
            Op::InTx(f) => f,
        };
        let mut pending = VecDeque::from([first]);
        while pending.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(Op::InTx(f)) => pending.push_back(f),
                Ok(bare) => {
                    next = Some(bare);
                    break;
                }
                Err(_) => break,
            }
        }
        while !pending.is_empty() {
            let changes = conn.total_changes();
            let (finishes, commit_error) = run_group(conn, &mut pending, &now);
            if commit_error.is_none() && conn.total_changes() > changes {
                // Something reached the disk: whatever filled it has been freed.
                lock(problem).take();
            }
            counts.groups.fetch_add(1, Ordering::Relaxed);
            counts
                .ops
                .fetch_add(finishes.len() as u64, Ordering::Relaxed);
            for finish in finishes {
                finish(commit_error.as_ref());
            }
        }
    }
}

/// Copies the whole log back into the database file and truncates it, so that the file alone
/// holds every commit. Waits at most [`CLOSE_CHECKPOINT_WAIT`] for other processes' readers;
/// if they hold on, the log stays for the last connection to close.
pub(crate) fn close_checkpoint(conn: &Connection) {
    let _ = conn.busy_timeout(CLOSE_CHECKPOINT_WAIT);
    // (busy, log pages, pages copied): busy = 1 when another connection kept it from
    // finishing.
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => tracing::debug!("sqlite log copied into the database file and truncated"),
        Ok(_) => tracing::debug!(
            "sqlite log not truncated on close: another connection is using the file"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "sqlite checkpoint on close failed; the log stays beside the database file")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs operations from the front of `pending` in one IMMEDIATE transaction (each in a
/// savepoint of its own when there are several) and commits it. Stops taking more once the
/// group has worked for [`GROUP_BUDGET`], or after an error that undid the whole
/// transaction; what is left runs in the next group. Returns the report of every operation
/// taken, and the error that undid the group, if any.
fn run_group(
    conn: &mut Connection,
    pending: &mut VecDeque<InTx>,
    now: &dyn Fn() -> i64,
) -> (Vec<Finish>, Option<StoreError>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            // The write lock could not be had (another process held it past busy_timeout):
            // nothing can run, so every operation waiting reports it.
            let finishes = pending.drain(..).map(|op| op(None).1).collect();
            return (finishes, Some(map_sql(e)));
        }
    };
    let started = Instant::now();
    let alone = pending.len() == 1;
    let mut finishes = Vec::with_capacity(pending.len());
    let mut any_ok = false;
    let mut broken: Option<StoreError> = None;
    while broken.is_none() && (finishes.is_empty() || started.elapsed() < GROUP_BUDGET) {
        let Some(op) = pending.pop_front() else { break };
        if !alone {
            if let Err(e) = tx.execute_batch("SAVEPOINT errand_op") {
                let e = map_sql(e);
                if finishes.is_empty() {
                    // Nothing ran yet: this operation reports the error rather than wait
                    // for a next group that could fail the same way.
                    finishes.push(op(None).1);
                } else {
                    pending.push_front(op);
                }
                broken = Some(e);
                break;
            }
        }
        let (ok, finish) = op(Some((&tx, now())));
        if !alone {
            // An operation's error may have ended the whole transaction (an I/O error, a
            // full disk); then the savepoint is gone too and the group is undone.
            let end = if ok {
                "RELEASE errand_op"
            } else {
                "ROLLBACK TO errand_op; RELEASE errand_op"
            };
            if let Err(e) = tx.execute_batch(end) {
                broken = Some(map_sql(e));
            }
        }
        any_ok |= ok;
        finishes.push(finish);
    }
    if broken.is_some() || !any_ok {
        // Dropping the transaction rolls it back (a no-op if SQLite already did).
        drop(tx);
        return (finishes, broken);
    }
    match tx.commit() {
        Ok(()) => (finishes, None),
        Err(e) => {
            // A failed COMMIT can leave the transaction open; end it so the next group
            // starts clean.
            let _ = conn.execute_batch("ROLLBACK");
            (finishes, Some(map_sql(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::SystemClock;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "errand-writer-{name}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("w.db")
    }

    /// A writer on a fresh file holding `t (n INTEGER PRIMARY KEY)`, and the file's path.
    fn writer_on_table_t(name: &str) -> (std::path::PathBuf, Writer) {
        let path = temp_path(name);
        let conn = crate::open_connection(&path, crate::Synchronous::Full, false).unwrap();
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)", [])
            .unwrap();
        (path, Writer::start(conn, Arc::new(SystemClock)).unwrap())
    }

    fn insert(tx: &Transaction<'_>, n: i64) -> Result<(), OpError> {
        tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
        Ok(())
    }

    /// Holds the writer thread in a bare operation until the returned sender fires, so that
    /// whatever is sent meanwhile queues up behind it and runs as one group.
    async fn hold(
        writer: &Arc<Writer>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = oneshot::channel();
        let w = writer.clone();
        let held = tokio::spawn(async move {
            w.with_connection(move |_, _| {
                let _ = started.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        is_started.await.unwrap();
        (release, held)
    }

    #[tokio::test]
    async fn a_group_commits_once_and_a_failed_operation_undoes_only_itself() {
        let (path, writer) = writer_on_table_t("group");
        let writer = Arc::new(writer);
        let (release, held) = hold(&writer).await;
        let (groups_before, _) = writer.counts();

        let spawn = |n: i64, fail: bool| {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(move |tx, _| {
                    insert(tx, n)?;
                    // Sees the rows of the operations before it in the group.
                    let seen: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                    if fail {
                        return Err(StoreError::Conflict(format!("op {n} refuses")).into());
                    }
                    Ok(seen)
                })
                .await
            })
        };
        let a = spawn(1, false);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let b = spawn(2, true);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let c = spawn(3, false);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let d = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(|tx, _| -> Result<(), OpError> {
                    insert(tx, 4)?;
                    panic!("op 4 panics");
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.send(()).unwrap();
        held.await.unwrap();

        assert_eq!(a.await.unwrap().unwrap(), 1);
        match b.await.unwrap() {
            Err(StoreError::Conflict(msg)) => assert_eq!(msg, "op 2 refuses"),
            other => panic!("op 2: {other:?}"),
        }
        // Op 2's row was rolled back before op 3 ran.
        assert_eq!(c.await.unwrap().unwrap(), 2);
        let panic = d.await.unwrap_err();
        assert!(panic.is_panic(), "op 4's panic reaches its caller");
        let (groups, _) = writer.counts();
        assert_eq!(
            groups - groups_before,
            1,
            "the four operations shared one transaction"
        );

        let rows: Vec<i64> = writer
            .with_connection(|conn, _| {
                let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![1, 3],
            "only the operations that succeeded are committed"
        );
        drop(writer);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_group_commits_once_it_has_worked_past_its_budget() {
        let (path, writer) = writer_on_table_t("budget");
        let writer = Arc::new(writer);
        let (release, held) = hold(&writer).await;
        let (groups_before, ops_before) = writer.counts();
        let ops: Vec<_> = (1..=3)
            .map(|n| {
                let w = writer.clone();
                tokio::spawn(async move {
                    w.write(move |tx, _| {
                        insert(tx, n)?;
                        std::thread::sleep(GROUP_BUDGET);
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        // Let all three queue up behind the held writer (together they would be one group
        // but for the budget).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        held.await.unwrap();
        for op in ops {
            op.await.unwrap().unwrap();
        }
        let (groups, n) = writer.counts();
        assert_eq!(n - ops_before, 3);
        assert_eq!(
            groups - groups_before,
            3,
            "each operation used up a group's budget, so each committed on its own"
        );
        drop(writer);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn an_operation_alone_fails_without_a_trace() {
        let (path, writer) = writer_on_table_t("alone");
        let err = writer
            .write(|tx, _| -> Result<(), OpError> {
                insert(tx, 1)?;
                insert(tx, 1)?; // duplicate key
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        writer.write(|tx, _| insert(tx, 2)).await.unwrap();
        let n: i64 = writer
            .with_connection(
                |conn, _| Ok(conn.query_row("SELECT sum(n) FROM t", [], |r| r.get(0))?),
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        drop(writer);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
