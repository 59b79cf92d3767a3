//! The JSON views of Errand's resources: one serialisable type per resource (a job, a job
//! with its events, a schedule, a schedule in full, a queue, a worker), which the CLI's
//! `--json` output and the HTTP API both print, and from which the API's OpenAPI schemas are
//! generated (each type derives `JsonSchema`), so the document, the API and the CLI cannot
//! drift apart.
//!
//! A view is built from the library's records with everything in it; what a reader without
//! the right to see secrets gets is decided by one function, [`Redact::redacted`], applied
//! to the view (values under secret-looking keys in arguments, results and event data become
//! `[redacted]`, see [`errand_core::redact`]).
//!
//! Lists of state words in schemas come from [`JobStatus::ALL`] and [`DerivedState::ALL`]
//! (see [`schema`]), never from a copy.

mod job;
mod queue;
mod schedule;
pub mod schema;

pub use job::{EventView, JobDetailView, JobPageView, JobView, ReferenceView};
pub use queue::{CountsView, QueueView, RecentView, WorkerQueueView, WorkerView};
pub use schedule::{
    FireView, LastRunView, NextFireView, RunStatsView, ScheduleDetailView, ScheduleView,
    SkippedFireView, Written,
};

use errand_core::{DerivedState, JobStatus};

/// Hides secrets from a reader who may not see them: the one redaction of every view.
pub trait Redact: Sized {
    /// The view with values under secret-looking keys replaced by `[redacted]`.
    fn redacted(self) -> Self;

    /// The view as a reader sees it: whole when `sees_secrets`, else [`Redact::redacted`].
    fn for_reader(self, sees_secrets: bool) -> Self {
        if sees_secrets {
            self
        } else {
            self.redacted()
        }
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redacted(self) -> Self {
        self.into_iter().map(Redact::redacted).collect()
    }
}

/// Redacts a JSON value in place (arguments, results, event data).
pub(crate) fn redact_value(v: &mut serde_json::Value) {
    *v = errand_core::redact::redact(v);
}

/// The state word a person should see first: the derived view if any, else the status.
pub fn state_word(status: JobStatus, derived: Option<DerivedState>) -> &'static str {
    derived.map_or(status.as_str(), DerivedState::as_str)
}
