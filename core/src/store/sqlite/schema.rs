//! The SQLite schema and its forward migrations.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{sqlite_code, Error, ErrorCode, Result};

/// The schema version this library writes. Opening a store with a newer version fails with
/// [`ErrorCode::Unsupported`]; an older one is migrated forward at open.
pub const SCHEMA_VERSION: i64 = 5;

/// The value of the `format` meta key that marks a file as an agent_mem store.
const FORMAT_MARK: &str = "agent_mem";

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Absent scope ids are stored as '' so that the UNIQUE constraint (exact-duplicate rule)
-- treats "no user" as a value.
CREATE TABLE memories (
    key        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    content    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    agent_id   TEXT NOT NULL DEFAULT '',
    run_id     TEXT NOT NULL DEFAULT '',
    org_id     TEXT NOT NULL DEFAULT '',
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    embedding  BLOB NOT NULL,
    UNIQUE (user_id, agent_id, run_id, org_id, hash)
);
CREATE INDEX memories_agent ON memories (agent_id);
CREATE INDEX memories_run ON memories (run_id);
CREATE INDEX memories_org ON memories (org_id);
CREATE INDEX memories_created ON memories (created_at, key);
CREATE INDEX memories_updated ON memories (updated_at, key);
CREATE INDEX memories_expires ON memories (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE history (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    memory_id   TEXT NOT NULL,
    event       TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_content TEXT,
    new_content TEXT,
    is_deleted  INTEGER NOT NULL DEFAULT 0,
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX history_memory ON history (memory_id, seq);

-- The change log that lets every process bring its vector index up to date.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key INTEGER NOT NULL,
    op  TEXT NOT NULL CHECK (op IN ('upsert', 'delete'))
);

-- Keyword index over pre-tokenised terms (see text.rs); rowid = memories.key.
CREATE VIRTUAL TABLE memories_fts USING fts5(
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
);

-- Fuzzy search: the vocabulary with document frequencies, and its trigrams.
CREATE TABLE terms (
    id   INTEGER PRIMARY KEY,
    term TEXT NOT NULL UNIQUE,
    df   INTEGER NOT NULL
);
CREATE VIRTUAL TABLE term_grams USING fts5(term, tokenize = 'trigram');

CREATE TABLE embedding_cache (
    model  TEXT NOT NULL,
    hash   TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
"#,
    r#"
-- A digest chained over the change rows (ops::log_change): the saved vector index records
-- the digest of the change it reflects, so that the index of a diverged copy of the store
-- (same store id and sequence numbers, another history) is told apart. NULL in the rows
-- of version 1.
ALTER TABLE changes ADD COLUMN digest TEXT;
"#,
    r#"
-- Versions (transaction time): a memory's row is its current version; each update or
-- delete first moves the version it replaces here, with the commit time that ended it.
-- A version was current from its updated_at (the commit that wrote it) to valid_to_tx.
-- Valid time (when the fact held in the world) and supersede links are fields of a version.
ALTER TABLE memories ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE memories ADD COLUMN valid_from TEXT;
ALTER TABLE memories ADD COLUMN valid_to TEXT;
ALTER TABLE memories ADD COLUMN superseded_by TEXT;
CREATE INDEX memories_superseded ON memories (superseded_by) WHERE superseded_by IS NOT NULL;
CREATE TABLE versions (
    key           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    content       TEXT NOT NULL,
    hash          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT NOT NULL DEFAULT '',
    agent_id      TEXT NOT NULL DEFAULT '',
    run_id        TEXT NOT NULL DEFAULT '',
    org_id        TEXT NOT NULL DEFAULT '',
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    expires_at    TEXT,
    valid_from    TEXT,
    valid_to      TEXT,
    superseded_by TEXT,
    valid_to_tx   TEXT NOT NULL,
    -- NULL for a version rebuilt from the history of an older store without its vector.
    embedding     BLOB,
    UNIQUE (id, version)
);
CREATE INDEX versions_scope ON versions (user_id, agent_id, run_id, org_id);
-- Which versions were current at a moment, answered from the index alone (a version's row
-- holds its vector): the interval, and what an unscoped read also checks.
CREATE INDEX versions_ended ON versions (valid_to_tx, updated_at, superseded_by, expires_at);
-- Keyword index of past versions (rowid = versions.key), searched as of a past moment.
CREATE VIRTUAL TABLE versions_fts USING fts5(
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"
);
-- Undo: the change a history row belongs to (NULL: the row's own id; a supersede's two
-- rows share one), and the change that undid it.
ALTER TABLE history ADD COLUMN change_id TEXT;
ALTER TABLE history ADD COLUMN undone_by TEXT;
CREATE INDEX history_change ON history (change_id) WHERE change_id IS NOT NULL;
"#,
    r#"
-- The knowledge graph. Entities belong to one scope ('' for an absent id, as memories).
CREATE TABLE entities (
    key        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    folded     TEXT NOT NULL,
    type       TEXT NOT NULL,
    summary    TEXT,
    user_id    TEXT NOT NULL DEFAULT '',
    agent_id   TEXT NOT NULL DEFAULT '',
    run_id     TEXT NOT NULL DEFAULT '',
    org_id     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Every name an entity answers to (its name and aliases), folded: one entity per name in
-- a scope, which is what resolution looks up.
CREATE TABLE entity_names (
    user_id    TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    org_id     TEXT NOT NULL,
    folded     TEXT NOT NULL,
    name       TEXT NOT NULL,
    entity_key INTEGER NOT NULL REFERENCES entities (key) ON DELETE CASCADE,
    PRIMARY KEY (user_id, agent_id, run_id, org_id, folded)
) WITHOUT ROWID;
CREATE INDEX entity_names_entity ON entity_names (entity_key);
-- subject -predicate-> object (an entity) or value (a literal), in the subject's scope.
CREATE TABLE relations (
    key         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    subject_key INTEGER NOT NULL REFERENCES entities (key) ON DELETE CASCADE,
    predicate   TEXT NOT NULL,
    object_key  INTEGER REFERENCES entities (key) ON DELETE CASCADE,
    value       TEXT,
    valid_from  TEXT,
    valid_to    TEXT,
    closed_by   TEXT,
    confidence  REAL NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    agent_id    TEXT NOT NULL DEFAULT '',
    run_id      TEXT NOT NULL DEFAULT '',
    org_id      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    CHECK ((object_key IS NULL) <> (value IS NULL))
);
CREATE INDEX relations_subject ON relations (subject_key, predicate);
CREATE INDEX relations_object ON relations (object_key, predicate) WHERE object_key IS NOT NULL;
CREATE INDEX relations_scope ON relations (user_id, agent_id, run_id, org_id, predicate);
-- The memories a relation came from: deleting the last of them removes the relation.
CREATE TABLE relation_sources (
    relation_key INTEGER NOT NULL REFERENCES relations (key) ON DELETE CASCADE,
    memory_id    TEXT NOT NULL,
    PRIMARY KEY (relation_key, memory_id)
) WITHOUT ROWID;
CREATE INDEX relation_sources_memory ON relation_sources (memory_id);
"#,
    r#"
-- The embedding of an entity's name (little-endian f32s), which resolution compares when
-- no name matches; none when the store had no embedder. A table of its own: walks read
-- entity rows, which stay small.
CREATE TABLE entity_embeddings (
    entity_key INTEGER PRIMARY KEY REFERENCES entities (key) ON DELETE CASCADE,
    embedding  BLOB NOT NULL
);
-- The entities of a scope and type (the candidates resolution by meaning compares).
CREATE INDEX entities_scope_type ON entities (user_id, agent_id, run_id, org_id, type);
-- Whether an entity answers to names besides its own: reads look for its aliases only then.
ALTER TABLE entities ADD COLUMN aliased INTEGER NOT NULL DEFAULT 0;
UPDATE entities SET aliased = EXISTS (SELECT 1 FROM entity_names n
    WHERE n.entity_key = entities.key AND n.folded <> entities.folded);
-- Corrections of entities (merge, rename, split), newest last: what was done and to what.
CREATE TABLE entity_history (
    key        INTEGER PRIMARY KEY,
    entity_id  TEXT NOT NULL,
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX entity_history_entity ON entity_history (entity_id, key);
-- The relations a deleted memory supported, as they were (JSON), so that undoing the delete
-- brings them back.
CREATE TABLE forgotten_sources (
    key          INTEGER PRIMARY KEY,
    memory_id    TEXT NOT NULL,
    relation_id  TEXT NOT NULL,
    relation     TEXT NOT NULL,
    forgotten_at TEXT NOT NULL
);
CREATE INDEX forgotten_sources_memory ON forgotten_sources (memory_id);
-- A walk reads each relation it passes from the index it finds it by alone: its ends,
-- predicate, valid time and scope (the key is the rowid).
DROP INDEX relations_subject;
CREATE INDEX relations_subject ON relations (subject_key, predicate, object_key, valid_from,
    valid_to, user_id, agent_id, run_id, org_id);
DROP INDEX relations_object;
CREATE INDEX relations_object ON relations (object_key, predicate, subject_key, valid_from,
    valid_to, user_id, agent_id, run_id, org_id) WHERE object_key IS NOT NULL;
"#,
];

/// The schema version whose migration also rebuilds past versions from history (see
/// [`super::versions::replay_history`]).
const VERSIONS_SCHEMA: usize = 3;

/// Checks that the file is an agent_mem store (or empty), then migrates it to
/// [`SCHEMA_VERSION`]. Nothing is written to a file that is not ours.
pub(crate) fn prepare(conn: &mut Connection, label: &str) -> Result<()> {
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_a_store(label, e))?;
    let version = if tables == 0 {
        0
    } else {
        let has_meta: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        let format: Option<String> = if has_meta {
            conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .optional()?
        } else {
            None
        };
        if format.as_deref() != Some(FORMAT_MARK) {
            return Err(Error::new(
                ErrorCode::Corrupted,
                format!("{label} is a SQLite database but not an agent_mem store"),
            ));
        }
        let v: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )?;
        v.parse::<i64>().map_err(|_| {
            Error::new(
                ErrorCode::Corrupted,
                format!("{label}: schema_version {v:?} is not a number"),
            )
        })?
    };
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::Unsupported,
            format!(
                "{label} has schema version {version}; this agent_mem ({}) knows up to \
                 {SCHEMA_VERSION}: upgrade agent_mem",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the write lock.
    let current: Option<String> = if version == 0 {
        tx.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .unwrap_or(None)
    } else {
        Some(version.to_string())
    };
    let start = current.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start as usize) {
        tx.execute_batch(sql)?;
        if i + 1 == VERSIONS_SCHEMA {
            super::versions::replay_history(&tx)?;
        }
        if i == 0 {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('format', ?1), ('store_id', ?2)",
                [FORMAT_MARK, &uuid::Uuid::new_v4().to_string()],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(i as i64 + 1).to_string()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn not_a_store(label: &str, err: rusqlite::Error) -> Error {
    Error::new(
        sqlite_code(&err),
        format!("{label} is not an agent_mem store (not a readable SQLite database): {err}"),
    )
    .with_source(err)
}
