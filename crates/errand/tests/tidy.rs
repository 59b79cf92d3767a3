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

/// Every manifest: the crates', the embed example's and the workspace's own.
fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = crates().iter().map(|k| k.join("Cargo.toml")).collect();
    v.push(workspace().join("examples/embed/Cargo.toml"));
    v.push(workspace().join("Cargo.toml"));
    v
}

/// One line of a manifest that is not a section header, trimmed, with its section header
/// (`[dependencies]`), its number from 1, and whether the line above it is a comment.
struct Entry {
    section: String,
    number: usize,
    line: String,
    after_comment: bool,
}

fn entries(manifest: &Path) -> Vec<Entry> {
    let text = fs::read_to_string(manifest).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        out.push(Entry {
            section: section.clone(),
            number: n + 1,
            line: line.to_string(),
            after_comment: n > 0 && lines[n - 1].trim_start().starts_with('#'),
        });
    }
    out
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

/// Every file git would show a reader: crates, docs, examples, scripts and the top-level docs.
fn text_files() -> Vec<PathBuf> {
    let root = workspace();
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap_or("");
            if name == "target" || name.starts_with('.') && name != ".ci" {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if ["rs", "md", "toml", "sh", "js", "sql", "py", "yml", "yaml"]
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    for dir in ["crates", "docs", "examples", "scripts", ".ci"] {
        if root.join(dir).is_dir() {
            walk(&root.join(dir), &mut out);
        }
    }
    for top in [
        "README.md",
        "ARCHITECTURE.md",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
    ] {
        out.push(root.join(top));
    }
    out
}

/// The repository stands on its own: code and docs cite only documents it contains. The
/// product's design is docs/design.md; a reference such as "docs/x.md" or "[x](x.md)" must
/// name a file that exists.
/// How a citation of the product's outside specification reads; put together here so this
/// file does not itself read as one.
static CITED_SPEC: std::sync::LazyLock<[String; 3]> = std::sync::LazyLock::new(|| {
    let name = "SPEC";
    [
        format!("{name} section"),
        format!("{name}.md"),
        format!("({name}"),
    ]
});

#[test]
fn every_document_cited_is_in_the_repository() {
    let root = workspace();
    let this = Path::new(file!()).file_name().unwrap();
    let mut offenders = Vec::new();
    for file in text_files().iter().filter(|f| f.file_name() != Some(this)) {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let at = format!(
                "{}:{}",
                file.strip_prefix(&root).unwrap_or(file).display(),
                n + 1
            );
            if CITED_SPEC.iter().any(|c| line.contains(c.as_str())) {
                offenders.push(format!(
                    "{at}: cites a specification the repository does not hold"
                ));
            }
            // Paths of markdown documents: `docs/name.md` anywhere, relative to the root.
            let mut rest = line;
            while let Some(i) = rest.find("docs/") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/_-.".contains(c)))
                    .unwrap_or(tail.len());
                let cited = tail[..end].trim_end_matches('.');
                if cited.ends_with(".md") && !root.join(cited).exists() {
                    offenders.push(format!("{at}: cites {cited}, which does not exist"));
                }
                rest = &tail[end.max(1)..];
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The store underneath a client is not part of the library's API: outside `errand` itself,
/// only tests reach it, through `errand::__private`, which exists only with the `internal`
/// feature (`Client::store` is not public). The server, the runtime, the CLI, the
/// benchmarks and the examples go through `Client` methods. The compiler enforces this for
/// any crate that does not turn the feature on; this test and the next keep the workspace
/// from turning it on outside its test builds.
#[test]
fn only_tests_reach_the_store_under_a_client() {
    let mut offenders = Vec::new();
    let mut dirs: Vec<PathBuf> = crates()
        .into_iter()
        .filter(|k| {
            let name = k.file_name().unwrap().to_str().unwrap();
            name != "errand"
        })
        .map(|k| k.join("src"))
        .collect();
    dirs.push(workspace().join("examples"));
    for dir in dirs.iter().filter(|d| d.exists()) {
        let mut files = Vec::new();
        rust_files(dir, &mut files);
        for f in files {
            let text = fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains("__private") {
                    offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "non-test code reaching the store under a client (add a Client method instead):\n{}",
        offenders.join("\n")
    );
}

/// `errand`'s `internal` feature (which builds `errand::__private`) is turned on only by
/// test builds: in a `[dev-dependencies]` section, never in `[dependencies]` or another
/// feature, so no binary or library of the workspace can reach the store under a client.
#[test]
fn the_internal_feature_is_for_test_builds_only() {
    let mut offenders = Vec::new();
    let mut turned_on = 0;
    for manifest in manifests() {
        for e in entries(&manifest) {
            // `features = ["internal"]` on the dependency, or `"errand/internal"` (also
            // `errand?/internal`) in a feature of the crate's own.
            let line = &e.line;
            if line.starts_with('#')
                || !(line.contains("\"internal\"") || line.contains("/internal\""))
            {
                continue;
            }
            if e.section == "[dev-dependencies]" {
                turned_on += 1;
            } else {
                offenders.push(format!(
                    "{}:{}: {line} ({})",
                    manifest.display(),
                    e.number,
                    e.section
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "errand's `internal` feature turned on outside a test build:\n{}",
        offenders.join("\n")
    );
    // The check above reads the manifests as they are written: at least the CLI's tests
    // turn the feature on, so a change in how they do would show here.
    assert!(
        turned_on > 0,
        "no manifest turns on `internal` in [dev-dependencies]"
    );
}

/// Only the store crates depend on a database driver, so only they can run SQL: every other
/// crate's `[dependencies]` leaves sqlx and rusqlite out (the library reaches the stores
/// through its `sqlite` / `postgres` features). The behaviour suite's harness
/// (`errand-store-tests`) makes and drops databases with sqlx; a test-only dependency on a
/// driver (`[dev-dependencies]`) must say why on the line above it.
#[test]
fn only_the_store_crates_depend_on_a_database_driver() {
    const DRIVERS: &[&str] = &["sqlx", "rusqlite"];
    const MAY: &[&str] = &[
        "errand-store-sqlite",
        "errand-store-postgres",
        "errand-store-tests",
    ];
    let mut offenders = Vec::new();
    for manifest in manifests() {
        let name = manifest
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        for e in entries(&manifest) {
            let key = e.line.split(['=', '.', ' ']).next().unwrap_or_default();
            if !DRIVERS.contains(&key) {
                continue;
            }
            let ok = match e.section.as_str() {
                "[dependencies]" => MAY.contains(&name),
                "[dev-dependencies]" => e.after_comment,
                _ => true,
            };
            if !ok {
                offenders.push(format!(
                    "{}:{}: {} ({})",
                    manifest.display(),
                    e.number,
                    e.line,
                    e.section
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a database driver outside the store crates (or a test-only one without its reason):\n{}",
        offenders.join("\n")
    );
}
