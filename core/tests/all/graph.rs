//! The knowledge graph: entities resolved by name within a scope, relations with
//! provenance and valid time (functional predicates close the old object), walks checked
//! against a reference breadth-first search, and bad input refused with the store unchanged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use agent_mem::graph::{
    Direction, EntityRef, Neighbors, NewEntity, NewRelation, RelationQuery, RelationTime,
    SplitEntity,
};
use agent_mem::{wire, ErrorCode, HashingEmbedder, Memory, NewMemory, Scope};
use chrono::{Duration, SubsecRound, Utc};
use serde_json::json;

fn memory() -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn relations(m: &Memory, scope: Scope, time: RelationTime) -> Vec<String> {
    let query = RelationQuery {
        scope,
        time,
        ..RelationQuery::default()
    };
    m.graph()
        .relations(&query)
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {} {}", r.subject_name, r.predicate, r.object_name))
        .collect()
}

#[test]
fn names_resolve_to_one_entity_within_a_scope_and_never_across() {
    let m = memory();
    let g = m.graph();
    let alice = Scope::user("alice");
    let first = g
        .add_entity(
            NewEntity::new("Alice Smith")
                .entity_type("Person")
                .alias("Alice")
                .scope(alice.clone()),
        )
        .unwrap();
    assert_eq!(first.entity_type, "person");
    assert_eq!(first.aliases, vec!["Alice"]);
    for name in ["alice", "  ALICE   smith ", "Ａｌｉｃｅ"] {
        let again = g
            .add_entity(NewEntity::new(name).scope(alice.clone()))
            .unwrap();
        assert_eq!(again.id, first.id, "{name}");
    }
    // Diacritics fold too, and an alias given later is learnt.
    let zoe = g
        .add_entity(
            NewEntity::new("Zoë")
                .alias("Zoe Martin")
                .scope(alice.clone()),
        )
        .unwrap();
    assert_eq!(
        g.add_entity(NewEntity::new("zoe martin").scope(alice.clone()))
            .unwrap()
            .id,
        zoe.id
    );
    // Another scope has its own Alice.
    let other = g
        .add_entity(NewEntity::new("Alice").scope(Scope::user("bob")))
        .unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(
        g.entities("ali", &alice, None, None)
            .unwrap()
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        vec![first.id.as_str()]
    );
    // Names of two different entities cannot make one.
    let err = g
        .add_entity(NewEntity::new("Alice").alias("Zoë").scope(alice.clone()))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(g.entities("", &alice, None, None).unwrap().len(), 2);
}

#[test]
fn a_functional_predicate_closes_the_old_object_which_stays_readable() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("alice");
    let march = Utc::now() - Duration::days(30);
    let paris = g
        .add_relation(
            NewRelation::new("Alice", "lives in", "Paris")
                .scope(scope.clone())
                .valid_from(march - Duration::days(300)),
        )
        .unwrap();
    assert!(paris.created);
    assert_eq!(paris.relation.predicate, "lives_in");
    let berlin = g
        .add_relation(
            NewRelation::new("alice", "livesIn", "Berlin")
                .scope(scope.clone())
                .valid_from(march),
        )
        .unwrap();
    assert_eq!(berlin.closed, vec![paris.relation.id.clone()]);
    assert_eq!(
        relations(&m, scope.clone(), RelationTime::default()),
        vec!["Alice lives_in Berlin"]
    );
    let before = RelationTime {
        valid_at: Some(march - Duration::days(1)),
        include_closed: false,
        as_of: None,
    };
    assert_eq!(
        relations(&m, scope.clone(), before),
        vec!["Alice lives_in Paris"]
    );
    let every = RelationTime {
        valid_at: None,
        include_closed: true,
        as_of: None,
    };
    assert_eq!(relations(&m, scope.clone(), every).len(), 2);
    let detail = g.entity(&berlin.relation.subject).unwrap();
    let closed = detail
        .relations
        .iter()
        .find(|r| r.id == paris.relation.id)
        .unwrap();
    assert_eq!(
        closed.closed_by.as_deref(),
        Some(berlin.relation.id.as_str())
    );
    assert_eq!(closed.valid_to, Some(march.trunc_subsecs(6)));
    // A predicate that is not functional keeps both objects.
    g.add_relation(NewRelation::new("Alice", "likes", "tea").scope(scope.clone()))
        .unwrap();
    let coffee = g
        .add_relation(NewRelation::new("Alice", "likes", "coffee").scope(scope.clone()))
        .unwrap();
    assert!(coffee.closed.is_empty());
    // Saying the same again adds nothing.
    let again = g
        .add_relation(NewRelation::new("ALICE", "Likes", "Coffee").scope(scope.clone()))
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.relation.id, coffee.relation.id);
}

#[test]
fn callers_choose_the_functional_predicates() {
    let m = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .functional_predicates(["Drives"])
        .build()
        .unwrap();
    let g = m.graph();
    g.add_relation(NewRelation::new("Bo", "drives", "a Volvo"))
        .unwrap();
    let saab = g
        .add_relation(NewRelation::new("Bo", "drives", "a Saab"))
        .unwrap();
    assert_eq!(saab.closed.len(), 1);
    g.add_relation(NewRelation::new("Bo", "lives_in", "Oslo"))
        .unwrap();
    let bergen = g
        .add_relation(NewRelation::new("Bo", "lives_in", "Bergen"))
        .unwrap();
    assert!(bergen.closed.is_empty());
}

#[test]
fn deleting_a_memory_removes_the_relations_only_it_supported() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("carol");
    let add = |text: &str| m.add(NewMemory::new(text).scope(scope.clone())).unwrap().id;
    let (one, two, three) = (
        add("Carol works with Dan"),
        add("Dan and Carol share an office"),
        add("Carol is allergic to peanuts"),
    );
    g.add_relation(
        NewRelation::new("Carol", "works_with", "Dan")
            .scope(scope.clone())
            .source(&one),
    )
    .unwrap();
    let shared = g
        .add_relation(
            NewRelation::new("Carol", "works_with", "Dan")
                .scope(scope.clone())
                .source(&two),
        )
        .unwrap();
    assert_eq!(shared.relation.sources.len(), 2);
    g.add_relation(
        NewRelation::literal("Carol", "allergic_to", "peanuts")
            .scope(scope.clone())
            .source(&three),
    )
    .unwrap();
    m.delete(&one).unwrap();
    m.delete(&three).unwrap();
    assert_eq!(
        relations(&m, scope.clone(), RelationTime::default()),
        vec!["Carol works_with Dan"]
    );
    let by_source = RelationQuery {
        scope: scope.clone(),
        source: Some(two.clone()),
        ..RelationQuery::default()
    };
    assert_eq!(
        g.relations(&by_source).unwrap()[0].sources,
        vec![two.clone()]
    );

    // Undoing a delete brings back what the memory supported: the same relations, with it
    // as a source again.
    let held_before = {
        let every = RelationQuery {
            scope: scope.clone(),
            ..RelationQuery::default()
        };
        g.relations(&every).unwrap()
    };
    let undo_delete = |id: &str| {
        let change = m.history(id).unwrap().last().unwrap().change_id.clone();
        m.undo(&change, false).unwrap();
    };
    undo_delete(&three);
    undo_delete(&one);
    let every = RelationQuery {
        scope: scope.clone(),
        ..RelationQuery::default()
    };
    let back = g.relations(&every).unwrap();
    assert_eq!(
        relations(&m, scope.clone(), RelationTime::default()),
        vec!["Carol works_with Dan", "Carol allergic_to peanuts"]
    );
    let mut both = vec![one.clone(), two.clone()];
    both.sort();
    assert_eq!(back[0].id, held_before[0].id);
    assert_eq!(back[0].sources, both);
    assert_eq!(back[1].sources, vec![three.clone()]);
    assert!(back[1].literal);
    // And deleting again removes them again.
    m.delete(&three).unwrap();
    assert_eq!(
        relations(&m, scope.clone(), RelationTime::default()),
        vec!["Carol works_with Dan"]
    );
}

#[test]
fn bad_input_is_refused_and_leaves_the_graph_as_it_was() {
    let m = memory();
    let g = m.graph();
    let alice = Scope::user("alice");
    let bob_entity = g
        .add_entity(NewEntity::new("Bob").scope(Scope::user("bob")))
        .unwrap();
    let bob_memory = m
        .add(NewMemory::new("Bob plays chess").user("bob"))
        .unwrap()
        .id;
    let refused = [
        NewRelation::new("Alice", "->", "Paris").scope(alice.clone()),
        NewRelation::new("", "knows", "Paris").scope(alice.clone()),
        NewRelation {
            object: Some(EntityRef::id(&bob_entity.id)),
            ..NewRelation::new("Alice", "knows", "x").scope(alice.clone())
        },
        NewRelation {
            value: Some("also".into()),
            ..NewRelation::new("Alice", "knows", "Bob").scope(alice.clone())
        },
        NewRelation::new("Alice", "knows", "Bob")
            .scope(alice.clone())
            .source(&bob_memory),
        NewRelation {
            confidence: Some(1.5),
            ..NewRelation::new("Alice", "knows", "Bob").scope(alice.clone())
        },
        NewRelation {
            valid_from: Some(Utc::now()),
            valid_to: Some(Utc::now() - Duration::days(1)),
            ..NewRelation::new("Alice", "knows", "Bob").scope(alice.clone())
        },
    ];
    for relation in refused {
        let err = g.add_relation(relation.clone()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{relation:?}: {err}");
    }
    let unknown = NewRelation {
        object: Some(EntityRef::id("no-such-entity")),
        ..NewRelation::new("Alice", "knows", "x").scope(alice.clone())
    };
    assert_eq!(
        g.add_relation(unknown).unwrap_err().code(),
        ErrorCode::NotFound
    );
    // Nothing of the refused calls stayed: no Alice, no relation.
    assert!(g.entities("", &alice, None, None).unwrap().is_empty());
    assert!(relations(&m, alice, RelationTime::default()).is_empty());
    assert_eq!(
        g.neighbors(&Neighbors::of(&bob_entity.id).depth(4))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        g.neighbors(&Neighbors::of("nobody")).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(g.entity("nobody").unwrap_err().code(), ErrorCode::NotFound);
}

/// A tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn walks_equal_a_reference_breadth_first_search_and_stay_in_their_scope() {
    let mut rng = Rng(7);
    for round in 0..6 {
        let m = memory();
        let g = m.graph();
        let scopes = [Scope::user("u1"), Scope::user("u2")];
        let predicates = ["knows", "likes", "works_with"];
        // Nodes n0..n11 in each scope (the same names: never joined across scopes).
        let mut edges: Vec<(usize, usize, usize, usize)> = Vec::new(); // scope, from, to, predicate
        for _ in 0..30 {
            let (s, a, b, p) = (rng.below(2), rng.below(12), rng.below(12), rng.below(3));
            if a == b {
                continue;
            }
            g.add_relation(
                NewRelation::new(format!("n{a}"), predicates[p], format!("n{b}"))
                    .scope(scopes[s].clone()),
            )
            .unwrap();
            edges.push((s, a, b, p));
        }
        let ids: Vec<HashMap<usize, String>> = scopes
            .iter()
            .map(|scope| {
                g.entities("", scope, None, None)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.name[1..].parse().unwrap(), e.id))
                    .collect()
            })
            .collect();
        for (s, scope_ids) in ids.iter().enumerate() {
            for (&start, start_id) in scope_ids {
                for direction in [Direction::Out, Direction::In, Direction::Both] {
                    for depth in 1..=3 {
                        // The reference: depths by breadth-first search over this scope.
                        let mut depth_of: HashMap<usize, usize> = HashMap::from([(start, 0)]);
                        let mut queue = VecDeque::from([start]);
                        while let Some(at) = queue.pop_front() {
                            let here = depth_of[&at];
                            if here == depth {
                                continue;
                            }
                            for &(es, a, b, _) in &edges {
                                let next = match direction {
                                    _ if es != s => None,
                                    Direction::Out if a == at => Some(b),
                                    Direction::In if b == at => Some(a),
                                    Direction::Both if a == at => Some(b),
                                    Direction::Both if b == at => Some(a),
                                    _ => None,
                                };
                                if let Some(n) = next {
                                    if let std::collections::hash_map::Entry::Vacant(v) =
                                        depth_of.entry(n)
                                    {
                                        v.insert(here + 1);
                                        queue.push_back(n);
                                    }
                                }
                            }
                        }
                        depth_of.remove(&start);
                        let walk = Neighbors::of(start_id.clone())
                            .depth(depth)
                            .direction(direction);
                        let got: HashMap<usize, usize> = g
                            .neighbors(&walk)
                            .unwrap()
                            .into_iter()
                            .map(|n| {
                                assert_eq!(n.entity.scope, scopes[s]);
                                (n.entity.name[1..].parse().unwrap(), n.depth)
                            })
                            .collect();
                        assert_eq!(
                            got, depth_of,
                            "round {round} n{start} {direction:?} {depth}"
                        );
                    }
                }
                // Paths are as short as the reference (both ways along relations).
                for (&goal, goal_id) in scope_ids {
                    let walk = Neighbors::of(start_id.clone()).depth(3);
                    let reach: HashMap<String, usize> = g
                        .neighbors(&walk)
                        .unwrap()
                        .into_iter()
                        .map(|n| (n.entity.id, n.depth))
                        .collect();
                    let path = g
                        .path(start_id, goal_id, 3, &RelationTime::default())
                        .unwrap();
                    match (goal == start, reach.get(goal_id), path) {
                        (true, _, Some(p)) => assert!(p.is_empty()),
                        (false, Some(&d), Some(p)) => {
                            assert_eq!(p.len(), d);
                            let mut at = start_id.clone();
                            for step in &p {
                                let object = step.object.clone().unwrap();
                                at = if step.subject == at {
                                    object
                                } else {
                                    step.subject.clone()
                                };
                            }
                            assert_eq!(&at, goal_id);
                        }
                        (false, None, None) => {}
                        other => panic!("n{start} to n{goal}: {other:?}"),
                    }
                }
                // No path into the other scope.
                for other_id in ids[1 - s].values() {
                    assert_eq!(
                        g.path(start_id, other_id, 3, &RelationTime::default())
                            .unwrap(),
                        None
                    );
                }
            }
        }
    }
}

#[test]
fn the_dispatch_reaches_every_graph_operation() {
    let m = memory();
    let added = wire::call(
        &m,
        "graph_add_relation",
        &json!({"subject": {"name": "Eve", "type": "person"}, "predicate": "works at",
                "object": {"name": "Acme", "type": "organisation"}, "user_id": "eve",
                "valid_from": "2024-03-01"}),
    )
    .unwrap();
    assert_eq!(added["relation"]["predicate"], "works_at");
    assert_eq!(added["created"], true);
    let eve = added["relation"]["subject"].as_str().unwrap().to_string();
    let entity = wire::call(&m, "graph_entity", &json!({ "id": eve })).unwrap();
    assert_eq!(entity["entity"]["type"], "person");
    assert_eq!(entity["entity"]["user_id"], "eve");
    let found = wire::call(
        &m,
        "graph_entities",
        &json!({"query": "acm", "user_id": "eve"}),
    )
    .unwrap();
    assert_eq!(found[0]["name"], "Acme");
    let near = wire::call(&m, "graph_neighbors", &json!({"entity": eve, "depth": 1})).unwrap();
    assert_eq!(near[0]["entity"]["name"], "Acme");
    let acme = found[0]["id"].as_str().unwrap();
    let path = wire::call(&m, "graph_path", &json!({"from": eve, "to": acme})).unwrap();
    assert_eq!(path.as_array().unwrap().len(), 1);
    let listed = wire::call(&m, "graph_relations", &json!({"user_id": "eve"})).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    wire::call(
        &m,
        "graph_add_entity",
        &json!({"name": "Eve", "aliases": ["E."], "user_id": "eve"}),
    )
    .unwrap();
    let err = wire::call(&m, "graph_neighbors", &json!({"entity": eve, "depth": 9})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let err = wire::call(
        &m,
        "graph_add_relation",
        &json!({"subject": {"name": "Eve"}, "predicate": "x", "value": "y", "colour": 1}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn the_graph_leg_ranks_first_the_memory_a_named_entity_leads_to() {
    use agent_mem::{FusionWeights, SearchOptions};
    let m = memory();
    let scope = Scope::user("alice");
    let add = |text: &str| m.add(NewMemory::new(text).scope(scope.clone())).unwrap().id;
    add("Alice enjoys working late with a pot of coffee");
    add("Alice went hiking with her dog on Sunday");
    let office = add("Bob and Alice have shared an office since March");
    add("The office plants need water on Fridays");
    m.graph()
        .add_relation(
            NewRelation::new("Alice", "works with", "Bob")
                .scope(scope.clone())
                .source(&office),
        )
        .unwrap();
    let query = "who does Alice work with?";
    let search = |graph: f32| {
        let mut options = SearchOptions::new().user("alice").limit(4);
        options.weights = FusionWeights {
            graph,
            ..FusionWeights::default()
        };
        m.search(query, &options).unwrap()
    };
    let without = search(0.0);
    assert_ne!(
        without[0].memory.id, office,
        "the engines alone rank it first"
    );
    assert!(without.iter().all(|h| h.explain.graph.is_none()));
    let with = search(FusionWeights::default().graph);
    assert_eq!(with[0].memory.id, office);
    assert_eq!(with[0].explain.graph.map(|g| g.score), Some(1.0));
    // A typo in the name still names her.
    let mut options = SearchOptions::new().user("alice").limit(4);
    options.weights.graph = FusionWeights::default().graph;
    let typo = m.search("who does Alcie work with?", &options).unwrap();
    assert_eq!(typo[0].memory.id, office);
    assert_eq!(typo[0].explain.graph.map(|g| g.score), Some(1.0));
    // A query naming no entity scores as it would without the graph.
    let plain = |graph: f32| {
        let mut options = SearchOptions::new().user("alice").limit(4);
        options.weights.graph = graph;
        m.search("plants and water", &options)
            .unwrap()
            .into_iter()
            .map(|h| (h.memory.id, h.score))
            .collect::<Vec<_>>()
    };
    assert_eq!(plain(0.0), plain(1.0));
    // Another scope's entities never lead anywhere.
    let mut elsewhere = SearchOptions::new().user("bob");
    elsewhere.weights.graph = 1.0;
    assert!(m
        .search(query, &elsewhere)
        .unwrap()
        .iter()
        .all(|h| h.explain.graph.is_none()));
}

#[test]
fn relations_about_a_question_touch_the_entities_it_names() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("alice");
    for (a, p, b) in [
        ("Alice", "works_with", "Bob"),
        ("Bob", "lives_in", "Oslo"),
        ("Carol", "likes", "jazz"),
    ] {
        g.add_relation(NewRelation::new(a, p, b).scope(scope.clone()))
            .unwrap();
    }
    let about = |text: &str| {
        let query = RelationQuery {
            scope: scope.clone(),
            about: Some(text.into()),
            ..RelationQuery::default()
        };
        g.relations(&query)
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {} {}", r.subject_name, r.predicate, r.object_name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        about("Who does Bob work with?"),
        vec!["Alice works_with Bob", "Bob lives_in Oslo"]
    );
    assert_eq!(about("what does carol like"), vec!["Carol likes jazz"]);
    assert!(about("nothing named here").is_empty());
}

#[test]
fn an_entity_reference_with_unknown_keys_is_refused() {
    let m = memory();
    for end in [
        json!({"name": "Eve", "colour": 1}),
        json!({"id": "x", "name": "Eve"}),
    ] {
        let err = wire::call(
            &m,
            "graph_add_relation",
            &json!({"subject": end, "predicate": "knows", "value": "y"}),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{end}");
    }
    assert!(m
        .graph()
        .entities("", &Scope::default(), None, None)
        .unwrap()
        .is_empty());
}

/// Relations of a scope with their sources, as "subject predicate object [sources]".
fn sourced(m: &Memory, scope: Scope) -> Vec<String> {
    let query = RelationQuery {
        scope,
        time: RelationTime {
            include_closed: true,
            ..RelationTime::default()
        },
        ..RelationQuery::default()
    };
    m.graph()
        .relations(&query)
        .unwrap()
        .into_iter()
        .map(|r| {
            let ended = if r.valid_to.is_some() { " (ended)" } else { "" };
            format!(
                "{} {} {} {:?}{ended}",
                r.subject_name, r.predicate, r.object_name, r.sources
            )
        })
        .collect()
}

#[test]
fn merging_two_entities_keeps_every_name_and_relation_once_and_is_recorded() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("u");
    let said = |text: &str| m.add(NewMemory::new(text).scope(scope.clone())).unwrap().id;
    let (m1, m2, m3) = (
        said("Bob works at Acme"),
        said("Robert works at Acme"),
        said("x"),
    );
    let bob = g
        .add_entity(
            NewEntity::new("Bob")
                .entity_type("person")
                .scope(scope.clone()),
        )
        .unwrap();
    let robert = g
        .add_entity(
            NewEntity::new("Robert")
                .entity_type("person")
                .alias("Rob")
                .summary("an engineer")
                .scope(scope.clone()),
        )
        .unwrap();
    let add = |s: &str, p: &str, o: &str, source: &str| {
        g.add_relation(
            NewRelation::new(s, p, o)
                .scope(scope.clone())
                .source(source),
        )
        .unwrap()
    };
    add("Bob", "works_at", "Acme", &m1);
    add("Robert", "works_at", "Acme", &m2);
    add("Robert", "lives_in", "Paris", &m3);
    let newer = add("Bob", "lives_in", "Berlin", &m3);
    add("Acme", "employs", "Robert", &m2);
    let between = add("Bob", "knows", "Robert", &m3);

    let merged = g.merge_entities(&bob.id, &robert.id).unwrap();
    assert_eq!(merged.entity.id, bob.id);
    assert_eq!(merged.entity.aliases, vec!["Rob", "Robert"]);
    assert_eq!(merged.entity.summary.as_deref(), Some("an engineer"));
    let mut expected_works = vec![m1.clone(), m2.clone()];
    expected_works.sort();
    let relations = sourced(&m, scope.clone());
    assert_eq!(
        relations,
        vec![
            format!("Bob works_at Acme {expected_works:?}"),
            format!("Bob lives_in Paris {:?} (ended)", vec![m3.clone()]),
            format!("Bob lives_in Berlin {:?}", vec![m3.clone()]),
            format!("Acme employs Bob {:?}", vec![m2.clone()]),
        ],
        "twins become one; the newest home closes the older"
    );
    let closed = merged
        .relations
        .iter()
        .find(|r| r.object_name == "Paris")
        .unwrap();
    assert_eq!(
        closed.closed_by.as_deref(),
        Some(newer.relation.id.as_str())
    );
    // Every name of both finds the one left; the other is gone, and says where.
    for name in ["bob", "robert", "ROB"] {
        let found = g.entities(name, &scope, None, Some(1)).unwrap();
        assert_eq!(found[0].id, bob.id, "{name}");
    }
    let gone = g.entity(&robert.id).unwrap_err();
    assert_eq!(gone.code(), ErrorCode::NotFound);
    assert!(gone.message().contains(&bob.id), "{}", gone.message());
    let history = g.entity_history(&bob.id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].detail["id"], robert.id.as_str());
    assert_eq!(history[0].detail["name"], "Robert");
    assert_eq!(
        history[0].detail["dropped"],
        json!([between.relation.id]),
        "a relation between the two would relate the entity to itself"
    );
    let history = g.entity_history(&robert.id).unwrap();
    assert_eq!(history[0].detail["into"], bob.id.as_str());

    // Refused, with nothing changed: itself, an unknown id, another scope.
    let before = sourced(&m, scope.clone());
    assert_eq!(
        g.merge_entities(&bob.id, &bob.id).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        g.merge_entities(&bob.id, &robert.id).unwrap_err().code(),
        ErrorCode::NotFound
    );
    let elsewhere = g
        .add_entity(NewEntity::new("Bob").scope(Scope::user("other")))
        .unwrap();
    assert_eq!(
        g.merge_entities(&bob.id, &elsewhere.id).unwrap_err().code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(sourced(&m, scope.clone()), before);
    assert_eq!(g.entity_history(&bob.id).unwrap().len(), 1);
}

#[test]
fn renaming_keeps_the_old_name_as_an_alias_and_splitting_undoes_a_wrong_resolution() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("u");
    let sam = g
        .add_entity(
            NewEntity::new("Sam")
                .entity_type("person")
                .alias("Samantha")
                .alias("Sammy")
                .scope(scope.clone()),
        )
        .unwrap();
    let works = g
        .add_relation(NewRelation::new("Sam", "works_at", "Acme").scope(scope.clone()))
        .unwrap()
        .relation;
    let studies = g
        .add_relation(NewRelation::new("Samantha", "studies", "Law").scope(scope.clone()))
        .unwrap()
        .relation;

    let renamed = g.rename_entity(&sam.id, "Samuel").unwrap();
    assert_eq!(renamed.name, "Samuel");
    assert_eq!(renamed.aliases, vec!["Sam", "Samantha", "Sammy"]);
    assert_eq!(
        g.entity(&sam.id).unwrap().relations[0].subject_name,
        "Samuel",
        "relations show the new name"
    );
    // A name of another entity is refused: merge them instead.
    let err = g.rename_entity(&sam.id, "acme").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().contains("merge"), "{}", err.message());

    // Samantha was never Sam: she takes her names and what she studies.
    let split = g
        .split_entity(
            &sam.id,
            SplitEntity {
                name: "Samantha".into(),
                aliases: vec!["samantha".into()],
                relations: vec![studies.id.clone()],
                ..SplitEntity::default()
            },
        )
        .unwrap();
    assert_eq!(split.entity.entity.aliases, vec!["Sam", "Sammy"]);
    assert_eq!(split.split_off.entity.name, "Samantha");
    assert_eq!(split.split_off.entity.entity_type, "person");
    assert_eq!(split.split_off.relations.len(), 1);
    assert_eq!(split.split_off.relations[0].id, studies.id);
    assert_eq!(split.split_off.relations[0].subject_name, "Samantha");
    assert_eq!(split.entity.relations.len(), 1);
    assert_eq!(split.entity.relations[0].id, works.id);
    let found = g.entities("samantha", &scope, None, Some(1)).unwrap();
    assert_eq!(found[0].id, split.split_off.entity.id);
    let events: Vec<_> = g
        .entity_history(&sam.id)
        .unwrap()
        .into_iter()
        .map(|e| serde_json::to_value(e.event).unwrap())
        .collect();
    assert_eq!(events, vec![json!("renamed"), json!("split")]);
    assert_eq!(
        g.entity_history(&split.split_off.entity.id).unwrap()[0].detail["from"],
        sam.id.as_str()
    );

    // Refused with nothing changed: its main name, a name of another entity, a relation
    // that does not touch it.
    let before = sourced(&m, scope.clone());
    for part in [
        SplitEntity {
            name: "Sammy J".into(),
            aliases: vec!["Samuel".into()],
            ..SplitEntity::default()
        },
        SplitEntity {
            name: "Acme".into(),
            ..SplitEntity::default()
        },
        SplitEntity {
            name: "Sam 2".into(),
            relations: vec![studies.id.clone()],
            ..SplitEntity::default()
        },
        SplitEntity {
            name: "  ".into(),
            ..SplitEntity::default()
        },
    ] {
        let err = g.split_entity(&sam.id, part).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{}", err.message());
    }
    assert_eq!(sourced(&m, scope.clone()), before);
    assert_eq!(
        g.entity(&sam.id).unwrap().entity.aliases,
        vec!["Sam", "Sammy"]
    );
}

/// The default model, loaded once for this module's tests.
pub(crate) fn model() -> Arc<agent_mem::LocalEmbedder> {
    static MODEL: std::sync::OnceLock<Arc<agent_mem::LocalEmbedder>> = std::sync::OnceLock::new();
    MODEL
        .get_or_init(|| {
            let _guard = crate::support::env_lock();
            Arc::new(agent_mem::LocalEmbedder::new_default().expect("the embedding model"))
        })
        .clone()
}

#[test]
fn a_new_name_meaning_a_known_entity_of_its_type_resolves_to_it() {
    let m = Memory::builder().embedder(model()).build().unwrap();
    let g = m.graph();
    let scope = Scope::user("u");
    let entity = |name: &str, kind: &str| {
        g.add_entity(NewEntity::new(name).entity_type(kind).scope(scope.clone()))
            .unwrap()
    };
    let acme = entity("Acme Corp", "organisation");
    let again = entity("Acme Corporation", "organisation");
    assert_eq!(again.id, acme.id);
    assert_eq!(again.aliases, vec!["Acme Corporation"]);
    // Through a relation's end too.
    let nyc = entity("New York City", "place");
    let added = g
        .add_relation(
            NewRelation {
                subject: EntityRef::typed("Alice", "person"),
                object: Some(EntityRef::typed("New York", "place")),
                ..NewRelation::new("", "lives_in", "")
            }
            .scope(scope.clone()),
        )
        .unwrap();
    assert_eq!(added.relation.object.as_deref(), Some(nyc.id.as_str()));
    // Alike, but not the same: two people; and never across types or scopes.
    assert_ne!(
        entity("Alice Smith", "person").id,
        entity("Alice", "person").id
    );
    assert_ne!(entity("Acme Inc.", "thing").id, acme.id);
    let elsewhere = g
        .add_entity(
            NewEntity::new("Acme Corporation")
                .entity_type("organisation")
                .scope(Scope::user("other")),
        )
        .unwrap();
    assert_ne!(elsewhere.id, acme.id);

    // The store can ask for names to be nearly the same, or refuse a threshold it cannot use.
    let strict = Memory::builder()
        .embedder(model())
        .graph(agent_mem::graph::GraphOptions {
            name_similarity: Some(1.0),
            ..Default::default()
        })
        .build()
        .unwrap();
    let a = strict
        .graph()
        .add_entity(NewEntity::new("Acme Corp").scope(scope.clone()))
        .unwrap();
    let b = strict
        .graph()
        .add_entity(NewEntity::new("Acme Corporation").scope(scope.clone()))
        .unwrap();
    assert_ne!(a.id, b.id);
    let err = Memory::builder()
        .embedder(model())
        .graph(agent_mem::graph::GraphOptions {
            name_similarity: Some(0.2),
            ..Default::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

#[test]
fn the_graph_reads_as_it_was_recorded_at_a_past_moment() {
    let m = memory();
    let g = m.graph();
    let scope = Scope::user("u");
    let said = m
        .add(NewMemory::new("Ann lives in Oslo and knows Ben").scope(scope.clone()))
        .unwrap()
        .id;
    for (object, predicate) in [("Oslo", "lives in"), ("Ben", "knows")] {
        g.add_relation(
            NewRelation::new("Ann", predicate, object)
                .scope(scope.clone())
                .source(&said),
        )
        .unwrap();
    }
    let then = Utc::now();
    let ann = g.entities("ann", &scope, None, Some(1)).unwrap()[0]
        .id
        .clone();
    let ben = g.entities("ben", &scope, None, Some(1)).unwrap()[0]
        .id
        .clone();
    // Since then: Ann moved (closing Oslo), likes tea, and the memory that said the rest
    // was deleted (its relations went with it).
    g.add_relation(NewRelation::new("Ann", "lives in", "Rome").scope(scope.clone()))
        .unwrap();
    g.add_relation(NewRelation::literal("Ann", "likes", "tea").scope(scope.clone()))
        .unwrap();
    m.delete(&said).unwrap();

    let at = |as_of: Option<chrono::DateTime<Utc>>| RelationTime {
        as_of,
        ..RelationTime::default()
    };
    assert_eq!(
        relations(&m, scope.clone(), at(None)),
        vec!["Ann lives_in Rome", "Ann likes tea"]
    );
    assert_eq!(
        relations(&m, scope.clone(), at(Some(then))),
        vec!["Ann lives_in Oslo", "Ann knows Ben"]
    );
    let past = g
        .relations(&RelationQuery {
            scope: scope.clone(),
            source: Some(said.clone()),
            time: at(Some(then)),
            ..RelationQuery::default()
        })
        .unwrap();
    assert_eq!(past.len(), 2);
    assert!(past
        .iter()
        .all(|r| r.sources == vec![said.clone()] && r.valid_to.is_none()));
    // Walks and paths too.
    let walk = |as_of| {
        let mut walk = Neighbors::of(&ann).depth(2);
        walk.time = at(as_of);
        let mut names: Vec<String> = g
            .neighbors(&walk)
            .unwrap()
            .into_iter()
            .map(|n| n.entity.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(walk(None), vec!["Rome"]);
    assert_eq!(walk(Some(then)), vec!["Ben", "Oslo"]);
    assert!(g.path(&ann, &ben, 3, &at(None)).unwrap().is_none());
    assert_eq!(
        g.path(&ann, &ben, 3, &at(Some(then)))
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    // Before anything was recorded, nothing was.
    let before = Some(then - Duration::days(1));
    assert!(relations(&m, scope.clone(), at(before)).is_empty());
    assert_eq!(
        g.entity(&ann).unwrap().entity.name,
        "Ann",
        "a read without as_of sees now"
    );
    // On the wire, as_of is a time like valid_at.
    let on_wire = wire::call(
        &m,
        "graph_relations",
        &json!({"user_id": "u", "as_of": agent_mem::format_time(then)}),
    )
    .unwrap();
    assert_eq!(on_wire.as_array().unwrap().len(), 2);
    let bad = wire::call(
        &m,
        "graph_neighbors",
        &json!({"entity": ann, "as_of": "not a time"}),
    )
    .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidInput);
}

/// A store of schema version 4 (the graph without embeddings, history or undo of
/// relations) is migrated at open: its entities keep their aliases and it goes on.
#[test]
fn a_version_4_graph_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let open = || {
        Memory::builder()
            .path(&path)
            .embedder(Arc::new(HashingEmbedder::new(64)))
            .build()
            .unwrap()
    };
    let m = open();
    let scope = Scope::user("u");
    let alice = m
        .graph()
        .add_entity(NewEntity::new("Alice").alias("Ally").scope(scope.clone()))
        .unwrap();
    m.close().unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TABLE entity_embeddings;
             DROP TABLE entity_history;
             DROP TABLE forgotten_sources;
             DROP INDEX entities_scope_type;
             ALTER TABLE entities DROP COLUMN aliased;
             UPDATE meta SET value = '4' WHERE key = 'schema_version';",
        )
        .unwrap();
    let m = open();
    let again = m.graph().entity(&alice.id).unwrap().entity;
    assert_eq!(again.aliases, vec!["Ally"]);
    let bob = m
        .graph()
        .add_entity(NewEntity::new("Bob").alias("Bobby").scope(scope.clone()))
        .unwrap();
    assert_eq!(bob.aliases, vec!["Bobby"]);
    let merged = m.graph().merge_entities(&alice.id, &bob.id).unwrap();
    assert_eq!(merged.entity.aliases, vec!["Ally", "Bob", "Bobby"]);
}
