//! The knowledge graph on PostgreSQL (feature `postgres`, server from `tests/postgres.sh`):
//! the same calls on a SQLite store and a PostgreSQL store give the same entities,
//! relations, walks and paths, the same refusals, and the same graph leg in hybrid search.

#![cfg(feature = "postgres")]

use std::cell::RefCell;
use std::collections::BTreeMap;

use agent_mem::graph::{
    Direction, Entity, EntityRef, Neighbors, NewEntity, NewRelation, Relation, RelationQuery,
    RelationTime, SplitEntity,
};
use agent_mem::{ErrorCode, FusionWeights, Memory, NewMemory, Scope, SearchOptions};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::postgres_changes::{stores, t};
use crate::support::pg::shared;

/// One store in the scenario, with the names of what it made (ids differ between stores).
struct Side {
    m: Memory,
    /// Memory, entity and relation ids to the scenario's names for them.
    names: RefCell<BTreeMap<String, String>>,
    /// When the scenario started: later times are this store's own clock.
    start: DateTime<Utc>,
}

impl Side {
    fn new(m: Memory) -> Side {
        Side {
            m,
            names: RefCell::default(),
            start: Utc::now(),
        }
    }

    fn name(&self, id: &str, name: &str) {
        self.names
            .borrow_mut()
            .insert(id.to_string(), name.to_string());
    }

    fn id(&self, name: &str) -> String {
        self.names
            .borrow()
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("unknown name {name}"))
    }

    /// An id by the scenario's name (an unnamed one: the entity or relation is named by
    /// what it says, which is the same on both sides).
    fn named(&self, id: &str) -> String {
        self.names
            .borrow()
            .get(id)
            .cloned()
            .unwrap_or_else(|| "unnamed".to_string())
    }

    fn add_memory(&mut self, name: &str, text: &str, scope: &Scope) {
        let added = self
            .m
            .add(NewMemory::new(text).scope(scope.clone()))
            .unwrap();
        self.name(&added.id, name);
    }

    fn add_relation(&mut self, name: &str, relation: NewRelation) -> Value {
        let added = self.m.graph().add_relation(relation).unwrap();
        if added.created {
            self.name(&added.relation.id, name);
        }
        for id in [
            Some(&added.relation.subject),
            added.relation.object.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !self.names.borrow().contains_key(id) {
                let entity = self.m.graph().entity(id).unwrap().entity;
                self.name(id, &format!("entity {}", entity.name));
            }
        }
        json!({
            "relation": self.relation(&added.relation),
            "created": added.created,
            "closed": added.closed.iter().map(|id| self.named(id)).collect::<Vec<_>>(),
        })
    }

    fn time(&self, at: Option<DateTime<Utc>>) -> Value {
        match at {
            Some(at) if at >= self.start => json!("now"),
            Some(at) => json!(agent_mem::format_time(at)),
            None => Value::Null,
        }
    }

    fn entity(&self, e: &Entity) -> Value {
        json!({
            "id": self.named(&e.id),
            "name": e.name,
            "type": e.entity_type,
            "aliases": e.aliases,
            "summary": e.summary,
            "scope": e.scope,
            "created_at": self.time(Some(e.created_at)),
            "updated_at": self.time(Some(e.updated_at)),
        })
    }

    fn relation(&self, r: &Relation) -> Value {
        // Sources come sorted by id, which differs between the stores: by name here.
        let mut sources: Vec<String> = r.sources.iter().map(|s| self.named(s)).collect();
        sources.sort();
        json!({
            "id": self.named(&r.id),
            "subject": self.named(&r.subject),
            "subject_name": r.subject_name,
            "predicate": r.predicate,
            "object": r.object.as_deref().map(|o| self.named(o)),
            "object_name": r.object_name,
            "literal": r.literal,
            "valid_from": self.time(r.valid_from),
            "valid_to": self.time(r.valid_to),
            "closed_by": r.closed_by.as_deref().map(|c| self.named(c)),
            "confidence": r.confidence,
            "sources": sources,
            "scope": r.scope,
            "created_at": self.time(Some(r.created_at)),
        })
    }

    fn relations(&self, query: &RelationQuery) -> Value {
        let found = self.m.graph().relations(query).unwrap();
        Value::Array(found.iter().map(|r| self.relation(r)).collect())
    }

    fn entities(&self, query: &str, scope: &Scope, entity_type: Option<&str>) -> Value {
        let found = self
            .m
            .graph()
            .entities(query, scope, entity_type, None)
            .unwrap();
        Value::Array(found.iter().map(|e| self.entity(e)).collect())
    }

    fn detail(&self, name: &str) -> Value {
        let detail = self.m.graph().entity(&self.id(name)).unwrap();
        json!({
            "entity": self.entity(&detail.entity),
            "relations": detail.relations.iter().map(|r| self.relation(r)).collect::<Vec<_>>(),
        })
    }

    fn neighbors(&self, walk: &Neighbors) -> Value {
        let found = self.m.graph().neighbors(walk).unwrap();
        Value::Array(
            found
                .iter()
                .map(|n| {
                    json!({
                        "entity": self.entity(&n.entity),
                        "depth": n.depth,
                        "via": self.relation(&n.via),
                    })
                })
                .collect(),
        )
    }
}

/// Runs `step` on both sides and checks that they answer the same.
fn same(sides: &mut [Side; 2], what: &str, mut step: impl FnMut(&mut Side) -> Value) -> Value {
    let pg = step(&mut sides[0]);
    let sqlite = step(&mut sides[1]);
    assert_eq!(
        pg, sqlite,
        "{what}: PostgreSQL (left) and SQLite (right) differ"
    );
    pg
}

fn query(scope: &Scope) -> RelationQuery {
    RelationQuery {
        scope: scope.clone(),
        ..RelationQuery::default()
    }
}

#[test]
fn the_graph_answers_as_on_sqlite() {
    let _server = shared();
    let Some((_, stores)) = stores("graph_as_sqlite") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let alice = Scope::user("alice");
    let bob = Scope::user("bob");

    // Entities, resolution through aliases and folding, summaries.
    same(&mut sides, "entities", |side| {
        let g = side.m.graph();
        let smith = g
            .add_entity(
                NewEntity::new("Alice Smith")
                    .entity_type("Person")
                    .alias("Alice")
                    .alias("Ally")
                    .summary("A pilot")
                    .scope(alice.clone()),
            )
            .unwrap();
        side.name(&smith.id, "alice");
        let mut out = vec![side.entity(&smith)];
        for name in ["alice", "  ALICE   smith ", "Ａｌｉｃｅ", "ally"] {
            let again = g
                .add_entity(NewEntity::new(name).scope(alice.clone()))
                .unwrap();
            assert_eq!(again.id, smith.id, "{name}");
        }
        let zoe = g
            .add_entity(
                NewEntity::new("Zoë")
                    .alias("Zoe Martin")
                    .scope(alice.clone()),
            )
            .unwrap();
        side.name(&zoe.id, "zoe");
        let learnt = g
            .add_entity(
                NewEntity::new("zoe martin")
                    .alias("Zed")
                    .scope(alice.clone()),
            )
            .unwrap();
        out.push(side.entity(&learnt));
        let other = g
            .add_entity(NewEntity::new("Alice").scope(bob.clone()))
            .unwrap();
        side.name(&other.id, "bob's alice");
        for name in ["Alicia", "Malice", "Ali Baba", "Berlin Alicante"] {
            let e = g
                .add_entity(
                    NewEntity::new(name)
                        .entity_type("place")
                        .scope(alice.clone()),
                )
                .unwrap();
            side.name(&e.id, name);
        }
        let refused = g
            .add_entity(NewEntity::new("Alice").alias("Zoë").scope(alice.clone()))
            .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidInput);
        out.push(side.entities("ali", &alice, None));
        out.push(side.entities("ali", &alice, Some("place")));
        out.push(side.entities("ALICE", &alice, None));
        out.push(side.entities("", &alice, None));
        out.push(side.entities("", &bob, None));
        out.push(side.entities("nobody", &alice, None));
        json!(out)
    });

    // Relations: a functional predicate closes the old object, which stays readable.
    let march = t("2025-03-01T10:00:00Z");
    same(&mut sides, "relations", |side| {
        side.add_memory("m1", "Alice lives in Paris and works with Bob", &alice);
        side.add_memory("m2", "Alice moved to Berlin", &alice);
        side.add_memory("m3", "Alice and Bob share an office", &alice);
        side.add_memory("m4", "Alice is allergic to peanuts", &alice);
        let m1 = side.id("m1");
        let m2 = side.id("m2");
        let m3 = side.id("m3");
        let m4 = side.id("m4");
        let out = vec![
            side.add_relation(
                "paris",
                NewRelation::new("Alice", "lives in", "Paris")
                    .scope(alice.clone())
                    .valid_from(t("2020-01-01T00:00:00Z"))
                    .source(&m1),
            ),
            side.add_relation(
                "berlin",
                NewRelation::new("alice smith", "livesIn", "Berlin")
                    .scope(alice.clone())
                    .valid_from(march)
                    .source(&m2),
            ),
            side.add_relation(
                "works with",
                NewRelation {
                    confidence: Some(0.7),
                    ..NewRelation::new("Alice", "works with", "Bob")
                        .scope(alice.clone())
                        .source(&m1)
                },
            ),
            side.add_relation(
                "works with",
                NewRelation::new("ALLY", "Works_With", "bob")
                    .scope(alice.clone())
                    .source(&m3),
            ),
            side.add_relation(
                "bob knows carol",
                NewRelation::new("Bob", "knows", "Carol").scope(alice.clone()),
            ),
            side.add_relation(
                "carol likes jazz",
                NewRelation::new("Carol", "likes", "Jazz").scope(alice.clone()),
            ),
            side.add_relation(
                "peanuts",
                NewRelation::literal("Alice", "allergic_to", "peanuts")
                    .scope(alice.clone())
                    .source(&m4),
            ),
            side.add_relation(
                "zoe knows alice",
                NewRelation {
                    object: Some(EntityRef::id(side.id("alice"))),
                    ..NewRelation::new("Zed", "knows", "x").scope(alice.clone())
                },
            ),
            side.add_relation(
                "bob's",
                NewRelation::new("Alice", "likes", "tea").scope(bob.clone()),
            ),
        ];
        json!(out)
    });
    same(&mut sides, "reads", |side| {
        let now = query(&alice);
        let every = RelationQuery {
            time: RelationTime {
                valid_at: None,
                include_closed: true,
                as_of: None,
            },
            ..query(&alice)
        };
        let before = RelationQuery {
            time: RelationTime {
                valid_at: Some(t("2024-06-01T00:00:00Z")),
                include_closed: false,
                as_of: None,
            },
            ..query(&alice)
        };
        let about_alice = RelationQuery {
            entity: Some(side.id("alice")),
            ..query(&alice)
        };
        let by_predicate = RelationQuery {
            predicate: Some("Lives In".into()),
            ..every.clone()
        };
        let by_source = RelationQuery {
            source: Some(side.id("m1")),
            ..query(&alice)
        };
        let about = |text: &str| RelationQuery {
            about: Some(text.into()),
            ..query(&alice)
        };
        let limited = RelationQuery {
            limit: Some(2),
            ..every.clone()
        };
        let alice_id = side.id("alice");
        let walk = |depth: usize, direction: Direction| {
            Neighbors::of(alice_id.clone())
                .depth(depth)
                .direction(direction)
        };
        let carol = side.id("entity Carol");
        let paths = [
            side.m
                .graph()
                .path(&alice_id, &carol, 3, &RelationTime::default())
                .unwrap(),
            side.m
                .graph()
                .path(&carol, &alice_id, 1, &RelationTime::default())
                .unwrap(),
            side.m
                .graph()
                .path(
                    &alice_id,
                    &side.id("entity Paris"),
                    3,
                    &RelationTime::default(),
                )
                .unwrap(),
            side.m
                .graph()
                .path(&alice_id, &side.id("entity Paris"), 3, &every.time)
                .unwrap(),
            side.m
                .graph()
                .path(&alice_id, &side.id("bob's alice"), 3, &every.time)
                .unwrap(),
        ];
        let paths: Vec<Value> = paths
            .iter()
            .map(|p| {
                p.as_ref().map_or(Value::Null, |p| {
                    Value::Array(p.iter().map(|r| side.relation(r)).collect())
                })
            })
            .collect();
        json!({
            "now": side.relations(&now),
            "every": side.relations(&every),
            "before": side.relations(&before),
            "about alice": side.relations(&about_alice),
            "by predicate": side.relations(&by_predicate),
            "by source": side.relations(&by_source),
            "about bob": side.relations(&about("Who does Bob work with?")),
            "about carol": side.relations(&about("what does carol like")),
            "about nothing": side.relations(&about("nothing named here")),
            "limited": side.relations(&limited),
            "bob's": side.relations(&query(&bob)),
            "detail": side.detail("alice"),
            "depth 1": side.neighbors(&walk(1, Direction::Both)),
            "depth 2": side.neighbors(&walk(2, Direction::Both)),
            "depth 2 out": side.neighbors(&walk(2, Direction::Out)),
            "depth 3 in": side.neighbors(&walk(3, Direction::In)),
            "depth 2 closed": side.neighbors(&Neighbors {
                time: every.time.clone(),
                ..walk(2, Direction::Both)
            }),
            "paths": paths,
        })
    });

    // Deleting a memory removes the relations only it supported.
    let after_delete = same(&mut sides, "deletion", |side| {
        side.m.delete(&side.id("m1")).unwrap();
        side.m.delete(&side.id("m4")).unwrap();
        let every = RelationQuery {
            time: RelationTime {
                valid_at: None,
                include_closed: true,
                as_of: None,
            },
            ..query(&alice)
        };
        side.relations(&every)
    });
    let left: Vec<&str> = after_delete
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        left,
        vec![
            "berlin",
            "works with",
            "bob knows carol",
            "carol likes jazz",
            "zoe knows alice"
        ]
    );
    let works_with = &after_delete[1];
    assert_eq!(works_with["sources"], json!(["m3"]));

    // Undoing a delete brings its relations back, the same on both.
    same(&mut sides, "undo of a delete", |side| {
        for name in ["m1", "m4"] {
            let id = side.id(name);
            let change = side
                .m
                .history(&id)
                .unwrap()
                .last()
                .unwrap()
                .change_id
                .clone();
            side.m.undo(&change, false).unwrap();
        }
        let every = RelationQuery {
            time: RelationTime {
                valid_at: None,
                include_closed: true,
                as_of: None,
            },
            ..query(&alice)
        };
        let back = side.relations(&every);
        side.m.delete(&side.id("m1")).unwrap();
        side.m.delete(&side.id("m4")).unwrap();
        assert_eq!(side.relations(&every), after_delete);
        back
    });

    // A reference to another scope's entity or memory is refused on both, nothing kept.
    same(&mut sides, "cross-scope", |side| {
        let bobs_alice = side.id("bob's alice");
        let bob_memory = side
            .m
            .add(NewMemory::new("Bob plays chess").scope(bob.clone()))
            .unwrap()
            .id;
        let refused = [
            NewRelation {
                object: Some(EntityRef::id(&bobs_alice)),
                ..NewRelation::new("Alice", "knows", "x").scope(alice.clone())
            },
            NewRelation::new("Alice", "knows", "Dora")
                .scope(alice.clone())
                .source(&bob_memory),
        ];
        let codes: Vec<String> = refused
            .into_iter()
            .map(|r| format!("{:?}", side.m.graph().add_relation(r).unwrap_err().code()))
            .collect();
        assert!(codes.iter().all(|c| c == "InvalidInput"), "{codes:?}");
        json!({
            "codes": codes,
            "dora": side.entities("dora", &alice, None),
            "relations": side.relations(&query(&alice)),
        })
    });

    // Corrections: a merge, a rename and a split give the same entities, relations and
    // histories on both.
    same(&mut sides, "corrections", |side| {
        let person = |name: &str| {
            NewEntity::new(name)
                .entity_type("person")
                .scope(alice.clone())
        };
        let dora = side
            .m
            .graph()
            .add_entity(person("Dora").alias("D"))
            .unwrap();
        side.name(&dora.id, "dora");
        let explorer = side.m.graph().add_entity(person("Dora Explorer")).unwrap();
        side.name(&explorer.id, "explorer");
        side.add_relation(
            "dora knows",
            NewRelation::new("Dora", "knows", "Zoë").scope(alice.clone()),
        );
        side.add_relation(
            "explorer knows",
            NewRelation::new("Dora Explorer", "knows", "Zoë").scope(alice.clone()),
        );
        side.add_relation(
            "explorer lives",
            NewRelation::new("Dora Explorer", "lives_in", "Lima").scope(alice.clone()),
        );
        let g = side.m.graph();
        let merged = g.merge_entities(&dora.id, &explorer.id).unwrap();
        let renamed = g.rename_entity(&dora.id, "Dora Márquez").unwrap();
        let split = g
            .split_entity(
                &dora.id,
                SplitEntity {
                    name: "D".into(),
                    aliases: vec!["d".into()],
                    relations: vec![side.id("explorer lives")],
                    ..SplitEntity::default()
                },
            )
            .unwrap();
        side.name(&split.split_off.entity.id, "d");
        let detail = |d: &agent_mem::graph::EntityDetail| {
            json!({
                "entity": side.entity(&d.entity),
                "relations": d.relations.iter().map(|r| side.relation(r)).collect::<Vec<_>>(),
            })
        };
        let history = |id: &str| -> Vec<Value> {
            g.entity_history(id)
                .unwrap()
                .iter()
                .map(|e| json!([e.event, e.detail.get("name"), e.detail.get("to")]))
                .collect()
        };
        json!({
            "merged": detail(&merged),
            "renamed": side.entity(&renamed),
            "split": [detail(&split.entity), detail(&split.split_off)],
            "gone": g.entity(&explorer.id).unwrap_err().code() == ErrorCode::NotFound,
            "histories": [history(&dora.id), history(&explorer.id), history(&split.split_off.entity.id)],
        })
    });

    // A reset clears the graph.
    same(&mut sides, "reset", |side| {
        side.m.reset().unwrap();
        json!({
            "alice": side.entities("", &alice, None),
            "bob": side.entities("", &bob, None),
            "relations": side.relations(&RelationQuery {
                time: RelationTime {
                    valid_at: None,
                    include_closed: true,
                    as_of: None,
                },
                ..query(&alice)
            }),
            "gone": side.m.graph().entity(&side.id("alice")).unwrap_err().code() == ErrorCode::NotFound,
        })
    });
}

#[test]
fn the_graph_leg_ranks_first_on_both_backends() {
    let _server = shared();
    let Some((_, stores)) = stores("graph_leg") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let scope = Scope::user("alice");
    same(&mut sides, "graph leg", |side| {
        for (name, text) in [
            ("coffee", "Alice enjoys working late with a pot of coffee"),
            ("hiking", "Alice went hiking with her dog on Sunday"),
            ("office", "Bob and Alice have shared an office since March"),
            ("plants", "The office plants need water on Fridays"),
        ] {
            side.add_memory(name, text, &scope);
        }
        let office = side.id("office");
        side.add_relation(
            "works with",
            NewRelation::new("Alice", "works with", "Bob")
                .scope(scope.clone())
                .source(&office),
        );
        let search = |graph: f32, query: &str, user: &str| {
            let mut options = SearchOptions::new().user(user).limit(4);
            options.weights = FusionWeights {
                graph,
                ..FusionWeights::default()
            };
            side.m
                .search(query, &options)
                .unwrap()
                .into_iter()
                .map(|h| json!([side.named(&h.memory.id), h.explain.graph.map(|g| g.score),]))
                .collect::<Vec<_>>()
        };
        let query = "who does Alice work with?";
        let without = search(0.0, query, "alice");
        let with = search(FusionWeights::default().graph, query, "alice");
        assert_ne!(without[0][0], "office", "the engines alone rank it first");
        assert_eq!(with[0], json!(["office", 1.0]));
        let typo = search(
            FusionWeights::default().graph,
            "who does Alcie work with?",
            "alice",
        );
        assert_eq!(typo[0], json!(["office", 1.0]), "a typo still names her");
        json!({
            "with": with[0],
            "typo": typo,
            "elsewhere": search(1.0, query, "bob"),
        })
    });
}

/// PostgreSQL cannot store the NUL character: a name or value holding one is refused as bad
/// input (not a storage failure), and nothing of the call stays.
#[test]
fn a_nul_character_is_refused_as_bad_input() {
    let _server = shared();
    let Some((_, [pg, _])) = stores("graph_nul") else {
        return;
    };
    let scope = Scope::user("nul");
    let g = pg.graph();
    for relation in [
        NewRelation::new("Al\u{0}ice", "knows", "Bob"),
        NewRelation::new("Alice", "knows", "B\u{0}ob"),
        NewRelation::literal("Alice", "likes", "t\u{0}ea"),
    ] {
        let err = g.add_relation(relation.scope(scope.clone())).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    }
    assert!(g.entities("", &scope, None, None).unwrap().is_empty());
}

/// A store of PostgreSQL schema version 2 (before the graph) gets the graph's tables (and
/// the entity history of version 4) when opened, its memories kept, and the graph then works.
#[test]
fn a_store_from_before_the_graph_is_migrated() {
    let _server = shared();
    let Some((url, [pg, _])) = stores("graph_migrated") else {
        return;
    };
    let kept = pg
        .add(NewMemory::new("Alice lives in Paris").user("alice"))
        .unwrap()
        .id;
    pg.close().unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP TABLE agentmem_entity_history;
             DROP TABLE agentmem_entity_embeddings;
             DROP TABLE agentmem_forgotten_sources;
             DROP TABLE agentmem_relation_sources;
             DROP TABLE agentmem_relations;
             DROP TABLE agentmem_entity_names;
             DROP TABLE agentmem_entities;
             UPDATE agentmem_meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    let pg = crate::postgres_changes::open(&url);
    let version: String = client
        .query_one(
            "SELECT value FROM agentmem_meta WHERE key = 'schema_version'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "4");
    assert_eq!(pg.get(&kept).unwrap().content, "Alice lives in Paris");
    let added = pg
        .graph()
        .add_relation(
            NewRelation::new("Alice", "lives in", "Paris")
                .scope(Scope::user("alice"))
                .source(&kept),
        )
        .unwrap();
    assert_eq!(added.relation.sources, vec![kept.clone()]);
    pg.delete(&kept).unwrap();
    assert!(pg
        .graph()
        .relations(&query(&Scope::user("alice")))
        .unwrap()
        .is_empty());
}

/// A memory added with its relations, triples imported (all or nothing), and the graph
/// exported: the same on both backends, and a JSON export of PostgreSQL's imports into
/// SQLite as the same document.
#[test]
fn adds_with_relations_imports_and_exports_as_on_sqlite() {
    use agent_mem::graph::{ExportFormat, GraphExport, Triple};
    let _server = shared();
    let Some((_, stores)) = stores("graph_io_as_sqlite") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let dana = Scope::user("dana");
    same(&mut sides, "add with relations", |side| {
        let added = side
            .m
            .add(
                NewMemory::new("Dana (Dee) lives in Oslo")
                    .scope(dana.clone())
                    .entity(NewEntity::new("Dana").entity_type("person").alias("Dee"))
                    .relation(NewRelation::new("Dee", "lives in", "Oslo")),
            )
            .unwrap();
        side.name(&added.id, "memory");
        let refused = side
            .m
            .add(
                NewMemory::new("Dana knows someone")
                    .scope(dana.clone())
                    .relation(NewRelation::new("Dana", "knows", "Zed"))
                    .relation(NewRelation {
                        object: Some(EntityRef::id("no-such-entity")),
                        ..NewRelation::new("Dana", "knows", "")
                    }),
            )
            .unwrap_err();
        json!({
            "refused": refused.code().name(),
            "memories": side.m.count(&dana, None).unwrap(),
            "relations": side.relations(&query(&dana)),
        })
    });
    same(&mut sides, "import", |side| {
        let mut moved = Triple::new("Dana", "lives_in", "Rome");
        moved.valid_from = Some(t("2024-03-01T00:00:00Z"));
        let report = side
            .m
            .graph()
            .import_triples(
                vec![
                    moved,
                    Triple::literal("Dana", "motto", "carpe <diem> & \"more\""),
                ],
                &dana,
            )
            .unwrap();
        let bad = side
            .m
            .graph()
            .import_triples(
                vec![
                    Triple::new("Eve", "knows", "Dana"),
                    Triple::new("Eve", "?", "x"),
                ],
                &dana,
            )
            .unwrap_err();
        json!({
            "created": report.relations_created,
            "held": report.relations_held,
            "entities": report.entities_created,
            "closed": report.closed.len(),
            "bad": bad.code().name(),
            "eve": side.entities("eve", &dana, None),
        })
    });
    let mut documents = Vec::new();
    same(&mut sides, "export", |side| {
        let GraphExport::Json(mut doc) = side
            .m
            .graph()
            .export(&dana, ExportFormat::Json, true)
            .unwrap()
        else {
            panic!("not JSON")
        };
        // Sources are memory ids, which differ between the stores.
        for t in &mut doc.triples {
            t.sources = t.sources.iter().map(|s| side.named(s)).collect();
        }
        let graphml = match side.m.graph().export(&dana, ExportFormat::Graphml, true) {
            Ok(GraphExport::Graphml(text)) => text.matches("<edge ").count(),
            other => panic!("{other:?}"),
        };
        documents.push(doc.clone());
        json!({"document": doc, "edges": graphml})
    });
    // PostgreSQL's export, its sources left out, imports into SQLite as the same document.
    let mut doc = documents.remove(0);
    for t in &mut doc.triples {
        t.sources.clear();
    }
    let copy = Scope::user("copy");
    sides[1].m.graph().import(doc.clone(), &copy).unwrap();
    let GraphExport::Json(again) = sides[1]
        .m
        .graph()
        .export(&copy, ExportFormat::Json, true)
        .unwrap()
    else {
        panic!("not JSON")
    };
    assert_eq!(again, doc);
}

/// The graph goes with `copy_into` from SQLite into PostgreSQL and back: every entity and
/// relation (closed ones, literals, sources, aliases) reads the same on all three stores.
#[test]
fn the_graph_is_copied_into_postgres_and_back() {
    let _server = shared();
    let Some((_, [pg, sqlite])) = stores("graph_copy") else {
        return;
    };
    crate::graph_copy::fill(&sqlite);
    // A merge (kept in the entity history) and a deleted memory's relation (kept for its
    // undo) go along too.
    let carol = Scope::user("carol");
    let g = sqlite.graph();
    let person = |name: &str| {
        NewEntity::new(name)
            .entity_type("person")
            .scope(carol.clone())
    };
    let bob = g.add_entity(person("Bob")).unwrap();
    let robert = g.add_entity(person("Robert")).unwrap();
    g.merge_entities(&bob.id, &robert.id).unwrap();
    let gone = sqlite
        .add(NewMemory::new("Bob plays chess").scope(carol.clone()))
        .unwrap()
        .id;
    g.add_relation(
        NewRelation::literal("Bob", "plays", "chess")
            .scope(carol.clone())
            .source(&gone),
    )
    .unwrap();
    sqlite.delete(&gone).unwrap();
    let before = crate::graph_copy::reading(&sqlite);
    let report = sqlite.copy_into(&pg).unwrap();
    assert_eq!((report.entities, report.relations), (8, 5));
    assert_eq!(crate::graph_copy::reading(&pg), before);
    let back = Memory::builder()
        .embedder(crate::postgres_changes::embedder())
        .build()
        .unwrap();
    assert_eq!(pg.copy_into(&back).unwrap(), report);
    assert_eq!(crate::graph_copy::reading(&back), before);
    for copy in [&pg, &back] {
        for id in [&bob.id, &robert.id] {
            assert_eq!(
                copy.graph().entity_history(id).unwrap(),
                g.entity_history(id).unwrap()
            );
        }
    }
    let change = back
        .history(&gone)
        .unwrap()
        .last()
        .unwrap()
        .change_id
        .clone();
    back.undo(&change, false).unwrap();
    let chess = back
        .graph()
        .relations(&query(&carol))
        .unwrap()
        .into_iter()
        .map(|r| (r.object_name, r.sources))
        .collect::<Vec<_>>();
    assert_eq!(chess, vec![("chess".to_string(), vec![gone.clone()])]);
    // The graph leg of search finds the same memories through the copied graph.
    let options = SearchOptions::new().scope(Scope::user("alice")).limit(5);
    let hits = |m: &Memory| -> Vec<String> {
        m.search("Where does Ally live?", &options)
            .unwrap()
            .into_iter()
            .map(|h| h.memory.id)
            .collect()
    };
    assert_eq!(hits(&pg), hits(&sqlite));
    assert_eq!(hits(&back), hits(&sqlite));
    let err = sqlite.copy_into(&pg).unwrap_err();
    assert_eq!(err.code(), ErrorCode::AlreadyExists);
}

/// The graph as recorded at a past moment reads the same on both backends: later
/// relations left out, removed ones back, later closings undone.
#[test]
fn the_graph_as_of_a_past_moment_reads_as_on_sqlite() {
    let _server = shared();
    let Some((_, stores)) = stores("graph_as_of") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let scope = Scope::user("ann");
    let read = same(&mut sides, "as of", |side| {
        side.add_memory("said", "Ann lives in Oslo and knows Ben", &scope);
        let said = side.id("said");
        for (name, object, predicate) in [("oslo", "Oslo", "lives in"), ("ben", "Ben", "knows")] {
            side.add_relation(
                name,
                NewRelation::new("Ann", predicate, object)
                    .scope(scope.clone())
                    .source(&said),
            );
        }
        let then = side
            .m
            .graph()
            .relations(&query(&scope))
            .unwrap()
            .iter()
            .map(|r| r.created_at)
            .max()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        side.add_relation(
            "rome",
            NewRelation::new("Ann", "lives in", "Rome").scope(scope.clone()),
        );
        side.m.delete(&said).unwrap();
        let at = |as_of| RelationQuery {
            time: RelationTime {
                as_of,
                include_closed: true,
                ..RelationTime::default()
            },
            ..query(&scope)
        };
        let mut walk = Neighbors::of(side.id("entity Ann")).depth(2);
        walk.time.as_of = Some(then);
        json!({
            "now": side.relations(&at(None)),
            "then": side.relations(&at(Some(then))),
            "walk": side.neighbors(&walk),
        })
    });
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&read["now"]), vec!["rome"]);
    assert_eq!(ids(&read["then"]), vec!["oslo", "ben"]);
    assert_eq!(read["walk"].as_array().unwrap().len(), 2);
}
