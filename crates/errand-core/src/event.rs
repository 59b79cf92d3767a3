//! Events: the append-only history of what happened to a job beyond the happy path.
//!
//! The happy path (created, started, succeeded) is read off the job's own timestamps, so a
//! job that succeeds first time writes no event row at all (design.md, States).

use crate::job::JobId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What an event records. Stored as the snake_case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An attempt failed; `data.next` says whether it will be retried (and when) or failed.
    Error,
    /// The lease expired and the rescuer took the job back (requeued, failed or cancelled).
    Rescued,
    /// Someone asked a running job to stop.
    CancelRequested,
    /// The job was cancelled.
    Cancelled,
    /// An operator put a failed or cancelled job back in the queue.
    Retried,
    /// A worker shutting down handed the job back without spending the attempt.
    Released,
    /// Errand changed what it recorded of an attempt's output to store it (characters a store
    /// cannot hold, a result nested too deep, a result the store refused); `message` says how.
    Note,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Error,
        EventKind::Rescued,
        EventKind::CancelRequested,
        EventKind::Cancelled,
        EventKind::Retried,
        EventKind::Released,
        EventKind::Note,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Error => "error",
            EventKind::Rescued => "rescued",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Cancelled => "cancelled",
            EventKind::Retried => "retried",
            EventKind::Released => "released",
            EventKind::Note => "note",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind `{s}`"))
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub job_id: JobId,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    /// The job's attempt number when it happened.
    pub attempt: i32,
    pub worker_id: Option<String>,
    /// The error text (with stderr tail or traceback) or the operator's reason.
    pub message: Option<String>,
    /// Structured detail, e.g. `{"next": "retry", "run_at": "..."}`.
    pub data: Option<serde_json::Value>,
}

/// An event to append (the store sets id and time).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub job_id: JobId,
    pub kind: EventKind,
    pub attempt: i32,
    pub worker_id: Option<String>,
    pub message: Option<String>,
    pub data: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }
}
