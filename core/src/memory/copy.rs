//! Copying a whole store into another: SQLite to PostgreSQL and back, or file to file.

use std::collections::HashMap;

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Memory;
use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::store::{self, model_mismatch, Selection, Store, StoreTx};

/// Memories (history rows, entities, relations) read per page when copying a store.
const COPY_PAGE: usize = 500;

/// What [`Memory::copy_into`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopyReport {
    /// Memories copied.
    pub memories: usize,
    /// History rows copied.
    pub history: usize,
    /// Past versions copied (their vectors with them).
    pub versions: usize,
    /// Graph entities copied (with their aliases).
    pub entities: usize,
    /// Graph relations copied (closed ones included, with their sources).
    pub relations: usize,
}

impl Memory {
    /// Copies every memory (with its vector, scope, times and metadata), every kept past
    /// version, the whole history (deleted memories' too) and the graph (entities with their
    /// aliases and name embeddings, relations with their valid times, closures and sources,
    /// ids kept, the entity history, and the relations deleted memories supported) into
    /// `target`, which must be empty: a SQLite file into PostgreSQL and back, or between two
    /// files. One write transaction on the target: all of it or nothing. The target records
    /// this store's embedding model and dimension, and refuses if it is configured with
    /// another model.
    pub fn copy_into(&self, target: &Memory) -> Result<CopyReport> {
        if self.location() == target.location() && self.path().is_some() {
            return Err(Error::invalid("cannot copy a store into itself"));
        }
        let info = self.shared.store.info()?;
        if let (Some(stored), Some(configured)) = (&info.embedding_model, target.embedding_model())
        {
            if stored != configured {
                return Err(model_mismatch(stored, configured));
            }
        }
        let everything = Selection {
            filter: Filter::All,
            include_expired: true,
            now: Utc::now(),
            as_of: None,
            include_superseded: true,
        };
        if target.shared.store.count(&everything)? > 0
            || !target.shared.store.export_history(0, 1)?.is_empty()
            || !graph_is_empty(&*target.shared.store)?
        {
            return Err(Error::new(
                ErrorCode::AlreadyExists,
                format!(
                    "the target store {} is not empty: copy into a new store",
                    target.location()
                ),
            ));
        }
        store::write(&*target.shared.store, |tx| {
            if let Some(dims) = info.dimensions {
                let held = tx.record_dimensions(dims)?;
                if held != dims {
                    return Err(Error::invalid(format!(
                        "the target holds {held}-dimensional vectors; this store {dims}"
                    )));
                }
            }
            if let Some(model) = &info.embedding_model {
                tx.record_embedding_model(model)?;
            }
            let mut report = CopyReport::default();
            let mut after = 0;
            loop {
                let page = self.shared.store.export_memories(after, COPY_PAGE)?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (_, record, vector) in &page {
                    tx.import_memory(record, vector)?;
                }
                report.memories += page.len();
            }
            let mut after = 0;
            loop {
                let page = self.shared.store.export_history(after, COPY_PAGE)?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (_, entry) in &page {
                    tx.import_history(entry)?;
                }
                report.history += page.len();
            }
            let mut after = 0;
            loop {
                let page = self.shared.store.export_versions(after, COPY_PAGE)?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (_, version, vector) in &page {
                    tx.import_version(version, vector.as_deref())?;
                }
                report.versions += page.len();
            }
            (report.entities, report.relations) = copy_graph(&*self.shared.store, tx)?;
            Ok(report)
        })
    }
}

fn graph_is_empty(store: &dyn Store) -> Result<bool> {
    let mut empty = false;
    store.read_graph(&mut |g| {
        empty = g.is_empty()?;
        Ok(())
    })?;
    Ok(empty)
}

/// Copies the graph of `source` into the transaction's store, read in pages from one
/// snapshot (so that every relation finds its entities); how many entities and relations.
/// Keys differ between stores: the relations' ends are mapped to the new entities' keys.
fn copy_graph(source: &dyn Store, tx: &mut dyn StoreTx) -> Result<(usize, usize)> {
    let mut counts = (0, 0);
    let mut latest = None;
    source.read_graph(&mut |g| {
        let target = tx.graph()?;
        // Run again from the start when the backend retries the read.
        counts = (0, 0);
        latest = None;
        let mut keys: HashMap<i64, i64> = HashMap::new();
        let mut after = 0;
        loop {
            let page = g.export_entities(after, COPY_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.key;
            for e in &page {
                let key = target.insert_entity(&e.entity)?;
                for (name, folded) in &e.names {
                    target.add_name(key, &e.entity.scope, name, folded)?;
                }
                if let Some(embedding) = &e.embedding {
                    target.set_embedding(key, embedding)?;
                }
                keys.insert(e.key, key);
                latest = latest.max(Some(e.entity.updated_at.max(e.entity.created_at)));
            }
            counts.0 += page.len();
        }
        let mapped = |key: i64| {
            keys.get(&key).copied().ok_or_else(|| {
                Error::internal(format!(
                    "a copied relation names entity key {key}, not copied"
                ))
            })
        };
        let mut after = 0;
        loop {
            let page = g.export_relations(after, COPY_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.key;
            for r in &page {
                let object = r.object.map(mapped).transpose()?;
                let key = target.insert_relation(&r.relation, mapped(r.subject)?, object)?;
                for source in &r.relation.sources {
                    target.add_source(key, source)?;
                }
                latest = latest.max(Some(r.relation.created_at));
            }
            counts.1 += page.len();
        }
        // The corrections of entities, and what deleted memories supported (for their undo).
        let mut after = 0;
        loop {
            let page = g.export_entity_history(after, COPY_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, event) in &page {
                target.record_entity_event(event)?;
            }
        }
        let mut after = 0;
        loop {
            let page = g.export_forgotten(after, COPY_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.key;
            for forgotten in &page {
                target.import_forgotten(forgotten)?;
            }
        }
        Ok(())
    })?;
    // Later writes on the target take later times than anything copied, as after memories.
    if let Some(at) = latest {
        tx.raise_commit_time(at)?;
    }
    Ok(counts)
}
