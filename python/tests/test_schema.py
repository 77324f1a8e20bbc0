"""The Python declarations against the core's schema (``tests/dispatch/schema.json``, derived
from the Rust types by ``wire::schema()``; a Rust test fails when it is stale).

- Each method, called with every argument it has, sends exactly the keys the core's request
  for its operation has: an option added to the core and not to Python, or a Python argument
  the core does not know, fails here.
- Each result ``TypedDict`` has the keys of the core's result, and the same required ones.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import agent_mem.memory as memory
from agent_mem import _native

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "tests" / "dispatch" / "schema.json").read_text(
        encoding="utf-8"
    )
)
OPERATIONS: dict[str, Any] = SCHEMA["operations"]

#: A value for every argument of the methods below (what matters is that it is not None).
SAMPLES: dict[str, Any] = {
    "content": "c",
    "memories": [{"content": "c"}],
    "messages": "hello",
    "memory_id": "m",
    "id": "p",
    "query": "q",
    "user_id": "u",
    "agent_id": "a",
    "run_id": "r",
    "org_id": "o",
    "kind": "semantic",
    "metadata": {"k": 1},
    "expires_at": "2030-01-01",
    "filters": {"k": 1},
    "include_global": True,
    "include_expired": True,
    "order": "created_asc",
    "limit": 1,
    "offset": 0,
    "cursor": "x",
    "with_total": True,
    "merge_metadata": True,
    "threshold": 0.5,
    "mode": "keyword",
    "weights": {"vector": 1.0},
    "explain": True,
    "vector": [0.5],
    "vectors": [[0.5]],
    "infer": False,
    "prompt": "p",
    "path": "/plugins/x.wasm",
    "wasm": None,
    "name": "n",
    "version": "1",
    "capabilities": ["logging"],
    "config": {"k": "v"},
    "allowed_hosts": ["127.0.0.1"],
    "allowed_paths": {"/data": "/data"},
    "limits": {"fuel": 1},
    "on_error": "skip",
    "as_of": "2024-01-01T00:00:00Z",
    "valid_at": "2024-01-01",
    "valid_from": "2024-01-01",
    "valid_to": "2025-01-01",
    "include_superseded": True,
    "change_id": "c",
    "old_id": "m",
    "new_content": "c",
    "to_version": 1,
    "force": True,
    "time_aware": True,
    "now": "2025-06-01",
    "observed_at": "2024-06-10",
    "supersede": False,
    "entity_type": "person",
    "aliases": ["a"],
    "summary": "s",
    "subject": "s",
    "predicate": "p",
    "object": {"id": "o"},
    "value": "v",
    "confidence": 0.5,
    "sources": ["m"],
    "entity_id": "e",
    "entity": "e",
    "about": "who",
    "source": "m",
    "include_closed": True,
    "depth": 2,
    "predicates": ["p"],
    "direction": "out",
    "from_id": "a",
    "to_id": "b",
    "max_depth": 2,
    "keep": "a",
    "absorb": "b",
    "entities": ["e"],
    "relations": [{"subject": "s", "predicate": "p", "value": "v"}],
    "triples": [{"subject": "s", "predicate": "p", "value": "v"}],
    "format": "dot",
    "query_turns": 2,
    "session_window": 3,
    "working_ttl_seconds": 60,
    "max_memory_tokens": 500,
    "remember": "off",
    "handle": "h",
    "wait": True,
}

#: Each operation and the method plan that sends it (``add`` with a str, with a list).
PLANS: list[tuple[str, Any, dict[str, Any]]] = [
    ("add", memory._add, {"vectors": None}),
    (
        "add_batch",
        memory._add,
        {"content": ["c"], "vector": None, "entities": None, "relations": None},
    ),
    ("add_batch", memory._add_batch, {}),
    ("add_messages", memory._add_messages, {}),
    ("get", memory._get, {}),
    ("list", memory._list, {}),
    ("count", memory._count, {}),
    ("update", memory._update, {}),
    ("delete", memory._delete, {}),
    ("delete_all", memory._delete_all, {}),
    ("history", memory._history, {}),
    ("versions", memory._versions, {}),
    ("supersede", memory._supersede, {}),
    ("undo", memory._undo, {}),
    ("revert", memory._revert, {}),
    ("search", memory._search, {}),
    ("purge_expired", memory._purge_expired, {}),
    ("prune_versions", memory._prune_versions, {}),
    ("flush", memory._flush, {}),
    ("reset", memory._reset, {}),
    ("plugin_register", memory._register_plugin, {}),
    ("plugin_list", memory._plugins, {}),
    ("plugin_load", memory._load_plugin, {}),
    ("plugin_unload", memory._unload_plugin, {}),
    ("plugin_reload", memory._reload_plugin, {}),
    ("plugin_unregister", memory._unregister_plugin, {}),
    ("graph_add_entity", memory._graph_add_entity, {}),
    ("graph_add_relation", memory._graph_add_relation, {}),
    ("graph_entity", memory._graph_entity, {}),
    ("graph_entities", memory._graph_entities, {}),
    ("graph_relations", memory._graph_relations, {}),
    ("graph_neighbors", memory._graph_neighbors, {}),
    ("graph_path", memory._graph_path, {}),
    ("graph_merge_entities", memory._graph_merge_entities, {}),
    ("graph_rename_entity", memory._graph_rename_entity, {}),
    ("graph_split_entity", memory._graph_split_entity, {}),
    ("graph_entity_history", memory._graph_entity_history, {}),
    ("graph_import", memory._graph_import_triples, {}),
    ("graph_export", memory._graph_export, {}),
    ("chat", memory._chat, {}),
    ("chat_remembered", memory._remembered, {}),
]


def _properties(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def _sent(plan: Any, overrides: dict[str, Any]) -> tuple[str, set[str]]:
    """The operation a plan calls and the keys it sends, with every argument given."""
    params = inspect.signature(plan).parameters
    unknown = set(params) - set(SAMPLES)
    assert not unknown, f"{plan.__name__}: give test_schema.SAMPLES a value for {unknown}"
    args = {name: overrides.get(name, SAMPLES[name]) for name in params}
    call = plan(**args)
    op, request, *embeddings = call.args
    if call.method == "register_plugin":  # (manifest, module bytes): no JSON dispatch
        return "plugin_register", set(op)
    keys = set(request or {})
    vector, vectors = embeddings
    keys |= {"vector"} if vector is not None else set()
    keys |= {"vectors"} if vectors is not None else set()
    return str(op), keys


def test_every_operation_has_a_python_method() -> None:
    assert set(OPERATIONS) == set(_native.operations())
    assert {op for op, _, _ in PLANS} == set(OPERATIONS)


@pytest.mark.parametrize(
    ("op", "plan", "overrides"), PLANS, ids=[f"{op}-{plan.__name__}" for op, plan, _ in PLANS]
)
def test_a_method_sends_the_keys_of_its_operation(
    op: str, plan: Any, overrides: dict[str, Any]
) -> None:
    called, keys = _sent(plan, overrides)
    assert called == op
    expected = _properties(OPERATIONS[op]["request"])
    assert keys == expected, (
        f"{plan.__name__} sends {sorted(keys)}; the core's {op} request has {sorted(expected)}"
    )


def test_a_batch_item_is_an_add_request() -> None:
    items = OPERATIONS["add_batch"]["request"]["properties"]["memories"]["items"]
    add = _properties(OPERATIONS["add"]["request"]) - {"vector"}
    assert _properties(items) == add


#: Each result TypedDict and the core type it declares; True where only results use it (the
#: required keys must then match too).
TYPED_DICTS = [
    ("AddResult", "AddOutcome", True),
    ("MemoryRecord", "MemoryRecord", True),
    ("SearchHit", "SearchHit", True),
    ("HistoryEntry", "HistoryEntry", True),
    ("ListPage", "ListPage", True),
    ("MemoryEvent", "MemoryEvent", True),
    ("CopyReport", "CopyReport", True),
    ("Superseded", "Superseded", True),
    ("Pruned", "Pruned", True),
    ("Undone", "Undone", True),
    ("Entity", "Entity", True),
    ("Relation", "Relation", True),
    ("RelationAdded", "RelationAdded", True),
    ("EntityDetail", "EntityDetail", True),
    ("Neighbor", "Neighbor", True),
    ("EntityEvent", "EntityEvent", True),
    ("Split", "Split", True),
    ("ImportReport", "ImportReport", True),
    ("Message", "Message", False),
    ("PluginInfo", "PluginInfo", True),
    ("PluginLimits", "PluginLimits", False),
    ("PluginStats", "PluginStats", True),
    ("PluginLogEntry", "PluginLogEntry", True),
]


@pytest.mark.parametrize(("name", "core", "result_only"), TYPED_DICTS)
def test_a_typed_dict_has_the_keys_of_the_core_type(
    name: str, core: str, result_only: bool
) -> None:
    declared = getattr(memory, name)
    schema = SCHEMA["types"][core]
    keys = set(declared.__required_keys__) | set(declared.__optional_keys__)
    assert keys == _properties(schema), f"{name}: {sorted(keys)} vs {sorted(_properties(schema))}"
    if result_only:
        assert set(declared.__required_keys__) == set(schema.get("required", [])), name


#: The chat's result TypedDicts and where the core's schema describes them: an operation's
#: result, then the properties (or ``[]``: the items) leading to the shape.
CHAT_TYPED_DICTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("ChatReply", "chat", ()),
    ("MemoryUsed", "chat", ("memories_used", "[]")),
    ("Citation", "chat", ("citations", "[]")),
    ("Remembered", "chat", ("remember",)),
    ("Remembered", "chat_remembered", ()),
    ("RememberError", "chat", ("remember", "error")),
    ("MemoryEvent", "chat", ("remember", "events", "[]")),
]


@pytest.mark.parametrize(
    ("name", "op", "path"), CHAT_TYPED_DICTS, ids=[f"{n}-{op}" for n, op, _ in CHAT_TYPED_DICTS]
)
def test_a_chat_typed_dict_has_the_keys_of_the_core_result(
    name: str, op: str, path: tuple[str, ...]
) -> None:
    schema = OPERATIONS[op]["result"]
    for step in path:
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    declared = getattr(memory, name)
    keys = set(declared.__required_keys__) | set(declared.__optional_keys__)
    assert keys == _properties(schema), f"{name}: {sorted(keys)} vs {sorted(_properties(schema))}"
    assert set(declared.__required_keys__) == set(schema.get("required", [])), name
