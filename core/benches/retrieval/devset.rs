//! A conversational dev set end to end: every turn stored as a memory in its conversation's
//! scope (content `speaker: text`, the date and session in metadata), every question searched
//! in that scope with its vector given, and the ranks of its evidence scored.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use agent_mem::{
    Embedder, Filter, FusionMethod, FusionWeights, LocalEmbedder, Memory, NewMemory, SearchMode,
    SearchOptions,
};
use md5::{Digest, Md5};
use serde_json::json;

use crate::datasets::{self, Corpus};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Recall and MRR over a set of questions, with each search's latency.
#[derive(Default, Clone)]
struct Tally {
    recall5: f64,
    recall10: f64,
    mrr10: f64,
    n: usize,
    micros: Vec<u64>,
}

impl Tally {
    /// `ranked`: the evidence groups of each hit, best first.
    fn add(&mut self, ranked: &[&[String]], evidence: &[String], micros: u64) {
        let found = |k: usize| {
            evidence
                .iter()
                .filter(|e| ranked.iter().take(k).any(|g| g.contains(e)))
                .count() as f64
                / evidence.len() as f64
        };
        self.recall5 += found(5);
        self.recall10 += found(10);
        if let Some(pos) = ranked
            .iter()
            .take(10)
            .position(|g| evidence.iter().any(|e| g.contains(e)))
        {
            self.mrr10 += 1.0 / (pos as f64 + 1.0);
        }
        self.n += 1;
        self.micros.push(micros);
    }

    fn merge(&mut self, other: &Tally) {
        self.recall5 += other.recall5;
        self.recall10 += other.recall10;
        self.mrr10 += other.mrr10;
        self.n += other.n;
        self.micros.extend(&other.micros);
    }

    fn row(&self, label: &str) -> String {
        let n = self.n.max(1) as f64;
        let mut m = self.micros.clone();
        m.sort_unstable();
        let p50 = m.get(m.len() / 2).copied().unwrap_or(0) as f64 / 1000.0;
        format!(
            "| {label:<40} | {:>8.3} | {:>9.3} | {:>6.3} | {:>7.2} | {:>5} |",
            self.recall5 / n,
            self.recall10 / n,
            self.mrr10 / n,
            p50,
            self.n
        )
    }
}

fn header(first: &str) {
    println!(
        "| {first:<40} | recall@5 | recall@10 | MRR@10 | p50 ms  | n     |\n|{}|----------|-----------|--------|---------|-------|",
        "-".repeat(42)
    );
}

/// Embeddings kept on disk by the MD5 of the text, so a dev set is embedded once.
struct Cache {
    path: PathBuf,
    dims: usize,
    vectors: HashMap<[u8; 16], Vec<f32>>,
}

impl Cache {
    fn open(path: PathBuf, dims: usize) -> Res<Cache> {
        let mut vectors = HashMap::new();
        if let Ok(mut f) = std::fs::File::open(&path) {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            let record = 16 + 4 * dims;
            for chunk in bytes.chunks_exact(record) {
                let key: [u8; 16] = chunk[..16].try_into()?;
                let v = chunk[16..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                vectors.insert(key, v);
            }
        }
        Ok(Cache {
            path,
            dims,
            vectors,
        })
    }

    fn key(text: &str) -> [u8; 16] {
        Md5::digest(text.as_bytes()).into()
    }

    /// Embeds what is missing (in batches, appending to the file), then answers all.
    fn embed_all(&mut self, embedder: &dyn Embedder, texts: &[&str]) -> Res<Vec<Vec<f32>>> {
        let mut missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !self.vectors.contains_key(&Cache::key(t)))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let started = Instant::now();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            for (i, batch) in missing.chunks(256).enumerate() {
                let vs = embedder.embed(batch)?;
                for (t, v) in batch.iter().zip(vs) {
                    assert_eq!(v.len(), self.dims);
                    let key = Cache::key(t);
                    file.write_all(&key)?;
                    for x in &v {
                        file.write_all(&x.to_le_bytes())?;
                    }
                    self.vectors.insert(key, v);
                }
                eprint!(
                    "\r  embedded {}/{} texts ({:.0}/s)",
                    ((i + 1) * 256).min(missing.len()),
                    missing.len(),
                    ((i + 1) * 256).min(missing.len()) as f64 / started.elapsed().as_secs_f64()
                );
            }
            eprintln!();
        }
        Ok(texts
            .iter()
            .map(|t| self.vectors[&Cache::key(t)].clone())
            .collect())
    }
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// A stored dev set: the store, the group of each memory id, and the question vectors.
struct Loaded {
    memory: Memory,
    /// Each memory's groups: the same text said twice in a scope is one memory.
    groups: HashMap<String, Vec<String>>,
    questions: Vec<Vec<Vec<f32>>>,
    _dir: tempfile::TempDir,
}

fn store(corpus: &Corpus, cache: &mut Cache, embedder: &dyn Embedder) -> Res<Loaded> {
    let turn_texts: Vec<&str> = corpus
        .conversations
        .iter()
        .flat_map(|c| c.turns.iter().map(|t| t.text.as_str()))
        .collect();
    let question_texts: Vec<&str> = corpus
        .conversations
        .iter()
        .flat_map(|c| c.questions.iter().map(|q| q.text.as_str()))
        .collect();
    eprintln!(
        "{}: {} conversations, {} turns, {} questions",
        corpus.name,
        corpus.conversations.len(),
        turn_texts.len(),
        question_texts.len()
    );
    let turn_vectors = cache.embed_all(embedder, &turn_texts)?;
    let mut question_vectors = cache.embed_all(embedder, &question_texts)?.into_iter();

    let dir = tempfile::tempdir()?;
    let memory = Memory::builder()
        .path(dir.path().join("devset.db"))
        .without_embedder()
        .build()?;
    let started = Instant::now();
    let mut groups = HashMap::new();
    let mut vectors = turn_vectors.into_iter();
    let mut questions = Vec::new();
    for conv in &corpus.conversations {
        let batch: Vec<(NewMemory, Vec<f32>)> = conv
            .turns
            .iter()
            .map(|t| {
                let m = NewMemory::new(truncated(&t.text))
                    .user(conv.id.clone())
                    .meta("date", t.date.clone())
                    .meta("session", t.session as i64);
                (m, vectors.next().expect("a vector per turn"))
            })
            .collect();
        // A repeated text ("ok!") is one memory standing for every turn that said it.
        for (outcome, turn) in memory
            .add_batch_with_vectors(batch)?
            .iter()
            .zip(&conv.turns)
        {
            groups
                .entry(outcome.id.clone())
                .or_insert_with(Vec::new)
                .push(turn.group.clone());
        }
        questions.push(
            conv.questions
                .iter()
                .map(|_| question_vectors.next().expect("a vector per question"))
                .collect(),
        );
    }
    eprintln!("  stored in {:.1?}", started.elapsed());
    Ok(Loaded {
        memory,
        groups,
        questions,
        _dir: dir,
    })
}

/// A turn as a memory holds it: a few very long messages (BEAM pastes whole files) are cut
/// to the store's content limit, at a character boundary.
fn truncated(text: &str) -> String {
    let mut end = text.len().min(agent_mem::MAX_CONTENT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Runs every question with `options`; returns the tally over all and per category.
fn evaluate(
    corpus: &Corpus,
    loaded: &Loaded,
    options: &SearchOptions,
) -> Res<(Tally, BTreeMap<String, Tally>)> {
    let mut all = Tally::default();
    let mut by_category: BTreeMap<String, Tally> = BTreeMap::new();
    for (conv, vectors) in corpus.conversations.iter().zip(&loaded.questions) {
        for (q, v) in conv.questions.iter().zip(vectors) {
            let mut opts = options.clone().user(conv.id.clone()).limit(10);
            if let Some(s) = q.before_session {
                opts = opts.filter(Filter::parse(&json!({"session": {"lt": s}}).to_string())?);
            }
            let started = Instant::now();
            let hits = loaded.memory.search_with_vector(&q.text, v, &opts)?;
            let micros = started.elapsed().as_micros() as u64;
            let ranked: Vec<&[String]> = hits
                .iter()
                .map(|h| loaded.groups[&h.memory.id].as_slice())
                .collect();
            let mut one = Tally::default();
            one.add(&ranked, &q.evidence, micros);
            all.merge(&one);
            by_category
                .entry(q.category.clone())
                .or_default()
                .merge(&one);
        }
    }
    Ok((all, by_category))
}

/// The modes (and, with `--variants`, the fusion variants) to compare.
fn modes(defaults: &SearchOptions, variants: bool) -> Vec<(String, SearchOptions)> {
    let mut out = vec![
        (
            "vector".to_string(),
            defaults.clone().mode(SearchMode::Vector),
        ),
        (
            "keyword".to_string(),
            defaults.clone().mode(SearchMode::Keyword),
        ),
        ("hybrid (default)".to_string(), defaults.clone()),
    ];
    if variants {
        out.extend(crate_variants(defaults));
    }
    out
}

/// Fusion settings weighed against the default (kept here so the table shows them).
fn crate_variants(defaults: &SearchOptions) -> Vec<(String, SearchOptions)> {
    let with = |f: &dyn Fn(&mut FusionWeights)| {
        let mut w = defaults.weights;
        f(&mut w);
        defaults.clone().weights(w)
    };
    let mut out = vec![
        (
            "rrf k=60, 1:1 (the earlier default)".to_string(),
            with(&|w| {
                w.method = FusionMethod::Rrf;
                w.vector = 1.0;
                w.keyword = 1.0;
            }),
        ),
        ("score, no context".to_string(), with(&|w| w.context = 0.0)),
        ("score, context 0.2".to_string(), with(&|w| w.context = 0.2)),
        ("score + fuzzy 0.1".to_string(), with(&|w| w.fuzzy = 0.1)),
    ];
    for vector in [0.4f32, 0.6] {
        out.push((
            format!("score, vector {vector} keyword {}", 1.0 - vector),
            with(&|w| {
                w.vector = vector;
                w.keyword = 1.0 - vector;
            }),
        ));
    }
    out
}

/// Writes the corpus as JSON (texts, groups, sessions, questions) for analysis elsewhere;
/// the vectors are in the cache file, keyed by the MD5 of each text.
fn dump(corpus: &Corpus, path: &Path) -> Res<()> {
    let conversations: Vec<serde_json::Value> = corpus
        .conversations
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "turns": c.turns.iter().map(|t| json!({
                    "group": t.group, "text": t.text, "date": t.date, "session": t.session,
                })).collect::<Vec<_>>(),
                "questions": c.questions.iter().map(|q| json!({
                    "text": q.text, "evidence": q.evidence, "category": q.category,
                    "before_session": q.before_session,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&conversations)?)?;
    Ok(())
}

pub fn run(args: &[String]) -> Res<()> {
    let i = args.iter().position(|a| a == "--dataset").unwrap_or(0);
    let (name, root) = match (args.get(i + 1), args.get(i + 2)) {
        (Some(n), Some(p)) => (n.as_str(), Path::new(p)),
        _ => return Err("usage: --dataset realtalk|beam|memdaily|realmem PATH".into()),
    };
    let max: usize = arg(args, "--max-conversations")
        .map(str::parse)
        .transpose()?
        .unwrap_or(usize::MAX);
    let by_category = args.iter().any(|a| a == "--by-category");
    let variants = args.iter().any(|a| a == "--variants");
    let cache_dir = PathBuf::from(arg(args, "--cache").unwrap_or(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/retrieval-cache"
    )));
    std::fs::create_dir_all(&cache_dir)?;

    let corpus = datasets::load(name, root, max)?;
    let embedder = LocalEmbedder::new_default()?;
    let mut cache = Cache::open(
        cache_dir.join(format!("{name}-all-MiniLM-L6-v2.vectors")),
        embedder.dimensions(),
    )?;
    let loaded = store(&corpus, &mut cache, &embedder)?;
    if let Some(path) = arg(args, "--dump") {
        dump(&corpus, Path::new(path))?;
    }
    let n: usize = corpus.conversations.iter().map(|c| c.questions.len()).sum();
    println!(
        "\n{name}: {} conversations, {} memories, {n} questions ({} dropped: no evidence resolves; {} evidence ids unresolved)\n",
        corpus.conversations.len(),
        loaded.groups.len(),
        corpus.unresolved_questions,
        corpus.unresolved_evidence
    );
    header("mode");
    let defaults = loaded.memory.search_options();
    let mut categories = Vec::new();
    for (label, options) in modes(&defaults, variants) {
        let (all, cats) = evaluate(&corpus, &loaded, &options)?;
        println!("{}", all.row(&label));
        categories.push((label, cats));
    }
    if by_category {
        for (label, cats) in categories {
            println!();
            header(&format!("{label}: category"));
            for (cat, t) in cats {
                println!("{}", t.row(&cat));
            }
        }
    }
    Ok(())
}
