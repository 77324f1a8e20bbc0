//! Copying a whole store into another: SQLite to PostgreSQL and back, or file to file.

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Memory;
use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::store::{self, model_mismatch, Selection};

/// Memories (or history rows) read per page when copying a store.
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
}

impl Memory {
    /// Copies every memory (with its vector, scope, times and metadata), every kept past
    /// version and the whole history (deleted memories' too) into `target`, which must be empty: a SQLite file
    /// into PostgreSQL and back, or between two files. One write transaction on the target:
    /// all of it or nothing. The target records this store's embedding model and dimension,
    /// and refuses if it is configured with another model.
    pub fn copy_into(&self, target: &Memory) -> Result<CopyReport> {
        if self.location() == target.location() && self.path().is_some() {
            return Err(Error::invalid("cannot copy a store into itself"));
        }
        let info = self.store.info()?;
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
        if target.store.count(&everything)? > 0 || !target.store.export_history(0, 1)?.is_empty() {
            return Err(Error::new(
                ErrorCode::AlreadyExists,
                format!(
                    "the target store {} is not empty: copy into a new store",
                    target.location()
                ),
            ));
        }
        store::write(&*target.store, |tx| {
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
                let page = self.store.export_memories(after, COPY_PAGE)?;
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
                let page = self.store.export_history(after, COPY_PAGE)?;
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
                let page = self.store.export_versions(after, COPY_PAGE)?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (_, version, vector) in &page {
                    tx.import_version(version, vector.as_deref())?;
                }
                report.versions += page.len();
            }
            Ok(report)
        })
    }
}
