//! A write transaction ([`StoreTx`]) on PostgreSQL. It mirrors the SQLite backend's
//! operations (`store/sqlite/ops.rs`) and adds what concurrent writers in several processes
//! need: rows read for a change are locked (`FOR UPDATE`, as SQLite's single writer
//! implies), an insert that meets its twin committed by another writer reports it instead
//! of failing, and the first vector dimension is recorded under an advisory lock.

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use serde_json::Value;

use super::filter::Where;
use super::graph::{self, PgGraph};
use super::history;
use super::pool::{get, Session};
use super::rows::{check_metadata, record_from_row, scope_values, version_number, RECORD_COLUMNS};
use super::schema::LOCK_DIMENSIONS;
use super::text::TextDelta;
use super::versions;
use super::PgStore;
use crate::error::{Error, ErrorCode, Result};
use crate::store::{GraphWrite, HistoryRow, Inserted, Selection, StoreTx};
use crate::text;
use crate::types::{format_time, HistoryEntry, MemoryRecord, Scope};

/// pgvector's largest dimension for an HNSW index on `vector`; larger vectors are stored
/// and searched by exact scans.
const MAX_HNSW_DIMENSIONS: usize = 2000;
/// pgvector's largest `vector` dimension.
const MAX_DIMENSIONS: usize = 16_000;

/// One write transaction; text statistics are gathered and applied before the commit.
pub(super) struct PgTx<'s, 'c> {
    pub(super) store: &'s PgStore,
    /// The graph over the transaction's session, which holds the session for the whole
    /// transaction (`graph.s`), so that [`StoreTx::graph`] can lend it.
    pub(super) graph: PgGraph<'s, 'c>,
    pub(super) delta: TextDelta,
    /// The transaction's time, once taken.
    pub(super) now: Option<DateTime<Utc>>,
    /// The change the history rows written now belong to (see [`StoreTx::set_change`]).
    pub(super) change: Option<String>,
}

/// Reads the meta value of `key`.
pub(super) fn get_meta(s: &mut Session<'_>, key: &str) -> Result<Option<String>> {
    let row = s.query_opt(
        "SELECT value FROM agentmem_meta WHERE key = $1::text",
        &[&key],
    )?;
    row.map(|r| get(&r, 0)).transpose()
}

fn set_meta(s: &mut Session<'_>, key: &str, value: &str) -> Result<()> {
    s.execute(
        "INSERT INTO agentmem_meta (key, value) VALUES ($1::text, $2::text)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )?;
    Ok(())
}

/// Makes the store's last committed time at least `at` (a copied row's time), so that
/// later changes are stamped after it.
fn raise_commit_time(s: &mut Session<'_>, at: DateTime<Utc>) -> Result<()> {
    // Times are written in one fixed-width form: text order is time order.
    s.execute(
        "INSERT INTO agentmem_meta (key, value) VALUES ($1::text, $2::text)
         ON CONFLICT (key) DO UPDATE
         SET value = greatest(agentmem_meta.value COLLATE \"C\", excluded.value)",
        &[&crate::store::COMMIT_TIME_KEY, &format_time(at)],
    )?;
    Ok(())
}

/// The recorded vector dimension.
pub(super) fn dimensions(s: &mut Session<'_>) -> Result<Option<usize>> {
    get_meta(s, "dimensions")?
        .map(|d| {
            d.parse().map_err(|e| {
                Error::new(
                    ErrorCode::Corrupted,
                    format!("stored dimension is damaged: {e}"),
                )
            })
        })
        .transpose()
}

/// Records of a query over `agentmem_memories m`.
pub(super) fn query_records(
    s: &mut Session<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<(i64, MemoryRecord)>> {
    s.query(sql, params)?.iter().map(record_from_row).collect()
}

/// The memory with this id; `lock` takes its row for the rest of the transaction.
pub(super) fn get_by_id(
    s: &mut Session<'_>,
    id: &str,
    lock: bool,
) -> Result<Option<(i64, MemoryRecord)>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM agentmem_memories m WHERE m.id = $1::text{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    Ok(query_records(s, &sql, &[&id])?.pop())
}

/// The memories of a scope with these content hashes.
pub(super) fn duplicates(
    s: &mut Session<'_>,
    scope: &Scope,
    hashes: &[String],
    lock: bool,
) -> Result<Vec<(i64, MemoryRecord)>> {
    let [user, agent, run, org] = scope_values(scope);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM agentmem_memories m
         WHERE m.user_id = $1::text AND m.agent_id = $2::text AND m.run_id = $3::text
           AND m.org_id = $4::text AND m.hash = ANY($5::text[]){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    query_records(s, &sql, &[&user, &agent, &run, &org, &hashes])
}

impl PgTx<'_, '_> {
    /// Inserts a memory with its index terms; its key, or `None` when a memory with the
    /// same scope and content hash exists (committed by another writer: the unique index
    /// waited for it), when `on_twin` allows that.
    fn insert_row(
        &mut self,
        rec: &MemoryRecord,
        vector: &[f32],
        on_twin: bool,
    ) -> Result<Option<i64>> {
        check_metadata(&rec.metadata)?;
        let terms = text::index_terms(&rec.content);
        let [user, agent, run, org] = scope_values(&rec.scope);
        let metadata = Value::Object(rec.metadata.clone());
        let created = format_time(rec.created_at);
        let updated = format_time(rec.updated_at);
        let expires = rec.expires_at.map(format_time);
        let valid_from = rec.valid_from.map(format_time);
        let valid_to = rec.valid_to.map(format_time);
        let vector = vector.to_vec();
        let version = version_number(rec.version);
        let sql = format!(
            "INSERT INTO agentmem_memories (id, content, hash, kind, user_id, agent_id, run_id,
                 org_id, metadata, created_at, updated_at, expires_at, embedding, terms, version,
                 valid_from, valid_to, superseded_by)
             VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
                 $8::text, $9::jsonb, $10::text, $11::text, $12::text, $13::real[]::vector,
                 $14::text[], $15::int8, $16::text, $17::text, $18::text){}
             RETURNING key",
            if on_twin {
                " ON CONFLICT (user_id, agent_id, run_id, org_id, hash) DO NOTHING"
            } else {
                ""
            }
        );
        let row = self.graph.s.query_opt(
            &sql,
            &[
                &rec.id,
                &rec.content,
                &rec.hash,
                &rec.kind.as_str(),
                &user,
                &agent,
                &run,
                &org,
                &metadata,
                &created,
                &updated,
                &expires,
                &vector,
                &terms,
                &version,
                &valid_from,
                &valid_to,
                &rec.superseded_by,
            ],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.delta.add(&rec.content, &terms, 1);
        Ok(Some(get(&row, 0)?))
    }
}

impl StoreTx for PgTx<'_, '_> {
    fn now(&mut self) -> Result<DateTime<Utc>> {
        if let Some(t) = self.now {
            return Ok(t);
        }
        // Writers run concurrently here: the meta row is locked until our commit, so the
        // next writer to take a time reads ours, committed (READ COMMITTED re-reads the
        // row after the wait). An upsert so that the first writers queue too.
        let row = self.graph.s.query_one(
            "INSERT INTO agentmem_meta (key, value) VALUES ($1::text, '')
             ON CONFLICT (key) DO UPDATE SET value = agentmem_meta.value
             RETURNING value",
            &[&crate::store::COMMIT_TIME_KEY],
        )?;
        let last: String = get(&row, 0)?;
        let t = crate::store::next_commit_time(Some(&last))?;
        set_meta(self.graph.s, crate::store::COMMIT_TIME_KEY, &format_time(t))?;
        self.now = Some(t);
        Ok(t)
    }

    fn get(&mut self, id: &str) -> Result<Option<(i64, MemoryRecord)>> {
        get_by_id(self.graph.s, id, true)
    }

    fn find_duplicate(&mut self, scope: &Scope, hash: &str) -> Result<Option<(i64, MemoryRecord)>> {
        Ok(duplicates(self.graph.s, scope, &[hash.to_string()], true)?.pop())
    }

    fn select(&mut self, selection: &Selection) -> Result<Vec<(i64, MemoryRecord)>> {
        let w = Where::of(selection, self.store.caps.lower);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM agentmem_memories m WHERE {} ORDER BY m.key FOR UPDATE",
            w.sql
        );
        query_records(self.graph.s, &sql, &w.refs())
    }

    fn insert(&mut self, record: &MemoryRecord, vector: &[f32], actor: &str) -> Result<Inserted> {
        // A twin may be committed and deleted again between our insert and our read of it;
        // then the insert can go through. A few rounds settle any such race.
        for _ in 0..5 {
            if self.insert_row(record, vector, true)?.is_some() {
                let row = HistoryRow::added(record, actor).in_change(self.change.as_deref());
                history::write(self.graph.s, row)?;
                return Ok(Inserted::New);
            }
            if let Some((_, twin)) = duplicates(
                self.graph.s,
                &record.scope,
                std::slice::from_ref(&record.hash),
                false,
            )?
            .pop()
            {
                return Ok(Inserted::Twin(twin.id));
            }
        }
        Err(Error::new(
            ErrorCode::Storage,
            "PostgreSQL: a concurrent writer kept adding and deleting the same memory; \
             try again",
        ))
    }

    fn update(
        &mut self,
        key: i64,
        old: &MemoryRecord,
        new: &MemoryRecord,
        vector: Option<&[f32]>,
        actor: &str,
    ) -> Result<()> {
        check_metadata(&new.metadata)?;
        let gone = || {
            Error::not_found(format!(
                "no memory with id {:?} (deleted meanwhile)",
                new.id
            ))
        };
        // The version replaced is kept first, its row locked. The stored terms and content
        // it returns are what the statistics counted: they are taken out exactly (they
        // match `old` while the row is locked, but the row is the truth).
        let before = versions::close(self.graph.s, key, new.updated_at, &mut self.delta)?;
        let Some((content, stored)) = before else {
            return Err(gone());
        };
        let content_changed = old.content != new.content;
        let terms = content_changed.then(|| text::index_terms(&new.content));
        let metadata = Value::Object(new.metadata.clone());
        let updated = format_time(new.updated_at);
        let expires = new.expires_at.map(format_time);
        let valid_from = new.valid_from.map(format_time);
        let valid_to = new.valid_to.map(format_time);
        let vector = vector.map(<[f32]>::to_vec);
        let version = version_number(new.version);
        let n = self.graph.s.execute(
            "UPDATE agentmem_memories SET content = $2::text, hash = $3::text, kind = $4::text,
                 metadata = $5::jsonb, updated_at = $6::text, expires_at = $7::text,
                 embedding = coalesce($8::real[]::vector, embedding),
                 terms = coalesce($9::text[], terms), version = $10::int8,
                 valid_from = $11::text, valid_to = $12::text, superseded_by = $13::text
             WHERE key = $1::int8",
            &[
                &key,
                &new.content,
                &new.hash,
                &new.kind.as_str(),
                &metadata,
                &updated,
                &expires,
                &vector,
                &terms,
                &version,
                &valid_from,
                &valid_to,
                &new.superseded_by,
            ],
        )?;
        if n == 0 {
            return Err(gone());
        }
        if let Some(terms) = &terms {
            self.delta.add(&content, &stored, -1);
            self.delta.add(&new.content, terms, 1);
        }
        let row = HistoryRow::updated(old, new, actor).in_change(self.change.as_deref());
        history::write(self.graph.s, row)
    }

    fn delete(
        &mut self,
        key: i64,
        record: &MemoryRecord,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        // The version deleted is kept first, its row locked (and its stored content and
        // terms returned, which the statistics counted).
        let closed = versions::close(self.graph.s, key, at, &mut self.delta)?;
        // Gone already: another writer deleted it and wrote its DELETE row.
        let Some((content, terms)) = closed else {
            return Ok(());
        };
        self.graph.s.execute(
            "DELETE FROM agentmem_memories WHERE key = $1::int8",
            &[&key],
        )?;
        self.delta.add(&content, &terms, -1);
        graph::forget_source(self.graph.s, &record.id, at)?;
        let row = HistoryRow::deleted(record, actor, at).in_change(self.change.as_deref());
        history::write(self.graph.s, row)
    }

    fn dimensions(&mut self) -> Result<Option<usize>> {
        dimensions(self.graph.s)
    }

    /// Fixes the embedding column's dimension and builds the HNSW index (which needs it).
    /// Concurrent first writers queue on an advisory lock; the later ones find the
    /// dimension recorded.
    fn record_dimensions(&mut self, dims: usize) -> Result<usize> {
        if let Some(d) = dimensions(self.graph.s)? {
            return Ok(d);
        }
        if dims == 0 || dims > MAX_DIMENSIONS {
            return Err(Error::new(
                ErrorCode::Unsupported,
                format!("pgvector stores vectors of 1 to {MAX_DIMENSIONS} dimensions, not {dims}"),
            ));
        }
        self.graph.s.query(
            "SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))",
            &[&LOCK_DIMENSIONS],
        )?;
        if let Some(d) = dimensions(self.graph.s)? {
            return Ok(d);
        }
        // The dimension and the HNSW parameters are numbers we control: DDL takes no
        // parameters.
        self.graph.s.batch(&format!(
            "ALTER TABLE agentmem_memories ALTER COLUMN embedding TYPE vector({dims})"
        ))?;
        if dims <= MAX_HNSW_DIMENSIONS {
            // pgvector's limits: 2 ≤ m ≤ 100, 4 ≤ ef_construction ≤ 1000, ≥ 2·m.
            let m = self.store.index.connectivity.clamp(2, 100);
            let ef = self.store.index.expansion_add.max(2 * m).clamp(4, 1000);
            self.graph.s.batch(&format!(
                "CREATE INDEX IF NOT EXISTS agentmem_memories_embedding ON agentmem_memories
                 USING hnsw (embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {ef})"
            ))?;
        }
        set_meta(self.graph.s, "dimensions", &dims.to_string())?;
        Ok(dims)
    }

    fn record_embedding_model(&mut self, model: &str) -> Result<()> {
        // A concurrent first writer's row is waited for and then kept.
        self.graph.s.execute(
            "INSERT INTO agentmem_meta (key, value) VALUES ('embedding_model', $1::text)
             ON CONFLICT (key) DO NOTHING",
            &[&model],
        )?;
        match get_meta(self.graph.s, "embedding_model")? {
            Some(stored) if stored != model => Err(crate::store::model_mismatch(&stored, model)),
            _ => Ok(()),
        }
    }

    fn cache_embedding(&mut self, model: &str, hash: &str, vector: &[f32]) -> Result<()> {
        let vector = vector.to_vec();
        self.graph.s.execute(
            "INSERT INTO agentmem_embedding_cache (model, hash, vector)
             VALUES ($1::text, $2::text, $3::real[]) ON CONFLICT DO NOTHING",
            &[&model, &hash, &vector],
        )?;
        Ok(())
    }

    fn import_memory(&mut self, record: &MemoryRecord, vector: &[f32]) -> Result<()> {
        self.insert_row(record, vector, false)?;
        raise_commit_time(self.graph.s, record.updated_at.max(record.created_at))
    }

    fn import_history(&mut self, entry: &HistoryEntry) -> Result<()> {
        raise_commit_time(self.graph.s, entry.created_at)?;
        history::write(self.graph.s, HistoryRow::imported(entry))
    }

    fn import_version(&mut self, record: &MemoryRecord, vector: Option<&[f32]>) -> Result<()> {
        if let Some(ended) = record.valid_to_tx {
            raise_commit_time(self.graph.s, ended)?;
        }
        versions::import(self.graph.s, record, vector, &mut self.delta)
    }

    fn raise_commit_time(&mut self, at: DateTime<Utc>) -> Result<()> {
        raise_commit_time(self.graph.s, at)
    }

    fn set_change(&mut self, change: Option<String>) {
        self.change = change;
    }

    fn get_as_of(&mut self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>> {
        versions::get_as_of(self.graph.s, id, at)
    }

    fn versions(&mut self, id: &str) -> Result<Vec<MemoryRecord>> {
        versions::all_of(self.graph.s, id)
    }

    fn version_vector(&mut self, id: &str, version: u64) -> Result<Option<Vec<f32>>> {
        versions::vector_of(self.graph.s, id, version)
    }

    fn change(&mut self, change_id: &str) -> Result<Vec<HistoryEntry>> {
        history::change_rows(self.graph.s, change_id)
    }

    fn mark_undone(&mut self, change_id: &str, by: &str) -> Result<()> {
        history::mark_undone(self.graph.s, change_id, by)
    }

    fn graph(&mut self) -> Result<&mut dyn GraphWrite> {
        Ok(&mut self.graph)
    }
}
