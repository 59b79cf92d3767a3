//! How Python waits on Rust: one tokio runtime for the process (started on first use), a
//! blocking call that releases the GIL while the runtime works, and a call that returns at
//! once and hands its result to a Python callback later (what the Python layer turns into an
//! asyncio future with `loop.call_soon_threadsafe`), so an event loop never blocks on the
//! database.

use pyo3::prelude::*;
use std::future::Future;
use std::sync::OnceLock;

/// The process's runtime: the client's connections, the worker pools and the scheduler run
/// on it, whichever Python thread started them.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("errand")
            .enable_all()
            .build()
            .expect("the tokio runtime starts")
    })
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
    });
}
