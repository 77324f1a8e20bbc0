"""The language-neutral conformance cases (tests/conformance/*.json) through the Python API.

Rules: tests/conformance/README.md; the reference runner is core/tests/all/conformance.rs. Each
case file runs against a fresh in-memory store (test_postgres.py runs them again on
PostgreSQL through ``run_file``'s store factory); a failure names the file, the step index and
the operation.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent_mem import UNSET, AgentMemError, Memory

CASES = Path(__file__).resolve().parents[2] / "tests" / "conformance"
FILES = sorted(CASES.glob("*.json"))
MIN_FILES = 12
MIN_STEPS = 500

STEP_KEYS = {
    "op",
    "args",
    "expect",
    "expect_error",
    "error_contains",
    "save_id",
    "save_ids",
    "save_cursor",
    "save_time",
    "note",
}
SCOPE = ("user_id", "agent_id", "run_id", "org_id")
NEW_MEMORY_KEYS = ("content", *SCOPE, "kind", "metadata", "expires_at", "vector")


class CaseError(Exception):
    """The case file itself is wrong (an unknown op, argument or reference)."""


# --------------------------------------------------------------------------- values


def resolve(value: Any, saved: Mapping[str, Any]) -> Any:
    """Replaces ``$name``, ``$$text`` and ``{"$repeat": [text, n]}``."""
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in saved:
            raise CaseError(f"unknown reference {value}")
        return saved[value[1:]]
    if isinstance(value, list):
        return [resolve(v, saved) for v in value]
    if isinstance(value, dict) and set(value) == {"$repeat"}:
        spec = value["$repeat"]
        ok = isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str)
        if not ok or not isinstance(spec[1], int) or isinstance(spec[1], bool):
            raise CaseError(f"bad $repeat {value}")
        return spec[0] * spec[1]
    if isinstance(value, dict):
        return {k: resolve(v, saved) for k, v in value.items()}
    return value


def vector(value: Any) -> list[float]:
    """Numbers, or "NaN" / "Infinity" / "-Infinity" (JSON has no such numbers)."""
    if not isinstance(value, list):
        raise CaseError(f"vector must be a list, got {value!r}")
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    out = []
    for x in value:
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            out.append(float(x))
        elif isinstance(x, str) and x in special:
            out.append(special[x])
        else:
            raise CaseError(f"bad vector element {x!r}")
    return out


def only(args: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in args:
        if key not in allowed:
            raise CaseError(f"unknown argument {key!r} (expected one of {allowed})")


def items_result(items: list[Any]) -> dict[str, Any]:
    return {
        "count": len(items),
        "ids": [i["id"] for i in items],
        "contents": [i["content"] for i in items],
        "items": items,
    }


# --------------------------------------------------------------------------- operations


def run_op(m: Memory, op: str, args: dict[str, Any]) -> Any:
    """Runs one operation; the result object the expectations are matched against."""
    if op == "add":
        only(args, NEW_MEMORY_KEYS[:-1])
        if "content" not in args:
            raise CaseError("content is required")
        return m.add(**args)
    if op == "add_with_vector":
        only(args, NEW_MEMORY_KEYS)
        if "vector" not in args:
            raise CaseError("add_with_vector needs a vector")
        return m.add(**{**args, "vector": vector(args["vector"])})
    if op == "add_batch":
        only(args, ("memories",))
        memories = args.get("memories")
        if not isinstance(memories, list) or not all(isinstance(x, dict) for x in memories):
            raise CaseError("memories must be a list of objects")
        for item in memories:
            only(item, NEW_MEMORY_KEYS)
        with_vectors = sum("vector" in item for item in memories)
        if with_vectors not in (0, len(memories)):
            raise CaseError("either every memory of a batch has a vector or none has")
        plain = [{k: v for k, v in item.items() if k != "vector"} for item in memories]
        vectors = [vector(item["vector"]) for item in memories] if with_vectors else None
        outcomes = m.add_batch(plain, vectors=vectors)
        return {"ids": [o["id"] for o in outcomes], "added": [o["added"] for o in outcomes]}
    if op == "get":
        only(args, ("id",))
        return m.get(args["id"])
    if op == "list":
        only(
            args,
            (
                *SCOPE,
                "include_global",
                "include_expired",
                "filters",
                "order",
                "limit",
                "offset",
                "cursor",
            ),
        )
        page = m.list(**args)
        out = items_result(list(page["items"]))
        out["has_more"] = page["next_cursor"] is not None
        out["next_cursor"] = page["next_cursor"]
        return out
    if op == "count":
        only(args, (*SCOPE, "filters"))
        return {"count": m.count(**args)}
    if op == "update":
        only(args, ("id", "content", "metadata", "kind", "expires_at", "vector"))
        rest = {k: v for k, v in args.items() if k != "id"}
        if "vector" in rest:
            rest["vector"] = vector(rest["vector"])
        rest.setdefault("expires_at", UNSET)
        return m.update(args["id"], **rest)
    if op == "delete":
        only(args, ("id",))
        m.delete(args["id"])
        return {}
    if op == "delete_all":
        only(args, (*SCOPE, "filters"))
        return {"deleted": m.delete_all(**args)}
    if op == "history":
        only(args, ("id",))
        entries = m.history(args["id"])
        return {"count": len(entries), "events": [e["event"] for e in entries], "entries": entries}
    if op == "search":
        only(
            args,
            (
                "query",
                "vector",
                "mode",
                "limit",
                "threshold",
                *SCOPE,
                "include_global",
                "include_expired",
                "filters",
                "weights",
            ),
        )
        rest = dict(args)
        if "vector" in rest:
            rest["vector"] = vector(rest["vector"])
        return items_result(list(m.search(**rest, explain=True)))
    if op == "reset":
        only(args, ())
        m.reset()
        return {}
    if op == "purge_expired":
        only(args, ())
        return {"deleted": m.purge_expired()}
    if op == "mark_time":
        only(args, ())
        # Strictly after everything before, strictly before everything after.
        time.sleep(0.003)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        time.sleep(0.003)
        return {"time": now}
    raise CaseError(f"unknown op {op!r}")


# --------------------------------------------------------------------------- matching


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def matches(expected: Any, actual: Any, exact: bool = False) -> bool:
    """null matches null or absent; objects by the keys they name (``metadata`` whole);
    lists element by element; numbers within 1e-4; booleans are not numbers."""
    if expected is None:
        return actual is None
    if _number(expected) and _number(actual):
        return bool(abs(expected - actual) <= 1e-4)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            matches(e, a, exact) for e, a in zip(expected, actual)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        if exact and len(expected) != len(actual):
            return False
        return all(matches(v, actual.get(k), exact or k == "metadata") for k, v in expected.items())
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def _multiset(v: Any) -> Counter[str] | None:
    if not isinstance(v, list):
        return None
    return Counter(json.dumps(x, sort_keys=True) for x in v)


def check(expect: Mapping[str, Any], result: Any) -> list[str]:
    """What failed of a step's expectations."""
    failures = []
    for key, expected in expect.items():
        ids = result.get("ids") if isinstance(result, dict) else None
        if key == "ids_in_order":
            ok = matches(expected, ids)
        elif key == "contents_in_order":
            ok = matches(expected, result.get("contents"))
        elif key in ("ids_any_order", "contents_any_order"):
            field = result.get("ids" if key == "ids_any_order" else "contents")
            ok = _multiset(expected) is not None and _multiset(expected) == _multiset(field)
        elif key in ("includes", "excludes"):
            got = ids if isinstance(ids, list) else []
            ok = isinstance(expected, list) and all(
                (i in got) == (key == "includes") for i in expected
            )
        elif key == "first":
            items = result.get("items") or []
            ok = bool(items) and matches(expected, items[0])
        else:
            actual = result.get(key) if isinstance(result, dict) else None
            ok = matches(expected, actual, key == "metadata")
        if not ok:
            failures.append(f"{key}: expected {expected!r}, got {result!r}")
    return failures


# --------------------------------------------------------------------------- files


#: Opens the fresh store of a case file from its ``embedder`` field.
StoreFactory = Callable[[Any], Memory]


def open_store(embedder: Any, location: str | None = None) -> Memory:
    """The store of a case file: in memory, or at ``location`` (a PostgreSQL URL)."""
    if embedder == "hashing-64":
        return Memory(location, embedder={"provider": "hashing", "dimensions": 64})
    if embedder == "none":
        return Memory(location, embedder="none")
    raise CaseError(f"unknown embedder {embedder!r}")


def run_file(path: Path, store: StoreFactory = open_store) -> int:
    """Runs one case file against the fresh store ``store`` opens; the number of steps run.
    Raises AssertionError at the first failing step, naming it."""
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("name") == path.stem, f"name {case.get('name')!r} differs from the file name"
    assert isinstance(case.get("description"), str), "description missing"
    steps = case["steps"]
    saved: dict[str, Any] = {}
    try:
        m = store(case.get("embedder"))
    except CaseError as e:
        pytest.fail(f"{path.name}: bad case: {e}")
    with m:
        for i, step in enumerate(steps):
            op = step.get("op", "?")
            at = f"{path.name} step {i} ({op})"
            unknown = set(step) - STEP_KEYS
            assert not unknown, f"{at}: unknown step keys {unknown}"
            assert not ("expect" in step and "expect_error" in step), f"{at}: expect and error"
            try:
                args = resolve(step.get("args", {}), saved)
                assert isinstance(args, dict), f"{at}: args must be an object"
                error: AgentMemError | None = None
                try:
                    result = run_op(m, op, args)
                except AgentMemError as e:
                    error = e
                except TypeError as e:
                    raise CaseError(f"the Python API refused the arguments: {e}") from e
                if error is not None:
                    wanted = step.get("expect_error")
                    got = getattr(error.code, "name", error.code)
                    assert wanted is not None, f"{at}: unexpected error {got}: {error}"
                    assert got == wanted, f"{at}: expected error {wanted}, got {got}: {error}"
                    if "error_contains" in step:
                        part = resolve(step["error_contains"], saved)
                        assert part in str(error), f"{at}: {str(error)!r} does not contain {part!r}"
                    continue
                assert "expect_error" not in step, (
                    f"{at}: expected error {step['expect_error']}, got {result!r}"
                )
                if isinstance(result, dict):
                    if "save_id" in step:
                        saved[step["save_id"]] = result.get("id")
                    if "save_cursor" in step:
                        saved[step["save_cursor"]] = result.get("next_cursor")
                    if "save_time" in step:
                        saved[step["save_time"]] = result.get("time")
                    for j, name in enumerate(step.get("save_ids", [])):
                        saved[name] = result["ids"][j]
                if "expect" in step:
                    expect = resolve(step["expect"], saved)
                    assert isinstance(expect, dict), f"{at}: expect must be an object"
                    failures = check(expect, result)
                    assert not failures, f"{at}: " + "; ".join(failures)
            except CaseError as e:
                pytest.fail(f"{at}: bad case: {e}")
    return len(steps)


def test_there_are_enough_cases() -> None:
    steps = sum(len(json.loads(f.read_text(encoding="utf-8"))["steps"]) for f in FILES)
    assert len(FILES) >= MIN_FILES, f"only {len(FILES)} case files in {CASES}"
    assert steps >= MIN_STEPS, f"only {steps} steps"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_case_file(path: Path) -> None:
    ran = run_file(path)
    assert ran == len(json.loads(path.read_text(encoding="utf-8"))["steps"])


def test_the_matcher_rejects_what_it_should() -> None:
    record = {"id": "a", "content": "x", "metadata": {"k": 1, "j": 2}, "items": []}
    assert matches({"content": "x"}, record)
    assert not matches({"content": "y"}, record)
    assert matches({"user_id": None}, record)
    assert not matches({"content": None}, record)
    assert not matches({"metadata": {"k": 1}}, record)
    assert matches({"metadata": {"k": 1, "j": 2}}, record)
    assert not matches([1, 2], [1, 2, 3])
    assert matches(0.5, 0.50001)
    assert not matches(0.5, 0.51)
    assert not matches(True, 1)
    assert not matches(1, True)
    assert check({"metadata": {"k": 1}}, record), "metadata is compared whole at the top too"
    listed = items_result([{"id": "a", "content": "x"}, {"id": "b", "content": "y"}])
    assert not check({"ids_in_order": ["a", "b"]}, listed)
    assert check({"ids_in_order": ["b", "a"]}, listed)
    assert not check({"ids_any_order": ["b", "a"]}, listed)
    assert check({"ids_any_order": ["a"]}, listed)
    assert not check({"includes": ["b"], "excludes": ["c"]}, listed)
    assert check({"excludes": ["a"]}, listed)
    assert check({"first": {"id": "b"}}, listed)
    assert not check({"count": 2, "contents_in_order": ["x", "y"]}, listed)
    saved = {"m1": "id-1"}
    assert resolve(["$m1", "$$m1"], saved) == ["id-1", "$m1"]
    assert resolve({"$repeat": ["ab", 3]}, saved) == "ababab"
    with pytest.raises(CaseError):
        resolve("$nope", saved)
