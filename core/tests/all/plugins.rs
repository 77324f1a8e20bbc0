//! WASM plugins end to end: real modules compiled and run by Extism (wasmtime), hooked into a
//! real store. Most plugins here are tiny WebAssembly-text modules (`support/wat.rs`), so
//! these tests need no wasm32 Rust target; the Rust example plugins of `examples/plugins/`
//! are tested at the end when the test command could build them.

use crate::support;
use crate::support::wat;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::plugin::{
    Capability, FailurePolicy, PluginKind, PluginLimits, PluginManifest, PluginOptions,
    PluginSource,
};
use agent_mem::{
    AddMessages, ErrorCode, Filter, HashingEmbedder, Llm, Memory, MemoryKind, MemoryUpdate,
    NewMemory, Scope, SearchMode, SearchOptions,
};
use serde_json::{json, Value};
use support::fake_llm::{FakeLlm, Reply};
use wat::{module, one, Body};

// ------------------------------------------------------------------------------- helpers

fn store() -> Memory {
    store_with(PluginOptions::default())
}

fn store_with(options: PluginOptions) -> Memory {
    Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .plugin_options(options)
        .build()
        .unwrap()
}

fn register(memory: &Memory, manifest: PluginManifest, wat: String) -> agent_mem::Result<()> {
    memory
        .plugins()
        .register(PluginSource::Bytes(wat.into_bytes()), manifest)
        .map(|_| ())
}

fn call(
    memory: &Memory,
    id: &str,
    function: &str,
    input: &str,
    scope: &Scope,
) -> agent_mem::Result<String> {
    memory
        .call_plugin(id, function, input.as_bytes(), scope)
        .map(|out| String::from_utf8(out).unwrap())
}

fn keyword(scope: Scope) -> SearchOptions {
    SearchOptions::new().mode(SearchMode::Keyword).scope(scope)
}

fn contents(memory: &Memory, scope: Scope) -> Vec<String> {
    let mut all: Vec<String> = memory
        .list(&agent_mem::ListOptions {
            scope,
            ..Default::default()
        })
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.content)
        .collect();
    all.sort();
    all
}

fn log_text(memory: &Memory, id: &str) -> String {
    let info = memory.plugins().info(id).unwrap();
    info.log
        .iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------------------- on_add

#[test]
fn on_add_rewrites_content_and_metadata_before_storing() {
    let memory = store();
    let reply = json!({"content": "I like [redacted] tea", "metadata": {"checked": true}});
    register(
        &memory,
        PluginManifest::new("rewrite"),
        one("on_add", Body::Reply(reply.to_string())),
    )
    .unwrap();
    let out = memory
        .add(
            NewMemory::new("I like green tea")
                .user("alice")
                .meta("topic", "drinks"),
        )
        .unwrap();
    let stored = memory.get(&out.id).unwrap();
    assert_eq!(stored.content, "I like [redacted] tea");
    assert_eq!(stored.metadata.get("checked"), Some(&json!(true)));
    assert_eq!(
        stored.metadata.get("topic"),
        None,
        "metadata is replaced whole"
    );
    assert_eq!(
        stored.scope.user_id.as_deref(),
        Some("alice"),
        "scope never from a plugin"
    );
    // The stored text is what search sees.
    let hits = memory
        .search("redacted", &keyword(Scope::user("alice")))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(memory
        .search("green", &keyword(Scope::user("alice")))
        .unwrap()
        .is_empty());
}

#[test]
fn on_add_sees_the_memory_and_an_echo_changes_nothing() {
    let memory = store();
    // Logs its input (so the test can read what the hook was given) and answers with it.
    register(
        &memory,
        PluginManifest::new("spy").capability(Capability::Logging),
        one("on_add", Body::LogThenEcho(None)),
    )
    .unwrap();
    let out = memory
        .add(
            NewMemory::new("Alice drinks tea")
                .user("alice")
                .agent("helper")
                .kind(MemoryKind::Episodic)
                .meta("n", 1),
        )
        .unwrap();
    assert_eq!(memory.get(&out.id).unwrap().content, "Alice drinks tea");
    let info = memory.plugins().info("spy").unwrap();
    let seen: Value = serde_json::from_str(&info.log.last().unwrap().message).unwrap();
    assert_eq!(
        seen,
        json!({"hook": "on_add", "operation": "add", "content": "Alice drinks tea",
               "metadata": {"n": 1}, "kind": "episodic",
               "scope": {"user_id": "alice", "agent_id": "helper"}})
    );
}

#[test]
fn a_rejection_fails_the_whole_batch_with_the_reason_and_stores_nothing() {
    let memory = store();
    memory
        .add(NewMemory::new("already here").user("u"))
        .unwrap();
    register(
        &memory,
        PluginManifest::new("guard"),
        one(
            "on_add",
            Body::Reply(r#"{"reject": "contains a secret"}"#.into()),
        ),
    )
    .unwrap();
    let err = memory
        .add_batch(vec![
            NewMemory::new("one").user("u"),
            NewMemory::new("two").user("u"),
        ])
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(
        err.message()
            .contains("plugin \"guard\" rejected the memory: contains a secret"),
        "{err}"
    );
    assert_eq!(contents(&memory, Scope::user("u")), vec!["already here"]);
    // A rejection is not a failure of the plugin: the skip policy does not let it through.
    memory.plugins().unregister("guard").unwrap();
    register(
        &memory,
        PluginManifest::new("guard").on_error(FailurePolicy::Skip),
        one("on_add", Body::Reply(r#"{"reject": "no"}"#.into())),
    )
    .unwrap();
    assert_eq!(
        memory
            .add(NewMemory::new("x").user("u"))
            .unwrap_err()
            .code(),
        ErrorCode::Plugin
    );
    assert_eq!(memory.count(&Scope::user("u"), None).unwrap(), 1);
}

fn graph_of(memory: &Memory, scope: &Scope) -> Vec<(String, String, String, Vec<String>)> {
    memory
        .graph()
        .relations(&agent_mem::graph::RelationQuery {
            scope: scope.clone(),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| (r.subject_name, r.predicate, r.object_name, r.sources))
        .collect()
}

#[test]
fn on_add_may_state_entities_and_relations_stored_with_the_memory() {
    let memory = store();
    let alice = Scope::user("alice");
    let reply = json!({
        "entities": [{"name": "Alice", "type": "person", "aliases": ["Ally"]}],
        "relations": [{"subject": {"name": "Ally"}, "predicate": "Likes", "value": "tea"}],
    });
    register(
        &memory,
        PluginManifest::new("extract"),
        one("on_add", Body::Reply(reply.to_string())),
    )
    .unwrap();
    // The caller's own relations and the plugin's, all sourced from the memory.
    let out = memory
        .add(
            NewMemory::new("I like green tea, and I live in Oslo")
                .user("alice")
                .relation(agent_mem::graph::NewRelation::new(
                    "Alice", "lives_in", "Oslo",
                )),
        )
        .unwrap();
    let id = out.id.clone();
    assert_eq!(
        graph_of(&memory, &alice),
        vec![
            (
                "Alice".into(),
                "lives_in".into(),
                "Oslo".into(),
                vec![id.clone()]
            ),
            (
                "Alice".into(),
                "likes".into(),
                "tea".into(),
                vec![id.clone()]
            ),
        ]
    );
    let found = memory.graph().entities("ally", &alice, None, None).unwrap();
    assert_eq!(found[0].entity_type, "person");
    // Inferred facts go through on_add too: the plugin's relation is sourced from the fact.
    let server = FakeLlm::start();
    server.push(Reply::openai_chat(r#"{"facts": ["Bob drinks coffee"]}"#));
    let llm: Arc<dyn Llm> = serde_json::from_value::<agent_mem::LlmConfig>(json!({
        "provider": "openai", "model": "m", "api_key": "k", "base_url": server.openai_base(),
    }))
    .unwrap()
    .build()
    .unwrap();
    let inferring = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(llm)
        .build()
        .unwrap();
    register(
        &inferring,
        PluginManifest::new("extract"),
        one("on_add", Body::Reply(reply.to_string())),
    )
    .unwrap();
    let events = inferring
        .add_messages(AddMessages::text("I drink coffee").user("bob"))
        .unwrap();
    assert_eq!(
        graph_of(&inferring, &Scope::user("bob")),
        vec![(
            "Alice".into(),
            "likes".into(),
            "tea".into(),
            vec![events[0].id.clone()]
        )]
    );
    // An update takes no graph from a plugin: it says so in the plugin's log.
    memory
        .update(&id, MemoryUpdate::content("I like black tea"))
        .unwrap();
    assert!(log_text(&memory, "extract").contains("not on update"));
}

#[test]
fn a_plugins_bad_relation_fails_the_add_or_is_skipped_by_its_policy() {
    let memory = store();
    let u = Scope::user("u");
    let bad = json!({"content": "rewritten", "relations": [{"subject": {"name": "A"}, "predicate": "?", "value": "v"}]});
    register(
        &memory,
        PluginManifest::new("bad"),
        one("on_add", Body::Reply(bad.to_string())),
    )
    .unwrap();
    let err = memory.add(NewMemory::new("x").user("u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(err.message().contains("relations[0]"), "{err}");
    assert_eq!(memory.count(&u, None).unwrap(), 0);
    // An entity id of another scope passes the plugin's checks but not the store's: the
    // whole add fails, nothing stored.
    memory.plugins().unregister("bad").unwrap();
    let bobs = memory
        .graph()
        .add_entity(agent_mem::graph::NewEntity::new("Bob").scope(Scope::user("bob")))
        .unwrap();
    let foreign =
        json!({"relations": [{"subject": {"id": bobs.id}, "predicate": "p", "value": "v"}]});
    register(
        &memory,
        PluginManifest::new("foreign"),
        one("on_add", Body::Reply(foreign.to_string())),
    )
    .unwrap();
    let err = memory.add(NewMemory::new("x").user("u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert_eq!(memory.count(&u, None).unwrap(), 0);
    assert!(graph_of(&memory, &u).is_empty());
    // With on_error = skip, a malformed answer is skipped whole: the memory is stored as given.
    memory.plugins().unregister("foreign").unwrap();
    register(
        &memory,
        PluginManifest::new("bad").on_error(FailurePolicy::Skip),
        one("on_add", Body::Reply(bad.to_string())),
    )
    .unwrap();
    memory.add(NewMemory::new("x").user("u")).unwrap();
    assert_eq!(contents(&memory, u.clone()), vec!["x"]);
    assert!(graph_of(&memory, &u).is_empty());
}

#[test]
fn hooks_run_in_registration_order() {
    let memory = store();
    register(
        &memory,
        PluginManifest::new("first"),
        one(
            "on_add",
            Body::Reply(r#"{"content": "written by first"}"#.into()),
        ),
    )
    .unwrap();
    register(
        &memory,
        PluginManifest::new("second").capability(Capability::Logging),
        one("on_add", Body::LogThenEcho(None)),
    )
    .unwrap();
    memory.add(NewMemory::new("original").user("u")).unwrap();
    let seen: Value = serde_json::from_str(
        &memory
            .plugins()
            .info("second")
            .unwrap()
            .log
            .last()
            .unwrap()
            .message,
    )
    .unwrap();
    assert_eq!(seen["content"], "written by first");
    let ids: Vec<String> = memory.plugins().list().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["first", "second"]);
}

#[test]
fn update_of_content_goes_through_on_add() {
    let memory = store();
    let id = memory
        .add(NewMemory::new("my number is 555").user("u"))
        .unwrap()
        .id;
    register(
        &memory,
        PluginManifest::new("redact"),
        one(
            "on_add",
            Body::Reply(r#"{"content": "my number is [phone]"}"#.into()),
        ),
    )
    .unwrap();
    let updated = memory
        .update(&id, MemoryUpdate::content("my number is 0612345678"))
        .unwrap();
    assert_eq!(updated.content, "my number is [phone]");
    // Metadata-only updates do not call the hook (nothing new to check).
    let mut md = agent_mem::Metadata::new();
    md.insert("k".into(), json!(1));
    assert_eq!(
        memory
            .update(&id, MemoryUpdate::metadata(md))
            .unwrap()
            .content,
        "my number is [phone]"
    );
}

#[test]
fn inferred_facts_go_through_on_add() {
    let server = FakeLlm::start();
    server.push(Reply::openai_chat(
        r#"{"facts": ["Email is bob@example.com", "Likes jazz"]}"#,
    ));
    let llm: Arc<dyn Llm> = serde_json::from_value::<agent_mem::LlmConfig>(json!({
        "provider": "openai", "model": "m", "api_key": "k", "base_url": server.openai_base(),
    }))
    .unwrap()
    .build()
    .unwrap();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(llm)
        .build()
        .unwrap();
    // Echoes all but e-mails, which it rewrites (the WAT plugin is simple: it tags every fact).
    register(
        &memory,
        PluginManifest::new("tag"),
        one(
            "on_add",
            Body::Reply(r#"{"metadata": {"tagged": true}}"#.into()),
        ),
    )
    .unwrap();
    let events = memory
        .add_messages(AddMessages::text("my email is bob@example.com and I like jazz").user("bob"))
        .unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(
            memory.get(&e.id).unwrap().metadata.get("tagged"),
            Some(&json!(true))
        );
    }
}

#[test]
fn raw_messages_go_through_on_add_and_events_say_what_was_stored() {
    let memory = store();
    register(
        &memory,
        PluginManifest::new("redact"),
        one(
            "on_add",
            Body::Reply(r#"{"content": "[redacted message]"}"#.into()),
        ),
    )
    .unwrap();
    let events = memory
        .add_messages(AddMessages::text("my card is 4111 1111 1111 1111").user("bob"))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].memory, "[redacted message]");
    assert_eq!(
        memory.get(&events[0].id).unwrap().content,
        "[redacted message]"
    );
}

// ------------------------------------------------------------------------------- search hooks

fn three_drinks(memory: &Memory) -> Vec<String> {
    ["alice likes tea", "alice likes coffee", "alice likes juice"]
        .iter()
        .map(|c| {
            memory
                .add(NewMemory::new(*c).user("alice").meta("n", c.len()))
                .unwrap()
                .id
        })
        .collect()
}

#[test]
fn before_search_rewrites_query_limit_and_filters_but_not_the_scope() {
    let memory = store();
    three_drinks(&memory);
    memory
        .add(NewMemory::new("bob likes tea").user("bob"))
        .unwrap();
    register(
        &memory,
        PluginManifest::new("rewrite"),
        one(
            "before_search",
            Body::Reply(r#"{"query": "tea", "limit": 5, "filters": {"user_id": "bob"}}"#.into()),
        ),
    )
    .unwrap();
    // The filter asks for bob, the scope says alice: scope wins (nothing matches both).
    let hits = memory
        .search("juice", &keyword(Scope::user("alice")))
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    memory.plugins().unregister("rewrite").unwrap();
    register(
        &memory,
        PluginManifest::new("rewrite"),
        one(
            "before_search",
            Body::Reply(r#"{"query": "tea", "filters": null}"#.into()),
        ),
    )
    .unwrap();
    let hits = memory
        .search(
            "juice",
            &keyword(Scope::user("alice")).filter(Filter::eq("n", 999)),
        )
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.content, "alice likes tea");
}

#[test]
fn before_search_receives_the_filters_as_json() {
    let memory = store();
    three_drinks(&memory);
    register(
        &memory,
        PluginManifest::new("spy").capability(Capability::Logging),
        one("before_search", Body::LogThenEcho(None)),
    )
    .unwrap();
    let filter = Filter::parse(r#"{"n": {"gte": 16}}"#).unwrap();
    let hits = memory
        .search(
            "alice",
            &keyword(Scope::user("alice")).limit(7).filter(filter),
        )
        .unwrap();
    assert_eq!(hits.len(), 2, "the echoed filter still applies");
    let seen: Value = serde_json::from_str(
        &memory
            .plugins()
            .info("spy")
            .unwrap()
            .log
            .last()
            .unwrap()
            .message,
    )
    .unwrap();
    assert_eq!(seen["query"], "alice");
    assert_eq!(seen["limit"], 7);
    assert_eq!(seen["mode"], "keyword");
    assert_eq!(seen["scope"], json!({"user_id": "alice"}));
    assert_eq!(
        Filter::from_json(&seen["filters"]).unwrap(),
        Filter::parse(r#"{"n": {"gte": 16}}"#).unwrap()
    );
}

#[test]
fn after_search_reorders_drops_and_rescores_but_cannot_inject() {
    let memory = store();
    let ids = three_drinks(&memory);
    let reply = json!({"hits": [{"id": ids[2], "score": 9.5}, {"id": ids[0]}]});
    register(
        &memory,
        PluginManifest::new("rerank"),
        one("after_search", Body::Reply(reply.to_string())),
    )
    .unwrap();
    let hits = memory
        .search("alice likes", &keyword(Scope::user("alice")))
        .unwrap();
    let got: Vec<(&str, f32)> = hits
        .iter()
        .map(|h| (h.memory.content.as_str(), h.score))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], ("alice likes juice", 9.5));
    assert_eq!(got[1].0, "alice likes tea");
    assert!(
        got[1].1 < 9.5 && got[1].1 > 0.0,
        "score kept when not given"
    );

    // An id that was not in the results is refused.
    memory.plugins().unregister("rerank").unwrap();
    let bob = memory
        .add(NewMemory::new("bob likes tea").user("bob"))
        .unwrap()
        .id;
    let inject = json!({"hits": [{"id": bob}]});
    register(
        &memory,
        PluginManifest::new("inject"),
        one("after_search", Body::Reply(inject.to_string())),
    )
    .unwrap();
    let err = memory
        .search("tea", &keyword(Scope::user("alice")))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(err.message().contains("was not in the results"), "{err}");
    assert_eq!(memory.plugins().info("inject").unwrap().stats.failures, 1);
}

#[test]
fn after_search_sees_the_hits() {
    let memory = store();
    let ids = three_drinks(&memory);
    register(
        &memory,
        PluginManifest::new("spy").capability(Capability::Logging),
        one("after_search", Body::LogThenEcho(None)),
    )
    .unwrap();
    let hits = memory
        .search("juice", &keyword(Scope::user("alice")))
        .unwrap();
    assert_eq!(hits.len(), 1);
    let seen: Value = serde_json::from_str(
        &memory
            .plugins()
            .info("spy")
            .unwrap()
            .log
            .last()
            .unwrap()
            .message,
    )
    .unwrap();
    assert_eq!(seen["hook"], "after_search");
    assert_eq!(seen["query"], "juice");
    let hit = &seen["hits"][0];
    assert_eq!(hit["id"], ids[2]);
    assert_eq!(hit["content"], "alice likes juice");
    assert_eq!(hit["user_id"], "alice");
    assert_eq!(hit["metadata"], json!({"n": 17}));
    assert!(hit["score"].as_f64().unwrap() > 0.0);
}

// ------------------------------------------------------------------------------- capabilities

/// A plugin whose `run` export calls one host function with a fixed argument.
fn caller(host: &'static str, arg: &str) -> String {
    module(&[("run", Body::Host(host, Some(arg.to_string())))])
}

#[test]
fn each_host_function_needs_its_capability() {
    let memory = store();
    memory
        .add(NewMemory::new("alice likes tea").user("alice"))
        .unwrap();
    let alice = Scope::user("alice");
    let cases: [(Capability, String); 4] = [
        (
            Capability::Search,
            caller("am_search", r#"{"query": "tea", "mode": "keyword"}"#),
        ),
        (
            Capability::MemoryWrite,
            caller("am_add", r#"{"content": "written by a plugin"}"#),
        ),
        (
            Capability::MemoryRead,
            caller("am_get", "00000000-0000-4000-8000-000000000000"),
        ),
        (Capability::Config, module(&[("run", Body::Config)])),
    ];
    for (i, (capability, wat)) in cases.iter().enumerate() {
        let denied = format!("denied{i}");
        let kind = PluginKind::Function;
        register(
            &memory,
            PluginManifest::new(&denied).kind(kind),
            wat.clone(),
        )
        .unwrap();
        let err = call(&memory, &denied, "run", "", &alice).unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::PermissionDenied,
            "{capability}: {err}"
        );
        assert!(
            err.message().contains(&format!(
                "capability '{capability}' not granted to plugin '{denied}'"
            )),
            "{err}"
        );
        let info = memory.plugins().info(&denied).unwrap();
        assert_eq!(info.stats.denied, 1);
        assert!(
            log_text(&memory, &denied).contains("warn denied: capability"),
            "{}",
            log_text(&memory, &denied)
        );

        let granted = format!("granted{i}");
        register(
            &memory,
            PluginManifest::new(&granted)
                .kind(kind)
                .capability(*capability)
                .capability(Capability::Config)
                .config("mode", "strict"),
            wat.clone(),
        )
        .unwrap();
        let out = call(&memory, &granted, "run", "", &alice).unwrap();
        let answer: Value = serde_json::from_str(&out).unwrap();
        match capability {
            Capability::Search => assert_eq!(answer["results"][0]["content"], "alice likes tea"),
            Capability::MemoryWrite => assert_eq!(answer["added"], true),
            Capability::MemoryRead => assert_eq!(answer, Value::Null),
            Capability::Config => assert_eq!(answer, json!({"mode": "strict"})),
            _ => unreachable!(),
        }
    }
    // Nothing written by the denied am_add; one memory by the granted one.
    assert_eq!(
        contents(&memory, Scope::user("alice")),
        vec!["alice likes tea", "written by a plugin"]
    );
}

#[test]
fn logging_and_llm_are_capabilities_too() {
    let server = FakeLlm::start();
    server.push(Reply::openai_chat("Paris"));
    let llm: Arc<dyn Llm> = serde_json::from_value::<agent_mem::LlmConfig>(json!({
        "provider": "openai", "model": "m", "api_key": "k", "base_url": server.openai_base(),
    }))
    .unwrap()
    .build()
    .unwrap();
    let memory = Memory::builder()
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .llm(llm)
        .build()
        .unwrap();
    let ask = caller(
        "am_llm",
        r#"{"messages": [{"role": "user", "content": "Capital of France?"}]}"#,
    );
    let log = module(&[("run", Body::LogThenEcho(Some("hello from wasm".into())))]);
    for (id, wat, capability) in [
        ("ask", &ask, Capability::Llm),
        ("log", &log, Capability::Logging),
    ] {
        register(
            &memory,
            PluginManifest::new(format!("{id}-denied")).kind(PluginKind::Function),
            wat.clone(),
        )
        .unwrap();
        let err = call(
            &memory,
            &format!("{id}-denied"),
            "run",
            "x",
            &Scope::global(),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied, "{err}");
        register(
            &memory,
            PluginManifest::new(id)
                .kind(PluginKind::Function)
                .capability(capability),
            wat.clone(),
        )
        .unwrap();
    }
    assert_eq!(
        server.requests().len(),
        0,
        "a denied am_llm never reaches the model"
    );
    assert_eq!(
        call(&memory, "ask", "run", "", &Scope::global()).unwrap(),
        "Paris"
    );
    assert_eq!(
        server.requests()[0].body["messages"][0]["content"],
        "Capital of France?"
    );
    assert_eq!(
        call(&memory, "log", "run", "input", &Scope::global()).unwrap(),
        "input"
    );
    assert!(log_text(&memory, "log").contains("info hello from wasm"));
}

#[test]
fn network_access_needs_the_capability_and_an_allowed_host() {
    let server = FakeLlm::start();
    let memory = store();
    let fetch = module(&[("fetch", Body::Http(format!("{}/weather", server.url())))]);
    let function = PluginManifest::new("none").kind(PluginKind::Function);
    register(&memory, function, fetch.clone()).unwrap();
    let err = call(&memory, "none", "fetch", "", &Scope::global()).unwrap_err();
    assert!(err.message().contains("is not allowed"), "{err}");
    let other_host = PluginManifest {
        allowed_hosts: vec!["example.com".into()],
        ..PluginManifest::new("other")
            .kind(PluginKind::Function)
            .capability(Capability::Network)
    };
    register(&memory, other_host, fetch.clone()).unwrap();
    let err = call(&memory, "other", "fetch", "", &Scope::global()).unwrap_err();
    assert!(err.message().contains("is not allowed"), "{err}");
    assert!(server.requests().is_empty(), "nothing left the sandbox");

    server.push(Reply::raw(200, "sunny"));
    let allowed = PluginManifest {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..PluginManifest::new("net")
            .kind(PluginKind::Function)
            .capability(Capability::Network)
    };
    register(&memory, allowed, fetch).unwrap();
    assert_eq!(
        call(&memory, "net", "fetch", "", &Scope::global()).unwrap(),
        "sunny"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn redirects_go_only_to_allowed_hosts() {
    // The host a plugin must not reach, by a name it was not allowed ("localhost").
    let inside = FakeLlm::with_handler(|_| Reply::raw(200, "secret"));
    let port = inside.url().rsplit(':').next().unwrap().to_string();
    let outside = FakeLlm::with_handler(move |r| match r.path.as_str() {
        "/elsewhere" => {
            Reply::raw(302, "").with_header("Location", &format!("http://localhost:{port}/x"))
        }
        "/here" => Reply::raw(301, "").with_header("Location", "/weather"),
        "/weather" => Reply::raw(200, "sunny"),
        _ => Reply::raw(404, "no"),
    });
    let memory = store();
    let fetch = module(&[
        (
            "elsewhere",
            Body::Http(format!("{}/elsewhere", outside.url())),
        ),
        ("here", Body::Http(format!("{}/here", outside.url()))),
    ]);
    let manifest = PluginManifest {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..PluginManifest::new("net")
            .kind(PluginKind::Function)
            .capability(Capability::Network)
    };
    register(&memory, manifest, fetch).unwrap();
    let err = call(&memory, "net", "elsewhere", "", &Scope::global()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(err.message().contains("redirect"), "{err}");
    assert!(err.message().contains("localhost"), "{err}");
    assert!(err.message().contains("is not allowed"), "{err}");
    assert!(inside.requests().is_empty(), "the redirect was followed");
    // A redirect to an allowed host (relative, here) is followed.
    assert_eq!(
        call(&memory, "net", "here", "", &Scope::global()).unwrap(),
        "sunny"
    );
    let paths: Vec<String> = outside.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/elsewhere", "/here", "/weather"]);
}

/// Reads `name` from the WASI directory preopened as fd 3 and answers with its first bytes.
fn file_reader(name: &str) -> String {
    let escaped: String = name.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{escaped}")
  (func (export "read") (result i32)
    (local $errno i32) (local $n i32) (local $off i64) (local $i i32)
    ;; path_open(dirfd 3, follow symlinks, path, oflags 0, right fd_read, fdflags 0, fd out at 0)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 1) (i32.const 16) (i32.const {len})
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 0)))
    (if (local.get $errno) (then (return (i32.add (i32.const 100) (local.get $errno)))))
    ;; one iovec at 8: buffer 1024, 512 bytes; bytes read at 4
    (i32.store (i32.const 8) (i32.const 1024))
    (i32.store (i32.const 12) (i32.const 512))
    (drop (call $fd_read (i32.load (i32.const 0)) (i32.const 8) (i32.const 1) (i32.const 4)))
    (local.set $n (i32.load (i32.const 4)))
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $output_set (local.get $off) (i64.extend_i32_u (local.get $n)))
    (i32.const 0)))"#,
        len = name.len()
    )
}

#[test]
fn the_filesystem_is_reachable_only_with_the_capability_and_only_the_allowed_paths() {
    let memory = store();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("note.txt"), "from the host").unwrap();
    std::fs::write(
        shared.path().parent().unwrap().join("agentmem-secret.txt"),
        "secret",
    )
    .unwrap();
    // Without the capability there is no WASI at all: the module cannot even link.
    let err = register(
        &memory,
        PluginManifest::new("nofs").kind(PluginKind::Function),
        file_reader("note.txt"),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(err.message().contains("path_open"), "{err}");
    let dir = shared.path().to_str().unwrap().to_string();
    let manifest = |id: &str, name: &str| {
        let mut m = PluginManifest::new(id)
            .kind(PluginKind::Function)
            .capability(Capability::Filesystem);
        m.allowed_paths.insert(dir.clone(), "/data".into());
        (m, file_reader(name))
    };
    let (m, wat) = manifest("fs", "note.txt");
    register(&memory, m, wat).unwrap();
    assert_eq!(
        call(&memory, "fs", "read", "", &Scope::global()).unwrap(),
        "from the host"
    );
    // Outside the mounted directory: refused by WASI (the export returns a non-zero code).
    let (m, wat) = manifest("escape", "../agentmem-secret.txt");
    register(&memory, m, wat).unwrap();
    let err = call(&memory, "escape", "read", "", &Scope::global()).unwrap_err();
    assert!(!err.message().contains("secret"), "{err}");
    let _ = std::fs::remove_file(shared.path().parent().unwrap().join("agentmem-secret.txt"));
}

// ------------------------------------------------------------------------------- scope

#[test]
fn host_functions_are_confined_to_the_callers_scope() {
    let memory = store();
    let alice_id = memory
        .add(NewMemory::new("alice secret tea").user("alice"))
        .unwrap()
        .id;
    let bob_id = memory
        .add(NewMemory::new("bob secret tea").user("bob"))
        .unwrap()
        .id;
    memory.add(NewMemory::new("global secret tea")).unwrap();
    let search = |filters: Value| {
        json!({"query": "secret tea", "mode": "keyword", "limit": 50, "filters": filters})
            .to_string()
    };
    let plugin = module(&[
        ("all", Body::Host("am_search", Some(search(Value::Null)))),
        (
            "bob_filter",
            Body::Host("am_search", Some(search(json!({"user_id": "bob"})))),
        ),
        ("get_bob", Body::Host("am_get", Some(bob_id.clone()))),
        ("get_alice", Body::Host("am_get", Some(alice_id.clone()))),
        (
            "add",
            Body::Host(
                "am_add",
                Some(r#"{"content": "added by plugin", "kind": "semantic"}"#.into()),
            ),
        ),
    ]);
    let manifest = PluginManifest::new("nosy")
        .kind(PluginKind::Function)
        .capability(Capability::Search)
        .capability(Capability::MemoryRead)
        .capability(Capability::MemoryWrite);
    register(&memory, manifest, plugin).unwrap();
    let alice = Scope::user("alice");
    let found = |function: &str, scope: &Scope| -> Vec<String> {
        let out: Value =
            serde_json::from_str(&call(&memory, "nosy", function, "", scope).unwrap()).unwrap();
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(found("all", &alice), vec!["alice secret tea"]);
    assert!(
        found("bob_filter", &alice).is_empty(),
        "a filter cannot widen the scope"
    );
    // Unscoped call: only the global layer, never everyone's memories.
    assert_eq!(found("all", &Scope::global()), vec!["global secret tea"]);
    assert_eq!(
        call(&memory, "nosy", "get_bob", "", &alice).unwrap(),
        "null"
    );
    let own: Value =
        serde_json::from_str(&call(&memory, "nosy", "get_alice", "", &alice).unwrap()).unwrap();
    assert_eq!(own["content"], "alice secret tea");
    assert_eq!(
        call(&memory, "nosy", "get_alice", "", &Scope::user("bob")).unwrap(),
        "null"
    );
    let added: Value =
        serde_json::from_str(&call(&memory, "nosy", "add", "", &alice).unwrap()).unwrap();
    let record = memory.get(added["id"].as_str().unwrap()).unwrap();
    assert_eq!(record.scope, alice);
    let history = memory.history(&record.id).unwrap();
    assert_eq!(history[0].actor, "plugin:nosy");
}

#[test]
fn hook_host_calls_use_the_operations_scope() {
    let memory = store();
    // on_add writes a side note through am_add; its answer ({"id", "added"}) has no on_add
    // keys, so the memory itself is stored unchanged.
    let plugin = one(
        "on_add",
        Body::Host("am_add", Some(r#"{"content": "side note"}"#.into())),
    );
    register(
        &memory,
        PluginManifest::new("noter").capability(Capability::MemoryWrite),
        plugin,
    )
    .unwrap();
    memory
        .add(NewMemory::new("alice likes cake").user("alice").agent("a1"))
        .unwrap();
    let scope = Scope::user("alice").with_agent("a1");
    assert_eq!(
        contents(&memory, scope),
        vec!["alice likes cake", "side note"]
    );
    assert!(contents(&memory, Scope::user("bob")).is_empty());
}

// ------------------------------------------------------------------------------- limits

fn limited(id: &str, limits: PluginLimits) -> PluginManifest {
    PluginManifest::new(id)
        .kind(PluginKind::Function)
        .limits(limits)
}

#[test]
fn an_infinite_loop_is_stopped_by_the_timeout_and_the_host_keeps_working() {
    let memory = store();
    let limits = PluginLimits {
        timeout_ms: 200,
        ..PluginLimits::default()
    };
    register(
        &memory,
        limited("spin", limits),
        module(&[("spin", Body::Loop), ("ok", Body::Reply("fine".into()))]),
    )
    .unwrap();
    let started = Instant::now();
    let err = call(&memory, "spin", "spin", "", &Scope::global()).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(err.message().contains("timed out after 200 ms"), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The plugin and the store still work.
    assert_eq!(
        call(&memory, "spin", "ok", "", &Scope::global()).unwrap(),
        "fine"
    );
    memory.add(NewMemory::new("still here").user("u")).unwrap();
    let info = memory.plugins().info("spin").unwrap();
    assert_eq!((info.stats.calls, info.stats.failures), (2, 1));
    assert!(info.last_error.unwrap().contains("timed out"));
}

#[test]
fn a_runaway_hook_fails_the_operation_and_writes_nothing() {
    let memory = store();
    let limits = PluginLimits {
        timeout_ms: 100,
        ..PluginLimits::default()
    };
    register(
        &memory,
        PluginManifest::new("slow").limits(limits),
        one("on_add", Body::Loop),
    )
    .unwrap();
    let err = memory.add(NewMemory::new("x").user("u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(
        err.message().contains("failed in on_add: timed out"),
        "{err}"
    );
    assert_eq!(memory.count(&Scope::global(), None).unwrap(), 0);
}

#[test]
fn a_growing_allocation_hits_the_memory_limit() {
    let memory = store();
    let limits = PluginLimits {
        memory_pages: 64,
        timeout_ms: 10_000,
        fuel: None,
    };
    register(
        &memory,
        limited("hog", limits),
        module(&[("grow", Body::Grow), ("ok", Body::Reply("fine".into()))]),
    )
    .unwrap();
    let err = call(&memory, "hog", "grow", "", &Scope::global()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(
        err.message()
            .contains("ran out of memory: the limit is 64 pages"),
        "{err}"
    );
    assert_eq!(
        call(&memory, "hog", "ok", "", &Scope::global()).unwrap(),
        "fine"
    );
}

#[test]
fn fuel_bounds_the_instructions_of_a_call() {
    let memory = store();
    let limits = PluginLimits {
        fuel: Some(1_000_000),
        timeout_ms: 60_000,
        ..PluginLimits::default()
    };
    register(
        &memory,
        limited("burn", limits),
        module(&[("spin", Body::Loop), ("ok", Body::Reply("fine".into()))]),
    )
    .unwrap();
    let err = call(&memory, "burn", "spin", "", &Scope::global()).unwrap_err();
    assert!(
        err.message()
            .contains("ran out of fuel: 1000000 instructions"),
        "{err}"
    );
    // Fuel is per call: a short call after a long one still runs.
    assert_eq!(
        call(&memory, "burn", "ok", "", &Scope::global()).unwrap(),
        "fine"
    );
}

#[test]
fn start_code_that_never_returns_is_refused_at_registration() {
    let memory = store();
    let limits = PluginLimits {
        timeout_ms: 100,
        ..PluginLimits::default()
    };
    // A start function, and a WASI reactor's `_initialize` (run when an instance is made).
    let spinning_start = r#"(module
  (func $spin (loop $forever (br $forever)))
  (start $spin)
  (func (export "run") (result i32) (i32.const 0)))"#;
    let spinning_init = r#"(module
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (func (export "_initialize") (drop (call $length (i64.const 0))) (loop $forever (br $forever)))
  (func (export "run") (result i32) (i32.const 0)))"#;
    for (id, wat) in [("start", spinning_start), ("init", spinning_init)] {
        let err = register(&memory, limited(id, limits), wat.to_string()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Plugin, "{id}: {err}");
        assert!(
            err.message()
                .contains("did not finish within 100 ms (limits.timeout_ms)"),
            "{id}: {err}"
        );
        expect_not_registered(&memory, id);
    }
    // Start code that ends is run as before.
    let quick_start = r#"(module
  (global $ready (mut i32) (i32.const 0))
  (func $init (global.set $ready (i32.const 1)))
  (start $init)
  (func (export "run") (result i32)
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (i32.const 0)))"#;
    register(&memory, limited("quick", limits), quick_start.to_string()).unwrap();
    assert_eq!(
        call(&memory, "quick", "run", "", &Scope::global()).unwrap(),
        ""
    );
}

fn expect_not_registered(memory: &Memory, id: &str) {
    assert_eq!(
        memory.plugins().info(id).unwrap_err().code(),
        ErrorCode::NotFound,
        "{id} was registered"
    );
}

#[test]
fn an_initial_memory_above_the_limit_is_refused_at_registration() {
    let memory = store();
    let big = r#"(module (memory 300) (func (export "run") (result i32) (i32.const 0)))"#;
    let err = register(&memory, limited("big", PluginLimits::default()), big.into()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(
        err.message().contains(
            "its memory starts at 300 pages of 64 KiB, more than limits.memory_pages (256)"
        ),
        "{err}"
    );
    expect_not_registered(&memory, "big");
    let roomy = PluginLimits {
        memory_pages: 400,
        ..PluginLimits::default()
    };
    register(&memory, limited("big", roomy), big.into()).unwrap();
}

#[test]
fn bad_limits_and_manifests_are_refused() {
    let memory = store();
    let ok = one("on_add", Body::Echo);
    for (manifest, needle) in [
        (PluginManifest::new("a b"), "plugin id"),
        (PluginManifest::new(""), "plugin id"),
        (
            PluginManifest::new("x").limits(PluginLimits {
                timeout_ms: 0,
                ..PluginLimits::default()
            }),
            "timeout_ms",
        ),
        (
            PluginManifest::new("x").limits(PluginLimits {
                memory_pages: 0,
                ..PluginLimits::default()
            }),
            "memory_pages",
        ),
        (
            PluginManifest::new("x").limits(PluginLimits {
                fuel: Some(0),
                ..PluginLimits::default()
            }),
            "fuel",
        ),
        (
            PluginManifest {
                allowed_hosts: vec!["example.com".into()],
                ..PluginManifest::new("x")
            },
            "network capability",
        ),
        (
            PluginManifest::new("x").config("k", "v"),
            "config needs the config capability",
        ),
    ] {
        let err = register(&memory, manifest, ok.clone()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
        assert!(err.message().contains(needle), "{err}");
    }
    assert!(memory.plugins().list().is_empty());
}

#[test]
fn a_plugin_cache_of_zero_is_refused() {
    let err = Memory::builder()
        .without_embedder()
        .plugin_options(PluginOptions { cache_size: 0 })
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(err.message().contains("cache_size"), "{err}");
}

// ------------------------------------------------------------------------------- failures

#[test]
fn malformed_modules_get_a_clear_error_and_register_nothing() {
    let memory = store();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not wasm".to_vec(), "not a WebAssembly module"),
        (b"\0asm\x01\0\0\0\xff\xff\xff".to_vec(), "cannot be loaded"),
        (
            b"(module (func (export \"on_add\")".to_vec(),
            "cannot be loaded",
        ),
        (Vec::new(), "not a WebAssembly module"),
    ];
    for (bytes, needle) in cases {
        let err = memory
            .plugins()
            .register(PluginSource::Bytes(bytes), PluginManifest::new("bad"))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Plugin, "{err}");
        assert!(
            err.message().contains(needle) && err.message().contains("\"bad\""),
            "{err}"
        );
    }
    let err = memory
        .plugins()
        .register(
            PluginSource::Path("/nonexistent/plugin.wasm".into()),
            PluginManifest::new("bad"),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    assert!(err.message().contains("/nonexistent/plugin.wasm"), "{err}");
    // An import the host does not provide.
    let foreign = r#"(module (import "env" "launch_missiles" (func)) (func (export "on_add") (result i32) (i32.const 0)))"#;
    let err = register(&memory, PluginManifest::new("bad"), foreign.into()).unwrap_err();
    assert!(err.message().contains("launch_missiles"), "{err}");
    // A hook plugin without hooks.
    let err = register(
        &memory,
        PluginManifest::new("bad"),
        one("helper", Body::Echo),
    )
    .unwrap_err();
    assert!(
        err.message()
            .contains("exports none of on_add, before_search, after_search"),
        "{err}"
    );
    assert!(memory.plugins().list().is_empty());
    memory.add(NewMemory::new("fine").user("u")).unwrap();
}

#[test]
fn a_panicking_plugin_fails_cleanly_and_its_next_call_gets_a_fresh_instance() {
    let memory = store();
    register(
        &memory,
        PluginManifest::new("boom").kind(PluginKind::Function),
        module(&[
            ("panic", Body::Trap),
            ("fail", Body::Fail("bad input: expected JSON".into())),
            ("ok", Body::Reply("fine".into())),
        ]),
    )
    .unwrap();
    let err = call(&memory, "boom", "panic", "", &Scope::global()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);
    assert!(
        err.message()
            .contains("trapped (the plugin panicked or aborted)"),
        "{err}"
    );
    let err = call(&memory, "boom", "fail", "", &Scope::global()).unwrap_err();
    assert!(
        err.message()
            .contains("failed in fail: bad input: expected JSON"),
        "{err}"
    );
    assert_eq!(
        call(&memory, "boom", "ok", "", &Scope::global()).unwrap(),
        "fine"
    );
    let err = call(&memory, "boom", "nope", "", &Scope::global()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[test]
fn the_skip_policy_lets_the_operation_go_on_without_the_failing_plugin() {
    let memory = store();
    register(
        &memory,
        PluginManifest::new("broken").on_error(FailurePolicy::Skip),
        one("on_add", Body::Trap),
    )
    .unwrap();
    register(
        &memory,
        PluginManifest::new("nonsense").on_error(FailurePolicy::Skip),
        module(&[
            ("on_add", Body::Reply("not json".into())),
            ("after_search", Body::Reply(r#"{"hits": 3}"#.into())),
        ]),
    )
    .unwrap();
    let id = memory
        .add(NewMemory::new("kept as is").user("u"))
        .unwrap()
        .id;
    assert_eq!(memory.get(&id).unwrap().content, "kept as is");
    assert_eq!(
        memory
            .search("kept", &keyword(Scope::user("u")))
            .unwrap()
            .len(),
        1
    );
    let broken = memory.plugins().info("broken").unwrap();
    assert_eq!(broken.stats.failures, 1);
    assert!(log_text(&memory, "broken").contains("warn skipped (on_error = skip)"));
    assert_eq!(memory.plugins().info("nonsense").unwrap().stats.failures, 2);
    // With the default policy the same answer fails the call.
    register(
        &memory,
        PluginManifest::new("strict"),
        one("on_add", Body::Reply("not json".into())),
    )
    .unwrap();
    let err = memory.add(NewMemory::new("y").user("u")).unwrap_err();
    assert!(
        err.message()
            .contains("plugin \"strict\" on_add: answered with JSON that does not fit"),
        "{err}"
    );
}

#[test]
fn function_plugins_never_run_as_hooks_and_ids_are_unique() {
    let memory = store();
    register(
        &memory,
        PluginManifest::new("tool").kind(PluginKind::Function),
        module(&[
            ("on_add", Body::Reply(r#"{"reject": "no"}"#.into())),
            ("shout", Body::Reply("HEY".into())),
        ]),
    )
    .unwrap();
    memory.add(NewMemory::new("stored").user("u")).unwrap();
    assert_eq!(
        call(&memory, "tool", "shout", "", &Scope::global()).unwrap(),
        "HEY"
    );
    let err = register(
        &memory,
        PluginManifest::new("tool"),
        one("on_add", Body::Echo),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AlreadyExists);
    memory.plugins().unregister("tool").unwrap();
    assert_eq!(
        memory.plugins().unregister("tool").unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        call(&memory, "tool", "shout", "", &Scope::global())
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
}

// ------------------------------------------------------------------------------- reload, LRU

fn write(path: &PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_code_running() {
    let memory = store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.wat");
    write(
        &path,
        &one(
            "on_add",
            Body::Reply(r#"{"content": "version one"}"#.into()),
        ),
    );
    memory
        .plugins()
        .register(PluginSource::Path(path.clone()), PluginManifest::new("hot"))
        .unwrap();
    let first = memory.add(NewMemory::new("a").user("u")).unwrap().id;
    assert_eq!(memory.get(&first).unwrap().content, "version one");

    write(
        &path,
        &one(
            "on_add",
            Body::Reply(r#"{"content": "version two, longer"}"#.into()),
        ),
    );
    let second = memory.add(NewMemory::new("b").user("u")).unwrap().id;
    assert_eq!(memory.get(&second).unwrap().content, "version two, longer");
    let info = memory.plugins().info("hot").unwrap();
    assert_eq!((info.stats.loads, info.stats.reloads), (2, 1));
    assert_eq!(info.path.as_deref(), Some(path.as_path()));

    write(&path, "(module (this is broken");
    let third = memory.add(NewMemory::new("c").user("u")).unwrap().id;
    assert_eq!(memory.get(&third).unwrap().content, "version two, longer");
    let info = memory.plugins().info("hot").unwrap();
    assert!(info
        .last_error
        .unwrap()
        .contains("the previous version keeps running"));
    // An explicit reload reports the error.
    let err = memory.plugins().reload("hot").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Plugin);

    write(
        &path,
        &one(
            "on_add",
            Body::Reply(r#"{"content": "version three"}"#.into()),
        ),
    );
    memory.plugins().reload("hot").unwrap();
    let fourth = memory.add(NewMemory::new("d").user("u")).unwrap().id;
    assert_eq!(memory.get(&fourth).unwrap().content, "version three");
}

#[test]
fn the_compiled_cache_evicts_the_least_recently_used_plugin() {
    let memory = store_with(PluginOptions { cache_size: 2 });
    for id in ["p1", "p2", "p3"] {
        register(
            &memory,
            PluginManifest::new(id).kind(PluginKind::Function),
            one("name", Body::Reply(id.into())),
        )
        .unwrap();
    }
    let loaded = |m: &Memory| -> Vec<String> {
        m.plugins()
            .list()
            .into_iter()
            .filter(|p| p.loaded)
            .map(|p| p.id)
            .collect()
    };
    assert_eq!(loaded(&memory), ["p2", "p3"]);
    // Using p1 compiles it again and evicts the least recently used (p2).
    assert_eq!(
        call(&memory, "p1", "name", "", &Scope::global()).unwrap(),
        "p1"
    );
    assert_eq!(loaded(&memory), ["p1", "p3"]);
    assert_eq!(memory.plugins().info("p1").unwrap().stats.loads, 2);
    assert!(log_text(&memory, "p2").contains("evicted"));
    // Explicit unload and load.
    memory.plugins().unload("p3").unwrap();
    assert_eq!(loaded(&memory), ["p1"]);
    memory.plugins().load("p2").unwrap();
    assert_eq!(loaded(&memory), ["p1", "p2"]);
    for id in ["p1", "p2", "p3"] {
        assert_eq!(call(&memory, id, "name", "", &Scope::global()).unwrap(), id);
    }
}

#[test]
fn many_threads_call_one_plugin() {
    let memory = Arc::new(store());
    register(
        &memory,
        PluginManifest::new("echo").kind(PluginKind::Function),
        one("echo", Body::Echo),
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let memory = memory.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let input = format!("thread {t} call {i}");
                    assert_eq!(
                        call(&memory, "echo", "echo", &input, &Scope::global()).unwrap(),
                        input
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(memory.plugins().info("echo").unwrap().stats.calls, 400);
}

// ------------------------------------------------------------------------------- Rust examples

/// The Rust plugins of `examples/plugins/`, when the test command could build them.
fn example(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("AGENTMEM_EXAMPLE_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-unknown-unknown/release")
        });
    let path = dir.join(format!("{name}.wasm"));
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} not built (examples/plugins/build.sh needs the wasm32-unknown-unknown target)", path.display());
        None
    }
}

#[test]
fn example_pii_redactor_redacts_on_add() {
    let Some(path) = example("pii_redactor") else {
        return;
    };
    let memory = store();
    memory
        .plugins()
        .register(
            PluginSource::Path(path),
            PluginManifest::new("pii")
                .capability(Capability::Config)
                .capability(Capability::Logging)
                .config("log", "true"),
        )
        .unwrap();
    let id = memory
        .add(
            NewMemory::new(
                "Mail bob@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111",
            )
            .user("bob"),
        )
        .unwrap()
        .id;
    let stored = memory.get(&id).unwrap();
    assert_eq!(stored.content, "Mail [email] or call [phone], card [card]");
    assert_eq!(
        stored.metadata["pii_redacted"],
        json!({"email": 1, "phone": 1, "card": 1})
    );
    assert!(log_text(&memory, "pii").contains("pii_redactor: redacted"));
    // Its plain function, called directly (the README's example).
    let out = call(
        &memory,
        "pii",
        "redact",
        "call +44 20 7946 0958",
        &Scope::global(),
    )
    .unwrap();
    assert_eq!(out, "call [phone]");
    // Nothing to redact: stored as given. CJK text survives untouched.
    let id = memory
        .add(NewMemory::new("我喜欢喝咖啡").user("bob"))
        .unwrap()
        .id;
    assert_eq!(memory.get(&id).unwrap().content, "我喜欢喝咖啡");
}

#[test]
fn example_keyword_boost_reranks_after_search() {
    let Some(path) = example("keyword_boost") else {
        return;
    };
    let memory = store();
    for c in [
        "alice likes tea",
        "alice likes green tea and matcha",
        "alice likes coffee",
    ] {
        memory.add(NewMemory::new(c).user("alice")).unwrap();
    }
    memory
        .plugins()
        .register(
            PluginSource::Path(path),
            PluginManifest::new("boost")
                .capability(Capability::Config)
                .config("keywords", "matcha")
                .config("boost", "10"),
        )
        .unwrap();
    let hits = memory
        .search("alice likes", &keyword(Scope::user("alice")))
        .unwrap();
    assert_eq!(hits[0].memory.content, "alice likes green tea and matcha");
    assert!(hits[0].score > 10.0);
    assert_eq!(hits.len(), 3);
}

#[test]
fn example_tagger_adds_tags() {
    let Some(path) = example("tagger") else {
        return;
    };
    let memory = store();
    memory
        .plugins()
        .register(
            PluginSource::Path(path),
            PluginManifest::new("tagger").capability(Capability::Config),
        )
        .unwrap();
    let id = memory
        .add(
            NewMemory::new("I am allergic to peanuts, the doctor said")
                .user("u")
                .meta("tags", json!(["mine"])),
        )
        .unwrap()
        .id;
    let md = memory.get(&id).unwrap().metadata;
    let tags: Vec<&str> = md["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"health") && tags.contains(&"mine"), "{md:?}");
    let id = memory
        .add(NewMemory::new("我对花生过敏").user("u"))
        .unwrap()
        .id;
    let md = memory.get(&id).unwrap().metadata;
    assert_eq!(md["lang"], "cjk");
    assert!(
        md["tags"].as_array().unwrap().contains(&json!("health")),
        "{md:?}"
    );
}
