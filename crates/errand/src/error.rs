//! The library's error type.

use errand_core::ValidationError;
use errand_store::StoreError;

/// What can go wrong in a [`crate::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job was rejected before anything was written; names the field and the problem.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// One job of a batch was rejected, so none was written.
    #[error("job {index} of the batch: {source}")]
    InvalidInBatch {
        index: usize,
        #[source]
        source: ValidationError,
    },
    /// Queue limits were refused before anything was written; names the field.
    #[error("invalid queue limits: {0}")]
    InvalidLimits(#[from] errand_core::flow::LimitsError),
    /// A schedule was rejected before anything was written; names the field
    /// (`schedules.nightly.cron`) and the problem.
    #[error(transparent)]
    InvalidSchedule(#[from] errand_scheduler::SpecError),
    /// The schedule comes from the configuration file (`[schedules.NAME]`, source `config`):
    /// run-time calls may pause, resume and trigger it, but not change or delete it, since the
    /// next `errand serve` would put the file's version back.
    #[error(
        "schedule `{0}` is defined in errand.toml ([schedules.{0}], source `config`): change or \
         remove it there (applied when `errand serve` next starts); the API changes and deletes \
         only schedules created through it (source `api`)"
    )]
    ConfigOwned(String),
    /// The task's arguments could not be turned into JSON.
    #[error("could not encode the arguments of `{kind}` as JSON: {source}")]
    Encode {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    /// The database URL names no backend Errand knows.
    #[error("unsupported database URL `{0}`: use a file path, `sqlite:PATH`, or `postgres://...`")]
    UnsupportedUrl(String),
    /// The URL names a backend this build of the library left out (its cargo feature is off).
    #[error("`{url}` names a {backend} database, but this build of errand has no {backend} support: turn on the `{backend}` feature of the `errand` crate")]
    BackendNotBuilt { backend: &'static str, url: String },
    /// An operator action named a queue that no configuration declares and the store does not
    /// know (see [`crate::Client::check_queue_known`]); nothing was changed.
    #[error("queue `{queue}` is unknown: the configuration does not declare it and it has no jobs or settings (known queues: {})", list(known))]
    UnknownQueue { queue: String, known: Vec<String> },
    /// The store failed (unreachable database, stale acknowledgement, missing job, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
