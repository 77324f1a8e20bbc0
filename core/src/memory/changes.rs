//! Changes as things a user can name: supersede a fact (the old one kept, closed and linked
//! to the new), undo a change, revert a memory to an earlier version. Each of them is a new
//! change with its own history rows, so an undo is recorded, and can itself be undone.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::add::{live_twin, Writing};
use super::embedding::{fit_vector, record_embedding_model, Embedded};
use super::graph::recall_sources;
use super::{check_id, Memory, ACTOR_USER};
use crate::error::{Error, ErrorCode, Result};
use crate::store::{self, Inserted, StoreTx};
use crate::types::{
    content_hash, format_time, validate_content, validate_metadata, HistoryEvent, MemoryKind,
    MemoryRecord, Metadata, NewMemory,
};

/// The actor recorded in history for undos and reverts.
pub(crate) const ACTOR_UNDO: &str = "undo";

/// The new fact that supersedes a memory (see [`Memory::supersede`]). Kind and metadata
/// left `None` are the old memory's; the scope is always the old memory's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supersede {
    /// The new text.
    pub content: String,
    /// Its kind (default: the old memory's).
    pub kind: Option<MemoryKind>,
    /// Its metadata (default: the old memory's).
    pub metadata: Option<Metadata>,
    /// Since when the new fact holds (default: the supersede's commit time); the old fact
    /// stops holding then.
    pub valid_from: Option<DateTime<Utc>>,
    /// Its expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Supersede {
    /// A new fact with this text, the rest taken from the memory it replaces.
    pub fn new(content: impl Into<String>) -> Self {
        Supersede {
            content: content.into(),
            ..Supersede::default()
        }
    }
}

/// What [`Memory::supersede`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Superseded {
    /// The new memory.
    pub memory: MemoryRecord,
    /// The memory it replaced, as it now stands: its valid time ended, `superseded_by` the
    /// new one, hidden from reads that do not include superseded memories.
    pub superseded: MemoryRecord,
    /// The change (both rows), for [`Memory::undo`].
    pub change_id: String,
}

/// What [`Memory::undo`] and [`Memory::revert`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Undone {
    /// This change (undo it to redo what was undone).
    pub change_id: String,
    /// The change it undid (for a revert: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undid: Option<String>,
    /// The memories it restored, as they now stand.
    pub restored: Vec<MemoryRecord>,
    /// The ids of the memories it removed (the undone change had added them).
    pub removed: Vec<String>,
}

/// What one memory is to become: a state of it (`Some`) or gone (`None`).
struct Restore {
    id: String,
    target: Option<MemoryRecord>,
}

impl Memory {
    /// Replaces the fact of memory `old_id` with a new memory, without losing the old one:
    /// the old memory's valid time ends where the new one's begins, its `superseded_by`
    /// names the new memory, and it is hidden from search, list and count unless they
    /// include superseded memories (or read a moment before the supersede). One change,
    /// which [`Memory::undo`] reverts as a whole.
    pub fn supersede(&self, old_id: &str, new: Supersede) -> Result<Superseded> {
        check_id(old_id)?;
        validate_content(&new.content)?;
        if let Some(metadata) = &new.metadata {
            validate_metadata(metadata)?;
        }
        let current = self.get(old_id)?;
        not_superseded(&current)?;
        let mut memory = [NewMemory {
            content: new.content.clone(),
            scope: current.scope.clone(),
            kind: new.kind.unwrap_or(current.kind),
            metadata: new.metadata.clone().unwrap_or(current.metadata.clone()),
            expires_at: new.expires_at,
            valid_from: new.valid_from,
            valid_to: None,
            ..NewMemory::default()
        }];
        self.hook_on_add("supersede", &mut memory)?;
        let [memory] = memory;
        memory.validate()?;
        let embedded = self
            .embed_contents(std::slice::from_ref(&memory))?
            .remove(0);
        let change_id = uuid::Uuid::new_v4().to_string();
        store::write(&*self.shared.store, |tx| {
            let now = tx.now()?;
            let (key, old) = tx
                .get(old_id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {old_id:?}")))?;
            not_superseded(&old)?;
            if content_hash(&memory.content) == old.hash {
                return Err(Error::invalid(
                    "the new content is the old memory's own: update it instead",
                ));
            }
            let dims = self.check_store_dimensions(tx, Some(embedded.vector.len()))?;
            tx.set_change(Some(change_id.clone()));
            let mut fact = memory.clone();
            let starts = fact.valid_from.unwrap_or(now);
            fact.valid_from = Some(starts);
            let w = &mut Writing { tx, dims, now };
            let outcome = self.insert_one(w, fact, &embedded, ACTOR_USER)?;
            if !outcome.added {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!(
                        "memory {:?} in the same scope already has this content: supersede \
                         with it is not needed",
                        outcome.id
                    ),
                ));
            }
            let closed = close_superseded(w, key, &old, &outcome.id, starts, ACTOR_USER)?;
            record_embedding_model(w.tx, [&embedded])?;
            let (_, memory) =
                w.tx.get(&outcome.id)?
                    .ok_or_else(|| Error::internal("a superseding memory vanished in its write"))?;
            Ok(Superseded {
                memory,
                superseded: closed,
                change_id: change_id.clone(),
            })
        })
    }

    /// Undoes change `change_id` (a history row's `change_id`: an add, update, delete,
    /// supersede, undo or revert) as a new change: each memory it touched goes back to the
    /// version it had just before (an added memory is deleted, a deleted one comes back with
    /// its id). Refused when a memory it touched changed since, unless `force`; refused for
    /// a change already undone (undo the undo to redo it), an unknown change, or one whose
    /// earlier versions were pruned.
    pub fn undo(&self, change_id: &str, force: bool) -> Result<Undone> {
        check_id(change_id)?;
        let plan = |tx: &mut dyn StoreTx| -> Result<Vec<Restore>> {
            let rows = tx.change(change_id)?;
            let Some(first) = rows.first() else {
                return Err(Error::not_found(format!("no change with id {change_id:?}")));
            };
            if let Some(by) = &first.undone_by {
                return Err(Error::invalid(format!(
                    "change {change_id:?} was already undone by change {by:?} (undo that to \
                     redo it)"
                )));
            }
            let at = first.created_at;
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for row in &rows {
                if !seen.insert(row.memory_id.clone()) {
                    continue;
                }
                let id = &row.memory_id;
                let before = tx.get_as_of(id, at - Duration::microseconds(1))?;
                if before.is_none() && row.event != HistoryEvent::Add {
                    return Err(Error::not_found(format!(
                        "the version of memory {id:?} before change {change_id:?} was pruned: \
                         the change cannot be undone"
                    )));
                }
                if !force {
                    let after = tx.get_as_of(id, at)?.map(|r| r.version);
                    let now = tx.get(id)?.map(|(_, r)| r.version);
                    if after != now {
                        return Err(changed_since(id, change_id, at));
                    }
                }
                out.push(Restore {
                    id: id.clone(),
                    target: before,
                });
            }
            Ok(out)
        };
        self.restore_all(plan, Some(change_id))
    }

    /// Restores memory `id` to its version `to_version` as a new version (a deleted memory
    /// comes back with its id), one change that [`Memory::undo`] can revert. `NotFound` when
    /// that version is not kept (never written, or pruned).
    pub fn revert(&self, id: &str, to_version: u64) -> Result<Undone> {
        check_id(id)?;
        let plan = |tx: &mut dyn StoreTx| -> Result<Vec<Restore>> {
            let target = tx
                .versions(id)?
                .into_iter()
                .find(|v| v.version == to_version)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "version {to_version} of memory {id:?} is not kept (never written, or \
                         pruned)"
                    ))
                })?;
            Ok(vec![Restore {
                id: id.to_string(),
                target: Some(target),
            }])
        };
        self.restore_all(plan, None)
    }

    /// Runs `plan` in a write transaction and brings each memory it names to its target, as
    /// one change; marks change `undid` undone by it. A target whose vector is not stored
    /// (a version rebuilt from history) is embedded first, outside the write lock.
    fn restore_all(
        &self,
        plan: impl Fn(&mut dyn StoreTx) -> Result<Vec<Restore>>,
        undid: Option<&str>,
    ) -> Result<Undone> {
        let mut embedded: HashMap<String, Embedded> = HashMap::new();
        loop {
            let change_id = uuid::Uuid::new_v4().to_string();
            let outcome = store::write(&*self.shared.store, |tx| {
                let now = tx.now()?;
                let restores = plan(tx)?;
                // Vectors first: a missing one ends this attempt before anything is written.
                let mut vectors: HashMap<String, Embedded> = HashMap::new();
                let mut missing: Vec<String> = Vec::new();
                for r in &restores {
                    let Some(t) = &r.target else { continue };
                    if let Some(v) = tx.version_vector(&r.id, t.version)? {
                        vectors.insert(
                            r.id.clone(),
                            Embedded {
                                vector: v,
                                cache_as: None,
                            },
                        );
                    } else if let Some(e) = embedded.get(&t.hash) {
                        vectors.insert(r.id.clone(), e.clone());
                    } else {
                        missing.push(t.content.clone());
                    }
                }
                if !missing.is_empty() {
                    return Ok(Err(missing));
                }
                let dims = self
                    .check_store_dimensions(tx, vectors.values().next().map(|e| e.vector.len()))?;
                tx.set_change(Some(change_id.clone()));
                let w = &mut Writing { tx, dims, now };
                let mut done = Undone {
                    change_id: change_id.clone(),
                    undid: undid.map(str::to_string),
                    restored: Vec::new(),
                    removed: Vec::new(),
                };
                for r in &restores {
                    restore_one(w, r, vectors.get(&r.id), &mut done)?;
                }
                if let Some(undid) = undid {
                    w.tx.mark_undone(undid, &change_id)?;
                }
                record_embedding_model(w.tx, vectors.values())?;
                Ok(Ok(done))
            })?;
            match outcome {
                Ok(done) => return Ok(done),
                Err(texts) if embedded.is_empty() => {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let vectors = self.embed_texts(&refs)?;
                    for (text, e) in texts.iter().zip(vectors) {
                        embedded.insert(content_hash(text), e);
                    }
                }
                Err(_) => {
                    return Err(Error::internal(
                        "the versions to restore changed while their text was embedded",
                    ))
                }
            }
        }
    }
}

/// Closes memory `old` (key `key`) as superseded by memory `by`, whose fact starts at
/// `starts`: a new version whose valid time ends there (but not before it began) and whose
/// `superseded_by` names `by`. The closed version.
pub(crate) fn close_superseded(
    w: &mut Writing<'_>,
    key: i64,
    old: &MemoryRecord,
    by: &str,
    starts: DateTime<Utc>,
    actor: &str,
) -> Result<MemoryRecord> {
    let mut closed = old.next_version(w.now);
    let mut ends = old.valid_to.map_or(starts, |to| to.min(starts));
    if let Some(from) = old.valid_from {
        ends = ends.max(from);
    }
    closed.valid_to = Some(ends);
    closed.superseded_by = Some(by.to_string());
    w.tx.update(key, old, &closed, None, actor)?;
    Ok(closed)
}

/// Brings one memory to its target inside the write: a new version of a living memory, the
/// deletion of one that should not exist, or the return of a deleted one (same id, the next
/// version number).
fn restore_one(
    w: &mut Writing<'_>,
    r: &Restore,
    vector: Option<&Embedded>,
    done: &mut Undone,
) -> Result<()> {
    let current = w.tx.get(&r.id)?;
    let needs_vector = || vector.ok_or_else(|| Error::internal("a restored version has no vector"));
    match (current, &r.target) {
        (Some((key, current)), Some(target)) => {
            if current.version == target.version {
                done.restored.push(current);
                return Ok(());
            }
            let mut new = current.next_version(w.now);
            new.content = target.content.clone();
            new.hash = target.hash.clone();
            new.kind = target.kind;
            new.metadata = target.metadata.clone();
            new.expires_at = target.expires_at;
            new.valid_from = target.valid_from;
            new.valid_to = target.valid_to;
            new.superseded_by = target.superseded_by.clone();
            let vector = if new.content != current.content {
                let e = needs_vector()?;
                fit_vector(w.tx, e, w.dims)?;
                refuse_twin(w, &new)?;
                Some(e.vector.as_slice())
            } else {
                None
            };
            w.tx.update(key, &current, &new, vector, ACTOR_UNDO)?;
            done.restored.push(new);
        }
        (Some((key, current)), None) => {
            w.tx.delete(key, &current, ACTOR_UNDO, w.now)?;
            done.removed.push(r.id.clone());
        }
        (None, Some(target)) => {
            let last = w.tx.versions(&r.id)?.last().map_or(0, |v| v.version);
            let record = MemoryRecord {
                version: last + 1,
                updated_at: w.now,
                valid_from_tx: w.now,
                valid_to_tx: None,
                ..target.clone()
            };
            let e = needs_vector()?;
            fit_vector(w.tx, e, w.dims)?;
            refuse_twin(w, &record)?;
            if let Inserted::Twin(twin) = w.tx.insert(&record, &e.vector, ACTOR_UNDO)? {
                return Err(twin_exists(&twin));
            }
            recall_sources(w.tx, &r.id)?;
            done.restored.push(record);
        }
        (None, None) => {}
    }
    Ok(())
}

/// A living memory in the same scope with the same content blocks a restore (the duplicate
/// rule); an expired one makes way, as for `add`.
fn refuse_twin(w: &mut Writing<'_>, record: &MemoryRecord) -> Result<()> {
    match live_twin(w.tx, &record.scope, &record.hash, w.now)? {
        Some(twin) => Err(twin_exists(&twin.id)),
        None => Ok(()),
    }
}

fn twin_exists(id: &str) -> Error {
    Error::new(
        ErrorCode::AlreadyExists,
        format!("memory {id:?} in the same scope has this content now: nothing was restored"),
    )
}

fn not_superseded(record: &MemoryRecord) -> Result<()> {
    match &record.superseded_by {
        Some(by) => Err(Error::invalid(format!(
            "memory {:?} was already superseded by {by:?}",
            record.id
        ))),
        None => Ok(()),
    }
}

fn changed_since(id: &str, change_id: &str, at: DateTime<Utc>) -> Error {
    Error::invalid(format!(
        "memory {id:?} changed after change {change_id:?} (made at {}): undoing it would \
         overwrite the later change; undo with force to do it anyway",
        format_time(at)
    ))
}
