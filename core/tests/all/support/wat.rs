//! Tiny plugins written in WebAssembly text, for tests and benchmarks that must not depend on
//! a wasm32 Rust target. They speak extism's kernel ABI (`extism:host/env`) directly and may
//! call agent_mem's host functions (`extism:host/user`).
#![allow(dead_code)]

/// What one export does.
#[derive(Clone, Debug)]
pub enum Body {
    /// Answers with this text.
    Reply(String),
    /// Answers with its input.
    Echo,
    /// Calls a host function taking text and returning text, with `arg` (or the call's input
    /// when `None`), and answers with what it returned.
    Host(&'static str, Option<String>),
    /// Calls `am_config()` and answers with what it returned.
    Config,
    /// GETs this URL with extism's `http_request` and answers with the response body.
    Http(String),
    /// Calls `am_log(arg)` (the input when `None`), then answers with its input.
    LogThenEcho(Option<String>),
    /// Never returns.
    Loop,
    /// Grows its memory a page at a time, forever.
    Grow,
    /// Traps (what a Rust panic compiles to).
    Trap,
    /// Fails through extism's error channel with this message.
    Fail(String),
}

/// A module exporting each `(name, body)`.
pub fn module(exports: &[(&str, Body)]) -> String {
    let mut data = String::new();
    let mut funcs = String::new();
    let mut next: u32 = 16;
    let mut constant = |text: &str, data: &mut String| -> (u32, usize) {
        let at = next;
        let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
        data.push_str(&format!("  (data (i32.const {at}) \"{escaped}\")\n"));
        next += text.len() as u32 + 16;
        (at, text.len())
    };
    for (name, body) in exports {
        let code = match body {
            Body::Reply(text) => {
                let (at, len) = constant(text, &mut data);
                format!("(call $reply (i32.const {at}) (i32.const {len})) (i32.const 0)")
            }
            Body::Echo => {
                "(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)"
                    .to_string()
            }
            Body::Host(host, arg) => {
                let arg = match arg {
                    Some(text) => {
                        let (at, len) = constant(text, &mut data);
                        format!("(call $copy (i32.const {at}) (i32.const {len}))")
                    }
                    None => "(call $input_offset)".to_string(),
                };
                format!(
                    "(local $r i64) (local.set $r (call ${host} {arg})) \
                     (call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)"
                )
            }
            Body::Config => "(local $r i64) (local.set $r (call $am_config)) \
                 (call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)"
                .to_string(),
            Body::LogThenEcho(arg) => {
                let arg = match arg {
                    Some(text) => {
                        let (at, len) = constant(text, &mut data);
                        format!("(call $copy (i32.const {at}) (i32.const {len}))")
                    }
                    None => "(call $input_offset)".to_string(),
                };
                format!(
                    "(call $am_log {arg}) \
                     (call $output_set (call $input_offset) (call $input_length)) (i32.const 0)"
                )
            }
            Body::Http(url) => {
                let request = format!(r#"{{"url": "{url}", "method": "GET", "headers": {{}}}}"#);
                let (at, len) = constant(&request, &mut data);
                format!(
                    "(local $r i64) (local.set $r (call $http_request \
                     (call $copy (i32.const {at}) (i32.const {len})) (i64.const 0))) \
                     (call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)"
                )
            }
            Body::Loop => "(loop $forever (br $forever)) (i32.const 0)".to_string(),
            Body::Grow => {
                "(loop $more (drop (memory.grow (i32.const 1))) (br $more)) (i32.const 0)"
                    .to_string()
            }
            Body::Trap => "unreachable".to_string(),
            Body::Fail(message) => {
                let (at, len) = constant(message, &mut data);
                format!("(call $error_set (call $copy (i32.const {at}) (i32.const {len}))) (i32.const 1)")
            }
        };
        funcs.push_str(&format!(
            "  (func (export \"{name}\") (result i32) {code})\n"
        ));
    }
    format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/user" "am_log" (func $am_log (param i64)))
  (import "extism:host/user" "am_config" (func $am_config (result i64)))
  (import "extism:host/user" "am_search" (func $am_search (param i64) (result i64)))
  (import "extism:host/user" "am_get" (func $am_get (param i64) (result i64)))
  (import "extism:host/user" "am_add" (func $am_add (param i64) (result i64)))
  (import "extism:host/user" "am_llm" (func $am_llm (param i64) (result i64)))
  (memory (export "memory") 1)
{data}
  ;; Copies len bytes of this module's memory at ptr into extism memory; returns the offset.
  (func $copy (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $off))
  (func $reply (param $ptr i32) (param $len i32)
    (call $output_set (call $copy (local.get $ptr) (local.get $len))
                      (i64.extend_i32_u (local.get $len))))
{funcs})
"#
    )
}

/// A module with one export.
pub fn one(name: &str, body: Body) -> String {
    module(&[(name, body)])
}
