//! SQLite storage: the source of truth for memories, history, vectors and the change log.

pub(crate) mod ops;
pub(crate) mod schema;
pub(crate) mod sqlite;

pub use schema::SCHEMA_VERSION;
