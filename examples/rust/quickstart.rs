//! Quickstart: a store file, memories for two users, and a search for each.
//!
//! Run with `cargo run -p agent-mem --example quickstart [-- path/to/store.db]`.

use agent_mem::{Memory, NewMemory, SearchOptions};

fn main() -> agent_mem::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart.db".to_string());
    let memory = Memory::open(&path)?;
    println!(
        "store: {path} (model: {})",
        memory.embedding_model().unwrap_or("none")
    );

    let facts = [
        ("alice", "Alice is allergic to peanuts"),
        ("alice", "Alice moved from Paris to Berlin in March 2024"),
        ("alice", "Alice prefers dark mode in every editor"),
        ("alice", "我喜欢喝咖啡，特别是拿铁"),
        ("bob", "Bob is training for the Chicago marathon"),
        ("bob", "Bob's favourite food is spicy ramen"),
        (
            "bob",
            "Bob works as a site reliability engineer in San Francisco",
        ),
    ];
    let batch = facts
        .iter()
        .map(|(user, text)| NewMemory::new(*text).user(*user))
        .collect();
    let added = memory.add_batch(batch)?;
    let fresh = added.iter().filter(|a| a.added).count();
    println!(
        "added {fresh} new memories ({} already stored)",
        added.len() - fresh
    );

    let questions = [
        ("alice", "What food should Alice avoid?"),
        ("alice", "where does she live now"),
        ("alice", "咖啡"),
        ("bob", "what does bob do for a living"),
        ("bob", "San Fransisco"),
    ];
    for (user, question) in questions {
        println!("\n[{user}] {question}");
        let options = SearchOptions::new().user(user).limit(3);
        for hit in memory.search(question, &options)? {
            println!(
                "  {:.3}  (cosine {:.3})  {}",
                hit.score,
                hit.similarity.unwrap_or_default(),
                hit.memory.content
            );
        }
    }
    memory.close()
}
