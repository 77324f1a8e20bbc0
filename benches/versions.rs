//! What keeping every version costs: two stores of the same memories, one as added and one
//! where every memory was updated twice (three versions each, new text and vector each
//! time). Prints hybrid search now (both stores), hybrid and keyword search as of a moment
//! between the two rounds of updates, each over the whole store and in one conversation,
//! and the files' sizes.
//!
//! `cargo bench -p agent-mem-benches --bench versions` runs 10k memories;
//! `-- --sizes 10000,100000` picks sizes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use agent_mem::{Memory, MemoryUpdate, NewMemory, SearchMode, SearchOptions};
use chrono::{DateTime, Utc};
use common::{latency, sentence, Corpus, Rng, WORDS};

const BATCH: usize = 1000;
const SEARCHES: usize = 300;

fn open(path: &Path) -> agent_mem::Result<Memory> {
    Memory::builder().path(path).without_embedder().build()
}

/// The conversation (run) of the `j`-th memory: 100 users, runs of 100 memories.
fn conversation_of(j: usize) -> String {
    format!("r{}-{}", j % 100, j / 10_000)
}

/// Adds `n` memories in batches; their ids in order.
fn fill(memory: &Memory, n: usize, corpus: &mut Corpus) -> agent_mem::Result<Vec<String>> {
    let mut rng = Rng(7);
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let items: Vec<(NewMemory, Vec<f32>)> = (start..(start + BATCH).min(n))
            .map(|j| {
                let memory = NewMemory::new(sentence(&mut rng, j))
                    .user(format!("u{}", j % 100))
                    .run(conversation_of(j));
                (memory, corpus.clustered())
            })
            .collect();
        ids.extend(
            memory
                .add_batch_with_vectors(items)?
                .into_iter()
                .map(|o| o.id),
        );
    }
    Ok(ids)
}

/// Updates every memory once: new text, new vector; the rate.
fn update_all(
    memory: &Memory,
    ids: &[String],
    round: usize,
    corpus: &mut Corpus,
) -> agent_mem::Result<f64> {
    let mut rng = Rng(100 + round as u64);
    let started = Instant::now();
    for (j, id) in ids.iter().enumerate() {
        let text = format!("{} (revision {round})", sentence(&mut rng, j));
        memory.update_with_vector(id, MemoryUpdate::content(text), corpus.clustered())?;
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

/// Times `SEARCHES` searches of two corpus words (with a query vector) in `mode`.
fn time_searches(
    memory: &Memory,
    mode: SearchMode,
    scoped: bool,
    as_of: Option<DateTime<Utc>>,
    corpus: &mut Corpus,
) -> String {
    let mut rng = Rng(11);
    let samples: Vec<Duration> = (0..SEARCHES)
        .map(|i| {
            let word = |rng: &mut Rng| WORDS[(rng.next() % WORDS.len() as u64) as usize];
            let query = format!("{} {}", word(&mut rng), word(&mut rng));
            let vector = corpus.clustered();
            let mut options = SearchOptions::new().mode(mode).limit(10);
            options.as_of = as_of;
            if scoped {
                options.scope = agent_mem::Scope::user(format!("u{}", i % 100))
                    .with_run(conversation_of(i % 100));
            }
            let started = Instant::now();
            match mode {
                SearchMode::Keyword => memory.search(&query, &options),
                _ => memory.search_with_vector(&query, &vector, &options),
            }
            .expect("search");
            started.elapsed()
        })
        .collect();
    latency(samples)
}

/// The store's size on disk once closed (the database and the saved index).
fn size_mib(path: &Path) -> f64 {
    let parent = path.parent().expect("a directory");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let bytes: u64 = std::fs::read_dir(parent)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(name))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / (1024.0 * 1024.0)
}

fn bench_size(n: usize) -> agent_mem::Result<()> {
    let dir = tempfile::tempdir()?;
    let plain_path = dir.path().join("plain.db");
    let versioned_path = dir.path().join("versioned.db");
    println!("\n## {n} memories (versioned: 3 versions each)\n");
    println!("| measure | one version | three versions |");
    println!("|---|---|---|");

    let plain = open(&plain_path)?;
    fill(&plain, n, &mut Corpus::new(42))?;
    let versioned = open(&versioned_path)?;
    let ids = fill(&versioned, n, &mut Corpus::new(42))?;
    let mut updates = Corpus::new(43);
    let first = update_all(&versioned, &ids, 1, &mut updates)?;
    let between = Utc::now();
    let second = update_all(&versioned, &ids, 2, &mut updates)?;
    println!("| update with a vector (one at a time) | — | {first:.0}/s, then {second:.0}/s |");

    for (label, mode, scoped) in [
        ("hybrid search now, whole store", SearchMode::Hybrid, false),
        (
            "hybrid search now, one conversation",
            SearchMode::Hybrid,
            true,
        ),
    ] {
        println!(
            "| {label} | {} | {} |",
            time_searches(&plain, mode, scoped, None, &mut Corpus::new(5)),
            time_searches(&versioned, mode, scoped, None, &mut Corpus::new(5)),
        );
    }
    // The first as-of vector search builds the index of past versions (saved on close).
    let started = Instant::now();
    let mut first = SearchOptions::new().mode(SearchMode::Vector).limit(10);
    first.as_of = Some(between);
    versioned.search_with_vector("", &Corpus::new(9).clustered(), &first)?;
    println!(
        "| first search as of a past moment (builds the index of past versions) | — | {:.2} s |",
        started.elapsed().as_secs_f64()
    );
    for (label, mode, scoped) in [
        ("vector search now, whole store", SearchMode::Vector, false),
        (
            "vector search as of a past moment, whole store",
            SearchMode::Vector,
            false,
        ),
        (
            "hybrid search as of a past moment, whole store",
            SearchMode::Hybrid,
            false,
        ),
        (
            "hybrid search as of a past moment, one conversation",
            SearchMode::Hybrid,
            true,
        ),
        (
            "keyword search as of a past moment, whole store",
            SearchMode::Keyword,
            false,
        ),
        (
            "keyword search now, whole store",
            SearchMode::Keyword,
            false,
        ),
    ] {
        let at = label.contains("as of").then_some(between);
        println!(
            "| {label} | — | {} |",
            time_searches(&versioned, mode, scoped, at, &mut Corpus::new(5)),
        );
    }
    plain.close()?;
    versioned.close()?;
    let mib = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    let (plain_db, versioned_db) = (mib(&plain_path), mib(&versioned_path));
    // Two past versions per memory, each with a 384-d vector in half precision (and a byte
    // saying so) in the database.
    let past_vectors = (2 * n * (1 + 384 * 2)) as f64 / 1048576.0;
    println!(
        "| database file | {plain_db:.1} MiB | {versioned_db:.1} MiB: {:.2}x the one-version \
         store, {:.2}x the same without its past versions' vectors |",
        versioned_db / plain_db,
        versioned_db / (versioned_db - past_vectors)
    );
    println!(
        "| database and saved indexes | {:.1} MiB | {:.1} MiB |",
        size_mib(&plain_path),
        size_mib(&versioned_path)
    );
    Ok(())
}

fn main() -> agent_mem::Result<()> {
    for n in common::sizes(&[10_000]) {
        bench_size(n)?;
    }
    Ok(())
}
