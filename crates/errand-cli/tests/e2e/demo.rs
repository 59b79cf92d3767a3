//! A demo database with jobs in every state and a few schedules with a history (the
//! `fixture`), and a transcript of the operator commands run against it. Ignored by default; run it to explore the commands by hand:
//!
//! ```sh
//! ERRAND_DEMO_DB=/tmp/demo.db cargo test -p errand-cli --test e2e demo -- --ignored
//! errand --database /tmp/demo.db stats
//! ```
//!
//! With `ERRAND_DEMO_TRANSCRIPT=PATH` it also writes the session (commands, their output on
//! stdout and stderr, and non-zero exit codes) to PATH.

use std::path::PathBuf;
use std::process::Command;

/// The session: read-only commands first, then actions, then bad input.
const SESSION: &[&[&str]] = &[
    &["migrate", "--status"],
    &["stats"],
    &["queues", "list"],
    &["workers", "list"],
    &["schedules", "list"],
    &["schedules", "show", "nightly_report"],
    &["schedules", "show", "sync_crm"],
    &["schedules", "next", "nightly_report", "-n", "5"],
    &["schedules", "next", "sync_crm", "-n", "3"],
    &["jobs", "list", "--limit", "15"],
    &["jobs", "list", "--state", "failed"],
    &["jobs", "list", "--state", "retrying"],
    &["jobs", "list", "--state", "scheduled"],
    &["jobs", "list", "--reference", "file_upload:42"],
    &["jobs", "list", "--limit", "5", "--cursor", "52"],
    &["jobs", "show", "2"],
    &["jobs", "show", "1"],
    &["jobs", "show", "6"],
    &["jobs", "show", "3"],
    &["jobs", "stuck"],
    &["jobs", "rescue"],
    &["jobs", "show", "4"],
    &["jobs", "retry", "2", "3"],
    &["jobs", "retry", "--failed"],
    &["jobs", "retry", "--failed", "--yes"],
    &["jobs", "cancel", "7", "--reason", "not needed after all"],
    &["jobs", "cancel", "--queued", "--queue", "indexing", "--yes"],
    &["schedules", "pause", "nightly_report", "weekly_cleanup"],
    &["schedules", "resume", "weekly_cleanup"],
    &["schedules", "trigger", "nightly_report"],
    &["schedules", "trigger", "nightly_report", "--json"],
    &["schedules", "list"],
    &["queues", "pause", "--all"],
    &["queues", "resume", "--all"],
    &["jobs", "purge", "--older-than", "30d", "--yes"],
    &[
        "jobs",
        "purge",
        "--older-than",
        "50m",
        "--include-failed",
        "--yes",
    ],
    &["stats", "--json"],
    &["jobs", "show", "999"],
    &["jobs", "list", "--state", "doing"],
    &["jobs", "purge", "--older-than", "30days", "--yes"],
    &["schedules", "show", "nightly_reprot"],
    &["schedules", "next", "nightly_report", "-n", "0"],
    &["schedules", "pause", "sync_crm", "nightly"],
    &["schedules", "trigger", "legacy_export"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "builds a demo database; run by hand"]
async fn demo_session() {
    let db =
        PathBuf::from(std::env::var("ERRAND_DEMO_DB").unwrap_or_else(|_| "errand-demo.db".into()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = db.display().to_string();
    let clock = errand_core::ManualClock::new(chrono::Utc::now());
    let client = errand::Client::builder(url.clone())
        .clock(std::sync::Arc::new(clock.clone()))
        .connect()
        .await
        .unwrap();
    crate::fixture::every_state(&client, Some(&clock)).await;
    crate::fixture::schedules(&client, &clock).await;
    eprintln!("demo database: {url}");

    let Ok(transcript) = std::env::var("ERRAND_DEMO_TRANSCRIPT") else {
        return;
    };
    let mut text = format!(
        "$ export ERRAND_DATABASE_URL={}\n",
        db.file_name().unwrap().to_string_lossy()
    );
    for args in SESSION {
        let out = Command::new(env!("CARGO_BIN_EXE_errand"))
            .args(*args)
            .env("ERRAND_DATABASE_URL", &url)
            .env_remove("ERRAND_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.to_string()
                }
            })
            .collect();
        text.push_str(&format!("\n$ errand {}\n", shown.join(" ")));
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if let Some(code) = out.status.code().filter(|c| *c != 0) {
            text.push_str(&format!("[exit {code}]\n"));
        }
    }
    std::fs::write(&transcript, text).unwrap();
}
