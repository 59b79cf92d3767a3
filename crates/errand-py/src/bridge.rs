//! How Python waits on Rust: one tokio runtime for the process (started on first use), a
//! blocking call that releases the GIL while the runtime works, and a call that returns at
//! once and hands its result to a Python callback later (what the Python layer turns into an
//! asyncio future with `loop.call_soon_threadsafe`), so an event loop never blocks on the
//! database.

use pyo3::prelude::*;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The process's runtime until [`shutdown`]: the client's connections, the worker pools and
/// the scheduler run on it, whichever Python thread started them.
static RUNTIME: Mutex<Option<tokio::runtime::Runtime>> = Mutex::new(None);
static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// A handle on the process's runtime, started on first use.
pub(crate) fn runtime() -> &'static tokio::runtime::Handle {
    HANDLE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name("errand")
            .enable_all()
            .build()
            .expect("the tokio runtime starts");
        let handle = rt.handle().clone();
        *RUNTIME.lock().unwrap_or_else(|p| p.into_inner()) = Some(rt);
        handle
    })
}

/// Stops the runtime's threads, waiting up to 5 s for what runs on them, with the GIL
/// released. The package calls it at interpreter exit (`atexit`): the interpreter must not
/// be torn down while one of these threads is inside a Python callback.
#[pyfunction]
pub(crate) fn shutdown(py: Python<'_>) {
    let rt = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(rt) = rt {
        py.detach(move || rt.shutdown_timeout(Duration::from_secs(5)));
    }
}

/// Runs `fut` to completion on the runtime with the GIL released.
pub(crate) fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    py.detach(|| runtime().block_on(fut))
}

/// Runs `fut` on the runtime and returns at once; when it ends, calls
/// `callback(None, value)` or `callback(exception, None)` with the GIL held. The callback is
/// Python's, and must not raise (what it raises is printed as unraisable).
pub(crate) fn spawn<T, F, C>(fut: F, convert: C, callback: Py<PyAny>)
where
    T: Send + 'static,
    F: Future<Output = PyResult<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    runtime().spawn(async move {
        let out = fut.await;
        // The GIL is taken on a blocking thread: a handler holding it must not stall the
        // runtime's workers (heartbeats, lease watchdogs, other jobs).
        let _ = tokio::task::spawn_blocking(move || {
            Python::attach(|py| {
                let value = out.and_then(|v| convert(py, v));
                let called = match value {
                    Ok(v) => callback.call1(py, (py.None(), v)),
                    Err(e) => callback.call1(py, (e.into_value(py), py.None())),
                };
                if let Err(e) = called {
                    e.write_unraisable(py, None);
                }
            });
        })
        .await;
    });
}
