"""The one dispatch from Python: every operation the core lists (``_native.operations()``)
is called through ``NativeMemory.call`` with the requests of ``tests/dispatch/calls.json``
(the cases every language runs), in order, and each result is checked; bad calls are
``InvalidInputError`` naming what is wrong, and change nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent_mem import Memory, _native
from agent_mem.exceptions import AgentMemError, ErrorCode, InvalidInputError

CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "dispatch"
CASES: dict[str, Any] = json.loads((CASES_DIR / "calls.json").read_text(encoding="utf-8"))


def resolve(value: Any, names: dict[str, str]) -> Any:
    """``"$id"``, ``"$change"``, ``"$entity"``, ``"$object"`` and ``"$plugin"`` replaced,
    everywhere in ``value`` (``names``: the first added id, the last change id and the
    subject and object entities of the last relation a result held)."""
    if value in ("$id", "$change", "$entity", "$object"):
        return names[value]
    if value == "$plugin":
        return str(CASES_DIR / "noop.wat")
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, names) for k, v in value.items()}
    return value


def matches(expected: Any, actual: Any) -> bool:
    """calls.json's rule: an object's keys, a list item by item, a scalar equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual))
        )
    return bool(expected == actual)


def store() -> _native.NativeMemory:
    return _native.NativeMemory(None, CASES["options"])


def test_the_cases_call_every_listed_operation() -> None:
    named = {call[0] for call in CASES["calls"]}
    listed = _native.operations()
    assert len(set(listed)) == len(listed)
    assert named == set(listed), "tests/dispatch/calls.json must call every operation"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_every_operation_runs_through_the_generic_entry(asynchronous: bool) -> None:
    m = store()

    async def run(op: str, request: Any) -> Any:
        if asynchronous:
            return await m.call_async(op, request)
        return m.call(op, request)

    async def main() -> None:
        names = {"$id": "", "$change": "", "$entity": "", "$object": ""}
        for op, raw_request, raw_expected in CASES["calls"]:
            request = resolve(raw_request, names)
            if isinstance(raw_expected, dict) and "$error" in raw_expected:
                with pytest.raises(AgentMemError) as caught:
                    await run(op, request)
                assert caught.value.code == ErrorCode[raw_expected["$error"]], (op, caught.value)
                continue
            result = await run(op, request)
            if not names["$id"] and op == "add":
                names["$id"] = result["id"]
            if isinstance(result, dict) and isinstance(result.get("change_id"), str):
                names["$change"] = result["change_id"]
            if isinstance(result, dict) and isinstance(result.get("relation"), dict):
                names["$entity"] = result["relation"]["subject"]
                names["$object"] = result["relation"].get("object") or ""
            expected = resolve(raw_expected, names)
            assert matches(expected, result), (op, request, expected, result)

    asyncio.run(main())
    m.close()


def test_embeddings_go_natively() -> None:
    m = _native.NativeMemory(None, {"embedder": "none"})
    east = m.call("add", {"content": "east"}, [1.0, 0.0])
    m.call("add_batch", {"memories": [{"content": "north"}]}, None, [[0.0, 1.0]])
    hits = m.call("search", {"mode": "vector", "limit": 1}, [0.9, 0.1])
    assert hits[0]["id"] == east["id"]
    with pytest.raises(InvalidInputError, match="NaN"):
        m.call("add", {"content": "nan"}, [float("nan"), 0.0])
    with pytest.raises(InvalidInputError, match="not both"):
        m.call("add", {"content": "both"}, [1.0, 0.0], [[1.0, 0.0]])
    with pytest.raises(InvalidInputError, match="count takes no vector"):
        m.call("count", None, [1.0, 0.0])
    assert m.call("count") == 2
    m.close()


def test_an_unknown_operation_is_refused_by_name() -> None:
    m = store()
    m.call("add", {"content": "kept"})
    for op in ("frobnicate", "", "copy_into", "plugin_call"):
        with pytest.raises(InvalidInputError, match=f"unknown operation {json.dumps(op)}"):
            m.call(op, {})
    assert m.call("count") == 1
    m.close()


@pytest.mark.parametrize("op", _native.operations())
def test_bad_requests_change_nothing(op: str) -> None:
    m = store()
    kept = m.call("add", {"content": "Alice drinks tea", "user_id": "a"})
    m.call("add", {"content": "Bob", "user_id": "b"})
    before = m.call("list", {"order": "created_asc"})
    misspelt = {
        "id": kept["id"],
        "user_id": "a",
        "content": "x",
        "query": "x",
        "messages": "x",
        "memories": [],
        "path": str(CASES_DIR / "noop.wat"),
        "usr": 1,
    }
    for request in ([1], "text", 7, {"id": 5, "user_id": 5, "content": 5}, misspelt):
        with pytest.raises(InvalidInputError):
            m.call(op, request)
    with pytest.raises(InvalidInputError, match="not a JSON number"):
        m.call(op, {"id": kept["id"], "x": float("inf")})
    assert m.call("list", {"order": "created_asc"}) == before
    assert m.call("plugin_list") == []
    m.close()


def test_an_id_of_another_type_is_a_type_error() -> None:
    with Memory(embedder={"provider": "hashing", "dimensions": 8}) as m:
        bad: Any = 5
        for method in (m.get, m.history, m.delete, m.update, m.load_plugin, m.reload_plugin):
            with pytest.raises(TypeError, match="must be a str, not int"):
                method(bad)


def test_the_default_models_dimensions_come_from_the_core(model_mem: Memory) -> None:
    dims = _native.DEFAULT_MODEL_DIMENSIONS
    model_mem.add("sized by the core", user_id="u", vector=[0.5] * dims)
    with pytest.raises(InvalidInputError):
        model_mem.add("one short", user_id="u", vector=[0.5] * (dims - 1))


def test_every_reserved_metadata_key_the_core_names_is_refused(mem: Memory) -> None:
    assert "user_id" in _native.RESERVED_METADATA_KEYS
    for key in _native.RESERVED_METADATA_KEYS:
        with pytest.raises(InvalidInputError, match="reserved"):
            mem.add("metadata naming an identity field", user_id="u", metadata={key: "x"})
    assert mem.count(user_id="u") == 0
