//! Registration, the LRU of compiled plugins, hot reload, instance pools and calls.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use extism::{Manifest, Plugin, PluginBuilder, Wasm};

use super::host::{self, HostContext};
use super::registered::{
    lock, truncate, FileStamp, Loaded, Registered, Source, HOOKS, MAX_MESSAGE,
};
use super::{
    Capability, PluginInfo, PluginKind, PluginManifest, PluginOptions, PluginSource, PluginStats,
};
use crate::error::{Error, ErrorCode, Result};
use crate::types::Scope;

/// Largest module accepted (bytes or file).
const MAX_MODULE_BYTES: u64 = 256 << 20;
/// The registered plugins of one store, their compiled modules (an LRU of at most
/// [`PluginOptions::cache_size`]) and their instances. Reached through
/// [`crate::Memory::plugins`]; safe to share between threads.
pub struct PluginManager {
    options: PluginOptions,
    /// Registration order; replaced (not mutated) on change, so that a hook pass works on a
    /// snapshot taken with one clone of an `Arc`.
    registry: RwLock<Arc<Vec<Arc<Registered>>>>,
    /// Serialises register/unregister so that two registrations of one id cannot both win.
    changing: Mutex<()>,
    clock: AtomicU64,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .snapshot()
            .iter()
            .map(|r| r.manifest.id.clone())
            .collect();
        f.debug_struct("PluginManager")
            .field("options", &self.options)
            .field("plugins", &ids)
            .finish()
    }
}

impl PluginManager {
    pub(crate) fn new(options: PluginOptions) -> Result<PluginManager> {
        if options.cache_size == 0 {
            return Err(Error::invalid("plugins.cache_size must be at least 1"));
        }
        Ok(PluginManager {
            options,
            registry: RwLock::new(Arc::new(Vec::new())),
            changing: Mutex::new(()),
            clock: AtomicU64::new(1),
        })
    }

    /// True when no plugin is registered (the pipeline then skips every hook).
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// The manager's settings.
    pub fn options(&self) -> PluginOptions {
        self.options
    }

    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Registered>>> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, plugins: Vec<Arc<Registered>>) {
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(plugins);
    }

    pub(crate) fn find(&self, id: &str) -> Result<Arc<Registered>> {
        self.snapshot()
            .iter()
            .find(|r| r.manifest.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no plugin with id {id:?}")))
    }

    /// Registers a plugin: checks the manifest, compiles the module (a malformed module is
    /// refused here, with the reason) and checks a hook plugin exports a hook. Hook plugins
    /// run in registration order.
    pub fn register(&self, source: PluginSource, manifest: PluginManifest) -> Result<PluginInfo> {
        manifest.validate()?;
        let source = match source {
            PluginSource::Path(p) => {
                if p.as_os_str().is_empty() {
                    return Err(Error::invalid("plugin path must not be empty"));
                }
                Source::Path(std::path::absolute(&p).unwrap_or(p))
            }
            PluginSource::Bytes(b) => {
                if b.len() as u64 > MAX_MODULE_BYTES {
                    return Err(Error::invalid(format!(
                        "plugin {:?}: module is larger than {} MiB",
                        manifest.id,
                        MAX_MODULE_BYTES >> 20
                    )));
                }
                Source::Bytes(b.into())
            }
        };
        if self.find(&manifest.id).is_ok() {
            return Err(already_registered(&manifest.id));
        }
        let registered = Arc::new(Registered {
            manifest,
            source,
            slot: Mutex::new(None),
            rejected: Mutex::new(None),
            last_used: AtomicU64::new(0),
            hook_mask: AtomicU8::new(0),
            stats: Mutex::new(PluginStats::default()),
            log: Mutex::new(VecDeque::new()),
            last_error: Mutex::new(None),
        });
        // Compile outside the registry lock: other plugins keep running meanwhile.
        let loaded = self.compile(&registered)?;
        registered.install(&mut lock(&registered.slot), loaded, false);
        registered.last_used.store(self.tick(), Ordering::Relaxed);
        {
            let _changing = lock(&self.changing);
            let current = self.snapshot();
            if current
                .iter()
                .any(|r| r.manifest.id == registered.manifest.id)
            {
                return Err(already_registered(&registered.manifest.id));
            }
            let mut next = current.as_ref().clone();
            next.push(registered.clone());
            self.publish(next);
        }
        registered.log("info", "registered");
        self.evict_beyond_capacity(&registered.manifest.id);
        Ok(registered.info())
    }

    /// Removes a plugin; calls already running finish on the code they started with.
    pub fn unregister(&self, id: &str) -> Result<()> {
        let _changing = lock(&self.changing);
        let current = self.snapshot();
        if !current.iter().any(|r| r.manifest.id == id) {
            return Err(Error::not_found(format!("no plugin with id {id:?}")));
        }
        self.publish(
            current
                .iter()
                .filter(|r| r.manifest.id != id)
                .cloned()
                .collect(),
        );
        Ok(())
    }

    /// Every registered plugin, in registration order.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.snapshot().iter().map(|r| r.info()).collect()
    }

    /// One plugin.
    pub fn info(&self, id: &str) -> Result<PluginInfo> {
        Ok(self.find(id)?.info())
    }

    /// Compiles a plugin into the cache now (it is otherwise compiled on first use).
    pub fn load(&self, id: &str) -> Result<PluginInfo> {
        let registered = self.find(id)?;
        self.loaded(&registered)?;
        Ok(registered.info())
    }

    /// Drops a plugin's compiled module and instances; it stays registered and is compiled
    /// again on its next use.
    pub fn unload(&self, id: &str) -> Result<PluginInfo> {
        let registered = self.find(id)?;
        lock(&registered.slot).take();
        Ok(registered.info())
    }

    /// Compiles the plugin again from its source (the file, re-read). On failure the
    /// previous code stays in service and the error is returned.
    pub fn reload(&self, id: &str) -> Result<PluginInfo> {
        let registered = self.find(id)?;
        let mut slot = lock(&registered.slot);
        let fresh = self.compile(&registered).inspect_err(|e| {
            registered.failed(&format!("reload failed: {}", e.message()));
        })?;
        registered.install(&mut slot, fresh, true);
        drop(slot);
        registered.log("info", "reloaded");
        registered.last_used.store(self.tick(), Ordering::Relaxed);
        self.evict_beyond_capacity(id);
        Ok(registered.info())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The plugin's compiled module: from the cache, or compiled now (then the least
    /// recently used others are evicted past the cache size). A file that changed since it
    /// was compiled is compiled again; if the new version does not compile, the old one
    /// keeps serving and the failure is logged once.
    fn loaded(&self, registered: &Registered) -> Result<Arc<Loaded>> {
        registered.last_used.store(self.tick(), Ordering::Relaxed);
        let mut slot = lock(&registered.slot);
        if let Some(current) = slot.as_ref() {
            let Source::Path(path) = &registered.source else {
                return Ok(current.clone());
            };
            let now = FileStamp::of(path);
            if now.is_none() || now == current.stamp || now == *lock(&registered.rejected) {
                return Ok(current.clone());
            }
            return match self.compile(registered) {
                Ok(fresh) => {
                    registered.install(&mut slot, fresh.clone(), true);
                    registered.log("info", "reloaded: the file changed");
                    Ok(fresh)
                }
                Err(e) => {
                    *lock(&registered.rejected) = now;
                    registered.failed(&format!(
                        "the changed file was not loaded, the previous version keeps running: {}",
                        e.message()
                    ));
                    Ok(current.clone())
                }
            };
        }
        let fresh = self.compile(registered)?;
        registered.install(&mut slot, fresh.clone(), false);
        drop(slot);
        self.evict_beyond_capacity(&registered.manifest.id);
        Ok(fresh)
    }

    fn evict_beyond_capacity(&self, keep: &str) {
        let snapshot = self.snapshot();
        let mut loaded: Vec<&Arc<Registered>> = snapshot
            .iter()
            .filter(|r| lock(&r.slot).is_some())
            .collect();
        if loaded.len() <= self.options.cache_size {
            return;
        }
        loaded.sort_by_key(|r| r.last_used.load(Ordering::Relaxed));
        let excess = loaded.len() - self.options.cache_size;
        for r in loaded
            .into_iter()
            .filter(|r| r.manifest.id != keep)
            .take(excess)
        {
            lock(&r.slot).take();
            r.log(
                "info",
                "evicted from the plugin cache (least recently used)",
            );
        }
    }

    fn compile(&self, registered: &Registered) -> Result<Arc<Loaded>> {
        let m = &registered.manifest;
        let (bytes, stamp) = match &registered.source {
            Source::Bytes(b) => (b.clone(), None),
            Source::Path(path) => {
                let stamp = FileStamp::of(path);
                let size = stamp.as_ref().map_or(0, |s| s.len);
                if size > MAX_MODULE_BYTES {
                    return Err(Error::invalid(format!(
                        "plugin {:?}: {} is larger than {} MiB",
                        m.id,
                        path.display(),
                        MAX_MODULE_BYTES >> 20
                    )));
                }
                let bytes = std::fs::read(path).map_err(|e| {
                    Error::new(
                        ErrorCode::Io,
                        format!("plugin {:?}: cannot read {}: {e}", m.id, path.display()),
                    )
                })?;
                (Arc::from(bytes), stamp)
            }
        };
        check_module(&m.id, &bytes)?;
        let mut manifest = Manifest::new([Wasm::data(bytes.to_vec())])
            .with_memory_max(m.limits.memory_pages)
            .with_timeout(m.limits.timeout());
        if m.grants(Capability::Config) {
            manifest = manifest.with_config(m.config.iter());
        }
        if m.grants(Capability::Network) {
            manifest = manifest.with_allowed_hosts(m.allowed_hosts.iter().cloned());
        }
        if m.grants(Capability::Filesystem) {
            manifest = manifest.with_allowed_paths(
                m.allowed_paths
                    .iter()
                    .map(|(host_dir, guest)| (host_dir.clone(), PathBuf::from(guest))),
            );
        }
        let mut builder = PluginBuilder::new(manifest)
            .with_wasi(m.grants(Capability::Filesystem))
            .with_functions(host::functions())
            // No compiled-code cache in the user's home directory behind their back.
            .with_cache_disabled();
        if let Some(fuel) = m.limits.fuel {
            builder = builder.with_fuel_limit(fuel);
        }
        let cannot_load = |e: extism::Error| {
            Error::new(
                ErrorCode::Plugin,
                format!("plugin {:?} cannot be loaded: {}", m.id, clean(&e)),
            )
        };
        let compiled = builder.compile().map_err(cannot_load)?;
        // Before extism links an instance, which runs the start code without a time limit.
        super::module::check(m, &bytes)?;
        // One instance now: it proves the imports link and the start code runs.
        let first = Plugin::new_from_compiled(&compiled).map_err(cannot_load)?;
        let hook_mask = HOOKS
            .iter()
            .enumerate()
            .filter(|(_, h)| first.function_exists(h))
            .fold(0u8, |mask, (i, _)| mask | (1 << i));
        if m.kind == PluginKind::Hook && hook_mask == 0 {
            return Err(Error::new(
                ErrorCode::Plugin,
                format!(
                    "plugin {:?} is a hook plugin but exports none of {}; register it with \
                     kind \"function\" to call it directly",
                    m.id,
                    HOOKS.join(", ")
                ),
            ));
        }
        Ok(Arc::new(Loaded {
            compiled,
            hook_mask,
            stamp,
            idle: Mutex::new(vec![first]),
        }))
    }

    /// Calls one export of a plugin with `input`, inside `scope` (host functions are confined
    /// to it). An instance that failed is thrown away: the next call gets a fresh one.
    pub(crate) fn call(
        &self,
        registered: &Arc<Registered>,
        function: &str,
        input: &[u8],
        scope: &Scope,
    ) -> Result<Vec<u8>> {
        let loaded = self.loaded(registered)?;
        let id = &registered.manifest.id;
        let instance = lock(&loaded.idle).pop();
        let mut instance = match instance {
            Some(i) => i,
            None => Plugin::new_from_compiled(&loaded.compiled).map_err(|e| {
                Error::new(
                    ErrorCode::Plugin,
                    format!("plugin {id:?}: cannot start an instance: {}", clean(&e)),
                )
            })?,
        };
        if !instance.function_exists(function) {
            lock(&loaded.idle).push(instance);
            return Err(Error::not_found(format!(
                "plugin {id:?} has no callable export {function:?}"
            )));
        }
        lock(&registered.stats).calls += 1;
        let context = HostContext::new(registered.clone(), scope.clone());
        let denial = context.denial();
        let result: std::result::Result<Vec<u8>, extism::Error> =
            host::with_context(&context, || instance.call(function, input));
        match result {
            Ok(output) => {
                lock(&loaded.idle).push(instance);
                Ok(output)
            }
            Err(e) => {
                drop(instance);
                let err = match lock(&denial).take() {
                    Some(denied) => Error::new(ErrorCode::PermissionDenied, denied),
                    None => Error::new(
                        ErrorCode::Plugin,
                        format!(
                            "plugin {id:?} failed in {function}: {}",
                            describe_failure(&e, &registered.manifest)
                        ),
                    ),
                };
                registered.failed(err.message());
                Err(err)
            }
        }
    }
}

fn already_registered(id: &str) -> Error {
    Error::new(
        ErrorCode::AlreadyExists,
        format!("a plugin with id {id:?} is already registered"),
    )
}

/// Refuses what is neither a WebAssembly binary nor WebAssembly text before wasmtime's
/// text parser answers with a line and column of a binary file.
fn check_module(id: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\0asm") {
        return Ok(());
    }
    let text = std::str::from_utf8(bytes).ok().map(str::trim_start);
    if text.is_some_and(|t| t.starts_with('(') || t.starts_with(";;")) {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::Plugin,
        format!(
            "plugin {id:?} cannot be loaded: not a WebAssembly module (no \\0asm header, and not \
             WebAssembly text); {} bytes starting {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(8)])
        ),
    ))
}

/// The useful part of an extism/wasmtime error: the root cause (a guest's own error message,
/// a trap, our host function's refusal), first line only.
fn clean(e: &extism::Error) -> String {
    let root = e.root_cause().to_string();
    let top = e.to_string();
    let mut text = if root == top || top.starts_with("error while executing") {
        root
    } else {
        format!("{top}: {root}")
    };
    if let Some(line) = text.lines().next() {
        text = line.to_string();
    }
    truncate(&mut text, MAX_MESSAGE);
    text
}

fn describe_failure(e: &extism::Error, m: &PluginManifest) -> String {
    let root = e.root_cause().to_string();
    match root.as_str() {
        "timeout" => format!(
            "timed out after {} ms (limits.timeout_ms); the call was interrupted",
            m.limits.timeout_ms
        ),
        "oom" => format!(
            "ran out of memory: the limit is {} pages of 64 KiB ({} MiB, limits.memory_pages)",
            m.limits.memory_pages,
            u64::from(m.limits.memory_pages) * 64 / 1024
        ),
        "plugin ran out of fuel" => format!(
            "ran out of fuel: {} instructions (limits.fuel)",
            m.limits.fuel.unwrap_or(0)
        ),
        _ if root.contains("unreachable") => {
            format!("trapped (the plugin panicked or aborted): {}", clean(e))
        }
        _ => clean(e),
    }
}
