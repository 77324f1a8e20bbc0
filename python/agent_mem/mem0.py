"""A drop-in for mem0's open-source ``Memory`` and ``AsyncMemory``.

Existing mem0 code changes its import and nothing else::

    from agent_mem.mem0 import Memory      # was: from mem0 import Memory

    m = Memory()                           # local model, store under ~/.agent_mem/mem0.db
    m.add("I'm vegetarian and allergic to nuts", user_id="alice")
    m.search("what can alice eat?", user_id="alice", limit=3)                # mem0 1.0.x style
    m.search("what can alice eat?", filters={"user_id": "alice"}, top_k=3)   # mem0 2.x style

Both call styles of mem0 are accepted: the classic one (ids as keywords, ``limit``, default
100) and the 2.x one (ids inside ``filters``, ``top_k``, default 20, ``threshold``). Results
have mem0's shapes: ``{"results": [{"id", "memory", "hash", "metadata", "score",
"created_at", "updated_at", "user_id", …}]}`` with identity keys (``user_id``,
``agent_id``, ``run_id``, ``actor_id``, ``role``) promoted out of ``metadata``; history rows
are ``{"id", "memory_id", "old_memory", "new_memory", "event", "created_at",
"updated_at", "is_deleted", "actor_id", "role"}``.

**Inference.** With an ``llm`` section in the config (``Memory.from_config({"llm":
{"provider": "openai", "config": {"model": "gpt-4.1-nano"}}})``), ``add(..., infer=True)``
(mem0's default) works as in mem0: the model extracts facts from the conversation, then
decides for each whether to ADD it, UPDATE or DELETE a similar stored memory, or leave things
as they are; the result lists the changes, ``{"results": [{"id", "memory", "event":
"ADD" | "UPDATE" | "DELETE", "previous_memory"?}]}``. The model's calls and the changes are
made by agent_mem's core: one extraction call, one decision call only when similar memories
are stored, all changes in one transaction (nothing is written if a call fails: an
:class:`~agent_mem.LlmError` is raised), and history rows naming the model. Providers:
``openai``, ``anthropic``, ``deepseek``, ``ollama``, ``lmstudio``, ``vllm``, ``litellm`` (a
LiteLLM proxy: give ``base_url``), and any OpenAI-compatible service as ``openai`` with
``openai_base_url``. ``memory_type="procedural_memory"`` (with an ``agent_id``) has the model
summarise the run into one procedural memory, as in mem0. ``infer=False`` never calls the
model.

Where this differs from mem0, on purpose or for now:

- **Without an LLM** in the config, ``add(..., infer=True)`` stores the messages as given,
  one memory per non-system message (roles ``user``, ``assistant`` and ``tool``; a message
  of another role is skipped with a warning), exactly like ``infer=False``, and says so with a
  :class:`Mem0CompatWarning` (mem0 would default to OpenAI). agent_mem never calls a model
  that the config does not name, even when ``OPENAI_API_KEY`` is set. Pass ``infer=False`` to
  silence the warning. ``memory_type="procedural_memory"`` then stores the messages as
  procedural memories.
- **NONE is not reported**: as in mem0, facts that changed nothing are left out of
  ``add``'s results. Decisions are checked, not trusted: a fact already stored word for word
  is never re-added, a memory restating a fact of the call is never deleted, a fact the model
  forgets is still added, and scope and metadata come from the call, never from the model.
- **Prompts**: ``custom_fact_extraction_prompt`` replaces the extraction prompt (it must
  ask for ``{"facts": [...]}``, as mem0's does). ``custom_update_memory_prompt`` is *not*
  applied, with a :class:`Mem0CompatWarning`: it asks for mem0's answer format, which
  agent_mem's decision step does not read. ``add(prompt=...)`` is used for procedural
  memories only, as in mem0.
- **chat answers**: mem0's ``chat(query)`` raises ``NotImplementedError``; here, with an
  ``llm`` configured, ``chat(query, user_id=...)`` recalls the memories that bear on the
  query, has the model answer with them and remembers the exchange (``remember="off"`` or
  ``"background"`` to skip or defer that), and returns the answer's text. Without an
  ``llm`` it raises :class:`~agent_mem.UnsupportedError`.
- **Exact duplicates are stored once**: adding a message whose text is already stored in the
  same scope returns the existing id with ``"event": "NONE"`` (``infer=False`` or no LLM).
- **Store location**: ``Memory()`` keeps everything (memories, vectors, history) in one file,
  ``$AGENTMEM_MEM0_DIR/mem0.db``, by default ``~/.agent_mem/mem0.db`` (mem0's own
  ``MEM0_DIR`` is left alone). ``from_config`` maps mem0 config dicts, see
  :meth:`Memory.from_config`.
- **get_all pagination**: mem0 returns at most ``top_k=20`` (2.x) or ``limit=100`` (classic)
  memories and silently drops the rest. Here the same defaults apply, but ``limit=None`` /
  ``top_k=None`` returns every memory, and ``page=`` / ``page_size=`` return one page with
  ``"total"`` and ``"next_page"``. Memories come newest first.
- **Expiry**: ``add(..., expiration_date="2025-12-31")`` (a date, datetime or ISO string)
  hides the memory from ``search`` and ``get_all`` once it has passed, unless they are
  called with ``include_expired=True``; ``get`` by id still returns it.
- ``update`` merges ``metadata`` into the stored metadata, as mem0 does, in one transaction
  (concurrent updates never lose each other's keys); ``actor_id`` and ``role`` (who said the
  message) are never changed by it. ``delete`` of an
  unknown id raises :class:`MemoryNotFoundError` (a ``ValueError`` and a ``LookupError``);
  ``get`` of an unknown id returns None and ``history`` of one ``[]``, as in mem0.
- Metadata keys naming identity fields (``user_id``, ``agent_id``, ``run_id``, ``id``,
  ``hash``, ``created_at``…) are dropped from ``metadata``; the caller's dict is never
  mutated.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import os
import warnings
from collections.abc import Callable, Coroutine, Generator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast
from urllib.parse import quote

from . import _native
from .exceptions import InvalidInputError, NotFoundError, UnsupportedError

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

__all__ = [
    "DEFAULT_DIR_ENV",
    "AsyncMemory",
    "Mem0CompatWarning",
    "Memory",
    "MemoryNotFoundError",
    "default_dir",
]

#: The environment variable naming the directory of the default store.
DEFAULT_DIR_ENV = "AGENTMEM_MEM0_DIR"
#: The default store's file name in that directory (a collection_name renames it).
DEFAULT_COLLECTION = "mem0"

# mem0's entity ids, and what is never taken from caller metadata (the core's identity
# fields, plus mem0's own payload keys).
_ENTITY_IDS = ("user_id", "agent_id", "run_id")
_RESERVED_METADATA = frozenset(_native.RESERVED_METADATA_KEYS) | {"data", "text_lemmatized"}
# Stored in metadata, reported at the top level of a result (as mem0 does).
_PROMOTED_METADATA = ("actor_id", "role", "attributed_to")
# Who said the message a memory was stored from (add without inference): update keeps them.
_MESSAGE_ORIGIN = ("actor_id", "role")
_PROCEDURAL = "procedural_memory"
_KINDS = frozenset(
    {"episodic", "semantic", "procedural", "working", "contextual", "knowledge", "resource", "core"}
)
_CLASSIC_LIMIT = 100
_V2_TOP_K = 20
_MAX_PAGE = 10_000
# The largest offset the core takes (a signed 64-bit integer).
_MAX_OFFSET = 2**63 - 1
# Nesting the native module takes (its MAX_DEPTH): deeper metadata or filters are refused
# here first, without recursion (copy.deepcopy would raise RecursionError).
_MAX_DEPTH = 128

_INFER_WARNING = (
    "agent_mem.mem0: no LLM is configured, so infer=True stored the messages as given (one "
    "memory per non-system message, no fact extraction or deduplication by meaning). Configure "
    "one with Memory.from_config({'llm': {...}}), or pass infer=False to store raw messages "
    "without this warning."
)
# Roles a conversation sent to the model may have (the core refuses others).
_CHAT_ROLES = frozenset({"user", "assistant", "system", "tool"})

T = TypeVar("T")
_Call = tuple[str, Any]
_Op = Generator[_Call, Any, T]
Messages = Union[str, Mapping[str, Any], Sequence[Mapping[str, Any]]]


class Mem0CompatWarning(UserWarning):
    """A mem0 feature was asked for that agent_mem does not provide (yet), and what was done
    instead."""


class MemoryNotFoundError(NotFoundError, ValueError):
    """No memory has this id: a ``NotFoundError`` that mem0 code catches as ``ValueError``."""


class _Default:
    """The default of ``limit``/``top_k``: mem0's cap for the call style (None is no cap)."""

    def __repr__(self) -> str:
        return "<mem0 default>"


_DEFAULT: Any = _Default()


def default_dir() -> Path:
    """``$AGENTMEM_MEM0_DIR``, else ``~/.agent_mem``: where ``Memory()`` keeps its store."""
    configured = os.environ.get(DEFAULT_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".agent_mem"


# --------------------------------------------------------------------------- config


class _Settings:
    """What a mem0 config becomes: the store to open, with its open options (embedder, and
    the ``llm`` and ``prompts`` of inference)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.directory: Path | None = None
        self.collection = DEFAULT_COLLECTION
        self.options: dict[str, Any] = {}

    def store_path(self) -> str:
        if self.path is not None:
            return self.path
        directory = self.directory or default_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory / f"{self.collection}.db")


_CONFIG_KEYS = frozenset(
    {
        "vector_store",
        "llm",
        "embedder",
        "history_db_path",
        "graph_store",
        "reranker",
        "version",
        "custom_fact_extraction_prompt",
        "custom_update_memory_prompt",
        "custom_instructions",
    }
)
_DEFAULT_MODELS = frozenset(
    {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "multi-qa-MiniLM-L6-cos-v1"}
)
_STORE_KEYS_USED = frozenset({"path", "collection_name"})
_AGENT_MEM_STORE_KEYS = frozenset({"path", "persist_index", "index", "search"})
# mem0's pgvector settings that make the server URL; mem0's default database name.
_PG_CONNECTION_KEYS = ("user", "password", "host", "port", "dbname", "sslmode")
_PG_DEFAULT_DBNAME = "postgres"
# The vector size of agent_mem's default embedder (all-MiniLM-L6-v2).
_LOCAL_DIMENSIONS = _native.DEFAULT_MODEL_DIMENSIONS


def _section(config: Mapping[str, Any], name: str) -> tuple[str | None, dict[str, Any]]:
    section = config.get(name)
    if section is None:
        return None, {}
    if not isinstance(section, Mapping):
        raise InvalidInputError(f"config {name}: expected {{'provider': ..., 'config': {{...}}}}")
    provider = section.get("provider")
    inner = section.get("config") or {}
    if hasattr(inner, "model_dump"):
        inner = inner.model_dump()
    if not isinstance(inner, Mapping):
        raise InvalidInputError(f"config {name}.config must be a dict")
    return (None if provider is None else str(provider)), dict(inner)


class _Provider:
    """How one mem0 provider maps onto agent_mem's ``llm`` or ``embedder`` options: the core's
    provider, the mem0 keys holding its base URL, and mem0's defaults for a local server."""

    def __init__(
        self,
        core: str,
        url_keys: tuple[str, ...] = (),
        *,
        url_env: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        key_env: str | None = None,
        ollama: bool = False,
        json_mode: bool | None = None,
    ) -> None:
        self.core = core
        self.url_keys = (*url_keys, "base_url")
        self.url_env = url_env
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.key_env = key_env
        self.ollama = ollama
        self.json_mode = json_mode


# mem0 LLM providers. Keys and base URLs left out come from the core's environment variables
# (OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, DEEPSEEK_API_KEY, OLLAMA_HOST…), then
# from mem0's own variable names (url_env, key_env), then mem0's defaults for local servers.
_LLM_PROVIDERS: dict[str, _Provider] = {
    "openai": _Provider("openai", ("openai_base_url",), url_env="OPENAI_API_BASE"),
    "openai_structured": _Provider("openai", ("openai_base_url",), url_env="OPENAI_API_BASE"),
    "anthropic": _Provider("anthropic", ("anthropic_base_url",)),
    "deepseek": _Provider("deepseek", ("deepseek_base_url",), url_env="DEEPSEEK_API_BASE"),
    "ollama": _Provider("ollama", ("ollama_base_url",), model="llama3.1:70b", ollama=True),
    # LM Studio serves json_schema but not json_object response formats: plain prompting.
    "lmstudio": _Provider(
        "openai_compatible",
        ("lmstudio_base_url",),
        base_url="http://localhost:1234/v1",
        model="lmstudio-community/Meta-Llama-3.1-70B-Instruct-GGUF/"
        "Meta-Llama-3.1-70B-Instruct-IQ2_M.gguf",
        api_key="lm-studio",
        json_mode=False,
    ),
    "vllm": _Provider(
        "openai_compatible",
        ("vllm_base_url",),
        base_url="http://localhost:8000/v1",
        model="Qwen/Qwen2.5-32B-Instruct",
        api_key="vllm-api-key",
        key_env="VLLM_API_KEY",
    ),
    # mem0's litellm provider is the litellm library; here it is a LiteLLM proxy server.
    "litellm": _Provider("openai_compatible", ("api_base", "litellm_base_url")),
    # agent_mem's own provider names.
    "zhipu": _Provider("zhipu"),
    "moonshot": _Provider("moonshot"),
    "openai_compatible": _Provider("openai_compatible"),
}
_EMBEDDER_PROVIDERS: dict[str, _Provider] = {
    "openai": _Provider("openai", ("openai_base_url",), url_env="OPENAI_API_BASE"),
    "ollama": _Provider("ollama", ("ollama_base_url",), model="nomic-embed-text", ollama=True),
    "lmstudio": _Provider(
        "openai_compatible",
        ("lmstudio_base_url",),
        base_url="http://localhost:1234/v1",
        model="nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.f16.gguf",
        api_key="lm-studio",
    ),
    "zhipu": _Provider("zhipu"),
    "openai_compatible": _Provider("openai_compatible"),
}
# Passed as they are (the last three are agent_mem's own keys).
_LLM_KEYS = (
    "model",
    "api_key",
    "temperature",
    "max_tokens",
    "timeout_ms",
    "max_retries",
    "json_mode",
)
_EMBEDDER_KEYS = ("model", "api_key", "timeout_ms", "max_retries")
# Sampling knobs that mem0's own config objects always carry (top_p=0.1, top_k=1): ignored
# without a warning, since agent_mem's calls run at temperature 0 by default anyway.
_SILENT_LLM_KEYS = frozenset({"top_p", "top_k", "vision_details"})


def _base_url(provider: _Provider, config: Mapping[str, Any]) -> str | None:
    """The base URL in the mem0 config, else mem0's variable, else mem0's local default."""
    url = next((config[k] for k in provider.url_keys if config.get(k)), None)
    if url is None and provider.url_env:
        core_env = {"openai": "OPENAI_BASE_URL", "deepseek": "DEEPSEEK_BASE_URL"}.get(provider.core)
        if not (core_env and os.environ.get(core_env)):
            url = os.environ.get(provider.url_env) or None
    if url is None:
        url = provider.base_url
    if url is not None and provider.ollama:
        url = _ollama_v1(str(url))
    return None if url is None else str(url)


def _ollama_v1(url: str) -> str:
    """mem0 gives Ollama's own API root (``http://localhost:11434``); agent_mem talks to its
    OpenAI-compatible API under ``/v1``."""
    rest = url.split("://", 1)[-1].rstrip("/")
    return url.rstrip("/") + "/v1" if "/" not in rest else url


def _llm_options(provider_name: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A mem0 ``llm`` section as agent_mem's ``llm`` option, and what was not applied."""
    provider_name = provider_name.lower()
    provider = _LLM_PROVIDERS.get(provider_name)
    if provider is None:
        raise UnsupportedError(
            f"config llm provider {provider_name!r}: agent_mem calls "
            f"{', '.join(sorted(_LLM_PROVIDERS))}; for another OpenAI-compatible service use "
            "provider 'openai' with 'openai_base_url' (and its 'api_key')"
        )
    if provider_name == "litellm" and _base_url(provider, config) is None:
        raise UnsupportedError(
            "config llm provider 'litellm': agent_mem does not embed the litellm library; run a "
            "LiteLLM proxy and give its URL as 'base_url' (or 'api_base')"
        )
    options: dict[str, Any] = {"provider": provider.core}
    for key in _LLM_KEYS:
        if config.get(key) is not None:
            options[key] = config[key]
    url = _base_url(provider, config)
    if url is not None:
        options["base_url"] = url
    options.setdefault("model", provider.model)
    api_key = options.get("api_key") or (provider.key_env and os.environ.get(provider.key_env))
    options["api_key"] = api_key or provider.api_key
    if provider.json_mode is not None:
        options.setdefault("json_mode", provider.json_mode)
    used = {*_LLM_KEYS, *provider.url_keys, *_SILENT_LLM_KEYS}
    ignored = sorted(
        k
        for k, v in config.items()
        if k not in used and v not in (None, {}, [], False) and k != "enable_vision"
    )
    if config.get("enable_vision"):
        ignored.append("enable_vision (images are not read)")
    return {k: v for k, v in options.items() if v is not None}, ignored


def _remote_embedder(
    provider: _Provider, config: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A mem0 ``embedder`` section of a remote provider as agent_mem's ``embedder`` option."""
    options: dict[str, Any] = {"provider": provider.core}
    for key in _EMBEDDER_KEYS:
        if config.get(key) is not None:
            options[key] = config[key]
    url = _base_url(provider, config)
    if url is not None:
        options["base_url"] = url
    options.setdefault("model", provider.model)
    options.setdefault("api_key", provider.api_key)
    # mem0 sends embedding_dims as `dimensions` to OpenAI only; other servers ignore it there.
    dims = config.get("dimensions") or (
        config.get("embedding_dims") if provider.core in ("openai", "zhipu") else None
    )
    if dims is not None:
        options["dimensions"] = int(dims)
    used = {*_EMBEDDER_KEYS, *provider.url_keys, "dimensions", "embedding_dims"}
    ignored = sorted(k for k, v in config.items() if k not in used and v not in (None, {}, []))
    return {k: v for k, v in options.items() if v is not None}, ignored


def _pg_url(fields: Mapping[str, Any]) -> str:
    """A ``postgresql://`` URL from mem0's connection fields: user and password
    percent-encoded, ``localhost`` and mem0's database ``postgres`` by default, a socket
    directory as the host percent-encoded, ``sslmode`` as a URL parameter."""

    def text(key: str) -> str | None:
        value = fields.get(key)
        return None if value is None or value == "" else str(value)

    userinfo = ""
    user, password = text("user"), text("password")
    if user is not None or password is not None:
        userinfo = quote(user or "", safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    host = text("host") or "localhost"
    if host.startswith("/"):
        host = quote(host, safe="")
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = text("port")
    url = f"postgresql://{userinfo}{host}{'' if port is None else ':' + port}/"
    url += quote(text("dbname") or _PG_DEFAULT_DBNAME, safe="")
    sslmode = fields.get("sslmode")
    if sslmode is not None and sslmode != "":
        url += "?sslmode=" + quote(str(sslmode), safe="")
    return url


def _pgvector_store(store: Mapping[str, Any], settings: _Settings) -> tuple[int | None, list[str]]:
    """mem0's ``pgvector`` vector store: the server URL becomes the store path and ``maxconn``
    the pool size. Returns the ``embedding_model_dims`` asked for (checked against the
    embedder later) and what was not applied."""
    ignored: list[str] = []
    if store.get("connection_pool") is not None:
        raise UnsupportedError(
            "config vector_store (pgvector): connection_pool is a psycopg pool, which the Rust "
            "core cannot use; give connection_string (a postgresql:// URL) or user, password, "
            "host, port and dbname (agent_mem keeps a pool of its own: maxconn sets its size)"
        )
    conninfo = store.get("connection_string")
    if conninfo:
        # A URL or libpq's key=value pairs: the core opens either (and reads the pairs).
        conninfo = str(conninfo).strip()
        if not _native.is_postgres_location(conninfo):
            # Not quoted back: the text may hold the password.
            raise InvalidInputError(
                "config vector_store (pgvector): connection_string is neither a postgresql:// "
                "URL nor libpq's key=value pairs (starting with a keyword such as host=)"
            )
        settings.path = conninfo
        # As in mem0, the connection string wins over the separate settings.
        overridden = sorted(
            k
            for k in _PG_CONNECTION_KEYS
            if store.get(k) is not None and not (k == "dbname" and store[k] == _PG_DEFAULT_DBNAME)
        )
        if overridden:
            ignored.append(
                f"vector_store pgvector settings {overridden} (connection_string is used, as "
                "in mem0)"
            )
    else:
        settings.path = _pg_url(store)
    if store.get("maxconn") is not None:
        settings.options["postgres"] = {"pool_size": int(store["maxconn"])}
    minconn = store.get("minconn")
    if minconn is not None and int(minconn) > 1:
        ignored.append(f"vector_store pgvector minconn {minconn} (connections open as needed)")
    if store.get("collection_name") is not None:
        ignored.append(
            f"vector_store pgvector collection_name {store['collection_name']!r} (agent_mem's "
            "tables live in the first schema of the connection's search_path: give each "
            "collection a schema of its own, e.g. connection_string "
            "'postgresql://…/db?options=-csearch_path%3D<schema>%2Cpublic')"
        )
    if store.get("diskann"):
        ignored.append(
            "vector_store pgvector diskann (pgvectorscale's DiskANN index is not built; "
            "agent_mem indexes vectors with pgvector's HNSW)"
        )
    if store.get("hnsw") is False:
        ignored.append("vector_store pgvector hnsw=False (agent_mem always builds the HNSW index)")
    used = {
        *_PG_CONNECTION_KEYS,
        "connection_string",
        "connection_pool",
        "collection_name",
        "embedding_model_dims",
        "diskann",
        "hnsw",
        "minconn",
        "maxconn",
    }
    unknown = sorted(k for k, v in store.items() if k not in used and v is not None)
    if unknown:
        ignored.append(f"vector_store pgvector settings {unknown}")
    dims = store.get("embedding_model_dims")
    return (None if dims is None else int(dims)), ignored


def _embedder_dimensions(embedder: Any) -> int | None:
    """The vector size the ``embedder`` option will produce, when it is known beforehand."""
    if embedder is None or embedder == "local":
        return _LOCAL_DIMENSIONS
    if isinstance(embedder, Mapping):
        if embedder.get("provider") == "hashing":
            return int(embedder["dimensions"])
        if embedder.get("provider") != "local" and embedder.get("dimensions") is not None:
            return int(embedder["dimensions"])
    return None


def _settings_from_config(config: Mapping[str, Any]) -> tuple[_Settings, list[str]]:
    """Maps a mem0 config dict; returns the settings and what was not applied."""
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise InvalidInputError(
            f"config: unknown key(s) {unknown} (agent_mem.mem0 knows {sorted(_CONFIG_KEYS)})"
        )
    settings = _Settings()
    ignored: list[str] = []

    version = config.get("version")
    if version not in (None, "v1.1"):
        raise UnsupportedError(f"config version {version!r}: only mem0's 'v1.1' format is served")

    graph_provider, graph = _section(config, "graph_store")
    if config.get("graph_store") is not None:
        # Any provider: the graph lives in the agent_mem store, filled by inference.
        settings.options["graph"] = {"extract": True}
        ignored.append(
            f"graph_store {graph_provider or '(no provider)'}"
            + (f" config {sorted(graph)}" if graph else "")
            + ": the graph is kept in the agent_mem store itself"
        )
    reranker_provider, _ = _section(config, "reranker")
    if reranker_provider is not None:
        raise UnsupportedError(
            f"config reranker ({reranker_provider}): rerankers are not supported by agent_mem; "
            "remove reranker"
        )

    store_provider, store = _section(config, "vector_store")
    pg_dims: int | None = None
    if store_provider == "pgvector":
        pg_dims, rest = _pgvector_store(store, settings)
        ignored.extend(rest)
    elif store_provider == "agent_mem":
        extra = sorted(set(store) - _AGENT_MEM_STORE_KEYS)
        if extra:
            raise InvalidInputError(
                f"config vector_store (agent_mem): unknown key(s) {extra} "
                f"(known: {sorted(_AGENT_MEM_STORE_KEYS)})"
            )
        if store.get("path") is not None:
            settings.path = os.fspath(store["path"])
        for key in ("persist_index", "index", "search"):
            if store.get(key) is not None:
                settings.options[key] = store[key]
    elif store_provider is not None or store:
        path = store.get("path")
        if path == ":memory:":
            settings.path = ":memory:"
        elif path is not None:
            settings.directory = Path(os.fspath(path)).expanduser()
        if store.get("collection_name"):
            settings.collection = str(store["collection_name"])
        rest = sorted(k for k, v in store.items() if k not in _STORE_KEYS_USED and v is not None)
        if rest:
            ignored.append(f"vector_store {store_provider} settings {rest}")

    embedder_provider, embedder = _section(config, "embedder")
    if embedder_provider in ("agent_mem", "local"):
        model_dir = embedder.get("model_dir")
        settings.options["embedder"] = (
            {"provider": "local", "model_dir": os.fspath(model_dir)} if model_dir else "local"
        )
    elif embedder_provider == "hashing":
        dims = embedder.get("embedding_dims") or embedder.get("dimensions") or 64
        settings.options["embedder"] = {"provider": "hashing", "dimensions": int(dims)}
    elif embedder_provider == "huggingface" and embedder.get("huggingface_base_url"):
        # A Text Embeddings Inference server, which mem0 calls through its OpenAI API.
        tei = _Provider("openai_compatible", ("huggingface_base_url",), model="tei")
        remote, rest = _remote_embedder(tei, embedder)
        settings.options["embedder"] = remote
        if rest:
            ignored.append(f"embedder huggingface settings {rest}")
    elif embedder_provider in ("huggingface", "sentence_transformers"):
        model = embedder.get("model")
        if model is None or model in _DEFAULT_MODELS:
            settings.options["embedder"] = "local"
        elif Path(os.fspath(model)).expanduser().is_dir():
            settings.options["embedder"] = {
                "provider": "local",
                "model_dir": str(Path(os.fspath(model)).expanduser()),
            }
        else:
            raise UnsupportedError(
                f"config embedder huggingface model {model!r}: agent_mem runs "
                "all-MiniLM-L6-v2 or a local BERT-family model directory (give its path)"
            )
    elif embedder_provider in _EMBEDDER_PROVIDERS:
        remote, rest = _remote_embedder(_EMBEDDER_PROVIDERS[embedder_provider], embedder)
        settings.options["embedder"] = remote
        if rest:
            ignored.append(f"embedder {embedder_provider} settings {rest}")
    elif embedder_provider is not None:
        ignored.append(
            f"embedder {embedder_provider} (agent_mem embeds locally with all-MiniLM-L6-v2; "
            f"remote embedders: {', '.join(sorted(_EMBEDDER_PROVIDERS))})"
        )

    if pg_dims is not None:
        dims = _embedder_dimensions(settings.options.get("embedder"))
        if dims is not None and dims != pg_dims:
            ignored.append(
                f"vector_store pgvector embedding_model_dims {pg_dims} (the vectors are the "
                f"embedder's, {dims}-dimensional)"
            )

    llm_provider, llm = _section(config, "llm")
    if llm_provider is not None:
        settings.options["llm"], rest = _llm_options(llm_provider, llm)
        if rest:
            ignored.append(f"llm {llm_provider} settings {rest}")
    if config.get("custom_fact_extraction_prompt"):
        prompt = str(config["custom_fact_extraction_prompt"])
        settings.options["prompts"] = {"fact_extraction": prompt}
    if config.get("custom_update_memory_prompt"):
        ignored.append(
            "custom_update_memory_prompt (mem0's update prompt asks for mem0's answer format, "
            "which agent_mem's decision step does not read; its own decision prompt is used)"
        )
    if config.get("custom_instructions"):
        ignored.append(
            "custom_instructions (put extraction instructions in custom_fact_extraction_prompt, "
            'which must ask for {"facts": [...]})'
        )
    return settings, ignored


def _as_config_dict(config: Any) -> Mapping[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return config
    if hasattr(config, "model_dump"):  # mem0's own MemoryConfig (pydantic)
        return {k: v for k, v in config.model_dump().items() if k in _CONFIG_KEYS}
    raise InvalidInputError(
        f"config must be a dict (as for mem0's Memory.from_config), not {type(config).__name__}"
    )


# --------------------------------------------------------------------------- argument checks


def _entity_id(value: Any, name: str) -> str | None:
    """mem0's rule: trimmed; empty, whitespace-only or containing whitespace is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"Invalid {name}: must be a string, got {type(value).__name__}.")
    trimmed = value.strip()
    if not trimmed:
        raise InvalidInputError(
            f"Invalid {name}: cannot be empty or whitespace-only. Provide a valid identifier."
        )
    if any(c.isspace() for c in trimmed):
        raise InvalidInputError(
            f"Invalid {name}: cannot contain whitespace. Provide a valid identifier without spaces."
        )
    return trimmed


def _check_threshold(threshold: Any) -> None:
    if threshold is None:
        return
    if not isinstance(threshold, (int, float)):
        raise InvalidInputError("threshold must be a valid number")
    if not 0 <= threshold <= 1:
        raise InvalidInputError(
            f"Invalid threshold: {threshold}. Must be between 0 and 1 (inclusive)."
        )


def _check_count(value: Any, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a valid integer")
    if value < 0:
        raise InvalidInputError(f"Invalid {name}: {value}. Must be a non-negative integer.")


def _check_depth(value: Any, what: str) -> None:
    """Refuses dicts, lists and tuples nested deeper than the core takes, or containing
    themselves, with the core's error; iteratively, so any depth is answered."""
    stack: list[tuple[Any, int, bool]] = [(value, 1, False)]
    on_path: set[int] = set()
    while stack:
        item, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            continue
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > _MAX_DEPTH or id(item) in on_path:
            raise InvalidInputError(
                f"{what}: nested deeper than {_MAX_DEPTH} levels (or contains itself)"
            )
        on_path.add(id(item))
        stack.append((item, depth, True))
        stack.extend((child, depth + 1, False) for child in children)


def _selection(
    user_id: Any, agent_id: Any, run_id: Any, filters: Mapping[str, Any] | None, what: str
) -> tuple[dict[str, str], dict[str, Any] | None, bool]:
    """Splits ids (keywords win over filters, as in mem0) from the other filters.

    Returns (scope, remaining filters or None, classic?) and requires at least one id.
    """
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidInputError(f"filters must be a dict, not {type(filters).__name__}")
    _check_depth(filters, "filters")
    rest = copy.deepcopy(dict(filters)) if filters else {}
    given = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
    classic = any(v is not None for v in given.values())
    scope: dict[str, str] = {}
    for name in _ENTITY_IDS:
        value = given[name]
        # A plain id in filters is a scope; "*" (any) and operators stay filters for the core.
        if value is None and isinstance(rest.get(name), str) and rest[name] != "*":
            value = rest[name]
        if value is not None:
            rest.pop(name, None)
            scope[name] = _entity_id(value, name)  # type: ignore[assignment]
    if not scope and not any(name in rest for name in _ENTITY_IDS):
        raise InvalidInputError(
            f"{what}: at least one of 'user_id', 'agent_id' or 'run_id' must be provided "
            "(as a keyword or in filters)."
        )
    return scope, (rest or None), classic


def _limit(limit: Any, top_k: Any, classic: bool) -> int | None:
    """The effective cap (None: no cap) from mem0's two spellings."""
    given = [v for v in (limit, top_k) if v is not _DEFAULT]
    if len(given) == 2 and limit != top_k:
        raise InvalidInputError("give either limit (mem0 1.x) or top_k (mem0 2.x), not both")
    if not given:
        return _CLASSIC_LIMIT if classic else _V2_TOP_K
    value = given[0]
    _check_count(value, "top_k" if top_k is not _DEFAULT else "limit")
    return None if value is None else int(value)


def _clean_metadata(metadata: Any) -> dict[str, Any]:
    """A deep copy without identity keys (never the caller's dict)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(metadata).__name__}")
    _check_depth(metadata, "metadata")
    return {k: copy.deepcopy(v) for k, v in metadata.items() if k not in _RESERVED_METADATA}


def _time(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return str(value.isoformat())
    if isinstance(value, _dt.date):
        return str(value.isoformat())
    if isinstance(value, str):
        return value
    raise InvalidInputError(f"{name} must be a date, a datetime or an ISO 8601 string")


def _moments(as_of: Any, valid_at: Any) -> dict[str, Any]:
    """The agent_mem extensions that place a read in time, as request fields."""
    out: dict[str, Any] = {}
    if as_of is not None:
        out["as_of"] = _time(as_of, "as_of")
    if valid_at is not None:
        out["valid_at"] = _time(valid_at, "valid_at")
    return out


def _kind(memory_type: Any) -> str | None:
    if memory_type is None:
        return None
    if memory_type == _PROCEDURAL:
        return "procedural"
    if memory_type in _KINDS:
        return str(memory_type)
    raise InvalidInputError(
        f"Invalid 'memory_type' {memory_type!r}. Please pass {_PROCEDURAL} to create procedural "
        f"memories (agent_mem also takes its own kinds: {sorted(_KINDS)})."
    )


def _messages(messages: Any, *, for_model: bool) -> list[dict[str, Any]]:
    """mem0's message forms as a list of ``role``, ``content`` (and ``name``) dicts for the
    core's ``add_messages``. System messages are kept ``for_model`` (context for fact
    extraction, as in mem0), else dropped (never stored); roles the core does not take are
    skipped with a warning."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    elif isinstance(messages, Mapping):
        messages = [messages]
    elif not isinstance(messages, Sequence):
        raise InvalidInputError(
            f"messages must be str, dict, or list[dict], not {type(messages).__name__}"
        )
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if (
            not isinstance(message, Mapping)
            or message.get("role") is None
            or message.get("content") is None
        ):
            warnings.warn(
                f"agent_mem.mem0: skipping messages[{i}]: not a dict with 'role' and 'content'",
                Mem0CompatWarning,
                stacklevel=5,
            )
            continue
        if not isinstance(message["content"], str):
            raise UnsupportedError(
                f"messages[{i}]: only text content is supported (images are not read)"
            )
        if message["role"] == "system" and not for_model:
            continue
        if message["role"] not in _CHAT_ROLES:
            what = "sent to the model" if for_model else "stored"
            warnings.warn(
                f"agent_mem.mem0: skipping messages[{i}]: role {message['role']!r} is not "
                f"{what} (only {sorted(_CHAT_ROLES)})",
                Mem0CompatWarning,
                stacklevel=5,
            )
            continue
        kept = {"role": message["role"], "content": message["content"]}
        if message.get("name"):
            kept["name"] = str(message["name"])
        out.append(kept)
    return out


# --------------------------------------------------------------------------- result shapes


def _ts(value: Any) -> Any:
    """The store's ``…Z`` times as ``…+00:00``, which datetime.fromisoformat reads on 3.9."""
    if isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return value


def _item(
    record: Mapping[str, Any], *, score: Any = None, with_score: bool = True
) -> dict[str, Any]:
    """A core record in mem0's MemoryItem shape."""
    metadata = dict(record.get("metadata") or {})
    item: dict[str, Any] = {
        "id": record["id"],
        "memory": record["content"],
        "hash": record.get("hash"),
        "metadata": None,
        "score": score,
        "created_at": _ts(record.get("created_at")),
        "updated_at": _ts(record.get("updated_at")),
    }
    if not with_score:
        del item["score"]
    for key in _ENTITY_IDS:
        if record.get(key) is not None:
            item[key] = record[key]
    for key in _PROMOTED_METADATA:
        if key in metadata:
            item[key] = metadata.pop(key)
    if record.get("kind") == "procedural":
        metadata.setdefault("memory_type", _PROCEDURAL)
    if record.get("expires_at"):
        item["expiration_date"] = _ts(record["expires_at"])
    if metadata:
        item["metadata"] = metadata
    return item


def _history_rows(
    rows: Sequence[Mapping[str, Any]], record: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Core history rows in mem0's shape: ``created_at`` is when the memory was created,
    ``updated_at`` when this change happened (as mem0 records them)."""
    metadata = (record or {}).get("metadata") or {}
    created = _ts(rows[0]["created_at"]) if rows else None
    return [
        {
            "id": row["id"],
            "memory_id": row["memory_id"],
            "old_memory": row.get("old_content"),
            "new_memory": row.get("new_content"),
            "event": row["event"],
            "created_at": created,
            "updated_at": _ts(row["created_at"]),
            "is_deleted": bool(row.get("is_deleted")),
            "actor_id": metadata.get("actor_id"),
            "role": metadata.get("role"),
        }
        for row in rows
    ]


# --------------------------------------------------------------------------- operations
#
# Each method is written once, as a generator that takes the store and the method's
# arguments, yields the core operations it needs (("get", {"id": id}), …: a name and a
# request of the one dispatch) and receives their results; the sync class runs them
# directly, the async class awaits them on a worker (_blocking, _awaiting). Native errors
# are thrown back into the generator at the yield.


def _op_add(
    store: _Base,
    messages: Messages,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    infer: bool = True,
    memory_type: str | None = None,
    prompt: str | None = None,
    expiration_date: str | _dt.date | None = None,
) -> _Op[dict[str, Any]]:
    """Remembers messages (a str, a message dict, or a list of them); at least one id.

    With an ``llm`` configured and ``infer=True``: facts are extracted and reconciled,
    ``{"results": [{"id", "memory", "event", "previous_memory"?}]}`` (changes only).
    Otherwise each non-system message is stored, ``{"results": [{"id", "memory",
    "event", "actor_id", "role"}]}``."""
    has_llm = store.llm is not None
    scope = {
        k: v
        for k, v in (
            ("user_id", _entity_id(user_id, "user_id")),
            ("agent_id", _entity_id(agent_id, "agent_id")),
            ("run_id", _entity_id(run_id, "run_id")),
        )
        if v is not None
    }
    if not scope:
        raise InvalidInputError(
            "At least one of 'user_id', 'agent_id', or 'run_id' must be provided."
        )
    kind = _kind(memory_type)
    base = _clean_metadata(metadata)
    expires_at = _time(expiration_date, "expiration_date")
    if infer and has_llm:
        conversation = _messages(messages, for_model=True)
        if all(m["role"] == "system" for m in conversation):
            return {"results": []}
        # mem0 rewrites a memory in place (UPDATE) or deletes it (DELETE): its old text
        # stays among the memory's versions, but no superseding memory is made.
        request: dict[str, Any] = {
            "messages": conversation,
            "metadata": base,
            "supersede": False,
            **scope,
        }
        if kind is not None:
            request["kind"] = kind
        if expires_at is not None:
            request["expires_at"] = expires_at
        if kind == "procedural" and prompt is not None:
            request["prompt"] = prompt  # mem0 reads `prompt` for procedural memories only
        events = yield ("add_messages", request)
        return {"results": [_event(e) for e in events if e["event"] != "NONE"]}
    parsed = _messages(messages, for_model=False)
    if infer:
        warnings.warn(_INFER_WARNING, Mem0CompatWarning, stacklevel=4)
    if not parsed:
        return {"results": []}
    # The core stores each message as given, its role (and name as actor_id) in the metadata.
    request = {"messages": parsed, "infer": False, "metadata": base, **scope}
    if kind is not None:
        request["kind"] = kind
    if expires_at is not None:
        request["expires_at"] = expires_at
    events = yield ("add_messages", request)
    return {
        "results": [
            {
                "id": e["id"],
                "memory": e["memory"],
                "event": e["event"],
                "actor_id": e.get("actor_id"),
                "role": e.get("role"),
            }
            for e in events
        ]
    }


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A core event in mem0's shape (``previous_memory`` only on UPDATE)."""
    out = {"id": event["id"], "memory": event["memory"], "event": event["event"]}
    if event.get("previous_memory") is not None:
        out["previous_memory"] = event["previous_memory"]
    return out


def _op_get(
    store: _Base, memory_id: str, *, as_of: str | _dt.datetime | None = None
) -> _Op[dict[str, Any] | None]:
    """The memory in mem0's shape, or None. ``as_of`` (an agent_mem extension): the
    version current at that moment, None if the memory did not exist then."""
    request: dict[str, Any] = {"id": memory_id}
    if as_of is not None:
        request["as_of"] = _time(as_of, "as_of")
    try:
        record = yield ("get", request)
    except NotFoundError:
        return None
    return _item(record)


def _op_get_all(
    store: _Base,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    limit: int | None = _DEFAULT,
    top_k: int | None = _DEFAULT,
    page: int | None = None,
    page_size: int | None = None,
    include_expired: bool = False,
    as_of: str | _dt.datetime | None = None,
    valid_at: str | _dt.datetime | None = None,
) -> _Op[dict[str, Any]]:
    """Memories of a scope, newest first: ``{"results": [...]}``. Capped like mem0
    (``limit`` 100 classic, ``top_k`` 20 with filters); None for no cap; ``page`` and
    ``page_size`` for one page (then also ``total``, the number of memories selected,
    expired ones only with ``include_expired``, counted with the page from one snapshot,
    and ``next_page``, None on the last page). ``as_of`` and ``valid_at`` (agent_mem
    extensions): the memories as they stood at that moment, those valid at that moment."""
    scope, rest, classic = _selection(user_id, agent_id, run_id, filters, "get_all")
    request: dict[str, Any] = {**scope, "include_expired": bool(include_expired)}
    request.update(_moments(as_of, valid_at))
    if rest is not None:
        request["filters"] = rest
    if page is not None or page_size is not None:
        page = 1 if page is None else page
        size = _CLASSIC_LIMIT if page_size is None else page_size
        _check_count(page, "page")
        _check_count(size, "page_size")
        if page < 1 or size < 1:
            raise InvalidInputError("page and page_size start at 1")
        offset = (page - 1) * size
        if offset > _MAX_OFFSET:
            raise InvalidInputError(
                f"page {page} of page_size {size} starts at item {offset}: offset must be at "
                f"most {_MAX_OFFSET}"
            )
        listed = yield (
            "list",
            {**request, "limit": size, "offset": offset, "with_total": True},
        )
        return {
            "results": [_item(r, with_score=False) for r in listed["items"]],
            "total": listed["total"],
            "page": page,
            "page_size": size,
            "next_page": page + 1 if listed["next_cursor"] is not None else None,
        }
    cap = _limit(limit, top_k, classic)
    records: list[Any] = []
    cursor = None
    while cap is None or len(records) < cap:
        want = _MAX_PAGE if cap is None else min(_MAX_PAGE, cap - len(records))
        if want == 0:
            break
        listed = yield ("list", {**request, "limit": want, "cursor": cursor})
        records.extend(listed["items"])
        cursor = listed["next_cursor"]
        if cursor is None:
            break
    out: dict[str, Any] = {"results": [_item(r, with_score=False) for r in records]}
    if _graph_on(store):
        relations = yield ("graph_relations", {**_graph_scope(scope), "limit": _MAX_PAGE})
        out["relations"] = [_relation(r) for r in relations]
    return out


def _graph_on(store: _Base) -> bool:
    """Whether the config had a ``graph_store`` (the graph is then filled and reported)."""
    return bool(store._settings.options.get("graph"))


def _graph_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The scope ids of a selection, as the graph reads them."""
    return {k: v for k, v in scope.items() if k in ("user_id", "agent_id", "run_id")}


def _relation(relation: Mapping[str, Any]) -> dict[str, Any]:
    """A relation in mem0's graph shape (``destination`` in search, ``target`` in
    ``get_all`` in mem0 1.x: both are given)."""
    return {
        "source": relation["subject_name"],
        "relationship": relation["predicate"],
        "destination": relation["object_name"],
        "target": relation["object_name"],
    }


def _op_search(
    store: _Base,
    query: str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    limit: int | None = _DEFAULT,
    filters: Mapping[str, Any] | None = None,
    top_k: int | None = _DEFAULT,
    threshold: float | None = None,
    rerank: bool = False,
    explain: bool = False,
    include_expired: bool = False,
    mode: str | None = None,
    as_of: str | _dt.datetime | None = None,
    valid_at: str | _dt.datetime | None = None,
) -> _Op[dict[str, Any]]:
    """Hybrid search (meaning + keywords) in a scope: ``{"results": [...]}``, best first,
    each with ``score`` (0..1, 1 = first in every engine). ``threshold`` is a minimum
    cosine similarity; ``explain=True`` adds ``score_details``; ``mode`` picks another
    agent_mem search mode (``vector``, ``keyword``, ``phrase``, ``fuzzy``). ``rerank`` is
    accepted and has no effect (no reranker can be configured). ``as_of`` and ``valid_at``
    (agent_mem extensions) search the memories as they stood at that moment, or those
    valid at that moment."""
    _check_threshold(threshold)
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("Invalid query: cannot be empty or whitespace-only.")
    scope, rest, classic = _selection(user_id, agent_id, run_id, filters, "search")
    cap = _limit(limit, top_k, classic)
    if cap == 0:
        return {"results": []}
    request: dict[str, Any] = {
        "query": query.strip(),
        **scope,
        "limit": min(cap, _MAX_PAGE) if cap is not None else _MAX_PAGE,
        "include_expired": bool(include_expired),
    }
    if rest is not None:
        request["filters"] = rest
    if threshold is not None:
        request["threshold"] = float(threshold)
    if mode is not None:
        request["mode"] = mode
    request.update(_moments(as_of, valid_at))
    hits = yield ("search", request)
    results = []
    for hit in hits:
        item = _item(hit, score=hit["score"])
        if explain:
            item["score_details"] = {"similarity": hit.get("similarity"), **hit["explain"]}
        results.append(item)
    out: dict[str, Any] = {"results": results}
    if _graph_on(store):
        relations = yield ("graph_relations", {**_graph_scope(scope), "about": query.strip()})
        out["relations"] = [_relation(r) for r in relations]
    return out


def _op_update(
    store: _Base,
    memory_id: str,
    data: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    text: str | None = None,
) -> _Op[dict[str, str]]:
    """New content (``data`` or ``text``) and/or metadata merged into the stored one."""
    if data is not None and text is not None and data != text:
        raise InvalidInputError("give the new content as data= or text=, not both")
    content = data if data is not None else text
    if content is None and metadata is None:
        raise InvalidInputError("update needs the new content (data=) or metadata")
    request: dict[str, Any] = {}
    if content is not None:
        request["content"] = content
    if metadata is not None:
        # mem0 merges new metadata into the stored one (the core does, in the update's own
        # transaction); actor_id and role, who said the message, are never changed.
        patch = _clean_metadata(metadata)
        for key in _MESSAGE_ORIGIN:
            patch.pop(key, None)
        request["metadata"] = patch
        request["merge_metadata"] = True
    try:
        yield ("update", {**request, "id": memory_id})
    except NotFoundError as e:
        raise MemoryNotFoundError(f"Memory with id {memory_id} not found") from e
    return {"message": "Memory updated successfully!"}


def _op_delete(store: _Base, memory_id: str) -> _Op[dict[str, str]]:
    """Deletes a memory; :class:`MemoryNotFoundError` (a ``ValueError``) if none."""
    try:
        yield ("delete", {"id": memory_id})
    except NotFoundError as e:
        raise MemoryNotFoundError(f"Memory with id {memory_id} not found") from e
    return {"message": "Memory deleted successfully!"}


def _op_delete_all(
    store: _Base,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    *,
    filters: Mapping[str, Any] | None = None,
) -> _Op[dict[str, str]]:
    """Deletes every memory of a scope (one id at least; ``reset`` deletes everything)."""
    if user_id is None and agent_id is None and run_id is None and not filters:
        raise InvalidInputError(
            "At least one filter is required to delete all memories. If you want to delete all "
            "memories, use the `reset()` method."
        )
    scope, rest, _ = _selection(user_id, agent_id, run_id, filters, "delete_all")
    request: dict[str, Any] = dict(scope)
    if rest is not None:
        request["filters"] = rest
    yield ("delete_all", request)
    return {"message": "Memories deleted successfully!"}


def _op_chat(
    store: _Base,
    query: Messages,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
    limit: int | None = None,
    threshold: float | None = None,
    remember: str = "inline",
    prompt: str | None = None,
    session_window: int = 0,
) -> _Op[str]:
    """Answers ``query`` with the configured ``llm``, given the memories that bear on it,
    and remembers the exchange; returns the answer's text.

    mem0 declares ``chat(query)`` and raises ``NotImplementedError``; this one answers.
    ``query`` is the user's message, or a conversation in ``add``'s message forms whose
    last message is the user's. The scope is given as to :meth:`search` (ids as keywords
    or in ``filters``; the other filters narrow what is recalled); memories are recalled
    from every run of it. agent_mem's extras: ``limit`` (how many memories the search
    recalls), ``threshold`` (their least score), ``remember`` (``"inline"``, the default:
    the exchange goes through inference as in ``add`` before the answer is returned;
    ``"background"``; ``"off"``), ``prompt`` (a system prompt for this call; it must
    contain ``{memories}``, where the recalled memories are listed) and
    ``session_window`` (default 0: no turn is kept as working memory, so ``get_all`` and
    ``search`` show only what inference stored; ``6``, say, keeps each turn for a day as a
    working memory of the scope and recalls the session's latest turns). The whole reply
    (the memories given to the model, the ones the answer cites, what was remembered) and a
    streamed answer come from the native API on the same store:
    :meth:`agent_mem.Memory.chat` and :meth:`agent_mem.Memory.chat_stream`.

    Unlike ``add``, remembering keeps a memory the model replaces (closed, and hidden from
    ``search`` and ``get_all``) rather than rewriting it in place. ``UnsupportedError``
    without an ``llm`` in the config; ``LlmError`` when the model fails (nothing is stored
    then)."""
    _check_threshold(threshold)
    _check_count(limit, "limit")
    _check_count(session_window, "session_window")
    scope, rest, _ = _selection(user_id, agent_id, run_id, filters, "chat")
    if store.llm is None:
        raise UnsupportedError(
            "chat needs an LLM: configure one with Memory.from_config({'llm': {...}})"
        )
    request: dict[str, Any] = {
        "messages": _messages(query, for_model=True),
        "remember": remember,
        "session_window": session_window,
        **scope,
    }
    if rest is not None:
        request["filters"] = rest
    if limit is not None:
        request["limit"] = limit
    if threshold is not None:
        request["threshold"] = float(threshold)
    if prompt is not None:
        request["prompt"] = prompt
    reply = yield ("chat", request)
    return str(reply["answer"])


def _op_history(store: _Base, memory_id: str) -> _Op[list[dict[str, Any]]]:
    """The memory's changes, oldest first, in mem0's row shape (``[]`` if none)."""
    try:
        rows = yield ("history", {"id": memory_id})
    except NotFoundError:
        return []
    try:
        record = yield ("get", {"id": memory_id})
    except NotFoundError:
        record = None
    return _history_rows(rows, record)


def _run(native: _native.NativeMemory, op: _Op[T]) -> T:
    """Runs an operation with blocking native calls."""
    try:
        name, request = next(op)
        while True:
            try:
                result = native.call(name, request)
            except NotFoundError as e:
                name, request = op.throw(e)
                continue
            name, request = op.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _run_async(native: _native.NativeMemory, op: _Op[T]) -> T:
    """Runs an operation awaiting the native calls (on Rust worker threads)."""
    try:
        name, request = next(op)
        while True:
            try:
                result = await native.call_async(name, request)
            except NotFoundError as e:
                name, request = op.throw(e)
                continue
            name, request = op.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _method(op: Callable[..., Any], owner: str, method: Callable[..., Any]) -> Any:
    """``method`` dressed as ``owner``'s method of the same name as ``op``."""
    functools.update_wrapper(method, op)
    method.__name__ = op.__name__.removeprefix("_op_")
    method.__qualname__ = f"{owner}.{method.__name__}"
    return method


def _blocking(op: Callable[Concatenate[_Base, P], _Op[T]]) -> Callable[Concatenate[Memory, P], T]:
    """The :class:`Memory` method of an operation: its core calls run here."""

    def method(self: Memory, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return _run(self._native, op(self, *args, **kwargs))

    return cast("Callable[Concatenate[Memory, P], T]", _method(op, "Memory", method))


def _awaiting(
    op: Callable[Concatenate[_Base, P], _Op[T]],
) -> Callable[Concatenate[AsyncMemory, P], Coroutine[Any, Any, T]]:
    """The :class:`AsyncMemory` method of an operation: a coroutine awaiting its core calls
    on Rust worker threads."""

    async def method(self: AsyncMemory, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await _run_async(self._native, op(self, *args, **kwargs))

    return cast(
        "Callable[Concatenate[AsyncMemory, P], Coroutine[Any, Any, T]]",
        _method(op, "AsyncMemory", method),
    )


# --------------------------------------------------------------------------- classes


class _Base:
    _native: _native.NativeMemory
    _settings: _Settings

    def __init__(self, config: Any = None) -> None:
        settings, ignored = _settings_from_config(_as_config_dict(config))
        if ignored:
            warnings.warn(
                "agent_mem.mem0: not applied from the config: " + "; ".join(ignored),
                Mem0CompatWarning,
                stacklevel=3,
            )
        self._settings = settings
        self._native = _native.NativeMemory(settings.store_path(), settings.options or None)

    @property
    def path(self) -> str | None:
        """The store file (None in memory or on a PostgreSQL server)."""
        return self._native.path

    @property
    def location(self) -> str:
        """Where the store lives: its file, ``":memory:"``, or its PostgreSQL URL (or libpq
        connection string) with the password hidden."""
        return self._native.location

    @property
    def config(self) -> dict[str, Any]:
        """What the config became: the store path (``location`` too, which names a
        PostgreSQL store without its password) and its open options (API keys shown as
        ``"***"``)."""
        options = copy.deepcopy(self._settings.options)
        for section in ("llm", "embedder"):
            if isinstance(options.get(section), dict) and options[section].get("api_key"):
                options[section]["api_key"] = "***"
        return {"path": self._native.path, "location": self._native.location, "options": options}

    @property
    def llm(self) -> str | None:
        """The chat model as ``"provider:model"``, or None when the config has no ``llm``
        (then ``add(infer=True)`` stores messages as given, with a warning)."""
        return self._native.llm


class Memory(_Base):
    """mem0's ``Memory`` on agent_mem: see the module documentation for the differences."""

    @classmethod
    def from_config(cls, config_dict: Mapping[str, Any]) -> Memory:
        """A memory from a mem0 config dict.

        Mapped:

        - ``vector_store.config.path`` (the directory of the store; ``":memory:"`` for none)
          and ``collection_name`` (the file name); provider ``agent_mem`` takes ``path`` (a
          file, ``":memory:"`` or a ``postgresql://`` URL), ``persist_index``, ``index`` and
          ``search`` (agent_mem's open options);
        - provider ``pgvector`` opens the store in that PostgreSQL database (it needs the
          pgvector extension): ``connection_string`` (a ``postgresql://`` URL, or libpq's
          ``key=value`` form), else ``user``, ``password``, ``host`` (default
          ``localhost``), ``port``, ``dbname`` (default ``postgres``) and ``sslmode``;
          ``maxconn`` is the size of the connection pool. Not applied, with a warning:
          ``collection_name`` (the store's tables live in the connection's schema: give
          each collection a schema via the URL's ``options=-csearch_path%3D…``),
          ``diskann``, ``hnsw=False``, a ``minconn`` above 1, and an
          ``embedding_model_dims`` other than the embedder's. ``connection_pool`` (a psycopg
          pool) is refused;
        - ``llm`` (inference, see the module documentation): providers ``openai``,
          ``openai_structured``, ``anthropic``, ``deepseek``, ``ollama``, ``lmstudio``,
          ``vllm``, ``litellm`` (a proxy URL in ``base_url``) and agent_mem's ``zhipu``,
          ``moonshot``, ``openai_compatible``; config ``model``, ``api_key``,
          ``temperature``, ``max_tokens``, the provider's base URL (``openai_base_url``,
          ``anthropic_base_url``, ``deepseek_base_url``, ``ollama_base_url``,
          ``lmstudio_base_url``, ``vllm_base_url``, or ``base_url``) and agent_mem's
          ``timeout_ms``, ``max_retries``, ``json_mode``. Keys and URLs left out come from
          the environment (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``…) and mem0's defaults for
          local servers. ``top_p``, ``top_k`` and ``vision_details`` are ignored silently;
          other settings (proxies, OpenRouter routing…) are not applied, with a warning;
        - ``embedder``: ``openai``, ``ollama``, ``lmstudio`` (and agent_mem's ``zhipu``,
          ``openai_compatible``) call that embeddings API (``model``, ``api_key``, the base
          URL as above, ``embedding_dims`` sent as ``dimensions`` to OpenAI);
          ``huggingface`` with ``huggingface_base_url`` calls that Text Embeddings Inference
          server, without it means all-MiniLM-L6-v2 or a local model directory;
          ``local``/``agent_mem`` (``model_dir``) or ``hashing`` (tests);
        - ``custom_fact_extraction_prompt`` replaces the extraction prompt.

        ``history_db_path`` is not needed (history lives in the store). Not applied, with a
        :class:`Mem0CompatWarning`: another embedder provider (the local model is used),
        server settings of other vector stores, ``custom_update_memory_prompt`` and
        ``custom_instructions``. A ``graph_store`` (any provider) turns on agent_mem's
        own graph, kept in the same store (its connection settings are not applied, with a
        warning): ``add`` with inference stores the relations each fact states, and
        ``search`` / ``get_all`` return mem0's ``relations`` list (``source``,
        ``relationship``, ``destination`` and ``target``) beside ``results``. Refused
        (``UnsupportedError``): ``reranker``, another ``llm`` provider, a ``version``
        other than ``v1.1``, another Hugging Face model; an unknown key, or an ``llm``
        without its API key, is an ``InvalidInputError``. No model is called until
        ``add``."""
        return cls(config_dict)

    add = _blocking(_op_add)
    get = _blocking(_op_get)
    get_all = _blocking(_op_get_all)
    search = _blocking(_op_search)
    update = _blocking(_op_update)
    delete = _blocking(_op_delete)
    delete_all = _blocking(_op_delete_all)
    history = _blocking(_op_history)
    chat = _blocking(_op_chat)

    def reset(self) -> None:
        """Deletes every memory and all history."""
        self._native.call("reset")

    def close(self) -> None:
        """Saves the index and closes the store."""
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


class AsyncMemory(_Base):
    """mem0's ``AsyncMemory`` on agent_mem: the same methods as :class:`Memory`, as
    coroutines; the work runs on Rust worker threads, not in a Python thread pool."""

    @classmethod
    def from_config(cls, config_dict: Mapping[str, Any]) -> AsyncMemory:
        """See :meth:`Memory.from_config`."""
        return cls(config_dict)

    add = _awaiting(_op_add)
    get = _awaiting(_op_get)
    get_all = _awaiting(_op_get_all)
    search = _awaiting(_op_search)
    update = _awaiting(_op_update)
    delete = _awaiting(_op_delete)
    delete_all = _awaiting(_op_delete_all)
    history = _awaiting(_op_history)
    chat = _awaiting(_op_chat)

    async def reset(self) -> None:
        """See :meth:`Memory.reset`."""
        await self._native.call_async("reset")

    async def close(self) -> None:
        """See :meth:`Memory.close`."""
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
