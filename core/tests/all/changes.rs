//! Valid time, supersede, undo and revert: facts with the interval during which they held,
//! contradictions kept (closed, linked, hidden by default), and every change undoable as a
//! new, auditable change.

use std::sync::Arc;

use agent_mem::{
    parse_time, wire, CountOptions, ErrorCode, Filter, HashingEmbedder, HistoryEvent, ListOptions,
    Memory, MemoryUpdate, NewMemory, Scope, SearchMode, SearchOptions, Supersede,
};
use chrono::{DateTime, Utc};
use serde_json::json;

fn memory() -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

fn found(m: &Memory, query: &str, options: SearchOptions) -> Vec<String> {
    let mut hits: Vec<String> = m
        .search(query, &options.mode(SearchMode::Keyword).limit(50))
        .unwrap()
        .into_iter()
        .map(|h| h.memory.content)
        .collect();
    hits.sort();
    hits
}

#[test]
fn valid_time_is_stored_filtered_and_checked() {
    let m = memory();
    let paris = m
        .add(
            NewMemory::new("Alice lives in Paris")
                .user("alice")
                .valid_from(t("2019-05-01"))
                .valid_to(t("2024-03-01")),
        )
        .unwrap()
        .id;
    m.add(
        NewMemory::new("Alice lives in Berlin")
            .user("alice")
            .valid_from(t("2024-03-01")),
    )
    .unwrap();
    m.add(NewMemory::new("Alice lives with a cat").user("alice"))
        .unwrap();
    let record = m.get(&paris).unwrap();
    assert_eq!(record.valid_from, Some(t("2019-05-01")));
    assert_eq!(record.valid_to, Some(t("2024-03-01")));

    let lives = |at: &str| {
        found(
            &m,
            "Alice lives",
            SearchOptions::new().user("alice").valid_at(t(at)),
        )
    };
    assert_eq!(
        lives("2022-06-01"),
        ["Alice lives in Paris", "Alice lives with a cat"]
    );
    assert_eq!(
        lives("2024-03-01"),
        ["Alice lives in Berlin", "Alice lives with a cat"]
    );
    assert_eq!(lives("2010-01-01"), ["Alice lives with a cat"]);
    let mut list = ListOptions::new().user("alice");
    list.valid_at = Some(t("2025-01-01"));
    assert_eq!(m.list(&list).unwrap().items.len(), 2);
    let count = CountOptions {
        valid_at: Some(t("2020-01-01")),
        ..CountOptions::default()
    };
    assert_eq!(m.count_with(&count).unwrap(), 2);
    // The fields are in the filter language too.
    let since = Filter::from_json(&json!({"valid_from": {"gte": "2024-01-01"}})).unwrap();
    let hits = m
        .search(
            "Alice",
            &SearchOptions::new().mode(SearchMode::Keyword).filter(since),
        )
        .unwrap();
    assert_eq!(hits.len(), 1);

    // Changed by update; an interval that ends before it starts is refused, nothing changed.
    let change = MemoryUpdate {
        valid_to: Some(Some(t("2024-04-01"))),
        ..MemoryUpdate::default()
    };
    assert_eq!(
        m.update(&paris, change).unwrap().valid_to,
        Some(t("2024-04-01"))
    );
    let bad = MemoryUpdate {
        valid_to: Some(Some(t("2001-01-01"))),
        ..MemoryUpdate::default()
    };
    let err = m.update(&paris, bad).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(
        err.message().contains("valid_to") && err.message().contains("valid_from"),
        "{err}"
    );
    assert_eq!(m.get(&paris).unwrap().valid_to, Some(t("2024-04-01")));
    let err = m
        .add(
            NewMemory::new("x")
                .valid_from(t("2024-01-02"))
                .valid_to(t("2024-01-01")),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = wire::call(&m, "add", &json!({"content": "x", "valid_from": "March"})).unwrap_err();
    assert!(err.message().contains("valid_from"), "{err}");
    let err = wire::call(&m, "search", &json!({"query": "x", "valid_at": "soon"})).unwrap_err();
    assert!(err.message().contains("valid_at"), "{err}");
    assert_eq!(m.count(&Scope::default(), None).unwrap(), 3);
}

#[test]
fn a_superseded_fact_is_kept_closed_and_linked_and_shown_when_asked_for() {
    let m = memory();
    let paris = m
        .add(
            NewMemory::new("Alice lives in Paris")
                .user("alice")
                .valid_from(t("2019-05-01")),
        )
        .unwrap()
        .id;
    let before = m.get(&paris).unwrap().valid_from_tx;
    let mut moved = Supersede::new("Alice lives in Berlin");
    moved.valid_from = Some(t("2024-03-01"));
    let done = m.supersede(&paris, moved).unwrap();
    assert_eq!(
        done.superseded.superseded_by.as_deref(),
        Some(done.memory.id.as_str())
    );
    assert_eq!(done.superseded.valid_to, Some(t("2024-03-01")));
    assert_eq!(done.memory.valid_from, Some(t("2024-03-01")));
    assert_eq!(done.memory.scope, Scope::user("alice"));

    let alice = || SearchOptions::new().user("alice");
    assert_eq!(found(&m, "Alice lives", alice()), ["Alice lives in Berlin"]);
    let mut all = alice();
    all.include_superseded = true;
    assert_eq!(
        found(&m, "Alice lives", all),
        ["Alice lives in Berlin", "Alice lives in Paris"]
    );
    // What held in 2022: the superseded fact, by its own valid time.
    assert_eq!(
        found(&m, "Alice lives", alice().valid_at(t("2022-01-01"))),
        ["Alice lives in Paris"]
    );
    // What we believed before the supersede.
    assert_eq!(
        found(&m, "Alice lives", alice().as_of(before)),
        ["Alice lives in Paris"]
    );
    assert_eq!(m.count(&Scope::user("alice"), None).unwrap(), 1);
    assert_eq!(m.get(&paris).unwrap().content, "Alice lives in Paris");
    let history = m.history(&paris).unwrap();
    assert_eq!(history.last().unwrap().change_id, done.change_id);
    assert_eq!(
        m.history(&done.memory.id).unwrap()[0].change_id,
        done.change_id
    );

    // Refused: superseding twice, or with the same text; nothing changed.
    let err = m
        .supersede(&paris, Supersede::new("Alice lives in Rome"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    let err = m
        .supersede(&done.memory.id, Supersede::new("Alice lives in Berlin"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert_eq!(
        m.supersede("nope", Supersede::new("x")).unwrap_err().code(),
        ErrorCode::NotFound
    );

    // Undone as one change: the old fact is current again, the new one gone.
    let undone = m.undo(&done.change_id, false).unwrap();
    assert_eq!(undone.removed, std::slice::from_ref(&done.memory.id));
    let back = m.get(&paris).unwrap();
    assert_eq!((back.superseded_by.as_ref(), back.valid_to), (None, None));
    assert_eq!(found(&m, "Alice lives", alice()), ["Alice lives in Paris"]);
    let err = m.undo(&done.change_id, false).unwrap_err();
    assert!(err.message().contains("already undone"), "{err}");
    // Undoing the undo redoes the supersede (the new memory keeps its id).
    m.undo(&undone.change_id, false).unwrap();
    assert_eq!(found(&m, "Alice lives", alice()), ["Alice lives in Berlin"]);
    assert_eq!(
        m.get(&done.memory.id).unwrap().content,
        "Alice lives in Berlin"
    );
}

#[test]
fn undo_reverts_adds_updates_and_deletes_and_refuses_to_overwrite_later_changes() {
    let m = memory();
    let id = m
        .add(NewMemory::new("Bob drinks green tea").user("bob"))
        .unwrap()
        .id;
    let added = m.history(&id).unwrap()[0].change_id.clone();
    m.update(&id, MemoryUpdate::content("Bob drinks black tea"))
        .unwrap();
    let updated = m.history(&id).unwrap()[1].change_id.clone();
    m.update(&id, MemoryUpdate::content("Bob drinks oolong tea"))
        .unwrap();

    // A later update stands in the way, unless forced.
    let err = m.undo(&updated, false).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().contains("force"), "{err}");
    assert_eq!(m.get(&id).unwrap().content, "Bob drinks oolong tea");
    let forced = m.undo(&updated, true).unwrap();
    assert_eq!(forced.restored[0].content, "Bob drinks green tea");
    assert_eq!(forced.restored[0].version, 4);
    let rows = m.history(&id).unwrap();
    assert_eq!(
        rows[1].undone_by.as_deref(),
        Some(forced.change_id.as_str())
    );
    assert_eq!(
        (rows[3].event, rows[3].actor.as_str()),
        (HistoryEvent::Update, "undo")
    );
    let hits = found(&m, "green tea", SearchOptions::new());
    assert_eq!(hits, ["Bob drinks green tea"]);

    // A delete, undone: the same id, found again.
    m.delete(&id).unwrap();
    let deleted = m.history(&id).unwrap().last().unwrap().change_id.clone();
    let back = m.undo(&deleted, false).unwrap();
    assert_eq!(back.restored[0].id, id);
    assert_eq!(m.get(&id).unwrap().content, "Bob drinks green tea");
    assert_eq!(
        found(&m, "green tea", SearchOptions::new()),
        ["Bob drinks green tea"]
    );
    let vector_hits = m
        .search(
            "Bob drinks green tea",
            &SearchOptions::new().mode(SearchMode::Vector).limit(1),
        )
        .unwrap();
    assert_eq!(vector_hits[0].memory.id, id);

    // An add, undone (forced: the memory changed since): the memory is gone.
    let gone = m.undo(&added, true).unwrap();
    assert_eq!(gone.removed, std::slice::from_ref(&id));
    assert_eq!(m.get(&id).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        m.undo("no-such-change", false).unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[test]
fn revert_restores_an_old_version_as_a_new_one() {
    let m = memory();
    let id = m
        .add(NewMemory::new("Carol uses vim").user("carol"))
        .unwrap()
        .id;
    m.update(&id, MemoryUpdate::content("Carol uses emacs"))
        .unwrap();
    let reverted = m.revert(&id, 1).unwrap();
    assert_eq!(reverted.restored[0].content, "Carol uses vim");
    assert_eq!(reverted.restored[0].version, 3);
    assert_eq!(m.versions(&id).unwrap().len(), 3);
    assert_eq!(m.revert(&id, 9).unwrap_err().code(), ErrorCode::NotFound);
    // Reverting is a change like any other.
    m.undo(&reverted.change_id, false).unwrap();
    assert_eq!(m.get(&id).unwrap().content, "Carol uses emacs");
    // Through the dispatch.
    let out = wire::call(&m, "revert", &json!({"id": id, "to_version": 1})).unwrap();
    assert_eq!(out["restored"][0]["content"], "Carol uses vim");
    let out = wire::call(&m, "undo", &json!({"change_id": out["change_id"]})).unwrap();
    assert_eq!(out["restored"][0]["content"], "Carol uses emacs");
    let out = wire::call(
        &m,
        "supersede",
        &json!({"id": id, "content": "Carol uses helix", "valid_from": "2025-01-01"}),
    )
    .unwrap();
    assert_eq!(out["superseded"]["superseded_by"], out["memory"]["id"]);
    let err = wire::call(&m, "undo", &json!({"change": "x"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[test]
fn time_words_in_a_query_become_a_span_of_valid_or_stored_time() {
    let m = memory();
    m.add(
        NewMemory::new("Alice lived in Paris")
            .user("alice")
            .valid_from(t("2021-02-01"))
            .valid_to(t("2024-07-01")),
    )
    .unwrap();
    m.add(
        NewMemory::new("Alice lives in Berlin")
            .user("alice")
            .valid_from(t("2024-07-01")),
    )
    .unwrap();
    // No valid time: its stored time counts (today).
    m.add(NewMemory::new("Alice lives near the river").user("alice"))
        .unwrap();
    let aware = |now: &str| {
        let mut options = SearchOptions::new()
            .user("alice")
            .mode(SearchMode::Keyword)
            .limit(10);
        options.time_aware = true;
        options.now = Some(t(now));
        options
    };
    let lives = |query: &str, now: &str| -> Vec<String> {
        let mut hits: Vec<String> = m
            .search(query, &aware(now))
            .unwrap()
            .into_iter()
            .map(|h| h.memory.content)
            .collect();
        hits.sort();
        hits
    };
    assert_eq!(
        lives("where did Alice live in 2022", "2025-06-01"),
        ["Alice lived in Paris"]
    );
    assert_eq!(
        lives("where did Alice live last year", "2025-06-01"),
        ["Alice lived in Paris", "Alice lives in Berlin"]
    );
    assert_eq!(
        lives("Alice 去年住在哪里", "2026-03-01"),
        ["Alice lives in Berlin"]
    );
    assert_eq!(
        lives("Alice lives before 2020", "2025-06-01"),
        Vec::<String>::new()
    );
    let now = agent_mem::format_time(Utc::now());
    assert_eq!(
        lives("where does Alice live recently", &now),
        ["Alice lives in Berlin", "Alice lives near the river"]
    );
    // Without time_aware, the words are only words.
    let plain = m
        .search(
            "Alice live 2022",
            &SearchOptions::new().user("alice").mode(SearchMode::Keyword),
        )
        .unwrap();
    assert_eq!(plain.len(), 3);
    let out = wire::call(
        &m,
        "search",
        &json!({"query": "Alice in 2022", "time_aware": true, "now": "2025-06-01", "mode": "keyword"}),
    )
    .unwrap();
    assert_eq!(out.as_array().unwrap().len(), 1);
}

#[test]
fn pruning_keeps_what_the_retention_says_and_reports_the_rest() {
    use agent_mem::HistoryRetention;
    let m = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .history_retention(HistoryRetention {
            keep_versions: Some(1),
            ..HistoryRetention::default()
        })
        .build()
        .unwrap();
    let id = m
        .add(NewMemory::new("Dana drinks tea").user("dana"))
        .unwrap()
        .id;
    let first = m.get(&id).unwrap().valid_from_tx;
    for drink in ["coffee", "cocoa", "water"] {
        m.update(&id, MemoryUpdate::content(format!("Dana drinks {drink}")))
            .unwrap();
    }
    let gone = m
        .add(NewMemory::new("Dana has a dog").user("dana"))
        .unwrap()
        .id;
    m.delete(&gone).unwrap();
    assert_eq!(m.versions(&id).unwrap().len(), 4);
    assert_eq!(m.prune_versions().unwrap().versions, 2);
    let kept: Vec<u64> = m.versions(&id).unwrap().iter().map(|v| v.version).collect();
    assert_eq!(kept, [3, 4]);
    assert_eq!(m.versions(&gone).unwrap().len(), 1);
    // What was pruned is gone from the past, and its change can no longer be undone.
    assert_eq!(
        m.get_as_of(&id, first).unwrap_err().code(),
        ErrorCode::NotFound
    );
    let first_update = m.history(&id).unwrap()[1].change_id.clone();
    assert_eq!(
        m.undo(&first_update, true).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert!(found(&m, "tea", SearchOptions::new().as_of(first)).is_empty());
    assert_eq!(m.prune_versions().unwrap().versions, 0);
    // Without a retention, nothing goes.
    let keep_all = memory();
    let id = keep_all.add(NewMemory::new("x").user("u")).unwrap().id;
    keep_all.update(&id, MemoryUpdate::content("y")).unwrap();
    assert_eq!(keep_all.prune_versions().unwrap().versions, 0);
    let by_age = wire::open(None, &json!({"embedder": {"provider": "hashing", "dimensions": 8}, "history_retention": {"max_age_days": 0}})).unwrap();
    let added = wire::call(&by_age, "add", &json!({"content": "a"})).unwrap();
    wire::call(
        &by_age,
        "update",
        &json!({"id": added["id"], "content": "b"}),
    )
    .unwrap();
    assert_eq!(
        wire::call(&by_age, "prune_versions", &json!({})).unwrap()["versions"],
        1
    );
    let err = wire::open(None, &json!({"history_retention": {"max_age": 3}})).unwrap_err();
    assert!(err.message().contains("max_age"), "{err}");
}
