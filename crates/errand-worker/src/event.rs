//! What a running pool reports about itself, for tests and embedders that want to wait on
//! something happening instead of sleeping. Subscribe with [`crate::WorkerBuilder::events`]
//! (before start, so nothing is missed) or [`crate::WorkerHandle::events`].

use errand_core::{JobId, RescueAction};
use std::time::Duration;

/// Something the pool did. Delivered on a broadcast channel: a subscriber that falls more
/// than 1024 events behind gets `Lagged` and misses some.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// A claim returned jobs (also sent when it found none).
    Claimed {
        /// The queue claimed from.
        queue: String,
        /// How many jobs it got.
        count: usize,
    },
    /// A handler is about to start for a claimed job.
    JobStarted {
        /// The job.
        job_id: JobId,
        /// Its kind.
        kind: String,
        /// The attempt now running, from 1.
        attempt: i32,
    },
    /// A job this worker ran has an outcome (recorded, or deliberately not recorded).
    JobFinished {
        /// The job.
        job_id: JobId,
        /// Its kind.
        kind: String,
        /// The attempt that ended.
        attempt: i32,
        /// How it ended.
        outcome: JobOutcome,
    },
    /// The rescuer applied a decision to a job whose lease had expired.
    Rescued {
        /// The job.
        job_id: JobId,
        /// What became of it.
        action: RescueAction,
    },
}

/// How a job's attempt on this worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// Recorded `succeeded`.
    Succeeded,
    /// The attempt failed; recorded back to `queued`, to run again after a delay.
    Retrying {
        /// The backoff (or the handler's retry-after) before the next attempt.
        delay: Duration,
    },
    /// Recorded `failed` (permanent error or attempts used up).
    Failed,
    /// Recorded `cancelled` after an operator's cancel.
    Cancelled,
    /// Handed back to `queued` by shutdown without spending the attempt.
    Released,
    /// The lease was lost to another worker; nothing was recorded.
    LeaseLost,
    /// The store refused the acknowledgement: the fence no longer held (someone else holds
    /// or finished the job). Nothing was written.
    Stale,
    /// The store could not be reached for long enough that the pool gave up recording; the
    /// job stays `running` until its lease expires and the rescuer takes it.
    Unrecorded,
}
