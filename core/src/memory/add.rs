//! Adding memories: validation, hooks, embedding outside the write lock, and the duplicate
//! rule inside it.

use chrono::Utc;

use super::embedding::{fit_vector, record_embedding_model, Embedded, EmbedderSlot};
use super::graph::MemoryGraph;
use super::{check_vector, Memory, ACTOR_EXPIRY, ACTOR_USER};
use crate::error::{Error, Result};
use crate::store::{self, Inserted, StoreTx};
use crate::types::{content_hash, AddOutcome, MemoryRecord, NewMemory, Scope};

/// The state of a write transaction that adds or changes several memories.
pub(crate) struct Writing<'t> {
    pub(crate) tx: &'t mut dyn StoreTx,
    /// The store's vector dimension.
    pub(crate) dims: usize,
    /// The time written into records and history ([`StoreTx::now`]).
    pub(crate) now: chrono::DateTime<Utc>,
}

impl Memory {
    /// Adds one memory, embedding its content. An identical memory (same scope, same
    /// content) is not stored twice: its id comes back with `added == false`.
    pub fn add(&self, memory: NewMemory) -> Result<AddOutcome> {
        Ok(self.add_batch(vec![memory])?.remove(0))
    }

    /// Adds many memories in one transaction: all of them or none.
    /// With plugins, each memory goes through the `on_add` hooks first.
    pub fn add_batch(&self, memories: Vec<NewMemory>) -> Result<Vec<AddOutcome>> {
        self.add_batch_as(memories, ACTOR_USER, true)
    }

    /// Adds as `actor`; `hooks` false skips the `on_add` hooks (a plugin's own `am_add`, or
    /// memories that went through them already).
    pub(crate) fn add_batch_as(
        &self,
        mut memories: Vec<NewMemory>,
        actor: &str,
        hooks: bool,
    ) -> Result<Vec<AddOutcome>> {
        for (i, m) in memories.iter().enumerate() {
            m.validate()
                .map_err(|e| Error::invalid(format!("memory {i}: {}", e.message())))?;
        }
        if hooks {
            self.hook_on_add("add", &mut memories)?;
        }
        let vectors = self.embed_contents(&memories)?;
        self.insert(memories, vectors, actor)
    }

    /// Adds one memory with a vector the caller computed (same dimension as the store's).
    pub fn add_with_vector(&self, memory: NewMemory, vector: Vec<f32>) -> Result<AddOutcome> {
        Ok(self
            .add_batch_with_vectors(vec![(memory, vector)])?
            .remove(0))
    }

    /// Adds many memories with caller-computed vectors in one transaction. `on_add` hooks
    /// run too; the vectors stay the caller's even if a hook changes the content.
    pub fn add_batch_with_vectors(
        &self,
        items: Vec<(NewMemory, Vec<f32>)>,
    ) -> Result<Vec<AddOutcome>> {
        for (i, (m, v)) in items.iter().enumerate() {
            m.validate()
                .and_then(|_| check_vector(v))
                .map_err(|e| Error::invalid(format!("memory {i}: {}", e.message())))?;
        }
        let (mut memories, vectors): (Vec<_>, Vec<_>) = items
            .into_iter()
            .map(|(m, v)| {
                (
                    m,
                    Embedded {
                        vector: v,
                        cache_as: None,
                    },
                )
            })
            .unzip();
        self.hook_on_add("add", &mut memories)?;
        self.insert(memories, vectors, ACTOR_USER)
    }

    pub(crate) fn insert(
        &self,
        memories: Vec<NewMemory>,
        vectors: Vec<Embedded>,
        actor: &str,
    ) -> Result<Vec<AddOutcome>> {
        let many = memories.len() > 1;
        let which = |i: usize| {
            move |e: Error| match many {
                true => Error::new(e.code(), format!("memory {i}: {}", e.message())),
                false => e,
            }
        };
        let mut graphs = memories
            .iter()
            .enumerate()
            .map(|(i, m)| MemoryGraph::of(m).map_err(which(i)))
            .collect::<Result<Vec<_>>>()?;
        for graph in &mut graphs {
            self.give_graph_meanings(graph)?;
        }
        store::write(&*self.shared.store, |tx| {
            // Taken after the write lock: commit times follow commit order.
            let now = tx.now()?;
            let dims = self.check_store_dimensions(tx, vectors.first().map(|e| e.vector.len()))?;
            let w = &mut Writing { tx, dims, now };
            let mut outcomes = Vec::with_capacity(memories.len());
            for (i, ((m, e), graph)) in memories.iter().zip(&vectors).zip(&graphs).enumerate() {
                let outcome = self.insert_one(w, m.clone(), e, actor)?;
                // The memory's own entities and relations, in its transaction.
                graph
                    .add_in(w.tx, &outcome.id, &self.shared.functional)
                    .map_err(which(i))?;
                outcomes.push(outcome);
            }
            record_embedding_model(w.tx, &vectors)?;
            Ok(outcomes)
        })
    }

    /// Inserts one memory inside a write transaction: checks the vector against the store's
    /// dimension, caches a fresh embedding, and applies the duplicate rule (a live twin in
    /// the same scope wins; an expired one makes way).
    pub(crate) fn insert_one(
        &self,
        w: &mut Writing<'_>,
        m: NewMemory,
        e: &Embedded,
        actor: &str,
    ) -> Result<AddOutcome> {
        let now = w.now;
        fit_vector(w.tx, e, w.dims)?;
        let hash = content_hash(&m.content);
        if let Some(existing) = live_twin(w.tx, &m.scope, &hash, now)? {
            return Ok(AddOutcome {
                id: existing.id,
                added: false,
            });
        }
        let rec = MemoryRecord {
            id: uuid::Uuid::new_v4().to_string(),
            content: m.content,
            hash,
            kind: m.kind,
            scope: m.scope,
            metadata: m.metadata,
            created_at: now,
            updated_at: now,
            expires_at: m.expires_at,
            version: 1,
            valid_from_tx: now,
            valid_to_tx: None,
            valid_from: m.valid_from,
            valid_to: m.valid_to,
            superseded_by: None,
        };
        Ok(match w.tx.insert(&rec, &e.vector, actor)? {
            Inserted::New => AddOutcome {
                id: rec.id,
                added: true,
            },
            // Another process stored the same memory a moment before.
            Inserted::Twin(id) => AddOutcome { id, added: false },
        })
    }

    /// Checks (and on the first vector records) the store's vector dimension.
    pub(crate) fn check_store_dimensions(
        &self,
        tx: &mut dyn StoreTx,
        first: Option<usize>,
    ) -> Result<usize> {
        match (tx.dimensions()?, first) {
            (Some(d), _) => Ok(d),
            (None, Some(d)) => {
                if let EmbedderSlot::Ready(e) = &self.shared.embedder {
                    // 0: a remote embedder that has not answered yet.
                    if e.dimensions() != 0 && e.dimensions() != d {
                        return Err(Error::invalid(format!(
                            "vector has {d} dimensions but the embedder makes {}",
                            e.dimensions()
                        )));
                    }
                }
                let stored = tx.record_dimensions(d)?;
                if stored != d {
                    return Err(Error::invalid(format!(
                        "vector has {d} dimensions; the store holds {stored}"
                    )));
                }
                Ok(stored)
            }
            (None, None) => Ok(0),
        }
    }
}

/// The duplicate rule's first half, for every write that may store a text in a scope: the
/// living memory of `scope` with content `hash`, if any. An expired one is gone for the
/// reader: it is deleted here (by actor `expiry`) and makes way.
pub(crate) fn live_twin(
    tx: &mut dyn StoreTx,
    scope: &Scope,
    hash: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Option<MemoryRecord>> {
    let Some((key, twin)) = tx.find_duplicate(scope, hash)? else {
        return Ok(None);
    };
    if !twin.is_expired_at(now) {
        return Ok(Some(twin));
    }
    tx.delete(key, &twin, ACTOR_EXPIRY, now)?;
    Ok(None)
}
