//! The `worker` benchmark's figures and its table: per-run measurements, their medians and
//! ratios, and the Markdown table printed at the end (docs/benchmarks.md keeps the latest).

use super::hotpath::{drain_json, HotSummary};
use super::options::{sqlite_sync, Opts};
use super::{load_average, Sizes, CONCURRENCY, LATENCY_GAP};
use serde_json::{json, Value};

/// What a drain measured: the drain rate, the worker process's peak RSS (the largest of
/// several), and the rate of the bulk enqueue that filled the queue.
#[derive(Clone, Copy)]
pub struct Drain {
    pub rate: f64,
    pub rss_mib: f64,
    pub enqueue_rate: f64,
}

pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    fn json(&self) -> Value {
        json!({ "p50_ms": self.p50, "p95_ms": self.p95, "p99_ms": self.p99, "max_ms": self.max })
    }

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

/// The median rates; the largest peak RSS.
pub fn median_drain(v: Vec<Drain>) -> Drain {
    let rss_mib = v.iter().map(|d| d.rss_mib).fold(0.0, f64::max);
    Drain {
        rate: median(v.iter().map(|d| d.rate).collect()),
        rss_mib,
        enqueue_rate: median(v.iter().map(|d| d.enqueue_rate).collect()),
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
    /// PostgreSQL's hot path (none on SQLite).
    pub hot: Option<HotSummary>,
}

impl Results {
    /// The medians and ratios, as JSON.
    pub fn json(&self) -> Value {
        let r = |x: &Option<Ratio>| x.as_ref().map(Ratio::json);
        let l = |x: &Option<Latency>| x.as_ref().map(Latency::json);
        json!({
            "baseline": self.baseline,
            "floor": self.floor,
            "w1": self.w1.map(drain_json),
            "w2": l(&self.w2),
            "w2_after_enqueue": l(&self.w2_after),
            "commit": l(&self.commit),
            "w3": self.w3.map(drain_json),
            "ratios": {
                "w1_over_baseline": r(&self.w1_ratio),
                "w1_over_floor": r(&self.w1_floor_ratio),
                "w3_over_w1": r(&self.w3_ratio),
            },
            "hot_path": self.hot.as_ref().map(HotSummary::json),
        })
    }
}

/// One run's figures of the first table, for its JSON.
pub struct RunFigures<'a> {
    pub baseline: Option<f64>,
    pub floor: Option<f64>,
    pub w1: Option<Drain>,
    pub w3: Option<Drain>,
    pub commits: &'a [f64],
    /// W2 samples: (from before the enqueue, from its return), ms.
    pub samples: &'a [(f64, f64)],
}

/// One run as JSON: the load average at its start, its figures, its hot path.
pub fn run_json(load: &str, f: RunFigures, hot: Value) -> Value {
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let w1 = f.w1.map(|d| d.rate);
    let lat = |v: Vec<f64>| (!v.is_empty()).then(|| Latency::of(v).json());
    json!({
        "load_average": load,
        "baseline": f.baseline,
        "floor": f.floor,
        "w1": f.w1.map(drain_json),
        "w2": lat(f.samples.iter().map(|s| s.0).collect()),
        "w2_after_enqueue": lat(f.samples.iter().map(|s| s.1).collect()),
        "commit": lat(f.commits.to_vec()),
        "w3": f.w3.map(drain_json),
        "ratios": {
            "w1_over_baseline": ratio(w1, f.baseline),
            "w1_over_floor": ratio(w1, f.floor),
            "w3_over_w1": ratio(f.w3.map(|d| d.rate), w1),
        },
        "hot_path": hot,
    })
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

    pub fn json(&self) -> Value {
        json!({ "median": self.median, "lowest": self.min, "highest": self.max })
    }

    /// `62 %`, or `62 % (30–65)` over several runs, marked when the median misses `target` %.
    pub fn cell(&self, target: f64) -> String {
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
    let first_table = all.iter().any(|(_, r)| {
        r.baseline.is_some()
            || r.floor.is_some()
            || r.w1.is_some()
            || r.w2.is_some()
            || r.w3.is_some()
    });
    if first_table {
        print_first_table(opts, sizes, all);
    }
    for (_, r) in all {
        if let Some(hot) = &r.hot {
            hot.print_table(sizes);
        }
    }
}

/// The table of W1, W2, W3, the baseline and the floor, a column per backend.
fn print_first_table(opts: &Opts, sizes: &Sizes, all: &[(&str, Results)]) {
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
    let target_for = |b: &str, pg: f64, lite: f64| if b == "postgres" { pg } else { lite };
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
        "≥ 60 % sqlite, ≥ 90 % postgres",
        &|b, r| {
            r.w1_ratio
                .as_ref()
                .map(|x| x.cell(target_for(b, 90.0, 60.0)))
        },
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
        "< 64 sqlite, < 32 postgres",
        &|b, r| {
            r.w1.as_ref().map(|d| {
                format!(
                    "{:.1}{}",
                    d.rss_mib,
                    mark(d.rss_mib < target_for(b, 32.0, 64.0))
                )
            })
        },
    );
}

pub fn thousands(n: u64) -> String {
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
