//! Search: the options, the hits, and the engines (vector, keyword, phrase, fuzzy) that
//! hybrid search fuses.

pub(crate) mod fusion;
pub(crate) mod graph;
pub(crate) mod hybrid;
pub(crate) mod keyword;
pub(crate) mod time_words;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::filter::Filter;
use crate::types::{MemoryRecord, Scope};

/// How a query is matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Vector and keyword search fused by score (and fuzzy, when its weight is above zero):
    /// the default. See [`FusionWeights`].
    #[default]
    Hybrid,
    /// Meaning only: cosine similarity of embeddings (HNSW).
    Vector,
    /// Keywords only: BM25 over stemmed words and CJK bigrams.
    Keyword,
    /// The exact phrase (case and spacing ignored), ranked by BM25.
    Phrase,
    /// Words within a small edit distance (typos), ranked by how closely they match.
    Fuzzy,
}

impl std::str::FromStr for SearchMode {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "hybrid" => SearchMode::Hybrid,
            "vector" | "semantic" => SearchMode::Vector,
            "keyword" | "bm25" | "fts" => SearchMode::Keyword,
            "phrase" | "exact" => SearchMode::Phrase,
            "fuzzy" => SearchMode::Fuzzy,
            other => {
                return Err(crate::Error::invalid(format!(
                "unknown search mode {other:?} (expected hybrid, vector, keyword, phrase or fuzzy)"
            )))
            }
        })
    }
}

/// How hybrid search combines its engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Score fusion (the default): each engine's score (cosine similarity, a negative one
    /// counting as 0; the share of the query's BM25 weight a memory matches; fuzzy match
    /// quality) is divided by that engine's best in the query; a hit ranks by the weighted
    /// mean of those shares, raised by its neighbours (see [`FusionWeights::context`]); its
    /// score is that standing times the weighted mean of the engines' best scores. Scores
    /// lie in 0..=1 and compare across queries: a hit first in every engine scores that
    /// mean, the others less, and a weak query's hits score low.
    #[default]
    Score,
    /// Reciprocal Rank Fusion: each engine adds `weight / (rrf_k + rank)`, scaled so that
    /// first place in every engine scores 1. Ignores how far apart the hits are, and its
    /// scores do not compare across queries.
    Rrf,
}

/// The engines' weights in hybrid search, and how they are fused.
///
/// The defaults (vector 1, keyword 1, fuzzy 0, context 0.1, score fusion) were chosen on
/// public conversational dev sets (the retrieval bench): equal weights on shares of each
/// engine's best held up on English chats where keywords lead, on Chinese where the default
/// model's vectors are weak, and on long assistant answers where meaning leads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FusionWeights {
    /// Weight of the vector engine (cosine similarity).
    pub vector: f32,
    /// Weight of the keyword engine (BM25).
    pub keyword: f32,
    /// Weight of the fuzzy engine (0 leaves fuzzy search out of hybrid).
    pub fuzzy: f32,
    /// Weight of the knowledge graph: how much being linked to an entity the query names
    /// (or to one of its neighbours) counts for a memory the other engines found. Silent
    /// when the query names no entity of the search's scope; 0 turns it off.
    pub graph: f32,
    /// Weight of conversation context in score fusion: how much the standing of the memory
    /// stored just before or after a hit in the same scope (the neighbouring turn) adds to
    /// the hit's. 0 turns it off.
    pub context: f32,
    /// Score fusion (the default) or Reciprocal Rank Fusion.
    pub method: FusionMethod,
    /// The RRF constant `k` in `weight / (k + rank)` (rank fusion only).
    pub rrf_k: f32,
}

impl Default for FusionWeights {
    fn default() -> Self {
        FusionWeights {
            vector: 1.0,
            keyword: 1.0,
            fuzzy: 0.0,
            graph: 1.0,
            context: 0.1,
            method: FusionMethod::Score,
            rrf_k: 60.0,
        }
    }
}

impl FusionWeights {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        let ok = |w: f32| w.is_finite() && w >= 0.0;
        if !ok(self.vector) || !ok(self.keyword) || !ok(self.fuzzy) || !ok(self.graph) {
            return Err(crate::Error::invalid(
                "fusion weights must be finite and not negative",
            ));
        }
        if self.vector + self.keyword + self.fuzzy <= 0.0 {
            return Err(crate::Error::invalid(
                "at least one fusion weight must be above zero",
            ));
        }
        if !ok(self.context) {
            return Err(crate::Error::invalid(
                "context must be finite and not negative",
            ));
        }
        if !self.rrf_k.is_finite() || self.rrf_k < 0.0 {
            return Err(crate::Error::invalid(
                "rrf_k must be finite and not negative",
            ));
        }
        Ok(())
    }
}

/// The largest `limit` a search or list accepts.
pub const MAX_LIMIT: usize = 10_000;

/// Options of a search. `SearchOptions::default()` is a hybrid search for 10 hits over every
/// memory that has not expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// How to match.
    pub mode: SearchMode,
    /// At most this many hits (1 to [`MAX_LIMIT`]).
    pub limit: usize,
    /// Minimum `score` of a hit, in every mode (in vector mode the score is the cosine
    /// similarity, as in mem0).
    pub threshold: Option<f32>,
    /// Only memories in this scope (fields left out are not constrained).
    pub scope: Scope,
    /// With a scope, also the global layer (memories with no scope at all).
    pub include_global: bool,
    /// Further conditions (see [`crate::filter`]).
    #[serde(skip)]
    pub filter: Option<Filter>,
    /// Also expired memories.
    pub include_expired: bool,
    /// Engine weights for hybrid search.
    pub weights: FusionWeights,
    /// Search the store as it stood at this moment (transaction time): the versions that
    /// were current then, with their content, scope and metadata of then; expiry is judged
    /// at that moment. A moment in the future finds nothing. `None`: the store as it is.
    #[serde(skip)]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Only memories whose valid time holds at this moment (see
    /// [`crate::MemoryRecord::valid_from`]), superseded ones included (their own valid
    /// time decides); with `as_of`, the bi-temporal question "what did we believe at
    /// `as_of` about `valid_at`".
    #[serde(skip)]
    pub valid_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Also memories that were superseded (see `Memory::supersede`), hidden otherwise.
    pub include_superseded: bool,
    /// Read time words in the query ("last year", "in May 2023", "3 days ago", "去年",
    /// "上个月"; see `search::time_words` for the list) relative to `now`: the span they
    /// name keeps only memories whose valid time overlaps it (or, without a valid time,
    /// that were stored in it), and the words leave the text the engines match.
    pub time_aware: bool,
    /// The reference moment of `time_aware` (default: the wall clock).
    #[serde(skip)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            mode: SearchMode::Hybrid,
            limit: 10,
            threshold: None,
            scope: Scope::default(),
            include_global: false,
            filter: None,
            include_expired: false,
            weights: FusionWeights::default(),
            as_of: None,
            valid_at: None,
            include_superseded: false,
            time_aware: false,
            now: None,
        }
    }
}

impl SearchOptions {
    /// Default options.
    pub fn new() -> Self {
        SearchOptions::default()
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the number of hits.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the minimum score.
    pub fn threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Only this user's memories.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.scope.user_id = Some(user_id.into());
        self
    }

    /// Only this agent's memories.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.scope.agent_id = Some(agent_id.into());
        self
    }

    /// Only memories of this scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets the hybrid weights.
    pub fn weights(mut self, weights: FusionWeights) -> Self {
        self.weights = weights;
        self
    }

    /// Searches the store as it stood at `at` (see [`SearchOptions::as_of`]).
    pub fn as_of(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.as_of = Some(at);
        self
    }

    /// Only memories valid at `at` (see [`SearchOptions::valid_at`]).
    pub fn valid_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.valid_at = Some(at);
        self
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(crate::Error::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {}",
                self.limit
            )));
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() {
                return Err(crate::Error::invalid("threshold must be a finite number"));
            }
        }
        self.scope.validate()?;
        self.weights.validate()
    }
}

/// One engine's opinion of a hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineScore {
    /// 1-based rank in that engine's list.
    pub rank: usize,
    /// That engine's score: cosine similarity, the share of the query's BM25 weight
    /// matched (0..=1), or fuzzy match quality (0..=1).
    pub score: f32,
}

/// Why a hit was returned: each engine's rank and score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Explanation {
    /// The vector engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<EngineScore>,
    /// BM25 keywords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<EngineScore>,
    /// Exact phrase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phrase: Option<EngineScore>,
    /// Fuzzy words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuzzy: Option<EngineScore>,
    /// The knowledge graph (hybrid only): the memory is linked to an entity the query
    /// names (score 1) or to a neighbour of one (0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<EngineScore>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchHit {
    /// The memory.
    #[serde(flatten)]
    pub memory: MemoryRecord,
    /// The ranking score, 0 to 1 in every mode but RRF's, comparable across queries: cosine
    /// similarity (vector), the share of the query's BM25 weight matched (keyword, phrase),
    /// match quality (fuzzy), or the fused score (hybrid, see [`FusionWeights`]).
    pub score: f32,
    /// Cosine similarity of the query and the memory, when the query was embedded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// Each engine's rank and score.
    pub explain: Explanation,
}
