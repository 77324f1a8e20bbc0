//! Opening a store from JSON: [`OpenOptions`] (embedder, index, search defaults, chat model,
//! prompts, plugin and PostgreSQL settings) and [`open`].

use crate::graph::GraphOptions;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{kind_of, request};
use crate::embed::RemoteEmbedderConfig;
use crate::llm::LlmConfig;
use crate::{
    Error, FusionWeights, HashingEmbedder, HistoryRetention, Memory, Quantization, Result,
    SearchOptions, VectorIndexOptions,
};

/// The path that opens a store in memory (as in SQLite).
pub const IN_MEMORY_PATH: &str = ":memory:";

/// The largest dimension the hashing embedder accepts.
const MAX_HASHING_DIMENSIONS: usize = 65_536;

/// Options of [`open`], as JSON:
///
/// ```json
/// {
///   "embedder": "local",
///   "persist_index": true,
///   "index": {"connectivity": 16, "expansion_add": 64, "expansion_search": 128,
///             "quantization": "f32", "exact_scan_limit": 4096},
///   "search": {"mode": "hybrid", "limit": 10, "threshold": null,
///              "weights": {"vector": 1, "keyword": 1, "fuzzy": 0, "context": 0.1,
///                          "method": "score", "rrf_k": 60}},
///   "llm": {"provider": "openai", "model": "gpt-4.1-nano", "api_key": "…", "base_url": "…",
///           "timeout_ms": 60000, "max_retries": 3},
///   "prompts": {"fact_extraction": "…", "decisions": "…", "procedural": "…", "chat": "…"},
///   "postgres": {"pool_size": 8, "connect_timeout_ms": 10000, "pool_timeout_ms": 30000,
///                "statement_timeout_ms": 0}
/// }
/// ```
///
/// `embedder` is `"local"` (the default model, found as [`crate::embed::locate_model`]
/// says), `{"provider": "local", "model_dir": "/path"}`, `"none"` (every add and search
/// carries its vector), `{"provider": "hashing", "dimensions": 64}` (a deterministic
/// bag-of-words embedder for tests), or an OpenAI-compatible embeddings endpoint
/// (`{"provider": "openai" | "zhipu" | "ollama" | "openai_compatible", "model", "api_key",
/// "base_url", "dimensions", "timeout_ms", "max_retries"}`, see [`RemoteEmbedderConfig`]).
/// `llm` is a [`LlmConfig`]; keys and base URLs left out come from the provider's usual
/// environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, …). `prompts` replaces the
/// inference prompts (see [`crate::llm::prompts`]). `postgres` sets the connection pool of a
/// store opened by a `postgres://` URL or a libpq connection string (feature `postgres`).
/// Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Which embedder.
    pub embedder: EmbedderSpec,
    /// Save the vector index beside the database (default true).
    pub persist_index: Option<bool>,
    /// HNSW parameters.
    pub index: VectorIndexOptions,
    /// Defaults of every search.
    pub search: SearchOptions,
    /// The chat model used by [`add_messages`](super::add_messages) to infer memories.
    pub llm: Option<LlmConfig>,
    /// Replacements of the inference prompts.
    pub prompts: PromptOptions,
    /// Which past versions `prune_versions` removes (default: none).
    pub history_retention: HistoryRetention,
    /// How the knowledge graph is kept and filled.
    pub graph: GraphOptions,
    /// Plugin manager settings (`{"cache_size": n}`; feature `plugins`).
    #[cfg(feature = "plugins")]
    pub plugins: crate::plugin::PluginOptions,
    /// PostgreSQL pool settings (feature `postgres`).
    #[cfg(feature = "postgres")]
    pub postgres: crate::PostgresOptions,
}

/// Replacement prompts (see [`crate::MemoryBuilder::fact_extraction_prompt`] and the
/// others); `None` keeps the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptOptions {
    /// Extracts facts; must answer `{"facts": [...]}`.
    pub fact_extraction: Option<String>,
    /// Decides ADD/UPDATE/DELETE/NONE; must answer `{"decisions": [...]}`.
    pub decisions: Option<String>,
    /// Summarises an agent's run into a procedural memory.
    pub procedural: Option<String>,
    /// The system prompt of `chat`; must contain `{memories}`.
    pub chat: Option<String>,
}

/// The embedder named in [`OpenOptions`].
#[derive(Debug, Clone, Default)]
pub enum EmbedderSpec {
    /// The default local model, from this directory or wherever it is found.
    #[default]
    Local,
    /// The local model in this directory.
    LocalAt(String),
    /// No embedder.
    None,
    /// [`HashingEmbedder`] with this many dimensions.
    Hashing(usize),
    /// An OpenAI-compatible embeddings endpoint.
    Remote(RemoteEmbedderConfig),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenOptions {
    #[serde(default)]
    embedder: Value,
    #[serde(default)]
    persist_index: Option<bool>,
    #[serde(default)]
    index: Option<RawIndexOptions>,
    #[serde(default)]
    search: Option<RawSearchDefaults>,
    #[serde(default)]
    llm: Option<Value>,
    #[serde(default)]
    prompts: Option<PromptOptions>,
    #[serde(default)]
    plugins: Option<Value>,
    #[serde(default)]
    postgres: Option<Value>,
    #[serde(default)]
    history_retention: Option<HistoryRetention>,
    #[serde(default)]
    graph: Option<GraphOptions>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawIndexOptions {
    connectivity: Option<usize>,
    expansion_add: Option<usize>,
    expansion_search: Option<usize>,
    quantization: Option<String>,
    exact_scan_limit: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSearchDefaults {
    mode: Option<String>,
    limit: Option<usize>,
    threshold: Option<f32>,
    weights: Option<FusionWeights>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEmbedder {
    provider: String,
    model_dir: Option<String>,
    dimensions: Option<usize>,
}

impl OpenOptions {
    /// Reads options from JSON (`null` means the defaults).
    pub fn from_json(value: &Value) -> Result<OpenOptions> {
        let raw: RawOpenOptions = request(value, "options")?;
        let mut options = OpenOptions {
            embedder: EmbedderSpec::from_json(&raw.embedder)?,
            persist_index: raw.persist_index,
            llm: raw
                .llm
                .filter(|v| !v.is_null())
                .map(|v| request::<LlmConfig>(&v, "options.llm"))
                .transpose()?,
            prompts: raw.prompts.unwrap_or_default(),
            history_retention: raw.history_retention.unwrap_or_default(),
            graph: raw.graph.unwrap_or_default(),
            ..OpenOptions::default()
        };
        for (name, prompt) in [
            ("fact_extraction", &options.prompts.fact_extraction),
            ("decisions", &options.prompts.decisions),
            ("procedural", &options.prompts.procedural),
            ("chat", &options.prompts.chat),
        ] {
            if prompt.as_ref().is_some_and(|p| p.trim().is_empty()) {
                return Err(Error::invalid(format!(
                    "options.prompts.{name} must not be empty"
                )));
            }
        }
        if let Some(index) = raw.index {
            let o = &mut options.index;
            o.connectivity = index.connectivity.unwrap_or(o.connectivity);
            o.expansion_add = index.expansion_add.unwrap_or(o.expansion_add);
            o.expansion_search = index.expansion_search.unwrap_or(o.expansion_search);
            o.exact_scan_limit = index.exact_scan_limit.unwrap_or(o.exact_scan_limit);
            if let Some(q) = index.quantization {
                o.quantization = match q.to_ascii_lowercase().as_str() {
                    "f32" => Quantization::F32,
                    "f16" => Quantization::F16,
                    "i8" => Quantization::I8,
                    other => {
                        return Err(Error::invalid(format!(
                            "options.index.quantization: unknown value {other:?} (expected f32, f16 or i8)"
                        )))
                    }
                };
            }
        }
        if let Some(search) = raw.search {
            let s = &mut options.search;
            if let Some(mode) = search.mode {
                s.mode = mode.parse()?;
            }
            s.limit = search.limit.unwrap_or(s.limit);
            s.threshold = search.threshold.or(s.threshold);
            s.weights = search.weights.unwrap_or(s.weights);
        }
        if let Some(postgres) = raw.postgres.filter(|v| !v.is_null()) {
            #[cfg(feature = "postgres")]
            {
                options.postgres = request(&postgres, "options.postgres")?;
                options.postgres.validate()?;
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = postgres;
                return Err(Error::new(
                    crate::ErrorCode::Unsupported,
                    "options.postgres: this build of agent_mem has no PostgreSQL support \
                     (cargo feature \"postgres\")",
                ));
            }
        }
        if let Some(plugins) = raw.plugins.filter(|v| !v.is_null()) {
            #[cfg(feature = "plugins")]
            {
                options.plugins = request(&plugins, "options.plugins")?;
            }
            #[cfg(not(feature = "plugins"))]
            {
                let _ = plugins;
                return Err(Error::new(
                    crate::ErrorCode::Unsupported,
                    "this build of agent_mem has no plugin support (cargo feature \"plugins\")",
                ));
            }
        }
        Ok(options)
    }

    /// A builder for a store at `path` (`None` or [`IN_MEMORY_PATH`]: in memory) with these
    /// options. Nothing is opened yet and no network call is made; a model configuration
    /// that cannot work (an unknown provider, a missing key) is an error here.
    pub fn builder(&self, path: Option<&str>) -> Result<crate::MemoryBuilder> {
        let mut builder = Memory::builder()
            .index_options(self.index)
            .search_defaults(self.search.clone())
            .history_retention(self.history_retention)
            .graph(self.graph.clone());
        if let Some(path) = path.filter(|p| *p != IN_MEMORY_PATH) {
            builder = builder.path(Path::new(path));
        }
        if let Some(persist) = self.persist_index {
            builder = builder.persist_index(persist);
        }
        if let Some(llm) = &self.llm {
            builder = builder.llm(llm.build()?);
        }
        if let Some(p) = &self.prompts.fact_extraction {
            builder = builder.fact_extraction_prompt(p);
        }
        if let Some(p) = &self.prompts.decisions {
            builder = builder.decision_prompt(p);
        }
        if let Some(p) = &self.prompts.chat {
            builder = builder.chat_prompt(p);
        }
        if let Some(p) = &self.prompts.procedural {
            builder = builder.procedural_prompt(p);
        }
        #[cfg(feature = "plugins")]
        {
            builder = builder.plugin_options(self.plugins);
        }
        #[cfg(feature = "postgres")]
        {
            builder = builder.postgres_options(self.postgres);
        }
        Ok(match &self.embedder {
            EmbedderSpec::Local => builder,
            EmbedderSpec::LocalAt(dir) => builder.model_dir(dir),
            EmbedderSpec::None => builder.without_embedder(),
            EmbedderSpec::Hashing(dims) => builder.embedder(Arc::new(HashingEmbedder::new(*dims))),
            EmbedderSpec::Remote(config) => builder.embedder(Arc::new(config.build()?)),
        })
    }
}

impl EmbedderSpec {
    fn from_json(value: &Value) -> Result<EmbedderSpec> {
        let (provider, model_dir, dimensions) = match value {
            Value::Null => return Ok(EmbedderSpec::Local),
            Value::String(s) => (s.clone(), None, None),
            Value::Object(o)
                if o.get("provider")
                    .and_then(Value::as_str)
                    .is_some_and(|p| !matches!(p, "local" | "none" | "hashing")) =>
            {
                let config: RemoteEmbedderConfig = request(value, "options.embedder")?;
                // Checked now (provider, fields); keys may still come from the environment.
                config.build()?;
                return Ok(EmbedderSpec::Remote(config));
            }
            Value::Object(_) => {
                let raw: RawEmbedder = request(value, "options.embedder")?;
                (raw.provider, raw.model_dir, raw.dimensions)
            }
            other => {
                return Err(Error::invalid(format!(
                    "options.embedder must be a string or an object, got {}",
                    kind_of(other)
                )))
            }
        };
        let unexpected = |field: &str| {
            Err(Error::invalid(format!(
                "options.embedder: {field} does not apply to provider {provider:?}"
            )))
        };
        match provider.as_str() {
            "local" => {
                if dimensions.is_some() {
                    return unexpected("dimensions");
                }
                Ok(model_dir.map_or(EmbedderSpec::Local, EmbedderSpec::LocalAt))
            }
            "none" => {
                if model_dir.is_some() {
                    return unexpected("model_dir");
                }
                if dimensions.is_some() {
                    return unexpected("dimensions");
                }
                Ok(EmbedderSpec::None)
            }
            "hashing" => {
                if model_dir.is_some() {
                    return unexpected("model_dir");
                }
                match dimensions {
                    Some(d) if (1..=MAX_HASHING_DIMENSIONS).contains(&d) => {
                        Ok(EmbedderSpec::Hashing(d))
                    }
                    Some(d) => Err(Error::invalid(format!(
                        "options.embedder.dimensions must be between 1 and {MAX_HASHING_DIMENSIONS}, got {d}"
                    ))),
                    None => Err(Error::invalid(
                        "options.embedder: the hashing provider needs \"dimensions\"",
                    )),
                }
            }
            other => Err(Error::invalid(format!(
                "options.embedder: unknown provider {other:?} (expected local, none or hashing)"
            ))),
        }
    }
}

/// Opens a store: `path` is a file (created if missing), `None` / [`IN_MEMORY_PATH`] for a
/// store in memory, or a PostgreSQL database: a `postgres://` / `postgresql://` URL or a libpq
/// `key=value` connection string (`host=db.example dbname=memories user=agent
/// password='…'`; it starts with a libpq keyword and `=`, see
/// [`crate::is_postgres_location`]). `options` is [`OpenOptions`] JSON (`null` for the
/// defaults).
pub fn open(path: Option<&str>, options: &Value) -> Result<Memory> {
    if path.is_some_and(str::is_empty) {
        return Err(Error::invalid(
            "path must not be empty (use \":memory:\" for a store in memory)",
        ));
    }
    OpenOptions::from_json(options)?.builder(path)?.build()
}
