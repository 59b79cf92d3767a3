//! The `worker` benchmark's figures and its table: per-run measurements, their medians and
//! ratios, and the Markdown table printed at the end (docs/benchmarks.md keeps the latest).

use super::options::{sqlite_sync, Opts};
use super::{load_average, Sizes, CONCURRENCY, LATENCY_GAP};

/// What the worker child measured.
pub struct Drain {
    pub rate: f64,
    pub rss_mib: f64,
}

pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of samples in ms.
    pub fn of(mut ms: Vec<f64>) -> Latency {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: ms[ms.len() - 1],
        }
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median rate; the largest peak RSS.
pub fn median_drain(v: Vec<Drain>) -> Drain {
    let rss_mib = v.iter().map(|d| d.rss_mib).fold(0.0, f64::max);
    Drain {
        rate: median(v.iter().map(|d| d.rate).collect()),
        rss_mib,
    }
}

#[derive(Default)]
pub struct Results {
    pub baseline: Option<f64>,
    /// SQLite only: the baseline loop on a table with a lease and a finish time indexed.
    pub floor: Option<f64>,
    pub w1: Option<Drain>,
    pub w2: Option<Latency>,
    /// W2 counted from the moment the enqueue call returned.
    pub w2_after: Option<Latency>,
    /// One-row durable commits on a bare table, taken before each W2: the disk's share.
    pub commit: Option<Latency>,
    pub w3: Option<Drain>,
    /// W1 / baseline, W1 / floor, and W3 / W1, each taken within one run.
    pub w1_ratio: Option<Ratio>,
    pub w1_floor_ratio: Option<Ratio>,
    pub w3_ratio: Option<Ratio>,
}

/// A ratio measured once per run: the median, and the lowest and highest.
pub struct Ratio {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratio {
    pub fn of(v: Vec<f64>) -> Option<Ratio> {
        if v.is_empty() {
            return None;
        }
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Ratio {
            median: median(v),
            min,
            max,
        })
    }

    /// `62 %`, or `62 % (30–65)` over several runs, marked when the median misses `target` %.
    fn cell(&self, target: f64) -> String {
        let pct = 100.0 * self.median;
        let mark = if pct >= target { "" } else { " ✗" };
        if self.min < self.max {
            format!(
                "{pct:.0} %{mark} ({:.0}–{:.0})",
                100.0 * self.min,
                100.0 * self.max
            )
        } else {
            format!("{pct:.0} %{mark}")
        }
    }
}

pub fn print_table(opts: &Opts, sizes: &Sizes, all: &[(&str, Results)], load_before: &str) {
    println!(
        "worker benchmarks{}{}: {} cores, load average {} before / {} after, sqlite synchronous={}",
        if opts.quick { " (--quick)" } else { "" },
        if opts.runs > 1 {
            format!(", median of {} runs", opts.runs)
        } else {
            String::new()
        },
        crate::cores(),
        load_before,
        load_average(),
        sqlite_sync()
    );
    println!();
    let mut header = "| measurement | target |".to_string();
    let mut rule = "| --- | --- |".to_string();
    for (backend, _) in all {
        header.push_str(&format!(" {backend} |"));
        rule.push_str(" --- |");
    }
    println!("{header}");
    println!("{rule}");
    let n = sizes.drain_jobs;
    let row = |label: String, target: &str, cell: &dyn Fn(&str, &Results) -> Option<String>| {
        let cells: Vec<_> = all.iter().map(|(b, r)| cell(b, r)).collect();
        if cells.iter().all(Option::is_none) {
            return;
        }
        let mut line = format!("| {label} | {target} |");
        for c in cells {
            line.push_str(&format!(" {} |", c.unwrap_or_else(|| "–".into())));
        }
        println!("{line}");
    };
    let mark = |ok: bool| if ok { "" } else { " ✗" };
    row(
        format!(
            "W1 drain: {} no-op jobs, concurrency {CONCURRENCY} (jobs/s)",
            thousands(n as u64)
        ),
        "",
        &|_, r| r.w1.as_ref().map(|d| thousands(d.rate as u64)),
    );
    row(
        format!(
            "baseline: bare table, {CONCURRENCY} raw-SQL loops × {} (jobs/s)",
            opts.baseline_batch
        ),
        "",
        &|_, r| r.baseline.map(|b| thousands(b as u64)),
    );
    row(
        "W1 / baseline, median (lowest–highest run)".into(),
        "≥ 60 %",
        &|_, r| r.w1_ratio.as_ref().map(|x| x.cell(60.0)),
    );
    row(
        "floor: the same loops, table with a lease and a finish time indexed (jobs/s)".into(),
        "",
        &|_, r| r.floor.map(|f| thousands(f as u64)),
    );
    row(
        "W1 / floor, median (lowest–highest run)".into(),
        "",
        &|_, r| r.w1_floor_ratio.as_ref().map(|x| x.cell(0.0)),
    );
    let (p50_pg, p50_lite, p99_pg, p99_lite) = (4.0, 2.0, 12.0, 5.0);
    let target_for = |b: &str, pg: f64, lite: f64| if b == "postgres" { pg } else { lite };
    row(
        format!(
            "W2 enqueue→start p50 (ms), {} jobs {} ms apart",
            sizes.latency_jobs,
            LATENCY_GAP.as_millis()
        ),
        "≤ 2 sqlite, ≤ 4 postgres",
        &|b, r| {
            r.w2.as_ref().map(|l| {
                format!(
                    "{:.2}{}",
                    l.p50,
                    mark(l.p50 <= target_for(b, p50_pg, p50_lite))
                )
            })
        },
    );
    row("W2 p95 (ms)".into(), "", &|_, r| {
        r.w2.as_ref().map(|l| format!("{:.2}", l.p95))
    });
    row(
        "W2 p99 (ms)".into(),
        "≤ 5 sqlite, ≤ 12 postgres",
        &|b, r| {
            r.w2.as_ref().map(|l| {
                format!(
                    "{:.2}{}",
                    l.p99,
                    mark(l.p99 <= target_for(b, p99_pg, p99_lite))
                )
            })
        },
    );
    row("W2 max (ms)".into(), "", &|_, r| {
        r.w2.as_ref().map(|l| format!("{:.2}", l.max))
    });
    row(
        "the disk's share: one-row durable commit on a bare table, p50 / p99 (ms)".into(),
        "",
        &|_, r| {
            r.commit
                .as_ref()
                .map(|l| format!("{:.2} / {:.2}", l.p50, l.p99))
        },
    );
    row(
        "W2 counted from the enqueue's return: p50 / p95 / p99 (ms)".into(),
        "",
        &|_, r| {
            r.w2_after
                .as_ref()
                .map(|l| format!("{:.2} / {:.2} / {:.2}", l.p50, l.p95, l.p99))
        },
    );
    row(
        format!(
            "W3 drain with {} finished jobs in the table (jobs/s)",
            thousands(sizes.history)
        ),
        "",
        &|_, r| r.w3.as_ref().map(|d| thousands(d.rate as u64)),
    );
    row(
        "W3 / W1, median (lowest–highest run)".into(),
        "≥ 90 %",
        &|_, r| r.w3_ratio.as_ref().map(|x| x.cell(90.0)),
    );
    row(
        "peak RSS of the worker process during W1 (MiB)".into(),
        "< 64",
        &|_, r| {
            r.w1.as_ref()
                .map(|d| format!("{:.1}{}", d.rss_mib, mark(d.rss_mib < 64.0)))
        },
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
