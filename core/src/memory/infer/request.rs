//! The request and the answer of [`Memory::add_messages`](crate::Memory::add_messages): messages, options, events.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{validate_content, validate_metadata, AddOutcome, MemoryKind, Metadata, Scope};

/// Messages accepted in one call.
const MAX_MESSAGES: usize = 1_000;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `"user"`, `"assistant"`, `"system"` or `"tool"`.
    pub role: String,
    /// What was said.
    pub content: String,
    /// Who said it (kept as `actor_id` in the metadata of raw memories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was said, if known (RFC 3339 or a date): shown to the model beside the
    /// message, and kept as `observed_at` in the metadata of a message stored as it is.
    #[serde(
        default,
        with = "crate::types::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub observed_at: Option<DateTime<Utc>>,
}

impl Message {
    /// A message with this role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            name: None,
            observed_at: None,
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new("assistant", content)
    }

    /// A system message (context for the model; never stored).
    pub fn system(content: impl Into<String>) -> Self {
        Message::new("system", content)
    }

    /// Sets when the message was said.
    pub fn observed_at(mut self, at: DateTime<Utc>) -> Self {
        self.observed_at = Some(at);
        self
    }
}

/// What [`Memory::add_messages`](crate::Memory::add_messages) did to one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemoryEventKind {
    /// A memory was created.
    Add,
    /// A memory's text was rewritten.
    Update,
    /// A memory was deleted.
    Delete,
    /// Nothing changed: the fact was already stored (in the memory named by the event).
    None,
}

/// One change made by [`Memory::add_messages`](crate::Memory::add_messages), in mem0's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryEvent {
    /// The memory concerned.
    pub id: String,
    /// Its text now (for `DELETE`: the text it had).
    pub memory: String,
    /// What happened.
    pub event: MemoryEventKind,
    /// The text before an `UPDATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_memory: Option<String>,
    /// For a message stored as it was (no inference): its role, also kept in the memory's
    /// metadata as `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// For a message stored as it was: its `name`, also kept in the memory's metadata as
    /// `actor_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The change that made this event, for `Memory::undo` (none for `NONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
    /// On a `DELETE` or `UPDATE` that superseded the memory (see [`AddMessages::supersede`]):
    /// the memory that replaced it; the memory itself is kept, closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// On the event of a memory that replaced another: the memory it superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

impl MemoryEvent {
    /// The event of an add that stored `memory`: `ADD`, or `NONE` when the same memory was
    /// stored already (in the memory the outcome names).
    pub(crate) fn stored(outcome: AddOutcome, memory: String) -> MemoryEvent {
        let event = if outcome.added {
            MemoryEventKind::Add
        } else {
            MemoryEventKind::None
        };
        MemoryEvent::of(event, outcome.id, memory)
    }

    /// An event of `event` kind about `id` (its text `memory`), nothing else said.
    pub(crate) fn of(event: MemoryEventKind, id: String, memory: String) -> MemoryEvent {
        MemoryEvent {
            id,
            memory,
            event,
            previous_memory: None,
            role: None,
            actor_id: None,
            change_id: None,
            superseded_by: None,
            supersedes: None,
        }
    }
}

/// A conversation to remember: see [`Memory::add_messages`](crate::Memory::add_messages).
#[derive(Debug, Clone, PartialEq)]
pub struct AddMessages {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whose memories these are. Inference needs a scope.
    pub scope: Scope,
    /// The kind of the memories written (default: `semantic` for extracted facts, `episodic`
    /// for raw messages). `procedural` with an agent id summarises the run instead.
    pub kind: Option<MemoryKind>,
    /// Metadata of every memory written.
    pub metadata: Metadata,
    /// Expiry of every memory written.
    pub expires_at: Option<DateTime<Utc>>,
    /// Extract facts with the chat model (default true; without a model, messages are stored
    /// as given).
    pub infer: bool,
    /// A prompt for this call only, replacing the extraction (or procedural) prompt.
    pub prompt: Option<String>,
    /// When the conversation took place (default: its latest message's `observed_at`, else
    /// now): the date the model resolves "last March" against, kept as `observed_at` in the
    /// metadata of the memories written, which time-aware search reads as their time when
    /// they have no valid time.
    pub observed_at: Option<DateTime<Utc>>,
    /// When the model decides a fact replaces a stored memory (UPDATE, or DELETE of a
    /// contradicted one), keep the old memory closed (its valid time ended, `superseded_by`
    /// the new one, hidden unless asked for) rather than rewriting or deleting it (default
    /// true; false keeps mem0's behaviour: the memory's text is rewritten in place, or it is
    /// deleted, its old versions kept either way).
    pub supersede: bool,
}

impl AddMessages {
    /// These messages, inferred, with no scope yet.
    pub fn new(messages: Vec<Message>) -> Self {
        AddMessages {
            messages,
            scope: Scope::default(),
            kind: None,
            metadata: Metadata::new(),
            expires_at: None,
            infer: true,
            prompt: None,
            observed_at: None,
            supersede: true,
        }
    }

    /// One user message.
    pub fn text(content: impl Into<String>) -> Self {
        AddMessages::new(vec![Message::user(content)])
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

    /// Sets the run (session) id.
    pub fn run(mut self, run_id: impl Into<String>) -> Self {
        self.scope.run_id = Some(run_id.into());
        self
    }

    /// Sets the whole scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the kind of memory written.
    pub fn kind(mut self, kind: MemoryKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Sets the metadata of every memory written.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the expiry of every memory written.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Turns inference on or off.
    pub fn infer(mut self, infer: bool) -> Self {
        self.infer = infer;
        self
    }

    /// A prompt for this call only.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sets when the conversation took place.
    pub fn observed_at(mut self, at: DateTime<Utc>) -> Self {
        self.observed_at = Some(at);
        self
    }

    /// Supersedes replaced memories (true, the default) or rewrites and deletes them.
    pub fn supersede(mut self, supersede: bool) -> Self {
        self.supersede = supersede;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        self.scope.validate()?;
        validate_metadata(&self.metadata)?;
        if self.messages.is_empty() {
            return Err(Error::invalid("messages must not be empty"));
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(Error::invalid(format!(
                "at most {MAX_MESSAGES} messages per call, got {}",
                self.messages.len()
            )));
        }
        validate_messages(&self.messages)?;
        if let Some(p) = &self.prompt {
            if p.trim().is_empty() {
                return Err(Error::invalid("prompt must not be empty"));
            }
        }
        Ok(())
    }
}

/// Checks each message of a conversation: a known role, a content the store accepts, a
/// usable name. Errors name the message (`messages[2].role …`).
pub(crate) fn validate_messages(messages: &[Message]) -> Result<()> {
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "user" | "assistant" | "system" | "tool") {
            return Err(Error::invalid(format!(
                "messages[{i}].role must be user, assistant, system or tool, got {:?}",
                m.role
            )));
        }
        validate_content(&m.content)
            .map_err(|e| Error::invalid(format!("messages[{i}].content: {}", e.message())))?;
        if let Some(name) = &m.name {
            if name.is_empty() || name.contains('\0') {
                return Err(Error::invalid(format!(
                    "messages[{i}].name must be a non-empty string without NUL"
                )));
            }
        }
    }
    Ok(())
}
