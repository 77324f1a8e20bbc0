# Stubs of the native module (bindings/python/src/lib.rs), checked against the built module
# by `python -m mypy.stubtest agent_mem._native` in python/tests/run.sh.
#
# Requests and results are JSON-compatible Python objects with the shapes of
# core/src/wire/; agent_mem.memory types them for users.

import asyncio
from typing import Any, final

__all__ = [
    "DEFAULT_MODEL_DIMENSIONS",
    "IN_MEMORY_PATH",
    "RESERVED_METADATA_KEYS",
    "NativeMemory",
    "error_codes",
    "is_postgres_location",
    "operations",
    "shutdown",
    "version",
]

DEFAULT_MODEL_DIMENSIONS: int
IN_MEMORY_PATH: str
RESERVED_METADATA_KEYS: list[str]

def error_codes() -> list[tuple[int, str]]: ...
def is_postgres_location(location: str) -> bool: ...
def operations() -> list[str]: ...
def version() -> str: ...
def shutdown() -> None: ...

@final
class NativeMemory:
    def __new__(cls, path: str | None = None, options: Any = None) -> NativeMemory: ...
    @staticmethod
    def open_async(
        path: str | None = None, options: Any = None
    ) -> asyncio.Future[NativeMemory]: ...
    @property
    def path(self) -> str | None: ...
    @property
    def location(self) -> str: ...
    @property
    def embedding_model(self) -> str | None: ...
    @property
    def llm(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def close_async(self) -> asyncio.Future[Any]: ...
    def call(
        self,
        op: str,
        request: Any = None,
        vector: list[float] | None = None,
        vectors: list[list[float]] | None = None,
    ) -> Any: ...
    def call_async(
        self,
        op: str,
        request: Any = None,
        vector: list[float] | None = None,
        vectors: list[list[float]] | None = None,
    ) -> asyncio.Future[Any]: ...
    def copy_into(self, target: NativeMemory) -> Any: ...
    def copy_into_async(self, target: NativeMemory) -> asyncio.Future[Any]: ...
    def register_plugin(self, manifest: Any, wasm: bytes | None = None) -> Any: ...
    def register_plugin_async(
        self, manifest: Any, wasm: bytes | None = None
    ) -> asyncio.Future[Any]: ...
    def call_plugin(self, id: str, function: str, input: bytes, scope: Any = None) -> bytes: ...
    def call_plugin_async(
        self, id: str, function: str, input: bytes, scope: Any = None
    ) -> asyncio.Future[bytes]: ...
