//! Durability: SQLite is the source of truth and the saved vector index only a cache.
//!
//! - a missing, truncated, garbled, stale or foreign index file is repaired from SQLite, and
//!   a good one is reused;
//! - a writer killed with SIGKILL loses no acknowledged batch and leaves no half batch;
//! - two processes, and several threads, share one store and see each other's writes;
//! - a reset through one handle is seen by every other handle.
//!
//! The multi-process tests re-run this test binary as the child, selected with
//! `--exact <child test>` and an environment variable (without it the child tests do nothing).

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_mem::{
    HashingEmbedder, ListOptions, ListOrder, Memory, MemoryRecord, MemoryUpdate, NewMemory, Scope,
    SearchMode, SearchOptions,
};

/// Dimension of the seeded random vectors.
const DIMS: usize = 32;
/// Memories per batch written by the crash child.
const CRASH_BATCH: usize = 50;
/// Environment of the crash child: the store path, and the first batch number.
const CRASH_ENV: &str = "AGENT_MEM_CRASH_CHILD";
const CRASH_START_ENV: &str = "AGENT_MEM_CRASH_START";
/// Environment of the concurrent-writer child: the store path.
const WRITER_ENV: &str = "AGENT_MEM_WRITER_CHILD";
/// Memories written by the concurrent-writer child, in batches of `WRITER_BATCH`.
const WRITER_TOTAL: usize = 300;
const WRITER_BATCH: usize = 5;

// ------------------------------------------------------------------ helpers

/// SplitMix64: a small seeded generator, so that a child process and the parent agree on
/// the vectors without sharing anything but numbers.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The vector of seed `seed` (a pure function of the seed).
fn vector(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..DIMS).map(|_| rng.unit()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// A store without an embedder (every vector is given), saving its index beside the file.
fn open(path: &Path) -> Memory {
    Memory::builder()
        .path(path)
        .without_embedder()
        .build()
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn vector_options(limit: usize) -> SearchOptions {
    SearchOptions::new().mode(SearchMode::Vector).limit(limit)
}

/// Ids of the vector-search hits for `query`, best first.
fn vector_ids(memory: &Memory, query: &[f32], limit: usize) -> Vec<String> {
    memory
        .search_with_vector("", query, &vector_options(limit))
        .expect("vector search")
        .into_iter()
        .map(|h| h.memory.id)
        .collect()
}

/// The exact top `limit` ids by cosine over `model` (id -> vector).
fn exact_ids(model: &HashMap<String, Vec<f32>>, query: &[f32], limit: usize) -> Vec<String> {
    let mut scored: Vec<(f32, &String)> =
        model.iter().map(|(id, v)| (cosine(query, v), id)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(limit)
        .map(|(_, id)| id.clone())
        .collect()
}

fn total(memory: &Memory) -> usize {
    memory.count(&Scope::global(), None).expect("count")
}

/// Every memory in the store, oldest first.
fn all_memories(memory: &Memory) -> Vec<MemoryRecord> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = memory
            .list(&ListOptions {
                limit: 10_000,
                cursor: cursor.take(),
                order: ListOrder::CreatedAsc,
                ..ListOptions::new()
            })
            .expect("list");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn index_file(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.usearch", db.display()))
}

fn meta_file(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.usearch.meta", db.display()))
}

/// The `seq` recorded in the saved index's state file.
fn saved_seq(db: &Path) -> i64 {
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(meta_file(db)).expect("read .meta")).expect("meta json");
    meta["seq"].as_i64().expect("seq in meta")
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).and_then(|m| m.modified()).expect("mtime")
}

/// Sets a file's modification time far in the past, so that any rewrite is visible.
fn age(p: &Path) -> SystemTime {
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(p)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    old
}

/// Copies every file of `from` (not directories) into `to`.
fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Removes the store file and its WAL companions (not the index files).
fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            fs::remove_file(&p).expect("remove db file");
        }
    }
}

/// Adds `seeds` as memories `"memory <seed> ..."` with `vector(seed)`; returns id -> vector.
fn add_seeded(memory: &Memory, seeds: impl IntoIterator<Item = u64>) -> HashMap<String, Vec<f32>> {
    let items: Vec<(NewMemory, Vec<f32>)> = seeds
        .into_iter()
        .map(|s| {
            (
                NewMemory::new(format!("memory {s} about topic t{}", s % 7)).meta("seed", s),
                vector(s),
            )
        })
        .collect();
    let vectors: Vec<Vec<f32>> = items.iter().map(|(_, v)| v.clone()).collect();
    let outcomes = memory.add_batch_with_vectors(items).expect("add batch");
    outcomes
        .into_iter()
        .zip(vectors)
        .map(|(o, v)| {
            assert!(o.added, "seeded contents are distinct");
            (o.id, v)
        })
        .collect()
}

/// Asserts that each memory of `model` is the top vector hit for its own vector.
fn assert_self_found(memory: &Memory, model: &HashMap<String, Vec<f32>>, what: &str) {
    for (id, v) in model {
        let top = vector_ids(memory, v, 1);
        assert_eq!(
            top.first(),
            Some(id),
            "{what}: memory {id} not found by its own vector"
        );
    }
}

/// Spawns this test binary running only `test`, with `env` set and stdout piped.
fn spawn_child(test: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        &support::test_name(module_path!(), test),
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Forwards the numbers after `tag` on the child's stdout lines to a channel (the libtest
/// banner may share a line with the first message, so the tag is searched anywhere).
fn read_tagged(child: &mut Child, tag: &'static str) -> mpsc::Receiver<u64> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find(tag) {
                let rest = &line[at + tag.len()..];
                let n: u64 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("bad child line {line:?}"));
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

// ------------------------------------------------------------------ 1. index repair

/// The state of the pristine store of the repair test.
struct Pristine {
    dir: tempfile::TempDir,
    model: HashMap<String, Vec<f32>>,
    queries: Vec<Vec<f32>>,
    expected: Vec<Vec<String>>,
    seq: i64,
}

const QUERY_LIMIT: usize = 10;

/// 600 adds, 20 deletes, 10 vector updates; the search results recorded before closing.
fn build_pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("mem.db");
    let memory = open(&db);
    let mut model = HashMap::new();
    for b in 0..6u64 {
        model.extend(add_seeded(&memory, b * 100..(b + 1) * 100));
    }
    let mut ids: Vec<String> = model.keys().cloned().collect();
    ids.sort();
    for id in ids.iter().take(20) {
        memory.delete(id).expect("delete");
        model.remove(id);
    }
    for (i, id) in ids.iter().skip(20).take(10).enumerate() {
        let v = vector(90_000 + i as u64);
        memory
            .update_with_vector(
                id,
                MemoryUpdate::content(format!("updated memory {i}")),
                v.clone(),
            )
            .expect("update");
        model.insert(id.clone(), v);
    }
    let mut queries: Vec<Vec<f32>> = (0..30).map(|q| vector(50_000 + q)).collect();
    queries.extend(ids.iter().skip(30).step_by(37).map(|id| model[id].clone()));
    let expected: Vec<Vec<String>> = queries
        .iter()
        .map(|q| vector_ids(&memory, q, QUERY_LIMIT))
        .collect();
    for (q, got) in queries.iter().zip(&expected) {
        assert_eq!(
            *got,
            exact_ids(&model, q, QUERY_LIMIT),
            "fresh index vs exact"
        );
    }
    assert_eq!(memory.indexed_vectors().unwrap(), model.len());
    memory.close().expect("close");
    // 600 adds + 20 deletes + 10 content changes, each one change-log entry.
    let seq = saved_seq(&db);
    assert_eq!(seq, 630, "the saved index reflects every change");
    Pristine {
        dir,
        model,
        queries,
        expected,
        seq,
    }
}

/// Opens `db`, checks the index agrees with SQLite and with `model`, closes; then checks
/// that the index file the open left behind is intact (a second open reuses it: it is not
/// rewritten) and records `seq`.
fn assert_repaired(
    db: &Path,
    model: &HashMap<String, Vec<f32>>,
    queries: &[Vec<f32>],
    seq: i64,
    case: &str,
) {
    let memory = open(db);
    assert_eq!(total(&memory), model.len(), "{case}: count");
    assert_eq!(
        memory.indexed_vectors().unwrap(),
        model.len(),
        "{case}: indexed vectors"
    );
    for (i, q) in queries.iter().enumerate() {
        assert_eq!(
            vector_ids(&memory, q, QUERY_LIMIT),
            exact_ids(model, q, QUERY_LIMIT),
            "{case}: results of query {i}"
        );
    }
    memory.close().expect("close");
    assert_eq!(saved_seq(db), seq, "{case}: saved seq after repair");
    // The repaired file is good: the next open uses it without rewriting it.
    let old = age(&index_file(db));
    let memory = open(db);
    assert_eq!(
        memory.indexed_vectors().unwrap(),
        model.len(),
        "{case}: reopened"
    );
    assert_eq!(
        vector_ids(&memory, &queries[0], QUERY_LIMIT),
        exact_ids(model, &queries[0], QUERY_LIMIT),
        "{case}: reopened results"
    );
    memory.close().expect("close");
    assert_eq!(
        mtime(&index_file(db)),
        old,
        "{case}: a good index file was rewritten"
    );
}

#[test]
fn damaged_or_stale_index_files_are_rebuilt_from_sqlite() {
    let p = build_pristine();
    let pristine_db = p.dir.path().join("mem.db");

    // A good file is reused: opening, searching and closing does not rewrite it.
    let old = age(&index_file(&pristine_db));
    {
        let memory = open(&pristine_db);
        for (q, want) in p.queries.iter().zip(&p.expected) {
            assert_eq!(
                vector_ids(&memory, q, QUERY_LIMIT),
                *want,
                "reused index results"
            );
        }
        assert_eq!(memory.indexed_vectors().unwrap(), p.model.len());
        memory.close().unwrap();
    }
    assert_eq!(
        mtime(&index_file(&pristine_db)),
        old,
        "an intact index was rebuilt"
    );
    assert_eq!(saved_seq(&pristine_db), p.seq);

    type Damage = fn(&Path);
    let damages: [(&str, Damage); 5] = [
        ("index deleted", |db| {
            fs::remove_file(index_file(db)).unwrap()
        }),
        ("index truncated", |db| {
            let f = fs::File::options()
                .write(true)
                .open(index_file(db))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        }),
        ("index garbled", |db| {
            let mut bytes = fs::read(index_file(db)).unwrap();
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 64] {
                *b ^= 0xA5;
            }
            fs::write(index_file(db), bytes).unwrap();
        }),
        ("meta deleted", |db| fs::remove_file(meta_file(db)).unwrap()),
        ("meta garbled", |db| {
            fs::write(meta_file(db), b"{\"format\":1,\"seq\":").unwrap()
        }),
    ];
    for (case, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        copy_files(p.dir.path(), dir.path());
        let db = dir.path().join("mem.db");
        damage(&db);
        assert_repaired(&db, &p.model, &p.queries, p.seq, case);
    }

    // Stale: the saved index predates writes made by a handle that does not save it.
    {
        let dir = tempfile::tempdir().unwrap();
        copy_files(p.dir.path(), dir.path());
        let db = dir.path().join("mem.db");
        let before = age(&index_file(&db));
        let mut model = p.model.clone();
        let memory = Memory::builder()
            .path(&db)
            .without_embedder()
            .persist_index(false)
            .build()
            .unwrap();
        // Delete the newest memory (its integer key is then handed out again), some top hits
        // of the recorded queries, and a few others; add new memories, some close to the
        // queries; change some vectors.
        let newest = all_memories(&memory).pop().unwrap().id;
        let mut victims: BTreeSet<String> = BTreeSet::from([newest]);
        victims.extend(p.expected.iter().take(8).map(|hits| hits[0].clone()));
        victims.extend(model.keys().take(6).cloned());
        for id in &victims {
            memory.delete(id).unwrap();
            model.remove(id);
        }
        model.extend(add_seeded(&memory, 70_000..70_030));
        let near: Vec<(NewMemory, Vec<f32>)> = p.queries[..10]
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let v: Vec<f32> = q.iter().map(|x| x * 0.99 + 0.001).collect();
                (NewMemory::new(format!("close to query {i}")), v)
            })
            .collect();
        let near_vectors: Vec<Vec<f32>> = near.iter().map(|(_, v)| v.clone()).collect();
        for (o, v) in memory
            .add_batch_with_vectors(near)
            .unwrap()
            .into_iter()
            .zip(near_vectors)
        {
            model.insert(o.id, v);
        }
        let mut changed: Vec<String> = model.keys().cloned().collect();
        changed.sort();
        for (i, id) in changed.iter().rev().take(5).enumerate() {
            let v = vector(80_000 + i as u64);
            memory
                .update_with_vector(
                    id,
                    MemoryUpdate::content(format!("moved memory {i}")),
                    v.clone(),
                )
                .unwrap();
            model.insert(id.clone(), v);
        }
        memory.close().unwrap();
        assert_eq!(
            mtime(&index_file(&db)),
            before,
            "persist_index(false) rewrote the index"
        );
        assert_eq!(saved_seq(&db), p.seq);
        let seq = p.seq + victims.len() as i64 + 40 + 5;
        assert_repaired(&db, &model, &p.queries, seq, "stale index");
    }

    // The store file was deleted and created anew; the old index files stayed behind. They
    // describe another database and must not be used for this one.
    {
        let dir = tempfile::tempdir().unwrap();
        copy_files(p.dir.path(), dir.path());
        let db = dir.path().join("mem.db");
        remove_db(&db);
        let memory = open(&db);
        assert_eq!(
            memory.indexed_vectors().unwrap(),
            0,
            "new store: leftover index used"
        );
        let model = add_seeded(&memory, 200_000..200_100);
        assert_eq!(
            memory.indexed_vectors().unwrap(),
            100,
            "new store: indexed vectors"
        );
        assert_self_found(&memory, &model, "new store");
        memory.close().unwrap();
        assert_repaired(
            &db,
            &model,
            &p.queries,
            100,
            "new store over old index files",
        );
    }

    // The store file was restored from an older backup; the index file is newer.
    {
        let dir = tempfile::tempdir().unwrap();
        copy_files(p.dir.path(), dir.path());
        let db = dir.path().join("mem.db");
        let backup = dir.path().join("backup");
        fs::create_dir(&backup).unwrap();
        copy_files(dir.path(), &backup);
        // Later writes that keep the count: 50 deletes (among them the best hits of the
        // queries) and 50 adds.
        let memory = open(&db);
        let mut victims: BTreeSet<&String> = p.expected.iter().map(|hits| &hits[0]).collect();
        let mut others = p.model.keys();
        while victims.len() < 50 {
            victims.insert(others.next().unwrap());
        }
        for id in victims {
            memory.delete(id).unwrap();
        }
        add_seeded(&memory, 300_000..300_050);
        assert_eq!(total(&memory), p.model.len());
        memory.close().unwrap();
        assert_eq!(saved_seq(&db), p.seq + 100);
        remove_db(&db);
        for name in ["mem.db", "mem.db-wal", "mem.db-shm"] {
            if backup.join(name).exists() {
                fs::copy(backup.join(name), dir.path().join(name)).unwrap();
            }
        }
        let memory = open(&db);
        assert_eq!(
            memory.indexed_vectors().unwrap(),
            p.model.len(),
            "restored: indexed"
        );
        for (q, want) in p.queries.iter().zip(&p.expected) {
            assert_eq!(
                vector_ids(&memory, q, QUERY_LIMIT),
                *want,
                "restored: results"
            );
        }
        let mut model = p.model.clone();
        let fresh = add_seeded(&memory, 310_000..310_020);
        assert_self_found(&memory, &fresh, "added after restore");
        model.extend(fresh);
        memory.close().unwrap();
        assert_repaired(&db, &model, &p.queries, p.seq + 20, "restored backup");
    }

    // Index files copied from another store (fewer memories, lower seq).
    {
        let other = tempfile::tempdir().unwrap();
        let other_db = other.path().join("mem.db");
        let memory = open(&other_db);
        add_seeded(&memory, 400_000..400_300);
        memory.close().unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_files(p.dir.path(), dir.path());
        let db = dir.path().join("mem.db");
        fs::copy(index_file(&other_db), index_file(&db)).unwrap();
        fs::copy(meta_file(&other_db), meta_file(&db)).unwrap();
        assert_repaired(&db, &p.model, &p.queries, p.seq, "index of another store");
    }
}

/// Two copies of one store that went different ways with the same number of changes have
/// the same store id, sequence numbers and counts; the saved index of one must not serve the
/// other (it used to: searches then returned the other copy's neighbours).
#[test]
fn the_saved_index_of_a_diverged_copy_is_not_trusted() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (dir_a.path().join("mem.db"), dir_b.path().join("mem.db"));
    let memory = open(&a);
    let mut model_a = add_seeded(&memory, 0..40);
    memory.close().unwrap();
    copy_files(dir_a.path(), dir_b.path());
    let mut model_b = model_a.clone();
    let memory = open(&a);
    model_a.extend(add_seeded(&memory, 1_000..1_030));
    memory.close().unwrap();
    let memory = open(&b);
    model_b.extend(add_seeded(&memory, 2_000..2_030));
    memory.close().unwrap();
    assert_eq!(saved_seq(&a), saved_seq(&b), "the same change sequence");
    for file in [index_file(&a), meta_file(&a)] {
        let name = file.file_name().unwrap().to_owned();
        let other = dir_b.path().join(&name);
        let swap = dir_a.path().join("swap");
        fs::rename(&file, &swap).unwrap();
        fs::rename(&other, &file).unwrap();
        fs::rename(&swap, &other).unwrap();
    }
    for (db, model, what) in [(&a, &model_a, "copy a"), (&b, &model_b, "copy b")] {
        let memory = open(db);
        assert_eq!(memory.indexed_vectors().unwrap(), model.len(), "{what}");
        assert_self_found(&memory, model, what);
        memory.close().unwrap();
    }
}

/// A store of schema version 1 (change rows without digests) is migrated at open; its saved
/// index, which no digest vouches for, is rebuilt, and the store goes on as any other.
#[test]
fn a_version_1_store_is_migrated_and_its_index_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let memory = open(&db);
    let mut model = add_seeded(&memory, 0..30);
    memory.close().unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "ALTER TABLE changes DROP COLUMN digest;
             DROP TABLE versions;
             DROP TABLE versions_fts;
             DROP INDEX memories_superseded;
             DROP INDEX history_change;
             ALTER TABLE memories DROP COLUMN version;
             ALTER TABLE memories DROP COLUMN valid_from;
             ALTER TABLE memories DROP COLUMN valid_to;
             ALTER TABLE memories DROP COLUMN superseded_by;
             ALTER TABLE history DROP COLUMN change_id;
             ALTER TABLE history DROP COLUMN undone_by;
             DROP TABLE entity_history;
             DROP TABLE entity_embeddings;
             DROP TABLE forgotten_sources;
             DROP TABLE relation_sources;
             DROP TABLE relations;
             DROP TABLE entity_names;
             DROP TABLE entities;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
    let memory = open(&db);
    assert_self_found(&memory, &model, "migrated");
    model.extend(add_seeded(&memory, 100..110));
    memory.close().unwrap();
    let version: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, agent_mem::SCHEMA_VERSION.to_string());
    let saved = age(&index_file(&db));
    let memory = open(&db);
    assert_self_found(&memory, &model, "reopened");
    memory.close().unwrap();
    assert_eq!(mtime(&index_file(&db)), saved, "a good index was rebuilt");
}

// ------------------------------------------------------------------ 2. crash

fn crash_seed(batch: u64, item: u64) -> u64 {
    1_000_000 + batch * 1000 + item
}

fn crash_content(batch: u64, item: u64) -> String {
    format!("crash batch {batch} item {item} marker{batch}x")
}

/// The child of [`killed_writer_loses_no_acknowledged_batch`]: adds batches until killed,
/// printing `ACK <n>` once batch `n` is stored; saves the index every third batch so that a
/// kill may also land in the middle of a save.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let start: u64 = std::env::var(CRASH_START_ENV).unwrap().parse().unwrap();
    let memory = open(Path::new(&path));
    let stdout = std::io::stdout();
    for n in start..start + 5_000 {
        let items: Vec<(NewMemory, Vec<f32>)> = (0..CRASH_BATCH as u64)
            .map(|j| {
                (
                    NewMemory::new(crash_content(n, j)).meta("batch", format!("batch-{n}")),
                    vector(crash_seed(n, j)),
                )
            })
            .collect();
        memory.add_batch_with_vectors(items).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "ACK {n}").unwrap();
        out.flush().unwrap();
        drop(out);
        if n % 3 == 2 {
            memory.flush().unwrap();
        }
    }
}

/// Runs the crash child from batch `start` and SIGKILLs it `delay` after its `acks`-th ACK;
/// returns the acknowledged batch numbers.
fn crash_round(db: &Path, start: u64, acks: usize, delay: Duration) -> BTreeSet<u64> {
    let mut child = spawn_child(
        "crash_child",
        &[
            (CRASH_ENV, db.display().to_string()),
            (CRASH_START_ENV, start.to_string()),
        ],
    );
    let rx = read_tagged(&mut child, "ACK ");
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < acks {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(n) => {
                acked.insert(n);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "crash child stopped early after {} ACKs ({e}): {status:?}",
                    acked.len()
                );
            }
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for child");
    assert!(
        !status.success(),
        "the child ran to the end instead of being killed"
    );
    // ACKs written before it died are still in the pipe.
    acked.extend(rx.iter());
    acked
}

/// Checks the store after a crash; returns the batches present.
fn check_after_crash(db: &Path, acked: &BTreeSet<u64>) -> BTreeSet<u64> {
    let memory = open(db);
    let records = all_memories(&memory);
    let mut batches: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &records {
        let tag = r.metadata["batch"].as_str().expect("batch tag");
        let n: u64 = tag.strip_prefix("batch-").unwrap().parse().unwrap();
        *batches.entry(n).or_default() += 1;
    }
    for (n, k) in &batches {
        assert_eq!(
            *k, CRASH_BATCH,
            "batch {n} is partially present ({k} memories)"
        );
    }
    for n in acked {
        assert!(batches.contains_key(n), "acknowledged batch {n} is lost");
    }
    assert_eq!(total(&memory), records.len(), "count vs list");
    assert_eq!(
        memory.indexed_vectors().unwrap(),
        records.len(),
        "vector index vs SQLite after the crash"
    );
    for r in &records {
        let mut words = r.content.split(' ');
        let (b, i): (u64, u64) = (
            words.nth(2).unwrap().parse().unwrap(),
            words.nth(1).unwrap().parse().unwrap(),
        );
        let hits = memory
            .search_with_vector("", &vector(crash_seed(b, i)), &vector_options(1))
            .unwrap();
        assert_eq!(
            hits[0].memory.id, r.id,
            "{:?} not found by its own vector",
            r.content
        );
    }
    let last = *acked.last().unwrap();
    let hits = memory
        .search(
            &format!("marker{last}x"),
            &SearchOptions::new().mode(SearchMode::Keyword).limit(100),
        )
        .unwrap();
    assert_eq!(hits.len(), CRASH_BATCH, "keyword search for batch {last}");
    for h in &hits {
        assert_eq!(h.memory.metadata["batch"], format!("batch-{last}"));
    }
    memory.close().unwrap();
    batches.keys().copied().collect()
}

#[test]
fn killed_writer_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(seed);
    let mut acked_all = BTreeSet::new();
    let mut next = 0;
    for (round, acks) in [5usize, 9, 14].into_iter().enumerate() {
        let delay = Duration::from_millis(rng.below(120));
        let acked = crash_round(&db, next, acks, delay);
        eprintln!(
            "crash round {round} (seed {seed}): killed {delay:?} after ACK {acks}; acked {:?}",
            acked.last()
        );
        acked_all.extend(acked);
        let present = check_after_crash(&db, &acked_all);
        next = present.last().map_or(0, |n| n + 1);
    }
}

// ------------------------------------------------------------------ 3. two processes

fn writer_seed(i: usize) -> u64 {
    2_000_000 + i as u64
}

fn writer_content(i: usize) -> String {
    format!("writer item {i} wmark{i}z")
}

/// The child of [`a_second_process_sees_writes_as_they_happen`]: writes `WRITER_TOTAL`
/// memories in small batches, slowly, printing `WROTE <i>` after the batch ending with `i`.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return;
    };
    let memory = open(Path::new(&path));
    let stdout = std::io::stdout();
    for start in (0..WRITER_TOTAL).step_by(WRITER_BATCH) {
        let items: Vec<(NewMemory, Vec<f32>)> = (start..start + WRITER_BATCH)
            .map(|i| (NewMemory::new(writer_content(i)), vector(writer_seed(i))))
            .collect();
        memory.add_batch_with_vectors(items).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "WROTE {}", start + WRITER_BATCH - 1).unwrap();
        out.flush().unwrap();
        drop(out);
        // Read too, and sometimes save the index the other process also saves.
        let hits = memory
            .search_with_vector("", &vector(writer_seed(start)), &vector_options(1))
            .unwrap();
        assert_eq!(hits[0].memory.content, writer_content(start));
        if start % 50 == 0 {
            memory.flush().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    memory.close().unwrap();
}

#[test]
fn a_second_process_sees_writes_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let memory = open(&db);
    let mut own = add_seeded(&memory, 3_000_000..3_000_020);
    memory.flush().unwrap();

    let mut child = spawn_child("writer_child", &[(WRITER_ENV, db.display().to_string())]);
    let rx = read_tagged(&mut child, "WROTE ");
    let mut seen_counts = BTreeSet::new();
    let mut checked = 0;
    let mut next_own = 3_000_020u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest = match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(i) => Some(i as usize),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        assert!(Instant::now() < deadline, "writer child too slow");
        let count = total(&memory);
        seen_counts.insert(count);
        if let Some(i) = latest {
            // The batch ending with `i` was committed before the child said so.
            assert!(
                count > own.len() + i,
                "count {count} behind the child's item {i}"
            );
            let hits = memory
                .search_with_vector("", &vector(writer_seed(i)), &vector_options(1))
                .unwrap();
            assert_eq!(
                hits[0].memory.content,
                writer_content(i),
                "child's item {i} not found"
            );
            checked += 1;
        }
        // Write meanwhile, as the child does.
        if own.len() < 70 {
            own.extend(add_seeded(&memory, [next_own]));
            next_own += 1;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "writer child failed: {status:?}");
    assert_eq!(
        checked,
        WRITER_TOTAL / WRITER_BATCH,
        "every WROTE line was checked"
    );
    assert!(
        seen_counts.len() > 10,
        "the count did not grow gradually: {seen_counts:?}"
    );
    let expected = own.len() + WRITER_TOTAL;
    assert_eq!(total(&memory), expected);
    assert_eq!(memory.indexed_vectors().unwrap(), expected);
    for i in 0..WRITER_TOTAL {
        let hits = memory
            .search_with_vector("", &vector(writer_seed(i)), &vector_options(1))
            .unwrap();
        assert_eq!(hits[0].memory.content, writer_content(i));
    }
    assert_self_found(&memory, &own, "parent's own writes");
    memory.close().unwrap();

    let memory = open(&db);
    assert_eq!(total(&memory), expected);
    assert_eq!(
        memory.indexed_vectors().unwrap(),
        expected,
        "after reopening"
    );
    assert_self_found(&memory, &own, "reopened");
}

// ------------------------------------------------------------------ 4. threads

#[test]
fn threads_share_one_memory() {
    const WRITERS: usize = 4;
    const SEARCHERS: usize = 4;
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let memory = Arc::new(
        Memory::builder()
            .path(&db)
            .embedder(Arc::new(HashingEmbedder::new(64)))
            .build()
            .unwrap(),
    );
    let writing = Arc::new(AtomicBool::new(true));
    let added = Arc::new(AtomicUsize::new(0));
    let deleted = Arc::new(AtomicUsize::new(0));
    let searches = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (memory, added, deleted) = (memory.clone(), added.clone(), deleted.clone());
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut mine = Vec::new();
            for r in 0..ROUNDS {
                let batch: Vec<NewMemory> = (0..3)
                    .map(|k| {
                        NewMemory::new(format!("writer w{w} round r{r} item k{k} apples pears"))
                    })
                    .collect();
                let outcomes = memory
                    .add_batch(batch)
                    .map_err(|e| format!("add_batch: {e}"))?;
                for o in outcomes {
                    if !o.added {
                        return Err(format!("distinct content not added: {}", o.id));
                    }
                    mine.push(o.id);
                }
                added.fetch_add(3, Ordering::SeqCst);
                // A duplicate is not stored twice.
                let again = memory
                    .add(NewMemory::new(format!(
                        "writer w{w} round r{r} item k0 apples pears"
                    )))
                    .map_err(|e| format!("add duplicate: {e}"))?;
                if again.added {
                    return Err("a duplicate was stored twice".into());
                }
                if r % 5 == 4 {
                    let id = mine.remove(0);
                    memory.delete(&id).map_err(|e| format!("delete: {e}"))?;
                    deleted.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(())
        }));
    }
    let mut searchers = Vec::new();
    for s in 0..SEARCHERS {
        let (memory, writing, searches) = (memory.clone(), writing.clone(), searches.clone());
        searchers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut rng = Rng::new(s as u64);
            let mut i = 0;
            while writing.load(Ordering::SeqCst) || i < 20 {
                if i >= 2_000 {
                    break;
                }
                let (w, r) = (rng.below(WRITERS as u64), rng.below(ROUNDS as u64));
                let query = format!("writer w{w} round r{r}");
                let mode = [SearchMode::Hybrid, SearchMode::Vector, SearchMode::Keyword][i % 3];
                memory
                    .search(&query, &SearchOptions::new().mode(mode).limit(5))
                    .map_err(|e| format!("search {mode:?}: {e}"))?;
                memory
                    .indexed_vectors()
                    .map_err(|e| format!("indexed_vectors: {e}"))?;
                searches.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            Ok(())
        }));
    }
    let mut errors = Vec::new();
    for h in handles {
        if let Err(e) = h.join().expect("writer panicked") {
            errors.push(e);
        }
    }
    writing.store(false, Ordering::SeqCst);
    for h in searchers {
        if let Err(e) = h.join().expect("searcher panicked") {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "errors: {errors:?}");
    let expected = added.load(Ordering::SeqCst) - deleted.load(Ordering::SeqCst);
    assert_eq!(expected, WRITERS * ROUNDS * 3 - WRITERS * ROUNDS / 5);
    assert_eq!(total(&memory), expected);
    assert_eq!(memory.indexed_vectors().unwrap(), expected);
    assert!(searches.load(Ordering::SeqCst) >= SEARCHERS * 20);
    let hits = memory
        .search(
            "writer w2 round r39 item k2",
            &SearchOptions::new().mode(SearchMode::Phrase).limit(1),
        )
        .unwrap();
    assert_eq!(
        hits[0].memory.content,
        "writer w2 round r39 item k2 apples pears"
    );
    // Many more threads searching at once than there are cores: none may fail for want of
    // a search context in the index.
    let storm: Vec<_> = (0..12u64)
        .map(|t| {
            let memory = memory.clone();
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..60 {
                    let query = format!("writer w{} round r{} apples", t % 4, i % ROUNDS);
                    memory
                        .search(&query, &SearchOptions::new().mode(SearchMode::Vector))
                        .map_err(|e| format!("search storm: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    let errors: Vec<String> = storm
        .into_iter()
        .filter_map(|h| h.join().expect("storm thread panicked").err())
        .collect();
    assert!(errors.is_empty(), "errors: {errors:?}");
    Arc::try_unwrap(memory).unwrap().close().unwrap();
    let memory = Memory::builder()
        .path(&db)
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap();
    assert_eq!(
        memory.indexed_vectors().unwrap(),
        expected,
        "after reopening"
    );
}

/// Commit times follow commit order: 16 threads add, update (each other's memories too)
/// and delete; every history row, in commit order (by `seq`: SQLite has one writer), is no
/// earlier than the row before it, and a memory's `created_at` / `updated_at` are the times
/// of its first and last rows. (The time used to be taken before the write lock.)
#[test]
fn commit_times_follow_commit_order() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let memory = Arc::new(
        Memory::builder()
            .path(&db)
            .embedder(Arc::new(HashingEmbedder::new(16)))
            .build()
            .unwrap(),
    );
    let ids = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (memory, ids) = (memory.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(t as u64 + 1);
                for r in 0..ROUNDS {
                    let id = memory
                        .add(NewMemory::new(format!("thread {t} round {r}")))
                        .unwrap()
                        .id;
                    let other = {
                        let mut ids = ids.lock().unwrap();
                        ids.push(id);
                        ids[rng.below(ids.len() as u64) as usize].clone()
                    };
                    // Another thread may have deleted it meanwhile.
                    let _ = memory.update(
                        &other,
                        MemoryUpdate::content(format!("changed by {t} in round {r}")),
                    );
                    if rng.below(5) == 0 {
                        let _ = memory.delete(&other);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT memory_id, created_at FROM history ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Every add, and the updates and deletes that found their memory.
    assert!(rows.len() > THREADS * ROUNDS, "{} rows", rows.len());
    let backwards: Vec<String> = rows
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| format!("{} after {}", w[1].1, w[0].1))
        .collect();
    assert!(backwards.is_empty(), "times going back: {backwards:?}");
    for id in ids.lock().unwrap().iter() {
        let history = memory.history(id).unwrap();
        for pair in history.windows(2) {
            assert!(
                pair[0].created_at <= pair[1].created_at,
                "{id}: {history:?}"
            );
        }
        if let Ok(record) = memory.get(id) {
            assert_eq!(record.created_at, history[0].created_at, "{id}");
            assert_eq!(
                record.updated_at,
                history.last().unwrap().created_at,
                "{id}"
            );
        }
    }
}

/// A clock behind the store's last commit (set back, or another machine's) never stamps a
/// change before it: the change gets the last time + 1 µs.
#[test]
fn a_clock_behind_the_last_commit_does_not_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let memory = open(&db);
    let first = memory
        .add_with_vector(NewMemory::new("first"), vector(1))
        .unwrap()
        .id;
    let ahead =
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() + chrono::Duration::days(1), 6);
    let ahead_text = ahead.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'last_commit_time'",
            [&ahead_text],
        )
        .unwrap();
    let second = memory
        .add_with_vector(NewMemory::new("second"), vector(2))
        .unwrap()
        .id;
    let record = memory.get(&second).unwrap();
    assert_eq!(record.created_at, ahead + chrono::Duration::microseconds(1));
    memory.delete(&first).unwrap();
    let history = memory.history(&first).unwrap();
    assert_eq!(
        history.last().unwrap().created_at,
        ahead + chrono::Duration::microseconds(2)
    );
}

// ------------------------------------------------------------------ 5. reset

#[test]
fn reset_is_seen_by_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let a = open(&db);
    let b = open(&db);
    let old = add_seeded(&a, 0..200);
    // B has caught up with A's writes.
    assert_eq!(b.indexed_vectors().unwrap(), 200);
    assert_self_found(&b, &old, "before reset");

    a.reset().unwrap();
    assert_eq!(total(&b), 0);
    for v in old.values().take(20) {
        assert!(
            vector_ids(&b, v, 10).is_empty(),
            "B still finds reset memories"
        );
    }
    assert!(b
        .search(
            "memory about topic",
            &SearchOptions::new().mode(SearchMode::Keyword).limit(10)
        )
        .unwrap()
        .is_empty());
    assert_eq!(
        b.indexed_vectors().unwrap(),
        0,
        "B's vector index still holds reset memories"
    );

    let new = add_seeded(&a, 10_000..10_020);
    assert_eq!(b.indexed_vectors().unwrap(), 20, "B's index after new adds");
    for (id, v) in &new {
        let hits = vector_ids(&b, v, 50);
        assert_eq!(hits.first(), Some(id), "B does not find a new memory first");
        let got: HashSet<&String> = hits.iter().collect();
        let want: HashSet<&String> = new.keys().collect();
        assert_eq!(got, want, "B's hits are not exactly the new memories");
    }
    // Both save their index on close (B last); the next open agrees with SQLite.
    a.close().unwrap();
    b.close().unwrap();
    let c = open(&db);
    assert_eq!(total(&c), 20);
    assert_eq!(c.indexed_vectors().unwrap(), 20, "saved index after reset");
    assert_self_found(&c, &new, "reopened after reset");
}

// ------------------------------------------------------------------ 6. pruned change log

#[test]
fn a_handle_behind_a_pruned_change_log_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mem.db");
    let a = open(&db);
    let b = open(&db);
    let first = add_seeded(&a, 0..100);
    assert_eq!(b.indexed_vectors().unwrap(), 100);
    // B falls behind: deletes it has not seen, then more changes than the log keeps behind
    // a saved index; A's save prunes the log past B's position.
    let mut gone: Vec<&String> = first.keys().collect();
    gone.sort();
    gone.truncate(10);
    for id in &gone {
        a.delete(id).unwrap();
    }
    for k in 0..10u64 {
        add_seeded(&a, 10_000 + k * 1_005..10_000 + (k + 1) * 1_005);
    }
    a.flush().unwrap();
    let expected = 100 - 10 + 10_050;
    assert_eq!(total(&b), expected);
    assert_eq!(
        b.indexed_vectors().unwrap(),
        expected,
        "B replayed a pruned log instead of rebuilding"
    );
    for id in &gone {
        let hits = vector_ids(&b, &first[*id], 1);
        assert_ne!(hits.first(), Some(*id), "B finds a deleted memory");
    }
    let kept: HashMap<String, Vec<f32>> = first
        .iter()
        .filter(|(id, _)| !gone.contains(id))
        .map(|(id, v)| (id.clone(), v.clone()))
        .collect();
    assert_self_found(&b, &kept, "B after the rebuild");
}

#[test]
fn temporaries_of_an_interrupted_save_are_cleaned_up_when_old() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tmp.db");
    let memory = open(&db);
    add_seeded(&memory, 0..20);
    memory.close().unwrap();
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    // What a process killed in the middle of `save` leaves behind.
    let old_tmp = dir.path().join(format!("{name}.usearch.tmp-1.dead"));
    let old_meta = dir.path().join(format!("{name}.usearch.meta.tmp-1.dead"));
    let fresh_tmp = dir.path().join(format!("{name}.usearch.tmp-2.saving"));
    for p in [&old_tmp, &old_meta, &fresh_tmp] {
        std::fs::write(p, b"partial").unwrap();
    }
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for p in [&old_tmp, &old_meta] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let memory = open(&db);
    assert!(
        !old_tmp.exists() && !old_meta.exists(),
        "stale temporaries stay"
    );
    assert!(
        fresh_tmp.exists(),
        "a save that may still be running lost its file"
    );
    assert_eq!(total(&memory), 20);
}
