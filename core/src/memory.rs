//! [`Memory`]: the public handle that ties the store, the indexes and the embedder together.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{SubsecRound, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::embed::{locate_model, Embedder, LocalEmbedder, DEFAULT_MODEL_NAME};
use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::index::vector::{self, VectorIndex};
use crate::index::VectorIndexOptions;
use crate::llm::Llm;
use crate::search::keyword::{self, Where};
use crate::search::{
    fusion, EngineScore, Explanation, SearchHit, SearchMode, SearchOptions, MAX_LIMIT,
};
use crate::store::ops::{self, VocabDelta, RECORD_COLUMNS};
use crate::store::sqlite::Db;
use crate::types::{
    content_hash, format_time, validate_content, validate_metadata, AddOutcome, HistoryEntry,
    MemoryRecord, MemoryUpdate, NewMemory, Scope,
};

mod infer;

use infer::Prompts;
pub use infer::{AddMessages, MemoryEvent, MemoryEventKind, Message};

/// The actor recorded in history for calls made through the API.
const ACTOR_USER: &str = "user";
/// The actor recorded in history when expired memories are purged.
const ACTOR_EXPIRY: &str = "expiry";
/// Changes kept in the log behind the saved index, so that other processes with a slightly
/// older in-memory index can still catch up without a rebuild.
const CHANGE_LOG_MARGIN: i64 = 10_000;
/// Texts embedded per embedder call.
const EMBED_CHUNK: usize = 64;

/// Which embedder a [`Memory`] uses.
#[derive(Clone)]
enum EmbedderChoice {
    /// The local model found by [`locate_model`] (optionally in a given directory).
    Default(Option<PathBuf>),
    /// A caller-supplied embedder.
    Custom(Arc<dyn Embedder>),
    /// None: only vector-carrying calls work.
    Disabled,
}

/// The embedder as resolved at open. A default model that cannot be found does not stop the
/// store from opening: calls that need it fail with [`ErrorCode::ModelUnavailable`].
enum EmbedderSlot {
    Ready(Arc<dyn Embedder>),
    Missing { model_id: String, error: String },
    Disabled,
}

impl EmbedderSlot {
    fn model_id(&self) -> Option<&str> {
        match self {
            EmbedderSlot::Ready(e) => Some(e.model_id()),
            EmbedderSlot::Missing { model_id, .. } => Some(model_id),
            EmbedderSlot::Disabled => None,
        }
    }

    fn get(&self) -> Result<&Arc<dyn Embedder>> {
        match self {
            EmbedderSlot::Ready(e) => Ok(e),
            EmbedderSlot::Missing { error, .. } => {
                Err(Error::new(ErrorCode::ModelUnavailable, error.clone()))
            }
            EmbedderSlot::Disabled => Err(Error::new(
                ErrorCode::Unsupported,
                "this memory has no embedder: pass vectors (add_with_vector, \
                 search_with_vector) or configure one in the builder",
            )),
        }
    }
}

/// Order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// Newest first (by creation).
    #[default]
    CreatedDesc,
    /// Oldest first (by creation).
    CreatedAsc,
    /// Most recently changed first.
    UpdatedDesc,
    /// Least recently changed first.
    UpdatedAsc,
}

impl ListOrder {
    fn column(self) -> &'static str {
        match self {
            ListOrder::CreatedAsc | ListOrder::CreatedDesc => "created_at",
            ListOrder::UpdatedAsc | ListOrder::UpdatedDesc => "updated_at",
        }
    }

    fn descending(self) -> bool {
        matches!(self, ListOrder::CreatedDesc | ListOrder::UpdatedDesc)
    }
}

/// Options of [`Memory::list`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListOptions {
    /// Only memories of this scope.
    pub scope: Scope,
    /// With a scope, also the global layer.
    pub include_global: bool,
    /// Further conditions.
    #[serde(skip)]
    pub filter: Option<Filter>,
    /// Also expired memories.
    pub include_expired: bool,
    /// The order.
    pub order: ListOrder,
    /// At most this many (1 to 10,000).
    pub limit: usize,
    /// Skip this many (not together with `cursor`).
    pub offset: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            scope: Scope::default(),
            include_global: false,
            filter: None,
            include_expired: false,
            order: ListOrder::default(),
            limit: 100,
            offset: 0,
            cursor: None,
        }
    }
}

impl ListOptions {
    /// Default options.
    pub fn new() -> Self {
        ListOptions::default()
    }

    /// Only this user's memories.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.scope.user_id = Some(user_id.into());
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: ListOrder) -> Self {
        self.order = order;
        self
    }
}

/// One page of [`Memory::list`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage {
    /// The memories on this page.
    pub items: Vec<MemoryRecord>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Builds a [`Memory`] with options. See [`Memory::builder`].
#[derive(Clone)]
pub struct MemoryBuilder {
    path: Option<PathBuf>,
    embedder: EmbedderChoice,
    index: VectorIndexOptions,
    search: SearchOptions,
    persist_index: bool,
    llm: Option<Arc<dyn Llm>>,
    prompts: Prompts,
    #[cfg(feature = "plugins")]
    plugins: crate::plugin::PluginOptions,
}

impl MemoryBuilder {
    /// Settings of the plugin manager (feature `plugins`).
    #[cfg(feature = "plugins")]
    pub fn plugin_options(mut self, options: crate::plugin::PluginOptions) -> Self {
        self.plugins = options;
        self
    }

    /// The store file (created if missing). Without a path the store lives in memory.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Uses this embedder instead of the default local model.
    pub fn embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = EmbedderChoice::Custom(embedder);
        self
    }

    /// Loads the default local model from this directory (safetensors, tokenizer.json,
    /// config.json) instead of searching for it.
    pub fn model_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.embedder = EmbedderChoice::Default(Some(dir.as_ref().to_path_buf()));
        self
    }

    /// No embedder: every add and search must carry its vector.
    pub fn without_embedder(mut self) -> Self {
        self.embedder = EmbedderChoice::Disabled;
        self
    }

    /// HNSW parameters.
    pub fn index_options(mut self, options: VectorIndexOptions) -> Self {
        self.index = options;
        self
    }

    /// Defaults for searches: mode, weights (the `limit` and other fields are per call).
    pub fn search_defaults(mut self, defaults: SearchOptions) -> Self {
        self.search = defaults;
        self
    }

    /// Whether to save the vector index beside the store file on close (default true).
    pub fn persist_index(mut self, persist: bool) -> Self {
        self.persist_index = persist;
        self
    }

    /// The chat model that [`Memory::add_messages`] uses to extract facts and decide what
    /// to change (see [`crate::llm::LlmConfig`] for the OpenAI-compatible and Anthropic
    /// clients). Without one, messages are stored as given.
    pub fn llm(mut self, llm: Arc<dyn Llm>) -> Self {
        self.llm = Some(llm);
        self
    }

    /// Replaces the fact-extraction prompt ([`crate::llm::prompts::FACT_EXTRACTION`]). The
    /// model must still answer `{"facts": [...]}`; `{today}` is replaced by today's date.
    pub fn fact_extraction_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompts.extraction = Some(prompt.into());
        self
    }

    /// Replaces the decision prompt ([`crate::llm::prompts::MEMORY_DECISIONS`]); the model
    /// must still answer `{"decisions": [...]}` in that prompt's shape.
    pub fn decision_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompts.decisions = Some(prompt.into());
        self
    }

    /// Replaces the prompt that summarises an agent's run into a procedural memory
    /// ([`crate::llm::prompts::PROCEDURAL_SUMMARY`]).
    pub fn procedural_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompts.procedural = Some(prompt.into());
        self
    }

    /// Opens the store.
    pub fn build(self) -> Result<Memory> {
        self.index.validate()?;
        self.search.validate()?;
        let db = match &self.path {
            Some(p) => Db::open(p)?,
            None => Db::open_in_memory()?,
        };
        let embedder = match &self.embedder {
            EmbedderChoice::Custom(e) => EmbedderSlot::Ready(e.clone()),
            EmbedderChoice::Disabled => EmbedderSlot::Disabled,
            EmbedderChoice::Default(dir) => match locate_model(dir.as_deref())
                .and_then(|loc| LocalEmbedder::from_dir(&loc.dir))
            {
                Ok(e) => EmbedderSlot::Ready(Arc::new(e)),
                // An explicit directory that does not work is the caller's mistake: say so now.
                Err(e) if dir.is_some() => return Err(e),
                Err(e) => EmbedderSlot::Missing {
                    model_id: DEFAULT_MODEL_NAME.to_string(),
                    error: e.message().to_string(),
                },
            },
        };
        let (stored_model, stored_dims, store_id) = db.read(|c| {
            Ok((
                ops::get_meta(c, "embedding_model")?,
                ops::dimensions(c)?,
                ops::get_meta(c, "store_id")?.unwrap_or_default(),
            ))
        })?;
        if let (Some(stored), Some(configured)) = (&stored_model, embedder.model_id()) {
            if stored != configured {
                return Err(Error::invalid(format!(
                    "this store was embedded with {stored:?} but the memory is configured with \
                     {configured:?}; mixing models makes search meaningless"
                )));
            }
        }
        if let (Some(dims), EmbedderSlot::Ready(e)) = (stored_dims, &embedder) {
            // 0: a remote embedder learns its dimension from its first answer; every vector
            // is checked against the store's dimension when it is written.
            if e.dimensions() != 0 && e.dimensions() != dims {
                return Err(Error::invalid(format!(
                    "this store holds {dims}-dimensional vectors but the embedder makes {}",
                    e.dimensions()
                )));
            }
        }
        let index_path = match (&self.path, self.persist_index) {
            (Some(p), true) => Some(vector::sibling(p, ".usearch")),
            _ => None,
        };
        if let Some(p) = &index_path {
            vector::remove_stale_temporaries(p);
        }
        let index = index_path
            .as_deref()
            .and_then(|p| VectorIndex::load(p, &store_id, self.index))
            .unwrap_or_else(|| VectorIndex::empty(self.index));
        #[cfg(feature = "plugins")]
        let plugins = crate::plugin::PluginManager::new(self.plugins)?;
        let memory = Memory {
            #[cfg(feature = "plugins")]
            plugins,
            db,
            index: RwLock::new(index),
            embedder,
            index_options: self.index,
            defaults: self.search,
            index_path,
            store_id,
            llm: self.llm,
            prompts: self.prompts,
        };
        memory.sync_index()?;
        // A saved index that replays to the wrong size is not to be trusted: rebuild.
        let stored = memory.count_all()?;
        if memory.index_read().len() != stored {
            {
                let mut index = memory.index_write();
                index.clear();
                index.applied_seq = 0;
            }
            memory.sync_index()?;
        }
        Ok(memory)
    }
}

/// Long-term memory for an agent: one SQLite file (or memory), an HNSW vector index, a
/// BM25 keyword index and an embedder.
///
/// `Memory` is `Send + Sync`: share it between threads with an `Arc`. Several processes may
/// open the same file; each sees the others' writes.
pub struct Memory {
    db: Db,
    index: RwLock<VectorIndex>,
    embedder: EmbedderSlot,
    index_options: VectorIndexOptions,
    defaults: SearchOptions,
    index_path: Option<PathBuf>,
    store_id: String,
    llm: Option<Arc<dyn Llm>>,
    prompts: Prompts,
    #[cfg(feature = "plugins")]
    plugins: crate::plugin::PluginManager,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("path", &self.db.path())
            .field("embedder", &self.embedder.model_id())
            .field("llm", &self.llm.as_ref().map(|l| l.label()))
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// Opens (or creates) the store at `path` with the default local embedder.
    pub fn open(path: impl AsRef<Path>) -> Result<Memory> {
        Memory::builder().path(path).build()
    }

    /// A store that lives in memory only, with the default local embedder.
    pub fn open_in_memory() -> Result<Memory> {
        Memory::builder().build()
    }

    /// A builder for options.
    pub fn builder() -> MemoryBuilder {
        MemoryBuilder {
            path: None,
            embedder: EmbedderChoice::Default(None),
            index: VectorIndexOptions::default(),
            search: SearchOptions::default(),
            persist_index: true,
            llm: None,
            prompts: Prompts::default(),
            #[cfg(feature = "plugins")]
            plugins: crate::plugin::PluginOptions::default(),
        }
    }

    /// The store's plugins: register, list, load, unload, reload (feature `plugins`).
    #[cfg(feature = "plugins")]
    pub fn plugins(&self) -> &crate::plugin::PluginManager {
        &self.plugins
    }

    /// The configured language model, for plugins' `am_llm`.
    #[cfg(feature = "plugins")]
    pub(crate) fn llm_client(&self) -> Option<&Arc<dyn Llm>> {
        self.llm.as_ref()
    }

    /// The store file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.db.path()
    }

    /// The search options this memory was built with (see
    /// [`MemoryBuilder::search_defaults`]): start from these and change what a call needs.
    pub fn search_options(&self) -> SearchOptions {
        self.defaults.clone()
    }

    /// The chat model's label (`"openai:gpt-4.1-nano"`), if one is configured.
    pub fn llm_label(&self) -> Option<&str> {
        self.llm.as_ref().map(|l| l.label())
    }

    /// The embedder's model id, if there is an embedder.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedder.model_id()
    }

    fn index_read(&self) -> RwLockReadGuard<'_, VectorIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> RwLockWriteGuard<'_, VectorIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---------------------------------------------------------------- adding

    /// Adds one memory, embedding its content. An identical memory (same scope, same
    /// content) is not stored twice: its id comes back with `added == false`.
    pub fn add(&self, memory: NewMemory) -> Result<AddOutcome> {
        Ok(self.add_batch(vec![memory])?.remove(0))
    }

    /// Adds many memories in one transaction: all of them or none.
    /// With plugins, each memory goes through the `on_add` hooks first.
    pub fn add_batch(&self, memories: Vec<NewMemory>) -> Result<Vec<AddOutcome>> {
        self.add_batch_as(memories, ACTOR_USER, true)
    }

    /// Adds without running hooks (a plugin's own `am_add`), as `actor`.
    #[cfg(feature = "plugins")]
    pub(crate) fn add_without_hooks(&self, memory: NewMemory, actor: &str) -> Result<AddOutcome> {
        Ok(self.add_batch_as(vec![memory], actor, false)?.remove(0))
    }

    fn add_batch_as(
        &self,
        #[allow(unused_mut)] mut memories: Vec<NewMemory>,
        actor: &str,
        hooks: bool,
    ) -> Result<Vec<AddOutcome>> {
        for (i, m) in memories.iter().enumerate() {
            m.validate()
                .map_err(|e| Error::invalid(format!("memory {i}: {}", e.message())))?;
        }
        #[cfg(feature = "plugins")]
        if hooks {
            self.plugins_on_add("add", &mut memories)?;
        }
        #[cfg(not(feature = "plugins"))]
        let _ = hooks;
        let vectors = self.embed_contents(&memories)?;
        self.insert(memories, vectors, actor)
    }

    /// Adds one memory with a vector the caller computed (same dimension as the store's).
    pub fn add_with_vector(&self, memory: NewMemory, vector: Vec<f32>) -> Result<AddOutcome> {
        Ok(self
            .add_batch_with_vectors(vec![(memory, vector)])?
            .remove(0))
    }

    /// Adds many memories with caller-computed vectors in one transaction. `on_add` hooks
    /// run too; the vectors stay the caller's even if a hook changes the content.
    pub fn add_batch_with_vectors(
        &self,
        items: Vec<(NewMemory, Vec<f32>)>,
    ) -> Result<Vec<AddOutcome>> {
        for (i, (m, v)) in items.iter().enumerate() {
            m.validate()
                .and_then(|_| check_vector(v))
                .map_err(|e| Error::invalid(format!("memory {i}: {}", e.message())))?;
        }
        #[cfg(feature = "plugins")]
        let items = {
            let (mut memories, vectors): (Vec<_>, Vec<_>) = items.into_iter().unzip();
            self.plugins_on_add("add", &mut memories)?;
            memories.into_iter().zip(vectors).collect::<Vec<_>>()
        };
        let (memories, vectors): (Vec<_>, Vec<_>) = items
            .into_iter()
            .map(|(m, v)| {
                (
                    m,
                    Embedded {
                        vector: v,
                        cache_as: None,
                    },
                )
            })
            .unzip();
        self.insert(memories, vectors, ACTOR_USER)
    }

    /// Embeds each content, using the store's embedding cache so that the same text is never
    /// embedded twice. Runs outside the write lock.
    fn embed_contents(&self, memories: &[NewMemory]) -> Result<Vec<Embedded>> {
        let texts: Vec<&str> = memories.iter().map(|m| m.content.as_str()).collect();
        self.embed_texts(&texts)
    }

    /// Embeds texts through the embedding cache (see [`Memory::embed_contents`]).
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Embedded>> {
        let embedder = self.embedder.get()?;
        let model = embedder.model_id().to_string();
        let hashes: Vec<String> = texts.iter().map(|t| content_hash(t)).collect();
        let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
        let mut known = self
            .db
            .read(|c| ops::cached_embeddings(c, &model, &hash_refs))?;
        let mut missing: Vec<(&str, &str)> = Vec::new();
        let mut queued = HashSet::new();
        for (text, h) in texts.iter().zip(&hashes) {
            if !known.contains_key(h) && queued.insert(h.as_str()) {
                missing.push((h.as_str(), text));
            }
        }
        let mut fresh = HashSet::new();
        for chunk in missing.chunks(EMBED_CHUNK) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| *t).collect();
            let vectors = embedder.embed(&texts)?;
            if vectors.len() != texts.len() {
                return Err(Error::new(
                    ErrorCode::Embedding,
                    format!(
                        "embedder returned {} vectors for {} texts",
                        vectors.len(),
                        texts.len()
                    ),
                ));
            }
            for ((hash, _), v) in chunk.iter().zip(vectors) {
                if v.len() != embedder.dimensions() {
                    return Err(Error::new(
                        ErrorCode::Embedding,
                        format!(
                            "embedder returned a {}-dimensional vector, expected {}",
                            v.len(),
                            embedder.dimensions()
                        ),
                    ));
                }
                check_vector(&v).map_err(|e| {
                    Error::new(
                        ErrorCode::Embedding,
                        format!("embedder output: {}", e.message()),
                    )
                })?;
                fresh.insert(hash.to_string());
                known.insert(hash.to_string(), v);
            }
        }
        Ok(hashes
            .iter()
            .map(|h| Embedded {
                vector: known[h].clone(),
                cache_as: fresh.contains(h).then(|| (model.clone(), h.clone())),
            })
            .collect())
    }

    fn insert(
        &self,
        memories: Vec<NewMemory>,
        vectors: Vec<Embedded>,
        actor: &str,
    ) -> Result<Vec<AddOutcome>> {
        let now = Utc::now();
        let outcomes = self.db.write(|tx| {
            let w = &mut Writing {
                tx,
                dims: self.check_store_dimensions(tx, vectors.first().map(|e| e.vector.len()))?,
                vocab: VocabDelta::default(),
                now,
            };
            let mut outcomes = Vec::with_capacity(memories.len());
            for (m, e) in memories.into_iter().zip(&vectors) {
                outcomes.push(self.insert_one(w, m, e, actor)?);
            }
            std::mem::take(&mut w.vocab).apply(tx)?;
            record_embedding_model(tx, &vectors)?;
            Ok(outcomes)
        })?;
        self.sync_index()?;
        Ok(outcomes)
    }

    /// Inserts one memory inside a write transaction: checks the vector against the store's
    /// dimension, caches a fresh embedding, and applies the duplicate rule (a live twin in
    /// the same scope wins; an expired one makes way). The caller applies `w.vocab`.
    fn insert_one(
        &self,
        w: &mut Writing<'_>,
        m: NewMemory,
        e: &Embedded,
        actor: &str,
    ) -> Result<AddOutcome> {
        let (tx, now) = (w.tx, w.now);
        fit_vector(tx, e, w.dims)?;
        let hash = content_hash(&m.content);
        if let Some((key, existing)) = ops::find_duplicate(tx, &m.scope, &hash)? {
            if !existing.is_expired_at(now) {
                return Ok(AddOutcome {
                    id: existing.id,
                    added: false,
                });
            }
            // An expired twin is gone for the reader; replace it.
            ops::delete_memory(tx, key, &existing, &mut w.vocab, ACTOR_EXPIRY, now)?;
        }
        let rec = MemoryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            content: m.content,
            hash,
            kind: m.kind,
            scope: m.scope,
            metadata: m.metadata,
            created_at: now,
            updated_at: now,
            expires_at: m.expires_at,
        };
        ops::insert_memory(tx, &rec, &e.vector, &mut w.vocab, actor)?;
        Ok(AddOutcome {
            id: rec.id,
            added: true,
        })
    }

    /// Checks (and on the first vector records) the store's vector dimension.
    fn check_store_dimensions(&self, conn: &Connection, first: Option<usize>) -> Result<usize> {
        match (ops::dimensions(conn)?, first) {
            (Some(d), _) => Ok(d),
            (None, Some(d)) => {
                if let EmbedderSlot::Ready(e) = &self.embedder {
                    // 0: a remote embedder that has not answered yet.
                    if e.dimensions() != 0 && e.dimensions() != d {
                        return Err(Error::invalid(format!(
                            "vector has {d} dimensions but the embedder makes {}",
                            e.dimensions()
                        )));
                    }
                }
                ops::set_meta(conn, "dimensions", &d.to_string())?;
                Ok(d)
            }
            (None, None) => Ok(0),
        }
    }

    // ---------------------------------------------------------------- reading

    /// The memory with this id (expired or not).
    pub fn get(&self, id: &str) -> Result<MemoryRecord> {
        check_id(id)?;
        self.db
            .read(|c| ops::get_by_id(c, id))?
            .map(|(_, r)| r)
            .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))
    }

    /// A page of memories, filtered and ordered.
    pub fn list(&self, options: &ListOptions) -> Result<ListPage> {
        if options.limit == 0 || options.limit > MAX_LIMIT {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {}",
                options.limit
            )));
        }
        if options.cursor.is_some() && options.offset > 0 {
            return Err(Error::invalid(
                "give either a cursor or an offset, not both",
            ));
        }
        options.scope.validate()?;
        let mut w = compile_where(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        );
        let column = options.order.column();
        let (cmp, dir) = if options.order.descending() {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = &options.cursor {
            let (key, at) = parse_cursor(cursor)?;
            let n = w.params.len();
            w.sql = format!(
                "({}) AND (m.{column}, m.key) {cmp} (?{}, ?{})",
                w.sql,
                n + 1,
                n + 2
            );
            w.params.push(SqlValue::Text(at));
            w.params.push(SqlValue::Integer(key));
        }
        let n = w.params.len();
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM memories m WHERE {} ORDER BY m.{column} {dir}, m.key {dir} \
             LIMIT ?{} OFFSET ?{}",
            w.sql,
            n + 1,
            n + 2
        );
        w.params.push(SqlValue::Integer(options.limit as i64 + 1));
        w.params.push(SqlValue::Integer(options.offset as i64));
        let mut rows: Vec<(i64, MemoryRecord)> = self.db.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(&w.params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(ops::record_from_row(row)?);
            }
            Ok(out)
        })?;
        let more = rows.len() > options.limit;
        rows.truncate(options.limit);
        let next_cursor = if more {
            rows.last().map(|(key, r)| {
                let at = match options.order.column() {
                    "created_at" => r.created_at,
                    _ => r.updated_at,
                };
                format!("{key}|{}", format_time(at))
            })
        } else {
            None
        };
        Ok(ListPage {
            items: rows.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
        })
    }

    /// How many memories match the scope and filter (expired ones excluded).
    pub fn count(&self, scope: &Scope, filter: Option<&Filter>) -> Result<usize> {
        scope.validate()?;
        let w = compile_where(filter, scope, false, false);
        let sql = format!("SELECT count(*) FROM memories m WHERE {}", w.sql);
        self.db.read(|c| {
            let n: i64 = c.query_row(&sql, rusqlite::params_from_iter(&w.params), |r| r.get(0))?;
            Ok(n as usize)
        })
    }

    /// The history of a memory, oldest first (it outlives the memory's deletion).
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        check_id(id)?;
        let rows = self.db.read(|c| ops::history(c, id))?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("no memory with id {id:?}")));
        }
        Ok(rows)
    }

    // ---------------------------------------------------------------- changing

    /// Changes a memory's content, metadata, kind or expiry; new content is re-embedded.
    /// Writes an `UPDATE` history row.
    pub fn update(&self, id: &str, update: MemoryUpdate) -> Result<MemoryRecord> {
        self.update_inner(id, update, None)
    }

    /// Like [`Memory::update`], with the caller's vector for the new content.
    pub fn update_with_vector(
        &self,
        id: &str,
        update: MemoryUpdate,
        vector: Vec<f32>,
    ) -> Result<MemoryRecord> {
        check_vector(&vector)?;
        if update.content.is_none() {
            return Err(Error::invalid("a vector goes with new content"));
        }
        self.update_inner(id, update, Some(vector))
    }

    fn update_inner(
        &self,
        id: &str,
        #[allow(unused_mut)] mut update: MemoryUpdate,
        vector: Option<Vec<f32>>,
    ) -> Result<MemoryRecord> {
        check_id(id)?;
        if update.is_empty() {
            return Err(Error::invalid(
                "nothing to update: give content, metadata, kind or expires_at",
            ));
        }
        if let Some(c) = &update.content {
            validate_content(c)?;
        }
        if let Some(m) = &update.metadata {
            validate_metadata(m)?;
        }
        let current = self.get(id)?;
        #[cfg(feature = "plugins")]
        if let Some(content) = &update.content {
            let mut changed = [NewMemory {
                content: content.clone(),
                scope: current.scope.clone(),
                kind: update.kind.unwrap_or(current.kind),
                metadata: update
                    .metadata
                    .clone()
                    .unwrap_or_else(|| current.metadata.clone()),
                expires_at: None,
            }];
            self.plugins_on_add("update", &mut changed)?;
            let [changed] = changed;
            if changed.content != *content {
                update.content = Some(changed.content);
            }
            if update.metadata.as_ref().unwrap_or(&current.metadata) != &changed.metadata {
                update.metadata = Some(changed.metadata);
            }
        }
        // Embed outside the write lock; the transaction re-reads the row.
        let embedded = match (&update.content, vector) {
            (Some(c), _) if *c == current.content => None,
            (Some(_), Some(v)) => Some(Embedded {
                vector: v,
                cache_as: None,
            }),
            (Some(c), None) => Some(self.embed_contents(&[NewMemory::new(c.clone())])?.remove(0)),
            (None, _) => None,
        };
        // The store keeps microseconds: return the time as `get` will read it back.
        let now = Utc::now().trunc_subsecs(6);
        let updated = self.db.write(|tx| {
            let (key, old) = ops::get_by_id(tx, id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))?;
            let mut new = old.clone();
            if let Some(c) = &update.content {
                new.content = c.clone();
                new.hash = content_hash(c);
            }
            if let Some(m) = &update.metadata {
                new.metadata = m.clone();
            }
            if let Some(k) = update.kind {
                new.kind = k;
            }
            if let Some(e) = update.expires_at {
                new.expires_at = e;
            }
            new.updated_at = now;
            let mut vocab = VocabDelta::default();
            if new.hash != old.hash {
                if let Some((twin_key, twin)) = ops::find_duplicate(tx, &new.scope, &new.hash)? {
                    if !twin.is_expired_at(now) {
                        return Err(Error::new(
                            ErrorCode::AlreadyExists,
                            format!(
                                "memory {:?} in the same scope already has this content",
                                twin.id
                            ),
                        ));
                    }
                    // As in `add`: an expired twin is gone for the reader; it makes way.
                    ops::delete_memory(tx, twin_key, &twin, &mut vocab, ACTOR_EXPIRY, now)?;
                }
            }
            let vector = if new.content != old.content {
                let e = embedded
                    .as_ref()
                    .ok_or_else(|| Error::internal("content changed under an update"))?;
                let dims = self.check_store_dimensions(tx, Some(e.vector.len()))?;
                fit_vector(tx, e, dims)?;
                record_embedding_model(tx, std::slice::from_ref(e))?;
                Some(e.vector.as_slice())
            } else {
                None
            };
            ops::update_memory(tx, key, &old, &new, vector, &mut vocab, ACTOR_USER)?;
            vocab.apply(tx)?;
            Ok(new)
        })?;
        self.sync_index()?;
        Ok(updated)
    }

    /// Deletes a memory (its history stays, ending with a `DELETE` row).
    pub fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let now = Utc::now();
        self.db.write(|tx| {
            let (key, rec) = ops::get_by_id(tx, id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))?;
            let mut vocab = VocabDelta::default();
            ops::delete_memory(tx, key, &rec, &mut vocab, ACTOR_USER, now)?;
            vocab.apply(tx)
        })?;
        self.sync_index()
    }

    /// Deletes every memory (expired or not) matching the scope and filter, in one
    /// transaction; returns how many. Refuses to run with neither (use [`Memory::reset`]).
    pub fn delete_all(&self, scope: &Scope, filter: Option<&Filter>) -> Result<usize> {
        scope.validate()?;
        if scope.is_global() && filter.is_none_or(Filter::is_all) {
            return Err(Error::invalid(
                "delete_all needs a scope or a filter; to delete everything use reset",
            ));
        }
        let w = compile_where(filter, scope, false, true);
        self.delete_where(&w, ACTOR_USER)
    }

    /// Deletes every memory whose expiry has passed; returns how many.
    pub fn purge_expired(&self) -> Result<usize> {
        let w = Where {
            sql: "m.expires_at IS NOT NULL AND m.expires_at <= ?1".into(),
            params: vec![SqlValue::Text(format_time(Utc::now()))],
        };
        self.delete_where(&w, ACTOR_EXPIRY)
    }

    fn delete_where(&self, w: &Where, actor: &str) -> Result<usize> {
        let now = Utc::now();
        let sql = format!("SELECT {RECORD_COLUMNS} FROM memories m WHERE {}", w.sql);
        let n = self.db.write(|tx| {
            let victims: Vec<(i64, MemoryRecord)> = {
                let mut stmt = tx.prepare(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(&w.params))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(ops::record_from_row(row)?);
                }
                out
            };
            let mut vocab = VocabDelta::default();
            for (key, rec) in &victims {
                ops::delete_memory(tx, *key, rec, &mut vocab, actor, now)?;
            }
            vocab.apply(tx)?;
            Ok(victims.len())
        })?;
        self.sync_index()?;
        Ok(n)
    }

    /// Forgets everything: memories, history, the embedding cache and the indexes. The
    /// store keeps its embedding model and dimension.
    pub fn reset(&self) -> Result<()> {
        self.db.write(|tx| {
            tx.execute_batch(
                "DELETE FROM memories;
                 INSERT INTO memories_fts (memories_fts) VALUES ('delete-all');
                 DELETE FROM terms;
                 DELETE FROM term_grams;
                 DELETE FROM history;
                 DELETE FROM embedding_cache;
                 INSERT INTO changes (key, op) VALUES (0, 'delete');
                 DELETE FROM changes;",
            )?;
            // Every process's index must start again from nothing. The marker row above
            // moves the log's head, so that a handle already caught up sees a change and
            // rebuilds (the pruned mark below is then ahead of what it applied).
            let (head, _) = ops::change_head(tx)?;
            ops::set_meta(tx, "changes_pruned_through", &head.to_string())
        })?;
        {
            let mut index = self.index_write();
            index.clear();
            index.applied_seq = 0;
        }
        if let Some(p) = &self.index_path {
            vector::remove_saved(p);
        }
        self.sync_index()
    }

    // ---------------------------------------------------------------- search

    /// Searches with the query text (embedded when the mode needs it).
    /// With plugins, `before_search` hooks may rewrite the query, limit and filters, and
    /// `after_search` hooks may reorder, drop and rescore the hits.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<SearchHit>> {
        self.search_hooked(query, None, options)
    }

    /// Searches without running hooks (a plugin's own `am_search`).
    #[cfg(feature = "plugins")]
    pub(crate) fn search_without_hooks(
        &self,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(query, None, options)
    }

    #[cfg(feature = "plugins")]
    fn search_hooked(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        if self.plugins.is_empty() {
            return self.search_inner(query, vector, options);
        }
        // Bad input is the caller's error, not something to show plugins.
        options.validate()?;
        if vector.is_none() && query.trim().is_empty() {
            return Err(Error::invalid("query must not be empty"));
        }
        let (mut query, mut options) = (query.to_string(), options.clone());
        self.plugins_before_search(&mut query, &mut options)?;
        let hits = self.search_inner(&query, vector, &options)?;
        self.plugins_after_search(&query, &options.scope, hits)
    }

    #[cfg(not(feature = "plugins"))]
    fn search_hooked(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(query, vector, options)
    }

    /// Searches with a caller-computed query vector; the text (may be empty in vector mode)
    /// serves the keyword engines.
    pub fn search_with_vector(
        &self,
        query: &str,
        vector: &[f32],
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        check_vector(vector)?;
        self.search_hooked(query, Some(vector), options)
    }

    fn search_inner(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        options.validate()?;
        let mode = options.mode;
        if vector.is_none() || mode != SearchMode::Vector {
            if query.trim().is_empty() {
                return Err(Error::invalid("query must not be empty"));
            }
            validate_content(query)
                .map_err(|e| Error::invalid(format!("query: {}", e.message())))?;
        }
        let needs_vector = matches!(mode, SearchMode::Vector | SearchMode::Hybrid)
            && (mode == SearchMode::Vector || options.weights.vector > 0.0);
        let query_vector: Option<Vec<f32>> = match (vector, needs_vector) {
            (Some(v), _) => Some(v.to_vec()),
            (None, true) => Some(self.embed_query(query)?),
            (None, false) => None,
        };
        self.sync_index()?;
        let w = compile_where(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        );
        let limit = options.limit;
        let pool = (limit * 4).clamp(40, MAX_LIMIT);
        let mut explain: HashMap<u64, Explanation> = HashMap::new();
        let mut note = |list: &[(u64, f32)], set: fn(&mut Explanation, EngineScore)| {
            for (i, (key, score)) in list.iter().enumerate() {
                set(
                    explain.entry(*key).or_default(),
                    EngineScore {
                        rank: i + 1,
                        score: *score,
                    },
                );
            }
        };
        let as_u64 = |v: Vec<(i64, f32)>| -> Vec<(u64, f32)> {
            v.into_iter().map(|(k, s)| (k as u64, s)).collect()
        };
        let ranked: Vec<(u64, f32)> = match mode {
            SearchMode::Vector => {
                let hits = self.vector_engine(
                    query_vector.as_deref().unwrap_or_default(),
                    limit,
                    &w,
                    options,
                )?;
                note(&hits, |e, s| e.vector = Some(s));
                hits
            }
            SearchMode::Keyword | SearchMode::Phrase | SearchMode::Fuzzy => {
                type TextEngine = fn(&Connection, &str, &Where, usize) -> Result<Vec<(i64, f32)>>;
                let (engine, explain_as): (TextEngine, fn(&mut Explanation, EngineScore)) =
                    match mode {
                        SearchMode::Keyword => (keyword::keyword, |e, s| e.keyword = Some(s)),
                        SearchMode::Phrase => (keyword::phrase, |e, s| e.phrase = Some(s)),
                        _ => (keyword::fuzzy, |e, s| e.fuzzy = Some(s)),
                    };
                let hits = as_u64(self.db.read(|c| engine(c, query, &w, limit))?);
                note(&hits, explain_as);
                hits
            }
            SearchMode::Hybrid => {
                let weights = options.weights;
                let vec_hits = match &query_vector {
                    Some(q) if weights.vector > 0.0 => self.vector_engine(q, pool, &w, options)?,
                    _ => Vec::new(),
                };
                let (kw_hits, fz_hits) = self.db.read(|c| {
                    let kw = if weights.keyword > 0.0 {
                        keyword::keyword(c, query, &w, pool)?
                    } else {
                        Vec::new()
                    };
                    let fz = if weights.fuzzy > 0.0 {
                        keyword::fuzzy(c, query, &w, pool)?
                    } else {
                        Vec::new()
                    };
                    Ok((kw, fz))
                })?;
                let (kw_hits, fz_hits) = (as_u64(kw_hits), as_u64(fz_hits));
                note(&vec_hits, |e, s| e.vector = Some(s));
                note(&kw_hits, |e, s| e.keyword = Some(s));
                note(&fz_hits, |e, s| e.fuzzy = Some(s));
                let keys = |v: &[(u64, f32)]| v.iter().map(|(k, _)| *k).collect::<Vec<_>>();
                let (vk, kk, fk) = (keys(&vec_hits), keys(&kw_hits), keys(&fz_hits));
                fusion::rrf(
                    &[
                        (&vk, weights.vector),
                        (&kk, weights.keyword),
                        (&fk, weights.fuzzy),
                    ],
                    weights.rrf_k,
                )
            }
        };
        self.hits(ranked, explain, query_vector.as_deref(), options)
    }

    /// Turns ranked keys into hits: loads the records (dropping any deleted meanwhile),
    /// computes similarities, applies the threshold and the limit.
    fn hits(
        &self,
        ranked: Vec<(u64, f32)>,
        mut explain: HashMap<u64, Explanation>,
        query_vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        let keys: Vec<i64> = ranked.iter().map(|(k, _)| *k as i64).collect();
        let mut records = self.db.read(|c| ops::get_by_keys(c, &keys))?;
        let index = self.index_read();
        let mut out = Vec::new();
        for (key, score) in ranked {
            let Some(memory) = records.remove(&(key as i64)) else {
                continue;
            };
            let explanation = explain.remove(&key).unwrap_or_default();
            let similarity = query_vector.map(|q| match explanation.vector {
                Some(v) => v.score,
                None => index.get(key).map_or(0.0, |v| vector::cosine(q, &v)),
            });
            if let Some(t) = options.threshold {
                if similarity.unwrap_or(score) < t {
                    continue;
                }
            }
            out.push(SearchHit {
                memory,
                score,
                similarity,
                explain: explanation,
            });
        }
        // Equal fused scores (engines that swap two hits) are settled by meaning.
        out.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then(
                b.similarity
                    .unwrap_or(0.0)
                    .total_cmp(&a.similarity.unwrap_or(0.0)),
            )
        });
        out.truncate(options.limit);
        Ok(out)
    }

    fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let embedder = self.embedder.get()?;
        let mut v = embedder.embed(&[query])?;
        v.pop()
            .ok_or_else(|| Error::new(ErrorCode::Embedding, "embedder returned no vector"))
    }

    /// Nearest neighbours among the memories the filter admits. A selective filter is
    /// answered by an exact scan; otherwise the HNSW walk applies the filter as it goes, and
    /// falls back to the exact scan if the walk comes back short.
    fn vector_engine(
        &self,
        query: &[f32],
        count: usize,
        w: &Where,
        options: &SearchOptions,
    ) -> Result<Vec<(u64, f32)>> {
        let unfiltered =
            options.filter.as_ref().is_none_or(Filter::is_all) && options.scope.is_global();
        let index = self.index_read();
        if unfiltered {
            let excluded: HashSet<u64> = if options.include_expired {
                HashSet::new()
            } else {
                self.db.read(|c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT key FROM memories WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    )?;
                    let rows = stmt.query_map([format_time(Utc::now())], |r| r.get::<_, i64>(0))?;
                    rows.map(|k| k.map(|k| k as u64).map_err(Error::from)).collect()
                })?
            };
            return if excluded.is_empty() {
                index.search(query, count, None)
            } else {
                index.search(query, count, Some(&|k| !excluded.contains(&k)))
            };
        }
        let sql = format!("SELECT m.key FROM memories m WHERE {}", w.sql);
        let allowed: Vec<u64> = self.db.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(&w.params), |r| {
                r.get::<_, i64>(0)
            })?;
            rows.map(|k| k.map(|k| k as u64).map_err(Error::from))
                .collect()
        })?;
        if allowed.len() <= self.index_options.exact_scan_limit {
            return index.exact(query, &allowed, count);
        }
        let set: HashSet<u64> = allowed.iter().copied().collect();
        let hits = index.search(query, count, Some(&|k| set.contains(&k)))?;
        if hits.len() < count.min(allowed.len()) {
            return index.exact(query, &allowed, count);
        }
        Ok(hits)
    }

    // ---------------------------------------------------------------- index upkeep

    /// Brings the in-memory vector index up to date with the change log (writes of this and
    /// other processes). Rebuilds from SQLite when the log no longer reaches back far enough.
    fn sync_index(&self) -> Result<()> {
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
            Ok(Some((head, rebuild, upserts, deletes)))
        })?;
        let Some((head, rebuild, upserts, deletes)) = work else {
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
        Ok(())
    }

    /// Saves the vector index beside the store so the next open need not rebuild it, and
    /// trims the change log behind it. Called by `close` and on drop.
    pub fn flush(&self) -> Result<()> {
        let Some(path) = &self.index_path else {
            return Ok(());
        };
        self.sync_index()?;
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

    /// Saves the index and closes the store, reporting any error (dropping does the same
    /// silently).
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    fn count_all(&self) -> Result<usize> {
        self.db.read(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
            Ok(n as usize)
        })
    }

    /// Number of vectors in the in-memory index (for diagnostics and tests).
    pub fn indexed_vectors(&self) -> Result<usize> {
        self.sync_index()?;
        Ok(self.index_read().len())
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A vector for one memory and, when it was freshly embedded, its cache key.
#[derive(Clone)]
struct Embedded {
    vector: Vec<f32>,
    cache_as: Option<(String, String)>,
}

/// The state of a write transaction that adds or changes several memories.
struct Writing<'t> {
    tx: &'t Connection,
    /// The store's vector dimension.
    dims: usize,
    /// Keyword vocabulary changes, applied once at the end.
    vocab: VocabDelta,
    /// The time written into records and history.
    now: chrono::DateTime<Utc>,
}

/// Inside a write transaction: the vector has the store's dimension `dims`, and a freshly
/// computed embedding is cached.
fn fit_vector(tx: &Connection, e: &Embedded, dims: usize) -> Result<()> {
    if e.vector.len() != dims {
        return Err(Error::invalid(format!(
            "vector has {} dimensions; the store holds {dims}",
            e.vector.len()
        )));
    }
    if let Some((model, hash)) = &e.cache_as {
        ops::cache_embedding(tx, model, hash, &e.vector)?;
    }
    Ok(())
}

/// Inside a write transaction, once: records the embedding model on the store's first write
/// of a vector it embedded (caller vectors carry no model).
fn record_embedding_model<'a>(
    tx: &Connection,
    vectors: impl IntoIterator<Item = &'a Embedded>,
) -> Result<()> {
    if let Some((model, _)) = vectors.into_iter().find_map(|e| e.cache_as.as_ref()) {
        if ops::get_meta(tx, "embedding_model")?.is_none() {
            ops::set_meta(tx, "embedding_model", model)?;
        }
    }
    Ok(())
}

fn check_vector(v: &[f32]) -> Result<()> {
    if v.is_empty() {
        return Err(Error::invalid("vector must not be empty"));
    }
    if v.len() > 65_536 {
        return Err(Error::invalid("vector has more than 65,536 dimensions"));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::invalid("vector holds NaN or infinity"));
    }
    if v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(
            "vector is all zeros (no direction for cosine)",
        ));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::invalid("id must not be empty"));
    }
    if id.len() > 128 {
        return Err(Error::invalid("id is longer than 128 bytes"));
    }
    Ok(())
}

fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    let bad = || Error::invalid(format!("invalid cursor {cursor:?}"));
    let (key, at) = cursor.split_once('|').ok_or_else(bad)?;
    let key: i64 = key.parse().map_err(|_| bad())?;
    let at = crate::types::parse_time(at).map_err(|_| bad())?;
    Ok((key, format_time(at)))
}

/// Filter + scope + expiry, as one SQL condition over `memories m`.
fn compile_where(
    filter: Option<&Filter>,
    scope: &Scope,
    include_global: bool,
    include_expired: bool,
) -> Where {
    let combined =
        Filter::for_scope(scope, include_global).and(filter.cloned().unwrap_or(Filter::All));
    let mut params = Vec::new();
    let mut sql = combined.to_sql(&mut params);
    if !include_expired {
        params.push(SqlValue::Text(format_time(Utc::now())));
        sql = format!(
            "({sql}) AND (m.expires_at IS NULL OR m.expires_at > ?{})",
            params.len()
        );
    }
    Where { sql, params }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Memory>();
}
