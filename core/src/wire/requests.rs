//! The request objects of the operations, as serde reads them (unknown keys refused), and
//! their conversion into the core's types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{kind_of, nullable, request};
use crate::graph::{EntityInput, RelationInput};
use crate::{
    parse_time, AddMessages, CountOptions, Error, Filter, FusionWeights, ListOptions, ListOrder,
    Memory, MemoryKind, MemoryUpdate, Message, Metadata, NewMemory, Result, Scope, SearchMode,
    SearchOptions, Supersede,
};

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddRequest {
    #[schemars(required)]
    content: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
    expires_at: Option<String>,
    valid_from: Option<String>,
    valid_to: Option<String>,
    /// Entities to find or create in the memory's scope, with it.
    #[serde(default)]
    entities: Vec<EntityInput>,
    /// Relations to add in the memory's scope, with it, sourced from it.
    #[serde(default)]
    relations: Vec<RelationInput>,
}

impl AddRequest {
    pub(super) fn into_new_memory(self, what: &str) -> Result<NewMemory> {
        let content = self
            .content
            .ok_or_else(|| Error::invalid(format!("{what}: content is required")))?;
        let mut memory = NewMemory::new(content).scope(scope_of!(self));
        if let Some(kind) = self.kind {
            memory = memory.kind(kind.parse::<MemoryKind>()?);
        }
        if let Some(metadata) = self.metadata {
            memory = memory.metadata(metadata);
        }
        if let Some(at) = self.expires_at {
            memory = memory.expires_at(parse_time(&at)?);
        }
        memory.valid_from = moment("valid_from", self.valid_from.as_deref())?;
        memory.valid_to = moment("valid_to", self.valid_to.as_deref())?;
        let scope = memory.scope.clone();
        memory.entities = self
            .entities
            .into_iter()
            .map(|e| e.in_scope(&scope))
            .collect();
        memory.relations = self
            .relations
            .into_iter()
            .map(|r| r.in_scope(&scope))
            .collect();
        Ok(memory)
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    #[schemars(with = "Vec<AddRequest>")]
    memories: Vec<Value>,
}

impl BatchRequest {
    pub(super) fn into_new_memories(self) -> Result<Vec<NewMemory>> {
        self.memories
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let what = format!("memories[{i}]");
                request::<AddRequest>(item, &what)?.into_new_memory(&what)
            })
            .collect()
    }
}

/// Scope and filters: the selection shared by list, count, delete_all and search.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SelectRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
}

impl SelectRequest {
    pub(super) fn split(self) -> Result<(Scope, Option<Filter>)> {
        let filter = self.filters.as_ref().map(Filter::from_json).transpose()?;
        Ok((scope_of!(self), filter))
    }
}

/// `count`: the selection, now or as of a past moment.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CountRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
    as_of: Option<String>,
    valid_at: Option<String>,
    include_superseded: Option<bool>,
}

impl CountRequest {
    pub(super) fn into_options(self) -> Result<CountOptions> {
        Ok(CountOptions {
            scope: scope_of!(self),
            filter: self.filters.as_ref().map(Filter::from_json).transpose()?,
            as_of: moment("as_of", self.as_of.as_deref())?,
            valid_at: moment("valid_at", self.valid_at.as_deref())?,
            include_superseded: self.include_superseded.unwrap_or(false),
        })
    }
}

/// `get` (beside its `id`): now or as of a past moment.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GetRequest {
    as_of: Option<String>,
}

impl GetRequest {
    pub(super) fn as_of(&self) -> Result<Option<DateTime<Utc>>> {
        moment("as_of", self.as_of.as_deref())
    }
}

/// A time field of a request, named in the error when it does not parse.
pub(super) fn moment(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|s| parse_time(s).map_err(|e| Error::invalid(format!("{field}: {}", e.message()))))
        .transpose()
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListRequest {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
    include_global: Option<bool>,
    include_expired: Option<bool>,
    order: Option<ListOrder>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
    with_total: Option<bool>,
    as_of: Option<String>,
    valid_at: Option<String>,
    include_superseded: Option<bool>,
}

impl ListRequest {
    pub(super) fn into_options(self) -> Result<ListOptions> {
        let defaults = ListOptions::default();
        Ok(ListOptions {
            scope: scope_of!(self),
            filter: self.filters.as_ref().map(Filter::from_json).transpose()?,
            include_global: self.include_global.unwrap_or(false),
            include_expired: self.include_expired.unwrap_or(false),
            order: self.order.unwrap_or(defaults.order),
            limit: self.limit.unwrap_or(defaults.limit),
            offset: self.offset.unwrap_or(0),
            cursor: self.cursor,
            with_total: self.with_total.unwrap_or(false),
            as_of: moment("as_of", self.as_of.as_deref())?,
            valid_at: moment("valid_at", self.valid_at.as_deref())?,
            include_superseded: self.include_superseded.unwrap_or(false),
        })
    }
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateRequest {
    content: Option<String>,
    metadata: Option<Metadata>,
    merge_metadata: Option<bool>,
    kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<String>")]
    valid_to: Option<Option<String>>,
}

/// A time a request may also set to null (`Some(None)`: clear it), named in the error.
fn nullable_moment(
    field: &str,
    value: Option<Option<String>>,
) -> Result<Option<Option<DateTime<Utc>>>> {
    Ok(match value {
        None => None,
        Some(None) => Some(None),
        Some(Some(at)) => Some(moment(field, Some(&at))?),
    })
}

impl UpdateRequest {
    pub(super) fn into_update(self) -> Result<MemoryUpdate> {
        Ok(MemoryUpdate {
            content: self.content,
            metadata: self.metadata,
            merge_metadata: self.merge_metadata.unwrap_or(false),
            kind: self.kind.map(|k| k.parse()).transpose()?,
            expires_at: nullable_moment("expires_at", self.expires_at)?,
            valid_from: nullable_moment("valid_from", self.valid_from)?,
            valid_to: nullable_moment("valid_to", self.valid_to)?,
        })
    }
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchRequest {
    query: Option<String>,
    mode: Option<String>,
    limit: Option<usize>,
    threshold: Option<f32>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    filters: Option<Value>,
    include_global: Option<bool>,
    include_expired: Option<bool>,
    weights: Option<FusionWeights>,
    as_of: Option<String>,
    valid_at: Option<String>,
    include_superseded: Option<bool>,
    time_aware: Option<bool>,
    now: Option<String>,
}

impl SearchRequest {
    /// The query text and the options, starting from the store's search defaults.
    pub(super) fn into_options(self, memory: &Memory) -> Result<(String, SearchOptions)> {
        let mut options = memory.search_options();
        options.scope = scope_of!(self);
        options.filter = self.filters.as_ref().map(Filter::from_json).transpose()?;
        if let Some(mode) = self.mode {
            options.mode = mode.parse::<SearchMode>()?;
        }
        options.limit = self.limit.unwrap_or(options.limit);
        options.threshold = self.threshold.or(options.threshold);
        options.include_global = self.include_global.unwrap_or(false);
        options.include_expired = self.include_expired.unwrap_or(false);
        options.weights = self.weights.unwrap_or(options.weights);
        options.as_of = moment("as_of", self.as_of.as_deref())?;
        options.valid_at = moment("valid_at", self.valid_at.as_deref())?;
        options.include_superseded = self.include_superseded.unwrap_or(false);
        options.time_aware = self.time_aware.unwrap_or(options.time_aware);
        options.now = moment("now", self.now.as_deref())?;
        Ok((self.query.unwrap_or_default(), options))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMessagesRequest {
    #[schemars(required)]
    messages: Option<Value>,
    infer: Option<bool>,
    prompt: Option<String>,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
    expires_at: Option<String>,
    observed_at: Option<String>,
    supersede: Option<bool>,
}

impl AddMessagesRequest {
    pub(super) fn into_request(self) -> Result<AddMessages> {
        let messages = messages_of(self.messages)?;
        let mut request = AddMessages::new(messages).scope(scope_of!(self));
        request.infer = self.infer.unwrap_or(true);
        request.prompt = self.prompt;
        if let Some(kind) = self.kind {
            request.kind = Some(kind.parse::<MemoryKind>()?);
        }
        if let Some(metadata) = self.metadata {
            request.metadata = metadata;
        }
        if let Some(at) = self.expires_at {
            request.expires_at = Some(parse_time(&at)?);
        }
        request.observed_at = moment("observed_at", self.observed_at.as_deref())?;
        request.supersede = self.supersede.unwrap_or(request.supersede);
        Ok(request)
    }
}

/// The `messages` of a request: a string (one user message), a message, or a list of them.
pub(super) fn messages_of(messages: Option<Value>) -> Result<Vec<Message>> {
    match messages {
        Some(Value::String(text)) => Ok(vec![Message::user(text)]),
        Some(one @ Value::Object(_)) => Ok(vec![self::request::<Message>(&one, "messages")?]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, m)| self::request::<Message>(m, &format!("messages[{i}]")))
            .collect(),
        Some(other) if !other.is_null() => Err(Error::invalid(format!(
            "messages must be a string, a message or a list of messages, got {}",
            kind_of(&other)
        ))),
        _ => Err(Error::invalid("messages is required")),
    }
}

/// `supersede` (beside the `id` of the memory it replaces): the new fact.
#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SupersedeRequest {
    #[schemars(required)]
    content: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
    valid_from: Option<String>,
    expires_at: Option<String>,
}

impl SupersedeRequest {
    pub(super) fn into_supersede(self) -> Result<Supersede> {
        Ok(Supersede {
            content: self
                .content
                .ok_or_else(|| Error::invalid("supersede request: content is required"))?,
            kind: self.kind.map(|k| k.parse()).transpose()?,
            metadata: self.metadata,
            valid_from: moment("valid_from", self.valid_from.as_deref())?,
            expires_at: moment("expires_at", self.expires_at.as_deref())?,
        })
    }
}

/// `undo`: the change to undo.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UndoRequest {
    pub(super) change_id: String,
    #[serde(default)]
    pub(super) force: bool,
}

/// `revert` (beside the memory's `id`): the version to restore.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevertRequest {
    pub(super) to_version: u64,
}
