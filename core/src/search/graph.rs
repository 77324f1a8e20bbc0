//! The graph leg of hybrid search: the entities the query names in the search's scope (by
//! name or alias, exactly or with a typo), and the memories their relations came from (1 for a relation of a named entity, 1/2 for a
//! relation of one of its neighbours). It only weighs memories the other engines found, so
//! it can never show a memory the search's scope and filters leave out; and it starts from
//! them: only the relations those memories support are read, not every relation around
//! the named entities.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::graph::{fold_name, RelationTime};
use crate::store::{Edge, GraphRead, NameShape, Store};
use crate::text::{allowed_typos, edit_distance, is_cjk};
use crate::types::Scope;

/// The longest run of words tried as a name ("Mary Ann van Dyke" is four).
const MAX_NAME_WORDS: usize = 4;
/// The longest run of CJK characters tried as a name.
const MAX_CJK_NAME: usize = 6;
/// A neighbour's relations count this much of a named entity's.
const NEIGHBOUR_SHARE: f32 = 0.5;
/// The most names of a scope starting with one letter compared with the query for typos;
/// beyond that, names with that letter match exactly only.
const MAX_FUZZY_NAMES: usize = 5_000;

/// The graph score of each of the `candidates` (memory keys the engines found) the
/// query's entities lead to; empty when the query names no entity of `scope`.
pub(crate) fn scores(
    store: &dyn Store,
    query: &str,
    scope: &Scope,
    now: DateTime<Utc>,
    candidates: &HashSet<i64>,
) -> Result<HashMap<i64, f32>> {
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    let names = query_names(query);
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let candidates: Vec<i64> = candidates.iter().copied().collect();
    let mut out = HashMap::new();
    store.read_graph(&mut |g| {
        out = led_to(g, &names, scope, &candidates, now)?;
        Ok(())
    })?;
    Ok(out)
}

/// The keys of the entities of exactly `scope` that the query (as [`query_names`] split
/// it) names: by a name or alias, exactly, or, when it names none exactly, with a typo in
/// a word of four letters or more (one edit up to seven letters, two beyond; the first
/// letter kept), each once.
pub(crate) fn named_entities(
    g: &mut dyn GraphRead,
    scope: &Scope,
    names: &[String],
) -> Result<Vec<i64>> {
    let mut named = g.entity_keys_named(scope, names)?;
    if !named.is_empty() {
        // A query naming an entity exactly is taken at its word: typos are looked for only
        // when it names none (what keeps a search naming one cheap in a large graph).
        return Ok(named);
    }
    let asked: HashSet<&str> = names.iter().map(String::as_str).collect();
    // Only runs with a word long enough for a typo can name an entity with one; they are
    // compared with the names of their shape: same first letter and number of words, a
    // length within their edits (a range of the name index, filtered where it lies).
    let mut said: BTreeMap<(char, usize), Vec<Vec<&str>>> = BTreeMap::new();
    for n in names {
        let words: Vec<&str> = n.split(' ').collect();
        if words.iter().any(|w| allowed_typos(w.chars().count()) > 0) {
            if let Some(first) = n.chars().next() {
                said.entry((first, words.len())).or_default().push(words);
            }
        }
    }
    for ((first, words), runs) in said {
        // Each run's length in characters (spaces included), give or take its edits.
        let spans = runs.iter().map(|r| {
            let letters: Vec<usize> = r.iter().map(|w| w.chars().count()).collect();
            let len = letters.iter().sum::<usize>() + words - 1;
            let edits: usize = letters.iter().map(|&l| allowed_typos(l)).sum();
            (len.saturating_sub(edits), len + edits)
        });
        let shape = NameShape {
            first,
            words,
            min_len: spans.clone().map(|(lo, _)| lo).min().unwrap_or(0),
            max_len: spans.map(|(_, hi)| hi).max().unwrap_or(0),
        };
        let candidates = g.names_shaped(scope, &shape, MAX_FUZZY_NAMES + 1)?;
        if candidates.len() > MAX_FUZZY_NAMES {
            continue;
        }
        for (folded, key) in candidates {
            if named.contains(&key) || asked.contains(folded.as_str()) {
                continue;
            }
            let name: Vec<&str> = folded.split(' ').collect();
            if runs.iter().any(|s| close_to(s, &name)) {
                named.push(key);
            }
        }
    }
    Ok(named)
}

/// Whether the words `said` are the words of `name` with typos: as many words, each within
/// its allowed edits, at least one long enough to allow one, every first letter right.
fn close_to(said: &[&str], name: &[&str]) -> bool {
    if said.len() != name.len() {
        return false;
    }
    let mut typo_allowed = false;
    for (s, n) in said.iter().zip(name) {
        let allowed = allowed_typos(s.chars().count().min(n.chars().count()));
        if s.chars().next() != n.chars().next() || edit_distance(s, n, allowed).is_none() {
            return false;
        }
        typo_allowed |= allowed > 0;
    }
    typo_allowed
}

/// A relation weighs the memories it came from by 1 when it touches a named entity, and by
/// [`NEIGHBOUR_SHARE`] when it touches a neighbour of one (an entity at the other end of a
/// named entity's relation); only relations holding `now` count.
fn led_to(
    g: &mut dyn GraphRead,
    names: &[String],
    scope: &Scope,
    candidates: &[i64],
    now: DateTime<Utc>,
) -> Result<HashMap<i64, f32>> {
    let holding = |e: &Edge| RelationTime::default().admits(e.valid_from, e.valid_to, now);
    // Most memories support no relation: start from the candidates' relations.
    let sourced: Vec<(i64, Edge)> = g
        .sourced_edges(candidates)?
        .into_iter()
        .filter(|(_, e)| holding(e))
        .collect();
    if sourced.is_empty() {
        return Ok(HashMap::new());
    }
    let named: HashSet<i64> = named_entities(g, scope, names)?.into_iter().collect();
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    let named_keys: Vec<i64> = named.iter().copied().collect();
    let neighbours: HashSet<i64> = g
        .edges_touching(&named_keys)?
        .into_iter()
        .filter(holding)
        .flat_map(|e| [Some(e.subject), e.object])
        .flatten()
        .filter(|k| !named.contains(k))
        .collect();
    let touches = |e: &Edge, set: &HashSet<i64>| {
        set.contains(&e.subject) || e.object.is_some_and(|o| set.contains(&o))
    };
    let mut out: HashMap<i64, f32> = HashMap::new();
    for (memory, e) in &sourced {
        let w = if touches(e, &named) {
            1.0
        } else if touches(e, &neighbours) {
            NEIGHBOUR_SHARE
        } else {
            continue;
        };
        let slot = out.entry(*memory).or_insert(0.0);
        *slot = slot.max(w);
    }
    Ok(out)
}

/// The names a query may mention, folded as entity names are: every run of one to
/// [`MAX_NAME_WORDS`] words (edge punctuation and a possessive "'s" dropped), and every run
/// of two to [`MAX_CJK_NAME`] CJK characters.
pub(crate) fn query_names(query: &str) -> Vec<String> {
    let folded = fold_name(query);
    let words: Vec<String> = folded
        .split_whitespace()
        .map(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            let w = w
                .strip_suffix("'s")
                .or_else(|| w.strip_suffix("\u{2019}s"))
                .unwrap_or(w);
            w.to_string()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    for start in 0..words.len() {
        for len in 1..=MAX_NAME_WORDS.min(words.len() - start) {
            push(words[start..start + len].join(" "));
        }
    }
    for word in &words {
        let chars: Vec<char> = word.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !is_cjk(chars[i]) {
                i += 1;
                continue;
            }
            let run_end = (i..chars.len())
                .find(|&j| !is_cjk(chars[j]))
                .unwrap_or(chars.len());
            for start in i..run_end {
                for end in (start + 2)..=(start + MAX_CJK_NAME).min(run_end) {
                    push(chars[start..end].iter().collect());
                }
            }
            i = run_end;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_word_runs_and_cjk_runs() {
        let names = query_names("Who does Alice Smith's brother work with?");
        for expected in ["alice", "alice smith", "smith", "brother work with", "with"] {
            assert!(
                names.contains(&expected.to_string()),
                "{expected}: {names:?}"
            );
        }
        assert!(!names.contains(&"smith's".to_string()));
        let names = query_names("王小明住在哪里");
        assert!(names.contains(&"王小明".to_string()), "{names:?}");
        assert!(names.contains(&"小明".to_string()));
        assert!(query_names("  ?! ").is_empty());
    }

    #[test]
    fn a_typo_in_a_long_enough_word_is_close_to_a_name() {
        let close = |said: &str, name: &str| {
            let said: Vec<&str> = said.split(' ').collect();
            let name: Vec<&str> = name.split(' ').collect();
            close_to(&said, &name)
        };
        assert!(close("alcie", "alice"));
        assert!(close("alice smiht", "alice smith"));
        assert!(close("margarett", "margaret"));
        assert!(!close("bob", "rob"), "three letters allow no typo");
        assert!(!close("malice", "alice"), "the first letter must be right");
        assert!(!close("alice", "alice smith"), "as many words");
        assert!(!close("alxxe", "alice"));
    }
}
