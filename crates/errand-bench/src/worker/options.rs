//! The `worker` benchmark's command line (clap), and the one setting every database it opens
//! shares (SQLite's `synchronous`).

use clap::{Parser, ValueEnum};
use std::sync::OnceLock;

/// The claim batch of the baseline loops unless `--baseline-batch` says otherwise.
pub const BASELINE_BATCH: u32 = 100;

/// `errand-bench worker`: the worker pool against the store and against the smallest
/// hand-written job loop on the same database.
#[derive(Debug, Parser)]
#[command(name = "errand-bench worker", about, long_about = None)]
pub struct Opts {
    /// Which backends to measure.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    pub backend: Backends,
    /// Smaller sizes (2,000 jobs, 100 latency samples, 100,000 finished jobs, a backlog and a
    /// bulk insert of 10,000, 200 single inserts) for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Each measurement this many times, in turn within a run: the median rate and ratio,
    /// every latency sample, the largest RSS.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Only these measurements (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Measurement::ALL)]
    pub only: Vec<Measurement>,
    /// The baseline's claim batch (other values than the default are for diagnosis only).
    #[arg(long, default_value_t = BASELINE_BATCH, value_parser = clap::value_parser!(u32).range(1..))]
    pub baseline_batch: u32,
    /// SQLite's `synchronous` for every database the benchmark opens: `full` (the default,
    /// and Errand's) or `normal` (diagnosis only: commits skip the disk flush, which leaves
    /// the CPU's share of a figure).
    #[arg(long, value_enum, default_value_t = Synchronous::Full)]
    pub sqlite_synchronous: Synchronous,
    /// Print every figure (each run's and the medians) as one JSON document on stdout
    /// instead of the Markdown tables.
    #[arg(long)]
    pub json: bool,
}

impl Opts {
    /// Whether `--only` asks for this measurement.
    pub fn wants(&self, m: Measurement) -> bool {
        self.only.contains(&m)
    }

    /// The backends by name, in the order measured.
    pub fn backends(&self) -> Vec<&'static str> {
        match self.backend {
            Backends::Sqlite => vec!["sqlite"],
            Backends::Postgres => vec!["postgres"],
            Backends::Both => vec!["sqlite", "postgres"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backends {
    Sqlite,
    Postgres,
    Both,
}

/// One row group of the tables. `insert`, `backlog`, `w4` and `multi` are PostgreSQL's hot
/// path (skipped on SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Measurement {
    Baseline,
    Floor,
    W1,
    W2,
    W3,
    /// Bulk and single enqueue against raw inserts on a narrow table.
    Insert,
    /// W1 and the baseline at the backlog size (100,000 jobs).
    Backlog,
    /// The backlog drain, Errand's and the baseline's, with vacuum held back.
    W4,
    /// The backlog drained by four worker processes.
    Multi,
    /// W1 plain, with `global_concurrency = 16`, and over 100 keys with `key_concurrency = 1`.
    Flow,
}

impl Measurement {
    const ALL: [Measurement; 10] = [
        Measurement::Baseline,
        Measurement::Floor,
        Measurement::W1,
        Measurement::W2,
        Measurement::W3,
        Measurement::Insert,
        Measurement::Backlog,
        Measurement::W4,
        Measurement::Multi,
        Measurement::Flow,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    Full,
    Normal,
}

static SQLITE_SYNC: OnceLock<&'static str> = OnceLock::new();

/// Sets SQLite's `synchronous` for the rest of the run (the first call wins).
pub fn set_sqlite_sync(s: Synchronous) {
    let _ = SQLITE_SYNC.set(match s {
        Synchronous::Full => "full",
        Synchronous::Normal => "normal",
    });
}

/// SQLite's `synchronous` for every database the benchmark opens.
pub fn sqlite_sync() -> &'static str {
    SQLITE_SYNC.get().copied().unwrap_or("full")
}

/// `worker-child`: the worker process of W1/W3, started by `worker` itself (hidden).
#[derive(Debug, Parser)]
#[command(name = "errand-bench worker-child")]
pub struct ChildOpts {
    /// The SQLite file or the PostgreSQL URL.
    #[arg(long)]
    pub target: String,
    /// PostgreSQL: the schema holding Errand's tables.
    #[arg(long)]
    pub schema: Option<String>,
    /// How many jobs to wait for.
    #[arg(long)]
    pub jobs: usize,
    /// Succeeded jobs in the queue once done (history included), for when events lag.
    #[arg(long)]
    pub expect_succeeded: u64,
    /// One of several worker processes on the queue: stop when the queue's counts show
    /// `--expect-succeeded`, not when this process ran `--jobs` itself.
    #[arg(long)]
    pub shared: bool,
    /// Start the pool at this wall-clock instant (milliseconds since the Unix epoch), so
    /// that several processes start together.
    #[arg(long)]
    pub start_at_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let o = Opts::try_parse_from(["worker"]).unwrap();
        assert_eq!(o.backends(), ["sqlite", "postgres"]);
        assert_eq!(
            (o.runs, o.baseline_batch, o.quick),
            (3, BASELINE_BATCH, false)
        );
        assert!(!o.json);
        assert!(Measurement::ALL.iter().all(|m| o.wants(*m)));
        let o = Opts::try_parse_from(["worker", "--only", "baseline,w1", "--backend", "sqlite"])
            .unwrap();
        assert_eq!(o.only, [Measurement::Baseline, Measurement::W1]);
        assert_eq!(o.backends(), ["sqlite"]);
        let o = Opts::try_parse_from(["worker", "--only", "insert,backlog,w4,multi", "--json"])
            .unwrap();
        assert_eq!(
            o.only,
            [
                Measurement::Insert,
                Measurement::Backlog,
                Measurement::W4,
                Measurement::Multi
            ]
        );
        assert!(o.json);
        assert!(Opts::try_parse_from(["worker", "--only", "w9"]).is_err());
        assert!(Opts::try_parse_from(["worker", "--runs", "0"]).is_err());
    }
}
