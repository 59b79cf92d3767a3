//! One-shot signals: the stop signal each running job carries, and the pool's own
//! "stop claiming" / "stop" / "give up recording" switches.
//!
//! A few lines on `tokio::sync::Notify` rather than a dependency on `tokio-util` for its
//! `CancellationToken`: the pool needs no child tokens or drop guards, only "fire once, wake
//! every waiter, remember why".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// Why the pool asked a handler to stop. Whatever the handler returns after this, its return
/// value is not recorded as the job's outcome (a handler that stopped early may well return
/// `Ok`); the pool records what the reason implies instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// An operator or the application cancelled the job: it ends `cancelled`.
    Cancelled,
    /// Another worker holds the job now (its lease expired and it was rescued): this worker
    /// records nothing.
    LeaseLost,
    /// The job ran past its execution timeout: the attempt fails as "timed out" and is retried
    /// while attempts remain.
    Timeout,
    /// The worker is shutting down and the grace period is over: the job goes back to `queued`
    /// without spending the attempt.
    Shutdown,
}

/// A signal that fires once and wakes every waiter. Clones share the signal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signal(Arc<SignalInner>);

#[derive(Debug, Default)]
struct SignalInner {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Fires the signal; true if this call fired it (it was not fired before).
    pub(crate) fn fire(&self) -> bool {
        let first = !self.0.fired.swap(true, Ordering::SeqCst);
        if first {
            self.0.notify.notify_waiters();
        }
        first
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Completes once the signal has fired (at once if it already has).
    pub(crate) async fn fired(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a fire between the check and the await still wakes us.
            notified.as_mut().enable();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

/// The stop signal of one running job, with the first reason given.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobStop {
    signal: Signal,
    reason: Arc<OnceLock<StopReason>>,
}

impl JobStop {
    /// Asks the job to stop. The first reason wins; true if this call was the first.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.signal.fire();
        first
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// Completes with the reason once the job has been asked to stop.
    pub(crate) async fn stopped(&self) -> StopReason {
        self.signal.fired().await;
        // `stop` sets the reason before it fires the signal.
        self.reason().unwrap_or(StopReason::Shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_wakes_every_waiter_and_stays_fired() {
        let s = Signal::default();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.fired().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(s.fire());
        assert!(!s.fire(), "fires once");
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap()
                .unwrap();
        }
        // Already fired: completes at once.
        s.fired().await;
    }

    #[tokio::test]
    async fn the_first_stop_reason_wins() {
        let stop = JobStop::default();
        assert_eq!(stop.reason(), None);
        assert!(stop.stop(StopReason::Timeout));
        assert!(!stop.stop(StopReason::Shutdown));
        assert_eq!(stop.stopped().await, StopReason::Timeout);
    }
}
