//! Integration tests of the public API: every operation, every documented error, and the
//! promise that a failed call leaves the store exactly as it was.
//!
//! Most tests use [`HashingEmbedder`] (deterministic bag of words, microseconds per text) or
//! no embedder at all with caller-supplied vectors; none needs the real model.

use std::collections::HashSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::thread;

use agent_mem::{
    Error, ErrorCode, Filter, HashingEmbedder, HistoryEvent, ListOptions, ListOrder, Memory,
    MemoryKind, MemoryRecord, MemoryUpdate, Metadata, NewMemory, Scope, SearchMode, SearchOptions,
    MAX_CONTENT_BYTES, RESERVED_METADATA_KEYS,
};
use chrono::{Duration, Utc};
use serde_json::json;

// ------------------------------------------------------------------------------- helpers

fn hashing() -> Arc<HashingEmbedder> {
    Arc::new(HashingEmbedder::new(64))
}

/// A fresh in-memory store with the 64-dimensional hashing embedder.
fn mem() -> Memory {
    Memory::builder().embedder(hashing()).build().unwrap()
}

/// A store at `path` with the 64-dimensional hashing embedder.
fn mem_at(path: &Path) -> Memory {
    Memory::builder()
        .path(path)
        .embedder(hashing())
        .build()
        .unwrap()
}

/// A fresh in-memory store without an embedder.
fn bare() -> Memory {
    Memory::builder().without_embedder().build().unwrap()
}

/// The error of a call that must fail with `code`.
#[track_caller]
fn expect_err<T: Debug>(result: agent_mem::Result<T>, code: ErrorCode) -> Error {
    match result {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "wrong code: {e}");
            e
        }
    }
}

/// Everything a user can observe about the stored memories (expired ones included), to
/// prove that a failed call changed nothing.
#[derive(Debug, PartialEq)]
struct Snapshot {
    count: usize,
    records: Vec<MemoryRecord>,
    history_rows: usize,
}

fn snapshot(m: &Memory) -> Snapshot {
    let records = all(m, true);
    let history_rows = records
        .iter()
        .map(|r| m.history(&r.id).unwrap().len())
        .sum();
    Snapshot {
        count: m.count(&Scope::global(), None).unwrap(),
        records,
        history_rows,
    }
}

/// Every memory, oldest first.
fn all(m: &Memory, include_expired: bool) -> Vec<MemoryRecord> {
    let options = ListOptions {
        include_expired,
        order: ListOrder::CreatedAsc,
        limit: 10_000,
        ..ListOptions::default()
    };
    m.list(&options).unwrap().items
}

fn ids(records: &[MemoryRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn hit_ids(hits: &[agent_mem::SearchHit]) -> Vec<String> {
    hits.iter().map(|h| h.memory.id.clone()).collect()
}

fn keyword(m: &Memory, query: &str) -> Vec<String> {
    hit_ids(
        &m.search(query, &SearchOptions::new().mode(SearchMode::Keyword))
            .unwrap(),
    )
}

fn add(m: &Memory, memory: NewMemory) -> String {
    let out = m.add(memory).unwrap();
    assert!(out.added);
    out.id
}

fn meta(value: serde_json::Value) -> Metadata {
    value.as_object().unwrap().clone()
}

fn filter(value: serde_json::Value) -> Filter {
    Filter::from_json(&value).unwrap()
}

fn list_with(m: &Memory, options: ListOptions) -> Vec<String> {
    ids(&m.list(&options).unwrap().items)
}

// ------------------------------------------------------------------------------- add / get

#[test]
fn add_then_get_returns_every_field() {
    let m = mem();
    let expires = Utc::now() + Duration::days(3);
    let before = Utc::now();
    let out = m
        .add(
            NewMemory::new("hello")
                .user("alice")
                .agent("planner")
                .run("run-7")
                .org("acme")
                .kind(MemoryKind::Semantic)
                .meta("topic", "greeting")
                .meta("tags", json!(["a", "b"]))
                .expires_at(expires),
        )
        .unwrap();
    assert!(out.added);
    assert_eq!(out.id.len(), 36, "a UUID string: {}", out.id);
    let r = m.get(&out.id).unwrap();
    assert_eq!(r.id, out.id);
    assert_eq!(r.content, "hello");
    assert_eq!(
        r.hash, "5d41402abc4b2a76b9719d911017c592",
        "MD5 hex of the content"
    );
    assert_eq!(r.kind, MemoryKind::Semantic);
    assert_eq!(
        r.scope,
        Scope::user("alice")
            .with_agent("planner")
            .with_run("run-7")
            .with_org("acme")
    );
    assert_eq!(
        r.metadata,
        meta(json!({"topic": "greeting", "tags": ["a", "b"]}))
    );
    assert_eq!(r.created_at, r.updated_at);
    assert!(r.created_at >= before - Duration::seconds(1) && r.created_at <= Utc::now());
    // Stored with microsecond precision.
    let diff = (r.expires_at.unwrap() - expires)
        .num_microseconds()
        .unwrap();
    assert!(diff.abs() <= 1, "{diff}");

    let h = m.history(&out.id).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].event, HistoryEvent::Add);
    assert_eq!(h[0].memory_id, out.id);
    assert_eq!(h[0].old_content, None);
    assert_eq!(h[0].new_content.as_deref(), Some("hello"));
    assert!(!h[0].is_deleted);
    assert_eq!(h[0].actor, "user");
}

#[test]
fn defaults_are_global_episodic_without_metadata() {
    let m = mem();
    let id = add(&m, NewMemory::new("plain fact"));
    let r = m.get(&id).unwrap();
    assert!(r.scope.is_global());
    assert_eq!(r.kind, MemoryKind::Episodic);
    assert!(r.metadata.is_empty());
    assert_eq!(r.expires_at, None);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(m.indexed_vectors().unwrap(), 1);
}

#[test]
fn list_and_count_see_what_was_added() {
    let m = mem();
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    assert!(m.list(&ListOptions::new()).unwrap().items.is_empty());
    let a = add(&m, NewMemory::new("first"));
    let b = add(&m, NewMemory::new("second"));
    let c = add(&m, NewMemory::new("third"));
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 3);
    let page = m.list(&ListOptions::new()).unwrap();
    assert_eq!(
        ids(&page.items),
        [c.clone(), b.clone(), a.clone()],
        "newest first"
    );
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        list_with(&m, ListOptions::new().order(ListOrder::CreatedAsc)),
        [a, b, c]
    );
}

#[test]
fn search_modes_find_added_memories() {
    let m = mem();
    let pizza = add(
        &m,
        NewMemory::new("Alice loves pizza with olives").user("alice"),
    );
    let tea = add(
        &m,
        NewMemory::new("Bob drinks green tea every morning").user("bob"),
    );
    assert_eq!(keyword(&m, "pizza"), [pizza.as_str()]);
    assert_eq!(keyword(&m, "tea"), [tea.as_str()]);
    let vector = m
        .search(
            "Alice loves pizza with olives",
            &SearchOptions::new().mode(SearchMode::Vector).limit(1),
        )
        .unwrap();
    assert_eq!(hit_ids(&vector), [pizza.as_str()]);
    assert!(vector[0].similarity.unwrap() > 0.99, "{:?}", vector[0]);
    let hybrid = m.search("green tea", &SearchOptions::new()).unwrap();
    assert_eq!(hybrid[0].memory.id, tea);
    let scoped = m
        .search(
            "pizza",
            &SearchOptions::new().user("bob").mode(SearchMode::Keyword),
        )
        .unwrap();
    assert!(scoped.is_empty(), "{scoped:?}");
}

// ------------------------------------------------------------------------------- update

#[test]
fn update_content_rewrites_history_hash_and_search() {
    let m = mem();
    let id = add(&m, NewMemory::new("Alice lives in Paris").user("alice"));
    let before = m.get(&id).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let after = m
        .update(&id, MemoryUpdate::content("Alice moved to Berlin"))
        .unwrap();
    assert_eq!(after.content, "Alice moved to Berlin");
    assert_ne!(after.hash, before.hash);
    assert_eq!(after.created_at, before.created_at);
    assert!(after.updated_at > before.updated_at);
    assert_eq!(m.get(&id).unwrap(), after);

    let h = m.history(&id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].event, HistoryEvent::Update);
    assert_eq!(h[1].old_content.as_deref(), Some("Alice lives in Paris"));
    assert_eq!(h[1].new_content.as_deref(), Some("Alice moved to Berlin"));
    assert!(!h[1].is_deleted);
    assert_eq!(h[1].actor, "user");

    assert_eq!(keyword(&m, "Berlin"), [id.as_str()]);
    assert!(keyword(&m, "Paris").is_empty());
    // The new vector replaced the old one.
    let v = m
        .search(
            "Alice moved to Berlin",
            &SearchOptions::new().mode(SearchMode::Vector).limit(1),
        )
        .unwrap();
    assert!(v[0].similarity.unwrap() > 0.99, "{v:?}");
    assert_eq!(m.indexed_vectors().unwrap(), 1);
    // Fuzzy vocabulary follows too.
    let fuzzy = |q: &str| {
        hit_ids(
            &m.search(q, &SearchOptions::new().mode(SearchMode::Fuzzy))
                .unwrap(),
        )
    };
    assert_eq!(fuzzy("Berlinn"), [id.as_str()]);
    assert!(fuzzy("Pariss").is_empty());
}

#[test]
fn update_metadata_only_keeps_content_and_replaces_metadata_whole() {
    let m = mem();
    let id = add(
        &m,
        NewMemory::new("likes jazz").meta("a", 1).meta("b", "two"),
    );
    let before = m.get(&id).unwrap();
    let after = m
        .update(&id, MemoryUpdate::metadata(meta(json!({"c": true}))))
        .unwrap();
    assert_eq!(after.content, before.content);
    assert_eq!(after.hash, before.hash);
    assert_eq!(after.metadata, meta(json!({"c": true})));
    let h = m.history(&id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].event, HistoryEvent::Update);
    assert_eq!(h[1].old_content.as_deref(), Some("likes jazz"));
    assert_eq!(h[1].new_content.as_deref(), Some("likes jazz"));
    let by_meta = |f: serde_json::Value| m.count(&Scope::global(), Some(&filter(f))).unwrap();
    assert_eq!(by_meta(json!({"c": true})), 1);
    assert_eq!(by_meta(json!({"a": 1})), 0);
    assert_eq!(keyword(&m, "jazz"), [id]);
}

#[test]
fn update_kind_and_expiry() {
    let m = mem();
    let id = add(&m, NewMemory::new("scratch note"));
    let later = Utc::now() + Duration::hours(1);
    let r = m
        .update(
            &id,
            MemoryUpdate {
                kind: Some(MemoryKind::Working),
                expires_at: Some(Some(later)),
                ..MemoryUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(r.kind, MemoryKind::Working);
    assert!(r.expires_at.is_some());
    // Expire it: hidden from listings, still there for get.
    m.update(
        &id,
        MemoryUpdate {
            expires_at: Some(Some(Utc::now() - Duration::seconds(1))),
            ..MemoryUpdate::default()
        },
    )
    .unwrap();
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    // Some(None) removes the expiry: visible again.
    let r = m
        .update(
            &id,
            MemoryUpdate {
                expires_at: Some(None),
                ..MemoryUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(r.expires_at, None);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(m.get(&id).unwrap().kind, MemoryKind::Working);
}

#[test]
fn update_to_content_of_another_memory_in_scope_is_refused() {
    let m = mem();
    let a = add(&m, NewMemory::new("likes cats").user("u"));
    let b = add(&m, NewMemory::new("likes dogs").user("u"));
    let other_scope = add(&m, NewMemory::new("likes birds").user("v"));
    let before = snapshot(&m);
    let e = expect_err(
        m.update(&b, MemoryUpdate::content("likes cats")),
        ErrorCode::AlreadyExists,
    );
    assert!(e.message().contains(&a), "names the twin: {e}");
    // Also when other fields change in the same call: the whole update is refused.
    expect_err(
        m.update(
            &b,
            MemoryUpdate {
                content: Some("likes cats".into()),
                metadata: Some(meta(json!({"x": 1}))),
                ..MemoryUpdate::default()
            },
        ),
        ErrorCode::AlreadyExists,
    );
    assert_eq!(snapshot(&m), before);
    assert_eq!(keyword(&m, "dogs"), [b.as_str()]);
    // The same content in another scope is fine.
    let r = m
        .update(&other_scope, MemoryUpdate::content("likes cats"))
        .unwrap();
    assert_eq!(r.content, "likes cats");
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 3);
}

#[test]
fn update_errors_change_nothing() {
    let m = mem();
    let id = add(&m, NewMemory::new("stable content").meta("k", "v"));
    let before = snapshot(&m);
    expect_err(
        m.update(&id, MemoryUpdate::default()),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.update(&id, MemoryUpdate::content("")),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.update(&id, MemoryUpdate::content(" \n\t ")),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.update(&id, MemoryUpdate::content("a\0b")),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.update(
            &id,
            MemoryUpdate::content("x".repeat(MAX_CONTENT_BYTES + 1)),
        ),
        ErrorCode::InvalidInput,
    );
    for key in RESERVED_METADATA_KEYS {
        expect_err(
            m.update(&id, MemoryUpdate::metadata(meta(json!({ key: "x" })))),
            ErrorCode::InvalidInput,
        );
    }
    expect_err(
        m.update("", MemoryUpdate::content("x")),
        ErrorCode::InvalidInput,
    );
    assert_eq!(snapshot(&m), before);
}

// ------------------------------------------------------------------------------- delete

#[test]
fn delete_removes_from_every_view_but_keeps_history() {
    let m = mem();
    let keep = add(&m, NewMemory::new("Alice likes sushi"));
    let gone = add(&m, NewMemory::new("Alice likes ramen"));
    assert_eq!(m.indexed_vectors().unwrap(), 2);
    m.delete(&gone).unwrap();
    expect_err(m.get(&gone), ErrorCode::NotFound);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(ids(&all(&m, true)), [keep.as_str()]);
    assert!(keyword(&m, "ramen").is_empty());
    assert_eq!(m.indexed_vectors().unwrap(), 1);
    let v = m
        .search(
            "Alice likes ramen",
            &SearchOptions::new().mode(SearchMode::Vector),
        )
        .unwrap();
    assert_eq!(hit_ids(&v), [keep]);

    let h = m.history(&gone).unwrap();
    assert_eq!(
        h.iter().map(|e| e.event).collect::<Vec<_>>(),
        [HistoryEvent::Add, HistoryEvent::Delete]
    );
    assert!(h[1].is_deleted);
    assert_eq!(h[1].old_content.as_deref(), Some("Alice likes ramen"));
    assert_eq!(h[1].new_content, None);
    assert_eq!(h[1].actor, "user");

    expect_err(m.delete(&gone), ErrorCode::NotFound);
    // The same content can be added again, as a new memory.
    let again = add(&m, NewMemory::new("Alice likes ramen"));
    assert_ne!(again, gone);
}

#[test]
fn delete_all_by_scope_or_filter() {
    let m = mem();
    add(&m, NewMemory::new("a1").user("a"));
    add(&m, NewMemory::new("a2").user("a").meta("topic", "food"));
    let b1 = add(&m, NewMemory::new("b1").user("b").meta("topic", "food"));
    let b2 = add(&m, NewMemory::new("b2").user("b"));
    let g = add(&m, NewMemory::new("g1"));

    let before = snapshot(&m);
    expect_err(
        m.delete_all(&Scope::global(), None),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.delete_all(&Scope::global(), Some(&Filter::All)),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.delete_all(&Scope::global(), Some(&filter(json!({})))),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.delete_all(&Scope::user(""), None),
        ErrorCode::InvalidInput,
    );
    assert_eq!(snapshot(&m), before);

    assert_eq!(m.delete_all(&Scope::user("a"), None).unwrap(), 2);
    assert_eq!(ids(&all(&m, true)), [b1.clone(), b2.clone(), g.clone()]);
    assert_eq!(
        m.delete_all(&Scope::global(), Some(&filter(json!({"topic": "food"}))))
            .unwrap(),
        1
    );
    assert_eq!(ids(&all(&m, true)), [b2.clone(), g.clone()]);
    let h = m.history(&b1).unwrap();
    assert_eq!(h.last().unwrap().event, HistoryEvent::Delete);
    // Nothing left to match: zero, not an error.
    assert_eq!(m.delete_all(&Scope::user("a"), None).unwrap(), 0);
    assert_eq!(m.indexed_vectors().unwrap(), 2);
}

#[test]
fn reset_forgets_everything() {
    let m = mem();
    let id = add(&m, NewMemory::new("remember me").user("u"));
    add(&m, NewMemory::new("and me"));
    m.reset().unwrap();
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    assert!(all(&m, true).is_empty());
    expect_err(m.get(&id), ErrorCode::NotFound);
    expect_err(m.history(&id), ErrorCode::NotFound);
    assert!(keyword(&m, "remember").is_empty());
    assert_eq!(m.indexed_vectors().unwrap(), 0);
    // The store works as before.
    let again = add(&m, NewMemory::new("remember me").user("u"));
    assert_ne!(again, id);
    assert_eq!(keyword(&m, "remember"), [again.as_str()]);
    let v = m
        .search(
            "remember me",
            &SearchOptions::new().mode(SearchMode::Vector),
        )
        .unwrap();
    assert_eq!(hit_ids(&v), [again]);
    assert_eq!(m.indexed_vectors().unwrap(), 1);
}

// ------------------------------------------------------------------------------- duplicates

#[test]
fn duplicates_in_the_same_scope_are_not_stored_twice() {
    let m = mem();
    let first = m.add(NewMemory::new("likes tea").user("u")).unwrap();
    let again = m
        .add(
            NewMemory::new("likes tea")
                .user("u")
                .meta("note", "ignored"),
        )
        .unwrap();
    assert!(first.added);
    assert!(!again.added);
    assert_eq!(again.id, first.id);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(m.history(&first.id).unwrap().len(), 1, "no second ADD row");
    assert!(m.get(&first.id).unwrap().metadata.is_empty());
    assert_eq!(m.indexed_vectors().unwrap(), 1);

    // Any scope difference makes another memory.
    let scopes = [
        Scope::user("v"),
        Scope::user("u").with_agent("a"),
        Scope::user("u").with_run("r"),
        Scope::user("u").with_org("o"),
        Scope::global(),
    ];
    let mut seen = HashSet::from([first.id.clone()]);
    for scope in scopes {
        let out = m
            .add(NewMemory::new("likes tea").scope(scope.clone()))
            .unwrap();
        assert!(out.added, "{scope:?}");
        assert!(seen.insert(out.id));
    }
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 6);
    // Content must match exactly: case and spacing matter.
    assert!(m.add(NewMemory::new("Likes tea").user("u")).unwrap().added);
    assert!(m.add(NewMemory::new("likes tea ").user("u")).unwrap().added);
}

#[test]
fn duplicates_inside_one_batch() {
    let m = mem();
    let existing = add(&m, NewMemory::new("old fact").user("u"));
    let out = m
        .add_batch(vec![
            NewMemory::new("new fact").user("u"),
            NewMemory::new("new fact").user("u"),
            NewMemory::new("old fact").user("u"),
            NewMemory::new("new fact").user("w"),
        ])
        .unwrap();
    assert_eq!(
        out.iter().map(|o| o.added).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    assert_eq!(out[1].id, out[0].id);
    assert_eq!(out[2].id, existing);
    assert_ne!(out[3].id, out[0].id);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 3);
    assert_eq!(m.indexed_vectors().unwrap(), 3);
}

// ------------------------------------------------------------------------------- batches

#[test]
fn batch_is_all_or_none() {
    let m = mem();
    add(&m, NewMemory::new("already here"));
    let before = snapshot(&m);
    let bad_items: Vec<NewMemory> = vec![
        NewMemory::new("   "),
        NewMemory::new("nul\0inside"),
        NewMemory::new("x".repeat(MAX_CONTENT_BYTES + 1)),
        NewMemory::new("reserved").meta("user_id", "mallory"),
        NewMemory::new("bad scope").user(""),
    ];
    for bad in bad_items {
        let batch = vec![
            NewMemory::new("good one"),
            NewMemory::new("good two"),
            bad,
            NewMemory::new("good three"),
        ];
        let e = expect_err(m.add_batch(batch), ErrorCode::InvalidInput);
        assert!(e.message().contains("memory 2"), "names the item: {e}");
        assert_eq!(snapshot(&m), before);
        assert!(keyword(&m, "good").is_empty());
        assert_eq!(m.indexed_vectors().unwrap(), 1);
    }
    // An empty batch is fine and does nothing.
    assert!(m.add_batch(Vec::new()).unwrap().is_empty());
    assert_eq!(snapshot(&m), before);
    let ok = m
        .add_batch(vec![NewMemory::new("good one"), NewMemory::new("good two")])
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 3);
}

#[test]
fn vector_batch_is_all_or_none() {
    let m = bare();
    m.add_with_vector(NewMemory::new("seed"), vec![1.0, 0.0, 0.0])
        .unwrap();
    let before = snapshot(&m);
    let bad_vectors = [
        vec![0.0, 1.0],
        vec![0.0, 0.0, 0.0],
        vec![f32::NAN, 1.0, 0.0],
        vec![],
    ];
    for bad in bad_vectors {
        let e = expect_err(
            m.add_batch_with_vectors(vec![
                (NewMemory::new("fine a"), vec![0.0, 1.0, 0.0]),
                (NewMemory::new("fine b"), vec![0.0, 0.0, 1.0]),
                (NewMemory::new("bad"), bad.clone()),
            ]),
            ErrorCode::InvalidInput,
        );
        assert!(
            e.message().contains("dimension") || e.message().contains("memory 2"),
            "{e}"
        );
        assert_eq!(snapshot(&m), before, "{bad:?}");
        assert_eq!(m.indexed_vectors().unwrap(), 1);
    }
}

// ------------------------------------------------------------------------------- listing

/// 24 memories for users a and b, some with metadata, created in order.
fn populated() -> (Memory, Vec<String>) {
    let m = mem();
    let mut ids = Vec::new();
    for i in 0..24 {
        let user = if i % 2 == 0 { "a" } else { "b" };
        ids.push(add(
            &m,
            NewMemory::new(format!("memory number {i}"))
                .user(user)
                .meta("n", i)
                .meta("parity", if i % 2 == 0 { "even" } else { "odd" }),
        ));
    }
    (m, ids)
}

fn walk_with_cursor(m: &Memory, base: &ListOptions, page: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let options = ListOptions {
            limit: page,
            cursor: cursor.clone(),
            ..base.clone()
        };
        let p = m.list(&options).unwrap();
        assert!(p.items.len() <= page);
        pages += 1;
        assert!(pages < 1000, "cursor never ends");
        out.extend(ids(&p.items));
        match p.next_cursor {
            Some(c) => {
                assert_eq!(p.items.len(), page, "only the last page may be short");
                cursor = Some(c);
            }
            None => break,
        }
    }
    out
}

#[test]
fn cursor_pagination_walks_every_order_without_repeats_or_gaps() {
    let (m, created) = populated();
    // Touch some memories so that the update order differs from the creation order.
    for i in [5usize, 0, 17, 9] {
        std::thread::sleep(std::time::Duration::from_millis(1));
        m.update(
            &created[i],
            MemoryUpdate::metadata(meta(json!({"touched": i}))),
        )
        .unwrap();
    }
    let orders = [
        ListOrder::CreatedDesc,
        ListOrder::CreatedAsc,
        ListOrder::UpdatedDesc,
        ListOrder::UpdatedAsc,
    ];
    for order in orders {
        let base = ListOptions::new().order(order);
        let full = list_with(&m, base.clone().limit(10_000));
        assert_eq!(full.len(), 24);
        // The full listing is really in the order asked for.
        let records = m.list(&base.clone().limit(10_000)).unwrap().items;
        for pair in records.windows(2) {
            let (x, y) = (&pair[0], &pair[1]);
            let (kx, ky) = match order {
                ListOrder::CreatedAsc | ListOrder::CreatedDesc => (x.created_at, y.created_at),
                ListOrder::UpdatedAsc | ListOrder::UpdatedDesc => (x.updated_at, y.updated_at),
            };
            match order {
                ListOrder::CreatedDesc | ListOrder::UpdatedDesc => assert!(kx >= ky),
                _ => assert!(kx <= ky),
            }
        }
        for page in [1, 5, 7, 24, 25] {
            let walked = walk_with_cursor(&m, &base, page);
            assert_eq!(walked, full, "{order:?} page {page}");
            let distinct: HashSet<_> = walked.iter().collect();
            assert_eq!(distinct.len(), walked.len());
        }
    }
    let created_asc = list_with(
        &m,
        ListOptions::new().order(ListOrder::CreatedAsc).limit(100),
    );
    assert_eq!(created_asc, created);
    let updated_desc = list_with(
        &m,
        ListOptions::new().order(ListOrder::UpdatedDesc).limit(4),
    );
    assert_eq!(
        updated_desc,
        [9usize, 17, 0, 5].map(|i| created[i].clone()),
        "most recently touched first"
    );
    // Cursor pagination respects scope and filter too.
    let even = ListOptions::new()
        .user("a")
        .filter(filter(json!({"n": {"gte": 10}})));
    let walked = walk_with_cursor(&m, &even, 2);
    let expected: Vec<String> = (10..24)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| created[i].clone())
        .collect();
    assert_eq!(walked, expected);
}

#[test]
fn offset_pagination_matches_slices_of_the_full_listing() {
    let (m, _) = populated();
    let full = list_with(&m, ListOptions::new().limit(100));
    for page in [1usize, 5, 10] {
        let mut walked = Vec::new();
        let mut offset = 0;
        loop {
            let options = ListOptions {
                limit: page,
                offset,
                ..ListOptions::default()
            };
            let p = m.list(&options).unwrap();
            assert_eq!(ids(&p.items), full[offset.min(24)..(offset + page).min(24)]);
            walked.extend(ids(&p.items));
            if p.next_cursor.is_none() {
                break;
            }
            offset += page;
        }
        assert_eq!(walked, full);
    }
    let beyond = ListOptions {
        offset: 1000,
        ..ListOptions::default()
    };
    let p = m.list(&beyond).unwrap();
    assert!(p.items.is_empty());
    assert_eq!(p.next_cursor, None);
}

#[test]
fn offsets_past_the_end_are_empty_and_beyond_i64_are_refused() {
    let (m, _) = populated();
    let before = snapshot(&m);
    for offset in [24, 25, 1 << 40, i64::MAX as usize] {
        let p = m
            .list(&ListOptions {
                offset,
                ..ListOptions::default()
            })
            .unwrap();
        assert!(p.items.is_empty(), "offset {offset}: {:?}", ids(&p.items));
        assert_eq!(p.next_cursor, None, "offset {offset}");
    }
    // 2^63 used to wrap to a negative SQL offset, which SQLite reads as none: the first page.
    for offset in [1usize << 63, usize::MAX] {
        let options = ListOptions {
            offset,
            ..ListOptions::default()
        };
        let e = expect_err(m.list(&options), ErrorCode::InvalidInput);
        assert!(e.message().contains("offset must be at most"), "{e}");
    }
    assert_eq!(snapshot(&m), before);
}

#[test]
fn list_option_errors() {
    let (m, _) = populated();
    let before = snapshot(&m);
    let first = m.list(&ListOptions::new().limit(3)).unwrap();
    let cursor = first.next_cursor.unwrap();
    let both = ListOptions {
        cursor: Some(cursor.clone()),
        offset: 2,
        ..ListOptions::default()
    };
    let e = expect_err(m.list(&both), ErrorCode::InvalidInput);
    assert!(e.message().contains("cursor"), "{e}");
    for bad in [
        "",
        "garbage",
        "12",
        "x|2024-01-01T00:00:00Z",
        "3|not-a-time",
        "|",
    ] {
        let options = ListOptions {
            cursor: Some(bad.to_string()),
            ..ListOptions::default()
        };
        let e = expect_err(m.list(&options), ErrorCode::InvalidInput);
        assert!(e.message().contains("cursor"), "{bad:?}: {e}");
    }
    expect_err(
        m.list(&ListOptions::new().limit(0)),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.list(&ListOptions::new().limit(10_001)),
        ErrorCode::InvalidInput,
    );
    assert_eq!(
        m.list(&ListOptions::new().limit(10_000))
            .unwrap()
            .items
            .len(),
        24
    );
    expect_err(
        m.list(&ListOptions::new().user("")),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.list(&ListOptions::new().user("x".repeat(300))),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.list(&ListOptions::new().user("a\nb")),
        ErrorCode::InvalidInput,
    );
    expect_err(m.count(&Scope::user(""), None), ErrorCode::InvalidInput);
    assert_eq!(snapshot(&m), before);
}

#[test]
fn scope_filters_and_the_global_layer() {
    let m = mem();
    let a = add(&m, NewMemory::new("a plain").user("a"));
    let a_x = add(&m, NewMemory::new("a with agent x").user("a").agent("x"));
    let a_x_r = add(&m, NewMemory::new("a x run").user("a").agent("x").run("r1"));
    let b = add(&m, NewMemory::new("b plain").user("b"));
    let x_only = add(&m, NewMemory::new("agent x alone").agent("x"));
    let org = add(&m, NewMemory::new("org wide").org("acme"));
    let g = add(&m, NewMemory::new("global fact"));

    let list = |scope: Scope, include_global: bool| -> HashSet<String> {
        let options = ListOptions {
            scope,
            include_global,
            ..ListOptions::default()
        };
        list_with(&m, options).into_iter().collect()
    };
    let set = |v: &[&String]| -> HashSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(list(Scope::user("a"), false), set(&[&a, &a_x, &a_x_r]));
    assert_eq!(list(Scope::user("a"), true), set(&[&a, &a_x, &a_x_r, &g]));
    assert_eq!(
        list(Scope::user("a").with_agent("x"), false),
        set(&[&a_x, &a_x_r])
    );
    assert_eq!(
        list(Scope::global().with_agent("x"), false),
        set(&[&a_x, &a_x_r, &x_only])
    );
    assert_eq!(list(Scope::global().with_run("r1"), false), set(&[&a_x_r]));
    assert_eq!(
        list(Scope::global().with_org("acme"), true),
        set(&[&org, &g])
    );
    assert_eq!(list(Scope::user("b"), false), set(&[&b]));
    assert_eq!(list(Scope::user("nobody"), false), HashSet::new());
    assert_eq!(list(Scope::user("nobody"), true), set(&[&g]));
    assert_eq!(list(Scope::global(), false).len(), 7);

    assert_eq!(m.count(&Scope::user("a"), None).unwrap(), 3);
    assert_eq!(m.count(&Scope::global().with_agent("x"), None).unwrap(), 3);
    assert_eq!(
        m.count(&Scope::global(), Some(&filter(json!({"user_id": null}))))
            .unwrap(),
        3,
        "no user: agent x alone, org wide, global fact"
    );
    let search_ids = |opts: SearchOptions| -> HashSet<String> {
        hit_ids(
            &m.search("plain fact agent", &opts.mode(SearchMode::Keyword))
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    assert_eq!(search_ids(SearchOptions::new().user("b")), set(&[&b]));
    let mut with_global = SearchOptions::new().user("b");
    with_global.include_global = true;
    assert_eq!(search_ids(with_global), set(&[&b, &g]));
    let v = m
        .search(
            "a plain",
            &SearchOptions::new()
                .mode(SearchMode::Vector)
                .scope(Scope::user("a").with_agent("x")),
        )
        .unwrap();
    assert_eq!(
        hit_ids(&v).into_iter().collect::<HashSet<_>>(),
        set(&[&a_x, &a_x_r])
    );
}

#[test]
fn kinds_are_stored_and_filterable() {
    let m = mem();
    let mut by_kind = Vec::new();
    for kind in MemoryKind::ALL {
        let id = add(&m, NewMemory::new(format!("a {kind} memory")).kind(kind));
        assert_eq!(m.get(&id).unwrap().kind, kind);
        by_kind.push((kind, id));
    }
    for (kind, id) in &by_kind {
        let f = filter(json!({ "kind": kind.as_str() }));
        assert_eq!(
            list_with(&m, ListOptions::new().filter(f.clone())),
            [id.as_str()]
        );
        assert_eq!(m.count(&Scope::global(), Some(&f)).unwrap(), 1);
    }
    let f = filter(json!({"kind": {"in": ["working", "core"]}}));
    assert_eq!(m.count(&Scope::global(), Some(&f)).unwrap(), 2);
    let f = filter(json!({"kind": {"ne": "episodic"}}));
    assert_eq!(m.count(&Scope::global(), Some(&f)).unwrap(), 7);
    // Kind names are case-insensitive in filters and stored in lowercase.
    let f = filter(json!({"kind": "SEMANTIC"}));
    assert_eq!(m.count(&Scope::global(), Some(&f)).unwrap(), 1);
    let e = expect_err(
        Filter::from_json(&json!({"kind": "dream"})),
        ErrorCode::InvalidInput,
    );
    assert!(e.message().contains("filters.kind"), "{e}");
    expect_err("dream".parse::<MemoryKind>(), ErrorCode::InvalidInput);
}

#[test]
fn metadata_filters_on_list_count_and_search() {
    let m = mem();
    let pasta = add(
        &m,
        NewMemory::new("cooked pasta")
            .meta("topic", "food")
            .meta("rating", 5)
            .meta("tags", json!(["italian", "dinner"])),
    );
    let sushi = add(
        &m,
        NewMemory::new("ate sushi")
            .meta("topic", "food")
            .meta("rating", 3)
            .meta("tags", json!(["japanese"])),
    );
    let flight = add(
        &m,
        NewMemory::new("booked a flight")
            .meta("topic", "travel")
            .meta("name", "Alice Smith"),
    );
    let bare_one = add(&m, NewMemory::new("no metadata at all"));
    let cases: Vec<(serde_json::Value, Vec<&String>)> = vec![
        (json!({"topic": "food"}), vec![&pasta, &sushi]),
        (json!({"topic": {"ne": "food"}}), vec![&flight, &bare_one]),
        (json!({"rating": {"gt": 3}}), vec![&pasta]),
        (json!({"rating": {"gte": 3}}), vec![&pasta, &sushi]),
        (json!({"rating": {"lt": 5}}), vec![&sushi]),
        (json!({"rating": {"lte": 5, "gt": 3}}), vec![&pasta]),
        (json!({"topic": {"in": ["travel", "work"]}}), vec![&flight]),
        (
            json!({"topic": ["travel", "food"]}),
            vec![&pasta, &sushi, &flight],
        ),
        (
            json!({"topic": {"nin": ["food"]}}),
            vec![&flight, &bare_one],
        ),
        (json!({"tags": {"contains": "italian"}}), vec![&pasta]),
        (json!({"name": {"contains": "Smith"}}), vec![&flight]),
        (json!({"name": {"contains": "smith"}}), vec![]),
        (json!({"name": {"icontains": "SMITH"}}), vec![&flight]),
        (json!({"tags": "*"}), vec![&pasta, &sushi]),
        (json!({"metadata.topic": "travel"}), vec![&flight]),
        (json!({"metadata": {"rating": 3}}), vec![&sushi]),
        (
            json!({"OR": [{"rating": 5}, {"topic": "travel"}]}),
            vec![&pasta, &flight],
        ),
        (
            json!({"AND": [{"topic": "food"}, {"NOT": {"rating": 5}}]}),
            vec![&sushi],
        ),
        (json!({"NOT": {"topic": "food"}}), vec![&flight, &bare_one]),
        (json!({"content": {"icontains": "SUSHI"}}), vec![&sushi]),
        (json!({"id": pasta.clone()}), vec![&pasta]),
        (
            json!({"created_at": {"gte": "2000-01-01"}}),
            vec![&pasta, &sushi, &flight, &bare_one],
        ),
        (
            json!({"created_at": {"lt": "2000-01-01T00:00:00Z"}}),
            vec![],
        ),
        (json!({"missing_key": "x"}), vec![]),
    ];
    for (f, expected) in cases {
        let parsed = filter(f.clone());
        let got: HashSet<String> = list_with(&m, ListOptions::new().filter(parsed.clone()))
            .into_iter()
            .collect();
        let want: HashSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{f}");
        assert_eq!(
            m.count(&Scope::global(), Some(&parsed)).unwrap(),
            want.len(),
            "count {f}"
        );
    }
    // The same filter language drives search.
    let hits = m
        .search(
            "pasta sushi flight",
            &SearchOptions::new()
                .mode(SearchMode::Keyword)
                .filter(filter(json!({"topic": "food", "rating": {"lt": 4}}))),
        )
        .unwrap();
    assert_eq!(hit_ids(&hits), [sushi]);
}

/// 40 `in` lists of 10,000 values (400,000 values: more than SQLite's 32,766 parameters per
/// statement) that together admit the odd `n` of [`populated`]; and the same as `nin`.
fn many_long_lists() -> (Filter, Filter) {
    let lists = |op: &str| -> Vec<serde_json::Value> {
        (0..40i64)
            .map(|k| {
                // List k leaves out the even number 2k (for k < 12): the AND keeps odd n.
                let values: Vec<serde_json::Value> = (0..10_000i64)
                    .filter(|&v| v != 2 * k)
                    .map(|v| json!(v))
                    .chain([json!(null), json!("x")])
                    .take(10_000)
                    .collect();
                json!({ "n": { op: values } })
            })
            .collect()
    };
    (
        filter(json!({ "AND": lists("in") })),
        filter(json!({ "OR": lists("nin") })),
    )
}

#[test]
fn filters_with_many_long_in_lists_work() {
    let (m, ids) = populated();
    let (admit, refuse) = many_long_lists();
    let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    let got: HashSet<String> = list_with(&m, ListOptions::new().filter(admit.clone()))
        .into_iter()
        .collect();
    assert_eq!(got, odd.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(m.count(&Scope::global(), Some(&admit)).unwrap(), 12);
    // `nin` of each list: an even n (for n < 24) is missing from one list.
    assert_eq!(m.count(&Scope::global(), Some(&refuse)).unwrap(), 12);
    // Scope ids: null in a list means "no id" (stored as '').
    let users: Vec<serde_json::Value> = (0..10_000)
        .map(|i| json!(format!("user {i}")))
        .chain([json!("a"), json!(null)])
        .collect();
    let f = filter(
        json!({ "AND": (0..40).map(|_| json!({"user_id": {"in": users[2..].to_vec()}})).collect::<Vec<_>>() }),
    );
    assert_eq!(m.count(&Scope::global(), Some(&f)).unwrap(), 12);
    let many = m
        .delete_all(&Scope::global(), Some(&admit))
        .expect("delete_all with long lists");
    assert_eq!(many, 12);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 12);
}

#[test]
fn malformed_filters_name_the_bad_part() {
    let cases = [
        (
            json!({"AND": [{"user_id": "a"}, {"created_at": {"gte": "yesterday"}}]}),
            "filters.AND[1].created_at.gte",
        ),
        (json!({"topic": {"like": "x"}}), "filters.topic"),
        (json!({"OR": {"a": 1}}), "filters.OR"),
        (json!({"OR": [1]}), "filters.OR[0]"),
        (json!({"NOT": 3}), "filters.NOT"),
        (json!({"user_id": 5}), "filters.user_id"),
        (json!({"topic": {"in": "food"}}), "filters.topic.in"),
        (json!({"topic": {}}), "filters.topic"),
        (json!({"rating": {"gt": true}}), "filters.rating.gt"),
        (
            json!({"tags": {"contains": ["x"]}}),
            "filters.tags.contains",
        ),
        (
            json!({"AND": [{"NOT": {"updated_at": {"lt": 5}}}]}),
            "filters.AND[0].NOT.updated_at.lt",
        ),
    ];
    for (f, part) in cases {
        let e = expect_err(Filter::from_json(&f), ErrorCode::InvalidInput);
        assert!(e.message().contains(part), "{f}: {e}");
    }
    expect_err(Filter::parse("{not json"), ErrorCode::InvalidInput);
    expect_err(Filter::parse("[1, 2]"), ErrorCode::InvalidInput);
    expect_err(Filter::parse("\"user_id\""), ErrorCode::InvalidInput);
}

// ------------------------------------------------------------------------------- expiry

#[test]
fn expired_memories_are_hidden_until_purged() {
    let m = mem();
    let past = Utc::now() - Duration::minutes(5);
    let future = Utc::now() + Duration::days(1);
    let live = add(&m, NewMemory::new("coffee order: latte").user("u"));
    let soon = add(
        &m,
        NewMemory::new("coffee order: mocha")
            .user("u")
            .expires_at(future),
    );
    let old = add(
        &m,
        NewMemory::new("coffee order: espresso")
            .user("u")
            .kind(MemoryKind::Working)
            .expires_at(past),
    );

    // get still returns it.
    let r = m.get(&old).unwrap();
    assert!(r.is_expired_at(Utc::now()));
    // Hidden from list, count and every search mode.
    let visible: HashSet<String> = list_with(&m, ListOptions::new()).into_iter().collect();
    assert_eq!(visible, HashSet::from([live.clone(), soon.clone()]));
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 2);
    assert_eq!(m.count(&Scope::user("u"), None).unwrap(), 2);
    for mode in [
        SearchMode::Keyword,
        SearchMode::Vector,
        SearchMode::Hybrid,
        SearchMode::Fuzzy,
        SearchMode::Phrase,
    ] {
        let q = if mode == SearchMode::Phrase {
            "coffee order"
        } else {
            "coffee espresso"
        };
        for opts in [SearchOptions::new(), SearchOptions::new().user("u")] {
            let hits = m.search(q, &opts.mode(mode)).unwrap();
            assert!(!hit_ids(&hits).contains(&old), "{mode:?}: {hits:?}");
            assert!(!hits.is_empty(), "{mode:?}");
        }
    }
    // ...unless asked for.
    let with_expired = ListOptions {
        include_expired: true,
        ..ListOptions::default()
    };
    assert_eq!(list_with(&m, with_expired.clone()).len(), 3);
    let mut opts = SearchOptions::new().mode(SearchMode::Keyword);
    opts.include_expired = true;
    assert!(hit_ids(&m.search("espresso", &opts).unwrap()).contains(&old));
    let mut opts = SearchOptions::new().mode(SearchMode::Vector);
    opts.include_expired = true;
    assert!(hit_ids(&m.search("coffee order: espresso", &opts).unwrap()).contains(&old));

    // Purging deletes it, with a DELETE row by "expiry".
    assert_eq!(m.purge_expired().unwrap(), 1);
    expect_err(m.get(&old), ErrorCode::NotFound);
    let h = m.history(&old).unwrap();
    let last = h.last().unwrap();
    assert_eq!(last.event, HistoryEvent::Delete);
    assert_eq!(last.actor, "expiry");
    assert!(last.is_deleted);
    assert_eq!(last.old_content.as_deref(), Some("coffee order: espresso"));
    assert_eq!(list_with(&m, with_expired).len(), 2);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 2);
    assert_eq!(m.purge_expired().unwrap(), 0);
    assert_eq!(m.indexed_vectors().unwrap(), 2);
    m.get(&soon).unwrap();
}

#[test]
fn adding_the_content_of_an_expired_memory_replaces_it() {
    let m = mem();
    let old = add(
        &m,
        NewMemory::new("parked on level 3")
            .user("u")
            .expires_at(Utc::now() - Duration::seconds(10)),
    );
    let out = m
        .add(NewMemory::new("parked on level 3").user("u"))
        .unwrap();
    assert!(out.added, "an expired twin does not count as a duplicate");
    assert_ne!(out.id, old);
    expect_err(m.get(&old), ErrorCode::NotFound);
    assert_eq!(m.history(&old).unwrap().last().unwrap().actor, "expiry");
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
}

#[test]
fn updating_onto_the_content_of_an_expired_memory_replaces_it() {
    let m = mem();
    let expired = add(
        &m,
        NewMemory::new("parked on level 3")
            .user("u")
            .expires_at(Utc::now() - Duration::seconds(10)),
    );
    let live = add(&m, NewMemory::new("parked on level 5").user("u"));
    let updated = m
        .update(&live, MemoryUpdate::content("parked on level 3"))
        .unwrap();
    assert_eq!(updated.content, "parked on level 3");
    expect_err(m.get(&expired), ErrorCode::NotFound);
    assert_eq!(m.history(&expired).unwrap().last().unwrap().actor, "expiry");
    assert_eq!(keyword(&m, "level"), vec![live.clone()]);
    // A live twin still refuses the update.
    let other = add(&m, NewMemory::new("parked on level 7").user("u"));
    expect_err(
        m.update(&other, MemoryUpdate::content("parked on level 3")),
        ErrorCode::AlreadyExists,
    );
}

// ------------------------------------------------------------------------------- errors

#[test]
fn bad_content_is_refused_and_changes_nothing() {
    let m = mem();
    add(&m, NewMemory::new("existing"));
    let before = snapshot(&m);
    let bad = [
        String::new(),
        "   ".to_string(),
        "\n\t \r".to_string(),
        "nul \0 inside".to_string(),
        "x".repeat(MAX_CONTENT_BYTES + 1),
        // Multi-byte characters count in bytes: 21,846 × 3 bytes > 64 KiB.
        "咖".repeat(MAX_CONTENT_BYTES / 3 + 1),
    ];
    for content in bad {
        let e = expect_err(
            m.add(NewMemory::new(content.clone())),
            ErrorCode::InvalidInput,
        );
        assert!(e.message().contains("content"), "{e}");
        expect_err(
            m.add_batch(vec![NewMemory::new(content.clone())]),
            ErrorCode::InvalidInput,
        );
        assert_eq!(snapshot(&m), before);
    }
    // Exactly at the limit is accepted.
    let big = m
        .add(NewMemory::new("x".repeat(MAX_CONTENT_BYTES)))
        .unwrap();
    assert_eq!(m.get(&big.id).unwrap().content.len(), MAX_CONTENT_BYTES);
}

#[test]
fn reserved_metadata_keys_are_refused() {
    let m = mem();
    let before = snapshot(&m);
    for key in RESERVED_METADATA_KEYS {
        let e = expect_err(
            m.add(NewMemory::new("content").meta(key, "x")),
            ErrorCode::InvalidInput,
        );
        assert!(e.message().contains(key), "{e}");
        assert_eq!(snapshot(&m), before);
    }
    expect_err(
        m.add(NewMemory::new("content").meta("", 1)),
        ErrorCode::InvalidInput,
    );
    // Nested keys with those names are plain data.
    m.add(NewMemory::new("content").meta("source", json!({"user_id": "x"})))
        .unwrap();
}

#[test]
fn bad_scope_ids_are_refused() {
    let m = mem();
    for scope in [
        Scope::user(""),
        Scope::user("  "),
        Scope::user("tab\there"),
        Scope::global().with_agent("x".repeat(257)),
        Scope::global().with_run(""),
        Scope::global().with_org("\u{7}"),
    ] {
        expect_err(
            m.add(NewMemory::new("content").scope(scope.clone())),
            ErrorCode::InvalidInput,
        );
    }
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
}

#[test]
fn bad_vectors_are_refused() {
    let m = bare();
    // Without an embedder, text calls are unsupported.
    expect_err(m.add(NewMemory::new("no vector")), ErrorCode::Unsupported);
    expect_err(
        m.search("anything", &SearchOptions::new().mode(SearchMode::Vector)),
        ErrorCode::Unsupported,
    );
    let bad = [
        vec![],
        vec![f32::NAN, 1.0, 0.0],
        vec![f32::INFINITY, 0.0, 0.0],
        vec![f32::NEG_INFINITY, 0.0, 0.0],
        vec![0.0, 0.0, 0.0],
    ];
    for v in &bad {
        expect_err(
            m.add_with_vector(NewMemory::new("v"), v.clone()),
            ErrorCode::InvalidInput,
        );
    }
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    // The first vector fixes the dimension.
    let id = m
        .add_with_vector(NewMemory::new("three d"), vec![1.0, 2.0, 3.0])
        .unwrap()
        .id;
    let before = snapshot(&m);
    for v in [vec![1.0, 2.0], vec![1.0, 2.0, 3.0, 4.0]] {
        let e = expect_err(
            m.add_with_vector(NewMemory::new("other"), v.clone()),
            ErrorCode::InvalidInput,
        );
        assert!(e.message().contains("dimension"), "{e}");
        expect_err(
            m.search_with_vector("", &v, &SearchOptions::new().mode(SearchMode::Vector)),
            ErrorCode::InvalidInput,
        );
        expect_err(
            m.update_with_vector(&id, MemoryUpdate::content("changed"), v.clone()),
            ErrorCode::InvalidInput,
        );
    }
    for v in &bad {
        expect_err(
            m.search_with_vector("", v, &SearchOptions::new().mode(SearchMode::Vector)),
            ErrorCode::InvalidInput,
        );
        expect_err(
            m.update_with_vector(&id, MemoryUpdate::content("changed"), v.clone()),
            ErrorCode::InvalidInput,
        );
    }
    // A vector goes with new content.
    expect_err(
        m.update_with_vector(
            &id,
            MemoryUpdate::metadata(Metadata::new()),
            vec![1.0, 0.0, 0.0],
        ),
        ErrorCode::InvalidInput,
    );
    assert_eq!(snapshot(&m), before);
    assert_eq!(m.indexed_vectors().unwrap(), 1);
    // A vector of the right size works, and finds the memory.
    let hits = m
        .search_with_vector(
            "",
            &[1.0, 2.0, 3.1],
            &SearchOptions::new().mode(SearchMode::Vector),
        )
        .unwrap();
    assert_eq!(hit_ids(&hits), [id.as_str()]);
    let r = m
        .update_with_vector(&id, MemoryUpdate::content("moved"), vec![0.0, 0.0, 1.0])
        .unwrap();
    assert_eq!(r.content, "moved");
    let hits = m
        .search_with_vector(
            "",
            &[0.0, 0.1, 1.0],
            &SearchOptions::new().mode(SearchMode::Vector),
        )
        .unwrap();
    assert!(hits[0].similarity.unwrap() > 0.99);
}

#[test]
fn embedder_and_vector_dimensions_must_agree() {
    let m = mem();
    expect_err(
        m.add_with_vector(NewMemory::new("three d"), vec![1.0, 0.0, 0.0]),
        ErrorCode::InvalidInput,
    );
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
    let mut v = vec![0.0f32; 64];
    v[3] = 1.0;
    m.add_with_vector(NewMemory::new("sixty four"), v).unwrap();
    add(&m, NewMemory::new("embedded text"));
    assert_eq!(m.indexed_vectors().unwrap(), 2);
}

#[test]
fn unknown_ids_are_not_found() {
    let m = mem();
    add(&m, NewMemory::new("something"));
    let before = snapshot(&m);
    let unknown = "00000000-0000-0000-0000-000000000000";
    for id in [unknown, "not-a-uuid-at-all"] {
        expect_err(m.get(id), ErrorCode::NotFound);
        expect_err(
            m.update(id, MemoryUpdate::content("x")),
            ErrorCode::NotFound,
        );
        expect_err(
            m.update(id, MemoryUpdate::metadata(Metadata::new())),
            ErrorCode::NotFound,
        );
        expect_err(m.delete(id), ErrorCode::NotFound);
        expect_err(m.history(id), ErrorCode::NotFound);
    }
    for id in ["", "   "] {
        expect_err(m.get(id), ErrorCode::InvalidInput);
        expect_err(m.delete(id), ErrorCode::InvalidInput);
        expect_err(m.history(id), ErrorCode::InvalidInput);
    }
    assert_eq!(snapshot(&m), before);
}

#[test]
fn bad_search_options_are_refused() {
    let m = mem();
    add(&m, NewMemory::new("search me"));
    for q in ["", "   ", "nul\0"] {
        expect_err(m.search(q, &SearchOptions::new()), ErrorCode::InvalidInput);
    }
    expect_err(
        m.search("x", &SearchOptions::new().limit(0)),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.search("x", &SearchOptions::new().limit(10_001)),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.search("x", &SearchOptions::new().threshold(f32::NAN)),
        ErrorCode::InvalidInput,
    );
    expect_err(
        m.search("x", &SearchOptions::new().user("")),
        ErrorCode::InvalidInput,
    );
    let weights = agent_mem::FusionWeights {
        vector: 0.0,
        keyword: 0.0,
        fuzzy: 0.0,
        ..Default::default()
    };
    expect_err(
        m.search("x", &SearchOptions::new().weights(weights)),
        ErrorCode::InvalidInput,
    );
    expect_err("nonsense".parse::<SearchMode>(), ErrorCode::InvalidInput);
}

// ------------------------------------------------------------------------------- files

/// The file's bytes and the directory's entries, to prove that nothing was written.
fn file_state(path: &Path) -> (Vec<u8>, Vec<String>) {
    let mut entries: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    (std::fs::read(path).unwrap(), entries)
}

#[test]
fn a_text_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).unwrap();
    let before = file_state(&path);
    let e = expect_err(
        Memory::builder().path(&path).embedder(hashing()).build(),
        ErrorCode::Corrupted,
    );
    assert!(e.message().contains("notes.txt"), "{e}");
    assert_eq!(file_state(&path), before);
    expect_err(
        Memory::builder().path(&path).without_embedder().build(),
        ErrorCode::Corrupted,
    );
    assert_eq!(file_state(&path), before);
}

#[test]
fn another_sqlite_database_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('alice'), ('bob');
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
             INSERT INTO meta VALUES ('schema_version', '1');",
        )
        .unwrap();
    }
    let before = file_state(&path);
    let e = expect_err(
        Memory::builder().path(&path).embedder(hashing()).build(),
        ErrorCode::Corrupted,
    );
    assert!(e.message().contains("not an agent_mem store"), "{e}");
    assert_eq!(file_state(&path), before);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_store_from_a_newer_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    {
        let m = mem_at(&path);
        add(&m, NewMemory::new("written by an old version"));
        m.close().unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        // Leave a self-contained file (no WAL beside it) so that its bytes can be compared.
        let _: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = expect_err(
        Memory::builder().path(&path).embedder(hashing()).build(),
        ErrorCode::Unsupported,
    );
    assert!(e.message().contains("999"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_directory_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = expect_err(
        Memory::builder()
            .path(dir.path())
            .embedder(hashing())
            .build(),
        ErrorCode::InvalidInput,
    );
    assert!(e.message().contains("directory"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn reopening_with_another_embedder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    {
        let m = mem_at(&path);
        add(&m, NewMemory::new("embedded with 64 dimensions"));
        m.close().unwrap();
    }
    let e = expect_err(
        Memory::builder()
            .path(&path)
            .embedder(Arc::new(HashingEmbedder::new(32)))
            .build(),
        ErrorCode::InvalidInput,
    );
    assert!(e.message().contains("hashing-64"), "{e}");
    // The right embedder still opens it, with everything in place.
    let m = mem_at(&path);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(m.indexed_vectors().unwrap(), 1);
    assert_eq!(keyword(&m, "dimensions").len(), 1);
}

#[test]
fn a_store_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    let (id, deleted) = {
        let m = mem_at(&path);
        let id = add(&m, NewMemory::new("persisted fact").user("u").meta("k", 1));
        let deleted = add(&m, NewMemory::new("deleted fact").user("u"));
        m.update(&id, MemoryUpdate::content("persisted and updated fact"))
            .unwrap();
        m.delete(&deleted).unwrap();
        m.close().unwrap();
        (id, deleted)
    };
    let m = mem_at(&path);
    let r = m.get(&id).unwrap();
    assert_eq!(r.content, "persisted and updated fact");
    assert_eq!(r.metadata, meta(json!({"k": 1})));
    assert_eq!(m.history(&id).unwrap().len(), 2);
    assert_eq!(m.history(&deleted).unwrap().len(), 2);
    assert_eq!(m.indexed_vectors().unwrap(), 1);
    let v = m
        .search(
            "persisted and updated fact",
            &SearchOptions::new().mode(SearchMode::Vector),
        )
        .unwrap();
    assert_eq!(hit_ids(&v), [id]);
}

// ------------------------------------------------------------------------------- concurrency

#[test]
fn many_threads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(mem_at(&dir.path().join("memories.db")));
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let user = format!("user{t}");
                let mut mine = Vec::new();
                // Every thread races to add the same shared fact.
                let shared = m.add(NewMemory::new("the office is on floor 4")).unwrap();
                for i in 0..PER_THREAD {
                    let id = add(
                        &m,
                        NewMemory::new(format!("thread {t} note {i} about topic{i}"))
                            .user(user.clone()),
                    );
                    // Read-your-writes, by every path.
                    assert_eq!(
                        m.get(&id).unwrap().scope.user_id.as_deref(),
                        Some(user.as_str())
                    );
                    let kw = m
                        .search(
                            &format!("topic{i}"),
                            &SearchOptions::new()
                                .user(user.clone())
                                .mode(SearchMode::Keyword),
                        )
                        .unwrap();
                    assert_eq!(hit_ids(&kw), [id.as_str()]);
                    let v = m
                        .search(
                            &format!("thread {t} note {i} about topic{i}"),
                            &SearchOptions::new()
                                .user(user.clone())
                                .mode(SearchMode::Vector)
                                .limit(PER_THREAD),
                        )
                        .unwrap();
                    // The hashing embedder can give two texts the same vector, so ask
                    // for the memory with its exact vector, not for the first place.
                    let own = v.iter().find(|h| h.memory.id == id);
                    assert!(own.is_some_and(|h| h.similarity.unwrap() > 0.999), "{v:?}");
                    assert!(v
                        .iter()
                        .all(|h| h.memory.scope.user_id.as_deref() == Some(&*user)));
                    assert_eq!(v.len(), i + 1);
                    if i % 5 == 0 {
                        let page = m.list(&ListOptions::new().user(user.clone())).unwrap();
                        assert_eq!(page.items.len(), i + 1);
                        m.search("note", &SearchOptions::new()).unwrap();
                    }
                    mine.push(id);
                }
                (shared.id, mine)
            })
        })
        .collect();
    let mut shared_ids = HashSet::new();
    let mut all_ids = HashSet::new();
    for h in handles {
        let (shared, mine) = h.join().unwrap();
        shared_ids.insert(shared);
        all_ids.extend(mine);
    }
    assert_eq!(
        shared_ids.len(),
        1,
        "one shared memory, whoever won the race"
    );
    let total = THREADS * PER_THREAD + 1;
    assert_eq!(all_ids.len(), THREADS * PER_THREAD);
    assert_eq!(m.count(&Scope::global(), None).unwrap(), total);
    assert_eq!(all(&m, true).len(), total);
    assert_eq!(m.indexed_vectors().unwrap(), total);
    for t in 0..THREADS {
        assert_eq!(
            m.count(&Scope::user(format!("user{t}")), None).unwrap(),
            PER_THREAD
        );
    }
}

#[test]
fn a_second_handle_sees_the_first_ones_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    let a = mem_at(&path);
    let b = mem_at(&path);
    let vector = |m: &Memory, q: &str| {
        hit_ids(
            &m.search(q, &SearchOptions::new().mode(SearchMode::Vector).limit(3))
                .unwrap(),
        )
    };
    let first = add(
        &a,
        NewMemory::new("Carol collects vintage stamps").user("carol"),
    );
    assert_eq!(
        b.get(&first).unwrap().content,
        "Carol collects vintage stamps"
    );
    assert_eq!(b.count(&Scope::global(), None).unwrap(), 1);
    assert_eq!(b.indexed_vectors().unwrap(), 1);
    assert_eq!(
        vector(&b, "Carol collects vintage stamps"),
        [first.as_str()]
    );
    assert_eq!(keyword(&b, "stamps"), [first.as_str()]);

    // Writes flow both ways, updates and deletes included.
    let second = add(&b, NewMemory::new("Dave races sailboats").user("dave"));
    assert_eq!(vector(&a, "Dave races sailboats")[0], second);
    a.update(&second, MemoryUpdate::content("Dave builds model trains"))
        .unwrap();
    let hits = b
        .search(
            "Dave builds model trains",
            &SearchOptions::new().mode(SearchMode::Vector).limit(1),
        )
        .unwrap();
    assert_eq!(hit_ids(&hits), [second.as_str()]);
    assert!(
        hits[0].similarity.unwrap() > 0.99,
        "b replayed the new vector: {hits:?}"
    );
    b.delete(&first).unwrap();
    expect_err(a.get(&first), ErrorCode::NotFound);
    assert_eq!(a.indexed_vectors().unwrap(), 1);
    assert_eq!(
        vector(&a, "Carol collects vintage stamps"),
        [second.as_str()]
    );
    assert_eq!(a.history(&first).unwrap().len(), 2);

    // A reset through one handle empties the other's index too.
    assert_eq!(b.indexed_vectors().unwrap(), 1);
    a.reset().unwrap();
    assert_eq!(b.count(&Scope::global(), None).unwrap(), 0);
    assert_eq!(
        b.indexed_vectors().unwrap(),
        0,
        "b still holds vectors after a reset by a"
    );
    assert!(vector(&b, "Dave builds model trains").is_empty());
    let third = add(&a, NewMemory::new("Erin grows tomatoes"));
    assert_eq!(vector(&b, "Erin grows tomatoes"), [third]);
    assert_eq!(b.indexed_vectors().unwrap(), 1);
}

#[test]
fn quantized_indexes_find_the_nearest_memory_and_survive_reopen() {
    use agent_mem::{Quantization, VectorIndexOptions};
    for quantization in [Quantization::F16, Quantization::I8] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let options = VectorIndexOptions {
            quantization,
            ..VectorIndexOptions::default()
        };
        let open = || {
            Memory::builder()
                .path(&path)
                .without_embedder()
                .index_options(options)
                .build()
                .unwrap()
        };
        let m = open();
        let mut ids = Vec::new();
        for i in 0..50u32 {
            let angle = i as f32 * 0.06;
            let v = vec![angle.cos(), angle.sin(), 0.1];
            ids.push(
                m.add_with_vector(NewMemory::new(format!("point {i}")), v)
                    .unwrap()
                    .id,
            );
        }
        let opts = SearchOptions::new().mode(SearchMode::Vector).limit(1);
        let query = |m: &Memory| {
            let angle = 17.0f32 * 0.06;
            hit_ids(
                &m.search_with_vector("", &[angle.cos(), angle.sin(), 0.1], &opts)
                    .unwrap(),
            )
        };
        assert_eq!(query(&m), vec![ids[17].clone()], "{quantization:?}");
        m.close().unwrap();
        let reopened = open();
        assert_eq!(query(&reopened), vec![ids[17].clone()], "{quantization:?}");
        assert_eq!(reopened.indexed_vectors().unwrap(), 50);
    }
}
