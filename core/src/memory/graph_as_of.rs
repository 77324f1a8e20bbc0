//! The graph as it was recorded at a past moment (`RelationTime::as_of`): a view over a
//! read snapshot that leaves out relations and entities added later, brings back the
//! relations removed since with the memories they came from (kept for undo), and undoes
//! closings recorded later. The graph's reads and walks run over it unchanged.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::graph::{Direction, Entity, EntityEvent};
use crate::store::{
    Edge, ExportedEntity, ForgottenRelation, ForgottenSource, GraphRead, NameShape, RelationRow,
    Step, StoredRelation,
};
use crate::types::{parse_time, Scope};

/// A relation removed since the moment, as it was then, under a key of its own (negative:
/// never a stored key).
struct Gone {
    row: RelationRow,
    sources: Vec<String>,
}

/// What a walk decides on of a relation row.
fn step_of(row: &RelationRow) -> Step {
    Step {
        key: row.key,
        subject: row.subject,
        object: row.object,
        predicate: row.predicate.clone(),
        valid_from: row.valid_from,
        valid_to: row.valid_to,
        scope: row.scope.clone(),
    }
}

/// The graph of `inner` as recorded at `at`.
pub(crate) struct AsOf<'g> {
    inner: &'g mut dyn GraphRead,
    at: DateTime<Utc>,
    gone: Vec<Gone>,
    /// Sources of still-stored relations whose memories were deleted since, by key.
    lost_sources: HashMap<i64, Vec<String>>,
    /// When each closing relation was added, by id (`None`: gone without a trace).
    closers: HashMap<String, Option<DateTime<Utc>>>,
}

impl<'g> AsOf<'g> {
    /// The view of `inner` at `at`.
    pub(crate) fn new(inner: &'g mut dyn GraphRead, at: DateTime<Utc>) -> Result<AsOf<'g>> {
        let mut by_id: HashMap<String, (ForgottenRelation, Vec<String>)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for (memory, r) in inner.forgotten_since(at)? {
            match by_id.get_mut(&r.id) {
                Some((_, sources)) => sources.push(memory),
                None => {
                    order.push(r.id.clone());
                    by_id.insert(r.id.clone(), (r, vec![memory]));
                }
            }
        }
        let mut view = AsOf {
            inner,
            at,
            gone: Vec::new(),
            lost_sources: HashMap::new(),
            closers: HashMap::new(),
        };
        for id in order {
            let Some((r, mut sources)) = by_id.remove(&id) else {
                continue;
            };
            if let Some(key) = view.inner.relation_key(&r.id)? {
                view.lost_sources.entry(key).or_default().extend(sources);
                continue;
            }
            let created_at = parse_time(&r.created_at)?;
            if created_at > at {
                continue;
            }
            let Some((subject, entity)) = view.entity(&r.subject)? else {
                continue;
            };
            let object = match &r.object {
                Some(id) => match view.entity(id)? {
                    Some((key, _)) => Some(key),
                    None => continue,
                },
                None => None,
            };
            let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
            sources.sort();
            sources.dedup();
            let key = -(view.gone.len() as i64) - 1;
            view.gone.push(Gone {
                row: RelationRow {
                    key,
                    subject,
                    object,
                    id: r.id.clone(),
                    predicate: r.predicate.clone(),
                    value: r.value.clone(),
                    valid_from: time(&r.valid_from)?,
                    valid_to: time(&r.valid_to)?,
                    closed_by: r.closed_by.clone(),
                    confidence: r.confidence as f32,
                    scope: entity.scope,
                    created_at,
                },
                sources,
            });
        }
        let mut rows: Vec<RelationRow> = view.gone.iter().map(|g| g.row.clone()).collect();
        view.patch_rows(&mut rows)?;
        for (g, row) in view.gone.iter_mut().zip(rows) {
            g.row = row;
        }
        Ok(view)
    }

    /// When each closing relation named by `ids` was added, learnt once.
    fn learn_closers(&mut self, ids: Vec<String>) -> Result<()> {
        let unknown: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.closers.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let added = self.inner.relations_added(&unknown)?;
        for id in unknown {
            let when = added.get(&id).copied().or_else(|| {
                self.gone
                    .iter()
                    .find(|g| g.row.id == id)
                    .map(|g| g.row.created_at)
            });
            self.closers.insert(id, when);
        }
        Ok(())
    }

    /// Whether a relation closed by `closer` was still open at the moment.
    fn closed_later(&self, closer: &str) -> bool {
        self.closers
            .get(closer)
            .copied()
            .flatten()
            .is_some_and(|t| t > self.at)
    }

    /// Leaves out the rows added after the moment and reopens those closed after it.
    fn patch_rows(&mut self, rows: &mut Vec<RelationRow>) -> Result<()> {
        rows.retain(|r| r.created_at <= self.at);
        self.learn_closers(rows.iter().filter_map(|r| r.closed_by.clone()).collect())?;
        for r in rows.iter_mut() {
            if r.closed_by.as_deref().is_some_and(|c| self.closed_later(c)) {
                r.valid_to = None;
                r.closed_by = None;
            }
        }
        Ok(())
    }

    /// The same for full relations, with the sources of memories deleted since.
    fn patch_relations(&mut self, rows: &mut Vec<StoredRelation>) -> Result<()> {
        rows.retain(|r| r.relation.created_at <= self.at);
        self.learn_closers(
            rows.iter()
                .filter_map(|r| r.relation.closed_by.clone())
                .collect(),
        )?;
        for r in rows.iter_mut() {
            let rel = &mut r.relation;
            if rel
                .closed_by
                .as_deref()
                .is_some_and(|c| self.closed_later(c))
            {
                rel.valid_to = None;
                rel.closed_by = None;
            }
            if let Some(lost) = self.lost_sources.get(&r.key) {
                rel.sources.extend(lost.iter().cloned());
                rel.sources.sort();
                rel.sources.dedup();
            }
        }
        Ok(())
    }

    /// The relations removed since that touch `keys` the way `direction` says.
    fn gone_touching(&self, keys: &[i64], direction: Direction) -> Vec<&Gone> {
        let keys: HashSet<i64> = keys.iter().copied().collect();
        self.gone
            .iter()
            .filter(|g| {
                let out = keys.contains(&g.row.subject);
                let into = g.row.object.is_some_and(|o| keys.contains(&o));
                match direction {
                    Direction::Out => out,
                    Direction::In => into,
                    Direction::Both => out || into,
                }
            })
            .collect()
    }

    /// Removed relations in full, their ends read from the snapshot.
    fn complete(&mut self, gone: &[(RelationRow, Vec<String>)]) -> Result<Vec<StoredRelation>> {
        let keys: Vec<i64> = gone
            .iter()
            .flat_map(|(r, _)| [Some(r.subject), r.object])
            .flatten()
            .collect();
        let entities = self.inner.entities_by_key(&keys)?;
        let mut out = Vec::new();
        for (row, sources) in gone {
            let Some(subject) = entities.get(&row.subject) else {
                continue;
            };
            let object = match row.object {
                Some(k) => match entities.get(&k) {
                    Some(e) => Some(e),
                    None => continue,
                },
                None => None,
            };
            out.push(StoredRelation {
                key: row.key,
                subject: row.subject,
                object: row.object,
                relation: row.clone().into_relation(subject, object, sources.clone()),
            });
        }
        Ok(out)
    }
}

impl GraphRead for AsOf<'_> {
    fn entity(&mut self, id: &str) -> Result<Option<(i64, Entity)>> {
        let at = self.at;
        Ok(self.inner.entity(id)?.filter(|(_, e)| e.created_at <= at))
    }

    fn entity_keys_named(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<i64>> {
        self.inner.entity_keys_named(scope, folded)
    }

    fn entities_by_key(&mut self, keys: &[i64]) -> Result<HashMap<i64, Entity>> {
        let at = self.at;
        let mut found = self.inner.entities_by_key(keys)?;
        found.retain(|_, e| e.created_at <= at);
        Ok(found)
    }

    fn entity_named(&mut self, scope: &Scope, folded: &str) -> Result<Option<(i64, Entity)>> {
        let at = self.at;
        Ok(self
            .inner
            .entity_named(scope, folded)?
            .filter(|(_, e)| e.created_at <= at))
    }

    fn entities_matching(
        &mut self,
        scope: &Scope,
        folded: &str,
        entity_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>> {
        let at = self.at;
        let mut found = self
            .inner
            .entities_matching(scope, folded, entity_type, limit)?;
        found.retain(|e| e.created_at <= at);
        Ok(found)
    }

    fn relations_touching(
        &mut self,
        keys: &[i64],
        direction: Direction,
    ) -> Result<Vec<StoredRelation>> {
        let mut rows = self.inner.relations_touching(keys, direction)?;
        self.patch_relations(&mut rows)?;
        let gone: Vec<(RelationRow, Vec<String>)> = self
            .gone_touching(keys, direction)
            .into_iter()
            .map(|g| (g.row.clone(), g.sources.clone()))
            .collect();
        rows.extend(self.complete(&gone)?);
        Ok(rows)
    }

    fn steps_touching(&mut self, keys: &[i64], direction: Direction) -> Result<Vec<Step>> {
        // Steps carry no times of recording: read the rows behind them.
        let step_keys: Vec<i64> = self
            .inner
            .steps_touching(keys, direction)?
            .iter()
            .map(|s| s.key)
            .collect();
        let mut rows: Vec<RelationRow> = self
            .inner
            .relation_rows(&step_keys)?
            .into_values()
            .collect();
        self.patch_rows(&mut rows)?;
        rows.extend(
            self.gone_touching(keys, direction)
                .into_iter()
                .map(|g| g.row.clone()),
        );
        rows.sort_by_key(|r| r.key);
        Ok(rows.iter().map(step_of).collect())
    }

    fn relation_rows(&mut self, keys: &[i64]) -> Result<HashMap<i64, RelationRow>> {
        let stored: Vec<i64> = keys.iter().copied().filter(|k| *k > 0).collect();
        let mut rows: Vec<RelationRow> = self.inner.relation_rows(&stored)?.into_values().collect();
        self.patch_rows(&mut rows)?;
        rows.extend(
            self.gone
                .iter()
                .filter(|g| keys.contains(&g.row.key))
                .map(|g| g.row.clone()),
        );
        Ok(rows.into_iter().map(|r| (r.key, r)).collect())
    }

    fn sources_of(&mut self, relation_keys: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        let stored: Vec<i64> = relation_keys.iter().copied().filter(|k| *k > 0).collect();
        let mut out = self.inner.sources_of(&stored)?;
        for (key, lost) in &self.lost_sources {
            if let Some(sources) = out.get_mut(key) {
                sources.extend(lost.iter().cloned());
                sources.sort();
                sources.dedup();
            }
        }
        for g in &self.gone {
            if relation_keys.contains(&g.row.key) {
                out.insert(g.row.key, g.sources.clone());
            }
        }
        Ok(out)
    }

    fn edges_touching(&mut self, keys: &[i64]) -> Result<Vec<Edge>> {
        self.inner.edges_touching(keys)
    }

    fn is_empty(&mut self) -> Result<bool> {
        self.inner.is_empty()
    }

    fn sourced_edges(&mut self, memory_keys: &[i64]) -> Result<Vec<(i64, Edge)>> {
        self.inner.sourced_edges(memory_keys)
    }

    fn relations_in(
        &mut self,
        scope: &Scope,
        predicate: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<StoredRelation>> {
        // A relation that lost the source since had it then.
        let mut rows = self.inner.relations_in(scope, predicate, None)?;
        self.patch_relations(&mut rows)?;
        let gone: Vec<(RelationRow, Vec<String>)> = self
            .gone
            .iter()
            .filter(|g| g.row.scope == *scope)
            .filter(|g| predicate.is_none_or(|p| g.row.predicate == p))
            .map(|g| (g.row.clone(), g.sources.clone()))
            .collect();
        rows.extend(self.complete(&gone)?);
        if let Some(source) = source {
            rows.retain(|r| r.relation.sources.iter().any(|s| s == source));
        }
        rows.sort_by_key(|r| (r.relation.created_at, r.key));
        Ok(rows)
    }

    fn names_shaped(
        &mut self,
        scope: &Scope,
        shape: &NameShape,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        self.inner.names_shaped(scope, shape, limit)
    }

    fn known_names(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<String>> {
        self.inner.known_names(scope, folded)
    }

    fn entity_embeddings(
        &mut self,
        scope: &Scope,
        entity_type: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>> {
        self.inner.entity_embeddings(scope, entity_type, limit)
    }

    fn entity_history(&mut self, id: &str) -> Result<Vec<EntityEvent>> {
        let at = self.at;
        let mut events = self.inner.entity_history(id)?;
        events.retain(|e| e.created_at <= at);
        Ok(events)
    }

    fn relation_key(&mut self, id: &str) -> Result<Option<i64>> {
        self.inner.relation_key(id)
    }

    fn forgotten(&mut self, memory_id: &str) -> Result<Vec<ForgottenRelation>> {
        self.inner.forgotten(memory_id)
    }

    fn forgotten_since(&mut self, at: DateTime<Utc>) -> Result<Vec<(String, ForgottenRelation)>> {
        self.inner.forgotten_since(at)
    }

    fn relations_added(&mut self, ids: &[String]) -> Result<HashMap<String, DateTime<Utc>>> {
        self.inner.relations_added(ids)
    }

    fn export_entities(&mut self, after: i64, limit: usize) -> Result<Vec<ExportedEntity>> {
        self.inner.export_entities(after, limit)
    }

    fn export_relations(&mut self, after: i64, limit: usize) -> Result<Vec<StoredRelation>> {
        self.inner.export_relations(after, limit)
    }

    fn export_entity_history(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, EntityEvent)>> {
        self.inner.export_entity_history(after, limit)
    }

    fn export_forgotten(&mut self, after: i64, limit: usize) -> Result<Vec<ForgottenSource>> {
        self.inner.export_forgotten(after, limit)
    }
}
