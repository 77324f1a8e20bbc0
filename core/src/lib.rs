//! # agent_mem
//!
//! Long-term memory for AI agents, as an embedded library: one SQLite file holds the
//! memories, their history and their vectors; an HNSW index (usearch) answers by meaning,
//! FTS5 BM25 by keywords (CJK included), a trigram vocabulary by typos, and hybrid search
//! fuses their scores. Embeddings come from a local BERT-family model run
//! by Candle (all-MiniLM-L6-v2 by default): no API key, no network.
//!
//! ```no_run
//! use agent_mem::{Memory, NewMemory, SearchOptions};
//!
//! # fn main() -> agent_mem::Result<()> {
//! let memory = Memory::open("memories.db")?;
//! memory.add(NewMemory::new("Alice is allergic to peanuts").user("alice"))?;
//! memory.add(NewMemory::new("Bob loves spicy ramen").user("bob"))?;
//! for hit in memory.search("what food should alice avoid?", &SearchOptions::new().user("alice"))? {
//!     println!("{:.3} {}", hit.score, hit.memory.content);
//! }
//! # Ok(()) }
//! ```
//!
//! The same store can be used with vectors you compute yourself (no model needed):
//!
//! ```
//! use agent_mem::{Memory, NewMemory, SearchMode, SearchOptions};
//!
//! # fn main() -> agent_mem::Result<()> {
//! let memory = Memory::builder().without_embedder().build()?;
//! memory.add_with_vector(NewMemory::new("likes tea").user("u1"), vec![1.0, 0.0, 0.0])?;
//! memory.add_with_vector(NewMemory::new("likes coffee").user("u1"), vec![0.0, 1.0, 0.0])?;
//! let hits = memory.search_with_vector(
//!     "",
//!     &[0.9, 0.1, 0.0],
//!     &SearchOptions::new().mode(SearchMode::Vector).limit(1),
//! )?;
//! assert_eq!(hits[0].memory.content, "likes tea");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod embed;
mod error;
pub mod filter;
pub mod graph;
mod http;
mod index;
pub mod llm;
mod memory;
#[cfg(feature = "plugins")]
pub mod plugin;
pub mod search;
mod store;
mod text;
mod types;
pub mod wire;

pub use embed::{Embedder, HashingEmbedder, LocalEmbedder};
pub use error::{Error, ErrorCode, Result};
pub use filter::Filter;
pub use index::{Quantization, VectorIndexOptions};
pub use llm::{Llm, LlmConfig};
pub use memory::{
    approx_tokens, AddMessages, Chat, ChatContext, ChatReply, Citation, CopyReport, CountOptions,
    ErrorReport, Graph, HistoryRetention, ListOptions, ListPage, Memory, MemoryBuilder,
    MemoryEvent, MemoryEventKind, MemoryUsed, Message, Pruned, Recalled, Remember, RememberStatus,
    Remembered, Supersede, Superseded, Undone,
};
pub use search::{
    EngineScore, Explanation, FusionMethod, FusionWeights, SearchHit, SearchMode, SearchOptions,
};
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresOptions;
pub use store::{is_postgres_location, SCHEMA_VERSION};
pub use types::{
    format_time, parse_time, AddOutcome, HistoryEntry, HistoryEvent, ListOrder, MemoryKind,
    MemoryRecord, MemoryUpdate, Metadata, NewMemory, Scope, MAX_CONTENT_BYTES, MAX_SCOPE_ID_BYTES,
    RESERVED_METADATA_KEYS,
};

/// The README's Rust example, compiled and run as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
