//! Reading the model's answers (facts, decisions) and turning each decision into a step,
//! with the guard-rails applied.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::request::{MemoryEventKind, Message};
use crate::error::{Error, ErrorCode, Result};
use crate::graph::{EntityRef, NewRelation};
use crate::llm::Llm;
use crate::types::{content_hash, validate_content, MemoryRecord};

/// More facts than this from one conversation is a model gone wrong.
const MAX_FACTS: usize = 64;

/// One fact's fate, as decided (before it is applied).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// Store the fact.
    Add { fact: usize },
    /// Rewrite a stored memory (an index into the memories shown) as `text`, for `fact`.
    Update {
        fact: usize,
        target: usize,
        text: String,
    },
    /// Delete a stored memory and store the fact in its place.
    Replace { fact: usize, target: usize },
    /// The fact is stored already, in this memory.
    Keep { target: KeepTarget },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum KeepTarget {
    /// A memory shown to the model.
    Shown(usize),
    /// An exact duplicate found before asking.
    Known(Box<MemoryRecord>),
}

/// The history actor of changes the model decided.
pub(super) fn actor(llm: &dyn Llm) -> String {
    format!("llm:{}", llm.label())
}

/// The conversation as the model reads it: one `role: content` line per message.
pub(super) fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| match m.observed_at {
            Some(at) => format!("{} ({}): {}", m.role, at.format("%Y-%m-%d"), m.content),
            None => format!("{}: {}", m.role, m.content),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The facts in an extraction answer: `{"facts": [...]}` (a bare list is accepted too).
/// Items that are not text are skipped; text is trimmed and exact repeats dropped.
/// A fact as the model extracted it, with the valid time it stated, if any.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fact {
    pub(super) text: String,
    pub(super) valid_from: Option<DateTime<Utc>>,
    pub(super) valid_to: Option<DateTime<Utc>>,
    /// The relations the model says the fact states (scope and sources still to set).
    pub(super) relations: Vec<NewRelation>,
}

/// A date the model gave: a year, a month, a day or an RFC 3339 time; anything else (or a
/// missing value) is no date, never a guess.
fn model_date(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?.trim();
    if let Ok(t) = crate::types::parse_time(text) {
        return Some(t);
    }
    let padded = match text.len() {
        4 => format!("{text}-01-01"),
        7 => format!("{text}-01"),
        _ => return None,
    };
    crate::types::parse_time(&padded).ok()
}

pub(super) fn read_facts(answer: Value) -> Result<Vec<Fact>> {
    let list = match answer {
        Value::Object(mut o) => o.remove("facts").ok_or_else(|| {
            Error::new(
                ErrorCode::Llm,
                "fact extraction: the model's answer has no \"facts\" list",
            )
        })?,
        list @ Value::Array(_) => list,
        _ => Value::Null,
    };
    let Value::Array(items) = list else {
        return Err(Error::new(
            ErrorCode::Llm,
            "fact extraction: \"facts\" in the model's answer is not a list",
        ));
    };
    let mut facts: Vec<Fact> = Vec::new();
    for item in items {
        let (text, valid_from, valid_to, relations) = match item {
            Value::String(s) => (s, None, None, Vec::new()),
            Value::Object(mut o) => match o.remove("fact").or_else(|| o.remove("text")) {
                Some(Value::String(s)) => (
                    s,
                    model_date(o.get("valid_from")),
                    model_date(o.get("valid_to")),
                    model_relations(o.get("relations")),
                ),
                _ => continue,
            },
            _ => continue,
        };
        let text = text.trim().to_string();
        if text.is_empty() || facts.iter().any(|f| f.text == text) {
            continue;
        }
        // An end before the start is a misreading: the end is dropped.
        let valid_to = valid_to.filter(|to| valid_from.is_none_or(|from| from <= *to));
        validate_content(&text).map_err(|e| {
            Error::new(
                ErrorCode::Llm,
                format!(
                    "fact extraction: a fact in the model's answer {}",
                    e.message()
                ),
            )
        })?;
        facts.push(Fact {
            text,
            valid_from,
            valid_to,
            relations,
        });
    }
    if facts.len() > MAX_FACTS {
        return Err(Error::new(
            ErrorCode::Llm,
            format!(
                "fact extraction: the model returned {} facts (at most {MAX_FACTS} per call)",
                facts.len()
            ),
        ));
    }
    Ok(facts)
}

/// The relations of a fact as the model gave them: each needs a subject, a predicate and
/// an object or a value, all strings; anything else is skipped (names and predicates are
/// checked when they are stored).
fn model_relations(value: Option<&Value>) -> Vec<NewRelation> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    let text = |o: &serde_json::Map<String, Value>, key: &str| {
        o.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    items
        .iter()
        .filter_map(|item| {
            let o = item.as_object()?;
            let end = |name: Option<String>, kind: &str| {
                name.map(|name| EntityRef::Name {
                    name,
                    entity_type: text(o, kind),
                })
            };
            let subject = end(text(o, "subject"), "subject_type")?;
            let object = end(text(o, "object"), "object_type");
            let value = if object.is_none() {
                Some(text(o, "value")?)
            } else {
                None
            };
            Some(NewRelation {
                subject,
                predicate: text(o, "predicate")?,
                object,
                value,
                scope: Default::default(),
                valid_from: None,
                valid_to: None,
                confidence: None,
                sources: Vec::new(),
            })
        })
        .collect()
}

/// One decision as the model gave it, with its id checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decision {
    event: MemoryEventKind,
    /// An index into the memories shown; `None` when missing or invented.
    target: Option<usize>,
    text: Option<String>,
}

/// The decisions in an answer, keyed by fact number. Entries that name no known fact or no
/// known event are skipped; the first decision of a fact wins; any other key is ignored.
pub(super) fn read_decisions(
    answer: Value,
    facts: usize,
    shown: usize,
) -> Result<HashMap<usize, Decision>> {
    let list = match answer {
        Value::Object(mut o) => o.remove("decisions").unwrap_or(Value::Null),
        list @ Value::Array(_) => list,
        _ => Value::Null,
    };
    let Value::Array(items) = list else {
        return Err(Error::new(
            ErrorCode::Llm,
            "memory decisions: the model's answer has no \"decisions\" list",
        ));
    };
    let index = |v: Option<&Value>| -> Option<usize> {
        match v? {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let mut out = HashMap::new();
    for item in items {
        let Value::Object(o) = item else { continue };
        let Some(fact) = index(o.get("fact")).filter(|&f| f < facts) else {
            continue;
        };
        let event = match o.get("event").and_then(Value::as_str).map(str::trim) {
            Some(e) if e.eq_ignore_ascii_case("add") => MemoryEventKind::Add,
            Some(e) if e.eq_ignore_ascii_case("update") => MemoryEventKind::Update,
            Some(e) if e.eq_ignore_ascii_case("delete") => MemoryEventKind::Delete,
            Some(e) if e.eq_ignore_ascii_case("none") || e.eq_ignore_ascii_case("noop") => {
                MemoryEventKind::None
            }
            _ => continue,
        };
        let target = index(o.get("id")).filter(|&t| t < shown);
        let text = o
            .get("text")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        out.entry(fact).or_insert(Decision {
            event,
            target,
            text,
        });
    }
    Ok(out)
}

/// Turns one fact's decision into a step, applying the guard-rails: a fact stored word for
/// word is kept as it is, a protected memory (one that states a fact of this call) is never
/// rewritten or deleted, a memory is changed by one fact at most, and an unusable decision
/// falls back to storing the fact.
pub(super) fn resolve(
    fact: usize,
    text: &str,
    decision: Option<&Decision>,
    shown: &[MemoryRecord],
    protected: &HashSet<usize>,
    claimed: &mut HashSet<usize>,
    nearest: Option<usize>,
) -> Step {
    // Stored word for word (in a wider part of the scope): nothing to do, whatever the model
    // said. This is what keeps a repeated fact from ever being deleted.
    let hash = content_hash(text);
    if let Some(t) = shown.iter().position(|m| m.hash == hash) {
        return Step::Keep {
            target: KeepTarget::Shown(t),
        };
    }
    let Some(d) = decision else {
        return Step::Add { fact };
    };
    let free =
        |t: usize, claimed: &HashSet<usize>| !protected.contains(&t) && !claimed.contains(&t);
    match (d.event, d.target) {
        (MemoryEventKind::Add, _) => Step::Add { fact },
        (MemoryEventKind::None, Some(t)) => Step::Keep {
            target: KeepTarget::Shown(t),
        },
        // "Already stored" without a usable id: the most similar memory is the one meant.
        (MemoryEventKind::None, None) => match nearest {
            Some(t) => Step::Keep {
                target: KeepTarget::Shown(t),
            },
            None => Step::Add { fact },
        },
        (MemoryEventKind::Update, Some(t)) if free(t, claimed) => {
            claimed.insert(t);
            let new_text = d.text.clone().unwrap_or_else(|| text.to_string());
            if validate_content(&new_text).is_err() {
                return Step::Add { fact };
            }
            if content_hash(&new_text) == shown[t].hash {
                return Step::Keep {
                    target: KeepTarget::Shown(t),
                };
            }
            Step::Update {
                fact,
                target: t,
                text: new_text,
            }
        }
        (MemoryEventKind::Delete, Some(t)) if free(t, claimed) => {
            claimed.insert(t);
            Step::Replace { fact, target: t }
        }
        // An invented id, or a memory already taken or protected: keep the fact.
        _ => Step::Add { fact },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::types::{MemoryKind, Metadata, Scope};

    fn record(content: &str) -> MemoryRecord {
        let now = Utc::now();
        MemoryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            content: content.into(),
            hash: content_hash(content),
            kind: MemoryKind::Semantic,
            scope: Scope::user("u"),
            metadata: Metadata::new(),
            created_at: now,
            updated_at: now,
            expires_at: None,
            version: 1,
            valid_from_tx: now,
            valid_to_tx: None,
            valid_from: None,
            valid_to: None,
            superseded_by: None,
        }
    }

    #[test]
    fn decisions_are_read_leniently_but_only_for_known_facts_and_ids() {
        let answer = json!({"decisions": [
            {"fact": 0, "event": "update", "id": "1", "text": " Lives in Berlin "},
            {"fact": "1", "event": "DELETE", "id": 7},
            {"fact": 0, "event": "NONE", "id": "0"},
            {"fact": 9, "event": "ADD"},
            {"fact": 2, "event": "MERGE"},
            {"fact": 2, "event": "NOOP", "id": 0, "user_id": "mallory"},
            "junk",
        ]});
        let d = read_decisions(answer, 3, 2).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[&0],
            Decision {
                event: MemoryEventKind::Update,
                target: Some(1),
                text: Some("Lives in Berlin".into())
            }
        );
        assert_eq!(d[&1].target, None, "id 7 was never shown");
        assert_eq!(d[&2].event, MemoryEventKind::None);
        assert!(read_decisions(json!({"memory": []}), 1, 1).is_err());
    }

    #[test]
    fn facts_are_trimmed_deduplicated_and_non_text_skipped() {
        let texts = |facts: Vec<Fact>| facts.into_iter().map(|f| f.text).collect::<Vec<_>>();
        let facts =
            read_facts(json!({"facts": [" Likes tea ", "Likes tea", "", 3, {"fact": "Is 30"}]}))
                .unwrap();
        assert_eq!(texts(facts), ["Likes tea", "Is 30"]);
        assert_eq!(texts(read_facts(json!(["A"])).unwrap()), ["A"]);
        assert_eq!(
            read_facts(json!({"facts": "A"})).unwrap_err().code(),
            ErrorCode::Llm
        );
        assert_eq!(read_facts(json!({})).unwrap_err().code(), ErrorCode::Llm);
        let many: Vec<String> = (0..100).map(|i| format!("fact {i}")).collect();
        assert!(read_facts(json!({ "facts": many })).is_err());
    }

    #[test]
    fn facts_keep_the_dates_the_model_stated_and_never_a_guess() {
        let facts = read_facts(json!({"facts": [
            {"text": "Moved to Berlin", "valid_from": "2024-03"},
            {"text": "Worked at Acme", "valid_from": "2019", "valid_to": "2023-06-15"},
            {"text": "Likes jazz", "valid_from": "last spring", "valid_to": null},
            {"text": "Had a cat", "valid_from": "2020-01-01", "valid_to": "2019-01-01"},
        ]}))
        .unwrap();
        let date = |s: &str| Some(crate::types::parse_time(s).unwrap());
        let times: Vec<_> = facts.iter().map(|f| (f.valid_from, f.valid_to)).collect();
        assert_eq!(
            times,
            [
                (date("2024-03-01"), None),
                (date("2019-01-01"), date("2023-06-15")),
                (None, None),
                (date("2020-01-01"), None),
            ]
        );
    }

    #[test]
    fn a_fact_is_never_lost_and_protected_memories_are_never_touched() {
        let shown = vec![record("Lives in Paris"), record("Likes pizza")];
        let protected: HashSet<usize> = [1].into();
        let mut claimed = HashSet::new();
        let delete = |t| Decision {
            event: MemoryEventKind::Delete,
            target: Some(t),
            text: None,
        };
        // DELETE of the old city stores the new one in its place.
        assert_eq!(
            resolve(
                0,
                "Lives in Berlin",
                Some(&delete(0)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Replace { fact: 0, target: 0 }
        );
        // The same memory cannot be changed twice: the second fact is added.
        assert_eq!(
            resolve(
                1,
                "Lives in Rome",
                Some(&delete(0)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 1 }
        );
        // A memory stating one of the call's facts is never deleted.
        assert_eq!(
            resolve(
                2,
                "Hates pizza",
                Some(&delete(1)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 2 }
        );
        // No decision at all: added.
        assert_eq!(
            resolve(3, "Has a cat", None, &shown, &protected, &mut claimed, None),
            Step::Add { fact: 3 }
        );
        // Deleting a memory that says exactly the fact is a NONE.
        let mut claimed = HashSet::new();
        assert_eq!(
            resolve(
                0,
                "Lives in Paris",
                Some(&delete(0)),
                &shown,
                &HashSet::new(),
                &mut claimed,
                None
            ),
            Step::Keep {
                target: KeepTarget::Shown(0)
            }
        );
        // NONE with an invented id points at the nearest memory, or adds without one.
        let none = Decision {
            event: MemoryEventKind::None,
            target: None,
            text: None,
        };
        assert_eq!(
            resolve(
                0,
                "Loves pizza",
                Some(&none),
                &shown,
                &protected,
                &mut claimed,
                Some(1)
            ),
            Step::Keep {
                target: KeepTarget::Shown(1)
            }
        );
        assert_eq!(
            resolve(
                0,
                "Loves pizza",
                Some(&none),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 0 }
        );
    }
}
