//! The SQLite compiler of the filter language ([`crate::filter`]): a selection becomes one
//! SQL condition over `memories m` with its parameters. The PostgreSQL twin is
//! `store/postgres/filter.rs`; both are checked against each other by the tests.

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use super::{ops, versions};
use crate::error::Result;
use crate::filter::{Field, Filter, Op};
use crate::store::Selection;
use crate::types::{format_time, MemoryRecord};

/// A compiled selection: a SQL condition over `memories m` (or `versions m`) and its
/// parameters (`?1`…), and the past moment it reads, if any (see [`versions::moment`]).
pub(crate) struct Where {
    pub sql: String,
    pub params: Vec<SqlValue>,
    pub as_of: Option<String>,
}

impl Where {
    /// The rows the selection admits, as a `FROM` item aliased `m` with its `WHERE` (to which
    /// a caller may add `AND …`): the current memories, or the versions current at the
    /// selection's moment. Read them with [`Where::columns`] and [`Where::read`].
    pub(crate) fn rows(&self) -> String {
        match &self.as_of {
            None => format!("memories m WHERE ({})", self.sql),
            Some(at) => format!("{} WHERE 1", versions::as_of_rows(&self.sql, at)),
        }
    }

    /// The columns that [`Where::read`] reads from [`Where::rows`].
    pub(crate) fn columns(&self) -> &'static str {
        if self.as_of.is_some() {
            ops::VERSION_COLUMNS
        } else {
            ops::RECORD_COLUMNS
        }
    }

    /// Reads a record selected with [`Where::columns`].
    pub(crate) fn read(&self, row: &rusqlite::Row<'_>) -> Result<(i64, MemoryRecord)> {
        if self.as_of.is_some() {
            ops::version_from_row(row)
        } else {
            ops::record_from_row(row)
        }
    }

    pub(crate) fn of(selection: &Selection) -> Where {
        let mut params = Vec::new();
        let mut sql = compile(&selection.filter, &mut params);
        if !selection.include_expired {
            params.push(SqlValue::Text(format_time(selection.now)));
            sql = format!(
                "({sql}) AND (m.expires_at IS NULL OR m.expires_at > ?{})",
                params.len()
            );
        }
        if !selection.include_superseded {
            sql = format!("({sql}) AND m.superseded_by IS NULL");
        }
        Where {
            sql,
            params,
            as_of: selection.as_of.map(versions::moment),
        }
    }
}

/// Compiles `filter` to a SQL condition over the `memories` table aliased `m`, pushing its
/// parameters (`?1`…).
fn compile(filter: &Filter, params: &mut Vec<SqlValue>) -> String {
    match filter {
        Filter::All => "1".into(),
        Filter::And(parts) if parts.is_empty() => "1".into(),
        Filter::Or(parts) if parts.is_empty() => "0".into(),
        Filter::And(parts) => join(parts, " AND ", params),
        Filter::Or(parts) => join(parts, " OR ", params),
        Filter::Not(inner) => format!("NOT ({})", compile(inner, params)),
        Filter::Cond { field, op, value } => {
            let sql = cond_sql(field, *op, value, params);
            // A comparison can be NULL (a missing metadata key or expiry), and NOT NULL
            // is NULL: make every condition plainly true or false. Columns that are
            // never NULL keep a bare condition, which SQLite can answer from an index.
            if matches!(
                field,
                Field::Metadata(_) | Field::ExpiresAt | Field::ValidFrom | Field::ValidTo
            ) {
                format!("coalesce({sql}, 0)")
            } else {
                sql
            }
        }
    }
}

fn join(parts: &[Filter], sep: &str, params: &mut Vec<SqlValue>) -> String {
    let inner: Vec<String> = parts
        .iter()
        .map(|p| format!("({})", compile(p, params)))
        .collect();
    inner.join(sep)
}

fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn push(params: &mut Vec<SqlValue>, v: SqlValue) -> String {
    params.push(v);
    format!("?{}", params.len())
}

fn cond_sql(field: &Field, op: Op, value: &Value, params: &mut Vec<SqlValue>) -> String {
    let column = match field {
        Field::Id => "m.id".to_string(),
        Field::Content => "m.content".into(),
        Field::Hash => "m.hash".into(),
        Field::Kind => "m.kind".into(),
        Field::UserId => "m.user_id".into(),
        Field::AgentId => "m.agent_id".into(),
        Field::RunId => "m.run_id".into(),
        Field::OrgId => "m.org_id".into(),
        Field::CreatedAt => "m.created_at".into(),
        Field::UpdatedAt => "m.updated_at".into(),
        Field::ExpiresAt => "m.expires_at".into(),
        Field::ValidFrom => "m.valid_from".into(),
        Field::ValidTo => "m.valid_to".into(),
        Field::Metadata(key) => {
            let path = push(params, SqlValue::Text(format!("$.\"{key}\"")));
            format!("json_extract(m.metadata, {path})")
        }
    };
    // Absent scope ids are stored as '', so "is null" means "is ''" for them.
    let null_value = |params: &mut Vec<SqlValue>| -> Option<String> {
        field
            .is_scope()
            .then(|| push(params, SqlValue::Text(String::new())))
    };
    match op {
        Op::Exists => match null_value(params) {
            Some(empty) => format!("{column} <> {empty}"),
            None => format!("{column} IS NOT NULL"),
        },
        Op::Eq | Op::Ne if value.is_null() => {
            let test = match null_value(params) {
                Some(empty) => format!("{column} = {empty}"),
                None => format!("{column} IS NULL"),
            };
            if op == Op::Eq {
                test
            } else {
                format!("NOT ({test})")
            }
        }
        Op::Eq => {
            let p = push(params, sql_value(value));
            format!("{column} = {p}")
        }
        Op::Ne => {
            let p = push(params, sql_value(value));
            format!("{column} IS NOT {p}")
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let sym = match op {
                Op::Gt => ">",
                Op::Gte => ">=",
                Op::Lt => "<",
                _ => "<=",
            };
            let p = push(params, sql_value(value));
            // SQLite orders numbers before text; compare like with like only.
            let guard = if value.is_number() {
                format!("typeof({column}) IN ('integer', 'real')")
            } else {
                format!("typeof({column}) = 'text'")
            };
            format!("({guard} AND {column} {sym} {p})")
        }
        Op::In | Op::Nin => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut list = Vec::new();
            let mut has_null = false;
            for item in items {
                if item.is_null() {
                    has_null = true;
                    if field.is_scope() {
                        list.push(Value::String(String::new()));
                    }
                } else {
                    list.push(item.clone());
                }
            }
            // The whole list is one JSON parameter: SQLite allows at most 32,766 parameters
            // per statement, fewer than a filter's lists may hold. `json_each` gives each
            // value as `sql_value` would bind it (true as 1, big integers as reals).
            let in_list = if list.is_empty() {
                "0".to_string()
            } else {
                let p = push(params, SqlValue::Text(Value::Array(list).to_string()));
                format!("{column} IN (SELECT value FROM json_each({p}))")
            };
            let matches = if has_null && !field.is_scope() {
                format!("({column} IS NULL OR {in_list})")
            } else {
                in_list
            };
            if op == Op::In {
                matches
            } else {
                // A missing value is in no list: `NOT (NULL IN ...)` would be NULL (false).
                format!("NOT coalesce({matches}, 0)")
            }
        }
        Op::Contains | Op::Icontains => {
            let fold = |s: String| {
                if op == Op::Icontains {
                    format!("am_lower({s})")
                } else {
                    s
                }
            };
            let needle = push(params, sql_value(value));
            let text_test = format!(
                "instr({}, {}) > 0",
                fold(column.clone()),
                fold(needle.clone())
            );
            match field {
                Field::Metadata(key) => {
                    let path = push(params, SqlValue::Text(format!("$.\"{key}\"")));
                    format!(
                        "(CASE json_type(m.metadata, {path}) \
                         WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(m.metadata, {path}) e \
                         WHERE {} = {}) \
                         WHEN 'text' THEN {text_test} ELSE 0 END)",
                        fold("e.value".into()),
                        fold(needle)
                    )
                }
                _ => text_test,
            }
        }
    }
}
