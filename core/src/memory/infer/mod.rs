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

use chrono::Utc;
use serde_json::{json, Value};

use super::embedding::Embedded;
use super::graph::{CheckedRelation, MemoryGraph};
use super::{Memory, ACTOR_USER};
use crate::error::{Error, ErrorCode, Result};
use crate::graph::{fold_name, EntityRef, NewRelation};
use crate::llm::{prompts, repair::parse_model_json, ChatRequest, Llm};
use crate::search::{SearchMode, SearchOptions};
use crate::store;
use crate::types::{
    content_hash, format_time, validate_content, MemoryKind, MemoryRecord, Metadata, NewMemory,
    Scope,
};

mod apply;
mod decide;
mod request;

use apply::Plan;
use decide::{actor, read_decisions, read_facts, resolve, transcript, Fact, KeepTarget, Step};
pub(crate) use request::validate_messages;
pub use request::{AddMessages, MemoryEvent, MemoryEventKind, Message};

/// Stored memories considered per fact when deciding.
const SIMILAR_PER_FACT: usize = 5;

/// The metadata key of when a conversation took place ([`AddMessages::observed_at`]).
pub(crate) const OBSERVED_AT: &str = "observed_at";

/// Custom prompts of a [`Memory`] (see the builder).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prompts {
    pub(crate) extraction: Option<String>,
    pub(crate) decisions: Option<String>,
    pub(crate) procedural: Option<String>,
    pub(crate) chat: Option<String>,
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
    pub fn add_messages(&self, mut request: AddMessages) -> Result<Vec<MemoryEvent>> {
        request.validate()?;
        if request.observed_at.is_none() {
            request.observed_at = request.messages.iter().filter_map(|m| m.observed_at).max();
        }
        if let Some(at) = request.observed_at {
            request
                .metadata
                .insert(OBSERVED_AT.into(), Value::String(format_time(at)));
        }
        let llm = match (&self.shared.llm, request.infer) {
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
        // The messages stored, each reported with its role and name.
        let stored: Vec<&Message> = request
            .messages
            .iter()
            .filter(|m| m.role != "system")
            .collect();
        let memories: Vec<NewMemory> = stored
            .iter()
            .map(|m| {
                let mut metadata = request.metadata.clone();
                metadata.insert("role".into(), Value::String(m.role.clone()));
                if let Some(name) = &m.name {
                    metadata.insert("actor_id".into(), Value::String(name.clone()));
                }
                if let Some(at) = m.observed_at {
                    metadata.insert(OBSERVED_AT.into(), Value::String(format_time(at)));
                }
                NewMemory {
                    content: m.content.clone(),
                    scope: request.scope.clone(),
                    kind,
                    metadata,
                    expires_at: request.expires_at,
                    ..NewMemory::default()
                }
            })
            .collect();
        if memories.is_empty() {
            return Ok(Vec::new());
        }
        // Hooks first, so that the events report what was stored (a redacted text, say).
        let mut memories = memories;
        for (i, m) in memories.iter().enumerate() {
            m.validate()
                .map_err(|e| Error::invalid(format!("message {i}: {}", e.message())))?;
        }
        self.hook_on_add("add", &mut memories)?;
        let contents: Vec<String> = memories.iter().map(|m| m.content.clone()).collect();
        let outcomes = self.add_batch_as(memories, ACTOR_USER, false)?;
        Ok(outcomes
            .into_iter()
            .zip(contents)
            .zip(stored)
            .map(|((o, memory), message)| MemoryEvent {
                role: Some(message.role.clone()),
                actor_id: message.name.clone(),
                ..MemoryEvent::stored(o, memory)
            })
            .collect())
    }

    fn add_procedural(&self, llm: &dyn Llm, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        if request.scope.agent_id.is_none() {
            return Err(Error::invalid(
                "a procedural memory summarises an agent's run: give an agent_id",
            ));
        }
        self.shared.embedder.get()?;
        let system = request
            .prompt
            .as_deref()
            .or(self.shared.prompts.procedural.as_deref())
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
        let mut memory = [NewMemory {
            content: summary,
            scope: request.scope,
            kind: MemoryKind::Procedural,
            metadata: request.metadata,
            expires_at: request.expires_at,
            ..NewMemory::default()
        }];
        self.hook_on_add("add", &mut memory)?;
        let [memory] = memory;
        let summary = memory.content.clone();
        let vectors = self.embed_texts(&[summary.as_str()])?;
        let outcome = self.insert(vec![memory], vectors, &actor(llm))?.remove(0);
        Ok(vec![MemoryEvent::stored(outcome, summary)])
    }

    fn add_inferred(&self, llm: &dyn Llm, request: AddMessages) -> Result<Vec<MemoryEvent>> {
        // Facts must be embedded: fail before paying for a model call if they cannot be.
        self.shared.embedder.get()?;
        // 1. Facts.
        let today = request
            .observed_at
            .unwrap_or_else(Utc::now)
            .format("%Y-%m-%d")
            .to_string();
        let system = prompts::fact_extraction(
            request
                .prompt
                .as_deref()
                .or(self.shared.prompts.extraction.as_deref()),
            &today,
        );
        let system = if self.shared.extract_graph {
            system + prompts::GRAPH_RELATIONS
        } else {
            system
        };
        let answer = llm.complete(
            &ChatRequest::new(
                system,
                format!("Conversation:\n{}", transcript(&request.messages)),
            )
            .json(),
        )?;
        let extracted: Vec<Fact> = read_facts(parse_model_json(&answer, "fact extraction")?)?;
        if extracted.is_empty() {
            return Ok(Vec::new());
        }
        // Each fact's relations, in the call's scope, "user" being the scope's user; one the
        // model got wrong (a bad name or predicate) is left out, never stored.
        let mut fact_relations: Vec<Vec<CheckedRelation>> = extracted
            .iter()
            .map(|fact| {
                if !self.shared.extract_graph {
                    return Vec::new();
                }
                fact.relations
                    .iter()
                    .filter_map(|r| CheckedRelation::of(in_scope(r, &request.scope)).ok())
                    .collect()
            })
            .collect();
        // Plugins see each fact as a memory about to be added: they may rewrite it, tag it
        // (per-fact metadata) or reject it, before anything is searched or decided.
        let fact_times: Vec<_> = extracted
            .iter()
            .map(|f| (f.valid_from, f.valid_to))
            .collect();
        let (facts, fact_metadata, fact_graphs): (Vec<String>, Vec<Metadata>, Vec<MemoryGraph>) = {
            let mut items: Vec<NewMemory> = extracted
                .into_iter()
                .map(|fact| NewMemory {
                    content: fact.text,
                    scope: request.scope.clone(),
                    kind: request.kind.unwrap_or(MemoryKind::Semantic),
                    metadata: request.metadata.clone(),
                    expires_at: request.expires_at,
                    ..NewMemory::default()
                })
                .collect();
            self.hook_on_add("add", &mut items)?;
            // The entities and relations a plugin stated for a fact, stored as an add's
            // are, with the memory the fact lives in as the relations' source.
            let mut graphs = items
                .iter()
                .map(MemoryGraph::of)
                .collect::<Result<Vec<_>>>()?;
            for graph in &mut graphs {
                self.give_graph_meanings(graph)?;
            }
            let (facts, metadata) = items.into_iter().map(|m| (m.content, m.metadata)).unzip();
            (facts, metadata, graphs)
        };
        let fact_refs: Vec<&str> = facts.iter().map(String::as_str).collect();
        let fact_vectors = self.embed_texts(&fact_refs)?;
        for relations in &mut fact_relations {
            self.give_meanings(relations)?;
        }

        // 2. What is stored already: exact duplicates, then similar memories per fact.
        let hashes: Vec<String> = facts.iter().map(|f| content_hash(f)).collect();
        let now = Utc::now();
        let known: Vec<Option<MemoryRecord>> = self
            .shared
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
            as_of: None,
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
                .shared
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
            fact_relations: &fact_relations,
            fact_graphs: &fact_graphs,
            fact_metadata: &fact_metadata,
            fact_times: &fact_times,
            fact_vectors: &fact_vectors,
            rewrite_vectors: &rewrite_vectors,
            shown: &shown,
            request: &request,
            actor: actor(llm),
        };
        store::write(&*self.shared.store, |tx| self.apply_plan(tx, &plan, &steps))
    }
}

/// A relation the model stated, in `scope`: "user" (or "I", "me") names the scope's user
/// (else its agent, run or organisation), a person.
fn in_scope(relation: &NewRelation, scope: &Scope) -> NewRelation {
    let who = scope
        .user_id
        .as_ref()
        .or(scope.agent_id.as_ref())
        .or(scope.run_id.as_ref())
        .or(scope.org_id.as_ref())
        .cloned()
        .unwrap_or_else(|| "user".to_string());
    let resolve = |end: &EntityRef| match end {
        EntityRef::Name { name, .. }
            if matches!(fold_name(name).as_str(), "user" | "the user" | "i" | "me") =>
        {
            EntityRef::typed(who.clone(), "person")
        }
        other => other.clone(),
    };
    NewRelation {
        subject: resolve(&relation.subject),
        object: relation.object.as_ref().map(resolve),
        scope: scope.clone(),
        ..relation.clone()
    }
}
