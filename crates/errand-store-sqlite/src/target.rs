//! Parsing the `target` of [`crate::SqliteStore::open`].

use crate::Synchronous;
use errand_store::{StoreError, StoreResult};
use std::path::PathBuf;

/// A parsed target: the file and an optional `synchronous` override.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub path: PathBuf,
    pub synchronous: Option<Synchronous>,
}

fn invalid(target: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!(
        "invalid sqlite database target `{target}`: {problem}"
    ))
}

/// `PATH`, `sqlite:PATH` or `sqlite://PATH`, with an optional `?synchronous=normal|full`.
pub(crate) fn parse(target: &str) -> StoreResult<Target> {
    let rest = target
        .strip_prefix("sqlite://")
        .or_else(|| target.strip_prefix("sqlite:"))
        .unwrap_or(target);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(target, "the file path is empty"));
    }
    if path == ":memory:" || path.starts_with("file::memory:") {
        return Err(invalid(
            target,
            "in-memory databases are not supported (the store uses several connections); \
             use a file path",
        ));
    }
    let mut synchronous = None;
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "synchronous" => {
                synchronous = Some(match value.to_ascii_lowercase().as_str() {
                    "normal" => Synchronous::Normal,
                    "full" => Synchronous::Full,
                    _ => {
                        return Err(invalid(
                            target,
                            format!("`synchronous` must be `normal` or `full`, got `{value}`"),
                        ))
                    }
                })
            }
            _ => {
                return Err(invalid(
                    target,
                    format!("unknown option `{key}` (supported: synchronous)"),
                ))
            }
        }
    }
    Ok(Target {
        path: PathBuf::from(path),
        synchronous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> (String, Option<Synchronous>) {
        let t = parse(t).unwrap();
        (t.path.to_string_lossy().into_owned(), t.synchronous)
    }

    #[test]
    fn plain_paths_and_schemes() {
        assert_eq!(ok("errand.db"), ("errand.db".into(), None));
        assert_eq!(
            ok("/var/lib/errand.db"),
            ("/var/lib/errand.db".into(), None)
        );
        assert_eq!(ok("sqlite:data/errand.db"), ("data/errand.db".into(), None));
        assert_eq!(ok("sqlite://errand.db"), ("errand.db".into(), None));
        assert_eq!(
            ok("sqlite:///var/lib/errand.db"),
            ("/var/lib/errand.db".into(), None)
        );
    }

    #[test]
    fn synchronous_suffix() {
        assert_eq!(
            ok("sqlite:x.db?synchronous=normal"),
            ("x.db".into(), Some(Synchronous::Normal))
        );
        assert_eq!(
            ok("x.db?synchronous=FULL"),
            ("x.db".into(), Some(Synchronous::Full))
        );
        assert_eq!(ok("x.db?"), ("x.db".into(), None));
    }

    #[test]
    fn bad_targets_are_explained() {
        let msg = |t: &str| parse(t).unwrap_err().to_string();
        assert!(msg("x.db?synchronous=off").contains("`normal` or `full`"));
        assert!(msg("x.db?mode=ro").contains("unknown option `mode`"));
        assert!(msg("sqlite:").contains("empty"));
        assert!(msg(":memory:").contains("in-memory"));
        assert!(msg("sqlite::memory:").contains("in-memory"));
    }
}
