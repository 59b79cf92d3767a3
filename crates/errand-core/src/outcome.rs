//! What happens to a job after a failed attempt or a lost lease. Decided here, in plain code;
//! the store only writes the decision (and only if the fence still holds).

use crate::backoff::Backoff;
use crate::job::JobStatus;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a handler says an attempt went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HandlerError {
    /// An ordinary failure: retried with backoff while attempts remain.
    Error { message: String },
    /// Retry after this long, whatever the backoff says (still spends an attempt).
    RetryAfter { message: String, delay_ms: u64 },
    /// Never retry.
    Permanent { message: String },
}

impl HandlerError {
    /// Fails the attempt and asks for the next one after `delay`, whatever the backoff says.
    /// The attempt still counts against the budget.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        HandlerError::RetryAfter {
            message: message.into(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Fails the job for good: no retry, whatever attempts remain.
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError::Permanent {
            message: message.into(),
        }
    }

    /// The error text, as stored in `last_error` and the `error` event.
    pub fn message(&self) -> &str {
        match self {
            HandlerError::Error { message }
            | HandlerError::RetryAfter { message, .. }
            | HandlerError::Permanent { message } => message,
        }
    }
}

/// Lets `?` turn any error into an ordinary (retryable) failure. The message is the error's
/// text followed by its `source()` chain, `outer: cause: root cause`, skipping a cause whose
/// text the message already holds (many errors print their source themselves).
///
/// Coherent because `HandlerError` itself is not a `std::error::Error`.
impl<E> From<E> for HandlerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        HandlerError::Error { message }
    }
}

/// What the store should do with a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FailAction {
    /// Back to `queued` with `run_at = now + delay`.
    Retry {
        #[serde(with = "duration_ms")]
        delay: Duration,
    },
    /// To `failed`, for good.
    Fail,
}

/// Retry-or-fail after attempt number `attempt` (already counted) of `max_attempts`.
///
/// `unit` is the jitter sample for [`Backoff::delay`].
pub fn decide_failure(
    attempt: i32,
    max_attempts: i32,
    error: &HandlerError,
    backoff: &Backoff,
    unit: f64,
) -> FailAction {
    if matches!(error, HandlerError::Permanent { .. }) || attempt >= max_attempts {
        return FailAction::Fail;
    }
    match error {
        HandlerError::RetryAfter { delay_ms, .. } => FailAction::Retry {
            delay: Duration::from_millis(*delay_ms),
        },
        _ => FailAction::Retry {
            delay: backoff.delay(attempt, unit),
        },
    }
}

/// What to record after an attempt that ended in an error (the handler's, a timeout's, or a
/// remote worker's report): the one rule for the in-process executor and the remote-worker
/// protocol alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterError {
    /// Someone asked the job to stop while it ran: it ends `cancelled`, not retried.
    Cancel,
    /// Retry or fail, as [`decide_failure`] says.
    Apply(FailAction),
}

/// The rule behind [`AfterError`]: a cancel request wins over a retry; otherwise
/// [`decide_failure`].
pub fn decide_after_error(
    attempt: i32,
    max_attempts: i32,
    cancel_requested: bool,
    error: &HandlerError,
    backoff: &Backoff,
    unit: f64,
) -> AfterError {
    if cancel_requested {
        AfterError::Cancel
    } else {
        AfterError::Apply(decide_failure(attempt, max_attempts, error, backoff, unit))
    }
}

/// What the rescuer does with a running job whose lease expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RescueAction {
    /// Back to `queued`, runnable at once; the lost attempt counts.
    Requeue,
    /// Attempts used up: to `failed`.
    Fail,
    /// Someone had asked it to stop: to `cancelled`.
    Cancel,
}

/// The rescue rule of design.md, States: a lost attempt counts; a job someone asked to cancel
/// is not brought back.
pub fn decide_rescue(attempt: i32, max_attempts: i32, cancel_requested: bool) -> RescueAction {
    if cancel_requested {
        RescueAction::Cancel
    } else if attempt >= max_attempts {
        RescueAction::Fail
    } else {
        RescueAction::Requeue
    }
}

/// What an operator's cancel does to a job in its current state. The stores call this under
/// the lock of the row (the decision is made here; they only apply it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    /// Queued: `cancelled` at once.
    Cancel,
    /// Running and not yet asked: the worker is asked to stop (`cancel_requested_at`).
    RequestStop,
    /// Finished, or already asked: left as it is.
    Unchanged,
}

/// The cancel rule: a queued job is cancelled, a running one asked to stop (once), a finished
/// one left alone.
pub fn decide_cancel(status: JobStatus, cancel_requested: bool) -> CancelAction {
    match status {
        JobStatus::Queued => CancelAction::Cancel,
        JobStatus::Running if !cancel_requested => CancelAction::RequestStop,
        _ => CancelAction::Unchanged,
    }
}

/// The retry rule: only failed and cancelled jobs may be put back in the queue by an operator
/// (a live one is already on its way, a succeeded one is done).
pub fn may_retry(status: JobStatus) -> bool {
    matches!(status, JobStatus::Failed | JobStatus::Cancelled)
}

/// The message stored with a rescue (the `rescued` event, and `last_error` when it fails the
/// job).
pub fn rescue_message(action: RescueAction, worker_id: &str, attempt: i32) -> String {
    let what = match action {
        RescueAction::Requeue => "requeued",
        RescueAction::Fail => "that was the last attempt",
        RescueAction::Cancel => "cancelled, as was asked",
    };
    format!(
        "lease expired: worker {worker_id} stopped heartbeating during attempt {attempt}; {what}"
    )
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> HandlerError {
        HandlerError::Error {
            message: "boom".into(),
        }
    }

    #[test]
    fn retries_while_attempts_remain_then_fails() {
        let b = Backoff::default();
        assert_eq!(
            decide_failure(1, 4, &err(), &b, 0.5),
            FailAction::Retry {
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            decide_failure(3, 4, &err(), &b, 0.5),
            FailAction::Retry {
                delay: Duration::from_secs(20)
            }
        );
        assert_eq!(decide_failure(4, 4, &err(), &b, 0.5), FailAction::Fail);
        assert_eq!(decide_failure(1, 1, &err(), &b, 0.5), FailAction::Fail);
    }

    #[test]
    fn permanent_errors_never_retry() {
        let e = HandlerError::Permanent {
            message: "bad input".into(),
        };
        assert_eq!(
            decide_failure(1, 10, &e, &Backoff::default(), 0.5),
            FailAction::Fail
        );
    }

    #[test]
    fn retry_after_overrides_backoff_but_not_the_budget() {
        let e = HandlerError::RetryAfter {
            message: "429".into(),
            delay_ms: 42_000,
        };
        let b = Backoff::default();
        assert_eq!(
            decide_failure(1, 4, &e, &b, 0.5),
            FailAction::Retry {
                delay: Duration::from_secs(42)
            }
        );
        assert_eq!(decide_failure(4, 4, &e, &b, 0.5), FailAction::Fail);
    }

    #[test]
    fn constructors_and_question_mark_conversion_keep_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("could not read the upload")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        fn handler() -> Result<(), HandlerError> {
            Err(Outer(std::io::Error::other("disk on fire")))?;
            Ok(())
        }
        assert_eq!(
            handler().unwrap_err(),
            HandlerError::Error {
                message: "could not read the upload: disk on fire".into()
            }
        );
        let parse: Result<i32, HandlerError> = "x".parse::<i32>().map_err(Into::into);
        assert_eq!(
            parse.unwrap_err().message(),
            "invalid digit found in string"
        );
        assert_eq!(
            HandlerError::retry_after("429", Duration::from_secs(3)),
            HandlerError::RetryAfter {
                message: "429".into(),
                delay_ms: 3000
            }
        );
        assert_eq!(
            HandlerError::permanent("bad input"),
            HandlerError::Permanent {
                message: "bad input".into()
            }
        );
    }

    #[test]
    fn a_cancel_request_wins_over_a_retry() {
        let b = Backoff::default();
        assert_eq!(
            decide_after_error(1, 4, true, &err(), &b, 0.5),
            AfterError::Cancel
        );
        assert_eq!(
            decide_after_error(1, 4, false, &err(), &b, 0.5),
            AfterError::Apply(FailAction::Retry {
                delay: Duration::from_secs(5)
            })
        );
        assert_eq!(
            decide_after_error(4, 4, false, &err(), &b, 0.5),
            AfterError::Apply(FailAction::Fail)
        );
    }

    #[test]
    fn cancel_and_retry_eligibility() {
        assert_eq!(
            decide_cancel(JobStatus::Queued, false),
            CancelAction::Cancel
        );
        assert_eq!(
            decide_cancel(JobStatus::Running, false),
            CancelAction::RequestStop
        );
        assert_eq!(
            decide_cancel(JobStatus::Running, true),
            CancelAction::Unchanged
        );
        for s in [
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            assert_eq!(decide_cancel(s, false), CancelAction::Unchanged);
        }
        let retryable: Vec<JobStatus> = JobStatus::ALL
            .into_iter()
            .filter(|s| may_retry(*s))
            .collect();
        assert_eq!(retryable, vec![JobStatus::Failed, JobStatus::Cancelled]);
    }

    #[test]
    fn rescue_rules() {
        assert_eq!(decide_rescue(1, 4, false), RescueAction::Requeue);
        assert_eq!(decide_rescue(4, 4, false), RescueAction::Fail);
        assert_eq!(decide_rescue(1, 4, true), RescueAction::Cancel);
    }
}
