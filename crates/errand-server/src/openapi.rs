//! The OpenAPI 3 document, built from the route table ([`crate::routes`]): paths, methods,
//! parameters, bodies, responses and the role each needs come from the same entries that
//! build the router. The request side (path and query parameters, bodies) is generated from
//! the types each handler's extractors read ([`crate::request_doc`]), with the rules the
//! server checks stated where JSON Schema can; the resources are generated from
//! `errand::views`; the small envelopes and the service answers are written here.

use crate::routes::{routes, Access, Route};
use axum::Json;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

/// The areas of the API, in the order a reader meets them (each route's is [`Route::tag`]).
const TAGS: &[(&str, &str)] = &[
    (
        "jobs",
        "Enqueue jobs, list and show them with their events, cancel, retry and purge them",
    ),
    ("queues", "Queue statistics, throughput, pause and resume"),
    (
        "schedules",
        "Cron and interval schedules: list, show, create, update, delete, pause, resume, trigger",
    ),
    (
        "workers",
        "The registry of worker processes, in-process and remote",
    ),
    (
        "remote-worker",
        "The protocol a worker in any language speaks: claim, heartbeat, complete, fail",
    ),
    (
        "service",
        "Health, metrics, this document, and who the caller is",
    ),
];

/// What the document says before its paths: authentication, errors, the remote-worker
/// protocol's defaults and limits.
const DESCRIPTION: &str = "Enqueue, inspect and operate Errand jobs; the remote-worker \
protocol; health and metrics.

**Authentication**: `Authorization: Bearer <token>`. Roles: `read` (every GET), `enqueue` (read \
and enqueue), `worker` (read and the remote-worker protocol), `admin` (everything). Values under \
secret-looking keys in arguments, results, progress and event data are `[redacted]` for every role but \
admin.

**Errors** are `{\"error\": {\"code\", \"message\", \"field\"?}}`; a request that fails \
changes nothing. Codes: `invalid_field` (400, `field` names the bad field), `bad_body` (400, 413 \
over the body limit, 415 not JSON), `invalid_request` (400), `unauthorized` (401), `forbidden` \
(403), `not_found` (404), `method_not_allowed` (405), `not_cancellable`, `not_retryable`, \
`stale` (the caller no longer holds the job's lease), `overlap_skipped`, `config_owned` \
(a schedule from errand.toml), `conflict` (all 409), `unknown_kind` (422, no configured task \
has this kind), `database_error` (500), `unsupported` (501), `unavailable` and `disk_full` \
(503).

**Remote workers**: `POST /v1/worker/claim` takes up to `limit` jobs (default 1, at most 100) \
and long-polls up to `wait` (default 0: answer at once; at most 30 s, `ServerConfig::max_wait` \
when embedding the server) for one to arrive. Each claimed job is leased for `lease` (1 s to 1 h; \
default 30 s, `ServerConfig::default_lease`). Heartbeat the jobs you hold \
(`POST /v1/worker/heartbeat`) every third of the lease or so (10 s for the default lease): \
each heartbeat extends the lease from now. A job whose lease expires is taken back by the \
rescuer and may run again elsewhere. The heartbeat answers each job's state: `held`, `lost` \
(drop it and report nothing: a report would get 409 `stale`), or `cancel_requested` (someone \
asked it to stop). To acknowledge a cancel request, stop the work and report \
`POST /v1/worker/jobs/{id}/fail` with the job's fence: a failure reported for a job with a \
cancel request ends it `cancelled`, not retried. While it runs, a job may report how far it has \
come (`POST /v1/worker/jobs/{id}/progress`, any JSON value up to 8 KiB, by convention \
`{\"done\": 40, \"total\": 100, \"message\": \"...\"}`), shown on the job as `progress` and \
`progress_at`; report at most about once a second. Every report carries the fence it was \
claimed with (`worker_id`, `attempt`).";

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut generator = request_generator();
    for r in routes() {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.verb.as_str()] = operation(&r, &mut generator);
    }
    let mut schemas = schemas();
    for (name, schema) in request_schemas(generator) {
        let all = schemas.as_object_mut().expect("an object");
        match all.get(&name) {
            // A schema both sides use (an enumeration) must be the same on both.
            Some(existing) => assert_eq!(existing, &schema, "two schemas named {name}"),
            None => {
                all.insert(name, schema);
            }
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Errand HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        // Relative to this document: the server that serves it.
        "servers": [{"url": "/", "description": "the server this document comes from"}],
        "tags": TAGS.iter().map(|(name, what)| json!({"name": name, "description": what})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas,
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

fn operation(r: &Route, generator: &mut SchemaGenerator) -> Value {
    let request = (r.request)(generator);
    let documented: Vec<&str> = request.path.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        documented,
        r.path_params(),
        "{} {}: the handler's path extractors and the path's parameters differ",
        r.verb.as_str(),
        r.path
    );
    let mut parameters = Vec::new();
    for (name, schema) in request.path {
        parameters.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
    parameters.extend(request.query);
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
        "tags": [r.tag()],
        "summary": r.summary,
        "description": format!("Needs {}.", r.access.describe()),
        "parameters": parameters,
        "responses": responses,
        "security": if r.access == Access::Public { json!([]) } else { json!([{"bearer": []}]) },
    });
    if let Some(body) = request.body {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": reference(&body) } },
        });
    }
    op
}

/// The generator of the request schemas: OpenAPI 3.0's form, as the server reads the types.
fn request_generator() -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::openapi3().for_deserialize())
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

/// The request schemas the routes' handlers named, as the generator made them, with "a
/// reference or null" in the form clients read.
pub fn request_schemas(mut generator: SchemaGenerator) -> Map<String, Value> {
    let mut definitions = Value::Object(generator.take_definitions(true));
    errand::views::schema::nullable_references(&mut definitions);
    match definitions {
        Value::Object(map) => map,
        _ => unreachable!("definitions are an object"),
    }
}

/// The schemas of the resources, generated from the views the API and the CLI print
/// (`errand::views`): the document cannot say other than what the types serialise.
fn view_schemas() -> Map<String, Value> {
    use errand::views::*;
    let settings = SchemaSettings::openapi3().for_serialize();
    let mut generator = SchemaGenerator::new(settings);
    generator.subschema_for::<JobView>();
    generator.subschema_for::<JobPageView>();
    generator.subschema_for::<JobDetailView>();
    generator.subschema_for::<QueueView>();
    generator.subschema_for::<WorkerView>();
    generator.subschema_for::<ScheduleView>();
    generator.subschema_for::<ScheduleDetailView>();
    let mut definitions = Value::Object(generator.take_definitions(true));
    errand::views::schema::nullable_references(&mut definitions);
    match definitions {
        Value::Object(map) => map,
        _ => unreachable!("definitions are an object"),
    }
}

/// The schemas of the answers (the requests' are generated from their types).
pub fn schemas() -> Value {
    let enqueued = object(
        &[("id", int()), ("inserted", boolean())],
        &["id", "inserted"],
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
            (
                "last_execution",
                json!({
                    "nullable": true,
                    "description": "the latest run of any schedule: a schedule's `last_run`, with the schedule's name and when it ran",
                    "allOf": [
                        reference("LastRun"),
                        object(&[("schedule", string()), ("at", time())], &["schedule", "at"], false),
                    ],
                }),
            ),
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
    let mut all = json!({
        "Error": object(&[("error", object(&[("code", string()), ("message", string()), ("field", string())], &["code", "message"], false))], &["error"], false),
        "Health": object(&[("status", json!({"type": "string", "enum": ["ok", "degraded", "unavailable"]})), ("database", string())], &["status", "database"], false),
        "SchedulerHealth": scheduler_health,
        "OpenApi": {"type": "object"},
        "Live": object(&[("status", json!({"type": "string", "enum": ["ok"]}))], &["status"], false),
        "Me": object(&[("role", json!({"type": "string", "enum": ["read", "enqueue", "worker", "admin"]})), ("auth", boolean())], &["role", "auth"], false),
        "Enqueued": enqueued,
        "EnqueueBatchResponse": object(&[("results", array(reference("Enqueued")))], &["results"], false),
        "JobEnvelope": object(&[("job", reference("Job"))], &["job"], false),
        "Retried": object(&[("retried", int())], &["retried"], false),
        "Cancelled": object(&[("cancelled", int())], &["cancelled"], false),
        "Purged": object(&[("purged", int())], &["purged"], false),
        "QueueList": object(&[("queues", array(reference("Queue")))], &["queues"], false),
        "QueueEnvelope": object(&[("queue", reference("Queue"))], &["queue"], false),
        "Throughput": object(
            &[("buckets", array(object(&[("start", time()), ("succeeded", int()), ("failed", int()), ("cancelled", int())], &["start", "succeeded", "failed", "cancelled"], false)))],
            &["buckets"],
            false,
        ),
        "ScheduleList": object(&[("schedules", array(reference("Schedule")))], &["schedules"], false),
        "ScheduleEnvelope": object(&[("schedule", reference("Schedule"))], &["schedule"], false),
        "Triggered": object(&[("job_id", int())], &["job_id"], false),
        "WorkerList": object(&[("workers", array(reference("Worker")))], &["workers"], false),
        "ClaimedJob": claimed,
        "ClaimResponse": object(&[("jobs", array(reference("ClaimedJob")))], &["jobs"], false),
        "HeartbeatResponse": object(
            &[("jobs", array(object(&[("id", int()), ("state", json!({"type": "string", "enum": ["held", "lost", "cancel_requested"]}))], &["id", "state"], false)))],
            &["jobs"],
            false,
        ),
        "Ok": object(&[("ok", boolean())], &["ok"], false),
    });
    // Beside the rest: one `json!` of them all is past the macro's recursion limit.
    all["ScheduleDeleted"] = object(&[("deleted", string())], &["deleted"], false);
    let all_map = all.as_object_mut().expect("an object");
    for (name, schema) in view_schemas() {
        all_map.insert(name, schema);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand::{DerivedState, JobStatus};

    /// Every request body and query parameter of the route table comes from the type its
    /// handler deserialises: no request schema is written by hand, each body refuses unknown
    /// fields as its type does, and each query parameter has a generated schema.
    #[test]
    fn every_request_schema_is_generated_from_its_handlers_type() {
        let doc = document();
        let components = doc["components"]["schemas"].as_object().unwrap();
        let written = schemas();
        let mut generator = request_generator();
        let mut bodies = Vec::new();
        for r in routes() {
            let request = (r.request)(&mut generator);
            let op = &doc["paths"][r.path][r.verb.as_str()];
            match &request.body {
                Some(name) => {
                    assert_eq!(
                        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                        format!("#/components/schemas/{name}"),
                        "{}",
                        r.operation_id
                    );
                    assert!(
                        written.get(name).is_none(),
                        "{name} is written by hand, not generated"
                    );
                    let schema = &components[name];
                    assert_eq!(schema["type"], "object", "{name}");
                    assert_eq!(schema["additionalProperties"], false, "{name}");
                    bodies.push(name.clone());
                }
                None => assert!(op.get("requestBody").is_none(), "{}", r.operation_id),
            }
            for q in op["parameters"].as_array().unwrap() {
                assert!(
                    q["schema"]["type"].is_string() || q["schema"]["anyOf"].is_array(),
                    "{}: {q}",
                    r.operation_id
                );
                assert!(q["schema"].get("nullable").is_none(), "{q}");
            }
        }
        bodies.sort();
        assert_eq!(
            bodies,
            [
                "CancelRequest",
                "ClaimRequest",
                "CompleteRequest",
                "EnqueueBatchRequest",
                "EnqueueRequest",
                "FailRequest",
                "HeartbeatRequest",
                "ProgressRequest",
                "PurgeRequest",
                "QueueLimitsRequest",
                "RetryRequest",
                "ScheduleCreateRequest",
                "ScheduleSpec",
            ]
        );
        for name in written.as_object().unwrap().keys() {
            assert!(!name.ends_with("Request"), "{name} is written by hand");
        }
        // The rules that tie fields together are in the document.
        assert!(components["EnqueueRequest"]["not"].is_object());
        assert!(components["CancelRequest"]["not"]["anyOf"].is_array());
        assert_eq!(
            components["ScheduleCreateRequest"]["required"],
            json!(["name", "kind"])
        );
        let list = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
        let limit = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], 500);
        assert_eq!(limit["required"], false);
    }

    fn words(schema: &Value) -> Vec<&str> {
        schema["enum"]
            .as_array()
            .expect("an enumeration")
            .iter()
            .filter_map(Value::as_str)
            .collect()
    }

    /// The state enumerations come from the states' definitions, and a field that may be null
    /// says so in the form generated clients read (the bug that made them refuse every job
    /// without a derived view).
    #[test]
    fn state_enumerations_come_from_the_definitions_and_nullable_ones_accept_null() {
        let s = schemas();
        assert_eq!(
            words(&s["JobStatus"]),
            JobStatus::ALL.map(JobStatus::as_str).to_vec()
        );
        assert_eq!(
            words(&s["DerivedState"]),
            DerivedState::ALL.map(DerivedState::as_str).to_vec()
        );
        let derived = &s["Job"]["properties"]["derived"];
        assert_eq!(derived["nullable"], true, "{derived}");
        assert_eq!(
            derived["allOf"][0]["$ref"],
            "#/components/schemas/DerivedState"
        );
        for (schema, field) in [
            ("Schedule", "overlap"),
            ("LastRun", "status"),
            ("ScheduleRun", "status"),
            ("Job", "reference"),
            ("Schedule", "last_run"),
        ] {
            let p = &s[schema]["properties"][field];
            assert_eq!(p["nullable"], true, "{schema}.{field}: {p}");
            assert!(p["allOf"][0]["$ref"].is_string(), "{schema}.{field}: {p}");
        }
        // Every field a view serialises is in its schema and required (always present).
        let job = serde_json::to_value(errand::views::JobView {
            id: 1,
            queue: "q".into(),
            kind: "k".into(),
            status: JobStatus::Queued,
            derived: None,
            priority: 0,
            attempt: 0,
            max_attempts: 1,
            run_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            updated_at: chrono::Utc::now(),
            unique_key: None,
            reference: None,
            args: json!({}),
            result: None,
            progress: None,
            progress_at: None,
            last_error: None,
            timeout_ms: None,
            worker_id: None,
            lease_expires_at: None,
            cancel_requested_at: None,
            concurrency_key: None,
            key_concurrency: None,
        })
        .unwrap();
        let required: Vec<&str> = s["Job"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for key in job.as_object().unwrap().keys() {
            assert!(
                required.contains(&key.as_str()),
                "Job.{key} is not required"
            );
        }
    }
}
