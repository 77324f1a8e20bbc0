//! The text primitives of the SQLite backend over FTS5 and the fuzzy vocabulary.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};

use super::filter::Where;
use super::versions;
use crate::error::Result;
use crate::store::{Selection, TextIndex};
use crate::text;
use crate::types::format_time;

/// The text primitives over FTS5, in one read transaction, for one selection.
pub(super) struct SqliteText<'a> {
    pub(super) conn: &'a Connection,
    pub(super) w: &'a Where,
    /// The selection admits every stored memory (no scope, no filter, none expired or the
    /// expired included): the term index answers alone, without a join to check each match.
    pub(super) everything: bool,
}

/// Whether `selection` admits every stored memory (see [`SqliteText::everything`]): a
/// look at the partial indexes of expiries and supersedes.
pub(super) fn admits_everything(conn: &Connection, selection: &Selection) -> Result<bool> {
    if !selection.is_unfiltered() {
        return Ok(false);
    }
    // Plain statements, each answered from its partial index.
    if !selection.include_expired {
        let mut stmt = conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM memories
             WHERE expires_at IS NOT NULL AND expires_at <= ?1)",
        )?;
        if stmt.query_row([format_time(selection.now)], |r| r.get::<_, bool>(0))? {
            return Ok(false);
        }
    }
    if !selection.include_superseded {
        let mut stmt = conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM memories WHERE superseded_by IS NOT NULL)",
        )?;
        if stmt.query_row([], |r| r.get::<_, bool>(0))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A row limit as SQL text. A bound `LIMIT ?` makes SQLite plan with the value it holds and
/// so prepare the statement again on every run; the limits here are a few constants of
/// the search, each its own cached statement.
fn limit_literal(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

impl SqliteText<'_> {
    /// The selection's condition over the current memories (`memories m`): as of a past
    /// moment, only those already written then.
    fn current_cond(&self) -> String {
        match &self.w.as_of {
            None => self.w.sql.clone(),
            Some(at) => format!("({}) AND {}", self.w.sql, versions::current_at(at)),
        }
    }
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
        let limit = limit_literal(limit);
        if self.everything {
            // The best `limit` by the index's own BM25 (FTS5 ranks inside its module), then
            // their contents: the other matches are never joined.
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT m.key, m.content, f.rank
                 FROM (SELECT rowid, rank FROM memories_fts WHERE memories_fts MATCH ?1
                       ORDER BY rank LIMIT {limit}) f
                 JOIN memories m ON m.key = f.rowid ORDER BY f.rank"
            ))?;
            let rows = stmt.query_map(params![fts_query], |r| {
                Ok((r.get(0)?, r.get(1)?, -(r.get::<_, f64>(2)? as f32)))
            })?;
            return Ok(rows.collect::<std::result::Result<_, _>>()?);
        }
        let n = self.w.params.len();
        let current = format!(
            "SELECT m.key, m.content, bm25(memories_fts) AS s
             FROM memories_fts JOIN memories m ON m.key = memories_fts.rowid
             WHERE memories_fts MATCH ?{} AND ({})",
            n + 1,
            self.current_cond()
        );
        let sql = match &self.w.as_of {
            None => format!("{current} ORDER BY s LIMIT {limit}"),
            // The rows current then, as two sets of keys read from the tables' indexes, each
            // match of the term indexes checked against them (joining each match to its row
            // would read the row's pages, vector and all); contents only for the best.
            // Past versions are under negated keys.
            Some(at) => format!(
                "SELECT c.key, CASE WHEN c.key > 0
                     THEN (SELECT content FROM memories WHERE key = c.key)
                     ELSE (SELECT content FROM versions WHERE key = -c.key) END, c.s
                 FROM (SELECT memories_fts.rowid AS key, bm25(memories_fts) AS s FROM memories_fts
                       WHERE memories_fts MATCH ?{q}
                       AND +memories_fts.rowid IN (SELECT m.key FROM memories m WHERE {cur})
                       UNION ALL
                       SELECT -versions_fts.rowid, bm25(versions_fts) FROM versions_fts
                       WHERE versions_fts MATCH ?{q}
                       AND +versions_fts.rowid IN
                           (SELECT m.key FROM versions m WHERE ({cond}) AND {past})
                       ORDER BY s LIMIT {limit}) c
                 ORDER BY c.s",
                q = n + 1,
                cur = self.current_cond(),
                cond = self.w.sql,
                past = versions::past_at(at),
            ),
        };
        let mut params = self.w.params.clone();
        params.push(SqlValue::Text(fts_query));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            // FTS5's bm25() is negative, lower is better; report it positive, higher is better.
            Ok((r.get(0)?, r.get(1)?, -(r.get::<_, f64>(2)? as f32)))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn selection_contents(&mut self, max: usize) -> Result<Option<Vec<(i64, String)>>> {
        if self.everything && self.document_count()? > max {
            return Ok(None); // known without reading rows
        }
        let limit = limit_literal(max.saturating_add(1));
        // Unordered, so that reading stops after `max + 1` rows (the rows of a past moment
        // come from two tables: ordering them would mean reading them all); sorted here.
        let sql = format!(
            "SELECT m.key, m.content FROM {} LIMIT {limit}",
            self.w.rows()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(&self.w.params), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        let mut contents: Vec<(i64, String)> = rows.collect::<std::result::Result<_, _>>()?;
        if contents.len() > max {
            return Ok(None);
        }
        contents.sort_unstable_by_key(|(key, _)| *key);
        Ok(Some(contents))
    }

    fn document_count(&mut self) -> Result<usize> {
        if self.everything {
            // SQLite counts a table from its smallest index's pages instead of reading every
            // row (and its embedding).
            let mut stmt = self.conn.prepare_cached("SELECT count(*) FROM memories")?;
            let n: i64 = stmt.query_row([], |r| r.get(0))?;
            return Ok(n.max(0) as usize);
        }
        let sql = format!("SELECT count(*) FROM {}", self.w.rows());
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n: i64 = stmt.query_row(rusqlite::params_from_iter(self.w.params.iter()), |r| {
            r.get(0)
        })?;
        Ok(n.max(0) as usize)
    }

    fn document_frequency(&mut self, term: &str) -> Result<usize> {
        let fts_query = text::fts_any(&[term.to_string()]);
        if self.everything {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?1")?;
            let df: i64 = stmt.query_row([fts_query], |r| r.get(0))?;
            return Ok(df.max(0) as usize);
        }
        let n = self.w.params.len();
        let current = format!(
            "SELECT count(*) FROM memories_fts JOIN memories m ON m.key = memories_fts.rowid
             WHERE memories_fts MATCH ?{} AND ({})",
            n + 1,
            self.current_cond()
        );
        let sql = match &self.w.as_of {
            None => current,
            Some(at) => format!(
                "SELECT ({current}) + (SELECT count(*) FROM versions_fts
                 JOIN versions m ON m.key = versions_fts.rowid
                 WHERE versions_fts MATCH ?{} AND ({}) AND {})",
                n + 1,
                self.w.sql,
                versions::past_at(at)
            ),
        };
        let mut params = self.w.params.clone();
        params.push(SqlValue::Text(fts_query));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let df: i64 = stmt.query_row(rusqlite::params_from_iter(params), |r| r.get(0))?;
        Ok(df.max(0) as usize)
    }

    fn content_candidates(&mut self, needle: &str) -> Result<Vec<(i64, String)>> {
        let n = self.w.params.len();
        let sql = format!(
            "SELECT m.key, m.content FROM {} AND instr(am_lower(m.content), ?{}) > 0
             ORDER BY m.key",
            self.w.rows(),
            n + 1
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
