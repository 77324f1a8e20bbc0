//! The PostgreSQL schema, its forward migrations, and what the server offers.
//!
//! Every object is named `agentmem_…`, so a store can live in an application's database:
//! it is created in the first existing schema of the connection's `search_path` (choose one
//! with `?options=-csearch_path%3Dmyschema` in the URL).

use super::pool::{get, Failure, Session, TxMode};
use crate::error::{Error, ErrorCode, Result};

/// The schema version this library writes in PostgreSQL (numbered apart from SQLite's).
pub(super) const SCHEMA_VERSION: i64 = 4;

/// The value of the `format` meta key that marks a schema as holding an agent_mem store
/// (the same mark as a SQLite store's).
const FORMAT_MARK: &str = "agent_mem";

/// Advisory lock classes (the first key of `pg_advisory_lock(int, int)`; the second is the
/// hash of the store's schema name, so stores in other schemas do not wait on each other).
pub(super) const LOCK_MIGRATE: i32 = 0x616d_0001;
/// Recording the vector dimension (see `record_dimensions`).
pub(super) const LOCK_DIMENSIONS: i32 = 0x616d_0002;
/// Creating the extensions, database-wide.
const LOCK_EXTENSIONS: i32 = 0x616d_0003;

/// pgvector's oldest version with HNSW indexes.
const MIN_PGVECTOR: (u32, u32) = (0, 5);

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Each
/// runs in one transaction with its version bump.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agentmem_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

-- Text columns compare byte-wise (COLLATE "C"), as SQLite's: times stored as
-- YYYY-MM-DDTHH:MM:SS.ffffffZ then sort as they follow each other. Absent scope ids are
-- stored as '' so that the UNIQUE constraint (the exact-duplicate rule) treats "no user"
-- as a value. The embedding's dimension is fixed when the first vector is written (an HNSW
-- index needs it); `terms` are the keyword index terms of the content, repeats kept.
CREATE TABLE agentmem_memories (
    key        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text COLLATE "C" NOT NULL,
    content    text COLLATE "C" NOT NULL,
    hash       text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL DEFAULT '',
    agent_id   text COLLATE "C" NOT NULL DEFAULT '',
    run_id     text COLLATE "C" NOT NULL DEFAULT '',
    org_id     text COLLATE "C" NOT NULL DEFAULT '',
    metadata   jsonb NOT NULL DEFAULT '{}',
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    expires_at text COLLATE "C",
    embedding  vector NOT NULL,
    terms      text[] COLLATE "C" NOT NULL,
    CONSTRAINT agentmem_memories_id UNIQUE (id),
    CONSTRAINT agentmem_memories_dedup UNIQUE (user_id, agent_id, run_id, org_id, hash)
);
CREATE INDEX agentmem_memories_agent ON agentmem_memories (agent_id);
CREATE INDEX agentmem_memories_run ON agentmem_memories (run_id);
CREATE INDEX agentmem_memories_org ON agentmem_memories (org_id);
CREATE INDEX agentmem_memories_created ON agentmem_memories (created_at, key);
CREATE INDEX agentmem_memories_updated ON agentmem_memories (updated_at, key);
CREATE INDEX agentmem_memories_expires ON agentmem_memories (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX agentmem_memories_terms ON agentmem_memories USING gin (terms);

CREATE TABLE agentmem_history (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text COLLATE "C" NOT NULL,
    memory_id   text COLLATE "C" NOT NULL,
    event       text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_content text,
    new_content text,
    is_deleted  boolean NOT NULL DEFAULT FALSE,
    actor       text NOT NULL,
    created_at  text COLLATE "C" NOT NULL,
    CONSTRAINT agentmem_history_id UNIQUE (id)
);
CREATE INDEX agentmem_history_memory ON agentmem_history (memory_id, seq);

CREATE TABLE agentmem_embedding_cache (
    model  text COLLATE "C" NOT NULL,
    hash   text COLLATE "C" NOT NULL,
    vector real[] NOT NULL,
    PRIMARY KEY (model, hash)
);

-- BM25 statistics, kept in the transactions that change memories: the number of memories
-- holding each index term, and the store's document count and total length, spread over
-- 16 rows so that concurrent writers rarely wait on the same one (the sum is the total).
CREATE TABLE agentmem_term_stats (
    term text COLLATE "C" PRIMARY KEY,
    df   bigint NOT NULL
);
CREATE TABLE agentmem_text_totals (
    shard  smallint PRIMARY KEY,
    docs   bigint NOT NULL DEFAULT 0,
    length bigint NOT NULL DEFAULT 0
);
INSERT INTO agentmem_text_totals (shard) SELECT generate_series(0, 15);

-- Fuzzy search: the vocabulary with document frequencies, trigram-indexed.
CREATE TABLE agentmem_vocabulary (
    term text COLLATE "C" PRIMARY KEY,
    df   bigint NOT NULL
);
CREATE INDEX agentmem_vocabulary_trgm ON agentmem_vocabulary USING gin (term gin_trgm_ops);
"#,
    r#"
-- Versions (transaction time): a memory's row is its current version; each update or
-- delete first moves the version it replaces here, with the commit time that ended it.
-- A version was current from its updated_at (the commit that wrote it) to valid_to_tx.
-- Valid time (when the fact held in the world) and supersede links are fields of a version;
-- the partial index finds the few superseded memories that reads leave out.
ALTER TABLE agentmem_memories ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE agentmem_memories ADD COLUMN valid_from text COLLATE "C";
ALTER TABLE agentmem_memories ADD COLUMN valid_to text COLLATE "C";
ALTER TABLE agentmem_memories ADD COLUMN superseded_by text COLLATE "C";
CREATE INDEX agentmem_memories_superseded ON agentmem_memories (superseded_by)
    WHERE superseded_by IS NOT NULL;
-- The embedding is NULL for a version rebuilt from the history of an older store without
-- its vector; its type has no fixed dimension (no HNSW index: past versions are scanned).
-- `terms` are the keyword index terms of the content, as in the memories.
CREATE TABLE agentmem_versions (
    key           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text COLLATE "C" NOT NULL,
    version       bigint NOT NULL,
    content       text COLLATE "C" NOT NULL,
    hash          text COLLATE "C" NOT NULL,
    kind          text COLLATE "C" NOT NULL,
    user_id       text COLLATE "C" NOT NULL DEFAULT '',
    agent_id      text COLLATE "C" NOT NULL DEFAULT '',
    run_id        text COLLATE "C" NOT NULL DEFAULT '',
    org_id        text COLLATE "C" NOT NULL DEFAULT '',
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    text COLLATE "C" NOT NULL,
    updated_at    text COLLATE "C" NOT NULL,
    expires_at    text COLLATE "C",
    valid_from    text COLLATE "C",
    valid_to      text COLLATE "C",
    superseded_by text COLLATE "C",
    valid_to_tx   text COLLATE "C" NOT NULL,
    embedding     vector,
    terms         text[] COLLATE "C" NOT NULL,
    CONSTRAINT agentmem_versions_id_version UNIQUE (id, version)
);
CREATE INDEX agentmem_versions_scope ON agentmem_versions (user_id, agent_id, run_id, org_id);
CREATE INDEX agentmem_versions_ended ON agentmem_versions (valid_to_tx);
CREATE INDEX agentmem_versions_terms ON agentmem_versions USING gin (terms);
-- BM25 statistics of the past versions, kept apart from the memories' (SQLite keeps the
-- past in a keyword index of its own, with its own statistics): the number of versions
-- holding each term, and their count and total length, in the rows the writers already
-- touch.
ALTER TABLE agentmem_term_stats ADD COLUMN past_df bigint NOT NULL DEFAULT 0;
ALTER TABLE agentmem_text_totals ADD COLUMN past_docs bigint NOT NULL DEFAULT 0;
ALTER TABLE agentmem_text_totals ADD COLUMN past_length bigint NOT NULL DEFAULT 0;
-- Undo: the change a history row belongs to (NULL: the row's own id; a supersede's two
-- rows share one), and the change that undid it.
ALTER TABLE agentmem_history ADD COLUMN change_id text COLLATE "C";
ALTER TABLE agentmem_history ADD COLUMN undone_by text COLLATE "C";
CREATE INDEX agentmem_history_change ON agentmem_history (change_id)
    WHERE change_id IS NOT NULL;
"#,
    r#"
-- The knowledge graph (SQLite's schema version 4). Entities belong to one scope ('' for an
-- absent id, as memories); `folded` is the name folded as resolution compares names.
CREATE TABLE agentmem_entities (
    key        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    folded     text COLLATE "C" NOT NULL,
    type       text COLLATE "C" NOT NULL,
    summary    text COLLATE "C",
    user_id    text COLLATE "C" NOT NULL DEFAULT '',
    agent_id   text COLLATE "C" NOT NULL DEFAULT '',
    run_id     text COLLATE "C" NOT NULL DEFAULT '',
    org_id     text COLLATE "C" NOT NULL DEFAULT '',
    created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL,
    CONSTRAINT agentmem_entities_id UNIQUE (id)
);
-- Every name an entity answers to (its name and aliases), folded: one entity per name in
-- a scope, which is what resolution looks up.
CREATE TABLE agentmem_entity_names (
    user_id    text COLLATE "C" NOT NULL,
    agent_id   text COLLATE "C" NOT NULL,
    run_id     text COLLATE "C" NOT NULL,
    org_id     text COLLATE "C" NOT NULL,
    folded     text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    entity_key bigint NOT NULL REFERENCES agentmem_entities (key) ON DELETE CASCADE,
    PRIMARY KEY (user_id, agent_id, run_id, org_id, folded)
);
CREATE INDEX agentmem_entity_names_entity ON agentmem_entity_names (entity_key);
-- subject -predicate-> object (an entity) or value (a literal), in the subject's scope.
CREATE TABLE agentmem_relations (
    key         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text COLLATE "C" NOT NULL,
    subject_key bigint NOT NULL REFERENCES agentmem_entities (key) ON DELETE CASCADE,
    predicate   text COLLATE "C" NOT NULL,
    object_key  bigint REFERENCES agentmem_entities (key) ON DELETE CASCADE,
    value       text COLLATE "C",
    valid_from  text COLLATE "C",
    valid_to    text COLLATE "C",
    closed_by   text COLLATE "C",
    confidence  double precision NOT NULL,
    user_id     text COLLATE "C" NOT NULL DEFAULT '',
    agent_id    text COLLATE "C" NOT NULL DEFAULT '',
    run_id      text COLLATE "C" NOT NULL DEFAULT '',
    org_id      text COLLATE "C" NOT NULL DEFAULT '',
    created_at  text COLLATE "C" NOT NULL,
    CONSTRAINT agentmem_relations_id UNIQUE (id),
    CONSTRAINT agentmem_relations_object CHECK ((object_key IS NULL) <> (value IS NULL))
);
CREATE INDEX agentmem_relations_subject ON agentmem_relations (subject_key, predicate);
CREATE INDEX agentmem_relations_object ON agentmem_relations (object_key, predicate)
    WHERE object_key IS NOT NULL;
CREATE INDEX agentmem_relations_scope
    ON agentmem_relations (user_id, agent_id, run_id, org_id, predicate);
-- The memories a relation came from: deleting the last of them removes the relation.
CREATE TABLE agentmem_relation_sources (
    relation_key bigint NOT NULL REFERENCES agentmem_relations (key) ON DELETE CASCADE,
    memory_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (relation_key, memory_id)
);
CREATE INDEX agentmem_relation_sources_memory ON agentmem_relation_sources (memory_id);
"#,
    r#"
-- The embedding of an entity's name, which resolution compares when no name matches; none
-- when the store had no embedder. A table of its own: walks read entity rows, which stay
-- small.
CREATE TABLE agentmem_entity_embeddings (
    entity_key bigint PRIMARY KEY REFERENCES agentmem_entities (key) ON DELETE CASCADE,
    embedding  real[] NOT NULL
);
-- The entities of a scope and type (the candidates resolution by meaning compares).
CREATE INDEX agentmem_entities_scope_type
    ON agentmem_entities (user_id, agent_id, run_id, org_id, type);
-- Whether an entity answers to names besides its own: reads look for its aliases only then.
ALTER TABLE agentmem_entities ADD COLUMN aliased boolean NOT NULL DEFAULT false;
UPDATE agentmem_entities e SET aliased = EXISTS (SELECT 1 FROM agentmem_entity_names n
    WHERE n.entity_key = e.key AND n.folded <> e.folded);
-- Corrections of entities (merge, rename, split), newest last: what was done and to what.
CREATE TABLE agentmem_entity_history (
    key        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity_id  text COLLATE "C" NOT NULL,
    event      text COLLATE "C" NOT NULL,
    detail     jsonb NOT NULL,
    created_at text COLLATE "C" NOT NULL
);
CREATE INDEX agentmem_entity_history_entity ON agentmem_entity_history (entity_id, key);
-- The relations a deleted memory supported, as they were, so that undoing the delete brings
-- them back.
CREATE TABLE agentmem_forgotten_sources (
    key          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id    text COLLATE "C" NOT NULL,
    relation_id  text COLLATE "C" NOT NULL,
    relation     jsonb NOT NULL,
    forgotten_at text COLLATE "C" NOT NULL
);
CREATE INDEX agentmem_forgotten_sources_memory ON agentmem_forgotten_sources (memory_id);
-- A walk reads each relation it passes from the index it finds it by alone (index-only
-- scans): its ends, predicate, valid time and scope.
DROP INDEX agentmem_relations_subject;
CREATE INDEX agentmem_relations_subject ON agentmem_relations (subject_key, predicate)
    INCLUDE (key, object_key, valid_from, valid_to, user_id, agent_id, run_id, org_id);
DROP INDEX agentmem_relations_object;
CREATE INDEX agentmem_relations_object ON agentmem_relations (object_key, predicate)
    INCLUDE (key, subject_key, valid_from, valid_to, user_id, agent_id, run_id, org_id)
    WHERE object_key IS NOT NULL;
"#,
];

/// The schema version whose migration also rebuilds past versions from history (see
/// [`super::versions::replay_history`]).
const VERSIONS_SCHEMA: usize = 2;

/// What the server offers that queries depend on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Capabilities {
    /// The `COLLATE` clause under which `lower()` lower-cases all of Unicode like Rust's
    /// `to_lowercase` (PostgreSQL 18's `pg_unicode_fast`: full case mapping, final sigma),
    /// or as close as the server allows (17's `pg_c_utf8`: simple case mapping; older
    /// servers: the database's default collation).
    pub lower: &'static str,
    /// pgvector ≥ 0.8: `hnsw.iterative_scan` keeps a filtered HNSW walk going until it has
    /// enough rows.
    pub iterative_scan: bool,
}

/// The state of the store's schema.
struct State {
    /// `None`: no agent_mem table at all (a fresh schema).
    version: Option<i64>,
    extensions: Extensions,
}

struct Extensions {
    vector: Option<String>,
    trgm: bool,
}

fn inspect(s: &mut Session<'_>, label: &str) -> Result<State> {
    let row = s.query_one(
        "SELECT current_schema(),
                (SELECT count(*) FROM pg_tables
                  WHERE schemaname = current_schema() AND tablename LIKE 'agentmem\\_%'),
                EXISTS (SELECT 1 FROM pg_tables
                  WHERE schemaname = current_schema() AND tablename = 'agentmem_meta'),
                (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')",
        &[],
    )?;
    // (The pool refuses connections whose search_path names no existing schema.)
    let schema: Option<String> = get(&row, 0)?;
    let tables: i64 = get(&row, 1)?;
    let has_meta: bool = get(&row, 2)?;
    let extensions = Extensions {
        vector: get(&row, 3)?,
        trgm: get(&row, 4)?,
    };
    if tables == 0 {
        return Ok(State {
            version: None,
            extensions,
        });
    }
    let not_ours = || {
        Error::new(
            ErrorCode::Corrupted,
            format!(
                "{label}: schema {:?} holds agentmem_* tables but is not an agent_mem store \
                 (no format mark)",
                schema.as_deref().unwrap_or_default()
            ),
        )
    };
    if !has_meta {
        return Err(not_ours());
    }
    let rows = s.query(
        "SELECT key, value FROM agentmem_meta WHERE key IN ('format', 'schema_version')",
        &[],
    )?;
    let mut format = None;
    let mut version = None;
    for row in &rows {
        let key: String = get(row, 0)?;
        let value: String = get(row, 1)?;
        match key.as_str() {
            "format" => format = Some(value),
            _ => version = Some(value),
        }
    }
    if format.as_deref() != Some(FORMAT_MARK) {
        return Err(not_ours());
    }
    let version = version.unwrap_or_default();
    let version = version.parse::<i64>().map_err(|_| {
        Error::new(
            ErrorCode::Corrupted,
            format!("{label}: schema_version {version:?} is not a number"),
        )
    })?;
    Ok(State {
        version: Some(version),
        extensions,
    })
}

fn check_version(version: i64, label: &str) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::Unsupported,
            format!(
                "{label} has PostgreSQL schema version {version}; this agent_mem ({}) knows up \
                 to {SCHEMA_VERSION}: upgrade agent_mem",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    Ok(())
}

/// `(major, minor)` of a version such as `0.8.1`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn check_pgvector(version: &str, label: &str) -> Result<()> {
    if major_minor(version) < MIN_PGVECTOR {
        return Err(Error::new(
            ErrorCode::Unsupported,
            format!(
                "{label}: pgvector {version} is too old; agent_mem needs pgvector 0.5 or newer \
                 (HNSW indexes): ALTER EXTENSION vector UPDATE"
            ),
        ));
    }
    Ok(())
}

/// Creates the extensions if missing; a clear error when the server cannot.
fn create_extensions(s: &mut Session<'_>, label: &str) -> Result<()> {
    let run = |s: &mut Session<'_>| -> Result<()> {
        s.begin(TxMode::Write)?;
        // Database-wide: two stores in two schemas may be created at once, and CREATE
        // EXTENSION IF NOT EXISTS is not safe against a concurrent twin.
        s.query(
            "SELECT pg_advisory_xact_lock($1::int4, 0)",
            &[&LOCK_EXTENSIONS],
        )?;
        s.batch(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE EXTENSION IF NOT EXISTS pg_trgm;",
        )?;
        s.commit()
    };
    run(s).map_err(|e| {
        s.rollback();
        // Only the server's refusal is about the extensions; a lost connection is not.
        if s.failure() != Some(Failure::Other) {
            return e;
        }
        Error::new(
            ErrorCode::Unsupported,
            format!(
                "{label}: agent_mem needs the PostgreSQL extensions pgvector (0.5 or newer) and \
                 pg_trgm, which could not be enabled in this database. Install pgvector on \
                 the server and have a superuser (or the database owner, for trusted \
                 extensions) run CREATE EXTENSION vector; CREATE EXTENSION pg_trgm; in it. \
                 The server said: {}",
                e.message()
            ),
        )
        .with_source(e)
    })
}

/// Checks that the schema is an agent_mem store (or holds none yet), makes sure the
/// extensions are there, and migrates to [`SCHEMA_VERSION`] under an advisory lock (several
/// processes may open a fresh store at once). Nothing is written to a schema that holds
/// agentmem_* tables without the format mark.
pub(super) fn prepare(s: &mut Session<'_>, label: &str) -> Result<Capabilities> {
    let state = inspect(s, label)?;
    if let Some(v) = state.version {
        check_version(v, label)?;
    }
    let ready = state.version == Some(SCHEMA_VERSION)
        && state.extensions.vector.is_some()
        && state.extensions.trgm;
    if !ready {
        s.query(
            "SELECT pg_advisory_lock($1::int4, hashtext(current_schema()))",
            &[&LOCK_MIGRATE],
        )?;
        let migrated = migrate(s, label);
        // Ending the session would release the lock too; a connection that cannot unlock
        // is broken and gets dropped by the caller.
        let unlocked = s.query(
            "SELECT pg_advisory_unlock($1::int4, hashtext(current_schema()))",
            &[&LOCK_MIGRATE],
        );
        migrated?;
        unlocked?;
    }
    capabilities(s, label)
}

fn migrate(s: &mut Session<'_>, label: &str) -> Result<()> {
    // Another process may have done it while we waited for the lock.
    let mut state = inspect(s, label)?;
    if state.extensions.vector.is_none() || !state.extensions.trgm {
        create_extensions(s, label)?;
        state = inspect(s, label)?;
    }
    if let Some(v) = &state.extensions.vector {
        check_pgvector(v, label)?;
    }
    let start = state.version.unwrap_or(0);
    check_version(start, label)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start as usize) {
        let step = |s: &mut Session<'_>| -> Result<()> {
            s.begin(TxMode::Write)?;
            s.batch(sql)?;
            if i + 1 == VERSIONS_SCHEMA {
                super::versions::replay_history(s)?;
            }
            if i == 0 {
                let store_id = uuid::Uuid::new_v4().to_string();
                s.execute(
                    "INSERT INTO agentmem_meta (key, value) VALUES ('format', $1::text),
                     ('store_id', $2::text)",
                    &[&FORMAT_MARK, &store_id],
                )?;
            }
            let version = (i as i64 + 1).to_string();
            s.execute(
                "INSERT INTO agentmem_meta (key, value) VALUES ('schema_version', $1::text)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&version],
            )?;
            s.commit()
        };
        if let Err(e) = step(s) {
            s.rollback();
            return Err(e);
        }
    }
    Ok(())
}

fn capabilities(s: &mut Session<'_>, label: &str) -> Result<Capabilities> {
    let row = s.query_one(
        "SELECT current_setting('server_encoding'),
                (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'pg_unicode_fast'),
                EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'pg_c_utf8')",
        &[],
    )?;
    let encoding: String = get(&row, 0)?;
    let vector: Option<String> = get(&row, 1)?;
    let unicode_fast: bool = get(&row, 2)?;
    let c_utf8: bool = get(&row, 3)?;
    let Some(vector) = vector else {
        return Err(Error::new(
            ErrorCode::Unsupported,
            format!("{label}: the pgvector extension (vector) is not enabled in this database"),
        ));
    };
    check_pgvector(&vector, label)?;
    // The builtin collations exist only for UTF-8 databases.
    let utf8 = encoding.eq_ignore_ascii_case("UTF8");
    let lower = if utf8 && unicode_fast {
        "COLLATE pg_catalog.pg_unicode_fast"
    } else if utf8 && c_utf8 {
        "COLLATE pg_catalog.pg_c_utf8"
    } else {
        "COLLATE pg_catalog.\"default\""
    };
    Ok(Capabilities {
        lower,
        iterative_scan: major_minor(&vector) >= (0, 8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare() {
        assert_eq!(major_minor("0.8.1"), (0, 8));
        assert_eq!(major_minor("0.10.0"), (0, 10));
        assert!(major_minor("0.4.4") < MIN_PGVECTOR);
        assert!(major_minor("0.5.0") >= MIN_PGVECTOR);
        assert!(check_pgvector("0.4.2", "db").is_err());
    }
}
