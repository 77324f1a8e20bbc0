//! Retrieval quality: recall@5, recall@10, MRR@10 and search latency per search mode, with
//! the real local model.
//!
//! `cargo bench -p agent-mem --bench retrieval` runs the quick synthetic set
//! (`benches/data/retrieval_eval.json`, 325 short memories); `-- --tune` also searches
//! fusion weights; `-- --by-kind` breaks the hybrid row down by query kind.
//!
//! `cargo bench -p agent-mem --bench retrieval -- --dataset NAME PATH` runs a public
//! conversational dev set from a checkout of its repository (see `devset.rs`): `realtalk`
//! (danny911kr/REALTALK), `beam` (mohammadtavakoli78/BEAM), `memdaily` (nuster1128/MemSim),
//! `realmem` (zhiyuan5986/RealMemBench). Options: `--max-conversations N`,
//! `--by-category`, `--variants` (the fusion variants beside the modes), `--dump FILE`
//! (the corpus as JSON),
//! `--cache DIR` (embeddings are computed once and kept there; default
//! `target/retrieval-cache`).

mod datasets;
mod devset;

use std::collections::HashMap;

use agent_mem::{FusionMethod, FusionWeights, Memory, NewMemory, SearchMode, SearchOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Data {
    memories: Vec<Item>,
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    user_id: String,
    content: String,
}

#[derive(Deserialize)]
struct Query {
    user_id: String,
    query: String,
    relevant: Vec<String>,
    kind: String,
}

#[derive(Default, Clone, Copy)]
struct Scores {
    recall5: f64,
    recall10: f64,
    mrr10: f64,
    n: usize,
}

impl Scores {
    fn add(&mut self, ranked: &[String], relevant: &[String]) {
        let hits_in = |k: usize| {
            relevant
                .iter()
                .filter(|r| ranked.iter().take(k).any(|x| x == *r))
                .count() as f64
                / relevant.len() as f64
        };
        self.recall5 += hits_in(5);
        self.recall10 += hits_in(10);
        if let Some(pos) = ranked.iter().take(10).position(|x| relevant.contains(x)) {
            self.mrr10 += 1.0 / (pos as f64 + 1.0);
        }
        self.n += 1;
    }

    fn row(&self, label: &str) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "| {label:<34} | {:>9.3} | {:>10.3} | {:>7.3} | {:>4} |",
            self.recall5 / n,
            self.recall10 / n,
            self.mrr10 / n,
            self.n
        )
    }
}

fn evaluate(
    memory: &Memory,
    data: &Data,
    ids: &HashMap<String, String>,
    options: &SearchOptions,
) -> agent_mem::Result<(Scores, HashMap<String, Scores>)> {
    let mut all = Scores::default();
    let mut by_kind: HashMap<String, Scores> = HashMap::new();
    for q in &data.queries {
        let opts = options.clone().user(q.user_id.clone()).limit(10);
        let hits = memory.search(&q.query, &opts)?;
        let ranked: Vec<String> = hits
            .iter()
            .filter_map(|h| ids.get(&h.memory.id).cloned())
            .collect();
        all.add(&ranked, &q.relevant);
        by_kind
            .entry(q.kind.clone())
            .or_default()
            .add(&ranked, &q.relevant);
    }
    Ok((all, by_kind))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--dataset") {
        return devset::run(&args);
    }
    let tune = args.iter().any(|a| a == "--tune");
    let by_kind = args.iter().any(|a| a == "--by-kind");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/retrieval_eval.json"
    );
    let data: Data = serde_json::from_str(&std::fs::read_to_string(path)?)?;

    let memory = Memory::open_in_memory()?;
    let started = std::time::Instant::now();
    let outcomes = memory.add_batch(
        data.memories
            .iter()
            .map(|m| NewMemory::new(m.content.clone()).user(m.user_id.clone()))
            .collect(),
    )?;
    eprintln!(
        "loaded {} memories, {} queries in {:.1?}",
        data.memories.len(),
        data.queries.len(),
        started.elapsed()
    );
    let ids: HashMap<String, String> = outcomes
        .iter()
        .zip(&data.memories)
        .map(|(o, m)| (o.id.clone(), m.id.clone()))
        .collect();

    let defaults = memory.search_options();
    let fuzzy_weights = FusionWeights {
        fuzzy: 0.5,
        ..defaults.weights
    };
    let modes: Vec<(&str, SearchOptions)> = vec![
        ("vector", defaults.clone().mode(SearchMode::Vector)),
        ("keyword (BM25)", defaults.clone().mode(SearchMode::Keyword)),
        ("fuzzy", defaults.clone().mode(SearchMode::Fuzzy)),
        ("hybrid (default)", defaults.clone()),
        (
            "hybrid + fuzzy 0.5",
            defaults.clone().weights(fuzzy_weights),
        ),
    ];
    println!("| mode                               | recall@5  | recall@10  | MRR@10  | n    |");
    println!("|------------------------------------|-----------|------------|---------|------|");
    for (label, options) in &modes {
        let (scores, kinds) = evaluate(&memory, &data, &ids, options)?;
        println!("{}", scores.row(label));
        let broken_down = ["vector", "keyword (BM25)", "hybrid (default)"].contains(label);
        if by_kind && broken_down {
            let mut kinds: Vec<_> = kinds.into_iter().collect();
            kinds.sort_by(|a, b| a.0.cmp(&b.0));
            for (kind, s) in kinds {
                println!("{}", s.row(&format!("  {label}: {kind}")));
            }
        }
    }

    if tune {
        println!("\nfusion grid (hybrid):");
        println!(
            "| weights (vector/keyword/fuzzy, k)  | recall@5  | recall@10  | MRR@10  | n    |"
        );
        println!(
            "|------------------------------------|-----------|------------|---------|------|"
        );
        for k in [10.0f32, 30.0, 60.0] {
            for keyword in [0.5f32, 0.75, 1.0, 1.5] {
                for fuzzy in [0.0f32, 0.25, 0.5] {
                    let weights = FusionWeights {
                        vector: 1.0,
                        keyword,
                        fuzzy,
                        rrf_k: k,
                        method: FusionMethod::Rrf,
                        ..defaults.weights
                    };
                    let (s, _) =
                        evaluate(&memory, &data, &ids, &defaults.clone().weights(weights))?;
                    println!("{}", s.row(&format!("1/{keyword}/{fuzzy}, k={k}")));
                }
            }
        }
    }
    Ok(())
}
