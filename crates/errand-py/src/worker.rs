//! `Worker`: an `errand-runtime` runtime (maintenance, the worker pool, the scheduler; no
//! HTTP API) whose tasks are in-process handlers that call into Python. The Rust pool claims,
//! leases, heartbeats, fences, retries, rescues and drains; each job is posted to the
//! [`mailbox`](crate::mailbox) with its facts, its args, its `Done` and its `Progress`
//! reporter, the Python dispatcher starts it from there, and the pool waits (without the GIL)
//! for `Done` to be given the outcome. When the pool asks the job to stop (cancel, timeout,
//! lost lease, end of the shutdown grace), the started handler's `cancel(reason)` is called.

use crate::bridge;
use crate::client::Client;
use crate::mailbox::{DoneState, Letter, Mailbox, Outcome, Shared};
use crate::tasks;
use errand::worker::StopReason;
use errand::{HandlerError, JobArgs, JobContext};
use errand_runtime::{Runtime, RuntimeHandle, SchedulerSettings, ServerSettings};
use pyo3::prelude::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

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

/// Takes a job back from the mailbox when its task ends (a no-op once the loop took it).
struct Withdraw<'a>(&'a Shared, &'a Arc<DoneState>);

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.0.withdraw(self.1);
    }
}

/// Runs one job through the Python dispatcher: posts it to the mailbox, wakes the loop if
/// nobody has yet (`dispatcher.wake()`, on a blocking thread: taking the GIL can wait as long
/// as a handler holds it, and the runtime's workers must keep running heartbeats and the lease
/// watchdog), then waits for the outcome or a stop request.
async fn run_in_python(
    dispatcher: Arc<Py<PyAny>>,
    mailbox: Arc<Shared>,
    ctx: JobContext,
    args: JobArgs,
) -> Outcome {
    let (tx, mut rx) = oneshot::channel();
    let done = Arc::new(DoneState::new(tx));
    let letter = Letter {
        facts: job_facts(&ctx),
        // The args' JSON text as the claim returned it: Python decodes it, once.
        args: args.get().to_owned(),
        done: done.clone(),
        progress: ctx.clone(),
    };
    // If the pool drops this task (its stop grace ran out, a shutdown), a job still in the
    // mailbox must not start afterwards.
    let _withdraw_on_drop = Withdraw(&mailbox, &done);
    if mailbox.post(letter) {
        let woke = tokio::task::spawn_blocking(move || {
            Python::attach(|py| dispatcher.call_method0(py, "wake").map(drop))
        })
        .await;
        let failure = match woke {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("the Python dispatcher failed: {e}")),
            Err(e) => Some(format!("the Python dispatcher's thread failed: {e}")),
        };
        if let Some(message) = failure {
            mailbox.wake_failed(&message);
        }
    }
    let outcome = tokio::select! {
        out = &mut rx => out,
        reason = ctx.cancelled() => {
            let word = reason_word(reason);
            let run = done.stop(word);
            if run.is_none() && mailbox.withdraw(&done) {
                // Never started: the outcome a started handler gives when stopped.
                return Err(HandlerError::Error {
                    message: format!("stopped: {word}"),
                });
            }
            if let Some(run) = run {
                let _ = tokio::task::spawn_blocking(move || {
                    Python::attach(|py| {
                        if let Err(e) = run.call_method1(py, "cancel", (word,)) {
                            e.write_unraisable(py, None);
                        }
                    });
                })
                .await;
            }
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

/// The runtime for `config` (JSON: tasks, queues, queue_limits, schedules, workers, scheduler)
/// on `client`.
fn build(
    client: &Client,
    config: &str,
    dispatcher: Py<PyAny>,
    mailbox: Arc<Shared>,
) -> PyResult<Runtime> {
    let config = tasks::parse("worker", config)?;
    let defs = tasks::definitions(config.get("tasks").unwrap_or(&Value::Null))?;
    let queues = tasks::queues(config.get("queues").unwrap_or(&Value::Null))?;
    let queue_limits = tasks::queue_limits(config.get("queue_limits").unwrap_or(&Value::Null))?;
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
        .queue_limits(queue_limits)
        .schedules(schedules)
        .workers(workers)
        .server(ServerSettings {
            enabled: false,
            ..ServerSettings::default()
        })
        .scheduler(SchedulerSettings { enabled: scheduler })
        .on_pool(move |mut pool| {
            for kind in kinds {
                let (d, m) = (dispatcher.clone(), mailbox.clone());
                pool = pool.register_kind(kind, move |ctx, args| {
                    run_in_python(d.clone(), m.clone(), ctx, args)
                });
            }
            pool
        }))
}

#[pymethods]
impl Worker {
    /// Starts a runtime on `client` for `config`; `callback(error, worker)` when it runs.
    /// `dispatcher.bind(mailbox)` is called first: the dispatcher takes its jobs from there
    /// when `dispatcher.wake()` is called.
    #[staticmethod]
    fn start(
        py: Python<'_>,
        client: &Client,
        config: &str,
        dispatcher: Py<PyAny>,
        callback: Py<PyAny>,
    ) -> PyResult<()> {
        let mailbox = Arc::new(Shared::default());
        dispatcher.call_method1(py, "bind", (Mailbox(mailbox.clone()),))?;
        let rt = build(client, config, dispatcher, mailbox)?;
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
