//! Applying the decided steps in one write transaction: each step a change of its own (a
//! replacement's two memories share one), with its id in the events; with
//! [`AddMessages::supersede`], a replaced memory is closed and linked to the one that
//! replaces it instead of rewritten or deleted.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::decide::{KeepTarget, Step};
use super::request::{AddMessages, MemoryEvent, MemoryEventKind};
use crate::error::{ErrorCode, Result};
use crate::memory::add::{live_twin, Writing};
use crate::memory::changes::close_superseded;
use crate::memory::embedding::{fit_vector, record_embedding_model, Embedded};
use crate::memory::graph::{add_relation_in, CheckedRelation, MemoryGraph};
use crate::memory::Memory;
use crate::store::StoreTx;
use crate::types::{content_hash, MemoryKind, MemoryRecord, Metadata, NewMemory};

/// A valid time (start, end) as the model stated it.
pub(super) type ValidTime = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// What a transaction needs to apply the steps.
pub(super) struct Plan<'a> {
    pub(super) facts: &'a [String],
    /// Each fact's relations (empty unless the graph is filled by inference).
    pub(super) fact_relations: &'a [Vec<CheckedRelation>],
    /// Each fact's entities and relations as the `on_add` plugins stated them.
    pub(super) fact_graphs: &'a [MemoryGraph],
    /// Each fact's metadata: the call's, as `on_add` plugins left it.
    pub(super) fact_metadata: &'a [Metadata],
    /// Each fact's valid time, as the model stated it.
    pub(super) fact_times: &'a [ValidTime],
    pub(super) fact_vectors: &'a [Embedded],
    pub(super) rewrite_vectors: &'a HashMap<String, Embedded>,
    pub(super) shown: &'a [MemoryRecord],
    pub(super) request: &'a AddMessages,
    pub(super) actor: String,
}

impl Memory {
    /// Stores the relations fact `fact` states, sourced from the memory the fact now lives
    /// in (the one added, rewritten or kept for it). A relation of the model's the store
    /// refuses (an entity of that name already names another entity's alias, say) is left
    /// out; the entities and relations an `on_add` plugin stated are stored as an add's
    /// are (a refused one fails the call).
    fn add_fact_relations(
        &self,
        tx: &mut dyn StoreTx,
        plan: &Plan<'_>,
        fact: usize,
        events: &[MemoryEvent],
    ) -> Result<()> {
        let Some(relations) = plan.fact_relations.get(fact) else {
            return Ok(());
        };
        let home = [
            MemoryEventKind::Add,
            MemoryEventKind::Update,
            MemoryEventKind::None,
        ]
        .iter()
        .find_map(|kind| events.iter().find(|e| e.event == *kind));
        let Some(home) = home else { return Ok(()) };
        if let Some(stated) = plan.fact_graphs.get(fact) {
            stated.add_in(tx, &home.id, &self.shared.functional)?;
        }
        for relation in relations {
            let functional = self.shared.functional.contains(&relation.predicate);
            match add_relation_in(tx, &relation.sourced(vec![home.id.clone()]), functional) {
                Err(e) if e.code() == ErrorCode::InvalidInput => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn apply_plan(
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
        for (fact, step) in steps.iter().enumerate() {
            let change = uuid::Uuid::new_v4().to_string();
            w.tx.set_change(Some(change.clone()));
            let start = events.len();
            match step {
                Step::Add { fact } => events.push(self.add_fact(w, plan, *fact)?),
                Step::Keep { target } => {
                    let record = match target {
                        KeepTarget::Known(r) => r,
                        KeepTarget::Shown(i) => &plan.shown[*i],
                    };
                    events.push(MemoryEvent::of(
                        MemoryEventKind::None,
                        record.id.clone(),
                        record.content.clone(),
                    ));
                }
                Step::Replace { fact, target } => {
                    self.replace(w, plan, *fact, *target, &mut events)?;
                }
                Step::Update { fact, target, text } => {
                    self.rewrite(w, plan, *fact, *target, text, &mut events)?;
                }
            }
            for event in &mut events[start..] {
                if event.event != MemoryEventKind::None {
                    event.change_id = Some(change.clone());
                }
            }
            self.add_fact_relations(w.tx, plan, fact, &events[start..])?;
        }
        w.tx.set_change(None);
        record_embedding_model(
            w.tx,
            plan.fact_vectors
                .iter()
                .chain(plan.rewrite_vectors.values()),
        )?;
        Ok(events)
    }

    /// DELETE decided for a contradicted memory: the fact is stored, and the memory is
    /// closed as superseded by it (or, without `supersede`, deleted).
    fn replace(
        &self,
        w: &mut Writing<'_>,
        plan: &Plan<'_>,
        fact: usize,
        target: usize,
        events: &mut Vec<MemoryEvent>,
    ) -> Result<()> {
        // The memory may have gone since it was shown; the fact is stored anyway.
        let old = w.tx.get(&plan.shown[target].id)?;
        let mut added = self.add_fact(w, plan, fact)?;
        if let Some((key, old)) = old {
            let gone = retire(w, plan, fact, key, &old, &added.id)?;
            if gone.superseded_by.is_some() {
                added.supersedes = Some(old.id);
            }
            events.push(gone);
        }
        events.push(added);
        Ok(())
    }

    /// UPDATE decided: the memory's new wording `text` becomes a new memory that supersedes
    /// it (or, without `supersede`, its new version).
    fn rewrite(
        &self,
        w: &mut Writing<'_>,
        plan: &Plan<'_>,
        fact: usize,
        target: usize,
        text: &str,
        events: &mut Vec<MemoryEvent>,
    ) -> Result<()> {
        let vector = &plan.rewrite_vectors[text];
        let Some((key, old)) = w.tx.get(&plan.shown[target].id)? else {
            // Gone since it was shown: the new wording is added instead.
            let metadata = &plan.fact_metadata[fact];
            events.push(self.add_text(w, plan, text, metadata, plan.fact_times[fact], vector)?);
            return Ok(());
        };
        let hash = content_hash(text);
        if hash == old.hash {
            events.push(MemoryEvent::of(MemoryEventKind::None, old.id, old.content));
            return Ok(());
        }
        if let Some(twin) = live_twin(w.tx, &old.scope, &hash, w.now)? {
            // The new wording is stored already: the old memory is replaced by it.
            events.push(retire(w, plan, fact, key, &old, &twin.id)?);
            return Ok(());
        }
        let (valid_from, valid_to) = plan.fact_times[fact];
        if plan.request.supersede {
            let mut metadata = old.metadata.clone();
            if let Some(at) = plan.request.metadata.get(super::OBSERVED_AT) {
                metadata.insert(super::OBSERVED_AT.into(), at.clone());
            }
            let memory = NewMemory {
                content: text.to_string(),
                scope: old.scope.clone(),
                kind: old.kind,
                metadata,
                expires_at: old.expires_at,
                valid_from: Some(valid_from.unwrap_or(w.now)),
                valid_to,
                ..NewMemory::default()
            };
            let outcome = self.insert_one(w, memory, vector, &plan.actor)?;
            let starts = valid_from.unwrap_or(w.now);
            close_superseded(w, key, &old, &outcome.id, starts, &plan.actor)?;
            let mut event = MemoryEvent::of(MemoryEventKind::Update, outcome.id, text.to_string());
            event.previous_memory = Some(old.content);
            event.supersedes = Some(old.id);
            events.push(event);
            return Ok(());
        }
        fit_vector(w.tx, vector, w.dims)?;
        let mut new = old.next_version(w.now);
        new.content = text.to_string();
        new.hash = hash;
        new.valid_from = valid_from.or(new.valid_from);
        new.valid_to = valid_to.or(new.valid_to);
        w.tx.update(key, &old, &new, Some(&vector.vector), &plan.actor)?;
        let mut event = MemoryEvent::of(MemoryEventKind::Update, new.id, new.content);
        event.previous_memory = Some(old.content);
        events.push(event);
        Ok(())
    }

    fn add_fact(&self, w: &mut Writing<'_>, plan: &Plan<'_>, fact: usize) -> Result<MemoryEvent> {
        self.add_text(
            w,
            plan,
            &plan.facts[fact],
            &plan.fact_metadata[fact],
            plan.fact_times[fact],
            &plan.fact_vectors[fact],
        )
    }

    fn add_text(
        &self,
        w: &mut Writing<'_>,
        plan: &Plan<'_>,
        text: &str,
        metadata: &Metadata,
        (valid_from, valid_to): ValidTime,
        vector: &Embedded,
    ) -> Result<MemoryEvent> {
        let memory = NewMemory {
            content: text.to_string(),
            scope: plan.request.scope.clone(),
            kind: plan.request.kind.unwrap_or(MemoryKind::Semantic),
            metadata: metadata.clone(),
            expires_at: plan.request.expires_at,
            valid_from,
            valid_to,
            ..NewMemory::default()
        };
        let outcome = self.insert_one(w, memory, vector, &plan.actor)?;
        Ok(MemoryEvent::stored(outcome, text.to_string()))
    }
}

/// The memory `old` (key `key`) replaced by memory `by` for `fact`: closed as superseded,
/// from where the fact starts (or now), or without `supersede` deleted. Its `DELETE` event.
fn retire(
    w: &mut Writing<'_>,
    plan: &Plan<'_>,
    fact: usize,
    key: i64,
    old: &MemoryRecord,
    by: &str,
) -> Result<MemoryEvent> {
    let mut gone = MemoryEvent::of(MemoryEventKind::Delete, old.id.clone(), old.content.clone());
    if plan.request.supersede {
        let starts = plan.fact_times[fact].0.unwrap_or(w.now);
        close_superseded(w, key, old, by, starts, &plan.actor)?;
        gone.superseded_by = Some(by.to_string());
    } else {
        w.tx.delete(key, old, &plan.actor, w.now)?;
    }
    Ok(gone)
}
