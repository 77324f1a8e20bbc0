//! Large language models: the [`Llm`] trait, HTTP clients for OpenAI-compatible Chat
//! Completions and Anthropic Messages, and their configuration ([`LlmConfig`]).
//!
//! The clients are blocking (the bindings make calls asynchronous), time out, and retry
//! 429 and 5xx answers a bounded number of times with backoff (honouring `Retry-After`).
//! API keys are never written to errors, logs or `Debug` output.

mod anthropic;
mod config;
mod openai;
pub mod prompts;
pub(crate) mod repair;

pub use crate::http::provider::Provider;
pub use anthropic::AnthropicChat;
pub use config::LlmConfig;
pub use openai::OpenAiChat;

use crate::error::Result;

/// Who says a message in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The person the agent talks to.
    User,
    /// The agent (or the model).
    Assistant,
}

impl Role {
    /// The wire name (`"user"`, `"assistant"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// One request to a chat model: a system prompt and the conversation so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// Instructions (OpenAI: a leading `system` message; Anthropic: the `system` field).
    pub system: String,
    /// The messages, oldest first; the last one is normally the user's.
    pub messages: Vec<ChatMessage>,
    /// Ask for a JSON object as the answer (OpenAI `response_format: json_object` when the
    /// client is configured for it; the prompt must also ask for JSON).
    pub json: bool,
}

impl ChatRequest {
    /// A request of one system prompt and one user message.
    pub fn new(system: impl Into<String>, user: impl Into<String>) -> Self {
        ChatRequest {
            system: system.into(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: user.into(),
            }],
            json: false,
        }
    }

    /// Asks for a JSON object answer.
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }
}

/// A chat model. Implementations must be usable from many threads at once.
pub trait Llm: Send + Sync {
    /// A short label of the provider and model (`"openai:gpt-4.1-nano"`), recorded as the
    /// actor of history rows the model caused. Never contains a key.
    fn label(&self) -> &str;

    /// Sends the request and returns the text of the model's answer. Failures (transport,
    /// timeout, refused key, an answer without text) are [`crate::ErrorCode::Llm`] errors
    /// that carry the provider's message.
    fn complete(&self, request: &ChatRequest) -> Result<String>;

    /// Sends the request and streams the answer: `on_text` receives each piece of text as it
    /// arrives and returns `false` to stop, which closes the connection and fails the call
    /// with [`crate::ErrorCode::Cancelled`]. Returns the whole text. A stream that ends
    /// before the model finished (a cut connection) or reports an error is an
    /// [`crate::ErrorCode::Llm`] error.
    ///
    /// The default (for models that cannot stream) calls [`Llm::complete`] and hands the
    /// answer over as one piece.
    fn stream(
        &self,
        request: &ChatRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        let text = self.complete(request)?;
        if !on_text(&text) {
            return Err(cancelled());
        }
        Ok(text)
    }
}

/// The error of a stream its caller stopped.
pub(crate) fn cancelled() -> crate::Error {
    crate::Error::cancelled("the answer was cancelled while it streamed")
}
