//! The C ABI of agent_mem (`libagentmem`, header `include/agentmem.h`).
//!
//! Every function here converts its arguments, makes one call into the core (most through
//! [`agent_mem::wire`], whose JSON shapes are the ones Python and Node expose too) and converts
//! the result. Nothing else lives here: validation and behaviour belong to the core, so C
//! rejects bad input with the same codes as every other language.
//!
//! Conventions, stated once for every `am_status` function (also in the header):
//! - Strings in are NUL-terminated UTF-8; structured input is a JSON text.
//! - Out-parameters are set to NULL (or 0) on entry, filled only on success.
//! - `err` may be NULL. If not, `*err` is set to NULL on success and to a new `am_error` on
//!   failure, which the caller frees with `am_error_free`.
//! - A panic inside the library is caught and returned as `AM_ERR_PANIC`; it never unwinds
//!   into C.
//! - A callback the caller passes (`am_chunk_fn`) is called on the caller's thread, during the
//!   call that received it, and never after it returns.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety contract is documented once, in the header.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use agent_mem::{wire, Memory};
use serde_json::Value;

/// A status code: `AM_OK` (0), one of the core's error codes (1 to 16, the numbers of
/// `tests/error_codes.json`; never reused), or one of the C-only codes `AM_ERR_NULL_ARG` and
/// `AM_ERR_PANIC`.
pub type am_status = u32;

/// Success.
pub const AM_OK: am_status = 0;
/// Bad input: malformed JSON, an unknown request key, an empty content, a bad filter, invalid
/// UTF-8, a vector of the wrong dimension… Nothing was changed.
pub const AM_ERR_INVALID_INPUT: am_status = 1;
/// No memory with this id.
pub const AM_ERR_NOT_FOUND: am_status = 2;
/// It exists already.
pub const AM_ERR_ALREADY_EXISTS: am_status = 3;
/// SQLite failed (disk full, locked too long, …).
pub const AM_ERR_STORAGE: am_status = 4;
/// The vector index failed.
pub const AM_ERR_INDEX: am_status = 5;
/// The embedder failed.
pub const AM_ERR_EMBEDDING: am_status = 6;
/// The embedding model could not be found or loaded (the message says where it looked).
pub const AM_ERR_MODEL_UNAVAILABLE: am_status = 7;
/// The language model failed.
pub const AM_ERR_LLM: am_status = 8;
/// A plugin failed: a malformed module, a trap, a timeout, a memory or fuel limit, a bad hook
/// answer, or an `on_add` hook that rejected the memory (the message gives the reason).
pub const AM_ERR_PLUGIN: am_status = 9;
/// Not allowed (for instance a plugin called a host function whose capability was not
/// granted).
pub const AM_ERR_PERMISSION_DENIED: am_status = 10;
/// A file could not be read or written.
pub const AM_ERR_IO: am_status = 11;
/// The file is not an agent_mem store, or it is damaged.
pub const AM_ERR_CORRUPTED: am_status = 12;
/// The store was closed.
pub const AM_ERR_CLOSED: am_status = 13;
/// Not supported by this store (for instance a text search on a store without embedder), or by
/// this build of the library (the plugin functions of a library built without plugins).
pub const AM_ERR_UNSUPPORTED: am_status = 14;
/// A bug in agent_mem.
pub const AM_ERR_INTERNAL: am_status = 15;
/// The caller stopped the call: a streaming callback (`am_chunk_fn`) returned non-zero.
/// Nothing was stored.
pub const AM_ERR_CANCELLED: am_status = 16;
/// A required pointer argument was NULL (C only).
pub const AM_ERR_NULL_ARG: am_status = 100;
/// The library caught an internal panic (C only). The store is still usable: every call is
/// one transaction, so it either happened whole or not at all.
pub const AM_ERR_PANIC: am_status = 101;

/// The largest vector dimension accepted; it keeps a wrong length from reading far past the
/// caller's array.
const MAX_DIMENSIONS: usize = 65_536;
/// The largest plugin module accepted as bytes (256 MiB).
const MAX_WASM_LEN: usize = 256 << 20;
/// The largest input accepted by `am_memory_call_plugin` (64 MiB).
const MAX_INPUT_LEN: usize = 64 << 20;

/// An open memory store.
///
/// Thread-safety: one `am_memory*` may be used from many threads at once; every function
/// taking a `const am_memory*` is safe to call concurrently. Only `am_memory_free` needs
/// exclusive use: no other call on the handle may run during or after it.
pub struct am_memory {
    inner: Memory,
}

/// An error: a status code and a message. Immutable; may be read from any thread; freed with
/// `am_error_free`.
pub struct am_error {
    code: am_status,
    message: CString,
}

/// Why a call failed, before it becomes an `am_error`.
struct Failure {
    code: am_status,
    message: String,
}

impl From<agent_mem::Error> for Failure {
    fn from(e: agent_mem::Error) -> Self {
        Failure {
            code: e.code().as_u32(),
            // The code travels separately; the message is the core's text alone.
            message: e.message().to_string(),
        }
    }
}

fn null_arg(name: &str) -> Failure {
    Failure {
        code: AM_ERR_NULL_ARG,
        message: format!("{name} must not be NULL"),
    }
}

fn invalid(message: String) -> Failure {
    Failure {
        code: AM_ERR_INVALID_INPUT,
        message,
    }
}

/// Runs `body`, catching panics, and reports the outcome through `err`.
unsafe fn guard(err: *mut *mut am_error, body: impl FnOnce() -> Result<(), Failure>) -> am_status {
    if !err.is_null() {
        unsafe { *err = ptr::null_mut() };
    }
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return AM_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure {
            code: AM_ERR_PANIC,
            message: agent_mem::Error::from_panic(&*payload)
                .message()
                .to_string(),
        },
    };
    if !err.is_null() {
        // Messages come from Rust strings and may hold a NUL only if user text was quoted;
        // cut there rather than lose the whole message.
        let message = failure.message.split('\0').next().unwrap_or_default();
        let error = am_error {
            code: failure.code,
            message: CString::new(message).unwrap_or_default(),
        };
        unsafe { *err = Box::into_raw(Box::new(error)) };
    }
    failure.code
}

/// Sets an out-pointer to NULL on entry; fails if the out-pointer itself is NULL.
unsafe fn clear_out<T>(out: *mut *mut T, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(null_arg(name));
    }
    unsafe { *out = ptr::null_mut() };
    Ok(())
}

unsafe fn clear_count(out: *mut u64, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(null_arg(name));
    }
    unsafe { *out = 0 };
    Ok(())
}

unsafe fn clear_len(out: *mut usize, name: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(null_arg(name));
    }
    unsafe { *out = 0 };
    Ok(())
}

unsafe fn memory_arg<'a>(m: *const am_memory) -> Result<&'a Memory, Failure> {
    unsafe { store_arg(m, "m") }
}

/// A store handle argument named `name` in the NULL error.
unsafe fn store_arg<'a>(m: *const am_memory, name: &str) -> Result<&'a Memory, Failure> {
    match unsafe { m.as_ref() } {
        Some(m) => Ok(&m.inner),
        None => Err(null_arg(name)),
    }
}

unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|e| invalid(format!("{name} is not valid UTF-8: {e}")))
}

/// A JSON argument; NULL is `null` (the defaults) unless the argument is required.
unsafe fn json_arg(p: *const c_char, name: &str, required: bool) -> Result<Value, Failure> {
    if p.is_null() && !required {
        return Ok(Value::Null);
    }
    let text = unsafe { str_arg(p, name) }?;
    Ok(wire::parse(text, name)?)
}

unsafe fn floats_arg(p: *const f32, len: usize, name: &str) -> Result<Vec<f32>, Failure> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, len) }.to_vec())
}

unsafe fn vector_arg(p: *const f32, dims: usize) -> Result<Vec<f32>, Failure> {
    if dims > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "dims is {dims}; at most {MAX_DIMENSIONS} are accepted"
        )));
    }
    unsafe { floats_arg(p, dims, "vector") }
}

/// A byte buffer of `len` bytes, capped at `max`; NULL is only accepted with `len` 0 (then the
/// buffer is empty) and gives `on_null` otherwise.
unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    name: &str,
    max: usize,
    on_null: fn(String) -> Failure,
) -> Result<&'a [u8], Failure> {
    if len > max {
        return Err(invalid(format!(
            "{name}_len is {len}; at most {max} bytes are accepted"
        )));
    }
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(on_null(format!(
            "{name} is NULL but {name}_len is {len} (NULL is only allowed with length 0)"
        )));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

fn null_with_length(message: String) -> Failure {
    Failure {
        code: AM_ERR_NULL_ARG,
        message,
    }
}

unsafe fn put_json(out: *mut *mut c_char, value: &Value) -> Result<(), Failure> {
    unsafe { put_text(out, value.to_string()) }
}

/// Hands JSON text to C as a NUL-terminated string.
unsafe fn put_text(out: *mut *mut c_char, text: String) -> Result<(), Failure> {
    // serde_json escapes control characters, so the text never holds a NUL.
    let text = CString::new(text)
        .map_err(|_| Failure::from(agent_mem::Error::internal("JSON output held a NUL byte")))?;
    unsafe { *out = text.into_raw() };
    Ok(())
}

/// The shape of most calls: `*out` cleared, the store read, then `body` (which reads the other
/// arguments and makes the one core call), its JSON result written to `*out`.
unsafe fn json_call(
    err: *mut *mut am_error,
    out: *mut *mut c_char,
    out_name: &str,
    m: *const am_memory,
    body: impl FnOnce(&Memory) -> Result<Value, Failure>,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out, out_name)?;
            let value = body(memory_arg(m)?)?;
            put_json(out, &value)
        })
    }
}

/// A call taking a request: `required` says whether `request_json` may be NULL (`{}`).
unsafe fn request_call(
    m: *const am_memory,
    request_json: *const c_char,
    required: bool,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
    op: fn(&Memory, &Value) -> agent_mem::Result<Value>,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let request = json_arg(request_json, "request_json", required)?;
            Ok(op(memory, &request)?)
        })
    }
}

/// A call taking an id (a memory's or a plugin's).
unsafe fn id_call(
    m: *const am_memory,
    id: *const c_char,
    out: *mut *mut c_char,
    out_name: &str,
    err: *mut *mut am_error,
    op: fn(&Memory, &str) -> agent_mem::Result<Value>,
) -> am_status {
    unsafe {
        json_call(err, out, out_name, m, |memory| {
            Ok(op(memory, str_arg(id, "id")?)?)
        })
    }
}

/// A call whose result is a number, written to `*out`.
unsafe fn count_call(
    err: *mut *mut am_error,
    out: *mut u64,
    out_name: &str,
    m: *const am_memory,
    body: impl FnOnce(&Memory) -> Result<usize, Failure>,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_count(out, out_name)?;
            *out = body(memory_arg(m)?)? as u64;
            Ok(())
        })
    }
}

// ------------------------------------------------------------------------------- basics

/// The library's version, `"MAJOR.MINOR.PATCH"` (a static string; do not free). Compare with
/// `AGENTMEM_VERSION_STRING` to check the header and the library agree.
#[no_mangle]
pub extern "C" fn am_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status code, e.g. `"AM_ERR_NOT_FOUND"`; `"AM_ERR_UNKNOWN"` for a number that
/// is not a code. A static string; do not free. Thread-safe.
#[no_mangle]
pub extern "C" fn am_status_str(code: am_status) -> *const c_char {
    status_name(code).as_ptr()
}

fn status_name(code: am_status) -> &'static CStr {
    match code {
        AM_OK => c"AM_OK",
        AM_ERR_INVALID_INPUT => c"AM_ERR_INVALID_INPUT",
        AM_ERR_NOT_FOUND => c"AM_ERR_NOT_FOUND",
        AM_ERR_ALREADY_EXISTS => c"AM_ERR_ALREADY_EXISTS",
        AM_ERR_STORAGE => c"AM_ERR_STORAGE",
        AM_ERR_INDEX => c"AM_ERR_INDEX",
        AM_ERR_EMBEDDING => c"AM_ERR_EMBEDDING",
        AM_ERR_MODEL_UNAVAILABLE => c"AM_ERR_MODEL_UNAVAILABLE",
        AM_ERR_LLM => c"AM_ERR_LLM",
        AM_ERR_PLUGIN => c"AM_ERR_PLUGIN",
        AM_ERR_PERMISSION_DENIED => c"AM_ERR_PERMISSION_DENIED",
        AM_ERR_IO => c"AM_ERR_IO",
        AM_ERR_CORRUPTED => c"AM_ERR_CORRUPTED",
        AM_ERR_CLOSED => c"AM_ERR_CLOSED",
        AM_ERR_UNSUPPORTED => c"AM_ERR_UNSUPPORTED",
        AM_ERR_INTERNAL => c"AM_ERR_INTERNAL",
        AM_ERR_CANCELLED => c"AM_ERR_CANCELLED",
        AM_ERR_NULL_ARG => c"AM_ERR_NULL_ARG",
        AM_ERR_PANIC => c"AM_ERR_PANIC",
        _ => c"AM_ERR_UNKNOWN",
    }
}

/// The status code of an error; `AM_ERR_NULL_ARG` for a NULL error.
#[no_mangle]
pub unsafe extern "C" fn am_error_code(err: *const am_error) -> am_status {
    unsafe { err.as_ref() }.map_or(AM_ERR_NULL_ARG, |e| e.code)
}

/// The message of an error (UTF-8), valid until `am_error_free(err)`; `""` for a NULL error.
#[no_mangle]
pub unsafe extern "C" fn am_error_message(err: *const am_error) -> *const c_char {
    match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees an error. NULL is ignored. Freeing twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn am_error_free(err: *mut am_error) {
    if !err.is_null() {
        drop(unsafe { Box::from_raw(err) });
    }
}

/// Frees a string returned by this library (every `char**` out-parameter). NULL is ignored.
/// Freeing twice, or freeing a string from elsewhere, is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn am_string_free(s: *mut c_char) {
    if !s.is_null() {
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Frees a byte buffer returned by this library (`am_memory_call_plugin`'s `*out`), with the
/// length returned beside it. NULL is ignored. Freeing twice, with another length, or freeing
/// a buffer from elsewhere, is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn am_bytes_free(bytes: *mut u8, len: usize) {
    if bytes.is_null() {
        return;
    }
    // The buffer holds one more byte than reported: the NUL that ends it (see put_bytes).
    if let Some(size) = len.checked_add(1) {
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(bytes, size)) });
    }
}

/// Hands `bytes` to C: a buffer of `bytes.len() + 1` bytes, the last a NUL not counted in
/// `*out_len`, so that text can be read as a C string. Never NULL, even when empty.
unsafe fn put_bytes(out: *mut *mut u8, out_len: *mut usize, mut bytes: Vec<u8>) {
    let len = bytes.len();
    bytes.push(0);
    let buffer = Box::into_raw(bytes.into_boxed_slice());
    unsafe {
        *out = buffer.cast::<u8>();
        *out_len = len;
    }
}

// ------------------------------------------------------------------------------- the store

/// Opens (or creates) a store.
///
/// `path` is a file name (UTF-8), `":memory:"` for a store that lives in memory, or a
/// PostgreSQL URL, `postgres://user:password@host:port/database` (or `postgresql://`; URL
/// parameters such as `?options=-csearch_path%3Dmy_schema%2Cpublic` pass on to the server)
/// or a libpq connection string, `host=db.example port=5432 dbname=memories user=agent
/// password='it\'s'` (libpq's quoting: `'…'` values, backslash escapes; it must start with
/// one of libpq's keywords and `=`, so a file named `host=x.db` is written `./host=x.db`;
/// keywords the connection does not support, such as `sslcert`, are `AM_ERR_UNSUPPORTED`),
/// for a store on a PostgreSQL server with pgvector. Error messages and the store's
/// description never show the password. A library built without the cargo feature
/// `postgres` fails such a URL or connection string with `AM_ERR_UNSUPPORTED`.
/// `options_json` may be NULL for the defaults, or an object:
/// `{"embedder": "local" | "none" | {"provider": "local", "model_dir": "/dir"} |
///   {"provider": "hashing", "dimensions": 64},
///   "persist_index": true,
///   "index": {"connectivity": 16, "expansion_add": 64, "expansion_search": 128,
///             "quantization": "f32" | "f16" | "i8", "exact_scan_limit": 4096},
///   "search": {"mode": "hybrid", "limit": 10, "threshold": null,
///              "weights": {"vector": 1, "keyword": 1, "fuzzy": 0, "context": 0.1,
///                          "method": "score", "rrf_k": 60}},
///   "llm": {"provider": "openai" | "anthropic" | "deepseek" | "zhipu" | "moonshot" |
///           "ollama" | "openai_compatible", "model": "gpt-4.1-nano", "api_key": "…",
///           "base_url": "https://api.openai.com/v1", "timeout_ms": 60000, "max_retries": 3,
///           "temperature": 0, "max_tokens": 1024, "json_mode": true},
///   "prompts": {"fact_extraction": "…", "decisions": "…", "procedural": "…", "chat": "…"},
///   "plugins": {"cache_size": 16},
///   "postgres": {"pool_size": 8, "connect_timeout_ms": 10000, "pool_timeout_ms": 30000,
///                "statement_timeout_ms": 0}}`.
/// The default embedder is the local all-MiniLM-L6-v2 model; if it cannot be found the store
/// still opens, and calls that need it fail with `AM_ERR_MODEL_UNAVAILABLE`. The embedder may
/// also be a remote OpenAI-compatible embeddings endpoint: `{"provider": "openai" | "zhipu" |
/// "ollama" | "openai_compatible", "model", "api_key", "base_url", "dimensions", "timeout_ms",
/// "max_retries"}`.
/// `llm` is the chat model `am_memory_add_messages` uses to infer memories and
/// `am_memory_chat` answers with (only `provider` is required; the model, key and base URL
/// left out come from the provider's defaults and environment variables: `OPENAI_API_KEY`,
/// `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`, …). An OpenAI-style `base_url` includes the
/// version (`http://host:port/v1`); Anthropic's does not (`https://api.anthropic.com`).
/// Opening calls no model. `prompts` replaces the built-in prompts: inference's, and
/// `am_memory_chat`'s system prompt (`chat`, which must contain `{memories}`, where the
/// recalled memories go; `{today}` becomes the date). `plugins.cache_size` is how many
/// plugins are kept compiled at once (at least 1; see `am_memory_register_plugin`;
/// `AM_ERR_UNSUPPORTED` in a library built without plugins). `postgres` sets the connection
/// pool of a store opened by URL: its size (1 to 256, default 8), how long connecting may take
/// (default 10000 ms; a `connect_timeout` in the URL wins), how long a call waits for a free
/// connection (default 30000 ms; 0 fails at once) and a statement timeout (default 0: none);
/// `AM_ERR_UNSUPPORTED` in a library built without PostgreSQL support. A server that cannot
/// be reached, or refuses the login, is `AM_ERR_STORAGE`. Connections are made without TLS:
/// a URL with `sslmode=require` is `AM_ERR_UNSUPPORTED`.
/// On success `*out` is a handle to free with `am_memory_free`.
/// Several handles (in one process or many) may open the same file or database.
#[no_mangle]
pub unsafe extern "C" fn am_memory_open(
    path: *const c_char,
    options_json: *const c_char,
    out: *mut *mut am_memory,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out, "out")?;
            let path = str_arg(path, "path")?;
            let options = json_arg(options_json, "options_json", false)?;
            let memory = wire::open(Some(path), &options)?;
            *out = Box::into_raw(Box::new(am_memory { inner: memory }));
            Ok(())
        })
    }
}

/// Closes a store: saves its vector index and frees the handle. NULL is ignored. No other
/// call on `m` may run during or after this one. Use `am_memory_flush` first to learn of a
/// failure to save the index (the data itself is always safe in SQLite).
#[no_mangle]
pub unsafe extern "C" fn am_memory_free(m: *mut am_memory) {
    if !m.is_null() {
        // A panic while dropping must not unwind into C; the data is safe in SQLite anyway.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(m) })));
    }
}

/// Saves the vector index beside the database now (it is also saved by `am_memory_free`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_flush(
    m: *const am_memory,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { guard(err, || Ok(memory_arg(m)?.flush()?)) }
}

// ------------------------------------------------------------------------------- adding

/// Adds one memory, embedded by the store's embedder.
///
/// `request_json`: `{"content": "…" (required), "user_id", "agent_id", "run_id", "org_id",
/// "kind": "episodic" | "semantic" | "procedural" | "working" | "contextual" | "knowledge" |
/// "resource" | "core", "metadata": {…}, "expires_at": "RFC 3339 time or date"}`.
/// `*out_json`: `{"id": "…", "added": true}`; `added` is false when the same content was
/// already stored in the same scope (then `id` is the existing memory's). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_add(
    m: *const am_memory,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { request_call(m, request_json, true, out_json, err, wire::add) }
}

/// Remembers a conversation, with inference by the store's chat model (`llm` in
/// `am_memory_open`).
///
/// `request_json`: `{"messages": "text" | {"role": "user" | "assistant" | "system", "content":
/// "…", "name"?: "…"} | [messages], "infer": true, "prompt": "…", "user_id", "agent_id",
/// "run_id", "org_id", "kind", "metadata": {…}, "expires_at"}`; unknown keys are refused.
/// With a chat model and `infer` true (the default), the model extracts facts from the
/// messages (one call) and, when similar memories are stored in the scope, decides for each
/// fact whether to add it, update or delete a stored memory, or do nothing (a second call);
/// the changes are written in one transaction, with history actor `"llm:<provider>:<model>"`.
/// Inference needs a scope (`user_id`, `agent_id`, `run_id` or `org_id`):
/// `AM_ERR_INVALID_INPUT` without one, and the model's decisions touch only that scope.
/// `prompt` replaces the fact-extraction prompt for this call; `kind` `"procedural"` with an
/// `agent_id` stores a summary of the run instead of facts. Without a chat model, or with
/// `infer` false, each non-system message is stored as it is (a system message never is),
/// with `"role"` (and its `"name"` as `"actor_id"`) in the memory's metadata.
/// `*out_json`: the events, `[{"id": "…", "memory": "text", "event": "ADD" | "UPDATE" |
/// "DELETE" | "NONE", "previous_memory": "old text" (UPDATE only), "role": "user" and
/// "actor_id": "name" (messages stored as they are; `actor_id` only with a name)}, …]`.
/// A model failure (unreachable, timed out, an error status, an unreadable answer) is
/// `AM_ERR_LLM`, its message the provider's, and the store is unchanged. The call blocks for
/// as long as the model takes (at most `timeout_ms` per attempt, with `max_retries`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_add_messages(
    m: *const am_memory,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { request_call(m, request_json, true, out_json, err, wire::add_messages) }
}

/// Adds one memory with the caller's embedding: `vector` points at `dims` floats (the store's
/// dimension). Request and result as `am_memory_add`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_add_with_vector(
    m: *const am_memory,
    request_json: *const c_char,
    vector: *const f32,
    dims: usize,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let request = json_arg(request_json, "request_json", true)?;
            let vector = vector_arg(vector, dims)?;
            Ok(wire::add_with_vector(memory, &request, vector)?)
        })
    }
}

/// Adds several memories in one transaction (all or none), embedded in batches.
///
/// `request_json`: `{"memories": [add requests]}`. `*out_json`: `[{"id", "added"}, …]` in
/// the order of the request. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_add_batch(
    m: *const am_memory,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { request_call(m, request_json, true, out_json, err, wire::add_batch) }
}

/// Adds several memories with the caller's embeddings in one transaction. `vectors` is a
/// row-major `count × dims` array: row `i` is the embedding of `memories[i]`, and `count` must
/// equal the number of memories (`vectors` may be NULL when `count` is 0). Result as
/// `am_memory_add_batch`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_add_batch_with_vectors(
    m: *const am_memory,
    request_json: *const c_char,
    vectors: *const f32,
    count: usize,
    dims: usize,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let request = json_arg(request_json, "request_json", true)?;
            if count == 0 {
                // Nothing to read: `vectors` may be NULL, as C callers pass for empty arrays.
                return Ok(wire::add_batch_with_vectors(memory, &request, Vec::new())?);
            }
            if dims == 0 || dims > MAX_DIMENSIONS {
                return Err(invalid(format!(
                    "dims must be between 1 and {MAX_DIMENSIONS}, got {dims}"
                )));
            }
            let total = count
                .checked_mul(dims)
                .ok_or_else(|| invalid(format!("count × dims overflows ({count} × {dims})")))?;
            let flat = floats_arg(vectors, total, "vectors")?;
            let rows = flat.chunks(dims).map(<[f32]>::to_vec).collect();
            Ok(wire::add_batch_with_vectors(memory, &request, rows)?)
        })
    }
}

// ------------------------------------------------------------------------------- reading

/// One memory by id. `*out_json` is the memory record: `{"id", "content", "hash", "kind",
/// "user_id"?, "agent_id"?, "run_id"?, "org_id"?, "metadata", "created_at", "updated_at",
/// "expires_at"?}` (absent scope fields and expiry are left out; times are RFC 3339 UTC).
/// Unknown id: `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_get(
    m: *const am_memory,
    id: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { id_call(m, id, out_json, "out_json", err, wire::get) }
}

/// One page of memories.
///
/// `request_json` (NULL for `{}`): `{"user_id", "agent_id", "run_id", "org_id",
/// "include_global": false, "include_expired": false, "filters": {…}, "order": "created_desc"
/// | "created_asc" | "updated_desc" | "updated_asc", "limit": 100, "offset": 0, "cursor",
/// "with_total": false}`.
/// Filters are mem0-style: `{"AND": [{"category": {"eq": "food"}}, {"created_at": {"gte":
/// "2026-01-01"}}]}` (operators eq ne gt gte lt lte in nin contains icontains; AND OR NOT).
/// `*out_json`: `{"items": [records], "next_cursor": "…" | null}`; pass `next_cursor` as
/// `cursor` for the next page. With `"with_total": true` it also holds `"total"`: how many
/// memories the selection (scope, filters, `include_global`, `include_expired`) matches in
/// all, counted in the same read snapshot as the page. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_list(
    m: *const am_memory,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { request_call(m, request_json, false, out_json, err, wire::list) }
}

/// How many memories a scope and filters select. `request_json` (NULL for `{}`):
/// `{"user_id", "agent_id", "run_id", "org_id", "filters"}`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_count(
    m: *const am_memory,
    request_json: *const c_char,
    out_count: *mut u64,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        count_call(err, out_count, "out_count", m, |memory| {
            let request = json_arg(request_json, "request_json", false)?;
            Ok(wire::count(memory, &request)?)
        })
    }
}

/// The history of a memory (also after it was deleted). `*out_json`: `[{"id", "memory_id",
/// "event": "ADD" | "UPDATE" | "DELETE", "old_content", "new_content", "is_deleted", "actor",
/// "created_at"}, …]`, oldest first; `actor` is `"user"`, `"expiry"` or, for changes made by
/// `am_memory_add_messages`, `"llm:<provider>:<model>"`. Unknown id: `AM_ERR_NOT_FOUND`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_history(
    m: *const am_memory,
    id: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { id_call(m, id, out_json, "out_json", err, wire::history) }
}

/// Searches by meaning, keywords, phrase or typos.
///
/// `request_json`: `{"query": "…", "mode": "hybrid" (default) | "vector" | "keyword" |
/// "phrase" | "fuzzy", "limit": 10, "threshold": 0.3, "user_id", "agent_id", "run_id",
/// "org_id", "include_global", "include_expired", "filters": {…}, "weights": {"vector",
/// "keyword", "fuzzy", "context", "method", "rrf_k"}}`. `*out_json`: `[hits]`, best first; a hit is a memory
/// record plus `"score"`, `"similarity"` (cosine, when the query was embedded) and
/// `"explain"` (each engine's rank and score). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_search(
    m: *const am_memory,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { request_call(m, request_json, true, out_json, err, wire::search) }
}

/// Searches with the caller's query embedding (`dims` floats); the query text, if any, serves
/// the keyword engines. Request and result as `am_memory_search`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_search_with_vector(
    m: *const am_memory,
    request_json: *const c_char,
    vector: *const f32,
    dims: usize,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let request = json_arg(request_json, "request_json", true)?;
            let vector = vector_arg(vector, dims)?;
            Ok(wire::search_with_vector(memory, &request, &vector)?)
        })
    }
}

// ------------------------------------------------------------------------------- changing

/// Changes a memory and records the change in its history.
///
/// `request_json`: any of `{"content", "metadata" (replaces the whole object),
/// "merge_metadata": false, "kind", "expires_at" (null removes the expiry)}`. With
/// `"merge_metadata": true`, `metadata` is merged into the stored object instead (shallow:
/// each given key set, every other key kept), read inside the update's write transaction so
/// that concurrent merges never lose each other's keys. New content is re-embedded.
/// `*out_json`: the updated memory record. Unknown id: `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_update(
    m: *const am_memory,
    id: *const c_char,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let id = str_arg(id, "id")?;
            let request = json_arg(request_json, "request_json", true)?;
            Ok(wire::update(memory, id, &request)?)
        })
    }
}

/// Changes a memory's content with the caller's embedding of the new content (`dims`
/// floats). Request and result as `am_memory_update`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_update_with_vector(
    m: *const am_memory,
    id: *const c_char,
    request_json: *const c_char,
    vector: *const f32,
    dims: usize,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            let id = str_arg(id, "id")?;
            let request = json_arg(request_json, "request_json", true)?;
            let vector = vector_arg(vector, dims)?;
            Ok(wire::update_with_vector(memory, id, &request, vector)?)
        })
    }
}

/// Deletes a memory (its history stays, ending with a DELETE row). Unknown id:
/// `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_delete(
    m: *const am_memory,
    id: *const c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            let memory = memory_arg(m)?;
            let id = str_arg(id, "id")?;
            Ok(wire::delete(memory, id)?)
        })
    }
}

/// Deletes every memory a scope and filters select, in one transaction; `*out_deleted` is
/// how many. `request_json`: `{"user_id", "agent_id", "run_id", "org_id", "filters"}` with
/// at least a scope field or a filter (an empty selection is refused with
/// `AM_ERR_INVALID_INPUT`; `am_memory_reset` deletes everything). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_delete_all(
    m: *const am_memory,
    request_json: *const c_char,
    out_deleted: *mut u64,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        count_call(err, out_deleted, "out_deleted", m, |memory| {
            let request = json_arg(request_json, "request_json", true)?;
            Ok(wire::delete_all(memory, &request)?)
        })
    }
}

/// Deletes every memory and all history. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_reset(
    m: *const am_memory,
    err: *mut *mut am_error,
) -> am_status {
    unsafe { guard(err, || Ok(memory_arg(m)?.reset()?)) }
}

/// Deletes the memories whose expiry has passed (history actor `"expiry"`); `*out_deleted`
/// is how many. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_purge_expired(
    m: *const am_memory,
    out_deleted: *mut u64,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        count_call(err, out_deleted, "out_deleted", m, |memory| {
            Ok(memory.purge_expired()?)
        })
    }
}

/// Copies every memory of `source` (with its vector, scope, metadata and times) and its whole
/// history, deleted memories' too, into `target`, which must be empty: a SQLite file into a
/// PostgreSQL store and back, or between any two stores. One transaction on the target: all
/// of it or nothing. `*out_json`: `{"memories": n, "history": n}`, what was copied.
/// Errors: a target that holds memories or history, `AM_ERR_ALREADY_EXISTS`; `source` and
/// `target` the same store file, or a target whose embedder has another model or vector
/// dimension, `AM_ERR_INVALID_INPUT`. `source` and `target` stay open either way.
/// Thread-safe; other calls on either store may run meanwhile.
#[no_mangle]
pub unsafe extern "C" fn am_memory_copy_into(
    source: *const am_memory,
    target: *const am_memory,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out_json, "out_json")?;
            let source = store_arg(source, "source")?;
            let target = store_arg(target, "target")?;
            put_json(out_json, &wire::copy_into(source, target)?)
        })
    }
}

// ------------------------------------------------------------------------------- any operation

/// The names of the operations `am_memory_call` knows, as a JSON array of strings
/// (`["add", "add_batch", …]`), in a stable order. `*out_json` is freed with
/// `am_string_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_operations(
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out_json, "out_json")?;
            put_json(out_json, &Value::from(wire::OPERATIONS))
        })
    }
}

/// Runs any operation by its name (one of `am_operations`): the one entry that Python and
/// Node use too, so an operation new in the library is reachable from C before it has a
/// typed function of its own.
///
/// `request_json` (NULL for `{}`) is the request of the typed function of the same
/// operation, with an id as `"id"` and the caller's embeddings as `"vector"` (`add`,
/// `search`, `update`) or `"vectors"` (`add_batch`, one per memory): for instance
/// `am_memory_call(m, "get", "{\"id\": \"…\"}", &out, &err)`. The operations:
/// `add`, `add_batch`, `add_messages`, `get`, `list`, `count`, `update`, `delete`,
/// `delete_all`, `history`, `search`, `purge_expired`, `flush`, `reset`, `plugin_register`
/// (the manifest with its `"path"`), `plugin_list`, `plugin_load`, `plugin_unload`,
/// `plugin_reload`, `plugin_unregister`, `chat` (not streamed: `am_memory_chat` streams) and
/// `chat_remembered`.
/// `*out_json`: the result as the typed function gives it; a number for `count`,
/// `delete_all` and `purge_expired`; `null` for `delete`, `flush`, `reset` and
/// `plugin_unregister`. Free it with `am_string_free`.
/// Errors: an unknown operation is `AM_ERR_INVALID_INPUT` naming it; a request that is not
/// JSON, not an object, or has a misspelt key is `AM_ERR_INVALID_INPUT` and changes
/// nothing; otherwise the operation's own errors. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_call(
    m: *const am_memory,
    operation: *const c_char,
    request_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out_json, "out_json")?;
            let memory = memory_arg(m)?;
            let operation = str_arg(operation, "operation")?;
            let request = if request_json.is_null() {
                "null"
            } else {
                str_arg(request_json, "request_json")?
            };
            put_text(out_json, wire::call_text(memory, operation, request)?)
        })
    }
}

// ------------------------------------------------------------------------------- chat

/// Receives the pieces of a streamed answer (see `am_memory_chat`).
///
/// `json_chunk` is one piece as a JSON object, `{"delta": "text"}`: NUL-terminated UTF-8,
/// always whole JSON holding whole characters, however the model's stream was cut on the way.
/// It belongs to the library and is valid only until the callback returns (copy what you
/// keep). `user` is the pointer given to the call. Return 0 to go on, or non-zero to stop the
/// call: it then fails with `AM_ERR_CANCELLED` and stores nothing.
pub type am_chunk_fn =
    Option<unsafe extern "C" fn(json_chunk: *const c_char, user: *mut c_void) -> c_int>;

/// Answers the last user message of a conversation with the store's chat model (`llm` in
/// `am_memory_open`), given the memories that bear on it, streaming the answer to `on_chunk`
/// as the model writes it.
///
/// `request_json` (NULL is `{}`, refused for want of messages): `{"messages": "text" |
/// {"role": "user" | "assistant" | "system" | "tool", "content": "…", "name"?: "…",
/// "observed_at"?: "RFC 3339 time"} | [messages] (required; the last is the user's),
/// "user_id", "agent_id", "run_id", "org_id" (at least one), "limit" (or "k"), "threshold",
/// "filters": {…}, "mode", "as_of", "include_global", "query_turns", "session_window",
/// "working_ttl_seconds", "max_memory_tokens", "prompt", "remember": "inline" (default) |
/// "background" | "off"}`; unknown keys are refused.
/// The model sees, in its system prompt (the built-in one, `prompts.chat` of
/// `am_memory_open`, or `prompt`), the memories recalled for the turn under small numbers:
/// the agent's procedural memories, the session's latest turns (working memory of the scope)
/// and the hits of a search of the scope without its `run_id`, as many as fit in
/// `max_memory_tokens`. The numbers the answer cites as `[n]` are mapped back to memories.
/// Once the model has answered, the turn is kept as a working memory (unless
/// `session_window` is 0) and the exchange is remembered as `am_memory_add_messages` would
/// (more model calls): before the call returns (`"inline"`), on a thread of the library
/// (`"background"`; its outcome is collected once with `am_memory_call(m, "chat_remembered",
/// "{\"handle\": \"…\", \"wait\": true}", &out, &err)`), or not at all (`"off"`).
///
/// `on_chunk` NULL: the answer is not streamed (the model is asked for it whole). Otherwise
/// it is called with each piece (see `am_chunk_fn`), one at a time, on the calling thread and
/// only before this function returns; the pieces joined are the result's `answer`. It may
/// call this library again, on `m` too (a search, a count, even another chat), but must not
/// free `m`, and must not leave by `longjmp` or a C++ exception.
///
/// `*out_json`: `{"answer": "text", "memories_used": [{"ref": 1, "id", "content", "kind",
/// "source": "procedural" | "working" | "search", "score"?}], "citations": [{"ref", "id"}],
/// "working_memory_id"?, "remember": {"status": "done" | "running" | "failed" | "off",
/// "events": [as am_memory_add_messages returns], "handle"?, "error"?: {"code",
/// "message"}}, "model": "provider:model"}`, freed with `am_string_free`. Remembering that
/// fails does not fail the call: its `status` is `"failed"`, with the `error`.
/// Errors: a store without a chat model, `AM_ERR_UNSUPPORTED` (before any work); a bad
/// request, `AM_ERR_INVALID_INPUT`; a model failure, or a stream cut before its end,
/// `AM_ERR_LLM`; `on_chunk` returned non-zero, `AM_ERR_CANCELLED`. None of them stores
/// anything. The call blocks for as long as the model takes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_chat(
    m: *const am_memory,
    request_json: *const c_char,
    on_chunk: am_chunk_fn,
    user: *mut c_void,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            clear_out(out_json, "out_json")?;
            let memory = memory_arg(m)?;
            let request = if request_json.is_null() {
                "null"
            } else {
                str_arg(request_json, "request_json")?
            };
            let Some(on_chunk) = on_chunk else {
                return put_text(out_json, wire::call_text(memory, "chat", request)?);
            };
            // serde_json escapes control characters, so a chunk never holds a NUL; were it
            // to, the call stops with that failure rather than hand C a cut chunk.
            let mut unsendable = None;
            let mut on_text = |delta: &str| match CString::new(wire::text_chunk(delta)) {
                Ok(chunk) => on_chunk(chunk.as_ptr(), user) == 0,
                Err(_) => {
                    unsendable = Some(agent_mem::Error::internal("a chunk held a NUL byte"));
                    false
                }
            };
            let reply = wire::call_text_streaming(memory, "chat", request, &mut on_text);
            if let Some(e) = unsendable {
                return Err(e.into());
            }
            put_text(out_json, reply?)
        })
    }
}

// ------------------------------------------------------------------------------- plugins

/// Registers a WASM plugin (run by Extism: a WebAssembly module speaking its ABI, e.g. written
/// in Rust with extism-pdk). The functions of this section exist in every build of the
/// library; in one built without plugins (cargo feature `plugins`) they fail with
/// `AM_ERR_UNSUPPORTED`.
///
/// `manifest_json`: `{"id": "…" (required; 1 to 64 of A-Z a-z 0-9 _ - .), "name", "version",
/// "kind": "hook" (default) | "function", "capabilities": ["memory_read", "memory_write",
/// "search", "llm", "network", "filesystem", "logging", "config"], "config": {"key": "value"},
/// "allowed_hosts": ["example.com", "*.example.com"], "allowed_paths": {"/host/dir":
/// "/guest/dir"}, "limits": {"memory_pages": 256, "timeout_ms": 1000, "fuel": null},
/// "on_error": "fail" (default) | "skip", "path": "/dir/plugin.wasm"}`. Only the listed
/// capabilities are granted.
/// The module is either `wasm_len` bytes at `wasm` (a WebAssembly binary or WebAssembly text;
/// at most 256 MiB; the library copies them) or, when `wasm` is NULL (and `wasm_len` 0), the
/// file at the manifest's `"path"` (`.wasm` or `.wat`; reloaded when it changes). Giving both
/// or neither is `AM_ERR_INVALID_INPUT`, as is `wasm` NULL with a nonzero `wasm_len`.
///
/// A hook plugin runs inside the store's calls, in registration order, through the exports it
/// has: `on_add` (before a memory is stored by add, batch add, inferred facts or an update of
/// the content; it may replace the content or metadata, or answer `{"reject": "why"}`, which
/// fails the call with `AM_ERR_PLUGIN` and the reason), `before_search` (may change the query,
/// limit and filters) and `after_search` (may reorder, drop and rescore hits). A failing hook
/// (trap, timeout, limit, bad answer) fails the call with `AM_ERR_PLUGIN` and nothing is
/// written, unless its `on_error` is `"skip"`. A function plugin is only called through
/// `am_memory_call_plugin`. A plugin's host functions (`am_search`, `am_get`, `am_add`,
/// `am_llm`, `am_log`, `am_config`) only reach the scope of the call that ran it.
///
/// `*out_info_json`: the plugin's info, `{"id", "name", "version"?, "kind", "capabilities":
/// […], "path"?, "hooks": ["on_add", …], "loaded": true | false, "limits": {"memory_pages",
/// "timeout_ms", "fuel"}, "on_error", "stats": {"calls", "failures", "denied", "loads",
/// "reloads"}, "last_error"?, "log": [{"time", "level": "info" | "warn" | "error", "message"},
/// …]}`.
/// Errors: a bad manifest is `AM_ERR_INVALID_INPUT`; an id already registered,
/// `AM_ERR_ALREADY_EXISTS`; a module that does not compile, `AM_ERR_PLUGIN`; an unreadable
/// path, `AM_ERR_IO`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_register_plugin(
    m: *const am_memory,
    manifest_json: *const c_char,
    wasm: *const u8,
    wasm_len: usize,
    out_info_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_info_json, "out_info_json", m, |memory| {
            let manifest = json_arg(manifest_json, "manifest_json", true)?;
            let wasm = if wasm.is_null() && wasm_len == 0 {
                None
            } else {
                Some(bytes_arg(wasm, wasm_len, "wasm", MAX_WASM_LEN, invalid)?)
            };
            Ok(wire::plugin_register(memory, &manifest, wasm)?)
        })
    }
}

/// Every registered plugin. `*out_json`: `[infos]` (as `am_memory_register_plugin` returns),
/// in registration order. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_list_plugins(
    m: *const am_memory,
    out_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        json_call(err, out_json, "out_json", m, |memory| {
            Ok(wire::plugin_list(memory)?)
        })
    }
}

/// Removes a plugin: its hooks stop running and its id is free again. Unknown id:
/// `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_unregister_plugin(
    m: *const am_memory,
    id: *const c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            let memory = memory_arg(m)?;
            let id = str_arg(id, "id")?;
            Ok(wire::plugin_unregister(memory, id)?)
        })
    }
}

/// Compiles a plugin now (it is otherwise compiled on first use) and keeps it in the cache of
/// compiled plugins (`plugins.cache_size` of `am_memory_open`). `*out_info_json`: its info (as
/// `am_memory_register_plugin` returns). Unknown id: `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_load_plugin(
    m: *const am_memory,
    id: *const c_char,
    out_info_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        id_call(
            m,
            id,
            out_info_json,
            "out_info_json",
            err,
            wire::plugin_load,
        )
    }
}

/// Drops a plugin's compiled code; it stays registered and is compiled again on its next use.
/// `*out_info_json`: its info. Unknown id: `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_unload_plugin(
    m: *const am_memory,
    id: *const c_char,
    out_info_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        id_call(
            m,
            id,
            out_info_json,
            "out_info_json",
            err,
            wire::plugin_unload,
        )
    }
}

/// Compiles a plugin again from its source (re-reading its file when registered by path).
/// `*out_info_json`: its info. Unknown id: `AM_ERR_NOT_FOUND`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_reload_plugin(
    m: *const am_memory,
    id: *const c_char,
    out_info_json: *mut *mut c_char,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        id_call(
            m,
            id,
            out_info_json,
            "out_info_json",
            err,
            wire::plugin_reload,
        )
    }
}

/// Calls export `function` of plugin `id` (of either kind) with `input_len` bytes at `input`
/// (any bytes, NUL included; at most 64 MiB; `input` may be NULL only when `input_len` is 0,
/// else `AM_ERR_NULL_ARG`).
///
/// `scope_json` (NULL for the global layer): `{"user_id", "agent_id", "run_id", "org_id"}`;
/// the host functions the plugin calls only reach memories of this scope. The call is bound
/// by the plugin's limits.
/// On success `*out` is a new buffer of `*out_len` bytes, the plugin's output, which the
/// caller frees with `am_bytes_free(*out, *out_len)`. It is never NULL, even when empty, and
/// is followed by a NUL byte not counted in `*out_len`, so text output may be read as a C
/// string (if it holds no NUL itself).
/// Errors: unknown plugin or export, `AM_ERR_NOT_FOUND`; a trap, timeout, memory or fuel
/// limit, or an error reported by the plugin, `AM_ERR_PLUGIN` (the message says which); a
/// host function whose capability was not granted, `AM_ERR_PERMISSION_DENIED`. The handle
/// stays usable after any of them. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn am_memory_call_plugin(
    m: *const am_memory,
    id: *const c_char,
    function: *const c_char,
    input: *const u8,
    input_len: usize,
    scope_json: *const c_char,
    out: *mut *mut u8,
    out_len: *mut usize,
    err: *mut *mut am_error,
) -> am_status {
    unsafe {
        guard(err, || {
            // Both out-parameters are cleared before either is reported NULL.
            let cleared_len = clear_len(out_len, "out_len");
            clear_out(out, "out")?;
            cleared_len?;
            let memory = memory_arg(m)?;
            let id = str_arg(id, "id")?;
            let function = str_arg(function, "function")?;
            let input = bytes_arg(input, input_len, "input", MAX_INPUT_LEN, null_with_length)?;
            let scope = json_arg(scope_json, "scope_json", false)?;
            let output = wire::plugin_call(memory, id, function, input, &scope)?;
            put_bytes(out, out_len, output);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_mem::ErrorCode;

    #[test]
    fn status_numbers_and_names_are_the_cores() {
        for code in ErrorCode::ALL {
            let name = status_name(code.as_u32()).to_str().unwrap();
            assert_eq!(name, format!("AM_ERR_{}", code.upper_name()), "{code:?}");
        }
        assert_eq!(status_name(AM_OK), c"AM_OK");
        assert_eq!(
            status_name(ErrorCode::ALL.len() as u32 + 1),
            c"AM_ERR_UNKNOWN"
        );
        assert_eq!(status_name(AM_ERR_NULL_ARG), c"AM_ERR_NULL_ARG");
        assert_eq!(status_name(AM_ERR_PANIC), c"AM_ERR_PANIC");
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let mut err: *mut am_error = ptr::null_mut();
        let status = unsafe { guard(&mut err, || panic!("boom")) };
        assert_eq!(status, AM_ERR_PANIC);
        unsafe {
            assert_eq!(am_error_code(err), AM_ERR_PANIC);
            let message = CStr::from_ptr(am_error_message(err)).to_str().unwrap();
            assert!(message.contains("boom"), "{message}");
            am_error_free(err);
        }
    }

    fn store() -> *mut am_memory {
        let mut m = ptr::null_mut();
        let status = unsafe {
            am_memory_open(
                c":memory:".as_ptr(),
                c"{\"embedder\":\"none\"}".as_ptr(),
                &mut m,
                ptr::null_mut(),
            )
        };
        assert_eq!(status, AM_OK);
        m
    }

    /// `am_memory_call`'s status, output and error message.
    unsafe fn call(
        m: *const am_memory,
        op: *const c_char,
        request: *const c_char,
    ) -> (am_status, String) {
        let (mut out, mut err) = (ptr::null_mut(), ptr::null_mut());
        unsafe {
            let status = am_memory_call(m, op, request, &mut out, &mut err);
            let text = if status == AM_OK {
                assert!(err.is_null());
                CStr::from_ptr(out).to_str().unwrap().to_string()
            } else {
                assert!(out.is_null());
                CStr::from_ptr(am_error_message(err))
                    .to_str()
                    .unwrap()
                    .to_string()
            };
            am_string_free(out);
            am_error_free(err);
            (status, text)
        }
    }

    #[test]
    fn any_operation_is_called_by_name() {
        let m = store();
        unsafe {
            let add = c"{\"content\": \"east\", \"vector\": [1, 0]}".as_ptr();
            let (status, out) = call(m, c"add".as_ptr(), add);
            assert_eq!(status, AM_OK, "{out}");
            assert!(out.contains("\"added\":true"), "{out}");
            assert_eq!(call(m, c"count".as_ptr(), ptr::null()), (AM_OK, "1".into()));

            let (status, message) = call(m, c"frobnicate".as_ptr(), c"{}".as_ptr());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert!(message.contains("\"frobnicate\""), "{message}");
            let (status, message) = call(m, c"reset".as_ptr(), c"{".as_ptr());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert!(message.contains("not valid JSON"), "{message}");
            let (status, _) = call(m, c"reset".as_ptr(), c"[1]".as_ptr());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            let bad_utf8 = [0xffu8, 0];
            let (status, message) = call(m, bad_utf8.as_ptr().cast(), c"{}".as_ptr());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert!(
                message.contains("operation is not valid UTF-8"),
                "{message}"
            );
            let (status, _) = call(m, c"count".as_ptr(), bad_utf8.as_ptr().cast());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert_eq!(call(m, ptr::null(), c"{}".as_ptr()).0, AM_ERR_NULL_ARG);
            assert_eq!(
                call(ptr::null(), c"count".as_ptr(), ptr::null()).0,
                AM_ERR_NULL_ARG
            );
            let status = am_memory_call(
                m,
                c"count".as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            assert_eq!(status, AM_ERR_NULL_ARG);
            assert_eq!(call(m, c"count".as_ptr(), ptr::null()), (AM_OK, "1".into()));

            let mut names = ptr::null_mut();
            assert_eq!(am_operations(&mut names, ptr::null_mut()), AM_OK);
            let listed: Vec<String> =
                serde_json::from_str(CStr::from_ptr(names).to_str().unwrap()).unwrap();
            assert_eq!(listed, wire::OPERATIONS);
            am_string_free(names);
            am_memory_free(m);
        }
    }

    /// `am_memory_chat`'s status and error message, its result freed.
    unsafe fn chat(m: *const am_memory, request: *const c_char) -> (am_status, String) {
        unsafe extern "C" fn never(_: *const c_char, _: *mut c_void) -> c_int {
            panic!("no answer, no chunk")
        }
        let (mut out, mut err) = (ptr::null_mut(), ptr::null_mut());
        unsafe {
            let status =
                am_memory_chat(m, request, Some(never), ptr::null_mut(), &mut out, &mut err);
            assert_eq!(out.is_null(), status != AM_OK);
            let message = CStr::from_ptr(am_error_message(err))
                .to_str()
                .unwrap()
                .to_string();
            am_string_free(out);
            am_error_free(err);
            (status, message)
        }
    }

    #[test]
    fn chat_checks_its_arguments_and_needs_a_model() {
        let m = store();
        unsafe {
            let request = c"{\"messages\": \"Hi\", \"user_id\": \"u\"}".as_ptr();
            let (status, message) = chat(m, request);
            assert_eq!(status, AM_ERR_UNSUPPORTED, "{message}");
            let (status, message) = chat(m, ptr::null());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert!(message.contains("messages is required"), "{message}");
            let bad_utf8 = [b'{', 0xff, 0];
            let (status, message) = chat(m, bad_utf8.as_ptr().cast());
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            assert!(
                message.contains("request_json is not valid UTF-8"),
                "{message}"
            );
            assert_eq!(chat(ptr::null(), request).0, AM_ERR_NULL_ARG);
            let status = am_memory_chat(
                m,
                request,
                None,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            assert_eq!(status, AM_ERR_NULL_ARG);
            assert_eq!(status_name(AM_ERR_CANCELLED), c"AM_ERR_CANCELLED");
            am_memory_free(m);
        }
    }

    #[test]
    fn returned_bytes_end_with_an_uncounted_nul() {
        let (mut out, mut len) = (ptr::null_mut(), 7);
        unsafe {
            put_bytes(&mut out, &mut len, b"a\0b".to_vec());
            assert_eq!(len, 3);
            assert_eq!(std::slice::from_raw_parts(out, 4), b"a\0b\0");
            am_bytes_free(out, len);
            put_bytes(&mut out, &mut len, Vec::new());
            assert!(!out.is_null());
            assert_eq!((len, *out), (0, 0));
            am_bytes_free(out, len);
            am_bytes_free(ptr::null_mut(), 5);
        }
    }

    #[test]
    fn oversized_or_missing_buffers_are_refused_before_reading() {
        let m = store();
        let mut info = ptr::null_mut();
        let mut err = ptr::null_mut();
        let manifest = c"{\"id\":\"p\"}".as_ptr();
        unsafe {
            let status =
                am_memory_register_plugin(m, manifest, ptr::null(), 4, &mut info, &mut err);
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            am_error_free(err);
            // Never read: the length is refused first.
            let byte = 0u8;
            let status = am_memory_register_plugin(
                m,
                manifest,
                &byte,
                MAX_WASM_LEN + 1,
                &mut info,
                &mut err,
            );
            assert_eq!(status, AM_ERR_INVALID_INPUT);
            let message = CStr::from_ptr(am_error_message(err)).to_str().unwrap();
            assert!(message.contains("at most 268435456 bytes"), "{message}");
            am_error_free(err);
            assert!(info.is_null());
            am_memory_free(m);
        }
    }

    #[cfg(not(feature = "plugins"))]
    #[test]
    fn without_the_feature_the_plugin_functions_are_unsupported() {
        let m = store();
        let (mut json, mut out, mut len) = (ptr::null_mut(), ptr::null_mut(), 9);
        let id = c"p".as_ptr();
        unsafe {
            let wat = b"(module)";
            let manifest = c"{\"id\":\"p\"}".as_ptr();
            let statuses = [
                am_memory_register_plugin(
                    m,
                    manifest,
                    wat.as_ptr(),
                    wat.len(),
                    &mut json,
                    ptr::null_mut(),
                ),
                am_memory_list_plugins(m, &mut json, ptr::null_mut()),
                am_memory_unregister_plugin(m, id, ptr::null_mut()),
                am_memory_load_plugin(m, id, &mut json, ptr::null_mut()),
                am_memory_unload_plugin(m, id, &mut json, ptr::null_mut()),
                am_memory_reload_plugin(m, id, &mut json, ptr::null_mut()),
                am_memory_call_plugin(
                    m,
                    id,
                    c"f".as_ptr(),
                    ptr::null(),
                    0,
                    ptr::null(),
                    &mut out,
                    &mut len,
                    ptr::null_mut(),
                ),
            ];
            assert_eq!(statuses, [AM_ERR_UNSUPPORTED; 7]);
            assert!(json.is_null() && out.is_null() && len == 0);
            am_memory_free(m);
        }
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn without_the_feature_postgres_stores_are_unsupported() {
        let mut m = ptr::null_mut();
        let mut err = ptr::null_mut();
        unsafe {
            let status = am_memory_open(
                c"postgres://agent:secret@127.0.0.1:1/memories".as_ptr(),
                c"{\"embedder\":\"none\"}".as_ptr(),
                &mut m,
                &mut err,
            );
            assert_eq!(status, AM_ERR_UNSUPPORTED);
            let message = CStr::from_ptr(am_error_message(err)).to_str().unwrap();
            assert!(!message.contains("secret"), "{message}");
            am_error_free(err);
            let status = am_memory_open(
                c":memory:".as_ptr(),
                c"{\"embedder\":\"none\",\"postgres\":{\"pool_size\":2}}".as_ptr(),
                &mut m,
                ptr::null_mut(),
            );
            assert_eq!(status, AM_ERR_UNSUPPORTED);
            assert!(m.is_null());
        }
    }

    #[test]
    fn the_committed_header_is_the_generated_one() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/agentmem.h"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../include/agentmem.h");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "include/agentmem.h is stale: regenerate it with \
             AGENTMEM_UPDATE_HEADER=1 cargo build -p agent-mem-ffi --features plugins,postgres"
        );
    }
}
