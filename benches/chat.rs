//! What chat with memory costs beyond the model: recall + compose, a whole turn with the
//! exchange remembered inline, and the time to the first streamed piece; prints a table.
//!
//! `cargo bench -p agent-mem-benches --bench chat` (`-- --rounds N`, default 40;
//! `--memories N`, default 10,000 in the chatting user's scope). The model is the fake
//! OpenAI-compatible server of the tests (a real HTTP server on 127.0.0.1) answering at
//! once, streamed or not, so what is measured beyond its round trips is ours. The embedder
//! is the local all-MiniLM-L6-v2 (the hashing embedder when the model is not found, said in
//! the table's title).

#[allow(dead_code)]
#[path = "../core/tests/all/support/fake_llm.rs"]
mod fake_llm;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, LocalEmbedder};
use agent_mem::llm::{ChatRequest, Llm, LlmConfig};
use agent_mem::{Chat, HashingEmbedder, Memory, NewMemory, Remember};
use fake_llm::{FakeLlm, Recorded, Reply};
use serde_json::json;

const ANSWER: &str = "You told me you enjoy hiking in the Alps [1] and prefer tea [2].";

/// The fake model: answers chat turns (streamed when asked), extracts one fact, adds it.
fn model(r: &Recorded, calls: &AtomicUsize) -> Reply {
    calls.fetch_add(1, Ordering::Relaxed);
    let system = r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    if system.contains("long-term memory of the person") {
        return Reply::openai_answer(r, ANSWER);
    }
    if system.contains("extract the facts") {
        let n = calls.load(Ordering::Relaxed);
        return Reply::openai_chat(
            &json!({"facts": [format!("Mentioned trip plan {n}")]}).to_string(),
        );
    }
    Reply::openai_chat(r#"{"decisions": [{"fact": 0, "event": "ADD"}]}"#)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let rounds = arg("--rounds", 40);
    let size = arg("--memories", 10_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = FakeLlm::with_handler(move |r| model(r, &counter));
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": "openai", "model": "bench", "api_key": "sk-bench",
        "base_url": server.openai_base(), "max_retries": 0,
    }))
    .expect("config");
    let llm: Arc<dyn Llm> = config.build().expect("llm");
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
    let topics = [
        "hiking", "tea", "jazz", "cooking", "chess", "sailing", "Rust", "Lisbon",
    ];
    let seed: Vec<NewMemory> = (0..size)
        .map(|i| {
            let topic = topics[i % topics.len()];
            NewMemory::new(format!(
                "Note {i}: the user talked about {topic} on day {}",
                i % 365
            ))
            .user("alice")
        })
        .collect();
    let t = Instant::now();
    for chunk in seed.chunks(1_000) {
        memory.add_batch(chunk.to_vec()).expect("seed");
    }
    eprintln!(
        "seeded {size} memories in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let turn = |i: usize, remember: Remember| {
        Chat::text(format!(
            "What do you remember about my hiking plans, question {i}?"
        ))
        .user("alice")
        .run(format!("session-{}", i % 4))
        .remember(remember)
    };
    // Every measured call asks a question of its own, so that no embedding comes from the
    // cache. Warm-up: connections, the index.
    for i in 0..5 {
        memory
            .chat(turn(1_000_000 + i, Remember::Inline))
            .expect("warm-up");
    }

    let mut round_trip = Vec::new();
    let mut embed_query = Vec::new();
    let mut search = Vec::new();
    let mut context = Vec::new();
    let mut add_one = Vec::new();
    let mut answer_only = Vec::new();
    let mut inline = Vec::new();
    let mut first_piece = Vec::new();
    let mut inline_calls = 0;
    for i in 0..rounds {
        let t = Instant::now();
        llm.complete(&ChatRequest::new("long-term memory of the person", "hi"))
            .expect("round trip");
        round_trip.push(t.elapsed());

        let question = format!("Which of my hobbies did I mention, question {i}?");
        let t = Instant::now();
        embedder.embed(&[&question]).expect("embed");
        embed_query.push(t.elapsed());

        let t = Instant::now();
        memory
            .search(
                &format!("{question} again"),
                &memory.search_options().user("alice"),
            )
            .expect("search");
        search.push(t.elapsed());

        let t = Instant::now();
        memory
            .add(
                NewMemory::new(format!("user: {question}\nassistant: {ANSWER}"))
                    .user("alice")
                    .run("session-add")
                    .kind(agent_mem::MemoryKind::Working),
            )
            .expect("add");
        add_one.push(t.elapsed());

        let t = Instant::now();
        memory
            .chat_context(&turn(i, Remember::Off))
            .expect("context");
        context.push(t.elapsed());

        let t = Instant::now();
        memory.chat(turn(i + 10_000, Remember::Off)).expect("chat");
        answer_only.push(t.elapsed());

        let before = calls.load(Ordering::Relaxed);
        let t = Instant::now();
        memory
            .chat(turn(i + 20_000, Remember::Inline))
            .expect("chat inline");
        inline.push(t.elapsed());
        inline_calls += calls.load(Ordering::Relaxed) - before;

        let t = Instant::now();
        let mut first: Option<Duration> = None;
        memory
            .chat_stream(turn(i + 30_000, Remember::Off), &mut |_| {
                first.get_or_insert_with(|| t.elapsed());
                true
            })
            .expect("stream");
        first_piece.push(first.expect("a piece"));
    }
    let trip = median(round_trip.clone());
    let calls_per_turn = inline_calls as f64 / rounds as f64;
    let model_time = trip.mul_f64(calls_per_turn);
    let context_p50 = median(context.clone());
    let rows = [
        (
            "one model round trip (HTTP + JSON)",
            median(round_trip),
            None,
        ),
        ("embed the query (one sentence)", median(embed_query), None),
        ("search alone (store defaults)", median(search), None),
        ("recall + compose (chat_context)", context_p50, None),
        (
            "add one memory, embedded (for comparison)",
            median(add_one),
            None,
        ),
        (
            "chat, remember off",
            median(answer_only.clone()),
            Some(trip),
        ),
        (
            "chat, remember inline (working + facts)",
            median(inline.clone()),
            Some(model_time),
        ),
        (
            "time to first streamed piece",
            median(first_piece.clone()),
            None,
        ),
    ];
    println!(
        "\nchat: {rounds} rounds, {size} memories in the scope, embedder {embedder_name}, model \
         answers at once ({calls_per_turn:.1} model calls per inline turn)"
    );
    println!(
        "{:<42} {:>11} {:>17}",
        "operation", "median ms", "beyond model ms"
    );
    for (name, p50, model) in rows {
        let beyond = model.map_or_else(|| "-".to_string(), |m| ms(p50.saturating_sub(m)));
        println!("{name:<42} {:>11} {:>17}", ms(p50), beyond);
    }
    println!(
        "first piece minus recall + compose: {} ms (target ≤ 1 ms beyond the model's first byte)",
        ms(median(first_piece).saturating_sub(context_p50))
    );
}
