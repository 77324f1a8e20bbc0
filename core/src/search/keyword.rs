//! The text engines: BM25 keywords, exact phrase, and fuzzy words. The tokenising, the
//! BM25 scoring, the phrase check and the typo scoring live here, so that every backend
//! ranks the same way; a backend answers a few primitives ([`TextIndex`]).
//!
//! BM25 is computed here over the memories the search may see (its scope and filters), not
//! over the whole store: in a store shared by many users or conversations, a word that is in
//! every memory of one conversation (a speaker's name) says nothing there, however rare it
//! is elsewhere. Scores are normalised by the query's attainable maximum, so a keyword score
//! is the share of the query's term weight a memory matches (0 to 1), comparable across
//! queries.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::store::{Selection, Store, TextIndex};
use crate::text::{self, Piece};

/// The text engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEngine {
    Keyword,
    Phrase,
    Fuzzy,
}

/// Runs one text engine over the store's text index, in one read snapshot of the memories
/// the selection admits: `(key, score)`, best first, at most `limit`.
pub(crate) fn run(
    store: &dyn Store,
    engine: TextEngine,
    query: &str,
    selection: &Selection,
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
    let mut out = None;
    store.read_text(selection, &mut |index| {
        out = Some(match engine {
            TextEngine::Keyword => keyword(index, query, limit)?,
            TextEngine::Phrase => phrase(index, query, limit)?,
            TextEngine::Fuzzy => fuzzy(index, query, limit)?,
        });
        Ok(())
    })?;
    out.ok_or_else(|| Error::internal("a text search ended without its result"))
}

/// BM25's term-frequency saturation (FTS5's value).
const K1: f32 = 1.2;
/// BM25's length normalisation. Lower than the textbook 0.75: conversational memories are
/// short, and a short turn matching one query word should not outrank a longer one that
/// says more of the query (0.4 beat 0.75 on the conversational dev sets of the retrieval
/// bench).
const B: f32 = 0.4;
/// The most keyword candidates scored for one query. When a query's terms match more
/// memories than this in the searched scope, the best by the backend's own BM25 are scored
/// and the document frequencies are counted by the backend.
const MAX_CANDIDATES: usize = 2000;
/// A selection of at most this many memories (a user's, a conversation's) is read whole and
/// scored here, instead of through the backend's term index: the index walks every posting
/// of the query's terms across the store, other scopes' included, and checks each match's
/// scope, so a scope's search would cost what the whole store holds.
const SCAN_LIMIT: usize = 1000;

/// BM25 over stemmed words and CJK bigrams; any term may match.
fn keyword(index: &mut dyn TextIndex, query: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
    let mut scored = bm25(index, &text::query_terms(query), false)?;
    scored.truncate(limit);
    Ok(scored.into_iter().map(|(k, _, s)| (k, s)).collect())
}

/// The memories holding any (or, with `all`, every) term, with their content and BM25
/// score over the selection's statistics divided by the bound BM25 approaches and never
/// reaches: the sum of the query terms' `idf · (k1 + 1)`. Best first, ties by key.
fn bm25(index: &mut dyn TextIndex, terms: &[String], all: bool) -> Result<Vec<(i64, String, f32)>> {
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let scanned = index.selection_contents(SCAN_LIMIT)?;
    let selected = scanned.as_ref().map(Vec::len);
    let candidates: Vec<(i64, String, f32)> = match scanned {
        Some(all_selected) => all_selected.into_iter().map(|(k, c)| (k, c, 0.0)).collect(),
        // A phrase needs every memory holding all its terms (the wording is checked after).
        None => {
            let limit = if all { usize::MAX >> 1 } else { MAX_CANDIDATES };
            index.term_candidates(terms, all, limit)?
        }
    };
    // Each candidate's frequency of each query term, and its length in indexed terms. Of a
    // selection read whole, the memories holding no term (or, with `all`, not every term)
    // are no candidates, but count in the document frequencies.
    let mut frequencies: Vec<(Vec<u32>, usize)> = Vec::with_capacity(candidates.len());
    let mut holding = Vec::with_capacity(candidates.len());
    let mut scanned_df = vec![0usize; terms.len()];
    for candidate in candidates {
        let counts = text::term_counts(&candidate.1);
        let tf: Vec<u32> = terms.iter().map(|t| counts.frequency(t)).collect();
        let holds = match selected {
            None => true,
            Some(_) if all => tf.iter().all(|f| *f > 0),
            Some(_) => tf.iter().any(|f| *f > 0),
        };
        for (df, f) in scanned_df.iter_mut().zip(&tf) {
            *df += usize::from(*f > 0);
        }
        if holds {
            frequencies.push((tf, counts.length()));
            holding.push(candidate);
        }
    }
    let candidates = holding;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // Statistics over what the search may see: exact for a selection read whole; else the
    // candidates are every memory holding a term unless there were too many or only those
    // holding all terms were asked for, and the backend counts the rest.
    let documents = match selected {
        Some(n) => n,
        None => index.document_count()?.max(candidates.len()),
    } as f32;
    let complete = !all && candidates.len() < MAX_CANDIDATES;

    // Lucene's smoothed idf, ln(1 + (N − df + 0.5) / (df + 0.5)), never negative or zero: in
    // a small scope a word in half the memories still counts a little. A query word no
    // memory holds counts toward the attainable score, so a query half made of unknown
    // words scores half as well.
    let mut idf = vec![0f32; terms.len()];
    for (i, term) in terms.iter().enumerate() {
        let df = if selected.is_some() {
            scanned_df[i]
        } else if complete {
            frequencies.iter().filter(|(tf, _)| tf[i] > 0).count()
        } else {
            index.document_frequency(term)?
        } as f32;
        idf[i] = (1.0 + (documents - df + 0.5) / (df + 0.5)).ln();
    }
    let attainable: f32 = idf.iter().map(|w| w * (K1 + 1.0)).sum();
    if attainable <= 0.0 {
        return Ok(Vec::new());
    }
    let average_length = (frequencies.iter().map(|(_, n)| *n).sum::<usize>() as f32
        / frequencies.len() as f32)
        .max(1.0);
    let mut scored: Vec<(i64, String, f32)> = candidates
        .into_iter()
        .zip(&frequencies)
        .filter_map(|((key, content, _), (tf, length))| {
            let norm = K1 * (1.0 - B + B * *length as f32 / average_length);
            let score: f32 = tf
                .iter()
                .zip(&idf)
                .filter(|(f, _)| **f > 0)
                .map(|(f, w)| w * *f as f32 * (K1 + 1.0) / (*f as f32 + norm))
                .sum();
            // A candidate whose content holds none of the terms any more (changed since
            // the backend indexed it) is left out.
            (score > 0.0).then(|| (key, content, (score / attainable).min(1.0)))
        })
        .collect();
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(scored)
}

/// Memories containing the phrase (case and white space ignored), best BM25 first.
fn phrase(index: &mut dyn TextIndex, phrase: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
    let needle = text::normalise_phrase(phrase);
    if needle.is_empty() {
        return Ok(Vec::new());
    }
    let terms = text::query_terms(phrase);
    let candidates: Vec<(i64, String, f32)> = if terms.is_empty() {
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
        bm25(index, &terms, true)?
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A text index over a few memories, answering like a backend: through its term index,
    /// or (`whole`) by handing over the whole selection.
    struct Memories {
        contents: Vec<(i64, String)>,
        whole: bool,
    }

    impl Memories {
        fn holding(&self, terms: &[String], all: bool) -> Vec<(i64, String)> {
            self.contents
                .iter()
                .filter(|(_, c)| {
                    let counts = text::term_counts(c);
                    let mut held = terms.iter().map(|t| counts.frequency(t) > 0);
                    if all {
                        held.all(|h| h)
                    } else {
                        held.any(|h| h)
                    }
                })
                .cloned()
                .collect()
        }
    }

    impl TextIndex for Memories {
        fn term_candidates(
            &mut self,
            terms: &[String],
            all: bool,
            limit: usize,
        ) -> Result<Vec<(i64, String, f32)>> {
            let mut found = self.holding(terms, all);
            found.truncate(limit);
            Ok(found.into_iter().map(|(k, c)| (k, c, 1.0)).collect())
        }
        fn selection_contents(&mut self, max: usize) -> Result<Option<Vec<(i64, String)>>> {
            Ok((self.whole && self.contents.len() <= max).then(|| self.contents.clone()))
        }
        fn document_count(&mut self) -> Result<usize> {
            Ok(self.contents.len())
        }
        fn document_frequency(&mut self, term: &str) -> Result<usize> {
            Ok(self.holding(&[term.to_string()], false).len())
        }
        fn content_candidates(&mut self, _: &str) -> Result<Vec<(i64, String)>> {
            unreachable!("not a keyword primitive")
        }
        fn vocabulary_candidates(&mut self, _: &str, _: usize) -> Result<Vec<String>> {
            unreachable!("not a keyword primitive")
        }
    }

    #[test]
    fn a_selection_read_whole_ranks_as_the_term_index_does() {
        let contents: Vec<(i64, String)> = [
            "Caroline went to the LGBTQ support group yesterday",
            "Melanie painted a sunrise over the lake",
            "Caroline: the support group was so powerful",
            "We went camping by the lake last summer, the kids loved it",
            "我喜欢喝咖啡，特别是拿铁",
            "Painting and camping are Melanie's ways to relax",
            "nothing to see here",
        ]
        .iter()
        .enumerate()
        .map(|(i, c)| (i as i64 + 1, c.to_string()))
        .collect();
        for (query, all) in [
            ("support group Caroline", false),
            ("camping at the lake", false),
            ("painting sunrise", false),
            ("咖啡 拿铁", false),
            ("support group", true),
            ("unknown words only", false),
        ] {
            let terms = text::query_terms(query);
            let mut through_index = Memories {
                contents: contents.clone(),
                whole: false,
            };
            let mut read_whole = Memories {
                contents: contents.clone(),
                whole: true,
            };
            let expected = bm25(&mut through_index, &terms, all).unwrap();
            assert_eq!(
                bm25(&mut read_whole, &terms, all).unwrap(),
                expected,
                "{query}"
            );
            if query != "unknown words only" {
                assert!(!expected.is_empty(), "{query}");
            }
        }
    }
}
