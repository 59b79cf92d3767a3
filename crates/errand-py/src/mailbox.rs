//! How jobs reach Python: the engine's tasks post each job to a [`Mailbox`], and the event
//! loop's thread takes every job waiting in one call.
//!
//! Handing jobs over one by one took the GIL once per job on one of the engine's threads, and
//! woke the event loop once per job. While the loop runs handlers it holds the GIL, so each
//! hand-over waited for the interpreter to switch threads: on a 2-core machine the Python W1
//! drain stalled there (docs/benchmarks.md). Now only the first job posted to an empty mailbox
//! takes the GIL, to ask the loop to come and take the mail (`dispatcher.wake()`); jobs posted
//! before the loop gets to it ride along, and the loop takes the GIL it already holds.
//!
//! A job may be told to stop before the loop has started it. If it is still in the mailbox it
//! is taken back and never starts ([`Shared::withdraw`]; also when the pool drops the job's
//! task); if the loop has taken it but not yet attached its handler, its [`Done`] keeps the
//! reason and hands it over at `attach`.

use errand::{HandlerError, JobContext};
use pyo3::prelude::*;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) type Outcome = Result<Value, HandlerError>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One job for Python: its facts and args (JSON text), where its outcome goes, and its
/// progress reporter.
pub(crate) struct Letter {
    pub(crate) facts: String,
    pub(crate) args: String,
    pub(crate) done: Arc<DoneState>,
    pub(crate) progress: JobContext,
}

#[derive(Default)]
struct Box_ {
    letters: Vec<Letter>,
    /// The loop has been asked to take the mail and has not yet: later posts need not ask.
    wake_pending: bool,
}

/// The jobs posted and not yet taken, shared by the engine's tasks and the Python side.
#[derive(Default)]
pub(crate) struct Shared(Mutex<Box_>);

impl Shared {
    /// Posts `letter`; true when the caller must wake the loop (nobody asked it yet).
    pub(crate) fn post(&self, letter: Letter) -> bool {
        let mut b = lock(&self.0);
        b.letters.push(letter);
        !std::mem::replace(&mut b.wake_pending, true)
    }

    /// Takes `done`'s job back if the loop has not taken it yet (the job was told to stop,
    /// or the pool gave up on it): true if it was still waiting, so its handler never starts.
    pub(crate) fn withdraw(&self, done: &Arc<DoneState>) -> bool {
        let mut b = lock(&self.0);
        let before = b.letters.len();
        b.letters.retain(|l| !Arc::ptr_eq(&l.done, done));
        b.letters.len() != before
    }

    /// The wake-up failed (the loop is gone): every job waiting fails with `message`, and the
    /// next post asks again.
    pub(crate) fn wake_failed(&self, message: &str) {
        let letters = {
            let mut b = lock(&self.0);
            b.wake_pending = false;
            std::mem::take(&mut b.letters)
        };
        for l in letters {
            l.done.give(Err(HandlerError::Error {
                message: message.to_string(),
            }));
        }
    }
}

/// The Python side's view of the mailbox.
#[pyclass(frozen, module = "errand._native")]
pub struct Mailbox(pub(crate) Arc<Shared>);

#[pymethods]
impl Mailbox {
    /// Every job waiting, as `(facts, args, done, progress)`; the next post wakes the loop
    /// again.
    #[allow(clippy::type_complexity)]
    fn take(&self, py: Python<'_>) -> PyResult<Vec<(String, String, Py<Done>, Py<Progress>)>> {
        let letters = {
            let mut b = lock(&self.0 .0);
            b.wake_pending = false;
            std::mem::take(&mut b.letters)
        };
        letters
            .into_iter()
            .map(|l| {
                Ok((
                    l.facts,
                    l.args,
                    Py::new(py, Done(l.done))?,
                    Py::new(py, Progress(l.progress))?,
                ))
            })
            .collect()
    }
}

struct DoneInner {
    tx: Option<oneshot::Sender<Outcome>>,
    /// The started handler (what the dispatcher returned), for `cancel(reason)`.
    run: Option<Py<PyAny>>,
    /// Why the job was told to stop, if it was.
    stop: Option<&'static str>,
}

/// A job's outcome slot and stop request, shared by the engine's task and its [`Done`].
pub(crate) struct DoneState(Mutex<DoneInner>);

impl DoneState {
    pub(crate) fn new(tx: oneshot::Sender<Outcome>) -> DoneState {
        DoneState(Mutex::new(DoneInner {
            tx: Some(tx),
            run: None,
            stop: None,
        }))
    }

    /// Gives the outcome (the first one given wins) and lets go of the started handler: it
    /// holds this job's `Done`, and a reference cycle through a Rust object is one Python's
    /// garbage collector cannot see.
    fn give(&self, outcome: Outcome) {
        let (tx, run) = {
            let mut d = lock(&self.0);
            (d.tx.take(), d.run.take())
        };
        drop(run);
        if let Some(tx) = tx {
            let _ = tx.send(outcome);
        }
    }

    /// Records the stop request; the started handler to tell, if it was started already
    /// (otherwise the dispatcher is told when it attaches it).
    pub(crate) fn stop(&self, reason: &'static str) -> Option<Py<PyAny>> {
        let mut d = lock(&self.0);
        d.stop = Some(reason);
        d.run.take()
    }
}

/// Where a Python handler's outcome goes: given exactly once, by `ok`, `error`, `permanent`
/// or `retry_after` (later calls, and calls after the pool gave up on the job, do nothing).
#[pyclass(frozen, module = "errand._native")]
pub struct Done(Arc<DoneState>);

#[pymethods]
impl Done {
    /// Success; `result` is the JSON text of the job's result (`null` for none).
    fn ok(&self, result: &str) {
        self.0.give(match serde_json::from_str(result) {
            Ok(v) => Ok(v),
            Err(e) => Err(HandlerError::Error {
                message: format!("the handler's result is not JSON: {e}"),
            }),
        });
    }

    /// A retryable failure (the task's backoff applies).
    fn error(&self, message: String) {
        self.0.give(Err(HandlerError::Error { message }));
    }

    /// A failure that is never retried.
    fn permanent(&self, message: String) {
        self.0.give(Err(HandlerError::permanent(message)));
    }

    /// A failure retried after `seconds`, whatever the backoff says.
    fn retry_after(&self, message: String, seconds: f64) {
        let delay = Duration::from_secs_f64(seconds.max(0.0));
        self.0.give(Err(HandlerError::retry_after(message, delay)));
    }

    /// Keeps the started handler `run` for a later stop request; returns the reason if the job
    /// was told to stop already (the dispatcher then calls `run.cancel(reason)` itself).
    fn attach(&self, run: Py<PyAny>) -> Option<&'static str> {
        let mut d = lock(&self.0 .0);
        match d.stop {
            Some(reason) => Some(reason),
            // Not kept once the outcome is in (a handler that finished at once).
            None if d.tx.is_none() => None,
            None => {
                d.run = Some(run);
                None
            }
        }
    }
}

/// A running job's progress reports, for its Python `JobContext`: the pool's
/// `JobContext::progress`, which never waits for the store (the GIL is held only while the
/// value is checked and handed over).
#[pyclass(frozen, module = "errand._native")]
pub struct Progress(JobContext);

#[pymethods]
impl Progress {
    /// Reports `value`, the JSON text of any value: `InvalidError` naming the limit when it is
    /// over 8 KiB as compact JSON, or holds what a store cannot (a NUL character, nesting
    /// deeper than 100 levels).
    fn report(&self, value: &str) -> PyResult<()> {
        let value: Value = serde_json::from_str(value)
            .map_err(|e| crate::InvalidError::new_err(format!("`progress` is not JSON: {e}")))?;
        self.0
            .progress(value)
            .map_err(|e| crate::InvalidError::new_err(e.to_string()))
    }
}
