//! The request and the answer of [`Memory::chat`](crate::Memory::chat).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::memory::infer::{validate_messages, MemoryEvent, Message};
use crate::search::SearchMode;
use crate::types::{MemoryKind, Scope};

/// The largest `max_memory_tokens` accepted.
pub const MAX_MEMORY_TOKENS: usize = 100_000;

/// The most working memories a turn may recall.
pub const MAX_SESSION_WINDOW: usize = 100;

/// The most messages a turn's recall query may take.
pub const MAX_QUERY_TURNS: usize = 20;

/// The longest working-memory expiry accepted: a year.
pub const MAX_WORKING_TTL_SECONDS: u64 = 366 * 24 * 3600;

/// When a chat stores what its exchange taught.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Remember {
    /// Before the call returns: its events are in the reply (the default).
    #[default]
    Inline,
    /// After the call returns, on a thread of its own: the reply carries a handle for
    /// [`Memory::remembered`](crate::Memory::remembered).
    Background,
    /// Not at all (working memory is still kept, see [`Chat::session_window`]).
    Off,
}

/// One turn of a conversation with memory: see [`Memory::chat`](crate::Memory::chat).
///
/// ```
/// use agent_mem::{Chat, Message, Remember};
///
/// let turn = Chat::new(vec![Message::user("What should I cook tonight?")])
///     .user("alice")
///     .run("session-1")
///     .remember(Remember::Background);
/// assert_eq!(turn.scope.user_id.as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    /// The conversation so far, oldest first; the last message must be the user's.
    /// `system` messages are passed to the model after the memory prompt.
    pub messages: Vec<Message>,
    /// Whose memories are recalled and written; a chat needs one. Long-term memories are
    /// recalled from the scope without its `run_id` (every session of the user or agent);
    /// working memory lives in the whole scope (the session).
    pub scope: Scope,
    /// How many memories the search recalls (default: the store's search limit).
    pub limit: Option<usize>,
    /// The least score a recalled memory needs (default: the store's).
    pub threshold: Option<f32>,
    /// Further conditions on the recalled memories.
    pub filter: Option<Filter>,
    /// The search mode of the recall (default: the store's, hybrid unless configured).
    pub mode: Option<SearchMode>,
    /// Recall the store as it stood at this moment.
    pub as_of: Option<DateTime<Utc>>,
    /// Also recall global memories (those without any scope).
    pub include_global: bool,
    /// How many of the last messages form the recall query (default 1: the user's last
    /// message).
    pub query_turns: usize,
    /// How many of the session's latest turns come back as working memory (default 6). 0
    /// turns working memory off: turns are neither kept nor recalled.
    pub session_window: usize,
    /// How long a turn kept as working memory lasts (default one day).
    pub working_ttl: chrono::Duration,
    /// The most tokens the listed memories may take in the prompt (default 2,000), counted
    /// as described at [`approx_tokens`](crate::approx_tokens).
    pub max_memory_tokens: usize,
    /// A system prompt for this call, replacing the store's (see
    /// [`crate::llm::prompts::CHAT`]); it must contain `{memories}`.
    pub prompt: Option<String>,
    /// When the exchange is remembered (default inline).
    pub remember: Remember,
}

impl Chat {
    /// A turn of these messages, with no scope yet and every default.
    pub fn new(messages: Vec<Message>) -> Self {
        Chat {
            messages,
            scope: Scope::default(),
            limit: None,
            threshold: None,
            filter: None,
            mode: None,
            as_of: None,
            include_global: false,
            query_turns: 1,
            session_window: 6,
            working_ttl: chrono::Duration::days(1),
            max_memory_tokens: 2_000,
            prompt: None,
            remember: Remember::Inline,
        }
    }

    /// A turn of one user message.
    pub fn text(content: impl Into<String>) -> Self {
        Chat::new(vec![Message::user(content)])
    }

    /// Sets the user id.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.scope.user_id = Some(user_id.into());
        self
    }

    /// Sets the agent id.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.scope.agent_id = Some(agent_id.into());
        self
    }

    /// Sets the run (session) id: the scope of working memory.
    pub fn run(mut self, run_id: impl Into<String>) -> Self {
        self.scope.run_id = Some(run_id.into());
        self
    }

    /// Sets the whole scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets how the exchange is remembered.
    pub fn remember(mut self, remember: Remember) -> Self {
        self.remember = remember;
        self
    }

    /// Sets the token budget of the listed memories.
    pub fn max_memory_tokens(mut self, tokens: usize) -> Self {
        self.max_memory_tokens = tokens;
        self
    }

    /// Sets a system prompt for this call.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Checks everything a call can check before any work.
    pub(super) fn validate(&self) -> Result<()> {
        self.scope.validate()?;
        if self.scope.is_global() {
            return Err(Error::invalid(
                "chat needs a scope (user_id, agent_id, run_id or org_id): the memories it \
                 recalls and writes are that scope's",
            ));
        }
        let Some(last) = self.messages.last() else {
            return Err(Error::invalid("messages must not be empty"));
        };
        validate_messages(&self.messages)?;
        if last.role != "user" {
            return Err(Error::invalid(format!(
                "the last message must be the user's (the one to answer), got a {:?} message",
                last.role
            )));
        }
        if !(1..=MAX_MEMORY_TOKENS).contains(&self.max_memory_tokens) {
            return Err(Error::invalid(format!(
                "max_memory_tokens must be between 1 and {MAX_MEMORY_TOKENS} (got {})",
                self.max_memory_tokens
            )));
        }
        if self.session_window > MAX_SESSION_WINDOW {
            return Err(Error::invalid(format!(
                "session_window must be at most {MAX_SESSION_WINDOW} (got {})",
                self.session_window
            )));
        }
        if !(1..=MAX_QUERY_TURNS).contains(&self.query_turns) {
            return Err(Error::invalid(format!(
                "query_turns must be between 1 and {MAX_QUERY_TURNS} (got {})",
                self.query_turns
            )));
        }
        let ttl = self.working_ttl.num_seconds();
        if ttl < 1 || ttl as u64 > MAX_WORKING_TTL_SECONDS {
            return Err(Error::invalid(format!(
                "the working memory expiry must be between 1 s and {MAX_WORKING_TTL_SECONDS} s \
                 (got {ttl} s)"
            )));
        }
        if let Some(limit) = self.limit {
            let max = crate::search::MAX_LIMIT;
            if !(1..=max).contains(&limit) {
                return Err(Error::invalid(format!(
                    "limit must be between 1 and {max}, got {limit}"
                )));
            }
        }
        if let Some(threshold) = self.threshold {
            if !threshold.is_finite() {
                return Err(Error::invalid("threshold must be a finite number"));
            }
        }
        if let Some(prompt) = &self.prompt {
            super::check_template(prompt, "prompt")?;
        }
        Ok(())
    }
}

/// Where a memory listed in the prompt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Recalled {
    /// The agent's procedural memories (how it works).
    Procedural,
    /// The session's latest turns.
    Working,
    /// The search with the user's message.
    Search,
}

/// A memory the model was given, under its number in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryUsed {
    /// Its number in the prompt (`[n]`), from 1.
    #[serde(rename = "ref")]
    pub number: usize,
    /// The memory's id.
    pub id: String,
    /// Its text, as the model saw it.
    pub content: String,
    /// Its kind.
    pub kind: MemoryKind,
    /// Why it was listed.
    pub source: Recalled,
    /// Its search score (recalled by search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A memory the answer cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Citation {
    /// The number the answer used (`[n]`).
    #[serde(rename = "ref")]
    pub number: usize,
    /// The memory it stands for.
    pub id: String,
}

/// How remembering the exchange went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RememberStatus {
    /// Done: the events are in the reply (or the outcome).
    Done,
    /// Still running in the background.
    Running,
    /// Failed; the answer stands, nothing of the exchange was stored by inference.
    Failed,
    /// Not asked for.
    Off,
}

/// An error reported inside a result rather than returned (a remember step that failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReport {
    /// The error's stable code name (`"Llm"`).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl From<&Error> for ErrorReport {
    fn from(error: &Error) -> Self {
        ErrorReport {
            code: error.code().name().to_string(),
            message: error.message().to_string(),
        }
    }
}

impl ErrorReport {
    /// The error it reports.
    pub fn to_error(&self) -> Error {
        let code = ErrorCode::ALL
            .into_iter()
            .find(|c| c.name() == self.code)
            .unwrap_or(ErrorCode::Internal);
        Error::new(code, self.message.clone())
    }
}

/// Remembering an exchange: done inline, running in the background, failed, or off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Remembered {
    /// Where it stands.
    pub status: RememberStatus,
    /// What inference did (status `done`), in `add_messages`'s shape.
    #[serde(default)]
    pub events: Vec<MemoryEvent>,
    /// Status `running`: the handle to pass to `Memory::remembered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Status `failed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

impl Remembered {
    pub(super) fn off() -> Self {
        Remembered {
            status: RememberStatus::Off,
            events: Vec::new(),
            handle: None,
            error: None,
        }
    }

    pub(super) fn of(outcome: &Result<Vec<MemoryEvent>>) -> Self {
        match outcome {
            Ok(events) => Remembered {
                status: RememberStatus::Done,
                events: events.clone(),
                handle: None,
                error: None,
            },
            Err(e) => Remembered {
                status: RememberStatus::Failed,
                events: Vec::new(),
                handle: None,
                error: Some(ErrorReport::from(e)),
            },
        }
    }

    pub(super) fn running(handle: String) -> Self {
        Remembered {
            status: RememberStatus::Running,
            events: Vec::new(),
            handle: Some(handle),
            error: None,
        }
    }
}

/// What [`Memory::chat`](crate::Memory::chat) answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatReply {
    /// The model's answer, as it wrote it (citations included).
    pub answer: String,
    /// The memories the model was given, in the order of the prompt.
    pub memories_used: Vec<MemoryUsed>,
    /// The memories the answer cites, in the order it first cites them; a number that
    /// was not in the prompt is dropped.
    pub citations: Vec<Citation>,
    /// The turn kept as working memory (none when `session_window` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_memory_id: Option<String>,
    /// How remembering the exchange went.
    pub remember: Remembered,
    /// The model that answered (its label, `"openai:gpt-4.1-nano"`).
    pub model: String,
}
