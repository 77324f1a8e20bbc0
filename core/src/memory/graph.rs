//! The knowledge graph's operations: entities resolved by name within a scope, relations
//! with provenance and valid time (a functional predicate's new object closes the old
//! relation, which stays readable), and walks: neighbours and shortest paths.

use std::collections::{HashMap, HashSet};

use chrono::{SubsecRound, Utc};

use super::{check_id, Memory};
use crate::error::{Error, Result};
use crate::graph::{
    check_name, check_type, fold_name, normalise_predicate, Direction, Entity, EntityDetail,
    EntityRef, Neighbor, Neighbors, NewEntity, NewRelation, Relation, RelationAdded, RelationQuery,
    RelationTime, MAX_DEPTH,
};
use crate::search::graph::query_names;
use crate::store::{self, GraphRead, GraphWrite, RelationRow, StoreTx, StoredRelation};
use crate::types::{validate_valid_time, Scope};

/// The most entities or relations one read returns unless asked for fewer.
const DEFAULT_LIMIT: usize = 100;
/// The most one read returns.
const MAX_LIMIT: usize = 10_000;

/// The knowledge graph of a [`Memory`]: `memory.graph()`.
#[derive(Debug, Clone, Copy)]
pub struct Graph<'a> {
    memory: &'a Memory,
}

impl Memory {
    /// The knowledge graph kept in this store: entities and the relations between them.
    pub fn graph(&self) -> Graph<'_> {
        Graph { memory: self }
    }
}

/// An entity to add, checked: its name, folded names and type.
struct CheckedEntity {
    name: String,
    names: Vec<(String, String)>,
    entity_type: String,
    summary: Option<String>,
    scope: Scope,
}

impl CheckedEntity {
    fn of(entity: &NewEntity) -> Result<CheckedEntity> {
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
        })
    }
}

/// Finds the entity answering to one of `entity`'s names in its scope, or stores a new
/// one; either way it then answers to every name given. Two names of two different
/// entities are refused (merge them first).
fn resolve_or_add(
    g: &mut dyn GraphWrite,
    entity: &CheckedEntity,
    now: chrono::DateTime<Utc>,
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
    let key = match &found {
        Some((key, existing)) => {
            if existing.summary.is_none() {
                if let Some(summary) = &entity.summary {
                    g.set_summary(*key, summary, now)?;
                }
            }
            *key
        }
        None => g.insert_entity(&Entity {
            id: uuid::Uuid::new_v4().to_string(),
            name: entity.name.clone(),
            entity_type: entity.entity_type.clone(),
            aliases: Vec::new(),
            summary: entity.summary.clone(),
            scope: entity.scope.clone(),
            created_at: now,
            updated_at: now,
        })?,
    };
    for (name, folded) in &entity.names {
        g.add_name(key, &entity.scope, name, folded)?;
    }
    let stored = g
        .entity_named(&entity.scope, &entity.names[0].1)?
        .ok_or_else(|| Error::internal("an entity stored a moment ago is gone"))?;
    Ok(stored)
}

/// The entity an end of a relation names, in `scope`: by id (it must be of that scope) or
/// by name (found or created).
fn end_of(
    g: &mut dyn GraphWrite,
    end: &EntityRef,
    scope: &Scope,
    field: &str,
    now: chrono::DateTime<Utc>,
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
            let checked = CheckedEntity::of(&new)
                .map_err(|e| Error::invalid(format!("{field}: {}", e.message())))?;
            resolve_or_add(g, &checked, now)
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
        })
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
    let (subject_key, subject) = end_of(g, &relation.subject, &relation.scope, "subject", now)?;
    let object = match &relation.object {
        Some(end) => Some(end_of(g, end, &relation.scope, "object", now)?),
        None => None,
    };
    let object_key = object.as_ref().map(|(k, _)| *k);
    let held: Vec<StoredRelation> = g
        .relations_touching(&[subject_key], Direction::Out)?
        .into_iter()
        .filter(|r| r.relation.predicate == relation.predicate && r.relation.valid_to.is_none())
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
    if functional {
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

impl Graph<'_> {
    /// Adds an entity, or returns the one of its scope that already answers to its name or
    /// one of its aliases (which then also answers to the others, and gains the summary if
    /// it had none). Names match after folding case, whitespace, full-width forms and
    /// diacritics ("Zoë Smith" is "zoe  smith"); never across scopes.
    pub fn add_entity(&self, entity: NewEntity) -> Result<Entity> {
        let checked = CheckedEntity::of(&entity)?;
        store::write(&*self.memory.store, |tx| {
            // The transaction's commit time, as memories get: times follow commit order.
            let now = tx.now()?;
            Ok(resolve_or_add(tx.graph()?, &checked, now)?.1)
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
        let checked = CheckedRelation::of(relation)?;
        let functional = self.memory.functional.contains(&checked.predicate);
        store::write(&*self.memory.store, |tx| {
            add_relation_in(tx, &checked, functional)
        })
    }

    /// An entity with every relation touching it (ended ones included), oldest first.
    pub fn entity(&self, id: &str) -> Result<EntityDetail> {
        check_id(id)?;
        self.read(|g| {
            let (key, entity) = g
                .entity(id)?
                .ok_or_else(|| Error::not_found(format!("no entity with id {id:?}")))?;
            let relations = g
                .relations_touching(&[key], Direction::Both)?
                .into_iter()
                .map(|r| r.relation)
                .collect();
            Ok(EntityDetail { entity, relations })
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
        let now = Utc::now();
        self.read(|g| {
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
                let named = g.entity_keys_named(&query.scope, &query_names(text))?;
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
        let now = Utc::now();
        self.read(|g| {
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
            let mut reached: Vec<(i64, usize, RelationRow)> = Vec::new();
            for depth in 1..=walk.depth {
                let mut next = Vec::new();
                for (_, to, row) in steps.from(g, &frontier)? {
                    if seen.insert(to) {
                        next.push(to);
                        reached.push((to, depth, row));
                    }
                }
                if next.is_empty() {
                    break;
                }
                frontier = next;
            }
            // Only now the answer's entities and its relations' sources: each relation
            // joins two entities of the walk (the start or ones it reached).
            let keys: Vec<i64> = reached.iter().map(|(k, _, _)| *k).collect();
            let mut entities = g.entities_by_key(&keys)?;
            entities.insert(start, entity.clone());
            let via_keys: Vec<i64> = reached.iter().map(|(_, _, r)| r.key).collect();
            let sources = g.sources_of(&via_keys)?;
            let mut out = Vec::with_capacity(reached.len());
            for (key, depth, row) in reached {
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
        let now = Utc::now();
        let no_predicates = HashSet::new();
        self.read(|g| {
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
            let mut came: HashMap<i64, (i64, RelationRow)> = HashMap::new();
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
                    let mut chain = Vec::new();
                    let mut at = goal;
                    while at != start {
                        let (previous, row) = came
                            .remove(&at)
                            .ok_or_else(|| Error::internal("a broken path"))?;
                        chain.push(row);
                        at = previous;
                    }
                    chain.reverse();
                    // Only the chain's entities and sources are read in full.
                    let mut keys: Vec<i64> = chain.iter().map(|r| r.subject).collect();
                    keys.extend(chain.iter().filter_map(|r| r.object));
                    let entities = g.entities_by_key(&keys)?;
                    let row_keys: Vec<i64> = chain.iter().map(|r| r.key).collect();
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

    fn read<T>(&self, mut f: impl FnMut(&mut dyn GraphRead) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.memory.store.read_graph(&mut |g| {
            out = Some(f(g)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::internal("a graph read ended without its result"))
    }
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
    /// The `(from, to, relation)` steps out of the `frontier` entities, in relation order.
    /// Relations are read as rows (no names, no sources): a walk passes many more than it
    /// answers with.
    fn from(
        &self,
        g: &mut dyn GraphRead,
        frontier: &[i64],
    ) -> Result<Vec<(i64, i64, RelationRow)>> {
        let in_frontier: HashSet<i64> = frontier.iter().copied().collect();
        let mut out = Vec::new();
        for r in g.relation_rows_touching(frontier, self.direction)? {
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
                    out.push((r.subject, object, r.clone()));
                    out.push((object, r.subject, r));
                }
                (true, false) => out.push((r.subject, object, r)),
                (false, true) => out.push((object, r.subject, r)),
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
