//! The process's own counters and run-duration histogram, and a writer of the Prometheus text
//! exposition format (version 0.0.4), written by hand: a handful of metric families does not
//! justify a metrics framework.
//!
//! Counters count what this process did (jobs it enqueued over the API, outcomes recorded by
//! its worker pool and by remote workers through it), like any per-process Prometheus
//! counter: sum them over instances. Gauges read from the database at scrape time (jobs by
//! queue and state, depth, oldest age, live workers) are the same from every instance.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the run-duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 1800.0,
];

/// Counters and the histogram. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    enqueued: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    cancelled: AtomicU64,
    /// One count per bucket of [`DURATION_BUCKETS`] (not cumulative), then the overflow.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
}

impl Metrics {
    /// `n` jobs were inserted.
    pub fn enqueued(&self, n: u64) {
        self.enqueued.fetch_add(n, Ordering::Relaxed);
    }

    /// A job succeeded after running `seconds` (when known).
    pub fn succeeded(&self, seconds: Option<f64>) {
        self.succeeded.fetch_add(1, Ordering::Relaxed);
        self.observe(seconds);
    }

    /// A job failed for good.
    pub fn failed(&self, seconds: Option<f64>) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.observe(seconds);
    }

    /// An attempt failed and the job will run again.
    pub fn retried(&self, seconds: Option<f64>) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        self.observe(seconds);
    }

    /// A running job ended cancelled.
    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, seconds: Option<f64>) {
        let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
            return;
        };
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add((s * 1e6) as u64, Ordering::Relaxed);
    }

    /// Writes the counters and the histogram.
    pub fn render(&self, out: &mut Exposition) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        for (name, help, v) in [
            (
                "errand_jobs_enqueued_total",
                "Jobs inserted by this process.",
                &self.enqueued,
            ),
            (
                "errand_jobs_succeeded_total",
                "Jobs this process recorded as succeeded.",
                &self.succeeded,
            ),
            (
                "errand_jobs_failed_total",
                "Jobs this process recorded as failed for good.",
                &self.failed,
            ),
            (
                "errand_jobs_retried_total",
                "Failed attempts this process recorded that will run again.",
                &self.retried,
            ),
            (
                "errand_jobs_cancelled_total",
                "Running jobs this process recorded as cancelled.",
                &self.cancelled,
            ),
        ] {
            out.family(name, "counter", help);
            out.sample(name, &[], load(v));
        }
        let name = "errand_job_run_duration_seconds";
        out.family(
            name,
            "histogram",
            "Run time of finished attempts (success, failure or retry).",
        );
        let mut cumulative = 0.0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += load(&self.buckets[i]);
            out.sample(
                &format!("{name}_bucket"),
                &[("le", &format_value(*bound))],
                cumulative,
            );
        }
        cumulative += load(&self.buckets[DURATION_BUCKETS.len()]);
        out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], cumulative);
        out.sample(
            &format!("{name}_sum"),
            &[],
            load(&self.duration_sum_micros) / 1e6,
        );
        out.sample(&format!("{name}_count"), &[], cumulative);
    }
}

/// A Prometheus text document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.text,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        // Integers without a fraction, others as Rust prints them (shortest round trip).
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counters_count() {
        let m = Metrics::default();
        m.enqueued(3);
        m.succeeded(Some(0.004));
        m.succeeded(Some(0.2));
        m.failed(Some(7200.0));
        m.retried(None);
        let mut out = Exposition::default();
        m.render(&mut out);
        let text = out.finish();
        assert!(text.contains("errand_jobs_enqueued_total 3\n"), "{text}");
        assert!(text.contains("errand_jobs_succeeded_total 2\n"));
        assert!(text.contains("errand_jobs_retried_total 1\n"));
        assert!(
            text.contains("errand_job_run_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("errand_job_run_duration_seconds_bucket{le=\"0.25\"} 2\n"));
        assert!(text.contains("errand_job_run_duration_seconds_bucket{le=\"1800\"} 2\n"));
        assert!(text.contains("errand_job_run_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("errand_job_run_duration_seconds_count 3\n"));
        assert!(text.contains("# TYPE errand_job_run_duration_seconds histogram\n"));
    }

    #[test]
    fn labels_are_escaped() {
        let mut out = Exposition::default();
        out.sample("x", &[("queue", "a\"b\\c\nd")], 1.5);
        assert_eq!(out.finish(), "x{queue=\"a\\\"b\\\\c\\nd\"} 1.5\n");
    }
}
