//! The graph in PostgreSQL: entities, the folded names they answer to, relations and their
//! source memories (schema version 3), over one session, so that a read snapshot and a
//! write transaction share them. The statements are the SQLite backend's
//! (`store/sqlite/graph.rs`), and so are the orders: text columns compare byte-wise
//! (COLLATE "C"), as SQLite's do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::Row;

use super::pool::{get, Session};
use super::rows::scope_values;
use crate::error::{Error, Result};
use crate::graph::{Direction, Entity, EntityEvent, Relation};
use crate::store::{
    corrupted, entity_event, opt_scope, Edge, ExportedEntity, ForgottenRelation, ForgottenSource,
    GraphRead, GraphWrite, NameShape, RelationRow, Step, StoredRelation,
};
use crate::types::{format_time, parse_time, Scope};

/// The graph over a session: a read snapshot's or a write transaction's.
pub(super) struct PgGraph<'s, 'c> {
    pub(super) s: &'s mut Session<'c>,
}

/// An entity's columns, its aliases last; as in SQLite, they are gathered and sorted only
/// for an entity that has any.
const ENTITY_COLUMNS: &str = "e.key, e.id, e.name, e.type, e.summary, e.user_id, e.agent_id, \
    e.run_id, e.org_id, e.created_at, e.updated_at, \
    CASE WHEN e.aliased \
    THEN ARRAY(SELECT n.name FROM agentmem_entity_names n \
               WHERE n.entity_key = e.key AND n.folded <> e.folded ORDER BY n.name) \
    ELSE '{}'::text[] END";

const RELATION_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.id, s.id, s.name, \
    r.predicate, o.id, coalesce(o.name, r.value), r.value IS NOT NULL, r.valid_from, \
    r.valid_to, r.closed_by, r.confidence, \
    ARRAY(SELECT x.memory_id FROM agentmem_relation_sources x \
          WHERE x.relation_key = r.key ORDER BY x.memory_id), \
    r.user_id, r.agent_id, r.run_id, r.org_id, r.created_at";

/// A relation's own row, without joins or aggregates (see [`RelationRow`]).
const ROW_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.id, r.predicate, r.value, \
    r.valid_from, r.valid_to, r.closed_by, r.confidence, r.user_id, r.agent_id, r.run_id, \
    r.org_id, r.created_at";

/// What a walk reads of a relation (see [`Step`]): all of it in each of the relations'
/// indexes by subject and by object (index-only scans).
const STEP_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.predicate, r.valid_from, \
    r.valid_to, r.user_id, r.agent_id, r.run_id, r.org_id";

const RELATION_FROM: &str = "agentmem_relations r \
    JOIN agentmem_entities s ON s.key = r.subject_key \
    LEFT JOIN agentmem_entities o ON o.key = r.object_key";

fn time(row: &Row, i: usize) -> Result<DateTime<Utc>> {
    let s: String = get(row, i)?;
    parse_time(&s).map_err(|e| corrupted("time", e))
}

fn opt_time(row: &Row, i: usize) -> Result<Option<DateTime<Utc>>> {
    get::<Option<String>>(row, i)?
        .map(|s| parse_time(&s).map_err(|e| corrupted("time", e)))
        .transpose()
}

fn scope_at(row: &Row, i: usize) -> Result<Scope> {
    Ok(Scope {
        user_id: opt_scope(get(row, i)?),
        agent_id: opt_scope(get(row, i + 1)?),
        run_id: opt_scope(get(row, i + 2)?),
        org_id: opt_scope(get(row, i + 3)?),
    })
}

fn entity_from_row(row: &Row) -> Result<(i64, Entity)> {
    Ok((
        get(row, 0)?,
        Entity {
            id: get(row, 1)?,
            name: get(row, 2)?,
            entity_type: get(row, 3)?,
            summary: get(row, 4)?,
            scope: scope_at(row, 5)?,
            created_at: time(row, 9)?,
            updated_at: time(row, 10)?,
            aliases: get(row, 11)?,
        },
    ))
}

fn relation_from_row(row: &Row) -> Result<StoredRelation> {
    let confidence: f64 = get(row, 13)?;
    Ok(StoredRelation {
        key: get(row, 0)?,
        subject: get(row, 1)?,
        object: get(row, 2)?,
        relation: Relation {
            id: get(row, 3)?,
            subject: get(row, 4)?,
            subject_name: get(row, 5)?,
            predicate: get(row, 6)?,
            object: get(row, 7)?,
            object_name: get(row, 8)?,
            literal: get(row, 9)?,
            valid_from: opt_time(row, 10)?,
            valid_to: opt_time(row, 11)?,
            closed_by: get(row, 12)?,
            confidence: confidence as f32,
            sources: get(row, 14)?,
            scope: scope_at(row, 15)?,
            created_at: time(row, 19)?,
        },
    })
}

fn row_from_row(row: &Row) -> Result<RelationRow> {
    let confidence: f64 = get(row, 9)?;
    Ok(RelationRow {
        key: get(row, 0)?,
        subject: get(row, 1)?,
        object: get(row, 2)?,
        id: get(row, 3)?,
        predicate: get(row, 4)?,
        value: get(row, 5)?,
        valid_from: opt_time(row, 6)?,
        valid_to: opt_time(row, 7)?,
        closed_by: get(row, 8)?,
        confidence: confidence as f32,
        scope: scope_at(row, 10)?,
        created_at: time(row, 14)?,
    })
}

fn step_from_row(row: &Row) -> Result<Step> {
    Ok(Step {
        key: get(row, 0)?,
        subject: get(row, 1)?,
        object: get(row, 2)?,
        predicate: get(row, 3)?,
        valid_from: opt_time(row, 4)?,
        valid_to: opt_time(row, 5)?,
        scope: scope_at(row, 6)?,
    })
}

/// The condition on `r` of relations touching the keys of `$1` the given way.
fn touching(direction: Direction) -> &'static str {
    match direction {
        Direction::Out => "r.subject_key = ANY($1::int8[])",
        Direction::In => "r.object_key = ANY($1::int8[])",
        Direction::Both => "r.subject_key = ANY($1::int8[]) OR r.object_key = ANY($1::int8[])",
    }
}

/// PostgreSQL refuses the NUL character in text (SQLite stores it): a clear error rather
/// than the server's encoding complaint, before anything is written. (Reads looking for a
/// text with a NUL find nothing without asking: no stored text holds one.)
fn check_text<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<()> {
    if has_nul(values) {
        return Err(Error::invalid(
            "graph names, types, summaries, predicates and values must not contain NUL \
             characters (PostgreSQL cannot store them)",
        ));
    }
    Ok(())
}

fn has_nul<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().any(|v| v.contains('\0'))
}

impl PgGraph<'_, '_> {
    fn entities(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(i64, Entity)>> {
        self.s
            .query(sql, params)?
            .iter()
            .map(entity_from_row)
            .collect()
    }

    fn relations(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredRelation>> {
        self.s
            .query(sql, params)?
            .iter()
            .map(relation_from_row)
            .collect()
    }
}

impl GraphRead for PgGraph<'_, '_> {
    fn entity(&mut self, id: &str) -> Result<Option<(i64, Entity)>> {
        if has_nul([id]) {
            return Ok(None);
        }
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM agentmem_entities e WHERE e.id = $1::text");
        Ok(self.entities(&sql, &[&id])?.pop())
    }

    fn entities_by_key(&mut self, keys: &[i64]) -> Result<HashMap<i64, Entity>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM agentmem_entities e WHERE e.key = ANY($1::int8[])"
        );
        Ok(self.entities(&sql, &[&keys])?.into_iter().collect())
    }

    fn entity_named(&mut self, scope: &Scope, folded: &str) -> Result<Option<(i64, Entity)>> {
        if has_nul(
            scope_values(scope)
                .iter()
                .map(String::as_str)
                .chain([folded]),
        ) {
            return Ok(None);
        }
        let [u, a, r, o] = scope_values(scope);
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM agentmem_entity_names n
             JOIN agentmem_entities e ON e.key = n.entity_key
             WHERE n.user_id = $1::text AND n.agent_id = $2::text AND n.run_id = $3::text
             AND n.org_id = $4::text AND n.folded = $5::text"
        );
        Ok(self.entities(&sql, &[&u, &a, &r, &o, &folded])?.pop())
    }

    fn entities_matching(
        &mut self,
        scope: &Scope,
        folded: &str,
        entity_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>> {
        let [u, a, r, o] = scope_values(scope);
        if has_nul([&u, &a, &r, &o, folded].into_iter().chain(entity_type)) {
            return Ok(Vec::new());
        }
        // Names containing the text; those equal to it, then starting with it, first.
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM agentmem_entities e JOIN
                 (SELECT entity_key, min(CASE WHEN folded = $5::text THEN 0
                                             WHEN starts_with(folded, $5::text) THEN 1
                                             ELSE 2 END) AS fit
                  FROM agentmem_entity_names WHERE user_id = $1::text AND agent_id = $2::text
                  AND run_id = $3::text AND org_id = $4::text AND strpos(folded, $5::text) > 0
                  GROUP BY entity_key) m
                 ON m.entity_key = e.key
             WHERE $6::text IS NULL OR e.type = $6::text
             ORDER BY m.fit, e.folded, e.key LIMIT $7::int8"
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        Ok(self
            .entities(&sql, &[&u, &a, &r, &o, &folded, &entity_type, &limit])?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    fn relations_touching(
        &mut self,
        keys: &[i64],
        direction: Direction,
    ) -> Result<Vec<StoredRelation>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM} WHERE {} ORDER BY r.key",
            touching(direction)
        );
        self.relations(&sql, &[&keys])
    }

    fn steps_touching(&mut self, keys: &[i64], direction: Direction) -> Result<Vec<Step>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Each way on its own index, then each row once (as in SQLite).
        let by = |end: &str| {
            format!(
                "SELECT {STEP_COLUMNS} FROM agentmem_relations r WHERE r.{end} = ANY($1::int8[])"
            )
        };
        let sql = match direction {
            Direction::Out => format!("{} ORDER BY 1", by("subject_key")),
            Direction::In => format!("{} ORDER BY 1", by("object_key")),
            Direction::Both => format!(
                "{} UNION {} ORDER BY 1",
                by("subject_key"),
                by("object_key")
            ),
        };
        self.s
            .query(&sql, &[&keys])?
            .iter()
            .map(step_from_row)
            .collect()
    }

    fn relation_rows(&mut self, keys: &[i64]) -> Result<HashMap<i64, RelationRow>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql =
            format!("SELECT {ROW_COLUMNS} FROM agentmem_relations r WHERE r.key = ANY($1::int8[])");
        self.s
            .query(&sql, &[&keys])?
            .iter()
            .map(|row| row_from_row(row).map(|r| (r.key, r)))
            .collect()
    }

    fn sources_of(&mut self, relation_keys: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        if relation_keys.is_empty() {
            return Ok(out);
        }
        for row in self.s.query(
            "SELECT relation_key, memory_id FROM agentmem_relation_sources
             WHERE relation_key = ANY($1::int8[]) ORDER BY relation_key, memory_id",
            &[&relation_keys],
        )? {
            out.entry(get(&row, 0)?).or_default().push(get(&row, 1)?);
        }
        Ok(out)
    }

    fn entity_keys_named(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<i64>> {
        // A text with NUL is never stored: it names nothing.
        let names: Vec<&str> = folded
            .iter()
            .map(String::as_str)
            .filter(|n| !n.contains('\0'))
            .collect();
        if names.is_empty() || has_nul(scope_values(scope).iter().map(String::as_str)) {
            return Ok(Vec::new());
        }
        let [u, a, r, o] = scope_values(scope);
        self.s
            .query(
                "SELECT DISTINCT entity_key FROM agentmem_entity_names
                 WHERE user_id = $1::text AND agent_id = $2::text AND run_id = $3::text
                 AND org_id = $4::text AND folded = ANY($5::text[])",
                &[&u, &a, &r, &o, &names],
            )?
            .iter()
            .map(|row| get(row, 0))
            .collect()
    }

    fn edges_touching(&mut self, keys: &[i64]) -> Result<Vec<Edge>> {
        self.s
            .query(
                "SELECT subject_key, object_key, valid_from, valid_to
                 FROM agentmem_relations
                 WHERE subject_key = ANY($1::int8[]) OR object_key = ANY($1::int8[])",
                &[&keys],
            )?
            .iter()
            .map(|row| {
                Ok(Edge {
                    subject: get(row, 0)?,
                    object: get(row, 1)?,
                    valid_from: opt_time(row, 2)?,
                    valid_to: opt_time(row, 3)?,
                })
            })
            .collect()
    }

    fn is_empty(&mut self) -> Result<bool> {
        let row = self
            .s
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM agentmem_entities)", &[])?;
        get(&row, 0)
    }

    fn sourced_edges(&mut self, memory_keys: &[i64]) -> Result<Vec<(i64, Edge)>> {
        if memory_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.s
            .query(
                "SELECT m.key, r.subject_key, r.object_key, r.valid_from, r.valid_to
                 FROM agentmem_memories m
                 JOIN agentmem_relation_sources s ON s.memory_id = m.id
                 JOIN agentmem_relations r ON r.key = s.relation_key
                 WHERE m.key = ANY($1::int8[])",
                &[&memory_keys],
            )?
            .iter()
            .map(|row| {
                Ok((
                    get(row, 0)?,
                    Edge {
                        subject: get(row, 1)?,
                        object: get(row, 2)?,
                        valid_from: opt_time(row, 3)?,
                        valid_to: opt_time(row, 4)?,
                    },
                ))
            })
            .collect()
    }

    fn relations_in(
        &mut self,
        scope: &Scope,
        predicate: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<StoredRelation>> {
        let [u, a, r, o] = scope_values(scope);
        if has_nul(
            [u.as_str(), &a, &r, &o]
                .into_iter()
                .chain(predicate)
                .chain(source),
        ) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM}
             WHERE r.user_id = $1::text AND r.agent_id = $2::text AND r.run_id = $3::text
             AND r.org_id = $4::text
             AND ($5::text IS NULL OR r.predicate = $5::text)
             AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM agentmem_relation_sources x
                                              WHERE x.relation_key = r.key
                                              AND x.memory_id = $6::text))
             ORDER BY r.key"
        );
        self.relations(&sql, &[&u, &a, &r, &o, &predicate, &source])
    }

    fn names_shaped(
        &mut self,
        scope: &Scope,
        shape: &NameShape,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        let [u, a, r, o] = scope_values(scope);
        let Some((from, to)) = shape.range() else {
            return Ok(Vec::new());
        };
        if has_nul([u.as_str(), &a, &r, &o, &from]) {
            return Ok(Vec::new());
        }
        let limit = limit.min(i64::MAX as usize) as i64;
        let (lo, hi, spaces) = (
            shape.min_len as i64,
            shape.max_len as i64,
            shape.words.saturating_sub(1) as i64,
        );
        self.s
            .query(
                "SELECT folded, entity_key FROM agentmem_entity_names WHERE user_id = $1::text
                 AND agent_id = $2::text AND run_id = $3::text AND org_id = $4::text
                 AND folded >= $5::text AND folded < $6::text
                 AND length(folded) BETWEEN $7::int8 AND $8::int8
                 AND length(folded) - length(replace(folded, ' ', '')) = $9::int8
                 ORDER BY folded LIMIT $10::int8",
                &[&u, &a, &r, &o, &from, &to, &lo, &hi, &spaces, &limit],
            )?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect()
    }

    fn known_names(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<String>> {
        let [u, a, r, o] = scope_values(scope);
        if has_nul([u.as_str(), &a, &r, &o]) {
            return Ok(Vec::new());
        }
        let folded: Vec<&str> = folded
            .iter()
            .map(String::as_str)
            .filter(|f| !f.contains('\0'))
            .collect();
        self.s
            .query(
                "SELECT folded FROM agentmem_entity_names WHERE user_id = $1::text
                 AND agent_id = $2::text AND run_id = $3::text AND org_id = $4::text
                 AND folded = ANY($5::text[])",
                &[&u, &a, &r, &o, &folded],
            )?
            .iter()
            .map(|row| get(row, 0))
            .collect()
    }

    fn entity_embeddings(
        &mut self,
        scope: &Scope,
        entity_type: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>> {
        let [u, a, r, o] = scope_values(scope);
        if has_nul([u.as_str(), &a, &r, &o, entity_type]) {
            return Ok(Vec::new());
        }
        let limit = limit.min(i64::MAX as usize) as i64;
        self.s
            .query(
                "SELECT e.key, v.embedding FROM agentmem_entities e
                 JOIN agentmem_entity_embeddings v ON v.entity_key = e.key
                 WHERE e.user_id = $1::text AND e.agent_id = $2::text AND e.run_id = $3::text
                 AND e.org_id = $4::text AND e.type = $5::text
                 ORDER BY e.key DESC LIMIT $6::int8",
                &[&u, &a, &r, &o, &entity_type, &limit],
            )?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
            .collect()
    }

    fn relation_key(&mut self, id: &str) -> Result<Option<i64>> {
        if has_nul([id]) {
            return Ok(None);
        }
        self.s
            .query(
                "SELECT key FROM agentmem_relations WHERE id = $1::text",
                &[&id],
            )?
            .first()
            .map(|row| get(row, 0))
            .transpose()
    }

    fn forgotten_since(&mut self, at: DateTime<Utc>) -> Result<Vec<(String, ForgottenRelation)>> {
        self.s
            .query(
                "SELECT memory_id, relation::text FROM agentmem_forgotten_sources
                 WHERE forgotten_at > $1::text ORDER BY key",
                &[&format_time(at)],
            )?
            .iter()
            .map(|row| {
                let relation: String = get(row, 1)?;
                Ok((
                    get(row, 0)?,
                    serde_json::from_str(&relation).map_err(|e| corrupted("relation", e))?,
                ))
            })
            .collect()
    }

    fn relations_added(&mut self, ids: &[String]) -> Result<HashMap<String, DateTime<Utc>>> {
        let ids: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !id.contains('\0'))
            .collect();
        self.s
            .query(
                "SELECT id, created_at FROM agentmem_relations WHERE id = ANY($1::text[])",
                &[&ids],
            )?
            .iter()
            .map(|row| Ok((get(row, 0)?, time(row, 1)?)))
            .collect()
    }

    fn forgotten(&mut self, memory_id: &str) -> Result<Vec<ForgottenRelation>> {
        if has_nul([memory_id]) {
            return Ok(Vec::new());
        }
        self.s
            .query(
                "SELECT relation::text FROM agentmem_forgotten_sources WHERE memory_id = $1::text
                 ORDER BY key",
                &[&memory_id],
            )?
            .iter()
            .map(|row| {
                let json: String = get(row, 0)?;
                serde_json::from_str(&json).map_err(|e| corrupted("relation", e))
            })
            .collect()
    }

    fn entity_history(&mut self, id: &str) -> Result<Vec<EntityEvent>> {
        if has_nul([id]) {
            return Ok(Vec::new());
        }
        self.s
            .query(
                "SELECT entity_id, event, detail::text, created_at FROM agentmem_entity_history
                 WHERE entity_id = $1::text ORDER BY key",
                &[&id],
            )?
            .iter()
            .map(|row| {
                let detail: String = get(row, 2)?;
                entity_event(get(row, 0)?, get(row, 1)?, &detail, time(row, 3)?)
            })
            .collect()
    }

    fn export_entities(&mut self, after: i64, limit: usize) -> Result<Vec<ExportedEntity>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM agentmem_entities e WHERE e.key > $1::int8
             ORDER BY e.key LIMIT $2::int8"
        );
        let mut page: Vec<ExportedEntity> = self
            .entities(&sql, &[&after, &limit])?
            .into_iter()
            .map(|(key, entity)| ExportedEntity {
                key,
                entity,
                names: Vec::new(),
                embedding: None,
            })
            .collect();
        let keys: Vec<i64> = page.iter().map(|e| e.key).collect();
        let mut names: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for row in self.s.query(
            "SELECT entity_key, name, folded FROM agentmem_entity_names
             WHERE entity_key = ANY($1::int8[]) ORDER BY entity_key, folded",
            &[&keys],
        )? {
            names
                .entry(get(&row, 0)?)
                .or_default()
                .push((get(&row, 1)?, get(&row, 2)?));
        }
        let mut embeddings: HashMap<i64, Vec<f32>> = HashMap::new();
        for row in self.s.query(
            "SELECT entity_key, embedding FROM agentmem_entity_embeddings
             WHERE entity_key = ANY($1::int8[])",
            &[&keys],
        )? {
            embeddings.insert(get(&row, 0)?, get(&row, 1)?);
        }
        for e in &mut page {
            e.names = names.remove(&e.key).unwrap_or_default();
            e.embedding = embeddings.remove(&e.key);
        }
        Ok(page)
    }

    fn export_entity_history(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, EntityEvent)>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.s
            .query(
                "SELECT key, entity_id, event, detail::text, created_at
                 FROM agentmem_entity_history WHERE key > $1::int8 ORDER BY key LIMIT $2::int8",
                &[&after, &limit],
            )?
            .iter()
            .map(|row| {
                let detail: String = get(row, 3)?;
                let event = entity_event(get(row, 1)?, get(row, 2)?, &detail, time(row, 4)?)?;
                Ok((get(row, 0)?, event))
            })
            .collect()
    }

    fn export_forgotten(&mut self, after: i64, limit: usize) -> Result<Vec<ForgottenSource>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.s
            .query(
                "SELECT key, memory_id, relation::text, forgotten_at
                 FROM agentmem_forgotten_sources WHERE key > $1::int8 ORDER BY key
                 LIMIT $2::int8",
                &[&after, &limit],
            )?
            .iter()
            .map(|row| {
                let relation: String = get(row, 2)?;
                Ok(ForgottenSource {
                    key: get(row, 0)?,
                    memory_id: get(row, 1)?,
                    relation: serde_json::from_str(&relation)
                        .map_err(|e| corrupted("relation", e))?,
                    forgotten_at: get(row, 3)?,
                })
            })
            .collect()
    }

    fn export_relations(&mut self, after: i64, limit: usize) -> Result<Vec<StoredRelation>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM} WHERE r.key > $1::int8
             ORDER BY r.key LIMIT $2::int8"
        );
        self.relations(&sql, &[&after, &limit])
    }
}

impl GraphWrite for PgGraph<'_, '_> {
    fn insert_entity(&mut self, entity: &Entity) -> Result<i64> {
        check_text(
            [&entity.name, &entity.entity_type]
                .into_iter()
                .map(String::as_str)
                .chain(entity.summary.as_deref()),
        )?;
        let [u, a, r, o] = scope_values(&entity.scope);
        let row = self.s.query_one(
            "INSERT INTO agentmem_entities (id, name, folded, type, summary, user_id, agent_id,
                                            run_id, org_id, created_at, updated_at)
             VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
                     $8::text, $9::text, $10::text, $11::text)
             RETURNING key",
            &[
                &entity.id,
                &entity.name,
                &crate::graph::fold_name(&entity.name),
                &entity.entity_type,
                &entity.summary,
                &u,
                &a,
                &r,
                &o,
                &format_time(entity.created_at),
                &format_time(entity.updated_at),
            ],
        )?;
        get(&row, 0)
    }

    fn add_name(&mut self, key: i64, scope: &Scope, name: &str, folded: &str) -> Result<()> {
        let [u, a, r, o] = scope_values(scope);
        check_text([name, folded, &u, &a, &r, &o])?;
        let added = self.s.execute(
            "INSERT INTO agentmem_entity_names (user_id, agent_id, run_id, org_id, folded, name,
                                                entity_key)
             VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::int8)
             ON CONFLICT DO NOTHING",
            &[&u, &a, &r, &o, &folded, &name, &key],
        )?;
        if added > 0 {
            refresh_aliased(self.s, key)?;
        }
        Ok(())
    }

    fn set_summary(&mut self, key: i64, summary: &str, at: DateTime<Utc>) -> Result<()> {
        check_text([summary])?;
        self.s.execute(
            "UPDATE agentmem_entities SET summary = $2::text, updated_at = $3::text
             WHERE key = $1::int8",
            &[&key, &summary, &format_time(at)],
        )?;
        Ok(())
    }

    fn insert_relation(
        &mut self,
        relation: &Relation,
        subject: i64,
        object: Option<i64>,
    ) -> Result<i64> {
        let value = relation.literal.then_some(relation.object_name.as_str());
        check_text([relation.predicate.as_str()].into_iter().chain(value))?;
        let [u, a, r, o] = scope_values(&relation.scope);
        let row = self.s.query_one(
            "INSERT INTO agentmem_relations (id, subject_key, predicate, object_key, value,
                                             valid_from, valid_to, closed_by, confidence,
                                             user_id, agent_id, run_id, org_id, created_at)
             VALUES ($1::text, $2::int8, $3::text, $4::int8, $5::text, $6::text, $7::text,
                     $8::text, $9::float8, $10::text, $11::text, $12::text, $13::text,
                     $14::text)
             RETURNING key",
            &[
                &relation.id,
                &subject,
                &relation.predicate,
                &object,
                &value,
                &relation.valid_from.map(format_time),
                &relation.valid_to.map(format_time),
                &relation.closed_by,
                &f64::from(relation.confidence),
                &u,
                &a,
                &r,
                &o,
                &format_time(relation.created_at),
            ],
        )?;
        get(&row, 0)
    }

    fn add_source(&mut self, key: i64, memory_id: &str) -> Result<()> {
        check_text([memory_id])?;
        self.s.execute(
            "INSERT INTO agentmem_relation_sources (relation_key, memory_id)
             VALUES ($1::int8, $2::text) ON CONFLICT DO NOTHING",
            &[&key, &memory_id],
        )?;
        Ok(())
    }

    fn close_relation(&mut self, key: i64, valid_to: DateTime<Utc>, closed_by: &str) -> Result<()> {
        self.s.execute(
            "UPDATE agentmem_relations SET valid_to = $2::text, closed_by = $3::text
             WHERE key = $1::int8",
            &[&key, &format_time(valid_to), &closed_by],
        )?;
        Ok(())
    }

    fn set_embedding(&mut self, key: i64, vector: &[f32]) -> Result<()> {
        let vector = vector.to_vec();
        self.s.execute(
            "INSERT INTO agentmem_entity_embeddings (entity_key, embedding)
             VALUES ($1::int8, $2::real[])
             ON CONFLICT (entity_key) DO UPDATE SET embedding = excluded.embedding",
            &[&key, &vector],
        )?;
        Ok(())
    }

    fn absorb_entity(&mut self, absorbed: i64, kept: i64) -> Result<()> {
        for sql in [
            "UPDATE agentmem_entity_names SET entity_key = $2::int8 WHERE entity_key = $1::int8",
            "UPDATE agentmem_relations SET subject_key = $2::int8 WHERE subject_key = $1::int8",
            "UPDATE agentmem_relations SET object_key = $2::int8 WHERE object_key = $1::int8",
        ] {
            self.s.execute(sql, &[&absorbed, &kept])?;
        }
        self.s.execute(
            "DELETE FROM agentmem_entities WHERE key = $1::int8",
            &[&absorbed],
        )?;
        refresh_aliased(self.s, kept)
    }

    fn rename_entity(&mut self, key: i64, name: &str, at: DateTime<Utc>) -> Result<()> {
        check_text([name])?;
        self.s.execute(
            "UPDATE agentmem_entities SET name = $2::text, folded = $3::text,
             updated_at = $4::text WHERE key = $1::int8",
            &[
                &key,
                &name,
                &crate::graph::fold_name(name),
                &format_time(at),
            ],
        )?;
        refresh_aliased(self.s, key)
    }

    fn touch_entity(&mut self, key: i64, at: DateTime<Utc>) -> Result<()> {
        self.s.execute(
            "UPDATE agentmem_entities SET updated_at = $2::text WHERE key = $1::int8",
            &[&key, &format_time(at)],
        )?;
        Ok(())
    }

    fn remove_name(&mut self, key: i64, folded: &str) -> Result<()> {
        check_text([folded])?;
        self.s.execute(
            "DELETE FROM agentmem_entity_names WHERE entity_key = $1::int8 AND folded = $2::text",
            &[&key, &folded],
        )?;
        refresh_aliased(self.s, key)
    }

    fn move_relation_end(&mut self, relation: i64, from: i64, to: i64) -> Result<()> {
        self.s.execute(
            "UPDATE agentmem_relations SET
               subject_key = CASE WHEN subject_key = $2::int8 THEN $3::int8 ELSE subject_key END,
               object_key = CASE WHEN object_key = $2::int8 THEN $3::int8 ELSE object_key END
             WHERE key = $1::int8",
            &[&relation, &from, &to],
        )?;
        Ok(())
    }

    fn fold_relation(&mut self, twin: i64, into: i64) -> Result<()> {
        for sql in [
            "INSERT INTO agentmem_relation_sources (relation_key, memory_id)
             SELECT $2::int8, memory_id FROM agentmem_relation_sources
             WHERE relation_key = $1::int8 ON CONFLICT DO NOTHING",
            "UPDATE agentmem_relations
             SET closed_by = (SELECT id FROM agentmem_relations WHERE key = $2::int8)
             WHERE closed_by = (SELECT id FROM agentmem_relations WHERE key = $1::int8)",
        ] {
            self.s.execute(sql, &[&twin, &into])?;
        }
        self.s.execute(
            "DELETE FROM agentmem_relations WHERE key = $1::int8",
            &[&twin],
        )?;
        Ok(())
    }

    fn import_forgotten(&mut self, forgotten: &ForgottenSource) -> Result<()> {
        let relation =
            serde_json::to_string(&forgotten.relation).map_err(|e| corrupted("relation", e))?;
        self.s.execute(
            "INSERT INTO agentmem_forgotten_sources (memory_id, relation_id, relation,
                                                     forgotten_at)
             VALUES ($1::text, $2::text, $3::text::jsonb, $4::text)",
            &[
                &forgotten.memory_id,
                &forgotten.relation.id,
                &relation,
                &forgotten.forgotten_at,
            ],
        )?;
        Ok(())
    }

    fn clear_forgotten(&mut self, memory_id: &str) -> Result<()> {
        check_text([memory_id])?;
        self.s.execute(
            "DELETE FROM agentmem_forgotten_sources WHERE memory_id = $1::text",
            &[&memory_id],
        )?;
        Ok(())
    }

    fn delete_relation(&mut self, key: i64) -> Result<()> {
        self.s.execute(
            "DELETE FROM agentmem_relations WHERE key = $1::int8",
            &[&key],
        )?;
        Ok(())
    }

    fn record_entity_event(&mut self, event: &EntityEvent) -> Result<()> {
        let kind = serde_json::to_value(event.event).map_err(|e| corrupted("entity event", e))?;
        let detail = event.detail.to_string();
        check_text([detail.as_str()])?;
        self.s.execute(
            "INSERT INTO agentmem_entity_history (entity_id, event, detail, created_at)
             VALUES ($1::text, $2::text, $3::text::jsonb, $4::text)",
            &[
                &event.entity_id,
                &kind.as_str().unwrap_or_default(),
                &detail,
                &format_time(event.created_at),
            ],
        )?;
        Ok(())
    }
}

/// Records whether entity `key` answers to names besides its own (after its names or its
/// name changed).
fn refresh_aliased(s: &mut Session<'_>, key: i64) -> Result<()> {
    s.execute(
        "UPDATE agentmem_entities e SET aliased = EXISTS (SELECT 1 FROM agentmem_entity_names n
             WHERE n.entity_key = e.key AND n.folded <> e.folded)
         WHERE e.key = $1::int8",
        &[&key],
    )?;
    Ok(())
}

/// Forgets that relations came from memory `memory_id` (being deleted at `at`); a relation
/// left with no source memory goes too, one with another source stays. Each is kept as it
/// was, for an undo of the delete.
pub(super) fn forget_source(s: &mut Session<'_>, memory_id: &str, at: DateTime<Utc>) -> Result<()> {
    s.execute(
        "INSERT INTO agentmem_forgotten_sources (memory_id, relation_id, relation, forgotten_at)
         SELECT $1::text, r.id, jsonb_build_object('id', r.id, 'subject', s.id,
                'predicate', r.predicate, 'object', o.id, 'value', r.value,
                'valid_from', r.valid_from, 'valid_to', r.valid_to, 'closed_by', r.closed_by,
                'confidence', r.confidence, 'created_at', r.created_at), $2::text
         FROM agentmem_relation_sources x JOIN agentmem_relations r ON r.key = x.relation_key
         JOIN agentmem_entities s ON s.key = r.subject_key
         LEFT JOIN agentmem_entities o ON o.key = r.object_key
         WHERE x.memory_id = $1::text ORDER BY r.key",
        &[&memory_id, &format_time(at)],
    )?;
    let keys = s
        .query(
            "DELETE FROM agentmem_relation_sources WHERE memory_id = $1::text
             RETURNING relation_key",
            &[&memory_id],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<Vec<i64>>>()?;
    if keys.is_empty() {
        return Ok(());
    }
    s.execute(
        "DELETE FROM agentmem_relations r WHERE r.key = ANY($1::int8[])
         AND NOT EXISTS (SELECT 1 FROM agentmem_relation_sources x WHERE x.relation_key = r.key)",
        &[&keys],
    )?;
    Ok(())
}
