//! Changing and deleting memories, each change with its history row.

use chrono::Utc;

use super::add::live_twin;
use super::embedding::{fit_vector, record_embedding_model, Embedded};
use super::{check_id, check_vector, selection, Memory, ACTOR_EXPIRY, ACTOR_USER};
use crate::error::{Error, ErrorCode, Result};
use crate::filter::{Field, Filter, Op};
use crate::store::{self, Selection};
use crate::types::{
    content_hash, format_time, validate_content, validate_metadata, validate_valid_time,
    MemoryRecord, MemoryUpdate, Metadata, NewMemory, Scope,
};

impl Memory {
    /// Changes a memory's content, metadata, kind or expiry; new content is re-embedded.
    /// Writes an `UPDATE` history row.
    pub fn update(&self, id: &str, update: MemoryUpdate) -> Result<MemoryRecord> {
        self.update_inner(id, update, None)
    }

    /// Like [`Memory::update`], with the caller's vector for the new content.
    pub fn update_with_vector(
        &self,
        id: &str,
        update: MemoryUpdate,
        vector: Vec<f32>,
    ) -> Result<MemoryRecord> {
        check_vector(&vector)?;
        if update.content.is_none() {
            return Err(Error::invalid("a vector goes with new content"));
        }
        self.update_inner(id, update, Some(vector))
    }

    fn update_inner(
        &self,
        id: &str,
        mut update: MemoryUpdate,
        vector: Option<Vec<f32>>,
    ) -> Result<MemoryRecord> {
        check_id(id)?;
        if update.merge_metadata && update.metadata.is_none() {
            return Err(Error::invalid(
                "merge_metadata merges the update's metadata into the stored one: give metadata",
            ));
        }
        if update.is_empty() {
            return Err(Error::invalid(
                "nothing to update: give content, metadata, kind or expires_at",
            ));
        }
        if let Some(c) = &update.content {
            validate_content(c)?;
        }
        if let Some(m) = &update.metadata {
            validate_metadata(m)?;
        }
        let mut change = MetadataChange::of(&mut update);
        let current = self.get(id)?;
        if let Some(content) = &update.content {
            // Plugins see the memory as it will be (the merge judged on the stored metadata
            // read now); what they change of the metadata is applied as a change of its own.
            let before = change.apply(&current.metadata);
            let mut changed = [NewMemory {
                content: content.clone(),
                scope: current.scope.clone(),
                kind: update.kind.unwrap_or(current.kind),
                metadata: before.clone(),
                ..NewMemory::default()
            }];
            self.hook_on_add("update", &mut changed)?;
            let [changed] = changed;
            if changed.content != *content {
                update.content = Some(changed.content);
            }
            if changed.metadata != before {
                change = change.rewritten(&before, changed.metadata);
            }
        }
        // Embed outside the write lock; the transaction re-reads the row.
        let embedded = match (&update.content, vector) {
            (Some(c), _) if *c == current.content => None,
            (Some(_), Some(v)) => Some(Embedded {
                vector: v,
                cache_as: None,
            }),
            (Some(c), None) => Some(self.embed_contents(&[NewMemory::new(c.clone())])?.remove(0)),
            (None, _) => None,
        };
        store::write(&*self.shared.store, |tx| {
            // Taken after the write lock, before the row lock (the order every writer uses).
            let now = tx.now()?;
            let (key, old) = tx
                .get(id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))?;
            let mut new = old.next_version(now);
            if let Some(c) = &update.content {
                new.content = c.clone();
                new.hash = content_hash(c);
            }
            new.metadata = change.apply(&old.metadata);
            if let Some(k) = update.kind {
                new.kind = k;
            }
            if let Some(e) = update.expires_at {
                new.expires_at = e;
            }
            if let Some(from) = update.valid_from {
                new.valid_from = from;
            }
            if let Some(to) = update.valid_to {
                new.valid_to = to;
            }
            validate_valid_time(new.valid_from, new.valid_to)?;
            if new.hash != old.hash {
                if let Some(twin) = live_twin(tx, &new.scope, &new.hash, now)? {
                    return Err(Error::new(
                        ErrorCode::AlreadyExists,
                        format!(
                            "memory {:?} in the same scope already has this content",
                            twin.id
                        ),
                    ));
                }
            }
            let vector = if new.content != old.content {
                let e = embedded
                    .as_ref()
                    .ok_or_else(|| Error::internal("content changed under an update"))?;
                let dims = self.check_store_dimensions(tx, Some(e.vector.len()))?;
                fit_vector(tx, e, dims)?;
                record_embedding_model(tx, std::slice::from_ref(e))?;
                Some(e.vector.as_slice())
            } else {
                None
            };
            tx.update(key, &old, &new, vector, ACTOR_USER)?;
            Ok(new)
        })
    }

    /// Deletes a memory (its history stays, ending with a `DELETE` row).
    pub fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        store::write(&*self.shared.store, |tx| {
            let now = tx.now()?;
            let (key, rec) = tx
                .get(id)?
                .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))?;
            tx.delete(key, &rec, ACTOR_USER, now)
        })
    }

    /// Deletes every memory (expired or not) matching the scope and filter, in one
    /// transaction; returns how many. Refuses to run with neither (use [`Memory::reset`]).
    pub fn delete_all(&self, scope: &Scope, filter: Option<&Filter>) -> Result<usize> {
        scope.validate()?;
        if scope.is_global() && filter.is_none_or(Filter::is_all) {
            return Err(Error::invalid(
                "delete_all needs a scope or a filter; to delete everything use reset",
            ));
        }
        let selection = selection(filter, scope, false, true).in_time(None, None, true);
        self.delete_where(&selection, ACTOR_USER)
    }

    /// Deletes every memory whose expiry has passed; returns how many.
    pub fn purge_expired(&self) -> Result<usize> {
        let now = Utc::now();
        let expired = Selection {
            filter: Filter::Cond {
                field: Field::ExpiresAt,
                op: Op::Lte,
                value: serde_json::Value::String(format_time(now)),
            },
            include_expired: true,
            now,
            as_of: None,
            include_superseded: true,
        };
        self.delete_where(&expired, ACTOR_EXPIRY)
    }

    fn delete_where(&self, selection: &Selection, actor: &str) -> Result<usize> {
        store::write(&*self.shared.store, |tx| {
            let now = tx.now()?;
            let victims = tx.select(selection)?;
            for (key, rec) in &victims {
                tx.delete(*key, rec, actor, now)?;
            }
            Ok(victims.len())
        })
    }
}

/// What an update does to the metadata, applied to the stored metadata read inside the write
/// transaction.
enum MetadataChange {
    /// Nothing.
    Keep,
    /// The whole object.
    Replace(Metadata),
    /// A shallow merge: these keys removed, then these set.
    Merge { set: Metadata, remove: Vec<String> },
}

impl MetadataChange {
    /// The change an update asks for (its metadata taken out of it).
    fn of(update: &mut MemoryUpdate) -> MetadataChange {
        match update.metadata.take() {
            None => MetadataChange::Keep,
            Some(set) if update.merge_metadata => MetadataChange::Merge {
                set,
                remove: Vec::new(),
            },
            Some(m) => MetadataChange::Replace(m),
        }
    }

    /// The metadata after this change of `stored`.
    fn apply(&self, stored: &Metadata) -> Metadata {
        match self {
            MetadataChange::Keep => stored.clone(),
            MetadataChange::Replace(m) => m.clone(),
            MetadataChange::Merge { set, remove } => {
                let mut merged = stored.clone();
                for key in remove {
                    merged.remove(key);
                }
                for (key, value) in set {
                    merged.insert(key.clone(), value.clone());
                }
                merged
            }
        }
    }

    /// This change after a plugin turned its result `before` into `after`: a replacement
    /// stays one; a merge (or no change) sets the keys the plugin set or changed (and those
    /// the merge set), and removes those it dropped, so that the stored keys nobody touched
    /// are still read in the transaction.
    fn rewritten(self, before: &Metadata, after: Metadata) -> MetadataChange {
        let set_before = match self {
            MetadataChange::Replace(_) => return MetadataChange::Replace(after),
            MetadataChange::Keep => Metadata::new(),
            MetadataChange::Merge { set, .. } => set,
        };
        let remove = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
        let set = after
            .into_iter()
            .filter(|(k, v)| set_before.contains_key(k) || before.get(k) != Some(v))
            .collect();
        MetadataChange::Merge { set, remove }
    }
}
