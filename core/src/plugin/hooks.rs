//! The hook points in the memory pipeline, and direct calls.

use serde::Deserialize;
use serde_json::{json, Value};

use super::host::hit_json;
use super::registered::{truncate, Registered, HOOKS};
use super::{FailurePolicy, PluginManager};
use crate::error::{Error, ErrorCode, Result};
use crate::filter::Filter;
use crate::graph::{EntityInput, RelationInput};
use crate::memory::{Memory, MemoryBuilder, MemoryGraph};
use crate::search::{SearchHit, SearchOptions, MAX_LIMIT};
use crate::types::{validate_content, validate_metadata, Metadata, NewMemory, Scope};

const ON_ADD: usize = 0;
const BEFORE_SEARCH: usize = 1;
const AFTER_SEARCH: usize = 2;

/// Reads a hook's answer: empty output means `{}`.
fn answer<T: for<'de> Deserialize<'de> + Default>(output: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(output)
        .map_err(|_| Error::new(ErrorCode::Plugin, "answered with bytes that are not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| {
        let mut shown = text.to_string();
        truncate(&mut shown, 200);
        Error::new(
            ErrorCode::Plugin,
            format!("answered with JSON that does not fit the hook ({e}): {shown}"),
        )
    })
}

// Answers ignore keys they do not know: a plugin may answer with its input, changed.
#[derive(Default, Deserialize)]
struct OnAddAnswer {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    reject: Option<String>,
    /// Entities to find or create with the memory, in its scope.
    #[serde(default)]
    entities: Option<Vec<EntityInput>>,
    /// Relations to add with the memory, in its scope, sourced from it.
    #[serde(default)]
    relations: Option<Vec<RelationInput>>,
}

#[derive(Default, Deserialize)]
struct BeforeSearchAnswer {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// Present-and-null clears the filters, absent keeps them.
    #[serde(default, deserialize_with = "present")]
    filters: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Default, Deserialize)]
struct AfterSearchAnswer {
    #[serde(default)]
    hits: Option<Vec<RankedHit>>,
}

/// Extra fields (a plugin echoing whole hits back) are ignored.
#[derive(Deserialize)]
struct RankedHit {
    id: String,
    #[serde(default)]
    score: Option<f32>,
}

/// The entities and relations of an `on_add` answer, in the memory's scope.
fn graph_of(answer: &OnAddAnswer, scope: &Scope) -> NewMemory {
    NewMemory {
        scope: scope.clone(),
        entities: (answer.entities.iter().flatten())
            .map(|e| e.clone().in_scope(scope))
            .collect(),
        relations: (answer.relations.iter().flatten())
            .map(|r| r.clone().in_scope(scope))
            .collect(),
        ..NewMemory::default()
    }
}

enum Outcome<T> {
    Done(T),
    Skipped,
}

impl PluginManager {
    /// The hook plugins that export `hook`, in registration order.
    fn with_hook(&self, hook: usize) -> Vec<std::sync::Arc<Registered>> {
        self.snapshot()
            .iter()
            .filter(|r| r.exports_hook(hook))
            .cloned()
            .collect()
    }
}

impl MemoryBuilder {
    /// Settings of the plugin manager (feature `plugins`).
    pub fn plugin_options(mut self, options: super::PluginOptions) -> Self {
        self.hooks = options;
        self
    }
}

impl Memory {
    /// The store's plugins: register, list, load, unload, reload (feature `plugins`).
    pub fn plugins(&self) -> &PluginManager {
        self.shared.hooks.plugins()
    }

    /// Calls `function` of plugin `id` with `input`; host functions it calls are confined to
    /// `scope`. Returns the plugin's output bytes. Works for hook and function plugins.
    pub fn call_plugin(
        &self,
        id: &str,
        function: &str,
        input: &[u8],
        scope: &Scope,
    ) -> Result<Vec<u8>> {
        scope.validate()?;
        if function.is_empty() || function.len() > 256 || function.contains('\0') {
            return Err(Error::invalid(
                "function must be 1 to 256 bytes naming an export of the plugin",
            ));
        }
        let registered = self.plugins().find(id)?;
        super::host::with_memory(self, || {
            self.plugins().call(&registered, function, input, scope)
        })
    }

    /// One hook call with the plugin's failure policy applied to anything that goes wrong,
    /// including an answer `read` refuses.
    fn hook<T>(
        &self,
        plugin: &std::sync::Arc<Registered>,
        hook: usize,
        input: &Value,
        scope: &Scope,
        read: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Outcome<T>> {
        let name = HOOKS[hook];
        let result = super::host::with_memory(self, || {
            self.plugins()
                .call(plugin, name, input.to_string().as_bytes(), scope)
        })
        .and_then(|out| {
            read(&out).map_err(|e| {
                let err = Error::new(
                    ErrorCode::Plugin,
                    format!("plugin {:?} {name}: {}", plugin.manifest.id, e.message()),
                );
                plugin.failed(err.message());
                err
            })
        });
        match result {
            Ok(v) => Ok(Outcome::Done(v)),
            Err(e) if plugin.manifest.on_error == FailurePolicy::Skip => {
                plugin.log(
                    "warn",
                    format!("skipped (on_error = skip): {}", e.message()),
                );
                Ok(Outcome::Skipped)
            }
            Err(e) => Err(e),
        }
    }

    /// `on_add`: each memory through each plugin in turn; a rejection fails the call.
    pub(crate) fn plugins_on_add(&self, operation: &str, memories: &mut [NewMemory]) -> Result<()> {
        let plugins = self.plugins().with_hook(ON_ADD);
        if plugins.is_empty() {
            return Ok(());
        }
        let many = memories.len() > 1;
        for (i, m) in memories.iter_mut().enumerate() {
            for plugin in &plugins {
                let input = json!({
                    "hook": "on_add",
                    "operation": operation,
                    "content": m.content,
                    "metadata": m.metadata,
                    "kind": m.kind.as_str(),
                    "scope": m.scope,
                });
                let outcome = self.hook(plugin, ON_ADD, &input, &m.scope, |out| {
                    let a: OnAddAnswer = answer(out)?;
                    if a.reject.is_none() {
                        if let Some(c) = &a.content {
                            validate_content(c)
                                .map_err(|e| Error::invalid(format!("content {}", e.message())))?;
                        }
                        if let Some(md) = &a.metadata {
                            validate_metadata(md).map_err(|e| {
                                Error::invalid(format!("metadata: {}", e.message()))
                            })?;
                        }
                        // The graph it states is checked as a caller's would be: a bad one
                        // is the plugin's failure (its on_error applies), before any write.
                        if a.entities.is_some() || a.relations.is_some() {
                            MemoryGraph::of(&graph_of(&a, &m.scope))?;
                        }
                    }
                    Ok(a)
                })?;
                let Outcome::Done(mut a) = outcome else {
                    continue;
                };
                if let Some(reason) = a.reject {
                    let which = if many {
                        format!("memory {i}: ")
                    } else {
                        String::new()
                    };
                    return Err(Error::new(
                        ErrorCode::Plugin,
                        format!(
                            "{which}plugin {:?} rejected the memory: {reason}",
                            plugin.manifest.id
                        ),
                    ));
                }
                if let Some(c) = a.content.take() {
                    m.content = c;
                }
                if let Some(md) = a.metadata.take() {
                    m.metadata = md;
                }
                if a.entities.is_some() || a.relations.is_some() {
                    if operation == "add" {
                        let stated = graph_of(&a, &m.scope);
                        m.entities.extend(stated.entities);
                        m.relations.extend(stated.relations);
                    } else {
                        plugin.log(
                            "warn",
                            format!(
                                "entities and relations are stored with added memories only; \
                                 not on {operation}"
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// `before_search`: may rewrite the query, the limit and the filters (never the scope).
    pub(crate) fn plugins_before_search(
        &self,
        query: &mut String,
        options: &mut SearchOptions,
    ) -> Result<()> {
        for plugin in self.plugins().with_hook(BEFORE_SEARCH) {
            let input = json!({
                "hook": "before_search",
                "query": query,
                "limit": options.limit,
                "mode": options.mode,
                "filters": options.filter.as_ref().map(Filter::to_json),
                "scope": options.scope,
            });
            let outcome = self.hook(&plugin, BEFORE_SEARCH, &input, &options.scope, |out| {
                let a: BeforeSearchAnswer = answer(out)?;
                if let Some(q) = &a.query {
                    if q.trim().is_empty() {
                        return Err(Error::invalid("query must not be empty"));
                    }
                    validate_content(q)
                        .map_err(|e| Error::invalid(format!("query {}", e.message())))?;
                }
                if let Some(l) = a.limit {
                    if !(1..=MAX_LIMIT).contains(&l) {
                        return Err(Error::invalid(format!("limit must be 1 to {MAX_LIMIT}")));
                    }
                }
                let filter = match &a.filters {
                    Some(f) => Some(Filter::from_json(f)?),
                    None => None,
                };
                Ok((a, filter))
            })?;
            let Outcome::Done((a, filter)) = outcome else {
                continue;
            };
            if let Some(q) = a.query {
                *query = q;
            }
            if let Some(l) = a.limit {
                options.limit = l;
            }
            if let Some(f) = filter {
                options.filter = (!f.is_all()).then_some(f);
            }
        }
        Ok(())
    }

    /// `after_search`: may reorder, drop and rescore the hits, never add one.
    pub(crate) fn plugins_after_search(
        &self,
        query: &str,
        scope: &Scope,
        mut hits: Vec<SearchHit>,
    ) -> Result<Vec<SearchHit>> {
        for plugin in self.plugins().with_hook(AFTER_SEARCH) {
            let input = json!({
                "hook": "after_search",
                "query": query,
                "scope": scope,
                "hits": hits.iter().map(|h| hit_json(&h.memory, h.score)).collect::<Vec<_>>(),
            });
            let outcome = self.hook(&plugin, AFTER_SEARCH, &input, scope, |out| {
                let a: AfterSearchAnswer = answer(out)?;
                let Some(ranked) = a.hits else {
                    return Ok(None);
                };
                let mut seen = std::collections::HashSet::new();
                for r in &ranked {
                    if !hits.iter().any(|h| h.memory.id == r.id) {
                        return Err(Error::invalid(format!(
                            "hit {:?} was not in the results (a plugin can reorder, drop and \
                             rescore hits, not add them)",
                            r.id
                        )));
                    }
                    if !seen.insert(r.id.as_str()) {
                        return Err(Error::invalid(format!("hit {:?} is listed twice", r.id)));
                    }
                    if r.score.is_some_and(|s| !s.is_finite()) {
                        return Err(Error::invalid(format!(
                            "hit {:?} has a score that is not a number",
                            r.id
                        )));
                    }
                }
                Ok(Some(ranked))
            })?;
            let Outcome::Done(Some(ranked)) = outcome else {
                continue;
            };
            let mut pool: std::collections::HashMap<String, SearchHit> =
                hits.into_iter().map(|h| (h.memory.id.clone(), h)).collect();
            hits = ranked
                .into_iter()
                .filter_map(|r| {
                    let mut hit = pool.remove(&r.id)?;
                    if let Some(s) = r.score {
                        hit.score = s;
                    }
                    Some(hit)
                })
                .collect();
        }
        Ok(hits)
    }
}
