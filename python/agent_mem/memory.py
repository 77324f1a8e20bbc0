"""The native API: :class:`Memory` (blocking) and :class:`AsyncMemory` (asyncio).

Results are plain JSON-compatible dicts and lists, the same shapes as the C ABI's JSON
(``core/src/wire/``); the ``TypedDict`` classes below only describe them for type checkers.
Every call goes to the Rust core in one step with the GIL released; the core validates
everything, so a bad argument raises the same error code in every language.

With a chat model configured (``Memory(llm={...})``), :meth:`Memory.add_messages` turns a
conversation into memories: facts are extracted and reconciled with what is stored (ADD,
UPDATE, DELETE or NONE), as mem0 does, and :meth:`Memory.chat` answers a conversation with
the memories that bear on it and remembers the exchange (:meth:`Memory.chat_stream` streams
the answer). The model's HTTP calls are made by the core too.
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar, Union, cast, overload

from . import _native
from .chat import AsyncChatStream, ChatStream

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

T = TypeVar("T")

__all__ = [
    "UNSET",
    "AddResult",
    "AsyncChatStream",
    "AsyncGraph",
    "AsyncMemory",
    "ChatReply",
    "ChatStream",
    "Citation",
    "CopyReport",
    "Entity",
    "EntityDetail",
    "Graph",
    "HistoryEntry",
    "ListPage",
    "Memory",
    "MemoryEvent",
    "MemoryRecord",
    "MemoryUsed",
    "Message",
    "Neighbor",
    "PluginInfo",
    "PluginLimits",
    "PluginLogEntry",
    "PluginStats",
    "Relation",
    "RelationAdded",
    "RememberError",
    "Remembered",
    "SearchHit",
]

SearchMode = Literal["hybrid", "vector", "keyword", "phrase", "fuzzy"]
Kind = Literal[
    "episodic", "semantic", "procedural", "working", "contextual", "knowledge", "resource", "core"
]
ListOrder = Literal["created_desc", "created_asc", "updated_desc", "updated_asc"]
#: A time: an RFC 3339 string, a date string (``"2025-12-31"``), a ``datetime`` (a naive
#: one is taken as UTC) or a ``date``.
Time = Union[str, _dt.datetime, _dt.date]
#: Where a store lives: a file (str or path), ``":memory:"``, a ``postgres://`` URL or a libpq
#: ``key=value`` connection string (str).
PathLike = Union[str, "os.PathLike[str]"]


class AddResult(TypedDict):
    """What ``add`` returns: the id, and ``added: False`` when an identical memory (same
    scope, same content) was already stored and is returned instead."""

    id: str
    added: bool


class _RecordFields(TypedDict):
    id: str
    content: str
    hash: str
    kind: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    version: int
    valid_from_tx: str


class MemoryRecord(_RecordFields, total=False):
    """A stored memory (one version of it: ``version`` counts from 1, and the version was
    the current one from ``valid_from_tx`` to ``valid_to_tx``, left out while it still is).
    ``valid_from``/``valid_to``: when the fact held; ``superseded_by``: the memory that
    replaced it. Absent scope fields, expiry and times are left out."""

    user_id: str
    agent_id: str
    run_id: str
    org_id: str
    expires_at: str
    valid_to_tx: str
    valid_from: str
    valid_to: str
    superseded_by: str


class _HitFields(_RecordFields):
    score: float
    explain: dict[str, Any]


class SearchHit(_HitFields, total=False):
    """A search hit: a record plus ``score`` (the ranking score), ``similarity`` (cosine,
    when the query was embedded) and ``explain`` (each engine's rank and score; only with
    ``explain=True``)."""

    user_id: str
    agent_id: str
    run_id: str
    org_id: str
    expires_at: str
    valid_to_tx: str
    valid_from: str
    valid_to: str
    superseded_by: str
    similarity: float


# --------------------------------------------------------------------------- graph types


class _EntityFields(TypedDict):
    id: str
    name: str
    type: str
    aliases: list[str]
    created_at: str
    updated_at: str


class Entity(_EntityFields, total=False):
    """An entity of the knowledge graph: known by its ``name`` and ``aliases`` within one
    scope (``user_id``/``agent_id``/``run_id``/``org_id``, absent for none); ``type`` is
    ``person``, ``place``, ``organisation``, ``thing``, ``event``, ``concept`` or your own
    word."""

    summary: str
    user_id: str
    agent_id: str
    run_id: str
    org_id: str


class _RelationFields(TypedDict):
    id: str
    subject: str
    subject_name: str
    predicate: str
    object_name: str
    literal: bool
    confidence: float
    sources: list[str]
    created_at: str


class Relation(_RelationFields, total=False):
    """``subject —predicate→ object``: ``object`` is the object entity's id (absent for a
    literal value, then ``literal`` is true and ``object_name`` holds the value);
    ``valid_from``/``valid_to`` when it held (no ``valid_to`` while it holds);
    ``closed_by`` the relation that replaced it on a functional predicate; ``sources`` the
    memories it came from."""

    object: str
    valid_from: str
    valid_to: str
    closed_by: str
    user_id: str
    agent_id: str
    run_id: str
    org_id: str


class RelationAdded(TypedDict):
    """What ``graph.add_relation`` did: the relation (the one already holding, with the new
    sources, when ``created`` is false) and the ids of the relations it closed."""

    relation: Relation
    created: bool
    closed: list[str]


class EntityDetail(TypedDict):
    """An entity and every relation touching it, ended ones included, oldest first."""

    entity: Entity
    relations: list[Relation]


class Neighbor(TypedDict):
    """An entity a walk reached: how many relations away, and the relation that reached
    it."""

    entity: Entity
    depth: int
    via: Relation


class EntityEvent(TypedDict):
    """A correction of an entity (``graph.entity_history``): ``event`` is ``merged`` (it
    absorbed the entity ``detail`` describes: ``id``, ``name``, ``type``, ``aliases``,
    ``summary``, the ``relations`` moved and those ``dropped``), ``merged_into`` (``detail``:
    ``into``), ``renamed`` (``from``, ``to``), ``split`` (``into``, the ``names`` and
    ``relations`` given to the new entity) or ``split_from`` (``from``)."""

    entity_id: str
    event: Literal["merged", "merged_into", "renamed", "split", "split_from"]
    detail: dict[str, Any]
    created_at: str


class Split(TypedDict):
    """What ``graph.split_entity`` did: the entity split and the new one, each with its
    relations."""

    entity: EntityDetail
    split_off: EntityDetail


#: An end of a relation: a name (the entity of the scope answering to it, or a new one),
#: ``{"name": ..., "type": ...}`` (the type is used for a new entity) or ``{"id": ...}``.
EntityRef = Union[str, Mapping[str, str]]
#: An entity that comes with a memory or an import: a name, or ``{"name", "type"?,
#: "aliases"?, "summary"?}`` (found or created in the call's scope).
EntityInput = Union[str, Mapping[str, Any]]
#: A relation that comes with a memory: ``{"subject", "predicate", "object" | "value",
#: "valid_from"?, "valid_to"?, "confidence"?, "sources"?}``, ends as :data:`EntityRef`; in
#: the memory's scope, sourced from it.
RelationInput = Mapping[str, Any]
#: A triple to import: ``{"subject", "predicate", "object" | "value", "subject_type"?,
#: "object_type"?, "valid_from"?, "valid_to"?, "confidence"?, "sources"?}``, ends as names
#: or ``{"id"}`` / ``{"name", "type"?}``.
TripleInput = Mapping[str, Any]
#: The formats of ``graph.export``.
ExportFormat = Literal["json", "graphml", "dot"]


class ImportReport(TypedDict):
    """What ``graph.import_triples`` did: relations added, relations already held (they
    gained the triples' sources), entities created, and the ids of the relations a
    functional predicate's new object closed."""

    relations_created: int
    relations_held: int
    entities_created: int
    closed: list[str]


class GraphExport(TypedDict):
    """A scope's graph exported: ``content`` is a document ``{"entities", "triples"}`` for
    ``"json"`` (``graph.import_triples(**content)`` takes it back) and text for
    ``"graphml"`` and ``"dot"``."""

    format: ExportFormat
    content: Any


#: Which way a walk follows relations.
Direction = Literal["out", "in", "both"]


class Pruned(TypedDict):
    """What ``prune_versions`` removed."""

    versions: int


class Superseded(TypedDict):
    """What ``supersede`` did: the new memory, the old one as it now stands (closed,
    ``superseded_by`` the new one) and the change id (for ``undo``)."""

    memory: MemoryRecord
    superseded: MemoryRecord
    change_id: str


class _UndoneFields(TypedDict):
    change_id: str
    restored: list[MemoryRecord]
    removed: list[str]


class Undone(_UndoneFields, total=False):
    """What ``undo`` and ``revert`` did: this change's id (undo it to redo), the change it
    undid (``undo`` only), the memories restored as they now stand, the ids removed."""

    undid: str


class _HistoryFields(TypedDict):
    id: str
    memory_id: str
    event: str
    old_content: str | None
    new_content: str | None
    is_deleted: bool
    actor: str
    created_at: str
    change_id: str


class HistoryEntry(_HistoryFields, total=False):
    """One change of a memory: ``event`` is ``ADD``, ``UPDATE`` or ``DELETE``;
    ``change_id`` names the change for ``undo``; ``undone_by`` the change that undid it."""

    undone_by: str


class CopyReport(TypedDict):
    """What :meth:`Memory.copy_into` copied: memories, history rows (deleted memories'
    included), past versions, graph entities and relations."""

    memories: int
    history: int
    versions: int
    entities: int
    relations: int


class _EventFields(TypedDict):
    id: str
    memory: str
    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]


class MemoryEvent(_EventFields, total=False):
    """What :meth:`Memory.add_messages` did to one memory (mem0's shape): ``ADD`` (created),
    ``UPDATE`` (rewritten; ``previous_memory`` is the text before), ``DELETE`` (``memory`` is
    the text it had) or ``NONE`` (the fact was stored already, in memory ``id``). A message
    stored as it was (no inference) also has its ``role``, and its ``name`` as ``actor_id``
    when it has one (the memory's metadata keeps both under those keys)."""

    previous_memory: str
    role: str
    actor_id: str
    change_id: str
    superseded_by: str
    supersedes: str


class _MessageFields(TypedDict):
    role: Literal["user", "assistant", "system", "tool"]
    content: str


class Message(_MessageFields, total=False):
    """One message of a conversation for :meth:`Memory.add_messages`: ``role`` is ``user``,
    ``assistant``, ``system`` (context for the model, never stored) or ``tool``; ``name``
    who said it (kept as ``actor_id`` in the metadata of raw memories); ``observed_at`` when
    it was said (RFC 3339 or a date)."""

    name: str
    observed_at: str


# --------------------------------------------------------------------------- chat types

#: Why a memory was listed for the model: it is one of the agent's ``procedural`` memories,
#: one of the session's latest turns (``working``), or a hit of the ``search`` with the
#: user's message.
RecallSource = Literal["procedural", "working", "search"]
#: When :meth:`Memory.chat` remembers what the exchange taught: ``inline`` (before it
#: returns, the default), ``background`` (on a thread of its own; see
#: :meth:`Memory.remembered`) or ``off``.
RememberMode = Literal["inline", "background", "off"]


class _MemoryUsedFields(TypedDict):
    ref: int
    id: str
    content: str
    kind: str
    source: RecallSource


class MemoryUsed(_MemoryUsedFields, total=False):
    """A memory the chat model was given, under its number ``ref`` in the prompt (``[1]``,
    from 1): its ``id``, its ``content`` as the model saw it, its ``kind``, why it was listed
    (``source``) and, for a search hit, its ``score``."""

    score: float


class Citation(TypedDict):
    """A memory the answer cites: the number it wrote (``[ref]``) and the memory's ``id``."""

    ref: int
    id: str


class RememberError(TypedDict):
    """Why remembering an exchange failed: the error's code name (``"Llm"``) and message."""

    code: str
    message: str


class _RememberedFields(TypedDict):
    status: Literal["done", "running", "failed", "off"]
    events: list[MemoryEvent]


class Remembered(_RememberedFields, total=False):
    """How remembering a chat's exchange went: ``done`` (its ``events``, in
    :meth:`Memory.add_messages`'s shape), ``running`` in the background (pass ``handle``
    to :meth:`Memory.remembered`), ``failed`` (the answer stands, nothing was stored by
    inference; ``error`` says why) or ``off``."""

    handle: str
    error: RememberError


class _ChatReplyFields(TypedDict):
    answer: str
    memories_used: list[MemoryUsed]
    citations: list[Citation]
    remember: Remembered
    model: str


class ChatReply(_ChatReplyFields, total=False):
    """What :meth:`Memory.chat` answered: the model's ``answer`` as it wrote it (citations
    ``[n]`` included), the memories it was given (``memories_used``, in the order of the
    prompt), the ones it cites (``citations``, in the order first cited; a number that was
    not in the prompt is dropped), the turn kept as working memory (``working_memory_id``,
    absent when ``session_window`` is 0), how remembering went (``remember``) and the
    ``model`` that answered (``"openai:gpt-4.1-nano"``)."""

    working_memory_id: str


class _ListPageFields(TypedDict):
    items: list[MemoryRecord]
    next_cursor: str | None


class ListPage(_ListPageFields, total=False):
    """One page of ``list``: pass ``next_cursor`` back as ``cursor`` for the next one. With
    ``with_total=True``, ``total`` is how many memories the selection matches in all (from
    the same snapshot as the page)."""

    total: int


#: What a plugin may do (each host function checks one).
Capability = Literal[
    "memory_read", "memory_write", "search", "llm", "network", "filesystem", "logging", "config"
]
#: ``hook``: runs at the hook points it exports; ``function``: only called directly.
PluginKind = Literal["hook", "function"]
#: What a failing hook does to the operation: ``fail`` it, or ``skip`` the plugin.
OnError = Literal["fail", "skip"]


class PluginLimits(TypedDict, total=False):
    """Per-call limits of a plugin: ``memory_pages`` (64 KiB WebAssembly pages, default 256),
    ``timeout_ms`` (wall clock, default 1000) and ``fuel`` (an instruction budget, default
    None: none). Give any of them at registration; an info has all three."""

    memory_pages: int
    timeout_ms: int
    fuel: int | None


class PluginStats(TypedDict):
    """A plugin's counters since registration: ``calls`` (hooks and direct calls),
    ``failures``, ``denied`` (host calls refused for a missing capability), ``loads`` (times
    compiled) and ``reloads`` (times its code was replaced)."""

    calls: int
    failures: int
    denied: int
    loads: int
    reloads: int


class PluginLogEntry(TypedDict):
    """One line of a plugin's log (its ``am_log`` messages, denied calls, failures,
    reloads): ``time`` in RFC 3339, UTC."""

    time: str
    level: Literal["info", "warn", "error"]
    message: str


class _PluginInfoFields(TypedDict):
    id: str
    name: str
    kind: PluginKind
    capabilities: list[Capability]
    hooks: list[Literal["on_add", "before_search", "after_search"]]
    loaded: bool
    limits: PluginLimits
    on_error: OnError
    stats: PluginStats
    log: list[PluginLogEntry]


class PluginInfo(_PluginInfoFields, total=False):
    """A registered plugin: its manifest (``name`` defaults to the id), the ``hooks`` it
    exports, whether it is ``loaded`` (compiled, in the cache), its ``stats``, its
    ``last_error`` and its most recent ``log`` lines. ``version``, ``path`` (for a plugin
    registered from a file) and ``last_error`` are absent when unset."""

    version: str
    path: str
    last_error: str


class _Unset(enum.Enum):
    UNSET = "UNSET"


#: The default of ``update(expires_at=...)``: leave the expiry as it is (``None`` removes it).
UNSET = _Unset.UNSET

_AddResults = list[AddResult]
_Events = list[MemoryEvent]
#: What ``add_messages`` takes: one user message as a str, a message, or a list of them.
Messages = Union[str, Message, Mapping[str, Any], Sequence[Union[Message, Mapping[str, Any]]]]
_Hits = list[SearchHit]
_History = list[HistoryEntry]
_Records = list[MemoryRecord]
_Times = dict[str, Any]
_Vector = Sequence[float]
_Vectors = Sequence[Sequence[float]]
_Plugins = list[PluginInfo]


# --------------------------------------------------------------------------- arguments


def _time(value: Time) -> str:
    """A time as the core reads it (RFC 3339 or a date)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def _opt_time(value: Time | None) -> str | None:
    return None if value is None else _time(value)


def _clean(**fields: Any) -> dict[str, Any]:
    """A request without the arguments left at None (the core's default)."""
    return {k: v for k, v in fields.items() if v is not None}


def _path(path: PathLike | None) -> str | None:
    return None if path is None else os.fspath(path)


def _options(
    embedder: str | Mapping[str, Any] | None,
    persist_index: bool | None,
    index: Mapping[str, Any] | None,
    search: Mapping[str, Any] | None,
    llm: Mapping[str, Any] | None,
    prompts: Mapping[str, str] | None,
    plugins: Mapping[str, Any] | None,
    postgres: Mapping[str, Any] | None,
    history_retention: Mapping[str, Any] | None,
    graph: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return _clean(
        embedder=embedder,
        persist_index=persist_index,
        index=index,
        search=search,
        llm=llm,
        prompts=prompts,
        plugins=plugins,
        postgres=postgres,
        history_retention=history_retention,
        graph=graph,
    )


def _target(target: Memory | AsyncMemory) -> _native.NativeMemory:
    """The native store of ``copy_into``'s target (either class will do)."""
    if not isinstance(target, _Store):
        raise TypeError(
            f"target must be an agent_mem Memory or AsyncMemory, not {type(target).__name__}"
        )
    return target._native


def _vector(vector: _Vector | None) -> list[float] | None:
    return None if vector is None else [float(x) for x in vector]


def _vectors(vectors: _Vectors | None) -> list[list[float]] | None:
    return None if vectors is None else [[float(x) for x in v] for v in vectors]


def _batch_item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key in ("expires_at", "valid_from", "valid_to"):
        if isinstance(out.get(key), (_dt.date, _dt.datetime)):
            out[key] = _time(out[key])
    if out.get("entities") is not None:
        out["entities"] = _entity_inputs(out["entities"], "entities")
    if out.get("relations") is not None:
        out["relations"] = _relation_inputs(out["relations"], "relations", names=False)
    return out


def _add_args(
    content: str | Sequence[str],
    scope: dict[str, Any],
    vector: _Vector | None,
    vectors: _Vectors | None,
    graph: dict[str, Any],
) -> tuple[bool, dict[str, Any], Any]:
    """(batch?, request, vector or vectors) for add; ``graph``: its entities and relations,
    which go with one memory only."""
    if isinstance(content, str):
        if vectors is not None:
            raise TypeError("add(str) takes vector=, not vectors=")
        return False, {"content": content, **scope, **graph}, _vector(vector)
    if not isinstance(content, Sequence):
        raise TypeError(f"content must be a str or a list of str, not {type(content).__name__}")
    if vector is not None:
        raise TypeError("add(list) takes vectors= (one per memory), not vector=")
    if graph:
        raise TypeError(
            "entities= and relations= go with one memory: give each item its own in add_batch"
        )
    items = [{"content": c, **scope} for c in content]
    return True, {"memories": items}, _vectors(vectors)


def _message_list(messages: Any) -> Any:
    """Messages as JSON values (mappings as dicts); the core checks their shape."""
    if isinstance(messages, Mapping):
        return dict(messages)
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return [dict(m) if isinstance(m, Mapping) else m for m in messages]
    return messages


def _messages_request(
    messages: Messages,
    scope: dict[str, Any],
    infer: bool,
    prompt: str | None,
) -> dict[str, Any]:
    return {"messages": _message_list(messages), "infer": infer, **_clean(prompt=prompt), **scope}


def _search_request(
    query: str,
    scope: dict[str, Any],
    filters: Mapping[str, Any] | None,
    limit: int | None,
    threshold: float | None,
    mode: SearchMode | None,
    include_global: bool | None,
    include_expired: bool | None,
    weights: Mapping[str, float | str] | None,
    times: _Times,
) -> dict[str, Any]:
    return _clean(
        **times,
        query=query,
        filters=filters,
        limit=limit,
        threshold=threshold,
        mode=mode,
        include_global=include_global,
        include_expired=include_expired,
        weights=weights,
        **scope,
    )


def _hits(raw: Any, explain: bool) -> _Hits:
    hits = cast(_Hits, raw)
    if not explain:
        for hit in hits:
            hit.pop("explain", None)  # type: ignore[misc]
    return hits


def _update_request(
    content: str | None,
    metadata: Mapping[str, Any] | None,
    merge_metadata: bool | None,
    kind: Kind | str | None,
    times: Mapping[str, Time | _Unset | None],
) -> dict[str, Any]:
    """The update request; ``times`` are expiry and valid time, left out when ``UNSET``
    (``None`` clears them)."""
    request = _clean(content=content, metadata=metadata, merge_metadata=merge_metadata, kind=kind)
    for key, value in times.items():
        if not isinstance(value, _Unset):
            request[key] = _opt_time(value)
    return request


def _list_request(
    scope: dict[str, Any],
    filters: Mapping[str, Any] | None,
    include_global: bool | None,
    include_expired: bool | None,
    order: ListOrder | None,
    limit: int | None,
    offset: int | None,
    cursor: str | None,
    with_total: bool | None,
    times: _Times,
) -> dict[str, Any]:
    return _clean(
        **times,
        filters=filters,
        include_global=include_global,
        include_expired=include_expired,
        order=order,
        limit=limit,
        offset=offset,
        cursor=cursor,
        with_total=with_total,
        **scope,
    )


def _times(as_of: Time | None, valid_at: Time | None, include_superseded: bool | None) -> _Times:
    """The request fields that place a read in time."""
    return _clean(
        as_of=_opt_time(as_of),
        valid_at=_opt_time(valid_at),
        include_superseded=include_superseded,
    )


def _scope(
    user_id: str | None, agent_id: str | None, run_id: str | None, org_id: str | None
) -> dict[str, Any]:
    return _clean(user_id=user_id, agent_id=agent_id, run_id=run_id, org_id=org_id)


def _plugin_args(
    id: str,
    path: PathLike | None,
    wasm: bytes | str | None,
    name: str | None,
    version: str | None,
    kind: PluginKind | str,
    capabilities: Sequence[Capability | str],
    config: Mapping[str, str] | None,
    allowed_hosts: Sequence[str] | None,
    allowed_paths: Mapping[str, str] | None,
    limits: PluginLimits | None,
    on_error: OnError | str,
) -> tuple[dict[str, Any], bytes | None]:
    """(manifest, module bytes) for register_plugin; the core checks them."""
    for arg, value in (("capabilities", capabilities), ("allowed_hosts", allowed_hosts)):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{arg} must be a list of str, not a single {type(value).__name__}")
    manifest = _clean(
        id=id,
        name=name,
        version=version,
        kind=kind,
        capabilities=list(capabilities),
        config=None if config is None else dict(config),
        allowed_hosts=None if allowed_hosts is None else list(allowed_hosts),
        allowed_paths=None
        if allowed_paths is None
        else {os.fspath(k): v for k, v in allowed_paths.items()},
        limits=None if limits is None else dict(limits),
        on_error=on_error,
        path=_path(path),
    )
    return manifest, None if wasm is None else _bytes(wasm)


def _bytes(data: bytes | str) -> bytes:
    """Text as UTF-8; bytes (or a bytearray, a memoryview) as bytes."""
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _id(name: str, value: str) -> dict[str, Any]:
    """An id request; a non-str id is a TypeError, as for every other argument type."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return {"id": value}


def _new_fields(
    kind: Kind | str | None,
    metadata: Mapping[str, Any] | None,
    expires_at: Time | None,
    valid_from: Time | None = None,
    valid_to: Time | None = None,
) -> dict[str, Any]:
    return _clean(
        kind=kind,
        metadata=metadata,
        expires_at=_opt_time(expires_at),
        valid_from=_opt_time(valid_from),
        valid_to=_opt_time(valid_to),
    )


# --------------------------------------------------------------------------- operations
#
# Each method is written once, as a function that says which core call it makes (an
# operation of the one dispatch and its request, or a native method of its own for what is
# not JSON) and how its result is shaped; :class:`Memory` runs that call blocking, and
# :class:`AsyncMemory` awaits it on a Rust worker thread.


def _same(raw: Any) -> Any:
    return raw


class _Call(Generic[T]):
    """One core call of a method and the shaping of its result."""

    __slots__ = ("args", "method", "result")

    def __init__(
        self,
        op: str,
        request: Any = None,
        *,
        vector: list[float] | None = None,
        vectors: list[list[float]] | None = None,
        method: str = "call",
        args: tuple[Any, ...] | None = None,
        result: Callable[[Any], Any] = _same,
    ) -> None:
        # ``call(op, request, vector, vectors)``: the dispatch; any other native method
        # (plugin bytes, a store handle) takes its own arguments.
        self.method = method
        self.args = (op, request, vector, vectors) if args is None else args
        self.result = result

    def run(self, native: _native.NativeMemory) -> T:
        return cast(T, self.result(getattr(native, self.method)(*self.args)))

    async def run_async(self, native: _native.NativeMemory) -> T:
        raw = await getattr(native, self.method + "_async")(*self.args)
        return cast(T, self.result(raw))


def _method(plan: Callable[..., Any], owner: str, method: Callable[..., Any]) -> Any:
    """``method`` dressed as ``owner``'s method of the same name as ``plan``."""
    functools.update_wrapper(method, plan)
    method.__name__ = plan.__name__.lstrip("_")
    method.__qualname__ = f"{owner}.{method.__name__}"
    return method


def _blocking(plan: Callable[P, _Call[T]]) -> Callable[Concatenate[Memory, P], T]:
    """The :class:`Memory` method of a plan: the core call runs here, the GIL released."""

    def method(self: Memory, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return plan(*args, **kwargs).run(self._native)

    return cast("Callable[Concatenate[Memory, P], T]", _method(plan, "Memory", method))


def _awaiting(
    plan: Callable[P, _Call[T]],
) -> Callable[Concatenate[AsyncMemory, P], Coroutine[Any, Any, T]]:
    """The :class:`AsyncMemory` method of a plan: a coroutine awaiting the core call on a
    Rust worker thread."""

    async def method(self: AsyncMemory, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await plan(*args, **kwargs).run_async(self._native)

    return cast(
        "Callable[Concatenate[AsyncMemory, P], Coroutine[Any, Any, T]]",
        _method(plan, "AsyncMemory", method),
    )


def _add(
    content: str | Sequence[str],
    user_id: str | None,
    agent_id: str | None,
    run_id: str | None,
    org_id: str | None,
    kind: Kind | str | None,
    metadata: Mapping[str, Any] | None,
    expires_at: Time | None,
    valid_from: Time | None,
    valid_to: Time | None,
    vector: _Vector | None,
    vectors: _Vectors | None,
    entities: Sequence[EntityInput] | None = None,
    relations: Sequence[RelationInput] | None = None,
) -> _Call[AddResult | _AddResults]:
    scope = {
        **_scope(user_id, agent_id, run_id, org_id),
        **_new_fields(kind, metadata, expires_at, valid_from, valid_to),
    }
    graph: dict[str, Any] = {}
    if entities is not None:
        graph["entities"] = _entity_inputs(entities, "entities")
    if relations is not None:
        graph["relations"] = _relation_inputs(relations, "relations", names=False)
    batch, request, vec = _add_args(content, scope, vector, vectors, graph)
    if batch:
        return _Call("add_batch", request, vectors=vec)
    return _Call("add", request, vector=vec)


def _add_batch(
    memories: Sequence[Mapping[str, Any]], *, vectors: _Vectors | None = None
) -> _Call[_AddResults]:
    """Adds several memories in one transaction, all or none. Each item is an ``add``
    request: ``{"content", "user_id", "agent_id", "run_id", "org_id", "kind",
    "metadata", "expires_at", "valid_from", "valid_to", "entities", "relations"}``.
    Returns ``[{"id", "added"}]`` in order."""
    request = {"memories": [_batch_item(m) for m in memories]}
    return _Call("add_batch", request, vectors=_vectors(vectors))


def _add_messages(
    messages: Messages,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    kind: Kind | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    expires_at: Time | None = None,
    infer: bool = True,
    prompt: str | None = None,
    observed_at: Time | None = None,
    supersede: bool | None = None,
) -> _Call[_Events]:
    """Remembers a conversation: a str (one user message), a message ``{"role",
    "content", "name"?}`` or a list of them, oldest first.

    With a chat model (the ``llm`` option) and ``infer`` on, one call extracts facts and,
    when similar memories are stored, a second decides for each fact whether to ADD it,
    UPDATE or DELETE a stored memory, or do nothing (NONE); the changes are written in one
    transaction, their history naming the model (``"llm:openai:gpt-4.1-nano"``). A failed
    or unreadable model answer raises ``LlmError`` and writes nothing. Inference needs a
    scope id; scope, kind, metadata and expiry come from this call, never from the model.
    ``kind="procedural"`` with an ``agent_id`` summarises the run into one procedural
    memory instead. ``prompt`` replaces the extraction (or summary) prompt for this call.

    Without a model, or with ``infer=False``, each non-system message is stored as given
    (its ``role``, and ``name`` as ``actor_id``, in the metadata; ``NONE`` for an exact
    duplicate). Returns the events, ``[{"id", "memory", "event", "previous_memory"?,
    "change_id"?, "superseded_by"?, "supersedes"?}]``.

    ``observed_at``: when the conversation took place (default now): the model resolves
    relative dates against it and the memories keep it as metadata ``observed_at``. Facts
    the conversation dates get ``valid_from``/``valid_to``. ``supersede`` (default True):
    a memory the model replaces is kept, closed and linked to its successor
    (``superseded_by``), rather than rewritten or deleted; each event's ``change_id``
    undoes it.
    """
    scope = {
        **_scope(user_id, agent_id, run_id, org_id),
        **_new_fields(kind, metadata, expires_at),
        **_clean(observed_at=_opt_time(observed_at), supersede=supersede),
    }
    return _Call("add_messages", _messages_request(messages, scope, infer, prompt))


def _get(memory_id: str, *, as_of: Time | None = None) -> _Call[MemoryRecord]:
    """The memory with this id (also when expired); ``NotFoundError`` if none. With
    ``as_of``, the version that was current at that moment (``NotFoundError`` if the memory
    did not exist then)."""
    return _Call("get", {**_id("memory_id", memory_id), **_clean(as_of=_opt_time(as_of))})


def _versions(memory_id: str) -> _Call[_Records]:
    """Every kept version of the memory, oldest first, each with the interval during which
    it was the current one (``valid_from_tx``, ``valid_to_tx``)."""
    return _Call("versions", _id("memory_id", memory_id))


def _supersede(
    old_id: str,
    new_content: str,
    *,
    kind: Kind | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    valid_from: Time | None = None,
    expires_at: Time | None = None,
) -> _Call[Superseded]:
    """Replaces the memory's fact with a new memory (same scope; kind and metadata the old
    one's unless given) without losing the old one: its valid time ends where the new one's
    begins (``valid_from``, default now), ``superseded_by`` names the new memory, and reads
    hide it unless they include superseded memories. ``{"memory", "superseded",
    "change_id"}``; :meth:`undo` with the change id reverts both."""
    if not isinstance(new_content, str):
        raise TypeError(f"new_content must be a str, not {type(new_content).__name__}")
    fields = _new_fields(kind, metadata, expires_at, valid_from)
    return _Call("supersede", {**_id("old_id", old_id), "content": new_content, **fields})


def _undo(change_id: str, *, force: bool = False) -> _Call[Undone]:
    """Undoes a change (a history row's ``change_id``: an add, update, delete, supersede,
    undo or revert) as a new change; refused when a memory it touched changed since,
    unless ``force=True``. ``{"change_id", "undid", "restored", "removed"}``."""
    if not isinstance(change_id, str):
        raise TypeError(f"change_id must be a str, not {type(change_id).__name__}")
    return _Call("undo", {"change_id": change_id, "force": bool(force)})


def _revert(memory_id: str, to_version: int) -> _Call[Undone]:
    """Restores the memory to one of its kept versions, as a new version (a deleted memory
    comes back with its id). ``{"change_id", "restored", "removed"}``."""
    return _Call("revert", {**_id("memory_id", memory_id), "to_version": to_version})


def _list(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    include_global: bool | None = None,
    include_expired: bool | None = None,
    order: ListOrder | None = None,
    limit: int | None = None,
    offset: int | None = None,
    cursor: str | None = None,
    with_total: bool | None = None,
    as_of: Time | None = None,
    valid_at: Time | None = None,
    include_superseded: bool | None = None,
) -> _Call[ListPage]:
    """One page of memories (``limit`` 1 to 10,000, default 100), newest first unless
    ``order`` says otherwise. ``{"items": [...], "next_cursor": str | None}``;
    ``with_total=True`` adds ``"total"``, how many memories the selection (scope, filters,
    ``include_global``, ``include_expired``) matches in all, counted in the page's own read
    snapshot. ``as_of`` lists the store as it stood at that moment, ``valid_at`` only
    memories valid then, ``include_superseded`` superseded memories too."""
    request = _list_request(
        _scope(user_id, agent_id, run_id, org_id),
        filters,
        include_global,
        include_expired,
        order,
        limit,
        offset,
        cursor,
        with_total,
        _times(as_of, valid_at, include_superseded),
    )
    return _Call("list", request)


def _count(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    as_of: Time | None = None,
    valid_at: Time | None = None,
    include_superseded: bool | None = None,
) -> _Call[int]:
    """How many memories (not expired, not superseded) the scope and filters select; with
    ``as_of``, how many they selected at that moment; with ``valid_at``, only those valid
    then."""
    scope = _scope(user_id, agent_id, run_id, org_id)
    times = _times(as_of, valid_at, include_superseded)
    return _Call("count", _clean(filters=filters, **times, **scope))


def _history(memory_id: str) -> _Call[_History]:
    """The memory's changes, oldest first (kept after it is deleted)."""
    return _Call("history", _id("memory_id", memory_id))


def _search(
    query: str = "",
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    limit: int | None = None,
    threshold: float | None = None,
    mode: SearchMode | None = None,
    include_global: bool | None = None,
    include_expired: bool | None = None,
    weights: Mapping[str, float | str] | None = None,
    explain: bool = False,
    vector: _Vector | None = None,
    as_of: Time | None = None,
    valid_at: Time | None = None,
    include_superseded: bool | None = None,
    time_aware: bool | None = None,
    now: Time | None = None,
) -> _Call[_Hits]:
    """Hits, best first. ``mode``: ``hybrid`` (default), ``vector``, ``keyword``,
    ``phrase`` or ``fuzzy``; ``threshold`` a minimum score (0..1 in every mode: the
    cosine similarity in vector mode); ``filters`` mem0-style; ``vector`` your own query
    embedding; ``weights`` ``{"vector", "keyword", "fuzzy", "context", "method", "rrf_k"}``;
    ``explain=True`` keeps each engine's rank and score in ``hit["explain"]``; ``as_of``
    searches the store as it stood at that moment (the versions current then);
    ``valid_at`` only memories valid at that moment (superseded ones included: their
    valid time decides); ``include_superseded=True`` superseded memories too;
    ``time_aware=True`` reads time words in the query ("last year", "in May 2023",
    "去年"…) relative to ``now`` (default: the clock) as a span the memories' valid time
    (else their stored time) must overlap."""
    request = _search_request(
        query,
        _scope(user_id, agent_id, run_id, org_id),
        filters,
        limit,
        threshold,
        mode,
        include_global,
        include_expired,
        weights,
        {
            **_times(as_of, valid_at, include_superseded),
            **_clean(time_aware=time_aware, now=_opt_time(now)),
        },
    )
    return _Call("search", request, vector=_vector(vector), result=lambda r: _hits(r, explain))


def _update(
    memory_id: str,
    *,
    content: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    merge_metadata: bool | None = None,
    kind: Kind | str | None = None,
    expires_at: Time | _Unset | None = UNSET,
    valid_from: Time | _Unset | None = UNSET,
    valid_to: Time | _Unset | None = UNSET,
    vector: _Vector | None = None,
) -> _Call[MemoryRecord]:
    """Changes a memory (new content is re-embedded, or takes ``vector``); ``metadata``
    replaces the whole object, or with ``merge_metadata=True`` is merged into it (shallow:
    its keys set, the others kept; read and written in one transaction, so concurrent
    merges never lose a key); ``expires_at=None`` removes the expiry, ``valid_from=None``
    or ``valid_to=None`` opens that end of the valid time. Returns the updated record (a
    new version)."""
    times = {"expires_at": expires_at, "valid_from": valid_from, "valid_to": valid_to}
    request = _update_request(content, metadata, merge_metadata, kind, times)
    request.update(_id("memory_id", memory_id))
    return _Call("update", request, vector=_vector(vector))


def _delete(memory_id: str) -> _Call[None]:
    """Deletes a memory (its history stays); ``NotFoundError`` if there is none."""
    return _Call("delete", _id("memory_id", memory_id))


def _delete_all(
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> _Call[int]:
    """Deletes what the scope and filters select (expired ones too); how many. Needs a
    scope or a filter: :meth:`reset` forgets everything."""
    request = _clean(filters=filters, **_scope(user_id, agent_id, run_id, org_id))
    return _Call("delete_all", request)


def _prune_versions() -> _Call[Pruned]:
    """Removes the past versions the store's ``history_retention`` option does not keep
    (``{"max_age_days": n, "keep_versions": n}``; none by default): ``{"versions": n}``."""
    return _Call("prune_versions", {})


def _purge_expired() -> _Call[int]:
    """Deletes every expired memory; how many."""
    return _Call("purge_expired")


def _reset() -> _Call[None]:
    """Forgets everything: memories, history, caches and indexes."""
    return _Call("reset")


def _flush() -> _Call[None]:
    """Saves the vector index now (``close`` does it too)."""
    return _Call("flush")


def _copy_into(target: Memory | AsyncMemory) -> _Call[CopyReport]:
    """Copies every memory (content, scope, kind, metadata, times, vector) and the whole
    history, deleted memories' included, into ``target``, which must be empty: a SQLite
    file into PostgreSQL and back, or between any two stores. Ids and times are kept.
    One transaction on the target: all of it or nothing. Returns ``{"memories",
    "history"}``, what was copied. ``AlreadyExistsError`` if the target holds anything;
    ``InvalidInputError`` if it is this same file, or its embedder has another model or
    dimension."""
    # A store handle is no JSON: a native method of its own.
    return _Call("copy_into", method="copy_into", args=(_target(target),))


def _register_plugin(
    id: str,
    *,
    path: PathLike | None = None,
    wasm: bytes | str | None = None,
    name: str | None = None,
    version: str | None = None,
    kind: PluginKind | str = "hook",
    capabilities: Sequence[Capability | str] = (),
    config: Mapping[str, str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
    allowed_paths: Mapping[str, str] | None = None,
    limits: PluginLimits | None = None,
    on_error: OnError | str = "fail",
) -> _Call[PluginInfo]:
    """Registers a WebAssembly plugin (run by Extism, sandboxed) under ``id`` (1 to 64
    characters from ``A-Z a-z 0-9 _ - .``, unique in the store).

    The code is either a file, ``path`` (``.wasm``, or ``.wat`` text; reloaded when the
    file changes), or ``wasm``: the module's bytes, or WebAssembly text as a str. Give
    exactly one.

    A ``kind="hook"`` plugin runs inside :meth:`add` and :meth:`search` through the
    exports it has, in registration order: ``on_add`` (rewrite or reject a memory before
    it is stored), ``before_search`` (rewrite the query, limit or filters) and
    ``after_search`` (reorder, rescore or drop hits). A ``kind="function"`` plugin only
    runs through :meth:`call_plugin`.

    ``capabilities`` are the only host functions it may call (``memory_read``,
    ``memory_write``, ``search``, ``llm``, ``network``, ``filesystem``, ``logging``,
    ``config``), always confined to the scope of the operation that called it;
    ``config`` its settings (needs ``config``), ``allowed_hosts`` the hosts it may reach
    (needs ``network``), ``allowed_paths`` host directory → guest path (needs
    ``filesystem``); ``limits`` per call (``memory_pages``, ``timeout_ms``, ``fuel``);
    ``on_error`` what a failing hook does: ``"fail"`` the operation, or ``"skip"`` the
    plugin.

    Returns the plugin's info. ``AlreadyExistsError`` for a taken id, ``PluginError`` for
    a module that does not compile, ``InvalidInputError`` for a bad manifest, ``IoError``
    for an unreadable file.
    """
    manifest, module = _plugin_args(
        id,
        path,
        wasm,
        name,
        version,
        kind,
        capabilities,
        config,
        allowed_hosts,
        allowed_paths,
        limits,
        on_error,
    )
    # The module's bytes are no JSON: a native method of its own.
    return _Call("plugin_register", method="register_plugin", args=(manifest, module))


def _plugins() -> _Call[_Plugins]:
    """Every registered plugin's info, in registration order."""
    return _Call("plugin_list")


def _unregister_plugin(id: str) -> _Call[None]:
    """Removes a plugin; ``NotFoundError`` if there is none with this id."""
    return _Call("plugin_unregister", _id("id", id))


def _load_plugin(id: str) -> _Call[PluginInfo]:
    """Compiles a plugin now (it is otherwise compiled on first use); its info."""
    return _Call("plugin_load", _id("id", id))


def _unload_plugin(id: str) -> _Call[PluginInfo]:
    """Drops a plugin's compiled code (it stays registered and is compiled again when
    next used); its info."""
    return _Call("plugin_unload", _id("id", id))


def _reload_plugin(id: str) -> _Call[PluginInfo]:
    """Compiles a plugin again from its source (its file, for one registered by path);
    its info."""
    return _Call("plugin_reload", _id("id", id))


def _call_plugin(
    id: str,
    function: str,
    input: bytes | str = b"",
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[bytes]:
    """Calls export ``function`` of plugin ``id`` with ``input`` (a str is sent as
    UTF-8) and returns its output bytes. The host functions it calls see only the scope
    given here (no scope: the global layer only). ``NotFoundError`` for an unknown plugin
    or export, ``PluginError`` when it fails (trap, timeout, limit),
    ``PermissionDeniedError`` when it calls a host function it was not granted."""
    scope = _scope(user_id, agent_id, run_id, org_id)
    # Bytes in and out: a native method of its own.
    return _Call("call_plugin", method="call_plugin", args=(id, function, _bytes(input), scope))


# --------------------------------------------------------------------------- chat plans


def _chat(
    messages: Messages,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    limit: int | None = None,
    threshold: float | None = None,
    filters: Mapping[str, Any] | None = None,
    mode: SearchMode | None = None,
    as_of: Time | None = None,
    include_global: bool | None = None,
    query_turns: int | None = None,
    session_window: int | None = None,
    working_ttl_seconds: int | None = None,
    max_memory_tokens: int | None = None,
    prompt: str | None = None,
    remember: RememberMode | None = None,
) -> _Call[ChatReply]:
    """Answers the last message of a conversation with the chat model (the ``llm``
    option), given the memories that bear on it, then keeps the turn and remembers what the
    exchange taught.

    ``messages``: a str (one user message), a message ``{"role", "content", "name"?,
    "observed_at"?}`` or a list of them, oldest first; the last one must be the user's
    (``system`` messages are passed to the model after the memory prompt). A scope id is
    required: long-term memories are recalled from the scope without its ``run_id`` (every
    session), working memory lives in the whole scope (the session).

    Recall: a search with the user's message (the last ``query_turns`` messages, default
    1), at most ``limit`` hits (default: the store's search limit), with ``threshold``,
    ``filters``, ``mode``, ``include_global`` and ``as_of`` as in :meth:`search`; the
    session's latest turns (``session_window`` working memories, default 6); the agent's
    procedural memories. They are listed in the system prompt under numbers, ``[1]``,
    ``[2]``…, as many as fit in ``max_memory_tokens`` (default 2,000). ``prompt`` replaces
    the system prompt for this call (the store's is the ``prompts`` option's ``chat``); it
    must contain ``{memories}``.

    Nothing is written before the model has answered in full. Then the turn is kept as a
    working memory of the scope, expiring after ``working_ttl_seconds`` (default one day;
    ``session_window=0`` keeps none), and the exchange goes through inference as in
    :meth:`add_messages`: ``remember="inline"`` (the default) before the call returns,
    ``"background"`` on a thread of its own (the reply's ``remember["handle"]`` is for
    :meth:`remembered`), ``"off"`` not at all.

    Returns ``{"answer", "memories_used", "citations", "working_memory_id"?, "remember",
    "model"}``: ``citations`` map the numbers the answer cites to memory ids. The GIL is
    released while the model is awaited. Errors: ``UnsupportedError`` without a chat model
    (before any work), ``InvalidInputError`` for a bad request, ``LlmError`` when the model
    fails; none stores anything. When remembering fails, the answer stands and
    ``remember["status"]`` is ``"failed"``, with the ``error``.
    """
    request = {
        "messages": _message_list(messages),
        **_clean(
            limit=limit,
            threshold=threshold,
            filters=filters,
            mode=mode,
            as_of=_opt_time(as_of),
            include_global=include_global,
            query_turns=query_turns,
            session_window=session_window,
            working_ttl_seconds=working_ttl_seconds,
            max_memory_tokens=max_memory_tokens,
            prompt=prompt,
            remember=remember,
        ),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("chat", request)


def _remembered(handle: str, wait: bool = False) -> _Call[Remembered]:
    """The outcome of a chat's background remembering (``reply["remember"]["handle"]``
    of a chat with ``remember="background"``): ``{"status": "running"}`` while it runs
    (with ``wait=True``, once it has ended), then ``"done"`` with its ``events`` or
    ``"failed"`` with its ``error``. An outcome is handed out once: asking again for a
    finished one raises ``NotFoundError``, as does an unknown handle."""
    if not isinstance(handle, str):
        raise TypeError(f"handle must be a str, not {type(handle).__name__}")
    return _Call("chat_remembered", {"handle": handle, "wait": bool(wait)})


_CHAT_STREAM_DOC = """:meth:`chat` with the answer streamed: the call starts at once, on a thread of
    its own, and returns a {stream} of the pieces of the answer's text as the model writes
    them; once it has ended, its ``result`` is the reply :meth:`chat` would return. Errors
    come out of the iteration. Closing the stream before its end ({close}) stops the answer
    at its next piece: the call then ends with ``CancelledError`` and stores nothing.
    Takes the arguments of :meth:`chat`."""


def _stream_method(
    plan: Callable[..., Any], owner: str, method: Callable[..., Any], doc: str
) -> Any:
    """``method`` dressed as ``owner``'s ``chat_stream`` (the arguments of ``plan``)."""
    functools.update_wrapper(method, plan)
    method.__name__ = "chat_stream"
    method.__qualname__ = f"{owner}.chat_stream"
    method.__doc__ = doc
    return method


def _streaming(plan: Callable[P, _Call[ChatReply]]) -> Callable[Concatenate[Memory, P], ChatStream]:
    """:meth:`Memory.chat_stream`: the plan's call, streamed."""

    def method(self: Memory, /, *args: P.args, **kwargs: P.kwargs) -> ChatStream:
        op, request = plan(*args, **kwargs).args[:2]
        return ChatStream(self._native.call_stream(op, request))

    doc = _CHAT_STREAM_DOC.format(
        stream=":class:`ChatStream`", close="``close()``, or leaving its ``with`` block"
    )
    return cast(
        "Callable[Concatenate[Memory, P], ChatStream]",
        _stream_method(plan, "Memory", method, doc),
    )


def _async_streaming(
    plan: Callable[P, _Call[ChatReply]],
) -> Callable[Concatenate[AsyncMemory, P], AsyncChatStream]:
    """:meth:`AsyncMemory.chat_stream`: the plan's call, streamed to an async iterator."""

    def method(self: AsyncMemory, /, *args: P.args, **kwargs: P.kwargs) -> AsyncChatStream:
        op, request = plan(*args, **kwargs).args[:2]
        return AsyncChatStream(self._native.call_stream(op, request))

    doc = _CHAT_STREAM_DOC.format(
        stream=":class:`AsyncChatStream` (an async iterator)",
        close="``await aclose()``, leaving its ``async with`` block, or cancelling the task "
        "that awaits a piece",
    )
    return cast(
        "Callable[Concatenate[AsyncMemory, P], AsyncChatStream]",
        _stream_method(plan, "AsyncMemory", method, doc),
    )


# --------------------------------------------------------------------------- graph plans


def _entity_ref(value: EntityRef, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{field} must be a name (str) or a mapping, not {type(value).__name__}")


def _entity_inputs(entities: Sequence[EntityInput] | None, field: str) -> list[dict[str, Any]]:
    """Entities as the core reads them: a name becomes ``{"name"}``."""
    out: list[dict[str, Any]] = []
    for e in entities or ():
        if isinstance(e, str):
            out.append({"name": e})
        elif isinstance(e, Mapping):
            out.append(dict(e))
        else:
            raise TypeError(
                f"{field} items must be names (str) or mappings, not {type(e).__name__}"
            )
    return out


def _relation_inputs(
    relations: Sequence[RelationInput] | None, field: str, *, names: bool
) -> list[dict[str, Any]]:
    """Relations (or triples, ``names`` true: a name stays a name) as the core reads them:
    times as RFC 3339, ends as references."""
    out: list[dict[str, Any]] = []
    for r in relations or ():
        if not isinstance(r, Mapping):
            raise TypeError(f"{field} items must be mappings, not {type(r).__name__}")
        item = dict(r)
        for end in ("subject", "object"):
            if item.get(end) is not None and not (names and isinstance(item[end], str)):
                item[end] = _entity_ref(item[end], f"{field}: {end}")
        for key in ("valid_from", "valid_to"):
            if isinstance(item.get(key), (_dt.date, _dt.datetime)):
                item[key] = _time(item[key])
        out.append(item)
    return out


def _graph_add_entity(
    name: str,
    *,
    entity_type: str | None = None,
    aliases: Sequence[str] = (),
    summary: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[Entity]:
    """Adds an entity, or returns the one of its scope that already answers to ``name`` or
    one of ``aliases`` (names match ignoring case, spacing, full-width forms and
    diacritics: "Zoë  Smith" is "zoe smith"); it then also answers to the others, and gains
    ``summary`` if it had none. Entities are never shared across scopes. ``entity_type``
    defaults to ``thing``. ``InvalidInputError`` when two of the names belong to two
    different entities."""
    request = {
        "name": name,
        "aliases": list(aliases),
        **_clean(type=entity_type, summary=summary),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_add_entity", request)


def _graph_add_relation(
    subject: EntityRef,
    predicate: str,
    object: EntityRef | None = None,
    *,
    value: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
    valid_from: Time | None = None,
    valid_to: Time | None = None,
    confidence: float | None = None,
    sources: Sequence[str] = (),
) -> _Call[RelationAdded]:
    """Adds ``subject —predicate→ object`` (an entity) or ``—predicate→ value`` (a
    literal) in the scope given, finding or creating named entities there. The predicate
    is normalised to lower snake case (``"Lives in"`` → ``lives_in``). ``sources``: the
    memories it came from (deleting the last of them removes the relation). The same
    relation already holding gains the sources instead of a twin. On a functional
    predicate (``lives_in``, ``located_in``, ``born_in``, ``married_to``, ``works_at`` by
    default) a new object closes the subject's other current ones: their ``valid_to``
    becomes the new one's ``valid_from`` (or now) and ``closed_by`` names it."""
    request = {
        "subject": _entity_ref(subject, "subject"),
        "predicate": predicate,
        "sources": list(sources),
        **_clean(
            object=None if object is None else _entity_ref(object, "object"),
            value=value,
            valid_from=_opt_time(valid_from),
            valid_to=_opt_time(valid_to),
            confidence=confidence,
        ),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_add_relation", request)


def _graph_entity(entity_id: str) -> _Call[EntityDetail]:
    """An entity with every relation touching it; ``NotFoundError`` if there is none."""
    return _Call("graph_entity", _id("entity_id", entity_id))


def _graph_entities(
    query: str = "",
    *,
    entity_type: str | None = None,
    limit: int | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[list[Entity]]:
    """The entities of exactly this scope whose name or an alias contains ``query``
    (folded as names are; all of them for ``""``): exact names first, then names starting
    with it, then by name; at most ``limit`` (default 100)."""
    request = {
        "query": query,
        **_clean(type=entity_type, limit=limit),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_entities", request)


def _graph_relations(
    *,
    entity: str | None = None,
    about: str | None = None,
    predicate: str | None = None,
    source: str | None = None,
    valid_at: Time | None = None,
    include_closed: bool | None = None,
    as_of: Time | None = None,
    limit: int | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[list[Relation]]:
    """The relations of exactly this scope, oldest first: touching ``entity`` (an id), an
    entity the text ``about`` names (a question, say), of ``predicate``, from memory
    ``source`` if given. By default those holding now;
    ``valid_at`` those that held then; ``include_closed`` every one. ``as_of``: the graph
    as it was recorded at that moment (later relations left out, those removed since with
    their memories back, later closings undone)."""
    request = {
        **_clean(
            entity=entity,
            about=about,
            predicate=predicate,
            source=source,
            valid_at=_opt_time(valid_at),
            include_closed=include_closed,
            as_of=_opt_time(as_of),
            limit=limit,
        ),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_relations", request)


def _graph_neighbors(
    entity_id: str,
    *,
    depth: int | None = None,
    predicates: Sequence[str] = (),
    direction: Direction | None = None,
    valid_at: Time | None = None,
    include_closed: bool | None = None,
    as_of: Time | None = None,
) -> _Call[list[Neighbor]]:
    """The entities up to ``depth`` relations away (1 to 3, default 1), breadth first, each
    once with the relation that first reached it, following ``predicates`` (all by
    default) ``direction``-wise (``"out"``, ``"in"`` or ``"both"``, the default), over the
    relations holding now (or at ``valid_at``, or all with ``include_closed``), in the
    graph as recorded now or at ``as_of``."""
    request = {
        "entity": entity_id,
        "predicates": list(predicates),
        **_clean(
            depth=depth,
            direction=direction,
            valid_at=_opt_time(valid_at),
            include_closed=include_closed,
            as_of=_opt_time(as_of),
        ),
    }
    return _Call("graph_neighbors", request)


def _graph_path(
    from_id: str,
    to_id: str,
    *,
    max_depth: int | None = None,
    valid_at: Time | None = None,
    include_closed: bool | None = None,
    as_of: Time | None = None,
) -> _Call[list[Relation] | None]:
    """A shortest chain of relations between two entities (either way along each), at most
    ``max_depth`` long (1 to 3, default 3), or None; entities of different scopes are never
    joined. ``valid_at``, ``include_closed`` and ``as_of`` as for :meth:`relations`."""
    request = {
        "from": from_id,
        "to": to_id,
        **_clean(
            max_depth=max_depth,
            valid_at=_opt_time(valid_at),
            include_closed=include_closed,
            as_of=_opt_time(as_of),
        ),
    }
    return _Call("graph_path", request)


def _graph_merge_entities(keep: str, absorb: str) -> _Call[EntityDetail]:
    """Merges entity ``absorb`` into entity ``keep`` (both of one scope): ``keep`` answers
    to every name of both, gains ``absorb``'s summary if it had none, and becomes the end of
    its relations (a relation between the two is dropped); ``absorb`` is gone. Relations
    that now say the same thing become one, with the sources of both; on a functional
    predicate the newest object closes the others. Recorded in both entities' histories.
    Returns ``keep`` with its relations."""
    return _Call("graph_merge_entities", {"keep": keep, "absorb": absorb})


def _graph_rename_entity(entity_id: str, name: str) -> _Call[Entity]:
    """Renames an entity; its old name stays one of its aliases. ``InvalidInputError`` when
    another entity of its scope answers to ``name`` (merge them instead)."""
    return _Call("graph_rename_entity", {"id": entity_id, "name": name})


def _graph_split_entity(
    entity_id: str,
    name: str,
    *,
    entity_type: str | None = None,
    aliases: Sequence[str] = (),
    relations: Sequence[str] = (),
    summary: str | None = None,
) -> _Call[Split]:
    """Splits a new entity named ``name`` off an entity wrongly resolved into it: it takes
    the ``aliases`` given (names of the entity other than its main one) and becomes the end
    of the ``relations`` given (ids of relations touching the entity); same scope, and the
    entity's type unless ``entity_type``. Recorded in both histories."""
    request = {
        "id": entity_id,
        "name": name,
        "aliases": list(aliases),
        "relations": list(relations),
        **_clean(type=entity_type, summary=summary),
    }
    return _Call("graph_split_entity", request)


def _graph_entity_history(entity_id: str) -> _Call[list[EntityEvent]]:
    """The corrections of an entity (merges, renames, splits), oldest first; kept for an
    entity merged away too."""
    return _Call("graph_entity_history", _id("entity_id", entity_id))


def _graph_import_triples(
    triples: Sequence[TripleInput],
    *,
    entities: Sequence[EntityInput] = (),
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[ImportReport]:
    """Imports triples into the scope given, in one transaction: all or none (a bad triple,
    an unknown entity id or source, an entity of another scope fails the call and nothing
    changes). ``entities`` (with their aliases and summaries) are found or created first.
    Ends are names (found or created as in ``add_relation``) or ``{"id"}`` /
    ``{"name", "type"?}``; ``subject_type``/``object_type`` type new named ends. At most
    10,000 triples a call. A JSON export's content imports back:
    ``graph.import_triples(**doc["content"], user_id=...)``."""
    request = {
        "triples": _relation_inputs(triples, "triples", names=True),
        "entities": _entity_inputs(entities, "entities"),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_import", request)


def _graph_export(
    format: ExportFormat = "json",
    *,
    include_closed: bool | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    org_id: str | None = None,
) -> _Call[GraphExport]:
    """The graph of exactly this scope: ``{"format", "content"}``. ``"json"``: a document
    ``{"entities", "triples"}`` that ``import_triples`` takes back; ``"graphml"``: GraphML
    text (entities and literal values as nodes, relations as edges); ``"dot"``: Graphviz
    DOT text. The relations holding now, or all with ``include_closed``."""
    request = {
        "format": format,
        **_clean(include_closed=include_closed),
        **_scope(user_id, agent_id, run_id, org_id),
    }
    return _Call("graph_export", request)


def _graph_blocking(plan: Callable[P, _Call[T]]) -> Callable[Concatenate[Graph, P], T]:
    """The :class:`Graph` method of a plan."""

    def method(self: Graph, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return plan(*args, **kwargs).run(self._native)

    functools.update_wrapper(method, plan)
    method.__name__ = plan.__name__.removeprefix("_graph_")
    method.__qualname__ = f"Graph.{method.__name__}"
    return method


def _graph_awaiting(
    plan: Callable[P, _Call[T]],
) -> Callable[Concatenate[AsyncGraph, P], Coroutine[Any, Any, T]]:
    """The :class:`AsyncGraph` method of a plan."""

    async def method(self: AsyncGraph, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await plan(*args, **kwargs).run_async(self._native)

    functools.update_wrapper(method, plan)
    method.__name__ = plan.__name__.removeprefix("_graph_")
    method.__qualname__ = f"AsyncGraph.{method.__name__}"
    return method


class Graph:
    """The knowledge graph of a :class:`Memory` (``memory.graph``): entities and the
    relations between them, kept in the same store as the memories they came from."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeMemory) -> None:
        self._native = native

    add_entity = _graph_blocking(_graph_add_entity)
    add_relation = _graph_blocking(_graph_add_relation)
    entity = _graph_blocking(_graph_entity)
    entities = _graph_blocking(_graph_entities)
    relations = _graph_blocking(_graph_relations)
    neighbors = _graph_blocking(_graph_neighbors)
    path = _graph_blocking(_graph_path)
    merge_entities = _graph_blocking(_graph_merge_entities)
    rename_entity = _graph_blocking(_graph_rename_entity)
    split_entity = _graph_blocking(_graph_split_entity)
    entity_history = _graph_blocking(_graph_entity_history)
    import_triples = _graph_blocking(_graph_import_triples)
    export = _graph_blocking(_graph_export)


class AsyncGraph:
    """:class:`Graph` for asyncio (``async_memory.graph``): the same methods, as
    coroutines."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeMemory) -> None:
        self._native = native

    add_entity = _graph_awaiting(_graph_add_entity)
    add_relation = _graph_awaiting(_graph_add_relation)
    entity = _graph_awaiting(_graph_entity)
    entities = _graph_awaiting(_graph_entities)
    relations = _graph_awaiting(_graph_relations)
    neighbors = _graph_awaiting(_graph_neighbors)
    path = _graph_awaiting(_graph_path)
    merge_entities = _graph_awaiting(_graph_merge_entities)
    rename_entity = _graph_awaiting(_graph_rename_entity)
    split_entity = _graph_awaiting(_graph_split_entity)
    entity_history = _graph_awaiting(_graph_entity_history)
    import_triples = _graph_awaiting(_graph_import_triples)
    export = _graph_awaiting(_graph_export)


# --------------------------------------------------------------------------- classes


class _Store:
    """What both classes share: opening, and the properties."""

    _native: _native.NativeMemory

    def __init__(
        self,
        path: PathLike | None = None,
        *,
        embedder: str | Mapping[str, Any] | None = None,
        persist_index: bool | None = None,
        index: Mapping[str, Any] | None = None,
        search: Mapping[str, Any] | None = None,
        llm: Mapping[str, Any] | None = None,
        prompts: Mapping[str, str] | None = None,
        plugins: Mapping[str, Any] | None = None,
        postgres: Mapping[str, Any] | None = None,
        history_retention: Mapping[str, Any] | None = None,
        graph: Mapping[str, Any] | None = None,
    ) -> None:
        self._native = _native.NativeMemory(
            _path(path),
            _options(
                embedder,
                persist_index,
                index,
                search,
                llm,
                prompts,
                plugins,
                postgres,
                history_retention,
                graph,
            ),
        )

    @property
    def path(self) -> str | None:
        """The store file, or None in memory or on a PostgreSQL server."""
        return self._native.path

    @property
    def location(self) -> str:
        """Where the store lives: its file, ``":memory:"``, or its PostgreSQL URL (or libpq
        connection string) with the password hidden."""
        return self._native.location

    @property
    def embedding_model(self) -> str | None:
        """The embedding model's id, or None without an embedder."""
        return self._native.embedding_model

    @property
    def llm(self) -> str | None:
        """The chat model as ``"provider:model"`` (``"openai:gpt-4.1-nano"``), or None when
        none is configured (then :meth:`add_messages` stores messages as given)."""
        return self._native.llm

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._native.closed

    def __repr__(self) -> str:
        closed = " (closed)" if self.closed else ""
        return f"<agent_mem.{type(self).__name__} {self.location}{closed}>"


class Memory(_Store):
    """Long-term memory in one SQLite file (or in memory, or on a PostgreSQL server),
    searched by meaning, keywords and typos at once.

    ``Memory()`` or ``Memory(":memory:")`` lives in memory; ``Memory("memories.db")`` opens
    (or creates) a store file; ``Memory("postgresql://user:password@host:5432/db")`` (or
    ``postgres://``) opens a store in that PostgreSQL database, which needs the pgvector
    extension (URL parameters pass on to the server, e.g.
    ``?options=-csearch_path%3Dmy_schema%2Cpublic`` for a schema of its own); so does a libpq
    connection string, ``Memory("host=db port=5432 dbname=db user=me password='…'")`` (one
    that starts with a libpq keyword and ``=``; name a file like that ``./host=….db``). The
    password never appears in :attr:`location`, ``repr`` or error messages. Options are the
    core's open options:

    - ``embedder``: ``"local"`` (default: all-MiniLM-L6-v2, see ``python -m agent_mem.model``),
      ``{"provider": "local", "model_dir": "/path"}``, ``"none"`` (you pass vectors), or
      ``{"provider": "hashing", "dimensions": 64}`` (deterministic, for tests);
    - ``persist_index``: save the vector index beside the file (default True);
    - ``index``: HNSW parameters (``connectivity``, ``expansion_add``, ``expansion_search``,
      ``quantization``, ``exact_scan_limit``);
    - ``search``: defaults of every search (``mode``, ``limit``, ``threshold``, ``weights``);
    - ``llm``: the chat model of :meth:`add_messages` and :meth:`chat`: ``{"provider",
      "model", "api_key", "base_url", "timeout_ms", "max_retries", "temperature",
      "max_tokens", "json_mode"}``,
      only ``provider`` required (``openai``, ``anthropic``, ``deepseek``, ``zhipu``,
      ``moonshot``, ``ollama`` or ``openai_compatible``, alias ``vllm``, ``lmstudio``…); the
      key and base URL default to the provider's environment variables (``OPENAI_API_KEY``,
      ``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``…). No call is made when the store opens;
    - ``prompts``: replacements of the model's prompts, ``{"fact_extraction",
      "decisions", "procedural", "chat"}`` (the first must answer ``{"facts": [...]}``, the
      second ``{"decisions": [...]}``; the chat prompt must contain ``{memories}``, where
      :meth:`chat` lists the memories it recalled);
    - ``plugins``: the plugin manager, ``{"cache_size": n}`` (how many plugins are kept
      compiled, default 16; see :meth:`register_plugin`);
    - ``postgres``: the connection pool of a store opened by URL, ``{"pool_size": 8,
      "connect_timeout_ms": 10000, "pool_timeout_ms": 30000, "statement_timeout_ms": 0}``
      (the defaults; ``pool_size`` 1 to 256, ``pool_timeout_ms`` 0 fails at once when every
      connection is busy, a statement timeout of 0 is none). A server that cannot be
      reached or refuses the login raises ``StorageError``. Connections are made without
      TLS: a URL with ``sslmode=require`` raises ``UnsupportedError``;
    - ``graph``: the knowledge graph (:attr:`graph`), ``{"extract": True}`` to have
      :meth:`add_messages` fill it with the relations each fact states (in the same model
      call), ``{"functional_predicates": [...]}`` to choose the predicates that hold one
      object at a time (default ``lives_in``, ``located_in``, ``born_in``, ``married_to``,
      ``works_at``), ``{"name_similarity": 0.93}`` how alike (0.5 to 1) the embedded name
      of a new name must be to an entity's of the same scope and type to be taken as
      another name of it (the default 0.93 joins "Acme Corp" and "Acme Corporation", not
      "Alice" and "Alice Smith");

    ``embedder`` may also be a remote OpenAI-compatible embeddings endpoint:
    ``{"provider": "openai" | "zhipu" | "ollama" | "openai_compatible", "model", "api_key",
    "base_url", "dimensions", "timeout_ms", "max_retries"}``.

    Thread-safe; use it as a context manager or call :meth:`close` to save the index.
    """

    def close(self) -> None:
        """Saves the vector index and closes the store. Later calls raise ``ClosedError``."""
        self._native.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @overload
    def add(
        self,
        content: str,
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        org_id: str | None = ...,
        kind: Kind | str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        expires_at: Time | None = ...,
        valid_from: Time | None = ...,
        valid_to: Time | None = ...,
        vector: _Vector | None = ...,
        entities: Sequence[EntityInput] | None = ...,
        relations: Sequence[RelationInput] | None = ...,
    ) -> AddResult: ...

    @overload
    def add(
        self,
        content: list[str] | tuple[str, ...],
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        org_id: str | None = ...,
        kind: Kind | str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        expires_at: Time | None = ...,
        valid_from: Time | None = ...,
        valid_to: Time | None = ...,
        vectors: _Vectors | None = ...,
    ) -> _AddResults: ...

    def add(
        self,
        content: str | Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        org_id: str | None = None,
        kind: Kind | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_at: Time | None = None,
        valid_from: Time | None = None,
        valid_to: Time | None = None,
        vector: _Vector | None = None,
        vectors: _Vectors | None = None,
        entities: Sequence[EntityInput] | None = None,
        relations: Sequence[RelationInput] | None = None,
    ) -> AddResult | _AddResults:
        """Adds one memory (a str) or several in one transaction (a list of str, all with the
        same scope, kind, metadata and expiry). ``vector``/``vectors``: your own embeddings
        (needed with ``embedder="none"``). ``entities``/``relations`` (one memory only):
        the graph it states, stored in its transaction and scope, each relation sourced
        from it; a refused one fails the whole call. Returns ``{"id", "added"}`` (a list
        for a list)."""
        plan = _add(
            content,
            user_id,
            agent_id,
            run_id,
            org_id,
            kind,
            metadata,
            expires_at,
            valid_from,
            valid_to,
            vector,
            vectors,
            entities,
            relations,
        )
        return plan.run(self._native)

    @property
    def graph(self) -> Graph:
        """The knowledge graph kept in this store (see :class:`Graph`)."""
        return Graph(self._native)

    add_batch = _blocking(_add_batch)
    add_messages = _blocking(_add_messages)
    get = _blocking(_get)
    list = _blocking(_list)
    count = _blocking(_count)
    history = _blocking(_history)
    versions = _blocking(_versions)
    supersede = _blocking(_supersede)
    undo = _blocking(_undo)
    revert = _blocking(_revert)
    search = _blocking(_search)
    update = _blocking(_update)
    delete = _blocking(_delete)
    delete_all = _blocking(_delete_all)
    purge_expired = _blocking(_purge_expired)
    prune_versions = _blocking(_prune_versions)
    reset = _blocking(_reset)
    flush = _blocking(_flush)
    copy_into = _blocking(_copy_into)
    register_plugin = _blocking(_register_plugin)
    plugins = _blocking(_plugins)
    unregister_plugin = _blocking(_unregister_plugin)
    load_plugin = _blocking(_load_plugin)
    unload_plugin = _blocking(_unload_plugin)
    reload_plugin = _blocking(_reload_plugin)
    call_plugin = _blocking(_call_plugin)
    chat = _blocking(_chat)
    chat_stream = _streaming(_chat)
    remembered = _blocking(_remembered)


class AsyncMemory(_Store):
    """:class:`Memory` for asyncio: the same methods, as coroutines.

    Each call runs on a Rust worker thread and resolves an asyncio future when it is done, so
    the event loop never blocks and many awaits progress in parallel. ``AsyncMemory(...)``
    opens the store at once (loading the model blocks); ``await AsyncMemory.open(...)`` opens
    it on a worker. Use ``async with`` or ``await close()``.

    Cancelling an await stops the waiting, not the core call: a write that has started is
    completed. A chat stream is the exception: cancelling the task that reads
    :meth:`chat_stream` stops the model's answer, and nothing of the turn is stored.
    """

    @classmethod
    async def open(
        cls,
        path: PathLike | None = None,
        *,
        embedder: str | Mapping[str, Any] | None = None,
        persist_index: bool | None = None,
        index: Mapping[str, Any] | None = None,
        search: Mapping[str, Any] | None = None,
        llm: Mapping[str, Any] | None = None,
        prompts: Mapping[str, str] | None = None,
        plugins: Mapping[str, Any] | None = None,
        postgres: Mapping[str, Any] | None = None,
        history_retention: Mapping[str, Any] | None = None,
        graph: Mapping[str, Any] | None = None,
    ) -> AsyncMemory:
        """Opens the store on a worker thread (the event loop keeps running meanwhile; a
        PostgreSQL store connects there)."""
        native = await _native.NativeMemory.open_async(
            _path(path),
            _options(
                embedder,
                persist_index,
                index,
                search,
                llm,
                prompts,
                plugins,
                postgres,
                history_retention,
                graph,
            ),
        )
        self = cls.__new__(cls)
        self._native = native
        return self

    async def close(self) -> None:
        """Saves the vector index and closes the store."""
        await self._native.close_async()

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @overload
    async def add(
        self,
        content: str,
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        org_id: str | None = ...,
        kind: Kind | str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        expires_at: Time | None = ...,
        valid_from: Time | None = ...,
        valid_to: Time | None = ...,
        vector: _Vector | None = ...,
        entities: Sequence[EntityInput] | None = ...,
        relations: Sequence[RelationInput] | None = ...,
    ) -> AddResult: ...

    @overload
    async def add(
        self,
        content: list[str] | tuple[str, ...],
        *,
        user_id: str | None = ...,
        agent_id: str | None = ...,
        run_id: str | None = ...,
        org_id: str | None = ...,
        kind: Kind | str | None = ...,
        metadata: Mapping[str, Any] | None = ...,
        expires_at: Time | None = ...,
        valid_from: Time | None = ...,
        valid_to: Time | None = ...,
        vectors: _Vectors | None = ...,
    ) -> _AddResults: ...

    async def add(
        self,
        content: str | Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        org_id: str | None = None,
        kind: Kind | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_at: Time | None = None,
        valid_from: Time | None = None,
        valid_to: Time | None = None,
        vector: _Vector | None = None,
        vectors: _Vectors | None = None,
        entities: Sequence[EntityInput] | None = None,
        relations: Sequence[RelationInput] | None = None,
    ) -> AddResult | _AddResults:
        """Adds one memory (a str) or several in one transaction (a list of str, all with the
        same scope, kind, metadata and expiry). ``vector``/``vectors``: your own embeddings
        (needed with ``embedder="none"``). ``entities``/``relations`` (one memory only):
        the graph it states, stored in its transaction and scope, each relation sourced
        from it; a refused one fails the whole call. Returns ``{"id", "added"}`` (a list
        for a list)."""
        plan = _add(
            content,
            user_id,
            agent_id,
            run_id,
            org_id,
            kind,
            metadata,
            expires_at,
            valid_from,
            valid_to,
            vector,
            vectors,
            entities,
            relations,
        )
        return await plan.run_async(self._native)

    @property
    def graph(self) -> AsyncGraph:
        """The knowledge graph kept in this store (see :class:`AsyncGraph`)."""
        return AsyncGraph(self._native)

    add_batch = _awaiting(_add_batch)
    add_messages = _awaiting(_add_messages)
    get = _awaiting(_get)
    list = _awaiting(_list)
    count = _awaiting(_count)
    history = _awaiting(_history)
    versions = _awaiting(_versions)
    supersede = _awaiting(_supersede)
    undo = _awaiting(_undo)
    revert = _awaiting(_revert)
    search = _awaiting(_search)
    update = _awaiting(_update)
    delete = _awaiting(_delete)
    delete_all = _awaiting(_delete_all)
    purge_expired = _awaiting(_purge_expired)
    prune_versions = _awaiting(_prune_versions)
    reset = _awaiting(_reset)
    flush = _awaiting(_flush)
    copy_into = _awaiting(_copy_into)
    register_plugin = _awaiting(_register_plugin)
    plugins = _awaiting(_plugins)
    unregister_plugin = _awaiting(_unregister_plugin)
    load_plugin = _awaiting(_load_plugin)
    unload_plugin = _awaiting(_unload_plugin)
    reload_plugin = _awaiting(_reload_plugin)
    call_plugin = _awaiting(_call_plugin)
    chat = _awaiting(_chat)
    chat_stream = _async_streaming(_chat)
    remembered = _awaiting(_remembered)
