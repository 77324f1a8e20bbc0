//! The search pipeline over a store: the engines' lists, the candidate pool, fusion, each
//! hit's explanation, the threshold and the tie-break. `Memory::search` validates and embeds,
//! then hands over here.
//!
//! Hybrid search fuses scores, not ranks (see [`score_fusion`]): each engine's score is on
//! an absolute scale (cosine similarity; the share of the query's BM25 weight matched;
//! fuzzy match quality), a hit ranks by its weighted share of each engine's best, raised by
//! its neighbours in the conversation. Rank fusion (RRF) made a memory that is mediocre in
//! both lists outrank the best hit of one, and gave scores that said nothing across queries.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::search::keyword::{self, TextEngine};
use crate::search::{
    fusion, EngineScore, Explanation, FusionMethod, FusionWeights, SearchHit, SearchMode,
    SearchOptions, MAX_LIMIT,
};
use crate::store::{Selection, Store};

/// A memory's key in the store (its SQLite rowid or PostgreSQL key), end to end.
type Key = i64;
/// Cosine similarities computed for memories the vector engine did not rank.
type Cosines = HashMap<Key, f32>;

/// The engines score fusion weighs: vector, keyword, fuzzy, graph.
const ENGINES: usize = 4;
/// The graph's place among them.
const GRAPH: usize = 3;

/// Hits loaded beyond the limit in case some were deleted since they were ranked.
const SPARE: usize = 8;

/// Every keyword candidate is scored in hybrid search (the keyword engine caps them).
const ALL_CANDIDATES: usize = usize::MAX >> 1;

/// Runs the search `options` describe over `store`, with the query's vector when the mode
/// needs one.
pub(crate) fn run(
    store: &dyn Store,
    query: &str,
    query_vector: Option<&[f32]>,
    options: &SearchOptions,
    selection: &Selection,
) -> Result<Vec<SearchHit>> {
    let limit = options.limit;
    let mut explain: HashMap<Key, Explanation> = HashMap::new();
    // Cosines computed for candidates the vector engine did not rank, reused for the hits.
    let mut similarities = Cosines::new();
    let ranked: Vec<(Key, f32)> = match options.mode {
        SearchMode::Vector => {
            let hits = store.nearest(query_vector.unwrap_or_default(), limit, selection)?;
            note(&mut explain, &hits, |e, s| e.vector = Some(s));
            hits
        }
        SearchMode::Keyword | SearchMode::Phrase | SearchMode::Fuzzy => {
            let (engine, explain_as) = text_engine(options.mode);
            let hits = keyword::run(store, engine, query, selection, limit)?;
            note(&mut explain, &hits, explain_as);
            hits
        }
        SearchMode::Hybrid => {
            let weights = options.weights;
            let lists = EngineLists::gather(store, query, query_vector, selection, options)?;
            note(&mut explain, &lists.vector, |e, s| e.vector = Some(s));
            note(&mut explain, &lists.keyword, |e, s| e.keyword = Some(s));
            note(&mut explain, &lists.fuzzy, |e, s| e.fuzzy = Some(s));
            note(&mut explain, &lists.graph, |e, s| e.graph = Some(s));
            match weights.method {
                FusionMethod::Score => {
                    let (ranked, computed) =
                        score_fusion(store, &lists, query_vector, &weights, &explain)?;
                    similarities = computed;
                    ranked
                }
                FusionMethod::Rrf => rank_fusion(&lists, &weights),
            }
        }
    };
    hits(store, ranked, explain, similarities, query_vector, options)
}

fn text_engine(mode: SearchMode) -> (TextEngine, fn(&mut Explanation, EngineScore)) {
    match mode {
        SearchMode::Keyword => (TextEngine::Keyword, |e, s| e.keyword = Some(s)),
        SearchMode::Phrase => (TextEngine::Phrase, |e, s| e.phrase = Some(s)),
        _ => (TextEngine::Fuzzy, |e, s| e.fuzzy = Some(s)),
    }
}

/// Records each hit's rank (1-based) and score in one engine's slot of its explanation.
fn note(
    explain: &mut HashMap<Key, Explanation>,
    list: &[(Key, f32)],
    set: fn(&mut Explanation, EngineScore),
) {
    for (i, (key, score)) in list.iter().enumerate() {
        set(
            explain.entry(*key).or_default(),
            EngineScore {
                rank: i + 1,
                score: *score,
            },
        );
    }
}

/// Each engine's ranked list for a hybrid search (empty for an engine weighted 0).
struct EngineLists {
    /// The nearest memories, `pool` of them, with their cosine similarity.
    vector: Vec<(Key, f32)>,
    /// Every keyword candidate with its normalised BM25 (score fusion), or the best `pool`
    /// (rank fusion).
    keyword: Vec<(Key, f32)>,
    /// The best `pool` fuzzy matches.
    fuzzy: Vec<(Key, f32)>,
    /// The memories of the other lists the query's entities lead to, by graph score (see
    /// [`super::graph`]).
    graph: Vec<(Key, f32)>,
    /// How deep each engine's list feeds the candidates.
    pool: usize,
}

impl EngineLists {
    fn gather(
        store: &dyn Store,
        query: &str,
        query_vector: Option<&[f32]>,
        selection: &Selection,
        options: &SearchOptions,
    ) -> Result<EngineLists> {
        let weights = options.weights;
        let pool = match weights.method {
            // Deep enough that a memory one engine ranks well but not first is weighed.
            FusionMethod::Score => (options.limit * 2).clamp(60, MAX_LIMIT),
            FusionMethod::Rrf => (options.limit * 4).clamp(40, MAX_LIMIT),
        };
        let vector = match query_vector {
            Some(q) if weights.vector > 0.0 => store.nearest(q, pool, selection)?,
            _ => Vec::new(),
        };
        let keyword = if weights.keyword > 0.0 {
            let depth = match weights.method {
                FusionMethod::Score => ALL_CANDIDATES,
                FusionMethod::Rrf => pool,
            };
            keyword::run(store, TextEngine::Keyword, query, selection, depth)?
        } else {
            Vec::new()
        };
        let fuzzy = if weights.fuzzy > 0.0 {
            keyword::run(store, TextEngine::Fuzzy, query, selection, pool)?
        } else {
            Vec::new()
        };
        // The graph only weighs what the engines found (never what the selection leaves
        // out); it has no past, so a search as of a moment goes without it.
        let mut graph: Vec<(Key, f32)> = Vec::new();
        if weights.graph > 0.0 && selection.as_of.is_none() {
            let found: HashSet<Key> = [&vector, &keyword, &fuzzy]
                .into_iter()
                .flat_map(|list| list.iter().take(pool).map(|(k, _)| *k))
                .collect();
            graph = super::graph::scores(store, query, &options.scope, selection.now, &found)?
                .into_iter()
                .collect();
            graph.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        Ok(EngineLists {
            vector,
            keyword,
            fuzzy,
            graph,
            pool,
        })
    }
}

/// Reciprocal Rank Fusion of the lists (the earlier default, kept as an option).
fn rank_fusion(lists: &EngineLists, weights: &FusionWeights) -> Vec<(Key, f32)> {
    let keys = |v: &[(Key, f32)]| v.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    let (vk, kk, fk, gk) = (
        keys(&lists.vector),
        keys(&lists.keyword),
        keys(&lists.fuzzy),
        keys(&lists.graph),
    );
    fusion::rrf(
        &[
            (&vk, weights.vector),
            (&kk, weights.keyword),
            (&fk, weights.fuzzy),
            // A silent graph is no engine (the scores stay those of the others).
            (&gk, if gk.is_empty() { 0.0 } else { weights.graph }),
        ],
        weights.rrf_k,
    )
}

/// Score fusion. The candidates are the top `pool` of each engine. Each engine's score is
/// divided by its best in this query (a negative cosine counts as 0; an engine that did not
/// find a candidate gives 0, except the cosine, computed for every candidate), and a
/// candidate's standing is the weighted mean of those shares over the engines that found
/// anything, raised by context: `(standing + context · best adjacent standing) /
/// (1 + context)`, where adjacent means the memory stored just before or after it in the
/// same scope (the previous or next turn of a conversation), so that "Yes, last Tuesday!"
/// is found through the question it answers.
///
/// Ranking by shares of each engine's best lets neither engine's scale drown the other's
/// (BM25 shares run low for long queries, cosines run high for text the model knows
/// little of). The score returned is the standing times the query's quality: the weighted
/// mean of the engines' best absolute scores. So a hit first in every engine scores that
/// quality, the others less, and a query whose words and meaning both matched well scores
/// higher than one that matched weakly: scores compare across queries.
fn score_fusion(
    store: &dyn Store,
    lists: &EngineLists,
    query_vector: Option<&[f32]>,
    weights: &FusionWeights,
    explain: &HashMap<Key, Explanation>,
) -> Result<(Vec<(Key, f32)>, Cosines)> {
    let mut candidates: Vec<Key> = Vec::new();
    let mut seen = HashSet::new();
    for list in [&lists.vector, &lists.keyword, &lists.fuzzy] {
        for (key, _) in list.iter().take(lists.pool) {
            if seen.insert(*key) {
                candidates.push(*key);
            }
        }
    }
    let unscored: Vec<Key> = candidates
        .iter()
        .copied()
        .filter(|k| explain.get(k).is_none_or(|e| e.vector.is_none()))
        .collect();
    let computed = match query_vector {
        Some(q) if weights.vector > 0.0 && !unscored.is_empty() => {
            store.similarities(q, &unscored)?
        }
        _ => HashMap::new(),
    };
    let scores_of = |key: &Key| -> [f32; ENGINES] {
        let e = explain.get(key).copied().unwrap_or_default();
        let cosine = e
            .vector
            .map(|s| s.score)
            .or_else(|| computed.get(key).copied())
            .unwrap_or(0.0);
        [
            cosine.max(0.0),
            e.keyword.map_or(0.0, |s| s.score),
            e.fuzzy.map_or(0.0, |s| s.score),
            e.graph.map_or(0.0, |s| s.score),
        ]
    };
    let all: Vec<(Key, [f32; ENGINES])> = candidates.iter().map(|k| (*k, scores_of(k))).collect();
    let mut best = [0f32; ENGINES];
    for (_, s) in &all {
        for i in 0..ENGINES {
            best[i] = best[i].max(s[i]);
        }
    }
    // A silent graph (no entity named, or none leading to a candidate) is no engine: the
    // scores of a search are the same with the graph weighted or not.
    let graph_weight = if best[GRAPH] > 0.0 {
        weights.graph
    } else {
        0.0
    };
    let engine_weights = [weights.vector, weights.keyword, weights.fuzzy, graph_weight];
    let total: f32 = engine_weights.iter().sum();
    let quality: f32 = (0..ENGINES)
        .map(|i| engine_weights[i] * best[i])
        .sum::<f32>()
        / total;
    let speaking: f32 = (0..ENGINES)
        .filter(|&i| best[i] > 0.0)
        .map(|i| engine_weights[i])
        .sum();
    if speaking <= 0.0 {
        // Nothing matched a word and every cosine is at most 0: the nearest still come
        // first, with nothing to score them by.
        let mut nearest: Vec<(Key, f32)> = candidates
            .iter()
            .map(|k| {
                (
                    *k,
                    explain
                        .get(k)
                        .and_then(|e| e.vector)
                        .map_or(f32::MIN, |s| s.score),
                )
            })
            .collect();
        nearest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        return Ok((
            nearest.into_iter().map(|(k, _)| (k, 0.0)).collect(),
            computed,
        ));
    }
    let standing: HashMap<Key, f32> = all
        .iter()
        .map(|(key, s)| {
            let share: f32 = (0..ENGINES)
                .filter(|&i| best[i] > 0.0)
                .map(|i| engine_weights[i] * s[i] / best[i])
                .sum();
            (*key, share / speaking)
        })
        .collect();
    let neighbours = adjacent_in_scope(store, &candidates, weights.context)?;
    let mut ranked: Vec<(Key, f32)> = standing
        .iter()
        .map(|(key, own)| {
            let context = neighbours
                .get(key)
                .into_iter()
                .flatten()
                .filter_map(|n| standing.get(n))
                .fold(0.0f32, |a, b| a.max(*b));
            let raised = (own + weights.context * context) / (1.0 + weights.context);
            (*key, raised * quality)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok((ranked, computed))
}

/// For each candidate, the candidates stored right before or after it in the same scope.
/// Keys grow in insertion order, so neighbours are one key apart; only such pairs are
/// loaded, to compare their scopes.
fn adjacent_in_scope(
    store: &dyn Store,
    candidates: &[Key],
    context: f32,
) -> Result<HashMap<Key, Vec<Key>>> {
    if context <= 0.0 {
        return Ok(HashMap::new());
    }
    let set: HashSet<Key> = candidates.iter().copied().collect();
    // Past versions (negative keys) were stored out of conversation order: no neighbours.
    let pairs: Vec<(Key, Key)> = candidates
        .iter()
        .filter(|k| **k > 0 && set.contains(&(**k + 1)))
        .map(|k| (*k, *k + 1))
        .collect();
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<Key> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let records = store.records(&keys)?;
    let mut out: HashMap<Key, Vec<Key>> = HashMap::new();
    for (a, b) in pairs {
        let same_scope = match (records.get(&a), records.get(&b)) {
            (Some(x), Some(y)) => x.scope == y.scope,
            _ => false,
        };
        if same_scope {
            out.entry(a).or_default().push(b);
            out.entry(b).or_default().push(a);
        }
    }
    Ok(out)
}

/// Turns ranked keys into hits: loads the records (dropping any deleted meanwhile),
/// computes the similarities not `computed` yet, applies the threshold (to the score, in
/// every mode), orders equal scores by similarity, and keeps `limit`.
fn hits(
    store: &dyn Store,
    ranked: Vec<(Key, f32)>,
    mut explain: HashMap<Key, Explanation>,
    mut computed: Cosines,
    query_vector: Option<&[f32]>,
    options: &SearchOptions,
) -> Result<Vec<SearchHit>> {
    let ranked: Vec<(Key, f32)> = ranked
        .into_iter()
        .filter(|(_, score)| options.threshold.is_none_or(|t| *score >= t))
        .collect();
    // Only what can be returned is loaded (with a few spare, for memories deleted since
    // they were ranked); equal scores at the cut are kept for the tie-break.
    let cut = ranked
        .get(options.limit.saturating_sub(1))
        .map(|(_, s)| *s)
        .unwrap_or(f32::NEG_INFINITY);
    let ranked: Vec<(Key, f32)> = ranked
        .into_iter()
        .enumerate()
        .take_while(|(i, (_, s))| *i < options.limit + SPARE || *s >= cut)
        .map(|(_, r)| r)
        .collect();
    let keys: Vec<Key> = ranked.iter().map(|(k, _)| *k).collect();
    let mut records = store.records(&keys)?;
    // Hits the vector engine did not rank still report their similarity (computed here
    // unless fusion already did).
    let unscored: Vec<Key> = match query_vector {
        Some(_) => keys
            .iter()
            .copied()
            .filter(|k| explain.get(k).is_none_or(|e| e.vector.is_none()))
            .filter(|k| !computed.contains_key(k))
            .collect(),
        None => Vec::new(),
    };
    if let Some(q) = query_vector.filter(|_| !unscored.is_empty()) {
        computed.extend(store.similarities(q, &unscored)?);
    }
    let mut out: Vec<SearchHit> = Vec::new();
    for (key, score) in ranked {
        let Some(memory) = records.remove(&key) else {
            continue;
        };
        let explanation = explain.remove(&key).unwrap_or_default();
        let similarity = query_vector.map(|_| match explanation.vector {
            Some(v) => v.score,
            None => computed.get(&key).copied().unwrap_or(0.0),
        });
        out.push(SearchHit {
            memory,
            score,
            similarity,
            explain: explanation,
        });
    }
    // Stable: hits equal in score and similarity keep the engine's order.
    out.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(
            b.similarity
                .unwrap_or(0.0)
                .total_cmp(&a.similarity.unwrap_or(0.0)),
        )
    });
    out.truncate(options.limit);
    Ok(out)
}
