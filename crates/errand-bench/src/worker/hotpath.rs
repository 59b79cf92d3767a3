//! PostgreSQL's hot path against the least the database can do, each figure beside its raw
//! counterpart measured in the same run:
//!
//! - **Bulk enqueue**: `enqueue_many` (1,000 jobs a call) against one
//!   `INSERT` over `unnest` arrays and one `COPY` per 1,000 rows on a narrow table
//!   (`errand_store_postgres::baseline::setup_narrow`). **Single enqueue**:
//!   `enqueue_kind(..).send()` against a one-row `INSERT ... RETURNING id`. Each method has a
//!   fresh database of its own; they take turns in blocks (a batch each, or 100 single
//!   inserts each) and each method's time is the sum of its blocks, so all of them see the
//!   same load and the same disk, which on a shared machine wander within seconds.
//! - **Backlog**: W1 and the baseline loop at 100,000 jobs.
//! - **W4**: both again with a second session idle in a `REPEATABLE READ` transaction that
//!   has taken its snapshot, from before the queue is filled until the drain is over (vacuum
//!   and index pruning held back); checked to still hold its snapshot at the end.
//! - **Multi**: the backlog drained by 4 worker processes (concurrency 16 each) started
//!   together, rate from the first pool's start to the last success.
//!
//! Ratios are taken within each run (W1 / baseline at the backlog, W4 / W1 at the backlog,
//! 4 processes / 1, Errand / raw for the inserts); the table gives the medians over runs
//! next to their targets (docs/benchmarks.md, PostgreSQL hot path).

use super::drain::{self, noop_args, Spec};
use super::report::{median, median_drain, thousands, Drain, Ratio};
use super::{note, Sizes, KIND, QUEUE};
use crate::db::{Concrete, FreshDb};
use errand::Client;
use errand_core::NewJob;
use errand_store_postgres::{baseline as raw, PgStore};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The worker processes of the multi-process drain.
pub const PROCS: usize = 4;
/// Jobs per bulk call, Errand's and raw.
const BULK_BATCH: usize = 1_000;
/// Single inserts per turn.
const SINGLE_BLOCK: usize = 100;

/// Enqueue rates of one run, jobs/s.
#[derive(Clone, Copy)]
pub struct Inserts {
    pub bulk_errand: f64,
    pub bulk_unnest: f64,
    pub bulk_copy: f64,
    pub single_errand: f64,
    pub single_raw: f64,
}

impl Inserts {
    /// The faster of the two raw bulk methods.
    fn bulk_raw(&self) -> f64 {
        self.bulk_unnest.max(self.bulk_copy)
    }
}

/// One run's hot-path figures (None: not measured).
#[derive(Default)]
pub struct HotRun {
    pub inserts: Option<Inserts>,
    pub baseline: Option<f64>,
    pub w1: Option<Drain>,
    pub baseline_held: Option<f64>,
    pub w4: Option<Drain>,
    pub multi: Option<Drain>,
}

/// Measures what `--only` asks for of the hot path, once, on PostgreSQL.
pub async fn measure(opts: &super::Opts, sizes: &Sizes) -> HotRun {
    use super::options::Measurement as M;
    let pg = "postgres";
    let mut r = HotRun::default();
    if opts.wants(M::Insert) {
        r.inserts = Some(inserts(sizes.bulk_jobs, sizes.single_jobs).await);
    }
    let n = sizes.backlog;
    if opts.wants(M::Backlog) {
        r.baseline = Some(drain::baseline(pg, n, opts.baseline_batch, false, false).await);
        r.w1 = Some(drain::drain(pg, Spec::w1(n)).await);
    }
    if opts.wants(M::W4) {
        r.baseline_held = Some(drain::baseline(pg, n, opts.baseline_batch, false, true).await);
        r.w4 = Some(
            drain::drain(
                pg,
                Spec {
                    hold: true,
                    ..Spec::w1(n)
                },
            )
            .await,
        );
    }
    if opts.wants(M::Multi) {
        r.multi = Some(
            drain::drain(
                pg,
                Spec {
                    procs: PROCS,
                    ..Spec::w1(n)
                },
            )
            .await,
        );
    }
    r
}

fn pg(db: &FreshDb) -> &PgStore {
    match &db.concrete {
        Concrete::Postgres { store, .. } => store,
        Concrete::Sqlite { .. } => unreachable!("the hot path is measured on PostgreSQL"),
    }
}

/// Bulk and single enqueue, Errand's and raw, in turns (see the module's doc).
async fn inserts(bulk: usize, single: usize) -> Inserts {
    let open = || FreshDb::open("postgres", "full", 2);
    let (errand_db, unnest_db, copy_db) = (open().await, open().await, open().await);
    for db in [&unnest_db, &copy_db] {
        raw::setup_narrow(pg(db)).await.expect("narrow table");
    }
    let client = Client::from_store(errand_db.store.clone());
    // Both sides' input is built once, outside the timing.
    let jobs: Vec<NewJob> = (0..BULK_BATCH)
        .map(|_| NewJob::new(KIND, noop_args()))
        .collect();
    let args: Vec<Value> = (0..BULK_BATCH).map(|_| noop_args()).collect();
    let queues = vec![QUEUE; BULK_BATCH];
    let kinds = vec![KIND; BULK_BATCH];
    let mut spent = [Duration::ZERO; 3];
    let mut done = 0;
    while done < bulk {
        let k = (bulk - done).min(BULK_BATCH);
        let t = Instant::now();
        let n = client
            .enqueue_many(&jobs[..k])
            .await
            .expect("enqueue")
            .len();
        spent[0] += t.elapsed();
        assert_eq!(n, k, "Errand enqueued the batch");
        let t = Instant::now();
        let n = raw::insert_unnest(pg(&unnest_db), &queues[..k], &kinds[..k], &args[..k])
            .await
            .expect("raw unnest insert")
            .len();
        spent[1] += t.elapsed();
        assert_eq!(n, k, "unnest inserted the batch");
        let t = Instant::now();
        let n = raw::insert_copy(pg(&copy_db), &queues[..k], &kinds[..k], &args[..k])
            .await
            .expect("raw copy");
        spent[2] += t.elapsed();
        assert_eq!(n, k as u64, "COPY wrote the batch");
        done += k;
    }
    let rate = |d: Duration, n: usize| n as f64 / d.as_secs_f64();
    let (bulk_errand, bulk_unnest, bulk_copy) = (
        rate(spent[0], bulk),
        rate(spent[1], bulk),
        rate(spent[2], bulk),
    );
    for db in [errand_db, unnest_db, copy_db] {
        db.close().await;
    }

    let (errand_db, raw_db) = (open().await, open().await);
    raw::setup_narrow(pg(&raw_db)).await.expect("narrow table");
    let client = Client::from_store(errand_db.store.clone());
    let job = noop_args();
    let mut spent = [Duration::ZERO; 2];
    let mut done = 0;
    while done < single {
        let k = (single - done).min(SINGLE_BLOCK);
        let t = Instant::now();
        for _ in 0..k {
            client
                .enqueue_kind(KIND, job.clone())
                .send()
                .await
                .expect("enqueue");
        }
        spent[0] += t.elapsed();
        let t = Instant::now();
        for _ in 0..k {
            raw::insert_one(pg(&raw_db), QUEUE, KIND, &job)
                .await
                .expect("raw insert");
        }
        spent[1] += t.elapsed();
        done += k;
    }
    let (single_errand, single_raw) = (rate(spent[0], single), rate(spent[1], single));
    for db in [errand_db, raw_db] {
        db.close().await;
    }
    note(format!(
        "postgres: bulk enqueue of {bulk} ({BULK_BATCH} a call): Errand {bulk_errand:.0}, \
         raw unnest {bulk_unnest:.0}, raw COPY {bulk_copy:.0} jobs/s; single enqueue of \
         {single}: Errand {single_errand:.0}, raw one-row insert {single_raw:.0} jobs/s"
    ));
    Inserts {
        bulk_errand,
        bulk_unnest,
        bulk_copy,
        single_errand,
        single_raw,
    }
}

/// The per-run ratios the targets speak of.
struct RunRatios {
    backlog: Option<f64>,
    w4: Option<f64>,
    held_raw: Option<f64>,
    multi: Option<f64>,
    bulk: Option<f64>,
    single: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

impl HotRun {
    fn ratios(&self) -> RunRatios {
        let w1 = self.w1.map(|d| d.rate);
        RunRatios {
            backlog: ratio(w1, self.baseline),
            w4: ratio(self.w4.map(|d| d.rate), w1),
            held_raw: ratio(self.baseline_held, self.baseline),
            multi: ratio(self.multi.map(|d| d.rate), w1),
            bulk: self.inserts.map(|i| i.bulk_errand / i.bulk_raw()),
            single: self.inserts.map(|i| i.single_errand / i.single_raw),
        }
    }

    /// This run's figures and ratios.
    pub fn json(&self) -> Value {
        let r = self.ratios();
        let ratios = [r.backlog, r.w4, r.held_raw, r.multi, r.bulk, r.single].map(|x| json!(x));
        figures_json(
            self.inserts,
            self.baseline,
            self.w1,
            self.baseline_held,
            (self.w4, self.multi),
            ratios,
        )
    }
}

/// The figures as JSON, one shape for a run and for the medians over runs; `ratios` in the
/// order backlog, W4, held raw, four processes, bulk, single.
fn figures_json(
    inserts: Option<Inserts>,
    baseline: Option<f64>,
    w1: Option<Drain>,
    baseline_held: Option<f64>,
    (w4, multi): (Option<Drain>, Option<Drain>),
    ratios: [Value; 6],
) -> Value {
    let [backlog, w4_ratio, held_raw, multi_ratio, bulk, single] = ratios;
    json!({
        "bulk_enqueue": inserts.map(|i| json!({
            "errand": i.bulk_errand, "raw_unnest": i.bulk_unnest, "raw_copy": i.bulk_copy,
        })),
        "single_enqueue": inserts.map(|i| json!({
            "errand": i.single_errand, "raw_insert": i.single_raw,
        })),
        "backlog_baseline": baseline,
        "backlog_w1": w1.map(drain_json),
        "held_baseline": baseline_held,
        "w4": w4.map(drain_json),
        "multi": multi.map(drain_json),
        "ratios": {
            "backlog_w1_over_baseline": backlog,
            "w4_over_backlog_w1": w4_ratio,
            "held_baseline_over_baseline": held_raw,
            "multi_over_backlog_w1": multi_ratio,
            "bulk_errand_over_raw": bulk,
            "single_errand_over_raw": single,
        },
    })
}

pub fn drain_json(d: Drain) -> Value {
    json!({ "jobs_per_s": d.rate, "peak_rss_mib": d.rss_mib, "enqueue_jobs_per_s": d.enqueue_rate })
}

/// Medians over runs, and each ratio's median and range.
pub struct HotSummary {
    inserts: Option<Inserts>,
    baseline: Option<f64>,
    w1: Option<Drain>,
    baseline_held: Option<f64>,
    w4: Option<Drain>,
    multi: Option<Drain>,
    backlog: Option<Ratio>,
    w4_ratio: Option<Ratio>,
    held_raw: Option<Ratio>,
    multi_ratio: Option<Ratio>,
    bulk: Option<Ratio>,
    single: Option<Ratio>,
}

fn med(v: Vec<f64>) -> Option<f64> {
    (!v.is_empty()).then(|| median(v))
}

fn med_drain(v: Vec<Drain>) -> Option<Drain> {
    (!v.is_empty()).then(|| median_drain(v))
}

impl HotSummary {
    pub fn of(runs: &[HotRun]) -> Option<HotSummary> {
        let all = |f: &dyn Fn(&HotRun) -> Option<f64>| runs.iter().filter_map(f).collect();
        let drains = |f: &dyn Fn(&HotRun) -> Option<Drain>| runs.iter().filter_map(f).collect();
        let ratios: Vec<RunRatios> = runs.iter().map(HotRun::ratios).collect();
        let rs = |f: &dyn Fn(&RunRatios) -> Option<f64>| {
            Ratio::of(ratios.iter().filter_map(f).collect())
        };
        let ins: Vec<Inserts> = runs.iter().filter_map(|r| r.inserts).collect();
        let s = HotSummary {
            inserts: (!ins.is_empty()).then(|| {
                let m = |f: fn(&Inserts) -> f64| median(ins.iter().map(f).collect());
                Inserts {
                    bulk_errand: m(|i| i.bulk_errand),
                    bulk_unnest: m(|i| i.bulk_unnest),
                    bulk_copy: m(|i| i.bulk_copy),
                    single_errand: m(|i| i.single_errand),
                    single_raw: m(|i| i.single_raw),
                }
            }),
            baseline: med(all(&|r| r.baseline)),
            w1: med_drain(drains(&|r| r.w1)),
            baseline_held: med(all(&|r| r.baseline_held)),
            w4: med_drain(drains(&|r| r.w4)),
            multi: med_drain(drains(&|r| r.multi)),
            backlog: rs(&|r| r.backlog),
            w4_ratio: rs(&|r| r.w4),
            held_raw: rs(&|r| r.held_raw),
            multi_ratio: rs(&|r| r.multi),
            bulk: rs(&|r| r.bulk),
            single: rs(&|r| r.single),
        };
        let any = s.inserts.is_some()
            || s.baseline.is_some()
            || s.baseline_held.is_some()
            || s.multi.is_some();
        any.then_some(s)
    }

    pub fn json(&self) -> Value {
        let r = |x: &Option<Ratio>| json!(x.as_ref().map(Ratio::json));
        let ratios = [
            r(&self.backlog),
            r(&self.w4_ratio),
            r(&self.held_raw),
            r(&self.multi_ratio),
            r(&self.bulk),
            r(&self.single),
        ];
        figures_json(
            self.inserts,
            self.baseline,
            self.w1,
            self.baseline_held,
            (self.w4, self.multi),
            ratios,
        )
    }

    /// The hot-path table: figure, median, target, and the ratio the target is about.
    pub fn print_table(&self, sizes: &Sizes) {
        let n = thousands(sizes.backlog as u64);
        println!();
        println!("PostgreSQL hot path (medians; ratios taken within each run, median and range)");
        println!();
        println!("| figure | today | target | ratio (lowest–highest run) |");
        println!("| --- | --- | --- | --- |");
        let rate = |x: Option<f64>| x.map_or("–".into(), |v| thousands(v as u64));
        let cell = |x: &Option<Ratio>, t: f64| x.as_ref().map_or("–".into(), |r| r.cell(t));
        if let Some(i) = self.inserts {
            let b = thousands(sizes.bulk_jobs as u64);
            println!(
                "| bulk enqueue, {b} jobs, {BULK_BATCH} a call (jobs/s) | {} | ≥ 70 % of raw | {} |",
                thousands(i.bulk_errand as u64),
                cell(&self.bulk, 70.0)
            );
            println!(
                "| raw `INSERT` over `unnest` arrays `RETURNING id`, narrow table | {} | | |",
                thousands(i.bulk_unnest as u64)
            );
            println!(
                "| raw `COPY`, narrow table (no ids back) | {} | | |",
                thousands(i.bulk_copy as u64)
            );
            println!(
                "| single enqueue, {} one at a time (jobs/s) | {} | ≥ 85 % of raw | {} |",
                thousands(sizes.single_jobs as u64),
                thousands(i.single_errand as u64),
                cell(&self.single, 85.0)
            );
            println!(
                "| raw one-row `INSERT ... RETURNING id`, narrow table | {} | | |",
                thousands(i.single_raw as u64)
            );
        }
        if self.baseline.is_some() {
            println!(
                "| W1 drain at {n} jobs (jobs/s) | {} | ≥ 80 % of baseline | {} |",
                rate(self.w1.map(|d| d.rate)),
                cell(&self.backlog, 80.0)
            );
            println!(
                "| baseline at {n} jobs, 16 raw loops × 100 (jobs/s) | {} | | |",
                rate(self.baseline)
            );
            println!(
                "| bulk enqueue that filled W1's queue (jobs/s) | {} | | |",
                rate(self.w1.map(|d| d.enqueue_rate))
            );
        }
        if self.baseline_held.is_some() {
            println!(
                "| W4: W1 at {n} jobs, vacuum held back (jobs/s) | {} | ≥ 80 % of W1 at {n} | {} |",
                rate(self.w4.map(|d| d.rate)),
                cell(&self.w4_ratio, 80.0)
            );
            println!(
                "| baseline at {n} jobs, vacuum held back (jobs/s) | {} | (raw keeps ~51 %) | {} |",
                rate(self.baseline_held),
                cell(&self.held_raw, 0.0)
            );
        }
        if let Some(m) = self.multi {
            println!(
                "| W1 at {n} jobs in {PROCS} processes × 16 (jobs/s) | {} | ≥ 100 % of 1 process | {} |",
                thousands(m.rate as u64),
                cell(&self.multi_ratio, 100.0)
            );
        }
    }
}
