//! The `errand` binary: run Errand from `errand.toml`, or with no configuration at all.
//!
//! ```sh
//! errand serve                                   # ./errand.toml if present, else ./errand.db and no tasks
//! errand --database postgres://app@db/app migrate --status
//! errand enqueue send_email --args '{"to":"ada@example.com"}' --delay 30s
//! ```
//!
//! | module | does |
//! | --- | --- |
//! | `cli` | the commands and flags (clap) |
//! | `config` | `errand.toml`: parsing, environment overrides, validation naming the key |
//! | `serve` | `serve` and `worker`: the one list of services, signals, graceful stop |
//! | `handlers` | command and HTTP handlers for configured tasks, one file each |
//! | `migrate`, `enqueue` | the one-shot commands |
//! | `logging` | text or JSON log lines on stderr |
//!
//! Exit codes: 0 ok, 1 runtime failure (database unreachable, ...), 2 usage or configuration
//! error (nothing was written).

mod cli;
mod config;
mod enqueue;
mod handlers;
mod logging;
mod migrate;
#[allow(dead_code)] // Progress and rfc3339 serve the operator commands landing next
mod output;
mod serve;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;
use std::time::Duration;

/// Bad input on the command line: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2, --help and --version 0
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let config = config::load(cli.config.as_deref(), &env, cli.database.as_deref())?;
    let out = output::Out::detect(cli.json);
    match cli.command {
        Command::Serve => serve::run(config, serve::Role::Serve).await,
        Command::Worker(args) => {
            let role = serve::Role::Worker {
                queues: args.queues,
                concurrency: args.concurrency,
            };
            serve::run(config, role).await
        }
        Command::Migrate(args) => migrate::run(&config, &args, &out).await,
        Command::Enqueue(args) => enqueue::run(&config, &args, &out).await,
    }
}

/// 2 for bad input (flags, configuration, a job the library rejected), 1 for the rest.
fn exit_code(e: &anyhow::Error) -> u8 {
    let usage = e.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<config::ConfigError>()
            || matches!(
                cause.downcast_ref::<errand::Error>(),
                Some(errand::Error::Invalid(_) | errand::Error::InvalidInBatch { .. })
            )
    });
    if usage {
        2
    } else {
        1
    }
}
