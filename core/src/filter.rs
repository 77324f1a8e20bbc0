//! The filter language: a small JSON-shaped language compatible with mem0's filters,
//! parsed and validated here into a [`Filter`]; each storage backend compiles it to one SQL
//! condition, so that every search path filters the same way.
//!
//! ```json
//! {"user_id": "alice",
//!  "AND": [{"created_at": {"gte": "2024-01-01"}}, {"topic": {"in": ["food", "travel"]}}],
//!  "NOT": {"tags": {"contains": "draft"}}}
//! ```
//! Keys are the fields `id`, `content`, `hash`, `kind`, `user_id`, `agent_id`, `run_id`,
//! `org_id`, `created_at`, `updated_at`, `expires_at`, the logical operators `AND`, `OR`,
//! `NOT` (also spelled `$and`, `$or`, `$not`) and otherwise metadata keys (`metadata.key`
//! and a nested `"metadata": {...}` object name metadata keys explicitly). A bare value means
//! equality, `"*"` means "is present", an array means `in`, and an object holds operators:
//! `eq, ne, gt, gte, lt, lte, in, nin, contains, icontains`. Conditions side by side all
//! hold (AND).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::{format_time, parse_time, MemoryKind, Scope};

const MAX_DEPTH: usize = 32;
const MAX_CONDITIONS: usize = 512;
const MAX_LIST: usize = 10_000;

/// A field a condition can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The memory id.
    Id,
    /// The text.
    Content,
    /// The MD5 of the text.
    Hash,
    /// The memory kind.
    Kind,
    /// `user_id`.
    UserId,
    /// `agent_id`.
    AgentId,
    /// `run_id`.
    RunId,
    /// `org_id`.
    OrgId,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `expires_at`.
    ExpiresAt,
    /// `valid_from`: since when the fact held (valid time).
    ValidFrom,
    /// `valid_to`: until when the fact held (valid time).
    ValidTo,
    /// A top-level metadata key.
    Metadata(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal (a missing value counts as not equal).
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// One of a list.
    In,
    /// None of a list (a missing value counts as none).
    Nin,
    /// Substring of a text, or element of an array.
    Contains,
    /// Like `Contains`, ignoring case.
    Icontains,
    /// The field is present (not null).
    Exists,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Contains => "contains",
            Op::Icontains => "icontains",
            Op::Exists => "exists",
        }
    }

    fn parse(name: &str) -> Option<Op> {
        Some(match name.trim_start_matches('$') {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "in" => Op::In,
            "nin" => Op::Nin,
            "contains" => Op::Contains,
            "icontains" => Op::Icontains,
            _ => return None,
        })
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Matches everything.
    All,
    /// Every part holds.
    And(Vec<Filter>),
    /// At least one part holds.
    Or(Vec<Filter>),
    /// The part does not hold.
    Not(Box<Filter>),
    /// One comparison.
    Cond {
        /// What is tested.
        field: Field,
        /// How.
        op: Op,
        /// Against what (a list for `In`/`Nin`).
        value: Value,
    },
}

impl Filter {
    /// Parses a filter from JSON text.
    pub fn parse(json: &str) -> Result<Filter> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Error::invalid(format!("filters: not valid JSON: {e}")))?;
        Filter::from_json(&value)
    }

    /// Parses a filter from a JSON value (an object; `null` and `{}` match everything).
    pub fn from_json(value: &Value) -> Result<Filter> {
        let mut parser = Parser { conditions: 0 };
        match value {
            Value::Null => Ok(Filter::All),
            Value::Object(map) => parser.object(map, "filters", 0),
            other => Err(Error::invalid(format!(
                "filters must be a JSON object, got {}",
                json_type(other)
            ))),
        }
    }

    /// A filter for `field == value` (`field` as in the JSON language).
    pub fn eq(field: &str, value: impl Into<Value>) -> Filter {
        Filter::Cond {
            field: Field::from_name(field),
            op: Op::Eq,
            value: value.into(),
        }
    }

    /// Both filters.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::All, f) | (f, Filter::All) => f,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (a, b) => Filter::And(vec![a, b]),
        }
    }

    /// The filter in the JSON language, such that [`Filter::from_json`] reads it back as an
    /// equivalent filter (plugins receive and return filters this way).
    pub fn to_json(&self) -> Value {
        let list = |parts: &[Filter]| Value::Array(parts.iter().map(Filter::to_json).collect());
        match self {
            Filter::All => Value::Object(Map::new()),
            Filter::And(parts) => serde_json::json!({ "AND": list(parts) }),
            Filter::Or(parts) => serde_json::json!({ "OR": list(parts) }),
            Filter::Not(inner) => serde_json::json!({ "NOT": inner.to_json() }),
            Filter::Cond { field, op, value } => {
                let test = match op {
                    Op::Exists => Value::String("*".into()),
                    _ => serde_json::json!({ op.name(): value }),
                };
                let mut map = Map::new();
                match field {
                    // Nested form: a metadata key may itself be named like a field.
                    Field::Metadata(key) => {
                        let mut inner = Map::new();
                        inner.insert(key.clone(), test);
                        map.insert("metadata".into(), Value::Object(inner));
                    }
                    other => {
                        map.insert(other.name().into(), test);
                    }
                }
                Value::Object(map)
            }
        }
    }

    /// Memories whose valid time holds at `t`: `valid_from` absent or at most `t`, and
    /// `valid_to` absent or after `t`.
    pub fn valid_at(t: chrono::DateTime<chrono::Utc>) -> Filter {
        let at = Value::String(format_time(t));
        let open_or = |field: Field, op: Op| {
            Filter::Or(vec![
                Filter::Not(Box::new(Filter::Cond {
                    field: field.clone(),
                    op: Op::Exists,
                    value: Value::Null,
                })),
                Filter::Cond {
                    field,
                    op,
                    value: at.clone(),
                },
            ])
        };
        Filter::And(vec![
            open_or(Field::ValidFrom, Op::Lte),
            open_or(Field::ValidTo, Op::Gt),
        ])
    }

    /// Memories whose time overlaps `[start, end)`: their valid time when they have one,
    /// else when the conversation they come from took place (metadata `observed_at`, see
    /// `AddMessages::observed_at`), else when they were stored (`created_at`). `start` at `DateTime::MIN_UTC` leaves the
    /// span open before.
    pub fn time_overlaps(
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Filter {
        let cond = |field: Field, op: Op, t: chrono::DateTime<chrono::Utc>| Filter::Cond {
            field,
            op,
            value: Value::String(format_time(t)),
        };
        let exists = |field: Field| Filter::Cond {
            field,
            op: Op::Exists,
            value: Value::Null,
        };
        let absent = |field: Field| Filter::Not(Box::new(exists(field)));
        let open_before = start == chrono::DateTime::<chrono::Utc>::MIN_UTC;
        let mut valid = vec![
            Filter::Or(vec![exists(Field::ValidFrom), exists(Field::ValidTo)]),
            Filter::Or(vec![
                absent(Field::ValidFrom),
                cond(Field::ValidFrom, Op::Lt, end),
            ]),
        ];
        let observed = || Field::Metadata("observed_at".into());
        let mut said = vec![exists(observed()), cond(observed(), Op::Lt, end)];
        let mut stored = vec![absent(observed()), cond(Field::CreatedAt, Op::Lt, end)];
        if !open_before {
            valid.push(Filter::Or(vec![
                absent(Field::ValidTo),
                cond(Field::ValidTo, Op::Gt, start),
            ]));
            said.push(cond(observed(), Op::Gte, start));
            stored.push(cond(Field::CreatedAt, Op::Gte, start));
        }
        Filter::Or(vec![
            Filter::And(valid),
            Filter::And(vec![
                absent(Field::ValidFrom),
                absent(Field::ValidTo),
                Filter::Or(vec![Filter::And(said), Filter::And(stored)]),
            ]),
        ])
    }

    /// Equality on every field the scope sets; with `include_global`, memories of the
    /// global layer (no scope at all) match too.
    pub fn for_scope(scope: &Scope, include_global: bool) -> Filter {
        let mut parts: Vec<Filter> = scope
            .fields()
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| Filter::eq(name, v)))
            .collect();
        let own = match parts.len() {
            0 => return Filter::All,
            1 => parts.remove(0),
            _ => Filter::And(parts),
        };
        if include_global {
            let global = Filter::And(
                scope
                    .fields()
                    .into_iter()
                    .map(|(name, _)| Filter::eq(name, Value::Null))
                    .collect(),
            );
            Filter::Or(vec![own, global])
        } else {
            own
        }
    }

    /// True for a filter that matches everything.
    pub fn is_all(&self) -> bool {
        match self {
            Filter::All => true,
            Filter::And(parts) => parts.iter().all(Filter::is_all),
            _ => false,
        }
    }
}

impl Field {
    fn name(&self) -> &str {
        match self {
            Field::Id => "id",
            Field::Content => "content",
            Field::Hash => "hash",
            Field::Kind => "kind",
            Field::UserId => "user_id",
            Field::AgentId => "agent_id",
            Field::RunId => "run_id",
            Field::OrgId => "org_id",
            Field::CreatedAt => "created_at",
            Field::UpdatedAt => "updated_at",
            Field::ExpiresAt => "expires_at",
            Field::ValidFrom => "valid_from",
            Field::ValidTo => "valid_to",
            Field::Metadata(key) => key,
        }
    }

    fn from_name(name: &str) -> Field {
        match name {
            "id" | "memory_id" => Field::Id,
            "content" | "memory" | "data" => Field::Content,
            "hash" => Field::Hash,
            "kind" | "memory_type" => Field::Kind,
            "user_id" => Field::UserId,
            "agent_id" => Field::AgentId,
            "run_id" => Field::RunId,
            "org_id" => Field::OrgId,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            "expires_at" => Field::ExpiresAt,
            "valid_from" => Field::ValidFrom,
            "valid_to" => Field::ValidTo,
            other => Field::Metadata(other.strip_prefix("metadata.").unwrap_or(other).to_string()),
        }
    }

    fn is_time(&self) -> bool {
        matches!(
            self,
            Field::CreatedAt
                | Field::UpdatedAt
                | Field::ExpiresAt
                | Field::ValidFrom
                | Field::ValidTo
        )
    }

    /// Scope fields are stored as '' when absent, so that UNIQUE constraints see them.
    pub(crate) fn is_scope(&self) -> bool {
        matches!(
            self,
            Field::UserId | Field::AgentId | Field::RunId | Field::OrgId
        )
    }
}

struct Parser {
    conditions: usize,
}

impl Parser {
    fn object(&mut self, map: &Map<String, Value>, path: &str, depth: usize) -> Result<Filter> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(format!(
                "{path}: filters nest deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut parts = Vec::new();
        for (key, value) in map {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "AND" | "$and" | "and" => parts.push(Filter::And(self.list(value, &here, depth)?)),
                "OR" | "$or" | "or" => parts.push(Filter::Or(self.list(value, &here, depth)?)),
                "NOT" | "$not" | "not" => {
                    let inner = match value {
                        Value::Array(_) => Filter::And(self.list(value, &here, depth)?),
                        Value::Object(m) => self.object(m, &here, depth + 1)?,
                        other => {
                            return Err(Error::invalid(format!(
                                "{here}: NOT takes an object or a list of objects, got {}",
                                json_type(other)
                            )))
                        }
                    };
                    parts.push(Filter::Not(Box::new(inner)));
                }
                "metadata" if value.is_object() => {
                    let Value::Object(inner) = value else {
                        unreachable!()
                    };
                    for (mkey, mvalue) in inner {
                        let field = Field::Metadata(mkey.clone());
                        parts.push(self.field(field, mvalue, &format!("{here}.{mkey}"))?);
                    }
                }
                _ => {
                    let field = Field::from_name(key);
                    parts.push(self.field(field, value, &here)?);
                }
            }
        }
        Ok(match parts.len() {
            0 => Filter::All,
            1 => parts.remove(0),
            _ => Filter::And(parts),
        })
    }

    fn list(&mut self, value: &Value, path: &str, depth: usize) -> Result<Vec<Filter>> {
        let Value::Array(items) = value else {
            return Err(Error::invalid(format!(
                "{path}: expected a list of filter objects, got {}",
                json_type(value)
            )));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => self.object(m, &format!("{path}[{i}]"), depth + 1),
                other => Err(Error::invalid(format!(
                    "{path}[{i}]: expected a filter object, got {}",
                    json_type(other)
                ))),
            })
            .collect()
    }

    fn field(&mut self, field: Field, value: &Value, path: &str) -> Result<Filter> {
        if let Field::Metadata(key) = &field {
            if key.is_empty() || key.contains(['"', '\\']) || key.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "{path}: metadata key {key:?} cannot be filtered on (empty, or holds a quote, \
                     backslash or control character)"
                )));
            }
        }
        match value {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(Error::invalid(format!("{path}: empty operator object")));
                }
                let mut parts = Vec::new();
                for (name, operand) in ops {
                    let op = Op::parse(name).ok_or_else(|| {
                        Error::invalid(format!(
                            "{path}: unknown operator {name:?} (expected eq, ne, gt, gte, lt, \
                             lte, in, nin, contains, icontains)"
                        ))
                    })?;
                    parts.push(self.cond(field.clone(), op, operand, &format!("{path}.{name}"))?);
                }
                Ok(if parts.len() == 1 {
                    parts.remove(0)
                } else {
                    Filter::And(parts)
                })
            }
            Value::String(s) if s == "*" => self.cond(field, Op::Exists, &Value::Null, path),
            Value::Array(_) => self.cond(field, Op::In, value, path),
            _ => self.cond(field, Op::Eq, value, path),
        }
    }

    fn cond(&mut self, field: Field, op: Op, value: &Value, path: &str) -> Result<Filter> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(Error::invalid(format!(
                "{path}: more than {MAX_CONDITIONS} conditions in one filter"
            )));
        }
        let value = match op {
            Op::In | Op::Nin => {
                let Value::Array(items) = value else {
                    return Err(Error::invalid(format!(
                        "{path}: expects a list, got {}",
                        json_type(value)
                    )));
                };
                if items.len() > MAX_LIST {
                    return Err(Error::invalid(format!(
                        "{path}: lists hold at most {MAX_LIST} values"
                    )));
                }
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| scalar(&field, v, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                Value::Array(items)
            }
            Op::Contains | Op::Icontains => match value {
                Value::String(_) => value.clone(),
                Value::Number(_) | Value::Bool(_) if matches!(field, Field::Metadata(_)) => {
                    value.clone()
                }
                other => {
                    return Err(Error::invalid(format!(
                        "{path}: expects a string, got {}",
                        json_type(other)
                    )))
                }
            },
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                if value.is_null() || value.is_boolean() {
                    return Err(Error::invalid(format!(
                        "{path}: expects a number, string or time, got {}",
                        json_type(value)
                    )));
                }
                scalar(&field, value, path)?
            }
            Op::Exists => Value::Null,
            Op::Eq | Op::Ne => scalar(&field, value, path)?,
        };
        Ok(Filter::Cond { field, op, value })
    }
}

/// Checks and normalises one operand for a field: times to the stored format, kinds to
/// their names, scope ids to strings.
fn scalar(field: &Field, value: &Value, path: &str) -> Result<Value> {
    match value {
        Value::Array(_) | Value::Object(_) => {
            return Err(Error::invalid(format!(
                "{path}: expects a single value, got {}",
                json_type(value)
            )))
        }
        Value::Null => return Ok(Value::Null),
        _ => {}
    }
    if field.is_time() {
        let Value::String(s) = value else {
            return Err(Error::invalid(format!(
                "{path}: expects an RFC 3339 time string, got {}",
                json_type(value)
            )));
        };
        let t = parse_time(s).map_err(|e| Error::invalid(format!("{path}: {}", e.message())))?;
        return Ok(Value::String(format_time(t)));
    }
    if matches!(field, Field::Kind) {
        let Value::String(s) = value else {
            return Err(Error::invalid(format!(
                "{path}: expects a memory kind name, got {}",
                json_type(value)
            )));
        };
        let kind: MemoryKind = s
            .parse()
            .map_err(|e: Error| Error::invalid(format!("{path}: {}", e.message())))?;
        return Ok(Value::String(kind.as_str().into()));
    }
    if !matches!(field, Field::Metadata(_)) && !value.is_string() {
        return Err(Error::invalid(format!(
            "{path}: expects a string, got {}",
            json_type(value)
        )));
    }
    Ok(value.clone())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn to_json_reads_back_as_the_same_filter() {
        for text in [
            json!({}),
            json!({"user_id": "alice", "topic": {"in": ["food", "travel"]}}),
            json!({"AND": [{"created_at": {"gte": "2024-01-01T00:00:00Z"}}, {"n": {"lt": 3}}],
                   "NOT": {"tags": {"contains": "draft"}}}),
            json!({"OR": [{"kind": "semantic"}, {"metadata": {"AND": {"ne": 1}}}], "x": "*"}),
            json!({"content": {"icontains": "Tea"}, "y": {"nin": [1, 2]}}),
        ] {
            let filter = Filter::from_json(&text).unwrap();
            let back = Filter::from_json(&filter.to_json()).unwrap();
            assert_eq!(back, filter, "{text} -> {}", filter.to_json());
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = Filter::from_json(
            &json!({"AND": [{"user_id": "a"}, {"created_at": {"gte": "yesterday"}}]}),
        )
        .unwrap_err();
        assert!(
            err.message().contains("filters.AND[1].created_at.gte"),
            "{err}"
        );
        let err = Filter::from_json(&json!({"topic": {"like": "x"}})).unwrap_err();
        assert!(err.message().contains("filters.topic"), "{err}");
        assert!(err.message().contains("\"like\""), "{err}");
        let err = Filter::from_json(&json!({"kind": "dream"})).unwrap_err();
        assert!(err.message().contains("unknown memory kind"), "{err}");
        let err = Filter::from_json(&json!([1, 2])).unwrap_err();
        assert!(err.message().contains("must be a JSON object"), "{err}");
        let err = Filter::from_json(&json!({"OR": {"a": 1}})).unwrap_err();
        assert!(err.message().contains("filters.OR"), "{err}");
        let err = Filter::from_json(&json!({"user_id": 5})).unwrap_err();
        assert!(err.message().contains("filters.user_id"), "{err}");
    }

    #[test]
    fn empty_filters_match_everything() {
        assert!(Filter::from_json(&json!({})).unwrap().is_all());
        assert!(Filter::from_json(&Value::Null).unwrap().is_all());
        assert!(!Filter::from_json(&json!({"a": 1})).unwrap().is_all());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!({"a": 1});
        for _ in 0..40 {
            v = json!({ "AND": [v] });
        }
        let err = Filter::from_json(&v).unwrap_err();
        assert!(err.message().contains("deeper"), "{err}");
    }
}
