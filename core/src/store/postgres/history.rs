//! History rows in PostgreSQL, as in the SQLite backend (`store/sqlite/ops.rs`): each row
//! belongs to a change (`change_id`, stored NULL when it is the row's own id, read as
//! `coalesce(change_id, id)`), which `Memory::undo` looks up and marks undone.

use super::pool::Session;
use super::rows::{history_from_row, HISTORY_COLUMNS};
use crate::error::Result;
use crate::store::HistoryRow;
use crate::types::{format_time, HistoryEntry, HistoryEvent};

/// Writes a history row.
pub(super) fn write(s: &mut Session<'_>, row: HistoryRow<'_>) -> Result<()> {
    let event = row.event.as_str();
    let is_deleted = row.event == HistoryEvent::Delete;
    let at = format_time(row.at);
    // A change of one row is known by the row's id (NULL here saves repeating it, and
    // keeps the change index to the changes of several rows).
    let change_id = (row.change_id != row.id).then_some(row.change_id.as_str());
    s.execute(
        "INSERT INTO agentmem_history (id, memory_id, event, old_content, new_content,
             is_deleted, actor, created_at, change_id, undone_by)
         VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bool, $7::text, $8::text,
             $9::text, $10::text)",
        &[
            &row.id,
            &row.memory_id,
            &event,
            &row.old_content,
            &row.new_content,
            &is_deleted,
            &row.actor,
            &at,
            &change_id,
            &row.undone_by,
        ],
    )?;
    Ok(())
}

/// The rows of memory `id`, oldest first.
pub(super) fn of_memory(s: &mut Session<'_>, id: &str) -> Result<Vec<HistoryEntry>> {
    let sql = format!(
        "SELECT {HISTORY_COLUMNS} FROM agentmem_history WHERE memory_id = $1::text ORDER BY seq"
    );
    s.query(&sql, &[&id])?
        .iter()
        .map(|r| history_from_row(r).map(|(_, e)| e))
        .collect()
}

/// The rows of change `change_id` (those that name it, or the one row of that id whose
/// change is its own), oldest first, locked for the rest of the transaction: what the
/// caller reads of them (whether the change was undone) holds until it commits. (Writers
/// that take a commit time first are already queued by it; the lock does not rely on that.)
pub(super) fn change_rows(s: &mut Session<'_>, change_id: &str) -> Result<Vec<HistoryEntry>> {
    let sql = format!(
        "SELECT {HISTORY_COLUMNS} FROM agentmem_history
         WHERE change_id = $1::text OR (id = $1::text AND change_id IS NULL)
         ORDER BY seq FOR UPDATE"
    );
    s.query(&sql, &[&change_id])?
        .iter()
        .map(|r| history_from_row(r).map(|(_, e)| e))
        .collect()
}

/// Marks the rows of change `change_id` as undone by change `by`.
pub(super) fn mark_undone(s: &mut Session<'_>, change_id: &str, by: &str) -> Result<()> {
    s.execute(
        "UPDATE agentmem_history SET undone_by = $2::text
         WHERE change_id = $1::text OR (id = $1::text AND change_id IS NULL)",
        &[&change_id, &by],
    )?;
    Ok(())
}
