use super::*;
use crate::{NewMemory, Scope};

fn store() -> Memory {
    open(
        None,
        &json!({"embedder": {"provider": "hashing", "dimensions": 32}}),
    )
    .unwrap()
}

#[test]
fn a_misspelt_key_is_refused_by_name() {
    let m = store();
    let e = add(&m, &json!({"content": "x", "usr_id": "a"})).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
    assert!(e.message().contains("usr_id"), "{}", e.message());
    assert_eq!(m.count(&Scope::global(), None).unwrap(), 0);
}

#[test]
fn requests_round_trip_through_every_operation() {
    let m = store();
    let out = add(
        &m,
        &json!({"content": "likes tea", "user_id": "u", "kind": "semantic"}),
    )
    .unwrap();
    let id = out["id"].as_str().unwrap().to_string();
    assert_eq!(out["added"], true);
    assert_eq!(get(&m, &id).unwrap()["kind"], "semantic");
    let page = list(&m, &json!({"user_id": "u"})).unwrap();
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert!(page["next_cursor"].is_null());
    assert_eq!(count(&m, &Value::Null).unwrap(), 1);
    let hits = search(&m, &json!({"query": "tea", "mode": "keyword"})).unwrap();
    assert_eq!(hits[0]["id"], id.as_str());
    let updated = update(&m, &id, &json!({"content": "likes green tea"})).unwrap();
    assert_eq!(updated["content"], "likes green tea");
    assert_eq!(history(&m, &id).unwrap().as_array().unwrap().len(), 2);
    let batch = add_batch(
        &m,
        &json!({"memories": [{"content": "a"}, {"content": "b"}]}),
    )
    .unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 2);
    assert_eq!(delete_all(&m, &json!({"user_id": "u"})).unwrap(), 1);
    delete(&m, batch[0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(count(&m, &json!({})).unwrap(), 1);
}

#[test]
fn a_misspelt_weight_is_refused() {
    let m = store();
    let e = search(&m, &json!({"query": "x", "weights": {"vectr": 5}})).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
    assert!(e.message().contains("vectr"), "{}", e.message());
}

#[test]
fn update_tells_a_null_expiry_from_a_missing_one() {
    let m = store();
    let id = add(&m, &json!({"content": "temp", "expires_at": "2999-01-01"})).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = update(&m, &id, &json!({"metadata": {"a": 1}})).unwrap();
    assert!(kept["expires_at"].is_string());
    let cleared = update(&m, &id, &json!({"expires_at": null})).unwrap();
    assert!(cleared.get("expires_at").is_none());
}

#[test]
fn options_are_checked() {
    for (options, needle) in [
        (json!({"embedder": "gpt"}), "unknown provider"),
        (json!({"embedder": {"provider": "hashing"}}), "dimensions"),
        (
            json!({"embedder": {"provider": "hashing", "dimensions": 0}}),
            "dimensions",
        ),
        (json!({"index": {"quantization": "f8"}}), "quantization"),
        (json!({"index": {"conectivity": 8}}), "conectivity"),
        (json!({"search": {"mode": "magic"}}), "magic"),
        (json!([1]), "must be a JSON object"),
    ] {
        let e = OpenOptions::from_json(&options).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{options}");
        assert!(e.message().contains(needle), "{options}: {}", e.message());
    }
    let e = open(Some(""), &Value::Null).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::InvalidInput);
}

#[test]
fn search_defaults_from_the_options_apply() {
    let m = open(
        None,
        &json!({"embedder": "none", "search": {"mode": "keyword", "limit": 1}}),
    )
    .unwrap();
    m.add_with_vector(NewMemory::new("red apple"), vec![1.0, 0.0])
        .unwrap();
    m.add_with_vector(NewMemory::new("red car"), vec![0.0, 1.0])
        .unwrap();
    // Keyword mode needs no embedder, and the limit of one comes from the options.
    let hits = search(&m, &json!({"query": "red"})).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1);
}

#[test]
fn batch_with_vectors_needs_one_vector_per_memory() {
    let m = open(None, &json!({"embedder": "none"})).unwrap();
    let e =
        add_batch_with_vectors(&m, &json!({"memories": [{"content": "a"}]}), vec![]).unwrap_err();
    assert!(e.message().contains("one vector per memory"));
    let e = add_batch(
        &m,
        &json!({"memories": [{"content": "a"}, {"user_id": "x"}]}),
    )
    .unwrap_err();
    assert!(
        e.message().contains("memories[1]: content is required"),
        "{}",
        e.message()
    );
}
