"""The errors of agent_mem: one class per stable error code of the core.

Every error is an :class:`AgentMemError` whose ``code`` is an :class:`ErrorCode` (an
``IntEnum``: ``err.code == 1``, ``err.code.name == "InvalidInput"``; the table is
``tests/error_codes.json``). ``str(err)`` is the core's message. Where the core reported an
underlying cause (a SQLite or I/O error) it is chained as ``__cause__``
(:class:`CoreCause`). Errors pickle and unpickle with their class, message and code.

Some classes also derive from the built-in exception that Python (and mem0) code expects:
``InvalidInputError`` is a ``ValueError``, ``NotFoundError`` a ``LookupError``, ``IoError``
an ``OSError``.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "AgentMemError",
    "AlreadyExistsError",
    "CancelledError",
    "ClosedError",
    "CoreCause",
    "CorruptedError",
    "EmbeddingError",
    "ErrorCode",
    "InternalError",
    "InvalidInputError",
    "IoError",
    "LlmError",
    "ModelUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "StorageError",
    "UnsupportedError",
    "VectorIndexError",
]


class ErrorCode(enum.IntEnum):
    """The stable numeric codes, named as in ``tests/error_codes.json``."""

    InvalidInput = 1
    NotFound = 2
    AlreadyExists = 3
    Storage = 4
    Index = 5
    Embedding = 6
    ModelUnavailable = 7
    Llm = 8
    Plugin = 9
    PermissionDenied = 10
    Io = 11
    Corrupted = 12
    Closed = 13
    Unsupported = 14
    Internal = 15
    Cancelled = 16


class AgentMemError(Exception):
    """Base class of every agent_mem error.

    ``code`` is the :class:`ErrorCode` (a plain ``int`` for a code this version does not
    know); ``message`` the core's message, also ``str(err)``.
    """

    code: ErrorCode | int = ErrorCode.Internal

    def __init__(self, message: str = "", code: ErrorCode | int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            known = {c.value for c in ErrorCode}
            self.code = ErrorCode(code) if code in known else code

    @property
    def message(self) -> str:
        """The message, without the code."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Class, message and code survive pickling (an explicit code is in __dict__). Only the
        # message goes to the constructor: OSError would read two arguments as errno, text.
        return (type(self), (self.message,), dict(self.__dict__))


class CoreCause(Exception):
    """An underlying cause reported by the core (a SQLite, I/O or JSON error), as text."""


class InvalidInputError(AgentMemError, ValueError):
    """The input was refused (empty text, a bad filter, a NaN, an unknown option…)."""

    code = ErrorCode.InvalidInput


class NotFoundError(AgentMemError, LookupError):
    """No memory (or plugin, or plugin export) has this id."""

    code = ErrorCode.NotFound


class AlreadyExistsError(AgentMemError):
    """The object exists already."""

    code = ErrorCode.AlreadyExists


class StorageError(AgentMemError):
    """SQLite failed."""

    code = ErrorCode.Storage


class VectorIndexError(AgentMemError):
    """The vector index failed (code ``Index``)."""

    code = ErrorCode.Index


class EmbeddingError(AgentMemError):
    """The embedder failed to embed text."""

    code = ErrorCode.Embedding


class ModelUnavailableError(AgentMemError):
    """The embedding model could not be found or loaded.

    Install the default model with ``python -m agent_mem.model install``.
    """

    code = ErrorCode.ModelUnavailable


class LlmError(AgentMemError):
    """An LLM call failed."""

    code = ErrorCode.Llm


class PluginError(AgentMemError):
    """A plugin failed: a module that does not compile, a trap, a timeout or another limit,
    an answer the hook protocol does not allow, or a rejection by an ``on_add`` hook (the
    message names the plugin and gives its reason)."""

    code = ErrorCode.Plugin


class PermissionDeniedError(AgentMemError):
    """A plugin called a host function whose capability it was not granted."""

    code = ErrorCode.PermissionDenied


class IoError(AgentMemError, OSError):
    """A file-system operation failed."""

    code = ErrorCode.Io


class CorruptedError(AgentMemError):
    """A file is damaged, or is not an agent_mem store."""

    code = ErrorCode.Corrupted


class ClosedError(AgentMemError):
    """The memory was closed."""

    code = ErrorCode.Closed


class UnsupportedError(AgentMemError):
    """The operation or option is not supported."""

    code = ErrorCode.Unsupported


class InternalError(AgentMemError):
    """A bug in agent_mem."""

    code = ErrorCode.Internal


class CancelledError(AgentMemError):
    """The call was stopped before it finished (a chat stream closed part way, say); nothing
    was stored.

    Not :class:`asyncio.CancelledError`: this one is an ordinary ``Exception``, raised by
    the stream that was cancelled."""

    code = ErrorCode.Cancelled


_BY_CODE: dict[int, type[AgentMemError]] = {
    cls.code: cls
    for cls in (
        InvalidInputError,
        NotFoundError,
        AlreadyExistsError,
        StorageError,
        VectorIndexError,
        EmbeddingError,
        ModelUnavailableError,
        LlmError,
        PluginError,
        PermissionDeniedError,
        IoError,
        CorruptedError,
        ClosedError,
        UnsupportedError,
        InternalError,
        CancelledError,
    )
}


def error_class(code: int) -> type[AgentMemError]:
    """The class raised for a code (``AgentMemError`` for an unknown one)."""
    return _BY_CODE.get(code, AgentMemError)


def _from_native(code: int, message: str, causes: list[str]) -> AgentMemError:
    """Called by the native module: the exception for a core error, causes chained."""
    cls = error_class(code)
    exc = cls(message) if cls is not AgentMemError else AgentMemError(message, code)
    chained: BaseException = exc
    for text in causes:
        cause = CoreCause(text)
        chained.__cause__ = cause
        chained = cause
    return exc
