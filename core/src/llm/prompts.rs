//! The prompts of the inference pipeline. Each can be replaced (see
//! [`crate::MemoryBuilder::fact_extraction_prompt`] and the per-call `prompt`); a replacement
//! must ask for the same JSON shape.

/// Extracts facts from a conversation. The answer is `{"facts": [...]}`, each fact a string
/// or `{"text", "valid_from", "valid_to"}` when the conversation says when it held.
pub const FACT_EXTRACTION: &str = r#"You are a memory organiser for a personal assistant. From the conversation you are given, extract the facts worth remembering about the user for future conversations: preferences, personal details, plans, relationships, health, work, likes and dislikes, and anything the user asks to be remembered.

Rules:
- Each fact is one short, self-contained statement ("Is vegetarian", "Lives in Berlin", "Has a dog called Rex").
- Write every fact in the language the user wrote it in. Never translate.
- Extract facts from what the user says. Use the assistant's messages only as context.
- Leave out greetings, small talk and anything that is not about the user.
- If the user corrects or contradicts an earlier statement, extract the corrected fact.
- If there is nothing worth remembering, return an empty list.
- When the conversation says when a fact began or ended ("I moved to Berlin in March 2024", "I left Acme last year"), give "valid_from" and/or "valid_to" as YYYY, YYYY-MM or YYYY-MM-DD, resolving relative dates against the conversation's date. Give a date only when the conversation states it; never guess one.

The conversation took place on {today}.

Answer with a JSON object and nothing else, in this shape:
{"facts": ["first fact", {"text": "Lives in Berlin", "valid_from": "2024-03"}]}"#;

/// Appended to the extraction prompt when the graph is filled by inference (see
/// [`crate::graph::GraphOptions::extract`]): each fact may carry the relations it states.
pub const GRAPH_RELATIONS: &str = r#"

Also give each fact the relations it states between named people, places, organisations and things, as "relations": a list of {"subject", "subject_type", "predicate", "object", "object_type"}, or with "value" instead of "object" for a plain value (an age, a date, a food). Use "user" for the user. A predicate is a short verb phrase in snake_case: lives_in, works_at, works_with, married_to, allergic_to, likes. A type is person, place, organisation, thing, event or concept. Give only relations the fact states; a fact without any has none.
Example: {"facts": [{"text": "Works at Acme with Bob", "relations": [{"subject": "user", "predicate": "works_at", "object": "Acme", "object_type": "organisation"}, {"subject": "user", "predicate": "works_with", "object": "Bob", "object_type": "person"}]}]}"#;

/// Decides, per new fact, what to do with the stored memories. The answer is
/// `{"decisions": [{"fact": 0, "event": "ADD|UPDATE|DELETE|NONE", "id": "…", "text": "…"}]}`.
pub const MEMORY_DECISIONS: &str = r#"You manage a user's long-term memory. You are given the stored memories that resemble some new facts, each with a short id, and the new facts, each with a number. For every new fact, decide one event:

- "ADD": the fact is new information. Give no id.
- "UPDATE": the fact refines, extends or corrects one stored memory. Give that memory's "id" and, in "text", the memory's new wording (which must contain the new information). Use UPDATE when the user changed their mind or their situation (for example moved city, changed job, changed a preference).
- "DELETE": the fact shows that one stored memory is no longer true and should go. Give its "id". The new fact will be stored in its place.
- "NONE": the fact is already stored (same meaning). Give the id of the memory that already says it.

Rules:
- Use only ids from the stored memories given. Never invent an id.
- Decide each fact once.
- Keep the language of the fact; never translate.

Answer with a JSON object and nothing else, in this shape:
{"decisions": [{"fact": 0, "event": "ADD"}, {"fact": 1, "event": "UPDATE", "id": "2", "text": "Lives in Berlin (moved from Paris)"}, {"fact": 2, "event": "NONE", "id": "0"}]}"#;

/// Summarises an agent's run into one procedural memory (plain text answer).
pub const PROCEDURAL_SUMMARY: &str = r#"You summarise an AI agent's run so that the agent can resume or repeat the work later. Write one procedural memory from the conversation: the task and its goal, then the numbered steps the agent took, each with the action, its key inputs and the essential result (keep exact values: URLs, file names, numbers, errors), and finally the current state and what remains to be done.

Write it in the language of the conversation. Answer with the summary only, no preamble."#;

/// The system prompt of `Memory::chat`. `{memories}` (required) becomes the numbered list of
/// the memories recalled for the turn, `{today}` today's date. A replacement must keep
/// `{memories}` and should keep asking for citations as `[n]`: they are how the answer's
/// `citations` are found.
pub const CHAT: &str = r#"You are a helpful assistant with a long-term memory of the person you talk to. Today is {today}.

What you remember that may bear on this turn, most relevant first, each under a number:
{memories}

Answer the last message. Use a memory only when it is relevant, and when you do, cite it with its number in square brackets right after the statement it supports, like [2]. Never cite a number that is not in the list. When the memories do not answer the question, say what you do not know rather than guessing."#;

/// The extraction prompt with today's date filled in.
pub(crate) fn fact_extraction(custom: Option<&str>, today: &str) -> String {
    custom.unwrap_or(FACT_EXTRACTION).replace("{today}", today)
}
