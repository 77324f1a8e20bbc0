//! The plugin operations in a build without the `plugins` feature: the same functions as
//! `plugins.rs`, each refusing with `Unsupported`, so that every surface keeps its plugin
//! entry points and says why they cannot work.

use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

use crate::{Error, ErrorCode, Memory, Result};

/// The error of every plugin operation in this build.
fn without_plugins() -> Error {
    Error::new(
        ErrorCode::Unsupported,
        "this build of agent_mem has no plugin support (cargo feature \"plugins\")",
    )
}

/// Registers a plugin: `Unsupported` in this build.
pub fn plugin_register(_: &Memory, _manifest: &Value, _wasm: Option<&[u8]>) -> Result<Value> {
    Err(without_plugins())
}

/// Every registered plugin's info: `Unsupported` in this build.
pub fn plugin_list(_: &Memory) -> Result<Value> {
    Err(without_plugins())
}

/// Removes a plugin: `Unsupported` in this build.
pub fn plugin_unregister(_: &Memory, _id: &str) -> Result<()> {
    Err(without_plugins())
}

/// Compiles a plugin: `Unsupported` in this build.
pub fn plugin_load(_: &Memory, _id: &str) -> Result<Value> {
    Err(without_plugins())
}

/// Drops a plugin's compiled code: `Unsupported` in this build.
pub fn plugin_unload(_: &Memory, _id: &str) -> Result<Value> {
    Err(without_plugins())
}

/// Compiles a plugin again: `Unsupported` in this build.
pub fn plugin_reload(_: &Memory, _id: &str) -> Result<Value> {
    Err(without_plugins())
}

/// Calls a plugin's export: `Unsupported` in this build.
pub fn plugin_call(
    _: &Memory,
    _id: &str,
    _function: &str,
    _input: &[u8],
    _scope: &Value,
) -> Result<Vec<u8>> {
    Err(without_plugins())
}

/// Any value: the plugin operations of this build take anything (and refuse it).
pub(super) fn registration_schema(_: &mut SchemaGenerator) -> Schema {
    Schema::default()
}

/// Any value: the plugin operations of this build return nothing.
pub(super) fn info_schema(_: &mut SchemaGenerator) -> Schema {
    Schema::default()
}

/// Any value: `plugin_list` of this build returns nothing.
pub(super) fn infos_schema(_: &mut SchemaGenerator) -> Schema {
    Schema::default()
}

/// None: this build declares no plugin shapes.
pub(super) fn schema_types(
    _: &mut SchemaGenerator,
    _: &mut SchemaGenerator,
) -> Vec<(&'static str, Schema)> {
    Vec::new()
}
