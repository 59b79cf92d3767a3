//! The OpenAPI 3 document, built from the route table ([`crate::routes`]): paths, methods,
//! parameters, bodies, responses and the role each needs come from the same entries that
//! build the router. The schemas of bodies and responses are written here, beside each other,
//! as JSON Schema; a test checks that every schema a route names exists.

use crate::routes::{routes, Access, Route};
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.verb.as_str()] = operation(&r);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Errand HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Enqueue, inspect and operate Errand jobs; the remote-worker protocol; \
                health and metrics. Authenticate with `Authorization: Bearer <token>`; roles: \
                read < enqueue, worker < admin. Errors: `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        },
    })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": reference("Error") } },
    })
}

fn operation(r: &Route) -> Value {
    let mut parameters = Vec::new();
    for p in r.path_params() {
        let schema = if p == "id" {
            json!({"type": "integer", "format": "int64", "minimum": 1})
        } else {
            json!({"type": "string", "minLength": 1})
        };
        parameters.push(json!({"name": p, "in": "path", "required": true, "schema": schema}));
    }
    for q in &r.query {
        parameters.push(json!({
            "name": q.name, "in": "query", "required": false,
            "description": q.description, "schema": {"type": q.kind},
        }));
    }
    let mut responses = Map::new();
    let (status, schema) = r.success;
    let success = match schema {
        Some(name) => json!({
            "description": "success",
            "content": { "application/json": { "schema": reference(name) } },
        }),
        None => json!({
            "description": "success",
            "content": { "text/plain": { "schema": { "type": "string" } } },
        }),
    };
    responses.insert(status.to_string(), success);
    if r.operation_id == "enqueue" {
        responses.insert(
            "200".into(),
            json!({
                "description": "a job with the same unique_key is queued or running: nothing inserted",
                "content": { "application/json": { "schema": reference("Enqueued") } },
            }),
        );
    }
    if r.operation_id == "health_scheduler" {
        responses.insert(
            "503".into(),
            json!({
                "description": "degraded: `problems` says why (the same body as 200)",
                "content": { "application/json": { "schema": reference("SchedulerHealth") } },
            }),
        );
    }
    for code in r.errors {
        let what = match code {
            400 => "bad input: the message names the field and the problem; nothing changed",
            404 => "no such job",
            409 => "the job is not in a state that allows this (or the lease is no longer held)",
            413 => "the body is over the server's limit",
            415 => "the body is not JSON",
            422 => "the job's kind is not a configured task (the message suggests the nearest); nothing changed",
            503 => "the database is unreachable",
            _ => "error",
        };
        responses.insert(code.to_string(), error_response(what));
    }
    if r.access != Access::Public {
        responses.insert(
            "401".into(),
            error_response("missing or unknown bearer token"),
        );
        responses.insert(
            "403".into(),
            error_response("the token's role may not call this"),
        );
    }
    let mut op = json!({
        "operationId": r.operation_id,
        "summary": r.summary,
        "description": format!("Needs {}.", r.access.describe()),
        "parameters": parameters,
        "responses": responses,
        "security": if r.access == Access::Public { json!([]) } else { json!([{"bearer": []}]) },
    });
    if let Some(body) = r.body {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": reference(body) } },
        });
    }
    op
}

fn string() -> Value {
    json!({"type": "string"})
}
fn nstring() -> Value {
    json!({"type": "string", "nullable": true})
}
fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}
fn ntime() -> Value {
    json!({"type": "string", "format": "date-time", "nullable": true})
}
fn int() -> Value {
    json!({"type": "integer", "format": "int64"})
}
fn nint() -> Value {
    json!({"type": "integer", "format": "int64", "nullable": true})
}
fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn any() -> Value {
    json!({})
}

/// An object with these properties, the listed ones required; `closed` refuses others.
fn object(props: &[(&str, Value)], required: &[&str], closed: bool) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    let mut o = json!({"type": "object", "properties": p, "required": required});
    if required.is_empty() {
        o.as_object_mut().unwrap().remove("required");
    }
    if closed {
        o["additionalProperties"] = json!(false);
    }
    o
}

const STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// `schema`, or null.
fn nullable(schema: &Value) -> Value {
    let mut v = schema.clone();
    v["nullable"] = json!(true);
    v
}

/// The fields of a `[schedules.NAME]` table as a body; with `name` for a create.
fn schedule_spec(with_name: bool) -> Value {
    let text = |d: &str| json!({"type": "string", "description": d});
    let mut props = vec![
        ("cron", text("a cron expression (5 fields, or 6 with seconds, or @daily, ...); exclusive with `every`")),
        ("every", text("a fixed interval of at least 1s (30s, 5m, 1h30m), aligned to the Unix epoch; exclusive with `cron`")),
        ("timezone", text("the IANA zone `cron` is read in (default UTC)")),
        ("kind", text("the task kind each fire enqueues")),
        ("args", json!({"type": "object"})),
        ("queue", string()),
        ("priority", int32()),
        ("max_attempts", int32()),
        ("overlap", json!({"type": "string", "enum": ["skip", "allow", "queue"]})),
        ("misfire_grace", text("how late a missed fire may still run (default 1h)")),
        ("coalesce", boolean()),
        ("paused", boolean()),
    ];
    let mut required = vec!["kind"];
    if with_name {
        props.insert(
            0,
            (
                "name",
                json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}),
            ),
        );
        required.insert(0, "name");
    }
    object(&props, &required, true)
}

/// Every schema the routes name.
pub fn schemas() -> Value {
    let duration = |what: &str| json!({"type": "string", "description": format!("{what}: a duration such as 500ms, 30s, 5m, 2h, 1h30m")});
    let job = object(
        &[
            ("id", int()),
            ("queue", string()),
            ("kind", string()),
            (
                "args",
                json!({"type": "object", "description": "values under secret-looking keys are `[redacted]` for every role but admin"}),
            ),
            ("status", json!({"type": "string", "enum": STATES})),
            (
                "derived",
                json!({"type": "string", "enum": ["scheduled", "retrying", "stuck"], "nullable": true}),
            ),
            ("priority", int32()),
            ("run_at", time()),
            ("attempt", int32()),
            ("max_attempts", int32()),
            ("unique_key", nstring()),
            ("reference_type", nstring()),
            ("reference_id", nstring()),
            ("result", json!({"nullable": true})),
            ("last_error", nstring()),
            ("timeout_ms", nint()),
            ("worker_id", nstring()),
            ("lease_expires_at", ntime()),
            ("cancel_requested_at", ntime()),
            ("created_at", time()),
            ("started_at", ntime()),
            ("finished_at", ntime()),
            ("updated_at", time()),
        ],
        &[
            "id",
            "queue",
            "kind",
            "args",
            "status",
            "derived",
            "priority",
            "run_at",
            "attempt",
            "max_attempts",
            "created_at",
            "updated_at",
        ],
        false,
    );
    let event = object(
        &[
            ("id", int()),
            ("job_id", int()),
            ("at", time()),
            (
                "kind",
                json!({"type": "string", "enum": errand_core::EventKind::ALL.map(|k| k.as_str())}),
            ),
            ("attempt", int32()),
            ("worker_id", nstring()),
            ("message", nstring()),
            ("data", json!({"nullable": true})),
        ],
        &["id", "job_id", "at", "kind", "attempt"],
        false,
    );
    let enqueue = object(
        &[
            (
                "kind",
                json!({"type": "string", "minLength": 1, "maxLength": 128}),
            ),
            ("args", json!({"type": "object"})),
            (
                "queue",
                json!({"type": "string", "minLength": 1, "maxLength": 128}),
            ),
            (
                "priority",
                json!({"type": "integer", "format": "int32", "description": "higher runs first"}),
            ),
            ("run_at", time()),
            ("delay", duration("run no earlier than this long from now")),
            (
                "unique_key",
                json!({"type": "string", "minLength": 1, "maxLength": 512}),
            ),
            (
                "reference",
                object(
                    &[
                        ("type", string()),
                        (
                            "id",
                            json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
                        ),
                    ],
                    &["type", "id"],
                    true,
                ),
            ),
            (
                "max_attempts",
                json!({"type": "integer", "format": "int32", "minimum": 1}),
            ),
            (
                "timeout",
                duration("execution limit of one attempt, 0 for none"),
            ),
        ],
        &["kind"],
        true,
    );
    let enqueued = object(
        &[("id", int()), ("inserted", boolean())],
        &["id", "inserted"],
        false,
    );
    let counts = object(
        &[
            ("queued", int()),
            ("running", int()),
            ("succeeded", int()),
            ("failed", int()),
            ("cancelled", int()),
            ("scheduled", int()),
        ],
        &[
            "queued",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "scheduled",
        ],
        false,
    );
    let queue = object(
        &[
            ("name", string()),
            ("paused", boolean()),
            ("counts", counts),
            ("oldest_queued_at", ntime()),
            ("oldest_queued_age_ms", nint()),
            (
                "throughput_1h",
                object(
                    &[
                        ("succeeded", int()),
                        ("failed", int()),
                        ("cancelled", int()),
                    ],
                    &["succeeded", "failed", "cancelled"],
                    false,
                ),
            ),
            (
                "duration_ms",
                object(
                    &[
                        ("avg", json!({"type": "number", "nullable": true})),
                        ("p95", json!({"type": "number", "nullable": true})),
                        ("max", json!({"type": "number", "nullable": true})),
                    ],
                    &["avg", "p95", "max"],
                    false,
                ),
            ),
        ],
        &[
            "name",
            "paused",
            "counts",
            "oldest_queued_at",
            "oldest_queued_age_ms",
            "throughput_1h",
            "duration_ms",
        ],
        false,
    );
    let worker = object(
        &[
            ("id", string()),
            ("host", string()),
            ("pid", int()),
            ("version", string()),
            (
                "queues",
                array(object(
                    &[("name", string()), ("concurrency", int())],
                    &["name", "concurrency"],
                    false,
                )),
            ),
            ("concurrency", int()),
            ("started_at", time()),
            ("last_seen_at", time()),
        ],
        &[
            "id",
            "host",
            "pid",
            "version",
            "queues",
            "started_at",
            "last_seen_at",
        ],
        false,
    );
    let claimed = object(
        &[
            ("id", int()),
            ("attempt", int32()),
            ("kind", string()),
            ("queue", string()),
            ("args", json!({"type": "object"})),
            ("lease_expires_at", ntime()),
            ("timeout_ms", nint()),
        ],
        &["id", "attempt", "kind", "queue", "args"],
        false,
    );
    // A schedule's latest run; in `/health/scheduler` with the schedule's name and `at`.
    let last_run = object(
        &[
            ("job_id", int()),
            (
                "status",
                json!({"type": "string", "enum": STATES, "nullable": true}),
            ),
            ("created_at", ntime()),
            ("started_at", ntime()),
            ("finished_at", ntime()),
            ("duration_ms", nint()),
            (
                "result",
                json!({"nullable": true, "description": "what the run returned (values under secret-looking keys are `[redacted]` for every role but admin)"}),
            ),
            ("last_error", nstring()),
            ("schedule", string()),
            ("at", time()),
        ],
        &["job_id", "status", "result", "last_error"],
        false,
    );
    let scheduler_health = object(
        &[
            (
                "status",
                json!({"type": "string", "enum": ["healthy", "degraded"]}),
            ),
            (
                "problems",
                array(object(
                    &[
                        (
                            "code",
                            json!({"type": "string", "enum": ["scheduler_not_running", "scheduler_disabled", "scheduler_failing", "scheduler_stalled", "schedule_overdue"]}),
                        ),
                        ("message", string()),
                        ("schedule", nstring()),
                    ],
                    &["code", "message", "schedule"],
                    false,
                )),
            ),
            (
                "scheduler",
                object(
                    &[
                        (
                            "state",
                            json!({"type": "string", "enum": ["not_started", "disabled", "running", "stopped"]}),
                        ),
                        ("started_at", ntime()),
                        ("last_pass_at", ntime()),
                    ],
                    &["state", "started_at", "last_pass_at"],
                    false,
                ),
            ),
            (
                "next_run",
                json!({"type": "object", "nullable": true, "properties": {"schedule": string(), "at": time()}}),
            ),
            ("last_execution", nullable(&last_run)),
            ("pending_jobs", int()),
        ],
        &[
            "status",
            "problems",
            "scheduler",
            "next_run",
            "last_execution",
            "pending_jobs",
        ],
        false,
    );
    let schedule = object(
        &[
            ("name", string()),
            ("cron", nstring()),
            ("every", nstring()),
            ("timezone", nstring()),
            ("kind", string()),
            ("queue", string()),
            (
                "args",
                json!({"nullable": true, "description": "values under secret-looking keys are `[redacted]` for every role but admin"}),
            ),
            ("priority", json!({"type": "integer", "nullable": true})),
            ("max_attempts", json!({"type": "integer", "nullable": true})),
            (
                "overlap",
                json!({"type": "string", "enum": ["skip", "allow", "queue"], "nullable": true}),
            ),
            ("misfire_grace_ms", nint()),
            ("coalesce", json!({"type": "boolean", "nullable": true})),
            ("paused", boolean()),
            ("problem", nstring()),
            (
                "source",
                json!({"type": "string", "enum": ["config", "api"], "description": "`config`: from errand.toml (the API may pause, resume and trigger it, not change or delete it); `api`: created through the API"}),
            ),
            ("next_fire_at", ntime()),
            ("last_fire_at", time()),
            ("last_run", nullable(&last_run)),
            ("created_at", time()),
            ("updated_at", time()),
        ],
        &[
            "name",
            "kind",
            "queue",
            "paused",
            "next_fire_at",
            "last_fire_at",
            "last_run",
        ],
        false,
    );
    let ids = json!({"type": "array", "items": {"type": "integer", "format": "int64", "minimum": 1}, "maxItems": 10000});
    let filter = |s: &str| json!({"type": "string", "minLength": 1, "description": s});
    let mut all = json!({
        "Error": object(&[("error", object(&[("code", string()), ("message", string()), ("field", string())], &["code", "message"], false))], &["error"], false),
        "Health": object(&[("status", json!({"type": "string", "enum": ["ok", "degraded", "unavailable"]})), ("database", string())], &["status", "database"], false),
        "SchedulerHealth": scheduler_health,
        "OpenApi": {"type": "object"},
        "Me": object(&[("role", json!({"type": "string", "enum": ["read", "enqueue", "worker", "admin"]})), ("auth", boolean())], &["role", "auth"], false),
        "EnqueueRequest": enqueue,
        "Enqueued": enqueued,
        "EnqueueBatchRequest": object(&[("jobs", json!({"type": "array", "items": reference("EnqueueRequest"), "maxItems": crate::jobs::MAX_BATCH}))], &["jobs"], true),
        "EnqueueBatchResponse": object(&[("results", array(reference("Enqueued")))], &["results"], false),
        "Job": job,
        "Event": event,
        "JobPage": object(&[("jobs", array(reference("Job"))), ("next_cursor", nint())], &["jobs", "next_cursor"], false),
        "JobWithEvents": object(&[("job", reference("Job")), ("events", array(reference("Event")))], &["job", "events"], false),
        "JobEnvelope": object(&[("job", reference("Job"))], &["job"], false),
        "RetryRequest": object(
            &[("ids", ids.clone()), ("queue", filter("retry every failed job of this queue")), ("kind", filter("... of this kind")), ("reference", filter("... about this entity: `type` or `type:id`"))],
            &[],
            true,
        ),
        "Retried": object(&[("retried", int())], &["retried"], false),
        "CancelRequest": object(
            &[("ids", ids), ("status", filter("cancel every job in this state (queued, running, scheduled, retrying, stuck)")), ("queue", filter("queue")), ("kind", filter("kind")), ("reference", filter("`type` or `type:id`"))],
            &[],
            true,
        ),
        "Cancelled": object(&[("cancelled", int())], &["cancelled"], false),
        "PurgeRequest": object(&[("older_than", duration("finished longer ago than")), ("include_failed", boolean())], &["older_than"], true),
        "Purged": object(&[("purged", int())], &["purged"], false),
        "Queue": queue,
        "QueueList": object(&[("queues", array(reference("Queue")))], &["queues"], false),
        "QueueEnvelope": object(&[("queue", reference("Queue"))], &["queue"], false),
        "Throughput": object(
            &[("buckets", array(object(&[("start", time()), ("succeeded", int()), ("failed", int()), ("cancelled", int())], &["start", "succeeded", "failed", "cancelled"], false)))],
            &["buckets"],
            false,
        ),
        "Schedule": schedule,
        "ScheduleList": object(&[("schedules", array(reference("Schedule")))], &["schedules"], false),
        "ScheduleEnvelope": object(&[("schedule", reference("Schedule"))], &["schedule"], false),
        "ScheduleDetail": object(
            &[
                ("schedule", reference("Schedule")),
                ("next_fires", array(time())),
                ("history", array(object(
                    &[("fire_at", time()), ("outcome", json!({"type": "string", "enum": ["enqueued", "triggered"]})), ("job_id", nint()), ("status", json!({"type": "string", "enum": STATES, "nullable": true})), ("duration_ms", nint())],
                    &["fire_at", "outcome"],
                    false,
                ))),
                ("stats", object(
                    &[("runs", int()), ("avg_ms", nint()), ("p95_ms", nint()), ("max_ms", nint())],
                    &["runs", "avg_ms", "p95_ms", "max_ms"],
                    false,
                )),
                ("skipped", array(object(&[("fire_at", time()), ("reason", nstring())], &["fire_at"], false))),
            ],
            &["schedule", "next_fires", "history", "stats", "skipped"],
            false,
        ),
        "Triggered": object(&[("job_id", int())], &["job_id"], false),
        "Worker": worker,
        "WorkerList": object(&[("workers", array(reference("Worker")))], &["workers"], false),
        "ClaimRequest": object(
            &[
                ("worker_id", json!({"type": "string", "minLength": 1, "maxLength": 200})),
                ("queues", json!({"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "minItems": 1, "maxItems": 50})),
                ("limit", json!({"type": "integer", "minimum": 1, "maximum": 100})),
                ("lease", duration("lease of each claimed job (1s to 1h, default 30s)")),
                ("wait", duration("wait this long for a job when none is ready (at most the server's max_wait)")),
                ("host", string()),
                ("pid", json!({"type": "integer", "minimum": 0})),
                ("version", string()),
            ],
            &["worker_id", "queues"],
            true,
        ),
        "ClaimedJob": claimed,
        "ClaimResponse": object(&[("jobs", array(reference("ClaimedJob")))], &["jobs"], false),
        "HeartbeatRequest": object(
            &[
                ("worker_id", json!({"type": "string", "minLength": 1, "maxLength": 200})),
                ("jobs", json!({"type": "array", "maxItems": 1000, "items": object(&[("id", int()), ("attempt", int32())], &["id", "attempt"], true)})),
                ("lease", duration("new lease from now")),
            ],
            &["worker_id"],
            true,
        ),
        "HeartbeatResponse": object(
            &[("jobs", array(object(&[("id", int()), ("state", json!({"type": "string", "enum": ["held", "lost", "cancel_requested"]}))], &["id", "state"], false)))],
            &["jobs"],
            false,
        ),
        "CompleteRequest": object(&[("worker_id", string()), ("attempt", int32()), ("result", any())], &["worker_id", "attempt"], true),
        "FailRequest": object(
            &[
                ("worker_id", string()),
                ("attempt", int32()),
                ("error", string()),
                ("retry_after", duration("retry after this long, whatever the backoff says")),
                ("permanent", boolean()),
            ],
            &["worker_id", "attempt", "error"],
            true,
        ),
        "Ok": object(&[("ok", boolean())], &["ok"], false),
    });
    // Beside the rest: one `json!` of them all is past the macro's recursion limit.
    all["ScheduleSpec"] = schedule_spec(false);
    all["ScheduleCreateRequest"] = schedule_spec(true);
    all["ScheduleDeleted"] = object(&[("deleted", string())], &["deleted"], false);
    all
}
