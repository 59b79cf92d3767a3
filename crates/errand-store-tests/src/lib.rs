//! The behaviour suite every Errand store must pass, and the harness that gives each test its
//! own real database: a fresh SQLite file, or a fresh PostgreSQL schema, dropped afterwards.
//!
//! Each case in [`cases`] is a plain `async fn(Harness)`. The `store_suite!` macro turns every
//! case into a `sqlite::case` and a `postgres::case` test, so `cargo test postgres` runs one
//! backend. An unreachable PostgreSQL fails the tests loudly; nothing is skipped.
//!
//! Time-dependent cases drive a [`ManualClock`] shared with the store instead of sleeping.

pub mod cases;
pub mod harness;

pub use errand_core::ManualClock;
pub use harness::postgres_url;
pub use harness::{new_job, run, Harness, TestBackend};

/// Expands to one `#[tokio::test]` per case and backend: `sqlite::<case>` and `postgres::<case>`.
#[macro_export]
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $crate::run($crate::TestBackend::Sqlite, $crate::cases::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $crate::run($crate::TestBackend::Postgres, $crate::cases::$case).await;
                }
            )*
        }
    };
}

/// Like [`store_suite!`], for test files that keep their cases beside the invocation: expands
/// each `case` (an `async fn(Harness)` in the invoking module) to `sqlite::case` and
/// `postgres::case` tests.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::run($crate::TestBackend::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::run($crate::TestBackend::Postgres, super::$case).await;
                }
            )*
        }
    };
}
