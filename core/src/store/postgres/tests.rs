//! Tests of the PostgreSQL backend that need its internals (the server from
//! `tests/postgres.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use chrono::Utc;

use super::*;
use crate::filter::Filter;
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
    });
    let err = err.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Storage);
    assert!(err.message().contains("exhausted"), "{err}");
    drop(held);
    assert!(store.info().is_ok());
}
