//! The `errand` binary: run Errand from `errand.toml`, or with no configuration at all.
//!
//! ```sh
//! errand serve                                   # ./errand.toml if present, else ./errand.db and no tasks
//! errand --database postgres://app@db/app migrate --status
//! errand enqueue send_email --args '{"to":"ada@example.com"}' --delay 30s
//! errand stats
//! errand jobs list --state failed --since 24h
//! errand jobs retry --failed --queue email --yes
//! ```
//!
//! | module | does |
//! | --- | --- |
//! | `cli` | the commands and flags (clap) |
//! | `config` | `errand.toml`: parsing, environment overrides, validation naming the key |
//! | `serve` | `serve` and `worker`: the configuration as an `errand_runtime::Runtime`, the start-up banner |
//! | `migrate`, `enqueue`, `backup` | the one-shot commands |
//! | `health` | the probe for containers and orchestrators |
//! | `docs` | shell completions and man pages, generated from the clap definitions |
//! | `stats`, `jobs`, `queues`, `schedules` | the operator commands (`queues` also has `workers list`) |
//! | `operate` | what operator commands share: opening without migrating, ids and ages, the confirmation prompt |
//! | `output` | tables, colour, times, `--json`, progress: how every command prints |
//! | `views` | the JSON shapes of the operator commands (docs/cli-json.md) |
//! | `logging` | text or JSON log lines on stderr |
//!
//! Exit codes (`cli::EXIT_CODES`): 0 done, 1 runtime failure (database unreachable, ...),
//! 2 bad input (nothing was written), 3 some named jobs (or a schedule) were not in a state
//! the action applies to, 4 declined at the confirmation prompt.

mod backup;
mod cli;
mod config;
mod docs;
mod enqueue;
mod health;
mod jobs;
mod logging;
mod migrate;
mod operate;
mod output;
mod queues;
mod schedules;
mod serve;
mod stats;
mod views;

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
    // The guard of a command attempt: before anything else (no runtime, no logging, no
    // configuration), and not a command of `--help`.
    errand_runtime::guard::run_if_requested();
    // The process's one TLS crypto provider (ring, which builds with a C compiler only; it
    // lacks post-quantum key exchange, hence rustls's deprecation note), for PostgreSQL and
    // HTTP alike.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    // Generated from the command definitions alone: no configuration, no database.
    match &cli.command {
        Command::Completions { shell } => {
            docs::completions(*shell);
            return Ok(());
        }
        Command::Manpages { dir } => {
            let written = docs::manpages(dir)?;
            eprintln!("wrote {written} man pages into {}", dir.display());
            return Ok(());
        }
        _ => {}
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = config::load(cli.config.as_deref(), &env, cli.database.as_deref())?;
    let mut out = output::Out::detect(cli.json);
    match cli.command {
        Command::Serve(args) => {
            let mut config = config;
            if let Some(listen) = args.listen {
                config.server.listen = listen; // the flag beats the environment and the file
            }
            serve::run(config, serve::Role::Serve).await
        }
        Command::Worker(args) => {
            let role = serve::Role::Worker {
                queues: args.queues,
                concurrency: args.concurrency,
            };
            serve::run(config, role).await
        }
        Command::Migrate(args) => migrate::run(&config, &args, &out).await,
        Command::Enqueue(args) => enqueue::run(&config, &args, &out).await,
        Command::Stats(args) => stats::run(&config, &args, &mut out).await,
        Command::Jobs(command) => jobs::run(&config, &command, &out).await,
        Command::Queues(command) => queues::run(&config, &command, &mut out).await,
        Command::Workers(command) => queues::workers(&config, &command, &out).await,
        Command::Schedules(command) => schedules::run(&config, &command, &out).await,
        Command::Backup(args) => backup::run(&config, &args, &out).await,
        Command::Health(args) => health::run(&config, &args, &out).await,
        Command::Completions { .. } | Command::Manpages { .. } => Ok(()),
    }
}

/// The exit code of a failed command (`cli::EXIT_CODES`): 2 for bad input (flags,
/// configuration, a job the library rejected, an unknown job or schedule), 3 when some named jobs were
/// left as they were, 4 when the operator declined, 1 for the rest.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<operate::PartlyApplied>()) {
        return 3;
    }
    if e.chain().any(|c| c.is::<operate::Declined>()) {
        return 4;
    }
    let usage = e.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<config::ConfigError>()
            || matches!(
                cause.downcast_ref::<errand::Error>(),
                Some(
                    errand::Error::Invalid(_)
                        | errand::Error::InvalidLimits(_)
                        | errand::Error::InvalidInBatch { .. }
                        | errand::Error::Store(errand::StoreError::ScheduleNotFound(_))
                )
            )
    });
    if usage {
        2
    } else {
        1
    }
}
