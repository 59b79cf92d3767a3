//! Tests of the file's shape: where an error is in the file, and that the key lists the
//! README and the environment overlay use are the shape's own.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// The README's errand.toml reference lists every key this reader knows, each table's keys in
/// that table's part of the block, so a key cannot be added without its documentation.
#[test]
fn the_readme_reference_lists_every_key() {
    use super::raw::*;
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("### errand.toml")
        .expect("README has an errand.toml section");
    let block = &readme[start..];
    let block = &block[block.find("```toml").unwrap() + 7..];
    let block = &block[..block.find("```").unwrap()];
    // The block is TOML (with alternatives commented out).
    toml::from_str::<toml::Table>(block).expect("README's errand.toml block parses");

    // Each table's lines: from its header to the next header. A key counts when a line starts
    // with `key =`, also as a commented-out alternative (`# every = ...`).
    let section = |header: &str| -> String {
        let mut out = String::new();
        let mut inside = header.is_empty();
        for line in block.lines() {
            let t = line.trim_start();
            if t.starts_with('[') {
                inside = t.starts_with(header) && !header.is_empty();
                continue;
            }
            if inside {
                out.push_str(t.trim_start_matches('#').trim_start());
                out.push('\n');
            }
        }
        out
    };
    let mut missing = Vec::new();
    let mut check = |header: &str, keys: &[&str]| {
        let text = section(header);
        for key in keys {
            // A key of its own line, of an inline table (`{ base = ..., cap = ... }`), or a
            // table of its own (`[[server.tokens]]`).
            let found = text.lines().any(|l| l.starts_with(&format!("{key} =")))
                || text.contains(&format!("{{ {key} ="))
                || text.contains(&format!(", {key} ="))
                || block.contains(&format!("[[{}.{key}]]", header.trim_matches(['[', ']'])));
            if !found {
                missing.push(format!("{header} {key}"));
            }
        }
    };
    check("", &["database_url"]);
    check("[database_tls]", keys_of::<RawDatabaseTls>());
    check("[http]", keys_of::<RawHttpDefaults>());
    check("[workers]", keys_of::<RawWorkers>());
    check("[limits]", keys_of::<RawLimits>());
    check("[queues.", keys_of::<RawQueue>());
    check("[tasks.", keys_of::<RawTask>());
    check("[tasks.", keys_of::<RawHttp>());
    check("[tasks.", keys_of::<RawBackoff>());
    check("[retention]", keys_of::<RawRetention>());
    check("[server]", keys_of::<RawServer>());
    check("[[server.tokens]]", keys_of::<RawToken>());
    check("[scheduler]", keys_of::<RawScheduler>());
    check("[schedules.", keys_of::<errand::ScheduleSpec>());
    for root in keys_of::<RawConfig>() {
        if !block.contains(&format!("[{root}")) && !block.contains(&format!("{root} =")) {
            missing.push(format!("[{root}]"));
        }
    }
    assert!(
        missing.is_empty(),
        "README's errand.toml reference lacks: {missing:?}"
    );
}

#[test]
fn errors_in_the_file_name_their_line_and_column() {
    let located = |text: &str| {
        parse("errand.toml", Some(text), &no_env)
            .unwrap_err()
            .to_string()
    };
    // An unknown key: at the key itself.
    let e =
        located("[workers]\nlease = \"1s\"\n\n[tasks.send_email]\ncommand = [\"x\"]\ncomand = 1\n");
    assert!(
        e.starts_with("errand.toml:6:1: tasks.send_email: unknown key \"comand\""),
        "{e}"
    );
    // A bad value: at its key, inside an inline table too.
    let e = located("[tasks.t]\ncommand = [\"x\"]\nbackoff = { base = \"1m\", jitter = 2.0 }\n");
    assert!(
        e.starts_with("errand.toml:3:26: tasks.t.backoff.jitter: must be between 0 and 1"),
        "{e}"
    );
    // In an array of tables.
    let e = located("[[server.tokens]]\ntoken = \"a\"\nrole = \"read\"\n[[server.tokens]]\ntoken = \"b\"\nrle = \"read\"\n");
    assert!(
        e.starts_with(
            "errand.toml:6:1: server.tokens[1]: unknown key \"rle\" (did you mean \"role\"?)"
        ),
        "{e}"
    );
    // A missing key: at its table.
    let e = located("\n[queues.email]\n");
    assert!(
        e.starts_with("errand.toml:2:9: queues.email: missing key \"concurrency\""),
        "{e}"
    );
    // Not TOML at all.
    let e = located("[workers\n");
    assert!(e.starts_with("errand.toml:1:"), "{e}");
    assert!(e.contains("not valid TOML"), "{e}");
    // A value from the environment names the variable, with no place in the file.
    let env = |name: &str| (name == "ERRAND_WORKERS_LEASE").then(|| "1ms".to_string());
    let e = parse("errand.toml", Some("[workers]\n"), &env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "ERRAND_WORKERS_LEASE: workers.lease: must be at least 30ms"
    );
}

#[test]
fn the_environment_sets_only_keys_the_file_may_hold() {
    // Every key of the environment's tables is a key of the file's shape.
    use super::keys::*;
    use super::raw::*;
    /// A table's name, the keys the environment sets in it, the keys its shape holds.
    type Table<'a> = (&'a str, &'a [(&'a str, Kind)], &'a [&'a str]);
    let tables: [Table; 9] = [
        ("workers", WORKERS_KEYS, keys_of::<RawWorkers>()),
        ("limits", LIMITS_KEYS, keys_of::<RawLimits>()),
        ("scheduler", SCHEDULER_KEYS, keys_of::<RawScheduler>()),
        ("retention", RETENTION_KEYS, keys_of::<RawRetention>()),
        ("server", super::server::SERVER_KEYS, keys_of::<RawServer>()),
        ("queues.NAME", QUEUE_KEYS, keys_of::<RawQueue>()),
        ("tasks.NAME", TASK_KEYS, keys_of::<RawTask>()),
        ("tasks.NAME.backoff", BACKOFF_KEYS, keys_of::<RawBackoff>()),
        (
            "schedules.NAME",
            SCHEDULE_KEYS,
            keys_of::<errand::ScheduleSpec>(),
        ),
    ];
    for (table, env_keys, file_keys) in tables {
        assert!(
            !file_keys.is_empty(),
            "{table}: no keys read from its shape"
        );
        for (key, _) in env_keys {
            assert!(
                file_keys.contains(key),
                "{table}.{key} is not a key of the file"
            );
        }
    }
}
