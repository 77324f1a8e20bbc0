//! The JSON face of the engine: one request shape and one result shape per operation,
//! shared by the C ABI, Python and Node so that every language accepts the same input,
//! rejects the same bad input with the same [`ErrorCode`](crate::ErrorCode), and returns the
//! same JSON.
//!
//! Requests are JSON objects; a misspelt or unexpected key is refused (`InvalidInput`
//! naming the key), so a typo never turns an option off silently. Optional fields may be
//! left out or `null`.
//!
//! | operation | request | result |
//! |---|---|---|
//! | [`open`] | [`OpenOptions`] | a [`Memory`] |
//! | [`add`] | `{"content", "user_id", "agent_id", "run_id", "org_id", "kind", "metadata", "expires_at"}` | `{"id", "added"}` |
//! | [`add_batch`] | `{"memories": [add requests]}` | `[{"id", "added"}, …]` |
//! | [`add_messages`] | `{"messages", "infer", "prompt", "user_id", "agent_id", "run_id", "org_id", "kind", "metadata", "expires_at"}` | `[{"id", "memory", "event", "previous_memory"?}, …]` |
//! | [`get`] | an id | a memory record |
//! | [`list`] | scope, `include_global`, `include_expired`, `filters`, `order`, `limit`, `offset`, `cursor` | `{"items": [records], "next_cursor": string or null}` |
//! | [`count`] | scope, `filters` | a number |
//! | [`update`] | an id and `{"content", "metadata", "kind", "expires_at"}` (`expires_at: null` removes the expiry) | the updated record |
//! | [`delete`] | an id | nothing |
//! | [`delete_all`] | scope, `filters` | the number deleted |
//! | [`history`] | an id | `[history rows, oldest first]` |
//! | [`search`] | `{"query", "mode", "limit", "threshold", scope, "include_global", "include_expired", "filters", "weights"}` | `[hits, best first]` |
//! | [`plugin_register`] | a plugin manifest (`{"id", "name", "version", "kind", "capabilities", "config", "allowed_hosts", "allowed_paths", "limits", "on_error", "path"?}`) and optional module bytes | the plugin's info |
//! | [`plugin_list`] | nothing | `[plugin infos, in registration order]` |
//! | [`plugin_unregister`], [`plugin_load`], [`plugin_unload`], [`plugin_reload`] | a plugin id | nothing / the plugin's info |
//! | [`plugin_call`] | a plugin id, an export name, input bytes, `{scope}` | the output bytes |
//!
//!
//! Besides these functions, [`call`] runs any operation by name (the list is
//! [`OPERATIONS`]): the one dispatch the C ABI's `am_memory_call`, Python and Node go through.
//! Its requests are the ones above, with an id as `"id"` and the caller's embeddings as
//! `"vector"` / `"vectors"` (or natively, [`call_with`]).
//!
//! A *memory record* is `{"id", "content", "hash", "kind", "user_id"?, "agent_id"?,
//! "run_id"?, "org_id"?, "metadata", "created_at", "updated_at", "expires_at"?}` (absent
//! scope fields and expiry are left out); a *hit* is a record plus `"score"`,
//! `"similarity"` (when the query was embedded) and `"explain"`; a *history row* is
//! `{"id", "memory_id", "event", "old_content", "new_content", "is_deleted", "actor",
//! "created_at"}`. Times are RFC 3339 UTC with microseconds; requests also accept dates.

mod dispatch;

pub use dispatch::{call, call_text, call_text_with, call_with, Embeddings, OPERATIONS};

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::embed::RemoteEmbedderConfig;
use crate::llm::LlmConfig;
use crate::{
    parse_time, AddMessages, Error, Filter, FusionWeights, HashingEmbedder, ListOptions, ListOrder,
    Memory, MemoryKind, MemoryUpdate, Message, Metadata, NewMemory, Quantization, Result, Scope,
    SearchMode, SearchOptions, VectorIndexOptions,
};

/// The path that opens a store in memory (as in SQLite).
pub const IN_MEMORY_PATH: &str = ":memory:";

/// The largest dimension the hashing embedder accepts.
const MAX_HASHING_DIMENSIONS: usize = 65_536;

/// Parses request text; `what` names it in the error (`"options"`, `"add request"`).
pub fn parse(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")).with_source(e))
}

/// Deserialises a request object, naming the request in the error.
fn request<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    let value = match value {
        Value::Null => json!({}),
        Value::Object(_) => value.clone(),
        other => {
            return Err(Error::invalid(format!(
                "{what} must be a JSON object, got {}",
                kind_of(other)
            )))
        }
    };
    serde_json::from_value(value).map_err(|e| Error::invalid(format!("{what}: {e}")).with_source(e))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("cannot serialise a result: {e}")))
}

/// `Some(None)` for an explicit `null`, `None` for a missing field.
fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// ------------------------------------------------------------------------------- open

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
///   "prompts": {"fact_extraction": "…", "decisions": "…", "procedural": "…"},
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
/// store opened by a `postgres://` URL (feature `postgres`). Every field is optional.
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
    /// The chat model used by [`add_messages`] to infer memories.
    pub llm: Option<LlmConfig>,
    /// Replacements of the inference prompts.
    pub prompts: PromptOptions,
    /// Plugin manager settings (`{"cache_size": n}`; feature `plugins`).
    #[cfg(feature = "plugins")]
    pub plugins: crate::plugin::PluginOptions,
    /// PostgreSQL pool settings (feature `postgres`).
    #[cfg(feature = "postgres")]
    pub postgres: crate::PostgresOptions,
}

/// Replacement prompts (see [`crate::MemoryBuilder::fact_extraction_prompt`] and the
/// others); `None` keeps the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptOptions {
    /// Extracts facts; must answer `{"facts": [...]}`.
    pub fact_extraction: Option<String>,
    /// Decides ADD/UPDATE/DELETE/NONE; must answer `{"decisions": [...]}`.
    pub decisions: Option<String>,
    /// Summarises an agent's run into a procedural memory.
    pub procedural: Option<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenOptions {
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndexOptions {
    connectivity: Option<usize>,
    expansion_add: Option<usize>,
    expansion_search: Option<usize>,
    quantization: Option<String>,
    exact_scan_limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearchDefaults {
    mode: Option<String>,
    limit: Option<usize>,
    threshold: Option<f32>,
    weights: Option<FusionWeights>,
}

#[derive(Deserialize)]
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
            ..OpenOptions::default()
        };
        for (name, prompt) in [
            ("fact_extraction", &options.prompts.fact_extraction),
            ("decisions", &options.prompts.decisions),
            ("procedural", &options.prompts.procedural),
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
                return Err(without_plugins());
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
            .search_defaults(self.search.clone());
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

/// Opens a store: `path` is a file (created if missing), or `None` / [`IN_MEMORY_PATH`] for a
/// store in memory; `options` is [`OpenOptions`] JSON (`null` for the defaults).
pub fn open(path: Option<&str>, options: &Value) -> Result<Memory> {
    if path.is_some_and(str::is_empty) {
        return Err(Error::invalid(
            "path must not be empty (use \":memory:\" for a store in memory)",
        ));
    }
    OpenOptions::from_json(options)?.builder(path)?.build()
}

// ------------------------------------------------------------------------------- requests

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    content: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
    expires_at: Option<String>,
}

impl AddRequest {
    fn into_new_memory(self, what: &str) -> Result<NewMemory> {
        let content = self
            .content
            .ok_or_else(|| Error::invalid(format!("{what}: content is required")))?;
        let mut memory = NewMemory::new(content).scope(Scope {
            user_id: self.user_id,
            agent_id: self.agent_id,
            run_id: self.run_id,
            org_id: self.org_id,
        });
        if let Some(kind) = self.kind {
            memory = memory.kind(kind.parse::<MemoryKind>()?);
        }
        if let Some(metadata) = self.metadata {
            memory = memory.metadata(metadata);
        }
        if let Some(at) = self.expires_at {
            memory = memory.expires_at(parse_time(&at)?);
        }
        Ok(memory)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    memories: Vec<Value>,
}

impl BatchRequest {
    fn into_new_memories(self) -> Result<Vec<NewMemory>> {
        self.memories
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let what = format!("memories[{i}]");
                request::<AddRequest>(item, &what)?.into_new_memory(&what)
            })
            .collect()
    }
}

/// Scope and filters: the selection shared by list, count, delete_all and search.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SelectRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
}

impl SelectRequest {
    fn split(self) -> Result<(Scope, Option<Filter>)> {
        let filter = self.filters.as_ref().map(Filter::from_json).transpose()?;
        Ok((
            Scope {
                user_id: self.user_id,
                agent_id: self.agent_id,
                run_id: self.run_id,
                org_id: self.org_id,
            },
            filter,
        ))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
    include_global: Option<bool>,
    include_expired: Option<bool>,
    order: Option<ListOrder>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    content: Option<String>,
    metadata: Option<Metadata>,
    kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
}

impl UpdateRequest {
    fn into_update(self) -> Result<MemoryUpdate> {
        Ok(MemoryUpdate {
            content: self.content,
            metadata: self.metadata,
            kind: self.kind.map(|k| k.parse()).transpose()?,
            expires_at: match self.expires_at {
                None => None,
                Some(None) => Some(None),
                Some(Some(at)) => Some(Some(parse_time(&at)?)),
            },
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: Option<String>,
    mode: Option<String>,
    limit: Option<usize>,
    threshold: Option<f32>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
    include_global: Option<bool>,
    include_expired: Option<bool>,
    weights: Option<FusionWeights>,
}

impl SearchRequest {
    /// The query text and the options, starting from the store's search defaults.
    fn into_options(self, memory: &Memory) -> Result<(String, SearchOptions)> {
        let mut options = memory.search_options();
        options.scope = Scope {
            user_id: self.user_id,
            agent_id: self.agent_id,
            run_id: self.run_id,
            org_id: self.org_id,
        };
        options.filter = self.filters.as_ref().map(Filter::from_json).transpose()?;
        if let Some(mode) = self.mode {
            options.mode = mode.parse::<SearchMode>()?;
        }
        options.limit = self.limit.unwrap_or(options.limit);
        options.threshold = self.threshold.or(options.threshold);
        options.include_global = self.include_global.unwrap_or(false);
        options.include_expired = self.include_expired.unwrap_or(false);
        options.weights = self.weights.unwrap_or(options.weights);
        Ok((self.query.unwrap_or_default(), options))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMessagesRequest {
    messages: Option<Value>,
    infer: Option<bool>,
    prompt: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
    expires_at: Option<String>,
}

impl AddMessagesRequest {
    fn into_request(self) -> Result<AddMessages> {
        let messages = match self.messages {
            Some(Value::String(text)) => vec![Message::user(text)],
            Some(one @ Value::Object(_)) => vec![self::request::<Message>(&one, "messages")?],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, m)| self::request::<Message>(m, &format!("messages[{i}]")))
                .collect::<Result<_>>()?,
            Some(other) if !other.is_null() => {
                return Err(Error::invalid(format!(
                    "messages must be a string, a message or a list of messages, got {}",
                    kind_of(&other)
                )))
            }
            _ => return Err(Error::invalid("messages is required")),
        };
        let mut request = AddMessages::new(messages).scope(Scope {
            user_id: self.user_id,
            agent_id: self.agent_id,
            run_id: self.run_id,
            org_id: self.org_id,
        });
        request.infer = self.infer.unwrap_or(true);
        request.prompt = self.prompt;
        if let Some(kind) = self.kind {
            request.kind = Some(kind.parse::<MemoryKind>()?);
        }
        if let Some(metadata) = self.metadata {
            request.metadata = metadata;
        }
        if let Some(at) = self.expires_at {
            request.expires_at = Some(parse_time(&at)?);
        }
        Ok(request)
    }
}

// ------------------------------------------------------------------------------- operations

/// Remembers a conversation ([`Memory::add_messages`]): with a chat model and `infer`
/// (default true), facts are extracted and reconciled with what is stored; otherwise each
/// non-system message is stored. `messages` is a string (one user message), a message
/// `{"role", "content", "name"?}` or a list of them. Returns the events,
/// `[{"id", "memory", "event": "ADD"|"UPDATE"|"DELETE"|"NONE", "previous_memory"?}]`.
pub fn add_messages(memory: &Memory, request: &Value) -> Result<Value> {
    let request =
        self::request::<AddMessagesRequest>(request, "add_messages request")?.into_request()?;
    to_json(&memory.add_messages(request)?)
}

/// Adds one memory (embedded by the store's embedder); `{"id", "added"}`.
pub fn add(memory: &Memory, request: &Value) -> Result<Value> {
    let new =
        self::request::<AddRequest>(request, "add request")?.into_new_memory("add request")?;
    to_json(&memory.add(new)?)
}

/// Adds one memory with the caller's embedding; `{"id", "added"}`.
pub fn add_with_vector(memory: &Memory, request: &Value, vector: Vec<f32>) -> Result<Value> {
    let new =
        self::request::<AddRequest>(request, "add request")?.into_new_memory("add request")?;
    to_json(&memory.add_with_vector(new, vector)?)
}

/// Adds several memories in one transaction; `[{"id", "added"}, …]` in request order.
pub fn add_batch(memory: &Memory, request: &Value) -> Result<Value> {
    let memories = self::request::<BatchRequest>(request, "batch request")?.into_new_memories()?;
    to_json(&memory.add_batch(memories)?)
}

/// Adds several memories with the caller's embeddings (one per memory, in order) in one
/// transaction; `[{"id", "added"}, …]`.
pub fn add_batch_with_vectors(
    memory: &Memory,
    request: &Value,
    vectors: Vec<Vec<f32>>,
) -> Result<Value> {
    let memories = self::request::<BatchRequest>(request, "batch request")?.into_new_memories()?;
    if memories.len() != vectors.len() {
        return Err(Error::invalid(format!(
            "{} memories but {} vectors: give one vector per memory",
            memories.len(),
            vectors.len()
        )));
    }
    to_json(&memory.add_batch_with_vectors(memories.into_iter().zip(vectors).collect())?)
}

/// One memory record.
pub fn get(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.get(id)?)
}

/// One page: `{"items": [records], "next_cursor": string or null}`.
pub fn list(memory: &Memory, request: &Value) -> Result<Value> {
    let r: ListRequest = self::request(request, "list request")?;
    let defaults = ListOptions::default();
    let options = ListOptions {
        scope: Scope {
            user_id: r.user_id,
            agent_id: r.agent_id,
            run_id: r.run_id,
            org_id: r.org_id,
        },
        filter: r.filters.as_ref().map(Filter::from_json).transpose()?,
        include_global: r.include_global.unwrap_or(false),
        include_expired: r.include_expired.unwrap_or(false),
        order: r.order.unwrap_or(defaults.order),
        limit: r.limit.unwrap_or(defaults.limit),
        offset: r.offset.unwrap_or(0),
        cursor: r.cursor,
    };
    to_json(&memory.list(&options)?)
}

/// How many memories the scope and filters select.
pub fn count(memory: &Memory, request: &Value) -> Result<usize> {
    let (scope, filter) = self::request::<SelectRequest>(request, "count request")?.split()?;
    memory.count(&scope, filter.as_ref())
}

/// Changes a memory; the updated record.
pub fn update(memory: &Memory, id: &str, request: &Value) -> Result<Value> {
    let update = self::request::<UpdateRequest>(request, "update request")?.into_update()?;
    to_json(&memory.update(id, update)?)
}

/// Changes a memory's content with the caller's embedding of the new content; the updated
/// record.
pub fn update_with_vector(
    memory: &Memory,
    id: &str,
    request: &Value,
    vector: Vec<f32>,
) -> Result<Value> {
    let update = self::request::<UpdateRequest>(request, "update request")?.into_update()?;
    to_json(&memory.update_with_vector(id, update, vector)?)
}

/// Deletes a memory (its history stays).
pub fn delete(memory: &Memory, id: &str) -> Result<()> {
    memory.delete(id)
}

/// Deletes what the scope and filters select; how many. The selection must name a scope
/// field or a filter ([`Memory::delete_all`] refuses an empty one; [`Memory::reset`] deletes
/// everything).
pub fn delete_all(memory: &Memory, request: &Value) -> Result<usize> {
    let (scope, filter) = self::request::<SelectRequest>(request, "delete_all request")?.split()?;
    memory.delete_all(&scope, filter.as_ref())
}

/// A memory's history rows, oldest first.
pub fn history(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.history(id)?)
}

/// Copies every memory and the whole history of `source` into the empty store `target`
/// (see [`Memory::copy_into`]); `{"memories": n, "history": n}`.
pub fn copy_into(source: &Memory, target: &Memory) -> Result<Value> {
    to_json(&source.copy_into(target)?)
}

/// Searches with the query text (embedded by the store); hits, best first.
pub fn search(memory: &Memory, request: &Value) -> Result<Value> {
    let (query, options) =
        self::request::<SearchRequest>(request, "search request")?.into_options(memory)?;
    to_json(&memory.search(&query, &options)?)
}

/// Searches with the caller's query embedding (and the query text for the text engines);
/// hits, best first.
pub fn search_with_vector(memory: &Memory, request: &Value, vector: &[f32]) -> Result<Value> {
    let (query, options) =
        self::request::<SearchRequest>(request, "search request")?.into_options(memory)?;
    to_json(&memory.search_with_vector(&query, vector, &options)?)
}

// -------------------------------------------------------------------------------- plugins

/// The error of every plugin operation in a build without the `plugins` feature.
#[cfg(not(feature = "plugins"))]
fn without_plugins() -> Error {
    Error::new(
        crate::ErrorCode::Unsupported,
        "this build of agent_mem has no plugin support (cargo feature \"plugins\")",
    )
}

/// Registers a plugin. `manifest` is a [`crate::plugin::PluginManifest`] plus `"path"` (a
/// `.wasm` or `.wat` file, reloaded when it changes); give either `path` or `wasm` (the
/// module's bytes, binary or text). Returns the plugin's info.
pub fn plugin_register(memory: &Memory, manifest: &Value, wasm: Option<&[u8]>) -> Result<Value> {
    #[cfg(feature = "plugins")]
    {
        use crate::plugin::{PluginManifest, PluginSource};
        let mut manifest = match manifest {
            Value::Object(o) => o.clone(),
            other => {
                return Err(Error::invalid(format!(
                    "plugin manifest must be a JSON object, got {}",
                    kind_of(other)
                )))
            }
        };
        let path = match manifest.remove("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "plugin manifest: path must be a string, got {}",
                    kind_of(&other)
                )))
            }
        };
        let manifest: PluginManifest = request(&Value::Object(manifest), "plugin manifest")?;
        let source = match (path, wasm) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "plugin: give a path or the module's bytes, not both",
                ))
            }
            (Some(p), None) => PluginSource::Path(p.into()),
            (None, Some(bytes)) => PluginSource::Bytes(bytes.to_vec()),
            (None, None) => {
                return Err(Error::invalid(
                    "plugin: give a path (in the manifest) or the module's bytes",
                ))
            }
        };
        to_json(&memory.plugins().register(source, manifest)?)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, manifest, wasm);
        Err(without_plugins())
    }
}

/// Every registered plugin's info, in registration order.
pub fn plugin_list(memory: &Memory) -> Result<Value> {
    #[cfg(feature = "plugins")]
    {
        to_json(&memory.plugins().list())
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = memory;
        Err(without_plugins())
    }
}

/// Removes a plugin.
pub fn plugin_unregister(memory: &Memory, id: &str) -> Result<()> {
    #[cfg(feature = "plugins")]
    {
        memory.plugins().unregister(id)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, id);
        Err(without_plugins())
    }
}

/// Compiles a plugin into the cache now; returns its info.
pub fn plugin_load(memory: &Memory, id: &str) -> Result<Value> {
    #[cfg(feature = "plugins")]
    {
        to_json(&memory.plugins().load(id)?)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, id);
        Err(without_plugins())
    }
}

/// Drops a plugin's compiled code (it stays registered); returns its info.
pub fn plugin_unload(memory: &Memory, id: &str) -> Result<Value> {
    #[cfg(feature = "plugins")]
    {
        to_json(&memory.plugins().unload(id)?)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, id);
        Err(without_plugins())
    }
}

/// Compiles a plugin again from its source; returns its info.
pub fn plugin_reload(memory: &Memory, id: &str) -> Result<Value> {
    #[cfg(feature = "plugins")]
    {
        to_json(&memory.plugins().reload(id)?)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, id);
        Err(without_plugins())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScopeRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// Calls export `function` of plugin `id` with `input`; host functions the plugin calls are
/// confined to the scope in `scope` (`{"user_id", "agent_id", "run_id", "org_id"}`, `null`
/// for the global layer). Returns the plugin's output bytes.
pub fn plugin_call(
    memory: &Memory,
    id: &str,
    function: &str,
    input: &[u8],
    scope: &Value,
) -> Result<Vec<u8>> {
    let s: ScopeRequest = request(scope, "plugin call scope")?;
    let scope = Scope {
        user_id: s.user_id,
        agent_id: s.agent_id,
        run_id: s.run_id,
        org_id: s.org_id,
    };
    #[cfg(feature = "plugins")]
    {
        memory.call_plugin(id, function, input, &scope)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (memory, id, function, input, scope);
        Err(without_plugins())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Memory {
        open(
            None,
            &json!({"embedder": {"provider": "hashing", "dimensions": 32}}),
        )
        .unwrap()
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let m = store();
        let e = add(&m, &json!({"content": "x", "usr_id": "a"})).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
        assert!(e.message().contains("usr_id"), "{}", e.message());
        assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    }

    #[test]
    fn requests_round_trip_through_every_operation() {
        let m = store();
        let out = add(
            &m,
            &json!({"content": "likes tea", "user_id": "u", "kind": "semantic"}),
        )
        .unwrap();
        let id = out["id"].as_str().unwrap().to_string();
        assert_eq!(out["added"], true);
        assert_eq!(get(&m, &id).unwrap()["kind"], "semantic");
        let page = list(&m, &json!({"user_id": "u"})).unwrap();
        assert_eq!(page["items"][0]["id"], id.as_str());
        assert!(page["next_cursor"].is_null());
        assert_eq!(count(&m, &Value::Null).unwrap(), 1);
        let hits = search(&m, &json!({"query": "tea", "mode": "keyword"})).unwrap();
        assert_eq!(hits[0]["id"], id.as_str());
        let updated = update(&m, &id, &json!({"content": "likes green tea"})).unwrap();
        assert_eq!(updated["content"], "likes green tea");
        assert_eq!(history(&m, &id).unwrap().as_array().unwrap().len(), 2);
        let batch = add_batch(
            &m,
            &json!({"memories": [{"content": "a"}, {"content": "b"}]}),
        )
        .unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 2);
        assert_eq!(delete_all(&m, &json!({"user_id": "u"})).unwrap(), 1);
        delete(&m, batch[0]["id"].as_str().unwrap()).unwrap();
        assert_eq!(count(&m, &json!({})).unwrap(), 1);
    }

    #[test]
    fn a_misspelt_weight_is_refused() {
        let m = store();
        let e = search(&m, &json!({"query": "x", "weights": {"vectr": 5}})).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
        assert!(e.message().contains("vectr"), "{}", e.message());
    }

    #[test]
    fn update_tells_a_null_expiry_from_a_missing_one() {
        let m = store();
        let id = add(&m, &json!({"content": "temp", "expires_at": "2999-01-01"})).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let kept = update(&m, &id, &json!({"metadata": {"a": 1}})).unwrap();
        assert!(kept["expires_at"].is_string());
        let cleared = update(&m, &id, &json!({"expires_at": null})).unwrap();
        assert!(cleared.get("expires_at").is_none());
    }

    #[test]
    fn options_are_checked() {
        for (options, needle) in [
            (json!({"embedder": "gpt"}), "unknown provider"),
            (json!({"embedder": {"provider": "hashing"}}), "dimensions"),
            (
                json!({"embedder": {"provider": "hashing", "dimensions": 0}}),
                "dimensions",
            ),
            (json!({"index": {"quantization": "f8"}}), "quantization"),
            (json!({"index": {"conectivity": 8}}), "conectivity"),
            (json!({"search": {"mode": "magic"}}), "magic"),
            (json!([1]), "must be a JSON object"),
        ] {
            let e = OpenOptions::from_json(&options).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{options}");
            assert!(e.message().contains(needle), "{options}: {}", e.message());
        }
        let e = open(Some(""), &Value::Null).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
    }

    #[test]
    fn search_defaults_from_the_options_apply() {
        let m = open(
            None,
            &json!({"embedder": "none", "search": {"mode": "keyword", "limit": 1}}),
        )
        .unwrap();
        m.add_with_vector(NewMemory::new("red apple"), vec![1.0, 0.0])
            .unwrap();
        m.add_with_vector(NewMemory::new("red car"), vec![0.0, 1.0])
            .unwrap();
        // Keyword mode needs no embedder, and the limit of one comes from the options.
        let hits = search(&m, &json!({"query": "red"})).unwrap();
        assert_eq!(hits.as_array().unwrap().len(), 1);
    }

    #[test]
    fn batch_with_vectors_needs_one_vector_per_memory() {
        let m = open(None, &json!({"embedder": "none"})).unwrap();
        let e = add_batch_with_vectors(&m, &json!({"memories": [{"content": "a"}]}), vec![])
            .unwrap_err();
        assert!(e.message().contains("one vector per memory"));
        let e = add_batch(
            &m,
            &json!({"memories": [{"content": "a"}, {"user_id": "x"}]}),
        )
        .unwrap_err();
        assert!(
            e.message().contains("memories[1]: content is required"),
            "{}",
            e.message()
        );
    }
}
