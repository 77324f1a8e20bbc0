//! The JSON face of the engine: one request shape and one result shape per operation,
//! shared by the C ABI, Python and Node so that every language accepts the same input,
//! rejects the same bad input with the same [`ErrorCode`](crate::ErrorCode), and returns the
//! same JSON.
//!
//! Requests are JSON objects; a misspelt or unexpected key is refused (`InvalidInput`
//! naming the key), so a typo never turns an option off silently. Optional fields may be
//! left out or `null`.
//!
//! | operation | request | result |
//! |---|---|---|
//! | [`open`] | [`OpenOptions`] | a [`Memory`] |
//! | [`add`] | `{"content", "user_id", "agent_id", "run_id", "org_id", "kind", "metadata", "expires_at", "valid_from", "valid_to", "entities", "relations"}` | `{"id", "added"}` |
//! | [`add_batch`] | `{"memories": [add requests]}` | `[{"id", "added"}, …]` |
//! | [`add_messages`] | `{"messages", "infer", "prompt", "user_id", "agent_id", "run_id", "org_id", "kind", "metadata", "expires_at"}` | `[{"id", "memory", "event", "previous_memory"?, "role"?, "actor_id"?}, …]` |
//! | [`get`] | an id | a memory record |
//! | [`list`] | scope, `include_global`, `include_expired`, `filters`, `order`, `limit`, `offset`, `cursor`, `with_total` | `{"items": [records], "next_cursor": string or null, "total"?: number}` |
//! | [`count`] | scope, `filters` | a number |
//! | [`update`] | an id and `{"content", "metadata", "merge_metadata", "kind", "expires_at"}` (`expires_at: null` removes the expiry) | the updated record |
//! | [`delete`] | an id | nothing |
//! | [`delete_all`] | scope, `filters` | the number deleted |
//! | [`history`] | an id | `[history rows, oldest first]` |
//! | [`search`] | `{"query", "mode", "limit", "threshold", scope, "include_global", "include_expired", "filters", "weights"}` | `[hits, best first]` |
//! | [`plugin_register`] | a plugin manifest (`{"id", "name", "version", "kind", "capabilities", "config", "allowed_hosts", "allowed_paths", "limits", "on_error", "path"?}`) and optional module bytes | the plugin's info |
//! | [`plugin_list`] | nothing | `[plugin infos, in registration order]` |
//! | [`plugin_unregister`], [`plugin_load`], [`plugin_unload`], [`plugin_reload`] | a plugin id | nothing / the plugin's info |
//! | [`plugin_call`] | a plugin id, an export name, input bytes, `{scope}` | the output bytes |
//!
//!
//! Besides these functions, [`call`] runs any operation by name (the list is
//! [`OPERATIONS`]): the one dispatch the C ABI's `am_memory_call`, Python and Node go through.
//! Its requests are the ones above, with an id as `"id"` and the caller's embeddings as
//! `"vector"` / `"vectors"` (or natively, [`call_with`]).
//!
//! A *memory record* is `{"id", "content", "hash", "kind", "user_id"?, "agent_id"?,
//! "run_id"?, "org_id"?, "metadata", "created_at", "updated_at", "expires_at"?}` (absent
//! scope fields and expiry are left out); a *hit* is a record plus `"score"`,
//! `"similarity"` (when the query was embedded) and `"explain"`; a *history row* is
//! `{"id", "memory_id", "event", "old_content", "new_content", "is_deleted", "actor",
//! "created_at"}`. Times are RFC 3339 UTC with microseconds; requests also accept dates.

/// The [`Scope`](crate::Scope) of a request's `user_id`, `agent_id`, `run_id` and `org_id`
/// fields (moved out of it), for the request modules below. A macro: each request is a
/// struct of its own, read with unknown keys refused, which serde cannot do for a flattened
/// shared part.
macro_rules! scope_of {
    ($request:expr) => {
        $crate::Scope {
            user_id: $request.user_id,
            agent_id: $request.agent_id,
            run_id: $request.run_id,
            org_id: $request.org_id,
        }
    };
}

mod chat;
mod dispatch;
pub mod graph;
mod options;
#[cfg_attr(not(feature = "plugins"), path = "plugins_unsupported.rs")]
mod plugins;
mod requests;
mod schema;
#[cfg(test)]
mod tests;

pub use chat::text_chunk;
pub use dispatch::{
    call, call_streaming, call_text, call_text_streaming, call_text_with, call_with, Embeddings,
    OnText, OPERATIONS,
};
pub use options::{open, EmbedderSpec, OpenOptions, PromptOptions, IN_MEMORY_PATH};
pub use plugins::{
    plugin_call, plugin_list, plugin_load, plugin_register, plugin_reload, plugin_unload,
    plugin_unregister,
};
pub use schema::schema;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::{Error, Memory, Result};
use requests::{
    AddMessagesRequest, AddRequest, BatchRequest, CountRequest, GetRequest, ListRequest,
    RevertRequest, SearchRequest, SelectRequest, SupersedeRequest, UndoRequest, UpdateRequest,
};

/// Parses request text; `what` names it in the error (`"options"`, `"add request"`).
pub fn parse(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")).with_source(e))
}

/// Deserialises a request object, naming the request in the error.
fn request<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    let value = match value {
        Value::Null => json!({}),
        Value::Object(_) => value.clone(),
        other => {
            return Err(Error::invalid(format!(
                "{what} must be a JSON object, got {}",
                kind_of(other)
            )))
        }
    };
    // The error names the field that did not read (`as_of: invalid type: …`).
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let message = if at == "." {
            format!("{what}: {}", e.inner())
        } else {
            format!("{what}: {at}: {}", e.inner())
        };
        Error::invalid(message).with_source(e.into_inner())
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("cannot serialise a result: {e}")))
}

/// `Some(None)` for an explicit `null`, `None` for a missing field.
fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Remembers a conversation ([`Memory::add_messages`]): with a chat model and `infer`
/// (default true), facts are extracted and reconciled with what is stored; otherwise each
/// non-system message is stored. `messages` is a string (one user message), a message
/// `{"role", "content", "name"?}` or a list of them. Returns the events,
/// `[{"id", "memory", "event": "ADD"|"UPDATE"|"DELETE"|"NONE", "previous_memory"?, "role"?,
/// "actor_id"?}]`: `previous_memory` on an `UPDATE`; `role` (the message's) and `actor_id`
/// (its `name`, when it has one) on each message stored as it was, which the memory's
/// metadata keeps under the same keys.
pub fn add_messages(memory: &Memory, request: &Value) -> Result<Value> {
    let request =
        self::request::<AddMessagesRequest>(request, "add_messages request")?.into_request()?;
    to_json(&memory.add_messages(request)?)
}

/// Adds one memory (embedded by the store's embedder); `{"id", "added"}`.
pub fn add(memory: &Memory, request: &Value) -> Result<Value> {
    let new =
        self::request::<AddRequest>(request, "add request")?.into_new_memory("add request")?;
    to_json(&memory.add(new)?)
}

/// Adds one memory with the caller's embedding; `{"id", "added"}`.
pub fn add_with_vector(memory: &Memory, request: &Value, vector: Vec<f32>) -> Result<Value> {
    let new =
        self::request::<AddRequest>(request, "add request")?.into_new_memory("add request")?;
    to_json(&memory.add_with_vector(new, vector)?)
}

/// Adds several memories in one transaction; `[{"id", "added"}, …]` in request order.
pub fn add_batch(memory: &Memory, request: &Value) -> Result<Value> {
    let memories = self::request::<BatchRequest>(request, "batch request")?.into_new_memories()?;
    to_json(&memory.add_batch(memories)?)
}

/// Adds several memories with the caller's embeddings (one per memory, in order) in one
/// transaction; `[{"id", "added"}, …]`.
pub fn add_batch_with_vectors(
    memory: &Memory,
    request: &Value,
    vectors: Vec<Vec<f32>>,
) -> Result<Value> {
    let memories = self::request::<BatchRequest>(request, "batch request")?.into_new_memories()?;
    if memories.len() != vectors.len() {
        return Err(Error::invalid(format!(
            "{} memories but {} vectors: give one vector per memory",
            memories.len(),
            vectors.len()
        )));
    }
    to_json(&memory.add_batch_with_vectors(memories.into_iter().zip(vectors).collect())?)
}

/// One memory record.
pub fn get(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.get(id)?)
}

/// One memory record, as it is or (with `"as_of"`) the version current at that moment.
pub fn get_with(memory: &Memory, id: &str, request: &Value) -> Result<Value> {
    let as_of = self::request::<GetRequest>(request, "get request")?.as_of()?;
    match as_of {
        Some(at) => to_json(&memory.get_as_of(id, at)?),
        None => get(memory, id),
    }
}

/// Every kept version of a memory, oldest first.
pub fn versions(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.versions(id)?)
}

/// Replaces memory `id`'s fact with a new memory, keeping the old one closed and linked:
/// `{"memory", "superseded", "change_id"}`.
pub fn supersede(memory: &Memory, id: &str, request: &Value) -> Result<Value> {
    let new = self::request::<SupersedeRequest>(request, "supersede request")?.into_supersede()?;
    to_json(&memory.supersede(id, new)?)
}

/// Undoes a change: `{"change_id", "undid", "restored", "removed"}`.
pub fn undo(memory: &Memory, request: &Value) -> Result<Value> {
    let UndoRequest { change_id, force } = self::request(request, "undo request")?;
    to_json(&memory.undo(&change_id, force)?)
}

/// Restores memory `id` to one of its versions: `{"change_id", "restored", "removed"}`.
pub fn revert(memory: &Memory, id: &str, request: &Value) -> Result<Value> {
    let RevertRequest { to_version } = self::request(request, "revert request")?;
    to_json(&memory.revert(id, to_version)?)
}

/// One page: `{"items": [records], "next_cursor": string or null}`. With `"with_total":
/// true`, also `"total"`: how many memories the selection (scope, `filters`,
/// `include_global`, `include_expired`) matches in all, counted in the read snapshot the page
/// comes from (so that it agrees with the pages, unlike a separate [`count`], which never
/// counts expired memories).
pub fn list(memory: &Memory, request: &Value) -> Result<Value> {
    let options = self::request::<ListRequest>(request, "list request")?.into_options()?;
    to_json(&memory.list(&options)?)
}

/// How many memories the scope and filters select (with `"as_of"`: selected at that
/// moment; with `"valid_at"`: valid then).
pub fn count(memory: &Memory, request: &Value) -> Result<usize> {
    let options = self::request::<CountRequest>(request, "count request")?.into_options()?;
    memory.count_with(&options)
}

/// Changes a memory; the updated record. `metadata` replaces the stored object, or with
/// `"merge_metadata": true` is merged into it (shallow: each given key set, the others kept),
/// reading the stored metadata inside the update's write transaction, so that concurrent
/// merges never lose one another's keys.
pub fn update(memory: &Memory, id: &str, request: &Value) -> Result<Value> {
    let update = self::request::<UpdateRequest>(request, "update request")?.into_update()?;
    to_json(&memory.update(id, update)?)
}

/// Changes a memory's content with the caller's embedding of the new content; the updated
/// record.
pub fn update_with_vector(
    memory: &Memory,
    id: &str,
    request: &Value,
    vector: Vec<f32>,
) -> Result<Value> {
    let update = self::request::<UpdateRequest>(request, "update request")?.into_update()?;
    to_json(&memory.update_with_vector(id, update, vector)?)
}

/// Deletes a memory (its history stays).
pub fn delete(memory: &Memory, id: &str) -> Result<()> {
    memory.delete(id)
}

/// Deletes what the scope and filters select; how many. The selection must name a scope
/// field or a filter ([`Memory::delete_all`] refuses an empty one; [`Memory::reset`] deletes
/// everything).
pub fn delete_all(memory: &Memory, request: &Value) -> Result<usize> {
    let (scope, filter) = self::request::<SelectRequest>(request, "delete_all request")?.split()?;
    memory.delete_all(&scope, filter.as_ref())
}

/// A memory's history rows, oldest first.
pub fn history(memory: &Memory, id: &str) -> Result<Value> {
    to_json(&memory.history(id)?)
}

/// Copies every memory, the whole history and the graph of `source` into the empty store
/// `target` (see [`Memory::copy_into`]); `{"memories": n, "history": n, "versions": n, "entities": n,
/// "relations": n}`.
pub fn copy_into(source: &Memory, target: &Memory) -> Result<Value> {
    to_json(&source.copy_into(target)?)
}

/// Searches with the query text (embedded by the store); hits, best first.
pub fn search(memory: &Memory, request: &Value) -> Result<Value> {
    let (query, options) =
        self::request::<SearchRequest>(request, "search request")?.into_options(memory)?;
    to_json(&memory.search(&query, &options)?)
}

/// Searches with the caller's query embedding (and the query text for the text engines);
/// hits, best first.
pub fn search_with_vector(memory: &Memory, request: &Value, vector: &[f32]) -> Result<Value> {
    let (query, options) =
        self::request::<SearchRequest>(request, "search request")?.into_options(memory)?;
    to_json(&memory.search_with_vector(&query, vector, &options)?)
}
