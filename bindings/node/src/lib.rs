//! The private native addon of the `agent_mem` npm package (`node/`).
//!
//! Type conversion only. `call(op, request)` takes an operation's name and the JSON text of
//! its request (the JavaScript wrapper maps its camelCase options onto [`agent_mem::wire`]'s
//! request shapes and calls `JSON.stringify`) and goes through the core's one dispatch, so
//! an operation added there needs no change here. Every call returns a Promise, its work —
//! parsing the request, the one core call, serialising the result — runs on libuv's thread
//! pool (an [`AsyncTask`]), and the Promise resolves with the result's JSON text, the very
//! text the C ABI returns. A core error rejects the Promise with an `Error` whose `code` is
//! the error's Node name from `tests/error_codes.json` (`"AM_NOT_FOUND"`, …); the wrapper
//! turns it into its `AgentMemError` subclass. The public, documented API is
//! `node/index.js`.
//!
//! What is not JSON keeps a method of its own: `registerPlugin` with the module's bytes,
//! `callPlugin` (bytes in, a `Buffer` out), `copyInto` (a store handle), `open` and
//! `close`; `callStream` streams an operation's text (`chat`) through a [`NativeStream`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};

use agent_mem::wire::{self, parse, Embeddings};
use agent_mem::{Error, ErrorCode, Memory};
use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Float32Array, Uint8Array};
use napi::{Env, JsError, Task};
use napi_derive::napi;
use serde_json::Value;

mod stream;

pub use stream::{NativeStream, NextPiece};

/// A core error on its way to JavaScript: the Node code, the message and the causes' texts.
#[derive(Clone)]
pub struct Failure {
    code: String,
    message: String,
    causes: Vec<String>,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Failure {
            code: node_code(e.code()),
            message: e.message().to_string(),
            causes,
        }
    }
}

/// The Node name of a code: `InvalidInput` → `AM_INVALID_INPUT` (the rule the table in
/// `tests/error_codes.json` follows, checked by the core's conformance test).
fn node_code(code: ErrorCode) -> String {
    format!("AM_{}", code.upper_name())
}

/// Runs `body`, turning a panic into an `Internal` error so that it never unwinds into Node.
fn guarded<T>(body: impl FnOnce() -> agent_mem::Result<T>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result.map_err(Failure::from),
        Err(payload) => Err(Error::from_panic(&*payload).into()),
    }
}

/// The JavaScript error for a failure, as a napi error that rejects the Promise with it.
fn reject(env: Env, failure: Failure) -> napi::Error {
    let mut error = napi::Error::new(failure.code, failure.message);
    let mut cause: Option<napi::Error> = None;
    for text in failure.causes.into_iter().rev() {
        let mut e = napi::Error::from_reason(text);
        if let Some(inner) = cause.take() {
            e.set_cause(inner);
        }
        cause = Some(e);
    }
    if let Some(cause) = cause {
        error.set_cause(cause);
    }
    napi::Error::from(JsError::from(error).into_unknown(env))
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "this memory is closed")
}

/// A result as JSON text.
fn text(value: &Value) -> String {
    value.to_string()
}

// ------------------------------------------------------------------------------- operations

/// One core call with its converted arguments.
enum Call {
    /// An operation of the dispatch ([`wire::call_with`]): its name, its request's JSON text
    /// and the caller's embeddings (one, or one per memory).
    Op(String, String, Option<Vec<f32>>, Option<Vec<Vec<f32>>>),
    Close,
    /// Registration with the module's bytes (bytes are not JSON).
    PluginRegister(String, Option<Vec<u8>>),
    /// Plugin id, export, input bytes, scope JSON: bytes in and out.
    PluginInvoke(String, String, Vec<u8>, String),
    /// Copy everything into this (empty) store (a store handle, not JSON); `None` when it
    /// was closed.
    CopyInto(Option<Arc<Memory>>),
}

/// What a call resolves with: JSON text, or the raw output of a plugin.
pub enum Reply {
    /// JSON text.
    Text(String),
    /// A plugin's output.
    Bytes(Vec<u8>),
}

impl Call {
    /// Runs the call; the result as JSON text (`null` for nothing, a number for counts), or
    /// the output bytes of a plugin call.
    fn run(self, memory: Option<Arc<Memory>>) -> agent_mem::Result<Reply> {
        let m = match (memory, &self) {
            // Closing twice is allowed; it does nothing the second time.
            (None, Call::Close) => return Ok(Reply::Text(text(&Value::Null))),
            (None, _) => return Err(closed()),
            (Some(m), Call::Close) => {
                // The last handle closes the store (saving its index); while other calls
                // still hold it, the index is saved now and the store is released after them.
                match Arc::try_unwrap(m) {
                    Ok(m) => m.close()?,
                    Err(shared) => shared.flush()?,
                }
                return Ok(Reply::Text(text(&Value::Null)));
            }
            (Some(m), _) => m,
        };
        let value = match self {
            Call::Op(op, request, vector, vectors) => {
                let embeddings = Embeddings::from_options(vector, vectors)?;
                return Ok(Reply::Text(wire::call_text_with(
                    &m, &op, &request, embeddings,
                )?));
            }
            Call::PluginRegister(manifest, wasm) => {
                wire::plugin_register(&m, &parse(&manifest, "plugin manifest")?, wasm.as_deref())?
            }
            Call::CopyInto(target) => {
                let target = target
                    .ok_or_else(|| Error::new(ErrorCode::Closed, "the target memory is closed"))?;
                wire::copy_into(&m, &target)?
            }
            Call::PluginInvoke(id, function, input, scope) => {
                let scope = parse(&scope, "plugin call scope")?;
                return Ok(Reply::Bytes(wire::plugin_call(
                    &m, &id, &function, &input, &scope,
                )?));
            }
            // Handled above, without a store.
            Call::Close => Value::Null,
        };
        Ok(Reply::Text(text(&value)))
    }
}

/// A call on a store, run on libuv's thread pool; resolves with the result's JSON text (a
/// `Buffer` for a plugin call).
pub struct Job {
    /// The store, or `None` once it was closed (then every call but `close` fails).
    memory: Option<Arc<Memory>>,
    /// Taken when the job runs.
    call: Option<Call>,
}

impl Task for Job {
    type Output = Result<Reply, Failure>;
    type JsValue = Either<String, Buffer>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let memory = self.memory.take();
        Ok(match self.call.take() {
            Some(call) => guarded(move || call.run(memory)),
            None => Err(Error::internal("a job ran twice").into()),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(Reply::Text(text)) => Ok(Either::A(text)),
            Ok(Reply::Bytes(bytes)) => Ok(Either::B(bytes.into())),
            Err(failure) => Err(reject(env, failure)),
        }
    }
}

/// Opening a store, run on libuv's thread pool (it may load the embedding model).
pub struct Open {
    path: Option<String>,
    options: String,
}

impl Task for Open {
    type Output = Result<Memory, Failure>;
    type JsValue = NativeMemory;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let (path, options) = (self.path.take(), std::mem::take(&mut self.options));
        Ok(guarded(move || {
            wire::open(path.as_deref(), &parse(&options, "options")?)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeMemory> {
        match output {
            Ok(memory) => Ok(NativeMemory::wrap(memory)),
            Err(failure) => Err(reject(env, failure)),
        }
    }
}

/// Opens (or creates) a store: `path` a file, a `postgres://` URL, or `null` / `":memory:"`
/// for a store in memory; `options` the JSON text of `wire::OpenOptions` (`"null"` for the
/// defaults).
#[napi]
pub fn open(path: Option<String>, options: String) -> AsyncTask<Open> {
    AsyncTask::new(Open { path, options })
}

// ------------------------------------------------------------------------------- the store

/// An open store. Calls may overlap: each runs on a pool thread with its own handle on the
/// store, which the core shares safely between threads.
#[napi]
pub struct NativeMemory {
    /// `None` once closed. Locked only to clone or take the `Arc`, never across a core call.
    inner: RwLock<Option<Arc<Memory>>>,
    path: Option<String>,
    location: String,
    embedding_model: Option<String>,
}

impl NativeMemory {
    fn wrap(memory: Memory) -> NativeMemory {
        NativeMemory {
            path: memory.path().map(|p| p.to_string_lossy().into_owned()),
            location: memory.location(),
            embedding_model: memory.embedding_model().map(str::to_owned),
            inner: RwLock::new(Some(Arc::new(memory))),
        }
    }

    fn job(&self, call: Call) -> AsyncTask<Job> {
        AsyncTask::new(Job {
            memory: self.shared(),
            call: Some(call),
        })
    }

    fn take(&self) -> Option<Arc<Memory>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The store, or `None` once closed.
    fn shared(&self) -> Option<Arc<Memory>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn bytes(v: Option<Uint8Array>) -> Option<Vec<u8>> {
    // Copied on the JS thread, as vectors are.
    v.map(|a| a.to_vec())
}

#[napi]
impl NativeMemory {
    /// The store file, or `null` for a store in memory or on a PostgreSQL server.
    #[napi(getter)]
    pub fn path(&self) -> Option<String> {
        self.path.clone()
    }

    /// `Memory::location`: the file, `":memory:"`, or the URL with its password hidden.
    #[napi(getter)]
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// The embedding model's id, or `null` without an embedder.
    #[napi(getter)]
    pub fn embedding_model(&self) -> Option<String> {
        self.embedding_model.clone()
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// `wire::call_with`: operation `op` (one of `operations()`) with the JSON text of its
    /// request and the caller's embeddings (`vector` for add, search and update; `vectors`,
    /// one per memory, for add_batch) → the result's JSON text. Parsing, the call and
    /// serialising run on the pool thread; a model failure of `add_messages` rejects with
    /// `AM_LLM`.
    #[napi]
    pub fn call(
        &self,
        op: String,
        request: String,
        vector: Option<Float32Array>,
        vectors: Option<Vec<Float32Array>>,
    ) -> AsyncTask<Job> {
        // Copied here, on the JS thread: JavaScript may change the arrays while the job runs.
        let vector = vector.map(|a| a.to_vec());
        let vectors = vectors.map(|vs| vs.iter().map(|v| v.to_vec()).collect());
        self.job(Call::Op(op, request, vector, vectors))
    }

    /// `wire::call_text_streaming`: operation `op` (`chat`) with the JSON text of its request,
    /// run on a thread of its own → a stream of the answer's pieces of text, then the
    /// result's JSON text (see [`NativeStream`]).
    #[napi]
    pub fn call_stream(&self, op: String, request: String) -> NativeStream {
        stream::start(self.shared(), op, request)
    }

    /// `wire::copy_into`: every memory and the whole history into the empty store `target`
    /// → `{"memories", "history"}` (how many were copied).
    #[napi]
    pub fn copy_into(&self, target: &NativeMemory) -> AsyncTask<Job> {
        self.job(Call::CopyInto(target.shared()))
    }

    /// `wire::plugin_register` → the plugin's info. `manifest` is the JSON text of the
    /// manifest (with `"path"` for a file); `wasm` the module (binary or WebAssembly text)
    /// when there is no path.
    #[napi]
    pub fn register_plugin(&self, manifest: String, wasm: Option<Uint8Array>) -> AsyncTask<Job> {
        self.job(Call::PluginRegister(manifest, bytes(wasm)))
    }

    /// `wire::plugin_call` → a `Buffer`, the plugin's output. `scope` is the JSON text of
    /// `{"user_id", "agent_id", "run_id", "org_id"}` (`{}` or `null`: the global layer).
    #[napi]
    pub fn call_plugin(
        &self,
        id: String,
        function: String,
        input: Uint8Array,
        scope: String,
    ) -> AsyncTask<Job> {
        self.job(Call::PluginInvoke(id, function, input.to_vec(), scope))
    }

    /// Saves the index and closes the store → `null`; later calls fail with `AM_CLOSED`.
    /// Closing again does nothing.
    #[napi]
    pub fn close(&self) -> AsyncTask<Job> {
        AsyncTask::new(Job {
            memory: self.take(),
            call: Some(Call::Close),
        })
    }
}

impl Drop for NativeMemory {
    /// A store collected without `close` still saves its index (in `Memory`'s own drop) —
    /// on a thread of its own, not on the JavaScript thread that runs the finalizer.
    fn drop(&mut self) {
        if let Some(m) = self.take() {
            // Should no thread be had, `spawn` drops the closure, and the store with it, here.
            let _ = std::thread::Builder::new()
                .name("agent_mem-drop".into())
                .spawn(move || drop(m));
        }
    }
}

// ------------------------------------------------------------------------------- module

/// One row of the error table: the core's number and name, and the `code` string of Node
/// errors.
#[napi(object)]
pub struct ErrorCodeEntry {
    /// The stable number (`ErrorCode::as_u32`).
    pub code: u32,
    /// The core's name (`"InvalidInput"`).
    pub name: String,
    /// The Node `code` (`"AM_INVALID_INPUT"`).
    pub node: String,
}

/// The core's error codes in numeric order, as the addon reports them.
#[napi]
pub fn error_codes() -> Vec<ErrorCodeEntry> {
    ErrorCode::ALL
        .iter()
        .map(|&c| ErrorCodeEntry {
            code: c.as_u32(),
            name: c.name().to_string(),
            node: node_code(c),
        })
        .collect()
}

/// The operations `NativeMemory.call` knows (`wire::OPERATIONS`), in a stable order.
#[napi]
pub fn operations() -> Vec<&'static str> {
    wire::OPERATIONS.to_vec()
}

/// The addon's version (the workspace version).
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
