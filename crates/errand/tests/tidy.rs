//! Keeps the architecture's invariants true: no SQL outside the store crates, a crate doc on
//! every crate, and every crate named in ARCHITECTURE.md.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn crates() -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    v.sort();
    v
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

const SQL_MARKERS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "UPDATE errand",
    "DELETE FROM",
    "CREATE TABLE",
    "CREATE INDEX",
    "ALTER TABLE",
    "DROP SCHEMA",
    "FOR UPDATE",
];

#[test]
fn no_sql_outside_the_store_crates() {
    let this = Path::new(file!()).file_name().unwrap();
    let mut offenders = Vec::new();
    for krate in crates() {
        let name = krate.file_name().unwrap().to_str().unwrap();
        if name == "errand-store-sqlite" || name == "errand-store-postgres" {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&krate, &mut files);
        for f in files.iter().filter(|f| f.file_name() != Some(this)) {
            let text = fs::read_to_string(f).unwrap();
            for (n, line) in text.lines().enumerate() {
                if SQL_MARKERS.iter().any(|m| line.contains(m)) {
                    offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL outside the store crates:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_crate_has_a_crate_doc_and_is_on_the_map() {
    let map = fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    for krate in crates() {
        let name = krate.file_name().unwrap().to_str().unwrap();
        let root = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|r| krate.join(r))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} has no lib.rs or main.rs"));
        let text = fs::read_to_string(&root).unwrap();
        assert!(
            text.trim_start().starts_with("//!"),
            "{name}: {} has no crate doc",
            root.display()
        );
        assert!(
            map.contains(&format!("`{name}`")),
            "ARCHITECTURE.md does not name `{name}`"
        );
    }
}
