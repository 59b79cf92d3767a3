//! The flow-control figures (`--only flow`): W1 (20,000 no-op jobs, one worker process of
//! concurrency 16) three ways in each run, in turn, on a fresh database each:
//!
//! - plain: no limit (the plain claim);
//! - `global_concurrency = 16`: the same drain, every claim through the limited claim;
//! - 100 keys with `key_concurrency = 1`: job `i` carries key `k{i % 100}`.
//!
//! Ratios are taken within a run (each limited drain against that run's plain one); the table
//! gives medians.

use super::drain::{self, FlowSpec, Spec};
use super::report::median;
use super::{note, Sizes};

/// The keys of the keyed drain.
pub const KEYS: usize = 100;
/// The global limit of the limited drain: the pool's own concurrency.
pub const GLOBAL: i32 = super::CONCURRENCY as i32;

/// One run's three rates (jobs/s).
#[derive(Debug, Clone, Copy)]
pub struct FlowRun {
    pub plain: f64,
    pub global: f64,
    pub keyed: f64,
}

/// The three drains of one run on `backend`.
pub async fn measure(backend: &str, sizes: &Sizes) -> FlowRun {
    let n = sizes.drain_jobs;
    let plain = drain::drain(backend, Spec::w1(n)).await.rate;
    let global = drain::drain(
        backend,
        Spec {
            flow: FlowSpec::Global(GLOBAL),
            ..Spec::w1(n)
        },
    )
    .await
    .rate;
    let keyed = drain::drain(
        backend,
        Spec {
            flow: FlowSpec::Keys {
                keys: KEYS,
                limit: 1,
            },
            ..Spec::w1(n)
        },
    )
    .await
    .rate;
    note(format!(
        "{backend}: flow: plain {plain:.0}, global {global:.0}, keyed {keyed:.0} jobs/s"
    ));
    FlowRun {
        plain,
        global,
        keyed,
    }
}

/// The medians and in-run ratios, as JSON.
pub fn summary(runs: &[FlowRun]) -> serde_json::Value {
    let pick = |f: fn(&FlowRun) -> f64| median(runs.iter().map(f).collect());
    serde_json::json!({
        "plain_jobs_per_s": pick(|r| r.plain),
        "global_jobs_per_s": pick(|r| r.global),
        "keyed_jobs_per_s": pick(|r| r.keyed),
        "global_over_plain": pick(|r| r.global / r.plain),
        "keyed_over_plain": pick(|r| r.keyed / r.plain),
        "runs": runs.iter().map(|r| serde_json::json!({
            "plain": r.plain, "global": r.global, "keyed": r.keyed,
        })).collect::<Vec<_>>(),
    })
}

/// The Markdown table of the flow figures of each backend.
pub fn print_table(all: &[(&str, Vec<FlowRun>)], jobs: usize) {
    println!();
    println!(
        "Flow control: W1 ({jobs} no-op jobs, 1 process, concurrency 16), medians; ratios within a run"
    );
    println!();
    println!("| backend | plain (jobs/s) | global_concurrency {GLOBAL} (jobs/s) | / plain | {KEYS} keys, key_concurrency 1 (jobs/s) | / plain |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (backend, runs) in all {
        if runs.is_empty() {
            continue;
        }
        let s = summary(runs);
        println!(
            "| {backend} | {:.0} | {:.0} | {:.0} % | {:.0} | {:.0} % |",
            s["plain_jobs_per_s"].as_f64().unwrap_or(0.0),
            s["global_jobs_per_s"].as_f64().unwrap_or(0.0),
            100.0 * s["global_over_plain"].as_f64().unwrap_or(0.0),
            s["keyed_jobs_per_s"].as_f64().unwrap_or(0.0),
            100.0 * s["keyed_over_plain"].as_f64().unwrap_or(0.0),
        );
    }
}
