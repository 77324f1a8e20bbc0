//! The knowledge graph's data model: entities (people, places, things, …) and relations
//! between them, kept in the same store as the memories they came from. Operations live on
//! [`crate::Memory::graph`]; this module holds the types, their validation and the rules that
//! make names and predicates comparable.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};
use crate::types::Scope;

/// The longest entity name or alias, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// The longest predicate, in bytes (after normalisation).
pub const MAX_PREDICATE_BYTES: usize = 128;
/// The deepest [`Neighbors`] walk and the longest path [`crate::memory::Graph::path`] looks for.
pub const MAX_DEPTH: usize = 3;
/// The predicates that hold one object at a time unless the store is told otherwise
/// (`MemoryBuilder::functional_predicates`): a new object closes the old relation.
pub const DEFAULT_FUNCTIONAL_PREDICATES: &[&str] = &[
    "lives_in",
    "located_in",
    "born_in",
    "married_to",
    "works_at",
];

/// How a store keeps its graph (`MemoryBuilder::graph`, the `graph` open option).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphOptions {
    /// With a chat model, `add_messages` also asks for the entities and relations each fact
    /// states, in the same call as the facts, and stores them with the fact's memory as
    /// their source. Off by default.
    pub extract: bool,
    /// The predicates that hold one object at a time (default
    /// [`DEFAULT_FUNCTIONAL_PREDICATES`]), normalised as predicates are.
    pub functional_predicates: Option<Vec<String>>,
    /// How alike (cosine similarity of the embedded names, 0.5 to 1) a name no entity
    /// answers to must be to an entity of the same scope and type to be taken as another
    /// name of it (default [`DEFAULT_NAME_SIMILARITY`]; `1` only merges names the model
    /// cannot tell apart). Needs the store's embedder; without one, names resolve exactly.
    pub name_similarity: Option<f32>,
}

/// The default [`GraphOptions::name_similarity`]: with the default model, "Acme Corp" and
/// "Acme Corporation" (0.98) or "New York" and "NYC" (0.94) are one entity; "Alice" and
/// "Alice Smith" (0.82), or "Mom" and "mother" (0.90), stay two until an alias says
/// otherwise.
pub const DEFAULT_NAME_SIMILARITY: f32 = 0.93;

impl GraphOptions {
    /// The name similarity in force, checked.
    pub(crate) fn name_similarity(&self) -> Result<f32> {
        match self.name_similarity {
            None => Ok(DEFAULT_NAME_SIMILARITY),
            Some(t) if (0.5..=1.0).contains(&t) => Ok(t),
            Some(t) => Err(Error::invalid(format!(
                "graph.name_similarity must be from 0.5 to 1, got {t}"
            ))),
        }
    }
}

/// An entity: something memories talk about, known by a name and its aliases within one
/// scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entity {
    /// Its id (UUID).
    pub id: String,
    /// Its name, as first given.
    pub name: String,
    /// Its type: `person`, `place`, `organisation`, `thing`, `event`, `concept`, or a
    /// caller's own lower-case word.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// A short description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The scope it belongs to (entities are never shared across scopes).
    #[serde(flatten)]
    pub scope: Scope,
    /// When it was added.
    #[serde(with = "crate::types::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    /// When its names, type or summary last changed.
    #[serde(with = "crate::types::rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
}

/// An entity to add (see [`crate::memory::Graph::add_entity`]). An entity of the same
/// scope that already answers to the name or one of the aliases is the same entity: it
/// gains the new aliases (and the summary, if it had none) instead of a twin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEntity {
    /// Its name (required).
    pub name: String,
    /// Its type (default `thing`).
    pub entity_type: Option<String>,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// A short description.
    pub summary: Option<String>,
    /// Its scope.
    pub scope: Scope,
}

impl NewEntity {
    /// An entity of type `thing` with this name, global until a scope is given.
    pub fn new(name: impl Into<String>) -> NewEntity {
        NewEntity {
            name: name.into(),
            ..NewEntity::default()
        }
    }

    /// Sets the type.
    pub fn entity_type(mut self, entity_type: impl Into<String>) -> NewEntity {
        self.entity_type = Some(entity_type.into());
        self
    }

    /// Adds an alias.
    pub fn alias(mut self, alias: impl Into<String>) -> NewEntity {
        self.aliases.push(alias.into());
        self
    }

    /// Sets the summary.
    pub fn summary(mut self, summary: impl Into<String>) -> NewEntity {
        self.summary = Some(summary.into());
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> NewEntity {
        self.scope = scope;
        self
    }
}

/// A relation: `subject —predicate→ object`, where the object is an entity or a literal
/// value, with the time it held in the world and the memories it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Relation {
    /// Its id (UUID).
    pub id: String,
    /// The subject entity's id.
    pub subject: String,
    /// The subject's name.
    pub subject_name: String,
    /// The predicate, in lower snake case (`lives_in`).
    pub predicate: String,
    /// The object entity's id, when the object is an entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The object entity's name, or the literal value.
    pub object_name: String,
    /// Whether the object is a literal value rather than an entity.
    pub literal: bool,
    /// Since when it held, if known.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when it held; `None` while it still holds.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_to: Option<DateTime<Utc>>,
    /// The relation that replaced it on a functional predicate, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// How sure its source was, from 0 to 1.
    pub confidence: f32,
    /// The memories it came from (empty when added directly without any).
    pub sources: Vec<String>,
    /// Its scope (its entities').
    #[serde(flatten)]
    pub scope: Scope,
    /// When it was added.
    #[serde(with = "crate::types::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
}

/// An end of a relation to add: an entity named (found or created in the relation's
/// scope) or given by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum EntityRef {
    /// An existing entity, by id.
    Id {
        /// The entity's id.
        id: String,
    },
    /// An entity by name: the one of the scope answering to it, or a new one.
    Name {
        /// The name.
        name: String,
        /// The type for a new entity (default `thing`).
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        entity_type: Option<String>,
    },
}

impl EntityRef {
    /// An entity by name (found or created).
    pub fn name(name: impl Into<String>) -> EntityRef {
        EntityRef::Name {
            name: name.into(),
            entity_type: None,
        }
    }

    /// An entity by name and type (the type is used when the entity is new).
    pub fn typed(name: impl Into<String>, entity_type: impl Into<String>) -> EntityRef {
        EntityRef::Name {
            name: name.into(),
            entity_type: Some(entity_type.into()),
        }
    }

    /// An existing entity by id.
    pub fn id(id: impl Into<String>) -> EntityRef {
        EntityRef::Id { id: id.into() }
    }
}

/// A relation to add (see [`crate::memory::Graph::add_relation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRelation {
    /// The subject.
    pub subject: EntityRef,
    /// The predicate, normalised to lower snake case (`"Lives in"` → `lives_in`).
    pub predicate: String,
    /// The object, when it is an entity (exactly one of `object` and `value`).
    pub object: Option<EntityRef>,
    /// The object, when it is a literal value.
    pub value: Option<String>,
    /// The scope of the relation and of the entities it names.
    pub scope: Scope,
    /// Since when it holds (default: unknown).
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when it holds (default: still holds).
    pub valid_to: Option<DateTime<Utc>>,
    /// How sure the source is, from 0 to 1 (default 1).
    pub confidence: Option<f32>,
    /// The memories it came from (each must exist, in the same scope).
    pub sources: Vec<String>,
}

impl NewRelation {
    /// `subject —predicate→ object`, both entities by name, global until a scope is given.
    pub fn new(
        subject: impl Into<String>,
        predicate: impl Into<String>,
        object: impl Into<String>,
    ) -> NewRelation {
        NewRelation {
            subject: EntityRef::name(subject),
            predicate: predicate.into(),
            object: Some(EntityRef::name(object)),
            value: None,
            scope: Scope::default(),
            valid_from: None,
            valid_to: None,
            confidence: None,
            sources: Vec::new(),
        }
    }

    /// `subject —predicate→ "value"`, with a literal object.
    pub fn literal(
        subject: impl Into<String>,
        predicate: impl Into<String>,
        value: impl Into<String>,
    ) -> NewRelation {
        NewRelation {
            object: None,
            value: Some(value.into()),
            ..NewRelation::new(subject, predicate, "")
        }
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> NewRelation {
        self.scope = scope;
        self
    }

    /// Adds a source memory.
    pub fn source(mut self, memory_id: impl Into<String>) -> NewRelation {
        self.sources.push(memory_id.into());
        self
    }

    /// Sets since when it holds.
    pub fn valid_from(mut self, at: DateTime<Utc>) -> NewRelation {
        self.valid_from = Some(at);
        self
    }
}

/// What [`crate::memory::Graph::add_relation`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RelationAdded {
    /// The relation: the new one, or the same one already held (its sources extended).
    pub relation: Relation,
    /// False when the same relation already held.
    pub created: bool,
    /// The relations it closed (a functional predicate's earlier objects).
    pub closed: Vec<String>,
}

/// The most entities, and the most triples, one import takes.
pub const MAX_IMPORT: usize = 10_000;

/// An entity as a request gives it, in a scope the call gives (the memory's for `add`, the
/// import's): `graph_add_entity`'s shape without the scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityInput {
    /// Its name (required).
    pub name: String,
    /// Its type (default `thing`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// Other names it answers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A short description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl EntityInput {
    /// The entity to add in `scope`.
    pub fn in_scope(self, scope: &Scope) -> NewEntity {
        NewEntity {
            name: self.name,
            entity_type: self.entity_type,
            aliases: self.aliases,
            summary: self.summary,
            scope: scope.clone(),
        }
    }
}

/// A relation as a request gives it, in a scope the call gives (the memory's for `add`):
/// `graph_add_relation`'s shape without the scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationInput {
    /// The subject: `{"id"}` or `{"name", "type"?}`.
    pub subject: EntityRef,
    /// The predicate.
    pub predicate: String,
    /// The object entity (exactly one of `object` and `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<EntityRef>,
    /// The object as a literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Since when it holds.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when it holds.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_to: Option<DateTime<Utc>>,
    /// How sure the source is, 0 to 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Memories it came from, beside the one it comes with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl RelationInput {
    /// The relation to add in `scope`.
    pub fn in_scope(self, scope: &Scope) -> NewRelation {
        NewRelation {
            subject: self.subject,
            predicate: self.predicate,
            object: self.object,
            value: self.value,
            scope: scope.clone(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            confidence: self.confidence,
            sources: self.sources,
        }
    }
}

/// An end of a [`Triple`]: a name (the entity of the import's scope answering to it, or a
/// new one) or an entity reference (`{"id"}` or `{"name", "type"?}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TripleEnd {
    /// An entity by name.
    Name(String),
    /// An entity by reference.
    Entity(EntityRef),
}

impl From<&str> for TripleEnd {
    fn from(name: &str) -> TripleEnd {
        TripleEnd::Name(name.to_string())
    }
}

/// A relation to import (see [`crate::memory::Graph::import_triples`]):
/// `subject —predicate→ object` (or a literal `value`), ends by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Triple {
    /// The subject.
    pub subject: TripleEnd,
    /// The subject's type, when it is new and named (default `thing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    /// The predicate.
    pub predicate: String,
    /// The object entity (exactly one of `object` and `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<TripleEnd>,
    /// The object's type, when it is new and named (default `thing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    /// The object as a literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Since when it holds.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when it holds (an ended relation closes nothing).
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub valid_to: Option<DateTime<Utc>>,
    /// How sure the source is, 0 to 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// The memories it came from (each must exist, in the import's scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl Triple {
    /// `subject —predicate→ object`, both entities by name.
    pub fn new(subject: &str, predicate: &str, object: &str) -> Triple {
        Triple {
            subject: subject.into(),
            subject_type: None,
            predicate: predicate.to_string(),
            object: Some(object.into()),
            object_type: None,
            value: None,
            valid_from: None,
            valid_to: None,
            confidence: None,
            sources: Vec::new(),
        }
    }

    /// `subject —predicate→ "value"`, with a literal object.
    pub fn literal(subject: &str, predicate: &str, value: &str) -> Triple {
        Triple {
            object: None,
            value: Some(value.to_string()),
            ..Triple::new(subject, predicate, "")
        }
    }

    /// The relation to add in `scope`. A type goes with an end given by name only.
    pub(crate) fn into_relation(self, scope: &Scope) -> Result<NewRelation> {
        fn end(end: TripleEnd, entity_type: Option<String>, field: &str) -> Result<EntityRef> {
            match (end, entity_type) {
                (TripleEnd::Name(name), entity_type) => Ok(EntityRef::Name { name, entity_type }),
                (TripleEnd::Entity(EntityRef::Name { name, entity_type }), other) => {
                    Ok(EntityRef::Name {
                        name,
                        entity_type: entity_type.or(other),
                    })
                }
                (TripleEnd::Entity(r @ EntityRef::Id { .. }), None) => Ok(r),
                (TripleEnd::Entity(EntityRef::Id { .. }), Some(_)) => Err(Error::invalid(format!(
                    "{field}_type goes with a {field} given by name, not by id"
                ))),
            }
        }
        let subject = end(self.subject, self.subject_type, "subject")?;
        let object = match (self.object, self.object_type) {
            (Some(o), t) => Some(end(o, t, "object")?),
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "object_type goes with an object entity, not a value",
                ))
            }
            (None, None) => None,
        };
        Ok(NewRelation {
            subject,
            predicate: self.predicate,
            object,
            value: self.value,
            scope: scope.clone(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            confidence: self.confidence,
            sources: self.sources,
        })
    }
}

/// A scope's graph as a document: its entities (names, types, aliases, summaries) and its
/// relations as triples. What a JSON export writes, and what an import takes back
/// ([`crate::memory::Graph::import`], the `graph_import` operation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphDocument {
    /// Entities to resolve or create first (with their aliases and summaries).
    #[serde(default)]
    pub entities: Vec<EntityInput>,
    /// Relations, oldest first.
    #[serde(default)]
    pub triples: Vec<Triple>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportReport {
    /// Relations added.
    pub relations_created: usize,
    /// Relations the graph already held (they gained the triples' sources).
    pub relations_held: usize,
    /// Entities created (others were found by name).
    pub entities_created: usize,
    /// The ids of the relations closed by a functional predicate's new object.
    pub closed: Vec<String>,
}

/// The formats a scope's graph exports to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A [`GraphDocument`]: what an import takes back.
    #[default]
    Json,
    /// GraphML (XML): entities as nodes, relations as edges, literal values as nodes of
    /// kind `value`.
    Graphml,
    /// Graphviz DOT: entities as boxes, literal values as notes, relations as labelled
    /// edges.
    Dot,
}

/// A scope's graph exported: `{"format", "content"}`, the content a [`GraphDocument`] for
/// JSON and text for GraphML and DOT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "format", content = "content", rename_all = "lowercase")]
pub enum GraphExport {
    /// The document.
    Json(GraphDocument),
    /// GraphML text.
    Graphml(String),
    /// DOT text.
    Dot(String),
}

/// Which way a walk follows relations from an entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Relations where the entity is the subject.
    Out,
    /// Relations where the entity is the object.
    In,
    /// Both.
    #[default]
    Both,
}

/// Which relations a read sees: by default those holding now (open or not yet ended);
/// `valid_at` asks what held at a moment; `include_closed` shows every one; `as_of` reads
/// the graph as it was recorded at a past moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelationTime {
    /// The relations that held at this moment (their valid interval contains it).
    pub valid_at: Option<DateTime<Utc>>,
    /// Every relation, ended or not.
    pub include_closed: bool,
    /// Read the graph as it was recorded at this moment (transaction time): relations
    /// added later are left out, relations removed since (their memories deleted) are
    /// back, a closing recorded later is undone, and "holding now" means holding then.
    /// Merges, renames and splits made since are not undone.
    pub as_of: Option<DateTime<Utc>>,
}

impl RelationTime {
    /// Whether a relation valid over `[from, to)` is seen, judged at `now` by default.
    pub(crate) fn admits(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        if self.include_closed && self.valid_at.is_none() {
            return true;
        }
        let at = self.valid_at.unwrap_or(now);
        from.is_none_or(|f| f <= at) && to.is_none_or(|t| at < t)
    }
}

/// A walk from an entity (see [`crate::memory::Graph::neighbors`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// The entity to start from.
    pub entity: String,
    /// How many relations away to go, 1 to [`MAX_DEPTH`] (default 1).
    pub depth: usize,
    /// Only these predicates (default: all).
    pub predicates: Vec<String>,
    /// Which way to follow relations (default both).
    pub direction: Direction,
    /// Which relations count.
    pub time: RelationTime,
}

impl Neighbors {
    /// The entities one relation away from `entity`, both ways.
    pub fn of(entity: impl Into<String>) -> Neighbors {
        Neighbors {
            entity: entity.into(),
            depth: 1,
            predicates: Vec::new(),
            direction: Direction::Both,
            time: RelationTime::default(),
        }
    }

    /// Sets the depth.
    pub fn depth(mut self, depth: usize) -> Neighbors {
        self.depth = depth;
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: Direction) -> Neighbors {
        self.direction = direction;
        self
    }
}

/// An entity reached by a walk, with how far and through which relation it was first
/// reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Neighbor {
    /// The entity.
    pub entity: Entity,
    /// Relations away from the start (1 for a direct neighbour).
    pub depth: usize,
    /// The relation that reached it.
    pub via: Relation,
}

/// Which relations [`crate::memory::Graph::relations`] lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelationQuery {
    /// The scope (exact, as entities are).
    pub scope: Scope,
    /// Only relations touching this entity (either end).
    pub entity: Option<String>,
    /// Only relations touching an entity this text names (a question, say), by name or
    /// alias in the query's scope, as the graph leg of search reads a query.
    pub about: Option<String>,
    /// Only this predicate.
    pub predicate: Option<String>,
    /// Only relations that came from this memory.
    pub source: Option<String>,
    /// Which relations count.
    pub time: RelationTime,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

/// An entity with its relations (see [`crate::memory::Graph::entity`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntityDetail {
    /// The entity.
    pub entity: Entity,
    /// Every relation touching it, ended ones included, oldest first.
    pub relations: Vec<Relation>,
}

/// How an entity was corrected (see [`EntityEvent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityEventKind {
    /// It absorbed another entity ([`crate::memory::Graph::merge_entities`]).
    Merged,
    /// It was absorbed into another entity and is gone.
    MergedInto,
    /// It was renamed ([`crate::memory::Graph::rename_entity`]).
    Renamed,
    /// Some of its names and relations went to a new entity
    /// ([`crate::memory::Graph::split_entity`]).
    Split,
    /// It was made of names and relations split off another entity.
    SplitFrom,
}

/// A correction of an entity, kept in the entity history (see
/// [`crate::memory::Graph::entity_history`]), also for an entity merged away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntityEvent {
    /// The entity corrected.
    pub entity_id: String,
    /// What was done.
    pub event: EntityEventKind,
    /// What it was done with: `merged`: the absorbed entity as it was (`id`, `name`,
    /// `type`, `aliases`, `summary`), `relations` (ids moved to this one) and `dropped` (ids of
    /// relations between the two, removed); `merged_into`:
    /// `into` (the id that absorbed it); `renamed`: `from` and `to`; `split`: `into` (the
    /// new entity's id), `names` and `relations` given to it; `split_from`: `from`.
    pub detail: serde_json::Value,
    /// When.
    #[serde(with = "crate::types::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
}

/// Part of an entity to split off into a new entity of the same scope (see
/// [`crate::memory::Graph::split_entity`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitEntity {
    /// The new entity's name: a new name in the scope, or one of the aliases moved.
    pub name: String,
    /// Its type (default: the original's).
    pub entity_type: Option<String>,
    /// Aliases of the original that name the new entity instead (moved to it).
    pub aliases: Vec<String>,
    /// Ids of relations of the original that are about the new entity: the end that was
    /// the original becomes the new entity.
    pub relations: Vec<String>,
    /// Its summary.
    pub summary: Option<String>,
}

/// What [`crate::memory::Graph::split_entity`] did: the original and the new entity, each
/// with its relations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Split {
    /// The entity split, as it is now.
    pub entity: EntityDetail,
    /// The new entity.
    pub split_off: EntityDetail,
}

/// A name as compared for resolution: Unicode-compatible forms unified, diacritics
/// dropped, lower case, runs of whitespace as one space, trimmed ("  Zoë  SMITH" → "zoe smith").
pub(crate) fn fold_name(name: &str) -> String {
    let stripped: String = name
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect();
    stripped
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A name, checked: non-empty once folded, at most [`MAX_NAME_BYTES`]; trimmed.
pub(crate) fn check_name(name: &str, field: &str) -> Result<String> {
    let trimmed = name.trim();
    if fold_name(trimmed).is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if trimmed.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(format!(
            "{field} is {} bytes; at most {MAX_NAME_BYTES}",
            trimmed.len()
        )));
    }
    Ok(trimmed.to_string())
}

/// A predicate in lower snake case: words of letters and digits joined by `_` ("Lives in"
/// and "livesIn" both become `lives_in`). Refused when nothing of it is a word, or too long.
pub(crate) fn normalise_predicate(predicate: &str) -> Result<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in predicate.chars() {
        if c.is_alphanumeric() {
            // camelCase: a capital after a lower-case letter starts a word.
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase();
            word.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let normal = words.join("_");
    if normal.is_empty() {
        return Err(Error::invalid(format!(
            "predicate {predicate:?} has no letters or digits: use a name like \"lives_in\""
        )));
    }
    if normal.len() > MAX_PREDICATE_BYTES {
        return Err(Error::invalid(format!(
            "predicate is {} bytes; at most {MAX_PREDICATE_BYTES}",
            normal.len()
        )));
    }
    Ok(normal)
}

/// An entity type: one lower-case word or snake-case name (default `thing`).
pub(crate) fn check_type(entity_type: Option<&str>) -> Result<String> {
    match entity_type {
        None => Ok("thing".to_string()),
        Some(t) => normalise_predicate(t).map_err(|_| {
            Error::invalid(format!(
                "type {t:?} is not a name: use person, place, organisation, thing, event, \
                 concept or a word of your own"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_space_and_diacritics() {
        assert_eq!(fold_name("  Zoë   SMITH "), "zoe smith");
        assert_eq!(fold_name("Ａｌｉｃｅ"), "alice");
        assert_eq!(fold_name("北京"), "北京");
        assert!(check_name("  \t", "name").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_BYTES + 1), "name").is_err());
    }

    #[test]
    fn predicates_become_lower_snake_case() {
        assert_eq!(normalise_predicate("Lives in").unwrap(), "lives_in");
        assert_eq!(normalise_predicate("livesIn").unwrap(), "lives_in");
        assert_eq!(normalise_predicate("WORKS-AT").unwrap(), "works_at");
        assert_eq!(normalise_predicate("allergic_to").unwrap(), "allergic_to");
        assert!(normalise_predicate(" -> ").is_err());
        assert_eq!(check_type(Some("Person")).unwrap(), "person");
        assert_eq!(check_type(None).unwrap(), "thing");
    }
}
