//! The search entry points of a [`Memory`]: checks, the query vector, the hooks; the
//! pipeline itself is [`crate::search::hybrid`].

use chrono::Utc;

use super::{check_vector, selection, Memory};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::search::{hybrid, time_words, SearchHit, SearchMode, SearchOptions};
use crate::types::validate_content;

impl Memory {
    /// Searches with the query text (embedded when the mode needs it).
    /// With plugins, `before_search` hooks may rewrite the query, limit and filters, and
    /// `after_search` hooks may reorder, drop and rescore the hits.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<SearchHit>> {
        self.search_hooked(query, None, options)
    }

    /// Searches with the hooks around: `before_search` may change the query and options,
    /// `after_search` the hits.
    fn search_hooked(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        if self.shared.hooks.is_empty() {
            return self.search_inner(query, vector, options);
        }
        // Bad input is the caller's error, not something to show plugins.
        options.validate()?;
        if vector.is_none() && query.trim().is_empty() {
            return Err(Error::invalid("query must not be empty"));
        }
        let (mut query, mut options) = (query.to_string(), options.clone());
        self.hook_before_search(&mut query, &mut options)?;
        let hits = self.search_inner(&query, vector, &options)?;
        self.hook_after_search(&query, &options.scope, hits)
    }

    /// Searches with a caller-computed query vector; the text (may be empty in vector mode)
    /// serves the keyword engines.
    pub fn search_with_vector(
        &self,
        query: &str,
        vector: &[f32],
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        check_vector(vector)?;
        self.search_hooked(query, Some(vector), options)
    }

    /// Searches without hooks.
    pub(crate) fn search_inner(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>> {
        options.validate()?;
        if options.time_aware {
            if let Some(span) = time_words::find(query, options.now.unwrap_or_else(Utc::now)) {
                let mut placed = options.clone();
                placed.time_aware = false;
                let overlap = Filter::time_overlaps(span.start, span.end);
                placed.filter = Some(match placed.filter.take() {
                    Some(f) => f.and(overlap),
                    None => overlap,
                });
                // The words named the span; the engines match the rest (all of it if
                // nothing else is left).
                let rest = time_words::without(query, &span);
                let text = if rest.is_empty() { query } else { &rest };
                return self.search_inner(text, vector, &placed);
            }
        }
        let mode = options.mode;
        if vector.is_none() || mode != SearchMode::Vector {
            if query.trim().is_empty() {
                return Err(Error::invalid("query must not be empty"));
            }
            validate_content(query)
                .map_err(|e| Error::invalid(format!("query: {}", e.message())))?;
        }
        let needs_vector = matches!(mode, SearchMode::Vector | SearchMode::Hybrid)
            && (mode == SearchMode::Vector || options.weights.vector > 0.0);
        let query_vector: Option<Vec<f32>> = match (vector, needs_vector) {
            (Some(v), _) => Some(v.to_vec()),
            (None, true) => Some(self.embed_query(query)?),
            (None, false) => None,
        };
        if let Some(v) = vector {
            // A caller's vector must fit the store (an embedder's was checked at open).
            if let Some(dims) = self.shared.store.info()?.dimensions {
                if v.len() != dims {
                    return Err(Error::invalid(format!(
                        "query vector has {} dimensions; the store holds {dims}",
                        v.len()
                    )));
                }
            }
        }
        self.shared.store.refresh()?;
        let selection = selection(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        )
        .in_time(options.as_of, options.valid_at, options.include_superseded);
        if selection.is_after_now() {
            return Ok(Vec::new());
        }
        hybrid::run(
            &*self.shared.store,
            query,
            query_vector.as_deref(),
            options,
            &selection,
        )
    }
}
