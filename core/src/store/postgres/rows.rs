//! Reading records and history rows, and the values written for them.

use chrono::{DateTime, Utc};
use postgres::Row;
use serde_json::Value;

use super::pool::get;
use crate::error::{Error, Result};
use crate::store::{corrupted, opt_scope};
use crate::types::{parse_time, HistoryEntry, HistoryEvent, MemoryRecord, Metadata, Scope};

/// Columns read by [`record_from_row`], over `agentmem_memories m`.
pub(super) const RECORD_COLUMNS: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, \
    m.agent_id, m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, \
    m.version, m.valid_from, m.valid_to, m.superseded_by";

/// The number of [`RECORD_COLUMNS`]: a column selected after them is at this index.
pub(super) const RECORD_WIDTH: usize = 17;

/// Columns read by [`version_from_row`]: a version's, from `agentmem_versions` (or the rows
/// of a moment, see `versions::as_of_rows`) aliased `m`.
pub(super) const VERSION_COLUMNS: &str = "m.key, m.id, m.content, m.hash, m.kind, m.user_id, \
    m.agent_id, m.run_id, m.org_id, m.metadata, m.created_at, m.updated_at, m.expires_at, \
    m.version, m.valid_from, m.valid_to, m.superseded_by, m.valid_to_tx";

/// Columns read by [`history_from_row`], over `agentmem_history` (a NULL `change_id` is the
/// row's own id, see `history::write`).
pub(super) const HISTORY_COLUMNS: &str = "seq, id, memory_id, event, old_content, new_content, \
    is_deleted, actor, created_at, coalesce(change_id, id), undone_by";

fn time(s: &str) -> Result<DateTime<Utc>> {
    parse_time(s).map_err(|e| corrupted("time", e))
}

/// An optional time in column `i`.
fn opt_time(row: &Row, i: usize) -> Result<Option<DateTime<Utc>>> {
    get::<Option<String>>(row, i)?
        .as_deref()
        .map(time)
        .transpose()
}

/// One memory and its key, from a row selected with [`RECORD_COLUMNS`].
pub(super) fn record_from_row(row: &Row) -> Result<(i64, MemoryRecord)> {
    let kind: String = get(row, 4)?;
    let metadata: Metadata = match get::<Value>(row, 9)? {
        Value::Object(map) => map,
        other => return Err(corrupted("metadata", format!("not an object: {other}"))),
    };
    let created: String = get(row, 10)?;
    let updated: String = get(row, 11)?;
    let version: i64 = get(row, 13)?;
    let updated_at = time(&updated)?;
    Ok((
        get(row, 0)?,
        MemoryRecord {
            id: get(row, 1)?,
            content: get(row, 2)?,
            hash: get(row, 3)?,
            kind: kind.parse().map_err(|e| corrupted("kind", e))?,
            scope: Scope {
                user_id: opt_scope(get(row, 5)?),
                agent_id: opt_scope(get(row, 6)?),
                run_id: opt_scope(get(row, 7)?),
                org_id: opt_scope(get(row, 8)?),
            },
            metadata,
            created_at: time(&created)?,
            updated_at,
            expires_at: opt_time(row, 12)?,
            version: u64::try_from(version).map_err(|e| corrupted("version", e))?,
            valid_from_tx: updated_at,
            valid_to_tx: None,
            valid_from: opt_time(row, 14)?,
            valid_to: opt_time(row, 15)?,
            superseded_by: get(row, 16)?,
        },
    ))
}

/// One version and its key, from a row selected with [`VERSION_COLUMNS`].
pub(super) fn version_from_row(row: &Row) -> Result<(i64, MemoryRecord)> {
    let (key, mut record) = record_from_row(row)?;
    record.valid_to_tx = opt_time(row, RECORD_WIDTH)?;
    Ok((key, record))
}

/// A version number as stored (`bigint`).
pub(super) fn version_number(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// One history row and its sequence number, from a row selected with [`HISTORY_COLUMNS`].
pub(super) fn history_from_row(row: &Row) -> Result<(i64, HistoryEntry)> {
    let event: String = get(row, 3)?;
    let at: String = get(row, 8)?;
    Ok((
        get(row, 0)?,
        HistoryEntry {
            id: get(row, 1)?,
            memory_id: get(row, 2)?,
            event: HistoryEvent::parse(&event)?,
            old_content: get(row, 4)?,
            new_content: get(row, 5)?,
            is_deleted: get(row, 6)?,
            actor: get(row, 7)?,
            created_at: time(&at)?,
            change_id: get(row, 9)?,
            undone_by: get(row, 10)?,
        },
    ))
}

/// The scope ids as stored: absent ones as ''.
pub(super) fn scope_values(scope: &Scope) -> [String; 4] {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        s(&scope.user_id),
        s(&scope.agent_id),
        s(&scope.run_id),
        s(&scope.org_id),
    ]
}

/// PostgreSQL refuses the NUL character in text and jsonb (SQLite stores it): a clear
/// error rather than the server's encoding complaint. (Content and ids are checked for it
/// before they reach the store.)
pub(super) fn check_metadata(metadata: &Metadata) -> Result<()> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if metadata.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(Error::invalid(
            "metadata must not contain NUL characters (PostgreSQL cannot store them)",
        ));
    }
    Ok(())
}

/// A vector as pgvector's text form, `[1,2,3]` (Rust prints the shortest text that reads
/// back as the same f32).
pub(super) fn vector_text(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 10 + 2);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_print_exactly() {
        assert_eq!(vector_text(&[1.0, -0.5, 0.1]), "[1,-0.5,0.1]");
        let x = 0.123_456_79_f32;
        assert_eq!(x.to_string().parse::<f32>().unwrap(), x);
    }

    #[test]
    fn nul_in_metadata_is_refused() {
        let mut m = Metadata::new();
        m.insert("a".into(), serde_json::json!(["ok", "b\u{0}"]));
        assert!(check_metadata(&m).is_err());
        m.insert("a".into(), serde_json::json!("fine"));
        assert!(check_metadata(&m).is_ok());
    }
}
