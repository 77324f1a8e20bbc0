//! The host functions plugins import from `extism:host/user`. Each checks a capability and
//! works only inside the scope of the operation that called the plugin.
//!
//! A host function runs on the thread that called the plugin, in the middle of a call into
//! the store: the store and the call's context (which plugin, which scope) are reached
//! through scoped thread-locals set for exactly that call. (Not extism's host context: its
//! `call_with_host_context` ignores a non-zero return code of the export.)

use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex};

use extism::{CurrentPlugin, Function, UserData, Val, PTR};
use serde::Deserialize;
use serde_json::{json, Value};

use super::registered::{truncate, Registered};
use super::Capability;
use crate::filter::Filter;
use crate::llm::{ChatMessage, ChatRequest, Role};
use crate::memory::Memory;
use crate::search::{SearchMode, SearchOptions, MAX_LIMIT};
use crate::types::{format_time, MemoryKind, MemoryRecord, Metadata, NewMemory, Scope};

scoped_tls::scoped_thread_local!(static ACTIVE: Memory);
scoped_tls::scoped_thread_local!(static CALL: HostContext);

/// Runs `f` with `memory` reachable by host functions called on this thread.
pub(crate) fn with_memory<R>(memory: &Memory, f: impl FnOnce() -> R) -> R {
    ACTIVE.set(memory, f)
}

/// Runs `f` (a plugin call) with `context` reachable by host functions on this thread.
pub(crate) fn with_context<R>(context: &HostContext, f: impl FnOnce() -> R) -> R {
    CALL.set(context, f)
}

/// Longest text a plugin may log in one line.
const MAX_LOG_LINE: usize = 4_000;
/// Most hits a plugin's search may ask for.
const MAX_PLUGIN_SEARCH: usize = 100;

/// A memory as plugins see it (hook inputs, `am_search`, `am_get`).
pub(crate) fn hit_json(m: &MemoryRecord, score: f32) -> Value {
    let mut v = json!({
        "id": m.id,
        "content": m.content,
        "score": score,
        "kind": m.kind.as_str(),
        "metadata": m.metadata,
        "created_at": format_time(m.created_at),
        "updated_at": format_time(m.updated_at),
    });
    for (name, value) in m.scope.fields() {
        if let Some(value) = value {
            v[name] = json!(value);
        }
    }
    if let Some(at) = m.expires_at {
        v["expires_at"] = json!(format_time(at));
    }
    v
}

/// What a host function knows about the call it serves.
#[derive(Clone)]
pub(crate) struct HostContext {
    pub(super) plugin: Arc<Registered>,
    scope: Scope,
    /// Set when a host call was refused for a missing capability: the call's error then
    /// says so (PermissionDenied) instead of showing a trap.
    denial: Arc<Mutex<Option<String>>>,
    /// The status of the call's last HTTP request (`http_status_code`), 0 before one.
    pub(super) http_status: Arc<AtomicU16>,
}

impl HostContext {
    pub(crate) fn new(plugin: Arc<Registered>, scope: Scope) -> Self {
        HostContext {
            plugin,
            scope,
            denial: Arc::new(Mutex::new(None)),
            http_status: Arc::new(AtomicU16::new(0)),
        }
    }

    pub(crate) fn denial(&self) -> Arc<Mutex<Option<String>>> {
        self.denial.clone()
    }

    fn require(&self, capability: Capability, function: &str) -> Result<(), extism::Error> {
        if self.plugin.manifest.grants(capability) {
            return Ok(());
        }
        let message = format!(
            "capability '{capability}' not granted to plugin '{}' (it called {function})",
            self.plugin.manifest.id
        );
        self.plugin.count_denied();
        self.plugin.log("warn", format!("denied: {message}"));
        *self.denial.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        Err(extism::Error::msg(message))
    }

    /// The condition every memory a plugin touches must meet: the operation's scope, or the
    /// global layer only for an unscoped operation (never everyone's memories).
    fn confinement(&self) -> Filter {
        if self.scope.is_global() {
            Filter::And(
                self.scope
                    .fields()
                    .into_iter()
                    .map(|(name, _)| Filter::eq(name, Value::Null))
                    .collect(),
            )
        } else {
            Filter::for_scope(&self.scope, false)
        }
    }

    fn can_see(&self, record: &MemoryRecord) -> bool {
        if self.scope.is_global() {
            return record.scope.is_global();
        }
        self.scope
            .fields()
            .into_iter()
            .zip(record.scope.fields())
            .all(|((_, want), (_, have))| want.is_none() || want == have)
    }
}

/// The host functions, one set per compiled plugin, each with the capability it needs.
pub(crate) fn functions() -> Vec<Function> {
    vec![
        Function::new("am_log", [PTR], [], UserData::new(()), am_log),
        Function::new("am_config", [], [PTR], UserData::new(()), am_config),
        text_function("am_search", Capability::Search, search),
        text_function("am_get", Capability::MemoryRead, get),
        text_function("am_add", Capability::MemoryWrite, add),
        text_function("am_llm", Capability::Llm, ask_llm),
    ]
    .into_iter()
    .chain(super::http::functions())
    .collect()
}

type HostResult = Result<(), extism::Error>;
type Served = Result<String, extism::Error>;

/// A host function taking one text and answering one, allowed with `capability` only.
fn text_function(
    name: &'static str,
    capability: Capability,
    serve: fn(&HostContext, &str) -> Served,
) -> Function {
    Function::new(
        name,
        [PTR],
        [PTR],
        UserData::new(()),
        move |plugin: &mut CurrentPlugin, inputs: &[Val], outputs: &mut [Val], _: UserData<()>| {
            let ctx = context()?;
            ctx.require(capability, name)?;
            let answer = serve(&ctx, &input_text(plugin, inputs)?)?;
            plugin.memory_set_val(&mut outputs[0], answer)
        },
    )
}

pub(super) fn context() -> Result<HostContext, extism::Error> {
    if !CALL.is_set() {
        return Err(extism::Error::msg(
            "agent_mem host functions work only during a call",
        ));
    }
    Ok(CALL.with(HostContext::clone))
}

fn input_text(plugin: &mut CurrentPlugin, inputs: &[Val]) -> Result<String, extism::Error> {
    let text: &str = plugin.memory_get_val(&inputs[0])?;
    Ok(text.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(function: &str, text: &str) -> Result<T, extism::Error> {
    serde_json::from_str(text)
        .map_err(|e| extism::Error::msg(format!("{function}: bad request: {e}")))
}

fn store<R>(f: impl FnOnce(&Memory) -> crate::Result<R>) -> Result<R, extism::Error> {
    if !ACTIVE.is_set() {
        return Err(extism::Error::msg(
            "agent_mem host functions work only during a call",
        ));
    }
    ACTIVE
        .with(f)
        .map_err(|e| extism::Error::msg(format!("{:?}: {}", e.code(), e.message())))
}

fn am_log(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    _: &mut [Val],
    _: UserData<()>,
) -> HostResult {
    let ctx = context()?;
    ctx.require(Capability::Logging, "am_log")?;
    let mut text = input_text(plugin, inputs)?;
    truncate(&mut text, MAX_LOG_LINE);
    ctx.plugin.log("info", text);
    Ok(())
}

fn am_config(
    plugin: &mut CurrentPlugin,
    _: &[Val],
    outputs: &mut [Val],
    _: UserData<()>,
) -> HostResult {
    let ctx = context()?;
    ctx.require(Capability::Config, "am_config")?;
    let config = serde_json::to_string(&ctx.plugin.manifest.config)?;
    plugin.memory_set_val(&mut outputs[0], config)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    mode: Option<SearchMode>,
    #[serde(default)]
    filters: Option<Value>,
}

fn search(ctx: &HostContext, input: &str) -> Served {
    let request: SearchRequest = parse("am_search", input)?;
    let own = match &request.filters {
        Some(f) => Filter::from_json(f).map_err(|e| extism::Error::msg(e.message().to_string()))?,
        None => Filter::All,
    };
    let mut options = SearchOptions::new().limit(
        request
            .limit
            .unwrap_or(10)
            .clamp(1, MAX_PLUGIN_SEARCH.min(MAX_LIMIT)),
    );
    if let Some(mode) = request.mode {
        options = options.mode(mode);
    }
    options.filter = Some(own.and(ctx.confinement()));
    let hits = store(|m| m.search_inner(&request.query, None, &options))?;
    let results: Vec<Value> = hits.iter().map(|h| hit_json(&h.memory, h.score)).collect();
    Ok(json!({ "results": results }).to_string())
}

fn get(ctx: &HostContext, id: &str) -> Served {
    let found = store(|m| match m.get(id.trim()) {
        Ok(record) => Ok(Some(record)),
        Err(e) if e.code() == crate::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    })?;
    // Outside the scope looks exactly like absent: a plugin learns nothing of others.
    let answer = match found.filter(|r| ctx.can_see(r)) {
        Some(record) => hit_json(&record, 1.0),
        None => Value::Null,
    };
    Ok(answer.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    content: String,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    kind: Option<MemoryKind>,
}

fn add(ctx: &HostContext, input: &str) -> Served {
    let request: AddRequest = parse("am_add", input)?;
    let mut memory = NewMemory::new(request.content).scope(ctx.scope.clone());
    if let Some(metadata) = request.metadata {
        memory = memory.metadata(metadata);
    }
    if let Some(kind) = request.kind {
        memory = memory.kind(kind);
    }
    let outcome = store(|m| {
        // The plugin's own add does not run the hooks again.
        let actor = format!("plugin:{}", ctx.plugin.manifest.id);
        Ok(m.add_batch_as(vec![memory], &actor, false)?.remove(0))
    })?;
    Ok(json!({"id": outcome.id, "added": outcome.added}).to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmRequest {
    messages: Vec<LlmMessage>,
    #[serde(default)]
    json: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmMessage {
    role: String,
    content: String,
}

fn ask_llm(_: &HostContext, input: &str) -> Served {
    let request: LlmRequest = parse("am_llm", input)?;
    let mut chat = ChatRequest::new("", "");
    chat.messages.clear();
    for m in request.messages {
        match m.role.as_str() {
            "system" => {
                if !chat.system.is_empty() {
                    chat.system.push('\n');
                }
                chat.system.push_str(&m.content);
            }
            "user" => chat.messages.push(ChatMessage {
                role: Role::User,
                content: m.content,
            }),
            "assistant" => chat.messages.push(ChatMessage {
                role: Role::Assistant,
                content: m.content,
            }),
            other => {
                return Err(extism::Error::msg(format!(
                    "am_llm: role {other:?} is not system, user or assistant"
                )))
            }
        }
    }
    if chat.messages.is_empty() {
        return Err(extism::Error::msg("am_llm: give at least one user message"));
    }
    chat.json = request.json;
    store(|m| {
        let llm = m.shared.llm.as_ref().ok_or_else(|| {
            crate::Error::new(
                crate::ErrorCode::Unsupported,
                "no language model is configured for this store",
            )
        })?;
        llm.complete(&chat)
    })
}
