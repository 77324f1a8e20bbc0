//! Three promises of one transaction each: an update that merges metadata (never losing a
//! concurrent merge's keys), a page listed with its total (both from one read snapshot), and
//! `add_messages` without inference reporting each stored message's role and author. Also
//! their JSON requests through the one dispatch. (The PostgreSQL side lives in `postgres`.)

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use agent_mem::{
    wire, AddMessages, ErrorCode, HashingEmbedder, ListOptions, Memory, MemoryEventKind,
    MemoryUpdate, Message, Metadata, NewMemory, Scope,
};
use chrono::{Duration, Utc};
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

// ------------------------------------------------------------------------------- total

#[test]
fn a_page_with_its_total() {
    let m = mem();
    for i in 0..7 {
        m.add(NewMemory::new(format!("fact {i}")).user("u").meta("n", i))
            .unwrap();
    }
    m.add(NewMemory::new("someone else's").user("v")).unwrap();
    m.add(NewMemory::new("for everyone")).unwrap();
    m.add(
        NewMemory::new("expired fact")
            .user("u")
            .expires_at(Utc::now() - Duration::hours(1)),
    )
    .unwrap();
    let page = m
        .list(&ListOptions::new().user("u").limit(3).with_total())
        .unwrap();
    assert_eq!((page.items.len(), page.total), (3, Some(7)));
    assert!(page.next_cursor.is_some());
    // The total is the selection's, whichever page: offsets, cursors, past the end.
    let mut options = ListOptions::new().user("u").limit(3).with_total();
    options.offset = 6;
    let last = m.list(&options).unwrap();
    assert_eq!(
        (last.items.len(), last.total, last.next_cursor),
        (1, Some(7), None)
    );
    options.offset = 100;
    assert_eq!(m.list(&options).unwrap().total, Some(7));
    options.offset = 0;
    options.cursor = page.next_cursor.clone();
    assert_eq!(m.list(&options).unwrap().total, Some(7));
    // It follows the selection: filters, the global layer, expired memories.
    let filtered = ListOptions::new()
        .user("u")
        .with_total()
        .filter(agent_mem::Filter::from_json(&json!({"n": {"gte": 5}})).unwrap());
    assert_eq!(m.list(&filtered).unwrap().total, Some(2));
    let mut global = ListOptions::new().user("u").with_total();
    global.include_global = true;
    assert_eq!(m.list(&global).unwrap().total, Some(8));
    let mut expired = ListOptions::new().user("u").with_total();
    expired.include_expired = true;
    let all = m.list(&expired).unwrap();
    assert_eq!((all.items.len(), all.total), (8, Some(8)));
    assert_eq!(m.count(&Scope::user("u"), None).unwrap(), 7);
    // Not asked for: none.
    assert_eq!(m.list(&ListOptions::new().user("u")).unwrap().total, None);
}

#[test]
fn a_total_through_the_dispatch() {
    let m = mem();
    for i in 0..3 {
        m.add(NewMemory::new(format!("fact {i}")).user("u"))
            .unwrap();
    }
    let page = wire::call(
        &m,
        "list",
        &json!({"user_id": "u", "limit": 2, "with_total": true}),
    )
    .unwrap();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    // Left out unless asked for: the result keeps its shape.
    let page = wire::call(&m, "list", &json!({"user_id": "u"})).unwrap();
    assert!(page.get("total").is_none(), "{page}");
    let page = wire::call(&m, "list", &json!({"user_id": "u", "with_total": false})).unwrap();
    assert!(page.get("total").is_none(), "{page}");
}

/// Writers adding and deleting in pairs while pages are read with their totals: each total
/// is the size of the same snapshot as its page, never one pair off.
#[test]
fn the_total_and_the_page_come_from_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("total.db");
    let reader = mem_at(&path);
    for i in 0..10 {
        reader
            .add(NewMemory::new(format!("stable {i}")).user("u"))
            .unwrap();
    }
    let writer = mem_at(&path);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Two memories in, then both out: each in one transaction.
                writer
                    .add_batch(vec![
                        NewMemory::new(format!("churn {i} a"))
                            .user("u")
                            .meta("churn", i),
                        NewMemory::new(format!("churn {i} b"))
                            .user("u")
                            .meta("churn", i),
                    ])
                    .unwrap();
                let pair = agent_mem::Filter::from_json(&json!({"churn": i})).unwrap();
                assert_eq!(
                    writer.delete_all(&Scope::user("u"), Some(&pair)).unwrap(),
                    2
                );
                i += 1;
            }
        })
    };
    for _ in 0..200 {
        let page = reader
            .list(&ListOptions::new().user("u").limit(1000).with_total())
            .unwrap();
        // A whole snapshot fits on the page: the total must be its length, 10 or 12.
        assert_eq!(page.total, Some(page.items.len()));
        assert!(matches!(page.items.len(), 10 | 12), "{}", page.items.len());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

// ------------------------------------------------------------------------------- raw events

#[test]
fn stored_messages_report_their_role_and_author() {
    let m = mem();
    let events = m
        .add_messages(
            AddMessages::new(vec![
                Message::system("You are helpful."),
                Message {
                    name: Some("al".into()),
                    ..Message::user("I'm vegetarian")
                },
                Message::assistant("Noted, no meat."),
            ])
            .user("alice")
            .metadata(meta(json!({"topic": "food"})))
            .infer(false),
        )
        .unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.event, e.role.as_deref(), e.actor_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (MemoryEventKind::Add, Some("user"), Some("al")),
            (MemoryEventKind::Add, Some("assistant"), None),
        ]
    );
    // The same in the memories' metadata: role always, actor_id only with a name.
    let first = m.get(&events[0].id).unwrap();
    assert_eq!(
        Value::Object(first.metadata),
        json!({"topic": "food", "role": "user", "actor_id": "al"})
    );
    let second = m.get(&events[1].id).unwrap();
    assert_eq!(
        Value::Object(second.metadata),
        json!({"topic": "food", "role": "assistant"})
    );
    // A duplicate is NONE, still with its message's role and author.
    let again = m
        .add_messages(
            AddMessages::new(vec![Message {
                name: Some("bo".into()),
                ..Message::user("I'm vegetarian")
            }])
            .user("alice")
            .infer(false),
        )
        .unwrap();
    assert_eq!(again[0].event, MemoryEventKind::None);
    assert_eq!(again[0].id, events[0].id);
    assert_eq!(
        (again[0].role.as_deref(), again[0].actor_id.as_deref()),
        (Some("user"), Some("bo"))
    );
    // In JSON: present only when known.
    let json = wire::call(
        &m,
        "add_messages",
        &json!({"messages": [{"role": "user", "content": "I cycle", "name": "al"},
                            {"role": "tool", "content": "42"}],
               "user_id": "alice", "infer": false}),
    )
    .unwrap();
    assert_eq!(json[0]["role"], "user");
    assert_eq!(json[0]["actor_id"], "al");
    assert_eq!(json[1]["role"], "tool");
    assert!(json[1].get("actor_id").is_none(), "{json}");
}
