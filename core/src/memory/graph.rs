//! The knowledge graph's operations: entities resolved by name within a scope, relations
//! with provenance and valid time (a functional predicate's new object closes the old
//! relation, which stays readable), and walks: neighbours and shortest paths.

use std::collections::{HashMap, HashSet};

use chrono::{SubsecRound, Utc};

use super::embedding::EmbedderSlot;
use super::graph_as_of::AsOf;
use super::{check_id, Memory};
use crate::error::{Error, Result};
use crate::graph::{
    check_name, check_type, fold_name, normalise_predicate, Direction, Entity, EntityDetail,
    EntityEvent, EntityEventKind, EntityRef, Neighbor, Neighbors, NewEntity, NewRelation, Relation,
    RelationAdded, RelationQuery, RelationTime, Split, SplitEntity, MAX_DEPTH,
};
use crate::index::vector::cosine;
use crate::search::graph::{named_entities, query_names};
use crate::store::{self, GraphRead, GraphWrite, RelationRow, StoreTx, StoredRelation};
use crate::types::{parse_time, validate_valid_time, NewMemory, Scope};

/// The most entities or relations one read returns unless asked for fewer.
const DEFAULT_LIMIT: usize = 100;
/// The most one read returns.
const MAX_LIMIT: usize = 10_000;
/// The most entities a name is compared with by meaning (the newest of its scope and type).
const MEANING_CANDIDATES: usize = 10_000;

/// How a name no entity answers to may still resolve: its embedding, and how alike an
/// entity's name embedding must be (computed before the write: the model never runs under
/// the write lock).
#[derive(Debug, Clone)]
pub(crate) struct Meaning {
    vector: Vec<f32>,
    threshold: f32,
}

/// The meanings of names by folded name (see [`Memory::name_meanings`]).
pub(crate) type Meanings = HashMap<String, Meaning>;

/// The knowledge graph of a [`Memory`]: `memory.graph()`.
#[derive(Debug, Clone, Copy)]
pub struct Graph<'a> {
    pub(super) memory: &'a Memory,
}

impl Memory {
    /// The knowledge graph kept in this store: entities and the relations between them.
    pub fn graph(&self) -> Graph<'_> {
        Graph { memory: self }
    }
}

/// An entity to add, checked: its name, folded names and type.
pub(super) struct CheckedEntity {
    name: String,
    names: Vec<(String, String)>,
    entity_type: String,
    summary: Option<String>,
    scope: Scope,
    /// The main name's meaning, when no entity of the scope answered to a name before.
    meaning: Option<Meaning>,
}

impl CheckedEntity {
    pub(super) fn of(entity: &NewEntity) -> Result<CheckedEntity> {
        entity.scope.validate()?;
        let name = check_name(&entity.name, "name")?;
        let mut names = vec![(name.clone(), fold_name(&name))];
        for alias in &entity.aliases {
            let alias = check_name(alias, "alias")?;
            let folded = fold_name(&alias);
            if !names.iter().any(|(_, f)| *f == folded) {
                names.push((alias, folded));
            }
        }
        let summary = entity
            .summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if summary
            .as_ref()
            .is_some_and(|s| s.len() > crate::MAX_CONTENT_BYTES)
        {
            return Err(Error::invalid("summary is too long"));
        }
        Ok(CheckedEntity {
            name,
            names,
            entity_type: check_type(entity.entity_type.as_deref())?,
            summary,
            scope: entity.scope.clone(),
            meaning: None,
        })
    }
}

/// Finds the entity answering to one of `entity`'s names in its scope, or stores a new
/// one (counted in `created`); either way it then answers to every name given. Two names
/// of two different entities are refused (merge them first).
pub(super) fn resolve_or_add(
    g: &mut dyn GraphWrite,
    entity: &CheckedEntity,
    now: chrono::DateTime<Utc>,
    created: &mut usize,
) -> Result<(i64, Entity)> {
    let mut found: Option<(i64, Entity)> = None;
    for (name, folded) in &entity.names {
        if let Some((key, e)) = g.entity_named(&entity.scope, folded)? {
            match &found {
                Some((k, other)) if *k != key => {
                    return Err(Error::invalid(format!(
                        "{name:?} names entity {:?} ({}) but {:?} names {:?} ({}): \
                         one entity cannot be both",
                        e.name, e.id, entity.name, other.name, other.id
                    )))
                }
                _ => found = Some((key, e)),
            }
        }
    }
    if found.is_none() {
        if let Some(meaning) = &entity.meaning {
            found = closest_in_meaning(g, entity, meaning)?;
        }
    }
    let key = match &found {
        Some((key, existing)) => {
            if existing.summary.is_none() {
                if let Some(summary) = &entity.summary {
                    g.set_summary(*key, summary, now)?;
                }
            }
            *key
        }
        None => {
            *created += 1;
            let key = g.insert_entity(&Entity {
                id: uuid::Uuid::new_v4().to_string(),
                name: entity.name.clone(),
                entity_type: entity.entity_type.clone(),
                aliases: Vec::new(),
                summary: entity.summary.clone(),
                scope: entity.scope.clone(),
                created_at: now,
                updated_at: now,
            })?;
            if let Some(meaning) = &entity.meaning {
                g.set_embedding(key, &meaning.vector)?;
            }
            key
        }
    };
    for (name, folded) in &entity.names {
        g.add_name(key, &entity.scope, name, folded)?;
    }
    let stored = g
        .entity_named(&entity.scope, &entity.names[0].1)?
        .ok_or_else(|| Error::internal("an entity stored a moment ago is gone"))?;
    Ok(stored)
}

/// The entity of `entity`'s scope and type whose name means what its name means: the most
/// alike at or above the threshold.
fn closest_in_meaning(
    g: &mut dyn GraphWrite,
    entity: &CheckedEntity,
    meaning: &Meaning,
) -> Result<Option<(i64, Entity)>> {
    let mut best: Option<(i64, f32)> = None;
    for (key, vector) in
        g.entity_embeddings(&entity.scope, &entity.entity_type, MEANING_CANDIDATES)?
    {
        if vector.len() != meaning.vector.len() {
            continue;
        }
        let similarity = cosine(&vector, &meaning.vector);
        if similarity >= meaning.threshold && best.is_none_or(|(_, b)| similarity > b) {
            best = Some((key, similarity));
        }
    }
    let Some((key, _)) = best else {
        return Ok(None);
    };
    Ok(g.entities_by_key(&[key])?.remove(&key).map(|e| (key, e)))
}

/// The entity an end of a relation names, in `scope`: by id (it must be of that scope) or
/// by name (found or created).
fn end_of(
    g: &mut dyn GraphWrite,
    end: &EntityRef,
    scope: &Scope,
    field: &str,
    meanings: &Meanings,
    now: chrono::DateTime<Utc>,
    created: &mut usize,
) -> Result<(i64, Entity)> {
    match end {
        EntityRef::Id { id } => {
            check_id(id)?;
            let (key, entity) = g
                .entity(id)?
                .ok_or_else(|| Error::not_found(format!("{field}: no entity with id {id:?}")))?;
            if entity.scope != *scope {
                return Err(Error::invalid(format!(
                    "{field}: entity {id:?} belongs to another scope; a relation joins \
                     entities of its own scope only"
                )));
            }
            Ok((key, entity))
        }
        EntityRef::Name { name, entity_type } => {
            let new = NewEntity {
                name: name.clone(),
                entity_type: entity_type.clone(),
                scope: scope.clone(),
                ..NewEntity::default()
            };
            let mut checked = CheckedEntity::of(&new)
                .map_err(|e| Error::invalid(format!("{field}: {}", e.message())))?;
            checked.meaning = meanings.get(&checked.names[0].1).cloned();
            resolve_or_add(g, &checked, now, created)
        }
    }
}

/// Whether two relations say the same thing: same subject, predicate and object.
fn same_claim(a: &StoredRelation, object: Option<i64>, value: Option<&str>) -> bool {
    match (a.object, object) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.relation.literal && Some(a.relation.object_name.as_str()) == value,
        _ => false,
    }
}

/// A relation to add, checked: predicate normalised, value, times and confidence checked.
pub(crate) struct CheckedRelation {
    subject: EntityRef,
    pub(crate) predicate: String,
    object: Option<EntityRef>,
    value: Option<String>,
    scope: Scope,
    valid_from: Option<chrono::DateTime<Utc>>,
    valid_to: Option<chrono::DateTime<Utc>>,
    confidence: f32,
    sources: Vec<String>,
    /// The meanings of its ends' names (see [`Memory::give_meanings`]).
    meanings: Meanings,
}

impl CheckedRelation {
    pub(crate) fn of(relation: NewRelation) -> Result<CheckedRelation> {
        relation.scope.validate()?;
        let predicate = normalise_predicate(&relation.predicate)?;
        validate_valid_time(relation.valid_from, relation.valid_to)?;
        let value = match (&relation.object, &relation.value) {
            (Some(_), None) => None,
            (None, Some(v)) => Some(check_name(v, "value")?),
            _ => {
                return Err(Error::invalid(
                    "a relation has an object entity or a literal value: give exactly one",
                ))
            }
        };
        let confidence = relation.confidence.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Error::invalid(format!(
                "confidence must be between 0 and 1, got {confidence}"
            )));
        }
        for source in &relation.sources {
            check_id(source)?;
        }
        // The ends are checked where they are resolved; names early, so that a bad one is
        // refused before anything is written.
        for (end, field) in [
            (Some(&relation.subject), "subject"),
            (relation.object.as_ref(), "object"),
        ] {
            match end {
                Some(EntityRef::Name { name, entity_type }) => {
                    check_name(name, field)?;
                    check_type(entity_type.as_deref())?;
                }
                Some(EntityRef::Id { id }) => check_id(id)?,
                None => {}
            }
        }
        Ok(CheckedRelation {
            subject: relation.subject,
            predicate,
            object: relation.object,
            value,
            scope: relation.scope,
            // Times are kept to the microsecond: what is returned is what is stored.
            valid_from: relation.valid_from.map(|t| t.trunc_subsecs(6)),
            valid_to: relation.valid_to.map(|t| t.trunc_subsecs(6)),
            confidence,
            sources: relation.sources,
            meanings: Meanings::new(),
        })
    }

    /// The names its ends are given by (not ids), with their folded forms.
    fn end_names(&self) -> Vec<(String, String)> {
        [Some(&self.subject), self.object.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|end| match end {
                EntityRef::Name { name, .. } => Some((name.clone(), fold_name(name))),
                EntityRef::Id { .. } => None,
            })
            .collect()
    }
}

impl CheckedRelation {
    /// The same relation, sourced from these memories.
    pub(crate) fn sourced(&self, sources: Vec<String>) -> CheckedRelation {
        CheckedRelation {
            subject: self.subject.clone(),
            predicate: self.predicate.clone(),
            object: self.object.clone(),
            value: self.value.clone(),
            scope: self.scope.clone(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            confidence: self.confidence,
            sources,
            meanings: self.meanings.clone(),
        }
    }
}

/// Adds a checked relation in a write transaction (see [`Graph::add_relation`]); a
/// functional predicate closes the subject's other current objects.
pub(crate) fn add_relation_in(
    tx: &mut dyn StoreTx,
    relation: &CheckedRelation,
    functional: bool,
) -> Result<RelationAdded> {
    add_relation_counted(tx, relation, functional, &mut 0)
}

/// [`add_relation_in`], counting the entities it creates in `created`. A relation that
/// has ended (`valid_to` given) is the same as one of the same claim over the same valid
/// time, and closes nothing: it does not replace what holds now.
pub(super) fn add_relation_counted(
    tx: &mut dyn StoreTx,
    relation: &CheckedRelation,
    functional: bool,
    created: &mut usize,
) -> Result<RelationAdded> {
    for source in &relation.sources {
        let (_, memory) = tx
            .get(source)?
            .ok_or_else(|| Error::not_found(format!("sources: no memory with id {source:?}")))?;
        if memory.scope != relation.scope {
            return Err(Error::invalid(format!(
                "sources: memory {source:?} belongs to another scope than the relation"
            )));
        }
    }
    let now = tx.now()?;
    let g = tx.graph()?;
    let meanings = &relation.meanings;
    let (subject_key, subject) = end_of(
        g,
        &relation.subject,
        &relation.scope,
        "subject",
        meanings,
        now,
        created,
    )?;
    let object = match &relation.object {
        Some(end) => Some(end_of(
            g,
            end,
            &relation.scope,
            "object",
            meanings,
            now,
            created,
        )?),
        None => None,
    };
    let object_key = object.as_ref().map(|(k, _)| *k);
    let ended = relation.valid_to.is_some();
    let held: Vec<StoredRelation> = g
        .relations_touching(&[subject_key], Direction::Out)?
        .into_iter()
        .filter(|r| {
            r.relation.predicate == relation.predicate
                && if ended {
                    r.relation.valid_from == relation.valid_from
                        && r.relation.valid_to == relation.valid_to
                } else {
                    r.relation.valid_to.is_none()
                }
        })
        .collect();
    if let Some(same) = held
        .iter()
        .find(|r| same_claim(r, object_key, relation.value.as_deref()))
    {
        for source in &relation.sources {
            g.add_source(same.key, source)?;
        }
        let stored = g
            .relations_touching(&[subject_key], Direction::Out)?
            .into_iter()
            .find(|r| r.key == same.key)
            .map(|r| r.relation)
            .ok_or_else(|| Error::internal("a held relation is gone"))?;
        return Ok(RelationAdded {
            relation: stored,
            created: false,
            closed: Vec::new(),
        });
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut closed = Vec::new();
    if functional && !ended {
        let ends = relation.valid_from.unwrap_or(now);
        for old in &held {
            g.close_relation(old.key, ends, &id)?;
            closed.push(old.relation.id.clone());
        }
    }
    let new = Relation {
        id,
        subject: subject.id,
        subject_name: subject.name,
        predicate: relation.predicate.clone(),
        object: object.as_ref().map(|(_, e)| e.id.clone()),
        object_name: match (&object, &relation.value) {
            (Some((_, e)), _) => e.name.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) => String::new(),
        },
        literal: relation.value.is_some(),
        valid_from: relation.valid_from,
        valid_to: relation.valid_to,
        closed_by: None,
        confidence: relation.confidence,
        sources: relation.sources.clone(),
        scope: relation.scope.clone(),
        created_at: now,
    };
    let key = g.insert_relation(&new, subject_key, object_key)?;
    for source in &relation.sources {
        g.add_source(key, source)?;
    }
    Ok(RelationAdded {
        relation: new,
        created: true,
        closed,
    })
}

/// Inside the write that brings deleted memory `memory_id` back (an undo or a revert): the
/// relations it supported when it went come back with it as a source, the same ids, unless
/// an entity they joined is gone since (merged away, or reset).
pub(crate) fn recall_sources(tx: &mut dyn StoreTx, memory_id: &str) -> Result<()> {
    let g = tx.graph()?;
    for r in g.forgotten(memory_id)? {
        if let Some(key) = g.relation_key(&r.id)? {
            g.add_source(key, memory_id)?;
            continue;
        }
        let Some((subject_key, subject)) = g.entity(&r.subject)? else {
            continue;
        };
        let object = match &r.object {
            Some(id) => match g.entity(id)? {
                Some(found) => Some(found),
                None => continue,
            },
            None => None,
        };
        // Said again since, by another memory: that relation gains the source instead.
        let object_key = object.as_ref().map(|(k, _)| *k);
        let again = g
            .relations_touching(&[subject_key], Direction::Out)?
            .into_iter()
            .find(|held| {
                held.relation.predicate == r.predicate
                    && held.relation.valid_to.is_none()
                    && r.valid_to.is_none()
                    && same_claim(held, object_key, r.value.as_deref())
            });
        if let Some(held) = again {
            g.add_source(held.key, memory_id)?;
            continue;
        }
        let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
        let relation = Relation {
            id: r.id.clone(),
            subject: subject.id,
            subject_name: subject.name,
            predicate: r.predicate.clone(),
            object: object.as_ref().map(|(_, e)| e.id.clone()),
            object_name: match (&object, &r.value) {
                (Some((_, e)), _) => e.name.clone(),
                (None, value) => value.clone().unwrap_or_default(),
            },
            literal: object.is_none(),
            valid_from: time(&r.valid_from)?,
            valid_to: time(&r.valid_to)?,
            closed_by: r.closed_by.clone(),
            confidence: r.confidence as f32,
            sources: vec![memory_id.to_string()],
            scope: subject.scope,
            created_at: parse_time(&r.created_at)?,
        };
        let key = g.insert_relation(&relation, subject_key, object_key)?;
        g.add_source(key, memory_id)?;
    }
    g.clear_forgotten(memory_id)
}

impl Memory {
    /// Those of `names` (name, folded) no entity of `scope` answers to; none when the store
    /// cannot embed (resolution by meaning needs its embedder).
    fn unknown_names(
        &self,
        scope: &Scope,
        names: &[(String, String)],
    ) -> Result<Vec<(String, String)>> {
        if !matches!(self.shared.embedder, EmbedderSlot::Ready(_)) || names.is_empty() {
            return Ok(Vec::new());
        }
        let folded: Vec<String> = names.iter().map(|(_, f)| f.clone()).collect();
        let known: HashSet<String> = self
            .graph()
            .read(|g| g.known_names(scope, &folded))?
            .into_iter()
            .collect();
        Ok(names
            .iter()
            .filter(|(_, f)| !known.contains(f))
            .cloned()
            .collect())
    }

    /// The meanings of these names (name, folded), each embedded once, by folded name;
    /// none when the store cannot embed.
    fn name_meanings(&self, names: &[(String, String)]) -> Result<Meanings> {
        if !matches!(self.shared.embedder, EmbedderSlot::Ready(_)) || names.is_empty() {
            return Ok(Meanings::new());
        }
        let mut distinct: Vec<&(String, String)> = Vec::new();
        for n in names {
            if !distinct.iter().any(|(_, f)| *f == n.1) {
                distinct.push(n);
            }
        }
        let texts: Vec<&str> = distinct.iter().map(|(name, _)| name.as_str()).collect();
        let vectors = self.embed_texts(&texts)?;
        Ok(distinct
            .into_iter()
            .zip(vectors)
            .map(|((_, folded), e)| {
                (
                    folded.clone(),
                    Meaning {
                        vector: e.vector,
                        threshold: self.shared.name_similarity,
                    },
                )
            })
            .collect())
    }

    /// The meaning of a new entity's main name, when none of its names is known in its
    /// scope yet (a known name resolves it by name).
    fn entity_meaning(&self, entity: &CheckedEntity) -> Result<Option<Meaning>> {
        let unknown = self.unknown_names(&entity.scope, &entity.names)?;
        if unknown.len() != entity.names.len() {
            return Ok(None);
        }
        Ok(self
            .name_meanings(&entity.names[..1])?
            .remove(&entity.names[0].1))
    }

    /// Gives a memory's entities and relations the meanings of their unknown names (see
    /// [`Memory::give_meanings`]).
    pub(crate) fn give_graph_meanings(&self, graph: &mut MemoryGraph) -> Result<()> {
        self.give_meanings(&mut graph.relations)?;
        for entity in &mut graph.entities {
            entity.meaning = self.entity_meaning(entity)?;
        }
        Ok(())
    }

    /// Gives each relation the meanings of the names its ends are given by that no entity
    /// of its scope answers to yet, so that the write can resolve them by meaning. Runs
    /// before the write: the model never runs under the write lock.
    pub(crate) fn give_meanings(&self, relations: &mut [CheckedRelation]) -> Result<()> {
        if !matches!(self.shared.embedder, EmbedderSlot::Ready(_)) {
            return Ok(());
        }
        // One read per scope for the names already known, one embedding call for the rest.
        let mut scopes: Vec<(Scope, Vec<(String, String)>)> = Vec::new();
        for relation in relations.iter() {
            let names = relation.end_names();
            match scopes.iter_mut().find(|(s, _)| *s == relation.scope) {
                Some((_, all)) => all.extend(names),
                None => scopes.push((relation.scope.clone(), names)),
            }
        }
        let mut to_embed: Vec<(String, String)> = Vec::new();
        for (scope, names) in &mut scopes {
            *names = self.unknown_names(scope, names)?;
            to_embed.extend(names.iter().cloned());
        }
        let meanings = self.name_meanings(&to_embed)?;
        for relation in relations.iter_mut() {
            let Some((_, unknown)) = scopes.iter().find(|(s, _)| *s == relation.scope) else {
                continue;
            };
            for (_, folded) in relation.end_names() {
                if let Some(m) = meanings.get(&folded) {
                    if unknown.iter().any(|(_, f)| *f == folded) {
                        relation.meanings.insert(folded, m.clone());
                    }
                }
            }
        }
        Ok(())
    }
}

/// An error of item `i` of a list `field`, its code kept.
pub(super) fn at(field: &str, i: usize) -> impl Fn(Error) -> Error + '_ {
    move |e| Error::new(e.code(), format!("{field}[{i}]: {}", e.message()))
}

/// The entities and relations that come with a memory ([`NewMemory::entities`],
/// [`NewMemory::relations`]), checked, in the memory's scope.
pub(crate) struct MemoryGraph {
    entities: Vec<CheckedEntity>,
    relations: Vec<CheckedRelation>,
}

impl MemoryGraph {
    /// Checks a memory's entities and relations: each in the memory's scope (an empty
    /// scope is taken as the memory's; another is refused), at most
    /// [`crate::graph::MAX_IMPORT`] of each.
    pub(crate) fn of(memory: &NewMemory) -> Result<MemoryGraph> {
        let scope = &memory.scope;
        let own = |given: &Scope| -> Result<()> {
            if given.is_global() || given == scope {
                Ok(())
            } else {
                Err(Error::invalid(
                    "names another scope than the memory's: a memory's entities and \
                     relations are of its scope (leave their scope out)",
                ))
            }
        };
        for (field, n) in [
            ("entities", memory.entities.len()),
            ("relations", memory.relations.len()),
        ] {
            if n > crate::graph::MAX_IMPORT {
                return Err(Error::invalid(format!(
                    "{n} {field}; a memory comes with at most {}",
                    crate::graph::MAX_IMPORT
                )));
            }
        }
        let entities = memory
            .entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                own(&e.scope).map_err(at("entities", i))?;
                let e = NewEntity {
                    scope: scope.clone(),
                    ..e.clone()
                };
                CheckedEntity::of(&e).map_err(at("entities", i))
            })
            .collect::<Result<Vec<_>>>()?;
        let relations = memory
            .relations
            .iter()
            .enumerate()
            .map(|(i, r)| {
                own(&r.scope).map_err(at("relations", i))?;
                let r = NewRelation {
                    scope: scope.clone(),
                    ..r.clone()
                };
                CheckedRelation::of(r).map_err(at("relations", i))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemoryGraph {
            entities,
            relations,
        })
    }

    /// Stores them in the memory's write transaction, each relation sourced from memory
    /// `memory_id` (the one added, or its twin) beside the sources it names.
    pub(crate) fn add_in(
        &self,
        tx: &mut dyn StoreTx,
        memory_id: &str,
        functional: &[String],
    ) -> Result<()> {
        if self.entities.is_empty() && self.relations.is_empty() {
            return Ok(());
        }
        let now = tx.now()?;
        for (i, entity) in self.entities.iter().enumerate() {
            resolve_or_add(tx.graph()?, entity, now, &mut 0).map_err(at("entities", i))?;
        }
        for (i, relation) in self.relations.iter().enumerate() {
            let mut sources = relation.sources.clone();
            if !sources.iter().any(|s| s == memory_id) {
                sources.push(memory_id.to_string());
            }
            let functional = functional.contains(&relation.predicate);
            add_relation_in(tx, &relation.sourced(sources), functional)
                .map_err(at("relations", i))?;
        }
        Ok(())
    }
}

impl Graph<'_> {
    /// Adds an entity, or returns the one of its scope that already answers to its name or
    /// one of its aliases (which then also answers to the others, and gains the summary if
    /// it had none). Names match after folding case, whitespace, full-width forms and
    /// diacritics ("Zoë Smith" is "zoe  smith"); never across scopes.
    pub fn add_entity(&self, entity: NewEntity) -> Result<Entity> {
        let mut checked = CheckedEntity::of(&entity)?;
        checked.meaning = self.memory.entity_meaning(&checked)?;
        store::write(&*self.memory.shared.store, |tx| {
            // The transaction's commit time, as memories get: times follow commit order.
            let now = tx.now()?;
            Ok(resolve_or_add(tx.graph()?, &checked, now, &mut 0)?.1)
        })
    }

    /// Adds `subject —predicate→ object` (or a literal `value`) in the relation's scope,
    /// finding or creating named entities there. The same relation already holding gains
    /// the new sources instead of a twin. On a functional predicate (see
    /// `MemoryBuilder::functional_predicates`) a new object closes the subject's current
    /// relations with other objects: their valid time ends where the new one starts (now
    /// when not given) and `closed_by` names the new relation; they stay readable with
    /// `include_closed` or `valid_at`.
    pub fn add_relation(&self, relation: NewRelation) -> Result<RelationAdded> {
        let mut checked = CheckedRelation::of(relation)?;
        self.memory
            .give_meanings(std::slice::from_mut(&mut checked))?;
        let functional = self.memory.shared.functional.contains(&checked.predicate);
        store::write(&*self.memory.shared.store, |tx| {
            add_relation_in(tx, &checked, functional)
        })
    }

    /// An entity with every relation touching it (ended ones included), oldest first.
    pub fn entity(&self, id: &str) -> Result<EntityDetail> {
        check_id(id)?;
        self.read(|g| {
            let (key, _) = existing(g, id)?;
            detail_of(g, key)
        })
    }

    /// The entities of exactly `scope` whose name or an alias contains `query` (folded as
    /// names are; every entity for an empty query), of `entity_type` if given: exact names
    /// first, then names starting with the query, then by name. At most `limit` (default
    /// 100).
    pub fn entities(
        &self,
        query: &str,
        scope: &Scope,
        entity_type: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Entity>> {
        scope.validate()?;
        let limit = check_limit(limit)?;
        let entity_type = entity_type.map(|t| check_type(Some(t))).transpose()?;
        let folded = fold_name(query);
        self.read(|g| {
            // One wanted and a name given: the name's own entry answers, if it has one.
            if limit == 1 && !folded.is_empty() {
                if let Some((_, e)) = g.entity_named(scope, &folded)? {
                    if entity_type.as_ref().is_none_or(|t| *t == e.entity_type) {
                        return Ok(vec![e]);
                    }
                }
            }
            g.entities_matching(scope, &folded, entity_type.as_deref(), limit)
        })
    }

    /// The relations of exactly the query's scope, oldest first: those touching an entity,
    /// of a predicate or from a source memory if asked; by default those holding now.
    pub fn relations(&self, query: &RelationQuery) -> Result<Vec<Relation>> {
        query.scope.validate()?;
        let limit = check_limit(query.limit)?;
        let predicate = query
            .predicate
            .as_deref()
            .map(normalise_predicate)
            .transpose()?;
        if let Some(source) = &query.source {
            check_id(source)?;
        }
        if let Some(id) = &query.entity {
            check_id(id)?;
        }
        let now = query.time.as_of.unwrap_or_else(Utc::now);
        self.read_at(&query.time, |g| {
            // The entities the relations must touch: the one asked for, the ones the text
            // names (in the query's scope), or both.
            let mut anchors: Option<Vec<i64>> = None;
            if let Some(id) = &query.entity {
                let (key, entity) = g
                    .entity(id)?
                    .ok_or_else(|| Error::not_found(format!("no entity with id {id:?}")))?;
                if entity.scope != query.scope {
                    return Ok(Vec::new());
                }
                anchors = Some(vec![key]);
            }
            if let Some(text) = &query.about {
                let named = named_entities(g, &query.scope, &query_names(text))?;
                anchors = Some(match anchors {
                    Some(entity) => named.into_iter().filter(|k| entity.contains(k)).collect(),
                    None => named,
                });
            }
            let rows = match anchors {
                Some(keys) if keys.is_empty() => Vec::new(),
                Some(keys) => {
                    let only: HashSet<i64> = keys.iter().copied().collect();
                    g.relations_touching(&keys, Direction::Both)?
                        .into_iter()
                        .filter(|r| {
                            only.contains(&r.subject) || r.object.is_some_and(|o| only.contains(&o))
                        })
                        .filter(|r| {
                            predicate
                                .as_ref()
                                .is_none_or(|p| r.relation.predicate == *p)
                        })
                        .filter(|r| {
                            query
                                .source
                                .as_ref()
                                .is_none_or(|s| r.relation.sources.contains(s))
                        })
                        .collect()
                }
                None => {
                    g.relations_in(&query.scope, predicate.as_deref(), query.source.as_deref())?
                }
            };
            Ok(rows
                .into_iter()
                .map(|r| r.relation)
                .filter(|r| query.time.admits(r.valid_from, r.valid_to, now))
                .take(limit)
                .collect())
        })
    }

    /// The entities up to `depth` relations away from an entity (breadth first, each once,
    /// at its least depth, with the relation that first reached it), following the given
    /// predicates (all by default) the given way, over the relations the walk's time
    /// admits. Never leaves the start's scope.
    pub fn neighbors(&self, walk: &Neighbors) -> Result<Vec<Neighbor>> {
        check_id(&walk.entity)?;
        check_depth(walk.depth, "depth")?;
        let predicates: HashSet<String> = walk
            .predicates
            .iter()
            .map(|p| normalise_predicate(p))
            .collect::<Result<_>>()?;
        let now = walk.time.as_of.unwrap_or_else(Utc::now);
        self.read_at(&walk.time, |g| {
            let (start, entity) = g
                .entity(&walk.entity)?
                .ok_or_else(|| Error::not_found(format!("no entity with id {:?}", walk.entity)))?;
            let steps = Steps {
                direction: walk.direction,
                predicates: &predicates,
                time: &walk.time,
                scope: &entity.scope,
                now,
            };
            let mut seen: HashSet<i64> = HashSet::from([start]);
            let mut frontier = vec![start];
            // (entity, depth, key of the relation that reached it)
            let mut reached: Vec<(i64, usize, i64)> = Vec::new();
            for depth in 1..=walk.depth {
                let mut next = Vec::new();
                for (_, to, via) in steps.from(g, &frontier)? {
                    if seen.insert(to) {
                        next.push(to);
                        reached.push((to, depth, via));
                    }
                }
                if next.is_empty() {
                    break;
                }
                frontier = next;
            }
            // Only now the answer's relations, entities and sources: each relation joins
            // two entities of the walk (the start or ones it reached).
            let keys: Vec<i64> = reached.iter().map(|(k, _, _)| *k).collect();
            let mut entities = g.entities_by_key(&keys)?;
            entities.insert(start, entity.clone());
            let via_keys: Vec<i64> = reached.iter().map(|(_, _, r)| *r).collect();
            let rows = g.relation_rows(&via_keys)?;
            let sources = g.sources_of(&via_keys)?;
            let mut out = Vec::with_capacity(reached.len());
            for (key, depth, via) in reached {
                let Some(row) = rows.get(&via).cloned() else {
                    continue;
                };
                if let Some(via) = complete(row, &entities, &sources) {
                    if let Some(entity) = entities.get(&key) {
                        out.push(Neighbor {
                            entity: entity.clone(),
                            depth,
                            via,
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    /// A shortest chain of relations from entity `from` to entity `to` (either way along
    /// each relation), at most `max_depth` long (1 to 3), over the relations `time` admits;
    /// `None` when there is none. Entities of different scopes are never joined.
    pub fn path(
        &self,
        from: &str,
        to: &str,
        max_depth: usize,
        time: &RelationTime,
    ) -> Result<Option<Vec<Relation>>> {
        check_id(from)?;
        check_id(to)?;
        check_depth(max_depth, "max_depth")?;
        let now = time.as_of.unwrap_or_else(Utc::now);
        let no_predicates = HashSet::new();
        self.read_at(time, |g| {
            let (start, a) = g
                .entity(from)?
                .ok_or_else(|| Error::not_found(format!("no entity with id {from:?}")))?;
            let (goal, b) = g
                .entity(to)?
                .ok_or_else(|| Error::not_found(format!("no entity with id {to:?}")))?;
            if a.scope != b.scope {
                return Ok(None);
            }
            if start == goal {
                return Ok(Some(Vec::new()));
            }
            let steps = Steps {
                direction: Direction::Both,
                predicates: &no_predicates,
                time,
                scope: &a.scope,
                now,
            };
            // Breadth first, remembering how each entity was reached.
            let mut came: HashMap<i64, (i64, i64)> = HashMap::new();
            let mut frontier = vec![start];
            let mut seen: HashSet<i64> = HashSet::from([start]);
            for _ in 0..max_depth {
                let mut next = Vec::new();
                for (from_key, to_key, relation) in steps.from(g, &frontier)? {
                    if seen.insert(to_key) {
                        came.insert(to_key, (from_key, relation));
                        next.push(to_key);
                        if to_key == goal {
                            break;
                        }
                    }
                }
                if seen.contains(&goal) {
                    let mut row_keys = Vec::new();
                    let mut at = goal;
                    while at != start {
                        let (previous, via) = came
                            .remove(&at)
                            .ok_or_else(|| Error::internal("a broken path"))?;
                        row_keys.push(via);
                        at = previous;
                    }
                    row_keys.reverse();
                    // Only the chain's relations, entities and sources are read in full.
                    let mut rows = g.relation_rows(&row_keys)?;
                    let chain = row_keys
                        .iter()
                        .map(|k| {
                            rows.remove(k)
                                .ok_or_else(|| Error::internal("a path's relation is gone"))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let mut keys: Vec<i64> = chain.iter().map(|r| r.subject).collect();
                    keys.extend(chain.iter().filter_map(|r| r.object));
                    let entities = g.entities_by_key(&keys)?;
                    let sources = g.sources_of(&row_keys)?;
                    return chain
                        .into_iter()
                        .map(|row| {
                            complete(row, &entities, &sources)
                                .ok_or_else(|| Error::internal("a path's entity is gone"))
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(Some);
                }
                if next.is_empty() {
                    break;
                }
                frontier = next;
            }
            Ok(None)
        })
    }

    /// Merges entity `absorb` into entity `keep` (both of one scope): `keep` answers to
    /// every name of both, gains `absorb`'s summary if it had none, and becomes the end of
    /// each of `absorb`'s relations (those between the two are dropped: they would relate
    /// the entity to itself); `absorb` is gone. Relations that now say the same
    /// thing become one (with the sources of both); on a functional predicate, the newest
    /// of `keep`'s objects closes the others. Recorded in both entities' histories.
    pub fn merge_entities(&self, keep: &str, absorb: &str) -> Result<EntityDetail> {
        check_id(keep)?;
        check_id(absorb)?;
        if keep == absorb {
            return Err(Error::invalid("an entity cannot be merged into itself"));
        }
        let functional = &self.memory.shared.functional;
        store::write(&*self.memory.shared.store, |tx| {
            let now = tx.now()?;
            let g = tx.graph()?;
            let (kept_key, kept) = existing(g, keep)?;
            let (absorbed_key, absorbed) = existing(g, absorb)?;
            if kept.scope != absorbed.scope {
                return Err(Error::invalid(
                    "entities of different scopes cannot be merged: an entity belongs to one \
                     scope",
                ));
            }
            let mut moved: Vec<String> = Vec::new();
            let mut dropped: Vec<String> = Vec::new();
            for r in g.relations_touching(&[absorbed_key], Direction::Both)? {
                // A relation between the two would relate the entity to itself.
                if r.subject == kept_key || r.object == Some(kept_key) {
                    g.delete_relation(r.key)?;
                    dropped.push(r.relation.id);
                } else {
                    moved.push(r.relation.id);
                }
            }
            g.absorb_entity(absorbed_key, kept_key)?;
            match (&kept.summary, &absorbed.summary) {
                (None, Some(summary)) => g.set_summary(kept_key, summary, now)?,
                _ => g.touch_entity(kept_key, now)?,
            }
            settle_relations(g, kept_key, functional, now)?;
            g.record_entity_event(&EntityEvent {
                entity_id: kept.id.clone(),
                event: EntityEventKind::Merged,
                detail: serde_json::json!({
                    "id": absorbed.id,
                    "name": absorbed.name,
                    "type": absorbed.entity_type,
                    "aliases": absorbed.aliases,
                    "summary": absorbed.summary,
                    "relations": moved,
                    "dropped": dropped,
                }),
                created_at: now,
            })?;
            g.record_entity_event(&EntityEvent {
                entity_id: absorbed.id.clone(),
                event: EntityEventKind::MergedInto,
                detail: serde_json::json!({ "into": kept.id }),
                created_at: now,
            })?;
            detail_of(g, kept_key)
        })
    }

    /// Renames entity `id`: `name` becomes its name, and the old name stays one of its
    /// aliases (memories still say it). Refused when another entity of its scope answers to
    /// `name` (merge them instead). Recorded in its history.
    pub fn rename_entity(&self, id: &str, name: &str) -> Result<Entity> {
        check_id(id)?;
        let name = check_name(name, "name")?;
        let folded = fold_name(&name);
        let meaning = self
            .memory
            .name_meanings(&[(name.clone(), folded.clone())])?
            .remove(&folded);
        store::write(&*self.memory.shared.store, |tx| {
            let now = tx.now()?;
            let g = tx.graph()?;
            let (key, entity) = existing(g, id)?;
            if let Some((other, e)) = g.entity_named(&entity.scope, &folded)? {
                if other != key {
                    return Err(Error::invalid(format!(
                        "{name:?} names entity {:?} ({}): merge the two instead",
                        e.name, e.id
                    )));
                }
            }
            g.add_name(key, &entity.scope, &name, &folded)?;
            g.rename_entity(key, &name, now)?;
            if let Some(m) = &meaning {
                g.set_embedding(key, &m.vector)?;
            }
            g.record_entity_event(&EntityEvent {
                entity_id: entity.id.clone(),
                event: EntityEventKind::Renamed,
                detail: serde_json::json!({ "from": entity.name, "to": name }),
                created_at: now,
            })?;
            Ok(detail_of(g, key)?.entity)
        })
    }

    /// Splits a new entity off entity `id` (one that was wrongly resolved into it): the new
    /// entity, of the same scope, answers to `part.name` and the aliases moved to it, and
    /// is the end of the relations moved to it. Refused when the name answers to another
    /// entity, an alias is not one of `id`'s (its main name cannot move), or a relation
    /// does not touch it. Recorded in both entities' histories.
    pub fn split_entity(&self, id: &str, part: SplitEntity) -> Result<Split> {
        check_id(id)?;
        let name = check_name(&part.name, "name")?;
        let folded = fold_name(&name);
        let moved_names: Vec<(String, String)> = part
            .aliases
            .iter()
            .map(|a| check_name(a, "alias").map(|a| (fold_name(&a), a)))
            .collect::<Result<_>>()?;
        for relation in &part.relations {
            check_id(relation)?;
        }
        let entity_type = part
            .entity_type
            .as_deref()
            .map(|t| check_type(Some(t)))
            .transpose()?;
        let summary = part
            .summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let meaning = self
            .memory
            .name_meanings(&[(name.clone(), folded.clone())])?
            .remove(&folded);
        store::write(&*self.memory.shared.store, |tx| {
            let now = tx.now()?;
            let g = tx.graph()?;
            let (key, entity) = existing(g, id)?;
            let own: HashSet<String> = entity.aliases.iter().map(|a| fold_name(a)).collect();
            for (f, alias) in &moved_names {
                if !own.contains(f) {
                    return Err(Error::invalid(format!(
                        "{alias:?} is not an alias of entity {:?} ({}); its name cannot move",
                        entity.name, entity.id
                    )));
                }
            }
            if !moved_names.iter().any(|(f, _)| *f == folded) {
                if let Some((_, e)) = g.entity_named(&entity.scope, &folded)? {
                    return Err(Error::invalid(format!(
                        "{name:?} names entity {:?} ({}) already: give the new entity a name \
                         of its own, or one of the aliases it takes",
                        e.name, e.id
                    )));
                }
            }
            let touching: HashMap<String, i64> = g
                .relations_touching(&[key], Direction::Both)?
                .into_iter()
                .map(|r| (r.relation.id, r.key))
                .collect();
            let mut relation_keys = Vec::with_capacity(part.relations.len());
            for relation in &part.relations {
                let k = touching.get(relation).ok_or_else(|| {
                    Error::invalid(format!(
                        "relation {relation:?} does not touch entity {:?} ({})",
                        entity.name, entity.id
                    ))
                })?;
                relation_keys.push(*k);
            }
            let new = Entity {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.clone(),
                entity_type: entity_type
                    .clone()
                    .unwrap_or_else(|| entity.entity_type.clone()),
                aliases: Vec::new(),
                summary: summary.clone(),
                scope: entity.scope.clone(),
                created_at: now,
                updated_at: now,
            };
            let new_key = g.insert_entity(&new)?;
            if let Some(m) = &meaning {
                g.set_embedding(new_key, &m.vector)?;
            }
            for (f, alias) in &moved_names {
                g.remove_name(key, f)?;
                g.add_name(new_key, &entity.scope, alias, f)?;
            }
            g.add_name(new_key, &entity.scope, &name, &folded)?;
            for k in &relation_keys {
                g.move_relation_end(*k, key, new_key)?;
            }
            g.touch_entity(key, now)?;
            let names: Vec<&str> = moved_names.iter().map(|(_, a)| a.as_str()).collect();
            g.record_entity_event(&EntityEvent {
                entity_id: entity.id.clone(),
                event: EntityEventKind::Split,
                detail: serde_json::json!({
                    "into": new.id,
                    "names": names,
                    "relations": part.relations,
                }),
                created_at: now,
            })?;
            g.record_entity_event(&EntityEvent {
                entity_id: new.id.clone(),
                event: EntityEventKind::SplitFrom,
                detail: serde_json::json!({ "from": entity.id }),
                created_at: now,
            })?;
            Ok(Split {
                entity: detail_of(g, key)?,
                split_off: detail_of(g, new_key)?,
            })
        })
    }

    /// The corrections of entity `id` (merges, renames, splits), oldest first; kept for an
    /// entity merged away too.
    pub fn entity_history(&self, id: &str) -> Result<Vec<EntityEvent>> {
        check_id(id)?;
        self.read(|g| g.entity_history(id))
    }

    /// [`Graph::read`], over the graph as recorded at `time.as_of` when it is given.
    fn read_at<T>(
        &self,
        time: &RelationTime,
        mut f: impl FnMut(&mut dyn GraphRead) -> Result<T>,
    ) -> Result<T> {
        match time.as_of {
            Some(at) => self.read(|g| f(&mut AsOf::new(g, at)?)),
            None => self.read(f),
        }
    }

    pub(super) fn read<T>(&self, mut f: impl FnMut(&mut dyn GraphRead) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.memory.shared.store.read_graph(&mut |g| {
            out = Some(f(g)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("a graph read ended without its result"))
    }
}

/// The entity with this id; `NotFound` says where it went if it was merged away.
fn existing(g: &mut dyn GraphRead, id: &str) -> Result<(i64, Entity)> {
    if let Some(found) = g.entity(id)? {
        return Ok(found);
    }
    let into = g.entity_history(id)?.into_iter().rev().find_map(|e| {
        (e.event == EntityEventKind::MergedInto)
            .then(|| e.detail["into"].as_str().map(str::to_string))
            .flatten()
    });
    Err(Error::not_found(match into {
        Some(into) => format!("entity {id:?} was merged into entity {into:?}"),
        None => format!("no entity with id {id:?}"),
    }))
}

/// An entity with every relation touching it, by key.
fn detail_of(g: &mut dyn GraphRead, key: i64) -> Result<EntityDetail> {
    let entity = g
        .entities_by_key(&[key])?
        .remove(&key)
        .ok_or_else(|| Error::internal("an entity written a moment ago is gone"))?;
    let relations = g
        .relations_touching(&[key], Direction::Both)?
        .into_iter()
        .map(|r| r.relation)
        .collect();
    Ok(EntityDetail { entity, relations })
}

/// After entity `key` gained another's relations: current relations saying the same thing
/// become the oldest of them, and on a functional predicate the newest object closes the
/// others.
fn settle_relations(
    g: &mut dyn GraphWrite,
    key: i64,
    functional: &[String],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let current: Vec<StoredRelation> = g
        .relations_touching(&[key], Direction::Both)?
        .into_iter()
        .filter(|r| r.relation.valid_to.is_none())
        .collect();
    // A claim: subject, predicate, object entity or literal value.
    type Claim<'r> = (i64, &'r str, Option<i64>, Option<&'r str>);
    let mut first_of: HashMap<Claim<'_>, i64> = HashMap::new();
    let mut folded: HashSet<i64> = HashSet::new();
    for r in &current {
        let value = r
            .relation
            .literal
            .then_some(r.relation.object_name.as_str());
        let claim = (r.subject, r.relation.predicate.as_str(), r.object, value);
        match first_of.get(&claim) {
            Some(&into) => {
                g.fold_relation(r.key, into)?;
                folded.insert(r.key);
            }
            None => {
                first_of.insert(claim, r.key);
            }
        }
    }
    let mut by_predicate: HashMap<&str, Vec<&StoredRelation>> = HashMap::new();
    for r in current.iter().filter(|r| !folded.contains(&r.key)) {
        if r.subject == key && functional.contains(&r.relation.predicate) {
            by_predicate
                .entry(&r.relation.predicate)
                .or_default()
                .push(r);
        }
    }
    for held in by_predicate.values() {
        let Some(newest) = held.iter().max_by_key(|r| (r.relation.created_at, r.key)) else {
            continue;
        };
        for old in held.iter().filter(|r| r.key != newest.key) {
            let ends = newest.relation.valid_from.unwrap_or(now);
            g.close_relation(old.key, ends, &newest.relation.id)?;
        }
    }
    Ok(())
}

/// One step of a walk: which relations it follows.
struct Steps<'a> {
    direction: Direction,
    predicates: &'a HashSet<String>,
    time: &'a RelationTime,
    scope: &'a Scope,
    now: chrono::DateTime<Utc>,
}

impl Steps<'_> {
    /// The `(from, to, relation key)` steps out of the `frontier` entities, in relation
    /// order. Relations are read as steps (no rows, no names, no sources): a walk passes
    /// many more than it answers with.
    fn from(&self, g: &mut dyn GraphRead, frontier: &[i64]) -> Result<Vec<(i64, i64, i64)>> {
        let in_frontier: HashSet<i64> = frontier.iter().copied().collect();
        let mut out = Vec::new();
        for r in g.steps_touching(frontier, self.direction)? {
            if r.scope != *self.scope
                || !self.time.admits(r.valid_from, r.valid_to, self.now)
                || (!self.predicates.is_empty() && !self.predicates.contains(&r.predicate))
            {
                continue;
            }
            let Some(object) = r.object else { continue };
            let forward = self.direction != Direction::In && in_frontier.contains(&r.subject);
            let backward = self.direction != Direction::Out && in_frontier.contains(&object);
            match (forward, backward) {
                (true, true) => {
                    out.push((r.subject, object, r.key));
                    out.push((object, r.subject, r.key));
                }
                (true, false) => out.push((r.subject, object, r.key)),
                (false, true) => out.push((object, r.subject, r.key)),
                (false, false) => {}
            }
        }
        Ok(out)
    }
}

/// A walked relation in full, its ends from `entities` and its sources taken from
/// `sources`; `None` when an end is missing (never within one snapshot).
fn complete(
    row: RelationRow,
    entities: &HashMap<i64, Entity>,
    sources: &HashMap<i64, Vec<String>>,
) -> Option<Relation> {
    let subject = entities.get(&row.subject)?;
    let object = match row.object {
        Some(key) => Some(entities.get(&key)?),
        None => None,
    };
    let listed = sources.get(&row.key).cloned().unwrap_or_default();
    Some(row.into_relation(subject, object, listed))
}

fn check_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(Error::invalid("limit must be at least 1")),
        Some(n) if n > MAX_LIMIT => {
            Err(Error::invalid(format!("limit is {n}; at most {MAX_LIMIT}")))
        }
        Some(n) => Ok(n),
    }
}

fn check_depth(depth: usize, field: &str) -> Result<usize> {
    if depth == 0 || depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "{field} must be from 1 to {MAX_DEPTH}, got {depth}"
        )));
    }
    Ok(depth)
}
