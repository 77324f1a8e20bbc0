//! # tagger: an agent_mem hook plugin
//!
//! Tags memories by topic when they are stored, so that searches can filter on
//! `metadata.tags` (and on `metadata.lang`).
//!
//! ## Exports
//! - `on_add` (hook): input `{"content": "…", "metadata": {…}, …}`; output
//!   `{"metadata": {…}}`, the whole new metadata, with
//!   - `"tags"`: the topics whose keywords occur in the content, merged with the existing
//!     `tags` (an array of strings, or a single string), without duplicates, sorted. A
//!     `tags` value of any other type is left untouched (no tags are added to it).
//!   - `"lang"`: `"cjk"` when the content is mostly Chinese/Japanese/Korean (more CJK
//!     characters than words in other scripts), else `"latin"`; set only when the metadata
//!     has no `lang` yet and the content has at least one letter.
//!
//!   Output `{}` when no tag is added and `lang` is not set.
//!
//! Built-in rules (topic: keywords):
//! - food: eat, food, restaurant, vegetarian, vegan, pizza, coffee, tea, lunch, dinner,
//!   breakfast, 咖啡, 吃, 餐厅, 素食
//! - travel: flight, trip, hotel, travel, visa, airport, vacation, passport, 旅行, 酒店, 机票
//! - work: meeting, deadline, project, boss, office, colleague, job, 工作, 会议, 项目
//! - health: allergy, allergic, doctor, medicine, gym, hospital, diet, 过敏, 医生, 健身
//! - family: mother, father, sister, brother, kids, children, son, daughter, wife, husband,
//!   mom, dad, 妈妈, 爸爸, 孩子
//!
//! Keywords match case-insensitively (Unicode lowercase). A keyword in a space-separated
//! script matches whole words only, also with a plural `s`/`es` (`hotel` matches "Hotels",
//! not "hotelier"; `eat` does not match "great"); a CJK keyword matches anywhere in the text
//! (`吃` matches "我不吃肉").
//!
//! ## Capabilities
//! - `config` to read `rules` (without it only the built-in rules apply).
//!
//! ## Config keys
//! - `rules` (optional): a JSON object as text, `{"tag": ["keyword", …], …}`. A tag that
//!   is also built in gets these keywords instead of the built-in ones (an empty array turns
//!   it off); other tags are added. Example: `{"pets": ["dog", "cat", "猫"], "work": []}`.

use extism_pdk::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[rustfmt::skip]
const BUILT_IN: &[(&str, &[&str])] = &[
    ("food", &["eat", "food", "restaurant", "vegetarian", "vegan", "pizza", "coffee", "tea",
        "lunch", "dinner", "breakfast", "咖啡", "吃", "餐厅", "素食"]),
    ("travel", &["flight", "trip", "hotel", "travel", "visa", "airport", "vacation", "passport",
        "旅行", "酒店", "机票"]),
    ("work", &["meeting", "deadline", "project", "boss", "office", "colleague", "job", "工作",
        "会议", "项目"]),
    ("health", &["allergy", "allergic", "doctor", "medicine", "gym", "hospital", "diet", "过敏",
        "医生", "健身"]),
    ("family", &["mother", "father", "sister", "brother", "kids", "children", "son", "daughter",
        "wife", "husband", "mom", "dad", "妈妈", "爸爸", "孩子"]),
];

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

/// Does `keyword` (lowercase) occur in `text` (lowercase)? Whole words (plural allowed) on
/// the sides where the keyword is not CJK.
fn mentions(text: &str, keyword: &str) -> bool {
    let (Some(first), Some(last)) = (keyword.chars().next(), keyword.chars().next_back()) else {
        return false;
    };
    text.match_indices(keyword).any(|(pos, _)| {
        let before = text[..pos].chars().next_back();
        let left = is_cjk(first) || !before.is_some_and(is_word_char);
        let mut rest = &text[pos + keyword.len()..];
        if !is_cjk(last) {
            if let Some(r) = rest.strip_prefix("es").or_else(|| rest.strip_prefix('s')) {
                if !r.chars().next().is_some_and(is_word_char) {
                    rest = r;
                }
            }
        }
        let right = is_cjk(last) || !rest.chars().next().is_some_and(is_word_char);
        left && right
    })
}

/// "cjk", "latin", or None when the text has no letters.
fn script(text: &str) -> Option<&'static str> {
    let cjk = text.chars().filter(|c| is_cjk(*c)).count();
    let words = text
        .split(|c: char| !is_word_char(c))
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count();
    match (cjk, words) {
        (0, 0) => None,
        _ if cjk > words => Some("cjk"),
        _ => Some("latin"),
    }
}

/// The rules: built-in ones, overridden or extended by config `rules`.
fn rules() -> Result<Vec<(String, Vec<String>)>, Error> {
    let mut rules: Vec<(String, Vec<String>)> = BUILT_IN
        .iter()
        .map(|(tag, kws)| (tag.to_string(), kws.iter().map(|k| k.to_string()).collect()))
        .collect();
    let Some(text) = config::get("rules")? else {
        return Ok(rules);
    };
    let bad = |why: String| Error::msg(format!("tagger: config 'rules' {why}"));
    let map: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "must be a JSON object of keyword arrays, like {{\"pets\": [\"dog\", \"cat\"]}}: {e}"
        ))
    })?;
    for (tag, value) in map {
        let Value::Array(items) = value else {
            return Err(bad(format!(
                "value for '{tag}' must be an array of strings, got {value}"
            )));
        };
        let kws = items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(bad(format!(
                    "value for '{tag}' must hold strings, got {other}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        match rules.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, existing)) => *existing = kws,
            None => rules.push((tag, kws)),
        }
    }
    Ok(rules)
}

#[derive(Deserialize)]
struct AddInput {
    content: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// Hook: tag a memory about to be stored.
#[plugin_fn]
pub fn on_add(input: String) -> FnResult<Json<Value>> {
    let input: AddInput = serde_json::from_str(&input)
        .map_err(|e| Error::msg(format!("tagger on_add: malformed input: {e}")))?;
    let rules = rules()?;
    let mut metadata = input.metadata.unwrap_or_default();
    let mut changed = false;

    let text = input.content.to_lowercase();
    let found: Vec<&str> = rules
        .iter()
        .filter(|(_, kws)| {
            kws.iter().any(|kw| {
                let kw = kw
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                mentions(&text, &kw)
            })
        })
        .map(|(tag, _)| tag.as_str())
        .collect();

    // Existing tags: an array of strings or one string; anything else is left alone.
    let existing: Option<Vec<String>> = match metadata.get("tags") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => None,
    };
    if let Some(mut tags) = existing {
        let new: Vec<&str> = found
            .into_iter()
            .filter(|t| !tags.iter().any(|e| e == t))
            .collect();
        if !new.is_empty() {
            tags.extend(new.into_iter().map(str::to_string));
            tags.sort();
            tags.dedup();
            metadata.insert("tags".to_string(), json!(tags));
            changed = true;
        }
    }

    if !metadata.contains_key("lang") {
        if let Some(lang) = script(&input.content) {
            metadata.insert("lang".to_string(), json!(lang));
            changed = true;
        }
    }

    if !changed {
        return Ok(Json(json!({})));
    }
    Ok(Json(json!({ "metadata": metadata })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(mentions("two hotels", "hotel"));
        assert!(mentions("buses", "bus"));
        assert!(!mentions("hotelier", "hotel"));
        assert!(!mentions("great", "eat"));
        assert!(mentions("我不吃肉", "吃"));
        assert!(mentions("在starbucks喝coffee", "coffee"));
    }

    #[test]
    fn scripts() {
        assert_eq!(script("我在Starbucks喝咖啡"), Some("cjk"));
        assert_eq!(script("I like 咖啡"), Some("latin"));
        assert_eq!(script("東京でラーメンを食べた"), Some("cjk"));
        assert_eq!(script("+1 555 123 4567"), None);
        assert_eq!(script("Привет мир"), Some("latin"));
    }
}
