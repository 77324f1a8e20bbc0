//! The filter language compiled for PostgreSQL, with the SQLite compiler's results
//! (`store/sqlite/filter.rs`), which is the reference:
//!
//! - metadata is `jsonb`; a metadata value is compared the way SQLite compares what
//!   `json_extract` returns: numbers with numbers (a boolean counts as 1 or 0 there, so
//!   `{"flag": true}` matches `true` and `1`), text with text byte-wise (`COLLATE "C"`),
//!   never a number with a text;
//! - a comparison with a missing value (a missing key, JSON `null`, no expiry or valid
//!   time) is false,
//!   and `ne` / `nin` of a missing value are true;
//! - absent scope ids are stored as `''`, so `null` means `''` for them;
//! - `contains` looks for a substring in a text and for an equal element in an array;
//!   `icontains` lower-cases both sides (the needle in Rust, as SQLite's `am_lower` does,
//!   the stored side with the store's Unicode lower-casing collation).
//!
//! Known differences: SQLite's `json_extract` returns an array or object as its JSON text,
//! which then compares as text (`{"tags": {"gt": ""}}` holds for an array there); here only
//! strings are text. A float needle of `contains` on a text is written in Rust's shortest
//! form (`1.5`), SQLite's in its `%!.15g` form (which agree for usual values).

use postgres::types::ToSql;
use postgres::Row;
use serde_json::Value;

use super::rows::{record_from_row, version_from_row, RECORD_COLUMNS, VERSION_COLUMNS};
use super::versions;
use crate::error::Result;
use crate::filter::{Field, Filter, Op};
use crate::store::Selection;
use crate::types::{format_time, MemoryRecord};

/// A query parameter.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// A compiled selection: a condition over `agentmem_memories m` (or `agentmem_versions m`:
/// the columns are the same) and its parameters (`$1`…), and the parameter of the past
/// moment it reads, if any; a query adds its own parameters after them.
pub(super) struct Where {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
    /// The placeholder of the moment read (see [`Selection::as_of`]).
    pub(super) as_of: Option<String>,
}

impl Where {
    /// The selection's filter and, unless it takes expired memories, the expiry test;
    /// unless it takes superseded memories, the test that a row was not superseded (a past
    /// version by its own link, as SQLite's). `lower` is the `COLLATE` clause that makes
    /// `lower()` Unicode-aware.
    pub(super) fn of(selection: &Selection, lower: &str) -> Where {
        let mut w = Where {
            sql: String::new(),
            params: Vec::new(),
            as_of: None,
        };
        let mut sql = compile(&selection.filter, &mut w, lower);
        if !selection.include_expired {
            let now = w.push(format_time(selection.now));
            sql = format!("({sql}) AND (m.expires_at IS NULL OR m.expires_at > {now}::text)");
        }
        if !selection.include_superseded {
            sql = format!("({sql}) AND m.superseded_by IS NULL");
        }
        w.sql = sql;
        w.as_of = selection.as_of.map(|at| w.push(format_time(at)));
        w
    }

    /// The condition over the current memories (`agentmem_memories m`): as of a past
    /// moment, only those already written then.
    pub(super) fn current(&self) -> String {
        match &self.as_of {
            None => self.sql.clone(),
            Some(at) => format!("({}) AND {}", self.sql, versions::current_at(at)),
        }
    }

    /// As of a past moment, the condition over the past versions (`agentmem_versions m`)
    /// that were current then.
    pub(super) fn past(&self) -> Option<String> {
        let at = self.as_of.as_ref()?;
        Some(format!("({}) AND {}", self.sql, versions::past_at(at)))
    }

    /// The rows the selection admits, as a `FROM` item aliased `m` with its `WHERE` (to
    /// which a caller may add `AND …`): the current memories, or the versions current at
    /// the selection's moment. Read them with [`Where::columns`] and [`Where::read`].
    pub(super) fn rows(&self) -> String {
        match &self.as_of {
            None => format!("agentmem_memories m WHERE ({})", self.sql),
            Some(at) => format!("{} WHERE TRUE", versions::as_of_rows(&self.sql, at)),
        }
    }

    /// The columns that [`Where::read`] reads from [`Where::rows`].
    pub(super) fn columns(&self) -> &'static str {
        if self.as_of.is_some() {
            VERSION_COLUMNS
        } else {
            RECORD_COLUMNS
        }
    }

    /// Reads a record selected with [`Where::columns`].
    pub(super) fn read(&self, row: &Row) -> Result<(i64, MemoryRecord)> {
        if self.as_of.is_some() {
            version_from_row(row)
        } else {
            record_from_row(row)
        }
    }

    /// Adds a parameter; its placeholder (`$n`).
    pub(super) fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// The parameters, as the `postgres` crate takes them.
    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}

fn compile(filter: &Filter, w: &mut Where, lower: &str) -> String {
    match filter {
        Filter::All => "TRUE".into(),
        Filter::And(parts) if parts.is_empty() => "TRUE".into(),
        Filter::Or(parts) if parts.is_empty() => "FALSE".into(),
        Filter::And(parts) => join(parts, " AND ", w, lower),
        Filter::Or(parts) => join(parts, " OR ", w, lower),
        Filter::Not(inner) => format!("NOT ({})", compile(inner, w, lower)),
        Filter::Cond { field, op, value } => match field {
            // Every metadata, expiry or valid-time test is made plainly true or false (NOT
            // of NULL is NULL); the other columns are never NULL.
            Field::Metadata(key) => format!(
                "coalesce({}, FALSE)",
                metadata_cond(key, *op, value, w, lower)
            ),
            Field::ExpiresAt | Field::ValidFrom | Field::ValidTo => format!(
                "coalesce({}, FALSE)",
                column_cond(field, *op, value, w, lower)
            ),
            _ => column_cond(field, *op, value, w, lower),
        },
    }
}

fn join(parts: &[Filter], sep: &str, w: &mut Where, lower: &str) -> String {
    let inner: Vec<String> = parts
        .iter()
        .map(|p| format!("({})", compile(p, w, lower)))
        .collect();
    inner.join(sep)
}

fn column(field: &Field) -> &'static str {
    match field {
        Field::Id => "m.id",
        Field::Content => "m.content",
        Field::Hash => "m.hash",
        Field::Kind => "m.kind",
        Field::UserId => "m.user_id",
        Field::AgentId => "m.agent_id",
        Field::RunId => "m.run_id",
        Field::OrgId => "m.org_id",
        Field::CreatedAt => "m.created_at",
        Field::UpdatedAt => "m.updated_at",
        Field::ExpiresAt => "m.expires_at",
        Field::ValidFrom => "m.valid_from",
        Field::ValidTo => "m.valid_to",
        Field::Metadata(_) => "m.metadata",
    }
}

fn comparison(op: Op) -> &'static str {
    match op {
        Op::Gt => ">",
        Op::Gte => ">=",
        Op::Lt => "<",
        _ => "<=",
    }
}

/// A scalar operand as SQLite sees it after `sql_value`: a number (booleans are 1 and 0),
/// a text, or null.
enum Operand {
    Null,
    /// The decimal text of the number, compared as `numeric` (exact for every JSON number).
    Number(String),
    Text(String),
}

fn operand(v: &Value) -> Operand {
    match v {
        Value::Null => Operand::Null,
        Value::Bool(b) => Operand::Number(if *b { "1" } else { "0" }.into()),
        Value::Number(n) => Operand::Number(n.to_string()),
        Value::String(s) => Operand::Text(s.clone()),
        // The parser never gives these as operands; SQLite would compare their JSON text.
        other => Operand::Text(other.to_string()),
    }
}

/// A condition on a column (all text, never NULL except `expires_at`, `valid_from` and
/// `valid_to`; scope ids '' when absent). The parser only lets strings (and null) through as their operands.
fn column_cond(field: &Field, op: Op, value: &Value, w: &mut Where, lower: &str) -> String {
    let col = column(field);
    let scope = field.is_scope();
    match op {
        Op::Exists => {
            if scope {
                format!("{col} <> ''")
            } else {
                format!("{col} IS NOT NULL")
            }
        }
        Op::Eq | Op::Ne if value.is_null() => {
            let test = if scope {
                format!("{col} = ''")
            } else {
                format!("{col} IS NULL")
            };
            if op == Op::Eq {
                test
            } else {
                format!("NOT ({test})")
            }
        }
        Op::Eq | Op::Ne => match operand(value) {
            Operand::Text(s) => {
                let p = w.push(s);
                if op == Op::Eq {
                    format!("{col} = {p}::text")
                } else {
                    format!("{col} IS DISTINCT FROM {p}::text")
                }
            }
            // A number never equals a text column.
            _ => (if op == Op::Eq { "FALSE" } else { "TRUE" }).into(),
        },
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => match operand(value) {
            // The column's collation is "C": byte order, as SQLite's BINARY.
            Operand::Text(s) => {
                let p = w.push(s);
                format!("{col} {} {p}::text", comparison(op))
            }
            _ => "FALSE".into(),
        },
        Op::In | Op::Nin => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut texts = Vec::new();
            let mut has_null = false;
            for item in items {
                match operand(item) {
                    Operand::Null => {
                        has_null = true;
                        if scope {
                            texts.push(String::new());
                        }
                    }
                    Operand::Text(s) => texts.push(s),
                    Operand::Number(_) => {}
                }
            }
            let in_list = if texts.is_empty() {
                "FALSE".to_string()
            } else {
                let p = w.push(texts);
                format!("{col} = ANY({p}::text[])")
            };
            let matches = if has_null && !scope {
                format!("({col} IS NULL OR {in_list})")
            } else {
                in_list
            };
            if op == Op::In {
                matches
            } else {
                format!("NOT coalesce({matches}, FALSE)")
            }
        }
        Op::Contains | Op::Icontains => {
            let needle = needle_text(value, op == Op::Icontains);
            let p = w.push(needle);
            if op == Op::Icontains {
                format!("strpos(lower({col} {lower}), {p}::text) > 0")
            } else {
                format!("strpos({col}, {p}::text) > 0")
            }
        }
    }
}

/// The text a `contains` needle is searched as (SQLite's `instr` turns a number into its
/// text), lower-cased for `icontains` as SQLite's `am_lower` does (Rust's `to_lowercase`).
fn needle_text(value: &Value, fold: bool) -> String {
    let text = match operand(value) {
        Operand::Text(s) | Operand::Number(s) => s,
        Operand::Null => String::new(),
    };
    if fold {
        text.to_lowercase()
    } else {
        text
    }
}

/// The SQL number of a jsonb value as SQLite's `json_extract` gives it: numbers, and
/// booleans as 1 or 0; NULL for anything else.
fn num(x: &str) -> String {
    format!(
        "(CASE jsonb_typeof({x}) WHEN 'number' THEN ({x})::numeric \
         WHEN 'boolean' THEN ({x})::boolean::int::numeric END)"
    )
}

/// The SQL text of a jsonb string, compared byte-wise; NULL for anything else.
fn text(x: &str) -> String {
    format!("(CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x}) #>> '{{}}' END) COLLATE \"C\"")
}

/// Equality of a jsonb value with an operand, SQLite-style; `fold` lower-cases the value
/// (the operand is already lower-cased).
fn equals(x: &str, operand: Operand, w: &mut Where, fold: Option<&str>) -> String {
    match operand {
        Operand::Number(n) => {
            let p = w.push(n);
            format!("{} = {p}::text::numeric", num(x))
        }
        Operand::Text(s) => {
            let p = w.push(s);
            match fold {
                Some(lower) => format!("lower({} {lower}) = {p}::text", text(x)),
                None => format!("{} = {p}::text", text(x)),
            }
        }
        Operand::Null => "FALSE".into(),
    }
}

fn metadata_cond(key: &str, op: Op, value: &Value, w: &mut Where, lower: &str) -> String {
    // An empty list needs no key: and every parameter pushed must appear in the SQL (the
    // server cannot type a parameter it never sees).
    if matches!(op, Op::In | Op::Nin) && value.as_array().is_none_or(Vec::is_empty) {
        return (if op == Op::In { "FALSE" } else { "TRUE" }).into();
    }
    let k = w.push(key.to_string());
    let x = format!("(m.metadata -> {k}::text)");
    // A missing key and a JSON null are both NULL to SQLite.
    let missing = format!("coalesce(jsonb_typeof({x}), 'null') = 'null'");
    match op {
        Op::Exists => format!("NOT ({missing})"),
        Op::Eq if value.is_null() => missing,
        Op::Ne if value.is_null() => format!("NOT ({missing})"),
        Op::Eq => equals(&x, operand(value), w, None),
        // SQLite's `IS NOT`: true when missing or different.
        Op::Ne => format!(
            "NOT coalesce({}, FALSE)",
            equals(&x, operand(value), w, None)
        ),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => match operand(value) {
            Operand::Number(n) => {
                let p = w.push(n);
                format!("{} {} {p}::text::numeric", num(&x), comparison(op))
            }
            Operand::Text(s) => {
                let p = w.push(s);
                format!("{} {} {p}::text", text(&x), comparison(op))
            }
            Operand::Null => "FALSE".into(),
        },
        Op::In | Op::Nin => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let mut numbers = Vec::new();
            let mut texts = Vec::new();
            let mut has_null = false;
            for item in items {
                match operand(item) {
                    Operand::Null => has_null = true,
                    Operand::Number(n) => numbers.push(n),
                    Operand::Text(s) => texts.push(s),
                }
            }
            let mut tests = Vec::new();
            if has_null {
                tests.push(missing);
            }
            if !numbers.is_empty() {
                let p = w.push(numbers);
                tests.push(format!("{} = ANY({p}::text[]::numeric[])", num(&x)));
            }
            if !texts.is_empty() {
                let p = w.push(texts);
                tests.push(format!("{} = ANY({p}::text[])", text(&x)));
            }
            let matches = if tests.is_empty() {
                "FALSE".to_string()
            } else {
                format!("({})", tests.join(" OR "))
            };
            if op == Op::In {
                matches
            } else {
                format!("NOT coalesce({matches}, FALSE)")
            }
        }
        Op::Contains | Op::Icontains => {
            let fold = op == Op::Icontains;
            let element = equals(
                "e.value",
                match operand(value) {
                    Operand::Text(s) if fold => Operand::Text(s.to_lowercase()),
                    other => other,
                },
                w,
                fold.then_some(lower),
            );
            let p = w.push(needle_text(value, fold));
            let haystack = if fold {
                format!("lower({} {lower})", text(&x))
            } else {
                text(&x)
            };
            format!(
                "(CASE jsonb_typeof({x}) \
                 WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) e WHERE {element}) \
                 WHEN 'string' THEN strpos({haystack}, {p}::text) > 0 ELSE FALSE END)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn compiled(filter: Value) -> Where {
        let selection = Selection {
            filter: Filter::from_json(&filter).unwrap(),
            include_expired: false,
            now: Utc::now(),
            as_of: None,
            include_superseded: false,
        };
        Where::of(&selection, "COLLATE \"default\"")
    }

    #[test]
    fn placeholders_follow_the_parameters() {
        let w = compiled(json!({"user_id": "alice", "topic": {"in": ["a", 1, null]}}));
        assert_eq!(w.params.len(), 5, "{}", w.sql);
        for i in 1..=5 {
            assert!(w.sql.contains(&format!("${i}")), "{}", w.sql);
        }
        assert!(!w.sql.contains("$6"), "{}", w.sql);
    }

    #[test]
    fn superseded_rows_are_left_out_unless_asked_for() {
        let w = compiled(json!({"valid_to": {"lt": "2024-01-01"}}));
        assert!(
            w.sql.contains("coalesce(m.valid_to < $1::text, FALSE)"),
            "{}",
            w.sql
        );
        assert!(w.sql.ends_with("AND m.superseded_by IS NULL"), "{}", w.sql);
        let selection = Selection {
            filter: Filter::All,
            include_expired: true,
            now: Utc::now(),
            as_of: None,
            include_superseded: true,
        };
        assert_eq!(Where::of(&selection, "").sql, "TRUE");
    }

    #[test]
    fn scope_null_means_empty() {
        let w = compiled(json!({"user_id": null}));
        assert!(w.sql.contains("m.user_id = ''"), "{}", w.sql);
        let w = compiled(json!({"run_id": "*"}));
        assert!(w.sql.contains("m.run_id <> ''"), "{}", w.sql);
    }
}
