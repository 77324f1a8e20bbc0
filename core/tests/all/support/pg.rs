//! A fresh PostgreSQL schema per test, on the server `tests/postgres.sh` starts
//! (`AGENTMEM_TEST_PG_URL`), so that tests are independent and run in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The restart test (`postgres::a_server_restart_between_calls_goes_unnoticed`) stops the
/// server that every other PostgreSQL test uses: it takes this for writing, the others, in
/// every module of the test binary, for reading, so no test runs while the server is down.
/// (cargo nextest runs each test in a process of its own: there `.config/nextest.toml` runs
/// the restart test alone.)
pub static SERVER: RwLock<()> = RwLock::new(());

/// The lock [`SERVER`] taken for reading: held for the whole test by a test that uses the
/// server.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    SERVER.read().unwrap_or_else(|p| p.into_inner())
}

/// The test server's URL. `None` (after saying SKIPPED) when there is none, unless
/// `AGENTMEM_REQUIRE_POSTGRES=1`: then a missing server fails the test.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("AGENTMEM_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("AGENTMEM_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: AGENTMEM_REQUIRE_POSTGRES=1 but AGENTMEM_TEST_PG_URL is not set \
                 (run the tests through tests/postgres.sh)"
            );
            println!("SKIPPED {test}: no PostgreSQL server (AGENTMEM_TEST_PG_URL)");
            None
        }
    }
}

/// A URL to an empty schema of its own on the test server (its search path also holds
/// `public`, where `tests/postgres.sh` created the extensions), or `None` as
/// [`server_url`].
pub fn fresh_store_url(test: &str) -> Option<String> {
    let server = server_url(test)?;
    let schema = format!(
        "t_{}_{}_{}",
        test.chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            })
            .take(40)
            .collect::<String>(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    Some(with_search_path(&server, &schema))
}

/// The server URL with `options=-c search_path=<schema>,public`.
pub fn with_search_path(server: &str, schema: &str) -> String {
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-csearch_path%3D{schema}%2Cpublic")
}
