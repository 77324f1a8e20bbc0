//! [`Memory`]: the public handle that ties the store, the indexes and the embedder together.
//! One file per family of operations: `builder` (options, opening), `add` (validation,
//! embedding, the duplicate rule), `read` (get, list pages, count, history), `update`
//! (update, delete, purge), `search` (the entry points of the search pipeline), `copy`
//! (store to store), `infer` (conversations through a chat model), `versions` (the store as
//! of a past moment, every version of a memory), `changes` (supersede, undo, revert);
//! `embedding` is the embedding cache and `hooks` the plugin seam.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::llm::Llm;
use crate::search::SearchOptions;
use crate::store::{Selection, Store};
use crate::types::Scope;

mod add;
mod builder;
mod changes;
mod chat;
mod copy;
mod embedding;
mod graph;
mod graph_as_of;
mod graph_io;
mod hooks;
mod infer;
mod read;
mod search;
mod update;
mod versions;

use embedding::EmbedderSlot;
use hooks::Hooks;
use infer::Prompts;

pub use builder::MemoryBuilder;
pub use changes::{Supersede, Superseded, Undone};
pub use chat::{
    approx_tokens, Chat, ChatContext, ChatReply, Citation, ErrorReport, MemoryUsed, Recalled,
    Remember, RememberStatus, Remembered,
};
pub use copy::CopyReport;
pub use graph::Graph;
#[cfg(feature = "plugins")]
pub(crate) use graph::MemoryGraph;
pub use infer::{AddMessages, MemoryEvent, MemoryEventKind, Message};
pub use read::{CountOptions, ListOptions, ListPage};
pub use versions::{HistoryRetention, Pruned};

/// The actor recorded in history for calls made through the API.
pub(crate) const ACTOR_USER: &str = "user";
/// The actor recorded in history when expired memories are purged.
const ACTOR_EXPIRY: &str = "expiry";

/// Long-term memory for an agent: one SQLite file (or memory), an HNSW vector index, a
/// BM25 keyword index and an embedder.
///
/// `Memory` is `Send + Sync`: share it between threads with an `Arc`. Several processes may
/// open the same file; each sees the others' writes.
pub struct Memory {
    /// Everything the handle holds, shared with the work it leaves running (a chat's
    /// background remembering), which must outlive the call that started it.
    pub(crate) shared: Arc<Shared>,
}

/// The parts of a [`Memory`].
pub(crate) struct Shared {
    store: Box<dyn Store>,
    embedder: EmbedderSlot,
    defaults: SearchOptions,
    /// The chat model of [`Memory::add_messages`] (and plugins' `am_llm`).
    pub(crate) llm: Option<Arc<dyn Llm>>,
    prompts: Prompts,
    /// The plugin seam (see [`Hooks`]).
    pub(crate) hooks: Hooks,
    /// Which past versions `prune_versions` removes.
    retention: HistoryRetention,
    /// The graph's functional predicates, normalised.
    functional: Vec<String>,
    /// Whether inference also extracts the facts' entities and relations.
    extract_graph: bool,
    /// How alike an unknown entity name's embedding must be to an entity's to resolve to it.
    name_similarity: f32,
    /// Chats still remembering in the background, and the outcomes not yet collected.
    background: chat::Background,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.store.flush();
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("store", &self.shared.store.location())
            .field("embedder", &self.shared.embedder.model_id())
            .field("llm", &self.shared.llm.as_ref().map(|l| l.label()))
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// Opens (or creates) the store at `path` with the default local embedder: a file, or
    /// (feature `postgres`) a PostgreSQL URL or libpq connection string (see
    /// [`MemoryBuilder::path`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Memory> {
        Memory::builder().path(path).build()
    }

    /// A store that lives in memory only, with the default local embedder.
    pub fn open_in_memory() -> Result<Memory> {
        Memory::builder().build()
    }

    /// The store file, or `None` in memory or on a database server.
    pub fn path(&self) -> Option<&Path> {
        self.shared.store.path()
    }

    /// Where the store lives: its file, `:memory:`, or its URL with the password hidden.
    pub fn location(&self) -> String {
        self.shared.store.location()
    }

    /// The search options this memory was built with (see
    /// [`MemoryBuilder::search_defaults`]): start from these and change what a call needs.
    pub fn search_options(&self) -> SearchOptions {
        self.shared.defaults.clone()
    }

    /// The chat model's label (`"openai:gpt-4.1-nano"`), if one is configured.
    pub fn llm_label(&self) -> Option<&str> {
        self.shared.llm.as_ref().map(|l| l.label())
    }

    /// The embedder's model id, if there is an embedder.
    pub fn embedding_model(&self) -> Option<&str> {
        self.shared.embedder.model_id()
    }

    /// Saves the vector index beside a store file so the next open need not rebuild it,
    /// and trims the change log behind it. Called by `close` and on drop.
    pub fn flush(&self) -> Result<()> {
        self.shared.store.flush()
    }

    /// Forgets everything: memories, history, the embedding cache and the indexes. The
    /// store keeps its embedding model and dimension.
    pub fn reset(&self) -> Result<()> {
        self.shared.store.reset()
    }

    /// Waits for the chats still remembering in the background, saves the index and closes
    /// the store, reporting any error (dropping does the same silently, without waiting:
    /// the store then closes when the background work ends).
    pub fn close(self) -> Result<()> {
        self.shared.background.wait_all();
        self.flush()
    }

    /// Another handle on the same store, for work that outlives the call that starts it.
    fn handle(&self) -> Memory {
        Memory {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Number of vectors in the vector index (for diagnostics and tests).
    pub fn indexed_vectors(&self) -> Result<usize> {
        self.shared.store.indexed_vectors()
    }
}

/// A caller's vector: not empty, not too long, finite, not all zeros.
pub(crate) fn check_vector(v: &[f32]) -> Result<()> {
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

/// A memory id as a caller gives it: not blank, at most 128 bytes.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::invalid("id must not be empty"));
    }
    if id.len() > 128 {
        return Err(Error::invalid("id is longer than 128 bytes"));
    }
    Ok(())
}

/// Filter + scope + expiry: which memories a call reads.
pub(crate) fn selection(
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
        as_of: None,
        include_superseded: false,
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Memory>();
}
