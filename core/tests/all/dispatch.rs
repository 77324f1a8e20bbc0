//! The one dispatch (`wire::call`): every operation it lists is called by name with the
//! requests of `tests/dispatch/calls.json` (the cases every surface runs), and bad calls —
//! an unknown operation, text that is not JSON, a request of the wrong type or with a
//! misspelt key — are `InvalidInput` and leave the store as it was.

use std::collections::BTreeSet;
use std::path::PathBuf;

use agent_mem::wire::{self, Embeddings};
use agent_mem::{ErrorCode, Memory, Scope};
use serde_json::{json, Value};

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/dispatch")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(cases_dir().join("calls.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `"$id"`, `"$change"`, `"$entity"`, `"$object"` and `"$plugin"` replaced, everywhere in
/// `value` (`vars`: the id, the last change id and the last relation's subject and object
/// entities).
fn resolve(value: &Value, vars: &(String, String, String, String)) -> Value {
    let (id, change, entity, object) = vars;
    match value {
        Value::String(s) if s == "$id" => json!(id),
        Value::String(s) if s == "$change" => json!(change),
        Value::String(s) if s == "$entity" => json!(entity),
        Value::String(s) if s == "$object" => json!(object),
        Value::String(s) if s == "$plugin" => {
            json!(cases_dir().join("noop.wat").to_string_lossy())
        }
        Value::Array(items) => items.iter().map(|v| resolve(v, vars)).collect(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, vars)))
            .collect(),
        other => other.clone(),
    }
}

/// The matching rule of calls.json: an object's keys, a list item by item, a scalar equal.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|got| matches(v, got))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        (e, a) => e == a,
    }
}

fn store() -> Memory {
    wire::open(None, &cases()["options"]).unwrap()
}

fn count(m: &Memory) -> usize {
    m.count(&Scope::global(), None).unwrap()
}

#[test]
fn every_operation_runs_through_the_dispatch() {
    let cases = cases();
    let calls = cases["calls"].as_array().unwrap();
    let named: BTreeSet<&str> = calls.iter().map(|c| c[0].as_str().unwrap()).collect();
    let listed: BTreeSet<&str> = wire::OPERATIONS.iter().copied().collect();
    assert_eq!(
        named, listed,
        "tests/dispatch/calls.json must call every operation wire::OPERATIONS lists"
    );
    assert_eq!(
        listed.len(),
        wire::OPERATIONS.len(),
        "an operation is listed twice"
    );

    let m = store();
    let mut vars = (String::new(), String::new(), String::new(), String::new());
    for call in calls {
        let op = call[0].as_str().unwrap();
        let request = resolve(&call[1], &vars);
        let result = wire::call(&m, op, &request);
        if op.starts_with("plugin_") && !cfg!(feature = "plugins") {
            assert_eq!(result.unwrap_err().code(), ErrorCode::Unsupported, "{op}");
            continue;
        }
        if let Some(code) = call[2].get("$error") {
            let err = result.expect_err(op);
            assert_eq!(json!(err.code().name()), *code, "{op} {request}: {err}");
            continue;
        }
        let result = result.unwrap_or_else(|e| panic!("{op} {request}: {e}"));
        if vars.0.is_empty() && op == "add" {
            vars.0 = result["id"].as_str().unwrap().to_string();
        }
        if let Some(change) = result["change_id"].as_str() {
            vars.1 = change.to_string();
        }
        if let Some(entity) = result["relation"]["subject"].as_str() {
            vars.2 = entity.to_string();
            vars.3 = result["relation"]["object"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        let expected = resolve(&call[2], &vars);
        assert!(
            matches(&expected, &result),
            "{op} {request}: expected {expected}, got {result}"
        );
    }
}

#[test]
fn the_text_entry_gives_the_same_results() {
    let m = store();
    let added = wire::call_text(&m, "add", r#"{"content": "likes tea"}"#).unwrap();
    let added: Value = serde_json::from_str(&added).unwrap();
    let request = json!({"id": added["id"]}).to_string();
    let record: Value =
        serde_json::from_str(&wire::call_text(&m, "get", &request).unwrap()).unwrap();
    assert_eq!(
        record,
        wire::get(&m, added["id"].as_str().unwrap()).unwrap()
    );
    assert_eq!(wire::call_text(&m, "count", "null").unwrap(), "1");
    assert_eq!(wire::call_text(&m, "delete", &request).unwrap(), "null");
}

#[test]
fn an_unknown_operation_is_refused_by_name() {
    let m = store();
    wire::call(&m, "add", &json!({"content": "kept"})).unwrap();
    for op in [
        "frobnicate",
        "",
        "Add",
        "add_with_vector",
        "plugin_call",
        "copy_into",
    ] {
        let e = wire::call(&m, op, &json!({"content": "x"})).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{op}");
        assert!(
            e.message().contains(&format!("{op:?}")),
            "{op}: {}",
            e.message()
        );
        let e = wire::call_text(&m, op, "not json").unwrap_err();
        assert!(e.message().contains("unknown operation"), "{}", e.message());
    }
    assert_eq!(count(&m), 1);
}

#[test]
fn text_that_is_not_json_is_refused() {
    let m = store();
    for op in wire::OPERATIONS {
        for text in ["", "{", "{\"content\": }", "nul"] {
            let e = wire::call_text(&m, op, text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{op} {text:?}");
            assert!(e.message().contains("not valid JSON"), "{}", e.message());
        }
    }
    assert_eq!(count(&m), 0);
}

/// Each operation given a request of the wrong type, a misspelt key, or embeddings it does
/// not take: refused, and nothing changes (`reset`, `delete_all` and `delete` included).
#[test]
fn bad_requests_change_nothing() {
    let m = store();
    let id = wire::call(
        &m,
        "add",
        &json!({"content": "Alice drinks tea", "user_id": "a"}),
    )
    .unwrap()["id"]
        .clone();
    wire::call(&m, "add", &json!({"content": "Bob", "user_id": "b"})).unwrap();
    let before = wire::call(&m, "list", &json!({"order": "created_asc"})).unwrap();
    let plugin = cases_dir().join("noop.wat");
    for op in wire::OPERATIONS {
        let misspelt = json!({"id": id, "user_id": "a", "content": "x", "memories": [],
                              "messages": "x", "query": "x", "path": plugin, "usr": 1});
        let mut bad = vec![
            (json!([1]), Embeddings::None),
            (json!("text"), Embeddings::None),
            (json!(7), Embeddings::None),
            (
                json!({"id": 5, "user_id": 5, "content": 5, "memories": 5}),
                Embeddings::None,
            ),
            (misspelt, Embeddings::None),
        ];
        if !matches!(*op, "add" | "search" | "update") {
            bad.push((json!({"id": id}), Embeddings::One(vec![1.0; 8])));
        }
        if *op != "add_batch" {
            bad.push((json!({"id": id}), Embeddings::Many(vec![vec![1.0; 8]])));
        }
        for (request, embeddings) in bad {
            let e = wire::call_with(&m, op, request.clone(), embeddings).unwrap_err();
            let unsupported = !cfg!(feature = "plugins") && op.starts_with("plugin_");
            let expected = if unsupported && e.code() == ErrorCode::Unsupported {
                ErrorCode::Unsupported
            } else {
                ErrorCode::InvalidInput
            };
            assert_eq!(e.code(), expected, "{op} {request}: {}", e.message());
        }
        let after = wire::call(&m, "list", &json!({"order": "created_asc"})).unwrap();
        assert_eq!(before, after, "{op} changed the store");
    }
    #[cfg(feature = "plugins")]
    assert_eq!(m.plugins().list().len(), 0);
}

#[test]
fn embeddings_travel_natively_or_as_json() {
    let m = wire::open(None, &json!({"embedder": "none"})).unwrap();
    let native = Embeddings::One(vec![1.0, 0.0]);
    let a = wire::call_with(&m, "add", json!({"content": "east"}), native).unwrap();
    let b = wire::call(&m, "add", &json!({"content": "north", "vector": [0, 1]})).unwrap();
    let batch = Embeddings::from_options(None, Some(vec![vec![1.0, 1.0]])).unwrap();
    wire::call_with(
        &m,
        "add_batch",
        json!({"memories": [{"content": "both"}]}),
        batch,
    )
    .unwrap();
    wire::call(
        &m,
        "add_batch",
        &json!({"memories": [{"content": "neither"}], "vectors": [[-1, -1]]}),
    )
    .unwrap();
    let hits = wire::call(&m, "search", &json!({"vector": [0.1, 1], "mode": "vector"})).unwrap();
    assert_eq!(hits[0]["id"], b["id"]);
    let hits = wire::call_with(
        &m,
        "search",
        json!({"mode": "vector", "limit": 1}),
        Embeddings::One(vec![1.0, 0.1]),
    )
    .unwrap();
    assert_eq!(hits[0]["id"], a["id"]);
    // NaN reaches the core's own check when given natively.
    let e = wire::call_with(
        &m,
        "add",
        json!({"content": "nan"}),
        Embeddings::One(vec![f32::NAN, 0.0]),
    )
    .unwrap_err();
    assert!(e.message().contains("NaN"), "{}", e.message());
    let twice = wire::call_with(
        &m,
        "add",
        json!({"content": "twice", "vector": [1, 0]}),
        Embeddings::One(vec![1.0, 0.0]),
    )
    .unwrap_err();
    assert!(
        twice.message().contains("given twice"),
        "{}",
        twice.message()
    );
    let both = Embeddings::from_options(Some(vec![1.0]), Some(vec![])).unwrap_err();
    assert_eq!(both.code(), ErrorCode::InvalidInput);
    let updated = wire::call(
        &m,
        "update",
        &json!({"id": a["id"], "content": "west", "vector": [-1, 0]}),
    )
    .unwrap();
    assert_eq!(updated["content"], "west");
    assert_eq!(count(&m), 4);
}

/// The committed schema (`tests/dispatch/schema.json`, read by the Python and Node suites to
/// check their declarations) is the one `wire::schema()` derives from the Rust types.
/// `AGENTMEM_UPDATE_SCHEMA=1` rewrites it.
#[cfg(feature = "plugins")]
#[test]
fn the_committed_schema_is_current() {
    let path = cases_dir().join("schema.json");
    let derived = serde_json::to_string_pretty(&wire::schema()).unwrap() + "\n";
    if std::env::var_os("AGENTMEM_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &derived).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == derived,
        "tests/dispatch/schema.json is stale: AGENTMEM_UPDATE_SCHEMA=1 cargo test \
         --features plugins,postgres -p agent-mem --test all the_committed_schema"
    );
}

/// Why `value` does not fit `schema`, for the keywords the derived schemas use (`type`,
/// `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`,
/// `oneOf`, `minimum`); `None` when it fits.
fn misfit(schema: &Value, value: &Value, at: &str) -> Option<String> {
    let Value::Object(s) = schema else {
        return (schema == &json!(false)).then(|| format!("{at}: nothing fits"));
    };
    if let Some(types) = s.get("type") {
        let names: Vec<&str> = match types {
            Value::Array(t) => t.iter().filter_map(Value::as_str).collect(),
            t => vec![t.as_str().unwrap()],
        };
        let fits = names.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("type {other} in the schema"),
        });
        if !fits {
            return Some(format!("{at}: {value} is not {names:?}"));
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(value) {
            return Some(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(constant) = s.get("const") {
        if constant != value {
            return Some(format!("{at}: {value} is not {constant}"));
        }
    }
    if let (Some(minimum), Some(n)) = (s.get("minimum").and_then(Value::as_f64), value.as_f64()) {
        if n < minimum {
            return Some(format!("{at}: {n} is below {minimum}"));
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = s.get(key) {
            let fitting = options
                .iter()
                .filter(|o| misfit(o, value, at).is_none())
                .count();
            if fitting == 0 || (key == "oneOf" && fitting > 1) {
                return Some(format!("{at}: {value} fits {fitting} of {key}"));
            }
        }
    }
    if let Value::Array(items) = value {
        if let Some(item) = s.get("items") {
            for (i, v) in items.iter().enumerate() {
                if let Some(why) = misfit(item, v, &format!("{at}[{i}]")) {
                    return Some(why);
                }
            }
        }
    }
    if let Value::Object(fields) = value {
        let properties = s.get("properties").and_then(Value::as_object);
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !fields.contains_key(name.as_str().unwrap()) {
                return Some(format!("{at}: {name} is required"));
            }
        }
        for (name, v) in fields {
            let at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(field) => {
                    if let Some(why) = misfit(field, v, &at) {
                        return Some(why);
                    }
                }
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Some(format!("{at} is not allowed")),
                    Some(other) => {
                        if let Some(why) = misfit(other, v, &at) {
                            return Some(why);
                        }
                    }
                    None => {}
                },
            }
        }
    }
    None
}

/// Every request of calls.json fits its operation's request schema and every result its
/// result schema; misspelt keys and wrong types do not fit.
#[test]
fn the_schema_describes_the_real_requests_and_results() {
    let schema = wire::schema();
    let operations = schema["operations"].as_object().unwrap();
    let listed: BTreeSet<&str> = wire::OPERATIONS.iter().copied().collect();
    let described: BTreeSet<&str> = operations.keys().map(String::as_str).collect();
    assert_eq!(listed, described);

    let cases = cases();
    let m = store();
    let mut vars = (String::new(), String::new(), String::new(), String::new());
    for call in cases["calls"].as_array().unwrap() {
        let op = call[0].as_str().unwrap();
        if op.starts_with("plugin_") && !cfg!(feature = "plugins") {
            continue; // refused as Unsupported, whatever the request
        }
        let request = resolve(&call[1], &vars);
        let request_schema = &operations[op]["request"];
        if let Some(why) = misfit(request_schema, &request, op) {
            panic!("{op} request {request}: {why}");
        }
        if call[2].get("$error").is_some() {
            continue; // a refused call has no result to describe
        }
        let result = wire::call(&m, op, &request).unwrap();
        if vars.0.is_empty() && op == "add" {
            vars.0 = result["id"].as_str().unwrap().to_string();
        }
        if let Some(change) = result["change_id"].as_str() {
            vars.1 = change.to_string();
        }
        if let Some(entity) = result["relation"]["subject"].as_str() {
            vars.2 = entity.to_string();
            vars.3 = result["relation"]["object"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        if let Some(why) = misfit(&operations[op]["result"], &result, op) {
            panic!("{op} result {result}: {why}");
        }
    }

    let search = &operations["search"]["request"];
    assert!(misfit(search, &json!({"query": "x", "limt": 3}), "search").is_some());
    assert!(misfit(
        search,
        &json!({"query": "x", "include_global": "yes"}),
        "search"
    )
    .is_some());
    assert!(misfit(search, &json!({"query": 1}), "search").is_some());
    assert!(misfit(&operations["get"]["request"], &json!({}), "get").is_some());
    let hit = json!({"id": "x", "content": "c", "hash": "h", "kind": "episodic",
        "metadata": {}, "created_at": "t", "updated_at": "t", "version": 1, "valid_from_tx": "t",
        "score": 0.5, "explain": {}});
    assert!(misfit(&schema["types"]["SearchHit"], &hit, "hit").is_none());
    let mut no_score = hit.clone();
    no_score.as_object_mut().unwrap().remove("score");
    assert!(misfit(&schema["types"]["SearchHit"], &no_score, "hit").is_some());
}
