//! `agent_mem._native`: the private native module of the `agent_mem` Python package.
//!
//! Type conversion only. Each method turns its Python arguments into the JSON request of
//! [`agent_mem::wire`], makes one call into the core with the GIL released, and turns the
//! JSON result back into plain Python objects (a plugin call's output is returned as
//! `bytes`, as the core gives it); core errors become the exception classes of
//! `agent_mem.exceptions`. Every operation has an `_async` twin that returns an asyncio
//! future resolved from a Rust worker thread (see [`bridge`]). The public, documented API is
//! `agent_mem.Memory` / `agent_mem.AsyncMemory` in Python.

mod bridge;
mod convert;
mod errors;

use std::sync::{Arc, RwLock};

use agent_mem::{wire, Error, ErrorCode, Memory};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes};
use serde_json::Value;

use crate::convert::to_json;
use crate::errors::check;

/// One core operation with its converted arguments, ready to run without the GIL.
enum Call {
    Add(Value, Option<Vec<f32>>),
    AddBatch(Value, Option<Vec<Vec<f32>>>),
    AddMessages(Value),
    Get(String),
    List(Value),
    Count(Value),
    Update(String, Value, Option<Vec<f32>>),
    Delete(String),
    DeleteAll(Value),
    History(String),
    Search(Value, Option<Vec<f32>>),
    Reset,
    PurgeExpired,
    Flush,
    PluginRegister(Value, Option<Vec<u8>>),
    PluginList,
    PluginUnregister(String),
    PluginLoad(String),
    PluginUnload(String),
    PluginReload(String),
    /// Copy everything into this (empty) store.
    CopyInto(Arc<Memory>),
}

impl Call {
    fn run(self, m: &Memory) -> agent_mem::Result<Value> {
        match self {
            Call::Add(r, None) => wire::add(m, &r),
            Call::Add(r, Some(v)) => wire::add_with_vector(m, &r, v),
            Call::AddBatch(r, None) => wire::add_batch(m, &r),
            Call::AddBatch(r, Some(v)) => wire::add_batch_with_vectors(m, &r, v),
            Call::AddMessages(r) => wire::add_messages(m, &r),
            Call::Get(id) => wire::get(m, &id),
            Call::List(r) => wire::list(m, &r),
            Call::Count(r) => wire::count(m, &r).map(Value::from),
            Call::Update(id, r, None) => wire::update(m, &id, &r),
            Call::Update(id, r, Some(v)) => wire::update_with_vector(m, &id, &r, v),
            Call::Delete(id) => wire::delete(m, &id).map(|()| Value::Null),
            Call::DeleteAll(r) => wire::delete_all(m, &r).map(Value::from),
            Call::History(id) => wire::history(m, &id),
            Call::Search(r, None) => wire::search(m, &r),
            Call::Search(r, Some(v)) => wire::search_with_vector(m, &r, &v),
            Call::Reset => m.reset().map(|()| Value::Null),
            Call::PurgeExpired => m.purge_expired().map(Value::from),
            Call::Flush => m.flush().map(|()| Value::Null),
            Call::PluginRegister(manifest, wasm) => {
                wire::plugin_register(m, &manifest, wasm.as_deref())
            }
            Call::PluginList => wire::plugin_list(m),
            Call::PluginUnregister(id) => wire::plugin_unregister(m, &id).map(|()| Value::Null),
            Call::PluginLoad(id) => wire::plugin_load(m, &id),
            Call::PluginUnload(id) => wire::plugin_unload(m, &id),
            Call::PluginReload(id) => wire::plugin_reload(m, &id),
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

    /// wire::add (with `vector`: wire::add_with_vector) → `{"id", "added"}`.
    #[pyo3(signature = (request, vector=None))]
    fn add(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Add(self::request(py, Some(request))?, vector);
        self.sync(py, call)
    }

    /// `add` as a future.
    #[pyo3(signature = (request, vector=None))]
    fn add_async(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Add(self::request(py, Some(request))?, vector);
        self.spawn(py, call)
    }

    /// wire::add_batch (with `vectors`: wire::add_batch_with_vectors) → `[{"id", "added"}]`.
    #[pyo3(signature = (request, vectors=None))]
    fn add_batch(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::AddBatch(self::request(py, Some(request))?, vectors);
        self.sync(py, call)
    }

    /// `add_batch` as a future.
    #[pyo3(signature = (request, vectors=None))]
    fn add_batch_async(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::AddBatch(self::request(py, Some(request))?, vectors);
        self.spawn(py, call)
    }

    /// wire::add_messages → `[{"id", "memory", "event", "previous_memory"?}]`. With a chat
    /// model this makes its HTTP calls here, with the GIL released.
    fn add_messages(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let call = Call::AddMessages(self::request(py, Some(request))?);
        self.sync(py, call)
    }

    /// `add_messages` as a future.
    fn add_messages_async(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::AddMessages(self::request(py, Some(request))?);
        self.spawn(py, call)
    }

    /// wire::get → a memory record.
    fn get(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::Get(id))
    }

    /// `get` as a future.
    fn get_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::Get(id))
    }

    /// wire::list → `{"items", "next_cursor"}`.
    #[pyo3(signature = (request=None))]
    fn list(&self, py: Python<'_>, request: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let call = Call::List(self::request(py, request)?);
        self.sync(py, call)
    }

    /// `list` as a future.
    #[pyo3(signature = (request=None))]
    fn list_async(
        &self,
        py: Python<'_>,
        request: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::List(self::request(py, request)?);
        self.spawn(py, call)
    }

    /// wire::count → an int.
    #[pyo3(signature = (request=None))]
    fn count(&self, py: Python<'_>, request: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let call = Call::Count(self::request(py, request)?);
        self.sync(py, call)
    }

    /// `count` as a future.
    #[pyo3(signature = (request=None))]
    fn count_async(
        &self,
        py: Python<'_>,
        request: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Count(self::request(py, request)?);
        self.spawn(py, call)
    }

    /// wire::update (with `vector`: wire::update_with_vector) → the updated record.
    #[pyo3(signature = (id, request, vector=None))]
    fn update(
        &self,
        py: Python<'_>,
        id: String,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Update(id, self::request(py, Some(request))?, vector);
        self.sync(py, call)
    }

    /// `update` as a future.
    #[pyo3(signature = (id, request, vector=None))]
    fn update_async(
        &self,
        py: Python<'_>,
        id: String,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Update(id, self::request(py, Some(request))?, vector);
        self.spawn(py, call)
    }

    /// wire::delete → None.
    fn delete(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::Delete(id))
    }

    /// `delete` as a future.
    fn delete_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::Delete(id))
    }

    /// wire::delete_all → how many were deleted.
    #[pyo3(signature = (request=None))]
    fn delete_all(
        &self,
        py: Python<'_>,
        request: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::DeleteAll(self::request(py, request)?);
        self.sync(py, call)
    }

    /// `delete_all` as a future.
    #[pyo3(signature = (request=None))]
    fn delete_all_async(
        &self,
        py: Python<'_>,
        request: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::DeleteAll(self::request(py, request)?);
        self.spawn(py, call)
    }

    /// wire::history → history rows, oldest first.
    fn history(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::History(id))
    }

    /// `history` as a future.
    fn history_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::History(id))
    }

    /// wire::search (with `vector`: wire::search_with_vector) → hits, best first.
    #[pyo3(signature = (request, vector=None))]
    fn search(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Search(self::request(py, Some(request))?, vector);
        self.sync(py, call)
    }

    /// `search` as a future.
    #[pyo3(signature = (request, vector=None))]
    fn search_async(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        vector: Option<Vec<f32>>,
    ) -> PyResult<Py<PyAny>> {
        let call = Call::Search(self::request(py, Some(request))?, vector);
        self.spawn(py, call)
    }

    /// Memory::reset → None.
    fn reset(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::Reset)
    }

    /// `reset` as a future.
    fn reset_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::Reset)
    }

    /// Memory::purge_expired → how many were deleted.
    fn purge_expired(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PurgeExpired)
    }

    /// `purge_expired` as a future.
    fn purge_expired_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PurgeExpired)
    }

    /// Memory::flush (save the vector index) → None.
    fn flush(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::Flush)
    }

    /// `flush` as a future.
    fn flush_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::Flush)
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

    /// wire::plugin_list → the infos, in registration order.
    fn list_plugins(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PluginList)
    }

    /// `list_plugins` as a future.
    fn list_plugins_async(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PluginList)
    }

    /// wire::plugin_unregister → None.
    fn unregister_plugin(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PluginUnregister(id))
    }

    /// `unregister_plugin` as a future.
    fn unregister_plugin_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PluginUnregister(id))
    }

    /// wire::plugin_load → the plugin's info.
    fn load_plugin(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PluginLoad(id))
    }

    /// `load_plugin` as a future.
    fn load_plugin_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PluginLoad(id))
    }

    /// wire::plugin_unload → the plugin's info.
    fn unload_plugin(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PluginUnload(id))
    }

    /// `unload_plugin` as a future.
    fn unload_plugin_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PluginUnload(id))
    }

    /// wire::plugin_reload → the plugin's info.
    fn reload_plugin(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.sync(py, Call::PluginReload(id))
    }

    /// `reload_plugin` as a future.
    fn reload_plugin_async(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        self.spawn(py, Call::PluginReload(id))
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

/// The version of the native module (the workspace version).
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeMemory>()?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add("IN_MEMORY_PATH", wire::IN_MEMORY_PATH)?;
    let shutdown = wrap_pyfunction!(bridge::shutdown, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (&shutdown,))?;
    m.add_function(shutdown)?;
    Ok(())
}
