//! The text index in PostgreSQL: each memory's keyword index terms in a GIN-indexed
//! `text[]`, BM25 statistics in tables kept by the writing transactions, and the fuzzy
//! vocabulary trigram-indexed by pg_trgm. The engines of [`crate::search::keyword`] run
//! over the three primitives answered here.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};

use postgres::types::ToSql;

use super::filter::Where;
use super::pool::{get, Session};
use crate::error::Result;
use crate::store::TextIndex;
use crate::text;

/// Queries with up to this many terms score rows by plain expressions, one per term;
/// longer ones (fuzzy search's expansions) by a subquery per row.
const INLINE_TERMS: usize = 32;

/// Shards of the store totals (rows of `agentmem_text_totals`).
const TOTAL_SHARDS: u64 = 16;

/// A random number, for picking a shard and for retry backoff (no `rand` dependency: the
/// standard library's hasher keys are random per process and per `RandomState`).
pub(super) fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// Changes to the BM25 statistics and the fuzzy vocabulary gathered over a transaction and
/// applied at its end, in term order: every writer locks the statistics rows in the same
/// order, so two writers cannot deadlock on them, and holds them only briefly.
#[derive(Default)]
pub(super) struct TextDelta {
    /// Document-frequency change of each index term.
    df: BTreeMap<String, i64>,
    /// Document-frequency change of each vocabulary word (which counts every kept
    /// version, so that a typo finds an old version's word too).
    vocabulary: BTreeMap<String, i64>,
    docs: i64,
    length: i64,
    /// The same for the past versions' own statistics (see [`TextDelta::add_past`]).
    past_df: BTreeMap<String, i64>,
    past_docs: i64,
    past_length: i64,
}

impl TextDelta {
    /// Counts a memory in (`sign` 1) or out (-1): its index terms (as stored) and the
    /// vocabulary of its content.
    pub(super) fn add(&mut self, content: &str, terms: &[String], sign: i64) {
        let distinct: BTreeSet<&String> = terms.iter().collect();
        for term in distinct {
            *self.df.entry(term.clone()).or_default() += sign;
        }
        for word in text::fuzzy_vocabulary(content) {
            *self.vocabulary.entry(word).or_default() += sign;
        }
        self.docs += sign;
        self.length += sign * terms.len() as i64;
    }

    /// Counts a version in to the past versions (kept until pruned or a reset): its index
    /// terms in the past's own BM25 statistics, and the vocabulary of its content.
    pub(super) fn add_past(&mut self, content: &str, terms: &[String]) {
        self.count_past(content, terms, 1);
    }

    /// Counts a pruned past version out.
    pub(super) fn remove_past(&mut self, content: &str, terms: &[String]) {
        self.count_past(content, terms, -1);
    }

    fn count_past(&mut self, content: &str, terms: &[String], sign: i64) {
        let distinct: BTreeSet<&String> = terms.iter().collect();
        for term in distinct {
            *self.past_df.entry(term.clone()).or_default() += sign;
        }
        for word in text::fuzzy_vocabulary(content) {
            *self.vocabulary.entry(word).or_default() += sign;
        }
        self.past_docs += sign;
        self.past_length += sign * terms.len() as i64;
    }

    /// Writes the changes (and forgets them).
    pub(super) fn apply(&mut self, s: &mut Session<'_>) -> Result<()> {
        let delta = std::mem::take(self);
        // A term's current and past frequencies share its row: one upsert, one lock.
        let mut df: BTreeMap<String, [i64; 2]> = BTreeMap::new();
        for (term, d) in delta.df {
            df.entry(term).or_default()[0] = d;
        }
        for (term, d) in delta.past_df {
            df.entry(term).or_default()[1] = d;
        }
        apply_counts(s, "agentmem_term_stats", df, true)?;
        let vocabulary = delta.vocabulary.into_iter().map(|(w, d)| (w, [d, 0]));
        apply_counts(s, "agentmem_vocabulary", vocabulary.collect(), false)?;
        if delta.docs != 0 || delta.length != 0 || delta.past_docs != 0 || delta.past_length != 0 {
            let shard = (random() % TOTAL_SHARDS) as i16;
            if delta.past_docs == 0 && delta.past_length == 0 {
                s.execute(
                    "UPDATE agentmem_text_totals
                     SET docs = docs + $1::int8, length = length + $2::int8
                     WHERE shard = $3::int2",
                    &[&delta.docs, &delta.length, &shard],
                )?;
            } else {
                s.execute(
                    "UPDATE agentmem_text_totals
                     SET docs = docs + $1::int8, length = length + $2::int8,
                         past_docs = past_docs + $3::int8, past_length = past_length + $4::int8
                     WHERE shard = $5::int2",
                    &[
                        &delta.docs,
                        &delta.length,
                        &delta.past_docs,
                        &delta.past_length,
                        &shard,
                    ],
                )?;
            }
        }
        Ok(())
    }
}

/// Adds `[current, past]` document-frequency changes to `table`'s rows; `has_past` when the
/// table has a past column (the vocabulary has none: its changes have 0 there).
fn apply_counts(
    s: &mut Session<'_>,
    table: &str,
    counts: BTreeMap<String, [i64; 2]>,
    has_past: bool,
) -> Result<()> {
    let changed = counts.into_iter().filter(|(_, d)| *d != [0, 0]);
    let (terms, deltas): (Vec<String>, Vec<[i64; 2]>) = changed.unzip();
    if terms.is_empty() {
        return Ok(());
    }
    let shrinking = deltas.iter().any(|d| d[0] < 0);
    let current: Vec<i64> = deltas.iter().map(|d| d[0]).collect();
    if deltas.iter().all(|d| d[1] == 0) {
        s.execute(
            &format!(
                "INSERT INTO {table} AS t (term, df)
                 SELECT u.term, u.df FROM unnest($1::text[], $2::int8[]) AS u(term, df)
                 ORDER BY u.term COLLATE \"C\"
                 ON CONFLICT (term) DO UPDATE SET df = t.df + excluded.df"
            ),
            &[&terms, &current],
        )?;
    } else {
        let past: Vec<i64> = deltas.iter().map(|d| d[1]).collect();
        s.execute(
            &format!(
                "INSERT INTO {table} AS t (term, df, past_df)
                 SELECT u.term, u.df, u.past_df
                 FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(term, df, past_df)
                 ORDER BY u.term COLLATE \"C\"
                 ON CONFLICT (term) DO UPDATE
                 SET df = t.df + excluded.df, past_df = t.past_df + excluded.past_df"
            ),
            &[&terms, &current, &past],
        )?;
    }
    if shrinking {
        // Words no memory holds any more leave the vocabulary, as in SQLite's store; a
        // term still held by a past version keeps its row.
        let kept = if has_past { " AND past_df <= 0" } else { "" };
        s.execute(
            &format!("DELETE FROM {table} WHERE term = ANY($1::text[]) AND df <= 0{kept}"),
            &[&terms],
        )?;
    }
    Ok(())
}

/// The text primitives over one read transaction, for one selection.
pub(super) struct PgText<'s, 'c> {
    pub(super) s: &'s mut Session<'c>,
    pub(super) w: &'s Where,
    /// The `COLLATE` clause of Unicode lower-casing.
    pub(super) lower: &'static str,
}

/// The selection's parameters followed by `extra`, and the number of the first extra.
fn params<'a>(
    w: &'a Where,
    extra: &[&'a (dyn ToSql + Sync)],
) -> (Vec<&'a (dyn ToSql + Sync)>, usize) {
    let mut params = w.refs();
    let first = params.len() + 1;
    params.extend_from_slice(extra);
    (params, first)
}

/// One table that [`term_sql`] scores, with its own BM25 statistics: the current memories,
/// or (as of a past moment) the past versions, as SQLite scores each in its own index.
struct Part {
    /// The table, aliased `m`.
    table: &'static str,
    /// The key reported: a past version's is negated.
    key: &'static str,
    /// The prefix of the statistics' columns (in `agentmem_term_stats`,
    /// `agentmem_text_totals`, and the query's `stats` and `weights`).
    prefix: &'static str,
    /// The selection's condition over the table.
    cond: String,
}

/// The statement of [`TextIndex::term_candidates`] for `count` terms in parameter `$n`
/// (the limit in `$n + 1`), after the selection's parameters.
fn term_sql(w: &Where, count: usize, all: bool, n: usize) -> String {
    let matching = if all { "@>" } else { "&&" };
    let mut parts = vec![Part {
        table: "agentmem_memories",
        key: "m.key",
        prefix: "",
        cond: w.current(),
    }];
    if let Some(cond) = w.past() {
        parts.push(Part {
            table: "agentmem_versions",
            key: "-m.key",
            prefix: "past_",
            cond,
        });
    }
    let with = |f: &dyn Fn(&str) -> String| -> String {
        let all: Vec<String> = parts.iter().map(|p| f(p.prefix)).collect();
        all.join(", ")
    };
    // The statistics and each term's idf, computed once per query.
    let stats = with(&|p| {
        format!(
            "sum({p}docs)::float8 AS {p}n,
             sum({p}length)::float8 / nullif(sum({p}docs), 0)::float8 AS {p}avgdl"
        )
    });
    let idf = with(&|p| {
        let df = format!("coalesce(d.{p}df, 0)");
        format!(
            "CASE WHEN (s.{p}n - {df} + 0.5) / ({df} + 0.5) > 1
                  THEN ln((s.{p}n - {df} + 0.5) / ({df} + 0.5))
                  ELSE 1e-6 END AS {p}idf"
        )
    });
    let prelude = format!(
        "WITH stats AS MATERIALIZED (SELECT {stats} FROM agentmem_text_totals),
         weights AS MATERIALIZED (
             SELECT q.term, q.ord, {idf}
             FROM unnest(${n}::text[]) WITH ORDINALITY AS q(term, ord)
             CROSS JOIN stats s
             LEFT JOIN agentmem_term_stats d ON d.term = q.term)"
    );
    // k1 · (1 − b + b · D / avgdl), with float8 constants (a bare 0.75 is numeric, slow).
    let k = |p: &str| {
        format!(
            "1.2::float8 * (0.25::float8 \
             + 0.75::float8 * cardinality(m.terms)::float8 / s.{p}avgdl)"
        )
    };
    let (prelude, scored): (String, Vec<String>) = if count <= INLINE_TERMS {
        // Each term's frequency in the row by array_positions, in plain expressions: no
        // subquery per row. OFFSET 0 keeps the frequencies computed once.
        let tfs: Vec<String> = (1..=count)
            .map(|i| {
                format!(
                    "cardinality(array_positions(m.terms, (${n}::text[])[{i}]))::float8 AS tf{i}"
                )
            })
            .collect();
        let idfs: Vec<String> = (1..=count)
            .map(|i| {
                with(&|p| format!("(SELECT {p}idf FROM weights WHERE ord = {i}) AS {p}idf{i}"))
            })
            .collect();
        let prelude = format!(
            "{prelude}, idfs AS MATERIALIZED (SELECT {})",
            idfs.join(", ")
        );
        let scored = parts
            .iter()
            .map(|part| {
                let Part {
                    table,
                    key,
                    prefix: p,
                    cond,
                } = part;
                let sum: Vec<String> = (1..=count)
                    .map(|i| format!("i.{p}idf{i} * h.tf{i} * 2.2::float8 / (h.tf{i} + h.k)"))
                    .collect();
                format!(
                    "SELECT h.key, h.content, coalesce({}, 0)::float8 AS score
                     FROM (SELECT {key} AS key, m.content, {} AS k, {}
                           FROM {table} m CROSS JOIN stats s
                           WHERE m.terms {matching} ${n}::text[] AND ({cond}) OFFSET 0) h
                     CROSS JOIN idfs i",
                    sum.join(" + "),
                    k(p),
                    tfs.join(", "),
                )
            })
            .collect();
        (prelude, scored)
    } else {
        let scored = parts
            .iter()
            .map(|part| {
                let Part {
                    table,
                    key,
                    prefix: p,
                    cond,
                } = part;
                format!(
                    "SELECT {key} AS key, m.content,
                            coalesce((
                                SELECT sum(w.{p}idf * c.tf * 2.2::float8 / (c.tf + {}))
                                FROM (SELECT t AS term, count(*)::float8 AS tf
                                      FROM unnest(m.terms) AS t GROUP BY t) c
                                JOIN weights w ON w.term = c.term), 0)::float8 AS score
                     FROM {table} m CROSS JOIN stats s
                     WHERE m.terms {matching} ${n}::text[] AND ({cond})",
                    k(p)
                )
            })
            .collect();
        (prelude, scored)
    };
    // Current and past rows compete for the limit, each scored by its own statistics.
    let body = match scored.as_slice() {
        [one] => one.clone(),
        all => format!("SELECT * FROM ({}) u", all.join(" UNION ALL ")),
    };
    format!(
        "{prelude} {body} ORDER BY score DESC, key LIMIT ${}::int8",
        n + 1
    )
}

impl TextIndex for PgText<'_, '_> {
    /// BM25 as SQLite FTS5 computes it: over the whole store, N memories of average length
    /// avgdl, a term held by df of them weighs idf = ln((N − df + 0.5) / (df + 0.5)) (at
    /// least 1e-6), and a memory of length D holding it tf times scores
    /// idf · tf · (k1 + 1) / (tf + k1 · (1 − b + b · D / avgdl)), k1 = 1.2, b = 0.75,
    /// summed over the query terms.
    fn term_candidates(
        &mut self,
        terms: &[String],
        all: bool,
        limit: usize,
    ) -> Result<Vec<(i64, String, f32)>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let terms: Vec<String> = terms.to_vec();
        let limit = limit.min(i64::MAX as usize) as i64;
        let w = self.w;
        let (params, n) = params(w, &[&terms, &limit]);
        let sql = term_sql(w, terms.len(), all, n);
        let rows = self.s.query(&sql, &params)?;
        rows.iter()
            .map(|r| {
                let score: f64 = get(r, 2)?;
                Ok((get(r, 0)?, get(r, 1)?, score as f32))
            })
            .collect()
    }

    fn selection_contents(&mut self, max: usize) -> Result<Option<Vec<(i64, String)>>> {
        let bound = max.saturating_add(1).min(i64::MAX as usize) as i64;
        let w = self.w;
        let (params, n) = params(w, &[&bound]);
        let sql = format!(
            "SELECT m.key, m.content FROM {} ORDER BY m.key LIMIT ${n}::int8",
            self.w.rows()
        );
        let rows = self.s.query(&sql, &params)?;
        let contents = rows
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect::<Result<Vec<(i64, String)>>>()?;
        Ok((contents.len() <= max).then_some(contents))
    }

    fn document_count(&mut self) -> Result<usize> {
        let sql = format!("SELECT count(*) FROM {}", self.w.rows());
        let rows = self.s.query(&sql, &self.w.refs())?;
        let n: i64 = match rows.first() {
            Some(r) => get(r, 0)?,
            None => 0,
        };
        Ok(n.max(0) as usize)
    }

    fn document_frequency(&mut self, term: &str) -> Result<usize> {
        let terms = vec![term.to_string()];
        let w = self.w;
        let (params, n) = params(w, &[&terms]);
        let current = format!(
            "SELECT count(*) FROM agentmem_memories m
             WHERE m.terms @> ${n}::text[] AND ({})",
            self.w.current()
        );
        let sql = match self.w.past() {
            None => current,
            // Each table through its own term index.
            Some(past) => format!(
                "SELECT ({current}) + (SELECT count(*) FROM agentmem_versions m
                 WHERE m.terms @> ${n}::text[] AND ({past}))"
            ),
        };
        let rows = self.s.query(&sql, &params)?;
        let df: i64 = match rows.first() {
            Some(r) => get(r, 0)?,
            None => 0,
        };
        Ok(df.max(0) as usize)
    }

    fn content_candidates(&mut self, needle: &str) -> Result<Vec<(i64, String)>> {
        let needle = needle.to_string();
        let w = self.w;
        let (params, n) = params(w, &[&needle]);
        let sql = format!(
            "SELECT m.key, m.content FROM {} AND strpos(lower(m.content {}), ${n}::text) > 0
             ORDER BY m.key",
            self.w.rows(),
            self.lower
        );
        let rows = self.s.query(&sql, &params)?;
        rows.iter().map(|r| Ok((get(r, 0)?, get(r, 1)?))).collect()
    }

    fn vocabulary_candidates(&mut self, word: &str, max_typos: usize) -> Result<Vec<String>> {
        // Words sharing a trigram with `word`, as SQLite's FTS5 trigram table finds them:
        // `LIKE '%abc%'` is what pg_trgm's GIN index answers, for each trigram. The closest
        // (by pg_trgm's similarity) come first when there are many.
        let like = |t: &str| {
            let escaped: String = t
                .chars()
                .flat_map(|c| match c {
                    '\\' | '%' | '_' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("%{escaped}%")
        };
        let patterns: Vec<String> = text::trigrams(word).iter().map(|t| like(t)).collect();
        let word_text = word.to_string();
        let rows = if patterns.is_empty() {
            Vec::new()
        } else {
            self.s.query(
                "SELECT term FROM agentmem_vocabulary WHERE term LIKE ANY($1::text[])
                 ORDER BY similarity(term, $2::text) DESC, term LIMIT 300",
                &[&patterns, &word_text],
            )?
        };
        let mut candidates: Vec<String> = rows.iter().map(|r| get(r, 0)).collect::<Result<_>>()?;
        // One typo in a short word can break every trigram ("mmeo" shares none with "memo"),
        // so short words also look at vocabulary words of about their length that start with
        // the same letter (typos rarely hit the first letter): a range scan of the key.
        let len = word.chars().count();
        if len <= 5 {
            if let Some(first) = word.chars().next() {
                let start = first.to_string();
                let end = char::from_u32(first as u32 + 1).map(|c| c.to_string());
                let shortest = len.saturating_sub(max_typos) as i64;
                let longest = (len + max_typos) as i64;
                let rows = match &end {
                    Some(end) => self.s.query(
                        "SELECT term FROM agentmem_vocabulary
                         WHERE term >= $1::text AND term < $2::text
                           AND length(term) BETWEEN $3::int8 AND $4::int8 LIMIT 5000",
                        &[&start, end, &shortest, &longest],
                    )?,
                    None => self.s.query(
                        "SELECT term FROM agentmem_vocabulary
                         WHERE term >= $1::text
                           AND length(term) BETWEEN $2::int8 AND $3::int8 LIMIT 5000",
                        &[&start, &shortest, &longest],
                    )?,
                };
                for row in &rows {
                    candidates.push(get(row, 0)?);
                }
            }
        }
        Ok(candidates)
    }
}
