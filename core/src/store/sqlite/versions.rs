//! Versions (transaction time) in the SQLite backend. A memory's row in `memories` is its
//! current version; an update or a delete first moves the version it replaces to
//! `versions`, stamped with the commit time that ended it, its vector and keyword terms
//! kept. The store as it stood at a moment is the current rows written by then plus the
//! past versions current then: [`as_of_rows`]. Past versions have negative keys in search
//! (`-versions.key`), so that both kinds of row travel the one pipeline.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension};

use super::ops::{self, VocabDelta, VERSION_COLUMNS};
use crate::error::Result;
use crate::index::vector;
use crate::store::corrupted;
use crate::text;
use crate::types::{format_time, parse_time, MemoryRecord};

/// The columns of a current row, named as [`VERSION_COLUMNS`] reads them.
const CURRENT: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, m.agent_id, \
    m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, m.version, \
    m.valid_from, m.valid_to, m.superseded_by, NULL AS valid_to_tx";

/// The columns of a past version, its key negated, named as [`VERSION_COLUMNS`] reads them.
const PAST: &str = "-m.key AS key, m.id, m.content, m.hash, m.kind, m.user_id, m.agent_id, \
    m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, m.version, \
    m.valid_from, m.valid_to, m.superseded_by, m.valid_to_tx";

/// The columns a version keeps, in `memories` and `versions` alike (but the key and the
/// vector, which a past version keeps in half precision).
const KEPT: &str = "id, version, content, hash, kind, user_id, agent_id, run_id, org_id, \
    metadata, created_at, updated_at, expires_at, valid_from, valid_to, superseded_by";

/// A moment as SQL text. Times are stored in one fixed-width form, so text order is time
/// order; the text is ours (digits and separators), so it is written into SQL as a literal
/// and leaves the numbering of a condition's parameters alone.
pub(crate) fn moment(at: DateTime<Utc>) -> String {
    format!("'{}'", format_time(at))
}

/// The condition that a current row (of `memories m`) was already written at `at`.
pub(crate) fn current_at(at: &str) -> String {
    format!("m.updated_at <= {at}")
}

/// The condition that a past version (of `versions m`) was the current one at `at`.
pub(crate) fn past_at(at: &str) -> String {
    format!("m.updated_at <= {at} AND m.valid_to_tx > {at}")
}

/// The versions current at `at` (see [`moment`]) that pass `cond` (a condition over `m`
/// with its parameters numbered as the caller binds them), as a subquery aliased `m` with
/// the columns of [`VERSION_COLUMNS`].
pub(crate) fn as_of_rows(cond: &str, at: &str) -> String {
    format!(
        "(SELECT {CURRENT} FROM memories m WHERE {} AND ({cond}) \
         UNION ALL SELECT {PAST} FROM versions m WHERE {} AND ({cond})) m",
        current_at(at),
        past_at(at)
    )
}

/// Moves the current version of memory `key` to the past versions, ended at `at`, with its
/// vector and keyword terms. Called before the row is updated or deleted.
pub(crate) fn close(
    conn: &Connection,
    key: i64,
    at: DateTime<Utc>,
    vocab: &mut VocabDelta,
) -> Result<()> {
    let vector: Option<Vec<u8>> = conn
        .prepare_cached("SELECT embedding FROM memories WHERE key = ?1")?
        .query_row([key], |r| r.get(0))?;
    let vector = vector
        .map(|blob| ops::blob_to_vector(&blob).map(|v| ops::vector_to_half_blob(&v)))
        .transpose()?;
    let sql = format!(
        "INSERT INTO versions ({KEPT}, valid_to_tx, embedding) SELECT {KEPT}, ?2, ?3 \
         FROM memories WHERE key = ?1 RETURNING key, content"
    );
    let (version_key, content): (i64, String) = conn
        .prepare_cached(&sql)?
        .query_row(params![key, format_time(at), vector], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    index_past(conn, version_key, &content, vocab)
}

/// Indexes a past version's words: keyword terms and the typo vocabulary (which holds the
/// words of every kept version, so that a typo finds an old version's word too).
fn index_past(conn: &Connection, key: i64, content: &str, vocab: &mut VocabDelta) -> Result<()> {
    conn.prepare_cached("INSERT INTO versions_fts (rowid, terms) VALUES (?1, ?2)")?
        .execute(params![key, text::index_terms(content).join(" ")])?;
    vocab.add(content, 1);
    Ok(())
}

/// The version of memory `id` that was current at `at`, if it existed then.
pub(crate) fn get_as_of(
    conn: &Connection,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM {} LIMIT 1",
        as_of_rows("m.id = ?1", &moment(at))
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(ops::version_from_row(row)?.1)),
        None => Ok(None),
    }
}

/// Every kept version of memory `id`, oldest first (the current one last, if it lives).
pub(crate) fn all_of(conn: &Connection, id: &str) -> Result<Vec<MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM (SELECT {CURRENT} FROM memories m WHERE m.id = ?1 \
         UNION ALL SELECT {PAST} FROM versions m WHERE m.id = ?1) m ORDER BY m.version"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(ops::version_from_row(row)?.1);
    }
    Ok(out)
}

/// The stored vector of version `version` of memory `id`, current or past.
pub(crate) fn vector_of(conn: &Connection, id: &str, version: u64) -> Result<Option<Vec<f32>>> {
    let blob: Option<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT embedding FROM memories WHERE id = ?1 AND version = ?2
             UNION ALL SELECT embedding FROM versions WHERE id = ?1 AND version = ?2",
        )?
        .query_row(params![id, ops::version_number(version)], |r| r.get(0))
        .optional()?;
    blob.flatten().map(|b| ops::blob_to_vector(&b)).transpose()
}

/// The past versions with these (positive) `versions` keys, under their negated keys.
pub(crate) fn past_by_keys(conn: &Connection, keys: &[i64]) -> Result<HashMap<i64, MemoryRecord>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM (SELECT {PAST} FROM versions m \
         WHERE m.key IN {}) m",
        ops::KEYS_IN_JSON
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([ops::keys_json(keys)])?;
    let mut out = HashMap::with_capacity(keys.len());
    while let Some(row) = rows.next()? {
        let (key, record) = ops::version_from_row(row)?;
        out.insert(key, record);
    }
    Ok(out)
}

/// The keys of the past versions current at `at` that pass `cond` (with `params`): what
/// an as-of vector search may return (those without a vector are not in the index of past
/// versions; leaving them in keeps the query on the `versions_ended` index).
pub(crate) fn past_keys_at(
    conn: &Connection,
    cond: &str,
    params: &[SqlValue],
    at: &str,
) -> Result<Vec<u64>> {
    let sql = format!(
        "SELECT m.key FROM versions m WHERE {} AND ({cond})",
        past_at(at)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))?;
    let mut keys = Vec::new();
    for key in rows {
        keys.push(key? as u64);
    }
    Ok(keys)
}

/// Rebuilds the past versions of a store written before versions existed, from its
/// history: each `UPDATE` row holds the content its memory had before. Such a version gets
/// the scope, kind, metadata and expiry of the memory as it is now (history kept only the
/// text), the vector of the memory when its text was the same, or the store's cached
/// embedding of that text, or none (then only the keyword engines find it). A memory
/// deleted before versions existed is not rebuilt: history never recorded its scope, and a
/// version without one would show in every scope's past. Memories start at version 1 plus
/// their number of updates.
pub(crate) fn replay_history(conn: &Connection) -> Result<()> {
    let model = ops::get_meta(conn, "embedding_model")?;
    let live: Vec<(i64, MemoryRecord, Vec<u8>)> = {
        let mut stmt = conn.prepare(
            "SELECT m.key, m.id, m.content, m.hash, m.kind, m.user_id, m.agent_id, m.run_id,
                    m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, 1,
                    NULL, NULL, NULL, m.embedding
             FROM memories m WHERE EXISTS
                 (SELECT 1 FROM history h WHERE h.memory_id = m.id AND h.event = 'UPDATE')",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (key, record) = ops::record_from_row(row)?;
            out.push((key, record, row.get(ops::RECORD_WIDTH)?));
        }
        out
    };
    let mut vocab = VocabDelta::default();
    for (key, current, embedding) in live {
        let steps: Vec<(Option<String>, String)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT old_content, created_at FROM history
                 WHERE memory_id = ?1 AND event = 'UPDATE' ORDER BY seq",
            )?;
            let rows = stmt.query_map([&current.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        // Version n ran from the end of version n − 1 (the first from the memory's
        // creation) to the n-th update.
        let mut from = current.created_at;
        for (n, (old_content, ended)) in steps.iter().enumerate() {
            let ended = parse_time(ended).map_err(|e| corrupted("time", e))?;
            let content = old_content.clone().unwrap_or_default();
            let hash = crate::types::content_hash(&content);
            let vector: Option<Vec<u8>> = if hash == current.hash {
                Some(ops::vector_to_half_blob(&ops::blob_to_vector(&embedding)?))
            } else {
                match &model {
                    Some(model) => conn
                        .prepare_cached(
                            "SELECT vector FROM embedding_cache WHERE model = ?1 AND hash = ?2",
                        )?
                        .query_row(params![model, hash], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?
                        .map(|blob| ops::blob_to_vector(&blob))
                        .transpose()?
                        .map(|v| ops::vector_to_half_blob(&v)),
                    None => None,
                }
            };
            let version_key: i64 = conn
                .prepare_cached(
                    "INSERT INTO versions (id, version, content, hash, kind, user_id, agent_id,
                                           run_id, org_id, metadata, created_at, updated_at,
                                           expires_at, valid_to_tx, embedding)
                     SELECT id, ?2, ?3, ?4, kind, user_id, agent_id, run_id, org_id, metadata,
                            created_at, ?5, expires_at, ?6, ?7
                     FROM memories WHERE key = ?1
                     RETURNING key",
                )?
                .query_row(
                    params![
                        key,
                        n as i64 + 1,
                        content,
                        hash,
                        format_time(from),
                        format_time(ended),
                        vector
                    ],
                    |r| r.get(0),
                )?;
            index_past(conn, version_key, &content, &mut vocab)?;
            from = ended;
        }
        conn.prepare_cached("UPDATE memories SET version = ?2 WHERE key = ?1")?
            .execute(params![key, steps.len() as i64 + 1])?;
    }
    vocab.apply(conn)
}

/// Removes the past versions that ended before `ended_before` or lie beyond the latest
/// `keep_last` of their memory, with their keyword terms and vocabulary words; how many.
pub(crate) fn prune(
    conn: &Connection,
    ended_before: Option<DateTime<Utc>>,
    keep_last: Option<usize>,
    vocab: &mut VocabDelta,
) -> Result<usize> {
    let keep_last = keep_last.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let doomed: Vec<(i64, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT v.key, v.content FROM versions v
             WHERE (?1 IS NOT NULL AND v.valid_to_tx < ?1)
                OR (?2 IS NOT NULL AND (SELECT count(*) FROM versions w
                                        WHERE w.id = v.id AND w.version > v.version) >= ?2)",
        )?;
        let rows = stmt.query_map(params![ended_before.map(format_time), keep_last], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut drop_row = conn.prepare_cached("DELETE FROM versions WHERE key = ?1")?;
    let mut drop_terms = conn.prepare_cached("DELETE FROM versions_fts WHERE rowid = ?1")?;
    for (key, content) in &doomed {
        drop_row.execute([key])?;
        drop_terms.execute([key])?;
        vocab.add(content, -1);
    }
    Ok(doomed.len())
}

/// Up to `limit` past versions with a key above `after`, by key, with their vectors.
pub(crate) fn export(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<crate::store::ExportedVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS}, m.embedding FROM versions m WHERE m.key > ?1 \
         ORDER BY m.key LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![after, limit.min(i64::MAX as usize) as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (key, record) = ops::version_from_row(row)?;
        let blob: Option<Vec<u8>> = row.get(ops::RECORD_WIDTH + 1)?;
        out.push((
            key,
            record,
            blob.map(|b| ops::blob_to_vector(&b)).transpose()?,
        ));
    }
    Ok(out)
}

/// Stores a copied past version as it is, with its keyword terms and vocabulary words.
pub(crate) fn import(
    conn: &Connection,
    record: &MemoryRecord,
    vector: Option<&[f32]>,
    vocab: &mut VocabDelta,
) -> Result<()> {
    let ended = record
        .valid_to_tx
        .ok_or_else(|| crate::error::Error::internal("a past version without its end"))?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let key: i64 = conn
        .prepare_cached(
            "INSERT INTO versions (id, version, content, hash, kind, user_id, agent_id, run_id,
                                   org_id, metadata, created_at, updated_at, expires_at,
                                   valid_from, valid_to, superseded_by, embedding, valid_to_tx)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)
             RETURNING key",
        )?
        .query_row(
            params![
                record.id,
                ops::version_number(record.version),
                record.content,
                record.hash,
                record.kind.as_str(),
                s(&record.scope.user_id),
                s(&record.scope.agent_id),
                s(&record.scope.run_id),
                s(&record.scope.org_id),
                serde_json::Value::Object(record.metadata.clone()).to_string(),
                format_time(record.created_at),
                format_time(record.updated_at),
                record.expires_at.map(format_time),
                record.valid_from.map(format_time),
                record.valid_to.map(format_time),
                record.superseded_by,
                vector.map(ops::vector_to_half_blob),
                format_time(ended),
            ],
            |r| r.get(0),
        )?;
    index_past(conn, key, &record.content, vocab)
}

/// Cosine similarity of `query` to the stored vector of every past version current at `at`
/// that passes `cond` (with `params`), or `None` when more than `limit` have one.
pub(crate) fn past_similarities_at(
    conn: &Connection,
    query: &[f32],
    cond: &str,
    params: &[SqlValue],
    at: &str,
    limit: usize,
) -> Result<Option<Vec<(u64, f32)>>> {
    let sql = format!(
        "SELECT m.key, m.embedding FROM versions m
         WHERE {} AND ({cond}) AND m.embedding IS NOT NULL LIMIT {}",
        past_at(at),
        limit.saturating_add(1).min(i64::MAX as usize)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if out.len() == limit {
            return Ok(None);
        }
        let key: i64 = row.get(0)?;
        let blob: Vec<u8> = row.get(1)?;
        out.push((
            key as u64,
            vector::cosine(query, &ops::blob_to_vector(&blob)?),
        ));
    }
    Ok(Some(out))
}

/// Cosine similarity of `query` to the stored vectors of these past versions (`versions`
/// keys), read from the table: for a few versions, cheaper than the index of past versions
/// (which a first use has to build).
pub(crate) fn past_similarities(
    conn: &Connection,
    query: &[f32],
    keys: &[u64],
) -> Result<Vec<(u64, f32)>> {
    let sql = format!(
        "SELECT key, embedding FROM versions WHERE key IN {} AND embedding IS NOT NULL",
        ops::KEYS_IN_JSON
    );
    let signed: Vec<i64> = keys.iter().map(|&k| k as i64).collect();
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([ops::keys_json(&signed)])?;
    let mut out = Vec::with_capacity(keys.len());
    while let Some(row) = rows.next()? {
        let blob: Vec<u8> = row.get(1)?;
        let key: i64 = row.get(0)?;
        out.push((
            key as u64,
            vector::cosine(query, &ops::blob_to_vector(&blob)?),
        ));
    }
    Ok(out)
}
