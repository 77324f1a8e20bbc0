//! The OpenAI Chat Completions client, which also speaks to every server that copies that
//! API (DeepSeek, Zhipu, Moonshot, Ollama, vLLM, llama.cpp, LM Studio, LiteLLM…).

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use super::{cancelled, ChatRequest, Llm};
use crate::error::{ErrorCode, Result};
use crate::http::{display_url, excerpt, join_url, HttpClient, HttpOptions, Secret, Streamed};

/// A chat model behind an OpenAI-compatible `POST {base_url}/chat/completions` endpoint.
///
/// Blocking; usable from many threads at once. Built by [`super::LlmConfig::build`], or by
/// hand:
///
/// ```no_run
/// use agent_mem::llm::{ChatRequest, Llm, OpenAiChat};
///
/// # fn main() -> agent_mem::Result<()> {
/// let llm = OpenAiChat::new("http://localhost:11434/v1", "llama3.2").provider("ollama");
/// let answer = llm.complete(&ChatRequest::new("Answer briefly.", "What is 2 + 2?"))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAiChat {
    http: HttpClient,
    base_url: String,
    url: String,
    model: String,
    label: String,
    api_key: Option<Secret>,
    temperature: f32,
    max_tokens: Option<u32>,
    json_mode: bool,
}

impl OpenAiChat {
    /// A client of `model` at `base_url` (the part before `/chat/completions`, such as
    /// `https://api.openai.com/v1`), without a key, named `openai` in labels and errors,
    /// with temperature 0, JSON mode on, a 60 s timeout and 3 retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        let model = model.into();
        OpenAiChat {
            http: HttpClient::new("openai", ErrorCode::Llm, HttpOptions::default()),
            url: join_url(&base_url, "chat/completions"),
            label: format!("openai:{model}"),
            base_url,
            model,
            api_key: None,
            temperature: 0.0,
            max_tokens: None,
            json_mode: true,
        }
    }

    /// Names the provider in the label (`"deepseek:deepseek-chat"`) and in errors.
    pub fn provider(mut self, name: &str) -> Self {
        self.label = format!("{name}:{}", self.model);
        self.http = self.http.with_provider(name);
        self
    }

    /// Sends `Authorization: Bearer <key>` (servers such as Ollama need none).
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

    /// How many times a rate-limited (429), overloaded (5xx) or refused connection attempt
    /// is tried again.
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

    /// The sampling temperature (default 0, for repeatable extraction).
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// Caps the length of the answer (`max_tokens`); unset by default.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Whether a [`ChatRequest::json`] request sends `response_format: json_object`
    /// (default true; turn off for servers that reject it).
    pub fn json_mode(mut self, on: bool) -> Self {
        self.json_mode = on;
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

    /// The JSON body sent for `request`.
    fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(
            request
                .messages
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
        );
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        });
        if let Some(max_tokens) = self.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if request.json && self.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        body
    }

    /// The text of `choices[0].message`, or an error saying why there is none.
    fn answer(&self, response: &Value) -> Result<String> {
        let Some(choice) = response.get("choices").and_then(|c| c.get(0)) else {
            return Err(self.http.error(format!(
                "the answer has no choices: {}",
                excerpt(&response.to_string(), 300)
            )));
        };
        let message = choice.get("message");
        let content = message.and_then(|m| m.get("content"));
        let text = match content {
            Some(Value::String(s)) => Some(s.clone()),
            // Some servers answer with content parts, like the request format allows.
            Some(Value::Array(parts)) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<String>(),
            ),
            _ => None,
        };
        match text {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => {
                let finish = choice
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("none");
                let mut why = format!("the answer has no text (finish_reason: {finish}");
                if let Some(refusal) = message
                    .and_then(|m| m.get("refusal"))
                    .and_then(Value::as_str)
                {
                    why.push_str(&format!(", refusal: {}", excerpt(refusal, 500)));
                }
                why.push(')');
                Err(self.http.error(why))
            }
        }
    }
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry credentials in its user info; the key is shown as set or not.
        f.debug_struct("OpenAiChat")
            .field("label", &self.label)
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("json_mode", &self.json_mode)
            .field("http", &self.http)
            .finish()
    }
}

impl OpenAiChat {
    /// `Authorization: Bearer <key>`, when there is a key.
    fn authorization(&self) -> Option<String> {
        self.api_key
            .as_ref()
            .map(|key| format!("Bearer {}", key.expose()))
    }

    /// Reads a stream of `chat.completion.chunk` events up to `[DONE]`.
    fn read_stream(
        &self,
        events: &mut crate::http::stream::Events,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        let mut text = String::new();
        let mut finish: Option<String> = None;
        while let Some(event) = events.next_event()? {
            let data = event.data.trim();
            if data == "[DONE]" {
                return self.streamed_text(text, finish.as_deref());
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| {
                self.http.error(format!(
                    "a streamed chunk is not JSON ({e}): {}",
                    excerpt(data, 300)
                ))
            })?;
            if let Some(error) = chunk.get("error") {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_string);
                return Err(self.http.error(format!(
                    "the stream reported an error: {}",
                    excerpt(&message, 1000)
                )));
            }
            let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
                continue; // a usage-only chunk
            };
            if let Some(piece) = choice
                .get("delta")
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
            {
                if !piece.is_empty() {
                    text.push_str(piece);
                    if !on_text(piece) {
                        return Err(cancelled());
                    }
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                finish = Some(reason.to_string());
            }
        }
        // Some servers close after the last chunk without `[DONE]`; without a finish
        // reason either, the connection was cut mid-answer.
        match finish {
            Some(reason) => self.streamed_text(text, Some(&reason)),
            None => Err(self
                .http
                .error("the streamed answer was cut before it ended (no [DONE])")),
        }
    }

    fn streamed_text(&self, text: String, finish: Option<&str>) -> Result<String> {
        if text.trim().is_empty() {
            return Err(self.http.error(format!(
                "the answer has no text (finish_reason: {})",
                finish.unwrap_or("none")
            )));
        }
        Ok(text)
    }
}

impl Llm for OpenAiChat {
    fn label(&self) -> &str {
        &self.label
    }

    fn complete(&self, request: &ChatRequest) -> Result<String> {
        let authorization = self.authorization();
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let response = self.http.post_json(
            &self.url,
            &headers,
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
        let authorization = self.authorization();
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let mut body = self.body(request);
        body["stream"] = json!(true);
        match self
            .http
            .post_stream(&self.url, &headers, self.api_key.as_ref(), &body)?
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
    use crate::llm::{ChatMessage, Role};

    #[test]
    fn body_has_system_first_and_json_only_when_asked() {
        let chat = OpenAiChat::new("http://h/v1/", "m").max_tokens(50);
        assert_eq!(chat.url, "http://h/v1/chat/completions");
        let mut request = ChatRequest::new("sys", "hi");
        request.messages.push(ChatMessage {
            role: Role::Assistant,
            content: "yo".into(),
        });
        let body = chat.body(&request);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][2]["role"], "assistant");
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("response_format").is_none());
        let body = chat.body(&request.clone().json());
        assert_eq!(body["response_format"]["type"], "json_object");
        let body = chat.clone().json_mode(false).body(&request.json());
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn answers_without_text_are_errors() {
        let chat = OpenAiChat::new("http://h/v1", "m");
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"},
            "finish_reason": "stop"}]});
        let err = chat.answer(&refused).unwrap_err();
        assert!(err.message().contains("refusal: no"), "{err}");
        let cut = json!({"choices": [{"message": {"content": ""}, "finish_reason": "length"}]});
        assert!(chat.answer(&cut).unwrap_err().message().contains("length"));
        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"},
            {"type": "text", "text": "b"}]}}]});
        assert_eq!(chat.answer(&parts).unwrap(), "ab");
        assert!(chat.answer(&json!({})).is_err());
    }
}
