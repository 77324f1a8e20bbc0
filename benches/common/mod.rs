//! What the engine benches share: seeded vectors and sentences, latency percentiles, recall.
#![allow(dead_code)]

use std::time::Duration;

use agent_mem::{Memory, SearchMode, SearchOptions};

/// MiniLM's dimension.
pub const DIM: usize = 384;

/// xorshift64*: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn gauss(&mut self) -> f32 {
        // Irwin–Hall approximation: good enough for test vectors.
        (0..6).map(|_| self.unit()).sum::<f32>() - 3.0
    }
}

pub fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

pub struct Corpus {
    centres: Vec<Vec<f32>>,
    rng: Rng,
}

impl Corpus {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let centres = (0..200)
            .map(|_| normalise((0..DIM).map(|_| rng.gauss()).collect()))
            .collect();
        Corpus { centres, rng }
    }
    pub fn clustered(&mut self) -> Vec<f32> {
        let c = (self.rng.next() % self.centres.len() as u64) as usize;
        let centre = self.centres[c].clone();
        normalise(centre.iter().map(|x| x + 0.06 * self.rng.gauss()).collect())
    }
    pub fn uniform(&mut self) -> Vec<f32> {
        normalise((0..DIM).map(|_| self.rng.gauss()).collect())
    }
}

pub const WORDS: &[&str] = &[
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

pub fn sentence(rng: &mut Rng, i: usize) -> String {
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

/// The store sizes given as `-- --sizes 10000,100000`, or `default` without the flag.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--sizes") {
        Some(pos) => args
            .get(pos + 1)
            .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
            .unwrap_or_default(),
        None => default.to_vec(),
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn latency(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:>8.3} ms  p95 {:>8.3} ms  p99 {:>8.3} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    )
}

pub fn peak_rss_mib() -> f64 {
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
pub fn recall_at_10(memory: &Memory, stored: &[(String, Vec<f32>)], queries: &[Vec<f32>]) -> f64 {
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
