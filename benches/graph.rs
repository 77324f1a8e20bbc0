//! The knowledge graph at size: a store file holding N entities and 5·N relations spread
//! over 100 user scopes (N/100 entities each; every relation joins two random entities of
//! one scope, under a few predicates, `lives_in` and `works_at` functional so some close
//! older ones). Prints the fill rate (one `add_relation` at a time), then p50/p95/p99 of
//! `neighbors` at depth 1 and 2, `path` up to 3 long, entity lookup by exact name,
//! `relations` of a scope by predicate, and adding a memory with 5 relations sourced from
//! it. The targets (at 100k entities) are printed beside the numbers, never asserted.
//!
//! `cargo bench -p agent-mem-benches --bench graph` runs 10k entities (50k relations);
//! `-- --sizes 10000,100000` picks sizes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use agent_mem::graph::{EntityRef, Neighbors, NewEntity, NewRelation, RelationQuery, RelationTime};
use agent_mem::{Memory, NewMemory, Scope, SearchOptions};
use common::{latency, Corpus, Rng};

const SCOPES: usize = 100;
const SAMPLES: usize = 300;
/// The predicates relations use, in turn; the last two are functional by default.
const PREDICATES: &[&str] = &["knows", "likes", "works_with", "lives_in", "works_at"];

fn open(path: &Path) -> agent_mem::Result<Memory> {
    Memory::builder().path(path).without_embedder().build()
}

fn scope(s: usize) -> Scope {
    Scope::user(format!("u{s}"))
}

/// Entity `i` is named `e{i}` and lives in scope `i % SCOPES`.
struct Graph {
    ids: Vec<String>,
}

impl Graph {
    /// A random entity of scope `s`: its index.
    fn pick(&self, rng: &mut Rng, s: usize) -> usize {
        let per_scope = self.ids.len().div_ceil(SCOPES);
        loop {
            let i = (rng.next() % per_scope as u64) as usize * SCOPES + s;
            if i < self.ids.len() {
                return i;
            }
        }
    }
    /// Two different random entities of scope `s`.
    fn pair(&self, rng: &mut Rng, s: usize) -> (usize, usize) {
        let a = self.pick(rng, s);
        loop {
            let b = self.pick(rng, s);
            if b != a {
                return (a, b);
            }
        }
    }
    fn relation(&self, rng: &mut Rng, k: usize) -> NewRelation {
        let s = k % SCOPES;
        let (a, b) = self.pair(rng, s);
        let mut relation = NewRelation::new("", PREDICATES[k / SCOPES % PREDICATES.len()], "");
        relation.subject = EntityRef::id(&self.ids[a]);
        relation.object = Some(EntityRef::id(&self.ids[b]));
        relation.scope(scope(s))
    }
}

/// Times `SAMPLES` runs of `f` (given a sample's number); the latency line.
fn time(mut f: impl FnMut(usize) -> agent_mem::Result<()>) -> agent_mem::Result<String> {
    let samples = (0..SAMPLES)
        .map(|i| {
            let started = Instant::now();
            f(i)?;
            Ok(started.elapsed())
        })
        .collect::<agent_mem::Result<Vec<Duration>>>()?;
    Ok(latency(samples))
}

fn bench_size(n: usize) -> agent_mem::Result<()> {
    let dir = tempfile::tempdir()?;
    let memory = open(&dir.path().join("graph.db"))?;
    let g = memory.graph();
    let mut rng = Rng(7);
    println!("\n## {n} entities, {} relations, {SCOPES} scopes\n", 5 * n);
    println!("| measure | result | issue's target (100k entities) |");
    println!("|---|---|---|");

    let started = Instant::now();
    let ids = (0..n)
        .map(|i| {
            let entity = NewEntity::new(format!("e{i}")).entity_type("person");
            Ok(g.add_entity(entity.scope(scope(i % SCOPES)))?.id)
        })
        .collect::<agent_mem::Result<Vec<_>>>()?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "| add entities (one at a time) | {:.0}/s ({took:.1} s) | — |",
        n as f64 / took
    );
    let graph = Graph { ids };
    let started = Instant::now();
    let (mut created, mut closed) = (0, 0);
    for k in 0..5 * n {
        let added = g.add_relation(graph.relation(&mut rng, k))?;
        created += usize::from(added.created);
        closed += added.closed.len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "| add relations (one at a time; {created} new, {closed} closed) | {:.0}/s ({took:.1} s) | — |",
        (5 * n) as f64 / took
    );

    let random = |rng: &mut Rng| &graph.ids[(rng.next() % n as u64) as usize];
    let mut reached = 0;
    for (depth, target) in [(1, "—"), (2, "p50 ≤ 1 ms")] {
        let line = time(|_| {
            reached += g
                .neighbors(&Neighbors::of(random(&mut rng)).depth(depth))?
                .len();
            Ok(())
        })?;
        println!(
            "| neighbors depth {depth} (mean {} entities) | {line} | {target} |",
            std::mem::take(&mut reached) / SAMPLES
        );
    }
    let mut found = 0;
    let line = time(|i| {
        let (a, b) = graph.pair(&mut rng, i % SCOPES);
        let path = g.path(&graph.ids[a], &graph.ids[b], 3, &RelationTime::default())?;
        found += usize::from(path.is_some());
        Ok(())
    })?;
    println!("| path, max depth 3 ({found}/{SAMPLES} found) | {line} | — |");
    let line = time(|_| {
        let i = (rng.next() % n as u64) as usize;
        let hits = g.entities(&format!("e{i}"), &scope(i % SCOPES), None, Some(1))?;
        assert_eq!(hits[0].id, graph.ids[i], "the exact name comes first");
        Ok(())
    })?;
    println!("| entity lookup by exact name | {line} | ≤ 0.2 ms |");
    let line = time(|i| {
        let query = RelationQuery {
            scope: scope(i % SCOPES),
            predicate: Some(PREDICATES[i % PREDICATES.len()].to_string()),
            ..RelationQuery::default()
        };
        g.relations(&query)?;
        Ok(())
    })?;
    println!("| relations of a scope by predicate (limit 100) | {line} | — |");

    let mut corpus = Corpus::new(42);
    let line = time(|i| {
        let s = i % SCOPES;
        let text = format!("e{s} met some friends on day {i}");
        let id = memory
            .add_with_vector(NewMemory::new(text).scope(scope(s)), corpus.clustered())?
            .id;
        for k in 0..5 {
            g.add_relation(graph.relation(&mut rng, s + k * SCOPES).source(&id))?;
        }
        Ok(())
    })?;
    println!("| a memory plus 5 relations sourced from it | {line} | p50 ≤ 2 ms |");

    // Hybrid search in a scope for a question naming one of its entities, with and without
    // the graph leg (the same queries and vectors), each scope holding a conversation's
    // worth of memories: the ones above and 100 more without relations.
    let mut sentences = Rng(11);
    for s in 0..SCOPES {
        let batch: Vec<(NewMemory, Vec<f32>)> = (0..100)
            .map(|j| {
                let text = common::sentence(&mut sentences, s * 100 + j);
                (NewMemory::new(text).scope(scope(s)), corpus.clustered())
            })
            .collect();
        memory.add_batch_with_vectors(batch)?;
    }
    let mut medians = Vec::new();
    for graph_weight in [0.0f32, 1.0] {
        let mut corpus = Corpus::new(9);
        let mut samples: Vec<Duration> = (0..SAMPLES)
            .map(|i| {
                let s = i % SCOPES;
                let mut options = SearchOptions::new().scope(scope(s)).limit(10);
                options.weights.graph = graph_weight;
                let query = format!("who did e{s} meet on day {i}");
                let vector = corpus.clustered();
                let started = Instant::now();
                memory.search_with_vector(&query, &vector, &options)?;
                Ok(started.elapsed())
            })
            .collect::<agent_mem::Result<_>>()?;
        samples.sort();
        medians.push(samples[samples.len() / 2].as_secs_f64());
        let label = if graph_weight > 0.0 {
            "with"
        } else {
            "without"
        };
        println!(
            "| hybrid search in a scope naming an entity, {label} the graph leg | {} | — |",
            latency(samples)
        );
    }
    println!(
        "| the graph leg's cost (p50 with / p50 without) | {:.2}× | ≤ 1.5× |",
        medians[1] / medians[0]
    );
    memory.close()
}

fn main() -> agent_mem::Result<()> {
    for n in common::sizes(&[10_000]) {
        bench_size(n)?;
    }
    Ok(())
}
