//! The filter language's parser on any text: a filter or an `InvalidInput` error, never a
//! panic (deep nesting and huge lists included).
#![no_main]

use agent_mem::{ErrorCode, Filter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Filter::parse(text) {
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
    }
});
