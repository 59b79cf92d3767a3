//! Structured logs on stderr: text for people, `--log-format json` for collectors. The
//! worker pool adds `job_id`, `kind` and `attempt` to every line about a job; args are never
//! logged.

use crate::cli::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The crates whose debug lines `-v` turns on.
const ERRAND_TARGETS: &[&str] = &[
    "errand",
    "errand_cli",
    "errand_runtime",
    "errand_worker",
    "errand_store",
    "errand_store_sqlite",
    "errand_store_postgres",
];

/// Installs the global subscriber. `RUST_LOG`, when set, replaces the level `-v` chooses.
pub fn init(format: LogFormat, verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default_directives(verbose)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).with_target(verbose > 0).init();
        }
        LogFormat::Json => {
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .init();
        }
    }
}

/// sqlx's own info lines are noise for an operator: PostgreSQL notices from idempotent
/// migrations ("relation ... already exists, skipping") and pings of pooled connections that
/// a database restart closed. Its warnings stay.
const QUIET: &str = "info,sqlx=warn";

fn default_directives(verbose: u8) -> String {
    match verbose {
        0 => QUIET.to_string(),
        1 => {
            let mut d = String::from(QUIET);
            for t in ERRAND_TARGETS {
                d.push_str(&format!(",{t}=debug"));
            }
            d
        }
        2 => "debug".to_string(),
        _ => "trace".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_widens_the_filter() {
        assert_eq!(default_directives(0), "info,sqlx=warn");
        assert!(default_directives(1).contains("errand_worker=debug"));
        assert_eq!(default_directives(3), "trace");
    }
}
