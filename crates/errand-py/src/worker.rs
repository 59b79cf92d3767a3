//! `Worker`: an `errand-runtime` runtime (maintenance, the worker pool, the scheduler; no
//! HTTP API) whose tasks are in-process handlers that call into Python. The Rust pool claims,
//! leases, heartbeats, fences, retries, rescues and drains; for each job it calls the Python
//! dispatcher with the job's facts, its args, and the job's [`Progress`] reporter, and waits
//! (without the GIL) for the dispatcher's [`Done`] to be given the outcome. When the pool asks the job to stop
//! (cancel, timeout, lost lease, end of the shutdown grace), it calls `cancel(reason)` on
//! what the dispatcher returned.

use crate::bridge;
use crate::client::Client;
use crate::tasks;
use errand::worker::StopReason;
use errand::{HandlerError, JobArgs, JobContext};
use errand_runtime::{Runtime, RuntimeHandle, SchedulerSettings, ServerSettings};
use pyo3::prelude::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

type Outcome = Result<Value, HandlerError>;

/// Where a Python handler's outcome goes: given exactly once, by `ok`, `error`, `permanent`
/// or `retry_after` (later calls, and calls after the pool gave up on the job, do nothing).
#[pyclass(frozen, module = "errand._native")]
pub struct Done(Mutex<Option<oneshot::Sender<Outcome>>>);

impl Done {
    fn give(&self, outcome: Outcome) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(outcome);
        }
    }
}

#[pymethods]
impl Done {
    /// Success; `result` is the JSON text of the job's result (`null` for none).
    fn ok(&self, result: &str) {
        self.give(match serde_json::from_str(result) {
            Ok(v) => Ok(v),
            Err(e) => Err(HandlerError::Error {
                message: format!("the handler's result is not JSON: {e}"),
            }),
        });
    }

    /// A retryable failure (the task's backoff applies).
    fn error(&self, message: String) {
        self.give(Err(HandlerError::Error { message }));
    }

    /// A failure that is never retried.
    fn permanent(&self, message: String) {
        self.give(Err(HandlerError::permanent(message)));
    }

    /// A failure retried after `seconds`, whatever the backoff says.
    fn retry_after(&self, message: String, seconds: f64) {
        let delay = Duration::from_secs_f64(seconds.max(0.0));
        self.give(Err(HandlerError::retry_after(message, delay)));
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

/// The word the Python layer gets for a stop reason.
fn reason_word(r: StopReason) -> &'static str {
    match r {
        StopReason::Cancelled => "cancelled",
        StopReason::LeaseLost => "lease_lost",
        StopReason::Timeout => "timeout",
        StopReason::Shutdown => "shutdown",
    }
}

/// The facts of a job a Python context shows, as JSON text.
fn job_facts(ctx: &JobContext) -> String {
    json!({
        "id": ctx.id(),
        "kind": ctx.kind(),
        "queue": ctx.queue(),
        "attempt": ctx.attempt(),
        "max_attempts": ctx.max_attempts(),
        "worker_id": ctx.worker_id(),
        "timeout_ms": ctx.timeout().map(|d| d.as_millis() as u64),
    })
    .to_string()
}

/// Runs one job through the Python dispatcher: `dispatcher(facts, args, done, progress)`
/// starts the handler and returns an object with `cancel(reason)`.
async fn run_in_python(dispatcher: Arc<Py<PyAny>>, ctx: JobContext, args: JobArgs) -> Outcome {
    let (tx, mut rx) = oneshot::channel();
    let facts = job_facts(&ctx);
    // The args' JSON text as the claim returned it: Python decodes it, once.
    let args = args.get().to_owned();
    let progress = Progress(ctx.clone());
    // Taking the GIL can wait as long as a handler holds it: on a blocking thread, never on
    // the runtime's workers, whose heartbeats and lease watchdog must keep running.
    let running = tokio::task::spawn_blocking(move || {
        Python::attach(|py| {
            let done = Py::new(py, Done(Mutex::new(Some(tx))))?;
            let progress = Py::new(py, progress)?;
            dispatcher.call1(py, (facts, args, done, progress))
        })
    })
    .await
    .map_err(|e| HandlerError::Error {
        message: format!("the Python dispatcher's thread failed: {e}"),
    })?
    .map_err(|e| HandlerError::Error {
        message: format!("the Python dispatcher failed: {e}"),
    })?;
    let outcome = tokio::select! {
        out = &mut rx => out,
        reason = ctx.cancelled() => {
            let word = reason_word(reason);
            let _ = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    if let Err(e) = running.call_method1(py, "cancel", (word,)) {
                        e.write_unraisable(py, None);
                    }
                });
            })
            .await;
            rx.await
        }
    };
    outcome.unwrap_or_else(|_| {
        Err(HandlerError::Error {
            message: "the Python handler ended without an outcome".into(),
        })
    })
}

/// A started runtime with Python handlers.
#[pyclass(frozen, module = "errand._native")]
pub struct Worker {
    handle: Mutex<Option<RuntimeHandle>>,
}

impl Worker {
    fn take(&self) -> Option<RuntimeHandle> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The runtime for `config` (JSON: tasks, queues, schedules, workers, scheduler) on `client`.
fn build(client: &Client, config: &str, dispatcher: Py<PyAny>) -> PyResult<Runtime> {
    let config = tasks::parse("worker", config)?;
    let defs = tasks::definitions(config.get("tasks").unwrap_or(&Value::Null))?;
    let queues = tasks::queues(config.get("queues").unwrap_or(&Value::Null))?;
    let schedules = tasks::schedules(config.get("schedules").unwrap_or(&Value::Null))?;
    let workers = tasks::worker_settings(config.get("workers").unwrap_or(&Value::Null));
    let scheduler = config
        .get("scheduler")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let kinds: Vec<String> = defs.keys().cloned().collect();
    let dispatcher = Arc::new(dispatcher);
    Ok(Runtime::with_client(client.inner.clone())
        .tasks(defs)
        .queues(queues)
        .schedules(schedules)
        .workers(workers)
        .server(ServerSettings {
            enabled: false,
            ..ServerSettings::default()
        })
        .scheduler(SchedulerSettings { enabled: scheduler })
        .on_pool(move |mut pool| {
            for kind in kinds {
                let d = dispatcher.clone();
                pool =
                    pool.register_kind(kind, move |ctx, args| run_in_python(d.clone(), ctx, args));
            }
            pool
        }))
}

#[pymethods]
impl Worker {
    /// Starts a runtime on `client` for `config`; `callback(error, worker)` when it runs.
    #[staticmethod]
    fn start(
        client: &Client,
        config: &str,
        dispatcher: Py<PyAny>,
        callback: Py<PyAny>,
    ) -> PyResult<()> {
        let rt = build(client, config, dispatcher)?;
        bridge::spawn(
            async move {
                // The runtime's start is not `Send` (its pool setup is not `Sync`): it runs
                // on a blocking thread of its own, which the engine's threads do not wait on.
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || handle.block_on(rt.start()))
                    .await
                    .map_err(|e| crate::ErrandError::new_err(e.to_string()))?
                    .map_err(|e| crate::ErrandError::new_err(crate::error_text(&e)))
            },
            |py, handle| {
                let w = Worker {
                    handle: Mutex::new(Some(handle)),
                };
                Ok(Py::new(py, w)?.into_any())
            },
            callback,
        );
        Ok(())
    }

    /// Stops claiming, lets running jobs finish within the shutdown grace, then stops the
    /// scheduler and maintenance; `callback(None, None)` when done. A second call does nothing
    /// but call back.
    fn stop(&self, callback: Py<PyAny>) {
        let handle = self.take();
        bridge::spawn(
            async move {
                if let Some(h) = handle {
                    h.shutdown().await;
                }
                Ok(())
            },
            |py, ()| Ok(py.None()),
            callback,
        );
    }
}
