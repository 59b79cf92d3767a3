//! What happens to a job after a failed attempt or a lost lease. Decided here, in plain code;
//! the store only writes the decision (and only if the fence still holds).

use crate::backoff::Backoff;
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
    pub fn message(&self) -> &str {
        match self {
            HandlerError::Error { message }
            | HandlerError::RetryAfter { message, .. }
            | HandlerError::Permanent { message } => message,
        }
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

/// The rescue rule of SPEC section 3: a lost attempt counts; a job someone asked to cancel
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
        assert_eq!(decide_failure(1, 10, &e, &Backoff::default(), 0.5), FailAction::Fail);
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
    fn rescue_rules() {
        assert_eq!(decide_rescue(1, 4, false), RescueAction::Requeue);
        assert_eq!(decide_rescue(4, 4, false), RescueAction::Fail);
        assert_eq!(decide_rescue(1, 4, true), RescueAction::Cancel);
    }
}
