//! Keeps the README in step with the binary: every command `errand --help` lists (and every
//! subcommand of those) is shown in the README's command list, so a command cannot be added,
//! or renamed, without its documentation.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run errand --help");
    assert!(out.status.success(), "errand {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The names under "Commands:" in a clap help text, without `help`.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).expect("read README.md")
}

#[test]
fn every_command_of_errand_help_is_in_the_readme() {
    let readme = readme();
    let top = commands(&help(&[]));
    assert!(
        top.len() >= 10,
        "found too few commands in errand --help: {top:?}"
    );
    let mut missing = Vec::new();
    for command in &top {
        let shown = format!("errand {command}");
        // A command's line in the README: `errand jobs list ...`, `errand queues list | pause Q...`.
        let lines: Vec<&str> = readme.lines().filter(|l| l.contains(&shown)).collect();
        if lines.is_empty() {
            missing.push(shown);
            continue;
        }
        for sub in commands(&help(&[command])) {
            let named = |l: &&str| l.split(|c: char| !c.is_alphanumeric()).any(|w| w == sub);
            if !lines.iter().any(named) {
                missing.push(format!("errand {command} {sub}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "in `errand --help` but not in README.md: {missing:?}"
    );
}

#[test]
fn the_help_texts_promise_nothing_for_later() {
    // Every command's help describes what is built; "later"/"next issue" promises go stale.
    for command in commands(&help(&[])) {
        let text = help(&[&command]).to_lowercase();
        for stale in ["(and, later", "next issue", "not yet implemented"] {
            assert!(
                !text.contains(stale),
                "errand {command} --help says {stale:?}:\n{text}"
            );
        }
    }
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_errand"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git, to read the commit this checkout is at");
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!(
            "errand {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head.trim()
        )
    );
}

/// Completions and man pages come from the clap definitions: every command is in them, and
/// they need no configuration or database (an invalid errand.toml in the directory is not read).
#[test]
fn completions_and_man_pages_cover_every_command() {
    let dir = std::env::temp_dir().join(format!("errand-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("errand.toml"), "this is not toml [").unwrap();
    let errand = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_errand"))
            .args(args)
            .current_dir(&dir)
            .env_remove("ERRAND_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "errand {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = commands(&help(&[]));
    for shell in ["bash", "zsh", "fish"] {
        let script = errand(&["completions", shell]);
        for command in &top {
            assert!(script.contains(command.as_str()), "{shell} lacks {command}");
        }
    }
    assert!(errand(&["completions", "bash"]).contains("complete -F"));

    let pages = dir.join("man");
    errand(&["manpages", pages.to_str().unwrap()]);
    for command in &top {
        let page = pages.join(format!("errand-{command}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|_| panic!("no {page:?}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page:?}");
        for sub in commands(&help(&[command])) {
            assert!(
                pages.join(format!("errand-{command}-{sub}.1")).exists(),
                "{command} {sub}"
            );
        }
    }
    assert!(std::fs::read_to_string(pages.join("errand.1"))
        .unwrap()
        .contains("serve"));
    let _ = std::fs::remove_dir_all(&dir);
}
