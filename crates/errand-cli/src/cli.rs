//! The command line: global flags and one struct per command, each with an example in its
//! long help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Errand: a durable job queue.
#[derive(Debug, Parser)]
#[command(
    name = "errand",
    version,
    about = "Errand: a durable job queue on SQLite or PostgreSQL",
    long_about = "Errand: a durable job queue on SQLite or PostgreSQL.\n\n\
        With no errand.toml and no --database, Errand keeps its jobs in ./errand.db.\n\n\
        Examples:\n  \
        errand serve                                  # run with ./errand.toml, or zero config\n  \
        errand --database postgres://app@db/app migrate\n  \
        errand enqueue send_email --args '{\"to\":\"ada@example.com\"}'",
    after_help = "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error."
)]
pub struct Cli {
    /// Database: a file path or sqlite:PATH, or postgres://... [env: ERRAND_DATABASE_URL]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub database: Option<String>,

    /// Configuration file (default: ./errand.toml if present, else zero config)
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "ERRAND_CONFIG",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// Log format on stderr
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "ERRAND_LOG_FORMAT",
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    /// Print one JSON document on stdout instead of text for people (shapes: docs/cli-json.md)
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// More log detail: -v debug for Errand, -vv debug for everything, -vvv trace (RUST_LOG
    /// overrides)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Errand: the worker pool for the configured tasks (and, later, the API and scheduler)
    #[command(
        long_about = "Run Errand until SIGTERM or SIGINT: migrate the database, then \
        start the worker pool with every configured queue and a handler per configured task. \
        On SIGTERM it stops claiming, lets running jobs finish within workers.shutdown_grace, \
        hands the rest back to their queue, and exits 0.\n\n\
        Nothing is claimed when no task is configured, or with ERRAND_WORKERS_ENABLED=false \
        (the emergency stop).\n\n\
        Example:\n  errand --config /etc/errand/errand.toml serve"
    )]
    Serve,

    /// Run only the worker pool, optionally on some queues
    #[command(
        long_about = "Run only the worker pool until SIGTERM or SIGINT, like `serve` \
        without the other services.\n\n\
        Examples:\n  errand worker\n  errand worker --queues email,default --concurrency 2"
    )]
    Worker(WorkerArgs),

    /// Apply the database schema, or show its status
    #[command(
        long_about = "Apply pending schema migrations (safe with many processes \
        starting at once), or with --status show the applied and pending ones.\n\n\
        Examples:\n  errand migrate\n  errand --database postgres://app@db/app migrate --status --json"
    )]
    Migrate(MigrateArgs),

    /// Add a job
    #[command(
        long_about = "Add a job of KIND. When KIND is a task in errand.toml, its queue \
        and max_attempts are the defaults.\n\n\
        Examples:\n  \
        errand enqueue send_email --args '{\"to\":\"ada@example.com\"}'\n  \
        errand enqueue regen --args '{\"id\":42}' --delay 30s --unique-key regen:42 --reference revision:42\n  \
        echo '{\"id\":1}' | errand enqueue regen --args - --json"
    )]
    Enqueue(EnqueueArgs),
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Claim only from these queues (comma-separated; each must be configured)
    #[arg(long, value_name = "QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,

    /// Run at most N jobs at once in each queue, whatever the configuration says
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Show applied and pending migrations instead of applying them
    #[arg(long)]
    pub status: bool,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The task kind, e.g. send_email
    #[arg(value_name = "KIND")]
    pub kind: String,

    /// The job's arguments, a JSON object; `-` reads them from stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,

    /// Queue (default: the task's in errand.toml, else `default`)
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,

    /// Priority: higher runs first (default 0)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub priority: Option<i32>,

    /// Run no earlier than this long from now, e.g. 30s, 5m, 1h30m
    #[arg(
        long,
        value_name = "DURATION",
        allow_hyphen_values = true,
        conflicts_with = "run_at"
    )]
    pub delay: Option<String>,

    /// Run no earlier than this instant (RFC 3339, e.g. 2030-01-01T09:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<String>,

    /// While a job with this key is queued or running, add nothing and report that job
    #[arg(long, value_name = "KEY")]
    pub unique_key: Option<String>,

    /// The entity the job is about, as TYPE:ID (e.g. file_upload:42)
    #[arg(long, value_name = "TYPE:ID")]
    pub reference: Option<String>,

    /// Attempts before the job fails for good (default: the task's, else 4)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_attempts: Option<i32>,

    /// Execution limit of one attempt, e.g. 5m; 0 for none (default: the task's, else 30m)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: Option<String>,

}
