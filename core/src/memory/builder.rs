//! [`MemoryBuilder`]: the options of a [`Memory`], and opening it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::embedding::EmbedderSlot;
use super::hooks::{HookOptions, Hooks};
use super::infer::Prompts;
use super::versions::HistoryRetention;
use super::{Memory, Shared};
use crate::embed::{locate_model, Embedder, LocalEmbedder, DEFAULT_MODEL_NAME};
use crate::error::{Error, Result};
use crate::graph::GraphOptions;
use crate::index::VectorIndexOptions;
use crate::llm::Llm;
use crate::search::SearchOptions;
use crate::store::{self, model_mismatch, StoreOptions};

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

/// Builds a [`Memory`] with options. See [`Memory::builder`].
#[derive(Clone)]
pub struct MemoryBuilder {
    path: Option<PathBuf>,
    embedder: EmbedderChoice,
    store: StoreOptions,
    search: SearchOptions,
    llm: Option<Arc<dyn Llm>>,
    prompts: Prompts,
    retention: HistoryRetention,
    /// How the graph is kept and filled.
    graph: GraphOptions,
    /// The plugin settings (see [`HookOptions`]).
    pub(crate) hooks: HookOptions,
}

impl MemoryBuilder {
    /// Settings of the PostgreSQL backend: pool size and timeouts (feature `postgres`).
    #[cfg(feature = "postgres")]
    pub fn postgres_options(mut self, options: crate::PostgresOptions) -> Self {
        self.store.postgres = options;
        self
    }

    /// The store file (created if missing), or with the `postgres` feature a
    /// `postgres://user:password@host:port/database` URL or a libpq connection string
    /// (`host=… dbname=… user=… password='…'`, see [`crate::is_postgres_location`]).
    /// Without a path the store lives in memory.
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
        self.store.index = options;
        self
    }

    /// Defaults for searches: mode, weights (the `limit` and other fields are per call).
    pub fn search_defaults(mut self, defaults: SearchOptions) -> Self {
        self.search = defaults;
        self
    }

    /// Whether to save the vector index beside the store file on close (default true).
    pub fn persist_index(mut self, persist: bool) -> Self {
        self.store.persist_index = persist;
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

    /// Replaces the system prompt of [`Memory::chat`] ([`crate::llm::prompts::CHAT`]); it
    /// must contain `{memories}`, and may contain `{today}`. Checked when the store opens.
    pub fn chat_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompts.chat = Some(prompt.into());
        self
    }

    /// Which past versions [`Memory::prune_versions`] removes (default: none).
    pub fn history_retention(mut self, retention: HistoryRetention) -> Self {
        self.retention = retention;
        self
    }

    /// How the knowledge graph is kept and filled (see [`GraphOptions`]).
    pub fn graph(mut self, options: GraphOptions) -> Self {
        self.graph = options;
        self
    }

    /// The graph's functional predicates: those that hold one object at a time for a
    /// subject, so that a new object closes the old relation (default
    /// [`crate::graph::DEFAULT_FUNCTIONAL_PREDICATES`]). Names are normalised as predicates
    /// are (`"Lives in"` is `lives_in`).
    pub fn functional_predicates<I, S>(mut self, predicates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.graph.functional_predicates = Some(predicates.into_iter().map(Into::into).collect());
        self
    }

    /// Opens the store.
    pub fn build(self) -> Result<Memory> {
        self.store.index.validate()?;
        self.search.validate()?;
        let name_similarity = self.graph.name_similarity()?;
        let store = store::open(self.path.as_deref(), &self.store)?;
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
        if let Some(prompt) = &self.prompts.chat {
            super::chat::check_template(prompt, "the chat prompt")?;
        }
        let hooks = Hooks::new(self.hooks)?;
        let shared = Shared {
            background: Default::default(),
            hooks,
            store,
            embedder,
            defaults: self.search,
            llm: self.llm,
            prompts: self.prompts,
            retention: self.retention,
            extract_graph: self.graph.extract,
            name_similarity,
            functional: match self.graph.functional_predicates {
                Some(names) => names
                    .iter()
                    .map(|n| crate::graph::normalise_predicate(n))
                    .collect::<Result<_>>()?,
                None => crate::graph::DEFAULT_FUNCTIONAL_PREDICATES
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            },
        };
        Ok(Memory {
            shared: Arc::new(shared),
        })
    }
}

impl Memory {
    /// A builder for options.
    pub fn builder() -> MemoryBuilder {
        MemoryBuilder {
            path: None,
            embedder: EmbedderChoice::Default(None),
            store: StoreOptions::default(),
            search: SearchOptions::default(),
            llm: None,
            prompts: Prompts::default(),
            retention: HistoryRetention::default(),
            graph: GraphOptions::default(),
            hooks: HookOptions::default(),
        }
    }
}
