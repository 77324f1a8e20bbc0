//! The graph goes with `copy_into`: entities (ids, names, aliases, types, summaries,
//! scopes, times) and relations (ends, predicates, literal values, valid times, closures,
//! confidence, sources) read the same on the copy, whose names resolve as the source's did.
//! The SQLite → PostgreSQL → SQLite round trip is in `postgres_graph`.

use std::sync::Arc;

use agent_mem::graph::{Neighbors, NewEntity, NewRelation, RelationQuery, RelationTime};
use agent_mem::{ErrorCode, HashingEmbedder, Memory, NewMemory, Scope};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn open(path: &std::path::Path) -> Memory {
    Memory::builder()
        .path(path)
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    agent_mem::parse_time(s).unwrap()
}

/// The scopes [`fill`] writes in.
pub(crate) fn scopes() -> [Scope; 3] {
    [Scope::user("alice"), Scope::user("bob"), Scope::default()]
}

/// A small graph in three scopes: an entity with aliases and a summary, a functional
/// predicate's closed relation, a literal relation with two sources and a confidence, a
/// relation without sources, a namesake in another scope and a global entity.
pub(crate) fn fill(m: &Memory) {
    let alice = Scope::user("alice");
    let moved = m
        .add(NewMemory::new("Alice moved from Paris to Berlin").scope(alice.clone()))
        .unwrap()
        .id;
    let tea = m
        .add(NewMemory::new("Alice drinks green tea every morning").scope(alice.clone()))
        .unwrap()
        .id;
    let g = m.graph();
    g.add_entity(
        NewEntity::new("Alice Smith")
            .entity_type("person")
            .alias("Alice")
            .alias("Ally")
            .summary("a friend from school")
            .scope(alice.clone()),
    )
    .unwrap();
    g.add_relation(
        NewRelation::new("alice", "lives in", "Paris")
            .scope(alice.clone())
            .valid_from(t("2019-05-01T00:00:00Z"))
            .source(&moved),
    )
    .unwrap();
    let berlin = g
        .add_relation(
            NewRelation::new("ALLY", "livesIn", "Berlin")
                .scope(alice.clone())
                .valid_from(t("2024-03-01T00:00:00Z"))
                .source(&moved),
        )
        .unwrap();
    assert_eq!(berlin.closed.len(), 1);
    let mut likes = NewRelation::literal("Alice Smith", "likes", "green tea")
        .scope(alice.clone())
        .source(&tea)
        .source(&moved);
    likes.confidence = Some(0.75);
    g.add_relation(likes).unwrap();
    g.add_relation(NewRelation::new("Alice", "works with", "Bob").scope(alice.clone()))
        .unwrap();
    g.add_relation(NewRelation::new("Bob", "knows", "Zoë").scope(alice))
        .unwrap();
    // The same name in another scope is another entity; and one global entity.
    g.add_entity(NewEntity::new("Alice").scope(Scope::user("bob")))
        .unwrap();
    g.add_entity(NewEntity::new("Ｚｕｒｉｃｈ").entity_type("place"))
        .unwrap();
}

/// Everything the graph answers, in one value: every scope's entities and relations (closed
/// ones too), each entity with its relations, walks two deep, name resolution through an
/// alias and folding, relations about a text, and a path.
pub(crate) fn reading(m: &Memory) -> Value {
    let g = m.graph();
    let every = RelationTime {
        include_closed: true,
        ..RelationTime::default()
    };
    let mut out = Vec::new();
    for scope in scopes() {
        let entities = g.entities("", &scope, None, Some(1000)).unwrap();
        let relations = g
            .relations(&RelationQuery {
                scope: scope.clone(),
                time: every.clone(),
                ..RelationQuery::default()
            })
            .unwrap();
        let past = g
            .relations(&RelationQuery {
                scope: scope.clone(),
                time: RelationTime {
                    valid_at: Some(t("2020-01-01T00:00:00Z")),
                    include_closed: false,
                    as_of: None,
                },
                ..RelationQuery::default()
            })
            .unwrap();
        let about = g
            .relations(&RelationQuery {
                scope: scope.clone(),
                about: Some("Where does ally live?".into()),
                ..RelationQuery::default()
            })
            .unwrap();
        let resolved: Vec<_> = ["ally", "ALICE SMITH", "zoe", "zurich"]
            .into_iter()
            .map(|name| g.entities(name, &scope, None, Some(1)).unwrap())
            .collect();
        let details: Vec<_> = entities.iter().map(|e| g.entity(&e.id).unwrap()).collect();
        let walks: Vec<_> = entities
            .iter()
            .map(|e| {
                let mut walk = Neighbors::of(&e.id).depth(2);
                walk.time = every.clone();
                g.neighbors(&walk).unwrap()
            })
            .collect();
        let path = match entities.first().zip(entities.last()) {
            Some((a, b)) => json!(g.path(&a.id, &b.id, 3, &every).unwrap()),
            None => Value::Null,
        };
        out.push(json!({
            "scope": scope, "entities": entities, "relations": relations, "past": past,
            "about": about, "resolved": resolved, "details": details, "walks": walks,
            "path": path,
        }));
    }
    Value::Array(out)
}

#[test]
fn a_file_copy_carries_the_graph_and_resolves_names_alike() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(&dir.path().join("a.db"));
    fill(&source);
    let before = reading(&source);
    let target = open(&dir.path().join("b.db"));
    let report = source.copy_into(&target).unwrap();
    assert_eq!(
        (report.memories, report.entities, report.relations),
        (2, 7, 5)
    );
    assert_eq!(reading(&target), before);
    assert_eq!(reading(&source), before, "the source is unchanged");
    target.close().unwrap();
    let target = open(&dir.path().join("b.db"));
    assert_eq!(reading(&target), before, "the copy is on disk");

    // Names resolve to the copied entities; a functional predicate closes a copied
    // relation; new times come after the copied ones.
    let alice = Scope::user("alice");
    let g = target.graph();
    let latest = before[0]["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| t(r["created_at"].as_str().unwrap()))
        .max()
        .unwrap();
    let moved = g
        .add_relation(NewRelation::new("ally", "lives_in", "Rome").scope(alice.clone()))
        .unwrap();
    assert_eq!(moved.relation.subject, before[0]["resolved"][0][0]["id"]);
    assert_eq!(moved.closed.len(), 1);
    assert!(moved.relation.created_at > latest);
    let entities = g.entities("", &alice, None, Some(1000)).unwrap();
    assert_eq!(entities.len(), 6, "Rome is new; Alice is not");

    // A target holding only a graph is not empty.
    let only_graph = open(&dir.path().join("c.db"));
    only_graph
        .graph()
        .add_entity(NewEntity::new("someone"))
        .unwrap();
    let err = source.copy_into(&only_graph).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AlreadyExists);
    assert_eq!(
        only_graph
            .graph()
            .entities("", &Scope::default(), None, None)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn corrections_name_embeddings_and_what_deleted_memories_supported_go_with_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let with_model = |name: &str| {
        Memory::builder()
            .path(dir.path().join(name))
            .embedder(crate::graph::model())
            .build()
            .unwrap()
    };
    let source = with_model("a.db");
    let scope = Scope::user("u");
    let g = source.graph();
    let person = |name: &str| {
        NewEntity::new(name)
            .entity_type("person")
            .scope(scope.clone())
    };
    let bob = g.add_entity(person("Bob")).unwrap();
    let robert = g.add_entity(person("Robert")).unwrap();
    g.merge_entities(&bob.id, &robert.id).unwrap();
    let acme = g
        .add_entity(
            NewEntity::new("Acme Corp")
                .entity_type("organisation")
                .scope(scope.clone()),
        )
        .unwrap();
    let gone = source
        .add(NewMemory::new("Bob plays chess").scope(scope.clone()))
        .unwrap()
        .id;
    g.add_relation(
        NewRelation::literal("Bob", "plays", "chess")
            .scope(scope.clone())
            .source(&gone),
    )
    .unwrap();
    source.delete(&gone).unwrap();

    let target = with_model("b.db");
    source.copy_into(&target).unwrap();
    let copied = target.graph();
    for id in [&bob.id, &robert.id] {
        assert_eq!(
            copied.entity_history(id).unwrap(),
            g.entity_history(id).unwrap()
        );
    }
    // The copy resolves a new name by meaning, as the source would.
    let again = copied
        .add_entity(
            NewEntity::new("Acme Corporation")
                .entity_type("organisation")
                .scope(scope.clone()),
        )
        .unwrap();
    assert_eq!(again.id, acme.id);
    // Undoing the delete on the copy brings back what the memory supported.
    let change = target
        .history(&gone)
        .unwrap()
        .last()
        .unwrap()
        .change_id
        .clone();
    target.undo(&change, false).unwrap();
    let back = copied
        .relations(&RelationQuery {
            scope: scope.clone(),
            ..RelationQuery::default()
        })
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].object_name, "chess");
    assert_eq!(back[0].sources, vec![gone]);
}
