//! The vector index of past versions: an HNSW index over the vectors kept in `versions`,
//! so that a search as of a past moment walks a graph instead of reading every past
//! vector. It is derived like the index of current memories: built when an as-of search
//! first needs it, brought up to date from the table before each use (versions are only
//! ever appended, so the largest key applied says what is missing), rebuilt when a prune or
//! a reset moved the store's versions epoch, saved beside the store on close and trusted
//! again at open only for the same store and epoch.

use rusqlite::{params, Connection};

use super::ops;
use crate::error::{Error, Result};
use crate::index::vector::VectorIndex;
use crate::index::{Quantization, VectorIndexOptions};

/// The meta key counting prunes and resets: a past index of another epoch is rebuilt.
pub(super) const EPOCH_KEY: &str = "versions_epoch";

/// The HNSW index of past versions, keyed by `versions.key`.
pub(super) struct PastIndex {
    pub(super) index: VectorIndex,
    /// Built (or loaded) and in step with an epoch; `false` until first needed.
    ready: bool,
}

impl PastIndex {
    /// An index not built yet.
    pub(super) fn new(options: VectorIndexOptions) -> PastIndex {
        PastIndex {
            index: VectorIndex::empty(past_options(options)),
            ready: false,
        }
    }

    /// The index saved at `path` for this store, or one to build.
    pub(super) fn load(
        path: &std::path::Path,
        store_id: &str,
        options: VectorIndexOptions,
    ) -> PastIndex {
        match VectorIndex::load(path, store_id, past_options(options)) {
            Some(index) => PastIndex { index, ready: true },
            None => PastIndex::new(options),
        }
    }

    /// True once built: there is something to save.
    pub(super) fn is_ready(&self) -> bool {
        self.ready
    }

    /// Forgets every vector: the next use rebuilds.
    pub(super) fn forget(&mut self) {
        self.index.clear();
        self.index.applied_seq = 0;
        self.index.applied_digest = None;
        self.ready = false;
    }

    /// Brings the index up to date with the `versions` table, in one read snapshot: the
    /// versions appended since, or everything again after a prune or a reset (or when the
    /// table is behind the index: a file restored from a backup).
    pub(super) fn refresh(&mut self, conn: &Connection) -> Result<()> {
        let epoch = ops::get_meta(conn, EPOCH_KEY)?.unwrap_or_else(|| "0".into());
        let newest: i64 = conn
            .prepare_cached("SELECT coalesce(max(key), 0) FROM versions")?
            .query_row([], |r| r.get(0))?;
        let stale = !self.ready
            || self.index.applied_digest.as_deref() != Some(epoch.as_str())
            || newest < self.index.applied_seq;
        if stale {
            self.index.clear();
            self.index.applied_seq = 0;
        }
        if newest > self.index.applied_seq {
            let mut stmt = conn.prepare_cached(
                "SELECT key, embedding FROM versions
                 WHERE key > ?1 AND embedding IS NOT NULL ORDER BY key",
            )?;
            let rows = stmt.query_map(params![self.index.applied_seq], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut items: Vec<(u64, Vec<f32>)> = Vec::new();
            for row in rows {
                let (key, blob) = row?;
                items.push((key as u64, ops::blob_to_vector(&blob)?));
            }
            self.index.upsert_many(&items)?;
        }
        self.index.applied_seq = newest;
        self.index.applied_digest = Some(epoch);
        self.ready = true;
        Ok(())
    }

    /// The `count` past versions among `allowed` nearest to `query`: the HNSW walk
    /// restricted to them (and an exact comparison if the walk comes back short).
    pub(super) fn nearest(
        &self,
        query: &[f32],
        count: usize,
        allowed: &[u64],
    ) -> Result<Vec<(u64, f32)>> {
        let set: std::collections::HashSet<u64> = allowed.iter().copied().collect();
        let hits = self
            .index
            .search(query, count, Some(&|k| set.contains(&k)))?;
        if hits.len() < count.min(allowed.len()) {
            return self.index.exact(query, allowed, count);
        }
        Ok(hits)
    }
}

/// The store's index options, in at most half precision: past versions' vectors are kept
/// so (see `ops::vector_to_half_blob`), and their index need not hold more.
fn past_options(options: VectorIndexOptions) -> VectorIndexOptions {
    let quantization = match options.quantization {
        Quantization::F32 => Quantization::F16,
        smaller => smaller,
    };
    VectorIndexOptions {
        quantization,
        ..options
    }
}

/// Moves the versions epoch on (after a prune or a reset): past indexes of every process
/// rebuild.
pub(super) fn next_epoch(conn: &Connection) -> Result<()> {
    let epoch: i64 = ops::get_meta(conn, EPOCH_KEY)?
        .map(|e| {
            e.parse()
                .map_err(|_| Error::internal("versions epoch is not a number"))
        })
        .transpose()?
        .unwrap_or(0);
    ops::set_meta(conn, EPOCH_KEY, &(epoch + 1).to_string())
}
