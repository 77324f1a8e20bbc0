//! Transaction time: a memory as it stood at a past moment, and every version of it. Lists,
//! counts and searches as of a moment take `as_of` in their options (`read`, `search`).

use chrono::{DateTime, Utc};

use super::{check_id, Memory};
use crate::error::{Error, Result};
use crate::types::{format_time, MemoryRecord};

impl Memory {
    /// The version of memory `id` that was current at `at` (transaction time): one deleted
    /// since is found, one updated since has its content of then. `NotFound` when the
    /// memory did not exist at `at` (not yet added, already deleted, or `at` is still to
    /// come).
    pub fn get_as_of(&self, id: &str, at: DateTime<Utc>) -> Result<MemoryRecord> {
        check_id(id)?;
        let found = if at > Utc::now() {
            None
        } else {
            self.store.get_as_of(id, at)?
        };
        found.ok_or_else(|| {
            Error::not_found(format!(
                "no memory with id {id:?} existed at {}",
                format_time(at)
            ))
        })
    }

    /// Every kept version of memory `id`, oldest first: version 1 as added, one more per
    /// update, each with the interval during which it was the current one (`valid_from_tx`
    /// to `valid_to_tx`; the current version has no end). A deleted memory's versions all
    /// have an end. `NotFound` when no version of `id` is kept.
    pub fn versions(&self, id: &str) -> Result<Vec<MemoryRecord>> {
        check_id(id)?;
        let versions = self.store.versions(id)?;
        if versions.is_empty() {
            return Err(Error::not_found(format!("no memory with id {id:?}")));
        }
        Ok(versions)
    }
}
