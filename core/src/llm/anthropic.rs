//! The Anthropic Messages API client.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use super::{cancelled, ChatRequest, Llm};
use crate::error::{ErrorCode, Result};
use crate::http::{display_url, excerpt, join_url, HttpClient, HttpOptions, Secret, Streamed};

/// The API version sent in `anthropic-version`.
const API_VERSION: &str = "2023-06-01";

/// A Claude model behind the Anthropic Messages API (`POST {base_url}/v1/messages`).
///
/// Blocking; usable from many threads at once. Anthropic has no JSON mode: a
/// [`ChatRequest::json`] request relies on its prompt asking for JSON.
///
/// ```no_run
/// use agent_mem::llm::{AnthropicChat, ChatRequest, Llm};
///
/// # fn main() -> agent_mem::Result<()> {
/// let llm = AnthropicChat::new(AnthropicChat::DEFAULT_BASE_URL, "claude-haiku-4-5")
///     .api_key(std::env::var("ANTHROPIC_API_KEY").unwrap_or_default());
/// let answer = llm.complete(&ChatRequest::new("Answer briefly.", "What is 2 + 2?"))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnthropicChat {
    http: HttpClient,
    base_url: String,
    url: String,
    model: String,
    label: String,
    api_key: Option<Secret>,
    temperature: f32,
    max_tokens: u32,
}

impl AnthropicChat {
    /// Anthropic's own endpoint (without `/v1`, like the official SDKs).
    pub const DEFAULT_BASE_URL: &'static str = crate::http::provider::ANTHROPIC_BASE_URL;

    /// The answer length asked when none is configured (the API requires one).
    pub const DEFAULT_MAX_TOKENS: u32 = 1024;

    /// A client of `model` at `base_url` (such as [`Self::DEFAULT_BASE_URL`]; a trailing
    /// `/v1` is accepted too), without a key, with temperature 0, 1024 max tokens, a 60 s
    /// timeout and 3 retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        let model = model.into();
        // People often paste the versioned URL; do not ask for /v1/v1/messages.
        let url = if base_url.ends_with("/v1") {
            join_url(&base_url, "messages")
        } else {
            join_url(&base_url, "v1/messages")
        };
        AnthropicChat {
            http: HttpClient::new("anthropic", ErrorCode::Llm, HttpOptions::default()),
            url,
            label: format!("anthropic:{model}"),
            base_url,
            model,
            api_key: None,
            temperature: 0.0,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
        }
    }

    /// Sends the key as `x-api-key`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// The longest wait for each phase of an attempt: connecting, sending, the model's answer,
    /// reading it. A timed-out attempt is not retried.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.with_timeout(timeout);
        self
    }

    /// How many times a rate-limited (429), overloaded (5xx, 529) or refused connection
    /// attempt is tried again.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.http = self.http.with_max_retries(retries);
        self
    }

    /// The first wait between attempts (doubled after each, capped at 8 s; default 500 ms).
    /// A server's `Retry-After` takes precedence. Mostly useful to make tests quick.
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.http = self.http.with_backoff(base);
        self
    }

    /// The sampling temperature (default 0; Anthropic accepts 0 to 1).
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// The longest answer, in tokens (default [`Self::DEFAULT_MAX_TOKENS`]).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": messages,
            "temperature": self.temperature,
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        body
    }

    /// The `text` blocks of the answer, joined, or an error naming the `stop_reason`.
    fn answer(&self, response: &Value) -> Result<String> {
        let Some(content) = response.get("content").and_then(Value::as_array) else {
            return Err(self.http.error(format!(
                "the answer has no content: {}",
                excerpt(&response.to_string(), 300)
            )));
        };
        let text: String = content
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect();
        if text.trim().is_empty() {
            let stop = response
                .get("stop_reason")
                .and_then(Value::as_str)
                .unwrap_or("none");
            return Err(self
                .http
                .error(format!("the answer has no text (stop_reason: {stop})")));
        }
        Ok(text)
    }
}

impl fmt::Debug for AnthropicChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials in its user info; the key is shown as set or not.
        f.debug_struct("AnthropicChat")
            .field("label", &self.label)
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("http", &self.http)
            .finish()
    }
}

impl AnthropicChat {
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![("anthropic-version", API_VERSION)];
        if let Some(key) = &self.api_key {
            headers.push(("x-api-key", key.expose()));
        }
        headers
    }

    /// Reads the events of a streamed message up to `message_stop`.
    fn read_stream(
        &self,
        events: &mut crate::http::stream::Events,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        let mut text = String::new();
        let mut stop: Option<String> = None;
        while let Some(event) = events.next_event()? {
            if event.data.trim().is_empty() {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data).map_err(|e| {
                self.http.error(format!(
                    "a streamed event is not JSON ({e}): {}",
                    excerpt(&event.data, 300)
                ))
            })?;
            let kind = event
                .name
                .as_deref()
                .or_else(|| data.get("type").and_then(Value::as_str))
                .unwrap_or("");
            match kind {
                "content_block_delta" => {
                    let delta = data.get("delta");
                    let is_text = delta.and_then(|d| d.get("type")).and_then(Value::as_str)
                        == Some("text_delta");
                    if let (true, Some(piece)) = (
                        is_text,
                        delta.and_then(|d| d.get("text")).and_then(Value::as_str),
                    ) {
                        if !piece.is_empty() {
                            text.push_str(piece);
                            if !on_text(piece) {
                                return Err(cancelled());
                            }
                        }
                    }
                }
                "message_delta" => {
                    if let Some(reason) = data
                        .get("delta")
                        .and_then(|d| d.get("stop_reason"))
                        .and_then(Value::as_str)
                    {
                        stop = Some(reason.to_string());
                    }
                }
                "message_stop" => {
                    if text.trim().is_empty() {
                        return Err(self.http.error(format!(
                            "the answer has no text (stop_reason: {})",
                            stop.as_deref().unwrap_or("none")
                        )));
                    }
                    return Ok(text);
                }
                "error" => {
                    let error = data.get("error").unwrap_or(&data);
                    let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                    let message = error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message");
                    return Err(self.http.error(format!(
                        "the stream reported an error ({kind}): {}",
                        excerpt(message, 1000)
                    )));
                }
                _ => {} // message_start, content_block_start/stop, ping
            }
        }
        Err(self
            .http
            .error("the streamed answer was cut before it ended (no message_stop)"))
    }
}

impl Llm for AnthropicChat {
    fn label(&self) -> &str {
        &self.label
    }

    fn complete(&self, request: &ChatRequest) -> Result<String> {
        let response = self.http.post_json(
            &self.url,
            &self.headers(),
            self.api_key.as_ref(),
            &self.body(request),
        )?;
        self.answer(&response)
    }

    fn stream(
        &self,
        request: &ChatRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        let mut body = self.body(request);
        body["stream"] = json!(true);
        match self
            .http
            .post_stream(&self.url, &self.headers(), self.api_key.as_ref(), &body)?
        {
            Streamed::Events(mut events) => self.read_stream(&mut events, on_text),
            Streamed::Json(response) => {
                let text = self.answer(&response)?;
                if !on_text(&text) {
                    return Err(cancelled());
                }
                Ok(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_do_not_repeat_the_version() {
        assert_eq!(
            AnthropicChat::new("https://api.anthropic.com/", "m").url,
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            AnthropicChat::new("http://proxy/v1", "m").url,
            "http://proxy/v1/messages"
        );
    }

    #[test]
    fn answers_join_text_blocks() {
        let chat = AnthropicChat::new("http://h", "m");
        let response = json!({"content": [{"type": "thinking", "thinking": "hm"},
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(chat.answer(&response).unwrap(), "ab");
        let refused = json!({"content": [], "stop_reason": "refusal"});
        let err = chat.answer(&refused).unwrap_err();
        assert!(err.message().contains("stop_reason: refusal"), "{err}");
        assert_eq!(err.code(), ErrorCode::Llm);
    }

    #[test]
    fn body_puts_the_system_prompt_apart() {
        let chat = AnthropicChat::new("http://h", "m").max_tokens(10);
        let body = chat.body(&ChatRequest::new("sys", "hi").json());
        assert_eq!(body["system"], "sys");
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["messages"][0]["role"], "user");
        assert!(body.get("response_format").is_none());
    }
}
