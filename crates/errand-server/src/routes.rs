//! The route table: every endpoint once, with its method, path, required role, handler and
//! documentation. [`build`] makes the router from it and `openapi::document` the OpenAPI
//! document, so a route cannot be served without being documented (and the auth matrix test
//! walks the same list).

use crate::request_doc::{HandlerArgs, RequestDoc};
use crate::{auth, health, jobs, openapi, queues, remote, scheduler_health, schedules, AppState};
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use errand_core::{DerivedState, JobStatus};
use schemars::SchemaGenerator;
use std::sync::LazyLock;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// Lower-case, as OpenAPI spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }

    /// The method.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// Who may call a route (see [`crate::Role::may`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token needed: health, metrics, the OpenAPI document.
    Public,
    /// Any valid token.
    Read,
    /// `enqueue` or `admin`.
    Enqueue,
    /// `worker` or `admin`.
    Worker,
    /// `admin` only.
    Admin,
}

impl Access {
    /// For error messages and the OpenAPI document.
    pub const fn describe(self) -> &'static str {
        match self {
            Access::Public => "no token",
            Access::Read => "any role",
            Access::Enqueue => "the enqueue or admin role",
            Access::Worker => "the worker or admin role",
            Access::Admin => "the admin role",
        }
    }
}

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    pub verb: Verb,
    /// axum's path syntax, which is also OpenAPI's: `/v1/jobs/{id}`.
    pub path: &'static str,
    pub access: Access,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// What the handler reads from a request (path, query, body), from its extractors.
    pub request: fn(&mut SchemaGenerator) -> RequestDoc,
    /// Success status and the name of the response schema (`None`: not JSON).
    pub success: (u16, Option<&'static str>),
    /// Failure statuses this route can answer besides 401/403 (and 500/503).
    pub errors: &'static [u16],
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(
        verb: Verb,
        path: &'static str,
        access: Access,
        operation_id: &'static str,
        summary: &'static str,
        handler: H,
    ) -> Route
    where
        H: Handler<T, AppState>,
        T: HandlerArgs + 'static,
    {
        Route {
            verb,
            path,
            access,
            operation_id,
            summary,
            request: T::document,
            success: (200, None),
            errors: &[],
            handler: on(verb.filter(), handler),
        }
    }

    fn ok(mut self, status: u16, schema: &'static str) -> Self {
        self.success = (status, Some(schema));
        self
    }

    fn text(mut self) -> Self {
        self.success = (200, None);
        self
    }

    fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    /// The area the route belongs to: its tag in the OpenAPI document, from its path.
    pub fn tag(&self) -> &'static str {
        let p = self.path;
        if p.starts_with("/v1/worker/") {
            "remote-worker"
        } else if p.starts_with("/v1/jobs") {
            "jobs"
        } else if p.starts_with("/v1/queues") || p.starts_with("/v1/stats") {
            "queues"
        } else if p.starts_with("/v1/schedules") {
            "schedules"
        } else if p.starts_with("/v1/workers") {
            "workers"
        } else {
            "service"
        }
    }

    /// The names of the path's `{parameters}`.
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }
}

/// The help of the list's `status` filter: the words from the states' definitions.
pub(crate) static STATUS_HELP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "Comma-separated states, stored ({}) or derived ({}); a job matching any is listed",
        errand_core::job::words(&JobStatus::ALL.map(JobStatus::as_str)),
        errand_core::job::words(&DerivedState::ALL.map(DerivedState::as_str)),
    )
});

/// The help of the list's `derived` filter.
pub(crate) static DERIVED_HELP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "Comma-separated derived states ({}), added to `status`",
        errand_core::job::words(&DerivedState::ALL.map(DerivedState::as_str)),
    )
});

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Access::*;
    use Verb::*;
    const BAD: &[u16] = &[400, 413, 415];
    const BAD_ID: &[u16] = &[400, 404, 409];
    const BAD_JOB: &[u16] = &[400, 413, 415, 422];
    vec![
        // ---- service -------------------------------------------------------------------
        Route::new(Get, "/health", Public, "health", "Liveness and database reachability: 503 `unavailable` when the database does not answer within 2 s (or the schema is behind), 503 `degraded` while writes fail (a full disk)", health::health)
            .ok(200, "Health")
            .errors(&[503]),
        Route::new(Get, "/health/live", Public, "health_live", "Liveness for orchestrators: 200 while the process answers HTTP, whatever the database does (a database outage must not restart every server at once)", health::live)
            .ok(200, "Live"),
        Route::new(Get, "/health/ready", Public, "health_ready", "Readiness for orchestrators: the answer of /health (200 `ok` when the database answers within 2 s and is migrated and writes succeed; 503 `unavailable` or `degraded`), the question `errand health` asks from the command line", health::health)
            .ok(200, "Health")
            .errors(&[503]),
        Route::new(Get, "/health/scheduler", Public, "health_scheduler", "Scheduling health: healthy, or degraded (503) with the reasons (the loop is off, stopped, failing or stalled; a schedule is overdue beyond its misfire grace); next run, last execution with its result and error, pending jobs", scheduler_health::scheduler)
            .ok(200, "SchedulerHealth"),
        Route::new(Get, "/metrics", Public, "metrics", "Prometheus metrics (text format 0.0.4)", health::metrics).text(),
        Route::new(Get, "/v1/openapi.json", Public, "openapi", "This document", openapi::serve)
            .ok(200, "OpenApi"),
        Route::new(Get, "/v1/me", Read, "me", "The caller's role, and whether the API asks for tokens at all", health::me)
            .ok(200, "Me"),
        // ---- jobs ----------------------------------------------------------------------
        Route::new(Post, "/v1/jobs", Enqueue, "enqueue", "Enqueue one job (201 when inserted, 200 when a job with the same unique_key is queued or running; 422 for a kind no configured task knows)", jobs::enqueue)
            .ok(201, "Enqueued")
            .errors(BAD_JOB),
        Route::new(Post, "/v1/jobs/batch", Enqueue, "enqueue_batch", "Enqueue many jobs in one transaction: all or nothing", jobs::enqueue_batch)
            .ok(200, "EnqueueBatchResponse")
            .errors(BAD_JOB),
        Route::new(Get, "/v1/jobs", Read, "list_jobs", "Jobs matching filters, newest first, a page at a time", jobs::list)
            .ok(200, "JobPage")
            .errors(&[400]),
        Route::new(Get, "/v1/jobs/{id}", Read, "get_job", "One job with its events, oldest first", jobs::get)
            .ok(200, "JobWithEvents")
            .errors(&[400, 404]),
        Route::new(Post, "/v1/jobs/{id}/cancel", Admin, "cancel_job", "Cancel a job: a queued one at once, a running one through its worker (409 if it already finished)", jobs::cancel_one)
            .ok(200, "JobEnvelope")
            .errors(BAD_ID),
        Route::new(Post, "/v1/jobs/{id}/retry", Admin, "retry_job", "Put a failed or cancelled job back in its queue with a fresh attempt budget (409 otherwise)", jobs::retry_one)
            .ok(200, "JobEnvelope")
            .errors(BAD_ID),
        Route::new(Post, "/v1/jobs/retry", Admin, "retry_jobs", "Retry jobs by id, or every failed job matching a filter", jobs::retry_many)
            .ok(200, "Retried")
            .errors(BAD),
        Route::new(Post, "/v1/jobs/cancel", Admin, "cancel_jobs", "Cancel jobs by id, or every job in a state matching a filter", jobs::cancel_many)
            .ok(200, "Cancelled")
            .errors(BAD),
        Route::new(Post, "/v1/jobs/purge", Admin, "purge_jobs", "Delete finished jobs (and their events) older than a duration, in small batches", jobs::purge)
            .ok(200, "Purged")
            .errors(BAD),
        // ---- queues and workers ----------------------------------------------------------
        Route::new(Get, "/v1/queues", Read, "list_queues", "Every queue: paused, counts by state, oldest ready job and its age, what finished in the last hour and how long it ran", queues::list)
            .ok(200, "QueueList"),
        Route::new(Get, "/v1/stats/throughput", Read, "throughput", "Finished jobs per time bucket (succeeded, failed, cancelled), oldest first, zeros included", queues::throughput)
            .ok(200, "Throughput")
            .errors(&[400]),
        Route::new(Post, "/v1/queues/{name}/pause", Admin, "pause_queue", "Pause a queue: workers stop claiming from it; running jobs finish. A queue that the configuration does not declare and that has no jobs or settings is refused (404) unless force=true", queues::pause)
            .ok(200, "QueueEnvelope")
            .errors(&[400, 404]),
        Route::new(Post, "/v1/queues/{name}/resume", Admin, "resume_queue", "Resume a paused queue (an unknown one is refused unless force=true, as for pause)", queues::resume)
            .ok(200, "QueueEnvelope")
            .errors(&[400, 404]),
        Route::new(Put, "/v1/queues/{name}/limits", Admin, "set_queue_limits", "Set a queue's limits across every worker process, all three at once: global_concurrency (at most N of its jobs running at once), key_concurrency (at most N running per concurrency_key, for keyed jobs with no limit of their own) and rate_limit (at most N starts in any window of the duration, e.g. 100/1m); null or absent lifts one. The next start of a process whose errand.toml names limits for the queue puts them back where they differ. An unknown queue is refused unless force=true, as for pause", queues::set_limits)
            .ok(200, "QueueEnvelope")
            .errors(&[400, 404]),
        // ---- schedules ---------------------------------------------------------------------
        Route::new(Get, "/v1/schedules", Read, "list_schedules", "Every schedule with its next fire and its last run", schedules::list)
            .ok(200, "ScheduleList"),
        Route::new(Post, "/v1/schedules", Admin, "create_schedule", "Create a run-time schedule (source `api`): `name` and the fields of a `[schedules.NAME]` table; 409 if the name is taken", schedules::create)
            .ok(201, "ScheduleEnvelope")
            .errors(&[400, 409, 413, 415]),
        Route::new(Put, "/v1/schedules/{name}", Admin, "update_schedule", "Replace a run-time schedule's definition (history and handled fires stay); 409 for a schedule from errand.toml", schedules::update)
            .ok(200, "ScheduleEnvelope")
            .errors(&[400, 404, 409, 413, 415]),
        Route::new(Delete, "/v1/schedules/{name}", Admin, "delete_schedule", "Delete a run-time schedule and its fire history (its jobs stay); 409 for a schedule from errand.toml", schedules::delete)
            .ok(200, "ScheduleDeleted")
            .errors(&[404, 409]),
        Route::new(Get, "/v1/schedules/{name}", Read, "get_schedule", "One schedule: its next fires, run history with durations (avg, p95, max) and skipped fires", schedules::get)
            .ok(200, "ScheduleDetail")
            .errors(&[400, 404]),
        Route::new(Post, "/v1/schedules/{name}/pause", Admin, "pause_schedule", "Pause a schedule: it does not fire until resumed", schedules::pause)
            .ok(200, "ScheduleEnvelope")
            .errors(&[404]),
        Route::new(Post, "/v1/schedules/{name}/resume", Admin, "resume_schedule", "Resume a paused schedule; the paused span does not count as missed", schedules::resume)
            .ok(200, "ScheduleEnvelope")
            .errors(&[404]),
        Route::new(Post, "/v1/schedules/{name}/trigger", Admin, "trigger_schedule", "Enqueue the schedule's job now (does not move its next fire), under its overlap policy: 409 `overlap_skipped` while its previous run is live (skip, queue) unless `force=true`", schedules::trigger)
            .ok(200, "Triggered")
            .errors(&[400, 404, 409]),
        Route::new(Get, "/v1/workers", Read, "list_workers", "Registered worker processes (in-process and remote) with their last heartbeat", queues::workers)
            .ok(200, "WorkerList"),
        // ---- the remote-worker protocol --------------------------------------------------
        Route::new(Post, "/v1/worker/claim", Worker, "worker_claim", "Claim up to `limit` ready jobs with a lease, waiting up to `wait` for one to arrive", remote::claim)
            .ok(200, "ClaimResponse")
            .errors(BAD),
        Route::new(Post, "/v1/worker/heartbeat", Worker, "worker_heartbeat", "Extend the leases of held jobs; learn which were lost or asked to stop", remote::heartbeat)
            .ok(200, "HeartbeatResponse")
            .errors(BAD),
        Route::new(Post, "/v1/worker/jobs/{id}/complete", Worker, "worker_complete", "Record a success (409 when the caller no longer holds the lease)", remote::complete)
            .ok(200, "Ok")
            .errors(&[400, 404, 409, 413, 415]),
        Route::new(Post, "/v1/worker/jobs/{id}/progress", Worker, "worker_progress", "Report how far a held job has come: replaces its `progress` (409 when the caller no longer holds the lease)", remote::progress)
            .ok(200, "Ok")
            .errors(&[400, 404, 409, 413, 415]),
        Route::new(Post, "/v1/worker/jobs/{id}/fail", Worker, "worker_fail", "Record a failed attempt: retried with backoff, after `retry_after`, or failed for good (409 when the caller no longer holds the lease)", remote::fail)
            .ok(200, "JobEnvelope")
            .errors(&[400, 404, 409, 413, 415]),
    ]
}

/// The router: each route behind its role check, JSON errors for unknown paths and methods,
/// and the body limit.
pub(crate) fn build(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for r in routes() {
        let check = middleware::from_fn_with_state((state.clone(), r.access), auth::require);
        router = router.route(r.path, r.handler.route_layer(check));
    }
    router
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> crate::ApiError {
    crate::ApiError::not_found(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> crate::ApiError {
    crate::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
