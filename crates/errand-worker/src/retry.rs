//! Riding out store errors (a database restarting, a dropped connection): the claim loop
//! retries forever with a capped backoff; recording an outcome retries for a while, then
//! leaves the job to the rescuer.

use crate::pool::Shared;
use errand_store::{StoreError, StoreResult};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

const FIRST: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// 100 ms doubling to 5 s.
#[derive(Debug)]
pub(crate) struct RetryDelay(Duration);

impl RetryDelay {
    pub(crate) fn new() -> Self {
        RetryDelay(FIRST)
    }

    /// The wait before the next try; doubles each call up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(CAP);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.0 = FIRST;
    }
}

/// Runs a store call that records an outcome, retrying other errors than `Stale` and
/// `NotFound` (which retrying cannot fix) for up to `config.record_retry_for`, or until
/// shutdown gives up on the store.
///
/// Giving up is safe: the job stays `running` under this worker's fence, its lease runs out
/// (the heartbeat stops covering it once it leaves the registry), and the rescuer requeues
/// it. The job runs again: at least once, never lost.
pub(crate) async fn persist<T, F, Fut>(
    shared: &Shared,
    op: &'static str,
    mut call: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let started = Instant::now();
    let mut delay = RetryDelay::new();
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e @ (StoreError::Stale { .. } | StoreError::NotFound(_))) => return Err(e),
            Err(e) => {
                if shared.abandon.is_fired() || started.elapsed() >= shared.config.record_retry_for
                {
                    return Err(e);
                }
                let wait = delay.next_delay();
                tracing::warn!(
                    op,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "store error while recording a job outcome; retrying"
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.abandon.fired() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut d = RetryDelay::new();
        let ms: Vec<u128> = (0..8).map(|_| d.next_delay().as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        d.reset();
        assert_eq!(d.next_delay(), FIRST);
    }
}
