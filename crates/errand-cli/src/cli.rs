//! The command line: global flags and one struct per command, each with an example in its
//! long help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The exit codes, the same for every command (also in the README).
pub const EXIT_CODES: &str = "Exit codes:\n  \
    0  done\n  \
    1  runtime failure (database unreachable, schema not migrated, ...)\n  \
    2  bad input: usage, configuration, unknown job id or schedule, bad value, no --yes without a terminal; nothing changed\n  \
    3  some of the named jobs (or a schedule) were not in a state the action applies to (left as they were; the rest done)\n  \
    4  declined at the confirmation prompt; nothing changed";

/// `errand --version`: the release and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ERRAND_GIT_COMMIT"),
    ")"
);

/// Errand: a durable job queue.
#[derive(Debug, Parser)]
#[command(
    name = "errand",
    version = VERSION,
    about = "Errand: a durable job queue and cron scheduler on SQLite or PostgreSQL",
    long_about = "Errand: a durable job queue and cron scheduler on SQLite or PostgreSQL.\n\n\
        With no errand.toml and no --database, Errand keeps its jobs in ./errand.db.\n\n\
        Examples:\n  \
        errand serve                                  # run with ./errand.toml, or zero config\n  \
        errand --database postgres://app@db/app migrate\n  \
        errand enqueue send_email --args '{\"to\":\"ada@example.com\"}'",
    after_help = EXIT_CODES
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
    /// Run Errand: the worker pool, maintenance, the scheduler, the HTTP API and the dashboard
    #[command(
        long_about = "Run Errand until SIGTERM or SIGINT: migrate the database, then \
        start the worker pool with every configured queue and a handler per configured task, \
        the maintenance service (rescue of expired leases, retention), the cron scheduler for \
        [schedules.NAME] and run-time schedules, and the HTTP API with the dashboard on \
        [server] listen (default http://127.0.0.1:7070/). \
        On SIGTERM it stops claiming, lets running jobs finish within workers.shutdown_grace, \
        hands the rest back to their queue, and exits 0.\n\n\
        Nothing is claimed when no task is configured, or with ERRAND_WORKERS_ENABLED=false \
        (the emergency stop).\n\n\
        Examples:\n  errand --config /etc/errand/errand.toml serve\n  \
        ERRAND_SERVER_TOKENS=admin:s3cret errand serve --listen 0.0.0.0:7070"
    )]
    Serve(ServeArgs),

    /// Run only the worker pool, optionally on some queues
    #[command(
        long_about = "Run the worker pool and the maintenance service (rescue of expired \
        leases, retention) until SIGTERM or SIGINT, like `serve` without the scheduler, the \
        HTTP API and the dashboard: the process to scale out beside one or more `serve`.\n\n\
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

    /// Queue health: counts by state, oldest ready job, last hour's throughput and run times
    #[command(
        long_about = "Per queue: jobs by state, the oldest job ready to run and how long it \
        has waited, and over the last hour (--window) how many finished, the throughput per \
        minute, and the average / p95 / max run time of the succeeded jobs.",
        after_help = "Examples:\n  errand stats\n  errand stats --window 15m --json | jq '.queues[] | {queue, queued}'"
    )]
    Stats(StatsArgs),

    /// List, inspect, retry, cancel, purge and rescue jobs
    #[command(
        subcommand,
        after_help = "Examples:\n  errand jobs list --state failed\n  errand jobs show 42\n  errand jobs retry 42\n  errand jobs purge --older-than 30d"
    )]
    Jobs(JobsCommand),

    /// List queues, pause and resume them
    #[command(
        subcommand,
        after_help = "Examples:\n  errand queues list\n  errand queues pause email\n  errand queues resume email"
    )]
    Queues(QueuesCommand),

    /// Worker processes and their last heartbeat
    #[command(subcommand, after_help = "Example:\n  errand workers list")]
    Workers(WorkersCommand),

    /// Schedules: list, show, preview, pause, resume, trigger now
    #[command(
        subcommand,
        after_help = "Examples:\n  errand schedules list\n  errand schedules show nightly_report\n  errand schedules next nightly_report -n 20\n  errand schedules trigger nightly_report"
    )]
    Schedules(SchedulesCommand),

    /// Copy the SQLite database into a new file, safely while errand runs
    #[command(
        long_about = "Copy the whole SQLite database, as of one moment, into a new file at \
        PATH while `errand serve` and workers keep running (SQLite's VACUUM INTO: a read \
        snapshot, compacted; nothing committed after it is in the copy). PATH must not exist; \
        the copy appears there complete or not at all. The copy is an ordinary database file: \
        restore by stopping errand and putting it in place of the old one.\n\n\
        PostgreSQL is refused (exit 2): use pg_dump or pg_basebackup.",
        after_help = "Examples:\n  errand backup /var/backups/errand-$(date +%F).db\n  errand --database /srv/errand.db backup copy.db --json"
    )]
    Backup(BackupArgs),

    /// Probe: is the database reachable and migrated (and this host's worker alive)?
    #[command(
        long_about = "The health probe for containers, orchestrators and monitoring. Exit 0 \
        when the database answers and its schema is at this errand's version; with --workers, \
        also when a worker process of this host (HOSTNAME) has heartbeated within two leases. \
        Otherwise exit 1, with the reason on stdout. It changes nothing, never creates a \
        database, and gives up after --timeout, so a probe never hangs on a database that is \
        down. Over HTTP, `errand serve` answers the same question at /health/ready.",
        after_help = "Examples:\n  errand health\n  errand health --workers --json\n  \
        HEALTHCHECK CMD [\"errand\", \"health\", \"--workers\"]   # in a Dockerfile"
    )]
    Health(HealthArgs),

    /// Print shell completions (bash, zsh, fish, elvish, powershell) on stdout
    #[command(
        long_about = "Print the completion script of a shell on stdout, generated from \
        these commands and flags.",
        after_help = "Examples:\n  errand completions bash > /etc/bash_completion.d/errand\n  \
        errand completions zsh > \"${fpath[1]}/_errand\"\n  \
        errand completions fish > ~/.config/fish/completions/errand.fish"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },

    /// Write man pages (errand.1 and one per command) into a directory
    #[command(
        long_about = "Write the man pages of errand and of every command (errand.1, \
        errand-serve.1, errand-jobs-list.1, ...) into DIR, generated from these --help texts.",
        after_help = "Examples:\n  errand manpages /usr/local/share/man/man1\n  \
        errand manpages target/man && man -l target/man/errand-jobs-retry.1"
    )]
    Manpages {
        /// The directory to write into (created if missing)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Also require a live worker process on this host
    #[arg(long)]
    pub workers: bool,
    /// Give up (unhealthy) after this long, e.g. 1500ms, 5s
    #[arg(long, value_name = "DURATION", default_value = "1500ms")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write (must not exist)
    #[arg(value_name = "PATH")]
    pub path: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The recent window for throughput and run times, e.g. 1h, 15m, 1d
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub window: String,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first, with filters and paging
    #[command(
        long_about = "List jobs, newest first. Filters combine. States: the stored queued, \
        running, succeeded, failed, cancelled, and the derived scheduled (queued, run_at in \
        the future), retrying (queued after an attempt), stuck (running, lease expired). \
        When more jobs match than --limit, the last line gives the --cursor of the next page \
        (in JSON: next_cursor).",
        after_help = "Examples:\n  \
        errand jobs list --state failed --since 24h\n  \
        errand jobs list --queue email --kind send_email --limit 20\n  \
        errand jobs list --reference file_upload:42\n  \
        errand jobs list --state failed --limit 100 --cursor 5120 --json"
    )]
    List(JobsListArgs),

    /// One job: every field, its timeline and every error in full
    #[command(
        after_help = "Examples:\n  errand jobs show 42\n  errand jobs show 42 --json | jq -r '.events[] | select(.kind == \"error\") | .message'"
    )]
    Show(JobIdArg),

    /// Put failed or cancelled jobs back in their queue with a fresh attempt budget
    #[command(
        long_about = "Retry jobs by id, or every failed job (optionally of one queue or \
        kind) with --failed. A retried job goes back to queued, runs as soon as a worker is \
        free, and gets its full attempt budget again; its history is kept. --failed asks for \
        confirmation unless --yes.",
        after_help = "Examples:\n  errand jobs retry 42 43\n  errand jobs retry --failed --queue email\n  errand jobs retry --failed --yes"
    )]
    Retry(RetryArgs),

    /// Cancel jobs: queued ones at once, running ones through their worker
    #[command(
        long_about = "Cancel jobs by id, or with --queued every queued job (the runbooks' \
        'clear pending jobs'; optionally of one queue or kind). A queued job is cancelled at \
        once; a running one is asked to stop and its worker ends it as cancelled. Cancelled \
        jobs stay in the history and can be retried. --queued asks for confirmation unless --yes.",
        after_help = "Examples:\n  errand jobs cancel 42\n  errand jobs cancel 42 43 --reason 'bad input, see ticket 7'\n  errand jobs cancel --queued --queue email --yes"
    )]
    Cancel(CancelArgs),

    /// Delete finished jobs older than a given age, with their history
    #[command(
        long_about = "Delete succeeded and cancelled jobs (and failed ones with \
        --include-failed) that finished more than --older-than ago, with their events, in \
        small batches so workers are never blocked for long. Queued and running jobs are \
        never deleted. Asks for confirmation unless --yes.",
        after_help = "Examples:\n  errand jobs purge --older-than 30d\n  errand jobs purge --older-than 90d --include-failed --yes"
    )]
    Purge(PurgeArgs),

    /// Running jobs whose lease expired: their worker stopped heartbeating
    #[command(
        after_help = "Examples:\n  errand jobs stuck\n  errand jobs stuck --json | jq '.jobs | length'"
    )]
    Stuck(LimitArg),

    /// Rescue stuck jobs now, as the rescuer does on its own
    #[command(
        long_about = "Rescue every stuck job now (the runbooks' 'reset stuck jobs'): \
        requeued if attempts remain (the lost attempt counts), failed if none remain, \
        cancelled if someone asked. A job whose worker renewed its lease meanwhile is left \
        alone. Running workers do this by themselves within about one lease.",
        after_help = "Examples:\n  errand jobs stuck\n  errand jobs rescue"
    )]
    Rescue,
}

/// The help of `--state`: the stored states and the derived views, from their definitions.
fn state_help() -> String {
    let words = |w: &[&str]| w.join(", ");
    format!(
        "{}, or derived: {}",
        words(&errand::JobStatus::ALL.map(errand::JobStatus::as_str)),
        words(&errand::DerivedState::ALL.map(errand::DerivedState::as_str))
    )
}

#[derive(Debug, Args)]
pub struct JobsListArgs {
    /// A stored or a derived state (the list comes from `state_help`)
    #[arg(long, visible_alias = "status", value_name = "STATE", help = state_help())]
    pub state: Option<String>,

    /// Only this queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,

    /// Only this task kind
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,

    /// Only jobs about this entity, as TYPE:ID (e.g. file_upload:42), or every job of a TYPE
    #[arg(long, value_name = "TYPE[:ID]")]
    pub reference: Option<String>,

    /// Only jobs created since: a duration ago (24h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "AGE|TIME")]
    pub since: Option<String>,

    /// At most this many jobs (1 to 1000)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,

    /// The next page: the cursor printed under the previous page
    #[arg(long, value_name = "CURSOR", allow_hyphen_values = true)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobIdArg {
    /// A job id
    #[arg(value_name = "ID", allow_negative_numbers = true)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct LimitArg {
    /// At most this many jobs
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Job ids
    #[arg(
        value_name = "ID",
        required_unless_present = "failed",
        conflicts_with = "failed",
        allow_negative_numbers = true
    )]
    pub ids: Vec<String>,

    /// Every failed job instead of ids
    #[arg(long)]
    pub failed: bool,

    /// With --failed: only this queue
    #[arg(long, value_name = "QUEUE", requires = "failed")]
    pub queue: Option<String>,

    /// With --failed: only this task kind
    #[arg(long, value_name = "KIND", requires = "failed")]
    pub kind: Option<String>,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Job ids
    #[arg(
        value_name = "ID",
        required_unless_present = "queued",
        conflicts_with = "queued",
        allow_negative_numbers = true
    )]
    pub ids: Vec<String>,

    /// Every queued job (including scheduled and retrying ones) instead of ids
    #[arg(long)]
    pub queued: bool,

    /// With --queued: only this queue
    #[arg(long, value_name = "QUEUE", requires = "queued")]
    pub queue: Option<String>,

    /// With --queued: only this task kind
    #[arg(long, value_name = "KIND", requires = "queued")]
    pub kind: Option<String>,

    /// Why, kept in each job's history
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete jobs that finished longer ago than this, e.g. 30d, 12h
    #[arg(long, value_name = "AGE", required = true, allow_hyphen_values = true)]
    pub older_than: String,

    /// Delete failed jobs too (kept by default, for investigation)
    #[arg(long)]
    pub include_failed: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Every queue that has jobs or settings, paused or not, with its counts
    #[command(after_help = "Examples:\n  errand queues list\n  errand queues list --json")]
    List,

    /// Stop workers from claiming a queue's jobs (running jobs finish; enqueue still works)
    #[command(
        after_help = "Examples:\n  errand queues pause email\n  errand queues pause --all   # emergency: stop all processing"
    )]
    Pause(QueueNameArgs),

    /// Let workers claim a paused queue's jobs again
    #[command(
        after_help = "Examples:\n  errand queues resume email\n  errand queues resume --all"
    )]
    Resume(QueueNameArgs),

    /// Set a queue's limits across every worker process: at most N of its jobs running at
    /// once (--global-concurrency), at most N running per concurrency key
    /// (--key-concurrency), at most N starts per window (--rate-limit); an option left out
    /// lifts that limit. The next `errand serve`/`worker` puts back the limits of a queue
    /// whose errand.toml table names any, where they differ
    #[command(
        after_help = "Examples:\n  errand queues limit indexing --global-concurrency 1   # one at a time, any number of workers\n  errand queues limit ingest --key-concurrency 2\n  errand queues limit email --rate-limit 100/1m\n  errand queues limit indexing                          # lift every limit"
    )]
    Limit(QueueLimitArgs),
}

fn parse_rate_limit(text: &str) -> Result<errand_core::flow::RateLimit, String> {
    text.parse()
}

#[derive(Debug, Args)]
pub struct QueueLimitArgs {
    /// Queue name
    #[arg(value_name = "QUEUE")]
    pub queue: String,

    /// At most N of the queue's jobs run at once, across every worker process
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub global_concurrency: Option<i32>,

    /// At most N running jobs per concurrency key (for keyed jobs with no limit of their own;
    /// without it, 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub key_concurrency: Option<i32>,

    /// At most N starts in any window of the duration, across every worker process
    /// (e.g. 100/1m)
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate_limit)]
    pub rate_limit: Option<errand_core::flow::RateLimit>,

    /// Also a queue that no task or [queues] entry declares and that has no jobs yet
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct QueueNameArgs {
    /// Queue names
    #[arg(
        value_name = "QUEUE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub queues: Vec<String>,

    /// Every queue that has jobs or settings
    #[arg(long)]
    pub all: bool,

    /// Also a queue that no task or [queues] entry declares and that has no jobs yet (without
    /// it, such a name is refused as a likely typo)
    #[arg(long, conflicts_with = "all")]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Registered worker processes: host, pid, queues, started, last heartbeat
    #[command(
        after_help = "Examples:\n  errand workers list\n  errand workers list --json | jq -r '.workers[].host'"
    )]
    List,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule: what it fires, whether it is paused, its next fire and its last run
    #[command(
        long_about = "Every schedule by name: the schedule as written (cron and time zone, or \
        every), the task kind and queue it enqueues, its state (active, paused, or the problem \
        when the stored schedule cannot be read and does not fire), the next fire, and the \
        last run (when it was enqueued, and its job's state now).",
        after_help = "Examples:\n  errand schedules list\n  errand schedules list --json | jq -r '.schedules[] | select(.paused) | .name'"
    )]
    List,

    /// One schedule: every field, the next fires, the last run, run times, history, skipped fires
    #[command(
        long_about = "One schedule in full: its fields, the next 5 fires (in UTC and in its time \
        zone), the last run and how long it took, average / p95 / max run time over the recent \
        runs (up to 100), the recent runs (job, fire time, state, duration) and the fires that \
        were skipped, with the reason (missed by more than misfire_grace, coalesced into a later \
        fire, or the previous run still queued or running).",
        after_help = "Examples:\n  errand schedules show nightly_report\n  errand schedules show nightly_report --json | jq '.stats'"
    )]
    Show(ScheduleNameArg),

    /// The next fire times of a schedule, in UTC and in its time zone
    #[command(
        after_help = "Examples:\n  errand schedules next nightly_report\n  errand schedules next nightly_report -n 50 --json | jq -r '.next_fires[].at'"
    )]
    Next(ScheduleNextArgs),

    /// Stop schedules from firing until resumed (`trigger` still runs them)
    #[command(
        long_about = "Pause schedules by name: the scheduler does not fire them until they are \
        resumed; jobs already enqueued are not touched. A schedule that is already paused is \
        reported and left as it is. A pause is kept across restarts of `errand serve`; for a \
        schedule from errand.toml, until its table in the file is changed.",
        after_help = "Examples:\n  errand schedules pause nightly_report\n  errand schedules pause nightly_report sync_crm"
    )]
    Pause(ScheduleNamesArg),

    /// Let paused schedules fire again, from now on
    #[command(
        long_about = "Resume paused schedules by name. The fires they missed while paused are \
        not run: each goes on with its next fire after now. A schedule that is not paused is \
        reported and left as it is.",
        after_help = "Examples:\n  errand schedules resume nightly_report\n  errand schedules next nightly_report -n 1"
    )]
    Resume(ScheduleNamesArg),

    /// Enqueue a schedule's job now, whatever its next fire (the "force the next run now")
    #[command(
        long_about = "Enqueue the schedule's job now, as a fire would, and print its id. Its \
        regular fires are not moved, and it runs even when the schedule is paused. It follows \
        the schedule's overlap policy: while the previous run is still queued or running, \
        `overlap = \"skip\"` (the default) and `\"queue\"` enqueue nothing, say why and exit 3; \
        `\"allow\"` runs it alongside. --force runs it anyway.",
        after_help = "Examples:\n  errand schedules trigger nightly_report\n  errand schedules trigger nightly_report --force\n  id=$(errand schedules trigger nightly_report --json | jq .job_id) && errand jobs show \"$id\""
    )]
    Trigger(ScheduleTriggerArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleNameArg {
    /// A schedule name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ScheduleTriggerArgs {
    /// A schedule name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Run it even while its previous run is queued or running (overrides the overlap policy)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleNamesArg {
    /// Schedule names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScheduleNextArgs {
    /// A schedule name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// How many fire times (1 to 1000)
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve the HTTP API and the dashboard on ADDR (overrides server.listen and
    /// ERRAND_SERVER_LISTEN), e.g. 0.0.0.0:7070; an address other than loopback needs a token
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
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

    /// Jobs sharing this key (within the queue) run at most --key-concurrency at a time
    /// across every worker; the others wait queued (default: the task's argument, if
    /// `concurrency_key` names one)
    #[arg(long, value_name = "KEY")]
    pub concurrency_key: Option<String>,

    /// How many jobs of this key may run at once (default: the task's, else the queue's,
    /// else 1)
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        requires = "concurrency_key"
    )]
    pub key_concurrency: Option<i32>,
}
