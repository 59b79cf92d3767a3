//! Schemas of the state words, built from [`JobStatus::ALL`], [`DerivedState::ALL`] and the
//! other enumerations' lists, for the views' fields (`#[schemars(schema_with = ...)]`): each
//! enumeration is one named schema; a field that may be null is `nullable` and `allOf` it, so
//! that a generated client accepts null (an inline enumeration marked `nullable` without
//! `null` among its values is what made clients refuse ordinary jobs).

use errand_core::{DerivedState, EventKind, JobStatus};
use errand_scheduler::OverlapPolicy;
use errand_store::{FireKind, ScheduleSource};
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::Value;

/// A named string enumeration of `words` (a schema of the document's components), referred
/// to; or null too when `nullable` (`allOf` the reference, which OpenAPI 3.0 allows beside
/// `nullable`, and which clients read as "this enumeration or null").
pub fn named(
    generator: &mut SchemaGenerator,
    name: &str,
    words: &[&str],
    nullable: bool,
) -> Schema {
    let values: Vec<Value> = words.iter().map(|w| Value::from(*w)).collect();
    generator.definitions_mut().insert(
        name.to_string(),
        serde_json::json!({"type": "string", "enum": values}),
    );
    let path = generator
        .settings()
        .definitions_path
        .trim_start_matches('/');
    let reference = format!("#/{path}/{name}");
    if nullable {
        json_schema!({"nullable": true, "allOf": [{"$ref": reference}]})
    } else {
        json_schema!({"$ref": reference})
    }
}

/// A job's stored status.
pub fn status(g: &mut SchemaGenerator) -> Schema {
    named(
        g,
        "JobStatus",
        &JobStatus::ALL.map(JobStatus::as_str),
        false,
    )
}

/// A job's stored status, or null (a run whose job was purged).
pub fn status_or_null(g: &mut SchemaGenerator) -> Schema {
    named(g, "JobStatus", &JobStatus::ALL.map(JobStatus::as_str), true)
}

/// A job's derived view, or null when it is in none.
pub fn derived_or_null(g: &mut SchemaGenerator) -> Schema {
    named(
        g,
        "DerivedState",
        &DerivedState::ALL.map(DerivedState::as_str),
        true,
    )
}

/// What an event records.
pub fn event_kind(g: &mut SchemaGenerator) -> Schema {
    named(
        g,
        "EventKind",
        &EventKind::ALL.map(EventKind::as_str),
        false,
    )
}

/// A schedule's overlap policy, or null when its stored spec cannot be read.
pub fn overlap_or_null(g: &mut SchemaGenerator) -> Schema {
    named(
        g,
        "OverlapPolicy",
        &OverlapPolicy::ALL.map(OverlapPolicy::as_str),
        true,
    )
}

/// Where a schedule comes from.
pub fn source(g: &mut SchemaGenerator) -> Schema {
    named(
        g,
        "ScheduleSource",
        &ScheduleSource::ALL.map(ScheduleSource::as_str),
        false,
    )
}

/// What a run of a schedule was (a fire that enqueued, or a trigger).
pub fn run_outcome(g: &mut SchemaGenerator) -> Schema {
    let words: Vec<&str> = FireKind::ALL
        .into_iter()
        .filter(|k| *k != FireKind::Skipped)
        .map(FireKind::as_str)
        .collect();
    named(g, "RunOutcome", &words, false)
}

/// Rewrites each "a reference, or null" (`anyOf` a `$ref` and a null-only schema, as the
/// OpenAPI 3.0 settings give for an `Option` of a struct) as `nullable` + `allOf` the
/// reference, the form clients read as "this type or null".
pub fn nullable_references(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let rewrite = match map.get("anyOf").and_then(Value::as_array) {
                Some(items) if items.len() == 2 => {
                    let is_null = |s: &Value| {
                        s.get("nullable") == Some(&Value::Bool(true))
                            && (s.get("enum") == Some(&serde_json::json!([null]))
                                || s.get("const") == Some(&Value::Null))
                    };
                    match (items[0].get("$ref"), is_null(&items[1])) {
                        (Some(_), true) => Some(items[0].clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(reference) = rewrite {
                map.remove("anyOf");
                map.insert("nullable".into(), Value::Bool(true));
                map.insert("allOf".into(), Value::Array(vec![reference]));
            }
            map.values_mut().for_each(nullable_references);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_references),
        _ => {}
    }
}

/// Any JSON value (arguments, results, event data).
pub fn any(_: &mut SchemaGenerator) -> Schema {
    json_schema!({})
}

/// Any JSON value or null.
pub fn any_or_null(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"nullable": true})
}
