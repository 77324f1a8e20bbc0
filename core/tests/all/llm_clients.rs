//! The HTTP model clients (OpenAI-compatible chat, Anthropic Messages, the remote embedder)
//! against a real local HTTP server that plays the provider: request shapes, answers,
//! errors, retries, timeouts, configuration and secrets. No internet.

use crate::support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_mem::embed::{Embedder, OpenAiEmbedder, RemoteEmbedderConfig};
use agent_mem::llm::{
    AnthropicChat, ChatMessage, ChatRequest, Llm, LlmConfig, OpenAiChat, Provider, Role,
};
use agent_mem::{Error, ErrorCode};
use serde_json::{json, Value};
use support::fake_llm::{FakeLlm, Reply};

const FAST: Duration = Duration::from_millis(10);

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[track_caller]
fn assert_invalid(result: Result<impl Sized, Error>, needle: &str) {
    match result {
        Ok(_) => panic!("expected an InvalidInput error containing {needle:?}"),
        Err(err) => {
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
            assert!(err.message().contains(needle), "{needle:?} not in {err}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request shapes and answers

#[test]
fn openai_request_shape_and_answer() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("plain answer"));
    fake.push(Reply::openai_chat(r#"{"facts": []}"#));
    let chat = OpenAiChat::new(fake.openai_base(), "gpt-test").api_key("sk-test");
    assert_eq!(chat.label(), "openai:gpt-test");

    let mut request = ChatRequest::new("You extract facts.", "I like tea");
    request.messages.push(ChatMessage {
        role: Role::Assistant,
        content: "Noted.".into(),
    });
    assert_eq!(chat.complete(&request).unwrap(), "plain answer");
    assert_eq!(chat.complete(&request.json()).unwrap(), r#"{"facts": []}"#);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.header("Authorization"), Some("Bearer sk-test"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.body["model"], "gpt-test");
    assert_eq!(first.body["temperature"], 0.0);
    assert_eq!(
        first.body["messages"],
        json!([
            {"role": "system", "content": "You extract facts."},
            {"role": "user", "content": "I like tea"},
            {"role": "assistant", "content": "Noted."},
        ])
    );
    assert!(first.body.get("response_format").is_none());
    assert!(first.body.get("max_tokens").is_none());
    assert_eq!(
        requests[1].body["response_format"],
        json!({"type": "json_object"})
    );
}

#[test]
fn openai_without_key_sends_no_authorization() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("hi"));
    let chat = OpenAiChat::new(format!("{}/", fake.openai_base()), "llama3")
        .provider("ollama")
        .max_tokens(64)
        .temperature(0.5)
        .json_mode(false);
    assert_eq!(chat.label(), "ollama:llama3");
    chat.complete(&ChatRequest::new("s", "u").json()).unwrap();
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.body["max_tokens"], 64);
    assert_eq!(request.body["temperature"], 0.5);
    assert!(request.body.get("response_format").is_none());
}

#[test]
fn anthropic_request_shape_and_answer() {
    let fake = FakeLlm::start();
    fake.push(Reply::anthropic_message("Bonjour"));
    let chat = AnthropicChat::new(fake.url(), "claude-test").api_key("sk-ant-test");
    assert_eq!(chat.label(), "anthropic:claude-test");
    let answer = chat
        .complete(&ChatRequest::new("Translate.", "Hello").json())
        .unwrap();
    assert_eq!(answer, "Bonjour");

    let request = &fake.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.body["model"], "claude-test");
    assert_eq!(request.body["system"], "Translate.");
    assert_eq!(request.body["max_tokens"], 1024);
    assert_eq!(request.body["temperature"], 0.0);
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": "Hello"}])
    );
    assert!(request.body.get("response_format").is_none());
}

#[test]
fn anthropic_answer_without_text_names_the_stop_reason() {
    let fake = FakeLlm::start();
    fake.push(Reply::raw(
        200,
        r#"{"type":"message","role":"assistant","content":[],"stop_reason":"max_tokens"}"#,
    ));
    let chat = AnthropicChat::new(fake.url(), "claude-test").api_key("k");
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert!(err.message().contains("stop_reason: max_tokens"), "{err}");
}

#[test]
fn openai_answer_without_content_is_a_clear_error() {
    let fake = FakeLlm::start();
    fake.push(Reply::raw(
        200,
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"length"}]}"#,
    ));
    fake.push(Reply::raw(
        200,
        r#"{"object":"chat.completion","choices":[]}"#,
    ));
    fake.push(Reply::raw(200, "<html>not json</html>"));
    let chat = OpenAiChat::new(fake.openai_base(), "m").max_retries(0);
    let request = ChatRequest::new("s", "u");

    let err = chat.complete(&request).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert!(err.message().starts_with("openai: "), "{err}");
    assert!(err.message().contains("finish_reason: length"), "{err}");

    let err = chat.complete(&request).unwrap_err();
    assert!(err.message().contains("no choices"), "{err}");

    let err = chat.complete(&request).unwrap_err();
    assert!(err.message().contains("not JSON"), "{err}");
    assert!(err.message().contains("<html>not json</html>"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Errors and retries

#[test]
fn http_401_carries_the_provider_message_and_is_not_retried() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_error(
        401,
        "invalid_request_error",
        "Incorrect API key provided",
    ));
    let chat = OpenAiChat::new(fake.openai_base(), "m")
        .api_key("bad")
        .retry_backoff(FAST);
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert_eq!(
        err.message(),
        "openai: HTTP 401 (invalid_request_error): Incorrect API key provided"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn http_400_is_not_retried() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_error(
        400,
        "invalid_request_error",
        "'messages' must contain the word 'json'",
    ));
    fake.push(Reply::openai_chat("never sent"));
    let chat = OpenAiChat::new(fake.openai_base(), "m").retry_backoff(FAST);
    let err = chat
        .complete(&ChatRequest::new("s", "u").json())
        .unwrap_err();
    assert!(err.message().contains("HTTP 400"), "{err}");
    assert!(
        err.message().contains("must contain the word 'json'"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.pending(), 1);
}

#[test]
fn other_error_body_shapes_are_understood() {
    let fake = FakeLlm::start();
    fake.push(Reply::raw(
        404,
        r#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
    ));
    fake.push(Reply::raw(422, r#"{"detail":"max_tokens is too large"}"#));
    fake.push(Reply::raw(403, r#"{"message":"region not supported"}"#));
    fake.push(Reply::raw(
        400,
        r#"{"error":{"code":"1211","message":"模型不存在，请检查模型代码。"}}"#,
    ));
    fake.push(Reply::raw(418, &"z".repeat(2000)));
    let chat = OpenAiChat::new(fake.openai_base(), "m").provider("ollama");
    let message = || {
        chat.complete(&ChatRequest::new("s", "u"))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        message(),
        r#"Llm: ollama: HTTP 404: model "llama9" not found, try pulling it first"#
    );
    assert_eq!(message(), "Llm: ollama: HTTP 422: max_tokens is too large");
    assert_eq!(message(), "Llm: ollama: HTTP 403: region not supported");
    assert_eq!(
        message(),
        "Llm: ollama: HTTP 400 (1211): 模型不存在，请检查模型代码。"
    );
    let long = message();
    assert!(long.contains("HTTP 418: zzz"), "{long}");
    assert!(long.len() < 400, "the body is cut: {} bytes", long.len());
}

#[test]
fn retry_after_is_honoured_then_the_answer_returned() {
    let fake = FakeLlm::start();
    fake.push(
        Reply::openai_error(429, "rate_limit_exceeded", "Rate limit reached")
            .with_header("Retry-After", "1"),
    );
    fake.push(Reply::openai_chat("finally"));
    // A long backoff: only Retry-After can make the wait about one second.
    let chat = OpenAiChat::new(fake.openai_base(), "m").retry_backoff(Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(
        chat.complete(&ChatRequest::new("s", "u")).unwrap(),
        "finally"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.pending(), 0);
}

#[test]
fn retries_stop_after_max_retries() {
    let fake = FakeLlm::start();
    for _ in 0..5 {
        fake.push(Reply::openai_error(
            503,
            "server_error",
            "The engine is overloaded",
        ));
    }
    let chat = OpenAiChat::new(fake.openai_base(), "m")
        .max_retries(2)
        .retry_backoff(FAST);
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert_eq!(
        err.message(),
        "openai: gave up after 3 attempts: HTTP 503 (server_error): The engine is overloaded"
    );
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.pending(), 2);
}

#[test]
fn anthropic_overloaded_is_retried_then_reported() {
    let fake = FakeLlm::start();
    for _ in 0..4 {
        fake.push(Reply::anthropic_error(
            529,
            "overloaded_error",
            "Overloaded",
        ));
    }
    let chat = AnthropicChat::new(fake.url(), "claude-test")
        .api_key("k")
        .retry_backoff(FAST);
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert_eq!(
        err.message(),
        "anthropic: gave up after 4 attempts: HTTP 529 (overloaded_error): Overloaded"
    );
    assert_eq!(fake.requests().len(), 4);
}

#[test]
fn every_retryable_status_is_retried() {
    let fake = FakeLlm::start();
    for status in [429, 500, 502, 503, 504, 529] {
        fake.push(Reply::raw(status, "{}"));
    }
    fake.push(Reply::openai_chat("ok"));
    let chat = OpenAiChat::new(fake.openai_base(), "m")
        .max_retries(6)
        .retry_backoff(Duration::from_millis(1));
    assert_eq!(chat.complete(&ChatRequest::new("s", "u")).unwrap(), "ok");
    assert_eq!(fake.requests().len(), 7);
}

#[test]
fn a_slow_answer_times_out_at_once() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("too late").delayed(Duration::from_secs(3)));
    let chat = OpenAiChat::new(fake.openai_base(), "m")
        .timeout(Duration::from_millis(300))
        .max_retries(3);
    let started = Instant::now();
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert!(err.message().contains("timed out after 0.3 s"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(fake.requests().len(), 1, "a timeout is not retried");
}

#[test]
fn refused_connections_are_retried_then_reported() {
    let base = format!("http://127.0.0.1:{}/v1", closed_port());
    let chat = OpenAiChat::new(base, "m")
        .max_retries(2)
        .retry_backoff(FAST);
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Llm);
    assert!(
        err.message()
            .starts_with("openai: gave up after 3 attempts: "),
        "{err}"
    );
    assert!(err.message().contains("127.0.0.1"), "{err}");
}

#[test]
fn redirects_are_reported_not_followed() {
    let fake = FakeLlm::start();
    fake.push(Reply::raw(301, "").with_header("Location", "https://elsewhere.example/v1/chat"));
    let chat = OpenAiChat::new(fake.openai_base(), "m");
    let err = chat.complete(&ChatRequest::new("s", "u")).unwrap_err();
    assert!(err.message().contains("HTTP 301"), "{err}");
    assert!(err.message().contains("elsewhere.example"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn clients_serve_many_threads() {
    let fake = FakeLlm::with_handler(|request| {
        let said = request.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Reply::openai_chat(&format!("echo {said}"))
    });
    let chat: Arc<dyn Llm> = Arc::new(OpenAiChat::new(fake.openai_base(), "m"));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let chat = Arc::clone(&chat);
            std::thread::spawn(move || chat.complete(&ChatRequest::new("s", format!("{i}"))))
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap().unwrap(), format!("echo {i}"));
    }
    assert_eq!(fake.requests().len(), 8);
}

// ---------------------------------------------------------------------------------------
// Secrets

#[test]
fn keys_never_appear_in_debug_or_errors() {
    const KEY: &str = "sk-secret-XYZ";
    let fake = FakeLlm::start();
    // OpenAI's real 401 echoes (part of) the key; a careless server could echo all of it.
    fake.push(Reply::openai_error(
        401,
        "invalid_request_error",
        &format!("Incorrect API key provided: {KEY}."),
    ));
    fake.push(Reply::anthropic_error(
        401,
        "authentication_error",
        &format!("bad key {KEY}"),
    ));
    fake.push(Reply::raw(500, &format!("<pre>{KEY}</pre>")));
    fake.push(Reply::openai_chat("late").delayed(Duration::from_secs(2)));
    fake.push(Reply::openai_error(401, "invalid_request_error", KEY));

    let openai = OpenAiChat::new(fake.openai_base(), "m")
        .api_key(KEY)
        .max_retries(0);
    let anthropic = AnthropicChat::new(fake.url(), "m").api_key(KEY);
    let embedder = OpenAiEmbedder::new(fake.openai_base(), "e").api_key(KEY);
    // A proxy URL with the key as its password must not show it either.
    let refused = OpenAiChat::new(format!("http://u:{KEY}@127.0.0.1:{}", closed_port()), "m")
        .api_key(KEY)
        .max_retries(1)
        .retry_backoff(FAST);
    let config = LlmConfig {
        api_key: Some(KEY.into()),
        ..LlmConfig::new("openai")
    };
    let embedder_config = RemoteEmbedderConfig {
        api_key: Some(KEY.into()),
        ..RemoteEmbedderConfig::new("openai")
    };
    let built = config.build_with_env(&no_env).unwrap();

    let mut shown = vec![
        format!("{openai:?}"),
        format!("{refused:?}"),
        format!("{anthropic:?}"),
        format!("{embedder:?}"),
        format!("{config:?}"),
        format!("{embedder_config:?}"),
        format!("{:?}", embedder_config.build_with_env(&no_env).unwrap()),
        built.label().to_string(),
    ];
    let request = ChatRequest::new("s", "u");
    let mut errors = vec![
        openai.complete(&request).unwrap_err(),
        anthropic.complete(&request).unwrap_err(),
        openai.complete(&request).unwrap_err(),
        openai
            .clone()
            .timeout(Duration::from_millis(200))
            .complete(&request)
            .unwrap_err(),
        embedder.embed(&["x"]).unwrap_err(),
        refused.complete(&request).unwrap_err(),
    ];
    errors.push(
        LlmConfig {
            api_key: Some(format!("{KEY}\n")),
            base_url: Some("ftp://nope".into()),
            ..LlmConfig::new("openai")
        }
        .build_with_env(&no_env)
        .err()
        .unwrap(),
    );
    errors.push(
        LlmConfig {
            api_key: Some(format!("{KEY} with space")),
            ..LlmConfig::new("openai")
        }
        .build_with_env(&no_env)
        .err()
        .unwrap(),
    );
    for err in &errors {
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    }
    assert!(errors[0].message().contains("[redacted]"), "{}", errors[0]);
    for text in &shown {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("secret-XYZ"), "the key leaked: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration

#[test]
fn config_reads_the_environment_and_options_win() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("from env"));
    fake.push(Reply::openai_chat("from options"));
    let env = env_of(&[
        ("OPENAI_API_KEY", "env-key"),
        ("OPENAI_BASE_URL", &fake.openai_base()),
    ]);

    let llm = LlmConfig::new("openai").build_with_env(&env).unwrap();
    assert_eq!(llm.label(), "openai:gpt-4.1-nano");
    assert_eq!(
        llm.complete(&ChatRequest::new("s", "u")).unwrap(),
        "from env"
    );

    let other = FakeLlm::start();
    other.push(Reply::openai_chat("from options"));
    let config: LlmConfig = serde_json::from_value(json!({
        "provider": "OpenAI",
        "model": "gpt-custom",
        "api_key": "option-key",
        "base_url": other.openai_base(),
        "timeout_ms": 5000,
        "max_retries": 0,
        "temperature": 0.7,
        "max_tokens": 200,
        "json_mode": false,
    }))
    .unwrap();
    let llm = config.build_with_env(&env).unwrap();
    assert_eq!(llm.label(), "openai:gpt-custom");
    llm.complete(&ChatRequest::new("s", "u").json()).unwrap();

    let from_env = &fake.requests()[0];
    assert_eq!(from_env.header("authorization"), Some("Bearer env-key"));
    assert_eq!(from_env.body["model"], "gpt-4.1-nano");
    let from_options = &other.requests()[0];
    assert_eq!(
        from_options.header("authorization"),
        Some("Bearer option-key")
    );
    assert_eq!(from_options.body["model"], "gpt-custom");
    assert_eq!(from_options.body["max_tokens"], 200);
    assert!((from_options.body["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert!(from_options.body.get("response_format").is_none());
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn config_builds_anthropic_from_the_environment() {
    let fake = FakeLlm::start();
    fake.push(Reply::anthropic_message("ok"));
    let env = env_of(&[
        ("ANTHROPIC_API_KEY", "ant-env"),
        ("ANTHROPIC_BASE_URL", &fake.url()),
    ]);
    let config = LlmConfig {
        max_tokens: Some(300),
        ..LlmConfig::new("anthropic")
    };
    let llm = config.build_with_env(&env).unwrap();
    assert_eq!(llm.label(), "anthropic:claude-haiku-4-5");
    assert_eq!(llm.complete(&ChatRequest::new("s", "u")).unwrap(), "ok");
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("ant-env"));
    assert_eq!(request.body["max_tokens"], 300);
}

#[test]
fn config_reaches_ollama_through_ollama_host() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("local"));
    let host = fake.url().trim_start_matches("http://").to_string();
    let env = env_of(&[("OLLAMA_HOST", &host)]);
    assert_invalid(
        LlmConfig::new("ollama").build_with_env(&env),
        "llm.model is required for provider ollama",
    );
    let config = LlmConfig {
        model: Some("qwen2.5:3b".into()),
        ..LlmConfig::new("ollama")
    };
    let llm = config.build_with_env(&env).unwrap();
    assert_eq!(llm.label(), "ollama:qwen2.5:3b");
    assert_eq!(llm.complete(&ChatRequest::new("s", "u")).unwrap(), "local");
    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), None);
}

#[test]
fn config_openai_compatible_needs_a_base_url_and_a_model() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_chat("vllm says hi"));
    let config = LlmConfig {
        model: Some("Qwen/Qwen2.5-7B-Instruct".into()),
        ..LlmConfig::new("vllm")
    };
    assert_invalid(
        config.build_with_env(&no_env),
        "llm.base_url is required for provider openai_compatible (or set AGENTMEM_LLM_BASE_URL)",
    );
    assert_invalid(
        LlmConfig::new("openai_compatible").build_with_env(&no_env),
        "llm.model is required",
    );
    let env = env_of(&[
        ("AGENTMEM_LLM_BASE_URL", &fake.openai_base()),
        ("AGENTMEM_LLM_API_KEY", "local-key"),
        ("OPENAI_API_KEY", "must-not-be-used"),
    ]);
    let llm = config.build_with_env(&env).unwrap();
    assert_eq!(llm.label(), "openai_compatible:Qwen/Qwen2.5-7B-Instruct");
    llm.complete(&ChatRequest::new("s", "u")).unwrap();
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer local-key")
    );
}

#[test]
fn config_provider_table() {
    let cases = [
        ("openai", "OPENAI_API_KEY", "openai:gpt-4.1-nano"),
        (
            "anthropic",
            "ANTHROPIC_API_KEY",
            "anthropic:claude-haiku-4-5",
        ),
        ("deepseek", "DEEPSEEK_API_KEY", "deepseek:deepseek-chat"),
        ("zhipu", "ZHIPUAI_API_KEY", "zhipu:glm-4-flash"),
        ("zhipuai", "ZHIPUAI_API_KEY", "zhipu:glm-4-flash"),
        ("glm", "ZHIPUAI_API_KEY", "zhipu:glm-4-flash"),
        ("moonshot", "MOONSHOT_API_KEY", "moonshot:moonshot-v1-8k"),
    ];
    for (name, key_env, label) in cases {
        let config = LlmConfig::new(name);
        assert_invalid(
            config.build_with_env(&no_env),
            &format!("llm.api_key is not set and neither is {key_env}"),
        );
        let env = env_of(&[(key_env, "k")]);
        assert_eq!(config.build_with_env(&env).unwrap().label(), label);
        // An empty variable counts as unset.
        let env = env_of(&[(key_env, "  ")]);
        assert!(config.build_with_env(&env).is_err());
    }
    assert_eq!(
        Provider::Zhipu.default_base_url(),
        Some("https://open.bigmodel.cn/api/paas/v4")
    );
    assert_eq!(Provider::OpenAi.api_key_env(), Some("OPENAI_API_KEY"));
    assert_eq!(Provider::Ollama.base_url_env(), "OLLAMA_HOST");
    for alias in [
        "vllm",
        "lmstudio",
        "llamacpp",
        "litellm",
        "openai_compatible",
    ] {
        assert_eq!(
            alias.parse::<Provider>().unwrap(),
            Provider::OpenAiCompatible
        );
    }
    for provider in Provider::ALL {
        assert_eq!(provider.as_str().parse::<Provider>().unwrap(), provider);
    }
}

#[test]
fn config_validation_names_the_field() {
    let with_key = |mut config: LlmConfig| {
        config.api_key = Some("k".into());
        config.build_with_env(&no_env)
    };
    let openai = LlmConfig::new("openai");
    let err = LlmConfig::new("gpt").build_with_env(&no_env).err().unwrap();
    assert_eq!(err.code(), ErrorCode::InvalidInput);
    assert!(
        err.message()
            .starts_with("llm.provider \"gpt\" is not known"),
        "{err}"
    );
    for name in [
        "openai",
        "anthropic",
        "deepseek",
        "zhipu",
        "moonshot",
        "ollama",
        "openai_compatible",
    ] {
        assert!(err.message().contains(name), "{err}");
    }
    assert_invalid(
        with_key(LlmConfig {
            base_url: Some("ftp://example.com".into()),
            ..openai.clone()
        }),
        "llm.base_url must be an http:// or https:// URL",
    );
    assert_invalid(
        LlmConfig::new("openai").build_with_env(&env_of(&[
            ("OPENAI_API_KEY", "k"),
            ("OPENAI_BASE_URL", "api.openai.com/v1"),
        ])),
        "OPENAI_BASE_URL must be an http:// or https:// URL",
    );
    for timeout in [0, 600_001] {
        assert_invalid(
            with_key(LlmConfig {
                timeout_ms: Some(timeout),
                ..openai.clone()
            }),
            "llm.timeout_ms must be between 1 and 600000",
        );
    }
    assert!(with_key(LlmConfig {
        timeout_ms: Some(600_000),
        max_retries: Some(10),
        temperature: Some(2.0),
        ..openai.clone()
    })
    .is_ok());
    assert_invalid(
        with_key(LlmConfig {
            max_retries: Some(11),
            ..openai.clone()
        }),
        "llm.max_retries must be at most 10",
    );
    for temperature in [-0.1, 2.5, f32::NAN] {
        assert_invalid(
            with_key(LlmConfig {
                temperature: Some(temperature),
                ..openai.clone()
            }),
            "llm.temperature must be between 0 and 2",
        );
    }
    assert_invalid(
        with_key(LlmConfig {
            temperature: Some(1.5),
            ..LlmConfig::new("anthropic")
        }),
        "llm.temperature must be between 0 and 1",
    );
    assert_invalid(
        with_key(LlmConfig {
            model: Some(" ".into()),
            ..openai.clone()
        }),
        "llm.model must not be empty",
    );
    assert_invalid(
        with_key(LlmConfig {
            max_tokens: Some(0),
            ..openai.clone()
        }),
        "llm.max_tokens",
    );
    let unknown = serde_json::from_value::<LlmConfig>(json!({"provider": "openai", "modle": "x"}));
    assert!(unknown.unwrap_err().to_string().contains("modle"));
}

// ---------------------------------------------------------------------------------------
// The remote embedder

/// A server that answers embeddings of `dims` numbers (`[i, 1, 1…]` for input `i`), listing
/// them in reverse order like some servers do.
fn embedding_server(dims: usize) -> FakeLlm {
    FakeLlm::with_handler(move |request| {
        let inputs = request.body["input"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let data: Vec<Value> = (0..inputs.len())
            .rev()
            .map(|i| {
                let mut v = vec![1.0f32; dims];
                v[0] = i as f32;
                json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        Reply::raw(
            200,
            &json!({"object": "list", "data": data, "model": "m"}).to_string(),
        )
    })
}

#[test]
fn embedder_request_shape_order_and_learned_dimension() {
    let fake = embedding_server(3);
    let embedder = OpenAiEmbedder::new(fake.openai_base(), "text-embedding-3-small").api_key("ek");
    assert_eq!(embedder.model_id(), "openai:text-embedding-3-small");
    assert_eq!(embedder.dimensions(), 0, "unknown before the first answer");
    let vectors = embedder.embed(&["a", "b", "c"]).unwrap();
    assert_eq!(
        vectors,
        vec![
            vec![0.0, 1.0, 1.0],
            vec![1.0, 1.0, 1.0],
            vec![2.0, 1.0, 1.0]
        ]
    );
    assert_eq!(embedder.dimensions(), 3);
    assert!(embedder.embed(&[]).unwrap().is_empty());

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "an empty batch sends nothing");
    let request = &requests[0];
    assert_eq!(request.path, "/v1/embeddings");
    assert_eq!(request.header("authorization"), Some("Bearer ek"));
    assert_eq!(
        request.body,
        json!({"model": "text-embedding-3-small", "input": ["a", "b", "c"],
               "encoding_format": "float"})
    );
}

#[test]
fn embedder_splits_large_batches_in_order() {
    let fake = embedding_server(2);
    let embedder = OpenAiEmbedder::new(fake.openai_base(), "m").batch_size(2);
    let vectors = embedder.embed(&["a", "b", "c", "d", "e"]).unwrap();
    let firsts: Vec<f32> = vectors.iter().map(|v| v[0]).collect();
    // Indexes restart in each request.
    assert_eq!(firsts, vec![0.0, 1.0, 0.0, 1.0, 0.0]);
    let inputs: Vec<Value> = fake
        .requests()
        .iter()
        .map(|r| r.body["input"].clone())
        .collect();
    assert_eq!(
        inputs,
        vec![json!(["a", "b"]), json!(["c", "d"]), json!(["e"])]
    );
}

#[test]
fn embedder_rejects_a_change_of_dimension() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let fake = FakeLlm::with_handler(move |_| {
        let dims = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            4
        } else {
            5
        };
        Reply::openai_embeddings(&[vec![0.5; dims]])
    });
    let embedder = OpenAiEmbedder::new(fake.openai_base(), "m");
    assert_eq!(embedder.embed(&["x"]).unwrap()[0].len(), 4);
    let err = embedder.embed(&["y"]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Embedding);
    assert!(
        err.message().contains("5-dimensional vectors, expected 4"),
        "{err}"
    );
    assert_eq!(embedder.dimensions(), 4);
}

#[test]
fn embedder_checks_count_lengths_and_numbers() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_embeddings(&[vec![1.0, 2.0]]));
    fake.push(Reply::openai_embeddings(&[vec![1.0, 2.0], vec![1.0]]));
    fake.push(Reply::raw(
        200,
        r#"{"data":[{"index":0,"embedding":[1.0,null]}]}"#,
    ));
    fake.push(Reply::raw(200, r#"{"object":"list"}"#));
    fake.push(Reply::openai_error(429, "rate_limit_exceeded", "slow down"));
    let embedder = OpenAiEmbedder::new(fake.openai_base(), "m").max_retries(0);

    let err = embedder.embed(&["a", "b"]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Embedding);
    assert!(err.message().contains("1 vectors for 2 texts"), "{err}");
    let err = embedder.embed(&["a", "b"]).unwrap_err();
    assert!(err.message().contains("mixes vector lengths"), "{err}");
    let err = embedder.embed(&["a"]).unwrap_err();
    assert!(err.message().contains("not a finite number"), "{err}");
    let err = embedder.embed(&["a"]).unwrap_err();
    assert!(err.message().contains("no data"), "{err}");
    let err = embedder.embed(&["a"]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Embedding);
    assert_eq!(
        err.message(),
        "openai: HTTP 429 (rate_limit_exceeded): slow down"
    );
    assert_eq!(embedder.dimensions(), 0, "nothing valid was learned");
}

#[test]
fn embedder_config_requested_dimensions() {
    let fake = FakeLlm::start();
    fake.push(Reply::openai_embeddings(&[vec![0.1, 0.2, 0.3]]));
    fake.push(Reply::openai_embeddings(&[vec![0.1, 0.2, 0.3, 0.4]]));
    let env = env_of(&[
        ("OPENAI_API_KEY", "ek"),
        ("OPENAI_BASE_URL", &fake.openai_base()),
    ]);
    let embedder = RemoteEmbedderConfig {
        dimensions: Some(3),
        ..RemoteEmbedderConfig::new("openai")
    }
    .build_with_env(&env)
    .unwrap();
    assert_eq!(embedder.model_id(), "openai:text-embedding-3-small@3");
    assert_eq!(embedder.dimensions(), 3);
    assert_eq!(embedder.embed(&["x"]).unwrap()[0].len(), 3);
    let err = embedder.embed(&["x"]).unwrap_err();
    assert!(err.message().contains("expected 3"), "{err}");
    let request = &fake.requests()[0];
    assert_eq!(request.body["dimensions"], 3);
    assert_eq!(request.body["model"], "text-embedding-3-small");
    assert_eq!(request.header("authorization"), Some("Bearer ek"));
}

#[test]
fn embedder_config_provider_rules() {
    let key = env_of(&[
        ("ANTHROPIC_API_KEY", "k"),
        ("DEEPSEEK_API_KEY", "k"),
        ("ZHIPUAI_API_KEY", "k"),
        ("MOONSHOT_API_KEY", "k"),
    ]);
    for provider in ["anthropic", "deepseek"] {
        assert_invalid(
            RemoteEmbedderConfig::new(provider).build_with_env(&key),
            "has no embeddings API",
        );
    }
    let zhipu = RemoteEmbedderConfig::new("glm")
        .build_with_env(&key)
        .unwrap();
    assert_eq!(zhipu.model_id(), "zhipu:embedding-3");
    assert_eq!(zhipu.base_url(), "https://open.bigmodel.cn/api/paas/v4");
    assert_invalid(
        RemoteEmbedderConfig::new("openai").build_with_env(&no_env),
        "embedder.api_key is not set and neither is OPENAI_API_KEY",
    );
    assert_invalid(
        RemoteEmbedderConfig::new("ollama").build_with_env(&no_env),
        "embedder.model is required for provider ollama",
    );
    assert_invalid(
        RemoteEmbedderConfig::new("moonshot").build_with_env(&key),
        "embedder.model is required",
    );
    let ollama = RemoteEmbedderConfig {
        model: Some("nomic-embed-text".into()),
        ..RemoteEmbedderConfig::new("ollama")
    }
    .build_with_env(&no_env)
    .unwrap();
    assert_eq!(ollama.model_id(), "ollama:nomic-embed-text");
    assert_eq!(ollama.base_url(), "http://localhost:11434/v1");
    assert_invalid(
        RemoteEmbedderConfig {
            model: Some("e5".into()),
            ..RemoteEmbedderConfig::new("vllm")
        }
        .build_with_env(&env_of(&[("AGENTMEM_LLM_BASE_URL", "http://x")])),
        "AGENTMEM_EMBEDDER_BASE_URL",
    );
    let compatible = RemoteEmbedderConfig {
        model: Some("e5".into()),
        ..RemoteEmbedderConfig::new("vllm")
    }
    .build_with_env(&env_of(&[(
        "AGENTMEM_EMBEDDER_BASE_URL",
        "http://gpu:8000/v1/",
    )]))
    .unwrap();
    assert_eq!(compatible.base_url(), "http://gpu:8000/v1");
    assert_invalid(
        RemoteEmbedderConfig {
            dimensions: Some(0),
            api_key: Some("k".into()),
            ..RemoteEmbedderConfig::new("openai")
        }
        .build_with_env(&no_env),
        "embedder.dimensions must be between 1 and",
    );
    let unknown =
        serde_json::from_value::<RemoteEmbedderConfig>(json!({"provider": "openai", "dims": 3}));
    assert!(unknown.is_err());
}
