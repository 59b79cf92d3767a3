//! `errand migrate`: apply the schema, or show its status.

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::output::{Cell, Out, Style, Table};
use anyhow::Context;
use errand::MigrationStatus;
use errand_runtime::redact_url;

pub async fn run(config: &Config, args: &MigrateArgs, out: &Out) -> anyhow::Result<()> {
    let client = config
        .client()
        .migrate(false)
        .connect()
        .await
        .with_context(|| format!("connecting to {}", redact_url(&config.database_url)))?;
    let before = client.migration_status().await?;
    if args.status {
        if out.json() {
            out.print_json(&before)?;
        } else {
            print_status(&before, out);
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
    if out.json() {
        let doc = serde_json::json!({
            "current_version": after.current_version,
            "latest_version": after.latest_version,
            "newly_applied": newly,
        });
        out.print_json(&doc)?;
    } else if newly.is_empty() {
        out.line(&format!(
            "schema already at version {}: nothing to apply",
            after.current_version
        ));
    } else {
        let list: Vec<String> = newly.iter().map(i64::to_string).collect();
        out.line(&format!(
            "applied migration{} {}: schema at version {}",
            if newly.len() == 1 { "" } else { "s" },
            list.join(", "),
            after.current_version
        ));
    }
    Ok(())
}

fn print_status(s: &MigrationStatus, out: &Out) {
    let state = if s.pending.is_empty() {
        "up to date"
    } else {
        "migrations pending"
    };
    out.line(&format!(
        "schema version {} of {} ({state})",
        s.current_version, s.latest_version
    ));
    let mut table = Table::new(["VERSION", "NAME", "STATE", "APPLIED"]);
    for m in &s.applied {
        table.row([
            Cell::num(m.version),
            Cell::text(&m.name),
            Cell::state("applied").styled(Style::Green),
            Cell::time(out.now(), m.applied_at),
        ]);
    }
    for (version, name) in &s.pending {
        table.row([
            Cell::num(version),
            Cell::text(name),
            Cell::text("pending").styled(Style::Yellow),
            Cell::text(""),
        ]);
    }
    if !table.is_empty() {
        out.line("");
        out.table(&table, "");
    }
}
