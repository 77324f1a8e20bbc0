//! Transaction time: every version kept, and the store read as of any past moment (get,
//! list, count and all five search modes), checked against a reference model replayed to
//! each moment.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_mem::{
    wire, CountOptions, ErrorCode, HashingEmbedder, ListOptions, Memory, MemoryRecord,
    MemoryUpdate, NewMemory, Scope, SearchMode, SearchOptions,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

fn memory() -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn counted_at(t: DateTime<Utc>) -> CountOptions {
    CountOptions {
        as_of: Some(t),
        ..CountOptions::default()
    }
}

fn list_as_of(m: &Memory, scope: Scope, at: DateTime<Utc>) -> Vec<MemoryRecord> {
    let mut options = ListOptions::new().limit(10_000).as_of(at);
    options.scope = scope;
    m.list(&options).unwrap().items
}

fn search_as_of(m: &Memory, query: &str, mode: SearchMode, at: DateTime<Utc>) -> Vec<String> {
    let options = SearchOptions::new().mode(mode).limit(100).as_of(at);
    m.search(query, &options)
        .unwrap()
        .into_iter()
        .map(|h| h.memory.content)
        .collect()
}

#[test]
fn a_past_moment_shows_the_versions_current_then() {
    let m = memory();
    let bob = m
        .add(NewMemory::new("Bob drinks green tea every morning").user("bob"))
        .unwrap()
        .id;
    let note = m
        .add(NewMemory::new("Carol parks her bicycle near the library").user("carol"))
        .unwrap()
        .id;
    let t1 = m.get(&note).unwrap().valid_from_tx;
    let updated = m
        .update(
            &bob,
            MemoryUpdate::content("Bob drinks jasmine tea every morning"),
        )
        .unwrap();
    assert_eq!(updated.version, 2);
    let t2 = updated.valid_from_tx;
    m.delete(&note).unwrap();
    let t3 = Utc::now();
    let later = m
        .add(NewMemory::new("Dave collects vinyl records").user("dave"))
        .unwrap()
        .id;

    // get: the old content before the update, the deleted memory before its deletion, the
    // later memory not before it was added.
    let old = m.get_as_of(&bob, t1).unwrap();
    assert_eq!(old.content, "Bob drinks green tea every morning");
    assert_eq!((old.version, old.valid_to_tx), (1, Some(t2)));
    assert_eq!(m.get_as_of(&bob, t2).unwrap().version, 2);
    assert_eq!(
        m.get_as_of(&note, t2).unwrap().content,
        m.versions(&note).unwrap()[0].content
    );
    assert_eq!(
        m.get_as_of(&note, t3).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        m.get_as_of(&later, t3).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(m.get(&bob).unwrap().valid_to_tx, None);

    // list and count, with scopes applied to the version's own fields.
    let contents = |items: Vec<MemoryRecord>| -> Vec<String> {
        let mut c: Vec<String> = items.into_iter().map(|r| r.content).collect();
        c.sort();
        c
    };
    assert_eq!(
        contents(list_as_of(&m, Scope::default(), t1)),
        [
            "Bob drinks green tea every morning",
            "Carol parks her bicycle near the library"
        ]
    );
    assert_eq!(
        contents(list_as_of(&m, Scope::user("carol"), t2)),
        ["Carol parks her bicycle near the library"]
    );
    assert!(list_as_of(&m, Scope::user("carol"), t3).is_empty());
    assert_eq!(m.count_with(&counted_at(t1)).unwrap(), 2);
    assert_eq!(m.count_with(&counted_at(t3)).unwrap(), 1);
    assert_eq!(m.count(&Scope::default(), None).unwrap(), 2);

    // Every search mode reads the moment's versions.
    for mode in [
        SearchMode::Keyword,
        SearchMode::Hybrid,
        SearchMode::Vector,
        SearchMode::Phrase,
    ] {
        let hits = search_as_of(&m, "green tea", mode, t1);
        assert_eq!(
            hits.first().map(String::as_str),
            Some("Bob drinks green tea every morning"),
            "{mode:?}"
        );
        assert!(
            !hits.iter().any(|h| h.contains("jasmine")),
            "{mode:?}: {hits:?}"
        );
        assert!(
            !hits.iter().any(|h| h.contains("vinyl")),
            "{mode:?}: {hits:?}"
        );
    }
    assert_eq!(
        search_as_of(&m, "bicycle", SearchMode::Keyword, t2),
        ["Carol parks her bicycle near the library"]
    );
    assert!(search_as_of(&m, "bicycle", SearchMode::Keyword, t3).is_empty());
    assert_eq!(
        search_as_of(&m, "bicycel", SearchMode::Fuzzy, t2),
        ["Carol parks her bicycle near the library"]
    );
    assert!(search_as_of(&m, "bicycel", SearchMode::Fuzzy, t3).is_empty());
    // Today's search is not disturbed by the old versions.
    let now = m
        .search("green tea", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    assert!(
        now.iter().all(|h| h.memory.content.contains("jasmine")),
        "{now:?}"
    );

    // Hits say which version they are.
    let hit = &m
        .search(
            "green",
            &SearchOptions::new().mode(SearchMode::Keyword).as_of(t1),
        )
        .unwrap()[0];
    assert_eq!((hit.memory.version, hit.memory.valid_to_tx), (1, Some(t2)));
}

#[test]
fn moments_before_the_store_or_still_to_come_are_empty_and_bad_times_are_refused() {
    let m = memory();
    let id = m.add(NewMemory::new("a memory").user("u")).unwrap().id;
    let before = Utc::now() - Duration::days(365);
    let future = Utc::now() + Duration::days(1);
    for at in [before, future] {
        assert!(list_as_of(&m, Scope::default(), at).is_empty());
        assert_eq!(m.count_with(&counted_at(at)).unwrap(), 0);
        assert!(search_as_of(&m, "memory", SearchMode::Hybrid, at).is_empty());
        assert_eq!(
            m.get_as_of(&id, at).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }
    for (op, request) in [
        ("search", json!({"query": "memory", "as_of": "yesterday"})),
        ("list", json!({"as_of": "2024-13-01"})),
        ("count", json!({"as_of": 5})),
        ("get", json!({"id": id, "as_of": "not a time"})),
    ] {
        let err = wire::call(&m, op, &request).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{op}: {err}");
        assert!(err.message().contains("as_of"), "{op}: {err}");
    }
    assert_eq!(m.count(&Scope::default(), None).unwrap(), 1);
}

#[test]
fn the_dispatch_reads_past_moments_and_lists_versions() {
    let m = memory();
    let added = wire::call(
        &m,
        "add",
        &json!({"content": "Erin lives in Lyon", "user_id": "erin"}),
    )
    .unwrap();
    let id = added["id"].as_str().unwrap().to_owned();
    let first = m.get(&id).unwrap().valid_from_tx;
    let at = agent_mem::format_time(first);
    wire::call(
        &m,
        "update",
        &json!({"id": id, "content": "Erin lives in Porto"}),
    )
    .unwrap();
    let then = wire::call(&m, "get", &json!({"id": id, "as_of": at})).unwrap();
    assert_eq!(then["content"], "Erin lives in Lyon");
    assert_eq!(then["version"], 1);
    assert!(then["valid_to_tx"].is_string());
    let now = wire::call(&m, "get", &json!({"id": id})).unwrap();
    assert_eq!(
        (now["version"].as_u64(), now.get("valid_to_tx")),
        (Some(2), None)
    );
    let hits = wire::call(
        &m,
        "search",
        &json!({"query": "Lyon", "as_of": at, "mode": "keyword"}),
    )
    .unwrap();
    assert_eq!(hits[0]["content"], "Erin lives in Lyon");
    let page = wire::call(&m, "list", &json!({"as_of": at, "with_total": true})).unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(
        wire::call(&m, "count", &json!({"as_of": at, "user_id": "erin"})).unwrap(),
        1
    );
    let versions = wire::call(&m, "versions", &json!({"id": id})).unwrap();
    let contents: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Erin lives in Lyon", "Erin lives in Porto"]);
    m.delete(&id).unwrap();
    let versions = m.versions(&id).unwrap();
    assert!(
        versions.iter().all(|v| v.valid_to_tx.is_some()),
        "{versions:?}"
    );
    assert_eq!(
        m.versions("no-such-id").unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[test]
fn delete_all_keeps_the_past_and_reset_forgets_it() {
    let m = memory();
    let id = m
        .add(NewMemory::new("Frank owns a canoe").user("frank"))
        .unwrap()
        .id;
    let at = m.get(&id).unwrap().valid_from_tx;
    assert_eq!(m.delete_all(&Scope::user("frank"), None).unwrap(), 1);
    assert_eq!(m.get_as_of(&id, at).unwrap().content, "Frank owns a canoe");
    assert_eq!(search_as_of(&m, "canoe", SearchMode::Keyword, at).len(), 1);
    m.reset().unwrap();
    assert_eq!(
        m.get_as_of(&id, at).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert!(search_as_of(&m, "canoe", SearchMode::Keyword, at).is_empty());
}

#[test]
fn versions_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let open = || {
        Memory::builder()
            .path(&path)
            .embedder(Arc::new(HashingEmbedder::new(64)))
            .build()
            .unwrap()
    };
    let (id, at) = {
        let m = open();
        let id = m
            .add(NewMemory::new("Gina plays the oboe").user("gina"))
            .unwrap()
            .id;
        let at = m.get(&id).unwrap().valid_from_tx;
        m.update(&id, MemoryUpdate::content("Gina plays the bassoon"))
            .unwrap();
        m.close().unwrap();
        (id, at)
    };
    let m = open();
    assert_eq!(m.get_as_of(&id, at).unwrap().content, "Gina plays the oboe");
    assert_eq!(
        search_as_of(&m, "oboe", SearchMode::Vector, at)[0],
        "Gina plays the oboe"
    );
    assert_eq!(m.versions(&id).unwrap().len(), 2);
}

/// A small deterministic generator (xorshift), so that a failing sequence replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The reference: what each memory id was (content, user, version) after a step.
type State = BTreeMap<String, (String, String, u64)>;

#[test]
fn random_changes_read_back_as_a_replayed_model_at_every_moment() {
    for seed in [7u64, 1234, 99_991] {
        let m = memory();
        let mut rng = Rng(seed);
        let users = ["ann", "ben", "cyd"];
        let mut state = State::new();
        // After each step: the wall clock sampled then, and the model.
        let start = Utc::now();
        while Utc::now() <= start {
            std::hint::spin_loop();
        }
        let mut moments: Vec<(DateTime<Utc>, State)> = vec![(start, State::new())];
        for step in 0..40 {
            let live: Vec<String> = state.keys().cloned().collect();
            let word = format!("w{seed}x{step}");
            match rng.below(4) {
                0 | 1 if live.len() < 12 || live.is_empty() => {
                    let user = users[rng.below(3)];
                    let content = format!("note {word} for {user}");
                    let id = m
                        .add(NewMemory::new(content.clone()).user(user))
                        .unwrap()
                        .id;
                    state.insert(id, (content, user.to_string(), 1));
                }
                2 if !live.is_empty() => {
                    let id = &live[rng.below(live.len())];
                    let content = format!("note {word} changed");
                    let r = m
                        .update(id, MemoryUpdate::content(content.clone()))
                        .unwrap();
                    let entry = state.get_mut(id).unwrap();
                    entry.0 = content;
                    entry.2 = r.version;
                }
                _ if !live.is_empty() => {
                    let id = live[rng.below(live.len())].clone();
                    m.delete(&id).unwrap();
                    state.remove(&id);
                }
                _ => continue,
            }
            let sampled = Utc::now();
            // The next change commits strictly later than the moment sampled.
            while Utc::now() <= sampled {
                std::hint::spin_loop();
            }
            moments.push((sampled, state.clone()));
        }
        for (at, expected) in &moments {
            let listed: State = list_as_of(&m, Scope::default(), *at)
                .into_iter()
                .map(|r| {
                    let user = r.scope.user_id.clone().unwrap_or_default();
                    (r.id, (r.content, user, r.version))
                })
                .collect();
            assert_eq!(&listed, expected, "seed {seed}: list as of {at}");
            for user in users {
                let mine = expected.values().filter(|v| v.1 == user).count();
                let counted = m
                    .count_with(&CountOptions {
                        scope: Scope::user(user),
                        ..counted_at(*at)
                    })
                    .unwrap();
                assert_eq!(counted, mine, "seed {seed}: count of {user} as of {at}");
                // Vector search over a scope returns every memory in it (the limit is larger).
                let options = SearchOptions::new()
                    .mode(SearchMode::Vector)
                    .user(user)
                    .limit(100)
                    .as_of(*at);
                let mut found: Vec<String> = m
                    .search("note", &options)
                    .unwrap()
                    .into_iter()
                    .map(|h| h.memory.id)
                    .collect();
                found.sort();
                let mut want: Vec<String> = expected
                    .iter()
                    .filter(|(_, v)| v.1 == user)
                    .map(|(id, _)| id.clone())
                    .collect();
                want.sort();
                assert_eq!(
                    found, want,
                    "seed {seed}: vector search of {user} as of {at}"
                );
            }
            // Each version's own word finds it in keyword and hybrid search, as of then.
            for (id, (content, _, _)) in expected {
                let word = content.split(' ').nth(1).unwrap();
                for mode in [SearchMode::Keyword, SearchMode::Hybrid] {
                    let options = SearchOptions::new().mode(mode).limit(3).as_of(*at);
                    let hits = m.search(word, &options).unwrap();
                    assert_eq!(
                        hits.first().map(|h| (&h.memory.id, &h.memory.content)),
                        Some((id, content)),
                        "seed {seed}: {mode:?} search for {word} as of {at}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_copy_keeps_every_version_and_the_past_reads_the_same() {
    let source = memory();
    let id = source
        .add(NewMemory::new("Hana studies law").user("hana"))
        .unwrap()
        .id;
    let before = source.get(&id).unwrap().valid_from_tx;
    source
        .update(&id, MemoryUpdate::content("Hana studies medicine"))
        .unwrap();
    let gone = source
        .add(NewMemory::new("Hana owns a kayak").user("hana"))
        .unwrap()
        .id;
    source.delete(&gone).unwrap();
    let target = memory();
    let report = source.copy_into(&target).unwrap();
    assert_eq!((report.memories, report.versions), (1, 2));
    for m in [&source, &target] {
        assert_eq!(
            m.get_as_of(&id, before).unwrap().content,
            "Hana studies law"
        );
        assert_eq!(m.versions(&id).unwrap().len(), 2);
        assert_eq!(m.versions(&gone).unwrap().len(), 1);
        let hits = search_as_of(m, "law", SearchMode::Keyword, before);
        assert_eq!(hits, ["Hana studies law"]);
        let hits = search_as_of(m, "Hana studies law", SearchMode::Vector, before);
        assert_eq!(hits[0], "Hana studies law");
    }
    // The copy goes on from where the source was: its next change is a new version.
    let next = target
        .update(&id, MemoryUpdate::content("Hana is a doctor"))
        .unwrap();
    assert_eq!(next.version, 3);
}

#[test]
fn the_index_of_past_versions_is_saved_and_follows_other_handles_and_prunes() {
    use agent_mem::{HistoryRetention, VectorIndexOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    // No exact scans: even one past version is searched through the index of past versions.
    let index = VectorIndexOptions {
        exact_scan_limit: 0,
        ..VectorIndexOptions::default()
    };
    let open = |retention: HistoryRetention| {
        Memory::builder()
            .path(&path)
            .embedder(Arc::new(HashingEmbedder::new(64)))
            .index_options(index)
            .history_retention(retention)
            .build()
            .unwrap()
    };
    let vector_as_of = |m: &Memory, query: &str, at: DateTime<Utc>| {
        search_as_of(m, query, SearchMode::Vector, at)
            .into_iter()
            .next()
            .unwrap_or_default()
    };
    let (id, first) = {
        let m = open(HistoryRetention::default());
        let id = m
            .add(NewMemory::new("Ines paints with oils").user("ines"))
            .unwrap()
            .id;
        let first = m.get(&id).unwrap().valid_from_tx;
        m.update(&id, MemoryUpdate::content("Ines paints with watercolours"))
            .unwrap();
        assert_eq!(
            vector_as_of(&m, "Ines paints with oils", first),
            "Ines paints with oils"
        );
        m.close().unwrap();
        (id, first)
    };
    assert!(dir.path().join("m.db.versions.usearch").exists());
    let a = open(HistoryRetention::default());
    assert_eq!(
        vector_as_of(&a, "Ines paints with oils", first),
        "Ines paints with oils"
    );
    // Another handle's update makes a past version this handle's index has not seen.
    let b = open(HistoryRetention {
        keep_versions: Some(1),
        ..HistoryRetention::default()
    });
    let second = b.get(&id).unwrap().valid_from_tx;
    b.update(&id, MemoryUpdate::content("Ines paints with ink"))
        .unwrap();
    assert_eq!(
        vector_as_of(&a, "Ines paints with watercolours", second),
        "Ines paints with watercolours"
    );
    // A prune by the other handle: this one's index is rebuilt, the pruned version gone.
    assert_eq!(b.prune_versions().unwrap().versions, 1);
    assert_eq!(vector_as_of(&a, "Ines paints with oils", first), "");
    assert_eq!(
        vector_as_of(&a, "Ines paints with watercolours", second),
        "Ines paints with watercolours"
    );
}

#[test]
fn past_vectors_kept_in_half_precision_score_as_the_full_vectors_do() {
    use agent_mem::VectorIndexOptions;
    let unit = |seed: u64| -> Vec<f32> {
        let mut x = seed;
        let v: Vec<f32> = (0..64)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / norm).collect()
    };
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let dir = tempfile::tempdir().unwrap();
    // Exact comparisons from the table, then the walk of the index of past versions.
    for (name, exact_scan_limit) in [("table.db", 4096), ("index.db", 0)] {
        let m = Memory::builder()
            .path(dir.path().join(name))
            .embedder(Arc::new(HashingEmbedder::new(64)))
            .index_options(VectorIndexOptions {
                exact_scan_limit,
                ..VectorIndexOptions::default()
            })
            .build()
            .unwrap();
        let old = unit(1);
        let id = m
            .add_with_vector(
                NewMemory::new("Jon plays the cello").user("jon"),
                old.clone(),
            )
            .unwrap()
            .id;
        let then = m.get(&id).unwrap().valid_from_tx;
        m.update_with_vector(&id, MemoryUpdate::content("Jon plays the viola"), unit(2))
            .unwrap();
        for query in [old.clone(), unit(3), unit(4)] {
            let options = SearchOptions::new()
                .mode(SearchMode::Vector)
                .limit(1)
                .as_of(then);
            let hits = m.search_with_vector("", &query, &options).unwrap();
            assert_eq!(hits[0].memory.content, "Jon plays the cello", "{name}");
            let full = cosine(&query, &old);
            assert!(
                (hits[0].score - full).abs() < 1e-3,
                "{name}: {} vs {full}",
                hits[0].score
            );
        }
    }
}
