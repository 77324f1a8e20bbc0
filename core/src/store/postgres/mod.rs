//! The PostgreSQL backend (feature `postgres`): memories, history, vectors (pgvector, HNSW
//! with cosine distance) and the keyword and fuzzy indexes live in the database, shared by
//! every process that opens the same URL. Its semantics are the SQLite backend's: the same
//! filters ([`filter`]), the same duplicate rule, the same BM25 scores ([`text`]), the same
//! past versions read as of any moment ([`versions`]), the same valid times and supersede
//! links on every version, history rows grouped in changes that can be undone
//! ([`history`]), and the same knowledge graph ([`graph`]).
//!
//! Connections come from a small pool of their own ([`pool`]) and are made without TLS.
//! Writes run in read-committed transactions that are retried on serialisation failures
//! and deadlocks; reads run in repeatable-read snapshots.

mod filter;
mod graph;
mod history;
mod options;
mod pool;
mod rows;
mod schema;
mod session;
mod text;
mod tx;
mod versions;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::config::SslMode;

use self::filter::Where;
use self::graph::PgGraph;
pub use self::options::PostgresOptions;
use self::pool::{get, Pool, Session};
use self::rows::{history_from_row, vector_text, HISTORY_COLUMNS, RECORD_COLUMNS, RECORD_WIDTH};
use self::schema::Capabilities;
use self::text::PgText;
use self::tx::{dimensions, duplicates, get_by_id, get_meta, query_records};
use self::versions::nearest_past_sql;
use super::{
    ExportedMemory, ExportedVersion, GraphRead, PageRequest, Selection, Store, StoreExport,
    StoreInfo, StoreTx, StoredPage, TextIndex,
};
use crate::error::{Error, ErrorCode, Result};
use crate::index::VectorIndexOptions;
use crate::types::{HistoryEntry, MemoryRecord, Scope};

/// pgvector's largest `hnsw.ef_search`.
const MAX_EF_SEARCH: usize = 1000;

/// A store in a PostgreSQL database.
pub(crate) struct PgStore {
    pool: Pool,
    index: VectorIndexOptions,
    caps: Capabilities,
    /// The URL without its password.
    location: String,
    /// The vector dimension, once recorded (it never changes after).
    dims: OnceLock<usize>,
}

impl PgStore {
    /// Connects, checks that the schema is an agent_mem store (or holds none yet) and
    /// migrates it.
    pub(crate) fn open(
        url: &str,
        options: &PostgresOptions,
        index: VectorIndexOptions,
    ) -> Result<PgStore> {
        options.validate()?;
        let (location, text, what) = if super::conninfo::is_conninfo(url) {
            let pairs = super::conninfo::parse(url)?;
            let driver = super::conninfo::driver_pairs(&pairs)?;
            let text = super::conninfo::to_text(driver.iter().map(|(k, v)| (*k, v.as_str())));
            (super::conninfo::redact(&pairs), text, "connection string")
        } else {
            (pool::redact_url(url), url.to_string(), "URL")
        };
        // (The parser's messages name options and characters, never values.)
        let mut config = postgres::Config::from_str(&text).map_err(|e| {
            Error::invalid(format!(
                "{location} is not a valid PostgreSQL {what}: {}",
                pool::describe(&e)
            ))
        })?;
        match config.get_ssl_mode() {
            SslMode::Disable | SslMode::Prefer => {}
            _ => {
                return Err(Error::new(
                    ErrorCode::Unsupported,
                    format!(
                        "{location}: this build of agent_mem connects to PostgreSQL without TLS \
                         and will not downgrade a connection that asks for it (sslmode=require); \
                         use sslmode=disable on a trusted network or a local socket, or a \
                         TLS-terminating proxy"
                    ),
                ))
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_millis(options.connect_timeout_ms));
        }
        if config.get_application_name().is_none() {
            config.application_name("agent_mem");
        }
        let pool = Pool::new(
            config,
            options.pool_size,
            Duration::from_millis(options.pool_timeout_ms),
            options.statement_timeout_ms,
        );
        let caps = {
            let mut lease = pool.get()?;
            let prepared = {
                let mut s = lease.session()?;
                schema::prepare(&mut s, &location)
            };
            if prepared.is_err() {
                // It may hold the migration lock or a broken transaction: never reuse it.
                lease.discard();
            }
            prepared?
        };
        Ok(PgStore {
            pool,
            index,
            caps,
            location,
            dims: OnceLock::new(),
        })
    }

    /// Checks a query vector against the store's dimension (none recorded: nothing stored
    /// to compare with, any query finds nothing).
    fn check_query(&self, query: &[f32]) -> Result<()> {
        let dims = match self.dims.get() {
            Some(d) => Some(*d),
            None => {
                let d = self.read(false, dimensions)?;
                if let Some(d) = d {
                    let _ = self.dims.set(d);
                }
                d
            }
        };
        match dims {
            Some(d) if d != query.len() => Err(Error::invalid(format!(
                "query vector has {} dimensions; the store holds {d}",
                query.len()
            ))),
            _ => Ok(()),
        }
    }

    fn selection(&self, selection: &Selection) -> Where {
        Where::of(selection, self.caps.lower)
    }
}

/// Splits search keys into current memories' keys and past versions' (`agentmem_versions`
/// keys, made positive again).
fn split_keys(keys: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (current, past): (Vec<i64>, Vec<i64>) = keys.iter().partition(|k| **k > 0);
    (current, past.into_iter().map(|k| -k).collect())
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn path(&self) -> Option<&Path> {
        None
    }

    fn info(&self) -> Result<StoreInfo> {
        self.read(true, |s| {
            Ok(StoreInfo {
                embedding_model: get_meta(s, "embedding_model")?,
                dimensions: dimensions(s)?,
            })
        })
    }

    fn get(&self, id: &str) -> Result<Option<MemoryRecord>> {
        Ok(self
            .read(false, |s| get_by_id(s, id, false))?
            .map(|(_, r)| r))
    }

    fn get_as_of(&self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>> {
        self.read(false, |s| versions::get_as_of(s, id, at))
    }

    fn versions(&self, id: &str) -> Result<Vec<MemoryRecord>> {
        self.read(false, |s| versions::all_of(s, id))
    }

    fn find_duplicates(
        &self,
        scope: &Scope,
        hashes: &[String],
    ) -> Result<Vec<Option<MemoryRecord>>> {
        let found = self.read(false, |s| duplicates(s, scope, hashes, false))?;
        let by_hash: HashMap<String, MemoryRecord> = found
            .into_iter()
            .map(|(_, r)| (r.hash.clone(), r))
            .collect();
        Ok(hashes.iter().map(|h| by_hash.get(h).cloned()).collect())
    }

    fn records(&self, keys: &[i64]) -> Result<HashMap<i64, MemoryRecord>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let (keys, past) = split_keys(keys);
        if !past.is_empty() {
            return self.read(false, |s| versions::by_keys(s, &keys, &past));
        }
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM agentmem_memories m WHERE m.key = ANY($1::int8[])"
        );
        Ok(self
            .read(false, |s| query_records(s, &sql, &[&keys]))?
            .into_iter()
            .collect())
    }

    fn list(&self, selection: &Selection, page: &PageRequest) -> Result<StoredPage> {
        let mut w = self.selection(selection);
        let count_sql = format!("SELECT count(*) FROM {}", w.rows());
        // The count takes the selection's parameters only, the ones pushed so far.
        let count_params = w.params.len();
        let (column, cmp, dir) = page.order_sql();
        let mut after = String::new();
        if let Some((key, at)) = &page.after {
            let t = w.push(at.clone());
            let k = w.push(*key);
            after = format!(" AND (m.{column}, m.key) {cmp} ({t}::text, {k}::int8)");
        }
        let limit = w.push(page.limit.min(i64::MAX as usize) as i64);
        let offset = w.push(page.offset.min(i64::MAX as usize) as i64);
        let sql = format!(
            "SELECT {} FROM {}{after}
             ORDER BY m.{column} {dir}, m.key {dir} LIMIT {limit}::int8 OFFSET {offset}::int8",
            w.columns(),
            w.rows()
        );
        // With a total: one repeatable-read snapshot for the page and the count.
        self.read(page.with_total, |s| {
            let params = w.refs();
            let rows = s
                .query(&sql, &params)?
                .iter()
                .map(|r| w.read(r))
                .collect::<Result<Vec<_>>>()?;
            let total = if page.with_total {
                let row = s.query_one(&count_sql, &params[..count_params])?;
                Some(get::<i64>(&row, 0)? as usize)
            } else {
                None
            };
            Ok(StoredPage { rows, total })
        })
    }

    fn count(&self, selection: &Selection) -> Result<usize> {
        let w = self.selection(selection);
        let sql = format!("SELECT count(*) FROM {}", w.rows());
        self.read(false, |s| {
            let row = s.query_one(&sql, &w.refs())?;
            Ok(get::<i64>(&row, 0)? as usize)
        })
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        self.read(false, |s| history::of_memory(s, id))
    }

    fn cached_embeddings(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>> {
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let hashes: Vec<&str> = hashes.to_vec();
        self.read(false, |s| {
            s.query(
                "SELECT hash, vector FROM agentmem_embedding_cache
                 WHERE model = $1::text AND hash = ANY($2::text[])",
                &[&model, &hashes],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect()
        })
    }

    /// The HNSW index answers with the selection applied during the walk (pgvector 0.8's
    /// iterative scan); a selection admitting few memories, or a walk that came back short,
    /// is answered by an exact scan of the admitted rows instead.
    fn nearest(
        &self,
        query: &[f32],
        count: usize,
        selection: &Selection,
    ) -> Result<Vec<(i64, f32)>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        self.check_query(query)?;
        let mut w = self.selection(selection);
        let q = w.push(vector_text(query));
        let n = w.push(count.min(i64::MAX as usize) as i64);
        // As of a past moment: the current memories already written then (through the
        // index, as now), and the past versions current then (an exact scan), merged.
        let cond = w.current();
        let hnsw_sql = format!(
            "SELECT m.key, (m.embedding <=> {q}::text::vector)::float8
             FROM agentmem_memories m WHERE {cond}
             ORDER BY m.embedding <=> {q}::text::vector LIMIT {n}::int8"
        );
        let exact_sql = format!(
            "WITH admitted AS MATERIALIZED (
                 SELECT m.key, m.embedding FROM agentmem_memories m WHERE {cond})
             SELECT key, (embedding <=> {q}::text::vector)::float8 AS d
             FROM admitted ORDER BY d, key LIMIT {n}::int8"
        );
        let count_sql = format!("SELECT count(*) FROM agentmem_memories m WHERE {cond}");
        let past_sql = w
            .as_of
            .as_ref()
            .map(|at| nearest_past_sql(&w.sql, at, &q, &n));
        let limit = self.index.exact_scan_limit;
        let ef = self
            .index
            .expansion_search
            .max(count)
            .clamp(1, MAX_EF_SEARCH);
        let iterative = self.caps.iterative_scan;
        let unfiltered = selection.is_unfiltered();
        let mut hits = self.read(true, |s| {
            let params = w.refs();
            let hits = |s: &mut Session<'_>, sql: &str| -> Result<Vec<(i64, f32)>> {
                s.query(sql, &params)?
                    .iter()
                    .map(|r| Ok((get(r, 0)?, 1.0 - get::<f64>(r, 1)? as f32)))
                    .collect()
            };
            // How many memories the selection admits, counted up to `upto` rows.
            let admitted = |s: &mut Session<'_>, upto: Option<usize>| -> Result<usize> {
                let sql = match upto {
                    Some(u) => format!(
                        "SELECT count(*) FROM (SELECT 1 FROM agentmem_memories m WHERE {cond} \
                         LIMIT {}) c",
                        u.saturating_add(1)
                    ),
                    None => count_sql.clone(),
                };
                // The count takes the selection's parameters only.
                let row = s.query_one(&sql, &params[..params.len() - 2])?;
                Ok(get::<i64>(&row, 0)? as usize)
            };
            let mut found = if !unfiltered && admitted(s, Some(limit))? <= limit {
                hits(s, &exact_sql)?
            } else {
                s.query(
                    "SELECT set_config('hnsw.ef_search', $1::text, true)",
                    &[&ef.to_string()],
                )?;
                if iterative {
                    s.query(
                        "SELECT set_config('hnsw.iterative_scan', 'strict_order', true)",
                        &[],
                    )?;
                }
                let found = hits(s, &hnsw_sql)?;
                if found.len() < count && found.len() < admitted(s, None)? {
                    hits(s, &exact_sql)?
                } else {
                    found
                }
            };
            if let Some(past_sql) = &past_sql {
                found.extend(hits(s, past_sql)?);
            }
            Ok(found)
        })?;
        if past_sql.is_some() {
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            hits.truncate(count);
        }
        Ok(hits)
    }

    fn similarities(&self, query: &[f32], keys: &[i64]) -> Result<HashMap<i64, f32>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        self.check_query(query)?;
        let q = vector_text(query);
        let (keys, past) = split_keys(keys);
        if !past.is_empty() {
            return self.read(false, |s| versions::similarities(s, &q, &keys, &past));
        }
        self.read(false, |s| {
            s.query(
                "SELECT key, (1 - (embedding <=> $1::text::vector))::float8
                 FROM agentmem_memories WHERE key = ANY($2::int8[])",
                &[&q, &keys],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, get::<f64>(r, 1)? as f32)))
            .collect()
        })
    }

    fn read_text(
        &self,
        selection: &Selection,
        f: &mut dyn FnMut(&mut dyn TextIndex) -> Result<()>,
    ) -> Result<()> {
        let w = self.selection(selection);
        let lower = self.caps.lower;
        self.read(true, |s| f(&mut PgText { s, w: &w, lower }))
    }

    fn read_graph(&self, f: &mut dyn FnMut(&mut dyn GraphRead) -> Result<()>) -> Result<()> {
        self.read(true, |s| f(&mut PgGraph { s }))
    }

    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()> {
        self.write(|tx| f(tx))
    }

    fn reset(&self) -> Result<()> {
        self.write(|tx| {
            // Writers hold ROW EXCLUSIVE on the memories until they commit their rows and
            // statistics together: waiting for them (and keeping new ones out) makes the
            // deletions below see one consistent state. Readers go on.
            tx.graph.s.batch(
                "LOCK TABLE agentmem_memories IN EXCLUSIVE MODE;
                 DELETE FROM agentmem_memories;
                 DELETE FROM agentmem_versions;
                 DELETE FROM agentmem_history;
                 DELETE FROM agentmem_embedding_cache;
                 DELETE FROM agentmem_term_stats;
                 DELETE FROM agentmem_vocabulary;
                 DELETE FROM agentmem_relation_sources;
                 DELETE FROM agentmem_relations;
                 DELETE FROM agentmem_entity_names;
                 DELETE FROM agentmem_entity_embeddings;
                 DELETE FROM agentmem_entities;
                 DELETE FROM agentmem_entity_history;
                 DELETE FROM agentmem_forgotten_sources;
                 UPDATE agentmem_text_totals
                 SET docs = 0, length = 0, past_docs = 0, past_length = 0;",
            )
        })
    }

    fn prune_versions(
        &self,
        ended_before: Option<DateTime<Utc>>,
        keep_last: Option<usize>,
    ) -> Result<usize> {
        let mut pruned = 0;
        self.write(|tx| {
            pruned = versions::prune(tx.graph.s, ended_before, keep_last, &mut tx.delta)?;
            Ok(())
        })?;
        Ok(pruned)
    }

    /// Nothing to do: every process reads the same database.
    fn refresh(&self) -> Result<()> {
        Ok(())
    }

    /// Nothing to do: every write is committed when its call returns.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn indexed_vectors(&self) -> Result<usize> {
        self.read(false, |s| {
            let row = s.query_one("SELECT count(*) FROM agentmem_memories", &[])?;
            Ok(get::<i64>(&row, 0)? as usize)
        })
    }
}

impl StoreExport for PgStore {
    fn export_memories(&self, after: i64, limit: usize) -> Result<Vec<ExportedMemory>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, m.embedding::real[] FROM agentmem_memories m
             WHERE m.key > $1::int8 ORDER BY m.key LIMIT $2::int8"
        );
        self.read(false, |s| {
            s.query(&sql, &[&after, &limit])?
                .iter()
                .map(|r| {
                    let (key, record) = rows::record_from_row(r)?;
                    Ok((key, record, get::<Vec<f32>>(r, RECORD_WIDTH)?))
                })
                .collect()
        })
    }

    fn export_versions(&self, after: i64, limit: usize) -> Result<Vec<ExportedVersion>> {
        self.read(false, |s| versions::export(s, after, limit))
    }

    fn export_history(&self, after: i64, limit: usize) -> Result<Vec<(i64, HistoryEntry)>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM agentmem_history WHERE seq > $1::int8
             ORDER BY seq LIMIT $2::int8"
        );
        self.read(false, |s| {
            s.query(&sql, &[&after, &limit])?
                .iter()
                .map(history_from_row)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests;
