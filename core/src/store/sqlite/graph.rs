//! The graph in the SQLite backend: entities, the folded names they answer to, relations
//! and their source memories (schema version 4), over one connection, so that a read
//! snapshot and a write transaction share them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::ops::{self, opt_time, time, KEYS_IN_JSON};
use crate::error::Result;
use crate::graph::{Direction, Entity, EntityEvent, Relation};
use crate::store::{
    corrupted, entity_event, opt_scope, Edge, ExportedEntity, ForgottenRelation, ForgottenSource,
    GraphRead, GraphWrite, NameShape, RelationRow, Step, StoredRelation,
};
use crate::types::{format_time, Scope};

/// The graph over a connection inside a transaction.
pub(super) struct SqliteGraph<'a> {
    pub(super) conn: &'a Connection,
}

/// An entity's columns, its aliases as a JSON array last. Most entities have none: the
/// index alone says so (the aliases' own rows and their sort are read only for the others).
const ENTITY_COLUMNS: &str = "e.key, e.id, e.name, e.type, e.summary, e.user_id, e.agent_id, \
    e.run_id, e.org_id, e.created_at, e.updated_at, \
    CASE WHEN e.aliased \
    THEN (SELECT json_group_array(n.name) FROM (SELECT name FROM entity_names \
          WHERE entity_key = e.key AND folded <> e.folded ORDER BY name) n) \
    ELSE '[]' END";

const RELATION_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.id, s.id, s.name, \
    r.predicate, o.id, coalesce(o.name, r.value), r.value IS NOT NULL, r.valid_from, \
    r.valid_to, r.closed_by, r.confidence, \
    (SELECT json_group_array(memory_id) FROM (SELECT memory_id FROM relation_sources \
     WHERE relation_key = r.key ORDER BY memory_id)), \
    r.user_id, r.agent_id, r.run_id, r.org_id, r.created_at";

/// A relation's own row, without joins or aggregates (see [`RelationRow`]).
const ROW_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.id, r.predicate, r.value, \
    r.valid_from, r.valid_to, r.closed_by, r.confidence, r.user_id, r.agent_id, r.run_id, \
    r.org_id, r.created_at";

/// What a walk reads of a relation (see [`Step`]): all of it in each of the relations'
/// indexes by subject and by object, so a walk never reads the table itself.
const STEP_COLUMNS: &str = "r.key, r.subject_key, r.object_key, r.predicate, r.valid_from, \
    r.valid_to, r.user_id, r.agent_id, r.run_id, r.org_id";

const RELATION_FROM: &str = "relations r JOIN entities s ON s.key = r.subject_key \
    LEFT JOIN entities o ON o.key = r.object_key";

fn scope_at(row: &Row<'_>, i: usize) -> Result<Scope> {
    Ok(Scope {
        user_id: opt_scope(row.get(i)?),
        agent_id: opt_scope(row.get(i + 1)?),
        run_id: opt_scope(row.get(i + 2)?),
        org_id: opt_scope(row.get(i + 3)?),
    })
}

fn list(row: &Row<'_>, i: usize) -> Result<Vec<String>> {
    let json: String = row.get(i)?;
    serde_json::from_str(&json).map_err(|e| corrupted("list", e))
}

fn entity_from_row(row: &Row<'_>) -> Result<(i64, Entity)> {
    Ok((
        row.get(0)?,
        Entity {
            id: row.get(1)?,
            name: row.get(2)?,
            entity_type: row.get(3)?,
            summary: row.get(4)?,
            scope: scope_at(row, 5)?,
            created_at: time(row, 9)?,
            updated_at: time(row, 10)?,
            aliases: list(row, 11)?,
        },
    ))
}

fn relation_from_row(row: &Row<'_>) -> Result<StoredRelation> {
    let confidence: f64 = row.get(13)?;
    Ok(StoredRelation {
        key: row.get(0)?,
        subject: row.get(1)?,
        object: row.get(2)?,
        relation: Relation {
            id: row.get(3)?,
            subject: row.get(4)?,
            subject_name: row.get(5)?,
            predicate: row.get(6)?,
            object: row.get(7)?,
            object_name: row.get(8)?,
            literal: row.get(9)?,
            valid_from: opt_time(row, 10)?,
            valid_to: opt_time(row, 11)?,
            closed_by: row.get(12)?,
            confidence: confidence as f32,
            sources: list(row, 14)?,
            scope: scope_at(row, 15)?,
            created_at: time(row, 19)?,
        },
    })
}

fn row_from_row(row: &Row<'_>) -> Result<RelationRow> {
    let confidence: f64 = row.get(9)?;
    Ok(RelationRow {
        key: row.get(0)?,
        subject: row.get(1)?,
        object: row.get(2)?,
        id: row.get(3)?,
        predicate: row.get(4)?,
        value: row.get(5)?,
        valid_from: opt_time(row, 6)?,
        valid_to: opt_time(row, 7)?,
        closed_by: row.get(8)?,
        confidence: confidence as f32,
        scope: scope_at(row, 10)?,
        created_at: time(row, 14)?,
    })
}

fn step_from_row(row: &Row<'_>) -> Result<Step> {
    Ok(Step {
        key: row.get(0)?,
        subject: row.get(1)?,
        object: row.get(2)?,
        predicate: row.get(3)?,
        valid_from: opt_time(row, 4)?,
        valid_to: opt_time(row, 5)?,
        scope: scope_at(row, 6)?,
    })
}

/// The condition on `r` of relations touching the keys of `?1` (a JSON array) the given
/// way. For both ways one condition: SQLite answers it from both indexes, each row once.
fn touching(direction: Direction) -> String {
    match direction {
        Direction::Out => format!("r.subject_key IN {KEYS_IN_JSON}"),
        Direction::In => format!("r.object_key IN {KEYS_IN_JSON}"),
        Direction::Both => {
            format!("r.subject_key IN {KEYS_IN_JSON} OR r.object_key IN {KEYS_IN_JSON}")
        }
    }
}

/// A scope's four ids as stored ('' for absent).
fn scope_values(scope: &Scope) -> [String; 4] {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        s(&scope.user_id),
        s(&scope.agent_id),
        s(&scope.run_id),
        s(&scope.org_id),
    ]
}

fn relations(conn: &Connection, sql: &str, params: &[SqlValue]) -> Result<Vec<StoredRelation>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(relation_from_row(row)?);
    }
    Ok(out)
}

impl GraphRead for SqliteGraph<'_> {
    fn entity(&mut self, id: &str) -> Result<Option<(i64, Entity)>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.id = ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([id])?;
        rows.next()?.map(entity_from_row).transpose()
    }

    fn entities_by_key(&mut self, keys: &[i64]) -> Result<HashMap<i64, Entity>> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.key IN {KEYS_IN_JSON}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(keys)])?;
        let mut out = HashMap::with_capacity(keys.len());
        while let Some(row) = rows.next()? {
            let (key, entity) = entity_from_row(row)?;
            out.insert(key, entity);
        }
        Ok(out)
    }

    fn entity_keys_named(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<i64>> {
        let [u, a, r, o] = scope_values(scope);
        let names = serde_json::to_string(folded).map_err(|e| corrupted("names", e))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT entity_key FROM entity_names WHERE user_id = ?1 AND agent_id = ?2
             AND run_id = ?3 AND org_id = ?4 AND folded IN (SELECT value FROM json_each(?5))",
        )?;
        let rows = stmt.query_map(params![u, a, r, o, names], |row| row.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn entity_named(&mut self, scope: &Scope, folded: &str) -> Result<Option<(i64, Entity)>> {
        let [u, a, r, o] = scope_values(scope);
        let key: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT entity_key FROM entity_names WHERE user_id = ?1 AND agent_id = ?2
                 AND run_id = ?3 AND org_id = ?4 AND folded = ?5",
            )?
            .query_row(params![u, a, r, o, folded], |row| row.get(0))
            .optional()?;
        let Some(key) = key else { return Ok(None) };
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.key = ?1");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([key])?;
        rows.next()?.map(entity_from_row).transpose()
    }

    fn entities_matching(
        &mut self,
        scope: &Scope,
        folded: &str,
        entity_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>> {
        let [u, a, r, o] = scope_values(scope);
        // Names containing the text; those equal to it, then starting with it, first.
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM entities e JOIN
                 (SELECT entity_key, min(CASE WHEN folded = ?5 THEN 0
                                             WHEN substr(folded, 1, length(?5)) = ?5 THEN 1
                                             ELSE 2 END) AS fit
                  FROM entity_names WHERE user_id = ?1 AND agent_id = ?2 AND run_id = ?3
                  AND org_id = ?4 AND instr(folded, ?5) > 0 GROUP BY entity_key) m
                 ON m.entity_key = e.key
             WHERE ?6 IS NULL OR e.type = ?6
             ORDER BY m.fit, e.folded, e.key LIMIT ?7"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut rows = stmt.query(params![u, a, r, o, folded, entity_type, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(entity_from_row(row)?.1);
        }
        Ok(out)
    }

    fn relations_touching(
        &mut self,
        keys: &[i64],
        direction: Direction,
    ) -> Result<Vec<StoredRelation>> {
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM} WHERE {} ORDER BY r.key",
            touching(direction)
        );
        relations(self.conn, &sql, &[SqlValue::Text(ops::keys_json(keys))])
    }

    fn steps_touching(&mut self, keys: &[i64], direction: Direction) -> Result<Vec<Step>> {
        // Each way on its own index (covering, unlike one OR over both), then each row once.
        let by = |end: &str| {
            format!("SELECT {STEP_COLUMNS} FROM relations r WHERE r.{end} IN {KEYS_IN_JSON}")
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
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(keys)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(step_from_row(row)?);
        }
        Ok(out)
    }

    fn relation_rows(&mut self, keys: &[i64]) -> Result<HashMap<i64, RelationRow>> {
        let sql = format!("SELECT {ROW_COLUMNS} FROM relations r WHERE r.key IN {KEYS_IN_JSON}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(keys)])?;
        let mut out = HashMap::with_capacity(keys.len());
        while let Some(row) = rows.next()? {
            let row = row_from_row(row)?;
            out.insert(row.key, row);
        }
        Ok(out)
    }

    fn sources_of(&mut self, relation_keys: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
        let sql = format!(
            "SELECT relation_key, memory_id FROM relation_sources
             WHERE relation_key IN {KEYS_IN_JSON} ORDER BY relation_key, memory_id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(relation_keys)])?;
        let mut out: HashMap<i64, Vec<String>> = HashMap::new();
        while let Some(row) = rows.next()? {
            out.entry(row.get(0)?).or_default().push(row.get(1)?);
        }
        Ok(out)
    }

    fn edges_touching(&mut self, keys: &[i64]) -> Result<Vec<Edge>> {
        // As steps_touching: each end on its own (covering) index, each relation once.
        let by = |end: &str| {
            format!(
                "SELECT key, subject_key, object_key, valid_from, valid_to FROM relations
                 WHERE {end} IN {KEYS_IN_JSON}"
            )
        };
        let sql = format!("{} UNION {}", by("subject_key"), by("object_key"));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(keys)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Edge {
                subject: row.get(1)?,
                object: row.get(2)?,
                valid_from: opt_time(row, 3)?,
                valid_to: opt_time(row, 4)?,
            });
        }
        Ok(out)
    }

    fn is_empty(&mut self) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM entities)")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }

    fn sourced_edges(&mut self, memory_keys: &[i64]) -> Result<Vec<(i64, Edge)>> {
        let sql = format!(
            "SELECT m.key, r.subject_key, r.object_key, r.valid_from, r.valid_to
             FROM memories m JOIN relation_sources s ON s.memory_id = m.id
             JOIN relations r ON r.key = s.relation_key WHERE m.key IN {KEYS_IN_JSON}"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([ops::keys_json(memory_keys)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((
                row.get(0)?,
                Edge {
                    subject: row.get(1)?,
                    object: row.get(2)?,
                    valid_from: opt_time(row, 3)?,
                    valid_to: opt_time(row, 4)?,
                },
            ));
        }
        Ok(out)
    }

    fn relations_in(
        &mut self,
        scope: &Scope,
        predicate: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<StoredRelation>> {
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM}
             WHERE r.user_id = ?1 AND r.agent_id = ?2 AND r.run_id = ?3 AND r.org_id = ?4
             AND (?5 IS NULL OR r.predicate = ?5)
             AND (?6 IS NULL OR EXISTS (SELECT 1 FROM relation_sources x
                                        WHERE x.relation_key = r.key AND x.memory_id = ?6))
             ORDER BY r.key"
        );
        let [u, a, r, o] = scope_values(scope);
        let text = |v: Option<&str>| v.map_or(SqlValue::Null, |v| SqlValue::Text(v.into()));
        relations(
            self.conn,
            &sql,
            &[
                SqlValue::Text(u),
                SqlValue::Text(a),
                SqlValue::Text(r),
                SqlValue::Text(o),
                text(predicate),
                text(source),
            ],
        )
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
        // A range of the name index, its entries filtered where they lie.
        let mut stmt = self.conn.prepare_cached(
            "SELECT folded, entity_key FROM entity_names WHERE user_id = ?1 AND agent_id = ?2
             AND run_id = ?3 AND org_id = ?4 AND folded >= ?5 AND folded < ?6
             AND length(folded) BETWEEN ?7 AND ?8
             AND length(folded) - length(replace(folded, ' ', '')) = ?9
             ORDER BY folded LIMIT ?10",
        )?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let (lo, hi, spaces) = (
            shape.min_len as i64,
            shape.max_len as i64,
            shape.words.saturating_sub(1) as i64,
        );
        let rows = stmt.query_map(
            params![u, a, r, o, from, to, lo, hi, spaces, limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn known_names(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<String>> {
        let [u, a, r, o] = scope_values(scope);
        let names = serde_json::to_string(folded).map_err(|e| corrupted("names", e))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT folded FROM entity_names WHERE user_id = ?1 AND agent_id = ?2
             AND run_id = ?3 AND org_id = ?4 AND folded IN (SELECT value FROM json_each(?5))",
        )?;
        let rows = stmt.query_map(params![u, a, r, o, names], |row| row.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn entity_embeddings(
        &mut self,
        scope: &Scope,
        entity_type: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>> {
        let [u, a, r, o] = scope_values(scope);
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.key, v.embedding FROM entities e
             JOIN entity_embeddings v ON v.entity_key = e.key
             WHERE e.user_id = ?1 AND e.agent_id = ?2 AND e.run_id = ?3 AND e.org_id = ?4
             AND e.type = ?5 ORDER BY e.key DESC LIMIT ?6",
        )?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut rows = stmt.query(params![u, a, r, o, entity_type, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(1)?;
            out.push((row.get(0)?, ops::blob_to_vector(&blob)?));
        }
        Ok(out)
    }

    fn relation_key(&mut self, id: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT key FROM relations WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?)
    }

    fn forgotten_since(&mut self, at: DateTime<Utc>) -> Result<Vec<(String, ForgottenRelation)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT memory_id, relation FROM forgotten_sources WHERE forgotten_at > ?1
             ORDER BY key",
        )?;
        let mut rows = stmt.query([format_time(at)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let relation: String = row.get(1)?;
            out.push((
                row.get(0)?,
                serde_json::from_str(&relation).map_err(|e| corrupted("relation", e))?,
            ));
        }
        Ok(out)
    }

    fn relations_added(&mut self, ids: &[String]) -> Result<HashMap<String, DateTime<Utc>>> {
        let ids = serde_json::to_string(ids).map_err(|e| corrupted("ids", e))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, created_at FROM relations WHERE id IN (SELECT value FROM json_each(?1))",
        )?;
        let mut rows = stmt.query([ids])?;
        let mut out = HashMap::new();
        while let Some(row) = rows.next()? {
            out.insert(row.get(0)?, time(row, 1)?);
        }
        Ok(out)
    }

    fn forgotten(&mut self, memory_id: &str) -> Result<Vec<ForgottenRelation>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT relation FROM forgotten_sources WHERE memory_id = ?1 ORDER BY key",
        )?;
        let rows = stmt.query_map([memory_id], |row| row.get::<_, String>(0))?;
        rows.map(|json| serde_json::from_str(&json?).map_err(|e| corrupted("relation", e)))
            .collect()
    }

    fn entity_history(&mut self, id: &str) -> Result<Vec<EntityEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entity_id, event, detail, created_at FROM entity_history
             WHERE entity_id = ?1 ORDER BY key",
        )?;
        let mut rows = stmt.query([id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let detail: String = row.get(2)?;
            out.push(entity_event(
                row.get(0)?,
                row.get(1)?,
                &detail,
                time(row, 3)?,
            )?);
        }
        Ok(out)
    }

    fn export_entities(&mut self, after: i64, limit: usize) -> Result<Vec<ExportedEntity>> {
        let sql = format!(
            "SELECT {ENTITY_COLUMNS} FROM entities e WHERE e.key > ?1 ORDER BY e.key LIMIT ?2"
        );
        let mut page = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
            while let Some(row) = rows.next()? {
                let (key, entity) = entity_from_row(row)?;
                page.push(ExportedEntity {
                    key,
                    entity,
                    names: Vec::new(),
                    embedding: None,
                });
            }
        }
        let keys: Vec<i64> = page.iter().map(|e| e.key).collect();
        let mut names: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT entity_key, name, folded FROM entity_names
             WHERE entity_key IN {KEYS_IN_JSON} ORDER BY entity_key, folded"
        ))?;
        let mut rows = stmt.query([ops::keys_json(&keys)])?;
        while let Some(row) = rows.next()? {
            names
                .entry(row.get(0)?)
                .or_default()
                .push((row.get(1)?, row.get(2)?));
        }
        let mut embeddings: HashMap<i64, Vec<f32>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT entity_key, embedding FROM entity_embeddings
             WHERE entity_key IN {KEYS_IN_JSON}"
        ))?;
        let mut rows = stmt.query([ops::keys_json(&keys)])?;
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(1)?;
            embeddings.insert(row.get(0)?, ops::blob_to_vector(&blob)?);
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, entity_id, event, detail, created_at FROM entity_history
             WHERE key > ?1 ORDER BY key LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let detail: String = row.get(3)?;
            let event = entity_event(row.get(1)?, row.get(2)?, &detail, time(row, 4)?)?;
            out.push((row.get(0)?, event));
        }
        Ok(out)
    }

    fn export_forgotten(&mut self, after: i64, limit: usize) -> Result<Vec<ForgottenSource>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, memory_id, relation, forgotten_at FROM forgotten_sources
             WHERE key > ?1 ORDER BY key LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let relation: String = row.get(2)?;
            out.push(ForgottenSource {
                key: row.get(0)?,
                memory_id: row.get(1)?,
                relation: serde_json::from_str(&relation).map_err(|e| corrupted("relation", e))?,
                forgotten_at: row.get(3)?,
            });
        }
        Ok(out)
    }

    fn export_relations(&mut self, after: i64, limit: usize) -> Result<Vec<StoredRelation>> {
        let sql = format!(
            "SELECT {RELATION_COLUMNS} FROM {RELATION_FROM} WHERE r.key > ?1 ORDER BY r.key LIMIT ?2"
        );
        relations(
            self.conn,
            &sql,
            &[
                SqlValue::Integer(after),
                SqlValue::Integer(limit.min(i64::MAX as usize) as i64),
            ],
        )
    }
}

impl GraphWrite for SqliteGraph<'_> {
    fn insert_entity(&mut self, entity: &Entity) -> Result<i64> {
        let [u, a, r, o] = scope_values(&entity.scope);
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO entities (id, name, folded, type, summary, user_id, agent_id,
                                       run_id, org_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING key",
            )?
            .query_row(
                params![
                    entity.id,
                    entity.name,
                    crate::graph::fold_name(&entity.name),
                    entity.entity_type,
                    entity.summary,
                    u,
                    a,
                    r,
                    o,
                    format_time(entity.created_at),
                    format_time(entity.updated_at)
                ],
                |row| row.get(0),
            )?)
    }

    fn add_name(&mut self, key: i64, scope: &Scope, name: &str, folded: &str) -> Result<()> {
        let [u, a, r, o] = scope_values(scope);
        let added = self
            .conn
            .prepare_cached(
                "INSERT INTO entity_names (user_id, agent_id, run_id, org_id, folded, name,
                                           entity_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?
            .execute(params![u, a, r, o, folded, name, key])?;
        if added > 0 {
            refresh_aliased(self.conn, key)?;
        }
        Ok(())
    }

    fn set_summary(&mut self, key: i64, summary: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE entities SET summary = ?2, updated_at = ?3 WHERE key = ?1")?
            .execute(params![key, summary, format_time(at)])?;
        Ok(())
    }

    fn insert_relation(
        &mut self,
        relation: &Relation,
        subject: i64,
        object: Option<i64>,
    ) -> Result<i64> {
        let [u, a, r, o] = scope_values(&relation.scope);
        let value = relation.literal.then_some(relation.object_name.as_str());
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO relations (id, subject_key, predicate, object_key, value,
                                        valid_from, valid_to, closed_by, confidence, user_id,
                                        agent_id, run_id, org_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 RETURNING key",
            )?
            .query_row(
                params![
                    relation.id,
                    subject,
                    relation.predicate,
                    object,
                    value,
                    relation.valid_from.map(format_time),
                    relation.valid_to.map(format_time),
                    relation.closed_by,
                    f64::from(relation.confidence),
                    u,
                    a,
                    r,
                    o,
                    format_time(relation.created_at)
                ],
                |row| row.get(0),
            )?)
    }

    fn add_source(&mut self, key: i64, memory_id: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO relation_sources (relation_key, memory_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![key, memory_id])?;
        Ok(())
    }

    fn close_relation(&mut self, key: i64, valid_to: DateTime<Utc>, closed_by: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE relations SET valid_to = ?2, closed_by = ?3 WHERE key = ?1")?
            .execute(params![key, format_time(valid_to), closed_by])?;
        Ok(())
    }

    fn set_embedding(&mut self, key: i64, vector: &[f32]) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO entity_embeddings (entity_key, embedding) VALUES (?1, ?2)
                 ON CONFLICT (entity_key) DO UPDATE SET embedding = excluded.embedding",
            )?
            .execute(params![key, ops::vector_to_blob(vector)])?;
        Ok(())
    }

    fn absorb_entity(&mut self, absorbed: i64, kept: i64) -> Result<()> {
        for sql in [
            "UPDATE entity_names SET entity_key = ?2 WHERE entity_key = ?1",
            "UPDATE relations SET subject_key = ?2 WHERE subject_key = ?1",
            "UPDATE relations SET object_key = ?2 WHERE object_key = ?1",
        ] {
            self.conn
                .prepare_cached(sql)?
                .execute(params![absorbed, kept])?;
        }
        self.conn
            .prepare_cached("DELETE FROM entities WHERE key = ?1")?
            .execute([absorbed])?;
        refresh_aliased(self.conn, kept)
    }

    fn rename_entity(&mut self, key: i64, name: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE entities SET name = ?2, folded = ?3, updated_at = ?4 WHERE key = ?1",
            )?
            .execute(params![
                key,
                name,
                crate::graph::fold_name(name),
                format_time(at)
            ])?;
        refresh_aliased(self.conn, key)
    }

    fn touch_entity(&mut self, key: i64, at: DateTime<Utc>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE entities SET updated_at = ?2 WHERE key = ?1")?
            .execute(params![key, format_time(at)])?;
        Ok(())
    }

    fn remove_name(&mut self, key: i64, folded: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM entity_names WHERE entity_key = ?1 AND folded = ?2")?
            .execute(params![key, folded])?;
        refresh_aliased(self.conn, key)
    }

    fn move_relation_end(&mut self, relation: i64, from: i64, to: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE relations SET
                   subject_key = CASE WHEN subject_key = ?2 THEN ?3 ELSE subject_key END,
                   object_key = CASE WHEN object_key = ?2 THEN ?3 ELSE object_key END
                 WHERE key = ?1",
            )?
            .execute(params![relation, from, to])?;
        Ok(())
    }

    fn fold_relation(&mut self, twin: i64, into: i64) -> Result<()> {
        for sql in [
            "INSERT INTO relation_sources (relation_key, memory_id)
             SELECT ?2, memory_id FROM relation_sources WHERE relation_key = ?1
             ON CONFLICT DO NOTHING",
            "UPDATE relations SET closed_by = (SELECT id FROM relations WHERE key = ?2)
             WHERE closed_by = (SELECT id FROM relations WHERE key = ?1)",
        ] {
            self.conn
                .prepare_cached(sql)?
                .execute(params![twin, into])?;
        }
        self.conn
            .prepare_cached("DELETE FROM relations WHERE key = ?1")?
            .execute([twin])?;
        Ok(())
    }

    fn import_forgotten(&mut self, forgotten: &ForgottenSource) -> Result<()> {
        let relation =
            serde_json::to_string(&forgotten.relation).map_err(|e| corrupted("relation", e))?;
        self.conn
            .prepare_cached(
                "INSERT INTO forgotten_sources (memory_id, relation_id, relation, forgotten_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                forgotten.memory_id,
                forgotten.relation.id,
                relation,
                forgotten.forgotten_at
            ])?;
        Ok(())
    }

    fn clear_forgotten(&mut self, memory_id: &str) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM forgotten_sources WHERE memory_id = ?1")?
            .execute([memory_id])?;
        Ok(())
    }

    fn delete_relation(&mut self, key: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM relations WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }

    fn record_entity_event(&mut self, event: &EntityEvent) -> Result<()> {
        let kind = serde_json::to_value(event.event).map_err(|e| corrupted("entity event", e))?;
        self.conn
            .prepare_cached(
                "INSERT INTO entity_history (entity_id, event, detail, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                event.entity_id,
                kind.as_str().unwrap_or_default(),
                event.detail.to_string(),
                format_time(event.created_at)
            ])?;
        Ok(())
    }
}

/// Records whether entity `key` answers to names besides its own (after its names or its
/// name changed).
fn refresh_aliased(conn: &Connection, key: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE entities SET aliased = EXISTS (SELECT 1 FROM entity_names n
             WHERE n.entity_key = entities.key AND n.folded <> entities.folded)
         WHERE key = ?1",
    )?
    .execute([key])?;
    Ok(())
}

/// Forgets that relations came from memory `memory_id` (being deleted at `at`); a relation
/// left with no source memory goes too, one with another source stays. Each is kept as it
/// was, for an undo of the delete.
pub(super) fn forget_source(conn: &Connection, memory_id: &str, at: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO forgotten_sources (memory_id, relation_id, relation, forgotten_at)
         SELECT ?1, r.id, json_object('id', r.id, 'subject', s.id, 'predicate', r.predicate,
                'object', o.id, 'value', r.value, 'valid_from', r.valid_from,
                'valid_to', r.valid_to, 'closed_by', r.closed_by, 'confidence', r.confidence,
                'created_at', r.created_at), ?2
         FROM relation_sources x JOIN relations r ON r.key = x.relation_key
         JOIN entities s ON s.key = r.subject_key LEFT JOIN entities o ON o.key = r.object_key
         WHERE x.memory_id = ?1 ORDER BY r.key",
    )?
    .execute(params![memory_id, format_time(at)])?;
    let keys: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "DELETE FROM relation_sources WHERE memory_id = ?1 RETURNING relation_key",
        )?;
        let rows = stmt.query_map([memory_id], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut stmt = conn.prepare_cached(
        "DELETE FROM relations WHERE key = ?1
         AND NOT EXISTS (SELECT 1 FROM relation_sources WHERE relation_key = ?1)",
    )?;
    for key in keys {
        stmt.execute([key])?;
    }
    Ok(())
}
