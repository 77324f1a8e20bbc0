//! WASM plugins run by [Extism](https://extism.org) (feature `plugins`).
//!
//! A plugin is a WebAssembly module (binary, or WebAssembly text) registered with a
//! [`PluginManifest`]: who it is, what it may do ([`Capability`]), its limits and what happens
//! when it fails. Plugins of kind [`PluginKind::Hook`] run inside the memory pipeline, in
//! registration order, through the exports they have:
//!
//! | export | when | input → output (JSON) |
//! |---|---|---|
//! | `on_add` | before a memory is stored (add, batch, inferred facts, new content of an update) | `{"hook","operation","content","metadata","kind","scope"}` → `{}` / `{"content"?, "metadata"?, "entities"?, "relations"?}` / `{"reject": "why"}` |
//! | `before_search` | before a search runs | `{"hook","query","limit","mode","filters","scope"}` → `{}` / `{"query"?, "limit"?, "filters"?}` |
//! | `after_search` | before the caller sees the hits | `{"hook","query","scope","hits":[…]}` → `{}` / `{"hits":[{"id","score"?}]}` (reorder, drop, rescore; never add) |
//!
//! An `on_add` answer's `entities` (`[{"name", "type"?, "aliases"?, "summary"?}]`) and
//! `relations` (`[{"subject", "predicate", "object" | "value", "valid_from"?, "valid_to"?,
//! "confidence"?, "sources"?}]`, ends as `{"id"}` or `{"name", "type"?}`) are the graph the
//! memory states: stored with it as `add`'s `entities` and `relations` are (in its scope and
//! transaction, each relation sourced from it; for an inferred fact, from the memory the
//! fact lives in). A malformed one (a bad predicate, say) is the plugin's failure, so its
//! `on_error` applies; one the store refuses (an unknown entity id, an entity of another
//! scope) fails the call and nothing is stored. An update or a supersede takes no graph from
//! a plugin (its log says so).
//!
//! Any export can also be called directly with [`crate::Memory::call_plugin`].
//!
//! Plugins reach the store only through host functions (import module `extism:host/user`),
//! each checked against the plugin's capabilities and confined to the scope of the operation
//! that called the plugin: `am_log` (logging), `am_config` (config), `am_search` (search),
//! `am_get` (memory_read), `am_add` (memory_write), `am_llm` (llm). A call without the
//! capability fails the plugin call with an error naming it, and is logged.
//!
//! ```no_run
//! # fn main() -> agent_mem::Result<()> {
//! use agent_mem::plugin::{Capability, PluginManifest, PluginSource};
//! use agent_mem::{Memory, NewMemory};
//!
//! let memory = Memory::open("memories.db")?;
//! let manifest = PluginManifest::new("pii").capability(Capability::Logging);
//! memory
//!     .plugins()
//!     .register(PluginSource::Path("pii_redactor.wasm".into()), manifest)?;
//! memory.add(NewMemory::new("mail me at bob@example.com").user("bob"))?; // stored redacted
//! # Ok(()) }
//! ```

mod hooks;
mod host;
mod http;
mod manager;
mod module;
mod registered;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use manager::PluginManager;

/// What a plugin may do. Every host function checks one; extism's own network and
/// filesystem access are only set up when granted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `am_get`: read a memory of the calling operation's scope.
    MemoryRead,
    /// `am_add`: add a memory to the calling operation's scope.
    MemoryWrite,
    /// `am_search`: search the calling operation's scope.
    Search,
    /// `am_llm`: ask the store's configured language model.
    Llm,
    /// extism's `http_request`, to the manifest's `allowed_hosts` only (redirects too).
    Network,
    /// WASI with the manifest's `allowed_paths` mounted.
    Filesystem,
    /// `am_log`: write to the plugin's log.
    Logging,
    /// `am_config` (and extism's `config_get`): read the manifest's `config`.
    Config,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 8] = [
        Capability::MemoryRead,
        Capability::MemoryWrite,
        Capability::Search,
        Capability::Llm,
        Capability::Network,
        Capability::Filesystem,
        Capability::Logging,
        Capability::Config,
    ];

    /// The name used in manifests and errors (`memory_read`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::MemoryRead => "memory_read",
            Capability::MemoryWrite => "memory_write",
            Capability::Search => "search",
            Capability::Llm => "llm",
            Capability::Network => "network",
            Capability::Filesystem => "filesystem",
            Capability::Logging => "logging",
            Capability::Config => "config",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a plugin is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Runs at the hook points it exports (`on_add`, `before_search`, `after_search`); it
    /// must export at least one. Its other exports can be called too.
    #[default]
    Hook,
    /// Only called directly ([`crate::Memory::call_plugin`]); hooks never run, even if
    /// exported. A data source, a tool, a converter.
    Function,
}

/// What happens to the operation when a hook plugin fails (traps, times out, answers
/// nonsense). A rejection (`{"reject": …}`) is not a failure: it always fails the call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// The operation fails with the plugin's error; nothing is written.
    #[default]
    Fail,
    /// The plugin is skipped for this operation (logged and counted); the rest goes on.
    Skip,
}

/// Resource limits applied to every call of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory the plugin may grow to, in 64 KiB WebAssembly pages.
    pub memory_pages: u32,
    /// Wall-clock time one call may take, in milliseconds; a runaway call is interrupted.
    pub timeout_ms: u64,
    /// Instructions one call may execute (wasmtime fuel); `None`: no instruction budget.
    pub fuel: Option<u64>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_pages: 256,
            timeout_ms: 1_000,
            fuel: None,
        }
    }
}

/// Largest `memory_pages` accepted (4 GiB, the whole 32-bit address space).
pub const MAX_MEMORY_PAGES: u32 = 65_536;
/// Longest `timeout_ms` accepted (10 minutes).
pub const MAX_TIMEOUT_MS: u64 = 600_000;

impl PluginLimits {
    fn validate(&self) -> Result<()> {
        if !(1..=MAX_MEMORY_PAGES).contains(&self.memory_pages) {
            return Err(Error::invalid(format!(
                "limits.memory_pages must be 1 to {MAX_MEMORY_PAGES}, got {}",
                self.memory_pages
            )));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(Error::invalid(format!(
                "limits.timeout_ms must be 1 to {MAX_TIMEOUT_MS}, got {}",
                self.timeout_ms
            )));
        }
        if self.fuel == Some(0) {
            return Err(Error::invalid("limits.fuel must be positive (or absent)"));
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Who a plugin is and what it is allowed: given at registration. The capabilities listed
/// are the ones granted; nothing else is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Unique in the store: 1–64 characters from `A-Z a-z 0-9 _ - .`.
    pub id: String,
    /// A human name (defaults to the id).
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin's version, as its author numbers it.
    #[serde(default)]
    pub version: Option<String>,
    /// Hook plugin or function plugin.
    #[serde(default)]
    pub kind: PluginKind,
    /// The capabilities granted.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Key/value settings the plugin reads with the `config` capability.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Hosts the plugin may reach with the `network` capability (`example.com`,
    /// `*.example.com`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Host directory → guest path, mounted with the `filesystem` capability.
    #[serde(default)]
    pub allowed_paths: BTreeMap<String, String>,
    /// Per-call limits.
    #[serde(default)]
    pub limits: PluginLimits,
    /// What a failure of this plugin's hooks does to the operation.
    #[serde(default)]
    pub on_error: FailurePolicy,
}

impl PluginManifest {
    /// A hook plugin with this id, no capabilities and default limits.
    pub fn new(id: impl Into<String>) -> Self {
        PluginManifest {
            id: id.into(),
            name: None,
            version: None,
            kind: PluginKind::Hook,
            capabilities: Vec::new(),
            config: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            allowed_paths: BTreeMap::new(),
            limits: PluginLimits::default(),
            on_error: FailurePolicy::Fail,
        }
    }

    /// Grants a capability.
    pub fn capability(mut self, capability: Capability) -> Self {
        if !self.capabilities.contains(&capability) {
            self.capabilities.push(capability);
        }
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: PluginKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets one config value.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: PluginLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the failure policy.
    pub fn on_error(mut self, policy: FailurePolicy) -> Self {
        self.on_error = policy;
        self
    }

    /// True when the capability was granted.
    pub fn grants(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    fn validate(&self) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !id_ok {
            return Err(Error::invalid(format!(
                "plugin id {:?}: use 1 to 64 characters from A-Z a-z 0-9 _ - .",
                self.id
            )));
        }
        for (field, value) in [("name", &self.name), ("version", &self.version)] {
            if let Some(v) = value {
                if v.trim().is_empty() || v.len() > 256 || v.contains('\0') {
                    return Err(Error::invalid(format!(
                        "plugin {:?}: {field} must be 1 to 256 bytes of text",
                        self.id
                    )));
                }
            }
        }
        // Settings a plugin could never read would fail silently (extism's config_get answers
        // "not set"): refuse them instead.
        if !self.config.is_empty() && !self.grants(Capability::Config) {
            return Err(Error::invalid(format!(
                "plugin {:?}: config needs the config capability",
                self.id
            )));
        }
        if !self.allowed_hosts.is_empty() && !self.grants(Capability::Network) {
            return Err(Error::invalid(format!(
                "plugin {:?}: allowed_hosts needs the network capability",
                self.id
            )));
        }
        if !self.allowed_paths.is_empty() && !self.grants(Capability::Filesystem) {
            return Err(Error::invalid(format!(
                "plugin {:?}: allowed_paths needs the filesystem capability",
                self.id
            )));
        }
        for host in &self.allowed_hosts {
            if host.trim().is_empty() || host.contains(['/', ' ', '\0']) {
                return Err(Error::invalid(format!(
                    "plugin {:?}: allowed_hosts entry {host:?} is not a host name",
                    self.id
                )));
            }
        }
        for dir in self.allowed_paths.keys() {
            if !std::path::Path::new(dir).is_dir() {
                return Err(Error::invalid(format!(
                    "plugin {:?}: allowed_paths: {dir:?} is not a directory",
                    self.id
                )));
            }
        }
        self.limits
            .validate()
            .map_err(|e| Error::invalid(format!("plugin {:?}: {}", self.id, e.message())))
    }
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A `.wasm` (or `.wat`) file; reloaded when it changes on disk.
    Path(PathBuf),
    /// The module itself (binary or text).
    Bytes(Vec<u8>),
}

/// Settings of the plugin manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginOptions {
    /// How many plugins are kept compiled at once (least recently used first out). A plugin
    /// evicted stays registered and is compiled again on its next use.
    pub cache_size: usize,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions { cache_size: 16 }
    }
}

/// One line of a plugin's log (`am_log`, denied host calls, failures, reloads).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PluginLogEntry {
    /// When (UTC, RFC 3339).
    pub time: String,
    /// `info`, `warn` or `error`.
    pub level: &'static str,
    /// What happened.
    pub message: String,
}

/// Counters of a plugin since registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PluginStats {
    /// Calls made (hooks and direct calls).
    pub calls: u64,
    /// Calls that failed (trap, timeout, limit, bad answer, denied capability).
    pub failures: u64,
    /// Host calls refused for a missing capability.
    pub denied: u64,
    /// Times the module was compiled (first load, after eviction, reloads).
    pub loads: u64,
    /// Times a changed file (or an explicit reload) replaced the code.
    pub reloads: u64,
}

/// What [`PluginManager::list`] tells about a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PluginInfo {
    /// The manifest's id.
    pub id: String,
    /// The manifest's name (or the id).
    pub name: String,
    /// The manifest's version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hook or function plugin.
    pub kind: PluginKind,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// The file it was registered from (absent for bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The hook exports it has (`on_add`, `before_search`, `after_search`).
    pub hooks: Vec<&'static str>,
    /// True while the compiled module is in the cache.
    pub loaded: bool,
    /// Per-call limits.
    pub limits: PluginLimits,
    /// Failure policy of its hooks.
    pub on_error: FailurePolicy,
    /// Counters.
    pub stats: PluginStats,
    /// The last failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The most recent log lines, oldest first.
    pub log: Vec<PluginLogEntry>,
}
