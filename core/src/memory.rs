//! [`Memory`]: the public handle that ties the store, the indexes and the embedder together.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::embed::{locate_model, Embedder, LocalEmbedder, DEFAULT_MODEL_NAME};
use crate::error::{Error, ErrorCode, Result};
use crate::filter::{Field, Filter, Op};
use crate::index::VectorIndexOptions;
use crate::llm::Llm;
use crate::search::{hybrid, SearchHit, SearchMode, SearchOptions, MAX_LIMIT};
use crate::store::sqlite::SqliteStore;
use crate::store::{self, model_mismatch, Inserted, PageRequest, Selection, Store, StoreTx};
use crate::types::{
    content_hash, format_time, validate_content, validate_metadata, AddOutcome, HistoryEntry,
    ListOrder, MemoryRecord, MemoryUpdate, NewMemory, Scope,
};

mod infer;

use infer::Prompts;
pub use infer::{AddMessages, MemoryEvent, MemoryEventKind, Message};

/// The actor recorded in history for calls made through the API.
const ACTOR_USER: &str = "user";
/// The actor recorded in history when expired memories are purged.
const ACTOR_EXPIRY: &str = "expiry";
/// Memories (or history rows) read per page when copying a store.
const COPY_PAGE: usize = 500;
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
    /// Skip this many (not together with `cursor`; at most `i64::MAX`). Past the end gives
    /// an empty page.
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

/// What [`Memory::copy_into`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyReport {
    /// Memories copied.
    pub memories: usize,
    /// History rows copied.
    pub history: usize,
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
    #[cfg(feature = "postgres")]
    postgres: crate::store::postgres::PostgresOptions,
}

impl MemoryBuilder {
    /// Settings of the PostgreSQL backend: pool size and timeouts (feature `postgres`).
    #[cfg(feature = "postgres")]
    pub fn postgres_options(mut self, options: crate::PostgresOptions) -> Self {
        self.postgres = options;
        self
    }

    /// Settings of the plugin manager (feature `plugins`).
    #[cfg(feature = "plugins")]
    pub fn plugin_options(mut self, options: crate::plugin::PluginOptions) -> Self {
        self.plugins = options;
        self
    }

    /// The store file (created if missing), or with the `postgres` feature a
    /// `postgres://user:password@host:port/database` URL. Without a path the store lives
    /// in memory.
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
        let store = self.open_store()?;
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
        let info = store.info()?;
        if let (Some(stored), Some(configured)) = (&info.embedding_model, embedder.model_id()) {
            if stored != configured {
                return Err(model_mismatch(stored, configured));
            }
        }
        if let (Some(dims), EmbedderSlot::Ready(e)) = (info.dimensions, &embedder) {
            // 0: a remote embedder learns its dimension from its first answer; every vector
            // is checked against the store's dimension when it is written.
            if e.dimensions() != 0 && e.dimensions() != dims {
                return Err(Error::invalid(format!(
                    "this store holds {dims}-dimensional vectors but the embedder makes {}",
                    e.dimensions()
                )));
            }
        }
        #[cfg(feature = "plugins")]
        let plugins = crate::plugin::PluginManager::new(self.plugins)?;
        Ok(Memory {
            #[cfg(feature = "plugins")]
            plugins,
            store,
            embedder,
            defaults: self.search,
            llm: self.llm,
            prompts: self.prompts,
        })
    }

    /// The backend the path names: a PostgreSQL URL, a SQLite file, or memory.
    fn open_store(&self) -> Result<Box<dyn Store>> {
        let url = self
            .path
            .as_deref()
            .and_then(Path::to_str)
            .filter(|p| store::is_postgres_url(p));
        match url {
            #[cfg(feature = "postgres")]
            Some(url) => {
                self.postgres.validate()?;
                Ok(Box::new(crate::store::postgres::PgStore::open(
                    url,
                    &self.postgres,
                    self.index,
                )?))
            }
            #[cfg(not(feature = "postgres"))]
            Some(_) => Err(Error::new(
                ErrorCode::Unsupported,
                "a postgres:// store needs agent_mem built with the `postgres` feature",
            )),
            None => Ok(Box::new(SqliteStore::open(
                self.path.as_deref(),
                self.index,
                self.persist_index,
            )?)),
        }
    }
}

/// Long-term memory for an agent: one SQLite file (or memory), an HNSW vector index, a
/// BM25 keyword index and an embedder.
///
/// `Memory` is `Send + Sync`: share it between threads with an `Arc`. Several processes may
/// open the same file; each sees the others' writes.
pub struct Memory {
    store: Box<dyn Store>,
    embedder: EmbedderSlot,
    defaults: SearchOptions,
    llm: Option<Arc<dyn Llm>>,
    prompts: Prompts,
    #[cfg(feature = "plugins")]
    plugins: crate::plugin::PluginManager,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("store", &self.store.location())
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
            #[cfg(feature = "postgres")]
            postgres: crate::store::postgres::PostgresOptions::default(),
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

    /// The store file, or `None` in memory or on a database server.
    pub fn path(&self) -> Option<&Path> {
        self.store.path()
    }

    /// Where the store lives: its file, `:memory:`, or its URL with the password hidden.
    pub fn location(&self) -> String {
        self.store.location()
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
        let mut known = self.store.cached_embeddings(&model, &hash_refs)?;
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
        store::write(&*self.store, |tx| {
            // Taken after the write lock: commit times follow commit order.
            let now = tx.now()?;
            let dims = self.check_store_dimensions(tx, vectors.first().map(|e| e.vector.len()))?;
            let w = &mut Writing { tx, dims, now };
            let mut outcomes = Vec::with_capacity(memories.len());
            for (m, e) in memories.iter().zip(&vectors) {
                outcomes.push(self.insert_one(w, m.clone(), e, actor)?);
            }
            record_embedding_model(w.tx, &vectors)?;
            Ok(outcomes)
        })
    }

    /// Inserts one memory inside a write transaction: checks the vector against the store's
    /// dimension, caches a fresh embedding, and applies the duplicate rule (a live twin in
    /// the same scope wins; an expired one makes way).
    fn insert_one(
        &self,
        w: &mut Writing<'_>,
        m: NewMemory,
        e: &Embedded,
        actor: &str,
    ) -> Result<AddOutcome> {
        let now = w.now;
        fit_vector(w.tx, e, w.dims)?;
        let hash = content_hash(&m.content);
        if let Some((key, existing)) = w.tx.find_duplicate(&m.scope, &hash)? {
            if !existing.is_expired_at(now) {
                return Ok(AddOutcome {
                    id: existing.id,
                    added: false,
                });
            }
            // An expired twin is gone for the reader; replace it.
            w.tx.delete(key, &existing, ACTOR_EXPIRY, now)?;
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
        Ok(match w.tx.insert(&rec, &e.vector, actor)? {
            Inserted::New => AddOutcome {
                id: rec.id,
                added: true,
            },
            // Another process stored the same memory a moment before.
            Inserted::Twin(id) => AddOutcome { id, added: false },
        })
    }

    /// Checks (and on the first vector records) the store's vector dimension.
    fn check_store_dimensions(&self, tx: &mut dyn StoreTx, first: Option<usize>) -> Result<usize> {
        match (tx.dimensions()?, first) {
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
                let stored = tx.record_dimensions(d)?;
                if stored != d {
                    return Err(Error::invalid(format!(
                        "vector has {d} dimensions; the store holds {stored}"
                    )));
                }
                Ok(stored)
            }
            (None, None) => Ok(0),
        }
    }

    // ---------------------------------------------------------------- reading

    /// The memory with this id (expired or not).
    pub fn get(&self, id: &str) -> Result<MemoryRecord> {
        check_id(id)?;
        self.store
            .get(id)?
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
        // The backends take a signed 64-bit offset: a larger one must not wrap to a negative
        // (SQLite reads a negative OFFSET as none and would return the first page).
        if i64::try_from(options.offset).is_err() {
            return Err(Error::invalid(format!(
                "offset must be at most {}, got {}",
                i64::MAX,
                options.offset
            )));
        }
        options.scope.validate()?;
        let selection = selection(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        );
        let page = PageRequest {
            order: options.order,
            limit: options.limit + 1,
            offset: options.offset,
            after: options.cursor.as_deref().map(parse_cursor).transpose()?,
        };
        let mut rows = self.store.list(&selection, &page)?;
        let more = rows.len() > options.limit;
        rows.truncate(options.limit);
        let next_cursor = if more {
            rows.last()
                .map(|(key, r)| format!("{key}|{}", format_time(options.order.time_of(r))))
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
        self.store.count(&selection(filter, scope, false, false))
    }

    /// The history of a memory, oldest first (it outlives the memory's deletion).
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        check_id(id)?;
        let rows = self.store.history(id)?;
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
        store::write(&*self.store, |tx| {
            // Taken after the write lock, before the row lock (the order every writer uses).
            let now = tx.now()?;
            let (key, old) = tx
                .get(id)?
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
            if new.hash != old.hash {
                if let Some((twin_key, twin)) = tx.find_duplicate(&new.scope, &new.hash)? {
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
                    tx.delete(twin_key, &twin, ACTOR_EXPIRY, now)?;
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
            tx.update(key, &old, &new, vector, ACTOR_USER)?;
            Ok(new)
        })
    }

    /// Deletes a memory (its history stays, ending with a `DELETE` row).
    pub fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        store::write(&*self.store, |tx| {
            let now = tx.now()?;
            let (key, rec) = tx
                .get(id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))?;
            tx.delete(key, &rec, ACTOR_USER, now)
        })
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
        self.delete_where(&selection(filter, scope, false, true), ACTOR_USER)
    }

    /// Deletes every memory whose expiry has passed; returns how many.
    pub fn purge_expired(&self) -> Result<usize> {
        let now = Utc::now();
        let expired = Selection {
            filter: Filter::Cond {
                field: Field::ExpiresAt,
                op: Op::Lte,
                value: serde_json::Value::String(format_time(now)),
            },
            include_expired: true,
            now,
        };
        self.delete_where(&expired, ACTOR_EXPIRY)
    }

    fn delete_where(&self, selection: &Selection, actor: &str) -> Result<usize> {
        store::write(&*self.store, |tx| {
            let now = tx.now()?;
            let victims = tx.select(selection)?;
            for (key, rec) in &victims {
                tx.delete(*key, rec, actor, now)?;
            }
            Ok(victims.len())
        })
    }

    /// Forgets everything: memories, history, the embedding cache and the indexes. The
    /// store keeps its embedding model and dimension.
    pub fn reset(&self) -> Result<()> {
        self.store.reset()
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
        if let Some(v) = vector {
            // A caller's vector must fit the store (an embedder's was checked at open).
            if let Some(dims) = self.store.info()?.dimensions {
                if v.len() != dims {
                    return Err(Error::invalid(format!(
                        "query vector has {} dimensions; the store holds {dims}",
                        v.len()
                    )));
                }
            }
        }
        self.store.refresh()?;
        let selection = selection(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        );
        hybrid::run(
            &*self.store,
            query,
            query_vector.as_deref(),
            options,
            &selection,
        )
    }

    fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let embedder = self.embedder.get()?;
        let mut v = embedder.embed(&[query])?;
        v.pop()
            .ok_or_else(|| Error::new(ErrorCode::Embedding, "embedder returned no vector"))
    }

    /// Saves the vector index beside a store file so the next open need not rebuild it,
    /// and trims the change log behind it. Called by `close` and on drop.
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }

    /// Copies every memory (with its vector, scope, times and metadata) and the whole
    /// history (deleted memories' too) into `target`, which must be empty: a SQLite file
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
            Ok(report)
        })
    }

    /// Saves the index and closes the store, reporting any error (dropping does the same
    /// silently).
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Number of vectors in the vector index (for diagnostics and tests).
    pub fn indexed_vectors(&self) -> Result<usize> {
        self.store.indexed_vectors()
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
    tx: &'t mut dyn StoreTx,
    /// The store's vector dimension.
    dims: usize,
    /// The time written into records and history ([`StoreTx::now`]).
    now: chrono::DateTime<Utc>,
}

/// Inside a write transaction: the vector has the store's dimension `dims`, and a freshly
/// computed embedding is cached.
fn fit_vector(tx: &mut dyn StoreTx, e: &Embedded, dims: usize) -> Result<()> {
    if e.vector.len() != dims {
        return Err(Error::invalid(format!(
            "vector has {} dimensions; the store holds {dims}",
            e.vector.len()
        )));
    }
    if let Some((model, hash)) = &e.cache_as {
        tx.cache_embedding(model, hash, &e.vector)?;
    }
    Ok(())
}

/// Inside a write transaction, once: records the embedding model on the store's first write
/// of a vector it embedded (caller vectors carry no model).
fn record_embedding_model<'a>(
    tx: &mut dyn StoreTx,
    vectors: impl IntoIterator<Item = &'a Embedded>,
) -> Result<()> {
    match vectors.into_iter().find_map(|e| e.cache_as.as_ref()) {
        Some((model, _)) => tx.record_embedding_model(model),
        None => Ok(()),
    }
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

/// Filter + scope + expiry: which memories a call reads.
fn selection(
    filter: Option<&Filter>,
    scope: &Scope,
    include_global: bool,
    include_expired: bool,
) -> Selection {
    Selection {
        filter: Filter::for_scope(scope, include_global)
            .and(filter.cloned().unwrap_or(Filter::All)),
        include_expired,
        now: Utc::now(),
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Memory>();
}
