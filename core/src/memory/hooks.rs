//! The plugin seam: the hook points of the memory pipeline (`on_add`, `before_search`,
//! `after_search`). With the `plugins` feature they run the store's WASM plugins
//! ([`crate::plugin`]); without it they do nothing, and the pipeline reads the same in
//! both builds.

use super::Memory;
use crate::error::Result;
use crate::search::{SearchHit, SearchOptions};
use crate::types::{NewMemory, Scope};

/// The settings the hooks are built from: the plugin manager's options.
#[cfg(feature = "plugins")]
pub(crate) type HookOptions = crate::plugin::PluginOptions;

/// The settings the hooks are built from: none without the `plugins` feature.
#[cfg(not(feature = "plugins"))]
pub(crate) type HookOptions = ();

/// What runs at the hook points of a [`Memory`].
pub(crate) struct Hooks {
    #[cfg(feature = "plugins")]
    plugins: crate::plugin::PluginManager,
}

impl Hooks {
    /// The hooks of a memory being opened.
    pub(crate) fn new(options: HookOptions) -> Result<Hooks> {
        #[cfg(feature = "plugins")]
        return Ok(Hooks {
            plugins: crate::plugin::PluginManager::new(options)?,
        });
        #[cfg(not(feature = "plugins"))]
        {
            let () = options;
            Ok(Hooks {})
        }
    }

    /// The plugin manager behind the hooks.
    #[cfg(feature = "plugins")]
    pub(crate) fn plugins(&self) -> &crate::plugin::PluginManager {
        &self.plugins
    }

    /// True when no plugin is registered: searches may skip the hook points.
    pub(crate) fn is_empty(&self) -> bool {
        #[cfg(feature = "plugins")]
        return self.plugins.is_empty();
        #[cfg(not(feature = "plugins"))]
        true
    }
}

impl Memory {
    /// `on_add`: each memory through the hooks before it is stored (by `operation`, `"add"`
    /// or `"update"`); they may rewrite its content and metadata, or reject it.
    pub(crate) fn hook_on_add(&self, operation: &str, memories: &mut [NewMemory]) -> Result<()> {
        #[cfg(feature = "plugins")]
        return self.plugins_on_add(operation, memories);
        #[cfg(not(feature = "plugins"))]
        {
            let _ = (operation, memories);
            Ok(())
        }
    }

    /// `before_search`: the hooks may rewrite the query, the limit and the filters.
    pub(crate) fn hook_before_search(
        &self,
        query: &mut String,
        options: &mut SearchOptions,
    ) -> Result<()> {
        #[cfg(feature = "plugins")]
        return self.plugins_before_search(query, options);
        #[cfg(not(feature = "plugins"))]
        {
            let _ = (query, options);
            Ok(())
        }
    }

    /// `after_search`: the hooks may reorder, drop and rescore the hits.
    pub(crate) fn hook_after_search(
        &self,
        query: &str,
        scope: &Scope,
        hits: Vec<SearchHit>,
    ) -> Result<Vec<SearchHit>> {
        #[cfg(feature = "plugins")]
        return self.plugins_after_search(query, scope, hits);
        #[cfg(not(feature = "plugins"))]
        {
            let _ = (query, scope);
            Ok(hits)
        }
    }
}
