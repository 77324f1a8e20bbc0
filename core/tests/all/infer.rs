//! The inference pipeline end to end: `Memory::add_messages` against a real local HTTP
//! server speaking the OpenAI Chat Completions and Anthropic Messages wire formats, with a
//! real SQLite store, a real HNSW index and (in the main flow) the real local model.
//!
//! Every guard-rail of the issue has a test here: a repeated fact is NONE and never deleted,
//! a contradiction keeps the new fact, identity fields never come from the model, malformed
//! JSON is repaired or refused with the store unchanged, a timeout leaves the store unchanged.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::llm::{AnthropicChat, LlmConfig};
use agent_mem::{
    AddMessages, ErrorCode, HashingEmbedder, HistoryEvent, ListOptions, Llm, Memory, MemoryEvent,
    MemoryEventKind, MemoryKind, Message, NewMemory, Scope, SearchMode, SearchOptions,
};
use serde_json::{json, Value};
use support::fake_llm::{FakeLlm, Recorded, Reply};

// ------------------------------------------------------------------------------- helpers

fn openai(server: &FakeLlm, timeout_ms: u64, retries: u32) -> Arc<dyn Llm> {
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "api_key": "sk-test-key",
        "base_url": server.openai_base(),
        "timeout_ms": timeout_ms,
        "max_retries": retries,
    }))
    .unwrap();
    config.build().unwrap()
}

/// A store in memory with the hashing embedder and the fake OpenAI endpoint.
fn store(server: &FakeLlm) -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(openai(server, 5_000, 0))
        .build()
        .unwrap()
}

/// Is this request the fact-extraction call (as opposed to the decision call)?
fn is_extraction(r: &Recorded) -> bool {
    system_prompt(r).contains("extract the facts")
}

fn system_prompt(r: &Recorded) -> String {
    r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn user_message(r: &Recorded) -> String {
    r.body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The decision call's question: `{"stored_memories": [...], "new_facts": [...]}`.
fn question(r: &Recorded) -> Value {
    serde_json::from_str(&user_message(r)).expect("the decision question is JSON")
}

/// The small id the model was shown for a stored text.
fn shown_id(question: &Value, text: &str) -> String {
    question["stored_memories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == text)
        .unwrap_or_else(|| panic!("{text:?} was not shown: {question}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn facts(list: &[&str]) -> Reply {
    Reply::openai_chat(&json!({ "facts": list }).to_string())
}

fn contents(memory: &Memory, scope: Scope) -> Vec<String> {
    let mut options = ListOptions::new().limit(100);
    options.scope = scope;
    let mut v: Vec<String> = memory
        .list(&options)
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.content)
        .collect();
    v.sort();
    v
}

fn event(e: &MemoryEvent) -> (MemoryEventKind, &str) {
    (e.event, e.memory.as_str())
}

fn alice(text: &str) -> AddMessages {
    AddMessages::text(text).user("alice")
}

// ------------------------------------------------------------------------------- the flow

/// mem0's README flow, with the real local model: a preference, then a change of diet that
/// updates it; events, history and search all show it.
#[test]
fn pizza_then_vegetarian_updates_the_preference_with_history() {
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            let said = user_message(r);
            if said.contains("pepperoni pizza") {
                return facts(&["Loves pepperoni pizza"]);
            }
            return facts(&["Is vegetarian", "Loves pizza without meat"]);
        }
        let q = question(r);
        let old = shown_id(&q, "Loves pepperoni pizza");
        Reply::openai_chat(
            &json!({"decisions": [
                {"fact": 0, "event": "ADD"},
                {"fact": 1, "event": "UPDATE", "id": old, "text": "Loves pizza, vegetarian toppings only"},
            ]})
            .to_string(),
        )
    });
    let memory = Memory::builder()
        .llm(openai(&server, 5_000, 0))
        .build()
        .unwrap();

    let first = memory
        .add_messages(
            AddMessages::new(vec![
                Message::user("Hi! My favourite dinner is pepperoni pizza."),
                Message::assistant("Pepperoni pizza, noted!"),
            ])
            .user("alice"),
        )
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        event(&first[0]),
        (MemoryEventKind::Add, "Loves pepperoni pizza")
    );
    // Nothing similar was stored: no decision call.
    assert_eq!(server.requests().len(), 1);

    let second = memory
        .add_messages(alice(
            "I'm vegetarian now, so no more pepperoni. Still love pizza though!",
        ))
        .unwrap();
    assert_eq!(
        server.requests().len(),
        3,
        "one extraction and one decision call"
    );
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(event(&second[0]), (MemoryEventKind::Add, "Is vegetarian"));
    assert_eq!(
        event(&second[1]),
        (
            MemoryEventKind::Update,
            "Loves pizza, vegetarian toppings only"
        )
    );
    // The new wording supersedes the old memory, which is kept, closed and linked.
    assert_eq!(second[1].supersedes.as_deref(), Some(first[0].id.as_str()));
    assert_eq!(
        second[1].previous_memory.as_deref(),
        Some("Loves pepperoni pizza")
    );
    let old = memory.get(&first[0].id).unwrap();
    assert_eq!(old.superseded_by.as_deref(), Some(second[1].id.as_str()));
    assert_eq!(old.content, "Loves pepperoni pizza");

    let history = memory.history(&first[0].id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].event, HistoryEvent::Update);
    assert_eq!(history[1].actor, "llm:openai:gpt-4.1-nano");
    assert_eq!(history[1].change_id, second[1].change_id.clone().unwrap());
    let new_history = memory.history(&second[1].id).unwrap();
    assert_eq!(
        new_history[0].new_content.as_deref(),
        Some("Loves pizza, vegetarian toppings only")
    );
    let added = memory.get(&second[0].id).unwrap();
    assert_eq!(added.kind, MemoryKind::Semantic);
    assert_eq!(added.scope, Scope::user("alice"));

    let hits = memory
        .search(
            "what should I cook for alice?",
            &SearchOptions::new().user("alice").limit(2),
        )
        .unwrap();
    let found: Vec<&str> = hits.iter().map(|h| h.memory.content.as_str()).collect();
    assert!(found.contains(&"Is vegetarian"), "{found:?}");

    // What the model was sent.
    let requests = server.requests();
    let extraction = &requests[0];
    assert_eq!(extraction.path, "/v1/chat/completions");
    assert_eq!(
        extraction.header("authorization"),
        Some("Bearer sk-test-key")
    );
    assert_eq!(extraction.body["response_format"]["type"], "json_object");
    assert!(user_message(extraction).contains("user: Hi! My favourite dinner is pepperoni pizza."));
    assert!(user_message(extraction).contains("assistant: Pepperoni pizza, noted!"));
    assert!(system_prompt(extraction).contains("Never translate"));
    let decision = &requests[2];
    assert!(!is_extraction(decision));
    let q = question(decision);
    assert_eq!(q["new_facts"].as_array().unwrap().len(), 2);
    // The model sees small integers, never the store's ids.
    assert!(!user_message(decision).contains(&first[0].id));
    assert_eq!(shown_id(&q, "Loves pepperoni pizza"), "0");
}

#[test]
fn a_conversation_with_nothing_to_remember_changes_nothing() {
    let server = FakeLlm::start();
    server.push(facts(&[]));
    let memory = store(&server);
    assert!(memory
        .add_messages(alice("Hello there!"))
        .unwrap()
        .is_empty());
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 0);
    assert_eq!(server.requests().len(), 1);
}

// ------------------------------------------------------------------------- guard-rails

#[test]
fn a_fact_already_stored_is_none_and_costs_no_decision_call() {
    let server = FakeLlm::start();
    let memory = store(&server);
    server.push(facts(&["Is vegetarian"]));
    let first = memory.add_messages(alice("I'm vegetarian")).unwrap();
    server.push(facts(&["Is vegetarian"]));
    let again = memory
        .add_messages(alice("As I said, I'm vegetarian"))
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(event(&again[0]), (MemoryEventKind::None, "Is vegetarian"));
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(server.requests().len(), 2, "no decision call was needed");
    assert_eq!(memory.history(&first[0].id).unwrap().len(), 1);
}

#[test]
fn a_model_that_deletes_a_repeated_fact_is_overruled() {
    // The fact is stored in a wider part of alice's scope (with an agent id), so the exact
    // duplicate check of the call's scope misses it and the model is asked; it answers
    // DELETE, as mem0's model sometimes does. The memory must survive.
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            return facts(&["Is vegetarian", "Is allergic to nuts"]);
        }
        let q = question(r);
        let id = shown_id(&q, "Is vegetarian");
        Reply::openai_chat(
            &json!({"decisions": [
                {"fact": 0, "event": "DELETE", "id": id},
                {"fact": 1, "event": "DELETE", "id": id},
            ]})
            .to_string(),
        )
    });
    let memory = store(&server);
    let kept = memory
        .add(NewMemory::new("Is vegetarian").user("alice").agent("chef"))
        .unwrap();
    let events = memory
        .add_messages(alice("I'm vegetarian and allergic to nuts"))
        .unwrap();
    assert_eq!(event(&events[0]), (MemoryEventKind::None, "Is vegetarian"));
    assert_eq!(events[0].id, kept.id);
    // The second fact's DELETE targets a memory that states a fact of this call: refused,
    // and the fact itself is stored.
    assert_eq!(
        event(&events[1]),
        (MemoryEventKind::Add, "Is allergic to nuts")
    );
    assert!(events.iter().all(|e| e.event != MemoryEventKind::Delete));
    assert_eq!(memory.get(&kept.id).unwrap().content, "Is vegetarian");
    assert_eq!(memory.history(&kept.id).unwrap().len(), 1);
}

#[test]
fn a_move_updates_the_old_city_and_the_new_one_is_stored() {
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            return facts(&["Lives in Berlin"]);
        }
        let id = shown_id(&question(r), "Lives in Paris");
        Reply::openai_chat(
            &json!({"decisions": [{"fact": 0, "event": "UPDATE", "id": id, "text": "Lives in Berlin (moved from Paris)"}]})
                .to_string(),
        )
    });
    let memory = store(&server);
    let paris = memory
        .add(NewMemory::new("Lives in Paris").user("alice"))
        .unwrap();
    let events = memory
        .add_messages(alice("I moved from Paris to Berlin last month"))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        event(&events[0]),
        (
            MemoryEventKind::Update,
            "Lives in Berlin (moved from Paris)"
        )
    );
    assert_eq!(events[0].supersedes.as_deref(), Some(paris.id.as_str()));
    assert_eq!(
        contents(&memory, Scope::user("alice")),
        ["Lives in Berlin (moved from Paris)"]
    );
    let mut all = SearchOptions::new().user("alice").mode(SearchMode::Keyword);
    all.include_superseded = true;
    let both = memory.search("Lives", &all).unwrap();
    assert_eq!(both.len(), 2, "{both:?}");
    // Undoing the model's change brings Paris back and removes Berlin.
    let undone = memory
        .undo(events[0].change_id.as_deref().unwrap(), false)
        .unwrap();
    assert_eq!(undone.removed, std::slice::from_ref(&events[0].id));
    assert_eq!(contents(&memory, Scope::user("alice")), ["Lives in Paris"]);
}

#[test]
fn without_supersede_an_update_rewrites_the_memory_in_place() {
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            return facts(&["Lives in Berlin"]);
        }
        let id = shown_id(&question(r), "Lives in Paris");
        Reply::openai_chat(
            &json!({"decisions": [{"fact": 0, "event": "UPDATE", "id": id, "text": "Lives in Berlin"}]})
                .to_string(),
        )
    });
    let memory = store(&server);
    let paris = memory
        .add(NewMemory::new("Lives in Paris").user("alice"))
        .unwrap();
    let events = memory
        .add_messages(alice("I moved to Berlin").supersede(false))
        .unwrap();
    assert_eq!(events[0].id, paris.id);
    assert_eq!(events[0].supersedes, None);
    assert_eq!(memory.get(&paris.id).unwrap().content, "Lives in Berlin");
    assert_eq!(
        memory.versions(&paris.id).unwrap()[0].content,
        "Lives in Paris"
    );
}

#[test]
fn dates_the_conversation_states_become_valid_time_relative_to_when_it_took_place() {
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            // The conversation's own date reaches the prompt.
            let system = r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or_default();
            assert!(system.contains("2024-06-10"), "{system}");
            return Reply::openai_chat(
                &json!({"facts": [
                    {"text": "Moved to Lisbon", "valid_from": "2024-03"},
                    {"text": "Plays the cello", "valid_from": "sometime"},
                ]})
                .to_string(),
            );
        }
        Reply::openai_chat(r#"{"decisions": []}"#)
    });
    let memory = store(&server);
    let observed = agent_mem::parse_time("2024-06-10T18:00:00Z").unwrap();
    let events = memory
        .add_messages(
            alice("I moved to Lisbon in March, and I play the cello").observed_at(observed),
        )
        .unwrap();
    let lisbon = memory.get(&events[0].id).unwrap();
    assert_eq!(lisbon.valid_from, agent_mem::parse_time("2024-03-01").ok());
    assert_eq!(
        lisbon.metadata["observed_at"],
        "2024-06-10T18:00:00.000000Z"
    );
    let cello = memory.get(&events[1].id).unwrap();
    assert_eq!(cello.valid_from, None, "an unreadable date is no date");
    assert!(events.iter().all(|e| e.change_id.is_some()));
    // Time-aware search reads the cello's time from when it was said.
    let mut options = SearchOptions::new().user("alice").mode(SearchMode::Keyword);
    options.time_aware = true;
    options.now = agent_mem::parse_time("2025-02-01").ok();
    let hits = memory.search("what did I do last year", &options).unwrap();
    assert_eq!(hits.len(), 0, "{hits:?}");
    let hits = memory.search("cello last year", &options).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
}

#[test]
fn a_move_decided_as_delete_still_keeps_the_new_city() {
    // mem0's prompt makes the model DELETE a contradicted memory; mem0 then loses the new
    // fact. Here DELETE replaces: the old memory goes and the fact is stored.
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            return facts(&["Lives in Berlin"]);
        }
        let id = shown_id(&question(r), "Lives in Paris");
        Reply::openai_chat(
            &json!({"decisions": [{"fact": 0, "event": "DELETE", "id": id}]}).to_string(),
        )
    });
    let memory = store(&server);
    let paris = memory
        .add(NewMemory::new("Lives in Paris").user("alice"))
        .unwrap();
    let events = memory
        .add_messages(alice("I moved from Paris to Berlin"))
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        event(&events[0]),
        (MemoryEventKind::Delete, "Lives in Paris")
    );
    assert_eq!(events[0].id, paris.id);
    assert_eq!(event(&events[1]), (MemoryEventKind::Add, "Lives in Berlin"));
    assert_eq!(contents(&memory, Scope::user("alice")), ["Lives in Berlin"]);
    // Superseded, not destroyed: closed and linked to the new fact, one change for both.
    assert_eq!(
        events[0].superseded_by.as_deref(),
        Some(events[1].id.as_str())
    );
    assert_eq!(events[0].change_id, events[1].change_id);
    let kept = memory.get(&paris.id).unwrap();
    assert_eq!(kept.superseded_by.as_deref(), Some(events[1].id.as_str()));
    assert!(kept.valid_to.is_some());
    let history = memory.history(&paris.id).unwrap();
    assert_eq!(history.last().unwrap().event, HistoryEvent::Update);
    assert_eq!(history.last().unwrap().actor, "llm:openai:gpt-4.1-nano");
}

#[test]
fn facts_the_model_skips_or_misnumbers_are_still_stored() {
    let server = FakeLlm::with_handler(|r| {
        if is_extraction(r) {
            return facts(&["Has a dog called Rex", "Works as a nurse"]);
        }
        // Only a decision for a fact that does not exist, and an unknown event.
        Reply::openai_chat(
            &json!({"decisions": [{"fact": 7, "event": "ADD"}, {"fact": 0, "event": "MERGE"}]})
                .to_string(),
        )
    });
    let memory = store(&server);
    memory
        .add(NewMemory::new("Has a cat").user("alice"))
        .unwrap();
    let events = memory
        .add_messages(alice("My dog Rex and I... I'm a nurse by the way"))
        .unwrap();
    let added: Vec<_> = events.iter().map(event).collect();
    assert_eq!(
        added,
        [
            (MemoryEventKind::Add, "Has a dog called Rex"),
            (MemoryEventKind::Add, "Works as a nurse")
        ]
    );
}

#[test]
fn identity_fields_never_come_from_the_model() {
    let bob = std::sync::Mutex::new(String::new());
    let memory_holder: Arc<std::sync::Mutex<String>> = Arc::new(bob);
    let bob_id = memory_holder.clone();
    let server = FakeLlm::with_handler(move |r| {
        if is_extraction(r) {
            return Reply::openai_chat(
                &json!({"facts": ["Likes jazz"], "user_id": "mallory", "agent_id": "evil"})
                    .to_string(),
            );
        }
        let bob = bob_id.lock().unwrap().clone();
        Reply::openai_chat(
            &json!({"decisions": [
                {"fact": 0, "event": "UPDATE", "id": bob, "text": "pwned", "user_id": "mallory",
                 "scope": {"user_id": "mallory"}, "metadata": {"admin": true}, "kind": "core"},
            ]})
            .to_string(),
        )
    });
    let memory = store(&server);
    let bob = memory
        .add(NewMemory::new("Likes jazz music").user("bob"))
        .unwrap();
    *memory_holder.lock().unwrap() = bob.id.clone();
    memory
        .add(NewMemory::new("Likes classical music").user("alice"))
        .unwrap();
    let events = memory
        .add_messages(
            alice("I like jazz").metadata(json!({"source": "chat"}).as_object().unwrap().clone()),
        )
        .unwrap();
    // Bob's id was never shown, so the UPDATE is ignored and the fact is added for alice.
    assert_eq!(events.len(), 1);
    assert_eq!(event(&events[0]), (MemoryEventKind::Add, "Likes jazz"));
    let record = memory.get(&events[0].id).unwrap();
    assert_eq!(record.scope, Scope::user("alice"));
    assert_eq!(record.kind, MemoryKind::Semantic);
    assert_eq!(
        record.metadata,
        *json!({"source": "chat"}).as_object().unwrap()
    );
    assert_eq!(memory.get(&bob.id).unwrap().content, "Likes jazz music");
    assert_eq!(memory.count(&Scope::user("mallory"), None).unwrap(), 0);
    // Bob's memory was never among those the model saw.
    let requests = server.requests();
    let shown = user_message(&requests[1]);
    assert!(!shown.contains("Likes jazz music"), "{shown}");
}

#[test]
fn malformed_json_is_repaired_when_safe() {
    let server = FakeLlm::start();
    let memory = store(&server);
    server.push(Reply::openai_chat(
        "Here are the facts:\n```json\n{'facts': ['Plays the cello', 'Lives in Lyon',],}\n```\nHope this helps!",
    ));
    let events = memory
        .add_messages(alice("I play the cello in Lyon"))
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        contents(&memory, Scope::user("alice")),
        ["Lives in Lyon", "Plays the cello"]
    );
}

#[test]
fn unreadable_answers_fail_clearly_and_change_nothing() {
    let server = FakeLlm::start();
    let memory = store(&server);
    memory
        .add(NewMemory::new("Plays the cello").user("alice"))
        .unwrap();
    let before = contents(&memory, Scope::global());

    // At extraction.
    server.push(Reply::openai_chat("{'facts': ['I'm a cellist']}"));
    let e = memory.add_messages(alice("I'm a cellist")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Llm);
    assert!(e.message().contains("fact extraction"), "{e}");
    assert!(e.message().contains("not valid JSON"), "{e}");
    assert_eq!(contents(&memory, Scope::global()), before);

    // At the decision, after a good extraction: still nothing written.
    server.push(facts(&["Plays the cello well", "Owns a cello from 1890"]));
    server.push(Reply::openai_chat("I think you should update memory 0."));
    let e = memory
        .add_messages(alice("I play the cello well"))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Llm);
    assert!(e.message().contains("memory decisions"), "{e}");
    assert_eq!(contents(&memory, Scope::global()), before);

    // A provider error is passed on with its message.
    server.push(Reply::openai_error(
        401,
        "invalid_request_error",
        "Incorrect API key provided",
    ));
    let e = memory.add_messages(alice("I play the cello")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Llm);
    assert!(e.message().contains("Incorrect API key provided"), "{e}");
    assert!(!e.message().contains("sk-test-key"), "{e}");
    assert_eq!(contents(&memory, Scope::global()), before);
}

#[test]
fn an_llm_timeout_leaves_the_store_unchanged() {
    let server = FakeLlm::start();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(openai(&server, 400, 0))
        .build()
        .unwrap();
    memory
        .add(NewMemory::new("Lives in Paris").user("alice"))
        .unwrap();
    let before = contents(&memory, Scope::global());
    server.push(facts(&["Lives in Berlin"]));
    server.push(
        Reply::openai_chat(r#"{"decisions": [{"fact": 0, "event": "DELETE", "id": "0"}]}"#)
            .delayed(Duration::from_secs(3)),
    );
    let started = Instant::now();
    let e = memory.add_messages(alice("I moved to Berlin")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Llm);
    assert!(e.message().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_millis(2_500));
    assert_eq!(contents(&memory, Scope::global()), before);
}

#[test]
fn a_rate_limit_is_waited_out_and_the_call_succeeds() {
    let server = FakeLlm::start();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(openai(&server, 5_000, 2))
        .build()
        .unwrap();
    server.push(
        Reply::openai_error(429, "rate_limit_exceeded", "Rate limit reached")
            .with_header("Retry-After", "1"),
    );
    server.push(facts(&["Speaks Japanese"]));
    let started = Instant::now();
    let events = memory.add_messages(alice("私は日本語を話します")).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(event(&events[0]), (MemoryEventKind::Add, "Speaks Japanese"));
    assert_eq!(server.requests().len(), 2);
}

// ------------------------------------------------------------------------ other paths

#[test]
fn facts_keep_their_language() {
    let server = FakeLlm::start();
    let memory = store(&server);
    server.push(facts(&["喜欢喝咖啡", "住在北京"]));
    memory
        .add_messages(alice("我喜欢喝咖啡，现在住在北京。"))
        .unwrap();
    assert_eq!(
        contents(&memory, Scope::user("alice")),
        ["住在北京", "喜欢喝咖啡"]
    );
    let hits = memory
        .search("咖啡", &SearchOptions::new().user("alice").limit(1))
        .unwrap();
    assert_eq!(hits[0].memory.content, "喜欢喝咖啡");
    assert!(user_message(&server.requests()[0]).contains("我喜欢喝咖啡"));
}

#[test]
fn anthropic_drives_the_same_pipeline() {
    let server = FakeLlm::with_handler(|r| {
        assert_eq!(r.path, "/v1/messages");
        let system = r.body["system"].as_str().unwrap_or_default();
        if system.contains("extract the facts") {
            return Reply::anthropic_message(r#"{"facts": ["Lives in Berlin"]}"#);
        }
        let q: Value =
            serde_json::from_str(r.body["messages"][0]["content"].as_str().unwrap()).unwrap();
        let id = shown_id(&q, "Lives in Paris");
        Reply::anthropic_message(&format!(
            "```json\n{{\"decisions\": [{{\"fact\": 0, \"event\": \"UPDATE\", \"id\": \"{id}\", \"text\": \"Lives in Berlin\"}}]}}\n```"
        ))
    });
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-test",
        "base_url": server.url(),
    }))
    .unwrap();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(config.build().unwrap())
        .build()
        .unwrap();
    let paris = memory
        .add(NewMemory::new("Lives in Paris").user("alice"))
        .unwrap();
    let events = memory.add_messages(alice("I moved to Berlin")).unwrap();
    assert_eq!(
        event(&events[0]),
        (MemoryEventKind::Update, "Lives in Berlin")
    );
    assert_eq!(events[0].supersedes.as_deref(), Some(paris.id.as_str()));
    let history = memory.history(&paris.id).unwrap();
    assert_eq!(history[1].actor, "llm:anthropic:claude-haiku-4-5");
    assert_eq!(
        server.requests()[0].header("x-api-key"),
        Some("sk-ant-test")
    );
    // The type is public for callers who build clients themselves.
    let _: Option<AnthropicChat> = None;
}

#[test]
fn a_procedural_memory_summarises_the_agents_run() {
    let server = FakeLlm::start();
    let memory = store(&server);
    let summary = "Task: book a flight Paris→Berlin on 3 May.\n1. Searched flights: 4 found.\n2. Chose AF1234 at 09:40 (189 EUR).\nState: awaiting payment.";
    server.push(Reply::openai_chat(summary));
    let events = memory
        .add_messages(
            AddMessages::new(vec![
                Message::user("Book me a flight from Paris to Berlin on 3 May"),
                Message::assistant("Searching flights… found 4. AF1234 at 09:40 is 189 EUR."),
                Message::user("Take AF1234"),
            ])
            .user("alice")
            .agent("travel-agent")
            .kind(MemoryKind::Procedural),
        )
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(event(&events[0]), (MemoryEventKind::Add, summary));
    let record = memory.get(&events[0].id).unwrap();
    assert_eq!(record.kind, MemoryKind::Procedural);
    assert_eq!(record.scope.agent_id.as_deref(), Some("travel-agent"));
    let request = &server.requests()[0];
    assert!(
        request.body.get("response_format").is_none(),
        "plain text answer"
    );
    assert!(user_message(request).contains("assistant: Searching flights"));

    let e = memory
        .add_messages(alice("summarise").kind(MemoryKind::Procedural))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.message().contains("agent_id"), "{e}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn without_inference_messages_are_stored_as_given() {
    let server = FakeLlm::start();
    let memory = store(&server);
    let events = memory
        .add_messages(
            AddMessages::new(vec![
                Message::system("You are a helpful assistant"),
                Message::user("I'm vegetarian"),
                Message {
                    name: Some("chef-bot".into()),
                    ..Message::assistant("Noted, no meat.")
                },
            ])
            .user("alice")
            .infer(false),
        )
        .unwrap();
    assert_eq!(events.len(), 2, "the system message is not stored");
    assert!(events.iter().all(|e| e.event == MemoryEventKind::Add));
    let record = memory.get(&events[1].id).unwrap();
    assert_eq!(record.kind, MemoryKind::Episodic);
    assert_eq!(record.metadata["role"], "assistant");
    assert_eq!(record.metadata["actor_id"], "chef-bot");
    assert!(server.requests().is_empty(), "no model call");

    // A store without a model stores raw even with infer on.
    let plain = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap();
    let events = plain.add_messages(alice("I'm vegetarian")).unwrap();
    assert_eq!(event(&events[0]), (MemoryEventKind::Add, "I'm vegetarian"));
    let events = plain.add_messages(alice("I'm vegetarian")).unwrap();
    assert_eq!(event(&events[0]), (MemoryEventKind::None, "I'm vegetarian"));
}

#[test]
fn bad_requests_are_refused_before_any_model_call() {
    let server = FakeLlm::start();
    let memory = store(&server);
    let cases = [
        AddMessages::text("I like tea"), // no scope
        AddMessages::new(vec![]).user("alice"),
        AddMessages::new(vec![Message::new("wizard", "hi")]).user("alice"),
        AddMessages::new(vec![Message::user("")]).user("alice"),
        AddMessages::new(vec![Message::user("a\0b")]).user("alice"),
        alice("hi").prompt("  "),
        alice("hi").metadata(json!({"user_id": "bob"}).as_object().unwrap().clone()),
    ];
    for case in cases {
        let e = memory.add_messages(case.clone()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{case:?}: {e}");
    }
    assert!(server.requests().is_empty());
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 0);
}

#[test]
fn custom_prompts_replace_the_built_in_ones() {
    let server = FakeLlm::start();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(openai(&server, 5_000, 0))
        .fact_extraction_prompt(
            "Extract only food facts. Today is {today}. Answer {\"facts\": []}.",
        )
        .build()
        .unwrap();
    server.push(facts(&["Likes sushi"]));
    memory
        .add_messages(alice("I like sushi and skiing"))
        .unwrap();
    let system = system_prompt(&server.requests()[0]);
    assert!(
        system.starts_with("Extract only food facts. Today is 20"),
        "{system}"
    );
    server.push(facts(&[]));
    memory
        .add_messages(alice("hello").prompt("Per-call prompt"))
        .unwrap();
    assert_eq!(system_prompt(&server.requests()[1]), "Per-call prompt");
}

#[test]
fn the_json_surface_configures_and_runs_inference() {
    let server = FakeLlm::start();
    let memory = agent_mem::wire::open(
        None,
        &json!({
            "embedder": {"provider": "hashing", "dimensions": 32},
            "llm": {"provider": "openai_compatible", "model": "qwen2.5", "base_url": server.openai_base()},
            "prompts": {"procedural": "Summarise."},
        }),
    )
    .unwrap();
    assert_eq!(memory.llm_label(), Some("openai_compatible:qwen2.5"));
    server.push(facts(&["Is vegetarian"]));
    let out = agent_mem::wire::add_messages(
        &memory,
        &json!({"messages": [{"role": "user", "content": "I'm vegetarian"}], "user_id": "alice"}),
    )
    .unwrap();
    assert_eq!(out[0]["event"], "ADD");
    assert_eq!(out[0]["memory"], "Is vegetarian");
    assert!(out[0].get("previous_memory").is_none());
    assert!(server.requests()[0].header("authorization").is_none());

    let out = agent_mem::wire::add_messages(
        &memory,
        &json!({"messages": "I'm vegetarian", "user_id": "alice", "infer": false}),
    )
    .unwrap();
    assert_eq!(out[0]["event"], "ADD");
    assert_eq!(out[0]["memory"], "I'm vegetarian");

    for (request, needle) in [
        (json!({"user_id": "alice"}), "messages is required"),
        (
            json!({"messages": 3, "user_id": "alice"}),
            "messages must be",
        ),
        (
            json!({"messages": [{"role": "user"}], "user_id": "alice"}),
            "messages[0]",
        ),
        (
            json!({"messages": "hi", "user_id": "alice", "infer": "yes"}),
            "expected a boolean",
        ),
        (json!({"messages": "hi", "user": "alice"}), "user"),
    ] {
        let e = agent_mem::wire::add_messages(&memory, &request).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{request}");
        assert!(e.message().contains(needle), "{request}: {e}");
    }
    for options in [
        json!({"llm": {"provider": "openai", "modle": "x"}}),
        json!({"llm": {"provider": "skynet"}}),
        json!({"llm": {"provider": "openai_compatible", "model": "m"}}),
        json!({"prompts": {"fact_extraction": ""}}),
        json!({"prompts": {"facts": "x"}}),
    ] {
        let e = agent_mem::wire::open(None, &options).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{options}: {e}");
    }
}

#[test]
fn a_remote_embedder_serves_the_store_and_its_model_is_recorded() {
    let server = FakeLlm::with_handler(|r| {
        assert_eq!(r.path, "/v1/embeddings");
        let inputs = r.body["input"].as_array().unwrap();
        let vectors: Vec<Vec<f32>> = inputs
            .iter()
            .map(|t| {
                let t = t.as_str().unwrap();
                let mut v = vec![0.01f32; 8];
                for (i, b) in t.bytes().enumerate() {
                    v[(b as usize + i) % 8] += 1.0;
                }
                v
            })
            .collect();
        Reply::openai_embeddings(&vectors)
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote.db");
    let path = path.to_str().unwrap();
    let options = json!({"embedder": {"provider": "openai", "model": "text-embedding-3-small",
                                      "api_key": "sk-emb", "base_url": server.openai_base()}});
    {
        let memory = agent_mem::wire::open(Some(path), &options).unwrap();
        memory.add(NewMemory::new("Likes tea").user("u")).unwrap();
        memory
            .add(NewMemory::new("Likes coffee").user("u"))
            .unwrap();
        let hits = memory
            .search("Likes tea", &SearchOptions::new().user("u").limit(1))
            .unwrap();
        assert_eq!(hits[0].memory.content, "Likes tea");
        assert_eq!(
            memory.embedding_model(),
            Some("openai:text-embedding-3-small")
        );
    }
    // Reopened with another model: refused, clearly.
    let e = agent_mem::wire::open(
        Some(path),
        &json!({"embedder": {"provider": "hashing", "dimensions": 8}}),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(e.message().contains("openai:text-embedding-3-small"), "{e}");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-emb")
    );
}

#[test]
fn without_an_embedder_inference_fails_before_any_model_call() {
    let server = FakeLlm::start();
    let memory = Memory::builder()
        .without_embedder()
        .llm(openai(&server, 5_000, 0))
        .build()
        .unwrap();
    for request in [
        alice("I like tea"),
        alice("run summary")
            .agent("a1")
            .kind(MemoryKind::Procedural),
    ] {
        let e = memory.add_messages(request).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn messages_stored_as_they_are_keep_when_they_were_said() {
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap();
    let said = |day: &str| agent_mem::parse_time(day).unwrap();
    let events = memory
        .add_messages(
            AddMessages::new(vec![
                Message::user("We adopted a puppy").observed_at(said("2025-03-02")),
                Message::user("The puppy chewed my shoes").observed_at(said("2025-04-20")),
            ])
            .user("kim"),
        )
        .unwrap();
    let first = memory.get(&events[0].id).unwrap();
    assert_eq!(first.metadata["observed_at"], "2025-03-02T00:00:00.000000Z");
    let mut options = SearchOptions::new().user("kim").mode(SearchMode::Keyword);
    options.time_aware = true;
    options.now = Some(said("2025-04-25"));
    let hits = memory.search("puppy last month", &options).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].memory.content, "We adopted a puppy");
    let request = json!({"messages": [{"role": "user", "content": "x", "observed_at": "soon"}],
                         "user_id": "kim", "infer": false});
    let err = agent_mem::wire::call(&memory, "add_messages", &request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
}

// ------------------------------------------------------------------------------- the graph

/// With graph extraction on, the facts' relations come in the same call as the facts and
/// are stored with the fact's memory as their source: "user" is the scope's user, a bad
/// relation is left out, a move closes the old place, deleting the memory removes them.
#[test]
fn inference_fills_the_graph_in_the_same_call() {
    use agent_mem::graph::{GraphOptions, RelationQuery, RelationTime};
    let server = FakeLlm::with_handler(|r| {
        let text = user_message(r);
        if is_extraction(r) && text.contains("Berlin") {
            return Reply::openai_chat(
                &json!({"facts": [{"text": "Lives in Berlin", "relations": [
                    {"subject": "user", "predicate": "lives_in", "object": "Berlin"}]}]})
                .to_string(),
            );
        }
        if is_extraction(r) {
            return Reply::openai_chat(
                &json!({"facts": [
                    {"text": "Lives in Paris", "relations": [
                        {"subject": "user", "predicate": "lives in", "object": "Paris",
                         "object_type": "place"}]},
                    {"text": "Works with Bob at Acme", "relations": [
                        {"subject": "I", "predicate": "works_with", "object": "Bob",
                         "object_type": "person"},
                        {"subject": "user", "predicate": "works_at", "object": "Acme",
                         "object_type": "organisation"},
                        {"subject": "Bob", "predicate": "->", "object": "Acme"},
                        {"subject": "", "predicate": "knows", "object": "Acme"},
                        "not a relation"]}]})
                .to_string(),
            );
        }
        let id = shown_id(&question(r), "Lives in Paris");
        Reply::openai_chat(
            &json!({"decisions": [{"fact": 0, "event": "UPDATE", "id": id, "text": "Lives in Berlin"}]})
                .to_string(),
        )
    });
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(openai(&server, 5_000, 0))
        .graph(GraphOptions {
            extract: true,
            ..GraphOptions::default()
        })
        .build()
        .unwrap();
    let events = memory
        .add_messages(alice("I live in Paris and work with Bob at Acme"))
        .unwrap();
    assert_eq!(
        server.requests().len(),
        1,
        "the relations came with the facts"
    );
    assert!(system_prompt(&server.requests()[0]).contains("\"relations\""));
    let now = |m: &Memory| {
        let query = RelationQuery {
            scope: Scope::user("alice"),
            ..RelationQuery::default()
        };
        let mut v: Vec<(String, Vec<String>)> = m
            .graph()
            .relations(&query)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    format!("{} {} {}", r.subject_name, r.predicate, r.object_name),
                    r.sources,
                )
            })
            .collect();
        v.sort();
        v
    };
    let (paris, work) = (events[0].id.clone(), events[1].id.clone());
    assert_eq!(
        now(&memory),
        vec![
            ("alice lives_in Paris".to_string(), vec![paris.clone()]),
            ("alice works_at Acme".to_string(), vec![work.clone()]),
            ("alice works_with Bob".to_string(), vec![work.clone()]),
        ]
    );
    let alice_entity = &memory
        .graph()
        .entities("alice", &Scope::user("alice"), None, None)
        .unwrap()[0];
    assert_eq!(alice_entity.entity_type, "person");

    // A move: the new fact's relation closes the old place, which stays readable.
    let moved = memory.add_messages(alice("I moved to Berlin")).unwrap();
    let berlin = moved
        .iter()
        .find(|e| e.event == MemoryEventKind::Add)
        .unwrap_or(&moved[0]);
    let current = now(&memory);
    assert!(current.contains(&("alice lives_in Berlin".to_string(), vec![berlin.id.clone()])));
    assert!(!current.iter().any(|(r, _)| r == "alice lives_in Paris"));
    let every = RelationQuery {
        scope: Scope::user("alice"),
        time: RelationTime {
            include_closed: true,
            ..RelationTime::default()
        },
        ..RelationQuery::default()
    };
    assert_eq!(memory.graph().relations(&every).unwrap().len(), 4);

    // Deleting the memory a relation came from removes it.
    memory.delete(&work).unwrap();
    assert_eq!(
        now(&memory)
            .iter()
            .filter(|(r, _)| r.contains("works"))
            .count(),
        0
    );
}

#[test]
fn without_graph_extraction_the_prompt_asks_for_no_relations() {
    let server = FakeLlm::start();
    let memory = store(&server);
    server.push(Reply::openai_chat(
        &json!({"facts": [{"text": "Lives in Paris", "relations": [
            {"subject": "user", "predicate": "lives_in", "object": "Paris"}]}]})
        .to_string(),
    ));
    memory.add_messages(alice("I live in Paris")).unwrap();
    assert!(!system_prompt(&server.requests()[0]).contains("\"relations\""));
    let all = agent_mem::graph::RelationQuery {
        scope: Scope::user("alice"),
        ..Default::default()
    };
    assert!(memory.graph().relations(&all).unwrap().is_empty());
}
