//! The enqueue builder: options on top of a task, then `send` (own transaction) or `send_in`
//! (the caller's transaction, through the store's [`CallerTransaction`]).

use crate::client::Client;
use crate::error::Error;
use chrono::{DateTime, Utc};
use errand_core::Task;
use errand_core::{JobArgs, JobInsert, NewJob, TaskSettings};
use errand_store::{CallerTransaction, Enqueued};
use std::time::Duration;

/// A job about to be enqueued. Built by [`Client::enqueue`] or [`Client::enqueue_kind`].
#[must_use = "an enqueue does nothing until `.send()` is awaited"]
#[derive(Debug)]
pub struct Enqueue<'a> {
    client: &'a Client,
    job: NewJob,
    /// A typed task's own defaults (`Task::QUEUE`, `Task::MAX_ATTEMPTS`), which the client's
    /// task settings override.
    fallback: Option<TaskSettings>,
    encode_error: Option<serde_json::Error>,
}

impl<'a> Enqueue<'a> {
    pub(crate) fn typed<T: Task>(client: &'a Client, task: T) -> Self {
        // The one encode of a typed task's args: to the JSON text the store binds.
        let (args, encode_error) = match JobArgs::encode(&task) {
            Ok(args) => (args, None),
            Err(e) => (JobArgs::empty(), Some(e)),
        };
        let fallback = TaskSettings {
            queue: Some(T::QUEUE.to_string()),
            max_attempts: Some(T::MAX_ATTEMPTS),
            ..TaskSettings::default()
        };
        let job = NewJob::new(T::KIND, args);
        Enqueue {
            client,
            job,
            fallback: Some(fallback),
            encode_error,
        }
    }

    pub(crate) fn raw(client: &'a Client, job: NewJob) -> Self {
        Enqueue {
            client,
            job,
            fallback: None,
            encode_error: None,
        }
    }

    /// The queue (default: the task's, else `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.job.queue = Some(queue.into());
        self
    }

    /// Higher runs first (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.job.priority = Some(priority);
        self
    }

    /// Run no earlier than this instant.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.job.run_at = Some(at);
        self.job.delay_ms = None;
        self
    }

    /// Run no earlier than this long from now (the store's now).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.job.delay_ms = Some(delay.as_millis().min(i64::MAX as u128) as i64);
        self.job.run_at = None;
        self
    }

    /// While a job with this key is queued or running, enqueue returns it instead of adding
    /// another ([`Enqueued::inserted`] is then false).
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.job.unique_key = Some(key.into());
        self
    }

    /// Jobs sharing this key (within the queue) run at most `key_concurrency` at a time
    /// across every worker; the others wait queued, without blocking other keys (default: the
    /// task's argument, if its `concurrency_key` names one).
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.job.concurrency_key = Some(key.into());
        self
    }

    /// How many jobs of this job's key may run at once (default: the task's, else the
    /// queue's `key_concurrency`, else 1). Only with a [`Enqueue::concurrency_key`].
    pub fn key_concurrency(mut self, n: i32) -> Self {
        self.job.key_concurrency = Some(n);
        self
    }

    /// Links the job to the entity it is about, e.g. `("file_upload", "42")`, for lookups.
    pub fn reference(
        mut self,
        reference_type: impl Into<String>,
        reference_id: impl ToString,
    ) -> Self {
        self.job.reference_type = Some(reference_type.into());
        self.job.reference_id = Some(reference_id.to_string());
        self
    }

    /// Attempts before the job fails for good (default: the task's, else 4).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.job.max_attempts = Some(n);
        self
    }

    /// Execution limit of one attempt; `Duration::ZERO` means none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.job.timeout_ms = Some(timeout.as_millis().min(i64::MAX as u128) as i64);
        self
    }

    /// The job as described so far (for [`Client::enqueue_many`]), with a typed task's own
    /// defaults filled in where the client's task settings say nothing.
    pub fn into_new_job(self) -> Result<NewJob, Error> {
        if let Some(source) = self.encode_error {
            return Err(Error::Encode {
                kind: self.job.kind,
                source,
            });
        }
        Ok(self.client.tasks().apply(&self.job, self.fallback.as_ref()))
    }

    fn validated(self) -> Result<(&'a Client, JobInsert), Error> {
        let client = self.client;
        if let Some(source) = self.encode_error {
            return Err(Error::Encode {
                kind: self.job.kind,
                source,
            });
        }
        Ok((client, client.prepare(&self.job, self.fallback.as_ref())?))
    }

    /// Validates and stores the job in its own transaction.
    pub async fn send(self) -> Result<Enqueued, Error> {
        let (client, insert) = self.validated()?;
        let mut out = client.store().job_insert_many(&[insert]).await?;
        Ok(out.remove(0))
    }

    /// Validates and stores the job inside the caller's transaction: the job exists only if
    /// that transaction commits, and workers see it only after the commit. A store crate
    /// implements [`CallerTransaction`] for its driver's transaction types: with the
    /// `postgres` feature, sqlx's `Transaction<Postgres>` and `PgConnection` (see
    /// [`crate::postgres`]).
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo(client: errand::Client, pool: errand::postgres::sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// // ... the application's own writes on `tx` ...
    /// client.enqueue_kind("send_receipt", serde_json::json!({"order": 7})).send_in(&mut tx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The transaction must see Errand's tables (same database, and the same schema if the
    /// client uses [`crate::ClientBuilder::postgres_schema`]). Invalid input is refused
    /// before the transaction is touched.
    pub async fn send_in<M, T>(self, tx: &mut T) -> Result<Enqueued, Error>
    where
        T: CallerTransaction<M> + ?Sized,
    {
        let (_, insert) = self.validated()?;
        let mut out = tx.job_insert_many(&[insert]).await?;
        Ok(out.remove(0))
    }
}
