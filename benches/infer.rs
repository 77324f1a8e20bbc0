//! What inference costs on top of the model: LLM calls per `add_messages` and our own
//! latency (HTTP round trips to a local server that answers at once, embedding the facts with
//! the local model, the similarity searches and the transaction); prints a table.
//!
//! `cargo bench -p agent-mem-benches --bench infer` (`-- --rounds N`, default 60). The model is the
//! fake OpenAI-compatible server of the tests (a real HTTP server on 127.0.0.1) answering
//! instantly, so every millisecond measured is ours, not the model's.

#[allow(dead_code)]
#[path = "../core/tests/all/support/fake_llm.rs"]
mod fake_llm;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, LocalEmbedder};
use agent_mem::llm::{ChatRequest, LlmConfig};
use agent_mem::{AddMessages, HashingEmbedder, Memory, NewMemory};
use fake_llm::{FakeLlm, Recorded, Reply};
use serde_json::{json, Value};

/// The fake model: two facts per message (one for a move); decides UPDATE of the first
/// memory shown for a move, ADD otherwise.
fn model(r: &Recorded, calls: &AtomicUsize) -> Reply {
    calls.fetch_add(1, Ordering::Relaxed);
    let system = r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    let user = r.body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    if system.contains("extract the facts") {
        let said = user.rsplit("user: ").next().unwrap_or_default();
        let n: String = said.chars().filter(char::is_ascii_digit).collect();
        // Texts unique to each message, so that no row profits from the embedding cache.
        let facts = if said.contains("moved") {
            json!({"facts": [format!("Lives in city number {n}")]})
        } else {
            json!({"facts": [format!("Said that {said}"), format!("Has {n} houseplants ({said})")]})
        };
        return Reply::openai_chat(&facts.to_string());
    }
    let q: Value = serde_json::from_str(user).unwrap_or_default();
    let facts = q["new_facts"].as_array().map_or(0, Vec::len);
    let decisions: Vec<Value> = (0..facts)
        .map(|i| {
            if i == 0
                && q["new_facts"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("city")
            {
                json!({"fact": 0, "event": "UPDATE", "id": "0", "text": q["new_facts"][0]["text"]})
            } else {
                json!({"fact": i, "event": "ADD"})
            }
        })
        .collect();
    Reply::openai_chat(&json!({ "decisions": decisions }).to_string())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p95(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

struct Row {
    name: &'static str,
    calls_per_op: f64,
    times: Vec<Duration>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(60usize);

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = FakeLlm::with_handler(move |r| model(r, &counter));
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": "openai", "model": "bench", "api_key": "sk-bench",
        "base_url": server.openai_base(), "max_retries": 0,
    }))
    .expect("config");
    let llm = config.build().expect("llm");
    let (embedder, embedder_name): (Arc<dyn Embedder>, &str) =
        match agent_mem::embed::locate_model(None).and_then(|l| LocalEmbedder::from_dir(&l.dir)) {
            Ok(e) => (Arc::new(e), "all-MiniLM-L6-v2 (local)"),
            Err(_) => (
                Arc::new(HashingEmbedder::new(384)),
                "hashing (model not found)",
            ),
        };
    let memory = Memory::builder()
        .embedder(embedder.clone())
        .llm(llm.clone())
        .build()
        .expect("store");
    // A populated store: 2,000 memories over 20 users.
    let seed: Vec<NewMemory> = (0..2000)
        .map(|i| {
            NewMemory::new(format!("Note {i}: likes topic {}", i % 97)).user(format!("u{}", i % 20))
        })
        .collect();
    memory.add_batch(seed).expect("seed");
    // Users who will move: each has a city stored already.
    let movers: Vec<NewMemory> = (0..rounds)
        .chain(1_000_000..1_000_005)
        .map(|i| NewMemory::new("Lives in city number 999999").user(format!("mover{i}")))
        .collect();
    memory.add_batch(movers).expect("movers");

    let mut rows = Vec::new();
    let mut time = |name: &'static str, f: &mut dyn FnMut(usize)| {
        for i in 0..5 {
            f(1_000_000 + i); // warm-up
        }
        let before = calls.load(Ordering::Relaxed);
        let mut times = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let t = Instant::now();
            f(i);
            times.push(t.elapsed());
        }
        let used = calls.load(Ordering::Relaxed) - before;
        rows.push(Row {
            name,
            calls_per_op: used as f64 / rounds as f64,
            times,
        });
    };

    time("one chat round trip (HTTP + JSON)", &mut |i| {
        llm.complete(&ChatRequest::new("extract the facts", format!("user: {i}")).json())
            .expect("complete");
    });
    time("embed 2 facts (local model, no cache)", &mut |i| {
        embedder
            .embed(&[
                &format!("Favourite number is {i}x"),
                &format!("Has {i}x houseplants"),
            ])
            .expect("embed");
    });
    time("add 2 facts raw (add_batch, infer off)", &mut |i| {
        memory
            .add_batch(vec![
                NewMemory::new(format!("Raw favourite number is {i}")).user(format!("raw{i}")),
                NewMemory::new(format!("Raw has {i} houseplants")).user(format!("raw{i}")),
            ])
            .expect("raw add");
    });
    time("infer, new user (nothing similar)", &mut |i| {
        memory
            .add_messages(
                AddMessages::text(format!("My favourite number is {i}")).user(format!("new{i}")),
            )
            .expect("infer");
    });
    time("infer, user with 100 memories", &mut |i| {
        memory
            .add_messages(
                AddMessages::text(format!("my lucky number is {i}")).user(format!("u{}", i % 20)),
            )
            .expect("infer");
    });
    time("infer, a move (UPDATE of a stored fact)", &mut |i| {
        memory
            .add_messages(
                AddMessages::text(format!("I moved to city {i}")).user(format!("mover{i}")),
            )
            .expect("infer");
    });

    println!(
        "\ninference overhead: {rounds} rounds, embedder {embedder_name}, model answers at once"
    );
    println!(
        "{:<42} {:>10} {:>11} {:>11}",
        "operation", "LLM calls", "median ms", "p95 ms"
    );
    for r in &rows {
        println!(
            "{:<42} {:>10.2} {:>11} {:>11}",
            r.name,
            r.calls_per_op,
            ms(median(r.times.clone())),
            ms(p95(r.times.clone()))
        );
    }
    println!(
        "\nmem0 2.x (additive) makes 1 LLM call and 2 embedding calls per add; mem0's classic \
         pipeline (1.x) makes 2 LLM calls per add (extraction, then the update decision) and one \
         embedding call per fact. Ours: 1 call when nothing similar is stored, 2 otherwise."
    );
}
