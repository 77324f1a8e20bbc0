//! The text engines: BM25 keywords, exact phrase, and fuzzy words. The tokenising, the
//! phrase check and the typo scoring live here, so that every backend ranks the same way;
//! a backend answers three primitives ([`TextIndex`]).

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::store::{TextEngine, TextIndex};
use crate::text::{self, Piece};

/// Runs one text engine over a backend's text index.
pub(crate) fn run(
    engine: TextEngine,
    index: &mut dyn TextIndex,
    query: &str,
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
    match engine {
        TextEngine::Keyword => keyword(index, query, limit),
        TextEngine::Phrase => phrase(index, query, limit),
        TextEngine::Fuzzy => fuzzy(index, query, limit),
    }
}

/// BM25 over stemmed words and CJK bigrams; any term may match.
fn keyword(index: &mut dyn TextIndex, query: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
    let terms = text::query_terms(query);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    Ok(index
        .term_candidates(&terms, false, limit)?
        .into_iter()
        .map(|(k, _, s)| (k, s))
        .collect())
}

/// Memories containing the phrase (case and white space ignored), best BM25 first.
fn phrase(index: &mut dyn TextIndex, phrase: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
    let needle = text::normalise_phrase(phrase);
    if needle.is_empty() {
        return Ok(Vec::new());
    }
    let terms = text::query_terms(phrase);
    let candidates = if terms.is_empty() {
        // Only stop words: nothing in the keyword index to narrow by, so scan. The content
        // must hold the longest word (the phrase itself may be spaced differently there).
        let longest = needle
            .split(' ')
            .max_by_key(|w| w.len())
            .unwrap_or_default();
        index
            .content_candidates(longest)?
            .into_iter()
            .map(|(k, content)| (k, content, 0.0f32))
            .collect()
    } else {
        // Every phrase match holds all its terms; check the exact wording afterwards.
        index.term_candidates(&terms, true, usize::MAX >> 1)?
    };
    Ok(candidates
        .into_iter()
        .filter(|(_, content, _)| text::contains_phrase(&text::normalise_phrase(content), &needle))
        .take(limit)
        .map(|(k, _, s)| (k, s))
        .collect())
}

/// A unit of a fuzzy query: a word matched within an edit distance, or a CJK run matched by
/// its bigrams.
enum Unit {
    Word(String),
    Cjk(Vec<String>),
}

/// Memories whose words match the query's words within a few typos. The score is the mean,
/// over query words, of the best match quality (1 − distance / length) in the memory.
fn fuzzy(index: &mut dyn TextIndex, query: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
    let mut units = Vec::new();
    let mut fts_terms: Vec<String> = Vec::new();
    for piece in text::pieces(query) {
        match piece {
            Piece::Word(w) if text::is_stop_word(&w) => {}
            Piece::Word(w) => {
                for term in similar_terms(index, &w)? {
                    fts_terms.push(text::stem(&term));
                }
                fts_terms.push(text::stem(&w));
                units.push(Unit::Word(w));
            }
            Piece::Cjk(run) => {
                let grams: Vec<String> = if run.len() == 1 {
                    vec![run[0].to_string()]
                } else {
                    run.windows(2).map(|w| w.iter().collect()).collect()
                };
                fts_terms.extend(grams.iter().cloned());
                units.push(Unit::Cjk(grams));
            }
        }
    }
    if units.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = HashSet::new();
    fts_terms.retain(|t| seen.insert(t.clone()));
    let candidates = index.term_candidates(&fts_terms, false, 1000)?;
    let mut scored: Vec<(i64, f32, f32)> = candidates
        .into_iter()
        .map(|(key, content, bm25)| (key, match_quality(&units, &content), bm25))
        .filter(|(_, q, _)| *q > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
    scored.truncate(limit);
    Ok(scored.into_iter().map(|(k, q, _)| (k, q)).collect())
}

/// Vocabulary words within the allowed edit distance of `word`.
fn similar_terms(index: &mut dyn TextIndex, word: &str) -> Result<Vec<String>> {
    let max = text::allowed_typos(word.chars().count());
    if max == 0 || text::trigrams(word).is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = HashSet::new();
    Ok(index
        .vocabulary_candidates(word, max)?
        .into_iter()
        .filter(|term| seen.insert(term.clone()) && text::edit_distance(word, term, max).is_some())
        .collect())
}

fn match_quality(units: &[Unit], content: &str) -> f32 {
    let mut words: HashMap<String, ()> = HashMap::new();
    let mut grams: HashSet<String> = HashSet::new();
    for piece in text::pieces(content) {
        match piece {
            Piece::Word(w) => {
                words.insert(w, ());
            }
            Piece::Cjk(run) => {
                grams.extend(run.iter().map(|c| c.to_string()));
                grams.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
            }
        }
    }
    let total: f32 = units
        .iter()
        .map(|unit| match unit {
            Unit::Word(q) => {
                let qlen = q.chars().count();
                let max = text::allowed_typos(qlen);
                words
                    .keys()
                    .filter_map(|w| {
                        let d = text::edit_distance(q, w, max)?;
                        let len = qlen.max(w.chars().count()) as f32;
                        Some(1.0 - d as f32 / len)
                    })
                    .fold(0.0f32, f32::max)
            }
            Unit::Cjk(q) => q.iter().filter(|g| grams.contains(*g)).count() as f32 / q.len() as f32,
        })
        .sum();
    total / units.len() as f32
}
