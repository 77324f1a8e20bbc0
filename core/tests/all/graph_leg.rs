//! The graph leg's weights in hybrid search: 1 for the memories a named entity's relations
//! came from, 1/2 for those of its neighbours' relations, nothing for a closed relation's,
//! nothing for a relation two steps away or in another scope.

use std::sync::Arc;

use agent_mem::graph::NewRelation;
use agent_mem::{HashingEmbedder, Memory, NewMemory, Scope, SearchOptions};

#[test]
fn named_entities_weigh_their_memories_and_neighbours_half() {
    let m = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap();
    let scope = Scope::user("alice");
    let add = |text: &str| m.add(NewMemory::new(text).scope(scope.clone())).unwrap().id;
    let office = add("Bob and Alice have shared an office since March");
    let oslo = add("Bob has lived in Oslo for years");
    let paris = add("Years ago Alice lived in Paris");
    let berlin = add("Alice moved to Berlin last spring");
    let far = add("Oslo is a cold city in the north");
    let g = m.graph();
    let relate = |relation: NewRelation, source: &str| {
        g.add_relation(relation.scope(scope.clone()).source(source))
            .unwrap();
    };
    relate(NewRelation::new("Alice", "works with", "Bob"), &office);
    relate(NewRelation::new("Bob", "lives in", "Oslo"), &oslo);
    relate(NewRelation::new("Alice", "lives in", "Paris"), &paris);
    // Paris is closed by Berlin (a functional predicate): its memory no longer weighs.
    relate(NewRelation::new("Alice", "lives in", "Berlin"), &berlin);
    relate(NewRelation::new("Oslo", "located in", "Norway"), &far);
    // The same names in another scope lead nowhere in this one.
    g.add_relation(
        NewRelation::new("Alice", "knows", "Oslo")
            .scope(Scope::user("bob"))
            .source(
                m.add(NewMemory::new("Alice knows Oslo").user("bob"))
                    .unwrap()
                    .id,
            ),
    )
    .unwrap();
    let mut options = SearchOptions::new().scope(scope.clone()).limit(10);
    options.weights.graph = 1.0;
    let hits = m.search("where does Alice live now?", &options).unwrap();
    assert_eq!(hits.len(), 5, "every memory of the scope is a candidate");
    let graph_score = |id: &str| {
        hits.iter()
            .find(|h| h.memory.id == id)
            .unwrap()
            .explain
            .graph
            .map(|g| g.score)
    };
    assert_eq!(graph_score(&office), Some(1.0));
    assert_eq!(graph_score(&berlin), Some(1.0));
    assert_eq!(graph_score(&oslo), Some(0.5), "Bob is Alice's neighbour");
    assert_eq!(
        graph_score(&paris),
        None,
        "a closed relation does not count"
    );
    assert_eq!(graph_score(&far), None, "Oslo is two relations away");
}
