"""WASM plugins: registration (WAT text, bytes, a file with hot reload), the add and search
hooks, direct calls, capabilities and scope, limits, errors, and the async twins.

The plugins are tiny modules in WebAssembly text (the core compiles text as well as binary)
speaking extism's kernel ABI directly, as core/tests/all/support/wat.rs does, so no wasm32 Rust
target is needed. The PII example (built by examples/plugins/build.sh) is used when present."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent_mem import (
    AlreadyExistsError,
    AsyncMemory,
    ErrorCode,
    InvalidInputError,
    Memory,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
)
from conftest import HASHING

ROOT = Path(__file__).resolve().parents[2]
PII_REDACTOR = ROOT / "target" / "wasm32-unknown-unknown" / "release" / "pii_redactor.wasm"

# ------------------------------------------------------------------ WAT plugins


@dataclass(frozen=True)
class Body:
    """What one export does: ``reply`` a constant text, ``echo`` its input, call a ``host``
    function (``am_search``…) with ``arg`` (the input when None) and answer with its result,
    ``log`` then echo, ``loop`` forever, or ``trap``."""

    op: str
    arg: str | None = None
    host: str = ""


def reply(text: str) -> Body:
    return Body("reply", text)


def reply_json(value: Any) -> Body:
    return reply(json.dumps(value))


ECHO = Body("echo")
LOOP = Body("loop")
TRAP = Body("trap")


def host(name: str, arg: str | None = None) -> Body:
    return Body("host", arg, name)


def log_then_echo(message: str) -> Body:
    return Body("log", message)


def module(**exports: Body) -> str:
    """A module in WebAssembly text exporting each ``name=body``."""
    data: list[str] = []
    funcs: list[str] = []
    at = 16

    def constant(text: str) -> str:
        """Places text in a data segment; the code copying it into extism memory."""
        nonlocal at
        raw = text.encode("utf-8")
        escaped = "".join(f"\\{b:02x}" for b in raw)
        data.append(f'  (data (i32.const {at}) "{escaped}")')
        code = f"(call $copy (i32.const {at}) (i32.const {len(raw)}))"
        at += len(raw) + 16
        return code

    for name, body in exports.items():
        if body.op == "reply":
            code = f"(local $o i64) (local.set $o {constant(body.arg or '')}) " + (
                "(call $output_set (local.get $o) (call $length (local.get $o))) (i32.const 0)"
            )
        elif body.op == "echo":
            code = "(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)"
        elif body.op == "host":
            arg = "(call $input_offset)" if body.arg is None else constant(body.arg)
            code = (
                f"(local $r i64) (local.set $r (call ${body.host} {arg})) "
                "(call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)"
            )
        elif body.op == "log":
            code = (
                f"(call $am_log {constant(body.arg or '')}) "
                "(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)"
            )
        elif body.op == "loop":
            code = "(loop $forever (br $forever)) (i32.const 0)"
        elif body.op == "trap":
            code = "unreachable"
        else:
            raise AssertionError(body.op)
        funcs.append(f'  (func (export "{name}") (result i32) {code})')
    return f"""(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/user" "am_log" (func $am_log (param i64)))
  (import "extism:host/user" "am_search" (func $am_search (param i64) (result i64)))
  (import "extism:host/user" "am_get" (func $am_get (param i64) (result i64)))
  (memory (export "memory") 1)
{chr(10).join(data)}
  ;; Copies len bytes of this module's memory at ptr into extism memory; returns the offset.
  (func $copy (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $off))
{chr(10).join(funcs)})
"""


def contents(m: Memory, **scope: Any) -> list[str]:
    return sorted(r["content"] for r in m.list(**scope)["items"])


def keyword(m: Memory, query: str, **scope: Any) -> list[str]:
    return [h["content"] for h in m.search(query, mode="keyword", **scope)]


# ------------------------------------------------------------------ registering


def test_register_wat_text_and_call_with_bytes_and_str(mem: Memory) -> None:
    info = mem.register_plugin("echo", wasm=module(echo=ECHO), kind="function", version="1.2")
    assert info["id"] == "echo"
    assert info["name"] == "echo"  # defaults to the id
    assert info["version"] == "1.2"
    assert info["kind"] == "function"
    assert info["hooks"] == []
    assert "path" not in info
    raw = b"\x00\xffbinary\x01"
    assert mem.call_plugin("echo", "echo", raw) == raw
    out = mem.call_plugin("echo", "echo", "héllo 咖啡")
    assert isinstance(out, bytes)
    assert out.decode("utf-8") == "héllo 咖啡"
    assert mem.call_plugin("echo", "echo") == b""


def test_register_module_bytes(mem: Memory) -> None:
    wat = module(on_add=reply_json({"content": "from bytes"}))
    info = mem.register_plugin("b", wasm=wat.encode("utf-8"), name="Bytes plugin")
    assert info["name"] == "Bytes plugin"
    assert info["hooks"] == ["on_add"]
    mem.add("anything", user_id="u")
    assert contents(mem, user_id="u") == ["from bytes"]


def test_register_binary_module_bytes() -> None:
    if not PII_REDACTOR.is_file():
        pytest.skip(f"{PII_REDACTOR} is not built (examples/plugins/build.sh needs wasm32)")
    with Memory(embedder=HASHING) as m:
        binary = PII_REDACTOR.read_bytes()
        assert binary.startswith(b"\0asm")
        m.register_plugin("pii", wasm=binary, kind="function")
        assert m.call_plugin("pii", "redact", "write to bob@example.com") == b"write to [email]"


def test_register_file_path_and_hot_reload(mem: Memory, tmp_path: Path) -> None:
    wat = tmp_path / "rewrite.wat"
    wat.write_text(module(on_add=reply_json({"content": "version one"})), encoding="utf-8")
    info = mem.register_plugin("file", path=wat)
    assert info["path"] == str(wat)
    mem.add("first", user_id="u")
    assert contents(mem, user_id="u") == ["version one"]
    # A new file (another length, and a later time): the next add compiles and uses it.
    wat.write_text(module(on_add=reply_json({"content": "the second version"})), "utf-8")
    later = time.time() + 5
    os.utime(wat, (later, later))
    mem.add("second", user_id="u")
    assert contents(mem, user_id="u") == ["the second version", "version one"]
    [listed] = mem.plugins()
    assert listed["stats"]["reloads"] >= 1
    assert listed["stats"]["loads"] >= 2


def test_register_needs_exactly_one_source(mem: Memory, tmp_path: Path) -> None:
    wat = tmp_path / "p.wat"
    wat.write_text(module(echo=ECHO), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not both"):
        mem.register_plugin("two", path=wat, wasm=module(echo=ECHO), kind="function")
    with pytest.raises(InvalidInputError, match="path"):
        mem.register_plugin("none", kind="function")
    assert mem.plugins() == []


def test_bad_manifests_are_invalid_input(mem: Memory) -> None:
    echo = module(echo=ECHO)
    with pytest.raises(InvalidInputError, match="id"):
        mem.register_plugin("no spaces", wasm=echo, kind="function")
    with pytest.raises(InvalidInputError, match="telepathy"):
        mem.register_plugin("p", wasm=echo, kind="function", capabilities=["telepathy"])
    with pytest.raises(InvalidInputError, match="config capability"):
        mem.register_plugin("p", wasm=echo, kind="function", config={"k": "v"})
    with pytest.raises(InvalidInputError, match="timeout_ms"):
        mem.register_plugin("p", wasm=echo, kind="function", limits={"timeout_ms": 0})
    with pytest.raises(InvalidInputError, match="explode"):
        mem.register_plugin("p", wasm=echo, kind="function", on_error="explode")
    with pytest.raises(TypeError, match="capabilities"):
        mem.register_plugin("p", wasm=echo, kind="function", capabilities="search")
    # A hook plugin must export a hook.
    with pytest.raises(PluginError, match="hook"):
        mem.register_plugin("p", wasm=echo)
    assert mem.plugins() == []


def test_malformed_module_is_a_clear_plugin_error(mem: Memory) -> None:
    with pytest.raises(PluginError, match="not a WebAssembly module") as caught:
        mem.register_plugin("junk", wasm=b"\x7fELF not wasm", kind="function")
    assert caught.value.code == ErrorCode.Plugin
    assert "junk" in str(caught.value)
    with pytest.raises(PluginError, match="broken"):
        mem.register_plugin("broken", wasm="(module (func $f (result i32)", kind="function")
    assert mem.plugins() == []
    mem.add("the store still works", user_id="u")
    assert contents(mem, user_id="u") == ["the store still works"]


def test_duplicate_id(mem: Memory) -> None:
    mem.register_plugin("dup", wasm=module(echo=ECHO), kind="function")
    with pytest.raises(AlreadyExistsError, match="already registered") as caught:
        mem.register_plugin("dup", wasm=module(on_add=reply("{}")))
    assert caught.value.code == ErrorCode.AlreadyExists
    [only] = mem.plugins()
    assert only["kind"] == "function"


def test_unknown_id_and_export_are_not_found(mem: Memory) -> None:
    for call in (
        lambda: mem.call_plugin("ghost", "echo", b""),
        lambda: mem.unregister_plugin("ghost"),
        lambda: mem.load_plugin("ghost"),
        lambda: mem.unload_plugin("ghost"),
        lambda: mem.reload_plugin("ghost"),
    ):
        with pytest.raises(NotFoundError, match="ghost") as caught:
            call()
        assert isinstance(caught.value, LookupError)
        assert caught.value.code == ErrorCode.NotFound
    mem.register_plugin("echo", wasm=module(echo=ECHO), kind="function")
    with pytest.raises(NotFoundError, match="nope"):
        mem.call_plugin("echo", "nope")


# ------------------------------------------------------------------ hooks


def test_on_add_rewrites_content_and_metadata(mem: Memory) -> None:
    mem.register_plugin(
        "rewrite", wasm=module(on_add=reply_json({"content": "rewritten", "metadata": {"by": 1}}))
    )
    out = mem.add("original text", user_id="alice", metadata={"a": 2})
    record = mem.get(out["id"])
    assert record["content"] == "rewritten"
    assert record["metadata"] == {"by": 1}
    assert record["user_id"] == "alice"  # the scope is never the plugin's
    assert keyword(mem, "original", user_id="alice") == []
    assert keyword(mem, "rewritten", user_id="alice") == ["rewritten"]


def test_on_add_reject_stores_nothing(mem: Memory) -> None:
    mem.register_plugin("guard", wasm=module(on_add=reply_json({"reject": "no secrets here"})))
    with pytest.raises(PluginError, match="no secrets here") as caught:
        mem.add("my password is hunter2", user_id="u")
    assert caught.value.code == ErrorCode.Plugin
    assert "guard" in str(caught.value)
    with pytest.raises(PluginError):
        mem.add(["a", "b"], user_id="u")
    assert mem.count() == 0
    # Unregistered, it no longer runs.
    mem.unregister_plugin("guard")
    assert mem.plugins() == []
    mem.add("now it is kept", user_id="u")
    assert contents(mem, user_id="u") == ["now it is kept"]


def test_on_error_skip_ignores_a_failing_hook(mem: Memory) -> None:
    mem.register_plugin("crash", wasm=module(on_add=TRAP), on_error="skip")
    mem.add("kept despite the crash", user_id="u")
    assert contents(mem, user_id="u") == ["kept despite the crash"]
    [info] = mem.plugins()
    assert info["on_error"] == "skip"
    assert info["stats"]["failures"] == 1
    assert "last_error" in info
    # The same plugin failing the operation by default.
    mem.register_plugin("crash2", wasm=module(on_add=TRAP))
    with pytest.raises(PluginError, match="crash2"):
        mem.add("refused", user_id="u")
    assert contents(mem, user_id="u") == ["kept despite the crash"]


def test_after_search_reorders_and_drops(mem: Memory) -> None:
    ids = [
        mem.add(text, user_id="alice")["id"]
        for text in ("alice likes tea", "alice drinks green tea", "alice hates cold tea")
    ]
    assert len(keyword(mem, "tea", user_id="alice")) == 3
    answer = {"hits": [{"id": ids[2], "score": 0.99}, {"id": ids[0]}]}
    mem.register_plugin("rerank", wasm=module(after_search=reply_json(answer)))
    hits = mem.search("tea", user_id="alice", mode="keyword")
    assert [h["id"] for h in hits] == [ids[2], ids[0]]
    assert hits[0]["score"] == pytest.approx(0.99)
    assert hits[1]["content"] == "alice likes tea"


def test_after_search_cannot_inject_memories(mem: Memory) -> None:
    mem.add("alice likes tea", user_id="alice")
    bob = mem.add("bob likes tea", user_id="bob")["id"]
    mem.register_plugin("inject", wasm=module(after_search=reply_json({"hits": [{"id": bob}]})))
    with pytest.raises(PluginError, match="inject"):
        mem.search("tea", user_id="alice", mode="keyword")


def test_before_search_rewrites_the_query(mem: Memory) -> None:
    mem.add(["alice likes tea", "alice likes coffee"], user_id="alice")
    assert keyword(mem, "tea", user_id="alice") == ["alice likes tea"]
    mem.register_plugin("coffee", wasm=module(before_search=reply_json({"query": "coffee"})))
    assert keyword(mem, "tea", user_id="alice") == ["alice likes coffee"]
    [info] = mem.plugins()
    assert info["hooks"] == ["before_search"]
    assert info["stats"]["calls"] == 1


# ------------------------------------------------------------------ capabilities and scope


def test_host_calls_are_confined_to_the_call_scope(mem: Memory) -> None:
    mem.add("alice secret tea", user_id="alice")
    mem.add("bob secret tea", user_id="bob")
    mem.add("global secret tea")

    def search(filters: Any) -> str:
        return json.dumps(
            {"query": "secret tea", "mode": "keyword", "limit": 50, "filters": filters}
        )

    mem.register_plugin(
        "nosy",
        wasm=module(
            all=host("am_search", search(None)), bob=host("am_search", search({"user_id": "bob"}))
        ),
        kind="function",
        capabilities=["search"],
    )

    def found(function: str, **scope: Any) -> list[str]:
        out = json.loads(mem.call_plugin("nosy", function, **scope))
        return [hit["content"] for hit in out["results"]]

    assert found("all", user_id="alice") == ["alice secret tea"]
    assert found("all", user_id="bob") == ["bob secret tea"]
    assert found("bob", user_id="alice") == [], "a filter cannot widen the scope"
    assert found("all") == ["global secret tea"], "no scope: the global layer only"


def test_a_capability_not_granted_is_permission_denied(mem: Memory) -> None:
    mem.add("alice likes tea", user_id="alice")
    query = json.dumps({"query": "tea", "mode": "keyword"})
    mem.register_plugin("sneaky", wasm=module(run=host("am_search", query)), kind="function")
    with pytest.raises(PermissionDeniedError) as caught:
        mem.call_plugin("sneaky", "run", user_id="alice")
    err = caught.value
    assert err.code == ErrorCode.PermissionDenied
    assert "capability 'search' not granted to plugin 'sneaky'" in str(err)
    [info] = mem.plugins()
    assert info["stats"]["denied"] == 1
    assert any("search" in line["message"] for line in info["log"])


def test_logging_capability_writes_the_plugin_log(mem: Memory) -> None:
    mem.register_plugin(
        "chatty",
        wasm=module(run=log_then_echo("hello from wasm")),
        kind="function",
        capabilities=["logging"],
    )
    assert mem.call_plugin("chatty", "run", "x") == b"x"
    [info] = mem.plugins()
    assert info["capabilities"] == ["logging"]
    entry = info["log"][-1]
    assert entry["message"].endswith("hello from wasm")
    assert entry["level"] in ("info", "warn", "error")
    assert entry["time"]


# ------------------------------------------------------------------ limits


def test_timeout_interrupts_an_infinite_loop(mem: Memory) -> None:
    mem.register_plugin(
        "spin", wasm=module(spin=LOOP, echo=ECHO), kind="function", limits={"timeout_ms": 200}
    )
    # The GIL is released while the plugin runs: another Python thread keeps going.
    ticks = [0]
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.01):
            ticks[0] += 1

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.monotonic()
    try:
        with pytest.raises(PluginError, match="timed out") as caught:
            mem.call_plugin("spin", "spin")
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        ticker.join()
    assert ticks[0] >= 5, ticks
    assert caught.value.code == ErrorCode.Plugin
    assert 0.15 < elapsed < 10, elapsed
    # The plugin and the store still work.
    assert mem.call_plugin("spin", "echo", "alive") == b"alive"
    mem.add("still working", user_id="u")
    assert keyword(mem, "working", user_id="u") == ["still working"]
    [info] = mem.plugins()
    assert info["limits"]["timeout_ms"] == 200
    assert info["stats"]["failures"] == 1
    assert "timed out" in info.get("last_error", "")


def test_timeout_of_a_hook_fails_the_add(mem: Memory) -> None:
    mem.register_plugin("slow", wasm=module(on_add=LOOP), limits={"timeout_ms": 200})
    with pytest.raises(PluginError, match="timed out"):
        mem.add("never stored", user_id="u")
    assert mem.count() == 0


# ------------------------------------------------------------------ listing and lifetime


def test_plugins_lists_infos_in_registration_order(mem: Memory) -> None:
    mem.register_plugin(
        "hooks",
        wasm=module(on_add=reply("{}"), after_search=reply("{}"), extra=ECHO),
        name="Two hooks",
        version="0.3.0",
        capabilities=["logging", "search"],
        limits={"memory_pages": 32, "fuel": 1_000_000},
    )
    mem.register_plugin("fn", wasm=module(echo=ECHO), kind="function")
    infos = mem.plugins()
    assert [i["id"] for i in infos] == ["hooks", "fn"]
    hooks = infos[0]
    assert hooks["name"] == "Two hooks"
    assert hooks["version"] == "0.3.0"
    assert hooks["kind"] == "hook"
    assert sorted(hooks["hooks"]) == ["after_search", "on_add"]
    assert sorted(hooks["capabilities"]) == ["logging", "search"]
    assert hooks["limits"] == {"memory_pages": 32, "timeout_ms": 1000, "fuel": 1_000_000}
    assert hooks["on_error"] == "fail"
    assert hooks["stats"]["calls"] == 0
    assert infos[1]["limits"]["fuel"] is None

    mem.add("one", user_id="u")
    mem.add("two", user_id="u")
    mem.search("one", user_id="u", mode="keyword")
    for _ in range(3):
        mem.call_plugin("fn", "echo", b"x")
    hooks, fn = mem.plugins()
    assert hooks["stats"]["calls"] == 3  # two on_add, one after_search
    assert fn["stats"]["calls"] == 3
    assert hooks["stats"]["failures"] == 0


def test_load_unload_reload(mem: Memory) -> None:
    mem.register_plugin("p", wasm=module(echo=ECHO), kind="function")
    unloaded = mem.unload_plugin("p")
    assert unloaded["loaded"] is False
    assert mem.plugins()[0]["loaded"] is False
    # Still registered: used again, it is compiled again.
    assert mem.call_plugin("p", "echo", "back") == b"back"
    assert mem.plugins()[0]["loaded"] is True
    assert mem.unload_plugin("p")["loaded"] is False
    loaded = mem.load_plugin("p")
    assert loaded["loaded"] is True
    loads = loaded["stats"]["loads"]
    reloaded = mem.reload_plugin("p")
    assert reloaded["stats"]["reloads"] == 1
    assert reloaded["stats"]["loads"] == loads + 1
    mem.unregister_plugin("p")
    assert mem.plugins() == []
    with pytest.raises(NotFoundError):
        mem.call_plugin("p", "echo")


def test_cache_size_option() -> None:
    with pytest.raises(InvalidInputError, match="cache_size"):
        Memory(embedder=HASHING, plugins={"cache_size": 0})
    with pytest.raises(InvalidInputError, match="plugins"):
        Memory(embedder=HASHING, plugins={"cache_sise": 2})
    with Memory(embedder=HASHING, plugins={"cache_size": 1}) as m:
        m.register_plugin("a", wasm=module(echo=ECHO), kind="function")
        m.register_plugin("b", wasm=module(echo=ECHO), kind="function")
        assert m.call_plugin("a", "echo", "a") == b"a"
        assert m.call_plugin("b", "echo", "b") == b"b"
        loaded = {i["id"]: i["loaded"] for i in m.plugins()}
        assert loaded == {"a": False, "b": True}, "one compiled plugin at a time"
        assert m.call_plugin("a", "echo", "again") == b"again"


def test_plugins_on_a_closed_store_raise_closed(mem: Memory) -> None:
    from agent_mem import ClosedError

    mem.close()
    with pytest.raises(ClosedError):
        mem.plugins()
    with pytest.raises(ClosedError):
        mem.register_plugin("p", wasm=module(echo=ECHO), kind="function")


# ------------------------------------------------------------------ the PII example


def test_pii_redactor_example_by_path(mem: Memory) -> None:
    if not PII_REDACTOR.is_file():
        pytest.skip(f"{PII_REDACTOR} is not built (examples/plugins/build.sh needs wasm32)")
    info = mem.register_plugin(
        "pii", path=PII_REDACTOR, capabilities=["config", "logging"], config={"log": "true"}
    )
    assert info["hooks"] == ["on_add"]
    out = mem.add("Mail bob@example.com", user_id="bob")
    stored = mem.get(out["id"])
    assert stored["content"] == "Mail [email]"
    assert stored["metadata"]["pii_redacted"] == {"email": 1}
    assert any("redacted" in line["message"] for line in mem.plugins()[0]["log"])


# ------------------------------------------------------------------ async


def test_async_register_call_and_hooks() -> None:
    async def main() -> None:
        async with await AsyncMemory.open(embedder=HASHING, plugins={"cache_size": 4}) as m:
            info = await m.register_plugin("echo", wasm=module(echo=ECHO), kind="function")
            assert info["id"] == "echo"
            assert await m.call_plugin("echo", "echo", "async") == b"async"
            both = await asyncio.gather(
                m.call_plugin("echo", "echo", b"one"), m.call_plugin("echo", "echo", b"two")
            )
            assert list(both) == [b"one", b"two"]

            await m.add(["alice likes tea", "alice likes coffee"], user_id="alice")
            await m.register_plugin(
                "coffee", wasm=module(before_search=reply_json({"query": "coffee"}))
            )
            hits = await m.search("tea", user_id="alice", mode="keyword")
            assert [h["content"] for h in hits] == ["alice likes coffee"]
            await m.register_plugin("guard", wasm=module(on_add=reply_json({"reject": "no"})))
            with pytest.raises(PluginError, match="no"):
                await m.add("refused", user_id="alice")
            assert await m.count(user_id="alice") == 2

            assert [i["id"] for i in await m.plugins()] == ["echo", "coffee", "guard"]
            assert (await m.unload_plugin("echo"))["loaded"] is False
            assert (await m.load_plugin("echo"))["loaded"] is True
            assert (await m.reload_plugin("echo"))["stats"]["reloads"] == 1
            await m.unregister_plugin("guard")
            with pytest.raises(NotFoundError):
                await m.call_plugin("guard", "on_add")
            with pytest.raises(AlreadyExistsError):
                await m.register_plugin("echo", wasm=module(echo=ECHO), kind="function")

    asyncio.run(main())


def test_async_timeout_does_not_block_the_loop() -> None:
    async def main() -> None:
        async with AsyncMemory(embedder=HASHING) as m:
            await m.register_plugin(
                "spin", wasm=module(spin=LOOP), kind="function", limits={"timeout_ms": 300}
            )
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.ensure_future(tick())
            with pytest.raises(PluginError, match="timed out"):
                await m.call_plugin("spin", "spin")
            ticker.cancel()
            assert ticks >= 5, "the event loop ran while the plugin spun"

    asyncio.run(main())
