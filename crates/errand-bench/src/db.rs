//! A database of one's own for each measurement: a temporary SQLite file or a fresh
//! PostgreSQL schema, migrated, and removed afterwards.

use errand_core::{JobId, JobInsert, Limits, NewJob};
use errand_store::Store;
use errand_store_postgres::{PgOptions, PgStore};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use std::path::PathBuf;
use std::sync::Arc;

/// The PostgreSQL server: `ERRAND_BENCH_DATABASE_URL`, else the local one.
pub fn postgres_url() -> String {
    std::env::var("ERRAND_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The backend-specific handle, for what the `Store` trait does not offer (the baseline,
/// seeding, diagnostics) and for cleaning up.
pub enum Concrete {
    Sqlite {
        store: Arc<SqliteStore>,
        path: PathBuf,
        target: String,
    },
    Postgres {
        store: Arc<PgStore>,
        url: String,
        schema: String,
    },
}

/// A migrated store on a database nobody else uses.
pub struct FreshDb {
    pub store: Arc<dyn Store>,
    pub concrete: Concrete,
}

impl FreshDb {
    /// Opens a fresh database. `synchronous` is SQLite's setting (`full` or `normal`);
    /// `pg_connections` the PostgreSQL pool size.
    pub async fn open(backend: &str, synchronous: &str, pg_connections: u32) -> FreshDb {
        let tag = format!("{}_{:08x}", std::process::id(), fastrand::u32(..));
        match backend {
            "sqlite" => {
                let path = std::env::temp_dir().join(format!("errand-bench-{tag}.db"));
                let target = format!("{}?synchronous={synchronous}", path.display());
                let s = Arc::new(
                    SqliteStore::open(&target, SqliteOptions::default())
                        .await
                        .expect("open sqlite"),
                );
                s.migrate().await.expect("migrate");
                FreshDb {
                    store: s.clone(),
                    concrete: Concrete::Sqlite {
                        store: s,
                        path,
                        target,
                    },
                }
            }
            _ => {
                let url = postgres_url();
                let schema = format!("errand_bench_{tag}");
                let opts = PgOptions {
                    schema: Some(schema.clone()),
                    max_connections: pg_connections,
                    ..Default::default()
                };
                let s = Arc::new(
                    PgStore::connect(&url, opts)
                        .await
                        .expect("connect postgres"),
                );
                s.migrate().await.expect("migrate");
                FreshDb {
                    store: s.clone(),
                    concrete: Concrete::Postgres {
                        store: s,
                        url,
                        schema,
                    },
                }
            }
        }
    }

    /// How a child process reaches this database through `errand::Client`: `--target` (the
    /// SQLite file or the PostgreSQL URL) and, on PostgreSQL, `--schema`.
    pub fn child_args(&self) -> Vec<String> {
        match &self.concrete {
            Concrete::Sqlite { target, .. } => vec!["--target".into(), target.clone()],
            Concrete::Postgres { url, schema, .. } => vec![
                "--target".into(),
                url.clone(),
                "--schema".into(),
                schema.clone(),
            ],
        }
    }

    /// Removes the database (the SQLite file and its WAL, or the PostgreSQL schema).
    pub async fn close(self) {
        drop(self.store);
        match self.concrete {
            Concrete::Sqlite { store, path, .. } => {
                drop(store);
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Concrete::Postgres { store, .. } => {
                store.drop_schema().await.expect("drop bench schema")
            }
        }
    }
}

/// The store of a database a [`FreshDb`] made (from its [`FreshDb::child_args`]), with the
/// options `errand::Client::connect` uses, without migrating: for a child process.
pub async fn open_existing(target: &str, schema: Option<String>) -> Arc<dyn Store> {
    if target.starts_with("postgres://") {
        let opts = PgOptions {
            schema,
            ..Default::default()
        };
        Arc::new(
            PgStore::connect(target, opts)
                .await
                .expect("connect postgres"),
        )
    } else {
        Arc::new(
            SqliteStore::open(target, SqliteOptions::default())
                .await
                .expect("open sqlite"),
        )
    }
}

/// The no-op job every benchmark enqueues.
pub fn noop_job() -> JobInsert {
    NewJob::new("bench_noop", serde_json::json!({"n": 1}))
        .validate(&Limits::default())
        .unwrap()
}

/// Enqueues `n` no-op jobs, 1,000 per `job_insert_many`; returns their ids.
pub async fn enqueue_bulk(store: &dyn Store, n: usize) -> Vec<JobId> {
    let all: Vec<_> = (0..n).map(|_| noop_job()).collect();
    let mut ids = Vec::with_capacity(n);
    for chunk in all.chunks(1000) {
        ids.extend(
            store
                .job_insert_many(chunk)
                .await
                .expect("insert")
                .into_iter()
                .map(|e| e.id),
        );
    }
    ids
}
