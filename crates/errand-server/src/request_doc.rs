//! The request side of the OpenAPI document, read off each handler's own signature.
//!
//! Every extractor a handler takes says how it appears in a request ([`Documented`]): a body
//! ([`Body<T>`]: the schema generated from `T`, the type the handler deserialises), query
//! parameters ([`Query<T>`]: one per field of `T`), a path parameter ([`IdParam`],
//! [`QueueName`], [`ScheduleName`]), or nothing (state, the caller). A route's handler type
//! names its extractors (axum's `Handler<(M, T1, ..., Tn), S>`), so [`HandlerArgs`] collects
//! them, and the route table cannot describe a request other than the one its handler reads.

use crate::extract::{Body, IdParam, Query, QueueName, ScheduleName};
use axum::extract::State;
use axum::Extension;
use errand_core::JobId;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

/// What one operation reads from a request.
#[derive(Debug, Default)]
pub struct RequestDoc {
    /// Path parameters: name and schema.
    pub path: Vec<(&'static str, Value)>,
    /// Query parameters, as OpenAPI parameter objects.
    pub query: Vec<Value>,
    /// The body: the name of its type's schema among the components.
    pub body: Option<String>,
}

/// How an extractor appears in a request.
pub trait Documented {
    fn document(doc: &mut RequestDoc, generator: &mut SchemaGenerator);
}

impl<S> Documented for State<S> {
    fn document(_: &mut RequestDoc, _: &mut SchemaGenerator) {}
}

impl<T> Documented for Extension<T> {
    fn document(_: &mut RequestDoc, _: &mut SchemaGenerator) {}
}

impl<T: JsonSchema> Documented for Body<T> {
    fn document(doc: &mut RequestDoc, generator: &mut SchemaGenerator) {
        let reference = generator.subschema_for::<T>();
        let name = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_else(|| panic!("the body {} is not a named schema", T::schema_name()));
        doc.body = Some(name.to_string());
    }
}

impl<T: JsonSchema> Documented for Query<T> {
    fn document(doc: &mut RequestDoc, generator: &mut SchemaGenerator) {
        let schema = T::json_schema(generator);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("the query {} is not an object", T::schema_name()));
        for (name, property) in properties {
            let mut property = property.clone();
            let map = property.as_object_mut().expect("a property's schema");
            let description = map.remove("description").unwrap_or_default();
            // A query parameter is absent or has a value; it is never null.
            map.remove("nullable");
            doc.query.push(json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "description": description,
                "schema": property,
            }));
        }
    }
}

impl Documented for IdParam {
    fn document(doc: &mut RequestDoc, _: &mut SchemaGenerator) {
        doc.path.push((
            "id",
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": JobId::MAX,
                   "description": "a job id: a positive integer, decimal digits only"}),
        ));
    }
}

impl Documented for QueueName {
    fn document(doc: &mut RequestDoc, generator: &mut SchemaGenerator) {
        let schema = errand_core::schema::name(generator);
        doc.path.push(("name", schema.to_value()));
    }
}

impl Documented for ScheduleName {
    fn document(doc: &mut RequestDoc, generator: &mut SchemaGenerator) {
        let schema = errand_scheduler::schema::name(generator);
        doc.path.push(("name", schema.to_value()));
    }
}

/// The extractors of a handler, as axum's `Handler<T, S>` names them: `((),)` for none,
/// `(M, T1, ..., Tn)` otherwise (`M` marks how the last one reads the request).
pub trait HandlerArgs {
    fn document(generator: &mut SchemaGenerator) -> RequestDoc;
}

impl HandlerArgs for ((),) {
    fn document(_: &mut SchemaGenerator) -> RequestDoc {
        RequestDoc::default()
    }
}

macro_rules! handler_args {
    ($($t:ident),+) => {
        impl<M, $($t: Documented),+> HandlerArgs for (M, $($t,)+) {
            fn document(generator: &mut SchemaGenerator) -> RequestDoc {
                let mut doc = RequestDoc::default();
                $($t::document(&mut doc, generator);)+
                doc
            }
        }
    };
}

handler_args!(T1);
handler_args!(T1, T2);
handler_args!(T1, T2, T3);
handler_args!(T1, T2, T3, T4);
handler_args!(T1, T2, T3, T4, T5);
