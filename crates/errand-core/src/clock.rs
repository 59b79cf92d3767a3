//! Where "now" comes from. Production code reads the system clock (or, on PostgreSQL, the
//! database's); tests inject a [`ManualClock`] to move time without sleeping.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        *t += chrono::Duration::from_std(d).expect("duration in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let c = ManualClock::new(DateTime::from_timestamp(1_000, 0).unwrap());
        let c2 = c.clone();
        c.advance(Duration::from_millis(1500));
        assert_eq!(
            c2.now(),
            DateTime::from_timestamp_millis(1_001_500).unwrap()
        );
    }
}
