//! # keyword_boost: an agent_mem hook plugin
//!
//! Re-ranks search results in favour of memories that mention configured keywords, and can
//! expand abbreviations in the query before the search runs.
//!
//! ## Exports
//! - `after_search` (hook): each hit's new score is
//!   `old score + boost × (number of distinct keywords found in its content)`; the output is
//!   `{"hits": [{"id": "…", "score": 1.08}, …]}` sorted by new score, highest first (ties
//!   keep the search's order). With `drop_unmatched`, hits mentioning no keyword are left
//!   out (and so dropped by the host). Output `{}` when no keyword is configured, or when no
//!   hit mentions one and nothing is dropped.
//! - `before_search` (hook): with config `expand`, every query word (or phrase) that is a
//!   key of the map gets its expansion appended to the query:
//!   `"flights to nyc"` → `{"query": "flights to nyc new york"}`. Expansions already in
//!   the query are not repeated. Output `{}` when nothing changes.
//!
//! Matching is case-insensitive (Unicode lowercase) and by whole words: a keyword matches
//! where the characters next to it are not letters or digits, so `ai` does not match
//! `said`; keywords may be phrases (`new york`). On a side where the keyword begins or ends
//! with a CJK character (Chinese, Japanese, Korean) no boundary is required, since those
//! scripts do not separate words: `咖啡` matches `我喜欢喝咖啡`, and `pizza` matches
//! `我爱pizza`.
//!
//! ## Capabilities
//! - `config` (required to read the keys below; without it the plugin changes nothing).
//!
//! ## Config keys
//! - `keywords`: comma-separated keywords, e.g. `rust,wasm,new york`. Required by
//!   `after_search` (without it: `{}`).
//! - `boost` (optional): float added per matched keyword, default `0.25`.
//! - `drop_unmatched` (optional, `true`/`false`): leave out hits that match no keyword.
//! - `expand` (optional, for `before_search`): a JSON object as text mapping a word or
//!   phrase to its expansion, e.g. `{"nyc": "new york", "js": "javascript"}`; a value may
//!   also be an array of expansions.

use extism_pdk::*;
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_BOOST: f64 = 0.25;

#[rustfmt::skip]
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3400..=0x4DBF      // CJK Extension A
        | 0x4E00..=0x9FFF      // CJK Unified Ideographs
        | 0xAC00..=0xD7AF      // Hangul syllables
        | 0xF900..=0xFAFF      // CJK Compatibility Ideographs
        | 0x20000..=0x3134F)   // CJK Extensions B–G
}

/// A character that continues a word of a space-separated script.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// Does `keyword` (already lowercase) occur in `text` (already lowercase) as a whole word?
fn contains_word(text: &str, keyword: &str) -> bool {
    let (Some(first), Some(last)) = (keyword.chars().next(), keyword.chars().next_back()) else {
        return false;
    };
    text.match_indices(keyword).any(|(pos, _)| {
        let before = text[..pos].chars().next_back();
        let after = text[pos + keyword.len()..].chars().next();
        let left = is_cjk(first) || !before.is_some_and(is_word_char);
        let right = is_cjk(last) || !after.is_some_and(is_word_char);
        left && right
    })
}

fn flag(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    })
}

fn keywords() -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    if let Some(list) = config::get("keywords")? {
        for kw in list.split(',') {
            // Inner runs of white space count as one space, like in the text of a phrase.
            let kw = kw
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !kw.is_empty() && !out.contains(&kw) {
                out.push(kw);
            }
        }
    }
    Ok(out)
}

fn boost() -> Result<f64, Error> {
    match config::get("boost")? {
        None => Ok(DEFAULT_BOOST),
        Some(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(Error::msg(format!(
                "keyword_boost: config 'boost' must be a number, got '{s}'"
            ))),
        },
    }
}

#[derive(Deserialize)]
struct Hit {
    id: String,
    #[serde(default)]
    content: String,
    score: f64,
}

#[derive(Deserialize)]
struct AfterSearch {
    hits: Vec<Hit>,
}

/// Hook: boost and re-order the hits of a search.
#[plugin_fn]
pub fn after_search(input: String) -> FnResult<Json<Value>> {
    let input: AfterSearch = serde_json::from_str(&input)
        .map_err(|e| Error::msg(format!("keyword_boost after_search: malformed input: {e}")))?;
    let keywords = keywords()?;
    if keywords.is_empty() {
        return Ok(Json(json!({})));
    }
    let boost = boost()?;
    let drop_unmatched = flag(config::get("drop_unmatched")?);

    let mut any_match = false;
    let mut hits: Vec<(String, f64)> = Vec::with_capacity(input.hits.len());
    for hit in input.hits {
        let content = hit.content.to_lowercase();
        let matched = keywords
            .iter()
            .filter(|kw| contains_word(&content, kw))
            .count();
        any_match |= matched > 0;
        if matched == 0 && drop_unmatched {
            continue;
        }
        hits.push((hit.id, hit.score + boost * matched as f64));
    }
    if !any_match && !drop_unmatched {
        return Ok(Json(json!({})));
    }
    // Stable: equal scores keep the search's order.
    hits.sort_by(|a, b| b.1.total_cmp(&a.1));
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|(id, score)| json!({"id": id, "score": score}))
        .collect();
    Ok(Json(json!({ "hits": hits })))
}

#[derive(Deserialize)]
struct BeforeSearch {
    query: String,
}

/// The `expand` config: lowercase key → expansions (keys in sorted order).
fn expansions() -> Result<Vec<(String, Vec<String>)>, Error> {
    let Some(text) = config::get("expand")? else {
        return Ok(Vec::new());
    };
    let bad = |why: String| Error::msg(format!("keyword_boost: config 'expand' {why}"));
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "must be a JSON object of strings, like {{\"nyc\": \"new york\"}}: {e}"
        ))
    })?;
    let mut out = Vec::new();
    for (key, value) in map {
        let values: Vec<String> = match value {
            Value::String(s) => vec![s],
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(bad(format!(
                        "value for '{key}' must hold strings, got {other}"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(bad(format!(
                    "value for '{key}' must be a string or an array of strings, got {other}"
                )))
            }
        };
        let key = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if !key.is_empty() {
            out.push((key, values));
        }
    }
    Ok(out)
}

/// Hook: append the expansions of abbreviations found in the query.
#[plugin_fn]
pub fn before_search(input: String) -> FnResult<Json<Value>> {
    let input: BeforeSearch = serde_json::from_str(&input)
        .map_err(|e| Error::msg(format!("keyword_boost before_search: malformed input: {e}")))?;
    let expansions = expansions()?;
    let mut query = input.query.clone();
    // Compare against the query with its white space normalised, so phrases match.
    let mut lower = input
        .query
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    for (key, values) in &expansions {
        if !contains_word(&lower, key) {
            continue;
        }
        for value in values {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            let value_lower = value.to_lowercase();
            if value.is_empty() || contains_word(&lower, &value_lower) {
                continue;
            }
            let trimmed = query.trim_end().len();
            query.truncate(trimmed);
            query.push(' ');
            query.push_str(&value);
            lower.push(' ');
            lower.push_str(&value_lower);
        }
    }
    if query == input.query {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({ "query": query })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert!(contains_word("i said rust", "rust"));
        assert!(!contains_word("i said", "ai"));
        assert!(contains_word("flights to new york!", "new york"));
        assert!(contains_word("我喜欢喝咖啡", "咖啡"));
        assert!(contains_word("我爱pizza", "pizza"));
        assert!(!contains_word("pizzas", "pizza"));
        assert!(contains_word("grüße aus köln", "köln"));
    }
}
