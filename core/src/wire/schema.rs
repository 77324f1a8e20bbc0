//! The machine-readable description of the dispatch: the JSON Schema of every operation's
//! request and result, derived from the Rust types that read and write them, so that the
//! Python and TypeScript declarations can be checked against (or generated from) one source.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::dispatch::TABLE;
use super::options::RawOpenOptions;
use super::plugins;
use crate::graph::{
    Entity, EntityDetail, EntityEvent, ImportReport, Neighbor, Relation, RelationAdded, Split,
};
use crate::{
    AddOutcome, CopyReport, FusionWeights, HistoryEntry, ListPage, MemoryEvent, MemoryRecord,
    Message, Pruned, SearchHit, Superseded, Undone,
};

/// Builds the schema of a request or a result: requests are read with the rules of
/// deserialisation (optional fields, `null` allowed), results written with those of
/// serialisation (fields left out when absent).
pub(super) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`.
pub(super) fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A request that holds only the id of what it is about.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only its schema is used: the dispatch takes the id out itself
pub(super) struct IdRequest {
    id: String,
}

/// A request without fields: `null` or `{}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EmptyRequest {}

/// The result of an operation that returns nothing: `null`.
pub(super) fn null(_: &mut SchemaGenerator) -> Schema {
    json!({"type": "null"})
        .try_into()
        .expect("an object is a schema")
}

/// A field the dispatch takes out of a request before the operation reads the rest.
pub(super) enum Taken {
    /// `"id"` (required): what the operation is about.
    Id,
    /// `"vector"`: the caller's embedding.
    Vector,
    /// `"vectors"`: the caller's embeddings, one per memory.
    Vectors,
}

/// `T`'s request schema with the fields the dispatch takes out first.
pub(super) fn with_fields<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    taken: &[Taken],
) -> Schema {
    let mut schema = generator.subschema_for::<T>();
    for field in taken {
        let (name, field_schema, required) = match field {
            Taken::Id => ("id", generator.subschema_for::<String>(), true),
            Taken::Vector => ("vector", generator.subschema_for::<Vec<f32>>(), false),
            Taken::Vectors => ("vectors", generator.subschema_for::<Vec<Vec<f32>>>(), false),
        };
        add_property(&mut schema, name, field_schema, required);
    }
    schema
}

/// Adds property `name` to an object's schema.
pub(super) fn add_property(schema: &mut Schema, name: &str, field: Schema, required: bool) {
    let object = schema.ensure_object();
    if let Value::Object(properties) = object.entry("properties").or_insert_with(|| json!({})) {
        properties.insert(name.to_string(), field.to_value());
    }
    if required {
        if let Value::Array(names) = object.entry("required").or_insert_with(|| json!([])) {
            names.push(json!(name));
        }
    }
}

/// A request schema that also admits `null`, which [`super::call`] reads as `{}`, when `{}`
/// itself is a valid request (no required field).
fn nullable_request(mut schema: Schema) -> Schema {
    let object = schema.ensure_object();
    let empty_is_valid = object
        .get("required")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty_is_valid && object.get("type") == Some(&json!("object")) {
        object.insert("type".into(), json!(["object", "null"]));
    }
    schema
}

/// The JSON Schema (draft 2020-12) of the dispatch ([`super::call`]):
///
/// ```json
/// {"operations": {"add": {"request": {…}, "result": {…}}, …}, "types": {"MemoryRecord": {…}, …}}
/// ```
///
/// `operations` has one entry per name in [`super::OPERATIONS`]: the request object as
/// [`super::call`] reads it (the `"id"` and `"vector"` / `"vectors"` included; `null` where it
/// stands for a valid `{}`; a request that refuses unknown keys says
/// `"additionalProperties": false`) and the result it returns.
/// `types` names the shapes the languages declare (records, hits, history rows, events,
/// pages, plugin infos; the options of [`super::open`] as `OpenOptions`). Every schema is
/// inlined, without `$ref`. In a build without the `plugins` feature the plugin operations
/// accept and return anything (they refuse every call).
pub fn schema() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let mut requests = settings.clone().into_generator();
    let mut results = settings.for_serialize().into_generator();
    let operations: Map<String, Value> = TABLE
        .iter()
        .map(|op| {
            let request = nullable_request((op.request)(&mut requests)).to_value();
            let result = (op.result)(&mut results).to_value();
            (
                op.name.to_string(),
                json!({"request": request, "result": result}),
            )
        })
        .collect();
    let mut types = Map::new();
    let mut add = |name: &str, schema: Schema| {
        types.insert(name.to_string(), schema.to_value());
    };
    add("OpenOptions", requests.subschema_for::<RawOpenOptions>());
    add("FusionWeights", requests.subschema_for::<FusionWeights>());
    add("Message", requests.subschema_for::<Message>());
    add("AddOutcome", results.subschema_for::<AddOutcome>());
    add("MemoryRecord", results.subschema_for::<MemoryRecord>());
    add("SearchHit", results.subschema_for::<SearchHit>());
    add("HistoryEntry", results.subschema_for::<HistoryEntry>());
    add("ListPage", results.subschema_for::<ListPage>());
    add("MemoryEvent", results.subschema_for::<MemoryEvent>());
    add("CopyReport", results.subschema_for::<CopyReport>());
    add("Superseded", results.subschema_for::<Superseded>());
    add("Undone", results.subschema_for::<Undone>());
    add("Pruned", results.subschema_for::<Pruned>());
    add("Entity", results.subschema_for::<Entity>());
    add("Relation", results.subschema_for::<Relation>());
    add("RelationAdded", results.subschema_for::<RelationAdded>());
    add("EntityDetail", results.subschema_for::<EntityDetail>());
    add("Neighbor", results.subschema_for::<Neighbor>());
    add("EntityEvent", results.subschema_for::<EntityEvent>());
    add("Split", results.subschema_for::<Split>());
    add("ImportReport", results.subschema_for::<ImportReport>());
    for (name, schema) in plugins::schema_types(&mut requests, &mut results) {
        add(name, schema);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "agent_mem dispatch: the request and result of every operation",
        "operations": operations,
        "types": types,
    })
}
