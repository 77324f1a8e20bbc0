//! The data model: memories, their scope and kind, history rows and the inputs of each call.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Metadata attached to a memory: a JSON object.
pub type Metadata = Map<String, Value>;

/// The largest content accepted, in bytes (UTF-8). Longer texts are refused with
/// [`crate::ErrorCode::InvalidInput`]: a memory is a fact, not a document.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// The longest scope id (user, agent, run or organisation id) accepted, in bytes.
pub const MAX_SCOPE_ID_BYTES: usize = 256;

/// Metadata keys that name a memory's identity. They can never be set through metadata:
/// a metadata object holding one of them is refused.
pub const RESERVED_METADATA_KEYS: [&str; 11] = [
    "id",
    "memory_id",
    "user_id",
    "agent_id",
    "run_id",
    "org_id",
    "hash",
    "kind",
    "created_at",
    "updated_at",
    "expires_at",
];

/// Who a memory belongs to. Every field absent means the global layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Scope {
    /// The user the memory is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The agent that owns the memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The run (session) the memory belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The organisation the memory belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

impl Scope {
    /// The global scope (no owner).
    pub fn global() -> Self {
        Scope::default()
    }

    /// A scope with only a user id.
    pub fn user(user_id: impl Into<String>) -> Self {
        Scope {
            user_id: Some(user_id.into()),
            ..Scope::default()
        }
    }

    /// This scope with an agent id.
    pub fn with_agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// This scope with a run id.
    pub fn with_run(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// This scope with an organisation id.
    pub fn with_org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    /// True when no field is set.
    pub fn is_global(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_none())
    }

    /// The four fields with their names, in a fixed order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("user_id", self.user_id.as_deref()),
            ("agent_id", self.agent_id.as_deref()),
            ("run_id", self.run_id.as_deref()),
            ("org_id", self.org_id.as_deref()),
        ]
    }

    /// Checks every id: non-empty, no control characters, at most [`MAX_SCOPE_ID_BYTES`].
    pub fn validate(&self) -> Result<()> {
        for (name, value) in self.fields() {
            if let Some(value) = value {
                if value.trim().is_empty() {
                    return Err(Error::invalid(format!(
                        "{name} must not be empty (leave it out for no {name})"
                    )));
                }
                if value.len() > MAX_SCOPE_ID_BYTES {
                    return Err(Error::invalid(format!(
                        "{name} is longer than {MAX_SCOPE_ID_BYTES} bytes"
                    )));
                }
                if value.chars().any(char::is_control) {
                    return Err(Error::invalid(format!(
                        "{name} must not contain control characters"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What sort of memory this is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    /// Something that happened (the default for raw text).
    #[default]
    Episodic,
    /// A fact or preference.
    Semantic,
    /// How to do something (an agent's learned procedure).
    Procedural,
    /// Short-lived working memory; usually carries an expiry.
    Working,
    /// Context of a conversation or task.
    Contextual,
    /// Reference knowledge.
    Knowledge,
    /// A pointer to a resource (file, URL, document).
    Resource,
    /// Core, always-relevant facts (persona, identity).
    Core,
}

impl MemoryKind {
    /// Every kind.
    pub const ALL: [MemoryKind; 8] = [
        MemoryKind::Episodic,
        MemoryKind::Semantic,
        MemoryKind::Procedural,
        MemoryKind::Working,
        MemoryKind::Contextual,
        MemoryKind::Knowledge,
        MemoryKind::Resource,
        MemoryKind::Core,
    ];

    /// The lowercase name stored and shown (`"episodic"`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Episodic => "episodic",
            MemoryKind::Semantic => "semantic",
            MemoryKind::Procedural => "procedural",
            MemoryKind::Working => "working",
            MemoryKind::Contextual => "contextual",
            MemoryKind::Knowledge => "knowledge",
            MemoryKind::Resource => "resource",
            MemoryKind::Core => "core",
        }
    }
}

impl std::str::FromStr for MemoryKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        MemoryKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown memory kind {s:?} (expected one of: {})",
                    MemoryKind::ALL.map(|k| k.as_str()).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryRecord {
    /// The memory's id (a UUID string).
    pub id: String,
    /// The text.
    pub content: String,
    /// MD5 hex digest of the content (as mem0 reports it).
    pub hash: String,
    /// The kind of memory.
    pub kind: MemoryKind,
    /// Who it belongs to.
    #[serde(flatten)]
    pub scope: Scope,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// When it was first stored (UTC).
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    /// When it last changed (UTC).
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
    /// When it expires, if ever (UTC). Expired memories are hidden unless asked for.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Which version of the memory this is: 1 when added, one more with every update.
    #[serde(default = "first_version")]
    pub version: u64,
    /// When this version became the current one: the commit time of the change that wrote
    /// it (equal to `updated_at`). Transaction time, as opposed to valid time.
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub valid_from_tx: DateTime<Utc>,
    /// When this version stopped being the current one (the commit time of the update or
    /// delete that replaced it); absent for the current version.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub valid_to_tx: Option<DateTime<Utc>>,
    /// Since when the fact held in the world (valid time), if known; open when absent.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when the fact held in the world (valid time, exclusive), if it ended; open
    /// when absent.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub valid_to: Option<DateTime<Utc>>,
    /// The memory that replaced this fact (see `Memory::supersede`): a superseded memory is
    /// kept, hidden from reads unless they include superseded memories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

fn first_version() -> u64 {
    1
}

impl MemoryRecord {
    /// True if the memory has an expiry at or before `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// The next version of this memory, as a change committed at `at` starts it: the same
    /// fields (for the caller to change), one version up, current from `at`.
    pub(crate) fn next_version(&self, at: DateTime<Utc>) -> MemoryRecord {
        MemoryRecord {
            version: self.version + 1,
            updated_at: at,
            valid_from_tx: at,
            valid_to_tx: None,
            ..self.clone()
        }
    }

    /// True if this version was the current one at `t` (transaction time).
    pub fn was_current_at(&self, t: DateTime<Utc>) -> bool {
        self.valid_from_tx <= t && self.valid_to_tx.is_none_or(|end| t < end)
    }
}

/// Checks a valid-time interval: `valid_to` must not be before `valid_from`.
pub(crate) fn validate_valid_time(
    valid_from: Option<DateTime<Utc>>,
    valid_to: Option<DateTime<Utc>>,
) -> Result<()> {
    match (valid_from, valid_to) {
        (Some(from), Some(to)) if to < from => Err(Error::invalid(format!(
            "valid_to ({}) is before valid_from ({})",
            format_time(to),
            format_time(from)
        ))),
        _ => Ok(()),
    }
}

/// A memory to add.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewMemory {
    /// The text (1 byte to [`MAX_CONTENT_BYTES`], not only white space).
    pub content: String,
    /// Who it belongs to.
    #[serde(flatten)]
    pub scope: Scope,
    /// The kind of memory.
    #[serde(default)]
    pub kind: MemoryKind,
    /// Metadata (reserved identity keys are refused).
    #[serde(default)]
    pub metadata: Metadata,
    /// Optional expiry.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Since when the fact holds in the world (valid time), if known.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Until when the fact held (exclusive), if it ended.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<Utc>>,
    /// Entities to find or create in the memory's scope, in the memory's transaction (as
    /// [`crate::memory::Graph::add_entity`] does). Their scope is the memory's: leave it
    /// empty (another one is refused).
    #[serde(skip)]
    pub entities: Vec<crate::graph::NewEntity>,
    /// Relations to add in the memory's scope, in the memory's transaction, each sourced
    /// from the memory (beside any sources it names), as
    /// [`crate::memory::Graph::add_relation`] adds them. Their scope is the memory's: leave
    /// it empty (another one is refused). A refused relation fails the whole call.
    #[serde(skip)]
    pub relations: Vec<crate::graph::NewRelation>,
}

impl NewMemory {
    /// A global episodic memory with this content.
    pub fn new(content: impl Into<String>) -> Self {
        NewMemory {
            content: content.into(),
            ..NewMemory::default()
        }
    }

    /// Sets the user id.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.scope.user_id = Some(user_id.into());
        self
    }

    /// Sets the agent id.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.scope.agent_id = Some(agent_id.into());
        self
    }

    /// Sets the run id.
    pub fn run(mut self, run_id: impl Into<String>) -> Self {
        self.scope.run_id = Some(run_id.into());
        self
    }

    /// Sets the organisation id.
    pub fn org(mut self, org_id: impl Into<String>) -> Self {
        self.scope.org_id = Some(org_id.into());
        self
    }

    /// Sets the whole scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: MemoryKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the metadata. Anything but a JSON object is refused by `add`.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets one metadata key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the expiry time.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets since when the fact holds (valid time).
    pub fn valid_from(mut self, at: DateTime<Utc>) -> Self {
        self.valid_from = Some(at);
        self
    }

    /// Sets until when the fact held (valid time, exclusive).
    pub fn valid_to(mut self, at: DateTime<Utc>) -> Self {
        self.valid_to = Some(at);
        self
    }

    /// Adds an entity to find or create with the memory (in its scope).
    pub fn entity(mut self, entity: crate::graph::NewEntity) -> Self {
        self.entities.push(entity);
        self
    }

    /// Adds a relation to store with the memory (in its scope, sourced from it).
    pub fn relation(mut self, relation: crate::graph::NewRelation) -> Self {
        self.relations.push(relation);
        self
    }

    /// Checks everything but the embedding.
    pub fn validate(&self) -> Result<()> {
        validate_content(&self.content)?;
        self.scope.validate()?;
        validate_metadata(&self.metadata)?;
        validate_valid_time(self.valid_from, self.valid_to)
    }
}

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AddOutcome {
    /// The id of the memory (the existing one for a duplicate).
    pub id: String,
    /// False when an identical memory (same scope, same content) was already stored and
    /// nothing was added.
    pub added: bool,
}

/// A change to a stored memory. Fields left `None` stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryUpdate {
    /// New text (re-embedded).
    #[serde(default)]
    pub content: Option<String>,
    /// New metadata, replacing the old object whole (or, with `merge_metadata`, merged
    /// into it).
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Merge `metadata` into the stored metadata instead of replacing it: a shallow merge,
    /// each key of `metadata` set (a new value wins over the stored one), every other stored
    /// key kept. The stored metadata is read inside the update's write transaction, so
    /// concurrent merges into one memory never lose each other's keys. Needs `metadata`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_metadata: bool,
    /// New kind.
    #[serde(default)]
    pub kind: Option<MemoryKind>,
    /// New expiry: `Some(None)` removes it.
    #[serde(
        default,
        with = "rfc3339_opt_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New start of the valid time: `Some(None)` makes it open.
    #[serde(
        default,
        with = "rfc3339_opt_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<Option<DateTime<Utc>>>,
    /// New end of the valid time: `Some(None)` makes it open.
    #[serde(
        default,
        with = "rfc3339_opt_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_to: Option<Option<DateTime<Utc>>>,
}

impl MemoryUpdate {
    /// An update of the content only.
    pub fn content(content: impl Into<String>) -> Self {
        MemoryUpdate {
            content: Some(content.into()),
            ..MemoryUpdate::default()
        }
    }

    /// An update of the metadata only.
    pub fn metadata(metadata: Metadata) -> Self {
        MemoryUpdate {
            metadata: Some(metadata),
            ..MemoryUpdate::default()
        }
    }

    /// An update merging these keys into the stored metadata (see
    /// [`MemoryUpdate::merge_metadata`]).
    pub fn merge(metadata: Metadata) -> Self {
        MemoryUpdate {
            metadata: Some(metadata),
            merge_metadata: true,
            ..MemoryUpdate::default()
        }
    }

    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.content.is_none()
            && self.metadata.is_none()
            && self.kind.is_none()
            && self.expires_at.is_none()
            && self.valid_from.is_none()
            && self.valid_to.is_none()
    }
}

/// What happened to a memory, as recorded in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HistoryEvent {
    /// The memory was created.
    Add,
    /// Its content, metadata, kind or expiry changed.
    Update,
    /// It was deleted.
    Delete,
}

impl HistoryEvent {
    /// The stored name (`"ADD"`, `"UPDATE"`, `"DELETE"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryEvent::Add => "ADD",
            HistoryEvent::Update => "UPDATE",
            HistoryEvent::Delete => "DELETE",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "ADD" => Ok(HistoryEvent::Add),
            "UPDATE" => Ok(HistoryEvent::Update),
            "DELETE" => Ok(HistoryEvent::Delete),
            other => Err(Error::new(
                crate::ErrorCode::Corrupted,
                format!("unknown history event {other:?}"),
            )),
        }
    }
}

/// One row of a memory's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    /// The row's id (a UUID string).
    pub id: String,
    /// The memory it is about.
    pub memory_id: String,
    /// What happened.
    pub event: HistoryEvent,
    /// The content before (absent for `ADD`).
    pub old_content: Option<String>,
    /// The content after (absent for `DELETE`).
    pub new_content: Option<String>,
    /// True for the `DELETE` row.
    pub is_deleted: bool,
    /// Who made the change (`"user"` by default, `"expiry"` for purges, `"undo"` for
    /// undos and reverts).
    pub actor: String,
    /// When.
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    /// The change this row records, to pass to `Memory::undo`: the row's own id, or shared
    /// by the rows of a change that touched several memories (a supersede).
    pub change_id: String,
    /// The change that undid this one, once undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<String>,
}

/// Order of a listing ([`crate::Memory::list`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// Newest first (by creation).
    #[default]
    CreatedDesc,
    /// Oldest first (by creation).
    CreatedAsc,
    /// Most recently changed first.
    UpdatedDesc,
    /// Least recently changed first.
    UpdatedAsc,
}

impl ListOrder {
    /// True when the listing goes from the latest time to the earliest.
    pub(crate) fn descending(self) -> bool {
        matches!(self, ListOrder::CreatedDesc | ListOrder::UpdatedDesc)
    }

    /// True when the listing sorts by the time of the last change (else by creation).
    pub(crate) fn by_update(self) -> bool {
        matches!(self, ListOrder::UpdatedAsc | ListOrder::UpdatedDesc)
    }

    /// The time of `record` this order sorts by.
    pub(crate) fn time_of(self, record: &MemoryRecord) -> DateTime<Utc> {
        if self.by_update() {
            record.updated_at
        } else {
            record.created_at
        }
    }
}

/// Formats a time the way the store keeps it: RFC 3339, UTC, microseconds, `Z`. The fixed
/// width makes text order equal time order, so SQLite can compare times as text.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time (any offset) into UTC; a plain date (`2024-03-01`) means its
/// midnight UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    Err(Error::invalid(format!(
        "{s:?} is not an RFC 3339 time (e.g. 2024-03-01T12:00:00Z) or a date (2024-03-01)"
    )))
}

pub(crate) fn validate_content(content: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid("content must not be empty"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Error::invalid(format!(
            "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
            content.len()
        )));
    }
    if content.contains('\0') {
        return Err(Error::invalid("content must not contain NUL characters"));
    }
    Ok(())
}

pub(crate) fn validate_metadata(metadata: &Metadata) -> Result<()> {
    for key in metadata.keys() {
        if RESERVED_METADATA_KEYS.contains(&key.as_str()) {
            return Err(Error::invalid(format!(
                "metadata key {key:?} is reserved: identity fields are set through their own \
                 parameters, never through metadata"
            )));
        }
        if key.is_empty() {
            return Err(Error::invalid("metadata keys must not be empty"));
        }
    }
    Ok(())
}

pub(crate) fn content_hash(content: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_time(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

mod rfc3339_opt_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        t: &Option<Option<DateTime<Utc>>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        super::rfc3339_opt::serialize(&t.flatten(), s)
    }

    /// Present-but-null means "remove the expiry"; absent (the serde default) means "keep".
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<DateTime<Utc>>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => super::parse_time(&s)
                .map(|t| Some(Some(t)))
                .map_err(serde::de::Error::custom),
            None => Ok(Some(None)),
        }
    }
}
