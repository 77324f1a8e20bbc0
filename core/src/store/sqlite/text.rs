//! The text primitives of the SQLite backend over FTS5 and the fuzzy vocabulary.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};

use super::filter::Where;
use crate::error::Result;
use crate::store::TextIndex;
use crate::text;

/// The text primitives over FTS5, in one read transaction, for one selection.
pub(super) struct SqliteText<'a> {
    pub(super) conn: &'a Connection,
    pub(super) w: &'a Where,
}

impl TextIndex for SqliteText<'_> {
    fn term_candidates(
        &mut self,
        terms: &[String],
        all: bool,
        limit: usize,
    ) -> Result<Vec<(i64, String, f32)>> {
        let fts_query = if all {
            text::fts_all(terms)
        } else {
            text::fts_any(terms)
        };
        let n = self.w.params.len();
        let sql = format!(
            "SELECT m.key, m.content, bm25(memories_fts) AS s
             FROM memories_fts JOIN memories m ON m.key = memories_fts.rowid
             WHERE memories_fts MATCH ?{} AND ({})
             ORDER BY s LIMIT ?{}",
            n + 1,
            self.w.sql,
            n + 2
        );
        let mut params = self.w.params.clone();
        params.push(SqlValue::Text(fts_query));
        params.push(SqlValue::Integer(limit.min(i64::MAX as usize) as i64));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            // FTS5's bm25() is negative, lower is better; report it positive, higher is better.
            Ok((r.get(0)?, r.get(1)?, -(r.get::<_, f64>(2)? as f32)))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn selection_contents(&mut self, max: usize) -> Result<Option<Vec<(i64, String)>>> {
        let n = self.w.params.len();
        let sql = format!(
            "SELECT m.key, m.content FROM memories m WHERE {} ORDER BY m.key LIMIT ?{}",
            self.w.sql,
            n + 1
        );
        let mut params = self.w.params.clone();
        params.push(SqlValue::Integer(
            max.saturating_add(1).min(i64::MAX as usize) as i64,
        ));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let contents: Vec<(i64, String)> = rows.collect::<std::result::Result<_, _>>()?;
        Ok((contents.len() <= max).then_some(contents))
    }

    fn document_count(&mut self) -> Result<usize> {
        let sql = format!("SELECT count(*) FROM memories m WHERE {}", self.w.sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n: i64 = stmt.query_row(rusqlite::params_from_iter(self.w.params.iter()), |r| {
            r.get(0)
        })?;
        Ok(n.max(0) as usize)
    }

    fn document_frequency(&mut self, term: &str) -> Result<usize> {
        let n = self.w.params.len();
        let sql = format!(
            "SELECT count(*) FROM memories_fts JOIN memories m ON m.key = memories_fts.rowid
             WHERE memories_fts MATCH ?{} AND ({})",
            n + 1,
            self.w.sql
        );
        let mut params = self.w.params.clone();
        params.push(SqlValue::Text(text::fts_any(&[term.to_string()])));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let df: i64 = stmt.query_row(rusqlite::params_from_iter(params), |r| r.get(0))?;
        Ok(df.max(0) as usize)
    }

    fn content_candidates(&mut self, needle: &str) -> Result<Vec<(i64, String)>> {
        let n = self.w.params.len();
        let sql = format!(
            "SELECT m.key, m.content FROM memories m
             WHERE instr(am_lower(m.content), ?{}) > 0 AND ({}) ORDER BY m.key",
            n + 1,
            self.w.sql
        );
        let mut params = self.w.params.clone();
        params.push(SqlValue::Text(needle.to_string()));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn vocabulary_candidates(&mut self, word: &str, max_typos: usize) -> Result<Vec<String>> {
        let len = word.chars().count();
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.term FROM term_grams g JOIN terms t ON t.id = g.rowid
             WHERE term_grams MATCH ?1 ORDER BY rank LIMIT 300",
        )?;
        let mut candidates: Vec<String> = stmt
            .query_map([text::fts_any(&text::trigrams(word))], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<std::result::Result<_, _>>()?;
        // One typo in a short word can break every trigram ("mmeo" shares none with "memo"),
        // so short words also look at vocabulary words of about their length that start with
        // the same letter (typos rarely hit the first letter). A range scan on the term index.
        if len <= 5 {
            if let Some(first) = word.chars().next() {
                let start = first.to_string();
                let end =
                    char::from_u32(first as u32 + 1).map_or_else(String::new, |c| c.to_string());
                let mut stmt = self.conn.prepare_cached(
                    "SELECT term FROM terms WHERE term >= ?1 AND (?2 = '' OR term < ?2)
                     AND length(term) BETWEEN ?3 AND ?4 LIMIT 5000",
                )?;
                let rows = stmt.query_map(
                    params![
                        start,
                        end,
                        len.saturating_sub(max_typos) as i64,
                        (len + max_typos) as i64
                    ],
                    |r| r.get::<_, String>(0),
                )?;
                for term in rows {
                    candidates.push(term?);
                }
            }
        }
        Ok(candidates)
    }
}
