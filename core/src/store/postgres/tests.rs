//! Tests of the PostgreSQL backend that need its internals (the server from
//! `tests/postgres.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use chrono::Utc;

use super::*;
use crate::filter::Filter;
use crate::text;
use crate::types::{MemoryKind, Metadata};

/// A URL to a fresh schema on the test server (`tests/postgres.sh`), or `None` without
/// one (a failure when `AGENTMEM_REQUIRE_POSTGRES=1`).
fn fresh_url(name: &str) -> Option<String> {
    let Ok(server) = std::env::var("AGENTMEM_TEST_PG_URL") else {
        assert!(
            std::env::var("AGENTMEM_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "AGENTMEM_REQUIRE_POSTGRES=1 but AGENTMEM_TEST_PG_URL is not set"
        );
        println!("SKIPPED {name}: no PostgreSQL server (AGENTMEM_TEST_PG_URL)");
        return None;
    };
    let schema = format!("u_{name}_{}", std::process::id());
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let sep = if server.contains('?') { '&' } else { '?' };
    Some(format!("{server}{sep}options=-csearch_path%3D{schema}"))
}

fn record(content: &str) -> MemoryRecord {
    let now = Utc::now();
    MemoryRecord {
        id: uuid::Uuid::new_v4().to_string(),
        content: content.into(),
        hash: crate::types::content_hash(content),
        kind: MemoryKind::default(),
        scope: Scope::default(),
        metadata: Metadata::new(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        version: 1,
        valid_from_tx: now,
        valid_to_tx: None,
        valid_from: None,
        valid_to: None,
        superseded_by: None,
    }
}

#[test]
fn deadlocked_writers_are_run_again() {
    let Some(url) = fresh_url("deadlock") else {
        return;
    };
    let store = Arc::new(
        PgStore::open(
            &url,
            &PostgresOptions::default(),
            VectorIndexOptions::default(),
        )
        .unwrap(),
    );
    let (a, b) = (record("first"), record("second"));
    crate::store::write(&*store, |tx| {
        tx.record_dimensions(2)?;
        tx.insert(&a, &[1.0, 0.0], "test")?;
        tx.insert(&b, &[0.0, 1.0], "test")?;
        Ok(())
    })
    .unwrap();
    // Two writers lock the same two rows in opposite orders, meeting in the middle: the
    // server breaks the deadlock by failing one, which runs again and succeeds.
    let barrier = Arc::new(Barrier::new(2));
    let runs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = [(a.id.clone(), b.id.clone()), (b.id.clone(), a.id.clone())]
        .into_iter()
        .map(|(first, second)| {
            let (store, barrier, runs) = (store.clone(), barrier.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut attempt = 0;
                crate::store::write(&*store, |tx| {
                    attempt += 1;
                    runs.fetch_add(1, Ordering::SeqCst);
                    let (key, old) = tx.get(&first)?.unwrap();
                    if attempt == 1 {
                        barrier.wait();
                    }
                    tx.get(&second)?.unwrap();
                    let mut new = old.clone();
                    new.metadata.insert("touched".into(), true.into());
                    tx.update(key, &old, &new, None, "test")
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert!(runs.load(Ordering::SeqCst) >= 3, "no writer ran again");
    let touched = Filter::parse(r#"{"touched": true}"#).unwrap();
    let selection = Selection {
        filter: touched,
        include_expired: true,
        now: Utc::now(),
        as_of: None,
        include_superseded: false,
    };
    assert_eq!(store.count(&selection).unwrap(), 2);
    // One UPDATE row each: the failed attempt left nothing behind.
    assert_eq!(store.history(&a.id).unwrap().len(), 2);
    assert_eq!(store.history(&b.id).unwrap().len(), 2);
}

#[test]
fn a_busy_pool_says_so() {
    let Some(url) = fresh_url("busy_pool") else {
        return;
    };
    let options = PostgresOptions {
        pool_size: 1,
        pool_timeout_ms: 50,
        ..Default::default()
    };
    let store = PgStore::open(&url, &options, VectorIndexOptions::default()).unwrap();
    let held = store.pool.get().unwrap();
    let err = store.count(&Selection {
        filter: Filter::All,
        include_expired: true,
        now: Utc::now(),
        as_of: None,
        include_superseded: false,
    });
    let err = err.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(err.message().contains("exhausted"), "{err}");
    drop(held);
    assert!(store.info().is_ok());
}

/// A vector of a content: a few letter counts, so that different texts point apart.
fn toy_vector(content: &str) -> Vec<f32> {
    let count = |c: char| content.chars().filter(|x| *x == c).count() as f32;
    vec![1.0, count('a'), count('e'), count('o') + 0.5]
}

/// The changes of the as-of comparison, each in a transaction of its own, on one store;
/// the moments between them. Memories are never deleted right before an add, so both
/// backends number memories and versions alike.
fn versions_script(store: &dyn Store) -> Vec<DateTime<Utc>> {
    use chrono::SubsecRound;
    let moment = || {
        std::thread::sleep(Duration::from_millis(3));
        let at = Utc::now().trunc_subsecs(6);
        std::thread::sleep(Duration::from_millis(3));
        at
    };
    let mut ids: Vec<String> = Vec::new();
    let mut moments = vec![moment()];
    let contents = [
        ("tea tea with lemon", "u1"),
        ("green tea in the morning", "u1"),
        ("coffee and tea at noon", "u2"),
        ("water is good", "u2"),
        ("black coffee coffee", "u1"),
        ("tea ceremony in kyoto with green matcha tea", "u2"),
    ];
    let add = |ids: &mut Vec<String>, content: &str, user: &str| {
        let mut rec = record(content);
        rec.scope = Scope::user(user);
        crate::store::write(store, |tx| {
            let now = tx.now()?;
            let rec = MemoryRecord {
                created_at: now,
                updated_at: now,
                valid_from_tx: now,
                ..rec.clone()
            };
            tx.record_dimensions(4)?;
            tx.insert(&rec, &toy_vector(content), "test").map(|_| ())
        })
        .unwrap();
        ids.push(rec.id);
    };
    let update = |id: &str, content: Option<&str>| {
        crate::store::write(store, |tx| {
            let now = tx.now()?;
            let (key, old) = tx.get(id)?.unwrap();
            let mut new = old.next_version(now);
            match content {
                Some(c) => {
                    new.content = c.to_string();
                    new.hash = crate::types::content_hash(c);
                }
                None => {
                    new.metadata.insert("seen".into(), true.into());
                }
            }
            let vector = content.map(toy_vector);
            tx.update(key, &old, &new, vector.as_deref(), "test")
        })
        .unwrap();
    };
    let delete = |id: &str| {
        crate::store::write(store, |tx| {
            let now = tx.now()?;
            let (key, rec) = tx.get(id)?.unwrap();
            tx.delete(key, &rec, "test", now)
        })
        .unwrap();
    };
    for (content, user) in contents {
        add(&mut ids, content, user);
    }
    moments.push(moment());
    update(&ids[1], Some("green water in the evening"));
    moments.push(moment());
    update(&ids[2], Some("milk and honey"));
    moments.push(moment());
    delete(&ids[0]);
    moments.push(moment());
    update(&ids[5], None);
    moments.push(moment());
    update(&ids[1], Some("tea again at night, tea"));
    moments.push(moment());
    add(&mut ids, "late tea with friends", "u1");
    moments.push(moment());
    delete(&ids[3]);
    moments.push(moment());
    moments
}

/// What the text primitives, the records and the vector reads of a store say of one
/// selection: keys, contents, versions and scores, as JSON.
fn primitives(store: &dyn Store, selection: &Selection) -> serde_json::Value {
    use serde_json::json;
    let mut out = serde_json::Map::new();
    let mut keys: Vec<i64> = Vec::new();
    let many: Vec<String> = std::iter::once("tea".to_string())
        .chain((0..40).map(|i| format!("filler{i}")))
        .collect();
    let queries: Vec<(Vec<String>, bool)> = vec![
        (text::query_terms("tea"), false),
        (text::query_terms("green tea"), false),
        (text::query_terms("green tea"), true),
        (text::query_terms("coffee water milk"), false),
        (many, false),
    ];
    store
        .read_text(selection, &mut |index| {
            for (terms, all) in &queries {
                let mut found = index.term_candidates(terms, *all, 100)?;
                found.sort_by_key(|f| f.0);
                keys.extend(found.iter().map(|f| f.0));
                out.insert(
                    format!("terms {:?} {all}", &terms[..2.min(terms.len())]),
                    json!(found),
                );
            }
            out.insert("contents".into(), json!(index.selection_contents(100)?));
            out.insert("documents".into(), json!(index.document_count()?));
            for term in ["tea", "green", "coffe"] {
                out.insert(format!("df {term}"), json!(index.document_frequency(term)?));
            }
            out.insert("needle".into(), json!(index.content_candidates("tea")?));
            Ok(())
        })
        .unwrap();
    let query = toy_vector("tea time");
    let mut nearest = store.nearest(&query, 20, selection).unwrap();
    nearest.sort_by_key(|n| n.0);
    keys.extend(nearest.iter().map(|n| n.0));
    out.insert("nearest".into(), json!(nearest));
    keys.sort_unstable();
    keys.dedup();
    let records: std::collections::BTreeMap<i64, (String, u64, bool)> = store
        .records(&keys)
        .unwrap()
        .into_iter()
        .map(|(k, r)| (k, (r.content, r.version, r.valid_to_tx.is_some())))
        .collect();
    out.insert("records".into(), json!(records));
    let similar: std::collections::BTreeMap<i64, f32> = store
        .similarities(&query, &keys)
        .unwrap()
        .into_iter()
        .collect();
    out.insert("similarities".into(), json!(similar));
    serde_json::Value::Object(out)
}

/// Equal, numbers within float noise (scores are computed in SQL on one side).
fn assert_close(got: &serde_json::Value, want: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (got, want) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{path}: {a} vs {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: {got} vs {want}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: {got} vs {want}");
            for (k, x) in a {
                assert_close(x, &b[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// As of every moment of a script of changes (and now), over the whole store and over a
/// user's memories, the text primitives (BM25 scores included: the past's own statistics,
/// as SQLite's index of the past), the records of past versions (negative keys), their
/// similarities and the nearest versions answer as SQLite's do.
#[test]
fn past_versions_read_as_on_sqlite_underneath() {
    let Some(url) = fresh_url("versions_primitives") else {
        return;
    };
    let pg = PgStore::open(
        &url,
        &PostgresOptions::default(),
        VectorIndexOptions::default(),
    )
    .unwrap();
    let lite = crate::store::open(None, &crate::store::StoreOptions::default()).unwrap();
    let moments_pg = versions_script(&pg);
    let moments_lite = versions_script(&*lite);
    let filters = [Filter::All, Filter::for_scope(&Scope::user("u1"), false)];
    let at = |at: Option<DateTime<Utc>>, filter: &Filter| {
        Selection {
            filter: filter.clone(),
            include_expired: false,
            now: Utc::now(),
            as_of: None,
            include_superseded: false,
        }
        .in_time(at, None, false)
    };
    let pairs = moments_pg
        .iter()
        .zip(&moments_lite)
        .map(|(a, b)| (Some(*a), Some(*b)))
        .chain([(None, None)]);
    let mut past_found = false;
    for (at_pg, at_lite) in pairs {
        for filter in &filters {
            let got = primitives(&pg, &at(at_pg, filter));
            let want = primitives(&*lite, &at(at_lite, filter));
            assert_close(&got, &want, &format!("as of {at_lite:?}, {filter:?}"));
            past_found |= got["records"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with('-'));
        }
    }
    assert!(past_found, "no past version was read");
}
