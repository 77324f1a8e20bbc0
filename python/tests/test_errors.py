"""Errors: the code table shared by every language, the exception classes, pickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import agent_mem
from agent_mem import _native, exceptions
from agent_mem.exceptions import AgentMemError, ErrorCode

TABLE = Path(__file__).resolve().parents[2] / "tests" / "error_codes.json"
ROWS = json.loads(TABLE.read_text(encoding="utf-8"))["codes"]

# The class of each code, and the built-in it also is (where Python code expects one).
CLASSES: dict[str, tuple[type[AgentMemError], type[BaseException] | None]] = {
    "InvalidInput": (agent_mem.InvalidInputError, ValueError),
    "NotFound": (agent_mem.NotFoundError, LookupError),
    "AlreadyExists": (agent_mem.AlreadyExistsError, None),
    "Storage": (agent_mem.StorageError, None),
    "Index": (agent_mem.VectorIndexError, None),
    "Embedding": (agent_mem.EmbeddingError, None),
    "ModelUnavailable": (agent_mem.ModelUnavailableError, None),
    "Llm": (agent_mem.LlmError, None),
    "Plugin": (agent_mem.PluginError, None),
    "PermissionDenied": (agent_mem.PermissionDeniedError, None),
    "Io": (agent_mem.IoError, OSError),
    "Corrupted": (agent_mem.CorruptedError, None),
    "Closed": (agent_mem.ClosedError, None),
    "Unsupported": (agent_mem.UnsupportedError, None),
    "Internal": (agent_mem.InternalError, None),
    "Cancelled": (agent_mem.CancelledError, None),
}


def test_the_table_the_enum_and_the_core_agree() -> None:
    table = [(row["code"], row["name"]) for row in ROWS]
    assert table == [(c.value, c.name) for c in ErrorCode]
    assert table == [tuple(pair) for pair in _native.error_codes()]
    assert set(CLASSES) == {name for _, name in table}


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_each_code_has_its_class(row: dict[str, object]) -> None:
    cls, builtin = CLASSES[str(row["name"])]
    assert exceptions.error_class(int(str(row["code"]))) is cls
    err = exceptions._from_native(int(str(row["code"])), "the message", [])
    assert type(err) is cls
    assert err.code == row["code"]
    assert err.code.name == row["name"]
    assert str(err) == "the message"
    assert err.message == "the message"
    assert isinstance(err, AgentMemError)
    if builtin is not None:
        assert isinstance(err, builtin)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.code == err.code
    assert str(copy) == "the message"


def test_causes_are_chained_and_unknown_codes_kept() -> None:
    err = exceptions._from_native(4, "SQLite: disk I/O error", ["disk I/O error", "EIO"])
    assert isinstance(err.__cause__, exceptions.CoreCause)
    assert str(err.__cause__) == "disk I/O error"
    assert str(err.__cause__.__cause__) == "EIO"
    future = exceptions._from_native(99, "from a newer core", [])
    assert type(future) is AgentMemError
    assert future.code == 99
    assert pickle.loads(pickle.dumps(future)).code == 99


def test_raised_errors_are_the_classes(mem: agent_mem.Memory) -> None:
    with pytest.raises(ValueError, match="content") as bad:
        mem.add("")
    assert bad.value.code is ErrorCode.InvalidInput
    with pytest.raises(LookupError) as missing:
        mem.get("00000000-0000-0000-0000-000000000000")
    assert isinstance(missing.value, agent_mem.NotFoundError)
    assert pickle.loads(pickle.dumps(missing.value)).code is ErrorCode.NotFound
