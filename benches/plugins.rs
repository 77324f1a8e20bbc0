//! What plugins cost: calls per second of a trivial export (1, 2 and 100 threads), a cold
//! load (compile and first instance), a cache hit, and the latency one `on_add` and one
//! `after_search` hook add to an add and a search; prints a table.
//!
//! `cargo bench -p agent-mem-benches --features plugins --bench plugins` (`-- --calls N`, default
//! 20000). The store uses the hashing embedder so that the model does not drown the hooks'
//! cost; the Rust example plugins are measured too when `examples/plugins/build.sh` built them.

#[path = "../core/tests/all/support/wat.rs"]
mod wat;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::plugin::{Capability, PluginKind, PluginManifest, PluginSource};
use agent_mem::{HashingEmbedder, Memory, NewMemory, Scope, SearchMode, SearchOptions};
use wat::{module, one, Body};

fn store() -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn p95(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[(xs.len() * 95 / 100).min(xs.len() - 1)]
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn example(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-unknown-unknown/release")
        .join(format!("{name}.wasm"));
    path.is_file().then_some(path)
}

/// Calls per second of `echo` with `threads` callers sharing one store, `calls` in all.
fn throughput(memory: &Arc<Memory>, threads: usize, calls: usize) -> f64 {
    let per = calls / threads;
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let memory = memory.clone();
            std::thread::spawn(move || {
                for _ in 0..per {
                    let out = memory
                        .call_plugin("echo", "echo", b"{\"x\":1}", &Scope::global())
                        .unwrap();
                    assert_eq!(out.len(), 7);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    (per * threads) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let mut calls = 20_000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--calls") {
        calls = args[i + 1].parse().expect("--calls N");
    }
    let rows: &mut Vec<(String, String)> = &mut Vec::new();

    // ---- calls per second
    let memory = Arc::new(store());
    memory
        .plugins()
        .register(
            PluginSource::Bytes(one("echo", Body::Echo).into_bytes()),
            PluginManifest::new("echo").kind(PluginKind::Function),
        )
        .unwrap();
    throughput(&memory, 1, 2_000); // warm-up
    let mut single = Vec::new();
    for _ in 0..1_000 {
        let t = Instant::now();
        memory
            .call_plugin("echo", "echo", b"{\"x\":1}", &Scope::global())
            .unwrap();
        single.push(t.elapsed());
    }
    rows.push((
        "one call of a trivial export (echo, 7 bytes)".into(),
        format!(
            "median {} · p95 {}",
            fmt(median(single.clone())),
            fmt(p95(single))
        ),
    ));
    for threads in [1, 2, 100] {
        let total = if threads == 100 { calls / 2 } else { calls };
        let rate = throughput(&memory, threads, total);
        rows.push((
            format!("calls/s, {threads} thread(s) sharing one store"),
            format!("{:.0}", rate),
        ));
    }

    // ---- loads
    let cold = |bytes: &[u8], n: usize| {
        let mut times = Vec::new();
        for i in 0..n {
            let m = store();
            let t = Instant::now();
            m.plugins()
                .register(
                    PluginSource::Bytes(bytes.to_vec()),
                    PluginManifest::new(format!("p{i}")).kind(PluginKind::Function),
                )
                .unwrap();
            times.push(t.elapsed());
        }
        median(times)
    };
    let echo_wat = module(&[("echo", Body::Echo)]);
    rows.push((
        format!(
            "cold load: compile + first instance, WAT echo ({} B text)",
            echo_wat.len()
        ),
        fmt(cold(echo_wat.as_bytes(), 15)),
    ));
    if let Some(path) = example("pii_redactor") {
        let bytes = std::fs::read(&path).unwrap();
        rows.push((
            format!(
                "cold load: pii_redactor.wasm ({} KB, Rust)",
                bytes.len() / 1024
            ),
            fmt(cold(&bytes, 10)),
        ));
    }
    let mut hits = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        memory.plugins().load("echo").unwrap();
        hits.push(t.elapsed());
    }
    rows.push((
        "cache hit: load() of a compiled plugin (LRU hit, info included)".into(),
        fmt(median(hits)),
    ));

    // ---- hook latency on add and search
    let add_search = |m: &Memory,
                      label: &str,
                      rows: &mut Vec<(String, String)>,
                      base: Option<(Duration, Duration)>| {
        let mut adds = Vec::new();
        for i in 0..400 {
            let content =
                format!("memory number {i} about tea and coffee and email bob{i}@example.com");
            let t = Instant::now();
            m.add(NewMemory::new(content).user("u")).unwrap();
            adds.push(t.elapsed());
        }
        let options = SearchOptions::new()
            .mode(SearchMode::Keyword)
            .scope(Scope::user("u"))
            .limit(10);
        let mut searches = Vec::new();
        for i in 0..400 {
            let q = format!("tea number {}", i % 50);
            let t = Instant::now();
            let hits = m.search(&q, &options).unwrap();
            searches.push(t.elapsed());
            assert!(!hits.is_empty());
        }
        let (a, s) = (median(adds), median(searches));
        let extra = |x: Duration, b: Duration| {
            if x > b {
                format!(" (+{})", fmt(x - b))
            } else {
                " (+0)".to_string()
            }
        };
        let (ea, es) = match base {
            Some((ba, bs)) => (extra(a, ba), extra(s, bs)),
            None => (String::new(), String::new()),
        };
        rows.push((format!("add, {label}"), format!("{}{ea}", fmt(a))));
        rows.push((
            format!("keyword search (10 hits), {label}"),
            format!("{}{es}", fmt(s)),
        ));
        (a, s)
    };
    let plain = store();
    let base = add_search(&plain, "no plugin", rows, None);
    let hooked = store();
    hooked
        .plugins()
        .register(
            PluginSource::Bytes(
                module(&[("on_add", Body::Echo), ("after_search", Body::Echo)]).into_bytes(),
            ),
            PluginManifest::new("echo-hooks"),
        )
        .unwrap();
    add_search(
        &hooked,
        "WAT on_add + after_search (echo)",
        rows,
        Some(base),
    );
    if let (Some(pii), Some(boost)) = (example("pii_redactor"), example("keyword_boost")) {
        let rust = store();
        rust.plugins()
            .register(
                PluginSource::Path(pii),
                PluginManifest::new("pii").capability(Capability::Config),
            )
            .unwrap();
        rust.plugins()
            .register(
                PluginSource::Path(boost),
                PluginManifest::new("boost")
                    .capability(Capability::Config)
                    .config("keywords", "coffee"),
            )
            .unwrap();
        add_search(
            &rust,
            "Rust pii_redactor on_add + keyword_boost after_search",
            rows,
            Some(base),
        );
    } else {
        println!(
            "(Rust example plugins not built: examples/plugins/build.sh; their rows are left out)"
        );
    }

    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(10);
    println!("| {:width$} | result |", "measure");
    println!("|{}|---|", "-".repeat(width + 2));
    for (k, v) in rows.iter() {
        println!("| {k:width$} | {v} |");
    }
}
