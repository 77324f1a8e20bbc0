//! The HNSW vector index (usearch), keyed by the memory's integer key, persisted beside the
//! store with the change-log sequence number it reflects and a checksum.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{Error, ErrorCode, Result};

/// How vectors are kept in the index (SQLite always keeps the full f32 vector).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 32-bit floats: exact distances.
    #[default]
    F32,
    /// 16-bit floats: half the memory, nearly the same ranking.
    F16,
    /// 8-bit integers: a quarter of the memory, some loss of recall.
    I8,
}

/// Parameters of the HNSW index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VectorIndexOptions {
    /// Graph connectivity (M): more links, better recall, more memory.
    pub connectivity: usize,
    /// Candidate list size while inserting (efConstruction). Insert time grows with it:
    /// 64 gave recall@10 = 1.0 on clustered and real MiniLM vectors at half the cost of 128;
    /// 32 doubles bulk-add speed again.
    pub expansion_add: usize,
    /// Candidate list size while searching (ef); raised to the result count when smaller.
    pub expansion_search: usize,
    /// How the index stores vectors.
    pub quantization: Quantization,
    /// A filtered search whose filter admits at most this many memories scans them exactly
    /// instead of walking the graph: exact and fast for selective filters.
    pub exact_scan_limit: usize,
}

impl Default for VectorIndexOptions {
    fn default() -> Self {
        VectorIndexOptions {
            connectivity: 16,
            expansion_add: 64,
            expansion_search: 128,
            quantization: Quantization::F32,
            exact_scan_limit: 4096,
        }
    }
}

impl VectorIndexOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(2..=256).contains(&self.connectivity) {
            return Err(Error::invalid("connectivity must be between 2 and 256"));
        }
        if !(1..=16384).contains(&self.expansion_add)
            || !(1..=16384).contains(&self.expansion_search)
        {
            return Err(Error::invalid(
                "expansion_add and expansion_search must be between 1 and 16384",
            ));
        }
        Ok(())
    }
}

/// What is written beside the index file, to know what it reflects and that it is intact.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    format: u32,
    /// The store's `store_id`: an index never serves another store of the same file name.
    store_id: String,
    seq: i64,
    /// The digest of change `seq` (absent in files of earlier versions: never trusted).
    #[serde(default)]
    digest: Option<String>,
    count: usize,
    dimensions: usize,
    bytes: u64,
    crc32: u32,
    connectivity: usize,
    quantization: Quantization,
}

const SAVED_FORMAT: u32 = 1;

fn index_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Index, format!("vector index: {context}: {e}"))
}

/// The in-memory HNSW index and the change-log position it reflects.
pub(crate) struct VectorIndex {
    index: Option<Index>,
    dimensions: Option<usize>,
    options: VectorIndexOptions,
    /// The newest change-log sequence number applied.
    pub(crate) applied_seq: i64,
    /// The change log's digest at `applied_seq`, which tells two histories with the same
    /// sequence numbers apart.
    pub(crate) applied_digest: Option<String>,
    /// Changed since it was loaded or saved.
    pub(crate) dirty: bool,
}

impl VectorIndex {
    pub(crate) fn empty(options: VectorIndexOptions) -> Self {
        VectorIndex {
            index: None,
            dimensions: None,
            options,
            applied_seq: 0,
            applied_digest: None,
            dirty: false,
        }
    }

    fn native(options: &VectorIndexOptions, dimensions: usize) -> Result<Index> {
        let opts = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: match options.quantization {
                Quantization::F32 => ScalarKind::F32,
                Quantization::F16 => ScalarKind::F16,
                Quantization::I8 => ScalarKind::I8,
            },
            connectivity: options.connectivity,
            expansion_add: options.expansion_add,
            expansion_search: options.expansion_search,
            multi: false,
        };
        Index::new(&opts).map_err(|e| index_err("create", e))
    }

    pub(crate) fn len(&self) -> usize {
        self.index.as_ref().map_or(0, |i| i.size())
    }

    /// Drops every vector (the options stay).
    pub(crate) fn clear(&mut self) {
        self.index = None;
        self.dirty = true;
    }

    fn ensure(&mut self, dimensions: usize, extra: usize) -> Result<&Index> {
        if self.index.is_none() {
            self.index = Some(Self::native(&self.options, dimensions)?);
            self.dimensions = Some(dimensions);
        }
        let index = self.index.as_ref().expect("created above");
        if index.dimensions() != dimensions {
            return Err(index_err(
                "dimension mismatch",
                format!("index has {}, vector has {dimensions}", index.dimensions()),
            ));
        }
        let needed = index.size() + extra;
        if needed > index.capacity() {
            let capacity = needed.max(index.capacity() * 2).max(1024);
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            index
                .reserve_capacity_and_threads(capacity, threads)
                .map_err(|e| index_err("reserve", e))?;
        }
        Ok(index)
    }

    pub(crate) fn remove(&mut self, key: u64) -> Result<()> {
        if let Some(index) = &self.index {
            if index.contains(key) {
                index.remove(key).map_err(|e| index_err("remove", e))?;
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Inserts or replaces vectors.
    ///
    /// One at a time on purpose: usearch 2.x's concurrent `add` can leave nodes stored but
    /// unreachable by search (unum-cloud/USearch#735), so a memory would never be found by
    /// its own vector after a parallel rebuild.
    pub(crate) fn upsert_many(&mut self, items: &[(u64, Vec<f32>)]) -> Result<()> {
        let Some((_, first)) = items.first() else {
            return Ok(());
        };
        for (key, _) in items {
            self.remove(*key)?;
        }
        let index = self.ensure(first.len(), items.len())?;
        for (key, v) in items {
            index.add(*key, v).map_err(|e| index_err("add", e))?;
        }
        self.dirty = true;
        Ok(())
    }

    /// Approximate nearest neighbours as `(key, cosine similarity)`, best first.
    pub(crate) fn search(
        &self,
        query: &[f32],
        count: usize,
        filter: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<(u64, f32)>> {
        let Some(index) = &self.index else {
            return Ok(Vec::new());
        };
        if index.size() == 0 || count == 0 {
            return Ok(Vec::new());
        }
        self.check_dimensions(query)?;
        let _slot = SearchSlot::acquire();
        let matches = match filter {
            None => index.search(query, count),
            Some(f) => index.filtered_search(query, count, f),
        }
        .map_err(|e| index_err("search", e))?;
        Ok(matches
            .keys
            .into_iter()
            .zip(matches.distances)
            .map(|(k, d)| (k, 1.0 - d))
            .collect())
    }

    fn check_dimensions(&self, query: &[f32]) -> Result<()> {
        match self.dimensions {
            Some(d) if d != query.len() => Err(Error::invalid(format!(
                "query vector has {} dimensions; the store holds {d}",
                query.len()
            ))),
            _ => Ok(()),
        }
    }

    /// The stored vector of a key (as the index keeps it), if present.
    pub(crate) fn get(&self, key: u64) -> Option<Vec<f32>> {
        let index = self.index.as_ref()?;
        let mut buf = vec![0f32; index.dimensions()];
        match index.get(key, &mut buf) {
            Ok(n) if n > 0 => Some(buf),
            _ => None,
        }
    }

    /// Exact cosine similarities of the query to each given key, best first, top `count`.
    pub(crate) fn exact(
        &self,
        query: &[f32],
        keys: &[u64],
        count: usize,
    ) -> Result<Vec<(u64, f32)>> {
        self.check_dimensions(query)?;
        let mut scored: Vec<(u64, f32)> = keys
            .iter()
            .filter_map(|&k| self.get(k).map(|v| (k, cosine(query, &v))))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(count);
        Ok(scored)
    }

    /// Writes the index and its state file (atomically, by rename).
    pub(crate) fn save(&self, path: &Path, store_id: &str) -> Result<()> {
        let Some(index) = &self.index else {
            remove_saved(path);
            return Ok(());
        };
        let unique = format!("{}.{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let tmp = sibling(path, &format!(".tmp-{unique}"));
        let tmp_str = tmp
            .to_str()
            .ok_or_else(|| Error::invalid("index path is not valid UTF-8"))?;
        index.save(tmp_str).map_err(|e| index_err("save", e))?;
        let bytes = fs::read(&tmp)?;
        let state = SavedState {
            format: SAVED_FORMAT,
            store_id: store_id.to_string(),
            seq: self.applied_seq,
            digest: self.applied_digest.clone(),
            count: index.size(),
            dimensions: index.dimensions(),
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
            connectivity: self.options.connectivity,
            quantization: self.options.quantization,
        };
        let meta_tmp = sibling(path, &format!(".meta.tmp-{unique}"));
        let mut f = fs::File::create(&meta_tmp)?;
        f.write_all(&serde_json::to_vec(&state)?)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::rename(&meta_tmp, sibling(path, ".meta"))?;
        Ok(())
    }

    /// Loads a saved index if it is intact and matches the options; `None` when it must be
    /// rebuilt (missing, truncated, garbled, other parameters).
    pub(crate) fn load(
        path: &Path,
        store_id: &str,
        options: VectorIndexOptions,
    ) -> Option<VectorIndex> {
        let state: SavedState =
            serde_json::from_slice(&fs::read(sibling(path, ".meta")).ok()?).ok()?;
        if state.format != SAVED_FORMAT
            || state.store_id != store_id
            || state.connectivity != options.connectivity
            || state.quantization != options.quantization
        {
            return None;
        }
        let bytes = fs::read(path).ok()?;
        if bytes.len() as u64 != state.bytes || crc32fast::hash(&bytes) != state.crc32 {
            return None;
        }
        let index = Self::native(&options, state.dimensions).ok()?;
        index.load_from_buffer(&bytes).ok()?;
        if index.size() != state.count || index.dimensions() != state.dimensions {
            return None;
        }
        index.change_expansion_search(options.expansion_search);
        index.change_expansion_add(options.expansion_add);
        Some(VectorIndex {
            index: Some(index),
            dimensions: Some(state.dimensions),
            options,
            applied_seq: state.seq,
            applied_digest: state.digest,
            dirty: false,
        })
    }
}

/// Searches under way in this process. usearch keeps one search context per reserved
/// thread (`available_parallelism`, see `ensure`) and fails a search when every context is
/// busy ("Reserve capacity ahead of searches!"), so more threads searching at once than
/// there are cores would get errors: the extra ones wait for a context instead.
static SEARCHES: Mutex<usize> = Mutex::new(0);
static SEARCH_DONE: Condvar = Condvar::new();

struct SearchSlot;

impl SearchSlot {
    fn acquire() -> SearchSlot {
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut busy = SEARCHES.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= limit {
            busy = SEARCH_DONE.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        SearchSlot
    }
}

impl Drop for SearchSlot {
    fn drop(&mut self) {
        *SEARCHES.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        SEARCH_DONE.notify_one();
    }
}

/// Removes temporary files that a save interrupted by a crash left beside the index. Only
/// old ones: a younger one may belong to another process saving right now.
pub(crate) fn remove_stale_temporaries(path: &Path) {
    const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefixes = [
        format!("{}.tmp-", name.to_string_lossy()),
        format!("{}.meta.tmp-", name.to_string_lossy()),
    ];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !prefixes.iter().any(|p| file_name.starts_with(p)) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The saved index and its state file are both removed (after a reset).
pub(crate) fn remove_saved(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(sibling(path, ".meta"));
}

/// `path` with a suffix appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Cosine similarity (0 when either vector is zero).
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
