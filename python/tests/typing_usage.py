"""Type-checked with `mypy --strict` (python/tests/run.sh): the public API as users write it.

Also run by pytest (test_typing.py) so that it works at runtime as well as on paper.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import agent_mem
from agent_mem import (
    UNSET,
    AddResult,
    AgentMemError,
    AsyncChatStream,
    AsyncMemory,
    CancelledError,
    ChatReply,
    ChatStream,
    Citation,
    CopyReport,
    ErrorCode,
    HistoryEntry,
    ListPage,
    Memory,
    MemoryEvent,
    MemoryRecord,
    MemoryUsed,
    Message,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    PluginInfo,
    PluginLimits,
    PluginLogEntry,
    PluginStats,
    Remembered,
    SearchHit,
)
from agent_mem.mem0 import AsyncMemory as Mem0Async
from agent_mem.mem0 import Memory as Mem0
from fake_llm import FakeLLM, Reply, openai_answer, openai_chat

HASHING = {"provider": "hashing", "dimensions": 64}

# A function plugin in WebAssembly text: `echo` answers with its input.
ECHO_WAT = """(module
  (import "extism:host/env" "input_offset" (func $io (result i64)))
  (import "extism:host/env" "input_length" (func $il (result i64)))
  (import "extism:host/env" "output_set" (func $os (param i64 i64)))
  (func (export "echo") (result i32) (call $os (call $io) (call $il)) (i32.const 0)))
"""


def native() -> None:
    with Memory(embedder=HASHING) as m:
        one: AddResult = m.add("Alice likes tea", user_id="alice", metadata={"n": 1})
        many: list[AddResult] = m.add(["a", "b"], kind="semantic", expires_at=dt.date(2999, 1, 1))
        batch: list[AddResult] = m.add_batch([{"content": "c", "agent_id": "bot"}])
        assert one["added"]
        assert len(many) + len(batch) == 3
        hits: list[SearchHit] = m.search("tea", user_id="alice", mode="keyword", limit=3)
        score: float = hits[0]["score"]
        record: MemoryRecord = m.get(one["id"])
        content: str = record["content"]
        page: ListPage = m.list(user_id="alice", order="created_asc", limit=10)
        cursor: str | None = page["next_cursor"]
        counted: int | None = m.list(user_id="alice", with_total=True).get("total")
        total: int = m.count(filters={"n": {"gte": 1}})
        updated: MemoryRecord = m.update(one["id"], content="Alice likes green tea")
        m.update(one["id"], expires_at=None)
        m.update(one["id"], kind="semantic", expires_at=UNSET)
        m.update(one["id"], metadata={"mood": "calm"}, merge_metadata=True)
        rows: list[HistoryEntry] = m.history(one["id"])
        event: str = rows[0]["event"]
        deleted: int = m.delete_all(user_id="alice")
        purged: int = m.purge_expired()
        m.delete(batch[0]["id"])
        path: str | None = m.path
        where: str = m.location
        print(score, content, cursor, total, updated["updated_at"], event, deleted, purged, path)
        # A store opened by URL takes the pool options; copies go between any two stores.
        with Memory(embedder=HASHING, postgres={"pool_size": 2, "statement_timeout_ms": 0}) as to:
            copied: CopyReport = m.copy_into(to)
            print(where, copied["memories"] + copied["history"], to.location)
        conversation: list[Message] = [
            {"role": "user", "content": "I'm vegetarian"},
            {"role": "assistant", "content": "Noted", "name": "chef"},
        ]
        events: list[MemoryEvent] = m.add_messages(conversation, user_id="alice", infer=False)
        what: str = events[0]["event"]
        before: str | None = events[0].get("previous_memory")
        said_by: str | None = events[0].get("actor_id")
        role: str | None = events[0].get("role")
        m.add_messages("one message", agent_id="bot", kind="episodic", metadata={"k": 1})
        m.add_messages({"role": "user", "content": "a dict"}, run_id="r", expires_at=dt.date.max)
        llm: str | None = m.llm
        print(what, before, llm, said_by, role, counted)
        try:
            m.get("missing")
        except NotFoundError as e:
            code: ErrorCode | int = e.code
            print(code, e.message)
        except AgentMemError:
            raise


async def native_async() -> None:
    async with await AsyncMemory.open(embedder=HASHING) as m:
        one: AddResult = await m.add("Bob likes coffee", user_id="bob")
        many: list[AddResult] = await m.add(("x", "y"))
        hits: list[SearchHit] = await m.search("coffee", user_id="bob", explain=True)
        results = await asyncio.gather(m.get(one["id"]), m.count())
        record: MemoryRecord = results[0]
        events: list[MemoryEvent] = await m.add_messages("Bob likes tea", user_id="bob")
        print(many, hits, record, results[1], events, m.llm)
        async with await AsyncMemory.open(embedder=HASHING, postgres={"pool_size": 1}) as to:
            copied: CopyReport = await m.copy_into(to)
            print(copied["memories"], to.location)


def plugins() -> None:
    with Memory(embedder=HASHING, plugins={"cache_size": 4}) as m:
        limits: PluginLimits = {"timeout_ms": 500}
        info: PluginInfo = m.register_plugin(
            "echo", wasm=ECHO_WAT, kind="function", capabilities=["logging"], limits=limits
        )
        m.register_plugin("echo-bytes", wasm=ECHO_WAT.encode(), kind="function", on_error="skip")
        out: bytes = m.call_plugin("echo", "echo", "hi", user_id="alice")
        raw: bytes = m.call_plugin("echo", "echo", b"\x00")
        listed: list[PluginInfo] = m.plugins()
        stats: PluginStats = listed[0]["stats"]
        log: list[PluginLogEntry] = listed[0]["log"]
        last: str | None = listed[0].get("last_error")
        m.unload_plugin("echo")
        m.load_plugin("echo")
        reloaded: PluginInfo = m.reload_plugin("echo")
        m.unregister_plugin("echo-bytes")
        print(info["hooks"], out, raw, stats["calls"], log, last, reloaded["loaded"])
        try:
            m.call_plugin("echo", "missing")
        except (PluginError, PermissionDeniedError, NotFoundError) as e:
            print(e.code)


async def plugins_async() -> None:
    async with AsyncMemory(embedder=HASHING) as m:
        info: PluginInfo = await m.register_plugin("echo", wasm=ECHO_WAT, kind="function")
        out: bytes = await m.call_plugin("echo", "echo", b"x")
        listed: list[PluginInfo] = await m.plugins()
        print(info["id"], out, listed[0]["limits"].get("fuel"))


def mem0_style() -> None:
    with Mem0.from_config(
        {"vector_store": {"provider": "agent_mem", "config": {"path": ":memory:"}}}
    ) as m:
        added = m.add([{"role": "user", "content": "I like tennis"}], user_id="al", infer=False)
        found = m.search("tennis", filters={"user_id": "al"}, top_k=5, threshold=0.1)
        listed = m.get_all(user_id="al", limit=None)
        item = m.get(added["results"][0]["id"])
        print(found["results"], listed["results"], item, m.history(added["results"][0]["id"]))
        print(m.llm, m.config["options"])


async def mem0_async() -> None:
    m = Mem0Async.from_config({"vector_store": {"provider": "agent_mem", "config": {}}})
    print(await m.search("x", user_id="u", limit=3))
    await m.close()


def fake_model(request: dict[str, Any]) -> Reply:
    """The chat model of the chat examples: an answer citing [1], no facts to remember."""
    if request["body"].get("response_format"):
        return openai_chat('{"facts": []}')
    return openai_answer(request, "You like tea [1].")


def chat(base_url: str) -> None:
    llm = {"provider": "openai", "model": "m", "api_key": "k", "base_url": base_url}
    with Memory(embedder=HASHING, llm=llm) as m:
        m.add("Alice likes tea", user_id="alice")
        reply: ChatReply = m.chat("What do I like?", user_id="alice", limit=3, remember="off")
        answer: str = reply["answer"]
        used: list[MemoryUsed] = reply["memories_used"]
        source: str = used[0]["source"]
        score: float | None = used[0].get("score")
        cited: list[Citation] = reply["citations"]
        turn: str | None = reply.get("working_memory_id")
        remembered: Remembered = reply["remember"]
        print(answer, source, score, cited[0]["id"], turn, remembered["status"], reply["model"])
        pieces: list[str] = []
        with m.chat_stream(
            [{"role": "user", "content": "Again?"}],
            user_id="alice",
            session_window=0,
            max_memory_tokens=500,
            remember="background",
        ) as stream:
            for piece in stream:
                pieces.append(piece)
        streamed: ChatReply = stream.result
        handle: str | None = streamed["remember"].get("handle")
        if handle is not None:
            outcome: Remembered = m.remembered(handle, wait=True)
            print(outcome["events"], outcome.get("error"))
        unread: ChatStream = m.chat_stream("Stop", user_id="alice", remember="off")
        unread.close()
        try:
            print(unread.result)
        except CancelledError as e:
            print("cancelled:", e.code)
        print("".join(pieces), stream.done)


async def chat_async(base_url: str) -> None:
    llm = {"provider": "openai", "model": "m", "api_key": "k", "base_url": base_url}
    async with AsyncMemory(embedder=HASHING, llm=llm) as m:
        reply: ChatReply = await m.chat("Hi", user_id="bob", remember="off", query_turns=1)
        stream: AsyncChatStream = m.chat_stream("Hi", user_id="bob", remember="off")
        pieces = [piece async for piece in stream]
        final: ChatReply = stream.result
        async with m.chat_stream("Hi", user_id="bob", remember="off") as early:
            async for piece in early:
                print(piece)
                break
        try:
            await m.remembered("no-such-handle")
        except NotFoundError as e:
            print("not found:", e.message)
        print(reply["answer"], pieces, final["citations"])


def main() -> None:
    native()
    asyncio.run(native_async())
    plugins()
    asyncio.run(plugins_async())
    mem0_style()
    with FakeLLM(fake_model) as fake:
        chat(fake.openai_base)
        asyncio.run(chat_async(fake.openai_base))
    print(agent_mem.__version__)


if __name__ == "__main__":
    main()
