//! The plugin operations (feature `plugins`; without it, `plugins_unsupported.rs` stands in
//! with the same functions, each refusing with `Unsupported`).

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

use super::schema::{add_property, of};
use super::{kind_of, request, to_json};
use crate::plugin::{
    PluginInfo, PluginLimits, PluginLogEntry, PluginManifest, PluginSource, PluginStats,
};
use crate::{Error, Memory, Result};

/// Registers a plugin. `manifest` is a [`crate::plugin::PluginManifest`] plus `"path"` (a
/// `.wasm` or `.wat` file, reloaded when it changes); give either `path` or `wasm` (the
/// module's bytes, binary or text). Returns the plugin's info.
pub fn plugin_register(memory: &Memory, manifest: &Value, wasm: Option<&[u8]>) -> Result<Value> {
    let mut manifest = match manifest {
        Value::Object(o) => o.clone(),
        other => {
            return Err(Error::invalid(format!(
                "plugin manifest must be a JSON object, got {}",
                kind_of(other)
            )))
        }
    };
    let path = match manifest.remove("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(other) => {
            return Err(Error::invalid(format!(
                "plugin manifest: path must be a string, got {}",
                kind_of(&other)
            )))
        }
    };
    let manifest: PluginManifest = request(&Value::Object(manifest), "plugin manifest")?;
    let source = match (path, wasm) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "plugin: give a path or the module's bytes, not both",
            ))
        }
        (Some(p), None) => PluginSource::Path(p.into()),
        (None, Some(bytes)) => PluginSource::Bytes(bytes.to_vec()),
        (None, None) => {
            return Err(Error::invalid(
                "plugin: give a path (in the manifest) or the module's bytes",
            ))
        }
    };
    to_json(&memory.plugins().register(source, manifest)?)
}

/// Every registered plugin's info, in registration order.
pub fn plugin_list(memory: &Memory) -> Result<Value> {
    to_json(&memory.plugins().list())
}

/// Removes a plugin.
pub fn plugin_unregister(memory: &Memory, id: &str) -> Result<()> {
    memory.plugins().unregister(id)
}

/// Compiles a plugin into the cache now; returns its info.
pub fn plugin_load(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.plugins().load(id)?)
}

/// Drops a plugin's compiled code (it stays registered); returns its info.
pub fn plugin_unload(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.plugins().unload(id)?)
}

/// Compiles a plugin again from its source; returns its info.
pub fn plugin_reload(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.plugins().reload(id)?)
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScopeRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
}

/// Calls export `function` of plugin `id` with `input`; host functions the plugin calls are
/// confined to the scope in `scope` (`{"user_id", "agent_id", "run_id", "org_id"}`, `null`
/// for the global layer). Returns the plugin's output bytes.
pub fn plugin_call(
    memory: &Memory,
    id: &str,
    function: &str,
    input: &[u8],
    scope: &Value,
) -> Result<Vec<u8>> {
    let s: ScopeRequest = request(scope, "plugin call scope")?;
    let scope = scope_of!(s);
    memory.call_plugin(id, function, input, &scope)
}

/// The request of `plugin_register` in the dispatch: a manifest and its module's `"path"`.
pub(super) fn registration_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut manifest = of::<PluginManifest>(generator);
    let path = generator.subschema_for::<Option<String>>();
    add_property(&mut manifest, "path", path, false);
    manifest
}

/// What the plugin operations return about a plugin.
pub(super) fn info_schema(generator: &mut SchemaGenerator) -> Schema {
    of::<PluginInfo>(generator)
}

/// What `plugin_list` returns.
pub(super) fn infos_schema(generator: &mut SchemaGenerator) -> Schema {
    of::<Vec<PluginInfo>>(generator)
}

/// The plugin shapes the languages declare, for [`super::schema`].
pub(super) fn schema_types(
    requests: &mut SchemaGenerator,
    results: &mut SchemaGenerator,
) -> Vec<(&'static str, Schema)> {
    vec![
        ("PluginManifest", requests.subschema_for::<PluginManifest>()),
        ("PluginInfo", results.subschema_for::<PluginInfo>()),
        ("PluginLimits", results.subschema_for::<PluginLimits>()),
        ("PluginStats", results.subschema_for::<PluginStats>()),
        ("PluginLogEntry", results.subschema_for::<PluginLogEntry>()),
    ]
}
