//! The PostgreSQL backend through the public API (feature `postgres`, server from
//! `tests/postgres.sh`): CRUD and history, duplicates, the filter language and the text
//! engines compared with the SQLite backend (the reference) on the same data, vector search
//! with selective filters, expiry, reset, a server restart between calls, concurrent adds,
//! model mismatches, copies both ways, and the errors for what is not a store.
//!
//! Each test works in a PostgreSQL schema of its own. Without `AGENTMEM_TEST_PG_URL` the
//! tests print SKIPPED and pass, unless `AGENTMEM_REQUIRE_POSTGRES=1`.

#![cfg(feature = "postgres")]

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agent_mem::{
    CountOptions, Embedder, ErrorCode, Filter, HashingEmbedder, HistoryEvent, ListOptions, Memory,
    MemoryKind, MemoryUpdate, NewMemory, PostgresOptions, Scope, SearchMode, SearchOptions,
    VectorIndexOptions,
};
use chrono::Utc;
use serde_json::{json, Value};

/// The restart test stops the server that every other test uses: it takes this for writing,
/// the others for reading, so no test runs while the server is down (shared with the other
/// modules of the test binary).
use crate::support::pg::{shared, SERVER};

fn embedder() -> Arc<HashingEmbedder> {
    Arc::new(HashingEmbedder::new(64))
}

fn open_url(url: &str) -> Memory {
    Memory::builder()
        .path(url)
        .embedder(embedder())
        .build()
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// A fresh store of its own for `test`, or `None` (SKIPPED) without a server.
fn fresh(test: &str) -> Option<(String, Memory)> {
    let url = support::pg::fresh_store_url(test)?;
    let memory = open_url(&url);
    Some((url, memory))
}

fn sqlite() -> Memory {
    Memory::builder().embedder(embedder()).build().unwrap()
}

fn all(memory: &Memory, filter: Option<Filter>) -> Vec<agent_mem::MemoryRecord> {
    let mut options = ListOptions::new().limit(10_000);
    options.filter = filter;
    options.include_expired = true;
    memory.list(&options).unwrap().items
}

/// Contents of what a filter admits, sorted (ids differ between two stores).
fn contents(memory: &Memory, filter: &Filter) -> Vec<String> {
    let mut out: Vec<String> = all(memory, Some(filter.clone()))
        .into_iter()
        .map(|m| m.content)
        .collect();
    out.sort();
    out
}

#[test]
fn crud_and_history() {
    let _server = shared();
    let Some((url, memory)) = fresh("crud_and_history") else {
        return;
    };
    let added = memory
        .add(
            NewMemory::new("Alice likes green tea")
                .user("alice")
                .meta("topic", "drinks"),
        )
        .unwrap();
    assert!(added.added);
    let got = memory.get(&added.id).unwrap();
    assert_eq!(got.content, "Alice likes green tea");
    assert_eq!(got.scope.user_id.as_deref(), Some("alice"));
    assert_eq!(got.scope.agent_id, None);
    assert_eq!(got.metadata["topic"], "drinks");
    let updated = memory
        .update(
            &added.id,
            MemoryUpdate {
                content: Some("Alice likes black tea".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated.content, "Alice likes black tea");
    assert_eq!(
        memory.get(&added.id).unwrap().content,
        "Alice likes black tea"
    );
    // The keyword index follows the content.
    let hits = memory
        .search("black", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert_eq!(hits.len(), 1);
    let hits = memory
        .search("green", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    memory.delete(&added.id).unwrap();
    let err = memory.get(&added.id).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    let history = memory.history(&added.id).unwrap();
    let events: Vec<HistoryEvent> = history.iter().map(|h| h.event).collect();
    assert_eq!(
        events,
        vec![
            HistoryEvent::Add,
            HistoryEvent::Update,
            HistoryEvent::Delete
        ]
    );
    assert_eq!(
        history[1].old_content.as_deref(),
        Some("Alice likes green tea")
    );
    assert_eq!(
        history[1].new_content.as_deref(),
        Some("Alice likes black tea")
    );
    assert!(history[2].is_deleted);
    // Another handle on the same URL sees the same store.
    let other = open_url(&url);
    assert_eq!(other.history(&added.id).unwrap().len(), 3);
    assert_eq!(other.count(&Scope::global(), None).unwrap(), 0);
}

#[test]
fn exact_duplicates_are_stored_once_per_scope() {
    let _server = shared();
    let Some((_, memory)) = fresh("duplicates") else {
        return;
    };
    let a = memory.add(NewMemory::new("likes tea").user("u1")).unwrap();
    let b = memory.add(NewMemory::new("likes tea").user("u1")).unwrap();
    assert!(a.added && !b.added);
    assert_eq!(a.id, b.id);
    let c = memory.add(NewMemory::new("likes tea").user("u2")).unwrap();
    let d = memory.add(NewMemory::new("likes tea")).unwrap();
    let e = memory.add(NewMemory::new("likes tea")).unwrap();
    assert!(c.added && d.added && !e.added);
    assert_eq!(d.id, e.id);
    let batch = memory
        .add_batch(vec![
            NewMemory::new("one fact").user("u1"),
            NewMemory::new("one fact").user("u1"),
        ])
        .unwrap();
    assert!(batch[0].added && !batch[1].added);
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 4);
}

/// Paging past the end gives an empty page, an offset beyond i64 is refused; 40 `in` lists
/// of 10,000 values select what they select on SQLite.
#[test]
fn far_offsets_and_long_in_lists() {
    let _server = shared();
    let Some((_, pg)) = fresh("far_offsets") else {
        return;
    };
    let reference = sqlite();
    for memory in [&pg, &reference] {
        memory.add_batch(filter_dataset()).unwrap();
        for offset in [100, i64::MAX as usize] {
            let page = memory
                .list(&ListOptions {
                    offset,
                    ..ListOptions::new()
                })
                .unwrap();
            assert!(page.items.is_empty(), "offset {offset}");
        }
        let e = memory
            .list(&ListOptions {
                offset: 1 << 63,
                ..ListOptions::new()
            })
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    }
    // 10,000 values: texts, the one that matters, and a number (metadata) or null (scope).
    let list = |extra: Value, last: Value| -> Value {
        let mut values: Vec<Value> = (0..9_998).map(|i| json!(format!("topic {i}"))).collect();
        values.push(extra);
        values.push(last);
        Value::Array(values)
    };
    let long = json!({
        "AND": (0..40).map(|i| if i % 2 == 0 {
            json!({"topic": {"in": list(json!("food"), json!(9))}})
        } else {
            json!({"user_id": {"in": list(json!("alice"), Value::Null)}})
        }).collect::<Vec<_>>(),
        "tags": {"nin": list(json!("dinner"), json!(9))},
    });
    let filter = Filter::from_json(&long).unwrap();
    let want = contents(&reference, &filter);
    assert!(want.contains(&"a later memory".to_string()), "{want:?}");
    assert_eq!(contents(&pg, &filter), want);
}

/// Commit times follow commit order: 16 threads on 4 handles (pools) add and update each
/// other's memories; each memory's history times never go back, and its `created_at` /
/// `updated_at` are the times of its first and last rows.
#[test]
fn commit_times_follow_commit_order() {
    let _server = shared();
    let Some((url, memory)) = fresh("commit_times") else {
        return;
    };
    let handles: Vec<Arc<Memory>> = (0..3)
        .map(|_| Arc::new(open_url(&url)))
        .chain(std::iter::once(Arc::new(memory)))
        .collect();
    let ids = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let memory = handles[t % handles.len()].clone();
            let ids = ids.clone();
            std::thread::spawn(move || {
                for r in 0..12 {
                    let id = memory
                        .add(NewMemory::new(format!("thread {t} round {r}")))
                        .unwrap()
                        .id;
                    let other = {
                        let mut ids = ids.lock().unwrap();
                        ids.push(id);
                        ids[(t * 7 + r * 13) % ids.len()].clone()
                    };
                    memory
                        .update(
                            &other,
                            MemoryUpdate::content(format!("changed by {t} in round {r}")),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let memory = &handles[0];
    for id in ids.lock().unwrap().iter() {
        let history = memory.history(id).unwrap();
        for pair in history.windows(2) {
            assert!(
                pair[0].created_at <= pair[1].created_at,
                "{id}: {history:?}"
            );
        }
        let record = memory.get(id).unwrap();
        assert_eq!(record.created_at, history[0].created_at, "{id}");
        assert_eq!(
            record.updated_at,
            history.last().unwrap().created_at,
            "{id}"
        );
    }
}

fn filter_dataset() -> Vec<NewMemory> {
    let meta = |v: Value| v.as_object().unwrap().clone();
    let soon = Utc::now() + chrono::Duration::days(30);
    vec![
        NewMemory::new("cooked pasta carbonara")
            .user("alice")
            .metadata(meta(json!({"topic": "food", "rating": 5, "tags": ["italian", "dinner"],
                "name": "Alice Smith", "vegan": false, "flag": true, "when": "2024-05-01T00:00:00Z"}))),
        NewMemory::new("ate sushi in Tokyo")
            .user("alice")
            .kind(MemoryKind::Semantic)
            .metadata(meta(json!({"topic": "Food", "rating": 3.5, "tags": ["japanese", 1, true],
                "vegan": true, "flag": 1}))),
        NewMemory::new("booked a flight to Lisbon")
            .user("bob")
            .metadata(meta(json!({"topic": "travel", "rating": "4", "name": "ÉCOLE Über straße",
                "price": 129.5, "flag": "true"}))),
        NewMemory::new("renewed the passport")
            .user("bob")
            .kind(MemoryKind::Procedural)
            .metadata(meta(json!({"topic": null, "nested": {"a": 1}, "tags": [], "n": -2})))
            .expires_at(soon),
        NewMemory::new("no metadata here, un été à Paris").agent("helper"),
        NewMemory::new("a later memory")
            .user("alice")
            .run("r1")
            .metadata(meta(json!({"topic": "food", "rating": 1, "n": 0.5, "name": "ΣΟΦΙΑ"}))),
    ]
}

const FILTERS: &[&str] = &[
    r#"{}"#,
    r#"{"topic": "food"}"#,
    r#"{"topic": {"ne": "food"}}"#,
    r#"{"topic": null}"#,
    r#"{"topic": {"ne": null}}"#,
    r#"{"topic": "*"}"#,
    r#"{"topic": {"gt": "F"}}"#,
    r#"{"topic": {"lt": "a"}}"#,
    r#"{"topic": {"gte": "food", "lte": "travel"}}"#,
    r#"{"topic": {"in": ["food", null]}}"#,
    r#"{"topic": {"nin": ["food", null]}}"#,
    r#"{"topic": {"in": []}}"#,
    r#"{"topic": {"nin": []}}"#,
    r#"{"topic": {"icontains": "FOO"}}"#,
    r#"{"rating": {"gt": 3}}"#,
    r#"{"rating": {"gte": "4"}}"#,
    r#"{"rating": {"lt": 4}}"#,
    r#"{"rating": ["4", 5]}"#,
    r#"{"rating": {"nin": [5, "4"]}}"#,
    r#"{"rating": 3.5}"#,
    r#"{"rating": {"gt": 1, "lt": 5}}"#,
    r#"{"flag": true}"#,
    r#"{"flag": 1}"#,
    r#"{"flag": false}"#,
    r#"{"flag": "true"}"#,
    r#"{"flag": {"gt": 0}}"#,
    r#"{"vegan": {"ne": true}}"#,
    r#"{"vegan": [true, "x"]}"#,
    r#"{"tags": {"contains": "italian"}}"#,
    r#"{"tags": {"contains": "ital"}}"#,
    r#"{"tags": {"contains": 1}}"#,
    r#"{"tags": {"contains": true}}"#,
    r#"{"tags": {"icontains": "JAPANESE"}}"#,
    r#"{"tags": "*"}"#,
    r#"{"name": {"contains": "Smith"}}"#,
    r#"{"name": {"contains": "smith"}}"#,
    r#"{"name": {"icontains": "SMITH"}}"#,
    r#"{"name": {"icontains": "école"}}"#,
    r#"{"name": {"icontains": "ÜBER STRASSE"}}"#,
    r#"{"name": {"icontains": "über straße"}}"#,
    r#"{"name": {"icontains": "σοφια"}}"#,
    r#"{"name": {"contains": "ÉCOLE"}}"#,
    r#"{"name": {"gt": "B"}}"#,
    r#"{"nested": {"contains": "a"}}"#,
    r#"{"nested": "*"}"#,
    r#"{"n": {"lt": 0}}"#,
    r#"{"n": -2}"#,
    r#"{"n": -2.0}"#,
    r#"{"n": {"gte": 0.5}}"#,
    r#"{"price": {"gte": 129.5}}"#,
    r#"{"price": {"lt": 129.49}}"#,
    r#"{"when": {"gte": "2024-01-01"}}"#,
    r#"{"missing": {"ne": "x"}}"#,
    r#"{"missing": {"nin": ["x"]}}"#,
    r#"{"missing": "x"}"#,
    r#"{"OR": [{"topic": "travel"}, {"rating": {"lte": 1}}]}"#,
    r#"{"NOT": {"topic": "food"}}"#,
    r#"{"NOT": {"rating": {"gt": 3}}}"#,
    r#"{"AND": [{"topic": "food"}, {"NOT": {"name": "*"}}]}"#,
    r#"{"metadata": {"topic": "travel"}}"#,
    r#"{"metadata.rating": 5}"#,
    r#"{"user_id": null}"#,
    r#"{"user_id": "*"}"#,
    r#"{"user_id": {"in": ["alice", null]}}"#,
    r#"{"user_id": {"nin": ["alice"]}}"#,
    r#"{"user_id": {"ne": "bob"}}"#,
    r#"{"user_id": {"gt": "alice"}}"#,
    r#"{"agent_id": {"nin": ["helper"]}}"#,
    r#"{"run_id": "r1"}"#,
    r#"{"kind": {"ne": "episodic"}}"#,
    r#"{"kind": {"in": ["semantic", "procedural"]}}"#,
    r#"{"content": {"icontains": "ÉTÉ"}}"#,
    r#"{"content": {"contains": "Tokyo"}}"#,
    r#"{"content": {"gt": "b"}}"#,
    r#"{"created_at": {"gte": "2000-01-01"}}"#,
    r#"{"created_at": {"lt": "2000-01-01T00:00:00Z"}}"#,
    r#"{"expires_at": "*"}"#,
    r#"{"expires_at": null}"#,
    r#"{"expires_at": {"gt": "2000-01-01T00:00:00Z"}}"#,
    r#"{"expires_at": {"ne": "2000-01-01T00:00:00Z"}}"#,
    r#"{"expires_at": {"in": [null]}}"#,
    r#"{"id": {"ne": null}}"#,
    r#"{"id": null}"#,
];

#[test]
fn filters_select_what_sqlite_selects() {
    let _server = shared();
    let Some((_, pg)) = fresh("filters") else {
        return;
    };
    let reference = sqlite();
    pg.add_batch(filter_dataset()).unwrap();
    reference.add_batch(filter_dataset()).unwrap();
    let mut differences = Vec::new();
    for text in FILTERS {
        let filter = Filter::parse(text).unwrap();
        let want = contents(&reference, &filter);
        let got = contents(&pg, &filter);
        if want != got {
            differences.push(format!("{text}: sqlite {want:?}, postgres {got:?}"));
        }
        assert_eq!(
            pg.count(&Scope::global(), Some(&filter)).unwrap(),
            reference.count(&Scope::global(), Some(&filter)).unwrap(),
            "count {text}"
        );
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // Scoped searches go through the same condition.
    let options = SearchOptions::new()
        .mode(SearchMode::Keyword)
        .user("alice")
        .filter(Filter::parse(r#"{"tags": {"contains": "italian"}}"#).unwrap());
    let hits = pg.search("pasta", &options).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.content, "cooked pasta carbonara");
}

const TEXTS: &[&str] = &[
    "tea tea tea tea with lemon",
    "I drink tea and water every morning",
    "water is good for you",
    "coffee in the morning, tea in the afternoon",
    "the quick brown fox jumps over the lazy dog",
    "Alice's favourite drink is jasmine tea",
    "我喜欢喝咖啡，特别是拿铁",
    "他每天早上喝茶",
    "咖啡店在街角",
    "New York is a big city",
    "we renew york deals every year",
    "memories of a summer in San Francisco",
    "to be or not to be",
    "I went to Berlin",
];

/// Hits as (content, score rounded), ordered by score then content (two stores may order
/// equal scores differently).
fn text_hits(memory: &Memory, query: &str, mode: SearchMode) -> Vec<(String, i64)> {
    let mut hits: Vec<(String, i64)> = memory
        .search(query, &SearchOptions::new().mode(mode).limit(50))
        .unwrap()
        .into_iter()
        .map(|h| (h.memory.content, (h.score * 10_000.0).round() as i64))
        .collect();
    hits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    hits
}

#[test]
fn text_engines_rank_as_sqlite_does() {
    let _server = shared();
    let Some((_, pg)) = fresh("text_engines") else {
        return;
    };
    let reference = sqlite();
    let batch = || TEXTS.iter().map(|t| NewMemory::new(*t)).collect::<Vec<_>>();
    pg.add_batch(batch()).unwrap();
    reference.add_batch(batch()).unwrap();
    // Deleting and changing memories keeps the statistics in step.
    for memory in [&pg, &reference] {
        let id = memory
            .add(NewMemory::new("a passing note about tea"))
            .unwrap()
            .id;
        memory.delete(&id).unwrap();
        let id = memory.add(NewMemory::new("soon to change")).unwrap().id;
        memory
            .update(
                &id,
                MemoryUpdate {
                    content: Some("green tea and water".into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let cases: &[(&str, SearchMode)] = &[
        ("tea", SearchMode::Keyword),
        ("water tea", SearchMode::Keyword),
        ("morning drinks", SearchMode::Keyword),
        ("咖啡", SearchMode::Keyword),
        ("拿铁", SearchMode::Keyword),
        ("喝", SearchMode::Keyword),
        ("nothing matches this", SearchMode::Keyword),
        ("new york", SearchMode::Phrase),
        ("to be", SearchMode::Phrase),
        ("TEA WITH", SearchMode::Phrase),
        ("喝咖啡", SearchMode::Phrase),
        ("teh", SearchMode::Fuzzy),
        ("wter", SearchMode::Fuzzy),
        ("Fransisco", SearchMode::Fuzzy),
        ("jasmin tee", SearchMode::Fuzzy),
        ("咖啡", SearchMode::Fuzzy),
    ];
    for (query, mode) in cases {
        let want = text_hits(&reference, query, *mode);
        let got = text_hits(&pg, query, *mode);
        assert_eq!(got, want, "{mode:?} {query:?}");
    }
    // The orders the conformance cases check, spelled out.
    let hits = text_hits(&pg, "tea", SearchMode::Keyword);
    assert_eq!(hits[0].0, "tea tea tea tea with lemon");
    let hits = text_hits(&pg, "water tea", SearchMode::Keyword);
    assert!(
        hits[0].0 == "I drink tea and water every morning" || hits[0].0 == "green tea and water",
        "{hits:?}"
    );
    let hits = text_hits(&pg, "咖啡", SearchMode::Keyword);
    let found: Vec<&str> = hits.iter().map(|(c, _)| c.as_str()).collect();
    assert!(found.contains(&"我喜欢喝咖啡，特别是拿铁"), "{found:?}");
    assert!(found.contains(&"咖啡店在街角"), "{found:?}");
    assert_eq!(found.len(), 2, "{found:?}");
}

/// Cosine similarity, for the brute-force reference.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn vector_search_is_right_with_selective_filters() {
    let _server = shared();
    let Some(url) = support::pg::fresh_store_url("vector_filters") else {
        return;
    };
    // A tiny exact-scan limit, so that filters admitting a few dozen memories walk the
    // HNSW graph (pgvector's iterative scan), and smaller ones scan exactly.
    let memory = Memory::builder()
        .path(&url)
        .embedder(embedder())
        .index_options(VectorIndexOptions {
            exact_scan_limit: 8,
            ..Default::default()
        })
        .build()
        .unwrap();
    let words = [
        "apple", "river", "mountain", "coffee", "violin", "garden", "rocket", "harbor", "winter",
        "lantern",
    ];
    let mut batch = Vec::new();
    for i in 0..400 {
        let content = format!(
            "{} {} {} note {i}",
            words[i % 10],
            words[(i / 10) % 10],
            words[(i / 7) % 10]
        );
        let user = match i % 100 {
            0..=4 => "rare",
            5..=34 => "some",
            _ => "many",
        };
        batch.push(NewMemory::new(content).user(user).meta("i", i as i64));
    }
    let added = memory.add_batch(batch).unwrap();
    assert!(added.iter().all(|a| a.added));
    let e = HashingEmbedder::new(64);
    for (user, query) in [
        ("rare", "apple river coffee"),
        ("some", "violin garden"),
        ("many", "rocket harbor winter"),
    ] {
        let hits = memory
            .search(
                query,
                &SearchOptions::new()
                    .mode(SearchMode::Vector)
                    .user(user)
                    .limit(10),
            )
            .unwrap();
        let q = e.embed(&[query]).unwrap().remove(0);
        let mut expected: Vec<(String, f32)> = all(&memory, Some(Filter::eq("user_id", user)))
            .into_iter()
            .map(|m| {
                let v = e.embed(&[m.content.as_str()]).unwrap().remove(0);
                (m.content, cosine(&q, &v))
            })
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(10);
        assert_eq!(hits.len(), expected.len(), "{user}");
        for (hit, (content, sim)) in hits.iter().zip(&expected) {
            assert!(
                (hit.similarity.unwrap() - sim).abs() < 1e-4,
                "{user}: {} {:?} vs {content} {sim}",
                hit.memory.content,
                hit.similarity
            );
            assert_eq!(hit.memory.scope.user_id.as_deref(), Some(user));
        }
    }
    // A filter on metadata that admits three memories.
    let filter = Filter::parse(r#"{"i": {"in": [3, 150, 399]}}"#).unwrap();
    let hits = memory
        .search(
            "anything",
            &SearchOptions::new()
                .mode(SearchMode::Vector)
                .filter(filter)
                .limit(10),
        )
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(memory.indexed_vectors().unwrap(), 400);
}

#[test]
fn expired_memories_are_hidden_until_asked_for() {
    let _server = shared();
    let Some((_, memory)) = fresh("expiry") else {
        return;
    };
    let soon = Utc::now() + chrono::Duration::milliseconds(800);
    let short = memory
        .add(
            NewMemory::new("parking spot 42 today")
                .user("u")
                .expires_at(soon),
        )
        .unwrap();
    memory
        .add(NewMemory::new("parking is free on sundays").user("u"))
        .unwrap();
    assert_eq!(memory.count(&Scope::user("u"), None).unwrap(), 2);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(memory.count(&Scope::user("u"), None).unwrap(), 1);
    for mode in [SearchMode::Keyword, SearchMode::Vector, SearchMode::Hybrid] {
        let hits = memory
            .search("parking spot", &SearchOptions::new().mode(mode).user("u"))
            .unwrap();
        assert!(hits.iter().all(|h| h.memory.id != short.id), "{mode:?}");
        let mut options = SearchOptions::new().mode(mode).user("u");
        options.include_expired = true;
        let hits = memory.search("parking spot", &options).unwrap();
        assert!(hits.iter().any(|h| h.memory.id == short.id), "{mode:?}");
    }
    // The expired twin makes way for the same content.
    let again = memory
        .add(NewMemory::new("parking spot 42 today").user("u"))
        .unwrap();
    assert!(again.added);
    assert_ne!(again.id, short.id);
    assert_eq!(memory.purge_expired().unwrap(), 0);
}

#[test]
fn reset_empties_the_store_and_keeps_its_model() {
    let _server = shared();
    let Some((url, memory)) = fresh("reset") else {
        return;
    };
    memory
        .add_batch(vec![
            NewMemory::new("likes tea").user("u"),
            NewMemory::new("likes coffee").user("u"),
        ])
        .unwrap();
    memory.reset().unwrap();
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 0);
    assert!(memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap()
        .is_empty());
    assert!(memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Fuzzy))
        .unwrap()
        .is_empty());
    let again = memory.add(NewMemory::new("likes tea").user("u")).unwrap();
    assert!(again.added);
    let hits = memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert_eq!(hits.len(), 1);
    // The model and the dimension stay recorded.
    let err = Memory::builder()
        .path(&url)
        .embedder(Arc::new(HashingEmbedder::new(32)))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    let err = memory
        .add_with_vector(NewMemory::new("two d"), vec![1.0, 0.0])
        .unwrap_err();
    assert!(err.message().contains("dimension"), "{err}");
}

#[test]
fn another_embedding_model_is_refused_clearly() {
    let _server = shared();
    let Some((url, memory)) = fresh("model_mismatch") else {
        return;
    };
    memory.add(NewMemory::new("likes tea")).unwrap();
    drop(memory);
    let err = Memory::builder()
        .path(&url)
        .embedder(Arc::new(HashingEmbedder::new(32)))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(
        err.message().contains("hashing-64") && err.message().contains("hashing-32"),
        "{err}"
    );
}

#[test]
fn concurrent_adds_of_one_content_store_one_memory() {
    let _server = shared();
    let Some((url, memory)) = fresh("concurrent_adds") else {
        return;
    };
    // Separate handles (separate pools), like separate processes, plus shared ones.
    let handles: Vec<Arc<Memory>> = (0..4)
        .map(|_| Arc::new(open_url(&url)))
        .chain(std::iter::once(Arc::new(memory)))
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let memory = handles[i % handles.len()].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                memory
                    .add(NewMemory::new("the same fact from everyone").user("team"))
                    .unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.added).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o.id == outcomes[0].id),
        "{outcomes:?}"
    );
    let memory = &handles[0];
    assert_eq!(memory.count(&Scope::user("team"), None).unwrap(), 1);
    assert_eq!(memory.history(&outcomes[0].id).unwrap().len(), 1);
    // The statistics counted it once: its BM25 score is that of a store of one memory.
    let hits = memory
        .search("fact", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    let reference = sqlite();
    reference
        .add(NewMemory::new("the same fact from everyone").user("team"))
        .unwrap();
    let want = reference
        .search("fact", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!((hits[0].score - want[0].score).abs() < 1e-5);
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let _server = shared();
    let Some(url) = support::pg::fresh_store_url("concurrent_opens") else {
        return;
    };
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let memory = open_url(&url);
                memory
                    .add(NewMemory::new(format!("opener {i} was here")))
                    .unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(open_url(&url).count(&Scope::global(), None).unwrap(), 6);
}

#[test]
fn a_server_restart_between_calls_goes_unnoticed() {
    let _server = SERVER.write().unwrap_or_else(|p| p.into_inner());
    let Some((_, memory)) = fresh("restart") else {
        return;
    };
    let Ok(ctl) = std::env::var("AGENTMEM_TEST_PG_CTL") else {
        assert!(
            std::env::var("AGENTMEM_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "AGENTMEM_TEST_PG_CTL is not set"
        );
        println!("SKIPPED a_server_restart_between_calls_goes_unnoticed: no AGENTMEM_TEST_PG_CTL");
        return;
    };
    let first = memory.add(NewMemory::new("before the restart")).unwrap();
    // Several pooled connections, all of which the restart kills.
    std::thread::scope(|s| {
        for i in 0..4 {
            let memory = &memory;
            s.spawn(move || memory.add(NewMemory::new(format!("warm-up {i}"))).unwrap());
        }
    });
    let status = std::process::Command::new(&ctl)
        .arg("restart")
        .status()
        .unwrap();
    assert!(status.success(), "{ctl} restart");
    assert_eq!(memory.get(&first.id).unwrap().content, "before the restart");
    assert!(
        memory
            .add(NewMemory::new("after the restart"))
            .unwrap()
            .added
    );
    let hits = memory
        .search("restart", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 6);
}

#[test]
fn copies_go_both_ways() {
    let _server = shared();
    let Some((_, pg)) = fresh("copies") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = Memory::builder()
        .path(dir.path().join("source.db"))
        .embedder(embedder())
        .build()
        .unwrap();
    source.add_batch(filter_dataset()).unwrap();
    let changed = source
        .add(NewMemory::new("to be changed").user("u"))
        .unwrap();
    source
        .update(
            &changed.id,
            MemoryUpdate {
                content: Some("changed once".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let gone = source.add(NewMemory::new("to be deleted")).unwrap();
    source.delete(&gone.id).unwrap();
    let report = source.copy_into(&pg).unwrap();
    assert_eq!(report.memories, 7);
    assert_eq!(report.history, 10);
    let back = Memory::builder()
        .path(dir.path().join("back.db"))
        .embedder(embedder())
        .build()
        .unwrap();
    let report = pg.copy_into(&back).unwrap();
    assert_eq!(report.memories, 7);
    assert_eq!(report.history, 10);
    let by_id = |m: &Memory| -> BTreeMap<String, agent_mem::MemoryRecord> {
        all(m, None)
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect()
    };
    assert_eq!(by_id(&source), by_id(&pg));
    assert_eq!(by_id(&source), by_id(&back));
    for id in [&changed.id, &gone.id] {
        assert_eq!(source.history(id).unwrap(), pg.history(id).unwrap());
        assert_eq!(source.history(id).unwrap(), back.history(id).unwrap());
    }
    // The copied text index answers like the original.
    for query in ["sushi Tokyo", "passport"] {
        assert_eq!(
            text_hits(&pg, query, SearchMode::Keyword),
            text_hits(&source, query, SearchMode::Keyword)
        );
    }
    let err = source.copy_into(&pg).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AlreadyExists);
}

#[test]
fn urls_never_show_the_password() {
    let _server = shared();
    let Some(server) = support::pg::server_url("urls_never_show_the_password") else {
        return;
    };
    let Some((url, memory)) = fresh("password") else {
        return;
    };
    let config: postgres::Config = server.parse().unwrap();
    let password = String::from_utf8(config.get_password().unwrap_or_default().to_vec()).unwrap();
    assert!(!password.is_empty(), "the test server has a password");
    // (The test server's user and password are alike: look for the password's place.)
    let secret = format!(":{password}@");
    assert!(
        !memory.location().contains(&secret),
        "{}",
        memory.location()
    );
    assert!(memory.location().contains(":***@"), "{}", memory.location());
    assert!(!format!("{memory:?}").contains(&secret));
    assert!(url.contains(&secret));
    // A server that does not answer: the message names it, without the password.
    let user = config.get_user().unwrap();
    let bad = format!("postgres://{user}:{password}@127.0.0.1:1/nowhere");
    let err = Memory::builder()
        .path(&bad)
        .embedder(embedder())
        .postgres_options(PostgresOptions {
            connect_timeout_ms: 2000,
            ..Default::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(
        err.message().contains(&format!(
            "cannot connect to postgres://{user}@127.0.0.1:1/nowhere"
        )),
        "{err}"
    );
    assert!(!err.to_string().contains(&secret), "{err}");
    // TLS is refused rather than skipped.
    let err = Memory::builder()
        .path(format!("{url}&sslmode=require"))
        .embedder(embedder())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    assert!(!err.to_string().contains(&secret), "{err}");
}

#[test]
fn foreign_and_newer_schemas_are_refused() {
    let _server = shared();
    let Some(server) = support::pg::server_url("foreign_and_newer_schemas_are_refused") else {
        return;
    };
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    // An application's table that happens to use the prefix, without the store's mark.
    let Some(url) = support::pg::fresh_store_url("foreign_schema") else {
        return;
    };
    let schema = schema_of(&url);
    client
        .batch_execute(&format!("CREATE TABLE {schema}.agentmem_memories (x int)"))
        .unwrap();
    let err = Memory::builder()
        .path(&url)
        .embedder(embedder())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupted, "{err}");
    assert!(err.message().contains("not an agent_mem store"), "{err}");
    // A store written by a newer agent_mem.
    let Some((url, memory)) = fresh("newer_schema") else {
        return;
    };
    drop(memory);
    let schema = schema_of(&url);
    client
        .batch_execute(&format!(
            "UPDATE {schema}.agentmem_meta SET value = '99' WHERE key = 'schema_version'"
        ))
        .unwrap();
    let err = Memory::builder()
        .path(&url)
        .embedder(embedder())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    // A search_path without an existing schema: refused, nothing created anywhere (not in
    // the extensions' schema either, which the store appends to the path).
    let sep = if server.contains('?') { '&' } else { '?' };
    let nowhere = format!("{server}{sep}options=-csearch_path%3Dagentmem_no_such_schema");
    let err = Memory::builder()
        .path(&nowhere)
        .embedder(embedder())
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert!(err.message().contains("no existing schema"), "{err}");
    // Other tables of the application's schema are no obstacle.
    let Some(url) = support::pg::fresh_store_url("shared_schema") else {
        return;
    };
    client
        .batch_execute(&format!("CREATE TABLE {}.orders (id int)", schema_of(&url)))
        .unwrap();
    open_url(&url).add(NewMemory::new("fits in")).unwrap();
}

/// The schema named by a test URL's search_path.
fn schema_of(url: &str) -> String {
    let path = url.split("search_path%3D").nth(1).unwrap();
    path.split("%2C").next().unwrap().to_string()
}

#[test]
fn extensions_outside_the_search_path_still_resolve() {
    let _server = shared();
    let Some(with_public) = support::pg::fresh_store_url("own_search_path") else {
        return;
    };
    // Only the store's schema, while the extensions live in `public`.
    let url = with_public.replace("%2Cpublic", "");
    assert!(!url.contains("public"));
    let memory = open_url(&url);
    memory
        .add_batch(vec![
            NewMemory::new("the harbour lights at night"),
            NewMemory::new("a quiet harbor town"),
        ])
        .unwrap();
    for mode in [
        SearchMode::Vector,
        SearchMode::Keyword,
        SearchMode::Fuzzy,
        SearchMode::Hybrid,
    ] {
        let hits = memory
            .search("harbour", &SearchOptions::new().mode(mode))
            .unwrap();
        assert!(!hits.is_empty(), "{mode:?}");
    }
}

#[test]
fn a_small_pool_serves_many_threads() {
    let _server = shared();
    let Some(url) = support::pg::fresh_store_url("small_pool") else {
        return;
    };
    let memory = Memory::builder()
        .path(&url)
        .embedder(embedder())
        .postgres_options(PostgresOptions {
            pool_size: 2,
            ..Default::default()
        })
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let memory = &memory;
            s.spawn(move || {
                for i in 0..10 {
                    memory
                        .add(NewMemory::new(format!("thread {t} item {i}")))
                        .unwrap();
                    memory
                        .search("item", &SearchOptions::new().limit(3))
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 80);
    let err = Memory::builder()
        .path(&url)
        .embedder(embedder())
        .postgres_options(PostgresOptions {
            pool_size: 0,
            ..Default::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[test]
fn concurrent_merges_into_one_memory_lose_no_key() {
    let _server = shared();
    let Some((url, memory)) = fresh("concurrent_merges") else {
        return;
    };
    let id = memory
        .add(NewMemory::new("shared notes").user("team").meta("base", 0))
        .unwrap()
        .id;
    // Separate handles (separate pools), like separate processes, plus the first one.
    let handles: Vec<Arc<Memory>> = (0..3)
        .map(|_| Arc::new(open_url(&url)))
        .chain(std::iter::once(Arc::new(memory)))
        .collect();
    const THREADS: usize = 8;
    const ROUNDS: usize = 15;
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let memory = handles[t % handles.len()].clone();
            let barrier = barrier.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for r in 0..ROUNDS {
                    let patch = json!({format!("t{t}_r{r}"): r, format!("last_{t}"): r});
                    memory
                        .update(&id, MemoryUpdate::merge(patch.as_object().unwrap().clone()))
                        .unwrap();
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
    }
    assert_eq!(handles[0].history(&id).unwrap().len(), 1 + THREADS * ROUNDS);
}

#[test]
fn pages_come_with_their_total() {
    let _server = shared();
    let Some((_url, memory)) = fresh("pages_with_total") else {
        return;
    };
    let reference = sqlite();
    for m in [&memory, &reference] {
        for i in 0..7 {
            m.add(NewMemory::new(format!("fact {i}")).user("u").meta("n", i))
                .unwrap();
        }
        m.add(NewMemory::new("for everyone")).unwrap();
        m.add(
            NewMemory::new("expired fact")
                .user("u")
                .expires_at(Utc::now() - chrono::Duration::hours(1)),
        )
        .unwrap();
    }
    let mut cases = vec![];
    for (offset, include_global, include_expired) in [
        (0, false, false),
        (6, false, false),
        (50, false, false),
        (0, true, false),
        (2, false, true),
    ] {
        let mut options = ListOptions::new().user("u").limit(3).with_total();
        options.offset = offset;
        options.include_global = include_global;
        options.include_expired = include_expired;
        cases.push(options);
    }
    cases.push(
        ListOptions::new()
            .user("u")
            .with_total()
            .filter(Filter::from_json(&json!({"n": {"gte": 5}})).unwrap()),
    );
    for options in cases {
        let page = memory.list(&options).unwrap();
        let want = reference.list(&options).unwrap();
        assert_eq!(page.total, want.total, "{options:?}");
        assert_eq!(page.items.len(), want.items.len(), "{options:?}");
        assert!(page.total.is_some());
    }
    assert_eq!(
        memory.list(&ListOptions::new().user("u")).unwrap().total,
        None
    );
}

/// The test server's URL as libpq's key=value connection string, into the schema of `url`
/// (the options value quoted: it holds blanks, "=" and ",").
fn conninfo_of(server: &str, url: &str) -> (String, String) {
    let config: postgres::Config = server.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("the test server is reached over TCP, not {other:?}"),
    };
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    let conninfo = format!(
        "host = {host}  port={} dbname='{}' user={} password='{}' \
         options='-c search_path={},public'",
        config.get_ports()[0],
        config.get_dbname().unwrap(),
        config.get_user().unwrap(),
        password.replace('\\', "\\\\").replace('\'', "\\'"),
        schema_of(url)
    );
    (conninfo, password)
}

#[test]
fn conninfo_strings_open_like_urls() {
    let _server = shared();
    let Some(server) = support::pg::server_url("conninfo_strings_open_like_urls") else {
        return;
    };
    let Some((url, by_url)) = fresh("conninfo") else {
        return;
    };
    let (conninfo, password) = conninfo_of(&server, &url);
    assert!(agent_mem::is_postgres_location(&conninfo));
    let by_conninfo = open_url(&conninfo);
    assert_eq!(by_conninfo.path(), None);
    let added = by_conninfo
        .add(NewMemory::new("opened by a connection string").user("u"))
        .unwrap();
    // The same database and schema as the URL's.
    assert_eq!(
        by_url.get(&added.id).unwrap().content,
        "opened by a connection string"
    );
    // The location names the server, never the password.
    let location = by_conninfo.location();
    assert!(location.contains("password=***"), "{location}");
    assert!(
        location.contains("dbname=") && location.contains("port="),
        "{location}"
    );
    assert!(
        !location.contains(&format!("password='{password}'")),
        "{location}"
    );
    assert!(
        !location.contains(&format!("password={password} ")),
        "{location}"
    );
    // Through the JSON facade's open too.
    let opened = agent_mem::wire::open(
        Some(&conninfo),
        &json!({"embedder": {"provider": "hashing", "dimensions": 64}}),
    )
    .unwrap();
    assert_eq!(opened.count(&Scope::user("u"), None).unwrap(), 1);
    // Bad ones: never a SQLite file, never the password in the message.
    for (bad, code) in [
        (
            format!("{conninfo} password='unterminated"),
            ErrorCode::InvalidInput,
        ),
        (format!("{conninfo} colour=blue"), ErrorCode::InvalidInput),
        (
            format!("{conninfo} sslcert=/tmp/c.pem"),
            ErrorCode::Unsupported,
        ),
        (
            format!("{conninfo} sslmode=require"),
            ErrorCode::Unsupported,
        ),
        (format!("{conninfo} port=notaport"), ErrorCode::InvalidInput),
    ] {
        let err = Memory::builder()
            .path(&bad)
            .embedder(embedder())
            .build()
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(!err.to_string().contains(&format!("'{password}'")), "{err}");
    }
    // A server that does not answer: named without the password.
    let err = Memory::builder()
        .path(format!(
            "host=127.0.0.1 port=1 user=nobody password='{password}' dbname=x"
        ))
        .embedder(embedder())
        .postgres_options(PostgresOptions {
            connect_timeout_ms: 2000,
            ..Default::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage, "{err}");
    assert!(!err.to_string().contains(&format!("'{password}'")), "{err}");
}

/// Waits a little, samples the clock (whole microseconds, as commit times are) and waits
/// again: every change before the call committed at or before the moment, every change
/// after it commits later (commit times run at most a few microseconds ahead of the clock).
fn moment_between_changes() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    std::thread::sleep(Duration::from_millis(3));
    let at = Utc::now().trunc_subsecs(6);
    std::thread::sleep(Duration::from_millis(3));
    at
}

/// Names of the scenario's memories, to their ids in one store.
type Names = BTreeMap<String, String>;

/// Step `step` of the as-of scenario on one store: adds, content and metadata updates and
/// deletes across users and an agent. Never deletes the newest memory before an add, so
/// that both backends number their memories alike (hybrid search reads neighbours by key).
/// The commit time of an update, as its record tells it.
fn as_of_step(m: &Memory, names: &mut Names, step: usize) -> Option<chrono::DateTime<Utc>> {
    let id = |names: &Names, name: &str| names[name].clone();
    let update = |names: &Names, name: &str, u: MemoryUpdate| {
        let r = m.update(&id(names, name), u).unwrap();
        Some(r.valid_from_tx)
    };
    let add = |names: &mut Names, name: &str, new: NewMemory| {
        let added = m.add(new).unwrap();
        assert!(added.added, "{name}");
        names.insert(name.to_string(), added.id);
    };
    match step {
        0 => {
            add(
                names,
                "a",
                NewMemory::new("Alice drinks green tea every morning")
                    .user("ann")
                    .meta("topic", "drinks"),
            );
            add(
                names,
                "b",
                NewMemory::new("Ben rides a red bicycle to work").user("ben"),
            );
            add(
                names,
                "c",
                NewMemory::new("The team meets in the blue room on Mondays").agent("planner"),
            );
            add(
                names,
                "d",
                NewMemory::new("Alice keeps a jasmine plant near the window").user("ann"),
            );
            None
        }
        1 => update(
            names,
            "a",
            MemoryUpdate::content("Alice drinks black coffee every morning"),
        ),
        2 => {
            add(
                names,
                "e",
                NewMemory::new("Ben learns the violin on weekends").user("ben"),
            );
            None
        }
        3 => {
            let mut meta = agent_mem::Metadata::new();
            meta.insert("mood".into(), json!("happy"));
            update(names, "b", MemoryUpdate::metadata(meta))
        }
        4 => {
            m.delete(&id(names, "c")).unwrap();
            None
        }
        5 => update(
            names,
            "a",
            MemoryUpdate::content("Alice drinks green tea with lemon"),
        ),
        6 => {
            add(
                names,
                "f",
                NewMemory::new("Carla paints the harbor at dawn").user("carla"),
            );
            None
        }
        7 => {
            m.delete(&id(names, "d")).unwrap();
            None
        }
        8 => update(
            names,
            "e",
            MemoryUpdate::content("Ben learns the cello on weekends"),
        ),
        9 => {
            assert_eq!(m.delete_all(&Scope::user("ben"), None).unwrap(), 2);
            None
        }
        10 => {
            add(
                names,
                "g",
                NewMemory::new("Dave sails across the harbor in winter").user("dave"),
            );
            None
        }
        _ => update(
            names,
            "f",
            MemoryUpdate::content("Carla paints the harbor at sunset"),
        ),
    }
}

/// Steps of [`as_of_step`].
const AS_OF_STEPS: usize = 12;

/// A version as both stores can be compared on: its name in the scenario, content,
/// version, owner and metadata (as JSON), and whether it has ended.
type Seen = (String, String, u64, String, String, bool);

fn seen(names: &Names, r: &agent_mem::MemoryRecord) -> Seen {
    let name = names
        .iter()
        .find(|(_, id)| **id == r.id)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| panic!("unknown id {}", r.id));
    (
        name,
        r.content.clone(),
        r.version,
        serde_json::to_string(&r.scope).unwrap(),
        serde_json::to_string(&r.metadata).unwrap(),
        r.valid_to_tx.is_some(),
    )
}

/// Everything read of one store as of `at`: lists (whole, by cursor pages, at an offset,
/// per scope), counts, each memory's version then, and the hits of every search mode
/// (named versions with their scores, by name and version).
fn read_as_of(m: &Memory, names: &Names, at: chrono::DateTime<Utc>) -> Value {
    let scopes = [
        Scope::global(),
        Scope::user("ann"),
        Scope::user("ben"),
        Scope::global().with_agent("planner"),
    ];
    let mut out = serde_json::Map::new();
    let checked = |r: &agent_mem::MemoryRecord| {
        assert!(r.was_current_at(at), "{r:?} not current at {at}");
        assert_eq!(r.valid_from_tx, r.updated_at);
        seen(names, r)
    };
    for (i, scope) in scopes.iter().enumerate() {
        let mut options = ListOptions::new().limit(10_000).as_of(at);
        options.scope = scope.clone();
        let whole: Vec<Seen> = m
            .list(&options)
            .unwrap()
            .items
            .iter()
            .map(checked)
            .collect();
        // Pages of two by cursor, oldest first, with their totals.
        let mut paged = Vec::new();
        let mut options = ListOptions::new()
            .limit(2)
            .order(agent_mem::ListOrder::UpdatedAsc)
            .with_total()
            .as_of(at);
        options.scope = scope.clone();
        loop {
            let page = m.list(&options).unwrap();
            assert_eq!(page.total, Some(whole.len()), "{scope:?} at {at}");
            paged.extend(page.items.iter().map(checked));
            match page.next_cursor {
                Some(c) => options.cursor = Some(c),
                None => break,
            }
        }
        let mut sorted = whole.clone();
        sorted.sort();
        paged.sort();
        assert_eq!(paged, sorted, "cursor pages of {scope:?} at {at}");
        let mut options = ListOptions::new().limit(2).as_of(at);
        options.scope = scope.clone();
        options.offset = 1;
        let offset: Vec<Seen> = m
            .list(&options)
            .unwrap()
            .items
            .iter()
            .map(checked)
            .collect();
        let count = m
            .count_with(&CountOptions {
                scope: scope.clone(),
                as_of: Some(at),
                ..CountOptions::default()
            })
            .unwrap();
        out.insert(
            format!("scope {i}"),
            json!({"list": whole, "offset": offset, "count": count}),
        );
    }
    let got: BTreeMap<&String, Option<Seen>> = names
        .iter()
        .map(|(name, id)| (name, m.get_as_of(id, at).ok().map(|r| checked(&r))))
        .collect();
    out.insert("get".into(), json!(got));
    let searches: &[(&str, SearchMode, Scope)] = &[
        ("green tea", SearchMode::Keyword, Scope::global()),
        ("bicycle work", SearchMode::Keyword, Scope::global()),
        ("harbor", SearchMode::Keyword, Scope::global()),
        ("violin cello", SearchMode::Keyword, Scope::global()),
        ("drinks", SearchMode::Keyword, Scope::user("ann")),
        ("green tea", SearchMode::Phrase, Scope::global()),
        ("learns the", SearchMode::Phrase, Scope::global()),
        ("every morning", SearchMode::Phrase, Scope::user("ann")),
        ("jasmin", SearchMode::Fuzzy, Scope::global()),
        ("bicycel", SearchMode::Fuzzy, Scope::global()),
        ("harbour", SearchMode::Fuzzy, Scope::global()),
        ("violn", SearchMode::Fuzzy, Scope::user("ben")),
        ("tea in the morning", SearchMode::Vector, Scope::global()),
        (
            "meeting room",
            SearchMode::Vector,
            Scope::global().with_agent("planner"),
        ),
        ("harbor", SearchMode::Vector, Scope::global()),
        ("green tea", SearchMode::Hybrid, Scope::global()),
        ("harbor winter", SearchMode::Hybrid, Scope::global()),
        ("violin", SearchMode::Hybrid, Scope::user("ben")),
    ];
    for (query, mode, scope) in searches {
        let mut options = SearchOptions::new().mode(*mode).limit(50).as_of(at);
        options.scope = scope.clone();
        let mut hits: Vec<(Seen, f32)> = m
            .search(query, &options)
            .unwrap()
            .iter()
            .map(|h| (checked(&h.memory), h.score))
            .collect();
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        out.insert(format!("{mode:?} {query:?} {scope:?}"), json!(hits));
    }
    Value::Object(out)
}

/// Two readings of [`read_as_of`] (or of any store) agree: the same values, scores within
/// float noise (pgvector computes cosines in its own way).
pub(crate) fn assert_same_reading(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() < 1e-3, "{path}: {a} vs {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: {got} vs {want}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_reading(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{path}");
            for (k, x) in a {
                assert_same_reading(x, &b[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// Versions of every scenario memory, named (none of one whose versions are not kept).
fn all_versions(m: &Memory, names: &Names) -> Vec<Vec<Seen>> {
    names
        .values()
        .map(|id| match m.versions(id) {
            Ok(versions) => versions.iter().map(|r| seen(names, r)).collect(),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
                Vec::new()
            }
        })
        .collect()
}

/// Runs the as-of scenario on both stores (PostgreSQL first): the names of their memories
/// and the moments between the changes, and at each update's commit, in each store.
fn run_as_of_scenario(stores: [&Memory; 2]) -> ([Names; 2], Vec<[chrono::DateTime<Utc>; 2]>) {
    let mut names: [Names; 2] = Default::default();
    let start = moment_between_changes();
    let mut moments = vec![[start, start]];
    for step in 0..AS_OF_STEPS {
        let mut sampled = [start; 2];
        let mut commits = [None; 2];
        for (i, m) in stores.iter().enumerate() {
            commits[i] = as_of_step(m, &mut names[i], step);
            sampled[i] = moment_between_changes();
        }
        if let [Some(a), Some(b)] = commits {
            moments.push([a, b]);
        }
        moments.push(sampled);
    }
    (names, moments)
}

/// The same adds, updates and deletes on PostgreSQL and on SQLite (the reference), then
/// the store as of every moment between two changes, and at the commit time of each update
/// (where the new version counts and the old one no longer does), reads the same on both:
/// lists (pages by cursor and offset, totals), counts, get, and every search mode; and each
/// memory has the same versions.
#[test]
fn past_moments_read_as_on_sqlite() {
    let _server = shared();
    let Some((_, pg)) = fresh("past_moments") else {
        return;
    };
    let reference = sqlite();
    let (names, moments) = run_as_of_scenario([&pg, &reference]);
    for [at_pg, at_ref] in &moments {
        let got = read_as_of(&pg, &names[0], *at_pg);
        let want = read_as_of(&reference, &names[1], *at_ref);
        assert_same_reading(&got, &want, &format!("as of {at_ref}"));
    }
    // Something was found in the past that is gone now.
    let first = read_as_of(&pg, &names[0], moments[1][0]);
    assert_eq!(first["scope 0"]["count"], 4, "{first}");
    assert_eq!(
        all_versions(&pg, &names[0]),
        all_versions(&reference, &names[1])
    );
    let a = pg.versions(&names[0]["a"]).unwrap();
    assert_eq!(a.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(a[0].valid_to_tx == Some(a[1].valid_from_tx));
    // Today's reads see the current versions only.
    let now = read_as_of(&pg, &names[0], Utc::now());
    assert_eq!(
        now["scope 0"]["count"],
        pg.count(&Scope::global(), None).unwrap()
    );
}

/// A store written before versions existed (PostgreSQL schema 1, SQLite schema 2) gets its
/// past rebuilt from history when opened, the same on both backends: the versions replaced
/// by updates of live memories (with the memory's scope and metadata of now), none of
/// deleted memories; every read as of a past moment agrees.
#[test]
fn versions_are_rebuilt_from_history_as_on_sqlite() {
    let _server = shared();
    let Some((url, pg)) = fresh("versions_rebuilt") else {
        return;
    };
    let Some(server) = support::pg::server_url("versions_rebuilt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.db");
    let open_file = || {
        Memory::builder()
            .path(&file)
            .embedder(embedder())
            .build()
            .unwrap()
    };
    let reference = open_file();
    let (names, moments) = run_as_of_scenario([&pg, &reference]);
    pg.close().unwrap();
    reference.close().unwrap();
    // Back to the schemas before versions, the history kept.
    let schema = schema_of(&url);
    postgres::Client::connect(&server, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!(
            "SET search_path = {schema};
             DROP TABLE agentmem_versions;
             ALTER TABLE agentmem_memories DROP COLUMN version, DROP COLUMN valid_from,
                 DROP COLUMN valid_to, DROP COLUMN superseded_by;
             ALTER TABLE agentmem_history DROP COLUMN change_id, DROP COLUMN undone_by;
             ALTER TABLE agentmem_term_stats DROP COLUMN past_df;
             ALTER TABLE agentmem_text_totals DROP COLUMN past_docs, DROP COLUMN past_length;
             DROP TABLE agentmem_entity_history;
             DROP TABLE agentmem_entity_embeddings;
             DROP TABLE agentmem_forgotten_sources;
             DROP TABLE agentmem_relation_sources;
             DROP TABLE agentmem_relations;
             DROP TABLE agentmem_entity_names;
             DROP TABLE agentmem_entities;
             UPDATE agentmem_meta SET value = '1' WHERE key = 'schema_version';"
        ))
        .unwrap();
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "DROP TABLE versions;
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
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    let pg = open_url(&url);
    let reference = open_file();
    let rebuilt = all_versions(&pg, &names[0]);
    assert_eq!(rebuilt, all_versions(&reference, &names[1]));
    let contents: Vec<Vec<(&str, u64)>> = rebuilt
        .iter()
        .map(|v| v.iter().map(|s| (s.1.as_str(), s.2)).collect())
        .collect();
    // Names in order: a, b, c, d, e, f, g; b, c, d and e were deleted.
    assert_eq!(
        contents,
        vec![
            vec![
                ("Alice drinks green tea every morning", 1),
                ("Alice drinks black coffee every morning", 2),
                ("Alice drinks green tea with lemon", 3),
            ],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![
                ("Carla paints the harbor at dawn", 1),
                ("Carla paints the harbor at sunset", 2),
            ],
            vec![("Dave sails across the harbor in winter", 1)],
        ]
    );
    for [at_pg, at_ref] in &moments {
        let got = read_as_of(&pg, &names[0], *at_pg);
        let want = read_as_of(&reference, &names[1], *at_ref);
        assert_same_reading(&got, &want, &format!("rebuilt, as of {at_ref}"));
    }
    // The rebuilt past is found: the first wording of a, by phrase, as of then.
    let hits = pg
        .search(
            "green tea every morning",
            &SearchOptions::new()
                .mode(SearchMode::Phrase)
                .as_of(moments[1][0]),
        )
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].memory.version, 1);
    // Changes go on from the rebuilt versions.
    let next = pg
        .update(&names[0]["a"], MemoryUpdate::content("Alice drinks water"))
        .unwrap();
    assert_eq!(next.version, 4);
    assert_eq!(pg.versions(&names[0]["a"]).unwrap().len(), 4);
}
