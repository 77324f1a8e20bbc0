//! Chat with memory end to end: `Memory::chat` / `chat_stream` against a real local HTTP
//! server that speaks (and streams) the OpenAI Chat Completions and Anthropic Messages wire
//! formats, with a real SQLite store and HNSW index. What the model was told is checked in
//! the requests the server received.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_mem::llm::LlmConfig;
use agent_mem::{
    wire, Chat, ErrorCode, HashingEmbedder, ListOptions, Llm, Memory, MemoryKind, Message,
    NewMemory, Recalled, Remember, RememberStatus, Scope,
};
use serde_json::{json, Value};
use support::fake_llm::{FakeLlm, Recorded, Reply};

// ------------------------------------------------------------------------------- helpers

fn llm(server: &FakeLlm, provider: &str) -> Arc<dyn Llm> {
    let base = match provider {
        "anthropic" => server.url(),
        _ => server.openai_base(),
    };
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": provider,
        "model": "test-model",
        "api_key": "sk-test-key",
        "base_url": base,
        "timeout_ms": 5_000,
        "max_retries": 2,
    }))
    .unwrap();
    config.build().unwrap()
}

fn store_with(server: &FakeLlm, provider: &str) -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(llm(server, provider))
        .build()
        .unwrap()
}

fn store(server: &FakeLlm) -> Memory {
    store_with(server, "openai")
}

/// The system prompt of a request, in either wire format.
fn system_of(r: &Recorded) -> String {
    if let Some(system) = r.body.get("system").and_then(Value::as_str) {
        return system.to_string();
    }
    r.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn is_chat(r: &Recorded) -> bool {
    system_of(r).contains("long-term memory of the person")
}

fn is_extraction(r: &Recorded) -> bool {
    system_of(r).contains("extract the facts")
}

/// A model that answers chat turns with `answer`, extracts `facts` and adds them all.
fn model(answer: &'static str, facts: &'static [&'static str]) -> FakeLlm {
    FakeLlm::with_handler(move |r| {
        if is_chat(r) {
            if r.path.ends_with("/messages") {
                return Reply::anthropic_answer(r, answer);
            }
            return Reply::openai_answer(r, answer);
        }
        if is_extraction(r) {
            return Reply::openai_chat(&json!({ "facts": facts }).to_string());
        }
        Reply::openai_chat(r#"{"decisions": []}"#)
    })
}

fn chat_requests(server: &FakeLlm) -> Vec<Recorded> {
    server.requests().into_iter().filter(is_chat).collect()
}

fn count_all(memory: &Memory) -> usize {
    memory
        .list(&ListOptions::new().limit(1000))
        .unwrap()
        .items
        .len()
}

fn add(memory: &Memory, scope: Scope, text: &str) -> String {
    memory.add(NewMemory::new(text).scope(scope)).unwrap().id
}

// ------------------------------------------------------------------------------- the flow

/// Recall → answer with citations → working memory → remember, inline.
#[test]
fn a_turn_recalls_cites_and_remembers() {
    let server = model(
        "You are allergic to peanuts [1], so skip the satay [9].",
        &["Is planning a dinner party"],
    );
    let memory = store(&server);
    let peanuts = add(
        &memory,
        Scope::user("alice"),
        "Alice is allergic to peanuts",
    );
    add(&memory, Scope::user("alice"), "Alice lives in Lisbon");

    let reply = memory
        .chat(
            Chat::text("I am planning a dinner party: what am I allergic to?")
                .user("alice")
                .run("s1"),
        )
        .unwrap();
    assert_eq!(
        reply.answer,
        "You are allergic to peanuts [1], so skip the satay [9]."
    );
    assert!(reply.model.ends_with("test-model"), "{}", reply.model);
    let first = &reply.memories_used[0];
    assert_eq!((first.number, first.id.as_str()), (1, peanuts.as_str()));
    assert_eq!(first.source, Recalled::Search);
    // [9] was never listed: dropped.
    assert_eq!(reply.citations.len(), 1);
    assert_eq!(reply.citations[0].id, peanuts);

    let prompt = system_of(&chat_requests(&server)[0]);
    assert!(
        prompt.contains("[1] Alice is allergic to peanuts"),
        "{prompt}"
    );

    assert_eq!(reply.remember.status, RememberStatus::Done);
    assert_eq!(reply.remember.events.len(), 1);
    assert_eq!(
        reply.remember.events[0].memory,
        "Is planning a dinner party"
    );
    let working = memory
        .get(reply.working_memory_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(working.kind, MemoryKind::Working);
    assert_eq!(working.scope.run_id.as_deref(), Some("s1"));
    assert!(working.expires_at.is_some());
    assert!(working.content.contains("dinner party"));
}

/// The next turn of the session recalls the previous one through working memory, without
/// the caller resending it; another session does not.
#[test]
fn the_next_turn_recalls_the_previous_one() {
    let server = model("Noted.", &[]);
    let memory = store(&server);
    memory
        .chat(
            Chat::text("My flight number is TP1234.")
                .user("alice")
                .run("s1"),
        )
        .unwrap();
    let reply = memory
        .chat(
            Chat::text("What did I just tell you?")
                .user("alice")
                .run("s1"),
        )
        .unwrap();
    let working: Vec<_> = reply
        .memories_used
        .iter()
        .filter(|m| m.source == Recalled::Working)
        .collect();
    assert_eq!(working.len(), 1, "{:?}", reply.memories_used);
    assert!(working[0].content.contains("TP1234"));
    assert!(system_of(&chat_requests(&server)[1]).contains("TP1234"));

    let other = memory
        .chat(
            Chat::text("What did I just tell you?")
                .user("alice")
                .run("s2"),
        )
        .unwrap();
    assert!(other
        .memories_used
        .iter()
        .all(|m| m.source != Recalled::Working));
}

/// Nothing of another user reaches the prompt, whatever the query says.
#[test]
fn nothing_from_another_scope_reaches_the_prompt() {
    let server = model("I do not know.", &[]);
    let memory = store(&server);
    add(&memory, Scope::user("bob"), "Bob's bank PIN is 4321");
    add(&memory, Scope::user("bob"), "Bob is allergic to peanuts");
    memory
        .chat(
            Chat::text("bank PIN 4321 peanuts allergy")
                .user("bob")
                .run("b1"),
        )
        .unwrap();
    add(&memory, Scope::user("alice"), "Alice likes tea");
    let reply = memory
        .chat(
            Chat::new(vec![
                Message::system("Be brief."),
                Message::user("What is Bob's bank PIN? peanuts allergy 4321"),
            ])
            .user("alice")
            .run("b1"),
        )
        .unwrap();
    assert!(reply
        .memories_used
        .iter()
        .all(|m| !m.content.contains("Bob")));
    let request = chat_requests(&server).pop().unwrap();
    let body = request.body.to_string();
    assert!(
        !body.contains("4321 ") && !body.contains("Bob's bank PIN is"),
        "{body}"
    );
    assert!(!body.contains("Bob is allergic"), "{body}");
    // The caller's system message follows the memory prompt.
    assert!(system_of(&request).ends_with("Be brief."));
}

/// The prompt lists as many memories as the budget allows, most relevant first.
#[test]
fn the_prompt_keeps_to_the_token_budget() {
    let server = model("ok", &[]);
    let memory = store(&server);
    for i in 0..20 {
        add(
            &memory,
            Scope::user("alice"),
            &format!("Alice note {i}: she enjoys hiking trips in the mountains with friends"),
        );
    }
    let reply = memory
        .chat(
            Chat::text("hiking trips")
                .user("alice")
                .max_memory_tokens(60)
                .remember(Remember::Off),
        )
        .unwrap();
    let listed = reply.memories_used.len();
    assert!(
        (1..5).contains(&listed),
        "{listed} memories within 60 tokens"
    );
    let prompt = system_of(&chat_requests(&server)[0]);
    let block: usize = reply
        .memories_used
        .iter()
        .map(|m| agent_mem::approx_tokens(&format!("[{}] {}", m.number, m.content)))
        .sum();
    assert!(block <= 60);
    assert!(prompt.contains(&format!("[{listed}] ")));
    assert!(!prompt.contains(&format!("[{}] ", listed + 1)));
    assert_eq!(reply.remember.status, RememberStatus::Off);
}

// ------------------------------------------------------------------------------- streaming

fn streamed(memory: &Memory, chat: Chat) -> (agent_mem::Result<agent_mem::ChatReply>, Vec<String>) {
    let mut pieces = Vec::new();
    let reply = memory.chat_stream(chat, &mut |piece| {
        pieces.push(piece.to_string());
        true
    });
    (reply, pieces)
}

/// The streamed text equals the non-streamed one, in both wire formats, however the bytes
/// are cut (in the middle of UTF-8 characters and of JSON) and however slowly they come.
#[test]
fn the_streamed_answer_equals_the_whole_one() {
    const ANSWER: &str = "Ja, Käse und 咖啡拿铁 [1] — “quoted” 🙂.";
    for provider in ["openai", "anthropic"] {
        let server = FakeLlm::with_handler(move |r| {
            let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
            let reply = match (r.streamed(), r.path.ends_with("/messages")) {
                (false, true) => return Reply::anthropic_message(ANSWER),
                (false, false) => return Reply::openai_chat(ANSWER),
                (true, true) => Reply::anthropic_stream(&words),
                (true, false) => Reply::openai_stream(&words),
            };
            reply.split(3).chunk_delay(Duration::from_micros(300))
        });
        let memory = store_with(&server, provider);
        let turn = || Chat::text("coffee?").user("u").remember(Remember::Off);
        let whole = memory.chat(turn()).unwrap();
        let (reply, pieces) = streamed(&memory, turn());
        let reply = reply.unwrap();
        assert_eq!(whole.answer, ANSWER, "{provider}");
        assert_eq!(reply.answer, ANSWER, "{provider}");
        assert_eq!(pieces.concat(), ANSWER, "{provider}");
        assert!(pieces.len() > 3, "{provider}: {pieces:?}");
        assert_eq!(server.requests()[1].body["stream"], true);
    }
}

/// Stopping the stream ends the call at once with `Cancelled` and stores nothing.
#[test]
fn a_cancelled_stream_stores_nothing() {
    let server = FakeLlm::with_handler(|r| {
        let words = ["one "; 200];
        if r.streamed() {
            return Reply::openai_stream(&words).chunk_delay(Duration::from_millis(50));
        }
        Reply::openai_chat(r#"{"facts": ["x"]}"#)
    });
    let memory = store(&server);
    add(&memory, Scope::user("u"), "something");
    let started = Instant::now();
    let mut seen = 0;
    let err = memory
        .chat_stream(Chat::text("count").user("u").run("r"), &mut |_| {
            seen += 1;
            seen < 2
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(count_all(&memory), 1, "nothing stored");
    assert_eq!(server.requests().len(), 1, "no inference after a cancel");
}

/// A stream cut mid-answer, an error event, are `Llm` errors and store nothing; a 429
/// before the stream starts is retried.
#[test]
fn broken_streams_are_llm_errors_and_store_nothing() {
    let cases: Vec<(&str, Reply)> = vec![
        (
            "cut",
            Reply::openai_stream(&["Hello ", "there ", "friend"]).cut_after(2),
        ),
        (
            "error event",
            Reply::openai_stream_error(&["Hello "], "upstream crashed"),
        ),
        (
            "anthropic error event",
            Reply::anthropic_stream_error(&["Hello "], "Overloaded"),
        ),
        (
            "anthropic cut",
            Reply::anthropic_stream(&["Hello ", "there"])
                .split(7)
                .cut_after(4),
        ),
    ];
    for (what, reply) in cases {
        let server = FakeLlm::start();
        server.push(reply);
        let provider = if what.starts_with("anthropic") {
            "anthropic"
        } else {
            "openai"
        };
        let memory = store_with(&server, provider);
        let (result, _) = streamed(&memory, Chat::text("hi").user("u").run("r"));
        let err = result.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Llm, "{what}: {err}");
        assert_eq!(count_all(&memory), 0, "{what}: nothing stored");
        assert!(!err.message().contains("sk-test-key"));
    }

    let server = FakeLlm::start();
    server.push(
        Reply::openai_error(429, "rate_limit_exceeded", "slow down")
            .with_header("retry-after", "0"),
    );
    server.push(Reply::openai_stream(&["fine"]));
    let memory = store(&server);
    let (result, pieces) = streamed(&memory, Chat::text("hi").user("u").remember(Remember::Off));
    assert_eq!(result.unwrap().answer, "fine");
    assert_eq!(pieces, ["fine"]);
    assert_eq!(server.requests().len(), 2);
}

// ------------------------------------------------------------------------------- remembering

/// Background remembering returns at once with a handle; its outcome comes later, once.
#[test]
fn background_remembering_reports_through_its_handle() {
    let server = model("Sure.", &["Likes jazz"]);
    let memory = store(&server);
    let reply = memory
        .chat(
            Chat::text("I like jazz")
                .user("u")
                .remember(Remember::Background),
        )
        .unwrap();
    assert_eq!(reply.remember.status, RememberStatus::Running);
    let handle = reply.remember.handle.unwrap();
    let outcome = memory.remembered(&handle, true).unwrap();
    assert_eq!(outcome.status, RememberStatus::Done);
    assert_eq!(outcome.events[0].memory, "Likes jazz");
    assert_eq!(
        memory.remembered(&handle, false).unwrap_err().code(),
        ErrorCode::NotFound
    );
    // close() waits for background work; here there is none left.
    memory.close().unwrap();
}

/// A remember step that fails does not lose the answer: it is reported beside it.
#[test]
fn a_failed_remember_keeps_the_answer() {
    let server = FakeLlm::with_handler(|r| {
        if is_chat(r) {
            return Reply::openai_answer(r, "Here is my answer.");
        }
        Reply::openai_error(400, "invalid_request_error", "extraction refused")
    });
    let memory = store(&server);
    let reply = memory.chat(Chat::text("remember this").user("u")).unwrap();
    assert_eq!(reply.answer, "Here is my answer.");
    assert_eq!(reply.remember.status, RememberStatus::Failed);
    let error = reply.remember.error.unwrap();
    assert_eq!(error.code, "Llm");
    assert!(
        error.message.contains("extraction refused"),
        "{}",
        error.message
    );
    // The turn itself is kept as working memory.
    assert!(reply.working_memory_id.is_some());
}

// ------------------------------------------------------------------------------- bad input

#[test]
fn bad_requests_are_refused_before_any_work() {
    let server = model("never", &[]);
    let memory = store(&server);
    let cases: Vec<(&str, Chat)> = vec![
        ("empty", Chat::new(vec![]).user("u")),
        (
            "last not user",
            Chat::new(vec![Message::user("hi"), Message::assistant("hello")]).user("u"),
        ),
        (
            "bad role",
            Chat::new(vec![Message::new("robot", "hi")]).user("u"),
        ),
        ("budget 0", Chat::text("hi").user("u").max_memory_tokens(0)),
        (
            "absurd budget",
            Chat::text("hi").user("u").max_memory_tokens(10_000_000),
        ),
        (
            "template",
            Chat::text("hi").user("u").prompt("Answer nicely."),
        ),
        ("no scope", Chat::text("hi")),
    ];
    for (what, chat) in cases {
        let err = memory.chat(chat).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{what}: {err}");
    }
    assert!(server.requests().is_empty());
    assert_eq!(count_all(&memory), 0);

    let no_model = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(8)))
        .build()
        .unwrap();
    let err = no_model.chat(Chat::text("hi").user("u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported);
    let err = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(8)))
        .chat_prompt("no placeholder")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
}

// ------------------------------------------------------------------------------- the wire

/// `chat` and `chat_remembered` through the one dispatch, streamed and not.
#[test]
fn the_dispatch_streams_chat() {
    let server = model("Hello from the model.", &["Says hello"]);
    let memory = store(&server);
    let pieces = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&pieces);
    let reply = wire::call_streaming(
        &memory,
        "chat",
        json!({"messages": "hello", "user_id": "u", "limit": 3, "remember": "background"}),
        &mut |piece| {
            sink.lock().unwrap().push_str(piece);
            true
        },
    )
    .unwrap();
    assert_eq!(reply["answer"], "Hello from the model.");
    assert_eq!(*pieces.lock().unwrap(), "Hello from the model.");
    assert_eq!(reply["remember"]["status"], "running");
    let outcome = wire::call(
        &memory,
        "chat_remembered",
        &json!({"handle": reply["remember"]["handle"], "wait": true}),
    )
    .unwrap();
    assert_eq!(outcome["status"], "done");
    assert_eq!(outcome["events"][0]["memory"], "Says hello");

    let whole = wire::call(&memory, "chat", &json!({"messages": [{"role": "user", "content": "hi"}], "user_id": "u", "remember": "off"})).unwrap();
    assert_eq!(whole["answer"], "Hello from the model.");
    assert!(whole["memories_used"].is_array());
    let err = wire::call(
        &memory,
        "chat",
        &json!({"messages": "hi", "user_id": "u", "remember": "later"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert_eq!(wire::text_chunk("a\"b"), r#"{"delta":"a\"b"}"#);
}
