//! Backward compatibility: store files written by earlier versions keep opening, with their
//! memories, their history and search intact.
//!
//! `tests/golden/v<schema>.db` is a small store written by the schema it is named after, and
//! `tests/golden/v<schema>.json` what was observable in it right after (every memory, every
//! history row, the ids of the updated and the deleted memory). The test opens a copy of each
//! (opening may migrate; the committed file is never written) and checks that nothing of it
//! changed and that search and writes work on it.
//!
//! The generator is the ignored test `golden::write_golden_store`. Run it once per schema
//! version, when SCHEMA below is raised to the new version, and commit both files (earlier
//! versions' files stay):
//!
//! ```sh
//! cargo test -p agent-mem --test all golden::write_golden_store -- --ignored --exact
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_mem::{
    ErrorCode, Filter, HashingEmbedder, HistoryEvent, ListOptions, ListOrder, Memory, MemoryKind,
    MemoryRecord, MemoryUpdate, NewMemory, Scope, SearchMode, SearchOptions,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The schema version the generator writes (the SQLite store's current one).
const SCHEMA: u32 = 3;
/// The schema versions whose golden files are committed and checked.
const GOLDEN: &[u32] = &[1, 3];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn open(path: &Path) -> Memory {
    Memory::builder()
        .path(path)
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn all_memories(memory: &Memory) -> Vec<MemoryRecord> {
    let mut options = ListOptions::new().order(ListOrder::CreatedAsc).limit(1000);
    options.include_expired = true;
    memory.list(&options).unwrap().items
}

/// What a user can observe in the store: the memories in creation order, and the history of
/// each memory named in `ids` (the deleted one has no record any more).
fn observe(memory: &Memory, ids: &[String]) -> Value {
    let records: Vec<Value> = all_memories(memory)
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let histories: serde_json::Map<String, Value> = ids
        .iter()
        .map(|id| {
            let history = memory.history(id).unwrap();
            (id.clone(), serde_json::to_value(history).unwrap())
        })
        .collect();
    json!({"memories": records, "history": histories})
}

/// Writes `tests/golden/v{SCHEMA}.db` and `.json`: a few memories of three users in several
/// scopes, kinds and scripts, with metadata and an expiry; one updated, one deleted.
#[test]
#[ignore = "the generator of the golden files: run on purpose, see the module docs"]
fn write_golden_store() {
    let dir = golden_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("v{SCHEMA}.db"));
    let _ = std::fs::remove_file(&db);
    remove_derived_files(&db);
    let expires: DateTime<Utc> = "2099-01-01T00:00:00Z".parse().unwrap();
    let (updated, deleted) = {
        let memory = open(&db);
        let meta = |v: Value| v.as_object().unwrap().clone();
        memory
            .add(
                NewMemory::new("Alice is allergic to peanuts")
                    .user("alice")
                    .kind(MemoryKind::Semantic)
                    .metadata(meta(json!({"topic": "health", "severity": 3}))),
            )
            .unwrap();
        memory
            .add(
                NewMemory::new("我喜欢喝咖啡，特别是拿铁")
                    .user("alice")
                    .metadata(meta(json!({"topic": "food", "lang": "zh"}))),
            )
            .unwrap();
        memory
            .add(
                NewMemory::new("Bob works as a site reliability engineer in San Francisco")
                    .user("bob")
                    .agent("assistant")
                    .kind(MemoryKind::Episodic),
            )
            .unwrap();
        memory
            .add(
                NewMemory::new("Carol's flight UA857 leaves on Friday at 9:40")
                    .user("carol")
                    .run("trip-1")
                    .kind(MemoryKind::Working)
                    .expires_at(expires),
            )
            .unwrap();
        let updated = memory
            .add(NewMemory::new("Bob prefers green tea").user("bob"))
            .unwrap()
            .id;
        memory
            .update(&updated, MemoryUpdate::content("Bob prefers jasmine tea"))
            .unwrap();
        let deleted = memory
            .add(NewMemory::new("a note that is deleted again").user("bob"))
            .unwrap()
            .id;
        memory.delete(&deleted).unwrap();
        memory.close().unwrap();
        (updated, deleted)
    };
    // The vector index (and anything else beside the file) is derived and rebuilt from
    // SQLite: only the database is golden.
    remove_derived_files(&db);
    // Observed on a copy, so that the committed file is exactly what the schema wrote.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("golden.db");
    std::fs::copy(&db, &copy).unwrap();
    let memory = open(&copy);
    let expected = json!({
        "schema": SCHEMA,
        "updated": updated,
        "deleted": deleted,
        "observed": observe(&memory, &[updated.clone(), deleted.clone()]),
    });
    std::fs::write(
        dir.join(format!("v{SCHEMA}.json")),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}

/// Versions: the updated memory's first version, from history in a store written before
/// versions existed, is read as of a moment before the update and found by keyword search
/// then. The deleted memory of such a store has no version (history never recorded its
/// scope); a store written with versions keeps it.
fn check_versions(memory: &Memory, version: u32, expected: &Value) {
    let id = |key: &str| expected[key].as_str().unwrap().to_owned();
    let (updated, deleted) = (id("updated"), id("deleted"));
    let history = memory.history(&updated).unwrap();
    let before_update = history[1].created_at - chrono::Duration::microseconds(1);
    let versions = memory.versions(&updated).unwrap();
    let seen: Vec<(u64, &str)> = versions
        .iter()
        .map(|v| (v.version, v.content.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(1, "Bob prefers green tea"), (2, "Bob prefers jasmine tea")],
        "v{version}"
    );
    assert_eq!(
        versions[0].valid_from_tx, history[0].created_at,
        "v{version}"
    );
    assert_eq!(
        versions[0].valid_to_tx,
        Some(history[1].created_at),
        "v{version}"
    );
    assert_eq!(versions[0].scope, Scope::user("bob"), "v{version}");
    let then = memory.get_as_of(&updated, before_update).unwrap();
    assert_eq!(then.content, "Bob prefers green tea", "v{version}");
    for mode in [SearchMode::Keyword, SearchMode::Vector, SearchMode::Hybrid] {
        let options = SearchOptions::new()
            .user("bob")
            .mode(mode)
            .as_of(before_update);
        let hits = memory.search("Bob prefers green tea", &options).unwrap();
        assert_eq!(
            hits.first().map(|h| h.memory.content.as_str()),
            Some("Bob prefers green tea"),
            "v{version} {mode:?}"
        );
    }
    let deleted_versions = memory.versions(&deleted);
    if version < 3 {
        assert_eq!(
            deleted_versions.unwrap_err().code(),
            ErrorCode::NotFound,
            "v{version}"
        );
    } else {
        let kept = deleted_versions.unwrap();
        assert_eq!(kept.len(), 1, "v{version}");
        assert_eq!(kept[0].content, "a note that is deleted again");
        assert!(kept[0].valid_to_tx.is_some());
    }
}

/// Removes the files a store keeps beside `db` (`db-wal`, `db.usearch`, ...).
fn remove_derived_files(db: &Path) {
    let name = db.file_name().unwrap().to_str().unwrap().to_owned();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        let other = path.file_name().unwrap().to_str().unwrap();
        if other != name && other.starts_with(&name) {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn golden_stores_of_earlier_schemas_still_open() {
    assert!(
        GOLDEN.contains(&SCHEMA),
        "no golden file of the current schema"
    );
    for version in GOLDEN {
        check_golden(*version);
    }
}

fn check_golden(version: u32) {
    let dir = golden_dir();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("v{version}.json"))).unwrap(),
    )
    .unwrap();
    let id = |key: &str| expected[key].as_str().unwrap().to_owned();
    let (updated, deleted) = (id("updated"), id("deleted"));
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("golden.db");
    std::fs::copy(dir.join(format!("v{version}.db")), &copy).unwrap();
    let memory = open(&copy);

    // Every memory and history row as it was written; fields added since are not compared.
    let observed = observe(&memory, &[updated.clone(), deleted.clone()]);
    let want = &expected["observed"];
    let (got_m, want_m) = (
        observed["memories"].as_array().unwrap(),
        want["memories"].as_array().unwrap(),
    );
    assert_eq!(got_m.len(), want_m.len(), "v{version}: memories");
    for (got, want) in got_m.iter().zip(want_m) {
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(&got[key], value, "v{version}: memory field {key}");
        }
    }
    for id in [&updated, &deleted] {
        let (got_h, want_h) = (
            observed["history"][id].as_array().unwrap(),
            want["history"][id].as_array().unwrap(),
        );
        assert_eq!(got_h.len(), want_h.len(), "v{version}: history of {id}");
        for (got, want) in got_h.iter().zip(want_h) {
            for (key, value) in want.as_object().unwrap() {
                assert_eq!(&got[key], value, "v{version}: history field {key}");
            }
        }
    }
    let events = |id: &str| -> Vec<HistoryEvent> {
        memory
            .history(id)
            .unwrap()
            .into_iter()
            .map(|h| h.event)
            .collect()
    };
    assert_eq!(events(&updated), [HistoryEvent::Add, HistoryEvent::Update]);
    assert_eq!(events(&deleted), [HistoryEvent::Add, HistoryEvent::Delete]);
    assert_eq!(
        memory.get(&updated).unwrap().content,
        "Bob prefers jasmine tea"
    );
    assert_eq!(
        memory.get(&deleted).unwrap_err().code(),
        ErrorCode::NotFound,
        "v{version}: the deleted memory"
    );

    // Search: keywords (stemmed English, CJK), vectors (the index is rebuilt from the stored
    // vectors), hybrid, scopes and filters.
    let top = |query: &str, options: SearchOptions| -> String {
        let hits = memory.search(query, &options).unwrap();
        hits.first()
            .map(|h| h.memory.content.clone())
            .unwrap_or_default()
    };
    let alice = || SearchOptions::new().user("alice");
    assert_eq!(
        top("peanut allergy", alice().mode(SearchMode::Keyword)),
        "Alice is allergic to peanuts"
    );
    assert_eq!(
        top("咖啡", alice().mode(SearchMode::Keyword)),
        "我喜欢喝咖啡，特别是拿铁"
    );
    assert_eq!(
        top(
            "Bob works as a site reliability engineer in San Francisco",
            SearchOptions::new().user("bob").mode(SearchMode::Vector)
        ),
        "Bob works as a site reliability engineer in San Francisco"
    );
    assert_eq!(
        top("jasmine tea", SearchOptions::new().user("bob")),
        "Bob prefers jasmine tea"
    );
    // The text before the update is no longer indexed.
    assert_eq!(
        top(
            "green",
            SearchOptions::new().user("bob").mode(SearchMode::Keyword)
        ),
        ""
    );
    assert_eq!(
        top(
            "UA857",
            SearchOptions::new().scope(Scope {
                user_id: Some("carol".into()),
                run_id: Some("trip-1".into()),
                ..Scope::default()
            })
        ),
        "Carol's flight UA857 leaves on Friday at 9:40"
    );
    let food = Filter::from_json(&json!({"topic": "food"})).unwrap();
    assert_eq!(
        top("coffee 咖啡", alice().filter(food)),
        "我喜欢喝咖啡，特别是拿铁"
    );

    check_versions(&memory, version, &expected);

    // Writes: the same content is recognised as a duplicate (the stored hashes still match),
    // and new memories are added and found.
    let again = memory
        .add(NewMemory::new("Alice is allergic to peanuts").user("alice"))
        .unwrap();
    assert!(
        !again.added,
        "v{version}: the stored hash no longer matches its content"
    );
    memory
        .add(NewMemory::new("Alice started learning the cello").user("alice"))
        .unwrap();
    assert_eq!(
        top("cello", alice().mode(SearchMode::Keyword)),
        "Alice started learning the cello"
    );
    memory.close().unwrap();
}
