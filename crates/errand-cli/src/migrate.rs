//! `errand migrate`: apply the schema, or show its status.

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::serve::redact_url;
use anyhow::Context;
use errand::{Client, MigrationStatus};

pub async fn run(config: &Config, args: &MigrateArgs) -> anyhow::Result<()> {
    let client = Client::builder(config.database_url.clone())
        .migrate(false)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact_url(&config.database_url)))?;
    let before = client.migration_status().await?;
    if args.status {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&before)?);
        } else {
            print_status(&before);
        }
        return Ok(());
    }
    let after = client.migrate().await?;
    let newly: Vec<i64> = after
        .applied
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.applied.iter().any(|b| b.version == *v))
        .collect();
    if args.json {
        let out = serde_json::json!({
            "current_version": after.current_version,
            "latest_version": after.latest_version,
            "newly_applied": newly,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if newly.is_empty() {
        println!(
            "schema already at version {}: nothing to apply",
            after.current_version
        );
    } else {
        let list: Vec<String> = newly.iter().map(i64::to_string).collect();
        println!(
            "applied migration{} {}: schema at version {}",
            if newly.len() == 1 { "" } else { "s" },
            list.join(", "),
            after.current_version
        );
    }
    Ok(())
}

fn print_status(s: &MigrationStatus) {
    let state = if s.pending.is_empty() {
        "up to date"
    } else {
        "migrations pending"
    };
    println!(
        "schema version {} of {} ({state})",
        s.current_version, s.latest_version
    );
    for m in &s.applied {
        println!(
            "  applied  {:>4}  {:<24} {}",
            m.version,
            m.name,
            m.applied_at.to_rfc3339()
        );
    }
    for (version, name) in &s.pending {
        println!("  pending  {version:>4}  {name}");
    }
}
