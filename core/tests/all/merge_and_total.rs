//! An update that merges metadata into the stored metadata inside its write transaction:
//! concurrent merges never lose each other's keys. Also its JSON request through the one
//! dispatch. (The PostgreSQL side lives in `postgres`.)

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use agent_mem::{wire, ErrorCode, HashingEmbedder, Memory, MemoryUpdate, Metadata, NewMemory};
use serde_json::{json, Value};

fn hashing() -> Arc<HashingEmbedder> {
    Arc::new(HashingEmbedder::new(64))
}

fn mem() -> Memory {
    Memory::builder().embedder(hashing()).build().unwrap()
}

fn mem_at(path: &Path) -> Memory {
    Memory::builder()
        .path(path)
        .embedder(hashing())
        .build()
        .unwrap()
}

fn meta(value: Value) -> Metadata {
    value.as_object().unwrap().clone()
}

// ------------------------------------------------------------------------------- merge

#[test]
fn a_merge_sets_its_keys_and_keeps_the_others() {
    let m = mem();
    let id = m
        .add(
            NewMemory::new("likes tea")
                .user("u")
                .meta("a", 1)
                .meta("b", json!({"x": 1})),
        )
        .unwrap()
        .id;
    let merged = m
        .update(
            &id,
            MemoryUpdate::merge(meta(json!({"b": {"y": 2}, "c": null}))),
        )
        .unwrap();
    // Shallow: "b" is replaced whole; a null is a value like any other.
    assert_eq!(
        Value::Object(merged.metadata.clone()),
        json!({"a": 1, "b": {"y": 2}, "c": null})
    );
    assert_eq!(m.get(&id).unwrap().metadata, merged.metadata);
    // With new content in the same call: one UPDATE row, content and metadata together.
    let both = m
        .update(
            &id,
            MemoryUpdate {
                content: Some("likes green tea".into()),
                ..MemoryUpdate::merge(meta(json!({"d": true})))
            },
        )
        .unwrap();
    assert_eq!(both.content, "likes green tea");
    assert_eq!(
        Value::Object(both.metadata),
        json!({"a": 1, "b": {"y": 2}, "c": null, "d": true})
    );
    assert_eq!(m.history(&id).unwrap().len(), 3);
    // Without merge_metadata the object is replaced, as before.
    let replaced = m
        .update(&id, MemoryUpdate::metadata(meta(json!({"only": 1}))))
        .unwrap();
    assert_eq!(Value::Object(replaced.metadata), json!({"only": 1}));
}

#[test]
fn a_merge_is_checked_like_any_metadata() {
    let m = mem();
    let id = m.add(NewMemory::new("x").meta("k", 1)).unwrap().id;
    let e = m
        .update(
            &id,
            MemoryUpdate {
                merge_metadata: true,
                ..MemoryUpdate::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.message().contains("give metadata"), "{e}");
    let e = m
        .update(
            &id,
            MemoryUpdate::merge(meta(json!({"user_id": "mallory"}))),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = m
        .update("no-such-id", MemoryUpdate::merge(meta(json!({"k": 2}))))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(Value::Object(m.get(&id).unwrap().metadata), json!({"k": 1}));
}

/// Threads merging a key each into one memory, through handles of their own on one file (as
/// separate processes would) and a shared one: every key survives. A get-then-update (the
/// stored metadata read outside the write transaction) loses some.
#[test]
fn concurrent_merges_into_one_memory_lose_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merge.db");
    let first = mem_at(&path);
    let id = first
        .add(NewMemory::new("shared notes").user("team").meta("base", 0))
        .unwrap()
        .id;
    let handles: Vec<Arc<Memory>> = (0..3)
        .map(|_| Arc::new(mem_at(&path)))
        .chain(std::iter::once(Arc::new(first)))
        .collect();
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let memory = handles[t % handles.len()].clone();
            let barrier = barrier.clone();
            let id = id.clone();
            thread::spawn(move || {
                barrier.wait();
                for r in 0..ROUNDS {
                    let mut patch = Metadata::new();
                    patch.insert(format!("t{t}_r{r}"), json!(r));
                    patch.insert(format!("last_{t}"), json!(r));
                    memory.update(&id, MemoryUpdate::merge(patch)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stored = handles[0].get(&id).unwrap().metadata;
    assert_eq!(stored.len(), 1 + THREADS * ROUNDS + THREADS, "{stored:?}");
    for t in 0..THREADS {
        assert_eq!(stored[&format!("last_{t}")], json!(ROUNDS - 1));
        for r in 0..ROUNDS {
            assert!(stored.contains_key(&format!("t{t}_r{r}")), "t{t}_r{r} lost");
        }
    }
    assert_eq!(handles[0].history(&id).unwrap().len(), 1 + THREADS * ROUNDS);
}

#[test]
fn a_merge_through_the_dispatch() {
    let m = mem();
    let id = m.add(NewMemory::new("x").meta("a", 1)).unwrap().id;
    let out = wire::call(
        &m,
        "update",
        &json!({"id": id, "metadata": {"b": 2}, "merge_metadata": true}),
    )
    .unwrap();
    assert_eq!(out["metadata"], json!({"a": 1, "b": 2}));
    let out = wire::call(
        &m,
        "update",
        &json!({"id": id, "metadata": {"c": 3}, "merge_metadata": false}),
    )
    .unwrap();
    assert_eq!(out["metadata"], json!({"c": 3}));
    let e = wire::call(&m, "update", &json!({"id": id, "merge_metadata": true})).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = wire::call(
        &m,
        "update",
        &json!({"id": id, "metadata": {}, "merge_metadata": "yes"}),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
}
