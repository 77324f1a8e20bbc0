//! The Rust runner of the language-neutral conformance cases in `tests/conformance/*.json`
//! (format: `tests/conformance/README.md`), and the check of `tests/error_codes.json`
//! against [`ErrorCode::ALL`].
//!
//! Each case file runs against a fresh in-memory store; a failure names the file, the step
//! index and the operation. The C, Python and Node surfaces run the same files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_mem::{
    format_time, parse_time, Error, ErrorCode, Filter, FusionWeights, HashingEmbedder, ListOptions,
    ListOrder, Memory, MemoryKind, MemoryUpdate, Metadata, NewMemory, Scope, SearchMode,
    SearchOptions,
};
use serde_json::{json, Map, Value};

#[cfg(feature = "postgres")]
use crate::support;

/// Fewer files or steps than this means cases went missing.
const MIN_FILES: usize = 12;
const MIN_STEPS: usize = 500;

fn repo_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests")
}

// ------------------------------------------------------------------------------- errors table

#[test]
fn error_code_table_matches_the_core() {
    let path = repo_tests_dir().join("error_codes.json");
    let table: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let rows = table["codes"].as_array().expect("codes is a list");
    assert_eq!(rows.len(), ErrorCode::ALL.len(), "one row per code");
    let mut seen_c = std::collections::HashSet::new();
    let mut seen_node = std::collections::HashSet::new();
    for (row, code) in rows.iter().zip(ErrorCode::ALL) {
        assert_eq!(row["name"], code.name(), "{row}");
        assert_eq!(row["code"], code.as_u32(), "{row}");
        assert_eq!(ErrorCode::from_u32(code.as_u32()), Some(code));
        let c = row["c"].as_str().expect("c name");
        let node = row["node"].as_str().expect("node name");
        assert!(c.starts_with("AM_ERR_"), "{c}");
        assert!(
            node.starts_with("AM_") && !node.starts_with("AM_ERR_"),
            "{node}"
        );
        // Both derive from the name: InvalidInput → INVALID_INPUT.
        assert_eq!(c, format!("AM_ERR_{}", code.upper_name()));
        assert_eq!(node, format!("AM_{}", code.upper_name()));
        assert!(seen_c.insert(c.to_string()) && seen_node.insert(node.to_string()));
    }
    assert_eq!(ErrorCode::from_u32(0), None);
    assert_eq!(ErrorCode::from_u32(ErrorCode::ALL.len() as u32 + 1), None);
}

// ------------------------------------------------------------------------------- runner

/// Why a step did not run as the case says: the API failed it, or the case itself is wrong.
enum StepError {
    Api(Error),
    Case(String),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Api(e)
    }
}

fn case_err<T>(msg: impl Into<String>) -> Result<T, StepError> {
    Err(StepError::Case(msg.into()))
}

type Args = Map<String, Value>;

/// Replaces `$name` references, `$$` escapes and `{"$repeat": [text, n]}` in a value.
fn resolve(value: &Value, vars: &HashMap<String, Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if s.starts_with("$$") => Value::String(s[1..].to_string()),
        Value::String(s) if s.starts_with('$') => vars
            .get(&s[1..])
            .cloned()
            .ok_or_else(|| format!("unknown reference {s}"))?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) if map.len() == 1 && map.contains_key("$repeat") => {
            let spec = map["$repeat"].as_array();
            match spec.map(Vec::as_slice) {
                Some([Value::String(s), Value::Number(n)]) if n.is_u64() => {
                    Value::String(s.repeat(n.as_u64().unwrap_or(0) as usize))
                }
                _ => return Err(format!("bad $repeat {value}")),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks that `args` holds only keys of `allowed`, so that a misspelt argument is caught.
fn only(args: &Args, allowed: &[&str]) -> Result<(), StepError> {
    for key in args.keys() {
        if !allowed.contains(&key.as_str()) {
            return case_err(format!(
                "unknown argument {key:?} (expected one of {allowed:?})"
            ));
        }
    }
    Ok(())
}

fn opt_str(args: &Args, key: &str) -> Result<Option<String>, StepError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => case_err(format!("{key} must be a string, got {other}")),
    }
}

fn req_str(args: &Args, key: &str) -> Result<String, StepError> {
    opt_str(args, key)?.map_or_else(|| case_err(format!("{key} is required")), Ok)
}

fn opt_bool(args: &Args, key: &str) -> Result<bool, StepError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => case_err(format!("{key} must be a boolean, got {other}")),
    }
}

fn opt_usize(args: &Args, key: &str) -> Result<Option<usize>, StepError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.as_u64().unwrap_or(0) as usize)),
        Some(other) => case_err(format!("{key} must be a whole number, got {other}")),
    }
}

fn scope(args: &Args) -> Result<Scope, StepError> {
    Ok(Scope {
        user_id: opt_str(args, "user_id")?,
        agent_id: opt_str(args, "agent_id")?,
        run_id: opt_str(args, "run_id")?,
        org_id: opt_str(args, "org_id")?,
    })
}

fn metadata(args: &Args) -> Result<Option<Metadata>, StepError> {
    match args.get("metadata") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(other) => case_err(format!("metadata must be an object, got {other}")),
    }
}

/// Filters go through the core's parser, so a malformed one is the API's InvalidInput.
fn filters(args: &Args) -> Result<Option<Filter>, StepError> {
    match args.get("filters") {
        None => Ok(None),
        Some(v) => Ok(Some(Filter::from_json(v)?)),
    }
}

/// Kind names, times and modes are parsed by the core too: bad ones are API errors.
fn kind(args: &Args) -> Result<Option<MemoryKind>, StepError> {
    Ok(match opt_str(args, "kind")? {
        Some(k) => Some(k.parse()?),
        None => None,
    })
}

/// Numbers, or the strings "NaN", "Infinity" and "-Infinity" (JSON has no such numbers).
fn vector(value: &Value) -> Result<Vec<f32>, StepError> {
    let Value::Array(items) = value else {
        return case_err(format!("vector must be a list, got {value}"));
    };
    items
        .iter()
        .map(|x| match x {
            Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
            Value::String(s) if s == "NaN" => Ok(f32::NAN),
            Value::String(s) if s == "Infinity" => Ok(f32::INFINITY),
            Value::String(s) if s == "-Infinity" => Ok(f32::NEG_INFINITY),
            other => case_err(format!("bad vector element {other}")),
        })
        .collect()
}

const NEW_MEMORY_KEYS: [&str; 9] = [
    "content",
    "user_id",
    "agent_id",
    "run_id",
    "org_id",
    "kind",
    "metadata",
    "expires_at",
    "vector",
];

fn new_memory(args: &Args) -> Result<(NewMemory, Option<Vec<f32>>), StepError> {
    only(args, &NEW_MEMORY_KEYS)?;
    let mut m = NewMemory::new(req_str(args, "content")?).scope(scope(args)?);
    if let Some(k) = kind(args)? {
        m = m.kind(k);
    }
    if let Some(meta) = metadata(args)? {
        m = m.metadata(meta);
    }
    if let Some(t) = opt_str(args, "expires_at")? {
        m = m.expires_at(parse_time(&t)?);
    }
    let v = args.get("vector").map(vector).transpose()?;
    Ok((m, v))
}

fn record_json(r: &impl serde::Serialize) -> Value {
    serde_json::to_value(r).expect("records serialise")
}

/// The result shape shared by `list` and `search`: the items and handy projections.
fn items_result(items: Vec<Value>) -> Value {
    let ids: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
    let contents: Vec<Value> = items.iter().map(|i| i["content"].clone()).collect();
    json!({"count": items.len(), "ids": ids, "contents": contents, "items": items})
}

fn parse_enum<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, StepError> {
    Ok(serde_json::from_value(Value::String(value.to_string())).map_err(Error::from)?)
}

/// Runs one operation; the result is the JSON object the expectations are matched against.
fn run_op(m: &Memory, op: &str, args: &Args) -> Result<Value, StepError> {
    match op {
        "add" => {
            only(args, &NEW_MEMORY_KEYS[..8])?;
            let (new, _) = new_memory(args)?;
            Ok(record_json(&m.add(new)?))
        }
        "add_with_vector" => {
            let (new, v) = new_memory(args)?;
            let Some(v) = v else {
                return case_err("add_with_vector needs a vector");
            };
            Ok(record_json(&m.add_with_vector(new, v)?))
        }
        "add_batch" => {
            only(args, &["memories"])?;
            let Some(Value::Array(items)) = args.get("memories") else {
                return case_err("memories must be a list");
            };
            let mut parsed = Vec::new();
            for item in items {
                let Value::Object(item) = item else {
                    return case_err("each memory is an object");
                };
                parsed.push(new_memory(item)?);
            }
            let with_vectors = parsed.iter().filter(|(_, v)| v.is_some()).count();
            let outcomes = if with_vectors == 0 {
                m.add_batch(parsed.into_iter().map(|(n, _)| n).collect())?
            } else if with_vectors == parsed.len() {
                m.add_batch_with_vectors(
                    parsed
                        .into_iter()
                        .map(|(n, v)| (n, v.unwrap_or_default()))
                        .collect(),
                )?
            } else {
                return case_err("either every memory of a batch has a vector or none has");
            };
            Ok(json!({
                "ids": outcomes.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
                "added": outcomes.iter().map(|o| o.added).collect::<Vec<_>>(),
            }))
        }
        "get" => {
            only(args, &["id"])?;
            Ok(record_json(&m.get(&req_str(args, "id")?)?))
        }
        "list" => {
            only(
                args,
                &[
                    "user_id",
                    "agent_id",
                    "run_id",
                    "org_id",
                    "include_global",
                    "include_expired",
                    "filters",
                    "order",
                    "limit",
                    "offset",
                    "cursor",
                ],
            )?;
            let mut options = ListOptions {
                scope: scope(args)?,
                include_global: opt_bool(args, "include_global")?,
                include_expired: opt_bool(args, "include_expired")?,
                filter: filters(args)?,
                offset: opt_usize(args, "offset")?.unwrap_or(0),
                cursor: opt_str(args, "cursor")?,
                ..ListOptions::default()
            };
            if let Some(limit) = opt_usize(args, "limit")? {
                options.limit = limit;
            }
            if let Some(order) = opt_str(args, "order")? {
                options.order = parse_enum::<ListOrder>(&order)?;
            }
            let page = m.list(&options)?;
            let mut out = items_result(page.items.iter().map(record_json).collect());
            out["has_more"] = json!(page.next_cursor.is_some());
            out["next_cursor"] = json!(page.next_cursor);
            Ok(out)
        }
        "count" => {
            only(
                args,
                &["user_id", "agent_id", "run_id", "org_id", "filters"],
            )?;
            let n = m.count(&scope(args)?, filters(args)?.as_ref())?;
            Ok(json!({ "count": n }))
        }
        "update" => {
            only(
                args,
                &["id", "content", "metadata", "kind", "expires_at", "vector"],
            )?;
            let id = req_str(args, "id")?;
            let expires_at = match args.get("expires_at") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::String(t)) => Some(Some(parse_time(t)?)),
                Some(other) => return case_err(format!("expires_at: bad value {other}")),
            };
            let update = MemoryUpdate {
                content: opt_str(args, "content")?,
                metadata: metadata(args)?,
                kind: kind(args)?,
                expires_at,
                ..MemoryUpdate::default()
            };
            let record = match args.get("vector") {
                Some(v) => m.update_with_vector(&id, update, vector(v)?)?,
                None => m.update(&id, update)?,
            };
            Ok(record_json(&record))
        }
        "delete" => {
            only(args, &["id"])?;
            m.delete(&req_str(args, "id")?)?;
            Ok(json!({}))
        }
        "delete_all" => {
            only(
                args,
                &["user_id", "agent_id", "run_id", "org_id", "filters"],
            )?;
            let n = m.delete_all(&scope(args)?, filters(args)?.as_ref())?;
            Ok(json!({ "deleted": n }))
        }
        "history" => {
            only(args, &["id"])?;
            let entries: Vec<Value> = m
                .history(&req_str(args, "id")?)?
                .iter()
                .map(record_json)
                .collect();
            let events: Vec<Value> = entries.iter().map(|e| e["event"].clone()).collect();
            Ok(json!({"count": entries.len(), "events": events, "entries": entries}))
        }
        "search" => {
            only(
                args,
                &[
                    "query",
                    "vector",
                    "mode",
                    "limit",
                    "threshold",
                    "user_id",
                    "agent_id",
                    "run_id",
                    "org_id",
                    "include_global",
                    "include_expired",
                    "filters",
                    "weights",
                ],
            )?;
            let query = opt_str(args, "query")?.unwrap_or_default();
            let mut options = SearchOptions::new().scope(scope(args)?);
            options.include_global = opt_bool(args, "include_global")?;
            options.include_expired = opt_bool(args, "include_expired")?;
            options.filter = filters(args)?;
            if let Some(mode) = opt_str(args, "mode")? {
                options.mode = mode.parse::<SearchMode>()?;
            }
            if let Some(limit) = opt_usize(args, "limit")? {
                options.limit = limit;
            }
            match args.get("threshold") {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) => options.threshold = n.as_f64().map(|t| t as f32),
                Some(other) => return case_err(format!("threshold: bad value {other}")),
            }
            if let Some(w) = args.get("weights") {
                options.weights = serde_json::from_value::<FusionWeights>(w.clone())
                    .map_err(|e| StepError::Case(format!("weights: {e}")))?;
            }
            let hits = match args.get("vector") {
                Some(v) => m.search_with_vector(&query, &vector(v)?, &options)?,
                None => m.search(&query, &options)?,
            };
            Ok(items_result(hits.iter().map(record_json).collect()))
        }
        "reset" => {
            only(args, &[])?;
            m.reset()?;
            Ok(json!({}))
        }
        "purge_expired" => {
            only(args, &[])?;
            Ok(json!({ "deleted": m.purge_expired()? }))
        }
        "mark_time" => {
            only(args, &[])?;
            // Strictly after everything before, strictly before everything after.
            std::thread::sleep(Duration::from_millis(3));
            let now = format_time(chrono::Utc::now());
            std::thread::sleep(Duration::from_millis(3));
            Ok(json!({ "time": now }))
        }
        other => case_err(format!("unknown op {other:?}")),
    }
}

// ------------------------------------------------------------------------------- matching

fn numbers_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4
}

/// `expected` matches `actual`: null matches null or absent, objects by the keys they name
/// (except `metadata`, compared whole), lists element by element, numbers within 1e-4.
fn matches(expected: &Value, actual: Option<&Value>, exact: bool) -> bool {
    let actual_or_null = actual.unwrap_or(&Value::Null);
    match (expected, actual_or_null) {
        (Value::Null, a) => a.is_null(),
        (Value::Number(e), Value::Number(a)) => numbers_equal(
            e.as_f64().unwrap_or(f64::NAN),
            a.as_f64().unwrap_or(f64::NAN),
        ),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, Some(a), exact))
        }
        (Value::Object(e), Value::Object(a)) => {
            (!exact || e.len() == a.len())
                && e.iter().all(|(k, ev)| {
                    let whole = exact || k == "metadata";
                    matches(ev, a.get(k), whole)
                })
        }
        (e, a) => e == a,
    }
}

fn as_multiset(v: &Value) -> Option<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for item in v.as_array()? {
        *out.entry(item.to_string()).or_default() += 1;
    }
    Some(out)
}

/// Checks every expectation of a step against the op's result; returns what failed.
fn check(expect: &Map<String, Value>, result: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |key: &str, expected: &Value, got: &Value| {
        failures.push(format!("{key}: expected {expected}, got {got}"));
    };
    for (key, expected) in expect {
        let ids = &result["ids"];
        match key.as_str() {
            "ids_in_order" => {
                if !matches(expected, Some(ids), false) {
                    fail(key, expected, ids);
                }
            }
            "contents_in_order" => {
                if !matches(expected, Some(&result["contents"]), false) {
                    fail(key, expected, &result["contents"]);
                }
            }
            "ids_any_order" | "contents_any_order" => {
                let field = if key == "ids_any_order" {
                    "ids"
                } else {
                    "contents"
                };
                if as_multiset(expected).is_none()
                    || as_multiset(expected) != as_multiset(&result[field])
                {
                    fail(key, expected, &result[field]);
                }
            }
            "includes" | "excludes" => {
                let got: Vec<&Value> = ids
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let want = expected.as_array().cloned().unwrap_or_default();
                let ok = want
                    .iter()
                    .all(|id| got.contains(&id) == (key == "includes"));
                if !ok || !expected.is_array() {
                    fail(key, expected, ids);
                }
            }
            "first" => {
                let first = result["items"].get(0);
                if !matches(expected, first, false) || first.is_none() {
                    fail(key, expected, first.unwrap_or(&Value::Null));
                }
            }
            _ => {
                if !matches(expected, result.get(key), key == "metadata") {
                    fail(key, expected, result.get(key).unwrap_or(&Value::Null));
                }
            }
        }
    }
    failures
}

// ------------------------------------------------------------------------------- files

const STEP_KEYS: [&str; 10] = [
    "op",
    "args",
    "expect",
    "expect_error",
    "error_contains",
    "save_id",
    "save_ids",
    "save_cursor",
    "save_time",
    "note",
];

/// Runs one case file; returns the number of steps run, or the first failure.
/// Runs one case file against a fresh store: in memory, or at `store` (a PostgreSQL URL).
fn run_file(path: &Path, store: Option<&str>) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if case["name"] != stem {
        return Err(format!("name {} differs from the file name", case["name"]));
    }
    if !case["description"].is_string() {
        return Err("description missing".into());
    }
    let builder = match store {
        Some(location) => Memory::builder().path(location),
        None => Memory::builder(),
    };
    let memory = match case["embedder"].as_str() {
        Some("hashing-64") => builder.embedder(Arc::new(HashingEmbedder::new(64))),
        Some("none") => builder.without_embedder(),
        other => return Err(format!("unknown embedder {other:?}")),
    }
    .build()
    .map_err(|e| e.to_string())?;
    let steps = case["steps"].as_array().ok_or("steps missing")?;
    let mut vars: HashMap<String, Value> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap_or("?");
        let at = |msg: String| format!("step {i} ({op}): {msg}");
        let step = step.as_object().ok_or_else(|| at("not an object".into()))?;
        if let Some(key) = step.keys().find(|k| !STEP_KEYS.contains(&k.as_str())) {
            return Err(at(format!("unknown step key {key:?}")));
        }
        if step.contains_key("expect") && step.contains_key("expect_error") {
            return Err(at("expect and expect_error together".into()));
        }
        let args = match step.get("args") {
            None => Value::Object(Map::new()),
            Some(a) => resolve(a, &vars).map_err(at)?,
        };
        let Value::Object(args) = args else {
            return Err(at("args must be an object".into()));
        };
        let outcome = run_op(&memory, op, &args);
        let result = match (outcome, step.get("expect_error")) {
            (Err(StepError::Case(msg)), _) => return Err(at(format!("bad case: {msg}"))),
            (Ok(v), Some(code)) => return Err(at(format!("expected error {code}, got {v}"))),
            (Err(StepError::Api(e)), None) => return Err(at(format!("unexpected error: {e}"))),
            (Err(StepError::Api(e)), Some(code)) => {
                if code.as_str() != Some(e.code().name()) {
                    return Err(at(format!("expected error {code}, got {e}")));
                }
                if let Some(part) = step.get("error_contains") {
                    let part = resolve(part, &vars).map_err(at)?;
                    if !e.message().contains(part.as_str().unwrap_or("\u{0}")) {
                        return Err(at(format!("error {e:?} does not contain {part}")));
                    }
                }
                continue;
            }
            (Ok(v), None) => v,
        };
        let mut save = |key: &str, value: &Value| -> Result<(), String> {
            if let Some(name) = step.get(key) {
                let name = name
                    .as_str()
                    .ok_or_else(|| at(format!("{key} is a name")))?;
                vars.insert(name.to_string(), value.clone());
            }
            Ok(())
        };
        save("save_id", &result["id"])?;
        save("save_cursor", &result["next_cursor"])?;
        save("save_time", &result["time"])?;
        if let Some(names) = step.get("save_ids") {
            let names = names
                .as_array()
                .ok_or_else(|| at("save_ids is a list".into()))?;
            for (j, name) in names.iter().enumerate() {
                let name = name
                    .as_str()
                    .ok_or_else(|| at("save_ids holds names".into()))?;
                vars.insert(name.to_string(), result["ids"][j].clone());
            }
        }
        if let Some(expect) = step.get("expect") {
            let expect = resolve(expect, &vars).map_err(at)?;
            let expect = expect
                .as_object()
                .ok_or_else(|| at("expect must be an object".into()))?;
            let failures = check(expect, &result);
            if !failures.is_empty() {
                return Err(at(failures.join("; ")));
            }
        }
    }
    Ok(steps.len())
}

fn case_files() -> Vec<PathBuf> {
    let dir = repo_tests_dir().join("conformance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance_cases() {
    run_all(|_| None);
}

/// The same cases on PostgreSQL (feature `postgres`), each in a schema of its own.
#[cfg(feature = "postgres")]
#[test]
fn conformance_cases_on_postgres() {
    let _server = support::pg::shared();
    if support::pg::server_url("conformance_cases_on_postgres").is_none() {
        return;
    }
    run_all(support::pg::fresh_store_url);
}

/// Runs every case file; `store` gives each file's store location (`None`: in memory).
fn run_all(store: impl Fn(&str) -> Option<String>) {
    let files = case_files();
    let mut failures = Vec::new();
    let mut steps = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        let location = store(&name);
        match run_file(path, location.as_deref()) {
            Ok(n) => steps += n,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(files.len() >= MIN_FILES, "only {} case files", files.len());
    assert!(steps >= MIN_STEPS, "only {steps} steps ran");
    println!("{} case files, {steps} steps", files.len());
}

/// The matcher itself: a runner that accepts everything would make every case pass.
#[test]
fn the_matcher_rejects_what_it_should() {
    let record = json!({"id": "a", "content": "x", "metadata": {"k": 1, "j": 2}, "items": []});
    assert!(matches(&json!({"content": "x"}), Some(&record), false));
    assert!(!matches(&json!({"content": "y"}), Some(&record), false));
    assert!(matches(&json!({"user_id": null}), Some(&record), false));
    assert!(!matches(&json!({"content": null}), Some(&record), false));
    assert!(!matches(
        &json!({"metadata": {"k": 1}}),
        Some(&record),
        false
    ));
    assert!(matches(
        &json!({"metadata": {"k": 1, "j": 2}}),
        Some(&record),
        false
    ));
    assert!(!matches(&json!([1, 2]), Some(&json!([1, 2, 3])), false));
    assert!(matches(&json!(0.5), Some(&json!(0.50001)), false));
    assert!(!matches(&json!(0.5), Some(&json!(0.51)), false));
    let get = |k: &str| check(json!({ k: {"k": 1} }).as_object().unwrap(), &record);
    assert!(
        !get("metadata").is_empty(),
        "metadata is compared whole at the top level too"
    );
    let list = items_result(vec![
        json!({"id": "a", "content": "x"}),
        json!({"id": "b", "content": "y"}),
    ]);
    assert!(check(
        json!({"ids_in_order": ["a", "b"]}).as_object().unwrap(),
        &list
    )
    .is_empty());
    assert!(!check(
        json!({"ids_in_order": ["b", "a"]}).as_object().unwrap(),
        &list
    )
    .is_empty());
    assert!(check(
        json!({"ids_any_order": ["b", "a"]}).as_object().unwrap(),
        &list
    )
    .is_empty());
    assert!(!check(json!({"ids_any_order": ["a"]}).as_object().unwrap(), &list).is_empty());
    assert!(check(
        json!({"includes": ["b"], "excludes": ["c"]})
            .as_object()
            .unwrap(),
        &list
    )
    .is_empty());
    assert!(!check(json!({"excludes": ["a"]}).as_object().unwrap(), &list).is_empty());
    assert!(!check(json!({"first": {"id": "b"}}).as_object().unwrap(), &list).is_empty());
    assert!(check(
        json!({"count": 2, "contents_in_order": ["x", "y"]})
            .as_object()
            .unwrap(),
        &list
    )
    .is_empty());
    let vars = HashMap::from([("m1".to_string(), json!("id-1"))]);
    assert_eq!(
        resolve(&json!(["$m1", "$$m1"]), &vars).unwrap(),
        json!(["id-1", "$m1"])
    );
    assert_eq!(
        resolve(&json!({"$repeat": ["ab", 3]}), &vars).unwrap(),
        json!("ababab")
    );
    assert!(resolve(&json!("$nope"), &vars).is_err());
}
