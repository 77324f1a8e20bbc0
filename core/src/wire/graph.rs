//! The graph's operations on the wire (`graph_*`): requests as serde reads them (unknown
//! keys refused), each converted and passed to one [`crate::Graph`] call.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::requests::moment;
use super::{request, to_json};
use crate::graph::{
    Direction, EntityInput, EntityRef, ExportFormat, GraphDocument, Neighbors, NewEntity,
    NewRelation, RelationQuery, RelationTime, SplitEntity, Triple,
};
use crate::{Memory, Result};

/// `graph_add_entity`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddEntityRequest {
    name: String,
    #[serde(rename = "type")]
    entity_type: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    summary: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// `graph_add_relation`: `object` (an entity: `{"id"}` or `{"name", "type"?}`) or `value`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddRelationRequest {
    subject: EntityRef,
    predicate: String,
    object: Option<EntityRef>,
    value: Option<String>,
    valid_from: Option<String>,
    valid_to: Option<String>,
    confidence: Option<f32>,
    #[serde(default)]
    sources: Vec<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// `graph_entities`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EntitiesRequest {
    #[serde(default)]
    query: String,
    #[serde(rename = "type")]
    entity_type: Option<String>,
    limit: Option<usize>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// `graph_relations`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RelationsRequest {
    entity: Option<String>,
    about: Option<String>,
    predicate: Option<String>,
    source: Option<String>,
    valid_at: Option<String>,
    #[serde(default)]
    include_closed: bool,
    as_of: Option<String>,
    limit: Option<usize>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// `graph_neighbors`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NeighborsRequest {
    entity: String,
    depth: Option<usize>,
    #[serde(default)]
    predicates: Vec<String>,
    #[serde(default)]
    direction: Direction,
    valid_at: Option<String>,
    #[serde(default)]
    include_closed: bool,
    as_of: Option<String>,
}

/// `graph_path`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PathRequest {
    from: String,
    to: String,
    max_depth: Option<usize>,
    valid_at: Option<String>,
    #[serde(default)]
    include_closed: bool,
    as_of: Option<String>,
}

/// `graph_merge_entities`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeEntitiesRequest {
    keep: String,
    absorb: String,
}

/// `graph_rename_entity`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RenameEntityRequest {
    id: String,
    name: String,
}

/// `graph_split_entity`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SplitEntityRequest {
    id: String,
    name: String,
    #[serde(rename = "type")]
    entity_type: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    relations: Vec<String>,
    summary: Option<String>,
}

/// `graph_import`: triples (and entities) into a scope; a JSON export's `content` is such a
/// request, less the scope.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportRequest {
    triples: Vec<Triple>,
    #[serde(default)]
    entities: Vec<EntityInput>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// `graph_export`.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportRequest {
    #[serde(default)]
    format: ExportFormat,
    #[serde(default)]
    include_closed: bool,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

fn time_of(
    valid_at: Option<&str>,
    include_closed: bool,
    as_of: Option<&str>,
) -> Result<RelationTime> {
    Ok(RelationTime {
        valid_at: moment("valid_at", valid_at)?,
        include_closed,
        as_of: moment("as_of", as_of)?,
    })
}

/// Adds (or resolves) an entity: the entity.
pub fn add_entity(memory: &Memory, request: &Value) -> Result<Value> {
    let r: AddEntityRequest = self::request(request, "graph_add_entity request")?;
    let entity = NewEntity {
        name: r.name,
        entity_type: r.entity_type,
        aliases: r.aliases,
        summary: r.summary,
        scope: scope_of!(r),
    };
    to_json(&memory.graph().add_entity(entity)?)
}

/// Adds a relation: `{"relation", "created", "closed"}`.
pub fn add_relation(memory: &Memory, request: &Value) -> Result<Value> {
    let r: AddRelationRequest = self::request(request, "graph_add_relation request")?;
    let relation = NewRelation {
        valid_from: moment("valid_from", r.valid_from.as_deref())?,
        valid_to: moment("valid_to", r.valid_to.as_deref())?,
        subject: r.subject,
        predicate: r.predicate,
        object: r.object,
        value: r.value,
        confidence: r.confidence,
        sources: r.sources,
        scope: scope_of!(r),
    };
    to_json(&memory.graph().add_relation(relation)?)
}

/// An entity with its relations: `{"entity", "relations"}`.
pub fn entity(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.graph().entity(id)?)
}

/// The entities matching a query in a scope.
pub fn entities(memory: &Memory, request: &Value) -> Result<Value> {
    let r: EntitiesRequest = self::request(request, "graph_entities request")?;
    let found =
        memory
            .graph()
            .entities(&r.query, &scope_of!(r), r.entity_type.as_deref(), r.limit)?;
    to_json(&found)
}

/// The relations of a scope.
pub fn relations(memory: &Memory, request: &Value) -> Result<Value> {
    let r: RelationsRequest = self::request(request, "graph_relations request")?;
    let query = RelationQuery {
        time: time_of(r.valid_at.as_deref(), r.include_closed, r.as_of.as_deref())?,
        entity: r.entity,
        about: r.about,
        predicate: r.predicate,
        source: r.source,
        limit: r.limit,
        scope: scope_of!(r),
    };
    to_json(&memory.graph().relations(&query)?)
}

/// The entities around one.
pub fn neighbors(memory: &Memory, request: &Value) -> Result<Value> {
    let r: NeighborsRequest = self::request(request, "graph_neighbors request")?;
    let walk = Neighbors {
        time: time_of(r.valid_at.as_deref(), r.include_closed, r.as_of.as_deref())?,
        entity: r.entity,
        depth: r.depth.unwrap_or(1),
        predicates: r.predicates,
        direction: r.direction,
    };
    to_json(&memory.graph().neighbors(&walk)?)
}

/// A shortest chain of relations between two entities, or `null`.
pub fn path(memory: &Memory, request: &Value) -> Result<Value> {
    let r: PathRequest = self::request(request, "graph_path request")?;
    let time = time_of(r.valid_at.as_deref(), r.include_closed, r.as_of.as_deref())?;
    let found = memory.graph().path(
        &r.from,
        &r.to,
        r.max_depth.unwrap_or(crate::graph::MAX_DEPTH),
        &time,
    )?;
    to_json(&found)
}

/// Merges one entity into another: the one kept, with its relations.
pub fn merge_entities(memory: &Memory, request: &Value) -> Result<Value> {
    let r: MergeEntitiesRequest = self::request(request, "graph_merge_entities request")?;
    to_json(&memory.graph().merge_entities(&r.keep, &r.absorb)?)
}

/// Renames an entity: the entity.
pub fn rename_entity(memory: &Memory, request: &Value) -> Result<Value> {
    let r: RenameEntityRequest = self::request(request, "graph_rename_entity request")?;
    to_json(&memory.graph().rename_entity(&r.id, &r.name)?)
}

/// Splits a new entity off one: `{"entity", "split_off"}`, each with its relations.
pub fn split_entity(memory: &Memory, request: &Value) -> Result<Value> {
    let r: SplitEntityRequest = self::request(request, "graph_split_entity request")?;
    let part = SplitEntity {
        name: r.name,
        entity_type: r.entity_type,
        aliases: r.aliases,
        relations: r.relations,
        summary: r.summary,
    };
    to_json(&memory.graph().split_entity(&r.id, part)?)
}

/// The corrections of an entity, oldest first.
pub fn entity_history(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.graph().entity_history(id)?)
}

/// Imports triples into a scope in one transaction: `{"relations_created",
/// "relations_held", "entities_created", "closed"}`.
pub fn import(memory: &Memory, request: &Value) -> Result<Value> {
    let r: ImportRequest = self::request(request, "graph_import request")?;
    let document = GraphDocument {
        entities: r.entities,
        triples: r.triples,
    };
    to_json(&memory.graph().import(document, &scope_of!(r))?)
}

/// A scope's graph: `{"format", "content"}`, the content a document `graph_import` takes
/// for `json`, text for `graphml` and `dot`.
pub fn export(memory: &Memory, request: &Value) -> Result<Value> {
    let r: ExportRequest = self::request(request, "graph_export request")?;
    to_json(
        &memory
            .graph()
            .export(&scope_of!(r), r.format, r.include_closed)?,
    )
}
