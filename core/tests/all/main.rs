//! The integration tests of agent-mem: ONE test binary, one module per concern, so that the
//! heavy dependencies (candle, wasmtime, the PostgreSQL client) are linked once, not once per
//! file. Modules that need a cargo feature are compiled with it only.
//!
//! The multi-process tests (`durability`, `postgres_processes`) run this binary again as their
//! child, selected with `--exact <module>::<child test>`. Tests that change environment
//! variables hold `support::env_lock()`, as do the tests that read them.

mod support;

mod api;
mod changes;
mod chat;
mod conformance;
mod dispatch;
#[cfg(feature = "download")]
mod download;
mod durability;
mod embedding;
mod golden;
mod graph;
mod graph_copy;
mod graph_io;
mod graph_leg;
mod infer;
mod llm_clients;
mod merge_and_total;
#[cfg(feature = "plugins")]
mod plugins;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_changes;
#[cfg(feature = "postgres")]
mod postgres_graph;
#[cfg(feature = "postgres")]
mod postgres_processes;
#[cfg(feature = "postgres")]
mod postgres_undo;
mod search;
mod versions;
