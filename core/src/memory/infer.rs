//! Adding a conversation: [`Memory::add_messages`].
//!
//! With a chat model configured and `infer` on, the conversation goes through two calls at
//! most: one extracts facts, one decides per fact ADD / UPDATE / DELETE / NONE against the
//! similar memories already stored (shown to the model under small integer ids, so it cannot
//! name a memory it was not shown). The decisions are then applied in one transaction with
//! history. Guard-rails, each enforced here rather than trusted to the model:
//!
//! - a fact already stored word for word is NONE before the model is asked, and a memory that
//!   states one of the call's facts is never deleted or rewritten;
//! - a fact is never lost: DELETE stores the fact in place of the memory it replaces, and a
//!   fact the model leaves out, or gives an unknown id for, is added;
//! - scope, kind, metadata and expiry come from the call, never from the model's answer;
//! - nothing is written until both calls have answered and parsed, so a failed, timed-out or
//!   unreadable call leaves the store as it was.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{fit_vector, record_embedding_model, Embedded, Memory, Writing, ACTOR_EXPIRY};
use crate::error::{Error, ErrorCode, Result};
use crate::llm::{prompts, repair::parse_model_json, ChatRequest, Llm};
use crate::search::{SearchMode, SearchOptions};
use crate::store::{self, StoreTx};
use crate::types::{
    content_hash, validate_content, validate_metadata, MemoryKind, MemoryRecord, Metadata,
    NewMemory, Scope,
};

/// Stored memories considered per fact when deciding.
const SIMILAR_PER_FACT: usize = 5;
/// More facts than this from one conversation is a model gone wrong.
const MAX_FACTS: usize = 64;
/// Messages accepted in one call.
const MAX_MESSAGES: usize = 1_000;

/// Custom prompts of a [`Memory`] (see the builder).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prompts {
    pub(crate) extraction: Option<String>,
    pub(crate) decisions: Option<String>,
    pub(crate) procedural: Option<String>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `"user"`, `"assistant"`, `"system"` or `"tool"`.
    pub role: String,
    /// What was said.
    pub content: String,
    /// Who said it (kept as `actor_id` in the metadata of raw memories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// A message with this role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            name: None,
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
}

/// What [`Memory::add_messages`] did to one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// One change made by [`Memory::add_messages`], in mem0's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A conversation to remember: see [`Memory::add_messages`].
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

    fn validate(&self) -> Result<()> {
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
        for (i, m) in self.messages.iter().enumerate() {
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
        if let Some(p) = &self.prompt {
            if p.trim().is_empty() {
                return Err(Error::invalid("prompt must not be empty"));
            }
        }
        Ok(())
    }
}

/// One fact's fate, as decided (before it is applied).
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Store the fact.
    Add { fact: usize },
    /// Rewrite a stored memory (an index into the memories shown) as `text`.
    Update { target: usize, text: String },
    /// Delete a stored memory and store the fact in its place.
    Replace { fact: usize, target: usize },
    /// The fact is stored already, in this memory.
    Keep { target: KeepTarget },
}

#[derive(Debug, Clone, PartialEq)]
enum KeepTarget {
    /// A memory shown to the model.
    Shown(usize),
    /// An exact duplicate found before asking.
    Known(Box<MemoryRecord>),
}

impl Memory {
    /// Remembers a conversation.
    ///
    /// With a chat model configured (see [`crate::MemoryBuilder::llm`]) and `infer` on, facts
    /// are extracted, compared with similar stored memories, and ADDed, UPDATEd, DELETEd or
    /// left alone (NONE) in one transaction; history rows name the model as the actor. The
    /// events come back in mem0's shape. See the module docs for the guard-rails.
    ///
    /// `kind == procedural` with an agent id summarises the run into one procedural memory.
    ///
    /// Without a model, or with `infer` off, each non-system message becomes a memory as
    /// given (with its `role`, and `name` as `actor_id`, in the metadata).
    pub fn add_messages(&self, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        request.validate()?;
        let llm = match (&self.llm, request.infer) {
            (Some(llm), true) => llm.clone(),
            _ => return self.add_raw(request),
        };
        if request.kind == Some(MemoryKind::Procedural) {
            return self.add_procedural(llm.as_ref(), request);
        }
        if request.scope.is_global() {
            return Err(Error::invalid(
                "inference needs a scope (user_id, agent_id, run_id or org_id), so that the \
                 model's decisions can only touch that scope's memories",
            ));
        }
        self.add_inferred(llm.as_ref(), request)
    }

    fn add_raw(&self, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        let kind = request.kind.unwrap_or(MemoryKind::Episodic);
        let memories: Vec<NewMemory> = request
            .messages
            .iter()
            .filter(|m| m.role != "system")
            .map(|m| {
                let mut metadata = request.metadata.clone();
                metadata.insert("role".into(), Value::String(m.role.clone()));
                if let Some(name) = &m.name {
                    metadata.insert("actor_id".into(), Value::String(name.clone()));
                }
                NewMemory {
                    content: m.content.clone(),
                    scope: request.scope.clone(),
                    kind,
                    metadata,
                    expires_at: request.expires_at,
                }
            })
            .collect();
        if memories.is_empty() {
            return Ok(Vec::new());
        }
        // Hooks first, so that the events report what was stored (a redacted text, say).
        #[cfg(feature = "plugins")]
        let memories = {
            let mut memories = memories;
            for (i, m) in memories.iter().enumerate() {
                m.validate()
                    .map_err(|e| Error::invalid(format!("message {i}: {}", e.message())))?;
            }
            self.plugins_on_add("add", &mut memories)?;
            memories
        };
        let contents: Vec<String> = memories.iter().map(|m| m.content.clone()).collect();
        let outcomes = self.add_batch_as(memories, super::ACTOR_USER, false)?;
        Ok(outcomes
            .into_iter()
            .zip(contents)
            .map(|(o, memory)| MemoryEvent {
                id: o.id,
                memory,
                event: if o.added {
                    MemoryEventKind::Add
                } else {
                    MemoryEventKind::None
                },
                previous_memory: None,
            })
            .collect())
    }

    fn add_procedural(&self, llm: &dyn Llm, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        if request.scope.agent_id.is_none() {
            return Err(Error::invalid(
                "a procedural memory summarises an agent's run: give an agent_id",
            ));
        }
        self.embedder.get()?;
        let system = request
            .prompt
            .as_deref()
            .or(self.prompts.procedural.as_deref())
            .unwrap_or(prompts::PROCEDURAL_SUMMARY);
        let answer = llm.complete(&ChatRequest::new(
            system,
            format!("Conversation:\n{}", transcript(&request.messages)),
        ))?;
        let summary = answer.trim().to_string();
        validate_content(&summary).map_err(|e| {
            Error::new(
                ErrorCode::Llm,
                format!("procedural summary: the model's answer {}", e.message()),
            )
        })?;
        #[allow(unused_mut)]
        let mut memory = NewMemory {
            content: summary,
            scope: request.scope,
            kind: MemoryKind::Procedural,
            metadata: request.metadata,
            expires_at: request.expires_at,
        };
        #[cfg(feature = "plugins")]
        {
            let mut items = [memory];
            self.plugins_on_add("add", &mut items)?;
            [memory] = items;
        }
        let summary = memory.content.clone();
        let vectors = self.embed_texts(&[summary.as_str()])?;
        let outcome = self.insert(vec![memory], vectors, &actor(llm))?.remove(0);
        Ok(vec![MemoryEvent {
            id: outcome.id,
            memory: summary,
            event: if outcome.added {
                MemoryEventKind::Add
            } else {
                MemoryEventKind::None
            },
            previous_memory: None,
        }])
    }

    fn add_inferred(&self, llm: &dyn Llm, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        // Facts must be embedded: fail before paying for a model call if they cannot be.
        self.embedder.get()?;
        // 1. Facts.
        let today = Utc::now().format("%Y-%m-%d").to_string();
        let system = prompts::fact_extraction(
            request
                .prompt
                .as_deref()
                .or(self.prompts.extraction.as_deref()),
            &today,
        );
        let answer = llm.complete(
            &ChatRequest::new(
                system,
                format!("Conversation:\n{}", transcript(&request.messages)),
            )
            .json(),
        )?;
        let facts = read_facts(parse_model_json(&answer, "fact extraction")?)?;
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        // Plugins see each fact as a memory about to be added: they may rewrite it, tag it
        // (per-fact metadata) or reject it, before anything is searched or decided.
        #[cfg(feature = "plugins")]
        let (facts, fact_metadata): (Vec<String>, Vec<Metadata>) = {
            let mut items: Vec<NewMemory> = facts
                .into_iter()
                .map(|content| NewMemory {
                    content,
                    scope: request.scope.clone(),
                    kind: request.kind.unwrap_or(MemoryKind::Semantic),
                    metadata: request.metadata.clone(),
                    expires_at: request.expires_at,
                })
                .collect();
            self.plugins_on_add("add", &mut items)?;
            items.into_iter().map(|m| (m.content, m.metadata)).unzip()
        };
        #[cfg(not(feature = "plugins"))]
        let fact_metadata = vec![request.metadata.clone(); facts.len()];
        let fact_refs: Vec<&str> = facts.iter().map(String::as_str).collect();
        let fact_vectors = self.embed_texts(&fact_refs)?;

        // 2. What is stored already: exact duplicates, then similar memories per fact.
        let hashes: Vec<String> = facts.iter().map(|f| content_hash(f)).collect();
        let now = Utc::now();
        let known: Vec<Option<MemoryRecord>> = self
            .store
            .find_duplicates(&request.scope, &hashes)?
            .into_iter()
            .map(|r| r.filter(|r| !r.is_expired_at(now)))
            .collect();
        let pending: Vec<usize> = (0..facts.len()).filter(|&i| known[i].is_none()).collect();
        let mut shown: Vec<MemoryRecord> = Vec::new();
        let mut shown_at: HashMap<String, usize> = HashMap::new();
        let mut nearest: HashMap<usize, usize> = HashMap::new();
        // Hybrid with the store's weights, in the call's scope only, live memories only.
        let options = SearchOptions {
            mode: SearchMode::Hybrid,
            limit: SIMILAR_PER_FACT,
            threshold: None,
            scope: request.scope.clone(),
            include_global: false,
            filter: None,
            include_expired: false,
            ..self.search_options()
        };
        for &i in &pending {
            let hits = self.search_inner(&facts[i], Some(&fact_vectors[i].vector), &options)?;
            for hit in hits {
                let next = shown.len();
                let at = *shown_at.entry(hit.memory.id.clone()).or_insert(next);
                if at == next {
                    shown.push(hit.memory);
                }
                nearest.entry(i).or_insert(at);
            }
        }

        // 3. Decisions (one call, only when something similar is stored).
        let mut steps: Vec<Step> = Vec::with_capacity(facts.len());
        let decided = if pending.is_empty() || shown.is_empty() {
            HashMap::new()
        } else {
            let system = self
                .prompts
                .decisions
                .as_deref()
                .unwrap_or(prompts::MEMORY_DECISIONS);
            let question = json!({
                "stored_memories": shown
                    .iter()
                    .enumerate()
                    .map(|(i, m)| json!({"id": i.to_string(), "text": m.content}))
                    .collect::<Vec<_>>(),
                "new_facts": pending
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| json!({"fact": n, "text": facts[i]}))
                    .collect::<Vec<_>>(),
            });
            let answer = llm.complete(&ChatRequest::new(system, question.to_string()).json())?;
            read_decisions(
                parse_model_json(&answer, "memory decisions")?,
                pending.len(),
                shown.len(),
            )?
            .into_iter()
            .map(|(n, d)| (pending[n], d))
            .collect()
        };
        let protected: HashSet<usize> = shown
            .iter()
            .enumerate()
            .filter(|(_, m)| hashes.contains(&m.hash))
            .map(|(i, _)| i)
            .collect();
        let mut claimed: HashSet<usize> = HashSet::new();
        for (i, fact) in facts.iter().enumerate() {
            if let Some(record) = &known[i] {
                steps.push(Step::Keep {
                    target: KeepTarget::Known(Box::new(record.clone())),
                });
                continue;
            }
            steps.push(resolve(
                i,
                fact,
                decided.get(&i),
                &shown,
                &protected,
                &mut claimed,
                nearest.get(&i).copied(),
            ));
        }

        // 4. Vectors for rewritten texts, then one transaction.
        // A rewrite that is word for word one of the facts reuses the fact's vector.
        let mut rewrite_vectors: HashMap<String, Embedded> = HashMap::new();
        let mut rewrites: Vec<&str> = Vec::new();
        for step in &steps {
            if let Step::Update { text, .. } = step {
                match facts.iter().position(|f| f == text) {
                    Some(i) => {
                        rewrite_vectors.insert(text.clone(), fact_vectors[i].clone());
                    }
                    None => rewrites.push(text),
                }
            }
        }
        if !rewrites.is_empty() {
            let vectors = self.embed_texts(&rewrites)?;
            rewrite_vectors.extend(rewrites.iter().map(|t| t.to_string()).zip(vectors));
        }
        let plan = Plan {
            facts: &facts,
            fact_metadata: &fact_metadata,
            fact_vectors: &fact_vectors,
            rewrite_vectors: &rewrite_vectors,
            shown: &shown,
            request: &request,
            actor: actor(llm),
        };
        store::write(&*self.store, |tx| self.apply_plan(tx, &plan, &steps))
    }

    fn apply_plan(
        &self,
        tx: &mut dyn StoreTx,
        plan: &Plan<'_>,
        steps: &[Step],
    ) -> Result<Vec<MemoryEvent>> {
        // Taken after the write lock: commit times follow commit order.
        let now = tx.now()?;
        let dims =
            self.check_store_dimensions(tx, plan.fact_vectors.first().map(|e| e.vector.len()))?;
        let w = &mut Writing { tx, dims, now };
        let mut events = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Add { fact } => {
                    events.push(self.add_fact(w, plan, *fact)?);
                }
                Step::Keep { target } => {
                    let record = match target {
                        KeepTarget::Known(r) => r,
                        KeepTarget::Shown(i) => &plan.shown[*i],
                    };
                    events.push(MemoryEvent {
                        id: record.id.clone(),
                        memory: record.content.clone(),
                        event: MemoryEventKind::None,
                        previous_memory: None,
                    });
                }
                Step::Replace { fact, target } => {
                    // The memory may have gone since it was shown; the fact is stored anyway.
                    if let Some((key, old)) = w.tx.get(&plan.shown[*target].id)? {
                        w.tx.delete(key, &old, &plan.actor, w.now)?;
                        events.push(MemoryEvent {
                            id: old.id,
                            memory: old.content,
                            event: MemoryEventKind::Delete,
                            previous_memory: None,
                        });
                    }
                    events.push(self.add_fact(w, plan, *fact)?);
                }
                Step::Update { target, text } => {
                    let vector = &plan.rewrite_vectors[text];
                    let Some((key, old)) = w.tx.get(&plan.shown[*target].id)? else {
                        // Gone since it was shown: the new wording is added instead.
                        events.push(self.add_text(
                            w,
                            plan,
                            text,
                            &plan.request.metadata,
                            vector,
                        )?);
                        continue;
                    };
                    let hash = content_hash(text);
                    if hash == old.hash {
                        events.push(MemoryEvent {
                            id: old.id,
                            memory: old.content,
                            event: MemoryEventKind::None,
                            previous_memory: None,
                        });
                        continue;
                    }
                    if let Some((twin_key, twin)) = w.tx.find_duplicate(&old.scope, &hash)? {
                        if !twin.is_expired_at(w.now) {
                            // The new wording is stored already: the old memory is superseded.
                            w.tx.delete(key, &old, &plan.actor, w.now)?;
                            events.push(MemoryEvent {
                                id: old.id,
                                memory: old.content,
                                event: MemoryEventKind::Delete,
                                previous_memory: None,
                            });
                            continue;
                        }
                        w.tx.delete(twin_key, &twin, ACTOR_EXPIRY, w.now)?;
                    }
                    fit_vector(w.tx, vector, w.dims)?;
                    let mut new = old.clone();
                    new.content = text.clone();
                    new.hash = hash;
                    new.updated_at = w.now;
                    w.tx.update(key, &old, &new, Some(&vector.vector), &plan.actor)?;
                    events.push(MemoryEvent {
                        id: new.id,
                        memory: new.content,
                        event: MemoryEventKind::Update,
                        previous_memory: Some(old.content),
                    });
                }
            }
        }
        record_embedding_model(
            w.tx,
            plan.fact_vectors
                .iter()
                .chain(plan.rewrite_vectors.values()),
        )?;
        Ok(events)
    }

    fn add_fact(&self, w: &mut Writing<'_>, plan: &Plan<'_>, fact: usize) -> Result<MemoryEvent> {
        self.add_text(
            w,
            plan,
            &plan.facts[fact],
            &plan.fact_metadata[fact],
            &plan.fact_vectors[fact],
        )
    }

    fn add_text(
        &self,
        w: &mut Writing<'_>,
        plan: &Plan<'_>,
        text: &str,
        metadata: &Metadata,
        vector: &Embedded,
    ) -> Result<MemoryEvent> {
        let memory = NewMemory {
            content: text.to_string(),
            scope: plan.request.scope.clone(),
            kind: plan.request.kind.unwrap_or(MemoryKind::Semantic),
            metadata: metadata.clone(),
            expires_at: plan.request.expires_at,
        };
        let outcome = self.insert_one(w, memory, vector, &plan.actor)?;
        Ok(MemoryEvent {
            id: outcome.id,
            memory: text.to_string(),
            event: if outcome.added {
                MemoryEventKind::Add
            } else {
                MemoryEventKind::None
            },
            previous_memory: None,
        })
    }
}

/// What a transaction needs to apply the steps.
struct Plan<'a> {
    facts: &'a [String],
    /// Each fact's metadata: the call's, as `on_add` plugins left it.
    fact_metadata: &'a [Metadata],
    fact_vectors: &'a [Embedded],
    rewrite_vectors: &'a HashMap<String, Embedded>,
    shown: &'a [MemoryRecord],
    request: &'a AddMessages,
    actor: String,
}

/// The history actor of changes the model decided.
fn actor(llm: &dyn Llm) -> String {
    format!("llm:{}", llm.label())
}

/// The conversation as the model reads it: one `role: content` line per message.
fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| format!("{}: {}", m.role, m.content))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The facts in an extraction answer: `{"facts": [...]}` (a bare list is accepted too).
/// Items that are not text are skipped; text is trimmed and exact repeats dropped.
fn read_facts(answer: Value) -> Result<Vec<String>> {
    let list = match answer {
        Value::Object(mut o) => o.remove("facts").ok_or_else(|| {
            Error::new(
                ErrorCode::Llm,
                "fact extraction: the model's answer has no \"facts\" list",
            )
        })?,
        list @ Value::Array(_) => list,
        _ => Value::Null,
    };
    let Value::Array(items) = list else {
        return Err(Error::new(
            ErrorCode::Llm,
            "fact extraction: \"facts\" in the model's answer is not a list",
        ));
    };
    let mut facts: Vec<String> = Vec::new();
    for item in items {
        let text = match item {
            Value::String(s) => s,
            Value::Object(mut o) => match o.remove("fact").or_else(|| o.remove("text")) {
                Some(Value::String(s)) => s,
                _ => continue,
            },
            _ => continue,
        };
        let text = text.trim().to_string();
        if text.is_empty() || facts.contains(&text) {
            continue;
        }
        validate_content(&text).map_err(|e| {
            Error::new(
                ErrorCode::Llm,
                format!(
                    "fact extraction: a fact in the model's answer {}",
                    e.message()
                ),
            )
        })?;
        facts.push(text);
    }
    if facts.len() > MAX_FACTS {
        return Err(Error::new(
            ErrorCode::Llm,
            format!(
                "fact extraction: the model returned {} facts (at most {MAX_FACTS} per call)",
                facts.len()
            ),
        ));
    }
    Ok(facts)
}

/// One decision as the model gave it, with its id checked.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    event: MemoryEventKind,
    /// An index into the memories shown; `None` when missing or invented.
    target: Option<usize>,
    text: Option<String>,
}

/// The decisions in an answer, keyed by fact number. Entries that name no known fact or no
/// known event are skipped; the first decision of a fact wins; any other key is ignored.
fn read_decisions(answer: Value, facts: usize, shown: usize) -> Result<HashMap<usize, Decision>> {
    let list = match answer {
        Value::Object(mut o) => o.remove("decisions").unwrap_or(Value::Null),
        list @ Value::Array(_) => list,
        _ => Value::Null,
    };
    let Value::Array(items) = list else {
        return Err(Error::new(
            ErrorCode::Llm,
            "memory decisions: the model's answer has no \"decisions\" list",
        ));
    };
    let index = |v: Option<&Value>| -> Option<usize> {
        match v? {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let mut out = HashMap::new();
    for item in items {
        let Value::Object(o) = item else { continue };
        let Some(fact) = index(o.get("fact")).filter(|&f| f < facts) else {
            continue;
        };
        let event = match o.get("event").and_then(Value::as_str).map(str::trim) {
            Some(e) if e.eq_ignore_ascii_case("add") => MemoryEventKind::Add,
            Some(e) if e.eq_ignore_ascii_case("update") => MemoryEventKind::Update,
            Some(e) if e.eq_ignore_ascii_case("delete") => MemoryEventKind::Delete,
            Some(e) if e.eq_ignore_ascii_case("none") || e.eq_ignore_ascii_case("noop") => {
                MemoryEventKind::None
            }
            _ => continue,
        };
        let target = index(o.get("id")).filter(|&t| t < shown);
        let text = o
            .get("text")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        out.entry(fact).or_insert(Decision {
            event,
            target,
            text,
        });
    }
    Ok(out)
}

/// Turns one fact's decision into a step, applying the guard-rails: a fact stored word for
/// word is kept as it is, a protected memory (one that states a fact of this call) is never
/// rewritten or deleted, a memory is changed by one fact at most, and an unusable decision
/// falls back to storing the fact.
fn resolve(
    fact: usize,
    text: &str,
    decision: Option<&Decision>,
    shown: &[MemoryRecord],
    protected: &HashSet<usize>,
    claimed: &mut HashSet<usize>,
    nearest: Option<usize>,
) -> Step {
    // Stored word for word (in a wider part of the scope): nothing to do, whatever the model
    // said. This is what keeps a repeated fact from ever being deleted.
    let hash = content_hash(text);
    if let Some(t) = shown.iter().position(|m| m.hash == hash) {
        return Step::Keep {
            target: KeepTarget::Shown(t),
        };
    }
    let Some(d) = decision else {
        return Step::Add { fact };
    };
    let free =
        |t: usize, claimed: &HashSet<usize>| !protected.contains(&t) && !claimed.contains(&t);
    match (d.event, d.target) {
        (MemoryEventKind::Add, _) => Step::Add { fact },
        (MemoryEventKind::None, Some(t)) => Step::Keep {
            target: KeepTarget::Shown(t),
        },
        // "Already stored" without a usable id: the most similar memory is the one meant.
        (MemoryEventKind::None, None) => match nearest {
            Some(t) => Step::Keep {
                target: KeepTarget::Shown(t),
            },
            None => Step::Add { fact },
        },
        (MemoryEventKind::Update, Some(t)) if free(t, claimed) => {
            claimed.insert(t);
            let new_text = d.text.clone().unwrap_or_else(|| text.to_string());
            if validate_content(&new_text).is_err() {
                return Step::Add { fact };
            }
            if content_hash(&new_text) == shown[t].hash {
                return Step::Keep {
                    target: KeepTarget::Shown(t),
                };
            }
            Step::Update {
                target: t,
                text: new_text,
            }
        }
        (MemoryEventKind::Delete, Some(t)) if free(t, claimed) => {
            claimed.insert(t);
            Step::Replace { fact, target: t }
        }
        // An invented id, or a memory already taken or protected: keep the fact.
        _ => Step::Add { fact },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content: &str) -> MemoryRecord {
        let now = Utc::now();
        MemoryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            content: content.into(),
            hash: content_hash(content),
            kind: MemoryKind::Semantic,
            scope: Scope::user("u"),
            metadata: Metadata::new(),
            created_at: now,
            updated_at: now,
            expires_at: None,
        }
    }

    #[test]
    fn decisions_are_read_leniently_but_only_for_known_facts_and_ids() {
        let answer = json!({"decisions": [
            {"fact": 0, "event": "update", "id": "1", "text": " Lives in Berlin "},
            {"fact": "1", "event": "DELETE", "id": 7},
            {"fact": 0, "event": "NONE", "id": "0"},
            {"fact": 9, "event": "ADD"},
            {"fact": 2, "event": "MERGE"},
            {"fact": 2, "event": "NOOP", "id": 0, "user_id": "mallory"},
            "junk",
        ]});
        let d = read_decisions(answer, 3, 2).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[&0],
            Decision {
                event: MemoryEventKind::Update,
                target: Some(1),
                text: Some("Lives in Berlin".into())
            }
        );
        assert_eq!(d[&1].target, None, "id 7 was never shown");
        assert_eq!(d[&2].event, MemoryEventKind::None);
        assert!(read_decisions(json!({"memory": []}), 1, 1).is_err());
    }

    #[test]
    fn facts_are_trimmed_deduplicated_and_non_text_skipped() {
        let facts =
            read_facts(json!({"facts": [" Likes tea ", "Likes tea", "", 3, {"fact": "Is 30"}]}))
                .unwrap();
        assert_eq!(facts, ["Likes tea", "Is 30"]);
        assert_eq!(read_facts(json!(["A"])).unwrap(), ["A"]);
        assert_eq!(
            read_facts(json!({"facts": "A"})).unwrap_err().code(),
            ErrorCode::Llm
        );
        assert_eq!(read_facts(json!({})).unwrap_err().code(), ErrorCode::Llm);
        let many: Vec<String> = (0..100).map(|i| format!("fact {i}")).collect();
        assert!(read_facts(json!({ "facts": many })).is_err());
    }

    #[test]
    fn a_fact_is_never_lost_and_protected_memories_are_never_touched() {
        let shown = vec![record("Lives in Paris"), record("Likes pizza")];
        let protected: HashSet<usize> = [1].into();
        let mut claimed = HashSet::new();
        let delete = |t| Decision {
            event: MemoryEventKind::Delete,
            target: Some(t),
            text: None,
        };
        // DELETE of the old city stores the new one in its place.
        assert_eq!(
            resolve(
                0,
                "Lives in Berlin",
                Some(&delete(0)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Replace { fact: 0, target: 0 }
        );
        // The same memory cannot be changed twice: the second fact is added.
        assert_eq!(
            resolve(
                1,
                "Lives in Rome",
                Some(&delete(0)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 1 }
        );
        // A memory stating one of the call's facts is never deleted.
        assert_eq!(
            resolve(
                2,
                "Hates pizza",
                Some(&delete(1)),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 2 }
        );
        // No decision at all: added.
        assert_eq!(
            resolve(3, "Has a cat", None, &shown, &protected, &mut claimed, None),
            Step::Add { fact: 3 }
        );
        // Deleting a memory that says exactly the fact is a NONE.
        let mut claimed = HashSet::new();
        assert_eq!(
            resolve(
                0,
                "Lives in Paris",
                Some(&delete(0)),
                &shown,
                &HashSet::new(),
                &mut claimed,
                None
            ),
            Step::Keep {
                target: KeepTarget::Shown(0)
            }
        );
        // NONE with an invented id points at the nearest memory, or adds without one.
        let none = Decision {
            event: MemoryEventKind::None,
            target: None,
            text: None,
        };
        assert_eq!(
            resolve(
                0,
                "Loves pizza",
                Some(&none),
                &shown,
                &protected,
                &mut claimed,
                Some(1)
            ),
            Step::Keep {
                target: KeepTarget::Shown(1)
            }
        );
        assert_eq!(
            resolve(
                0,
                "Loves pizza",
                Some(&none),
                &shown,
                &protected,
                &mut claimed,
                None
            ),
            Step::Add { fact: 0 }
        );
    }
}
