//! The graph in bulk: a memory added with its entities and relations in one transaction,
//! triples imported all or nothing, and a scope's graph exported as JSON (imported back),
//! GraphML and DOT, with the text escaped.

use std::sync::Arc;

use agent_mem::graph::{
    EntityRef, ExportFormat, GraphDocument, GraphExport, NewEntity, NewRelation, RelationQuery,
    RelationTime, Triple, TripleEnd, MAX_IMPORT,
};
use agent_mem::{wire, ErrorCode, HashingEmbedder, Memory, NewMemory, Scope};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

fn memory() -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn all_relations(m: &Memory, scope: &Scope) -> Vec<agent_mem::graph::Relation> {
    m.graph()
        .relations(&RelationQuery {
            scope: scope.clone(),
            time: RelationTime {
                valid_at: None,
                include_closed: true,
                as_of: None,
            },
            ..RelationQuery::default()
        })
        .unwrap()
}

/// What a user sees of a scope: its memories, entities and relations.
fn snapshot(m: &Memory, scope: &Scope) -> (usize, usize, usize) {
    (
        m.count(scope, None).unwrap(),
        m.graph()
            .entities("", scope, None, Some(10_000))
            .unwrap()
            .len(),
        all_relations(m, scope).len(),
    )
}

fn json_of(export: GraphExport) -> GraphDocument {
    match export {
        GraphExport::Json(d) => d,
        other => panic!("not JSON: {other:?}"),
    }
}

fn text_of(export: GraphExport) -> String {
    match export {
        GraphExport::Graphml(t) | GraphExport::Dot(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

// ---------------------------------------------------------------- add with relations

#[test]
fn a_memory_comes_with_its_entities_and_relations_sourced_from_it() {
    let m = memory();
    let alice = Scope::user("alice");
    let out = m
        .add(
            NewMemory::new("Alice (Ally) lives in Paris and is allergic to peanuts")
                .user("alice")
                .entity(
                    NewEntity::new("Alice")
                        .entity_type("person")
                        .alias("Ally")
                        .summary("the user"),
                )
                .relation(NewRelation::new("Ally", "Lives in", "Paris"))
                .relation(NewRelation::literal("Alice", "allergic_to", "peanuts")),
        )
        .unwrap();
    let relations = all_relations(&m, &alice);
    assert_eq!(relations.len(), 2);
    for r in &relations {
        assert_eq!(r.sources, vec![out.id.clone()], "sourced from the memory");
        assert_eq!(r.scope, alice, "in the memory's scope");
        assert_eq!(r.subject_name, "Alice", "the alias resolved to the entity");
    }
    let found = m.graph().entities("ally", &alice, None, None).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entity_type, "person");
    assert_eq!(found[0].summary.as_deref(), Some("the user"));
    // Functional predicates close the old object, as add_relation does.
    let moved = m
        .add(
            NewMemory::new("Alice moved to Berlin")
                .user("alice")
                .relation(NewRelation::new("Alice", "lives_in", "Berlin")),
        )
        .unwrap();
    let now = all_relations(&m, &alice);
    let paris = now.iter().find(|r| r.object_name == "Paris").unwrap();
    let berlin = now.iter().find(|r| r.object_name == "Berlin").unwrap();
    assert!(paris.valid_to.is_some());
    assert_eq!(paris.closed_by.as_deref(), Some(berlin.id.as_str()));
    assert_eq!(berlin.sources, vec![moved.id.clone()]);
    // Deleting the memory takes the relations only it supported.
    m.delete(&moved.id).unwrap();
    assert!(all_relations(&m, &alice)
        .iter()
        .all(|r| r.object_name != "Berlin"));
    // A duplicate memory sources the relations from the one stored.
    let again = m
        .add(
            NewMemory::new("Alice (Ally) lives in Paris and is allergic to peanuts")
                .user("alice")
                .relation(NewRelation::new("Alice", "likes", "tea").source(&out.id)),
        )
        .unwrap();
    assert!(!again.added);
    let tea = all_relations(&m, &alice)
        .into_iter()
        .find(|r| r.object_name == "tea")
        .unwrap();
    assert_eq!(tea.sources, vec![out.id.clone()]);
}

#[test]
fn a_bad_relation_fails_the_whole_add_and_the_store_stays_unchanged() {
    let m = memory();
    let alice = Scope::user("alice");
    let bob = Scope::user("bob");
    let bobs = m
        .graph()
        .add_entity(NewEntity::new("Bob").scope(bob.clone()))
        .unwrap();
    m.add(NewMemory::new("Alice likes tea").user("alice"))
        .unwrap();
    let before = snapshot(&m, &alice);
    let good = NewRelation::new("Alice", "knows", "Carol");
    let cases: Vec<(NewMemory, ErrorCode)> = vec![
        (
            NewMemory::new("x")
                .user("alice")
                .relation(good.clone())
                .relation(NewRelation::new("Alice", " -> ", "Carol")),
            ErrorCode::InvalidInput,
        ),
        (
            NewMemory::new("x")
                .user("alice")
                .relation(good.clone())
                .relation(NewRelation {
                    object: Some(EntityRef::id("no-such-entity")),
                    ..NewRelation::new("Alice", "knows", "")
                }),
            ErrorCode::NotFound,
        ),
        (
            NewMemory::new("x")
                .user("alice")
                .relation(good.clone())
                .relation(NewRelation {
                    object: Some(EntityRef::id(&bobs.id)),
                    ..NewRelation::new("Alice", "knows", "")
                }),
            ErrorCode::InvalidInput,
        ),
        (
            NewMemory::new("x")
                .user("alice")
                .relation(good.clone().scope(bob.clone())),
            ErrorCode::InvalidInput,
        ),
        (
            NewMemory::new("x")
                .user("alice")
                .entity(NewEntity::new("Dan").scope(bob.clone())),
            ErrorCode::InvalidInput,
        ),
        (
            NewMemory::new("x")
                .user("alice")
                .relation(good.clone().source("no-such-memory")),
            ErrorCode::NotFound,
        ),
    ];
    for (new, code) in cases {
        let err = m.add(new.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{new:?}: {err}");
        assert_eq!(snapshot(&m, &alice), before, "{err}");
    }
    // A batch: one memory's bad relation fails them all.
    let err = m
        .add_batch(vec![
            NewMemory::new("Carol is a friend")
                .user("alice")
                .relation(good.clone()),
            NewMemory::new("y")
                .user("alice")
                .relation(NewRelation::new("Alice", "", "Carol")),
        ])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().starts_with("memory 1: relations[0]"), "{err}");
    assert_eq!(snapshot(&m, &alice), before);
    assert_eq!(snapshot(&m, &bob), (0, 1, 0));
}

#[test]
fn the_wire_add_and_batch_take_entities_and_relations() {
    let m = memory();
    let alice = Scope::user("alice");
    let out = wire::call(
        &m,
        "add",
        &json!({
            "content": "Alice works at Acme since 2024",
            "user_id": "alice",
            "entities": [{"name": "Acme", "type": "organisation", "aliases": ["ACME Corp"]}],
            "relations": [{"subject": {"name": "Alice", "type": "person"}, "predicate": "works at",
                           "object": {"name": "ACME Corp"}, "valid_from": "2024-01-01",
                           "confidence": 0.9}],
        }),
    )
    .unwrap();
    let relations = all_relations(&m, &alice);
    assert_eq!(relations.len(), 1);
    assert_eq!(relations[0].object_name, "Acme");
    assert_eq!(relations[0].predicate, "works_at");
    assert_eq!(relations[0].sources, vec![out["id"].as_str().unwrap()]);
    assert_eq!(
        relations[0].valid_from,
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    );
    // A scope inside a relation is not a field of it.
    let err = wire::call(
        &m,
        "add",
        &json!({"content": "z", "relations": [{"subject": {"name": "A"}, "predicate": "p",
                "value": "v", "user_id": "bob"}]}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let batch = wire::call(
        &m,
        "add_batch",
        &json!({"memories": [
            {"content": "Bob likes jazz", "user_id": "bob",
             "relations": [{"subject": {"name": "Bob"}, "predicate": "likes", "value": "jazz"}]},
            {"content": "Carol likes rock", "user_id": "carol",
             "relations": [{"subject": {"name": "Carol"}, "predicate": "likes", "value": "rock"}]},
        ]}),
    )
    .unwrap();
    let carol = all_relations(&m, &Scope::user("carol"));
    assert_eq!(carol.len(), 1);
    assert_eq!(carol[0].sources, vec![batch[1]["id"].as_str().unwrap()]);
    assert_eq!(all_relations(&m, &Scope::user("bob")).len(), 1);
}

// ------------------------------------------------------------------------------ import

#[test]
fn triples_import_in_one_transaction_and_report_what_they_did() {
    let m = memory();
    let alice = Scope::user("alice");
    let mut moved = Triple::new("Alice", "lives_in", "Berlin");
    moved.valid_from = Some(Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap());
    let mut typed = Triple::new("Alice", "works_at", "Acme");
    typed.subject_type = Some("person".into());
    typed.object_type = Some("organisation".into());
    let report = m
        .graph()
        .import_triples(
            vec![
                Triple::new("Alice", "lives_in", "Paris"),
                typed,
                Triple::literal("Alice", "allergic_to", "peanuts"),
                moved,
                Triple::new("alice", "works at", "ACME"),
            ],
            &alice,
        )
        .unwrap();
    assert_eq!(report.relations_created, 4);
    assert_eq!(report.relations_held, 1);
    assert_eq!(report.entities_created, 4, "Alice, Paris, Acme, Berlin");
    assert_eq!(report.closed.len(), 1, "Paris closed by Berlin");
    let acme = m.graph().entities("acme", &alice, None, None).unwrap();
    assert_eq!(acme[0].entity_type, "organisation");
    // Entities by id: of the scope only; a type goes with a name.
    let alice_id = m.graph().entities("alice", &alice, None, None).unwrap()[0]
        .id
        .clone();
    let by_id = Triple {
        subject: TripleEnd::Entity(EntityRef::id(&alice_id)),
        ..Triple::literal("", "likes", "tea")
    };
    let report = m
        .graph()
        .import_triples(vec![by_id.clone()], &alice)
        .unwrap();
    assert_eq!((report.relations_created, report.entities_created), (1, 0));
    let before = snapshot(&m, &alice);
    let bad: Vec<(Triple, ErrorCode)> = vec![
        (Triple::new("Alice", "!!", "Bob"), ErrorCode::InvalidInput),
        (
            Triple {
                subject_type: Some("person".into()),
                ..by_id.clone()
            },
            ErrorCode::InvalidInput,
        ),
        (
            Triple {
                subject: TripleEnd::Entity(EntityRef::id("no-such-entity")),
                ..by_id.clone()
            },
            ErrorCode::NotFound,
        ),
        (
            Triple {
                sources: vec!["no-such-memory".into()],
                ..Triple::new("Alice", "knows", "Eve")
            },
            ErrorCode::NotFound,
        ),
        (
            Triple {
                object: Some("Eve".into()),
                ..Triple::literal("Alice", "knows", "Eve")
            },
            ErrorCode::InvalidInput,
        ),
    ];
    for (triple, code) in bad {
        // The bad triple comes last: the good ones before it are not kept either.
        let err = m
            .graph()
            .import_triples(
                vec![
                    Triple::new("Alice", "knows", "Zed"),
                    Triple::new("Yan", "lives_in", "Rome"),
                    triple.clone(),
                ],
                &alice,
            )
            .unwrap_err();
        assert_eq!(err.code(), code, "{triple:?}: {err}");
        assert!(err.message().starts_with("triples[2]: "), "{err}");
        assert_eq!(snapshot(&m, &alice), before);
    }
    // An entity of another scope is refused too.
    let err = m
        .graph()
        .import_triples(vec![by_id], &Scope::user("bob"))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let too_many = vec![Triple::new("A", "p", "B"); MAX_IMPORT + 1];
    let err = m.graph().import_triples(too_many, &alice).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().contains("at most 10000"), "{err}");
}

#[test]
fn the_wire_import_takes_names_and_refs() {
    let m = memory();
    let report = wire::call(
        &m,
        "graph_import",
        &json!({
            "user_id": "u",
            "entities": [{"name": "Paris", "type": "place", "aliases": ["City of Light"]}],
            "triples": [
                {"subject": "Ann", "subject_type": "person", "predicate": "visited",
                 "object": "City of Light", "valid_from": "2023-05-01", "confidence": 0.5},
                {"subject": {"name": "Ann"}, "predicate": "age", "value": "31"},
            ],
        }),
    )
    .unwrap();
    assert_eq!(
        report,
        json!({"relations_created": 2, "relations_held": 0, "entities_created": 2, "closed": []})
    );
    let err = wire::call(
        &m,
        "graph_import",
        &json!({"triples": [{"subject": "Ann", "predicate": "p", "value": "v", "extra": 1}]}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

// ------------------------------------------------------------------------------ export

/// A graph with what an export must carry: aliases, a summary, types, a literal, a
/// relation closed by a functional predicate, confidence and valid times.
fn filled(m: &Memory, scope: &Scope) {
    let g = m.graph();
    g.add_entity(
        NewEntity::new("Alice")
            .entity_type("person")
            .alias("Ally")
            .summary("likes <tags> & \"quotes\"\nand lines")
            .scope(scope.clone()),
    )
    .unwrap();
    let mut triples = vec![
        Triple::new("Alice", "lives_in", "Paris"),
        Triple::literal("Alice", "motto", "say \"hi\" & <wave>\r\nback\\slash"),
        Triple::new("Alice", "works_at", "Acme & Co"),
    ];
    triples[0].valid_from = Some(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap());
    triples[2].confidence = Some(0.25);
    triples[2].object_type = Some("organisation".into());
    let mut moved = Triple::new("Alice", "lives_in", "Berlin");
    moved.valid_from = Some(Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap());
    triples.push(moved);
    g.import_triples(triples, scope).unwrap();
}

#[test]
fn a_json_export_imports_back_into_another_store_and_scope() {
    let a = memory();
    let alice = Scope::user("alice");
    filled(&a, &alice);
    // Another scope of the same store never shows.
    a.graph()
        .import_triples(
            vec![Triple::new("Mallory", "knows", "Alice")],
            &Scope::user("m"),
        )
        .unwrap();
    let exported = json_of(a.graph().export(&alice, ExportFormat::Json, true).unwrap());
    assert_eq!(exported.entities.len(), 4, "{exported:?}");
    assert!(exported.entities.iter().all(|e| e.name != "Mallory"));
    assert_eq!(exported.triples.len(), 4);
    let current = json_of(a.graph().export(&alice, ExportFormat::Json, false).unwrap());
    assert_eq!(
        current.triples.len(),
        3,
        "the closed relation only with include_closed"
    );

    // Into a fresh store, through the wire: the export's content is an import request.
    let b = memory();
    let content = wire::call(
        &a,
        "graph_export",
        &json!({"user_id": "alice", "format": "json", "include_closed": true}),
    )
    .unwrap();
    assert_eq!(content["format"], "json");
    let mut request = content["content"].clone();
    request["agent_id"] = json!("copy");
    let report = wire::call(&b, "graph_import", &request).unwrap();
    assert_eq!(report["relations_created"], 4);
    assert_eq!(report["entities_created"], 4);
    assert_eq!(
        report["closed"],
        json!([]),
        "an ended relation closes nothing"
    );
    let copy = Scope {
        agent_id: Some("copy".into()),
        ..Scope::default()
    };
    let again = json_of(b.graph().export(&copy, ExportFormat::Json, true).unwrap());
    assert_eq!(
        again, exported,
        "the round trip keeps everything a document says"
    );
    let ally = b.graph().entities("ally", &copy, None, None).unwrap();
    assert_eq!(ally[0].name, "Alice");
    // Back into the store it came from: everything is already held.
    let report = a.graph().import(exported, &alice).unwrap();
    assert_eq!(
        (
            report.relations_created,
            report.relations_held,
            report.entities_created
        ),
        (0, 4, 0)
    );
    assert!(report.closed.is_empty());
    assert_eq!(all_relations(&a, &alice).len(), 4);
}

/// A small XML well-formedness check: tags balance, attribute values are quoted, and text
/// holds no raw `<` or stray `&`.
fn check_xml(text: &str) -> Vec<String> {
    let body = text
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("an XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut elements = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        check_text(text);
        let close = rest[open..].find('>').expect("a closed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "{tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "balanced");
        } else {
            let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
            // Attribute values: quoted, escaped.
            let attrs = &tag[name.len()..].trim_end_matches('/');
            assert_eq!(attrs.matches('"').count() % 2, 0, "{tag}");
            check_text(&attrs.replace('"', ""));
            elements.push(name.to_string());
            if !tag.ends_with('/') {
                stack.push(name.to_string());
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(rest.trim().is_empty());
    assert!(stack.is_empty(), "{stack:?}");
    elements
}

fn check_text(text: &str) {
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    let mut at = 0;
    while let Some(amp) = text[at..].find('&') {
        let entity = &text[at + amp..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#13;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "{entity}"
        );
        at += amp + 1;
    }
}

#[test]
fn graphml_has_entities_values_and_relations_escaped() {
    let m = memory();
    let alice = Scope::user("alice");
    filled(&m, &alice);
    let text = text_of(
        m.graph()
            .export(&alice, ExportFormat::Graphml, true)
            .unwrap(),
    );
    let elements = check_xml(&text);
    let count = |name: &str| elements.iter().filter(|e| *e == name).count();
    assert_eq!(count("graphml"), 1);
    assert_eq!(count("graph"), 1);
    assert_eq!(count("node"), 5, "four entities and one value node");
    assert_eq!(count("edge"), 4);
    assert!(text.contains("<data key=\"kind\">value</data>"));
    assert!(text.contains(
        "<data key=\"name\">say &quot;hi&quot; &amp; &lt;wave&gt;&#13;\nback\\slash</data>"
    ));
    assert!(text.contains(
        "<data key=\"summary\">likes &lt;tags&gt; &amp; &quot;quotes&quot;\nand lines</data>"
    ));
    assert!(text.contains("<data key=\"name\">Acme &amp; Co</data>"));
    assert!(text.contains("<data key=\"aliases\">[&quot;Ally&quot;]</data>"));
    assert!(text.contains("<data key=\"valid_from\">2024-03-01T00:00:00.000000Z</data>"));
    assert!(text.contains("<data key=\"confidence\">0.25</data>"));
    assert!(text.contains("<data key=\"closed_by\">"));
    // Each edge joins nodes of the document.
    let ids: Vec<&str> = text
        .match_indices("<node id=\"")
        .map(|(i, m)| {
            let s = &text[i + m.len()..];
            &s[..s.find('"').unwrap()]
        })
        .collect();
    for (i, m) in text.match_indices(" source=\"") {
        let s = &text[i + m.len()..];
        assert!(ids.contains(&&s[..s.find('"').unwrap()]));
        let t = &s[s.find("target=\"").unwrap() + 8..];
        assert!(ids.contains(&&t[..t.find('"').unwrap()]));
    }
    let current = text_of(
        m.graph()
            .export(&alice, ExportFormat::Graphml, false)
            .unwrap(),
    );
    assert_eq!(
        check_xml(&current).iter().filter(|e| *e == "edge").count(),
        3
    );
    // An empty scope is an empty graph, still valid.
    let empty = text_of(
        m.graph()
            .export(&Scope::user("none"), ExportFormat::Graphml, false)
            .unwrap(),
    );
    assert!(!check_xml(&empty).contains(&"node".to_string()));
}

#[test]
fn dot_quotes_and_escapes_every_label() {
    let m = memory();
    let alice = Scope::user("alice");
    filled(&m, &alice);
    let out = wire::call(
        &m,
        "graph_export",
        &json!({"user_id": "alice", "format": "dot", "include_closed": true}),
    )
    .unwrap();
    assert_eq!(out["format"], "dot");
    let text = out["content"].as_str().unwrap();
    assert!(text.starts_with("digraph agent_mem {\n"));
    assert!(text.ends_with("}\n"));
    assert!(
        text.contains(r#"[label="say \"hi\" & <wave>\nback\\slash", shape=note];"#),
        "{text}"
    );
    assert!(text.contains(r#"[label="Acme & Co", tooltip="organisation"];"#));
    assert!(text.contains(r#"[label="lives_in", style=dashed];"#));
    // Every line is one statement: no raw line end inside a label, quotes balanced.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 4 + 1 + 4 + 1, "{text}");
    for line in &lines[2..lines.len() - 1] {
        assert!(line.ends_with("];"), "{line}");
        let unescaped = line.replace("\\\\", "").replace("\\\"", "");
        assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
    }
    let err = wire::call(&m, "graph_export", &json!({"format": "svg"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    let json: Value = wire::call(&m, "graph_export", &json!({"user_id": "alice"})).unwrap();
    assert_eq!(json["format"], "json", "JSON by default");
    assert_eq!(json["content"]["triples"].as_array().unwrap().len(), 3);
}
