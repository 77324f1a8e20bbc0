//! The C ABI's JSON entry points on any bytes: the text is cut at its first NUL, as a C
//! string would be (or passed as NULL), and given to `am_memory_call` under any operation
//! name and to the typed exports. Each call returns a status with exactly one of its result
//! and its error set, and everything they return is freed (LeakSanitizer watches).
#![no_main]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use agentmem::*;
use libfuzzer_sys::fuzz_target;

struct Store(*mut am_memory);
// The C ABI's store handle is thread-safe.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

fn store() -> *mut am_memory {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let mut m = ptr::null_mut();
            let options = c"{\"embedder\": {\"provider\": \"hashing\", \"dimensions\": 8}}";
            let status = unsafe {
                am_memory_open(
                    c":memory:".as_ptr(),
                    options.as_ptr(),
                    &mut m,
                    ptr::null_mut(),
                )
            };
            assert_eq!(status, AM_OK);
            Store(m)
        })
        .0
}

/// Checks a call's outcome and frees what it returned.
unsafe fn settle(status: am_status, out: *mut c_char, err: *mut am_error) {
    unsafe {
        if status == AM_OK {
            assert!(err.is_null());
        } else {
            assert!(out.is_null() && !err.is_null());
            assert_eq!(am_error_code(err), status);
            assert!(!CStr::from_ptr(am_error_message(err)).to_bytes().is_empty());
            assert_ne!(
                status,
                AM_ERR_PANIC,
                "{:?}",
                CStr::from_ptr(am_error_message(err))
            );
        }
        am_string_free(out);
        am_error_free(err);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = CString::new(rest.split(|&b| b == 0).next().unwrap_or_default()).unwrap();
    // Half the time the request is NULL, which most entry points read as `{}`.
    let request = if selector & 0x80 != 0 {
        ptr::null()
    } else {
        text.as_ptr()
    };
    let m = store();
    let (mut out, mut err) = (ptr::null_mut(), ptr::null_mut());
    unsafe {
        let status = match selector % 8 {
            0 => am_memory_add(m, request, &mut out, &mut err),
            1 => am_memory_search(m, request, &mut out, &mut err),
            2 => am_memory_list(m, request, &mut out, &mut err),
            3 => am_memory_add_batch(m, request, &mut out, &mut err),
            4 => am_memory_update(
                m,
                c"00000000-0000-0000-0000-000000000000".as_ptr(),
                request,
                &mut out,
                &mut err,
            ),
            5 => am_memory_get(m, request, &mut out, &mut err),
            // Any name, the request as the operation's name too.
            6 => am_memory_call(m, text.as_ptr(), c"{}".as_ptr(), &mut out, &mut err),
            _ => {
                let ops = [
                    c"add",
                    c"search",
                    c"list",
                    c"count",
                    c"delete_all",
                    c"update",
                    c"history",
                    c"chat",
                    c"chat_remembered",
                ];
                let op = ops[usize::from(selector >> 3) % ops.len()];
                am_memory_call(m, op.as_ptr(), request, &mut out, &mut err)
            }
        };
        settle(status, out, err);
        let mut count = 0u64;
        let mut err = ptr::null_mut();
        if am_memory_count(m, ptr::null(), &mut count, &mut err) == AM_OK && count > 200 {
            assert_eq!(am_memory_reset(m, ptr::null_mut()), AM_OK);
        }
        am_error_free(err);
    }
});
