//! Errand's vocabulary and pure rules, with no I/O.
//!
//! Everything here is plain data and plain functions so that the rules that decide a job's fate
//! (the state machine, retry-or-fail, backoff, rescue, validation) can be unit-tested with an
//! injected clock and random source, and so that every other crate uses the same words:
//! the five stored [`JobStatus`] values are spelled the same in code, SQL, CLI, API and dashboard.

pub mod args;
pub mod backoff;
pub mod clock;
pub mod duration;
pub mod event;
pub mod flow;
pub mod job;
pub mod outcome;
pub mod progress;
pub mod recorded;
pub mod redact;
pub mod schema;
pub mod settings;
pub mod storable;
pub mod task;
pub mod validate;

pub use args::JobArgs;
pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use duration::{parse_duration, DurationError};
pub use event::{Event, EventKind, NewEvent};
pub use flow::QueueLimits;
pub use job::{
    parse_job_id, ClaimedJob, DerivedState, Fence, Job, JobId, JobStatus, UnknownStatus,
};
pub use outcome::{
    decide_after_error, decide_cancel, decide_failure, decide_rescue, may_retry, rescue_message,
    AfterError, CancelAction, FailAction, HandlerError, RescueAction,
};
pub use progress::{Progress, ProgressError, MAX_PROGRESS_BYTES};
pub use settings::{TaskCatalog, TaskSettings};
pub use task::Task;
pub use validate::{
    JobInsert, Limits, NewJob, Rejection, RunAt, ValidationError, MAX_DELAY_MS, RUN_AT_MAX_MICROS,
    RUN_AT_MIN_MICROS,
};
