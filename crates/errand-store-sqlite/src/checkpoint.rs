//! WAL checkpoints off the commit path.
//!
//! In WAL mode SQLite appends commits to the `-wal` file and copies them back into the
//! database file at a checkpoint. By default the connection whose commit takes the log past
//! 1,000 pages runs that checkpoint itself, inside its commit: copying the pages and syncing
//! the database file added 5 to 80 ms to one enqueue or claim in a few hundred, which was the
//! whole of the enqueue-to-start p99 (docs/benchmarks.md, W2).
//!
//! So the writer's own threshold is raised to [`BACKSTOP_PAGES`], a safety net only, and a
//! thread with a connection of its own runs a `PASSIVE` checkpoint every [`INTERVAL`]. A
//! passive checkpoint never waits for, or blocks, the writer or the readers; it copies what
//! is committed and not still read through an older snapshot. Once everything is copied,
//! the writer's next transaction starts the log from its beginning again, so the `-wal` file
//! stays small. The thread stops when the store (its last clone) is dropped, before the
//! writer's last checkpoint (`writer::close_checkpoint`), so the two never meet.

use rusqlite::Connection;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How often the checkpointer copies the log back. Each checkpoint syncs the database file,
/// and a commit whose own sync lands on one waits for it: every 200 ms, the W2 p99 was 6.4 ms;
/// every second, 3.9 ms (3 runs each on a quiet machine). A second of commits is a few hundred
/// pages at W2's rate, well under the writer's backstop.
pub(crate) const INTERVAL: Duration = Duration::from_millis(1000);

/// The writer's `wal_autocheckpoint`: it checkpoints in its own commit only if the log has
/// grown this far (40 MiB of 4 KiB pages), which the checkpointer prevents.
pub(crate) const BACKSTOP_PAGES: i64 = 10_000;

/// Stops the checkpointer thread, and waits for it, when dropped.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the checkpointer on `conn`, a read-write connection to the store's file.
pub(crate) fn start(conn: Connection) -> std::io::Result<Checkpointer> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("errand-sqlite-checkpoint".into())
        .spawn(move || run(&conn, &stopped))?;
    Ok(Checkpointer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // (busy, pages in the log, pages copied); a failure is retried next time, and the
        // writer's backstop bounds the log meanwhile.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background WAL checkpoint failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_copied_back_without_the_writer_checkpointing() {
        let dir = std::env::temp_dir().join(format!("errand-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer
            .pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
            .unwrap();
        writer.execute("CREATE TABLE t (x BLOB)", []).unwrap();
        let _ckpt = start(Connection::open(&path).unwrap()).unwrap();
        // ~1.6 MB of commits, past SQLite's default threshold but far below the backstop:
        // only the checkpointer can have copied them into the database file.
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(8000))", [])
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&path).unwrap().len();
            if size > 1_500_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {size} bytes: the log was never copied back"
            );
            std::thread::sleep(INTERVAL);
        }
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
