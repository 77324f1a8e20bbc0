"""Shared fixtures: stores with the deterministic hashing embedder (fast, no model) and with
the real default model (installed by tests/ensure_model.sh, which python/tests/run.sh runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agent_mem import Memory

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
