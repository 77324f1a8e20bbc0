//! The text engines over SQLite FTS5: BM25 keywords, exact phrase, and fuzzy words.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use crate::error::Result;
use crate::text::{self, Piece};

/// A compiled filter: a SQL condition over `memories m` and its parameters (`?1`…).
pub(crate) struct Where {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// Runs `SELECT m.key, m.content, score` over the FTS matches of `fts_query` that pass the
/// filter, best BM25 first.
fn fts_candidates(
    conn: &Connection,
    fts_query: &str,
    filter: &Where,
    limit: usize,
) -> Result<Vec<(i64, String, f32)>> {
    let n = filter.params.len();
    let sql = format!(
        "SELECT m.key, m.content, bm25(memories_fts) AS s
         FROM memories_fts JOIN memories m ON m.key = memories_fts.rowid
         WHERE memories_fts MATCH ?{} AND ({})
         ORDER BY s LIMIT ?{}",
        n + 1,
        filter.sql,
        n + 2
    );
    let mut params = filter.params.clone();
    params.push(SqlValue::Text(fts_query.to_string()));
    params.push(SqlValue::Integer(limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        // FTS5's bm25() is negative, lower is better; report it positive, higher is better.
        Ok((r.get(0)?, r.get(1)?, -(r.get::<_, f64>(2)? as f32)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// BM25 over stemmed words and CJK bigrams; any term may match.
pub(crate) fn keyword(
    conn: &Connection,
    query: &str,
    filter: &Where,
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
    let terms = text::query_terms(query);
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    Ok(fts_candidates(conn, &text::fts_any(&terms), filter, limit)?
        .into_iter()
        .map(|(k, _, s)| (k, s))
        .collect())
}

/// Memories containing the phrase (case and white space ignored), best BM25 first.
pub(crate) fn phrase(
    conn: &Connection,
    phrase: &str,
    filter: &Where,
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
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
        let n = filter.params.len();
        let sql = format!(
            "SELECT m.key, m.content FROM memories m
             WHERE instr(am_lower(m.content), ?{}) > 0 AND ({}) ORDER BY m.key",
            n + 1,
            filter.sql
        );
        let mut params = filter.params.clone();
        params.push(SqlValue::Text(longest.to_string()));
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?, 0.0f32))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    } else {
        // Every phrase match holds all its terms; check the exact wording afterwards.
        fts_candidates(conn, &text::fts_all(&terms), filter, usize::MAX >> 1)?
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
pub(crate) fn fuzzy(
    conn: &Connection,
    query: &str,
    filter: &Where,
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
    let mut units = Vec::new();
    let mut fts_terms: Vec<String> = Vec::new();
    for piece in text::pieces(query) {
        match piece {
            Piece::Word(w) if text::is_stop_word(&w) => {}
            Piece::Word(w) => {
                for term in similar_terms(conn, &w)? {
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
    let candidates = fts_candidates(conn, &text::fts_any(&fts_terms), filter, 1000)?;
    let mut scored: Vec<(i64, f32, f32)> = candidates
        .into_iter()
        .map(|(key, content, bm25)| (key, match_quality(&units, &content), bm25))
        .filter(|(_, q, _)| *q > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
    scored.truncate(limit);
    Ok(scored.into_iter().map(|(k, q, _)| (k, q)).collect())
}

/// Vocabulary words within the allowed edit distance of `word`, found through trigrams.
fn similar_terms(conn: &Connection, word: &str) -> Result<Vec<String>> {
    let len = word.chars().count();
    let max = text::allowed_typos(len);
    let grams = text::trigrams(word);
    if max == 0 || grams.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT t.term FROM term_grams g JOIN terms t ON t.id = g.rowid
         WHERE term_grams MATCH ?1 ORDER BY rank LIMIT 300",
    )?;
    let mut candidates: Vec<String> = stmt
        .query_map([text::fts_any(&grams)], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    // One typo in a short word can break every trigram ("mmeo" shares none with "memo"),
    // so short words also look at vocabulary words of about their length that start with
    // the same letter (typos rarely hit the first letter). A range scan on the term index.
    if len <= 5 {
        if let Some(first) = word.chars().next() {
            let start = first.to_string();
            let end = char::from_u32(first as u32 + 1).map_or_else(String::new, |c| c.to_string());
            let mut stmt = conn.prepare_cached(
                "SELECT term FROM terms WHERE term >= ?1 AND (?2 = '' OR term < ?2)
                 AND length(term) BETWEEN ?3 AND ?4 LIMIT 5000",
            )?;
            let rows = stmt.query_map(
                rusqlite::params![start, end, (len - max) as i64, (len + max) as i64],
                |r| r.get::<_, String>(0),
            )?;
            for term in rows {
                candidates.push(term?);
            }
        }
    }
    let mut seen = HashSet::new();
    Ok(candidates
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
