//! The views the API answers with are the library's (`errand::views`, the ones the CLI prints
//! too); this module applies the caller's right to see secrets to them: for every role but
//! `admin`, values under secret-looking keys in arguments, results and event data are
//! `[redacted]` (the views' one redaction, `Redact::for_reader`).

use crate::auth::Caller;
use chrono::{DateTime, Utc};
use errand::views::{JobDetailView, JobPageView, JobView, Redact};
use errand_core::{Event, Job};
use errand_store::JobPage;

/// One job as `caller` may see it, with its derived view at `now`.
pub fn job(job: &Job, caller: &Caller, now: DateTime<Utc>) -> JobView {
    JobView::new(job, now).for_reader(caller.role.sees_secrets())
}

/// A page of jobs as `caller` may see them.
pub fn page(page: &JobPage, caller: &Caller, now: DateTime<Utc>) -> JobPageView {
    JobPageView::new(page, now).for_reader(caller.role.sees_secrets())
}

/// A job with its events as `caller` may see them.
pub fn detail(job: &Job, events: &[Event], caller: &Caller, now: DateTime<Utc>) -> JobDetailView {
    JobDetailView::new(job, events, now).for_reader(caller.role.sees_secrets())
}

/// Any view as `caller` may see it.
pub fn for_caller<V: Redact>(view: V, caller: &Caller) -> V {
    view.for_reader(caller.role.sees_secrets())
}
