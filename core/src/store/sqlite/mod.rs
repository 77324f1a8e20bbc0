//! The SQLite backend, the default and the reference: one file holds the memories, their
//! history, their vectors and a change log; a usearch HNSW index is kept in memory, saved
//! beside the file, and brought up to date from the change log (other processes' writes).

pub(crate) mod db;
mod filter;
mod graph;
pub(crate) mod ops;
mod past_index;
pub(crate) mod schema;
mod text;
mod tx;
mod versions;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};

use self::db::Db;
use self::filter::Where;
use self::graph::SqliteGraph;
use self::ops::{VocabDelta, RECORD_COLUMNS};
use self::past_index::PastIndex;
use self::text::SqliteText;
use self::tx::SqliteTx;
use super::{
    ExportedMemory, ExportedVersion, GraphRead, PageRequest, Selection, Store, StoreExport,
    StoreInfo, StoreTx, StoredPage, TextIndex,
};
use crate::error::{Error, Result};
use crate::index::vector::{self, VectorIndex};
use crate::index::VectorIndexOptions;
use crate::types::{format_time, HistoryEntry, MemoryRecord, Scope};

/// Splits search keys into current memories' keys and past versions' (`versions` keys,
/// made positive again).
fn split_keys(keys: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (current, past): (Vec<i64>, Vec<i64>) = keys.iter().partition(|k| **k > 0);
    (current, past.into_iter().map(|k| -k).collect())
}

/// Changes kept in the log behind the saved index, so that other processes with a slightly
/// older in-memory index can still catch up without a rebuild.
const CHANGE_LOG_MARGIN: i64 = 10_000;

/// A SQLite file (or an in-memory database) and its vector index.
pub(crate) struct SqliteStore {
    db: Db,
    index: RwLock<VectorIndex>,
    index_options: VectorIndexOptions,
    /// Where the index is saved; `None` in memory or when persistence is off.
    index_path: Option<PathBuf>,
    /// The HNSW index of past versions (as-of vector search), saved beside the store.
    past: RwLock<PastIndex>,
    past_path: Option<PathBuf>,
    store_id: String,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, or one in memory; loads the saved index when
    /// it matches the store and replays the change log after it.
    pub(crate) fn open(
        path: Option<&Path>,
        index_options: VectorIndexOptions,
        persist_index: bool,
    ) -> Result<SqliteStore> {
        let db = match path {
            Some(p) => Db::open(p)?,
            None => Db::open_in_memory()?,
        };
        let store_id = db.read(|c| Ok(ops::get_meta(c, "store_id")?.unwrap_or_default()))?;
        let index_path = match (path, persist_index) {
            (Some(p), true) => Some(vector::sibling(p, ".usearch")),
            _ => None,
        };
        let past_path = match (path, persist_index) {
            (Some(p), true) => Some(vector::sibling(p, ".versions.usearch")),
            _ => None,
        };
        for p in index_path.iter().chain(&past_path) {
            vector::remove_stale_temporaries(p);
        }
        let past = match &past_path {
            Some(p) => PastIndex::load(p, &store_id, index_options),
            None => PastIndex::new(index_options),
        };
        let saved = index_path
            .as_deref()
            .and_then(|p| VectorIndex::load(p, &store_id, index_options));
        // A copy of this store that went another way has the same id and sequence numbers:
        // only the change log's digest tells whose history the saved index reflects.
        let saved = match saved {
            Some(ix) => {
                let digest = db.read(|c| ops::change_digest(c, ix.applied_seq))?;
                (digest.is_some() && digest == ix.applied_digest).then_some(ix)
            }
            None => None,
        };
        let index = saved.unwrap_or_else(|| VectorIndex::empty(index_options));
        let store = SqliteStore {
            db,
            index: RwLock::new(index),
            index_options,
            index_path,
            past: RwLock::new(past),
            past_path,
            store_id,
        };
        store.refresh()?;
        // A saved index that replays to the wrong size is not to be trusted: rebuild.
        let stored = store.db.read(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
            Ok(n as usize)
        })?;
        if store.index_read().len() != stored {
            {
                let mut index = store.index_write();
                index.clear();
                index.applied_seq = 0;
            }
            store.refresh()?;
        }
        Ok(store)
    }

    fn index_read(&self) -> RwLockReadGuard<'_, VectorIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> RwLockWriteGuard<'_, VectorIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of past versions, brought up to date with the table first.
    fn past_read(&self) -> Result<RwLockReadGuard<'_, PastIndex>> {
        {
            let mut past = self.past.write().unwrap_or_else(|p| p.into_inner());
            self.db.read(|c| past.refresh(c))?;
        }
        Ok(self.past.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The `count` current memories nearest to `query` among those passing `cond` (over
    /// `memories m`, with `params`): an exact scan when few pass, otherwise the HNSW walk
    /// with the condition applied as it goes (and the exact scan if it comes back short).
    fn nearest_among(
        &self,
        index: &VectorIndex,
        query: &[f32],
        count: usize,
        cond: &str,
        params: &[SqlValue],
    ) -> Result<Vec<(i64, f32)>> {
        let sql = format!("SELECT m.key FROM memories m WHERE {cond}");
        let allowed: Vec<u64> = self.db.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))?;
            rows.map(|k| k.map(|k| k as u64).map_err(Error::from))
                .collect()
        })?;
        let signed = |hits: Vec<(u64, f32)>| hits.into_iter().map(|(k, s)| (k as i64, s)).collect();
        if allowed.len() <= self.index_options.exact_scan_limit {
            return Ok(signed(index.exact(query, &allowed, count)?));
        }
        let set: HashSet<u64> = allowed.iter().copied().collect();
        let hits = index.search(query, count, Some(&|k| set.contains(&k)))?;
        if hits.len() < count.min(allowed.len()) {
            return Ok(signed(index.exact(query, &allowed, count)?));
        }
        Ok(signed(hits))
    }

    fn select(&self, conn: &Connection, selection: &Selection) -> Result<Vec<(i64, MemoryRecord)>> {
        let w = Where::of(selection);
        let sql = format!("SELECT {} FROM {}", w.columns(), w.rows());
        query_rows(conn, &sql, &w.params, &w)
    }
}

/// The records `sql` selects with `w`'s columns, read as `w` reads them.
fn query_rows(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    w: &Where,
) -> Result<Vec<(i64, MemoryRecord)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(w.read(row)?);
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.db
            .path()
            .map_or_else(|| ":memory:".to_string(), |p| p.display().to_string())
    }

    fn path(&self) -> Option<&Path> {
        self.db.path()
    }

    fn info(&self) -> Result<StoreInfo> {
        self.db.read(|c| {
            Ok(StoreInfo {
                embedding_model: ops::get_meta(c, "embedding_model")?,
                dimensions: ops::dimensions(c)?,
            })
        })
    }

    fn get(&self, id: &str) -> Result<Option<MemoryRecord>> {
        Ok(self.db.read(|c| ops::get_by_id(c, id))?.map(|(_, r)| r))
    }

    fn get_as_of(&self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>> {
        self.db.read(|c| versions::get_as_of(c, id, at))
    }

    fn versions(&self, id: &str) -> Result<Vec<MemoryRecord>> {
        self.db.read(|c| versions::all_of(c, id))
    }

    fn find_duplicates(
        &self,
        scope: &Scope,
        hashes: &[String],
    ) -> Result<Vec<Option<MemoryRecord>>> {
        self.db.read(|c| {
            hashes
                .iter()
                .map(|h| Ok(ops::find_duplicate(c, scope, h)?.map(|(_, r)| r)))
                .collect()
        })
    }

    fn records(&self, keys: &[i64]) -> Result<HashMap<i64, MemoryRecord>> {
        let (current, past) = split_keys(keys);
        self.db.read(|c| {
            let mut out = ops::get_by_keys(c, &current)?;
            if !past.is_empty() {
                out.extend(versions::past_by_keys(c, &past)?);
            }
            Ok(out)
        })
    }

    fn list(&self, selection: &Selection, page: &PageRequest) -> Result<StoredPage> {
        let w = Where::of(selection);
        let count_sql = format!("SELECT count(*) FROM {}", w.rows());
        let mut params = w.params.clone();
        let (column, cmp, dir) = page.order_sql();
        let mut after = String::new();
        if let Some((key, at)) = &page.after {
            let n = params.len();
            after = format!(" AND (m.{column}, m.key) {cmp} (?{}, ?{})", n + 1, n + 2);
            params.push(SqlValue::Text(at.clone()));
            params.push(SqlValue::Integer(*key));
        }
        let n = params.len();
        let sql = format!(
            "SELECT {} FROM {}{after} ORDER BY m.{column} {dir}, m.key {dir} \
             LIMIT ?{} OFFSET ?{}",
            w.columns(),
            w.rows(),
            n + 1,
            n + 2
        );
        // Saturate, never wrap: a negative OFFSET means none to SQLite.
        let signed = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        params.push(SqlValue::Integer(signed(page.limit)));
        params.push(SqlValue::Integer(signed(page.offset)));
        let count_params = &w.params;
        // One read transaction: the count sees the snapshot the page was read from.
        self.db.read(|c| {
            let rows = query_rows(c, &sql, &params, &w)?;
            let total = if page.with_total {
                let n: i64 =
                    c.query_row(&count_sql, rusqlite::params_from_iter(count_params), |r| {
                        r.get(0)
                    })?;
                Some(n as usize)
            } else {
                None
            };
            Ok(StoredPage { rows, total })
        })
    }

    fn count(&self, selection: &Selection) -> Result<usize> {
        let w = Where::of(selection);
        let sql = format!("SELECT count(*) FROM {}", w.rows());
        self.db.read(|c| {
            let n: i64 = c.query_row(&sql, rusqlite::params_from_iter(&w.params), |r| r.get(0))?;
            Ok(n as usize)
        })
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        self.db.read(|c| ops::history(c, id))
    }

    fn cached_embeddings(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>> {
        self.db.read(|c| ops::cached_embeddings(c, model, hashes))
    }

    /// A selective filter is answered by an exact scan; otherwise the HNSW walk applies the
    /// filter as it goes, and falls back to the exact scan if the walk comes back short.
    /// As of a past moment, past versions are scanned too.
    fn nearest(
        &self,
        query: &[f32],
        count: usize,
        selection: &Selection,
    ) -> Result<Vec<(i64, f32)>> {
        let index = self.index_read();
        let signed = |hits: Vec<(u64, f32)>| hits.into_iter().map(|(k, s)| (k as i64, s)).collect();
        if selection.is_unfiltered() {
            // What the selection leaves out (expired, superseded), each read from its
            // partial index (plain statements: a bound flag in them hides the index).
            let excluded: HashSet<u64> = self.db.read(|c| {
                let mut keys = HashSet::new();
                if !selection.include_expired {
                    let mut stmt = c.prepare_cached(
                        "SELECT key FROM memories WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    )?;
                    let rows =
                        stmt.query_map([format_time(selection.now)], |r| r.get::<_, i64>(0))?;
                    for k in rows {
                        keys.insert(k? as u64);
                    }
                }
                if !selection.include_superseded {
                    let mut stmt = c.prepare_cached(
                        "SELECT key FROM memories WHERE superseded_by IS NOT NULL",
                    )?;
                    for k in stmt.query_map([], |r| r.get::<_, i64>(0))? {
                        keys.insert(k? as u64);
                    }
                }
                Ok(keys)
            })?;
            return Ok(signed(if excluded.is_empty() {
                index.search(query, count, None)?
            } else {
                index.search(query, count, Some(&|k| !excluded.contains(&k)))?
            }));
        }
        let w = Where::of(selection);
        let Some(at) = &w.as_of else {
            return self.nearest_among(&index, query, count, &w.sql, &w.params);
        };
        // As of a past moment: the current memories already written then, and the past
        // versions current then (through the index of past versions), merged.
        let cond = format!("({}) AND {}", w.sql, versions::current_at(at));
        let mut hits = self.nearest_among(&index, query, count, &cond, &w.params)?;
        drop(index);
        let limit = self.index_options.exact_scan_limit;
        // A scope's past is usually small: its vectors are read with its keys, in one pass
        // (the whole store's past goes to its index).
        let scanned = if selection.filter.is_all() {
            None
        } else {
            self.db
                .read(|c| versions::past_similarities_at(c, query, &w.sql, &w.params, at, limit))?
        };
        let found = match scanned {
            Some(scored) => scored,
            None => {
                let allowed = self
                    .db
                    .read(|c| versions::past_keys_at(c, &w.sql, &w.params, at))?;
                if allowed.len() <= limit {
                    self.db
                        .read(|c| versions::past_similarities(c, query, &allowed))?
                } else {
                    self.past_read()?.nearest(query, count, &allowed)?
                }
            }
        };
        hits.extend(found.into_iter().map(|(k, s)| (-(k as i64), s)));
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(count);
        Ok(hits)
    }

    fn similarities(&self, query: &[f32], keys: &[i64]) -> Result<HashMap<i64, f32>> {
        let (current, past) = split_keys(keys);
        let mut out: HashMap<i64, f32> = {
            let index = self.index_read();
            current
                .iter()
                .filter_map(|&k| index.get(k as u64).map(|v| (k, vector::cosine(query, &v))))
                .collect()
        };
        if !past.is_empty() {
            let keys: Vec<u64> = past.iter().map(|&k| k as u64).collect();
            let scored = self
                .db
                .read(|c| versions::past_similarities(c, query, &keys))?;
            out.extend(scored.into_iter().map(|(k, s)| (-(k as i64), s)));
        }
        Ok(out)
    }

    fn read_text(
        &self,
        selection: &Selection,
        f: &mut dyn FnMut(&mut dyn TextIndex) -> Result<()>,
    ) -> Result<()> {
        let w = Where::of(selection);
        self.db.read(|conn| {
            f(&mut SqliteText {
                conn,
                w: &w,
                everything: selection.as_of.is_none() && text::admits_everything(conn, selection)?,
            })
        })
    }

    fn read_graph(&self, f: &mut dyn FnMut(&mut dyn GraphRead) -> Result<()>) -> Result<()> {
        self.db.read(|conn| f(&mut SqliteGraph { conn }))
    }

    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()> {
        self.db.write(|conn| {
            let mut tx = SqliteTx {
                store: self,
                conn,
                vocab: VocabDelta::default(),
                now: None,
                change: None,
                graph: SqliteGraph { conn },
            };
            f(&mut tx)?;
            std::mem::take(&mut tx.vocab).apply(conn)
        })?;
        self.refresh()
    }

    fn reset(&self) -> Result<()> {
        self.db.write(|tx| {
            tx.execute_batch(
                "DELETE FROM memories;
                 INSERT INTO memories_fts (memories_fts) VALUES ('delete-all');
                 DELETE FROM terms;
                 DELETE FROM term_grams;
                 DELETE FROM history;
                 DELETE FROM versions;
                 INSERT INTO versions_fts (versions_fts) VALUES ('delete-all');
                 DELETE FROM embedding_cache;
                 DELETE FROM relation_sources;
                 DELETE FROM relations;
                 DELETE FROM entity_names;
                 DELETE FROM entity_embeddings;
                 DELETE FROM entities;
                 DELETE FROM entity_history;
                 DELETE FROM forgotten_sources;
                 INSERT INTO changes (key, op) VALUES (0, 'delete');
                 DELETE FROM changes;",
            )?;
            // Every process's index must start again from nothing. The marker row above
            // moves the log's head, so that a handle already caught up sees a change and
            // rebuilds (the pruned mark below is then ahead of what it applied).
            let (head, _) = ops::change_head(tx)?;
            ops::set_meta(tx, "changes_pruned_through", &head.to_string())?;
            past_index::next_epoch(tx)
        })?;
        self.past
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .forget();
        if let Some(p) = &self.past_path {
            vector::remove_saved(p);
        }
        {
            let mut index = self.index_write();
            index.clear();
            index.applied_seq = 0;
        }
        if let Some(p) = &self.index_path {
            vector::remove_saved(p);
        }
        self.refresh()
    }

    fn prune_versions(
        &self,
        ended_before: Option<DateTime<Utc>>,
        keep_last: Option<usize>,
    ) -> Result<usize> {
        let mut pruned = 0;
        self.db.write(|conn| {
            let mut vocab = VocabDelta::default();
            pruned = versions::prune(conn, ended_before, keep_last, &mut vocab)?;
            if pruned > 0 {
                past_index::next_epoch(conn)?;
            }
            vocab.apply(conn)
        })?;
        Ok(pruned)
    }

    /// Brings the in-memory vector index up to date with the change log (writes of this and
    /// other processes). Rebuilds from SQLite when the log no longer reaches back far enough.
    fn refresh(&self) -> Result<()> {
        let (head, _) = self.db.read(ops::change_head)?;
        if self.index_read().applied_seq == head && head > 0 {
            return Ok(());
        }
        let mut index = self.index_write();
        // Read the log and the vectors it names in one snapshot.
        let work = self.db.read(|c| {
            let (head, pruned) = ops::change_head(c)?;
            if index.applied_seq == head && index.len() > 0 {
                return Ok(None);
            }
            // An index ahead of the log was saved by a newer state of the store (the file was
            // restored from a backup): it holds changes this store never saw.
            let rebuild = pruned > index.applied_seq
                || index.applied_seq > head
                || (index.applied_seq == 0 && index.len() == 0);
            let mut upserts: Vec<(u64, Vec<f32>)> = Vec::new();
            let mut deletes: Vec<u64> = Vec::new();
            if rebuild {
                let mut stmt = c.prepare("SELECT key, embedding FROM memories ORDER BY key")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
                for row in rows {
                    let (k, blob) = row?;
                    upserts.push((k as u64, ops::blob_to_vector(&blob)?));
                }
            } else {
                // The last change of each key since what was applied decides its fate.
                let mut stmt = c.prepare_cached(
                    "SELECT ch.key, ch.op, m.embedding FROM changes ch
                     LEFT JOIN memories m ON m.key = ch.key
                     WHERE ch.seq IN (SELECT max(seq) FROM changes WHERE seq > ?1 GROUP BY key)",
                )?;
                let rows = stmt.query_map([index.applied_seq], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })?;
                for row in rows {
                    let (k, op, blob) = row?;
                    match (op.as_str(), blob) {
                        ("upsert", Some(blob)) => {
                            upserts.push((k as u64, ops::blob_to_vector(&blob)?))
                        }
                        _ => deletes.push(k as u64),
                    }
                }
            }
            let digest = ops::change_digest(c, head)?;
            Ok(Some((head, digest, rebuild, upserts, deletes)))
        })?;
        let Some((head, digest, rebuild, upserts, deletes)) = work else {
            return Ok(());
        };
        if rebuild {
            index.clear();
        }
        for key in deletes {
            index.remove(key)?;
        }
        index.upsert_many(&upserts)?;
        index.applied_seq = head;
        index.applied_digest = digest;
        Ok(())
    }

    /// Saves the vector index beside the store so the next open need not rebuild it, and
    /// trims the change log behind it.
    fn flush(&self) -> Result<()> {
        if let Some(path) = &self.past_path {
            let mut past = self.past.write().unwrap_or_else(|p| p.into_inner());
            if past.is_ready() && past.index.dirty {
                past.index.save(path, &self.store_id)?;
                past.index.dirty = false;
            }
        }
        let Some(path) = &self.index_path else {
            return Ok(());
        };
        self.refresh()?;
        let saved_seq = {
            let mut index = self.index_write();
            if !index.dirty {
                return Ok(());
            }
            index.save(path, &self.store_id)?;
            index.dirty = false;
            index.applied_seq
        };
        let prune_to = saved_seq - CHANGE_LOG_MARGIN;
        if prune_to > 0 {
            self.db.write(|tx| {
                let (_, pruned) = ops::change_head(tx)?;
                if prune_to > pruned {
                    tx.execute("DELETE FROM changes WHERE seq <= ?1", [prune_to])?;
                    ops::set_meta(tx, "changes_pruned_through", &prune_to.to_string())?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn indexed_vectors(&self) -> Result<usize> {
        self.refresh()?;
        Ok(self.index_read().len())
    }
}

impl StoreExport for SqliteStore {
    fn export_memories(&self, after: i64, limit: usize) -> Result<Vec<ExportedMemory>> {
        self.db.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS}, m.embedding FROM memories m WHERE m.key > ?1 \
                 ORDER BY m.key LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![after, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let (key, record) = ops::record_from_row(row)?;
                let blob: Vec<u8> = row.get(ops::RECORD_WIDTH)?;
                out.push((key, record, ops::blob_to_vector(&blob)?));
            }
            Ok(out)
        })
    }

    fn export_history(&self, after: i64, limit: usize) -> Result<Vec<(i64, HistoryEntry)>> {
        self.db.read(|c| ops::history_page(c, after, limit))
    }

    fn export_versions(&self, after: i64, limit: usize) -> Result<Vec<ExportedVersion>> {
        self.db.read(|c| versions::export(c, after, limit))
    }
}
