"""Shared fixtures: stores with the deterministic hashing embedder (fast, no model) and with
the real default model (installed by tests/ensure_model.sh, which python/tests/run.sh runs),
a fake LLM provider (tests/fake_llm.py, a real HTTP server on 127.0.0.1) with helpers to
script the inference pipeline's two calls, and fresh schemas on the PostgreSQL test server
(tests/postgres.sh) for the stores of test_postgres.py."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent_mem import Memory

# tests/fake_llm.py is shared with the C and Node suites: importable as `fake_llm`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fake_llm import FakeLLM, Reply, openai_chat

HASHING: dict[str, Any] = {"provider": "hashing", "dimensions": 64}


@pytest.fixture
def mem() -> Iterator[Memory]:
    """An in-memory store with the hashing embedder."""
    with Memory(embedder=HASHING) as m:
        yield m


@pytest.fixture
def model_mem() -> Iterator[Memory]:
    """An in-memory store with the real default model (all-MiniLM-L6-v2)."""
    with Memory() as m:
        yield m


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    """A fake provider answering scripted replies (``fake.push``)."""
    with FakeLLM() as server:
        yield server


def openai_llm(fake: FakeLLM, **extra: Any) -> dict[str, Any]:
    """The ``llm`` option of a store talking to the fake server as OpenAI."""
    return {
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "api_key": "sk-test-key",
        "base_url": fake.openai_base,
        "timeout_ms": 5000,
        "max_retries": 0,
        **extra,
    }


# ------------------------------------------------------------------ reading the requests


def system_prompt(request: dict[str, Any]) -> str:
    """The system prompt of an OpenAI or Anthropic chat request."""
    body = request["body"]
    if "system" in body:
        return str(body["system"])
    return str(body["messages"][0]["content"])


def user_message(request: dict[str, Any]) -> str:
    """The user turn of a chat request (the conversation, or the decision question)."""
    body = request["body"]
    return str(body["messages"][-1]["content"])


def is_extraction(request: dict[str, Any]) -> bool:
    """Whether the request is the fact-extraction call (not the decision call)."""
    return "extract the facts" in system_prompt(request)


def question(request: dict[str, Any]) -> Any:
    """The decision call's question: ``{"stored_memories": [...], "new_facts": [...]}``."""
    return json.loads(user_message(request))


def shown_id(request: dict[str, Any], text: str) -> str:
    """The small id the model was shown for a stored text."""
    stored = question(request)["stored_memories"]
    for memory in stored:
        if memory["text"] == text:
            return str(memory["id"])
    raise AssertionError(f"{text!r} was not shown: {stored}")


def facts(items: Sequence[str]) -> Reply:
    """An extraction answer."""
    return openai_chat(json.dumps({"facts": list(items)}))


def decisions(items: Sequence[dict[str, Any]]) -> Reply:
    """A decision answer."""
    return openai_chat(json.dumps({"decisions": list(items)}))


# ------------------------------------------------------------------ PostgreSQL


def pg_server() -> str:
    """The URL of the PostgreSQL test server that ``tests/postgres.sh run -- ...`` started
    (``AGENTMEM_TEST_PG_URL``). Without one the test is skipped, saying why, unless
    ``AGENTMEM_REQUIRE_POSTGRES=1``: then it fails."""
    url = os.environ.get("AGENTMEM_TEST_PG_URL", "")
    if url:
        return url
    if os.environ.get("AGENTMEM_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            "AGENTMEM_REQUIRE_POSTGRES=1 but AGENTMEM_TEST_PG_URL is not set "
            "(run the tests through tests/postgres.sh)"
        )
    pytest.skip("no PostgreSQL server (AGENTMEM_TEST_PG_URL; run through tests/postgres.sh)")


def with_search_path(server: str, schema: str) -> str:
    """The server URL with ``options=-c search_path=<schema>,public`` (public holds the
    extensions tests/postgres.sh created)."""
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}%2Cpublic"


class PgSchemas:
    """Makes empty schemas on the test server, one per store a test opens, so that tests are
    independent (core/tests/all/support/pg.rs does the same for the Rust tests)."""

    _next = itertools.count()

    def __init__(self, server: str, test: str) -> None:
        self.server = server
        self.test = re.sub(r"[^a-z0-9]+", "_", test.lower())[:32]

    def schema(self, name: str = "") -> str:
        """A new empty schema's name."""
        psycopg = _psycopg()
        schema = f"py_{self.test}_{name}_{os.getpid()}_{next(self._next)}"[:63]
        schema = re.sub(r"[^a-z0-9_]", "_", schema.lower())
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
        return schema

    def url(self, name: str = "") -> str:
        """A store URL to a new empty schema."""
        return with_search_path(self.server, self.schema(name))


def _psycopg() -> Any:
    """psycopg, which python/tests/run.sh installs: a missing one fails the test (there is a
    server to test against)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - python/tests/run.sh installs it
        pytest.fail("psycopg is needed to make test schemas: pip install 'psycopg[binary]'")
    return psycopg


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PgSchemas:
    """Fresh schemas on the PostgreSQL test server (the test is skipped without one)."""
    return PgSchemas(pg_server(), request.node.name)
