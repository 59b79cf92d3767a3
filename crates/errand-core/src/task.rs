//! Typed tasks: a Rust type whose serde form is a job's `args`.

use serde::{de::DeserializeOwned, Serialize};

/// A kind of job with typed arguments.
///
/// The type's serde form must be a JSON object (a struct with named fields, or a map): that
/// object is the job's `args`.
pub trait Task: Serialize + DeserializeOwned + Send + 'static {
    /// The task kind that selects the handler, e.g. `"send_email"`.
    const KIND: &'static str;
    /// The queue its jobs go to unless the enqueue says otherwise.
    const QUEUE: &'static str = crate::validate::DEFAULT_QUEUE;
    /// Attempts before a job of this kind fails for good, unless the enqueue says otherwise.
    const MAX_ATTEMPTS: i32 = crate::validate::DEFAULT_MAX_ATTEMPTS;
}
