//! Throughput and latency of the engine at several store sizes; prints a table.
//!
//! `cargo bench -p agent-mem-benches --bench memory` runs 10k and 100k memories;
//! `-- --large` adds 1M; `-- --sizes 5000,20000` picks sizes; `-- --no-model` skips the
//! parts that need the local embedding model; `-- --expansion-add N`, `--expansion-search N`
//! and `--connectivity N` change the HNSW parameters from their defaults.
//!
//! Vectors are 384-d (MiniLM's size), drawn around 200 cluster centres as real sentence
//! embeddings are; recall is also reported on uniform random vectors (the hard case) and
//! on real MiniLM embeddings of generated sentences. The memories belong to 100 users, each
//! user's in conversations (runs) of 100: searches are timed over the whole store and in
//! one conversation. Adds are timed in batches of 1,000 and one at a time.

mod common;

use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, LocalEmbedder};
use agent_mem::{Memory, NewMemory, Scope, SearchMode, SearchOptions, VectorIndexOptions};
use common::{latency, normalise, peak_rss_mib, recall_at_10, sentence, Corpus, Rng, WORDS};

const BATCH: usize = 1000;

/// The conversation (run) of the `j`-th memory: each of the 100 users has runs of 100
/// memories.
fn conversation_of(j: usize) -> String {
    format!("r{}-{}", j % 100, j / 10_000)
}

/// A keyword query of two words of the corpus.
fn two_words(rng: &mut Rng) -> String {
    format!(
        "{} {}",
        WORDS[(rng.next() % WORDS.len() as u64) as usize],
        WORDS[(rng.next() % WORDS.len() as u64) as usize]
    )
}

fn bench_size(
    n: usize,
    with_model: bool,
    embedder: Option<&LocalEmbedder>,
    hnsw: VectorIndexOptions,
) -> agent_mem::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let mut corpus = Corpus::new(42 + n as u64);
    let mut rng = Rng(7);
    println!("\n## {n} memories");

    // The store file, opened without an embedder (vectors are given).
    let open_store = || {
        Memory::builder()
            .path(&path)
            .without_embedder()
            .index_options(hnsw)
            .build()
    };

    // Bulk add with vectors.
    let memory = open_store()?;
    let mut stored: Vec<(String, Vec<f32>)> = Vec::new();
    let keep_for_recall = if n <= 100_000 { n } else { 0 };
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let items: Vec<(NewMemory, Vec<f32>)> = (i..(i + BATCH).min(n))
            .map(|j| {
                let v = corpus.clustered();
                (
                    NewMemory::new(sentence(&mut rng, j))
                        .user(format!("u{}", j % 100))
                        .run(conversation_of(j)),
                    v,
                )
            })
            .collect();
        let vectors: Vec<Vec<f32>> = items.iter().map(|(_, v)| v.clone()).collect();
        let outcomes = memory.add_batch_with_vectors(items)?;
        if stored.len() < keep_for_recall {
            stored.extend(outcomes.into_iter().map(|o| o.id).zip(vectors));
        }
        i += BATCH;
    }
    let add_secs = started.elapsed().as_secs_f64();
    println!(
        "| bulk add with vectors (batches of {BATCH}) | {:>10.0} memories/s | {:.1} s |",
        n as f64 / add_secs,
        add_secs
    );

    // Vector search latency with a given query vector.
    let queries: Vec<Vec<f32>> = (0..500).map(|_| corpus.clustered()).collect();
    let opts = SearchOptions::new().mode(SearchMode::Vector).limit(10);
    let samples: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            memory.search_with_vector("", q, &opts).expect("search");
            t.elapsed()
        })
        .collect();
    println!("| vector search, k=10 | {} |", latency(samples));
    let user_opts = SearchOptions::new()
        .mode(SearchMode::Vector)
        .limit(10)
        .user("u3");
    let samples: Vec<Duration> = queries
        .iter()
        .take(200)
        .map(|q| {
            let t = Instant::now();
            memory
                .search_with_vector("", q, &user_opts)
                .expect("search");
            t.elapsed()
        })
        .collect();
    println!(
        "| vector search, k=10, filter user (1% of store) | {} |",
        latency(samples)
    );

    // Keyword and hybrid search over the whole store, then in one conversation (a user's run
    // of 100 memories), whose cost should follow the conversation's size, not the store's.
    // Only hybrid search is given the query vector: keyword hits would otherwise also have
    // their similarity computed.
    for (within, scoped) in [("", false), (", one conversation (100 memories)", true)] {
        for (label, mode) in [
            ("BM25 keyword search, k=10", SearchMode::Keyword),
            (
                "hybrid search, k=10, query vector given",
                SearchMode::Hybrid,
            ),
        ] {
            let samples: Vec<Duration> = (0..300)
                .map(|i| {
                    let q = two_words(&mut rng);
                    let mut opts = SearchOptions::new().mode(mode).limit(10);
                    if scoped {
                        let j = (rng.next() % n as u64) as usize;
                        opts = opts.scope(Scope {
                            user_id: Some(format!("u{}", j % 100)),
                            run_id: Some(conversation_of(j)),
                            ..Scope::default()
                        });
                    }
                    let t = Instant::now();
                    match mode {
                        SearchMode::Hybrid => {
                            memory.search_with_vector(&q, &queries[i % queries.len()], &opts)
                        }
                        _ => memory.search(&q, &opts),
                    }
                    .expect("search");
                    t.elapsed()
                })
                .collect();
            println!("| {label}{within} | {} |", latency(samples));
        }
    }

    // Recall of the HNSW index against exact search.
    let stored_subset = &stored[..];
    if stored.len() == n {
        let r = recall_at_10(&memory, stored_subset, &queries[..100]);
        println!("| recall@10 vs exact (clustered vectors) | {r:.3} |");
    }

    // Adding one memory at a time (one transaction each), after the searches so that
    // they ran on the store as loaded.
    const SINGLE_ADDS: usize = 1000;
    let mut samples = Vec::with_capacity(SINGLE_ADDS);
    let started = Instant::now();
    for j in n..n + SINGLE_ADDS {
        let item = NewMemory::new(sentence(&mut rng, j))
            .user(format!("u{}", j % 100))
            .run(conversation_of(j));
        let t = Instant::now();
        memory.add_with_vector(item, corpus.clustered())?;
        samples.push(t.elapsed());
    }
    println!(
        "| add one at a time with a vector ({SINGLE_ADDS}) | {:>10.0} memories/s | {} |",
        SINGLE_ADDS as f64 / started.elapsed().as_secs_f64(),
        latency(samples)
    );
    memory.close()?;
    let index_bytes = std::fs::metadata(format!("{}.usearch", path.display()))
        .map(|m| m.len())
        .unwrap_or(0);
    let db_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "| files | store {:.1} MiB, index {:.1} MiB |",
        db_bytes as f64 / 1048576.0,
        index_bytes as f64 / 1048576.0
    );

    // Open time: with the saved index, then rebuilding it from SQLite.
    let t = Instant::now();
    let memory = open_store()?;
    let open_saved = t.elapsed();
    drop(memory);
    std::fs::remove_file(format!("{}.usearch", path.display()))?;
    let t = Instant::now();
    let memory = open_store()?;
    let open_rebuild = t.elapsed();
    println!(
        "| open | {:.1} ms with saved index, {:.1} ms rebuilding it |",
        open_saved.as_secs_f64() * 1e3,
        open_rebuild.as_secs_f64() * 1e3
    );
    drop(memory);

    // Uniform random vectors: the hard case for HNSW.
    if n <= 100_000 {
        let memory = Memory::builder()
            .without_embedder()
            .index_options(hnsw)
            .build()?;
        let mut uniform: Vec<(String, Vec<f32>)> = Vec::new();
        let m = n.min(20_000);
        for start in (0..m).step_by(BATCH) {
            let items: Vec<(NewMemory, Vec<f32>)> = (start..(start + BATCH).min(m))
                .map(|j| (NewMemory::new(format!("u {j}")), corpus.uniform()))
                .collect();
            let vs: Vec<Vec<f32>> = items.iter().map(|(_, v)| v.clone()).collect();
            let out = memory.add_batch_with_vectors(items)?;
            uniform.extend(out.into_iter().map(|o| o.id).zip(vs));
        }
        let qs: Vec<Vec<f32>> = (0..100).map(|_| corpus.uniform()).collect();
        println!(
            "| recall@10 vs exact (uniform random, {m}) | {:.3} |",
            recall_at_10(&memory, &uniform, &qs)
        );
    }

    if with_model && n <= 10_000 {
        let embedder = embedder.expect("model");
        let texts: Vec<String> = (0..400).map(|j| sentence(&mut rng, n + j)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let t = Instant::now();
        for chunk in refs.chunks(64) {
            embedder.embed(chunk)?;
        }
        let raw = texts.len() as f64 / t.elapsed().as_secs_f64();
        let memory = Memory::builder()
            .path(dir.path().join("model.db"))
            .build()?;
        let texts2: Vec<String> = (0..400).map(|j| sentence(&mut rng, 2 * n + j)).collect();
        let t = Instant::now();
        memory.add_batch(
            texts2
                .iter()
                .map(|s| NewMemory::new(s.clone()).user("u"))
                .collect(),
        )?;
        let with_store = texts2.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "| add with the local embedder | {with_store:.0} memories/s (embedder alone {raw:.0}/s, ratio {:.2}) |",
            with_store / raw
        );
        let hybrid = SearchOptions::new().limit(10);
        let samples: Vec<Duration> = (0..100)
            .map(|_| {
                let q = format!(
                    "who mentioned {}",
                    WORDS[(rng.next() % WORDS.len() as u64) as usize]
                );
                let t = Instant::now();
                memory.search(&q, &hybrid).expect("search");
                t.elapsed()
            })
            .collect();
        println!(
            "| hybrid search incl. query embedding (400 memories) | {} |",
            latency(samples)
        );

        // Recall on real MiniLM embeddings.
        let sentences: Vec<String> = (0..3000).map(|j| sentence(&mut rng, 10 * n + j)).collect();
        let mut real: Vec<(String, Vec<f32>)> = Vec::new();
        let mem = Memory::builder()
            .without_embedder()
            .index_options(hnsw)
            .build()?;
        for chunk in sentences.chunks(64) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let vs = embedder.embed(&refs)?;
            let items: Vec<(NewMemory, Vec<f32>)> = chunk
                .iter()
                .cloned()
                .map(NewMemory::new)
                .zip(vs.iter().cloned())
                .collect();
            let out = mem.add_batch_with_vectors(items)?;
            real.extend(out.into_iter().map(|o| o.id).zip(vs));
        }
        let qs: Vec<Vec<f32>> = real
            .iter()
            .step_by(30)
            .map(|(_, v)| normalise(v.iter().map(|x| x + 0.02 * rng.gauss()).collect()))
            .collect();
        println!(
            "| recall@10 vs exact (real MiniLM embeddings, 3000) | {:.3} |",
            recall_at_10(&mem, &real, &qs)
        );
    }
    println!("| peak RSS so far | {:.0} MiB |", peak_rss_mib());
    Ok(())
}

fn main() -> agent_mem::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut sizes = vec![10_000usize, 100_000];
    if args.iter().any(|a| a == "--large") {
        sizes.push(1_000_000);
    }
    if let Some(pos) = args.iter().position(|a| a == "--sizes") {
        if let Some(list) = args.get(pos + 1) {
            sizes = list.split(',').filter_map(|s| s.parse().ok()).collect();
        }
    }
    let with_model = !args.iter().any(|a| a == "--no-model");
    let flag = |name: &str| -> Option<usize> {
        let pos = args.iter().position(|a| a == name)?;
        args.get(pos + 1)?.parse().ok()
    };
    let mut hnsw = VectorIndexOptions::default();
    if let Some(v) = flag("--expansion-add") {
        hnsw.expansion_add = v;
    }
    if let Some(v) = flag("--expansion-search") {
        hnsw.expansion_search = v;
    }
    if let Some(v) = flag("--connectivity") {
        hnsw.connectivity = v;
    }
    let embedder = if with_model {
        let e = LocalEmbedder::new_default()?;
        e.load()?;
        Some(e)
    } else {
        None
    };
    println!(
        "agent_mem {} bench: {} cores, HNSW M={} ef_add={} ef_search={}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        hnsw.connectivity,
        hnsw.expansion_add,
        hnsw.expansion_search
    );
    for n in sizes {
        bench_size(n, with_model, embedder.as_ref(), hnsw)?;
    }
    Ok(())
}
