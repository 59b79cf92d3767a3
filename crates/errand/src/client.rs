//! The client: connects to a store by URL, enqueues, and runs the operator actions.

use crate::enqueue::Enqueue;
use crate::error::Error;
use chrono::{DateTime, Utc};
use errand_core::Task;
use errand_core::{
    Backoff, Clock, Event, Job, JobId, JobInsert, JobStatus, Limits, NewJob, TaskCatalog,
    TaskSettings,
};
use errand_store::{
    Backend, CancelOutcome, Enqueued, FinishedStats, JobFinishedStats, JobList, JobPage,
    JobThroughput, MigrationStatus, QueueInfo, QueueStats, RetryFailed, RetryOutcome, Store,
    ThroughputBucket, WorkerRecord,
};
use errand_worker::maintenance::{self, BULK_BATCH};
use std::sync::Arc;

/// Enqueues jobs and runs operator actions against one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    store: Arc<dyn Store>,
    limits: Limits,
    /// The deployment's tasks: every new job's settings come from here ([`Client::prepare`]).
    tasks: Arc<TaskCatalog>,
    backoff: Backoff,
    /// For next-fire times shown to people (the scheduler itself uses the store's clock).
    clock: Arc<dyn Clock>,
}

/// Options for [`Client::builder`].
#[derive(Debug)]
pub struct ClientBuilder {
    url: String,
    migrate: bool,
    limits: Limits,
    clock: Option<Arc<dyn Clock>>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pg_schema: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pg_max_connections: u32,
    #[cfg(feature = "postgres")]
    pg_tls: errand_store_postgres::PgTls,
}

impl ClientBuilder {
    /// Apply pending schema migrations on connect (default true). Safe with many processes
    /// starting at once; turn off where schema changes are rolled out separately.
    pub fn migrate(mut self, yes: bool) -> Self {
        self.migrate = yes;
        self
    }

    /// Largest accepted `args`, in bytes (default 1 MiB).
    pub fn max_args_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_args_bytes = bytes;
        self
    }

    /// Read "now" from this clock instead of the database's or the system's (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// PostgreSQL only: keep Errand's tables in this schema (created if missing).
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.pg_schema = Some(schema.into());
        self
    }

    /// PostgreSQL only: size of the connection pool (default 10).
    pub fn postgres_max_connections(mut self, n: u32) -> Self {
        self.pg_max_connections = n;
        self
    }

    /// PostgreSQL only: TLS settings that override the URL's `sslmode`, `sslrootcert`,
    /// `sslcert` and `sslkey` (default: none, the URL decides).
    #[cfg(feature = "postgres")]
    pub fn postgres_tls(mut self, tls: crate::postgres::PgTls) -> Self {
        self.pg_tls = tls;
        self
    }

    /// Opens the store the URL names and, unless turned off, migrates it.
    pub async fn connect(self) -> Result<Client, Error> {
        let store = match parse_url(&self.url)? {
            Target::Postgres(url) => self.open_postgres(url).await?,
            Target::Sqlite(path) => self.open_sqlite(path).await?,
        };
        if self.migrate {
            let status = store.migrate().await?;
            tracing::debug!(
                version = status.current_version,
                backend = store.backend().as_str(),
                "schema ready"
            );
        }
        Ok(Client {
            store,
            limits: self.limits,
            tasks: Arc::new(TaskCatalog::new()),
            backoff: Backoff::default(),
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(errand_core::SystemClock)),
        })
    }
}

impl ClientBuilder {
    #[cfg(feature = "postgres")]
    async fn open_postgres(&self, url: &str) -> Result<Arc<dyn Store>, Error> {
        let options = errand_store_postgres::PgOptions {
            clock: self.clock.clone(),
            schema: self.pg_schema.clone(),
            max_connections: self.pg_max_connections,
            tls: self.pg_tls.clone(),
        };
        Ok(Arc::new(
            errand_store_postgres::PgStore::connect(url, options).await?,
        ))
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(&self, url: &str) -> Result<Arc<dyn Store>, Error> {
        Err(not_built(Backend::Postgres, url))
    }

    #[cfg(feature = "sqlite")]
    async fn open_sqlite(&self, path: &str) -> Result<Arc<dyn Store>, Error> {
        let options = errand_store_sqlite::SqliteOptions {
            clock: self.clock.clone(),
            ..Default::default()
        };
        Ok(Arc::new(
            errand_store_sqlite::SqliteStore::open(path, options).await?,
        ))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn open_sqlite(&self, path: &str) -> Result<Arc<dyn Store>, Error> {
        Err(not_built(Backend::Sqlite, path))
    }
}

/// The error for a URL whose backend this build left out (its cargo feature is off).
#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn not_built(backend: Backend, url: &str) -> Error {
    Error::BackendNotBuilt {
        backend: backend.as_str(),
        url: redact_url(url),
    }
}

enum Target<'a> {
    Postgres(&'a str),
    Sqlite(&'a str),
}

fn parse_url(url: &str) -> Result<Target<'_>, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Target::Postgres(url))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        if url.is_empty() {
            return Err(Error::UnsupportedUrl(String::new()));
        }
        Ok(Target::Sqlite(url))
    } else {
        Err(Error::UnsupportedUrl(redact_url(url)))
    }
}

/// The URL with any password replaced, for error messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

impl Client {
    /// Connects with default options and migrates: `Client::builder(url).connect()`.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::builder(url).connect().await
    }

    /// A builder for a client on the store that `url` names: a file path or `sqlite:PATH`
    /// for the embedded store, `postgres://...` for PostgreSQL.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            migrate: true,
            limits: Limits::default(),
            clock: None,
            pg_schema: None,
            pg_max_connections: 10,
            #[cfg(feature = "postgres")]
            pg_tls: Default::default(),
        }
    }

    /// A client on a store you built yourself.
    pub fn from_store(store: Arc<dyn Store>) -> Client {
        Client {
            store,
            limits: Limits::default(),
            tasks: Arc::new(TaskCatalog::new()),
            backoff: Backoff::default(),
            clock: Arc::new(errand_core::SystemClock),
        }
    }

    /// Reads "now" (for next-fire times) from this clock instead of the system's: give it the
    /// clock of a store built with an injected one.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Client {
        self.clock = clock;
        self
    }

    /// The client's now.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Sets the argument size limit of this client.
    pub fn with_limits(mut self, limits: Limits) -> Client {
        self.limits = limits;
        self
    }

    /// Gives the client the deployment's task settings: from then on every job it enqueues
    /// (directly, over the HTTP API, from a schedule or a trigger) takes its kind's queue,
    /// attempts, priority and timeout unless the caller set them, and a kind the catalog does
    /// not know is refused when it declares any (see [`errand_core::settings`]). Its worker
    /// pools take the kinds' timeouts and backoffs from it too.
    pub fn with_tasks(mut self, tasks: TaskCatalog) -> Client {
        self.tasks = Arc::new(tasks);
        self
    }

    /// The deployment's task settings.
    pub fn tasks(&self) -> &Arc<TaskCatalog> {
        &self.tasks
    }

    /// The one way a new job is made ready to store: the task's settings applied, then every
    /// field checked. `fallback` is a typed task's own defaults.
    pub fn prepare(
        &self,
        job: &NewJob,
        fallback: Option<&TaskSettings>,
    ) -> Result<JobInsert, errand_core::ValidationError> {
        self.tasks.prepare(job, fallback, &self.limits)
    }

    /// The store underneath: inside the library only. Everything a caller may do with it
    /// is a method of the client; Errand's own tests reach it through `errand::__private`
    /// (the `internal` feature), which is not part of the API.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Which backend this client talks to.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The limits new jobs are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The default retry backoff.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    // ---- enqueue ------------------------------------------------------------------------

    /// Starts an enqueue of a typed task; finish it with [`Enqueue::send`].
    pub fn enqueue<T: Task>(&self, task: T) -> Enqueue<'_> {
        Enqueue::typed(self, task)
    }

    /// Starts an enqueue of a job described field by field (a language binding's or a
    /// decoder's `NewJob`); its fields are checked as they are, by [`NewJob::validate`].
    pub fn enqueue_job(&self, job: NewJob) -> Enqueue<'_> {
        Enqueue::raw(self, job)
    }

    /// Starts an enqueue of a job by kind name with JSON arguments (a `serde_json::Value`,
    /// or [`errand_core::JobArgs`] already encoded).
    pub fn enqueue_kind(
        &self,
        kind: impl Into<String>,
        args: impl Into<errand_core::JobArgs>,
    ) -> Enqueue<'_> {
        Enqueue::raw(self, NewJob::new(kind, args))
    }

    /// Enqueues many jobs in one round trip, all or nothing: if any job is invalid, none is
    /// written and the error names the job's index, field and problem.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, Error> {
        let inserts = jobs
            .iter()
            .enumerate()
            .map(|(index, j)| {
                self.prepare(j, None)
                    .map_err(|source| Error::InvalidInBatch { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if inserts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.job_insert_many(&inserts).await?)
    }

    /// A worker pool on this client's store: add queues and handlers, then `.start()`.
    ///
    /// ```no_run
    /// # async fn demo(client: errand::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = client
    ///     .worker()
    ///     .queue("default", 8)
    ///     .register_kind("send_email", |_ctx, args: serde_json::Value| async move {
    ///         println!("sending to {}", args["to"]);
    ///         Ok(serde_json::json!({"sent": true}))
    ///     })
    ///     .start()
    ///     .await?;
    /// // ... serve requests ...
    /// worker.shutdown().await; // on SIGTERM: finish running jobs, hand back the rest
    /// # Ok(()) }
    /// ```
    pub fn worker(&self) -> errand_worker::WorkerBuilder {
        errand_worker::Worker::builder(self.store.clone()).tasks(self.tasks.clone())
    }

    // ---- reads --------------------------------------------------------------------------

    /// One job, or `None`.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, Error> {
        Ok(self.store.job_get(id).await?)
    }

    /// One job with its events, oldest first; [`errand_store::StoreError::NotFound`] if missing.
    pub async fn job_with_events(&self, id: JobId) -> Result<(Job, Vec<Event>), Error> {
        let job = self
            .store
            .job_get(id)
            .await?
            .ok_or(errand_store::StoreError::NotFound(id))?;
        let events = self.store.event_list(id).await?;
        Ok((job, events))
    }

    /// Jobs matching a filter, newest first, a page at a time. A filter holding text no store
    /// can compare (a NUL character) is refused, naming the field.
    pub async fn list(&self, filter: &JobList) -> Result<JobPage, Error> {
        check_filters(&[
            ("queue", filter.queue.as_deref()),
            ("kind", filter.kind.as_deref()),
            ("reference_type", filter.reference_type.as_deref()),
            ("reference_id", filter.reference_id.as_deref()),
        ])?;
        Ok(self.store.job_list(filter).await?)
    }

    /// The jobs about one entity (`reference_type`, `reference_id`), newest first.
    pub async fn find_by_reference(
        &self,
        reference_type: &str,
        reference_id: &str,
    ) -> Result<Vec<Job>, Error> {
        let mut out = Vec::new();
        let mut filter = JobList {
            reference_type: Some(reference_type.into()),
            reference_id: Some(reference_id.into()),
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = self.store.job_list(&filter).await?;
            out.extend(page.jobs);
            match page.next_cursor {
                Some(c) => filter.before_id = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Counts by status per queue, and the oldest ready job's run_at.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, Error> {
        Ok(self.store.queue_stats().await?)
    }

    /// Per queue, what finished since `since` (optionally of one queue / kind): counts of
    /// succeeded, failed and cancelled jobs, and the avg / p95 / max run time of the
    /// succeeded ones.
    pub async fn finished_stats(
        &self,
        since: DateTime<Utc>,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<FinishedStats>, Error> {
        check_filters(&[("queue", queue), ("kind", kind)])?;
        let params = JobFinishedStats {
            since,
            queue: queue.map(Into::into),
            kind: kind.map(Into::into),
        };
        Ok(self.store.job_finished_stats(&params).await?)
    }

    /// Finished jobs per `bucket` of time and per queue, from the bucket holding `since` to
    /// the one holding `until`, with zeros where nothing finished (a series ready to plot).
    pub async fn throughput(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        bucket: std::time::Duration,
        queue: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<ThroughputBucket>, Error> {
        check_filters(&[("queue", queue), ("kind", kind)])?;
        let params = JobThroughput {
            since,
            bucket,
            queue: queue.map(Into::into),
            kind: kind.map(Into::into),
        };
        let rows = self.store.job_throughput(&params).await?;
        let queues: Vec<String> = queue.map(|q| vec![q.to_string()]).unwrap_or_default();
        Ok(errand_store::fill_throughput(
            &rows, &queues, since, until, bucket,
        ))
    }

    // ---- operator actions ---------------------------------------------------------------

    /// Cancels jobs: queued ones at once, running ones through their worker.
    pub async fn cancel(
        &self,
        ids: &[JobId],
        reason: Option<&str>,
    ) -> Result<Vec<CancelOutcome>, Error> {
        Ok(self.store.job_cancel(ids, reason).await?)
    }

    /// Puts failed or cancelled jobs back in the queue with a fresh attempt budget.
    pub async fn retry(&self, ids: &[JobId]) -> Result<Vec<RetryOutcome>, Error> {
        Ok(self.store.job_retry(ids).await?)
    }

    /// Retries every failed job (optionally of one queue and/or kind), in batches; returns
    /// how many, calling `progress` with the running total after each batch.
    pub async fn retry_failed(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, Error> {
        check_filters(&[("queue", queue), ("kind", kind)])?;
        let filter = RetryFailed {
            queue: queue.map(Into::into),
            kind: kind.map(Into::into),
            limit: BULK_BATCH,
        };
        let mut total = 0;
        loop {
            let n = self.store.job_retry_failed(&filter).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
            progress(total);
        }
    }

    /// Deletes finished jobs (and their events) that finished before `before`: succeeded and
    /// cancelled ones, and failed ones too if `include_failed`. Works in small batches so
    /// workers are never blocked for long; calls `progress` with the running total.
    pub async fn purge(
        &self,
        before: DateTime<Utc>,
        include_failed: bool,
        progress: impl FnMut(u64),
    ) -> Result<u64, Error> {
        let mut statuses = vec![JobStatus::Succeeded, JobStatus::Cancelled];
        if include_failed {
            statuses.push(JobStatus::Failed);
        }
        Ok(maintenance::purge_finished(self.store.as_ref(), statuses, before, progress).await?)
    }

    /// Running jobs whose lease has expired (their worker is presumed dead), oldest first.
    pub async fn stuck(&self, limit: u32) -> Result<Vec<Job>, Error> {
        Ok(self.store.job_list_stuck(limit).await?)
    }

    /// Rescues every stuck job now (what the rescuer does on its own every few seconds):
    /// requeued if attempts remain, failed if not, cancelled if someone asked. Returns how
    /// many were rescued.
    pub async fn rescue_stuck(&self) -> Result<u64, Error> {
        Ok(maintenance::rescue_expired(self.store.as_ref(), |_| {}).await?)
    }

    /// Pauses a queue: workers stop claiming from it; running jobs finish.
    pub async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        errand_core::validate::validate_queue_name(queue)?;
        Ok(self.store.queue_pause(queue).await?)
    }

    /// Resumes a paused queue.
    pub async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        errand_core::validate::validate_queue_name(queue)?;
        Ok(self.store.queue_resume(queue).await?)
    }

    /// Sets a queue's flow-control limits across every worker process (`global_concurrency`,
    /// the per-key default `key_concurrency`, `rate_limit`; `None` lifts one), replacing all
    /// three. A value
    /// below 1 is refused, naming the field, and nothing is written.
    pub async fn set_queue_limits(
        &self,
        queue: &str,
        limits: errand_core::QueueLimits,
    ) -> Result<(), Error> {
        errand_core::validate::validate_queue_name(queue)?;
        limits.check()?;
        Ok(self.store.queue_limits_set(queue, limits).await?)
    }

    /// Queues with stored settings (ever paused or resumed, or given limits), by name.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, Error> {
        Ok(self.store.queue_list().await?)
    }

    /// Registered worker processes (oldest first), with their last heartbeat.
    pub async fn workers(&self) -> Result<Vec<WorkerRecord>, Error> {
        Ok(self.store.worker_list().await?)
    }

    // ---- schema -------------------------------------------------------------------------

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<MigrationStatus, Error> {
        Ok(self.store.migrate().await?)
    }

    /// Applied and pending migrations.
    pub async fn migration_status(&self) -> Result<MigrationStatus, Error> {
        Ok(self.store.migration_status().await?)
    }
}

/// Refuses a filter holding text no store can compare (a NUL character), naming the field.
fn check_filters(filters: &[(&'static str, Option<&str>)]) -> Result<(), Error> {
    for (field, value) in filters {
        if let Some(v) = value {
            errand_core::storable::check_text(field, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert!(matches!(
            parse_url("errand.db"),
            Ok(Target::Sqlite("errand.db"))
        ));
        assert!(matches!(
            parse_url("sqlite:///tmp/x.db"),
            Ok(Target::Sqlite(_))
        ));
        assert!(matches!(
            parse_url("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse_url("postgresql://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        let err = parse_url("mysql://root:hunter2@h/db").err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("mysql://root:***@h/db"), "{msg}");
        assert!(!msg.contains("hunter2"));
        assert!(parse_url("").is_err());
    }

    /// Built with one backend (`--no-default-features --features sqlite`, or `postgres`), a
    /// URL of the other is refused before anything is opened, naming the feature to turn on.
    #[cfg(not(all(feature = "sqlite", feature = "postgres")))]
    #[tokio::test]
    async fn a_backend_left_out_of_the_build_is_named() {
        let (url, feature) = if cfg!(feature = "postgres") {
            ("errand.db", "sqlite")
        } else {
            ("postgres://u:secret@h/db", "postgres")
        };
        let err = Client::builder(url).connect().await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::BackendNotBuilt { backend, .. } if backend == feature),
            "{msg}"
        );
        assert!(msg.contains(&format!("`{feature}` feature")), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }
}
