//! Reading: one memory, pages of memories (offsets and cursors), counts, history.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_id, selection, Memory};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::search::MAX_LIMIT;
use crate::store::{PageRequest, StoredPage};
use crate::types::{format_time, parse_time, HistoryEntry, ListOrder, MemoryRecord, Scope};

/// Options of [`Memory::list`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListOptions {
    /// Only memories of this scope.
    pub scope: Scope,
    /// With a scope, also the global layer.
    pub include_global: bool,
    /// Further conditions.
    #[serde(skip)]
    pub filter: Option<Filter>,
    /// Also expired memories.
    pub include_expired: bool,
    /// The order.
    pub order: ListOrder,
    /// At most this many (1 to 10,000).
    pub limit: usize,
    /// Skip this many (not together with `cursor`; at most `i64::MAX`). Past the end gives
    /// an empty page.
    pub offset: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
    /// Also return [`ListPage::total`]: how many memories the selection (scope, filter,
    /// `include_global`, `include_expired`) matches in all, counted in the read snapshot the
    /// page comes from.
    pub with_total: bool,
    /// List the store as it stood at this moment (transaction time): the versions current
    /// then (see [`crate::SearchOptions::as_of`]).
    #[serde(skip)]
    pub as_of: Option<DateTime<Utc>>,
    /// Only memories whose valid time holds at this moment (superseded ones included:
    /// their own valid time decides).
    #[serde(skip)]
    pub valid_at: Option<DateTime<Utc>>,
    /// Also memories that were superseded (see [`Memory::supersede`]), hidden otherwise.
    pub include_superseded: bool,
}

/// What [`Memory::count_with`] counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountOptions {
    /// Only memories of this scope.
    pub scope: Scope,
    /// Further conditions.
    pub filter: Option<Filter>,
    /// Count the store as it stood at this moment (transaction time).
    pub as_of: Option<DateTime<Utc>>,
    /// Only memories whose valid time holds at this moment.
    pub valid_at: Option<DateTime<Utc>>,
    /// Also memories that were superseded.
    pub include_superseded: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            scope: Scope::default(),
            include_global: false,
            filter: None,
            include_expired: false,
            order: ListOrder::default(),
            limit: 100,
            offset: 0,
            cursor: None,
            with_total: false,
            as_of: None,
            valid_at: None,
            include_superseded: false,
        }
    }
}

impl ListOptions {
    /// Default options.
    pub fn new() -> Self {
        ListOptions::default()
    }

    /// Only this user's memories.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.scope.user_id = Some(user_id.into());
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: ListOrder) -> Self {
        self.order = order;
        self
    }

    /// Also counts every memory the selection matches (see [`ListOptions::with_total`]).
    pub fn with_total(mut self) -> Self {
        self.with_total = true;
        self
    }

    /// Lists the store as it stood at `at` (see [`ListOptions::as_of`]).
    pub fn as_of(mut self, at: DateTime<Utc>) -> Self {
        self.as_of = Some(at);
        self
    }
}

/// One page of [`Memory::list`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListPage {
    /// The memories on this page.
    pub items: Vec<MemoryRecord>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// With [`ListOptions::with_total`]: how many memories the selection matches in all
    /// (not only on this page), from the same read snapshot as the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

impl Memory {
    /// The memory with this id (expired or not).
    pub fn get(&self, id: &str) -> Result<MemoryRecord> {
        check_id(id)?;
        self.shared
            .store
            .get(id)?
            .ok_or_else(|| Error::not_found(format!("no memory with id {id:?}")))
    }

    /// A page of memories, filtered and ordered.
    pub fn list(&self, options: &ListOptions) -> Result<ListPage> {
        if options.limit == 0 || options.limit > MAX_LIMIT {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {}",
                options.limit
            )));
        }
        if options.cursor.is_some() && options.offset > 0 {
            return Err(Error::invalid(
                "give either a cursor or an offset, not both",
            ));
        }
        // The backends take a signed 64-bit offset: a larger one must not wrap to a negative
        // (SQLite reads a negative OFFSET as none and would return the first page).
        if i64::try_from(options.offset).is_err() {
            return Err(Error::invalid(format!(
                "offset must be at most {}, got {}",
                i64::MAX,
                options.offset
            )));
        }
        options.scope.validate()?;
        let selection = selection(
            options.filter.as_ref(),
            &options.scope,
            options.include_global,
            options.include_expired,
        )
        .in_time(options.as_of, options.valid_at, options.include_superseded);
        if selection.is_after_now() {
            return Ok(ListPage {
                items: Vec::new(),
                next_cursor: None,
                total: options.with_total.then_some(0),
            });
        }
        let page = PageRequest {
            order: options.order,
            limit: options.limit + 1,
            offset: options.offset,
            after: options.cursor.as_deref().map(parse_cursor).transpose()?,
            with_total: options.with_total,
        };
        let StoredPage { mut rows, total } = self.shared.store.list(&selection, &page)?;
        let more = rows.len() > options.limit;
        rows.truncate(options.limit);
        let next_cursor = if more {
            rows.last()
                .map(|(key, r)| format!("{key}|{}", format_time(options.order.time_of(r))))
        } else {
            None
        };
        Ok(ListPage {
            items: rows.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
            total,
        })
    }

    /// How many memories match the scope and filter (expired and superseded ones
    /// excluded).
    pub fn count(&self, scope: &Scope, filter: Option<&Filter>) -> Result<usize> {
        self.count_with(&CountOptions {
            scope: scope.clone(),
            filter: filter.cloned(),
            ..CountOptions::default()
        })
    }

    /// How many memories match: with `as_of`, how many matched at that moment (transaction
    /// time: the versions current then, expiry judged then; 0 for a moment still to come);
    /// with `valid_at`, only those valid then.
    pub fn count_with(&self, options: &CountOptions) -> Result<usize> {
        options.scope.validate()?;
        let selection = selection(options.filter.as_ref(), &options.scope, false, false).in_time(
            options.as_of,
            options.valid_at,
            options.include_superseded,
        );
        if selection.is_after_now() {
            return Ok(0);
        }
        self.shared.store.count(&selection)
    }

    /// The history of a memory, oldest first (it outlives the memory's deletion).
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        check_id(id)?;
        let rows = self.shared.store.history(id)?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("no memory with id {id:?}")));
        }
        Ok(rows)
    }
}

fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    let bad = || Error::invalid(format!("invalid cursor {cursor:?}"));
    let (key, at) = cursor.split_once('|').ok_or_else(bad)?;
    let key: i64 = key.parse().map_err(|_| bad())?;
    let at = parse_time(at).map_err(|_| bad())?;
    Ok((key, format_time(at)))
}
