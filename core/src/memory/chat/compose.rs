//! The system prompt of a chat turn: the memories listed under small numbers within a token
//! budget, and the numbers the answer cites mapped back to memories.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::request::{Citation, MemoryUsed};
use crate::error::{Error, Result};

/// The placeholder a chat prompt must contain.
pub(crate) const MEMORIES: &str = "{memories}";

/// What the prompt says when nothing was recalled.
const NOTHING_RECALLED: &str = "(nothing yet)";

/// Refuses a template without the memories placeholder.
pub(crate) fn check_template(template: &str, what: &str) -> Result<()> {
    if template.trim().is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if !template.contains(MEMORIES) {
        return Err(Error::invalid(format!(
            "{what} must contain {MEMORIES}: that is where the recalled memories go"
        )));
    }
    Ok(())
}

/// An estimate of how many tokens `text` takes, without the model's tokenizer (the chat
/// model's is not known here): one per CJK character (ideographs, kana, hangul), one per four
/// other characters, rounded up. English runs at about four characters per token in the
/// common tokenizers, and CJK at one to two tokens per character, so the estimate errs on the
/// side of fewer memories rather than an overflowing prompt.
pub fn approx_tokens(text: &str) -> usize {
    let (wide, other) = text.chars().fold((0usize, 0usize), |(wide, other), c| {
        if crate::text::is_cjk(c) {
            (wide + 1, other)
        } else {
            (wide, other + 1)
        }
    });
    wide + other.div_ceil(4)
}

/// The memories that fit in `budget` tokens, in the order given (the caller orders them by
/// priority): listing stops at the first one that does not fit, so a less relevant memory
/// never takes the place of a more relevant one. Numbers them from 1.
pub(super) fn within_budget(candidates: Vec<MemoryUsed>, budget: usize) -> Vec<MemoryUsed> {
    let mut used = 0;
    let mut listed = Vec::new();
    for mut memory in candidates {
        let number = listed.len() + 1;
        let cost = approx_tokens(&line(number, &memory.content));
        if used + cost > budget {
            break;
        }
        used += cost;
        memory.number = number;
        listed.push(memory);
    }
    listed
}

fn line(number: usize, content: &str) -> String {
    // One memory per line: a newline inside a memory would read as the next entry.
    let flat = content.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("[{number}] {flat}")
}

/// The system prompt: the template with the listed memories and today's date filled in.
pub(super) fn system_prompt(template: &str, listed: &[MemoryUsed], today: &str) -> String {
    let memories = if listed.is_empty() {
        NOTHING_RECALLED.to_string()
    } else {
        listed
            .iter()
            .map(|m| line(m.number, &m.content))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Today first: a memory's text may itself contain "{today}", and must stay as written.
    template
        .replace("{today}", today)
        .replace(MEMORIES, &memories)
}

/// The memories the answer cites as `[n]` (or `[n, m]`), in the order first cited; numbers
/// that were not listed are dropped.
pub(super) fn citations(answer: &str, listed: &[MemoryUsed]) -> Vec<Citation> {
    static CITE: OnceLock<Regex> = OnceLock::new();
    let cite = CITE.get_or_init(|| {
        Regex::new(r"\[\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)\s*\]").expect("a valid citation pattern")
    });
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for group in cite.captures_iter(answer) {
        for number in group[1].split(',') {
            let Ok(number) = number.trim().parse::<usize>() else {
                continue;
            };
            let Some(memory) = listed.iter().find(|m| m.number == number) else {
                continue; // a number the model invented
            };
            if seen.insert(number) {
                found.push(Citation {
                    number,
                    id: memory.id.clone(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::chat::request::Recalled;
    use crate::types::MemoryKind;

    fn memory(id: &str, content: &str) -> MemoryUsed {
        MemoryUsed {
            number: 0,
            id: id.into(),
            content: content.into(),
            kind: MemoryKind::Semantic,
            source: Recalled::Search,
            score: None,
        }
    }

    #[test]
    fn tokens_are_estimated_per_script() {
        assert_eq!(approx_tokens(""), 0);
        assert_eq!(approx_tokens("abcd"), 1);
        assert_eq!(approx_tokens("abcde"), 2);
        assert_eq!(approx_tokens("咖啡拿铁"), 4);
    }

    #[test]
    fn the_budget_keeps_a_prefix_in_order() {
        let listed = within_budget(
            vec![
                memory("a", "short"),
                memory("b", &"long ".repeat(100)),
                memory("c", "short too"),
            ],
            20,
        );
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].number, listed[0].id.as_str()), (1, "a"));
    }

    #[test]
    fn citations_map_to_listed_memories_only() {
        let mut listed = vec![memory("id-a", "x"), memory("id-b", "y")];
        listed[0].number = 1;
        listed[1].number = 2;
        let found = citations("Yes [2]. Also [1, 2] and [7] and [x].", &listed);
        let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["id-b", "id-a"]);
    }

    #[test]
    fn templates_need_the_placeholder() {
        assert!(check_template("no place", "prompt").is_err());
        assert!(check_template("  ", "prompt").is_err());
        let prompt = system_prompt("{today}: {memories}", &[], "2026-01-01");
        assert_eq!(prompt, "2026-01-01: (nothing yet)");
    }
}
