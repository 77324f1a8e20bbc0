//! Every operation of the one dispatch (`wire::call_text`) on any request text, against one
//! in-memory store: a result or a clear error, never a panic or an internal error, and a
//! refused request leaves the store as it was.
#![no_main]

use std::sync::OnceLock;

use agent_mem::{wire, ErrorCode, Memory};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn store() -> &'static Memory {
    static STORE: OnceLock<Memory> = OnceLock::new();
    STORE.get_or_init(|| {
        let options = json!({"embedder": {"provider": "hashing", "dimensions": 8}});
        wire::open(None, &options).expect("an in-memory store opens")
    })
}

/// What a refused request must not change: every memory and its history.
fn snapshot(memory: &Memory) -> String {
    let listed = wire::call(
        memory,
        "list",
        &json!({"limit": 1000, "include_expired": true}),
    )
    .expect("list");
    listed.to_string()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(request) = std::str::from_utf8(rest) else {
        return;
    };
    let operation = wire::OPERATIONS[usize::from(selector) % wire::OPERATIONS.len()];
    let memory = store();
    let before = snapshot(memory);
    match wire::call_text(memory, operation, request) {
        Ok(_) => {}
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "{operation}: {e}");
            if e.code() == ErrorCode::InvalidInput {
                assert_eq!(before, snapshot(memory), "{operation} {request}: {e}");
            }
        }
    }
    // Keep the store small, so that every run stays fast.
    if wire::count(memory, &json!({})).unwrap_or(0) > 200 {
        memory.reset().expect("reset");
    }
});
