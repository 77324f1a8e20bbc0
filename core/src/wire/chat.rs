//! `chat` and `chat_remembered`: their requests, and the chunks a streamed chat hands out.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::requests::{messages_of, moment};
use super::{request, to_json};
use crate::{Chat, Error, Filter, Memory, Remember, Result, SearchMode};

/// `chat`: the conversation, the scope, and the options of [`Chat`].
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatRequest {
    /// A string (one user message), a message, or a list of messages; the last is the
    /// user's.
    #[schemars(required)]
    messages: Option<Value>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    /// How many memories the search recalls.
    limit: Option<usize>,
    threshold: Option<f32>,
    filters: Option<Value>,
    mode: Option<String>,
    as_of: Option<String>,
    include_global: Option<bool>,
    query_turns: Option<usize>,
    session_window: Option<usize>,
    working_ttl_seconds: Option<u64>,
    max_memory_tokens: Option<usize>,
    prompt: Option<String>,
    remember: Option<Remember>,
}

impl ChatRequest {
    fn into_chat(self) -> Result<Chat> {
        let mut chat = Chat::new(messages_of(self.messages)?).scope(scope_of!(self));
        chat.limit = self.limit;
        chat.threshold = self.threshold;
        chat.filter = self.filters.as_ref().map(Filter::from_json).transpose()?;
        chat.mode = self.mode.map(|m| m.parse::<SearchMode>()).transpose()?;
        chat.as_of = moment("as_of", self.as_of.as_deref())?;
        chat.include_global = self.include_global.unwrap_or(false);
        chat.query_turns = self.query_turns.unwrap_or(chat.query_turns);
        chat.session_window = self.session_window.unwrap_or(chat.session_window);
        if let Some(seconds) = self.working_ttl_seconds {
            let seconds = i64::try_from(seconds)
                .map_err(|_| Error::invalid("working_ttl_seconds is too large"))?;
            chat.working_ttl = chrono::Duration::seconds(seconds);
        }
        chat.max_memory_tokens = self.max_memory_tokens.unwrap_or(chat.max_memory_tokens);
        chat.prompt = self.prompt;
        chat.remember = self.remember.unwrap_or_default();
        Ok(chat)
    }
}

/// `chat_remembered`: the handle of a background remembering, and whether to wait for it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RememberedRequest {
    handle: String,
    #[serde(default)]
    wait: bool,
}

/// Answers a chat turn; streams the answer's text to `on_text` when given.
pub(super) fn chat(
    memory: &Memory,
    request: &Value,
    on_text: Option<&mut dyn FnMut(&str) -> bool>,
) -> Result<Value> {
    let chat = self::request::<ChatRequest>(request, "chat request")?.into_chat()?;
    let reply = match on_text {
        Some(on_text) => memory.chat_stream(chat, on_text)?,
        None => memory.chat(chat)?,
    };
    to_json(&reply)
}

/// The outcome of a chat's background remembering.
pub(super) fn remembered(memory: &Memory, request: &Value) -> Result<Value> {
    let request = self::request::<RememberedRequest>(request, "chat_remembered request")?;
    to_json(&memory.remembered(&request.handle, request.wait)?)
}

/// One piece of a streamed answer as the surfaces that speak JSON hand it out (C's chunk
/// callback): `{"delta": "text"}`.
///
/// ```
/// assert_eq!(agent_mem::wire::text_chunk("Hi"), r#"{"delta":"Hi"}"#);
/// ```
pub fn text_chunk(delta: &str) -> String {
    json!({ "delta": delta }).to_string()
}
