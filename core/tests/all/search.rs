//! Search behaviour as a user sees it: CJK and English keywords, phrases, typos, hybrid
//! fusion and its explanations, exactness of the vector index against a brute-force scan,
//! the equivalence of filters across `list` and every search engine, and the embedding cache.
//!
//! Tests 1–5 use the real local model (all-MiniLM-L6-v2); the others use caller vectors or
//! the hashing embedder.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agent_mem::embed::{Embedder, HashingEmbedder};
use agent_mem::{
    Filter, FusionMethod, FusionWeights, ListOptions, Memory, MemoryKind, MemoryRecord,
    MemoryUpdate, NewMemory, Scope, SearchHit, SearchMode, SearchOptions, VectorIndexOptions,
};
use serde_json::{json, Value};

// ------------------------------------------------------------------ helpers

/// The ids of the hits, as a set.
fn id_set(hits: Vec<SearchHit>) -> BTreeSet<String> {
    hits.into_iter().map(|h| h.memory.id).collect()
}

fn real_model() -> Memory {
    // The model is located through environment variables other tests change.
    let _env = crate::support::env_lock();
    let memory = Memory::open_in_memory().expect("open in-memory store");
    assert!(
        memory.embedding_model().is_some(),
        "the default model should be configured"
    );
    memory
}

fn add_all(memory: &Memory, texts: &[&str]) -> HashMap<String, String> {
    let outcomes = memory
        .add_batch(texts.iter().map(|t| NewMemory::new(*t).user("u")).collect())
        .expect("add batch");
    texts
        .iter()
        .zip(outcomes)
        .map(|(t, o)| (t.to_string(), o.id))
        .collect()
}

fn contents(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.memory.content.as_str()).collect()
}

fn search(memory: &Memory, query: &str, mode: SearchMode, limit: usize) -> Vec<SearchHit> {
    memory
        .search(query, &SearchOptions::new().mode(mode).limit(limit))
        .unwrap_or_else(|e| panic!("search {query:?} in {mode:?}: {e}"))
}

/// xorshift64*: a tiny deterministic generator, so the tests need no `rand`.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn vector(&mut self, dims: usize) -> Vec<f32> {
        loop {
            let v: Vec<f32> = (0..dims)
                .map(|_| (self.unit() * 2.0 - 1.0) as f32)
                .collect();
            if v.iter().any(|x| x.abs() > 1e-3) {
                return v;
            }
        }
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Brute force: every candidate's cosine to the query, best first.
fn exact_ranking<'a>(
    query: &[f32],
    candidates: impl Iterator<Item = (&'a String, &'a Vec<f32>)>,
) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = candidates
        .map(|(id, v)| (id.clone(), cosine(query, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored
}

/// Whether `got` is an exact top-k of `exact` (ties within float noise may swap at the
/// boundary). Returns how many of the true top-k were found.
fn topk_found(got: &[SearchHit], exact: &[(String, f64)], k: usize) -> (usize, Vec<String>) {
    let want = k.min(exact.len());
    let truth: BTreeSet<&str> = exact[..want].iter().map(|(id, _)| id.as_str()).collect();
    let score: HashMap<&str, f64> = exact.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let kth = exact.get(want.wrapping_sub(1)).map_or(f64::MIN, |e| e.1);
    let mut problems = Vec::new();
    if got.len() != want {
        problems.push(format!("{} hits, expected {want}", got.len()));
    }
    let mut found = 0;
    for hit in got {
        match score.get(hit.memory.id.as_str()) {
            None => problems.push(format!("{} is not admitted by the filter", hit.memory.id)),
            Some(s) if truth.contains(hit.memory.id.as_str()) || *s >= kth - 1e-5 => {
                found += 1;
                if (f64::from(hit.score) - s).abs() > 1e-3 {
                    problems.push(format!("score {} but cosine is {s}", hit.score));
                }
            }
            Some(s) => problems.push(format!(
                "{} (cosine {s:.5}) is not in the top {want} (k-th cosine {kth:.5})",
                hit.memory.id
            )),
        }
    }
    (found, problems)
}

// ------------------------------------------------------------------ 1. CJK

#[test]
fn cjk_keywords_find_chinese_and_japanese() {
    let memory = real_model();
    let ids = add_all(
        &memory,
        &[
            "我喜欢喝咖啡，特别是拿铁",
            "公司楼下新开了一家咖啡店",
            "我每天早上喝一杯绿茶",
            "他周末喜欢去公园跑步",
            "我的猫叫小白",
            "東京でラーメンを食べた",
            "大阪で寿司を食べました",
            "서울에서 비빔밥을 먹었다",
            "I drink coffee every morning",
            "Alice prefers tea over coffee",
            "The latte art at the cafe was beautiful",
        ],
    );

    // 咖啡 is in two memories; both are found, before anything without it.
    let hits = search(&memory, "咖啡", SearchMode::Keyword, 10);
    let found = contents(&hits);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.contains(&"我喜欢喝咖啡，特别是拿铁"), "{found:?}");
    assert!(found.contains(&"公司楼下新开了一家咖啡店"), "{found:?}");
    assert!(hits.iter().all(|h| h.explain.keyword.is_some()));

    // 拿铁 only in one: top hit, and nothing unrelated (铁 alone must not drag in others).
    let hits = search(&memory, "拿铁", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["我喜欢喝咖啡，特别是拿铁"]);

    // A sentence-like query: the memory sharing the most bigrams comes first.
    let hits = search(&memory, "喜欢喝咖啡吗", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits)[0], "我喜欢喝咖啡，特别是拿铁");

    // Hybrid: the keyword engine carries CJK even where the English model is weak.
    for query in ["咖啡", "拿铁"] {
        let hits = search(&memory, query, SearchMode::Hybrid, 5);
        let target = &ids["我喜欢喝咖啡，特别是拿铁"];
        let pos = hits.iter().position(|h| &h.memory.id == target);
        let pos = pos.unwrap_or_else(|| panic!("hybrid {query}: {:?}", contents(&hits)));
        assert!(pos < 2, "hybrid {query}: {:?}", contents(&hits));
        assert!(hits[pos].explain.keyword.is_some());
        assert!(hits[pos].explain.vector.is_some());
    }
    let hits = search(&memory, "拿铁", SearchMode::Hybrid, 5);
    assert_eq!(contents(&hits)[0], "我喜欢喝咖啡，特别是拿铁");

    // Japanese (katakana with the long-vowel mark) and Korean.
    let hits = search(&memory, "ラーメン", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["東京でラーメンを食べた"]);
    let hits = search(&memory, "東京", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["東京でラーメンを食べた"]);
    let hits = search(&memory, "비빔밥", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["서울에서 비빔밥을 먹었다"]);

    // Single characters stand for themselves, inside longer runs too.
    let hits = search(&memory, "猫", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["我的猫叫小白"]);
    let hits = search(&memory, "茶", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["我每天早上喝一杯绿茶"]);
    let hits = search(&memory, "寿", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["大阪で寿司を食べました"]);

    // Mixed scripts in one query: either part finds its memory.
    let hits = search(&memory, "latte 拿铁", SearchMode::Keyword, 10);
    let found = contents(&hits);
    assert!(found.contains(&"我喜欢喝咖啡，特别是拿铁"), "{found:?}");
    assert!(
        found.contains(&"The latte art at the cafe was beautiful"),
        "{found:?}"
    );

    // A character that appears nowhere finds nothing.
    assert!(search(&memory, "鲸", SearchMode::Keyword, 10).is_empty());
}

// ------------------------------------------------------------------ 2. stemming

#[test]
fn english_keywords_are_stemmed() {
    let memory = real_model();
    add_all(
        &memory,
        &[
            "Alice loves hiking",
            "Bob walked to the office",
            "Carol lovingly painted the fence",
            "The meeting was moved to Friday",
        ],
    );
    for query in ["love", "hikes", "HIKED", "loved hike"] {
        let hits = search(&memory, query, SearchMode::Keyword, 10);
        assert_eq!(
            contents(&hits).first(),
            Some(&"Alice loves hiking"),
            "{query}: {:?}",
            contents(&hits)
        );
    }
    let hits = search(&memory, "walking", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["Bob walked to the office"]);
    let hits = search(&memory, "moving meetings", SearchMode::Keyword, 10);
    assert_eq!(contents(&hits), ["The meeting was moved to Friday"]);
    // Stop words alone match nothing (they are not indexed).
    assert!(search(&memory, "the was to", SearchMode::Keyword, 10).is_empty());
}

// ------------------------------------------------------------------ 3. phrases

#[test]
fn phrase_mode_matches_the_exact_wording() {
    let memory = real_model();
    add_all(
        &memory,
        &[
            "Alice moved to New York in 2020",
            "The company opened a new office in York",
            "York is new to me",
            "NEW   YORK pizza is the best",
            "I want to be a pilot",
            "To be, or not to be",
            "I went to Berlin",
            "They renew York contracts yearly",
            "Trying TO\n   BE honest",
            "我喜欢喝咖啡，特别是拿铁",
            "公司楼下新开了一家咖啡店",
        ],
    );
    let phrase = |q: &str| -> BTreeSet<String> {
        search(&memory, q, SearchMode::Phrase, 10)
            .into_iter()
            .map(|h| {
                assert!(h.explain.phrase.is_some(), "phrase explain missing");
                h.memory.content
            })
            .collect()
    };
    let set = |xs: &[&str]| -> BTreeSet<String> { xs.iter().map(|s| s.to_string()).collect() };

    let want = set(&[
        "Alice moved to New York in 2020",
        "NEW   YORK pizza is the best",
    ]);
    assert_eq!(phrase("New York"), want);
    // Case and spacing of the query do not matter either.
    assert_eq!(phrase("new york"), want);
    assert_eq!(phrase("  NEW \t York "), want);
    assert_eq!(phrase("York is new"), set(&["York is new to me"]));
    assert_eq!(
        phrase("moved to new york in"),
        set(&["Alice moved to New York in 2020"])
    );

    // Only stop words: still an exact phrase.
    assert_eq!(
        phrase("to be"),
        set(&[
            "I want to be a pilot",
            "To be, or not to be",
            "Trying TO\n   BE honest"
        ])
    );
    assert_eq!(phrase("want to be"), set(&["I want to be a pilot"]));

    // CJK phrases.
    assert_eq!(phrase("拿铁"), set(&["我喜欢喝咖啡，特别是拿铁"]));
    assert_eq!(phrase("喝咖啡"), set(&["我喜欢喝咖啡，特别是拿铁"]));
    assert_eq!(
        phrase("咖啡"),
        set(&["我喜欢喝咖啡，特别是拿铁", "公司楼下新开了一家咖啡店"])
    );
    assert!(phrase("咖啡拿铁").is_empty());
    // Words in the wrong order are not the phrase.
    assert!(phrase("York New").is_empty());
    assert!(phrase("office new").is_empty());
}

// ------------------------------------------------------------------ 4. fuzzy

#[test]
fn fuzzy_mode_forgives_typos() {
    let memory = real_model();
    add_all(
        &memory,
        &[
            "Bob's favourite food is pizza",
            "Alice lives in San Francisco",
            "Carol visited San Diego last spring",
            "The pasta at Luigi's was great",
            "Dave plays the piano every evening",
            "Meeting with the finance team on Monday",
        ],
    );
    let hits = search(&memory, "piza", SearchMode::Fuzzy, 10);
    assert_eq!(
        contents(&hits).first(),
        Some(&"Bob's favourite food is pizza"),
        "{:?}",
        contents(&hits)
    );
    let top = &hits[0];
    let fz = top.explain.fuzzy.expect("fuzzy explanation");
    assert_eq!(fz.rank, 1);
    assert!(
        fz.score > 0.7 && fz.score < 1.0,
        "one typo in 5 letters: {}",
        fz.score
    );
    assert_eq!(top.score, fz.score);
    assert!(top.explain.vector.is_none() && top.explain.keyword.is_none());

    let hits = search(&memory, "San Fransisco", SearchMode::Fuzzy, 10);
    assert_eq!(
        contents(&hits).first(),
        Some(&"Alice lives in San Francisco"),
        "{:?}",
        contents(&hits)
    );
    // "San" alone still matches San Diego, but less well.
    if let Some(second) = hits.get(1) {
        assert!(second.score < hits[0].score, "{:?}", contents(&hits));
    }
    let hits = search(&memory, "finanse", SearchMode::Fuzzy, 10);
    assert_eq!(contents(&hits), ["Meeting with the finance team on Monday"]);

    // The exact word scores a perfect match.
    let hits = search(&memory, "pizza", SearchMode::Fuzzy, 10);
    assert_eq!(hits[0].score, 1.0);

    // Nothing close: nothing at all.
    assert!(search(&memory, "xylophone", SearchMode::Fuzzy, 10).is_empty());
    assert!(search(&memory, "qqqq zzzz", SearchMode::Fuzzy, 10).is_empty());

    // Scores descend.
    let hits = search(&memory, "pizza piano pasta", SearchMode::Fuzzy, 10);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits.iter().all(|h| h.explain.fuzzy.is_some()));
}

// ------------------------------------------------------------------ 5. hybrid

#[test]
fn hybrid_fuses_and_explains() {
    let memory = real_model();
    let mut texts: Vec<String> = vec![
        "She is allergic to peanuts".into(),
        "Return flight booked, confirmation code UA857".into(),
        "Alice enjoys hiking in the Alps".into(),
        "Bob's favourite food is pizza".into(),
        "The quarterly report is due on Friday".into(),
        "My sister lives in Lisbon".into(),
        "We adopted a golden retriever puppy".into(),
        "Remember to renew the car insurance".into(),
    ];
    // Filler that competes for the vector engine's attention: many flights and codes.
    let cities = [
        "Paris", "Tokyo", "Denver", "Madrid", "Oslo", "Cairo", "Lima", "Seoul", "Dublin", "Rome",
    ];
    for (i, city) in cities.iter().enumerate() {
        texts.push(format!(
            "Flight {} to {city} leaves from gate B{i}",
            300 + i * 7
        ));
        texts.push(format!("Hotel booking in {city} for {} nights", i + 2));
        texts.push(format!(
            "Airline seat {}{} reserved for the {city} trip",
            i + 10,
            "C"
        ));
        texts.push(format!("Packed sunscreen and a travel adapter for {city}"));
        texts.push(format!("Meeting with the {city} sales team about budgets"));
        texts.push(format!("Rain and wind expected in {city} this weekend"));
        texts.push(format!("Sunny skies forecast for {city} on Saturday"));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = add_all(&memory, &refs);
    assert!(texts.len() > 40, "store larger than the engines' pool");

    // A rare code: the keyword engine finds it first; hybrid keeps it at the top.
    let hits = search(&memory, "UA857", SearchMode::Hybrid, 10);
    let code = &ids["Return flight booked, confirmation code UA857"];
    assert_eq!(&hits[0].memory.id, code, "{:?}", contents(&hits));
    let kw = hits[0].explain.keyword.expect("keyword explain");
    assert_eq!(kw.rank, 1);
    assert!(kw.score > 0.0);
    // Keyword search alone finds only that memory.
    let kw_only = search(&memory, "UA857", SearchMode::Keyword, 10);
    assert_eq!(
        contents(&kw_only),
        ["Return flight booked, confirmation code UA857"]
    );

    // Found by keywords: the query vector (about the weather) ranks the code far below the
    // limit (or nowhere), yet hybrid returns it near the top, with its similarity.
    let weather = {
        // The model is located through environment variables other tests change.
        let _env = crate::support::env_lock();
        agent_mem::LocalEmbedder::new_default()
            .unwrap()
            .embed(&["weather forecast for the weekend"])
            .unwrap()
            .remove(0)
    };
    let hits = memory
        .search_with_vector("UA857", &weather, &SearchOptions::new().limit(10))
        .unwrap();
    let pos = hits
        .iter()
        .position(|h| &h.memory.id == code)
        .unwrap_or_else(|| panic!("keyword-only hit dropped: {:?}", contents(&hits)));
    let hit = &hits[pos];
    assert!(
        hit.explain.vector.is_none_or(|v| v.rank > 10),
        "{:?}",
        hit.explain
    );
    assert_eq!(hit.explain.keyword.map(|k| k.rank), Some(1));
    assert!(hit.score > 0.0 && hit.score <= 1.0, "{}", hit.score);
    let sim = hit.similarity.expect("similarity of a keyword-only hit");
    let best_sim = hits
        .iter()
        .filter_map(|h| h.similarity)
        .fold(f32::MIN, f32::max);
    assert!(sim < best_sim, "{sim}");
    // The whole keyword query matched it: it stands beside the vector engine's first hit.
    assert!(pos <= 1, "{:?}", contents(&hits));

    // A paraphrase sharing no word with the memory: found by meaning alone.
    let hits = search(&memory, "which nuts make her sick", SearchMode::Hybrid, 5);
    let nuts = &ids["She is allergic to peanuts"];
    let keyword_hits = search(&memory, "which nuts make her sick", SearchMode::Keyword, 50);
    assert!(
        keyword_hits.iter().all(|h| &h.memory.id != nuts),
        "no shared word, so no keyword match"
    );
    assert_eq!(&hits[0].memory.id, nuts, "{:?}", contents(&hits));
    assert!(hits[0].explain.vector.is_some());
    assert!(hits[0].explain.keyword.is_none());

    // Every hit explains itself; with score fusion every score lies in 0..=1 and none
    // exceeds the query's quality: the mean of the engines' best scores (the best cosine,
    // the best keyword share), which a hit first in both engines reaches.
    let query = "trip to Tokyo";
    let all = search(&memory, query, SearchMode::Hybrid, 30);
    assert_eq!(all.len(), 30);
    let best_cosine = search(&memory, query, SearchMode::Vector, 1)[0].score;
    let best_keyword = search(&memory, query, SearchMode::Keyword, 1)[0].score;
    assert!(best_keyword > 0.0 && best_keyword <= 1.0, "{best_keyword}");
    let quality = (best_cosine.max(0.0) + best_keyword) / 2.0;
    for hit in &all {
        let e = hit.explain;
        assert!(e.vector.is_some() || e.keyword.is_some(), "{hit:?}");
        assert!(hit.score >= 0.0 && hit.score <= quality + 1e-5, "{hit:?}");
    }
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));

    // Rank fusion, on request: the fused score is the scaled RRF of the ranks.
    let rrf_weights = FusionWeights {
        method: FusionMethod::Rrf,
        ..FusionWeights::default()
    };
    let all_rrf = memory
        .search(query, &SearchOptions::new().limit(30).weights(rrf_weights))
        .unwrap();
    assert_eq!(all_rrf.len(), 30);
    let k = rrf_weights.rrf_k;
    for hit in &all_rrf {
        let sim = hit.similarity.expect("hybrid hits carry a similarity");
        assert!((-1.0..=1.0001).contains(&sim));
        let e = hit.explain;
        assert!(e.vector.is_some() || e.keyword.is_some(), "{hit:?}");
        assert!(e.fuzzy.is_none() && e.phrase.is_none());
        if let Some(v) = e.vector {
            assert!(
                (v.score - sim).abs() < 1e-5,
                "similarity is the vector score"
            );
        }
        let rrf = |s: Option<agent_mem::EngineScore>| s.map_or(0.0, |s| 1.0 / (k + s.rank as f32));
        let expected = (rrf(e.vector) + rrf(e.keyword)) / (2.0 / (k + 1.0));
        assert!(
            (hit.score - expected).abs() < 1e-5,
            "score {} vs RRF {expected} for {e:?}",
            hit.score
        );
    }
    assert!(all_rrf.windows(2).all(|w| w[0].score >= w[1].score));
    let tokyo_flight = all
        .iter()
        .position(|h| h.memory.content.contains("Tokyo"))
        .expect("a Tokyo memory");
    assert!(tokyo_flight < 3, "{:?}", contents(&all));

    // Vector mode: ranks 1..n, scores are similarities, descending.
    let vec_hits = search(&memory, query, SearchMode::Vector, 10);
    for (i, h) in vec_hits.iter().enumerate() {
        let v = h.explain.vector.expect("vector explain");
        assert_eq!(v.rank, i + 1);
        assert_eq!(Some(h.score), h.similarity);
    }
    assert!(vec_hits.windows(2).all(|w| w[0].score >= w[1].score));

    // The limit is honoured, and a smaller limit is a prefix of a larger one.
    let ten = search(&memory, query, SearchMode::Hybrid, 10);
    let three = search(&memory, query, SearchMode::Hybrid, 3);
    assert_eq!(three.len(), 3);
    assert_eq!(contents(&three), contents(&ten)[..3]);

    // The threshold drops hits whose score is below it, in every mode (in vector mode the
    // score is the cosine similarity).
    for mode in [SearchMode::Hybrid, SearchMode::Vector] {
        let scores: Vec<f32> = search(&memory, query, mode, texts.len())
            .iter()
            .map(|h| h.score)
            .collect();
        assert!(scores.len() > 4, "{mode:?}");
        let t = (scores[3] + scores[4]) / 2.0;
        let kept = memory
            .search(
                query,
                &SearchOptions::new().mode(mode).limit(30).threshold(t),
            )
            .unwrap();
        assert_eq!(
            kept.len(),
            4,
            "{mode:?} threshold {t}: {:?}",
            contents(&kept)
        );
        assert!(kept.iter().all(|h| h.score >= t));
    }
    // Above every similarity: nothing.
    let none = memory
        .search(query, &SearchOptions::new().threshold(0.999))
        .unwrap();
    assert!(none.is_empty(), "{:?}", contents(&none));
}

// ------------------------------------------------------------------ 6. exactness

#[test]
fn vector_search_matches_brute_force() {
    const N: usize = 2000;
    const DIMS: usize = 32;
    const K: usize = 10;
    let mut rng = XorShift::new(42);
    let mut items = Vec::with_capacity(N);
    for i in 0..N {
        let m = NewMemory::new(format!("item {i}"))
            .user(format!("u{}", i % 4))
            .meta("bucket", (i % 7) as i64)
            .meta("even", i % 2 == 0);
        items.push((m, rng.vector(DIMS)));
    }
    let stores = [
        ("default", VectorIndexOptions::default()),
        (
            "hnsw-filtered",
            VectorIndexOptions {
                exact_scan_limit: 16,
                ..Default::default()
            },
        ),
    ];
    let queries: Vec<Vec<f32>> = (0..40).map(|_| rng.vector(DIMS)).collect();
    let filters: Vec<(&str, Option<Value>)> = vec![
        ("none", None),
        ("user", Some(json!({"user_id": "u1"}))),
        ("bucket in", Some(json!({"bucket": {"in": [1, 2]}}))),
        (
            "and",
            Some(json!({"AND": [{"user_id": "u2"}, {"even": true}]})),
        ),
        ("narrow", Some(json!({"bucket": 3, "user_id": "u1"}))),
    ];
    let mut report = Vec::new();
    for (label, options) in stores {
        let memory = Memory::builder()
            .without_embedder()
            .index_options(options)
            .build()
            .unwrap();
        let outcomes = memory.add_batch_with_vectors(items.clone()).unwrap();
        assert_eq!(memory.indexed_vectors().unwrap(), N);
        let records: Vec<(String, MemoryRecord, Vec<f32>)> = outcomes
            .iter()
            .zip(&items)
            .map(|(o, (_, v))| (o.id.clone(), memory.get(&o.id).unwrap(), v.clone()))
            .collect();
        for (name, filter) in &filters {
            let admits = |r: &MemoryRecord| -> bool {
                let bucket = r.metadata["bucket"].as_i64().unwrap();
                let even = r.metadata["even"].as_bool().unwrap();
                let user = r.scope.user_id.as_deref().unwrap();
                match *name {
                    "none" => true,
                    "user" => user == "u1",
                    "bucket in" => bucket == 1 || bucket == 2,
                    "and" => user == "u2" && even,
                    _ => bucket == 3 && user == "u1",
                }
            };
            let mut found = 0;
            let mut problems = Vec::new();
            for q in &queries {
                let exact = exact_ranking(
                    q,
                    records
                        .iter()
                        .filter(|(_, r, _)| admits(r))
                        .map(|(id, _, v)| (id, v)),
                );
                let mut opts = SearchOptions::new().mode(SearchMode::Vector).limit(K);
                if let Some(f) = filter {
                    opts = opts.filter(Filter::from_json(f).unwrap());
                }
                let hits = memory.search_with_vector("", q, &opts).unwrap();
                let (f, p) = topk_found(&hits, &exact, K);
                found += f;
                problems.extend(p);
            }
            let recall = found as f64 / (queries.len() * K) as f64;
            report.push(format!(
                "{label}/{name}: recall@{K} {recall:.4}{}",
                problems
                    .first()
                    .map(|p| format!(" (e.g. {p})"))
                    .unwrap_or_default()
            ));
            if !problems.is_empty() {
                report.push(format!("  {} problems", problems.len()));
            }
        }
    }
    let failing: Vec<&String> = report
        .iter()
        .filter(|l| !l.contains("recall@10 1.0000") || l.contains("e.g."))
        .collect();
    assert!(
        failing.is_empty(),
        "vector search is not exact on a small store:\n{}",
        report.join("\n")
    );
}

// ------------------------------------------------------------------ 7. filters

struct Case {
    filter: Value,
    expect: Option<fn(&MemoryRecord, &Times) -> bool>,
}

struct Times {
    second_batch: String,
    after_batches: String,
    soon: chrono::DateTime<chrono::Utc>,
    picked: Vec<String>,
}

fn meta<'a>(r: &'a MemoryRecord, key: &str) -> Option<&'a Value> {
    r.metadata.get(key)
}

fn filter_cases(times: &Times) -> Vec<Case> {
    let c =
        |filter: Value, expect: Option<fn(&MemoryRecord, &Times) -> bool>| Case { filter, expect };
    vec![
        c(
            json!({"user_id": "u1"}),
            Some(|r, _| r.scope.user_id.as_deref() == Some("u1")),
        ),
        c(
            json!({"user_id": {"in": ["u1", "u2"]}}),
            Some(|r, _| matches!(r.scope.user_id.as_deref(), Some("u1" | "u2"))),
        ),
        c(
            json!({"agent_id": {"ne": "a1"}}),
            Some(|r, _| r.scope.agent_id.as_deref() != Some("a1")),
        ),
        c(
            json!({"agent_id": {"nin": ["a1", "a2"]}}),
            Some(|r, _| !matches!(r.scope.agent_id.as_deref(), Some("a1" | "a2"))),
        ),
        c(
            json!({"run_id": null}),
            Some(|r, _| r.scope.run_id.is_none()),
        ),
        c(
            json!({"org_id": "*"}),
            Some(|r, _| r.scope.org_id.is_some()),
        ),
        c(
            json!({"topic": "food"}),
            Some(|r, _| meta(r, "topic") == Some(&json!("food"))),
        ),
        c(
            json!({"topic": {"ne": "food"}}),
            Some(|r, _| meta(r, "topic") != Some(&json!("food"))),
        ),
        c(
            json!({"topic": {"nin": ["food", "travel"]}}),
            Some(|r, _| {
                !matches!(
                    meta(r, "topic").and_then(Value::as_str),
                    Some("food" | "travel")
                )
            }),
        ),
        c(
            json!({"topic": null}),
            Some(|r, _| meta(r, "topic").is_none()),
        ),
        c(
            json!({"priority": {"gte": 3}}),
            Some(|r, _| meta(r, "priority").and_then(Value::as_i64) >= Some(3)),
        ),
        c(
            json!({"priority": {"gt": 1, "lte": 4}}),
            Some(|r, _| {
                let p = meta(r, "priority").and_then(Value::as_i64);
                p > Some(1) && p <= Some(4)
            }),
        ),
        c(
            json!({"priority": [1, 5]}),
            Some(|r, _| matches!(meta(r, "priority").and_then(Value::as_i64), Some(1 | 5))),
        ),
        c(
            json!({"score": {"lt": 0.25}}),
            Some(|r, _| {
                meta(r, "score")
                    .and_then(Value::as_f64)
                    .is_some_and(|s| s < 0.25)
            }),
        ),
        c(
            json!({"tags": {"contains": "urgent"}}),
            Some(|r, _| {
                meta(r, "tags")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.contains(&json!("urgent")))
            }),
        ),
        c(
            json!({"tags": {"icontains": "URGENT"}}),
            Some(|r, _| {
                meta(r, "tags").and_then(Value::as_array).is_some_and(|a| {
                    a.iter()
                        .any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("urgent")))
                })
            }),
        ),
        c(
            json!({"name": {"contains": "li"}}),
            Some(|r, _| {
                meta(r, "name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.contains("li"))
            }),
        ),
        c(
            json!({"flag": true}),
            Some(|r, _| meta(r, "flag") == Some(&json!(true))),
        ),
        c(
            json!({"flag": {"ne": true}}),
            Some(|r, _| meta(r, "flag") != Some(&json!(true))),
        ),
        c(
            json!({"AND": [{"topic": "work"}, {"priority": {"lt": 3}}]}),
            Some(|r, _| {
                meta(r, "topic") == Some(&json!("work"))
                    && meta(r, "priority")
                        .and_then(Value::as_i64)
                        .is_some_and(|p| p < 3)
            }),
        ),
        c(
            json!({"OR": [{"topic": "travel"}, {"tags": {"contains": "home"}}]}),
            Some(|r, _| {
                meta(r, "topic") == Some(&json!("travel"))
                    || meta(r, "tags")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.contains(&json!("home")))
            }),
        ),
        c(
            json!({"NOT": {"topic": {"in": ["food", "work"]}}}),
            Some(|r, _| {
                !matches!(
                    meta(r, "topic").and_then(Value::as_str),
                    Some("food" | "work")
                )
            }),
        ),
        c(
            json!({"OR": [{"user_id": "u3", "NOT": {"flag": true}}, {"priority": 5}]}),
            Some(|r, _| {
                (r.scope.user_id.as_deref() == Some("u3") && meta(r, "flag") != Some(&json!(true)))
                    || meta(r, "priority") == Some(&json!(5))
            }),
        ),
        c(
            json!({"created_at": {"gte": times.second_batch}}),
            Some(|r, t| agent_mem::format_time(r.created_at) >= t.second_batch),
        ),
        c(
            json!({"updated_at": {"gt": times.after_batches}}),
            Some(|r, t| agent_mem::format_time(r.updated_at) > t.after_batches),
        ),
        c(
            json!({"expires_at": {"lt": agent_mem::format_time(times.soon)}}),
            Some(|r, t| r.expires_at.is_some_and(|e| e < t.soon)),
        ),
        c(
            json!({"kind": {"in": ["semantic", "core"]}}),
            Some(|r, _| matches!(r.kind, MemoryKind::Semantic | MemoryKind::Core)),
        ),
        c(
            json!({"content": {"icontains": "ALPHA"}}),
            Some(|r, _| r.content.to_lowercase().contains("alpha")),
        ),
        // Selective: a handful of ids, answered by the exact scan.
        c(
            json!({"id": {"in": times.picked}}),
            Some(|r, t| t.picked.contains(&r.id)),
        ),
        c(json!({"nowhere": "*"}), Some(|_, _| false)),
        c(json!({"user_id": "u2", "topic": {"ne": "work"}}), None),
    ]
}

#[test]
fn filters_agree_across_list_and_every_engine() {
    const DIMS: usize = 16;
    let memory = Memory::builder()
        .without_embedder()
        .index_options(VectorIndexOptions {
            exact_scan_limit: 16,
            ..Default::default()
        })
        .build()
        .unwrap();
    let mut rng = XorShift::new(7);
    let topics = ["food", "travel", "work", "health"];
    let names = ["Alice", "Charlie", "Bob", "Olivia", "Dave"];
    let tag_pool = ["urgent", "Urgent", "home", "later", "x"];
    let kinds = [
        MemoryKind::Episodic,
        MemoryKind::Semantic,
        MemoryKind::Core,
        MemoryKind::Procedural,
    ];
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::days(2);
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    let mut batch_starts = Vec::new();
    let mut n = 0usize;
    for batch in 0..3 {
        let mut items = Vec::new();
        for _ in 0..100 {
            let i = n;
            n += 1;
            let greek = if i % 5 == 0 { "Alpha" } else { "beta" };
            let mut m = NewMemory::new(format!("reminder {i} {greek} note"));
            let mut scope = Scope::default();
            if i % 9 != 0 {
                scope.user_id = Some(format!("u{}", rng.below(4)));
            }
            if rng.below(3) != 0 {
                scope.agent_id = Some(format!("a{}", rng.below(3)));
            }
            if rng.below(4) == 0 {
                scope.run_id = Some(format!("r{}", rng.below(2)));
            }
            if rng.below(5) == 0 {
                scope.org_id = Some("acme".into());
            }
            m = m.scope(scope).kind(kinds[rng.below(4) as usize]);
            if rng.below(5) != 0 {
                m = m.meta("topic", topics[rng.below(4) as usize]);
            }
            if rng.below(6) != 0 {
                m = m.meta("priority", rng.below(5) as i64 + 1);
            } else if rng.below(2) == 0 {
                m = m.meta("priority", "high"); // a string where others hold numbers
            }
            m = m.meta("score", rng.unit());
            if rng.below(3) != 0 {
                let tags: Vec<&str> = (0..rng.below(3) + 1)
                    .map(|_| tag_pool[rng.below(5) as usize])
                    .collect();
                m = m.meta("tags", json!(tags));
            }
            if rng.below(4) != 0 {
                m = m.meta("name", names[rng.below(5) as usize]);
            }
            match rng.below(3) {
                0 => m = m.meta("flag", true),
                1 => m = m.meta("flag", false),
                _ => {}
            }
            match rng.below(6) {
                0 => m = m.expires_at(now + chrono::Duration::days(1)),
                1 => m = m.expires_at(now + chrono::Duration::days(10)),
                2 if batch == 1 => m = m.expires_at(now - chrono::Duration::hours(1)),
                _ => {}
            }
            items.push((m, rng.vector(DIMS)));
        }
        batch_starts.push(agent_mem::format_time(chrono::Utc::now()));
        for ((_, v), o) in items
            .iter()
            .zip(memory.add_batch_with_vectors(items.clone()).unwrap())
        {
            assert!(o.added);
            vectors.insert(o.id, v.clone());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let after_batches = agent_mem::format_time(chrono::Utc::now());
    std::thread::sleep(std::time::Duration::from_millis(5));

    // Everything visible (expired memories are not).
    let all: Vec<MemoryRecord> = memory
        .list(&ListOptions::new().limit(10_000))
        .unwrap()
        .items;
    assert!(all.len() < n, "some memories expired");
    assert!(all.len() > 250);
    // Touch a few so that updated_at differs from created_at.
    for r in all.iter().step_by(17) {
        let mut md = r.metadata.clone();
        md.insert("touched".into(), json!(true));
        memory.update(&r.id, MemoryUpdate::metadata(md)).unwrap();
    }
    let all: Vec<MemoryRecord> = memory
        .list(&ListOptions::new().limit(10_000))
        .unwrap()
        .items;
    let size = all.len();
    let times = Times {
        second_batch: batch_starts[1].clone(),
        after_batches,
        soon,
        picked: vec![all[3].id.clone(), all[50].id.clone(), all[200].id.clone()],
    };

    let query_vector = rng.vector(DIMS);
    let mut report = Vec::new();
    let mut sizes = Vec::new();
    for case in filter_cases(&times) {
        let filter =
            Filter::from_json(&case.filter).unwrap_or_else(|e| panic!("{}: {e}", case.filter));
        let label = case.filter.to_string();
        let listed: BTreeSet<String> = memory
            .list(&ListOptions::new().limit(10_000).filter(filter.clone()))
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        let opts = SearchOptions::new().limit(size).filter(filter.clone());
        let by_vector: BTreeSet<String> = id_set(
            memory
                .search_with_vector("", &query_vector, &opts.clone().mode(SearchMode::Vector))
                .unwrap(),
        );
        let by_keyword: BTreeSet<String> = id_set(
            memory
                .search("reminder", &opts.clone().mode(SearchMode::Keyword))
                .unwrap(),
        );
        let by_fuzzy: BTreeSet<String> = id_set(
            memory
                .search("remindr", &opts.clone().mode(SearchMode::Fuzzy))
                .unwrap(),
        );
        let by_hybrid: BTreeSet<String> = id_set(
            memory
                .search_with_vector(
                    "reminder",
                    &query_vector,
                    &opts.clone().mode(SearchMode::Hybrid),
                )
                .unwrap(),
        );
        if listed != by_hybrid {
            report.push(format!(
                "{label}: list {} vs hybrid {}",
                listed.len(),
                by_hybrid.len()
            ));
        }
        let counted = memory.count(&Scope::default(), Some(&filter)).unwrap();
        if listed != by_vector {
            report.push(format!(
                "{label}: list {} vs vector {}",
                listed.len(),
                by_vector.len()
            ));
        }
        if listed != by_keyword {
            report.push(format!(
                "{label}: list {} vs keyword {}",
                listed.len(),
                by_keyword.len()
            ));
        }
        if listed != by_fuzzy {
            report.push(format!(
                "{label}: list {} vs fuzzy {}",
                listed.len(),
                by_fuzzy.len()
            ));
        }
        if counted != listed.len() {
            report.push(format!("{label}: list {} vs count {counted}", listed.len()));
        }
        if let Some(expect) = case.expect {
            let want: BTreeSet<String> = all
                .iter()
                .filter(|r| expect(r, &times))
                .map(|r| r.id.clone())
                .collect();
            if want != listed {
                let extra: Vec<_> = listed.difference(&want).take(2).collect();
                let missing: Vec<_> = want.difference(&listed).take(2).collect();
                let show = |ids: &[&String]| -> Vec<String> {
                    ids.iter()
                        .map(|id| {
                            let r = all.iter().find(|r| &&r.id == id).unwrap();
                            format!(
                                "{} {:?} {}",
                                r.content,
                                r.scope,
                                Value::Object(r.metadata.clone())
                            )
                        })
                        .collect()
                };
                report.push(format!(
                    "{label}: expected {} got {}; unexpected {:?}; missing {:?}",
                    want.len(),
                    listed.len(),
                    show(&extra),
                    show(&missing)
                ));
            }
        }
        // Top-10 by vector equals the exact top-10 among the admitted memories, whether
        // answered by the exact scan (few admitted) or the filtered HNSW walk (many).
        let exact = exact_ranking(
            &query_vector,
            vectors.iter().filter(|(id, _)| listed.contains(*id)),
        );
        let top = memory
            .search_with_vector(
                "",
                &query_vector,
                &opts.clone().limit(10).mode(SearchMode::Vector),
            )
            .unwrap();
        let (_, problems) = topk_found(&top, &exact, 10);
        if !problems.is_empty() {
            report.push(format!("{label}: top-10 not exact: {problems:?}"));
        }
        sizes.push(listed.len());
    }
    assert!(
        sizes.iter().any(|&s| (1..=5).contains(&s)),
        "a selective case: {sizes:?}"
    );
    assert!(
        sizes.iter().filter(|&&s| s > 16 && s < size).count() >= 10,
        "broad cases: {sizes:?}"
    );
    assert!(report.is_empty(), "{}", report.join("\n"));

    // A scope in the options is a filter too, with or without the global layer.
    for include_global in [false, true] {
        let mut list_opts = ListOptions::new().limit(10_000).user("u1");
        list_opts.include_global = include_global;
        let listed: BTreeSet<String> = memory
            .list(&list_opts)
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: BTreeSet<String> = all
            .iter()
            .filter(|r| {
                r.scope.user_id.as_deref() == Some("u1") || (include_global && r.scope.is_global())
            })
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(listed, want, "include_global {include_global}");
        let mut opts = SearchOptions::new().limit(size).user("u1");
        opts.include_global = include_global;
        let by_vector: BTreeSet<String> = id_set(
            memory
                .search_with_vector("", &query_vector, &opts.clone().mode(SearchMode::Vector))
                .unwrap(),
        );
        let by_keyword: BTreeSet<String> = id_set(
            memory
                .search("reminder", &opts.clone().mode(SearchMode::Keyword))
                .unwrap(),
        );
        assert_eq!(by_vector, want);
        assert_eq!(by_keyword, want);
    }
}

// ------------------------------------------------------------------ 8. embedding cache

/// Counts the texts it is asked to embed.
struct CountingEmbedder {
    inner: HashingEmbedder,
    texts: AtomicUsize,
}

impl Embedder for CountingEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    fn embed(&self, texts: &[&str]) -> agent_mem::Result<Vec<Vec<f32>>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts)
    }
}

#[test]
fn the_same_text_is_embedded_once() {
    let counter = Arc::new(CountingEmbedder {
        inner: HashingEmbedder::new(64),
        texts: AtomicUsize::new(0),
    });
    let memory = Memory::builder().embedder(counter.clone()).build().unwrap();
    let calls = || counter.texts.load(Ordering::SeqCst);

    let a = memory
        .add(NewMemory::new("Alice likes tea").user("alice"))
        .unwrap();
    assert_eq!(calls(), 1);
    // Same text, other scope: a new memory, no new embedding.
    let b = memory
        .add(NewMemory::new("Alice likes tea").user("bob"))
        .unwrap();
    assert!(b.added && b.id != a.id);
    assert_eq!(calls(), 1);
    // Exact duplicate: nothing stored, nothing embedded.
    let dup = memory
        .add(NewMemory::new("Alice likes tea").user("alice"))
        .unwrap();
    assert!(!dup.added);
    assert_eq!(calls(), 1);
    // Deleted and added again: the cached vector serves.
    memory.delete(&a.id).unwrap();
    let again = memory
        .add(NewMemory::new("Alice likes tea").user("alice"))
        .unwrap();
    assert!(again.added);
    assert_eq!(calls(), 1);
    // A different text is embedded, once even when it occurs twice in a batch.
    memory
        .add_batch(vec![
            NewMemory::new("Bob likes coffee").user("alice"),
            NewMemory::new("Bob likes coffee").user("carol"),
            NewMemory::new("Alice likes tea").user("carol"),
        ])
        .unwrap();
    assert_eq!(calls(), 2);
    // An update to a known text reuses it; to a new text embeds it.
    memory
        .update(&b.id, MemoryUpdate::content("Bob likes coffee"))
        .unwrap();
    assert_eq!(calls(), 2);
    memory
        .update(&b.id, MemoryUpdate::content("Bob likes cocoa"))
        .unwrap();
    assert_eq!(calls(), 3);
    // The cached vector is the embedder's: a search finds the memory with similarity 1.
    let hits = memory
        .search(
            "Alice likes tea",
            &SearchOptions::new().mode(SearchMode::Vector).user("alice"),
        )
        .unwrap();
    assert_eq!(calls(), 4, "the query is embedded");
    assert_eq!(hits[0].memory.id, again.id);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    // Text modes do not embed the query.
    memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Keyword))
        .unwrap();
    memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Fuzzy))
        .unwrap();
    memory
        .search("tea", &SearchOptions::new().mode(SearchMode::Phrase))
        .unwrap();
    assert_eq!(calls(), 4);
}
