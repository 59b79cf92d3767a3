//! `errand._native`: the native half of the `errand` Python package (PyO3, abi3 for CPython
//! 3.9+). It is thin on purpose: every rule (task settings, validation, unique keys, leases,
//! heartbeats, fencing, retries, rescue, drain) is the `errand` and `errand-runtime` crates';
//! this crate only moves JSON text and calls across the language boundary, and the Python
//! layer (`python/errand`) gives them their Python shape.
//!
//! | module | owns |
//! | --- | --- |
//! | `bridge` | the one tokio runtime of the process, blocking calls with the GIL released, results handed to a Python callback |
//! | `client` | `Client`: connect, the task catalog, and every client operation as JSON in, JSON out |
//! | `tasks` | the Python app's task, queue-limit and worker settings (JSON) read into `errand-runtime`'s settings types |
//! | `worker` | `Worker`: an `errand-runtime` runtime whose in-process handlers call into Python |
//! | `mailbox` | How jobs reach Python: posted by the engine's tasks, taken by the event loop in one call; each job's `Done` and `Progress` |

mod bridge;
mod client;
mod mailbox;
mod tasks;
mod worker;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    ErrandError,
    pyo3::exceptions::PyException,
    "An error from Errand's engine."
);
pyo3::create_exception!(
    _native,
    InvalidError,
    ErrandError,
    "A job, schedule or setting was refused before anything was written; the message names the field."
);
pyo3::create_exception!(
    _native,
    NotFoundError,
    ErrandError,
    "The job or schedule does not exist."
);

/// The library's error as the Python exception that says what kind it is.
pub(crate) fn py_error(e: errand::Error) -> PyErr {
    let text = error_text(&e);
    match e {
        errand::Error::Invalid(_)
        | errand::Error::InvalidInBatch { .. }
        | errand::Error::InvalidSchedule(_)
        | errand::Error::ConfigOwned(_)
        | errand::Error::UnknownQueue { .. }
        | errand::Error::UnsupportedUrl(_) => InvalidError::new_err(text),
        errand::Error::Store(errand::StoreError::NotFound(_)) => NotFoundError::new_err(text),
        _ => ErrandError::new_err(text),
    }
}

/// The error with its chain of causes, `outer: cause`.
pub(crate) fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// A human duration (`500ms`, `30s`, `10m`, `1h30m`) in milliseconds, read by the same rule
/// as `errand.toml`; `ValueError` naming `field` otherwise.
#[pyfunction]
fn parse_duration_ms(field: &str, text: &str) -> PyResult<u64> {
    errand_core::parse_duration(text)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{field}: {e}")))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ErrandError", py.get_type::<ErrandError>())?;
    m.add("InvalidError", py.get_type::<InvalidError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add_class::<client::Client>()?;
    m.add_class::<worker::Worker>()?;
    m.add_class::<mailbox::Done>()?;
    m.add_class::<mailbox::Progress>()?;
    m.add_class::<mailbox::Mailbox>()?;
    m.add_function(wrap_pyfunction!(parse_duration_ms, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::check_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(tasks::check_queue_limits, m)?)?;
    Ok(())
}
