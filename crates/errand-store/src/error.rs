//! Errors a store reports. Typed so that callers (HTTP, CLI) can map them to status codes.

use errand_core::JobId;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No job with this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// No schedule with this name.
    #[error("schedule `{0}` not found")]
    ScheduleNotFound(String),
    /// The thing to create already exists (a schedule with this name).
    #[error("{0}")]
    Conflict(String),
    /// The caller's fence (job id, attempt, worker) no longer matches: it lost the lease.
    /// Nothing was written.
    #[error("stale acknowledgement for job {job_id} attempt {attempt}: the lease is no longer held by this worker")]
    Stale { job_id: JobId, attempt: i32 },
    /// The database could not be reached or the connection dropped; safe to retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The disk holding the database is full: the write was not applied. Writes fail until
    /// space is freed, then succeed again (so it counts as transient).
    #[error("the disk holding the database is full: {0}")]
    DiskFull(String),
    /// The operation does not apply to this backend; says what to use instead.
    #[error("{0}")]
    Unsupported(String),
    /// The schema is missing or newer than this build understands.
    #[error("schema problem: {0}")]
    Schema(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::DiskFull(_))
    }
}
