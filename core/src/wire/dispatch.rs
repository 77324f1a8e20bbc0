//! The one dispatch: an operation's name and its JSON request in, its JSON result out.
//!
//! Every surface that is not Rust (C's `am_memory_call`, Python, Node) reaches the store's
//! operations through [`call`] / [`call_with`], so an operation added to [`OPERATIONS`]'s
//! table reaches them all with no edit in their crates.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::graph;
use super::plugins::{info_schema, infos_schema, registration_schema};
use super::requests::{
    AddMessagesRequest, AddRequest, BatchRequest, CountRequest, GetRequest, ListRequest,
    RevertRequest, SearchRequest, SelectRequest, SupersedeRequest, UndoRequest, UpdateRequest,
};
use super::schema::{null, of, with_fields, EmptyRequest, IdRequest, SchemaFn, Taken};
use super::{kind_of, request};
use crate::graph::{
    Entity, EntityDetail, EntityEvent, GraphExport, ImportReport, Neighbor, Relation,
    RelationAdded, Split,
};
use crate::{
    AddOutcome, ChatReply, Error, HistoryEntry, ListPage, Memory, MemoryEvent, MemoryRecord,
    Pruned, Remembered, Result, SearchHit, Superseded, Undone,
};

/// Embeddings the caller computed, passed beside the request as native floats (so that NaN
/// and infinities reach the core's checks as they are, which JSON cannot carry).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Embeddings {
    /// None given (a request may still carry `"vector"` / `"vectors"` as JSON numbers).
    #[default]
    None,
    /// One embedding: `add`, `search` and `update` take it.
    One(Vec<f32>),
    /// One embedding per memory: `add_batch` takes them.
    Many(Vec<Vec<f32>>),
}

impl Embeddings {
    /// From a binding's two optional arguments (`vector`, `vectors`); both is an error.
    pub fn from_options(
        vector: Option<Vec<f32>>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> Result<Embeddings> {
        match (vector, vectors) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "give a vector or vectors (one per memory), not both",
            )),
            (Some(v), None) => Ok(Embeddings::One(v)),
            (None, Some(vs)) => Ok(Embeddings::Many(vs)),
            (None, None) => Ok(Embeddings::None),
        }
    }
}

/// Where a streaming operation hands the pieces of its answer; returns `false` to stop it.
pub type OnText<'a> = &'a mut dyn FnMut(&str) -> bool;

/// A request on its way to an operation: the JSON object, the native embeddings, and where
/// a streaming operation sends its text.
struct Request<'a> {
    op: &'static str,
    body: Value,
    embeddings: Embeddings,
    on_text: Option<OnText<'a>>,
}

impl Request<'_> {
    fn object(&mut self) -> Result<&mut Map<String, Value>> {
        if self.body.is_null() {
            self.body = Value::Object(Map::new());
        }
        match &mut self.body {
            Value::Object(o) => Ok(o),
            other => Err(Error::invalid(format!(
                "{} request must be a JSON object, got {}",
                self.op,
                kind_of(other)
            ))),
        }
    }

    /// Takes the required string field `"id"` out of the request.
    fn id(&mut self) -> Result<String> {
        let op = self.op;
        match self.object()?.remove("id") {
            Some(Value::String(id)) => Ok(id),
            None | Some(Value::Null) => {
                Err(Error::invalid(format!("{op} request: id is required")))
            }
            Some(other) => Err(Error::invalid(format!(
                "{op} request: id must be a string, got {}",
                kind_of(&other)
            ))),
        }
    }

    /// The id of a request that holds nothing else.
    fn only_id(&mut self) -> Result<String> {
        let id = self.id()?;
        self.empty()?;
        Ok(id)
    }

    /// Takes a JSON field holding embeddings (`"vector"` or `"vectors"`) out of the request.
    fn json_field<T: for<'de> Deserialize<'de>>(&mut self, key: &str) -> Result<Option<T>> {
        let op = self.op;
        match self.object()?.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{op} request: {key}: {e}")).with_source(e)),
        }
    }

    /// The one embedding, native or as the request's `"vector"`; `None` for neither.
    fn vector(&mut self) -> Result<Option<Vec<f32>>> {
        let json = self.json_field::<Vec<f32>>("vector")?;
        match (std::mem::take(&mut self.embeddings), json) {
            (Embeddings::One(_), Some(_)) => Err(self.both("vector")),
            (Embeddings::One(v), None) => Ok(Some(v)),
            (Embeddings::None, json) => Ok(json),
            (Embeddings::Many(_), _) => Err(self.wrong("vectors")),
        }
    }

    /// The embeddings of a batch, native or as the request's `"vectors"`.
    fn vectors(&mut self) -> Result<Option<Vec<Vec<f32>>>> {
        let json = self.json_field::<Vec<Vec<f32>>>("vectors")?;
        match (std::mem::take(&mut self.embeddings), json) {
            (Embeddings::Many(_), Some(_)) => Err(self.both("vectors")),
            (Embeddings::Many(vs), None) => Ok(Some(vs)),
            (Embeddings::None, json) => Ok(json),
            (Embeddings::One(_), _) => Err(self.wrong("vector")),
        }
    }

    /// The request for an operation without fields: `null` or `{}`.
    fn empty(&mut self) -> Result<()> {
        self.no_embeddings()?;
        request::<EmptyRequest>(&self.body, &format!("{} request", self.op)).map(|_| ())
    }

    fn no_embeddings(&self) -> Result<()> {
        match self.embeddings {
            Embeddings::None => Ok(()),
            Embeddings::One(_) => Err(self.wrong("vector")),
            Embeddings::Many(_) => Err(self.wrong("vectors")),
        }
    }

    /// The rest of the request, for the operation's own request type.
    fn body(&self) -> Result<&Value> {
        self.no_embeddings()?;
        Ok(&self.body)
    }

    fn both(&self, key: &str) -> Error {
        Error::invalid(format!(
            "{} request: {key} given twice (in the request and beside it)",
            self.op
        ))
    }

    fn wrong(&self, key: &str) -> Error {
        Error::invalid(format!("{} takes no {key}", self.op))
    }
}

/// `null`, the result of an operation that returns nothing.
fn nothing(done: Result<()>) -> Result<Value> {
    done.map(|()| Value::Null)
}

/// One operation of the dispatch.
pub(super) struct Operation {
    pub(super) name: &'static str,
    run: fn(&Memory, &mut Request<'_>) -> Result<Value>,
    /// The schema of its request, as `run` reads it (see [`super::schema`]).
    pub(super) request: SchemaFn,
    /// The schema of its result.
    pub(super) result: SchemaFn,
}

/// Every operation, in the order [`OPERATIONS`] lists them. Requests are the ones the
/// operation's function in [`super`] takes, with these additions: an id travels as `"id"`,
/// caller embeddings as `"vector"` (`add`, `search`, `update`) or `"vectors"` (`add_batch`).
pub(super) const TABLE: &[Operation] = &[
    Operation {
        name: "add",
        run: |m, r| match r.vector()? {
            Some(v) => super::add_with_vector(m, &r.body, v),
            None => super::add(m, &r.body),
        },
        request: |g| with_fields::<AddRequest>(g, &[Taken::Vector]),
        result: of::<AddOutcome>,
    },
    Operation {
        name: "add_batch",
        run: |m, r| match r.vectors()? {
            Some(vs) => super::add_batch_with_vectors(m, &r.body, vs),
            None => super::add_batch(m, &r.body),
        },
        request: |g| with_fields::<BatchRequest>(g, &[Taken::Vectors]),
        result: of::<Vec<AddOutcome>>,
    },
    Operation {
        name: "add_messages",
        run: |m, r| super::add_messages(m, r.body()?),
        request: of::<AddMessagesRequest>,
        result: of::<Vec<MemoryEvent>>,
    },
    Operation {
        name: "chat",
        run: |m, r| {
            let on_text = r.on_text.take();
            super::chat::chat(m, r.body()?, on_text)
        },
        request: of::<super::chat::ChatRequest>,
        result: of::<ChatReply>,
    },
    Operation {
        name: "chat_remembered",
        run: |m, r| super::chat::remembered(m, r.body()?),
        request: of::<super::chat::RememberedRequest>,
        result: of::<Remembered>,
    },
    Operation {
        name: "get",
        run: |m, r| {
            let id = r.id()?;
            super::get_with(m, &id, r.body()?)
        },
        request: |g| with_fields::<GetRequest>(g, &[Taken::Id]),
        result: of::<MemoryRecord>,
    },
    Operation {
        name: "versions",
        run: |m, r| super::versions(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: of::<Vec<MemoryRecord>>,
    },
    Operation {
        name: "supersede",
        run: |m, r| {
            let id = r.id()?;
            super::supersede(m, &id, r.body()?)
        },
        request: |g| with_fields::<SupersedeRequest>(g, &[Taken::Id]),
        result: of::<Superseded>,
    },
    Operation {
        name: "undo",
        run: |m, r| super::undo(m, r.body()?),
        request: of::<UndoRequest>,
        result: of::<Undone>,
    },
    Operation {
        name: "revert",
        run: |m, r| {
            let id = r.id()?;
            super::revert(m, &id, r.body()?)
        },
        request: |g| with_fields::<RevertRequest>(g, &[Taken::Id]),
        result: of::<Undone>,
    },
    Operation {
        name: "list",
        run: |m, r| super::list(m, r.body()?),
        request: of::<ListRequest>,
        result: of::<ListPage>,
    },
    Operation {
        name: "count",
        run: |m, r| super::count(m, r.body()?).map(Value::from),
        request: of::<CountRequest>,
        result: of::<usize>,
    },
    Operation {
        name: "update",
        run: |m, r| {
            let id = r.id()?;
            match r.vector()? {
                Some(v) => super::update_with_vector(m, &id, &r.body, v),
                None => super::update(m, &id, &r.body),
            }
        },
        request: |g| with_fields::<UpdateRequest>(g, &[Taken::Id, Taken::Vector]),
        result: of::<MemoryRecord>,
    },
    Operation {
        name: "delete",
        run: |m, r| nothing(super::delete(m, &r.only_id()?)),
        request: of::<IdRequest>,
        result: null,
    },
    Operation {
        name: "delete_all",
        run: |m, r| super::delete_all(m, r.body()?).map(Value::from),
        request: of::<SelectRequest>,
        result: of::<usize>,
    },
    Operation {
        name: "history",
        run: |m, r| super::history(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: of::<Vec<HistoryEntry>>,
    },
    Operation {
        name: "search",
        run: |m, r| match r.vector()? {
            Some(v) => super::search_with_vector(m, &r.body, &v),
            None => super::search(m, &r.body),
        },
        request: |g| with_fields::<SearchRequest>(g, &[Taken::Vector]),
        result: of::<Vec<SearchHit>>,
    },
    Operation {
        name: "prune_versions",
        run: |m, r| {
            r.empty()?;
            super::to_json(&m.prune_versions()?)
        },
        request: of::<EmptyRequest>,
        result: of::<Pruned>,
    },
    Operation {
        name: "graph_add_entity",
        run: |m, r| super::graph::add_entity(m, r.body()?),
        request: of::<graph::AddEntityRequest>,
        result: of::<Entity>,
    },
    Operation {
        name: "graph_add_relation",
        run: |m, r| super::graph::add_relation(m, r.body()?),
        request: of::<graph::AddRelationRequest>,
        result: of::<RelationAdded>,
    },
    Operation {
        name: "graph_entity",
        run: |m, r| super::graph::entity(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: of::<EntityDetail>,
    },
    Operation {
        name: "graph_entities",
        run: |m, r| super::graph::entities(m, r.body()?),
        request: of::<graph::EntitiesRequest>,
        result: of::<Vec<Entity>>,
    },
    Operation {
        name: "graph_relations",
        run: |m, r| super::graph::relations(m, r.body()?),
        request: of::<graph::RelationsRequest>,
        result: of::<Vec<Relation>>,
    },
    Operation {
        name: "graph_neighbors",
        run: |m, r| super::graph::neighbors(m, r.body()?),
        request: of::<graph::NeighborsRequest>,
        result: of::<Vec<Neighbor>>,
    },
    Operation {
        name: "graph_path",
        run: |m, r| super::graph::path(m, r.body()?),
        request: of::<graph::PathRequest>,
        result: of::<Option<Vec<Relation>>>,
    },
    Operation {
        name: "graph_merge_entities",
        run: |m, r| super::graph::merge_entities(m, r.body()?),
        request: of::<graph::MergeEntitiesRequest>,
        result: of::<EntityDetail>,
    },
    Operation {
        name: "graph_rename_entity",
        run: |m, r| super::graph::rename_entity(m, r.body()?),
        request: of::<graph::RenameEntityRequest>,
        result: of::<Entity>,
    },
    Operation {
        name: "graph_split_entity",
        run: |m, r| super::graph::split_entity(m, r.body()?),
        request: of::<graph::SplitEntityRequest>,
        result: of::<Split>,
    },
    Operation {
        name: "graph_entity_history",
        run: |m, r| super::graph::entity_history(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: of::<Vec<EntityEvent>>,
    },
    Operation {
        name: "graph_import",
        run: |m, r| super::graph::import(m, r.body()?),
        request: of::<graph::ImportRequest>,
        result: of::<ImportReport>,
    },
    Operation {
        name: "graph_export",
        run: |m, r| super::graph::export(m, r.body()?),
        request: of::<graph::ExportRequest>,
        result: of::<GraphExport>,
    },
    Operation {
        name: "purge_expired",
        run: |m, r| {
            r.empty()?;
            m.purge_expired().map(Value::from)
        },
        request: of::<EmptyRequest>,
        result: of::<usize>,
    },
    Operation {
        name: "flush",
        run: |m, r| {
            r.empty()?;
            nothing(m.flush())
        },
        request: of::<EmptyRequest>,
        result: null,
    },
    Operation {
        name: "reset",
        run: |m, r| {
            r.empty()?;
            nothing(m.reset())
        },
        request: of::<EmptyRequest>,
        result: null,
    },
    Operation {
        name: "plugin_register",
        run: |m, r| super::plugin_register(m, r.body()?, None),
        request: registration_schema,
        result: info_schema,
    },
    Operation {
        name: "plugin_list",
        run: |m, r| {
            r.empty()?;
            super::plugin_list(m)
        },
        request: of::<EmptyRequest>,
        result: infos_schema,
    },
    Operation {
        name: "plugin_load",
        run: |m, r| super::plugin_load(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: info_schema,
    },
    Operation {
        name: "plugin_unload",
        run: |m, r| super::plugin_unload(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: info_schema,
    },
    Operation {
        name: "plugin_reload",
        run: |m, r| super::plugin_reload(m, &r.only_id()?),
        request: of::<IdRequest>,
        result: info_schema,
    },
    Operation {
        name: "plugin_unregister",
        run: |m, r| nothing(super::plugin_unregister(m, &r.only_id()?)),
        request: of::<IdRequest>,
        result: null,
    },
];

/// The names of the operations [`call`] knows, in a stable order (adding, reading,
/// changing, upkeep, then the plugins).
pub const OPERATIONS: &[&str] = &NAMES;

const NAMES: [&str; TABLE.len()] = {
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

fn find(operation: &str) -> Result<&'static Operation> {
    TABLE.iter().find(|o| o.name == operation).ok_or_else(|| {
        Error::invalid(format!(
            "unknown operation {operation:?} (known: {})",
            OPERATIONS.join(", ")
        ))
    })
}

/// Runs `operation` with its JSON `request` (`null` stands for `{}`) and returns its JSON
/// result: what the operation's function in [`super`] returns, a number for `count`,
/// `delete_all` and `purge_expired`, `null` for an operation that returns nothing.
///
/// An unknown operation, a request that is not an object, a misspelt key or a value of the
/// wrong type is `InvalidInput` and changes nothing.
///
/// ```
/// use agent_mem::wire;
/// use serde_json::json;
///
/// let m = wire::open(None, &json!({"embedder": {"provider": "hashing", "dimensions": 16}}))?;
/// let added = wire::call(&m, "add", &json!({"content": "likes tea", "user_id": "u"}))?;
/// let record = wire::call(&m, "get", &json!({"id": added["id"]}))?;
/// assert_eq!(record["content"], "likes tea");
/// assert_eq!(wire::call(&m, "count", &json!({"user_id": "u"}))?, 1);
/// let e = wire::call(&m, "frobnicate", &json!({})).unwrap_err();
/// assert!(e.message().contains("frobnicate"));
/// # Ok::<(), agent_mem::Error>(())
/// ```
pub fn call(memory: &Memory, operation: &str, request: &Value) -> Result<Value> {
    call_with(memory, operation, request.clone(), Embeddings::None)
}

/// [`call`] with the caller's embeddings given natively (see [`Embeddings`]); an operation
/// that takes none refuses them.
pub fn call_with(
    memory: &Memory,
    operation: &str,
    request: Value,
    embeddings: Embeddings,
) -> Result<Value> {
    let op = find(operation)?;
    let mut request = Request {
        op: op.name,
        body: request,
        embeddings,
        on_text: None,
    };
    (op.run)(memory, &mut request)
}

/// [`call`] for an operation that streams its answer (`chat`): each piece of text goes to
/// `on_text` as it arrives, which returns `false` to stop the operation (it then fails with
/// `Cancelled`). An operation that does not stream never calls it.
///
/// ```no_run
/// use agent_mem::wire;
/// use serde_json::json;
///
/// # fn main() -> agent_mem::Result<()> {
/// let m = wire::open(Some("memories.db"), &json!({"llm": {"provider": "ollama"}}))?;
/// let reply = wire::call_streaming(&m, "chat", json!({"messages": "Hi!", "user_id": "u"}),
///     &mut |piece| { print!("{piece}"); true })?;
/// println!("\ncited: {}", reply["citations"]);
/// # Ok(()) }
/// ```
pub fn call_streaming(
    memory: &Memory,
    operation: &str,
    request: Value,
    on_text: OnText<'_>,
) -> Result<Value> {
    let op = find(operation)?;
    let mut request = Request {
        op: op.name,
        body: request,
        embeddings: Embeddings::None,
        on_text: Some(on_text),
    };
    (op.run)(memory, &mut request)
}

/// [`call_streaming`] on JSON text: the result's JSON text.
pub fn call_text_streaming(
    memory: &Memory,
    operation: &str,
    request: &str,
    on_text: OnText<'_>,
) -> Result<String> {
    let op = find(operation)?;
    let request = super::parse(request, &format!("{} request", op.name))?;
    Ok(call_streaming(memory, op.name, request, on_text)?.to_string())
}

/// [`call`] on JSON text, for surfaces that speak text (C): the result's JSON text.
pub fn call_text(memory: &Memory, operation: &str, request: &str) -> Result<String> {
    call_text_with(memory, operation, request, Embeddings::None)
}

/// [`call_with`] on JSON text (Node): the result's JSON text. The operation is looked up
/// before the text is read, so an unknown one is named even when the text is not JSON.
pub fn call_text_with(
    memory: &Memory,
    operation: &str,
    request: &str,
    embeddings: Embeddings,
) -> Result<String> {
    let op = find(operation)?;
    let request = super::parse(request, &format!("{} request", op.name))?;
    Ok(call_with(memory, op.name, request, embeddings)?.to_string())
}
