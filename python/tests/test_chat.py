"""Memory.chat, chat_stream and remembered end to end: the real native module and core, a real
store (hashing embedder), and the fake provider (tests/fake_llm.py), a real HTTP server on
127.0.0.1 that answers and streams as OpenAI and Anthropic do. No internet."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from agent_mem import (
    AsyncMemory,
    CancelledError,
    ChatReply,
    ChatStream,
    ClosedError,
    InvalidInputError,
    LlmError,
    Memory,
    NotFoundError,
    UnsupportedError,
)
from agent_mem import mem0 as mem0_api
from conftest import HASHING, decisions, facts, is_extraction, system_prompt, user_message
from fake_llm import (
    FakeLLM,
    Reply,
    anthropic_message,
    anthropic_stream,
    anthropic_stream_error,
    openai_chat,
    openai_error,
    openai_stream,
    openai_stream_error,
)

# Cyrillic, CJK, accents and emoji: streamed in pieces of 3 bytes, characters are cut in the
# middle on the wire.
TEXT = "Ты любишь 抹茶 и café ☕ — 乾杯! 🍵 Приятного аппетита."
DELTAS = [TEXT[i : i + 5] for i in range(0, len(TEXT), 5)]
#: A long answer written slowly (6 s in all): time enough to stop it part way.
SLOW_DELTAS = [f"word{i} " for i in range(60)]
NO_FACTS = facts([])
QUIET: dict[str, Any] = {"remember": "off", "session_window": 0}


def openai_llm(fake: FakeLLM, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "m",
        "api_key": "k",
        "base_url": fake.openai_base,
        "max_retries": 0,
        "timeout_ms": 10_000,
        **extra,
    }


def anthropic_llm(fake: FakeLLM, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": "claude-haiku-4-5",
        "api_key": "k",
        "base_url": fake.url,
        "max_retries": 0,
        "timeout_ms": 10_000,
        **extra,
    }


def is_chat(request: dict[str, Any]) -> bool:
    """Whether the request is a chat turn's (not inference's)."""
    return "long-term memory of the person" in system_prompt(request)


def threads() -> int:
    """The threads of this process."""
    return len(os.listdir("/proc/self/task"))


def stream_threads() -> list[str]:
    """The threads running a streamed call (their names, as the kernel keeps them)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except OSError:
            continue  # ended meanwhile
        if name.startswith("agent-mem-strea"):
            names.append(name)
    return names


def settle_threads(limit: int, seconds: float = 5.0) -> int:
    """The thread count once it is at most ``limit`` (the fake server's thread serving a
    stream the client left ends at its next write), or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while threads() > limit and time.monotonic() < deadline:
        time.sleep(0.02)
    return threads()


@pytest.fixture
def chat_mem(fake: FakeLLM) -> Iterator[Memory]:
    """A store in memory whose chat model is the fake server (as OpenAI)."""
    with Memory(embedder=HASHING, llm=openai_llm(fake)) as m:
        yield m


# --------------------------------------------------------------------------- chat


def test_the_answer_its_memories_and_citations_and_nothing_of_another_scope() -> None:
    answer = "You are allergic to peanuts [1], so skip the satay [7]."

    def reply(request: dict[str, Any]) -> Reply:
        if is_extraction(request):
            return facts(["Avoids satay"])
        if is_chat(request):
            return openai_chat(answer)
        return decisions([{"fact": 0, "event": "ADD"}])

    with FakeLLM(reply) as fake, Memory(embedder=HASHING, llm=openai_llm(fake)) as m:
        peanuts = m.add("Alice is allergic to peanuts", user_id="alice")["id"]
        m.add("Alice lives in Lisbon", user_id="alice")
        m.add("Bob is allergic to shellfish", user_id="bob")

        got: ChatReply = m.chat(
            "What am I allergic to?", user_id="alice", run_id="s1", limit=3, mode="keyword"
        )
        assert got["answer"] == answer
        assert got["model"].endswith(":m")
        assert [u["id"] for u in got["memories_used"]] == [peanuts]
        used = got["memories_used"][0]
        assert (used["ref"], used["content"], used["kind"], used["source"]) == (
            1,
            "Alice is allergic to peanuts",
            "episodic",
            "search",
        )
        assert isinstance(used["score"], float)
        # [7] was never listed: dropped. Each citation is a stored memory.
        assert got["citations"] == [{"ref": 1, "id": peanuts}]
        assert m.get(got["citations"][0]["id"])["content"] == "Alice is allergic to peanuts"
        assert got["remember"]["status"] == "done"
        assert [(e["event"], e["memory"]) for e in got["remember"]["events"]] == [
            ("ADD", "Avoids satay")
        ]
        turn = m.get(got["working_memory_id"])
        assert (turn["kind"], turn["run_id"]) == ("working", "s1")
        assert "expires_at" in turn

        chats = [r for r in fake.requests if is_chat(r)]
        assert len(chats) == 1
        assert chats[0]["body"].get("stream") is not True
        assert "[1] Alice is allergic to peanuts" in system_prompt(chats[0])
        assert user_message(chats[0]) == "What am I allergic to?"
        for request in fake.requests:
            assert "shellfish" not in str(request["body"])
            assert "Bob" not in str(request["body"])


def test_the_next_turn_recalls_the_previous_one_as_working_memory(
    fake: FakeLLM, chat_mem: Memory
) -> None:
    fake.push(openai_chat("Hello Ana!"), openai_chat("You said you are Ana [1]."))
    first = chat_mem.chat(
        {"role": "user", "content": "I am Ana"}, user_id="ana", run_id="s", remember="off"
    )
    assert first["remember"] == {"status": "off", "events": []}
    second = chat_mem.chat(
        [
            {"role": "user", "content": "I am Ana"},
            {"role": "assistant", "content": "Hello Ana!"},
            {"role": "user", "content": "Who am I?"},
        ],
        user_id="ana",
        run_id="s",
        remember="off",
        session_window=2,
        query_turns=2,
        working_ttl_seconds=60,
        max_memory_tokens=500,
    )
    working = [u for u in second["memories_used"] if u["source"] == "working"]
    assert [u["id"] for u in working] == [first["working_memory_id"]]
    assert "user: I am Ana" in working[0]["content"]
    assert second["citations"] == [{"ref": working[0]["ref"], "id": working[0]["id"]}]
    assert "I am Ana" in system_prompt(fake.requests[1])


def test_remembering_in_the_background(fake: FakeLLM, chat_mem: Memory) -> None:
    fake.push(
        openai_chat("Green tea it is."),
        openai_chat(json.dumps({"facts": ["Loves green tea"]}), delay=0.5),
    )
    reply = chat_mem.chat(
        "I love green tea", user_id="carol", remember="background", session_window=0
    )
    assert reply["answer"] == "Green tea it is."
    assert "working_memory_id" not in reply
    assert reply["remember"]["status"] == "running"
    handle = reply["remember"]["handle"]
    assert chat_mem.remembered(handle)["status"] == "running"  # asked too early: kept

    outcome = chat_mem.remembered(handle, wait=True)
    assert outcome["status"] == "done"
    assert [(e["event"], e["memory"]) for e in outcome["events"]] == [("ADD", "Loves green tea")]
    with pytest.raises(NotFoundError):
        chat_mem.remembered(handle)  # handed out once
    with pytest.raises(NotFoundError):
        chat_mem.remembered("no-such-handle", wait=True)
    assert chat_mem.count(user_id="carol") == 1


def test_the_gil_is_released_while_the_model_is_awaited(fake: FakeLLM, chat_mem: Memory) -> None:
    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        fake.push(openai_chat("Slow, but here.", delay=0.5))
        before = counted
        assert chat_mem.chat("Hi", user_id="u", **QUIET)["answer"] == "Slow, but here."
        assert counted - before >= 50, f"the counter moved {counted - before} times in 0.5 s"

        fake.push(openai_stream(["Slow ", "pieces"], delay=0.5))
        with chat_mem.chat_stream("Hi", user_id="u", **QUIET) as stream:
            before = counted
            assert next(stream) == "Slow "
            assert counted - before >= 50, f"the counter moved {counted - before} times"
            assert list(stream) == ["pieces"]
    finally:
        stop.set()
        counter.join()


# --------------------------------------------------------------------------- chat_stream


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_streamed_text_is_the_answer_cut_at_any_byte(fake: FakeLLM, provider: str) -> None:
    if provider == "openai":
        llm = openai_llm(fake)
        fake.push(openai_chat(TEXT), openai_stream(DELTAS, split=3, chunk_delay=0.002))
    else:
        llm = anthropic_llm(fake)
        fake.push(anthropic_message(TEXT), anthropic_stream(DELTAS, split=3, chunk_delay=0.002))
    with Memory(embedder=HASHING, llm=llm) as m:
        m.add("Le thé vert est préféré 抹茶", user_id="zoé")
        whole = m.chat("Что я люблю? 抹茶", user_id="zoé", **QUIET)
        assert whole["answer"] == TEXT

        stream = m.chat_stream("Что я люблю? 抹茶", user_id="zoé", **QUIET)
        assert isinstance(stream, ChatStream)
        assert not stream.done
        with pytest.raises(InvalidInputError, match="not ended"):
            stream.result  # noqa: B018
        pieces = list(stream)
        assert len(pieces) > 1, pieces
        assert "".join(pieces) == TEXT
        assert stream.done
        reply = stream.result
        assert reply["answer"] == TEXT
        assert reply["memories_used"] == whole["memories_used"]
        assert list(stream) == []  # ended: stays ended
        assert fake.requests[1]["body"]["stream"] is True
        assert fake.requests[0]["body"].get("stream") is not True


def close_it(stream: ChatStream) -> None:
    stream.close()


def leave_its_with_block(stream: ChatStream) -> None:
    with stream:
        pass


def drop_it(stream: ChatStream) -> None:
    del stream  # the last reference: the stream is collected at once


def close_its_generator(stream: ChatStream) -> None:
    def pieces() -> Generator[str, None, None]:
        with stream:
            yield from stream

    reader = pieces()
    assert next(reader) == "word1 "
    reader.close()


@pytest.mark.parametrize(
    "stop", [close_it, leave_its_with_block, drop_it, close_its_generator], ids=lambda f: f.__name__
)
def test_stopping_a_stream_part_way_stores_nothing_and_leaves_no_thread(
    fake: FakeLLM, chat_mem: Memory, stop: Callable[[ChatStream], None]
) -> None:
    chat_mem.add("Alice likes slow answers", user_id="alice")
    stored = chat_mem.count()
    idle = threads()
    fake.push(openai_stream(SLOW_DELTAS, chunk_delay=0.1), NO_FACTS)
    stream = chat_mem.chat_stream("Tell me a long story", user_id="alice")
    assert next(stream) == "word0 "
    assert stream_threads() == ["agent-mem-strea"]
    assert threads() > idle

    started = time.monotonic()
    if stop is drop_it:
        stop(stream)
        del stream
    else:
        stop(stream)
        with pytest.raises(CancelledError):
            stream.result  # noqa: B018
        assert list(stream) == []
    # The core call stops at its next piece (0.1 s), not at the end of the answer (6 s).
    assert time.monotonic() - started < 2.0
    assert stream_threads() == [], "the stream's thread is still running"
    assert settle_threads(idle) <= idle, f"{threads()} threads, {idle} before"
    assert chat_mem.count() == stored
    assert len(fake.requests) == 1, "nothing was remembered"


def test_a_signal_while_waiting_for_a_piece_cancels_the_call(
    fake: FakeLLM, chat_mem: Memory
) -> None:
    """Ctrl-C (here: an alarm whose handler raises) reaches a blocked iteration."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    fake.push(openai_stream(SLOW_DELTAS, chunk_delay=0.1))
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        stream = chat_mem.chat_stream("Tell me a long story", user_id="alice")
        signal.setitimer(signal.ITIMER_REAL, 0.35)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            list(stream)
        assert time.monotonic() - started < 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    stream.close()
    with pytest.raises(CancelledError):
        stream.result  # noqa: B018
    assert stream_threads() == []
    assert chat_mem.count() == 0


def test_a_stream_closed_after_its_end_keeps_its_result(fake: FakeLLM, chat_mem: Memory) -> None:
    fake.push(openai_stream(["All ", "done"]))
    with chat_mem.chat_stream("Hi", user_id="u", **QUIET) as stream:
        assert "".join(stream) == "All done"
    stream.close()
    assert stream.result["answer"] == "All done"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_cut_by_the_server_is_an_llm_error(fake: FakeLLM, provider: str) -> None:
    if provider == "openai":
        llm = openai_llm(fake)
        fake.push(openai_stream(["Hello ", "there ", "friend"], cut_after=2))
    else:
        llm = anthropic_llm(fake)
        fake.push(anthropic_stream(["Hello ", "there ", "friend"], cut_after=4))
    with Memory(embedder=HASHING, llm=llm) as m:
        got: list[str] = []
        stream = m.chat_stream("Hi", user_id="u")
        with pytest.raises(LlmError):
            got.extend(piece for piece in stream)
        assert "friend" not in "".join(got)
        with pytest.raises(LlmError):
            stream.result  # noqa: B018
        assert list(stream) == []
        assert m.count() == 0
        assert len(fake.requests) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_error_event_in_the_stream_is_an_llm_error(fake: FakeLLM, provider: str) -> None:
    if provider == "openai":
        llm = openai_llm(fake)
        fake.push(openai_stream_error(["Hel"], "the model is overloaded"))
    else:
        llm = anthropic_llm(fake)
        fake.push(anthropic_stream_error(["Hel"], "the model is overloaded"))
    with Memory(embedder=HASHING, llm=llm) as m:
        with pytest.raises(LlmError, match="overloaded"):
            list(m.chat_stream("Hi", user_id="u"))
        assert m.count() == 0


def test_a_rate_limit_before_the_stream_is_waited_out(fake: FakeLLM) -> None:
    fake.push(
        openai_error(429, "rate_limit_exceeded", "Rate limit reached", {"retry-after-ms": "50"}),
        openai_stream(DELTAS, split=3),
    )
    with Memory(embedder=HASHING, llm=openai_llm(fake, max_retries=2)) as m:
        assert "".join(m.chat_stream("Hi", user_id="u", **QUIET)) == TEXT
        assert len(fake.requests) == 2
        assert all(r["body"]["stream"] is True for r in fake.requests)


# --------------------------------------------------------------------------- AsyncMemory


def test_async_chat_and_chat_stream(fake: FakeLLM) -> None:
    async def main() -> None:
        async with AsyncMemory(embedder=HASHING, llm=openai_llm(fake)) as m:
            await m.add("Le thé vert est préféré 抹茶", user_id="zoé")
            fake.push(openai_chat(TEXT), openai_stream(DELTAS, split=3, chunk_delay=0.002))
            whole = await m.chat("Что я люблю?", user_id="zoé", **QUIET)

            stream = m.chat_stream("Что я люблю?", user_id="zoé", **QUIET)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            ticker = asyncio.create_task(tick())
            pieces = [piece async for piece in stream]
            ticker.cancel()
            assert len(pieces) > 1
            assert "".join(pieces) == whole["answer"] == TEXT
            assert stream.done
            assert stream.result["answer"] == TEXT
            assert ticks > 1, "the event loop kept running"
            assert [p async for p in stream] == []

            # Failures come out of the iteration.
            with pytest.raises(InvalidInputError):
                async for _ in m.chat_stream([], user_id="zoé"):
                    pass

            # Background remembering, awaited.
            fake.push(openai_chat("Noted."), NO_FACTS)
            reply = await m.chat("Hi", user_id="zoé", remember="background", session_window=0)
            outcome = await m.remembered(reply["remember"]["handle"], wait=True)
            assert outcome == {"status": "done", "events": []}

    asyncio.run(main())


def test_async_streams_stop_on_aclose_and_on_cancel(fake: FakeLLM) -> None:
    async def main() -> None:
        async with AsyncMemory(embedder=HASHING, llm=openai_llm(fake)) as m:
            # Leaving `async with` part way.
            fake.push(openai_stream(SLOW_DELTAS, chunk_delay=0.1))
            async with m.chat_stream("Go on", user_id="u") as stream:
                async for piece in stream:
                    assert piece == "word0 "
                    break
            with pytest.raises(CancelledError):
                stream.result  # noqa: B018

            # Cancelling the task that reads it.
            fake.push(openai_stream(SLOW_DELTAS, chunk_delay=0.1))
            stream = m.chat_stream("Go on", user_id="u")
            first = asyncio.get_running_loop().create_future()

            async def read() -> None:
                async for piece in stream:
                    if not first.done():
                        first.set_result(piece)

            task = asyncio.create_task(read())
            assert await first == "word0 "
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await stream.aclose()
            assert time.monotonic() - started < 2.0
            with pytest.raises(CancelledError):
                stream.result  # noqa: B018
            assert await m.count() == 0
            assert len(fake.requests) == 2

    asyncio.run(main())


# --------------------------------------------------------------------------- refusals


def test_bad_input_is_refused_before_the_model_and_stores_nothing(
    fake: FakeLLM, chat_mem: Memory
) -> None:
    refused: list[tuple[Any, dict[str, Any], str]] = [
        ([], {"user_id": "u"}, "empty"),
        (
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
            {"user_id": "u"},
            "last message",
        ),
        ([{"role": "wizard", "content": "Hi"}], {"user_id": "u"}, "role"),
        ("Hi", {"user_id": "u", "max_memory_tokens": 0}, "max_memory_tokens"),
        ("Hi", {"user_id": "u", "prompt": "Answer kindly."}, re.escape("{memories}")),
        ("Hi", {}, "scope"),
        ("Hi", {"user_id": "u", "remember": "later"}, "remember"),
    ]
    for messages, options, message in refused:
        with pytest.raises(InvalidInputError, match=message):
            chat_mem.chat(messages, **options)
        stream = chat_mem.chat_stream(messages, **options)
        with pytest.raises(InvalidInputError, match=message):
            next(stream)
        with pytest.raises(InvalidInputError, match=message):
            stream.result  # noqa: B018
    with pytest.raises(TypeError):
        chat_mem.remembered(7)  # type: ignore[arg-type]
    assert fake.requests == []
    assert chat_mem.count() == 0


def test_without_a_chat_model_unsupported_and_once_closed_closed() -> None:
    m = Memory(embedder=HASHING)
    with pytest.raises(UnsupportedError, match="chat model"):
        m.chat("Hi", user_id="u")
    stream = m.chat_stream("Hi", user_id="u")
    with pytest.raises(UnsupportedError):
        list(stream)
    with pytest.raises(UnsupportedError):
        stream.result  # noqa: B018
    m.close()
    with pytest.raises(ClosedError):
        m.chat("Hi", user_id="u")
    with pytest.raises(ClosedError):
        m.chat_stream("Hi", user_id="u")
    with pytest.raises(ClosedError):
        m.remembered("h")


def test_a_stream_outlives_closing_its_store(fake: FakeLLM) -> None:
    fake.push(openai_stream(["still ", "here"], chunk_delay=0.05))
    m = Memory(embedder=HASHING, llm=openai_llm(fake))
    stream = m.chat_stream("Hi", user_id="u", **QUIET)
    m.close()
    assert "".join(stream) == "still here"


# --------------------------------------------------------------------------- mem0


def mem0_config(fake: FakeLLM) -> dict[str, Any]:
    return {
        "llm": {
            "provider": "openai",
            "config": {
                "model": "m",
                "api_key": "k",
                "openai_base_url": fake.openai_base,
                "max_retries": 0,
            },
        },
        "vector_store": {"provider": "agent_mem", "config": {"path": ":memory:"}},
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
    }


def test_mem0_chat_answers_and_remembers(fake: FakeLLM) -> None:
    def reply(request: dict[str, Any]) -> Reply:
        if is_extraction(request):
            return facts(["Is vegetarian"])
        if is_chat(request):
            return openai_chat("A vegetable curry [1].")
        return decisions([{"fact": 0, "event": "ADD"}])

    fake.handler = reply
    with mem0_api.Memory.from_config(mem0_config(fake)) as m:
        m.add("I don't eat meat", user_id="alice", infer=False)
        answer = m.chat("What should I cook tonight?", user_id="alice", limit=3)
        assert answer == "A vegetable curry [1]."
        assert "I don't eat meat" in system_prompt(fake.requests[0])
        memories = {r["memory"] for r in m.get_all(user_id="alice")["results"]}
        assert memories == {"I don't eat meat", "Is vegetarian"}
        assert m.chat("Thanks!", filters={"user_id": "alice"}, remember="off") == (
            "A vegetable curry [1]."
        )
        with pytest.raises(InvalidInputError, match="user_id"):
            m.chat("Hi")


def test_mem0_async_chat(fake: FakeLLM) -> None:
    fake.push(openai_chat("Hello!"))

    async def main() -> None:
        async with mem0_api.AsyncMemory.from_config(mem0_config(fake)) as m:
            assert await m.chat("Hi", user_id="u", remember="off") == "Hello!"

    asyncio.run(main())


def test_mem0_chat_without_an_llm_is_unsupported() -> None:
    config = {
        "vector_store": {"provider": "agent_mem", "config": {"path": ":memory:"}},
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
    }
    with mem0_api.Memory.from_config(config) as m, pytest.raises(UnsupportedError, match="llm"):
        m.chat("Hi", user_id="u")
