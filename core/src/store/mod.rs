//! Storage backends behind one [`Store`] trait: SQLite (the default and the reference: one
//! file, a usearch HNSW index beside it) and, with the `postgres` feature, PostgreSQL with
//! pgvector for deployments that outgrow one machine.
//!
//! The memory logic (validation, the duplicate rule, history, embedding, fusion, inference)
//! lives in `memory/` above the trait, so both backends keep the same rules. A backend
//! owns its indexes: it keeps them in step with its data inside [`StoreTx`] and answers the
//! engines' primitives (nearest vectors, BM25 candidates, vocabulary for typos).

pub(crate) mod conninfo;
mod history;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::graph::{Direction, Entity, EntityEvent, Relation};
use crate::index::VectorIndexOptions;
use crate::types::{HistoryEntry, ListOrder, MemoryRecord, Scope};

pub(crate) use history::HistoryRow;
pub use sqlite::schema::SCHEMA_VERSION;

/// How to open a store (see [`open`]).
#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    /// HNSW parameters.
    pub index: VectorIndexOptions,
    /// Whether a SQLite store saves its vector index beside the file on close.
    pub persist_index: bool,
    /// Settings of the PostgreSQL backend.
    #[cfg(feature = "postgres")]
    pub postgres: postgres::PostgresOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            index: VectorIndexOptions::default(),
            persist_index: true,
            #[cfg(feature = "postgres")]
            postgres: postgres::PostgresOptions::default(),
        }
    }
}

/// Opens the backend `location` names: a PostgreSQL database (a `postgres://` URL or a libpq
/// connection string, see [`is_postgres_location`]), a SQLite file, or (`None`) a SQLite
/// store in memory.
pub(crate) fn open(location: Option<&Path>, options: &StoreOptions) -> Result<Box<dyn Store>> {
    let url = location
        .and_then(Path::to_str)
        .filter(|p| is_postgres_location(p));
    match url {
        #[cfg(feature = "postgres")]
        Some(url) => {
            options.postgres.validate()?;
            Ok(Box::new(postgres::PgStore::open(
                url,
                &options.postgres,
                options.index,
            )?))
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => Err(Error::new(
            crate::error::ErrorCode::Unsupported,
            "a postgres:// store (or a PostgreSQL connection string) needs agent_mem built \
             with the `postgres` feature",
        )),
        None => Ok(Box::new(sqlite::SqliteStore::open(
            location,
            options.index,
            options.persist_index,
        )?)),
    }
}

/// Which memories a call reads: a filter (the scope already ANDed in) and whether expired
/// memories count, judged at `now`; with `as_of`, the versions that were current at that
/// moment (transaction time) instead of the current ones (`now` is then `as_of`).
/// Superseded memories (see `Memory::supersede`) count only with `include_superseded`.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub filter: Filter,
    pub include_expired: bool,
    pub now: DateTime<Utc>,
    pub as_of: Option<DateTime<Utc>>,
    pub include_superseded: bool,
}

impl Selection {
    /// True when the selection admits every current memory (no scope, no filter, no past
    /// moment).
    pub(crate) fn is_unfiltered(&self) -> bool {
        self.filter.is_all() && self.as_of.is_none()
    }

    /// Places the selection in time: the store as of `as_of` (transaction time: the
    /// versions current then, expiry judged then), only memories whose valid time holds at
    /// `valid_at`, and superseded memories too when `include_superseded`, or when a valid
    /// time is asked for (a superseded fact's own valid interval then says whether it held).
    pub(crate) fn in_time(
        mut self,
        as_of: Option<DateTime<Utc>>,
        valid_at: Option<DateTime<Utc>>,
        include_superseded: bool,
    ) -> Selection {
        if let Some(at) = as_of {
            self.now = at;
            self.as_of = Some(at);
        }
        if let Some(t) = valid_at {
            self.filter = self.filter.and(Filter::valid_at(t));
        }
        self.include_superseded = include_superseded || valid_at.is_some();
        self
    }

    /// True when the selection reads a moment still to come, of which nothing is known.
    pub(crate) fn is_after_now(&self) -> bool {
        self.as_of.is_some_and(|at| at > Utc::now())
    }
}

/// One page of a listing, in storage terms.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    pub order: ListOrder,
    /// Rows to return (the caller asks one more than it shows, to know if there is more).
    pub limit: usize,
    pub offset: usize,
    /// Continue after this `(key, time)` position of the order (a cursor).
    pub after: Option<(i64, String)>,
    /// Also count every memory the selection admits (cursor, offset and limit aside), in
    /// the page's read snapshot.
    pub with_total: bool,
}

/// One page of a listing, in storage terms: its rows and, when asked for, the number of
/// memories the selection admits, both from one read snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredPage {
    pub rows: Vec<(i64, MemoryRecord)>,
    pub total: Option<usize>,
}

impl PageRequest {
    /// The SQL of the order, the same in both backends' schemas: the time column,
    /// the comparison that continues after a cursor, and the direction.
    pub(crate) fn order_sql(&self) -> (&'static str, &'static str, &'static str) {
        let column = if self.order.by_update() {
            "updated_at"
        } else {
            "created_at"
        };
        if self.order.descending() {
            (column, "<", "DESC")
        } else {
            (column, ">", "ASC")
        }
    }
}

/// What a store records about itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreInfo {
    /// The embedding model of the vectors it holds, once one was written.
    pub embedding_model: Option<String>,
    /// The vector dimension, once the first vector was written.
    pub dimensions: Option<usize>,
}

/// The result of inserting a memory.
pub(crate) enum Inserted {
    /// Stored.
    New,
    /// A concurrent writer stored the same content in the same scope first: this is its id.
    /// (The SQLite backend never answers this: its writer is serialised.)
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Twin(String),
}

/// A storage backend. Every method is one read snapshot or one write transaction.
pub(crate) trait Store: StoreExport + Send + Sync {
    /// Where the store lives, for messages: a file path or a URL without its password.
    fn location(&self) -> String;
    /// The store file, for a file-backed store.
    fn path(&self) -> Option<&Path>;
    /// The store's recorded model, dimension and id.
    fn info(&self) -> Result<StoreInfo>;

    /// The memory with this id (expired or not).
    fn get(&self, id: &str) -> Result<Option<MemoryRecord>>;
    /// The version of memory `id` that was current at `at` (expired or not), if it existed
    /// then.
    fn get_as_of(&self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>>;
    /// Every kept version of memory `id`, oldest first.
    fn versions(&self, id: &str) -> Result<Vec<MemoryRecord>>;
    /// For each hash, the memory in exactly this scope with that content hash, if any.
    fn find_duplicates(
        &self,
        scope: &Scope,
        hashes: &[String],
    ) -> Result<Vec<Option<MemoryRecord>>>;
    /// The memories with these keys (missing keys are left out). A negative key names a
    /// past version (see [`Selection::as_of`]): search hits may be either.
    fn records(&self, keys: &[i64]) -> Result<HashMap<i64, MemoryRecord>>;
    /// A page of the selection in the given order, ties broken by key (and its total, when
    /// the page asks for it, from the same snapshot).
    fn list(&self, selection: &Selection, page: &PageRequest) -> Result<StoredPage>;
    /// How many memories the selection admits.
    fn count(&self, selection: &Selection) -> Result<usize>;
    /// The history rows of a memory id, oldest first.
    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>>;
    /// Cached embeddings of `model` for these content hashes.
    fn cached_embeddings(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>>;

    /// The `count` nearest memories to `query` among those the selection admits, as
    /// `(key, cosine similarity)`, best first. Must be right for selective filters too.
    fn nearest(
        &self,
        query: &[f32],
        count: usize,
        selection: &Selection,
    ) -> Result<Vec<(i64, f32)>>;
    /// Cosine similarity of `query` to the stored vectors of these keys (negative keys:
    /// past versions; one stored without a vector is left out).
    fn similarities(&self, query: &[f32], keys: &[i64]) -> Result<HashMap<i64, f32>>;
    /// Calls `f` with this store's text index over one read snapshot of the memories the
    /// selection admits (the text engines run over it). A backend may call `f` again when
    /// the database asks for a retry.
    fn read_text(
        &self,
        selection: &Selection,
        f: &mut dyn FnMut(&mut dyn TextIndex) -> Result<()>,
    ) -> Result<()>;

    /// Runs `f` in one write transaction: all of it or nothing. A backend may run `f` again
    /// when the database asks for a retry (a deadlock or serialisation failure between
    /// writers), so `f` must not consume what it captures.
    fn write_tx(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()>;
    /// Runs `f` over the graph in one read snapshot.
    fn read_graph(&self, f: &mut dyn FnMut(&mut dyn GraphRead) -> Result<()>) -> Result<()>;
    /// Deletes every memory, history row and cached embedding; keeps the recorded model
    /// and dimension.
    fn reset(&self) -> Result<()>;
    /// Removes past versions that ended before `ended_before`, and those beyond the latest
    /// `keep_last` past versions of their memory, in one transaction; how many.
    fn prune_versions(
        &self,
        ended_before: Option<DateTime<Utc>>,
        keep_last: Option<usize>,
    ) -> Result<usize>;
    /// Brings derived state (an in-memory index) up to date with other writers.
    fn refresh(&self) -> Result<()>;
    /// Saves derived state (a vector index file); called on close.
    fn flush(&self) -> Result<()>;
    /// Number of vectors the vector index holds (diagnostics and tests).
    fn indexed_vectors(&self) -> Result<usize>;
}

/// The stored graph (entities, the names they answer to, relations and the memories those
/// came from), the same in a read snapshot and in a write transaction. Entities and
/// relations travel with their store keys; resolution, time and walks are built above.
pub(crate) trait GraphRead {
    /// The entity with this id.
    fn entity(&mut self, id: &str) -> Result<Option<(i64, Entity)>>;
    /// The keys of the entities of exactly this scope answering to any of these folded
    /// names, each once.
    fn entity_keys_named(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<i64>>;
    /// The entities with these keys, by key.
    fn entities_by_key(&mut self, keys: &[i64]) -> Result<HashMap<i64, Entity>>;
    /// The entity of exactly this scope answering to this folded name.
    fn entity_named(&mut self, scope: &Scope, folded: &str) -> Result<Option<(i64, Entity)>>;
    /// Entities of exactly this scope with a folded name containing `folded` (every one
    /// for an empty string), of this type if given, by name, at most `limit`.
    fn entities_matching(
        &mut self,
        scope: &Scope,
        folded: &str,
        entity_type: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>>;
    /// The relations touching these entities (as subject, object or either), with the keys
    /// of their subject and object (none for a literal).
    fn relations_touching(
        &mut self,
        keys: &[i64],
        direction: Direction,
    ) -> Result<Vec<StoredRelation>>;
    /// The relations touching these entities (as subject, object or either) as steps, by
    /// key: what a walk reads of each relation it passes, all of it in the relations'
    /// indexes (it reads the rows of the few it answers with, see
    /// [`GraphRead::relation_rows`]).
    fn steps_touching(&mut self, keys: &[i64], direction: Direction) -> Result<Vec<Step>>;
    /// The relations with these keys as stored, without their ends' ids and names or their
    /// sources, by key.
    fn relation_rows(&mut self, keys: &[i64]) -> Result<HashMap<i64, RelationRow>>;
    /// The source memories of these relations, by relation, each list by memory id.
    fn sources_of(&mut self, relation_keys: &[i64]) -> Result<HashMap<i64, Vec<String>>>;
    /// The relations touching these entities (either end), lightly: ends and valid time
    /// only (what search's graph leg needs), in no particular order.
    fn edges_touching(&mut self, keys: &[i64]) -> Result<Vec<Edge>>;
    /// True when the store holds no entity at all.
    fn is_empty(&mut self) -> Result<bool>;
    /// The relations that came from the stored memories with these keys, lightly, each
    /// with the key of the memory: `(memory key, relation)`, in no particular order.
    fn sourced_edges(&mut self, memory_keys: &[i64]) -> Result<Vec<(i64, Edge)>>;
    /// The relations of exactly this scope, oldest first, optionally only one predicate's
    /// or one source memory's.
    fn relations_in(
        &mut self,
        scope: &Scope,
        predicate: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<StoredRelation>>;
    /// The folded names the entities of exactly this scope answer to that look like `shape`
    /// (first letter, word count, length range), with their entity's key, at most `limit`.
    fn names_shaped(
        &mut self,
        scope: &Scope,
        shape: &NameShape,
        limit: usize,
    ) -> Result<Vec<(String, i64)>>;
    /// Which of these folded names an entity of exactly this scope answers to.
    fn known_names(&mut self, scope: &Scope, folded: &[String]) -> Result<Vec<String>>;
    /// The name embeddings of the entities of exactly this scope and type that have one,
    /// newest first, at most `limit`.
    fn entity_embeddings(
        &mut self,
        scope: &Scope,
        entity_type: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<f32>)>>;
    /// The corrections of entity `id`, oldest first.
    fn entity_history(&mut self, id: &str) -> Result<Vec<EntityEvent>>;
    /// The key of the relation with this id.
    fn relation_key(&mut self, id: &str) -> Result<Option<i64>>;
    /// The relations memory `memory_id` supported when it was deleted, as they were.
    fn forgotten(&mut self, memory_id: &str) -> Result<Vec<ForgottenRelation>>;
    /// The relations deleted memories supported, kept for deletions after `at`, with the
    /// deleted memory's id, oldest deletion first.
    fn forgotten_since(&mut self, at: DateTime<Utc>) -> Result<Vec<(String, ForgottenRelation)>>;
    /// When each of these relations (by id) was added, those that still exist.
    fn relations_added(&mut self, ids: &[String]) -> Result<HashMap<String, DateTime<Utc>>>;
    /// Up to `limit` entities with a key above `after`, by key, each with every name it
    /// answers to as stored (copying a store).
    fn export_entities(&mut self, after: i64, limit: usize) -> Result<Vec<ExportedEntity>>;
    /// Up to `limit` relations with a key above `after`, by key (copying a store).
    fn export_relations(&mut self, after: i64, limit: usize) -> Result<Vec<StoredRelation>>;
    /// Up to `limit` rows of the entity history with a key above `after`, by key, with
    /// their keys (copying a store).
    fn export_entity_history(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, EntityEvent)>>;
    /// Up to `limit` of the relations kept for deleted memories with a key above `after`,
    /// by key (copying a store).
    fn export_forgotten(&mut self, after: i64, limit: usize) -> Result<Vec<ForgottenSource>>;
}

/// An entity history row as both backends keep it: the event's name and its detail as
/// JSON text.
pub(crate) fn entity_event(
    entity_id: String,
    event: String,
    detail: &str,
    created_at: DateTime<Utc>,
) -> Result<EntityEvent> {
    Ok(EntityEvent {
        entity_id,
        event: serde_json::from_value(serde_json::Value::String(event))
            .map_err(|e| corrupted("entity event", e))?,
        detail: serde_json::from_str(detail).map_err(|e| corrupted("detail", e))?,
        created_at,
    })
}

/// What names a typo'd run of words could be: same first letter, same number of words, a
/// length (in characters) within a range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NameShape {
    pub(crate) first: char,
    pub(crate) words: usize,
    pub(crate) min_len: usize,
    pub(crate) max_len: usize,
}

impl NameShape {
    /// The names starting with the shape's letter, as a half-open range `[from, to)` in
    /// byte-wise (UTF-8, code point) order, which is how both backends sort names; none for
    /// the last code point.
    pub(crate) fn range(&self) -> Option<(String, String)> {
        let next = (u32::from(self.first) + 1..=u32::from(char::MAX)).find_map(char::from_u32)?;
        Some((self.first.to_string(), next.to_string()))
    }
}

/// A relation a deleted memory supported, as it was when the memory went (what both
/// backends keep, as JSON, for an undo of the delete).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub(crate) struct ForgottenRelation {
    pub(crate) id: String,
    pub(crate) subject: String,
    pub(crate) predicate: String,
    pub(crate) object: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) valid_from: Option<String>,
    pub(crate) valid_to: Option<String>,
    pub(crate) closed_by: Option<String>,
    pub(crate) confidence: f64,
    pub(crate) created_at: String,
}

/// A relation kept for deleted memory `memory_id` (see [`GraphRead::forgotten`]), as copied
/// between stores.
#[derive(Debug, Clone)]
pub(crate) struct ForgottenSource {
    pub(crate) key: i64,
    pub(crate) memory_id: String,
    pub(crate) relation: ForgottenRelation,
    pub(crate) forgotten_at: String,
}

/// An entity as copied between stores: its key in the source, the entity, and every name
/// it answers to as stored, `(name, folded)`, its own name's included. The folded forms are
/// copied, not folded again, so that the copy resolves names exactly as the source did.
#[derive(Debug, Clone)]
pub(crate) struct ExportedEntity {
    pub(crate) key: i64,
    pub(crate) entity: Entity,
    pub(crate) names: Vec<(String, String)>,
    /// The embedding of its name, if it has one.
    pub(crate) embedding: Option<Vec<f32>>,
}

/// A relation reduced to what search's graph leg needs: its ends' keys and its valid time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    pub(crate) subject: i64,
    pub(crate) object: Option<i64>,
    pub(crate) valid_from: Option<DateTime<Utc>>,
    pub(crate) valid_to: Option<DateTime<Utc>>,
}

/// A relation reduced to what a walk decides on: its key, its ends' keys (no object for a
/// literal), predicate, valid time and scope (see [`GraphRead::steps_touching`]).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) key: i64,
    pub(crate) subject: i64,
    pub(crate) object: Option<i64>,
    pub(crate) predicate: String,
    pub(crate) valid_from: Option<DateTime<Utc>>,
    pub(crate) valid_to: Option<DateTime<Utc>>,
    pub(crate) scope: Scope,
}

/// A relation as its row holds it: keys for its ends, no names, no sources (see
/// [`GraphRead::relation_rows`]).
#[derive(Debug, Clone)]
pub(crate) struct RelationRow {
    pub(crate) key: i64,
    pub(crate) subject: i64,
    pub(crate) object: Option<i64>,
    pub(crate) id: String,
    pub(crate) predicate: String,
    /// The literal object, when there is no object entity.
    pub(crate) value: Option<String>,
    pub(crate) valid_from: Option<DateTime<Utc>>,
    pub(crate) valid_to: Option<DateTime<Utc>>,
    pub(crate) closed_by: Option<String>,
    pub(crate) confidence: f32,
    pub(crate) scope: Scope,
    pub(crate) created_at: DateTime<Utc>,
}

impl RelationRow {
    /// The relation, given its ends' entities (the object's when it is an entity) and its
    /// sources: what [`GraphRead::relations_touching`] reads for the same row.
    pub(crate) fn into_relation(
        self,
        subject: &Entity,
        object: Option<&Entity>,
        sources: Vec<String>,
    ) -> Relation {
        Relation {
            id: self.id,
            subject: subject.id.clone(),
            subject_name: subject.name.clone(),
            predicate: self.predicate,
            object: object.map(|o| o.id.clone()),
            object_name: match (object, self.value.as_ref()) {
                (Some(o), _) => o.name.clone(),
                (None, Some(v)) => v.clone(),
                (None, None) => String::new(),
            },
            literal: self.value.is_some(),
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            closed_by: self.closed_by,
            confidence: self.confidence,
            sources,
            scope: self.scope,
            created_at: self.created_at,
        }
    }
}

/// A relation as stored: its key, its subject's key and its object entity's key.
#[derive(Debug, Clone)]
pub(crate) struct StoredRelation {
    pub(crate) key: i64,
    pub(crate) subject: i64,
    pub(crate) object: Option<i64>,
    pub(crate) relation: Relation,
}

/// The graph's writes, inside a write transaction.
pub(crate) trait GraphWrite: GraphRead {
    /// Stores a new entity (its name not yet among its names: [`GraphWrite::add_name`]).
    fn insert_entity(&mut self, entity: &Entity) -> Result<i64>;
    /// Lets entity `key` (of `scope`) answer to `name`.
    fn add_name(&mut self, key: i64, scope: &Scope, name: &str, folded: &str) -> Result<()>;
    /// Sets an entity's summary and update time.
    fn set_summary(&mut self, key: i64, summary: &str, at: DateTime<Utc>) -> Result<()>;
    /// Stores a new relation (its sources with [`GraphWrite::add_source`]).
    fn insert_relation(
        &mut self,
        relation: &Relation,
        subject: i64,
        object: Option<i64>,
    ) -> Result<i64>;
    /// Records that relation `key` came from memory `memory_id` (again: nothing changes).
    fn add_source(&mut self, key: i64, memory_id: &str) -> Result<()>;
    /// Ends relation `key` at `valid_to`, replaced by relation `closed_by`.
    fn close_relation(&mut self, key: i64, valid_to: DateTime<Utc>, closed_by: &str) -> Result<()>;
    /// Stores the embedding of entity `key`'s name.
    fn set_embedding(&mut self, key: i64, vector: &[f32]) -> Result<()>;
    /// Moves every name and relation end of entity `absorbed` to entity `kept`, then
    /// removes `absorbed`.
    fn absorb_entity(&mut self, absorbed: i64, kept: i64) -> Result<()>;
    /// Sets entity `key`'s name (already among its names) and update time.
    fn rename_entity(&mut self, key: i64, name: &str, at: DateTime<Utc>) -> Result<()>;
    /// Sets entity `key`'s update time.
    fn touch_entity(&mut self, key: i64, at: DateTime<Utc>) -> Result<()>;
    /// Entity `key` no longer answers to this folded name.
    fn remove_name(&mut self, key: i64, folded: &str) -> Result<()>;
    /// Relation `relation`'s ends that are entity `from` become entity `to`.
    fn move_relation_end(&mut self, relation: i64, from: i64, to: i64) -> Result<()>;
    /// Relation `twin` says what relation `into` says: its sources go to `into`, the
    /// relations it closed name `into` instead, and it is removed.
    fn fold_relation(&mut self, twin: i64, into: i64) -> Result<()>;
    /// Removes relation `key` and its sources.
    fn delete_relation(&mut self, key: i64) -> Result<()>;
    /// Forgets what [`GraphRead::forgotten`] kept for memory `memory_id`.
    fn clear_forgotten(&mut self, memory_id: &str) -> Result<()>;
    /// Keeps a relation for a deleted memory as another store kept it (copying a store).
    fn import_forgotten(&mut self, forgotten: &ForgottenSource) -> Result<()>;
    /// Appends a correction to the entity history.
    fn record_entity_event(&mut self, event: &EntityEvent) -> Result<()>;
}

/// The operations of a write transaction. Each mutation writes its history row and keeps
/// the backend's indexes in step, inside the transaction.
pub(crate) trait StoreTx {
    /// The time of this transaction's changes, the same for all of them: the wall clock
    /// (microseconds), but never earlier than 1 µs after the store's last committed time.
    /// Taken inside the transaction, after the write lock, so that commit times are
    /// monotonic in commit order; call it before locking rows (lock order).
    fn now(&mut self) -> Result<DateTime<Utc>>;
    /// The memory with this id and its key.
    fn get(&mut self, id: &str) -> Result<Option<(i64, MemoryRecord)>>;
    /// The memory in exactly this scope with this content hash.
    fn find_duplicate(&mut self, scope: &Scope, hash: &str) -> Result<Option<(i64, MemoryRecord)>>;
    /// Every memory the selection admits.
    fn select(&mut self, selection: &Selection) -> Result<Vec<(i64, MemoryRecord)>>;
    /// Inserts a new memory with an `ADD` history row by `actor`.
    fn insert(&mut self, record: &MemoryRecord, vector: &[f32], actor: &str) -> Result<Inserted>;
    /// Writes the new state of a memory with an `UPDATE` history row; `vector` is given when
    /// the content changed.
    fn update(
        &mut self,
        key: i64,
        old: &MemoryRecord,
        new: &MemoryRecord,
        vector: Option<&[f32]>,
        actor: &str,
    ) -> Result<()>;
    /// Deletes a memory, keeping its history and a `DELETE` row.
    fn delete(
        &mut self,
        key: i64,
        record: &MemoryRecord,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// The store's vector dimension, if recorded.
    fn dimensions(&mut self) -> Result<Option<usize>>;
    /// Records the vector dimension if none is; returns the store's dimension (another
    /// writer's, if it recorded one first).
    fn record_dimensions(&mut self, dimensions: usize) -> Result<usize>;
    /// Records the embedding model if none is; fails if another model is recorded.
    fn record_embedding_model(&mut self, model: &str) -> Result<()>;
    /// Caches an embedding under (model, content hash).
    fn cache_embedding(&mut self, model: &str, hash: &str, vector: &[f32]) -> Result<()>;
    /// Stores a copied memory as it is (id, times, scope), indexed, without a history row.
    fn import_memory(&mut self, record: &MemoryRecord, vector: &[f32]) -> Result<()>;
    /// Stores a copied history row as it is, after the rows already there.
    fn import_history(&mut self, entry: &HistoryEntry) -> Result<()>;
    /// Stores a copied past version as it is (its interval, its vector if it has one), with
    /// its keyword terms.
    fn import_version(&mut self, record: &MemoryRecord, vector: Option<&[f32]>) -> Result<()>;
    /// Records that the store holds changes made at `at` (copied ones): later transactions
    /// take later times (see [`StoreTx::now`]).
    fn raise_commit_time(&mut self, at: DateTime<Utc>) -> Result<()>;

    /// The history rows written from now on belong to change `change` (its id), or each to
    /// a change of its own (`None`, the default).
    fn set_change(&mut self, change: Option<String>);
    /// The version of memory `id` that was current at `at`, read in this transaction.
    fn get_as_of(&mut self, id: &str, at: DateTime<Utc>) -> Result<Option<MemoryRecord>>;
    /// Every kept version of memory `id`, oldest first, read in this transaction.
    fn versions(&mut self, id: &str) -> Result<Vec<MemoryRecord>>;
    /// The stored vector of version `version` of memory `id` (`None` when that version is
    /// not kept or was rebuilt from history without one).
    fn version_vector(&mut self, id: &str, version: u64) -> Result<Option<Vec<f32>>>;
    /// The history rows of change `change_id`, oldest first (none for an unknown change).
    fn change(&mut self, change_id: &str) -> Result<Vec<HistoryEntry>>;
    /// Records that change `change_id` was undone by change `by`.
    fn mark_undone(&mut self, change_id: &str, by: &str) -> Result<()>;
    /// The graph, to read and write in this transaction.
    fn graph(&mut self) -> Result<&mut dyn GraphWrite>;
}

/// Runs `f` in one write transaction of `store` and returns its value.
pub(crate) fn write<T>(
    store: &dyn Store,
    mut f: impl FnMut(&mut dyn StoreTx) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    store.write_tx(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::internal("a write transaction ended without its result"))
}

/// The meta key of a store's last committed time (see [`StoreTx::now`]).
pub(crate) const COMMIT_TIME_KEY: &str = "last_commit_time";

/// The commit time of a transaction after a store's last committed time `last` (the meta
/// value under [`COMMIT_TIME_KEY`], if any): the wall clock, or `last` + 1 µs when the clock
/// is behind it (a clock set back, or a time taken by a writer that committed first).
pub(crate) fn next_commit_time(last: Option<&str>) -> Result<DateTime<Utc>> {
    use chrono::SubsecRound;
    let wall = Utc::now().trunc_subsecs(6);
    let Some(last) = last.filter(|s| !s.is_empty()) else {
        return Ok(wall);
    };
    let last = crate::types::parse_time(last).map_err(|e| corrupted("commit time", e.message()))?;
    Ok(wall.max(last + chrono::Duration::microseconds(1)))
}

/// The error for a store that records another embedding model than the client's.
pub(crate) fn model_mismatch(stored: &str, configured: &str) -> Error {
    Error::invalid(format!(
        "this store was embedded with {stored:?} but the memory is configured with \
         {configured:?}; mixing models makes search meaningless"
    ))
}

/// The error for a stored value that does not read back (a damaged or foreign row).
pub(crate) fn corrupted(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(
        crate::error::ErrorCode::Corrupted,
        format!("stored {what} is damaged: {detail}"),
    )
}

/// A stored scope id: both backends store an absent id as '' (so that the unique
/// constraint of the duplicate rule treats "no user" as a value).
pub(crate) fn opt_scope(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// True for a `postgres://` or `postgresql://` URL.
pub(crate) fn is_postgres_url(location: &str) -> bool {
    let lower = location.get(..13).unwrap_or(location).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// True when a store location names a PostgreSQL database rather than a SQLite file: a
/// `postgres://` or `postgresql://` URL, or a libpq connection string, which starts with one
/// of libpq's connection keywords and `=` (`host=db.example dbname=memories user=agent`;
/// blanks may surround the `=`). A file whose name starts that way is named with a directory
/// (`./host=x.db`). Whether the rest of the location is valid is checked when it is opened.
pub fn is_postgres_location(location: &str) -> bool {
    is_postgres_url(location) || conninfo::is_conninfo(location)
}

/// The primitives the text engines need of a backend, over one read snapshot and one
/// selection (fixed when the backend builds the value).
pub(crate) trait TextIndex {
    /// Memories passing the selection whose indexed terms hold any (`all == false`) or all
    /// of `terms`, with their content and the backend's own BM25 score (higher is better;
    /// SQLite FTS5's formula: k1 = 1.2, b = 0.75, idf = ln((N − df + 0.5) / (df + 0.5))
    /// floored at 1e-6, N, df and the average length over the whole store), best first, at
    /// most `limit`. The keyword engine scores them again over the selection; the backend's
    /// score only chooses which to return when there are more than `limit`.
    fn term_candidates(
        &mut self,
        terms: &[String],
        all: bool,
        limit: usize,
    ) -> Result<Vec<(i64, String, f32)>>;
    /// Every memory passing the selection, with its content, by key, if there are at most
    /// `max` of them (`None` otherwise).
    fn selection_contents(&mut self, max: usize) -> Result<Option<Vec<(i64, String)>>>;
    /// How many memories pass the selection: the collection that term statistics are
    /// taken over.
    fn document_count(&mut self) -> Result<usize>;
    /// How many memories passing the selection hold `term` among their indexed terms.
    fn document_frequency(&mut self, term: &str) -> Result<usize>;
    /// Memories passing the selection whose lower-cased content contains `needle`, by key.
    fn content_candidates(&mut self, needle: &str) -> Result<Vec<(i64, String)>>;
    /// Vocabulary words (from [`crate::text::fuzzy_vocabulary`] of stored contents) that
    /// may lie within `max_typos` edits of `word`: words sharing its trigrams, and for short
    /// words also those of about its length starting with its first letter. The engine
    /// checks the distance; candidates may be loose.
    fn vocabulary_candidates(&mut self, word: &str, max_typos: usize) -> Result<Vec<String>>;
}

/// One memory as copied between stores: its key in the source, the record and its vector.
pub(crate) type ExportedMemory = (i64, MemoryRecord, Vec<f32>);

/// Copying a whole store (see `Memory::copy_to`): reading in pages, writing as is.
pub(crate) trait StoreExport {
    /// Up to `limit` memories with a key above `after`, by key.
    fn export_memories(&self, after: i64, limit: usize) -> Result<Vec<ExportedMemory>>;
    /// Up to `limit` history rows (of live and deleted memories) with a sequence number
    /// above `after`, oldest first, with their sequence numbers.
    fn export_history(&self, after: i64, limit: usize) -> Result<Vec<(i64, HistoryEntry)>>;
    /// Up to `limit` past versions with a key above `after`, by key, each with its vector
    /// when it has one.
    fn export_versions(&self, after: i64, limit: usize) -> Result<Vec<ExportedVersion>>;
}

/// One past version as copied between stores: its key in the source, the version (its
/// `valid_to_tx` set) and its vector, if kept.
pub(crate) type ExportedVersion = (i64, MemoryRecord, Option<Vec<f32>>);
