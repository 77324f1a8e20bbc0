//! The two backends side by side: a SQLite file and a PostgreSQL (+pgvector) store, at
//! 10k and 100k memories, then the aggregate throughput of 1, 2 and 4 client processes
//! sharing one store. Prints tables.
//!
//! ```text
//! bash tests/postgres.sh run -- cargo bench -p agent-mem-benches --features postgres --bench backends
//! ```
//! needs a server in `AGENTMEM_TEST_PG_URL` (the script starts one); `-- --sizes 5000,20000`
//! picks sizes, `-- --seconds N` the length of each throughput run (default 5).
//! Vectors are given (384-d, clustered like sentence embeddings), so the model is not timed.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_mem::{Memory, NewMemory, SearchMode, SearchOptions};
use common::{latency, recall_at_10, sentence, Corpus, Rng, WORDS};

const BATCH: usize = 1000;
/// Environment of a throughput child: the store, the workload and how long to run.
const CHILD_ENV: &str = "AGENTMEM_BENCH_CHILD";

fn open(location: &str) -> agent_mem::Result<Memory> {
    Memory::builder().path(location).without_embedder().build()
}

/// A fresh, empty PostgreSQL schema on the server, as a store URL.
fn fresh_schema(server: &str, name: &str) -> String {
    let mut client = postgres::Client::connect(server, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .expect("create schema");
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-csearch_path%3D{name}%2Cpublic")
}

fn timed<T>(samples: usize, mut f: impl FnMut(usize) -> T) -> Vec<Duration> {
    (0..samples)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

/// Fills a store with `n` memories and times the operations a user notices.
fn bench_store(label: &str, location: &str, n: usize) -> agent_mem::Result<()> {
    let memory = open(location)?;
    let mut corpus = Corpus::new(42 + n as u64);
    let mut rng = Rng(7);
    let mut stored: Vec<(String, Vec<f32>)> = Vec::with_capacity(n);
    let started = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let items: Vec<(NewMemory, Vec<f32>)> = (start..(start + BATCH).min(n))
            .map(|j| {
                (
                    NewMemory::new(sentence(&mut rng, j)).user(format!("u{}", j % 100)),
                    corpus.clustered(),
                )
            })
            .collect();
        let vectors: Vec<Vec<f32>> = items.iter().map(|(_, v)| v.clone()).collect();
        let outcomes = memory.add_batch_with_vectors(items)?;
        stored.extend(outcomes.into_iter().map(|o| o.id).zip(vectors));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| {label} | bulk add with vectors (batches of {BATCH}) | {:.0} memories/s ({secs:.1} s) |",
        n as f64 / secs
    );
    let single = timed(200, |i| {
        memory
            .add_with_vector(
                NewMemory::new(format!("single add {i} {}", sentence(&mut rng, n + i))).user("u1"),
                corpus.clustered(),
            )
            .expect("add")
    });
    println!("| {label} | add one memory | {} |", latency(single));
    let ids: Vec<&str> = stored
        .iter()
        .step_by(n / 200 + 1)
        .map(|(id, _)| id.as_str())
        .collect();
    let gets = timed(ids.len(), |i| memory.get(ids[i]).expect("get"));
    println!("| {label} | get by id | {} |", latency(gets));
    let queries: Vec<Vec<f32>> = (0..300).map(|_| corpus.clustered()).collect();
    let vector = SearchOptions::new().mode(SearchMode::Vector).limit(10);
    let samples = timed(queries.len(), |i| {
        memory
            .search_with_vector("", &queries[i], &vector)
            .expect("search")
    });
    println!("| {label} | vector search, k=10 | {} |", latency(samples));
    let filtered = vector.clone().user("u3");
    let samples = timed(200, |i| {
        memory
            .search_with_vector("", &queries[i], &filtered)
            .expect("search")
    });
    println!(
        "| {label} | vector search, k=10, one user (1% of the store) | {} |",
        latency(samples)
    );
    let keyword = SearchOptions::new().mode(SearchMode::Keyword).limit(10);
    let texts: Vec<String> = (0..300)
        .map(|_| {
            let mut word = || WORDS[(rng.next() % WORDS.len() as u64) as usize];
            format!("{} {}", word(), word())
        })
        .collect();
    let samples = timed(texts.len(), |i| {
        memory.search(&texts[i], &keyword).expect("search")
    });
    println!(
        "| {label} | BM25 keyword search, k=10 | {} |",
        latency(samples)
    );
    let hybrid = SearchOptions::new().limit(10);
    let samples = timed(200, |i| {
        memory
            .search_with_vector(&texts[i], &queries[i], &hybrid)
            .expect("search")
    });
    println!(
        "| {label} | hybrid (vector + BM25, RRF), k=10 | {} |",
        latency(samples)
    );
    println!(
        "| {label} | recall@10 vs exact | {:.3} |",
        recall_at_10(&memory, &stored, &queries[..100])
    );
    Ok(())
}

/// One throughput client: runs its workload on the store for the given time and prints
/// `DONE <operations>`.
fn child(spec: &str) -> agent_mem::Result<()> {
    let mut parts = spec.splitn(4, '|');
    let (workload, id, seconds, location) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(5.0),
        parts.next().unwrap_or_default(),
    );
    let memory = open(location)?;
    let mut corpus = Corpus::new(id.len() as u64 * 7919 + 3);
    let mut rng = Rng(id.bytes().map(u64::from).sum::<u64>() + 11);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let search = SearchOptions::new().limit(10);
    let mut done = 0u64;
    while Instant::now() < deadline {
        match workload {
            "add" => {
                memory.add_with_vector(
                    NewMemory::new(format!("client {id} op {done}: {}", sentence(&mut rng, 0)))
                        .user(format!("u{}", done % 100)),
                    corpus.clustered(),
                )?;
            }
            _ => {
                let word = WORDS[(rng.next() % WORDS.len() as u64) as usize];
                memory.search_with_vector(word, &corpus.clustered(), &search)?;
            }
        }
        done += 1;
    }
    println!("DONE {done}");
    Ok(())
}

/// Aggregate operations per second of `clients` processes running `workload` at once.
fn throughput(location: &str, workload: &str, clients: usize, seconds: f64) -> f64 {
    let exe = std::env::current_exe().expect("bench binary");
    let children: Vec<_> = (0..clients)
        .map(|c| {
            Command::new(&exe)
                .env(CHILD_ENV, format!("{workload}|c{c}|{seconds}|{location}"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a client")
        })
        .collect();
    let total: u64 = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("client");
            assert!(out.status.success(), "a client failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("DONE ")?.parse::<u64>().ok())
                .expect("DONE line")
        })
        .sum();
    total as f64 / seconds
}

fn main() -> agent_mem::Result<()> {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| -> Option<&String> {
        let pos = args.iter().position(|a| a == name)?;
        args.get(pos + 1)
    };
    let sizes: Vec<usize> = flag("--sizes").map_or(vec![10_000, 100_000], |list| {
        list.split(',').filter_map(|s| s.parse().ok()).collect()
    });
    let seconds: f64 = flag("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let Ok(server) = std::env::var("AGENTMEM_TEST_PG_URL") else {
        eprintln!("AGENTMEM_TEST_PG_URL is not set: run through tests/postgres.sh (see the top of this file)");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir()?;
    println!(
        "agent_mem {} backends bench: {} cores; vectors given (384-d), so no model time",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    for &n in &sizes {
        println!("\n## {n} memories\n\n| backend | measure | result |\n|---|---|---|");
        let file = dir.path().join(format!("bench_{n}.db"));
        bench_store("SQLite", &file.display().to_string(), n)?;
        bench_store(
            "PostgreSQL",
            &fresh_schema(&server, &format!("bench_{n}")),
            n,
        )?;
    }
    println!(
        "\n## Aggregate throughput of client processes on one store ({seconds} s each)\n\n\
         | backend | workload | 1 process | 2 processes | 4 processes |\n|---|---|---|---|---|"
    );
    for (label, location) in [
        ("SQLite", dir.path().join("shared.db").display().to_string()),
        ("PostgreSQL", fresh_schema(&server, "bench_shared")),
    ] {
        // A non-empty store, so that searches do real work.
        let memory = open(&location)?;
        let mut corpus = Corpus::new(5);
        let mut rng = Rng(5);
        for start in (0..10_000).step_by(BATCH) {
            memory.add_batch_with_vectors(
                (start..start + BATCH)
                    .map(|j| (NewMemory::new(sentence(&mut rng, j)), corpus.clustered()))
                    .collect(),
            )?;
        }
        memory.close()?;
        for workload in ["add", "hybrid search"] {
            let rates: Vec<String> = [1, 2, 4]
                .iter()
                .map(|&c| format!("{:.0}/s", throughput(&location, workload, c, seconds)))
                .collect();
            println!("| {label} | {workload} | {} |", rates.join(" | "));
        }
    }
    Ok(())
}
