//! The SQL behind each operation, on a connection or an open transaction. Every mutation
//! writes its history row and its change-log row in the caller's transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::versions;
use crate::error::Result;
use crate::store::{corrupted, opt_scope, HistoryRow};
use crate::text;
use crate::types::{
    format_time, parse_time, HistoryEntry, HistoryEvent, MemoryRecord, Metadata, Scope,
};

/// Columns read by [`record_from_row`], over the `memories` table aliased `m`.
pub(crate) const RECORD_COLUMNS: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, \
    m.agent_id, m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, \
    m.version, m.valid_from, m.valid_to, m.superseded_by";

/// Columns read by [`version_from_row`]: a version's, from `versions` (or the rows of a
/// moment, see `versions::as_of_rows`) aliased `m`.
pub(crate) const VERSION_COLUMNS: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, \
    m.agent_id, m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, \
    m.version, m.valid_from, m.valid_to, m.superseded_by, m.valid_to_tx";

/// The number of [`RECORD_COLUMNS`]: a column selected after them is at this index.
pub(crate) const RECORD_WIDTH: usize = 17;

/// Reads a version (and its key) from a row selected with [`VERSION_COLUMNS`].
pub(crate) fn version_from_row(row: &Row<'_>) -> Result<(i64, MemoryRecord)> {
    let (key, mut record) = record_from_row(row)?;
    record.valid_to_tx = opt_time(row, RECORD_WIDTH)?;
    Ok((key, record))
}

/// Reads one memory (and its integer key) from a row selected with [`RECORD_COLUMNS`].
pub(crate) fn record_from_row(row: &Row<'_>) -> Result<(i64, MemoryRecord)> {
    let key: i64 = row.get(0)?;
    let kind: String = row.get(4)?;
    let metadata: String = row.get(9)?;
    let metadata: Metadata =
        serde_json::from_str(&metadata).map_err(|e| corrupted("metadata", e))?;
    let version: i64 = row.get(13)?;
    let updated_at = time(row, 11)?;
    Ok((
        key,
        MemoryRecord {
            id: row.get(1)?,
            content: row.get(2)?,
            hash: row.get(3)?,
            kind: kind.parse().map_err(|e| corrupted("kind", e))?,
            scope: Scope {
                user_id: opt_scope(row.get(5)?),
                agent_id: opt_scope(row.get(6)?),
                run_id: opt_scope(row.get(7)?),
                org_id: opt_scope(row.get(8)?),
            },
            metadata,
            created_at: time(row, 10)?,
            updated_at,
            expires_at: opt_time(row, 12)?,
            version: u64::try_from(version).map_err(|e| corrupted("version", e))?,
            valid_from_tx: updated_at,
            valid_to_tx: None,
            valid_from: opt_time(row, 14)?,
            valid_to: opt_time(row, 15)?,
            superseded_by: row.get(16)?,
        },
    ))
}

/// A time in column `i`.
pub(super) fn time(row: &Row<'_>, i: usize) -> Result<DateTime<Utc>> {
    let s: String = row.get(i)?;
    parse_time(&s).map_err(|e| corrupted("time", e))
}

/// An optional time in column `i`.
pub(super) fn opt_time(row: &Row<'_>, i: usize) -> Result<Option<DateTime<Utc>>> {
    let s: Option<String> = row.get(i)?;
    s.map(|s| parse_time(&s).map_err(|e| corrupted("time", e)))
        .transpose()
}

/// The first byte of a vector stored in half precision. A blob of f32 is a multiple of 4
/// bytes long; a half-precision one is this byte and 2 bytes a component, an odd length.
const HALF_PRECISION: u8 = b'h';

/// A vector as stored: its f32 components, little-endian.
pub(crate) fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A vector as stored in half precision (past versions): half the bytes, and cosine
/// similarities within ~1e-4 of the full vector's.
pub(crate) fn vector_to_half_blob(v: &[f32]) -> Vec<u8> {
    std::iter::once(HALF_PRECISION)
        .chain(v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()))
        .collect()
}

/// A stored vector, in either precision.
pub(crate) fn blob_to_vector(blob: &[u8]) -> Result<Vec<f32>> {
    if let Some((&HALF_PRECISION, halves)) = blob.split_first() {
        if halves.len() % 2 == 0 {
            return Ok(halves
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect());
        }
    }
    if blob.len() % 4 != 0 {
        return Err(corrupted("vector", "length is not a multiple of 4"));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// The vector dimension the store holds, once the first vector was stored.
pub(crate) fn dimensions(conn: &Connection) -> Result<Option<usize>> {
    get_meta(conn, "dimensions")?
        .map(|d| d.parse().map_err(|e| corrupted("dimension", e)))
        .transpose()
}

pub(crate) fn get_by_id(conn: &Connection, id: &str) -> Result<Option<(i64, MemoryRecord)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM memories m WHERE m.id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(record_from_row(row)?)),
        None => Ok(None),
    }
}

pub(crate) fn get_by_keys(conn: &Connection, keys: &[i64]) -> Result<HashMap<i64, MemoryRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM memories m WHERE m.key IN {KEYS_IN_JSON}"
    ))?;
    let mut rows = stmt.query([keys_json(keys)])?;
    let mut out = HashMap::with_capacity(keys.len());
    while let Some(row) = rows.next()? {
        let (key, rec) = record_from_row(row)?;
        out.insert(key, rec);
    }
    Ok(out)
}

/// A set of keys bound as one JSON array in parameter 1 ([`keys_json`]): one statement
/// text for any number of keys, prepared once.
pub(crate) const KEYS_IN_JSON: &str = "(SELECT value FROM json_each(?1))";

/// Keys as the JSON array [`KEYS_IN_JSON`] reads.
pub(crate) fn keys_json(keys: &[i64]) -> String {
    let listed: Vec<String> = keys.iter().map(i64::to_string).collect();
    format!("[{}]", listed.join(","))
}

/// The stored memory with the same scope and content hash, if any.
pub(crate) fn find_duplicate(
    conn: &Connection,
    scope: &Scope,
    hash: &str,
) -> Result<Option<(i64, MemoryRecord)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM memories m WHERE m.user_id = ?1 AND m.agent_id = ?2 \
         AND m.run_id = ?3 AND m.org_id = ?4 AND m.hash = ?5"
    ))?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut rows = stmt.query(params![
        s(&scope.user_id),
        s(&scope.agent_id),
        s(&scope.run_id),
        s(&scope.org_id),
        hash
    ])?;
    match rows.next()? {
        Some(row) => Ok(Some(record_from_row(row)?)),
        None => Ok(None),
    }
}

/// Document-frequency changes to the fuzzy vocabulary, gathered over a transaction.
#[derive(Default)]
pub(crate) struct VocabDelta(HashMap<String, i64>);

impl VocabDelta {
    pub(crate) fn add(&mut self, content: &str, sign: i64) {
        for word in text::fuzzy_vocabulary(content) {
            *self.0.entry(word).or_default() += sign;
        }
    }

    pub(crate) fn apply(self, conn: &Connection) -> Result<()> {
        let mut up = conn.prepare_cached(
            "INSERT INTO terms (term, df) VALUES (?1, ?2)
             ON CONFLICT (term) DO UPDATE SET df = df + excluded.df RETURNING id, df",
        )?;
        let mut down =
            conn.prepare_cached("UPDATE terms SET df = df + ?2 WHERE term = ?1 RETURNING id, df")?;
        let mut add_grams =
            conn.prepare_cached("INSERT INTO term_grams (rowid, term) VALUES (?1, ?2)")?;
        let mut drop_term = conn.prepare_cached("DELETE FROM terms WHERE id = ?1")?;
        let mut drop_grams = conn.prepare_cached("DELETE FROM term_grams WHERE rowid = ?1")?;
        for (term, delta) in self.0 {
            if delta > 0 {
                let (id, df): (i64, i64) =
                    up.query_row(params![term, delta], |r| Ok((r.get(0)?, r.get(1)?)))?;
                if df == delta {
                    add_grams.execute(params![id, term])?;
                }
            } else if delta < 0 {
                let hit: Option<(i64, i64)> = down
                    .query_row(params![term, delta], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((id, df)) = hit {
                    if df <= 0 {
                        drop_term.execute([id])?;
                        drop_grams.execute([id])?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Appends a change-log row with its digest: MD5 over the previous row's digest, the key,
/// the operation, the memory id (random per memory) and the new vector. Two histories of
/// one store then differ in the digest at the same sequence number.
fn log_change(
    conn: &Connection,
    key: i64,
    op: &str,
    memory_id: &str,
    vector: Option<&[f32]>,
) -> Result<()> {
    use md5::{Digest, Md5};
    let prev: Option<String> = conn
        .prepare_cached("SELECT digest FROM changes ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .flatten();
    let mut h = Md5::new();
    h.update(prev.unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(key.to_le_bytes());
    h.update(op.as_bytes());
    h.update([0]);
    h.update(memory_id.as_bytes());
    h.update([0]);
    if let Some(v) = vector {
        h.update(vector_to_blob(v));
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    conn.prepare_cached("INSERT INTO changes (key, op, digest) VALUES (?1, ?2, ?3)")?
        .execute(params![key, op, digest])?;
    Ok(())
}

/// The digest of change `seq` (see [`log_change`]); `None` when the row is gone (pruned,
/// reset, never written) or predates digests.
pub(crate) fn change_digest(conn: &Connection, seq: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT digest FROM changes WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?
        .flatten())
}

/// A version number as SQLite stores it.
pub(crate) fn version_number(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn index_terms(conn: &Connection, key: i64, content: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO memories_fts (rowid, terms) VALUES (?1, ?2)")?
        .execute(params![key, text::index_terms(content).join(" ")])?;
    Ok(())
}

fn unindex_terms(conn: &Connection, key: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM memories_fts WHERE rowid = ?1")?
        .execute([key])?;
    Ok(())
}

pub(crate) fn write_history(conn: &Connection, row: HistoryRow<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (id, memory_id, event, old_content, new_content, is_deleted, actor,
                              created_at, change_id, undone_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.id,
        row.memory_id,
        row.event.as_str(),
        row.old_content,
        row.new_content,
        row.event == HistoryEvent::Delete,
        row.actor,
        format_time(row.at),
        // A change of one row is known by the row's id (NULL here saves repeating it).
        (row.change_id != row.id).then_some(&row.change_id),
        row.undone_by,
    ])?;
    Ok(())
}

/// Inserts a memory with its keyword terms and change-log row (the caller writes history).
pub(crate) fn insert_memory(
    conn: &Connection,
    rec: &MemoryRecord,
    vector: &[f32],
    vocab: &mut VocabDelta,
) -> Result<i64> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO memories (id, content, hash, kind, user_id, agent_id, run_id, org_id,
                               metadata, created_at, updated_at, expires_at, embedding, version,
                               valid_from, valid_to, superseded_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        rec.id,
        rec.content,
        rec.hash,
        rec.kind.as_str(),
        s(&rec.scope.user_id),
        s(&rec.scope.agent_id),
        s(&rec.scope.run_id),
        s(&rec.scope.org_id),
        serde_json::Value::Object(rec.metadata.clone()).to_string(),
        format_time(rec.created_at),
        format_time(rec.updated_at),
        rec.expires_at.map(format_time),
        vector_to_blob(vector),
        version_number(rec.version),
        rec.valid_from.map(format_time),
        rec.valid_to.map(format_time),
        rec.superseded_by,
    ])?;
    let key = conn.last_insert_rowid();
    index_terms(conn, key, &rec.content)?;
    vocab.add(&rec.content, 1);
    log_change(conn, key, "upsert", &rec.id, Some(vector))?;
    Ok(key)
}

/// Deletes a memory, its current version kept among the past ones (the caller writes
/// history).
pub(crate) fn delete_memory(
    conn: &Connection,
    key: i64,
    rec: &MemoryRecord,
    vocab: &mut VocabDelta,
    at: DateTime<Utc>,
) -> Result<()> {
    versions::close(conn, key, at, vocab)?;
    conn.prepare_cached("DELETE FROM memories WHERE key = ?1")?
        .execute([key])?;
    unindex_terms(conn, key)?;
    vocab.add(&rec.content, -1);
    log_change(conn, key, "delete", &rec.id, None)
}

/// Writes the new state of a memory, the old one kept among the past versions; `vector` is
/// given when the content changed (the caller writes history).
pub(crate) fn update_memory(
    conn: &Connection,
    key: i64,
    old: &MemoryRecord,
    new: &MemoryRecord,
    vector: Option<&[f32]>,
    vocab: &mut VocabDelta,
) -> Result<()> {
    versions::close(conn, key, new.updated_at, vocab)?;
    conn.prepare_cached(
        "UPDATE memories SET content = ?2, hash = ?3, kind = ?4, metadata = ?5,
                updated_at = ?6, expires_at = ?7, embedding = coalesce(?8, embedding),
                version = ?9, valid_from = ?10, valid_to = ?11, superseded_by = ?12
         WHERE key = ?1",
    )?
    .execute(params![
        key,
        new.content,
        new.hash,
        new.kind.as_str(),
        serde_json::Value::Object(new.metadata.clone()).to_string(),
        format_time(new.updated_at),
        new.expires_at.map(format_time),
        vector.map(vector_to_blob),
        version_number(new.version),
        new.valid_from.map(format_time),
        new.valid_to.map(format_time),
        new.superseded_by,
    ])?;
    if old.content != new.content {
        unindex_terms(conn, key)?;
        index_terms(conn, key, &new.content)?;
        vocab.add(&old.content, -1);
        vocab.add(&new.content, 1);
        log_change(conn, key, "upsert", &new.id, vector)?;
    }
    Ok(())
}

const HISTORY_COLUMNS: &str = "seq, id, memory_id, event, old_content, new_content, \
    is_deleted, actor, created_at, coalesce(change_id, id), undone_by";

fn history_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, HistoryEntry)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let event: String = row.get(3)?;
        let at: String = row.get(8)?;
        out.push((
            row.get(0)?,
            HistoryEntry {
                id: row.get(1)?,
                memory_id: row.get(2)?,
                event: HistoryEvent::parse(&event)?,
                old_content: row.get(4)?,
                new_content: row.get(5)?,
                is_deleted: row.get(6)?,
                actor: row.get(7)?,
                created_at: parse_time(&at).map_err(|e| corrupted("time", e))?,
                change_id: row.get(9)?,
                undone_by: row.get(10)?,
            },
        ));
    }
    Ok(out)
}

pub(crate) fn history(conn: &Connection, memory_id: &str) -> Result<Vec<HistoryEntry>> {
    let sql = format!("SELECT {HISTORY_COLUMNS} FROM history WHERE memory_id = ?1 ORDER BY seq");
    Ok(history_rows(conn, &sql, [memory_id])?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// The history rows of change `change_id` (the rows that share it, or the one row of that
/// id when it is a change of its own), oldest first.
pub(crate) fn change_rows(conn: &Connection, change_id: &str) -> Result<Vec<HistoryEntry>> {
    let sql = format!(
        "SELECT {HISTORY_COLUMNS} FROM history WHERE change_id = ?1
         UNION SELECT {HISTORY_COLUMNS} FROM history WHERE id = ?1 AND change_id IS NULL
         ORDER BY seq"
    );
    Ok(history_rows(conn, &sql, [change_id])?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Marks the rows of change `change_id` as undone by change `by`.
pub(crate) fn mark_undone(conn: &Connection, change_id: &str, by: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE history SET undone_by = ?2 WHERE change_id = ?1 OR (id = ?1 AND change_id IS NULL)",
    )?
    .execute([change_id, by])?;
    Ok(())
}

/// Up to `limit` history rows after sequence number `after`, oldest first.
pub(crate) fn history_page(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, HistoryEntry)>> {
    let sql = format!("SELECT {HISTORY_COLUMNS} FROM history WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    history_rows(conn, &sql, params![after, limit as i64])
}

pub(crate) fn cached_embeddings(
    conn: &Connection,
    model: &str,
    hashes: &[&str],
) -> Result<HashMap<String, Vec<f32>>> {
    let mut stmt =
        conn.prepare_cached("SELECT vector FROM embedding_cache WHERE model = ?1 AND hash = ?2")?;
    let mut out = HashMap::new();
    for hash in hashes {
        let blob: Option<Vec<u8>> = stmt
            .query_row(params![model, hash], |r| r.get(0))
            .optional()?;
        if let Some(blob) = blob {
            out.insert(hash.to_string(), blob_to_vector(&blob)?);
        }
    }
    Ok(out)
}

pub(crate) fn cache_embedding(conn: &Connection, model: &str, hash: &str, v: &[f32]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO embedding_cache (model, hash, vector) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![model, hash, vector_to_blob(v)])?;
    Ok(())
}

/// Makes the store's last committed time at least `at` (a copied row's time), so that
/// later changes are stamped after it.
pub(crate) fn raise_commit_time(conn: &Connection, at: DateTime<Utc>) -> Result<()> {
    // Times are written in one fixed-width form: text order is time order.
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![crate::store::COMMIT_TIME_KEY, format_time(at)])?;
    Ok(())
}

/// The newest change-log sequence number and how far the log has been pruned.
pub(crate) fn change_head(conn: &Connection) -> Result<(i64, i64)> {
    let head: i64 = conn.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)",
        [],
        |r| r.get(0),
    )?;
    let pruned = get_meta(conn, "changes_pruned_through")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((head, pruned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_read_back_in_either_precision() {
        let v = [0.5f32, -0.25, 0.1, 1.0e-3];
        assert_eq!(blob_to_vector(&vector_to_blob(&v)).unwrap(), v);
        let half = vector_to_half_blob(&v);
        assert_eq!(half.len(), 1 + 2 * v.len());
        let back = blob_to_vector(&half).unwrap();
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{a} vs {b}");
        }
        // An f32 vector whose first byte happens to be the half-precision tag stays f32.
        let tagged_look = [f32::from_le_bytes([HALF_PRECISION, 0, 0, 0x3f]), 2.0];
        assert_eq!(
            blob_to_vector(&vector_to_blob(&tagged_look)).unwrap(),
            tagged_look
        );
        assert!(blob_to_vector(&[1, 2, 3]).is_err());
    }
}
