//! A job's progress reports on their way to the store ([`errand_store::Store::job_progress`]).
//!
//! A handler reports as often as it likes and never waits: [`ProgressWriter::report`] checks
//! the value (`errand_core::Progress`), keeps it as the pending one and returns. At most one
//! write per job is in flight, and writes are at least a quarter of a second apart; a report
//! made meanwhile replaces the pending value, which is written next, so a fast loop costs at
//! most four writes a second, not one per call, and the last value is always the one written
//! last. A write that fails (the database is
//! unreachable) keeps its value pending, unless a newer one came, and is tried again after a
//! pause while the handler runs. A stale answer (the worker no longer holds the job) ends
//! the writes: later reports are dropped.
//!
//! When the handler has ended, the executor calls [`ProgressWriter::finish`] before it
//! records the outcome: the pending value gets its write (one more try if the pause was on)
//! before the job finishes, so a finished job shows the last report it made.

use errand_core::{Fence, Progress, ProgressError};
use errand_store::{Ack, JobProgress, Store};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a failed write waits before it is tried again (while the handler runs).
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The least time between two writes of one job's progress while its handler runs: a handler
/// reporting in a tight loop costs at most four writes a second (each a row version, and on
/// SQLite a turn of the one writer), and the newest value still goes in.
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// One job attempt's progress writer, shared by its [`crate::JobContext`] clones.
pub(crate) struct ProgressWriter {
    store: Arc<dyn Store>,
    fence: Fence,
    /// Where the writes run: reports may come from threads outside the runtime (a blocking
    /// task, another language's thread).
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    /// Cuts a retry pause short when the handler has ended.
    finishing: Notify,
    /// Told when the write loop ends.
    idle: Notify,
}

#[derive(Default)]
struct State {
    pending: Option<Progress>,
    /// A write loop runs.
    writing: bool,
    /// The store answered stale: nothing more is written.
    stale: bool,
    /// The handler has ended: a failed write is not retried.
    finished: bool,
}

impl ProgressWriter {
    /// Must be called inside the runtime that runs the writes.
    pub(crate) fn new(store: Arc<dyn Store>, fence: Fence) -> Arc<ProgressWriter> {
        Arc::new(ProgressWriter {
            store,
            fence,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State::default()),
            finishing: Notify::new(),
            idle: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `value` and hands it to the write loop; never waits for the store.
    pub(crate) fn report<T: Serialize + ?Sized>(
        self: &Arc<Self>,
        value: &T,
    ) -> Result<(), ProgressError> {
        let progress = Progress::of(value)?;
        let mut state = self.state();
        // After the handler ended (a thread it started may still report), a write could land
        // after the outcome: dropped, as after a stale answer.
        if state.stale || state.finished {
            return Ok(());
        }
        state.pending = Some(progress);
        if !state.writing {
            state.writing = true;
            self.runtime.spawn(self.clone().write_loop());
        }
        Ok(())
    }

    /// Writes the pending value until there is none.
    async fn write_loop(self: Arc<Self>) {
        loop {
            let progress = {
                let mut state = self.state();
                match state.pending.take() {
                    Some(p) => p,
                    None => {
                        // Under the lock, so a report either saw this loop running and left
                        // its value to it, or sees it gone and starts another.
                        self.stop_writing(&mut state);
                        return;
                    }
                }
            };
            let write = JobProgress {
                fence: self.fence.clone(),
                progress,
            };
            match self.store.job_progress(&write).await {
                Ok(Ack::Done) => {
                    if !self.state().finished {
                        tokio::select! {
                            () = tokio::time::sleep(WRITE_EVERY) => {}
                            () = self.finishing.notified() => {}
                        }
                    }
                }
                Ok(Ack::Stale) => {
                    let mut state = self.state();
                    state.stale = true;
                    state.pending = None;
                    self.stop_writing(&mut state);
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        job_id = self.fence.job_id,
                        attempt = self.fence.attempt,
                        error = %e,
                        "could not write the job's progress"
                    );
                    let finished = {
                        let mut state = self.state();
                        if state.pending.is_none() {
                            state.pending = Some(write.progress);
                        }
                        if state.finished {
                            state.pending = None;
                            self.stop_writing(&mut state);
                        }
                        state.finished
                    };
                    if finished {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                        () = self.finishing.notified() => {}
                    }
                }
            }
        }
    }

    fn stop_writing(&self, state: &mut State) {
        state.writing = false;
        self.idle.notify_waiters();
    }

    /// The handler has ended: waits for the pending value's write (a failed one is not
    /// retried after this).
    pub(crate) async fn finish(&self) {
        {
            let mut state = self.state();
            state.finished = true;
            if !state.writing {
                return;
            }
        }
        // A permit, so a loop about to pause does not miss it.
        self.finishing.notify_one();
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so an end between the two is not missed.
            idle.as_mut().enable();
            if !self.state().writing {
                return;
            }
            idle.await;
        }
    }
}
