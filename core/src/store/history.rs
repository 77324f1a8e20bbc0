//! A history row as both backends write it: built from the change it records.

use chrono::{DateTime, Utc};

use crate::types::{HistoryEntry, HistoryEvent, MemoryRecord};

/// A history row to write.
pub(crate) struct HistoryRow<'a> {
    /// The row's id: a new one (an imported row keeps its own).
    pub id: String,
    /// The change it belongs to: the row's own id unless the change touched several rows.
    pub change_id: String,
    /// The change that undid it (an imported row's).
    pub undone_by: Option<&'a str>,
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
        let id = new_id();
        HistoryRow {
            change_id: id.clone(),
            id,
            undone_by: None,
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
        let id = new_id();
        HistoryRow {
            change_id: id.clone(),
            id,
            undone_by: None,
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
        let id = new_id();
        HistoryRow {
            change_id: id.clone(),
            id,
            undone_by: None,
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
            id: entry.id.clone(),
            change_id: entry.change_id.clone(),
            undone_by: entry.undone_by.as_deref(),
            memory_id: &entry.memory_id,
            event: entry.event,
            old_content: entry.old_content.as_deref(),
            new_content: entry.new_content.as_deref(),
            actor: &entry.actor,
            at: entry.created_at,
        }
    }
}

impl HistoryRow<'_> {
    /// The row as part of change `change` (when given) instead of a change of its own.
    pub(crate) fn in_change(mut self, change: Option<&str>) -> Self {
        if let Some(change) = change {
            self.change_id = change.to_string();
        }
        self
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
