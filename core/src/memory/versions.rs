//! Transaction time: a memory as it stood at a past moment, and every version of it. Lists,
//! counts and searches as of a moment take `as_of` in their options (`read`, `search`).

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_id, Memory};
use crate::error::{Error, Result};
use crate::types::{format_time, MemoryRecord};

/// Which past versions [`Memory::prune_versions`] removes. The default keeps everything;
/// the current version of a memory is never pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryRetention {
    /// Keep past versions that stopped being current less than this many days ago.
    pub max_age_days: Option<u32>,
    /// Keep at most this many past versions per memory (the latest ones).
    pub keep_versions: Option<usize>,
}

impl HistoryRetention {
    /// True when nothing is ever pruned.
    pub fn keeps_everything(&self) -> bool {
        self.max_age_days.is_none() && self.keep_versions.is_none()
    }
}

/// What [`Memory::prune_versions`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pruned {
    /// Past versions removed.
    pub versions: usize,
}

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
            self.shared.store.get_as_of(id, at)?
        };
        found.ok_or_else(|| {
            Error::not_found(format!(
                "no memory with id {id:?} existed at {}",
                format_time(at)
            ))
        })
    }

    /// Removes the past versions the store's [`HistoryRetention`] does not keep (see
    /// `MemoryBuilder::history_retention`), in one transaction, and says how many. Reads as
    /// of a moment whose versions were pruned no longer find those memories, and a change
    /// whose earlier version was pruned can no longer be undone; history rows stay.
    pub fn prune_versions(&self) -> Result<Pruned> {
        let retention = self.shared.retention;
        if retention.keeps_everything() {
            return Ok(Pruned { versions: 0 });
        }
        let ended_before = retention
            .max_age_days
            .map(|days| Utc::now() - Duration::days(i64::from(days)));
        let versions = self
            .shared
            .store
            .prune_versions(ended_before, retention.keep_versions)?;
        Ok(Pruned { versions })
    }

    /// Every kept version of memory `id`, oldest first: version 1 as added, one more per
    /// update, each with the interval during which it was the current one (`valid_from_tx`
    /// to `valid_to_tx`; the current version has no end). A deleted memory's versions all
    /// have an end. `NotFound` when no version of `id` is kept.
    pub fn versions(&self, id: &str) -> Result<Vec<MemoryRecord>> {
        check_id(id)?;
        let versions = self.shared.store.versions(id)?;
        if versions.is_empty() {
            return Err(Error::not_found(format!("no memory with id {id:?}")));
        }
        Ok(versions)
    }
}
