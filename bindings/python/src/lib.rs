//! `agent_mem._native`: the private native module of the `agent_mem` Python package.
//!
//! Type conversion only. `call(op, request)` turns its Python arguments into the JSON
//! request of [`agent_mem::wire`]'s one dispatch, makes one call into the core with the GIL
//! released, and turns the JSON result back into plain Python objects, so an operation added
//! to the dispatch needs no change here. What is not JSON keeps a method of its own: plugin
//! registration with the module's bytes, a plugin call (bytes in and out), `copy_into` (a
//! store handle), opening and closing. Core errors become the exception classes of
//! `agent_mem.exceptions`. Every method has an `_async` twin that returns an asyncio future
//! resolved from a Rust worker thread (see [`bridge`]). `call_stream(op, request)` streams
//! an operation's text (`chat`) through a [`NativeStream`](stream::NativeStream), blocking
//! or awaited. The public, documented API is `agent_mem.Memory` / `agent_mem.AsyncMemory`
//! in Python.

mod bridge;
mod convert;
mod errors;
mod stream;

use std::sync::{Arc, RwLock};

use agent_mem::wire::{self, Embeddings};
use agent_mem::{Error, ErrorCode, Memory};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes};
use serde_json::Value;

use crate::convert::to_json;
use crate::errors::check;

/// One core call with its converted arguments, ready to run without the GIL.
enum Call {
    /// An operation of the dispatch ([`wire::call_with`]), by name.
    Op {
        name: String,
        request: Value,
        embeddings: Embeddings,
    },
    /// Registration with the module's bytes (bytes are not JSON).
    PluginRegister(Value, Option<Vec<u8>>),
    /// Copy everything into this (empty) store (a native handle, not JSON).
    CopyInto(Arc<Memory>),
}

impl Call {
    fn op(
        py: Python<'_>,
        name: String,
        request: Option<&Bound<'_, PyAny>>,
        vector: Option<Vec<f32>>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> PyResult<Call> {
        Ok(Call::Op {
            name,
            request: self::request(py, request)?,
            embeddings: check(py, Embeddings::from_options(vector, vectors))?,
        })
    }

    fn run(self, m: &Memory) -> agent_mem::Result<Value> {
        match self {
            Call::Op {
                name,
                request,
                embeddings,
            } => wire::call_with(m, &name, request, embeddings),
            Call::PluginRegister(manifest, wasm) => {
                wire::plugin_register(m, &manifest, wasm.as_deref())
            }
            Call::CopyInto(target) => wire::copy_into(m, &target),
        }
    }
}

/// A direct call of a plugin's export: its result is bytes, not JSON.
struct PluginCall {
    id: String,
    function: String,
    input: Vec<u8>,
    scope: Value,
}

impl PluginCall {
    fn new(
        py: Python<'_>,
        id: String,
        function: String,
        input: &[u8],
        scope: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PluginCall> {
        Ok(PluginCall {
            id,
            function,
            input: input.to_vec(),
            scope: request(py, scope)?,
        })
    }

    fn run(self, m: &Memory) -> agent_mem::Result<Vec<u8>> {
        wire::plugin_call(m, &self.id, &self.function, &self.input, &self.scope)
    }
}

fn bytes_to_py(py: Python<'_>, bytes: Vec<u8>) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, &bytes).into_any().unbind())
}

/// A request dict (or None) as JSON; what cannot be JSON is the core's `InvalidInput`.
fn request(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match obj {
        None => Ok(Value::Null),
        Some(o) => check(py, to_json(o, "")),
    }
}

fn json_to_py(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    Ok(convert::to_py(py, &value)?.unbind())
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "this memory is closed")
}

/// An open store. Thread-safe: calls from several Python threads (the GIL is released while
/// the core works) and several in-flight async calls share it.
#[pyclass(frozen, module = "agent_mem._native")]
struct NativeMemory {
    /// `None` once closed. Held only to clone the `Arc`, never across a core call.
    inner: RwLock<Option<Arc<Memory>>>,
    path: Option<String>,
    /// `Memory::location`: kept for `repr` after closing.
    location: String,
}

impl NativeMemory {
    fn wrap(memory: Memory) -> NativeMemory {
        let path = memory.path().map(|p| p.to_string_lossy().into_owned());
        let location = memory.location();
        NativeMemory {
            inner: RwLock::new(Some(Arc::new(memory))),
            path,
            location,
        }
    }

    fn memory(&self, py: Python<'_>) -> PyResult<Arc<Memory>> {
        let slot = self.inner.read().unwrap_or_else(|p| p.into_inner());
        check(py, slot.clone().ok_or_else(closed))
    }

    fn take(&self) -> Option<Arc<Memory>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// This store as the target of another's `copy_into`.
    fn target(&self, py: Python<'_>) -> PyResult<Arc<Memory>> {
        let slot = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let closed = || Error::new(ErrorCode::Closed, "the target memory is closed");
        check(py, slot.clone().ok_or_else(closed))
    }

    /// Runs the call here, with the GIL released.
    fn sync(&self, py: Python<'_>, call: Call) -> PyResult<Py<PyAny>> {
        let m = self.memory(py)?;
        let out = py.detach(move || call.run(&m));
        json_to_py(py, check(py, out)?)
    }

    /// Runs the call on a worker; an asyncio future of the result.
    fn spawn(&self, py: Python<'_>, call: Call) -> PyResult<Py<PyAny>> {
        let m = self.memory(py)?;
        bridge::spawn(py, move || call.run(&m), json_to_py)
    }
}

/// Closing: the last handle closes the store (saving its index); while async calls are
/// still running it is saved now and released when they end.
fn close_memory(m: Arc<Memory>) -> agent_mem::Result<()> {
    match Arc::try_unwrap(m) {
        Ok(m) => m.close(),
        Err(shared) => shared.flush(),
    }
}

fn open_memory(path: Option<String>, options: Value) -> agent_mem::Result<Memory> {
    wire::open(path.as_deref(), &options)
}

#[pymethods]
impl NativeMemory {
    /// Opens (or creates) a store: `path` a file, a `postgres://` URL, or None / ":memory:"
    /// for memory only; `options` the core's open options as a dict (wire::OpenOptions).
    #[new]
    #[pyo3(signature = (path=None, options=None))]
    fn new(
        py: Python<'_>,
        path: Option<String>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<NativeMemory> {
        let options = request(py, options)?;
        let memory = py.detach(move || open_memory(path, options));
        Ok(NativeMemory::wrap(check(py, memory)?))
    }

    /// As the constructor, on a worker thread: a future of the opened store.
    #[staticmethod]
    #[pyo3(signature = (path=None, options=None))]
    fn open_async(
        py: Python<'_>,
        path: Option<String>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let options = request(py, options)?;
        bridge::spawn(
            py,
            move || open_memory(path, options),
            |py, memory| Ok(Py::new(py, NativeMemory::wrap(memory))?.into_any()),
        )
    }

    /// The store file, or None for a store in memory or on a PostgreSQL server.
    #[getter]
    fn path(&self) -> Option<String> {
        self.path.clone()
    }

    /// Memory::location: the file, ":memory:", or the URL with its password hidden.
    #[getter]
    fn location(&self) -> String {
        self.location.clone()
    }

    /// The embedding model's id, or None without an embedder.
    #[getter]
    fn embedding_model(&self, py: Python<'_>) -> PyResult<Option<String>> {
        Ok(self.memory(py)?.embedding_model().map(str::to_owned))
    }

    /// The chat model's label (`"openai:gpt-4.1-nano"`), or None without one.
    #[getter]
    fn llm(&self, py: Python<'_>) -> PyResult<Option<String>> {
        Ok(self.memory(py)?.llm_label().map(str::to_owned))
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Saves the index and closes the store; later calls raise `ClosedError`. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.take() {
            None => Ok(()),
            Some(m) => check(py, py.detach(move || close_memory(m))),
        }
    }

    /// `close` on a worker thread.
    fn close_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let taken = self.take();
        bridge::spawn(
            py,
            move || taken.map_or(Ok(()), close_memory),
            |py, ()| Ok(py.None()),
        )
    }

    /// wire::call_with: operation `op` (one of `operations()`) with its request (a dict,
    /// or None for `{}`) and the caller's embeddings (`vector` for add, search and update;
    /// `vectors` for add_batch) → its result as plain Python objects.
    #[pyo3(signature = (op, request=None, vector=None, vectors=None))]
    fn call(
        &self,
        py: Python<'_>,
        op: String,
        request: Option<&Bound<'_, PyAny>>,
        vector: Option<Vec<f32>>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::op(py, op, request, vector, vectors)?;
        self.sync(py, call)
    }

    /// `call` as a future.
    #[pyo3(signature = (op, request=None, vector=None, vectors=None))]
    fn call_async(
        &self,
        py: Python<'_>,
        op: String,
        request: Option<&Bound<'_, PyAny>>,
        vector: Option<Vec<f32>>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::op(py, op, request, vector, vectors)?;
        self.spawn(py, call)
    }

    /// wire::call_streaming: operation `op` (`chat`) with its request (a dict, or None for
    /// `{}`), run on a thread of its own → a `NativeStream` of the answer's pieces of text,
    /// then the result. A closed store raises `ClosedError` here; every other error comes
    /// out of the stream.
    #[pyo3(signature = (op, request=None))]
    fn call_stream(
        &self,
        py: Python<'_>,
        op: String,
        request: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<stream::NativeStream> {
        let request = self::request(py, request)?;
        let m = self.memory(py)?;
        check(py, stream::start(m, op, request))
    }

    /// wire::copy_into: every memory and the whole history into the empty store `target`
    /// → `{"memories", "history"}` (how many were copied).
    fn copy_into(&self, py: Python<'_>, target: &Bound<'_, NativeMemory>) -> PyResult<Py<PyAny>> {
        let call = Call::CopyInto(target.get().target(py)?);
        self.sync(py, call)
    }

    /// `copy_into` as a future.
    fn copy_into_async(
        &self,
        py: Python<'_>,
        target: &Bound<'_, NativeMemory>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::CopyInto(target.get().target(py)?);
        self.spawn(py, call)
    }

    /// wire::plugin_register: `manifest` a dict (with `"path"`, or the module's bytes in
    /// `wasm`, binary or text) → the plugin's info.
    #[pyo3(signature = (manifest, wasm=None))]
    fn register_plugin(
        &self,
        py: Python<'_>,
        manifest: &Bound<'_, PyAny>,
        wasm: Option<&[u8]>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::PluginRegister(request(py, Some(manifest))?, wasm.map(<[u8]>::to_vec));
        self.sync(py, call)
    }

    /// `register_plugin` as a future.
    #[pyo3(signature = (manifest, wasm=None))]
    fn register_plugin_async(
        &self,
        py: Python<'_>,
        manifest: &Bound<'_, PyAny>,
        wasm: Option<&[u8]>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::PluginRegister(request(py, Some(manifest))?, wasm.map(<[u8]>::to_vec));
        self.spawn(py, call)
    }

    /// wire::plugin_call: export `function` of plugin `id` with `input`, host functions
    /// confined to `scope` (a dict of scope ids, or None for the global layer) → the
    /// plugin's output as bytes.
    #[pyo3(signature = (id, function, input, scope=None))]
    fn call_plugin(
        &self,
        py: Python<'_>,
        id: String,
        function: String,
        input: &[u8],
        scope: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = PluginCall::new(py, id, function, input, scope)?;
        let m = self.memory(py)?;
        let out = py.detach(move || call.run(&m));
        bytes_to_py(py, check(py, out)?)
    }

    /// `call_plugin` as a future.
    #[pyo3(signature = (id, function, input, scope=None))]
    fn call_plugin_async(
        &self,
        py: Python<'_>,
        id: String,
        function: String,
        input: &[u8],
        scope: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = PluginCall::new(py, id, function, input, scope)?;
        let m = self.memory(py)?;
        bridge::spawn(py, move || call.run(&m), bytes_to_py)
    }

    fn __repr__(&self) -> String {
        format!("<agent_mem._native.NativeMemory {:?}>", self.location)
    }
}

impl Drop for NativeMemory {
    /// A store dropped without `close` still saves its index (in `Memory`'s own drop), with
    /// the GIL released meanwhile.
    fn drop(&mut self) {
        if let Some(m) = self.take() {
            // Not attached (the interpreter is gone): the closure is dropped, and the store
            // with it.
            let _ = Python::try_attach(|py| py.detach(move || drop(m)));
        }
    }
}

/// The stable error codes as `[(number, name)]`, in numeric order.
#[pyfunction]
fn error_codes() -> Vec<(u32, &'static str)> {
    ErrorCode::ALL
        .iter()
        .map(|c| (c.as_u32(), c.name()))
        .collect()
}

/// The operations `NativeMemory.call` knows (wire::OPERATIONS), in a stable order.
#[pyfunction]
fn operations() -> Vec<&'static str> {
    wire::OPERATIONS.to_vec()
}

/// True when a store location names a PostgreSQL database (a `postgres://` URL or a libpq
/// connection string) rather than a SQLite file: see `agent_mem::is_postgres_location`.
#[pyfunction]
fn is_postgres_location(location: &str) -> bool {
    agent_mem::is_postgres_location(location)
}

/// The version of the native module (the workspace version).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeMemory>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(operations, m)?)?;
    m.add_function(wrap_pyfunction!(is_postgres_location, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add("IN_MEMORY_PATH", wire::IN_MEMORY_PATH)?;
    m.add(
        "RESERVED_METADATA_KEYS",
        agent_mem::RESERVED_METADATA_KEYS.to_vec(),
    )?;
    m.add(
        "DEFAULT_MODEL_DIMENSIONS",
        agent_mem::embed::DEFAULT_MODEL_DIMENSIONS,
    )?;
    let shutdown = wrap_pyfunction!(bridge::shutdown, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (&shutdown,))?;
    m.add_function(shutdown)?;
    Ok(())
}
