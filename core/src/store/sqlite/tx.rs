//! A write transaction of the SQLite backend: each change with its history row, its
//! keyword terms and its change-log row.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::graph::{self, SqliteGraph};
use super::ops::{self, VocabDelta};
use super::versions;
use super::SqliteStore;
use crate::error::Result;
use crate::store::{
    model_mismatch, next_commit_time, GraphWrite, HistoryRow, Inserted, Selection, StoreTx,
    COMMIT_TIME_KEY,
};
use crate::types::{format_time, HistoryEntry, MemoryRecord, Scope};

/// One write transaction; vocabulary changes are gathered and applied before the commit.
pub(super) struct SqliteTx<'a> {
    pub(super) store: &'a SqliteStore,
    pub(super) conn: &'a Connection,
    pub(super) vocab: VocabDelta,
    /// The transaction's time, once taken.
    pub(super) now: Option<DateTime<Utc>>,
    /// The change the history rows written now belong to (see [`StoreTx::set_change`]).
    pub(super) change: Option<String>,
    /// The graph over the same transaction.
    pub(super) graph: SqliteGraph<'a>,
}

impl StoreTx for SqliteTx<'_> {
    fn now(&mut self) -> Result<DateTime<Utc>> {
        if let Some(t) = self.now {
            return Ok(t);
        }
        // The write lock is held: no other writer can commit in between.
        let last = ops::get_meta(self.conn, COMMIT_TIME_KEY)?;
        let t = next_commit_time(last.as_deref())?;
        ops::set_meta(self.conn, COMMIT_TIME_KEY, &format_time(t))?;
        self.now = Some(t);
        Ok(t)
    }

    fn get(&mut self, id: &str) -> Result<Option<(i64, MemoryRecord)>> {
        ops::get_by_id(self.conn, id)
    }

    fn find_duplicate(&mut self, scope: &Scope, hash: &str) -> Result<Option<(i64, MemoryRecord)>> {
        ops::find_duplicate(self.conn, scope, hash)
    }

    fn select(&mut self, selection: &Selection) -> Result<Vec<(i64, MemoryRecord)>> {
        self.store.select(self.conn, selection)
    }

    fn insert(&mut self, record: &MemoryRecord, vector: &[f32], actor: &str) -> Result<Inserted> {
        ops::insert_memory(self.conn, record, vector, &mut self.vocab)?;
        let row = HistoryRow::added(record, actor).in_change(self.change.as_deref());
        ops::write_history(self.conn, row)?;
        Ok(Inserted::New)
    }

    fn update(
        &mut self,
        key: i64,
        old: &MemoryRecord,
        new: &MemoryRecord,
        vector: Option<&[f32]>,
        actor: &str,
    ) -> Result<()> {
        ops::update_memory(self.conn, key, old, new, vector, &mut self.vocab)?;
        let row = HistoryRow::updated(old, new, actor).in_change(self.change.as_deref());
        ops::write_history(self.conn, row)
    }

    fn delete(
        &mut self,
        key: i64,
        record: &MemoryRecord,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        ops::delete_memory(self.conn, key, record, &mut self.vocab, at)?;
        graph::forget_source(self.conn, &record.id, at)?;
        let row = HistoryRow::deleted(record, actor, at).in_change(self.change.as_deref());
        ops::write_history(self.conn, row)
    }

    fn dimensions(&mut self) -> Result<Option<usize>> {
        ops::dimensions(self.conn)
    }

    fn record_dimensions(&mut self, dimensions: usize) -> Result<usize> {
        // One writer at a time: nobody can record another dimension in between.
        if let Some(d) = ops::dimensions(self.conn)? {
            return Ok(d);
        }
        ops::set_meta(self.conn, "dimensions", &dimensions.to_string())?;
        Ok(dimensions)
    }

    fn record_embedding_model(&mut self, model: &str) -> Result<()> {
        match ops::get_meta(self.conn, "embedding_model")? {
            None => ops::set_meta(self.conn, "embedding_model", model),
            Some(stored) if stored == model => Ok(()),
            Some(stored) => Err(model_mismatch(&stored, model)),
        }
    }

    fn cache_embedding(&mut self, model: &str, hash: &str, vector: &[f32]) -> Result<()> {
        ops::cache_embedding(self.conn, model, hash, vector)
    }

    fn import_memory(&mut self, record: &MemoryRecord, vector: &[f32]) -> Result<()> {
        ops::insert_memory(self.conn, record, vector, &mut self.vocab)?;
        ops::raise_commit_time(self.conn, record.updated_at.max(record.created_at))
    }

    fn import_history(&mut self, entry: &HistoryEntry) -> Result<()> {
        ops::raise_commit_time(self.conn, entry.created_at)?;
        ops::write_history(self.conn, HistoryRow::imported(entry))
    }

    fn import_version(&mut self, record: &MemoryRecord, vector: Option<&[f32]>) -> Result<()> {
        if let Some(ended) = record.valid_to_tx {
            ops::raise_commit_time(self.conn, ended)?;
        }
        versions::import(self.conn, record, vector, &mut self.vocab)
    }

    fn raise_commit_time(&mut self, at: DateTime<Utc>) -> Result<()> {
        ops::raise_commit_time(self.conn, at)
    }

    fn set_change(&mut self, change: Option<String>) {
        self.change = change;
    }

    fn get_as_of(&mut self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>> {
        versions::get_as_of(self.conn, id, at)
    }

    fn versions(&mut self, id: &str) -> Result<Vec<MemoryRecord>> {
        versions::all_of(self.conn, id)
    }

    fn version_vector(&mut self, id: &str, version: u64) -> Result<Option<Vec<f32>>> {
        versions::vector_of(self.conn, id, version)
    }

    fn change(&mut self, change_id: &str) -> Result<Vec<HistoryEntry>> {
        ops::change_rows(self.conn, change_id)
    }

    fn mark_undone(&mut self, change_id: &str, by: &str) -> Result<()> {
        ops::mark_undone(self.conn, change_id, by)
    }

    fn graph(&mut self) -> Result<&mut dyn GraphWrite> {
        Ok(&mut self.graph)
    }
}
