//! Undo and revert on PostgreSQL (feature `postgres`, server from `tests/postgres.sh`),
//! compared with SQLite step by step through the harness of `postgres_changes`; concurrent
//! undos and supersedes; copies that keep changes and supersede links.

#![cfg(feature = "postgres")]

use agent_mem::{
    ErrorCode, ListOptions, Memory, MemoryUpdate, NewMemory, SearchMode, SearchOptions, Supersede,
};
use serde_json::{json, Value};

use crate::postgres_changes::{compare, embedder, open, stores, t, Side, When};
use crate::support::pg::shared;

/// Undo of an update (refused over a later update, then forced), of a delete (the memory
/// back under its id, found by every engine), of an add (forced and not), of an unknown
/// change; revert to an old version (valid times included), to a version never written,
/// of a deleted memory, and the undo of a revert: the same on both backends.
#[test]
fn undo_and_revert_end_as_on_sqlite() {
    let _server = shared();
    let Some((_, stores)) = stores("undo_revert") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let step = |side: &mut Side, n: usize| -> Value {
        let m = &side.m;
        match n {
            0 => {
                side.add("tea", NewMemory::new("Bob drinks green tea").user("bob"));
                side.add(
                    "vim",
                    NewMemory::new("Carol uses vim")
                        .user("carol")
                        .valid_from(t("2015-01-01")),
                );
                let added = side.last_change("tea");
                side.changes.push(added);
                Value::Null
            }
            1 => {
                let id = side.id("tea");
                m.update(&id, MemoryUpdate::content("Bob drinks black tea"))
                    .unwrap();
                let updated = side.last_change("tea");
                side.changes.push(updated);
                let later = MemoryUpdate {
                    content: Some("Bob drinks oolong tea".into()),
                    valid_to: Some(Some(t("2030-01-01"))),
                    ..MemoryUpdate::default()
                };
                m.update(&id, later).unwrap();
                let vim = MemoryUpdate {
                    content: Some("Carol uses emacs".into()),
                    valid_from: Some(Some(t("2021-01-01"))),
                    ..MemoryUpdate::default()
                };
                m.update(&side.id("vim"), vim).unwrap();
                Value::Null
            }
            2 => {
                let refused = side.outcome(m.undo(&side.changes[1], false), |_| Value::Null);
                let forced = m.undo(&side.changes[1], true).unwrap();
                assert_eq!(forced.restored[0].version, 4);
                json!([refused, side.shown_all(&forced.restored)])
            }
            3 => {
                m.delete(&side.id("tea")).unwrap();
                let back = m.undo(&side.last_change("tea"), false).unwrap();
                side.shown_all(&back.restored)
            }
            4 => {
                let reverted = m.revert(&side.id("vim"), 1).unwrap();
                let never = side.outcome(m.revert(&side.id("vim"), 9), |_| Value::Null);
                side.changes.push(reverted.change_id.clone());
                json!([side.shown_all(&reverted.restored), never])
            }
            5 => {
                let undone = m.undo(&side.changes[2], false).unwrap();
                m.delete(&side.id("vim")).unwrap();
                let revived = m.revert(&side.id("vim"), 1).unwrap();
                json!([
                    side.shown_all(&undone.restored),
                    side.shown_all(&revived.restored)
                ])
            }
            6 => {
                let gone = m.undo(&side.changes[0], true).unwrap();
                assert_eq!(gone.removed, [side.id("tea")]);
                side.add("pasta", NewMemory::new("Bob cooks pasta").user("bob"));
                let added = side.last_change("pasta");
                let m = &side.m;
                let unknown = side.outcome(m.undo("no-such-change", false), |_| Value::Null);
                let undone = m.undo(&added, false).unwrap();
                json!([undone.removed.len(), unknown])
            }
            _ => unreachable!(),
        }
    };
    let reads = |_: &Side, _: usize| -> Vec<(String, When)> {
        vec![
            ("default".to_string(), When::default()),
            ("valid in 2018".into(), When::valid_at("2018-01-01")),
            ("valid in 2040".into(), When::valid_at("2040-01-01")),
        ]
    };
    compare(
        &mut sides,
        7,
        step,
        reads,
        &["Bob drinks green tea", "tea", "Carol uses", "emacs vim"],
    );
}

/// Concurrent writers on PostgreSQL: of two undos of one change (forced or not), or two
/// supersedes of one memory, from two handles at once, exactly one goes through and the
/// other is refused.
#[test]
fn concurrent_undos_and_supersedes_go_through_once() {
    let _server = shared();
    let Some((url, [pg, _])) = stores("concurrent_changes") else {
        return;
    };
    let other = open(&url);
    for round in 0..5 {
        let id = pg
            .add(NewMemory::new(format!("Dan lives in town {round}")).user("dan"))
            .unwrap()
            .id;
        let change = pg.history(&id).unwrap()[0].change_id.clone();
        let [a, b] = std::thread::scope(|s| {
            [&pg, &other]
                .map(|m| {
                    let change = &change;
                    s.spawn(move || m.undo(change, round % 2 == 1))
                })
                .map(|h| h.join().unwrap())
        });
        let done = a.is_ok() as usize + b.is_ok() as usize;
        assert_eq!(done, 1, "round {round}: {a:?} {b:?}");
        let err = a.err().or(b.err()).unwrap();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");

        let id = pg
            .add(NewMemory::new(format!("Dan works at shop {round}")).user("dan"))
            .unwrap()
            .id;
        let [a, b] = std::thread::scope(|s| {
            [(&pg, "a"), (&other, "b")]
                .map(|(m, who)| {
                    let id = &id;
                    s.spawn(move || {
                        m.supersede(id, Supersede::new(format!("Dan works at {who} {round}")))
                    })
                })
                .map(|h| h.join().unwrap())
        });
        let done = a.is_ok() as usize + b.is_ok() as usize;
        assert_eq!(done, 1, "round {round}: {a:?} {b:?}");
        let winner = a.or(b).unwrap();
        assert_eq!(
            pg.get(&id).unwrap().superseded_by,
            Some(winner.memory.id.clone())
        );
    }
}

/// Copies both ways keep valid times, supersede links and the history's changes (with what
/// undid them).
#[test]
fn copies_keep_changes_and_links() {
    let _server = shared();
    let Some((_, [pg, source])) = stores("copies_changes") else {
        return;
    };
    let paris = source
        .add(
            NewMemory::new("Alice lives in Paris")
                .user("alice")
                .valid_from(t("2019-05-01")),
        )
        .unwrap()
        .id;
    let done = source
        .supersede(&paris, Supersede::new("Alice lives in Berlin"))
        .unwrap();
    let tea = source.add(NewMemory::new("Bob drinks tea")).unwrap().id;
    source
        .update(&tea, MemoryUpdate::content("Bob drinks coffee"))
        .unwrap();
    let undone = source
        .undo(&source.history(&tea).unwrap()[1].change_id, false)
        .unwrap();
    source.copy_into(&pg).unwrap();
    let back = Memory::builder().embedder(embedder()).build().unwrap();
    pg.copy_into(&back).unwrap();
    let everything = |m: &Memory| {
        let mut options = ListOptions::new().limit(100);
        options.include_superseded = true;
        options.include_expired = true;
        let mut items = m.list(&options).unwrap().items;
        items.sort_by(|a, b| a.id.cmp(&b.id));
        items
    };
    assert_eq!(everything(&source).len(), 3);
    for copy in [&pg, &back] {
        assert_eq!(everything(copy), everything(&source));
        for id in [&paris, &done.memory.id, &tea] {
            assert_eq!(copy.history(id).unwrap(), source.history(id).unwrap());
        }
        let rows = copy.history(&tea).unwrap();
        assert_eq!(
            rows[1].undone_by.as_deref(),
            Some(undone.change_id.as_str())
        );
        assert_eq!(
            copy.history(&paris).unwrap().last().unwrap().change_id,
            done.change_id
        );
        // The copy hides the superseded fact as the source does.
        let hits = copy
            .search(
                "Alice lives",
                &SearchOptions::new().mode(SearchMode::Keyword),
            )
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].memory.id, done.memory.id);
    }
}

/// Pruning by count and by age removes the same versions on both backends, keeps what
/// search and as-of reads see of the rest, and drops the pruned words from the statistics.
#[test]
fn pruning_versions_ends_as_on_sqlite() {
    use agent_mem::HistoryRetention;
    let _server = shared();
    let Some(url) = crate::support::pg::fresh_store_url("prune_versions") else {
        return;
    };
    let retention = HistoryRetention {
        keep_versions: Some(1),
        ..HistoryRetention::default()
    };
    let build = |path: Option<&str>| {
        let mut builder = Memory::builder()
            .embedder(embedder())
            .history_retention(retention);
        if let Some(url) = path {
            builder = builder.path(url);
        }
        builder.build().unwrap()
    };
    let stores = [build(Some(&url)), build(None)];
    let mut outcomes: Vec<Value> = Vec::new();
    for m in &stores {
        let id = m
            .add(NewMemory::new("Dana drinks tea").user("dana"))
            .unwrap()
            .id;
        let first = m.get(&id).unwrap().valid_from_tx;
        for drink in ["coffee", "cocoa", "water"] {
            m.update(&id, MemoryUpdate::content(format!("Dana drinks {drink}")))
                .unwrap();
        }
        let pruned = m.prune_versions().unwrap().versions;
        let kept: Vec<u64> = m.versions(&id).unwrap().iter().map(|v| v.version).collect();
        let past = |query: &str| {
            m.search(
                query,
                &SearchOptions::new().mode(SearchMode::Keyword).as_of(first),
            )
            .unwrap()
            .len()
        };
        let second = m.versions(&id).unwrap()[0].valid_from_tx;
        let cocoa = m
            .search(
                "cocoa",
                &SearchOptions::new().mode(SearchMode::Keyword).as_of(second),
            )
            .unwrap()
            .len();
        outcomes.push(json!({
            "pruned": pruned, "kept": kept, "tea then": past("tea"), "cocoa then": cocoa,
            "again": m.prune_versions().unwrap().versions,
            "listed": m.list(&ListOptions::new().as_of(first)).unwrap().items.len(),
        }));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0]["pruned"], 2, "{}", outcomes[0]);
    assert_eq!(outcomes[0]["cocoa then"], 1, "{}", outcomes[0]);
}
