//! Errand's benchmarks; each prints a Markdown table (docs/benchmarks.md keeps the latest
//! results and explains them).
//!
//! - `cargo run --release -p errand-bench -- store`: the store's claim/complete throughput on
//!   both backends with claim batches of 1 and 100 (`--jobs N`, `--workers N`,
//!   `--backend sqlite|postgres|both`, `--batch 1,100`, `--synchronous full|normal`,
//!   `--explain` to print PostgreSQL's claim plan during the drain).
//! - `cargo run --release -p errand-bench -- worker`: the worker pool: W1 drain rate against
//!   a raw-SQL baseline, W2 enqueue-to-start latency, W3 drain rate with a large history,
//!   peak RSS of the worker process (`--backend ...`, `--quick`, `--only baseline,w1,w2,w3`).
//! - `cargo run --release -p errand-bench -- dashboard`: server time of every API request the
//!   dashboard's pages make, at 1,000,000 jobs (`--jobs N`, `--runs N`, `--backend ...`).
//!
//! Each measurement uses a database of its own (a temporary SQLite file, a fresh PostgreSQL
//! schema) and removes it afterwards. `ERRAND_BENCH_DATABASE_URL` names the PostgreSQL
//! server (default postgres://postgres@127.0.0.1:5432/test).

mod counting;
mod dashboard;
mod db;
mod scheduler;
mod store;
mod worker;

fn parse_backend(value: &str) -> Result<Vec<&'static str>, String> {
    match value {
        "sqlite" => Ok(vec!["sqlite"]),
        "postgres" => Ok(vec!["postgres"]),
        "both" => Ok(vec!["sqlite", "postgres"]),
        v => Err(format!(
            "`--backend` wants sqlite, postgres or both, got `{v}`"
        )),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn usage() -> String {
    format!(
        "usage:\n  {}\n  errand-bench worker --help\n  {}\n  {}",
        store::USAGE,
        dashboard::USAGE,
        scheduler::USAGE
    )
}

fn exit_with(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}

/// Parses the arguments after the benchmark's name with clap (which prints help and errors
/// and exits on its own).
fn parse_rest<T: clap::Parser>(name: &str, args: impl Iterator<Item = String>) -> T {
    T::parse_from(std::iter::once(format!("errand-bench {name}")).chain(args))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("store") => match store::parse(&mut args) {
            Ok(opts) => store::run(opts).await,
            Err(e) => exit_with(&format!("{e}\n{}", usage())),
        },
        Some("dashboard") => match dashboard::parse(&mut args) {
            Ok(opts) => dashboard::run(opts).await,
            Err(e) => exit_with(&format!("{e}\n{}", dashboard::USAGE)),
        },
        Some("worker") => worker::run(parse_rest::<worker::Opts>("worker", args)).await,
        Some("scheduler") => match scheduler::parse(&mut args) {
            Ok(opts) => scheduler::run(opts).await,
            Err(e) => exit_with(&format!("{e}\n{}", scheduler::USAGE)),
        },
        // Hidden: the worker process of W1/W3, started by `worker` itself.
        Some("worker-child") => {
            worker::child(parse_rest::<worker::ChildOpts>("worker-child", args)).await
        }
        Some("--help") | Some("-h") | None => exit_with(&usage()),
        Some(other) => exit_with(&format!(
            "unknown benchmark `{other}` (known: store, worker, dashboard, scheduler)\n{}",
            usage()
        )),
    }
}
