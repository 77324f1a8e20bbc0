//! Reading JSON out of a model's answer.
//!
//! Models asked for JSON still wrap it in code fences, add a sentence after it, write
//! Python-style single quotes or leave a trailing comma. Those are repaired when the repair
//! is unambiguous; anything else is refused with a clear error rather than guessed at.

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

/// How much of a bad answer an error quotes.
const QUOTED_CHARS: usize = 200;

/// Parses the JSON object or array in a model's answer, repairing it when that is safe.
/// `what` names the call in the error ("fact extraction").
pub(crate) fn parse_model_json(answer: &str, what: &str) -> Result<Value> {
    let text = answer.trim().trim_start_matches('\u{feff}');
    if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(text) {
        return Ok(v);
    }
    let unfenced = strip_fences(text);
    let candidate = first_balanced(unfenced).unwrap_or(unfenced);
    if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(candidate) {
        return Ok(v);
    }
    if let Some(fixed) = normalise(candidate) {
        if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(&fixed) {
            return Ok(v);
        }
    }
    let quoted: String = text.chars().take(QUOTED_CHARS).collect();
    let ellipsis = if text.chars().count() > QUOTED_CHARS {
        "…"
    } else {
        ""
    };
    Err(Error::new(
        ErrorCode::Llm,
        format!(
            "{what}: the model's answer is not valid JSON and cannot be repaired safely: \
             {quoted:?}{ellipsis}"
        ),
    ))
}

/// The inside of the first ```` ``` ```` fence (with or without a language tag), or the text.
fn strip_fences(text: &str) -> &str {
    let Some(start) = text.find("```") else {
        return text;
    };
    let after = &text[start + 3..];
    // Skip a language tag such as `json` up to the end of the line.
    let body = match after.find('\n') {
        Some(nl)
            if after[..nl]
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric()) =>
        {
            &after[nl + 1..]
        }
        _ => after,
    };
    match body.find("```") {
        Some(end) => body[..end].trim(),
        None => body.trim(),
    }
}

/// The first balanced `{…}` or `[…]` in the text, strings (either quote) taken into account:
/// drops prose before and after the JSON.
fn first_balanced(text: &str) -> Option<&str> {
    let start = text.find(['{', '['])?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text[start..].char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(&text[start..start + i + c.len_utf8()]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Rewrites single-quoted strings as JSON strings, Python's `True`/`False`/`None` as JSON
/// literals and drops trailing commas. Returns `None` when the text is not balanced.
fn normalise(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                // A JSON string: copy it as it is.
                out.push('"');
                i += 1;
                loop {
                    let d = *chars.get(i)?;
                    out.push(d);
                    i += 1;
                    if d == '\\' {
                        out.push(*chars.get(i)?);
                        i += 1;
                    } else if d == '"' {
                        break;
                    }
                }
            }
            '\'' => {
                // A single-quoted string: re-quote it, escaping double quotes inside.
                out.push('"');
                i += 1;
                loop {
                    let d = *chars.get(i)?;
                    i += 1;
                    match d {
                        '\\' => {
                            let e = *chars.get(i)?;
                            i += 1;
                            if e == '\'' {
                                out.push('\'');
                            } else {
                                out.push('\\');
                                out.push(e);
                            }
                        }
                        '\'' => break,
                        '"' => out.push_str("\\\""),
                        _ => out.push(d),
                    }
                }
                out.push('"');
            }
            ',' => {
                // A comma followed only by whitespace and a closing bracket is dropped.
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(',');
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push_str(match word.as_str() {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    other => other,
                });
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Value> {
        parse_model_json(text, "test")
    }

    #[test]
    fn plain_json_is_read_as_it_is() {
        assert_eq!(
            parse(r#"{"facts": ["a"]}"#).unwrap(),
            json!({"facts": ["a"]})
        );
    }

    #[test]
    fn code_fences_and_surrounding_prose_are_dropped() {
        let answer =
            "Sure! Here you go:\n```json\n{\"facts\": [\"Likes tea\"]}\n```\nAnything else?";
        assert_eq!(parse(answer).unwrap(), json!({"facts": ["Likes tea"]}));
        let bare = "```\n{\"facts\": []}\n```";
        assert_eq!(parse(bare).unwrap(), json!({"facts": []}));
    }

    #[test]
    fn trailing_text_after_the_object_is_dropped() {
        let answer = "{\"facts\": [\"Is vegetarian\"]} I extracted one fact {not json}";
        assert_eq!(parse(answer).unwrap(), json!({"facts": ["Is vegetarian"]}));
    }

    #[test]
    fn single_quotes_python_literals_and_trailing_commas_are_repaired() {
        let answer = "{'facts': ['Likes \"good\" pizza', 'Is 30',], 'done': True, 'x': None}";
        assert_eq!(
            parse(answer).unwrap(),
            json!({"facts": ["Likes \"good\" pizza", "Is 30"], "done": true, "x": null})
        );
        // An apostrophe inside a double-quoted string is not a quote.
        assert_eq!(
            parse("{\"facts\": [\"Alice's dog is called Rex\"],}").unwrap(),
            json!({"facts": ["Alice's dog is called Rex"]})
        );
        // Words inside strings stay as they are.
        assert_eq!(
            parse("{'facts': ['None of the above is True']}").unwrap(),
            json!({"facts": ["None of the above is True"]})
        );
    }

    #[test]
    fn what_cannot_be_repaired_safely_is_refused_with_the_answer_quoted() {
        for answer in [
            "",
            "I could not find any facts.",
            "{'facts': ['I'm vegetarian']}",
            "{\"facts\": [\"unterminated",
            "{\"facts\": [1, 2}",
            "\"just a string\"",
        ] {
            let e = parse(answer).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Llm, "{answer:?}");
            assert!(e.message().contains("not valid JSON"), "{e}");
            assert!(e.message().starts_with("test:"), "{e}");
        }
        let long = "x".repeat(1000);
        let e = parse(&long).unwrap_err();
        assert!(e.message().len() < 400, "{e}");
    }

    #[test]
    fn cjk_text_survives_repair() {
        assert_eq!(
            parse("```json\n{'facts': ['喜欢喝咖啡', '住在北京',]}\n```").unwrap(),
            json!({"facts": ["喜欢喝咖啡", "住在北京"]})
        );
    }
}
