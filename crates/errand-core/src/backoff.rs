//! Retry backoff: `min(base * 2^(attempt-1), cap) * (1 ± jitter)` (design.md, Delivery guarantees).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Exponential backoff with jitter. Defaults: base 5 s, cap 1 h, jitter 10 %.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Fraction in `0.0..=1.0`; 0.1 spreads delays over ±10 %.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay before the retry that follows failed attempt number `attempt` (1-based).
    ///
    /// `unit` is a sample in `[0, 1)` that picks the point inside the jitter band; callers pass
    /// [`Backoff::random_unit`] in production and fixed values in tests.
    pub fn delay(&self, attempt: i32, unit: f64) -> Duration {
        let exp = attempt.max(1) - 1;
        // 2^exp overflows quickly; past 2^32 the cap has long been reached for any sane base.
        let factor = 2f64.powi(exp.min(32));
        let raw = (self.base.as_secs_f64() * factor).min(self.cap.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let scale = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((raw * scale).max(0.0))
    }

    /// A uniform sample in `[0, 1)` for [`Backoff::delay`].
    pub fn random_unit() -> f64 {
        fastrand::f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_until_cap_without_jitter_at_midpoint() {
        let b = Backoff::default();
        let secs: Vec<f64> = (1..=12).map(|a| b.delay(a, 0.5).as_secs_f64()).collect();
        assert_eq!(
            secs,
            vec![5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 3600.0, 3600.0]
        );
    }

    #[test]
    fn jitter_band_is_plus_minus_ten_percent() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.0), Duration::from_secs_f64(4.5));
        let high = b.delay(1, 0.999_999).as_secs_f64();
        assert!(high > 5.49 && high < 5.5, "{high}");
        // The cap applies before the jitter, so capped delays still spread.
        assert_eq!(b.delay(20, 0.0), Duration::from_secs(3240));
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let b = Backoff::default();
        assert_eq!(b.delay(i32::MAX, 0.5), Duration::from_secs(3600));
        assert_eq!(b.delay(0, 0.5), Duration::from_secs(5));
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..1000 {
            let u = Backoff::random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
