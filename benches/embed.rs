//! The local embedding model's own speed and accuracy; prints a table.
//!
//! `cargo bench -p agent-mem-benches --bench embed` (`-- --rounds N` single-text rounds per
//! length, default 200; `-- --single` measures only single texts). Reports the latency of
//! embedding one text of about 8, 16 and 32 tokens (special tokens included), the
//! throughput of embedding 64 and 1,000 generated conversational turns in one call, and the
//! largest cosine deviation from the reference embeddings the tests pin (an independent
//! float64 implementation).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, LocalEmbedder};
use common::{percentile, Rng};

/// Texts of about 8, 16 and 32 tokens once tokenized with `[CLS]` and `[SEP]`.
const SINGLE: [(&str, &str); 3] = [
    ("~8 tokens", "Remind me to call mom."),
    (
        "~16 tokens",
        "I moved to Berlin last spring and I still love the food here.",
    ),
    (
        "~32 tokens",
        "My daughter starts school next week, so please remember that mornings are busy and \
         I can only take meetings after ten o'clock on weekdays, thanks.",
    ),
];

/// A conversational turn of varied length (roughly 8 to 45 tokens).
fn turn(rng: &mut Rng, i: usize) -> String {
    const NAMES: [&str; 8] = [
        "Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro",
    ];
    const THINGS: [&str; 12] = [
        "sushi",
        "the marathon",
        "my new laptop",
        "the budget review",
        "our trip to Tokyo",
        "the dentist appointment",
        "guitar lessons",
        "the garden",
        "a chess tournament",
        "the database migration",
        "yoga on Sundays",
        "peanut allergies",
    ];
    const TIMES: [&str; 6] = [
        "tomorrow",
        "next Friday",
        "last weekend",
        "in March",
        "every morning",
        "after the meeting",
    ];
    let mut pick = |list: &[&'static str]| list[(rng.next() % list.len() as u64) as usize];
    let (name, thing, other, time) = (pick(&NAMES), pick(&THINGS), pick(&THINGS), pick(&TIMES));
    match i % 6 {
        0 => format!("I really enjoyed {thing} {time}."),
        1 => format!("Can you remind me about {thing} {time}?"),
        2 => format!(
            "{name} told me that {thing} was moved to {time}, so I need to reschedule {other} \
             as well."
        ),
        3 => format!(
            "Honestly I'm not a big fan of {thing}, but {name} keeps asking me to join, and I \
             don't want to let them down {time}. What would you suggest I do about {other}?"
        ),
        4 => format!("Sure, I've noted that {name} prefers {thing} over {other}."),
        _ => format!(
            "Quick update: {thing} went well {time}, and {name} wants to plan {other} next. \
             Could you keep track of that for me?"
        ),
    }
}

/// The reference sentences and embeddings the tests pin against.
fn reference() -> (Vec<String>, Vec<Vec<f64>>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/minilm_reference.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the reference fixture"))
            .expect("the reference fixture is JSON");
    (
        serde_json::from_value(json["sentences"].clone()).expect("sentences"),
        serde_json::from_value(json["embeddings"].clone()).expect("embeddings"),
    )
}

/// 1 - cosine(a, b), in float64.
fn cosine_deviation(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> agent_mem::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|p| args.get(p + 1)?.parse().ok())
        .unwrap_or(200usize);
    let embedder = LocalEmbedder::new_default()?;
    embedder.load()?;

    println!("| measure | result |");
    println!("|---|---|");
    for (label, text) in SINGLE {
        // Warm up (allocator, thread pools, caches).
        for _ in 0..5 {
            embedder.embed(&[text])?;
        }
        let mut samples: Vec<Duration> = (0..rounds)
            .map(|_| {
                let started = Instant::now();
                embedder.embed(&[text]).map(|_| started.elapsed())
            })
            .collect::<agent_mem::Result<_>>()?;
        samples.sort();
        println!(
            "| one text, {label} | p50 {:.2} ms, p95 {:.2} ms |",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.95))
        );
    }

    if args.iter().any(|a| a == "--single") {
        return Ok(());
    }
    let mut rng = Rng(42);
    let turns: Vec<String> = (0..1000).map(|i| turn(&mut rng, i)).collect();
    for (size, repeats) in [(64usize, 15usize), (1000, 3)] {
        let refs: Vec<&str> = turns[..size].iter().map(String::as_str).collect();
        embedder.embed(&refs)?;
        let mut rates: Vec<f64> = (0..repeats)
            .map(|_| {
                let started = Instant::now();
                embedder
                    .embed(&refs)
                    .map(|_| size as f64 / started.elapsed().as_secs_f64())
            })
            .collect::<agent_mem::Result<_>>()?;
        rates.sort_by(f64::total_cmp);
        println!(
            "| batch of {size} turns | {:.0} turns/s (median of {repeats}) |",
            rates[repeats / 2]
        );
    }

    // Each reference sentence alone and all of them in one (padded) batch.
    let (sentences, expected) = reference();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let mut got = embedder.embed(&refs)?;
    for text in &refs {
        got.extend(embedder.embed(&[text])?);
    }
    let worst = got
        .iter()
        .zip(expected.iter().chain(&expected))
        .map(|(a, b)| cosine_deviation(a, b))
        .fold(0.0, f64::max);
    println!("| max cosine deviation from the reference | {worst:.2e} |");
    Ok(())
}
