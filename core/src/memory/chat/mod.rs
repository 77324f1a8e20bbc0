//! Chat with memory: [`Memory::chat`] recalls what bears on the user's message, asks the chat
//! model with those memories listed under small numbers, maps the numbers the answer cites
//! back to memories, keeps the turn as working memory and remembers what the exchange taught.
//!
//! Nothing is written before the model has answered in full: a failed, cut or cancelled
//! answer stores nothing. Remembering (the `add_messages` pipeline) runs after the answer;
//! when it fails, the answer is still returned and the failure reported beside it.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};

use chrono::Utc;
use serde_json::json;

use super::infer::{AddMessages, MemoryEvent, Message};
use super::read::ListOptions;
use super::Memory;
use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::llm::{prompts, ChatMessage, ChatRequest, Role};
use crate::types::{ListOrder, MemoryKind, NewMemory, Scope};

mod compose;
mod request;

pub use compose::approx_tokens;
pub(crate) use compose::check_template;
pub use request::{
    Chat, ChatReply, Citation, ErrorReport, MemoryUsed, Recalled, Remember, RememberStatus,
    Remembered,
};

/// The most procedural memories a turn lists.
const PROCEDURAL_LIMIT: usize = 5;

/// Background outcomes kept uncollected before the oldest are dropped.
const MAX_UNCOLLECTED: usize = 1_024;

/// The metadata key marking a working memory as a chat turn.
const CHAT_TURN: &str = "chat_turn";

/// What a turn shows the model: its system prompt and the memories listed in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatContext {
    /// The system prompt, memories included.
    pub system: String,
    /// The memories listed, in order, with their numbers.
    pub memories: Vec<MemoryUsed>,
}

impl Memory {
    /// Answers the last user message of `chat` with the chat model, given the memories that
    /// bear on it, then keeps the turn as working memory and remembers the exchange (see
    /// [`Chat::remember`]).
    ///
    /// Recall: a search of the scope (without its `run_id`) with the last message (see
    /// [`Chat::query_turns`]), working memories excluded; the session's latest turns
    /// (working memory of the whole scope, [`Chat::session_window`]); the agent's
    /// procedural memories. They are listed in the system prompt ([`prompts::CHAT`] or the
    /// store's or call's replacement) under numbers, procedural first, then the session,
    /// then the search hits most relevant first, as many as fit in
    /// [`Chat::max_memory_tokens`].
    ///
    /// Errors: `Unsupported` without a chat model (before any work), `InvalidInput` for a
    /// bad request, `Llm` when the model fails; none of them stores anything.
    pub fn chat(&self, chat: Chat) -> Result<ChatReply> {
        self.answer(chat, None)
    }

    /// [`Memory::chat`] with the answer streamed: `on_text` receives each piece of text as
    /// the model writes it, and returns `false` to stop, which fails the call with
    /// `Cancelled` and stores nothing. The reply is the same as `chat`'s.
    pub fn chat_stream(
        &self,
        chat: Chat,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<ChatReply> {
        self.answer(chat, Some(on_text))
    }

    /// The system prompt and memories a chat turn would give the model, without asking it
    /// (recall and compose only): for inspecting a prompt, or measuring its cost.
    pub fn chat_context(&self, chat: &Chat) -> Result<ChatContext> {
        self.prepare(chat).map(|(context, _)| context)
    }

    /// The context of a turn, and the embedding of its query when the store has an
    /// embedder (the turn's working memory reuses it).
    fn prepare(&self, chat: &Chat) -> Result<(ChatContext, Option<Vec<f32>>)> {
        chat.validate()?;
        let template = chat
            .prompt
            .as_deref()
            .or(self.shared.prompts.chat.as_deref())
            .unwrap_or(prompts::CHAT);
        let (candidates, query_vector) = self.recall(chat)?;
        let memories = compose::within_budget(candidates, chat.max_memory_tokens);
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let system = compose::system_prompt(template, &memories, &today);
        Ok((ChatContext { system, memories }, query_vector))
    }

    /// The outcome of a chat's background remembering (the handle its reply gave):
    /// `running` while it runs (or, with `wait`, once it has ended), then `done` with its
    /// events or `failed` with its error. An outcome is handed out once: asking again for a
    /// finished one is `NotFound`, as is an unknown handle.
    pub fn remembered(&self, handle: &str, wait: bool) -> Result<Remembered> {
        self.shared.background.take(handle, wait)
    }

    fn answer(
        &self,
        chat: Chat,
        on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<ChatReply> {
        let Some(llm) = self.shared.llm.clone() else {
            return Err(Error::new(
                ErrorCode::Unsupported,
                "chat needs a chat model: open the store with an llm configured",
            ));
        };
        let (context, query_vector) = self.prepare(&chat)?;
        let request = model_request(&chat.messages, context.system);
        let answer = match on_text {
            Some(on_text) => llm.stream(&request, on_text)?,
            None => llm.complete(&request)?,
        };
        let citations = compose::citations(&answer, &context.memories);
        let Some(question) = chat.messages.last() else {
            return Err(Error::internal("a validated chat has a last message"));
        };
        let (working_memory_id, remember) =
            match self.keep_turn(&chat, question, &answer, query_vector) {
                Ok(id) => (id, self.remember_exchange(&chat, question, &answer)),
                // The answer stands; the failure is reported where remembering is.
                Err(e) => (None, Remembered::of(&Err(e))),
            };
        Ok(ChatReply {
            answer,
            memories_used: context.memories,
            citations,
            working_memory_id,
            remember,
            model: llm.label().to_string(),
        })
    }

    /// The memories a turn may list, in priority order, not yet numbered or cut to budget;
    /// and the query's embedding, when the store has an embedder.
    fn recall(&self, chat: &Chat) -> Result<(Vec<MemoryUsed>, Option<Vec<f32>>)> {
        let mut listed: Vec<MemoryUsed> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut push = |listed: &mut Vec<MemoryUsed>, used: MemoryUsed| {
            if seen.insert(used.id.clone()) {
                listed.push(used);
            }
        };
        for record in self.procedural_for(chat)? {
            push(&mut listed, used(record, Recalled::Procedural, None));
        }
        if chat.session_window > 0 {
            let mut options = ListOptions::new()
                .limit(chat.session_window)
                .order(ListOrder::CreatedDesc)
                .filter(Filter::eq("kind", MemoryKind::Working.as_str()));
            options.scope = chat.scope.clone();
            options.as_of = chat.as_of;
            for record in self.list(&options)?.items {
                push(&mut listed, used(record, Recalled::Working, None));
            }
        }
        let mut options = self.search_options();
        options.scope = long_term_scope(&chat.scope);
        options.include_global = chat.include_global;
        options.filter = chat.filter.clone();
        let limit = chat.limit.unwrap_or(options.limit);
        // Working memories (this session's are listed above) are dropped from the hits
        // rather than filtered in the search, which keeps the vector walk unfiltered: a
        // few more hits are asked for to make up for them.
        options.limit = (limit + chat.session_window).min(crate::search::MAX_LIMIT);
        options.threshold = chat.threshold.or(options.threshold);
        options.mode = chat.mode.unwrap_or(options.mode);
        options.as_of = chat.as_of;
        let query = query_of(chat);
        // Embedded here rather than inside the search, so that keeping the turn as working
        // memory can reuse the vector instead of embedding the whole exchange again.
        let query_vector = match self.shared.embedder.get() {
            Ok(_) => Some(self.embed_query(&query)?),
            Err(_) => None,
        };
        let hits = match &query_vector {
            Some(vector) => self.search_with_vector(&query, vector, &options)?,
            None => self.search(&query, &options)?,
        };
        let long_term = hits
            .into_iter()
            .filter(|hit| hit.memory.kind != MemoryKind::Working)
            .take(limit);
        for hit in long_term {
            push(
                &mut listed,
                used(hit.memory, Recalled::Search, Some(hit.score)),
            );
        }
        Ok((listed, query_vector))
    }

    /// The agent's procedural memories that belong to this scope: the agent's own (no
    /// user) and those of this very user, newest first.
    fn procedural_for(&self, chat: &Chat) -> Result<Vec<crate::MemoryRecord>> {
        let Some(agent) = &chat.scope.agent_id else {
            return Ok(Vec::new());
        };
        let mut options = ListOptions::new()
            .limit(PROCEDURAL_LIMIT * 4)
            .order(ListOrder::CreatedDesc)
            .filter(Filter::eq("kind", MemoryKind::Procedural.as_str()));
        options.scope = Scope {
            agent_id: Some(agent.clone()),
            org_id: chat.scope.org_id.clone(),
            ..Scope::default()
        };
        options.as_of = chat.as_of;
        let belongs = |record: &crate::MemoryRecord| {
            let fits =
                |theirs: &Option<String>, ours: &Option<String>| theirs.is_none() || theirs == ours;
            fits(&record.scope.user_id, &chat.scope.user_id)
                && fits(&record.scope.run_id, &chat.scope.run_id)
        };
        Ok(self
            .list(&options)?
            .items
            .into_iter()
            .filter(belongs)
            .take(PROCEDURAL_LIMIT)
            .collect())
    }

    /// Keeps the turn as a working memory of the whole scope; its id. The memory is indexed
    /// by the embedding of what the user said (the recall's query vector): working memory
    /// is recalled by recency, and a turn costs no second pass of the embedding model.
    fn keep_turn(
        &self,
        chat: &Chat,
        question: &Message,
        answer: &str,
        query_vector: Option<Vec<f32>>,
    ) -> Result<Option<String>> {
        if chat.session_window == 0 {
            return Ok(None);
        }
        let mut metadata = crate::types::Metadata::new();
        metadata.insert(CHAT_TURN.into(), json!(true));
        let memory = NewMemory::new(format!("user: {}\nassistant: {}", question.content, answer))
            .scope(chat.scope.clone())
            .kind(MemoryKind::Working)
            .metadata(metadata)
            .expires_at(Utc::now() + chat.working_ttl);
        let added = match query_vector {
            Some(vector) => self.add_with_vector(memory, vector)?,
            None => self.add(memory)?,
        };
        Ok(Some(added.id))
    }

    /// Runs the exchange through inference, now or on a thread of its own.
    fn remember_exchange(&self, chat: &Chat, question: &Message, answer: &str) -> Remembered {
        if chat.remember == Remember::Off {
            return Remembered::off();
        }
        let exchange = AddMessages::new(vec![question.clone(), Message::assistant(answer)])
            .scope(chat.scope.clone());
        if chat.remember == Remember::Inline {
            return Remembered::of(&self.add_messages(exchange));
        }
        let handle = self.shared.background.start();
        let memory = self.handle();
        let job = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("agent-mem-remember".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    memory.add_messages(exchange)
                }))
                .unwrap_or_else(|panic| Err(Error::from_panic(panic.as_ref())));
                memory.shared.background.finish(&job, outcome);
            });
        match spawned {
            Ok(_) => Remembered::running(handle),
            Err(e) => {
                self.shared.background.abandon(&handle);
                Remembered::of(&Err(Error::internal(format!(
                    "cannot start the remembering thread: {e}"
                ))))
            }
        }
    }
}

/// The scope long-term memories are recalled from: the chat's without its run (every
/// session), unless the run is all the scope names.
fn long_term_scope(scope: &Scope) -> Scope {
    let without_run = Scope {
        run_id: None,
        ..scope.clone()
    };
    if without_run.is_global() {
        scope.clone()
    } else {
        without_run
    }
}

/// The recall query: the last `query_turns` messages that are not system messages.
fn query_of(chat: &Chat) -> String {
    let said: Vec<&str> = chat
        .messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| m.content.as_str())
        .collect();
    let from = said.len().saturating_sub(chat.query_turns);
    said[from..].join("\n")
}

fn used(record: crate::MemoryRecord, source: Recalled, score: Option<f32>) -> MemoryUsed {
    MemoryUsed {
        number: 0,
        id: record.id,
        content: record.content,
        kind: record.kind,
        source,
        score,
    }
}

/// The model's request: the memory prompt, the caller's system messages after it, the
/// conversation (a tool's output is passed as a user message saying so).
fn model_request(messages: &[Message], mut system: String) -> ChatRequest {
    let mut conversation = Vec::with_capacity(messages.len());
    for m in messages {
        match m.role.as_str() {
            "system" => {
                system.push_str("\n\n");
                system.push_str(&m.content);
            }
            "assistant" => conversation.push(ChatMessage {
                role: Role::Assistant,
                content: m.content.clone(),
            }),
            "tool" => conversation.push(ChatMessage {
                role: Role::User,
                content: format!("(tool output) {}", m.content),
            }),
            _ => conversation.push(ChatMessage {
                role: Role::User,
                content: m.content.clone(),
            }),
        }
    }
    ChatRequest {
        system,
        messages: conversation,
        json: false,
    }
}

/// Background remembering of one store: the jobs running, the outcomes not yet collected.
#[derive(Default)]
pub(crate) struct Background {
    jobs: Mutex<Jobs>,
    changed: Condvar,
}

#[derive(Default)]
struct Jobs {
    running: HashSet<String>,
    finished: HashMap<String, (u64, Result<Vec<MemoryEvent>>)>,
    /// Orders the finished outcomes, so the oldest uncollected go first.
    sequence: u64,
}

impl Background {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self) -> String {
        let handle = uuid::Uuid::new_v4().to_string();
        self.lock().running.insert(handle.clone());
        handle
    }

    /// Forgets a job that never started.
    fn abandon(&self, handle: &str) {
        self.lock().running.remove(handle);
        self.changed.notify_all();
    }

    fn finish(&self, handle: &str, outcome: Result<Vec<MemoryEvent>>) {
        let mut jobs = self.lock();
        jobs.running.remove(handle);
        jobs.sequence += 1;
        let sequence = jobs.sequence;
        jobs.finished
            .insert(handle.to_string(), (sequence, outcome));
        if jobs.finished.len() > MAX_UNCOLLECTED {
            let oldest = jobs
                .finished
                .iter()
                .min_by_key(|(_, (sequence, _))| *sequence)
                .map(|(handle, _)| handle.clone());
            if let Some(oldest) = oldest {
                jobs.finished.remove(&oldest);
            }
        }
        drop(jobs);
        self.changed.notify_all();
    }

    fn take(&self, handle: &str, wait: bool) -> Result<Remembered> {
        let mut jobs = self.lock();
        while wait && jobs.running.contains(handle) {
            jobs = self.changed.wait(jobs).unwrap_or_else(|p| p.into_inner());
        }
        if jobs.running.contains(handle) {
            return Ok(Remembered::running(handle.to_string()));
        }
        match jobs.finished.remove(handle) {
            Some((_, outcome)) => Ok(Remembered::of(&outcome)),
            None => Err(Error::not_found(format!(
                "no background remembering has the handle {handle:?} (or its outcome was \
                 collected already)"
            ))),
        }
    }

    /// Waits until no job runs.
    pub(crate) fn wait_all(&self) {
        let mut jobs = self.lock();
        while !jobs.running.is_empty() {
            jobs = self.changed.wait(jobs).unwrap_or_else(|p| p.into_inner());
        }
    }
}
