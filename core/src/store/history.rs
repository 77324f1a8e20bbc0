//! A history row as both backends write it: built from the change it records.

use chrono::{DateTime, Utc};

use crate::types::{HistoryEntry, HistoryEvent, MemoryRecord};

/// A history row to write.
pub(crate) struct HistoryRow<'a> {
    /// The row's id; a new one when `None` (an imported row keeps its own).
    pub id: Option<&'a str>,
    pub memory_id: &'a str,
    pub event: HistoryEvent,
    pub old_content: Option<&'a str>,
    pub new_content: Option<&'a str>,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
}

impl<'a> HistoryRow<'a> {
    /// The `ADD` row of a new memory.
    pub(crate) fn added(record: &'a MemoryRecord, actor: &'a str) -> HistoryRow<'a> {
        HistoryRow {
            id: None,
            memory_id: &record.id,
            event: HistoryEvent::Add,
            old_content: None,
            new_content: Some(&record.content),
            actor,
            at: record.created_at,
        }
    }

    /// The `UPDATE` row of a memory that changed from `old` to `new`.
    pub(crate) fn updated(
        old: &'a MemoryRecord,
        new: &'a MemoryRecord,
        actor: &'a str,
    ) -> HistoryRow<'a> {
        HistoryRow {
            id: None,
            memory_id: &new.id,
            event: HistoryEvent::Update,
            old_content: Some(&old.content),
            new_content: Some(&new.content),
            actor,
            at: new.updated_at,
        }
    }

    /// The `DELETE` row of a memory deleted at `at`.
    pub(crate) fn deleted(
        record: &'a MemoryRecord,
        actor: &'a str,
        at: DateTime<Utc>,
    ) -> HistoryRow<'a> {
        HistoryRow {
            id: None,
            memory_id: &record.id,
            event: HistoryEvent::Delete,
            old_content: Some(&record.content),
            new_content: None,
            actor,
            at,
        }
    }

    /// A copied row, as it was written in its first store.
    pub(crate) fn imported(entry: &'a HistoryEntry) -> HistoryRow<'a> {
        HistoryRow {
            id: Some(&entry.id),
            memory_id: &entry.memory_id,
            event: entry.event,
            old_content: entry.old_content.as_deref(),
            new_content: entry.new_content.as_deref(),
            actor: &entry.actor,
            at: entry.created_at,
        }
    }
}
