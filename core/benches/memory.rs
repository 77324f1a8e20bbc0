//! Throughput and latency of the engine at several store sizes; prints a table.
//!
//! `cargo bench -p agent-mem --bench memory` runs 10k and 100k memories;
//! `-- --large` adds 1M; `-- --sizes 5000,20000` picks sizes; `-- --no-model` skips the
//! parts that need the local embedding model; `-- --expansion-add N`, `--expansion-search N`
//! and `--connectivity N` change the HNSW parameters from their defaults.
//!
//! Vectors are 384-d (MiniLM's size), drawn around 200 cluster centres as real sentence
//! embeddings are; recall is also reported on uniform random vectors (the hard case) and
//! on real MiniLM embeddings of generated sentences.

use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, LocalEmbedder};
use agent_mem::{Memory, NewMemory, SearchMode, SearchOptions, VectorIndexOptions};

const DIM: usize = 384;
const BATCH: usize = 1000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn gauss(&mut self) -> f32 {
        // Irwin–Hall approximation: good enough for test vectors.
        (0..6).map(|_| self.unit()).sum::<f32>() - 3.0
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

struct Corpus {
    centres: Vec<Vec<f32>>,
    rng: Rng,
}

impl Corpus {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let centres = (0..200)
            .map(|_| normalise((0..DIM).map(|_| rng.gauss()).collect()))
            .collect();
        Corpus { centres, rng }
    }
    fn clustered(&mut self) -> Vec<f32> {
        let c = (self.rng.next() % self.centres.len() as u64) as usize;
        let centre = self.centres[c].clone();
        normalise(centre.iter().map(|x| x + 0.06 * self.rng.gauss()).collect())
    }
    fn uniform(&mut self) -> Vec<f32> {
        normalise((0..DIM).map(|_| self.rng.gauss()).collect())
    }
}

const WORDS: &[&str] = &[
    "coffee",
    "tea",
    "berlin",
    "paris",
    "marathon",
    "python",
    "rust",
    "allergy",
    "peanuts",
    "daughter",
    "school",
    "flight",
    "hotel",
    "meeting",
    "project",
    "deadline",
    "guitar",
    "piano",
    "hiking",
    "sushi",
    "ramen",
    "doctor",
    "dentist",
    "birthday",
    "anniversary",
    "budget",
    "loan",
    "garden",
    "tomatoes",
    "cat",
    "dog",
    "vacation",
    "tokyo",
    "london",
    "chess",
    "novel",
    "movie",
    "concert",
    "yoga",
    "swimming",
    "laptop",
    "phone",
    "keyboard",
    "editor",
    "vim",
    "database",
];

fn sentence(rng: &mut Rng, i: usize) -> String {
    let pick = |rng: &mut Rng| WORDS[(rng.next() % WORDS.len() as u64) as usize];
    format!(
        "User {} mentioned {} and {} near the {} on day {}",
        i % 97,
        pick(rng),
        pick(rng),
        pick(rng),
        i
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latency(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:>8.3} ms  p95 {:>8.3} ms  p99 {:>8.3} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    )
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Fraction of the exact top-10 (by cosine) that the vector search returns.
fn recall_at_10(memory: &Memory, stored: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> f64 {
    let opts = SearchOptions::new().mode(SearchMode::Vector).limit(10);
    let mut found = 0usize;
    for q in queries {
        let mut exact: Vec<(f32, &str)> = stored
            .iter()
            .map(|(id, v)| {
                (
                    v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(),
                    id.as_str(),
                )
            })
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<&str> = exact.iter().take(10).map(|(_, id)| *id).collect();
        let hits = memory.search_with_vector("", q, &opts).expect("search");
        found += hits
            .iter()
            .filter(|h| truth.contains(&h.memory.id.as_str()))
            .count();
    }
    found as f64 / (queries.len() * 10) as f64
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
                    NewMemory::new(sentence(&mut rng, j)).user(format!("u{}", j % 100)),
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

    // BM25.
    let kw_opts = SearchOptions::new().mode(SearchMode::Keyword).limit(10);
    let samples: Vec<Duration> = (0..300)
        .map(|_| {
            let q = format!(
                "{} {}",
                WORDS[(rng.next() % WORDS.len() as u64) as usize],
                WORDS[(rng.next() % WORDS.len() as u64) as usize]
            );
            let t = Instant::now();
            memory.search(&q, &kw_opts).expect("search");
            t.elapsed()
        })
        .collect();
    println!("| BM25 keyword search, k=10 | {} |", latency(samples));

    // Recall of the HNSW index against exact search.
    let stored_subset = &stored[..];
    if stored.len() == n {
        let r = recall_at_10(&memory, stored_subset, &queries[..100]);
        println!("| recall@10 vs exact (clustered vectors) | {r:.3} |");
    }
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
