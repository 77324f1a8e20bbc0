//! A registered plugin: its manifest, its source, its compiled module while cached, and
//! what it did (stats, log, last error). Shared by the manager, the host functions and the
//! hooks.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use extism::{CompiledPlugin, Plugin};

use super::{PluginInfo, PluginKind, PluginLogEntry, PluginManifest, PluginStats};
use crate::types::format_time;

/// The hook exports, in the order [`PluginInfo::hooks`] lists them.
pub(crate) const HOOKS: [&str; 3] = ["on_add", "before_search", "after_search"];
/// Log lines kept per plugin.
const LOG_LINES: usize = 64;
/// Longest message kept in a log line or an error.
pub(super) const MAX_MESSAGE: usize = 2_000;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the plugins down with it: the data stays consistent
    // (each critical section is a few assignments).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered plugin.
pub(crate) struct Registered {
    pub(crate) manifest: PluginManifest,
    pub(super) source: Source,
    /// The compiled module while it is in the cache.
    pub(super) slot: Mutex<Option<Arc<Loaded>>>,
    /// The file version that last failed to compile: not retried on every call.
    pub(super) rejected: Mutex<Option<FileStamp>>,
    pub(super) last_used: AtomicU64,
    /// Which hooks the last compiled version exports (bit i: `HOOKS[i]`), known without
    /// loading an evicted plugin.
    pub(super) hook_mask: AtomicU8,
    pub(super) stats: Mutex<PluginStats>,
    pub(super) log: Mutex<VecDeque<PluginLogEntry>>,
    pub(super) last_error: Mutex<Option<String>>,
}

pub(super) enum Source {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
}

/// A file's identity for hot reload: a change of either means new code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileStamp {
    pub(super) modified: SystemTime,
    pub(super) len: u64,
}

impl FileStamp {
    pub(super) fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok()?,
            len: meta.len(),
        })
    }
}

/// A compiled module and its idle instances.
pub(super) struct Loaded {
    pub(super) compiled: CompiledPlugin,
    /// Bit i: exports `HOOKS[i]`.
    pub(super) hook_mask: u8,
    pub(super) stamp: Option<FileStamp>,
    pub(super) idle: Mutex<Vec<Plugin>>,
}

impl Registered {
    pub(crate) fn log(&self, level: &'static str, message: impl Into<String>) {
        let mut message = message.into();
        truncate(&mut message, MAX_MESSAGE);
        let mut log = lock(&self.log);
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(PluginLogEntry {
            time: format_time(chrono::Utc::now()),
            level,
            message,
        });
    }

    pub(crate) fn count_denied(&self) {
        lock(&self.stats).denied += 1;
    }

    /// Counts a failure (of a call, a hook answer, a reload) and keeps it as the last error.
    pub(crate) fn failed(&self, message: &str) {
        lock(&self.stats).failures += 1;
        *lock(&self.last_error) = Some(message.to_string());
        self.log("error", message);
    }

    /// True when this is a hook plugin whose code exports `HOOKS[hook]`.
    pub(crate) fn exports_hook(&self, hook: usize) -> bool {
        self.manifest.kind == PluginKind::Hook
            && self.hook_mask.load(Ordering::Relaxed) & (1 << hook) != 0
    }

    /// Puts freshly compiled code in service and counts it: a load, and a reload when it
    /// replaces code of this registration (a changed file, an explicit reload).
    pub(super) fn install(&self, slot: &mut Option<Arc<Loaded>>, fresh: Arc<Loaded>, reload: bool) {
        self.hook_mask.store(fresh.hook_mask, Ordering::Relaxed);
        *slot = Some(fresh);
        let mut stats = lock(&self.stats);
        stats.loads += 1;
        if reload {
            stats.reloads += 1;
        }
    }

    pub(super) fn info(&self) -> PluginInfo {
        let loaded = lock(&self.slot).clone();
        PluginInfo {
            id: self.manifest.id.clone(),
            name: self
                .manifest
                .name
                .clone()
                .unwrap_or_else(|| self.manifest.id.clone()),
            version: self.manifest.version.clone(),
            kind: self.manifest.kind,
            capabilities: self.manifest.capabilities.clone(),
            path: match &self.source {
                Source::Path(p) => Some(p.clone()),
                Source::Bytes(_) => None,
            },
            // Known from the last compile, also while evicted.
            hooks: (0..HOOKS.len())
                .filter(|&i| self.hook_mask.load(Ordering::Relaxed) & (1 << i) != 0)
                .map(|i| HOOKS[i])
                .collect(),
            loaded: loaded.is_some(),
            limits: self.manifest.limits,
            on_error: self.manifest.on_error,
            stats: *lock(&self.stats),
            last_error: lock(&self.last_error).clone(),
            log: lock(&self.log).iter().cloned().collect(),
        }
    }
}

/// Cuts `text` to at most `max` bytes (on a character boundary), marking the cut.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
}
