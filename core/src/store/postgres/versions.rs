//! Versions (transaction time) in the PostgreSQL backend, as in the SQLite backend
//! (`store/sqlite/versions.rs`). A memory's row in `agentmem_memories` is its current
//! version; an update or a delete first moves the version it replaces to
//! `agentmem_versions`, stamped with the commit time that ended it, its vector and keyword
//! terms kept (and counted in the past's own BM25 statistics). The store as it stood at a
//! moment is the current rows written by then plus the past versions current then:
//! [`as_of_rows`]. Past versions have negative keys in search (`-agentmem_versions.key`), so
//! that both kinds of row travel the one pipeline.
//!
//! A moment is a query parameter (`$n`, text in the stored time form, whose text order is
//! time order), so that the statements of every moment are prepared once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::pool::{get, Session};
use super::rows::{version_from_row, version_number, VERSION_COLUMNS};
use super::text::TextDelta;
use crate::error::Result;
use crate::store::corrupted;
use crate::text;
use crate::types::{content_hash, format_time, parse_time, MemoryRecord};

/// The columns of a current row, named as [`VERSION_COLUMNS`] reads them.
const CURRENT: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, m.agent_id, \
    m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, m.version, \
    m.valid_from, m.valid_to, m.superseded_by, NULL::text AS valid_to_tx";

/// The columns of a past version, its key negated, named as [`VERSION_COLUMNS`] reads them.
const PAST: &str = "-m.key AS key, m.id, m.content, m.hash, m.kind, m.user_id, m.agent_id, \
    m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, m.version, \
    m.valid_from, m.valid_to, m.superseded_by, m.valid_to_tx";

/// The columns a version keeps, in `agentmem_memories` and `agentmem_versions` alike (but
/// the key and the end).
const KEPT: &str = "id, version, content, hash, kind, user_id, agent_id, run_id, org_id, \
    metadata, created_at, updated_at, expires_at, valid_from, valid_to, superseded_by, \
    embedding, terms";

/// The condition that a current row (of `agentmem_memories m`) was already written at the
/// moment in parameter `at` (`$n`).
pub(super) fn current_at(at: &str) -> String {
    format!("m.updated_at <= {at}::text")
}

/// The condition that a past version (of `agentmem_versions m`) was the current one at the
/// moment in parameter `at`.
pub(super) fn past_at(at: &str) -> String {
    format!("m.updated_at <= {at}::text AND m.valid_to_tx > {at}::text")
}

/// The versions current at the moment in parameter `at` that pass `cond` (a condition over
/// `m`), as a subquery aliased `m` with the columns of [`VERSION_COLUMNS`].
pub(super) fn as_of_rows(cond: &str, at: &str) -> String {
    format!(
        "(SELECT {CURRENT} FROM agentmem_memories m WHERE {} AND ({cond}) \
         UNION ALL SELECT {PAST} FROM agentmem_versions m WHERE {} AND ({cond})) m",
        current_at(at),
        past_at(at)
    )
}

/// Moves the current version of memory `key` to the past versions, ended at `at`, with its
/// vector and keyword terms; its content and terms as they were stored, or `None` when the
/// memory is gone (deleted by another writer). Called before the row is updated or
/// deleted, in the same transaction; the row stays locked until then.
pub(super) fn close(
    s: &mut Session<'_>,
    key: i64,
    at: DateTime<Utc>,
    delta: &mut TextDelta,
) -> Result<Option<(String, Vec<String>)>> {
    let ended = format_time(at);
    let sql = format!(
        "INSERT INTO agentmem_versions ({KEPT}, valid_to_tx)
         SELECT {KEPT}, $2::text FROM agentmem_memories WHERE key = $1::int8 FOR UPDATE
         RETURNING content, terms"
    );
    let row = s.query_opt(&sql, &[&key, &ended])?;
    let Some(row) = row else {
        return Ok(None);
    };
    let content: String = get(&row, 0)?;
    let terms: Vec<String> = get(&row, 1)?;
    delta.add_past(&content, &terms);
    Ok(Some((content, terms)))
}

/// Removes the past versions that ended before `ended_before` or lie beyond the latest
/// `keep_last` of their memory, with their statistics and vocabulary; how many.
pub(super) fn prune(
    s: &mut Session<'_>,
    ended_before: Option<DateTime<Utc>>,
    keep_last: Option<usize>,
    delta: &mut TextDelta,
) -> Result<usize> {
    let ended = ended_before.map(format_time);
    let keep = keep_last.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    // The count of later versions reads the table as the statement found it.
    let rows = s.query(
        "DELETE FROM agentmem_versions v
         WHERE ($1::text IS NOT NULL AND v.valid_to_tx < $1::text)
            OR ($2::int8 IS NOT NULL AND (SELECT count(*) FROM agentmem_versions w
                                          WHERE w.id = v.id AND w.version > v.version) >= $2::int8)
         RETURNING content, terms",
        &[&ended, &keep],
    )?;
    for row in &rows {
        let content: String = get(row, 0)?;
        let terms: Vec<String> = get(row, 1)?;
        delta.remove_past(&content, &terms);
    }
    Ok(rows.len())
}

/// The version of memory `id` that was current at `at`, if it existed then.
pub(super) fn get_as_of(
    s: &mut Session<'_>,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM {} LIMIT 1",
        as_of_rows("m.id = $1::text", "$2")
    );
    let at = format_time(at);
    match s.query_opt(&sql, &[&id, &at])? {
        Some(row) => Ok(Some(version_from_row(&row)?.1)),
        None => Ok(None),
    }
}

/// Every kept version of memory `id`, oldest first (the current one last, if it lives).
pub(super) fn all_of(s: &mut Session<'_>, id: &str) -> Result<Vec<MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM (
             SELECT {CURRENT} FROM agentmem_memories m WHERE m.id = $1::text
             UNION ALL SELECT {PAST} FROM agentmem_versions m WHERE m.id = $1::text) m
         ORDER BY m.version"
    );
    s.query(&sql, &[&id])?
        .iter()
        .map(|r| version_from_row(r).map(|(_, v)| v))
        .collect()
}

/// The stored vector of version `version` of memory `id`, current or past (`None` when that
/// version is not kept, or was rebuilt from history without a vector).
pub(super) fn vector_of(s: &mut Session<'_>, id: &str, version: u64) -> Result<Option<Vec<f32>>> {
    let version = version_number(version);
    let row = s.query_opt(
        "SELECT embedding::real[] FROM agentmem_memories WHERE id = $1::text AND version = $2::int8
         UNION ALL
         SELECT embedding::real[] FROM agentmem_versions WHERE id = $1::text AND version = $2::int8
         LIMIT 1",
        &[&id, &version],
    )?;
    Ok(row
        .map(|r| get::<Option<Vec<f32>>>(&r, 0))
        .transpose()?
        .flatten())
}

/// The current memories with keys `current` and the past versions with (positive)
/// `agentmem_versions` keys `past`, the latter under their negated keys, in one statement.
pub(super) fn by_keys(
    s: &mut Session<'_>,
    current: &[i64],
    past: &[i64],
) -> Result<HashMap<i64, MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM (
             SELECT {CURRENT} FROM agentmem_memories m WHERE m.key = ANY($1::int8[])
             UNION ALL SELECT {PAST} FROM agentmem_versions m WHERE m.key = ANY($2::int8[])) m"
    );
    s.query(&sql, &[&current, &past])?
        .iter()
        .map(version_from_row)
        .collect()
}

/// Cosine similarity of `query` (pgvector's text form) to the vectors of the current
/// memories `current` and of the past versions `past` (positive keys; under their negated
/// keys), in one statement; versions without a vector are left out.
pub(super) fn similarities(
    s: &mut Session<'_>,
    query: &str,
    current: &[i64],
    past: &[i64],
) -> Result<HashMap<i64, f32>> {
    s.query(
        "SELECT key, (1 - (embedding <=> $1::text::vector))::float8
         FROM agentmem_memories WHERE key = ANY($2::int8[])
         UNION ALL
         SELECT -key, (1 - (embedding <=> $1::text::vector))::float8
         FROM agentmem_versions WHERE key = ANY($3::int8[]) AND embedding IS NOT NULL",
        &[&query, &current, &past],
    )?
    .iter()
    .map(|r| Ok((get(r, 0)?, get::<f64>(r, 1)? as f32)))
    .collect()
}

/// The statement of the `n` past versions passing `cond` and current at the moment in
/// parameter `at`, nearest to the vector in parameter `q`, by an exact scan (the versions
/// have no vector index: as-of searches are rare, and the past only grows), as
/// `(negated key, cosine distance)`, nearest first.
pub(super) fn nearest_past_sql(cond: &str, at: &str, q: &str, n: &str) -> String {
    format!(
        "SELECT -m.key, (m.embedding <=> {q}::text::vector)::float8 AS d
         FROM agentmem_versions m
         WHERE {} AND m.embedding IS NOT NULL AND ({cond})
         ORDER BY d, m.key DESC LIMIT {n}::int8",
        past_at(at)
    )
}

/// Rebuilds the past versions of a store written before versions existed, from its
/// history, as the SQLite backend does: each `UPDATE` row holds the content its memory had
/// before. Such a version gets the scope, kind, metadata and expiry of the memory as it is
/// now (history kept only the text), the vector of the memory when its text was the same,
/// or the store's cached embedding of that text, or none (then only the keyword engines
/// find it). A memory deleted before versions existed is not rebuilt: history never
/// recorded its scope, and a version without one would show in every scope's past.
/// Memories start at version 1 plus their number of updates.
pub(super) fn replay_history(s: &mut Session<'_>) -> Result<()> {
    let live = s.query(
        "SELECT m.key, m.id, m.created_at FROM agentmem_memories m WHERE EXISTS
             (SELECT 1 FROM agentmem_history h WHERE h.memory_id = m.id AND h.event = 'UPDATE')
         ORDER BY m.key",
        &[],
    )?;
    let mut delta = TextDelta::default();
    for memory in &live {
        let key: i64 = get(memory, 0)?;
        let id: String = get(memory, 1)?;
        let created: String = get(memory, 2)?;
        let steps = s.query(
            "SELECT old_content, created_at FROM agentmem_history
             WHERE memory_id = $1::text AND event = 'UPDATE' ORDER BY seq",
            &[&id],
        )?;
        // Version n ran from the end of version n − 1 (the first from the memory's
        // creation) to the n-th update.
        let mut from = time(&created)?;
        for (n, step) in steps.iter().enumerate() {
            let old_content: Option<String> = get(step, 0)?;
            let ended: String = get(step, 1)?;
            let ended = time(&ended)?;
            let content = old_content.unwrap_or_default();
            let hash = content_hash(&content);
            let terms = text::index_terms(&content);
            let version = n as i64 + 1;
            s.execute(
                "INSERT INTO agentmem_versions (id, version, content, hash, kind, user_id,
                     agent_id, run_id, org_id, metadata, created_at, updated_at, expires_at,
                     valid_to_tx, embedding, terms)
                 SELECT m.id, $2::int8, $3::text, $4::text, m.kind, m.user_id, m.agent_id,
                        m.run_id, m.org_id, m.metadata, m.created_at, $5::text, m.expires_at,
                        $6::text,
                        coalesce(CASE WHEN m.hash = $4::text THEN m.embedding END,
                                 (SELECT c.vector::vector FROM agentmem_embedding_cache c
                                  WHERE c.hash = $4::text AND c.model =
                                      (SELECT value FROM agentmem_meta
                                       WHERE key = 'embedding_model'))),
                        $7::text[]
                 FROM agentmem_memories m WHERE m.key = $1::int8",
                &[
                    &key,
                    &version,
                    &content,
                    &hash,
                    &format_time(from),
                    &format_time(ended),
                    &terms,
                ],
            )?;
            delta.add_past(&content, &terms);
            from = ended;
        }
        let version = version_number(steps.len() as u64 + 1);
        s.execute(
            "UPDATE agentmem_memories SET version = $2::int8 WHERE key = $1::int8",
            &[&key, &version],
        )?;
    }
    delta.apply(s)
}

fn time(s: &str) -> Result<DateTime<Utc>> {
    parse_time(s).map_err(|e| corrupted("time", e))
}

/// Up to `limit` past versions with a key above `after`, by key, with their vectors.
pub(super) fn export(
    s: &mut Session<'_>,
    after: i64,
    limit: usize,
) -> Result<Vec<crate::store::ExportedVersion>> {
    let limit = limit.min(i64::MAX as usize) as i64;
    let sql = format!(
        "SELECT {VERSION_COLUMNS}, m.embedding::real[] FROM agentmem_versions m
         WHERE m.key > $1::int8 ORDER BY m.key LIMIT $2::int8"
    );
    s.query(&sql, &[&after, &limit])?
        .iter()
        .map(|r| {
            let (key, record) = version_from_row(r)?;
            let vector: Option<Vec<f32>> = get(r, super::rows::RECORD_WIDTH + 1)?;
            Ok((key, record, vector))
        })
        .collect()
}

/// Stores a copied past version as it is, with its keyword terms counted in the past's
/// statistics.
pub(super) fn import(
    s: &mut Session<'_>,
    record: &MemoryRecord,
    vector: Option<&[f32]>,
    delta: &mut TextDelta,
) -> Result<()> {
    let ended = record
        .valid_to_tx
        .ok_or_else(|| crate::error::Error::internal("a past version without its end"))?;
    let terms = text::index_terms(&record.content);
    let scope = |v: &Option<String>| v.clone().unwrap_or_default();
    let metadata = serde_json::Value::Object(record.metadata.clone());
    let vector = vector.map(<[f32]>::to_vec);
    s.execute(
        "INSERT INTO agentmem_versions (id, version, content, hash, kind, user_id, agent_id,
             run_id, org_id, metadata, created_at, updated_at, expires_at, valid_from, valid_to,
             superseded_by, embedding, terms, valid_to_tx)
         VALUES ($1::text, $2::int8, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text,
             $9::text, $10::jsonb, $11::text, $12::text, $13::text, $14::text, $15::text,
             $16::text, $17::real[]::vector, $18::text[], $19::text)",
        &[
            &record.id,
            &version_number(record.version),
            &record.content,
            &record.hash,
            &record.kind.as_str(),
            &scope(&record.scope.user_id),
            &scope(&record.scope.agent_id),
            &scope(&record.scope.run_id),
            &scope(&record.scope.org_id),
            &metadata,
            &format_time(record.created_at),
            &format_time(record.updated_at),
            &record.expires_at.map(format_time),
            &record.valid_from.map(format_time),
            &record.valid_to.map(format_time),
            &record.superseded_by,
            &vector,
            &terms,
            &format_time(ended),
        ],
    )?;
    delta.add_past(&record.content, &terms);
    Ok(())
}
