//! One isolated, migrated store per test, on either backend, torn down even when the test panics.

use chrono::{DateTime, SubsecRound, Utc};
use errand_core::{JobInsert, Limits, ManualClock, NewJob};
use errand_store::Store;
use errand_store_postgres::{PgOptions, PgStore};
use errand_store_sqlite::{SqliteOptions, SqliteStore};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use: `ERRAND_TEST_DATABASE_URL`, else the local one.
pub fn postgres_url() -> String {
    std::env::var("ERRAND_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// What a test case gets: a migrated store on a database of its own, and the clock it reads.
#[derive(Clone)]
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub backend: TestBackend,
    /// Set on PostgreSQL, for tests that need the pool (transactions of their own).
    pub pg: Option<Arc<PgStore>>,
    /// Set on SQLite: the database file.
    pub sqlite_path: Option<PathBuf>,
}

impl Harness {
    /// The clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        use errand_core::Clock;
        self.clock.now()
    }

    /// Inserts one job and returns its id.
    /// A second store on the same database (file or schema) and the same clock, as another
    /// process would open it: its own connections, on whichever runtime calls this.
    pub async fn open_again(&self) -> Arc<dyn Store> {
        let clock: Option<Arc<dyn errand_core::Clock>> = Some(Arc::new(self.clock.clone()));
        match self.backend {
            TestBackend::Sqlite => {
                let path = self.sqlite_path.as_ref().expect("a SQLite harness");
                let options = SqliteOptions {
                    clock,
                    ..Default::default()
                };
                Arc::new(
                    SqliteStore::open(path.to_str().unwrap(), options)
                        .await
                        .expect("open the SQLite file again"),
                )
            }
            TestBackend::Postgres => {
                let schema = self
                    .pg
                    .as_ref()
                    .and_then(|pg| pg.schema())
                    .map(String::from);
                let options = PgOptions {
                    clock,
                    schema,
                    max_connections: 2,
                    ..Default::default()
                };
                Arc::new(
                    PgStore::connect(&postgres_url(), options)
                        .await
                        .expect("connect to PostgreSQL again"),
                )
            }
        }
    }

    pub async fn insert(&self, job: JobInsert) -> i64 {
        let r = self.store.job_insert_many(&[job]).await.expect("insert");
        r[0].id
    }
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres(Arc<PgStore>),
}

/// A clock start that both backends store exactly (microseconds) and that sits near real time.
fn clock_start() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn unique_suffix() -> String {
    format!("{}_{:016x}", std::process::id(), fastrand::u64(..))
}

async fn harness(backend: TestBackend) -> (Harness, Cleanup) {
    let clock = ManualClock::new(clock_start());
    match backend {
        TestBackend::Sqlite => {
            let path = std::env::temp_dir().join(format!("errand-test-{}.db", unique_suffix()));
            let store = SqliteStore::open(
                path.to_str().unwrap(),
                SqliteOptions {
                    clock: Some(Arc::new(clock.clone())),
                    ..Default::default()
                },
            )
            .await
            .expect("open sqlite store");
            store.migrate().await.expect("migrate sqlite");
            let h = Harness {
                store: Arc::new(store),
                clock,
                backend,
                pg: None,
                sqlite_path: Some(path.clone()),
            };
            (h, Cleanup::Sqlite(path))
        }
        TestBackend::Postgres => {
            let schema = format!("errand_t_{}", unique_suffix());
            let store = PgStore::connect(
                &postgres_url(),
                PgOptions {
                    clock: Some(Arc::new(clock.clone())),
                    schema: Some(schema),
                    max_connections: 12,
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for the postgres tests and is unreachable at {}: {e}",
                    postgres_url()
                )
            });
            store.migrate().await.expect("migrate postgres");
            let store = Arc::new(store);
            let h = Harness {
                store: store.clone(),
                clock,
                backend,
                pg: Some(store.clone()),
                sqlite_path: None,
            };
            (h, Cleanup::Postgres(store))
        }
    }
}

async fn cleanup(c: Cleanup) {
    match c {
        Cleanup::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        Cleanup::Postgres(store) => {
            store.drop_schema().await.expect("drop test schema");
        }
    }
}

/// Runs one case on one backend: builds its database, runs it, tears the database down, and
/// then re-raises the case's panic, if any.
pub async fn run<F, Fut>(backend: TestBackend, case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (h, c) = harness(backend).await;
    let outcome = tokio::spawn(case(h)).await;
    cleanup(c).await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

/// A valid job of `kind` with empty args and defaults.
pub fn new_job(kind: &str) -> JobInsert {
    NewJob::new(kind, serde_json::json!({}))
        .validate(&Limits::default())
        .expect("valid job")
}
