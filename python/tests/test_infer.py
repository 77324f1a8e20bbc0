"""Memory.add_messages and the llm / prompts / remote embedder options, end to end: the real
native module and core, a real SQLite store, and a fake provider (tests/fake_llm.py) that is a
real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic wire formats. No internet."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agent_mem import AsyncMemory, InvalidInputError, LlmError, Memory, MemoryEvent
from conftest import (
    HASHING,
    decisions,
    facts,
    is_extraction,
    openai_llm,
    shown_id,
    system_prompt,
    user_message,
)
from fake_llm import (
    FakeLLM,
    Reply,
    anthropic_error,
    anthropic_message,
    openai_chat,
    openai_embeddings,
    openai_error,
)


def contents(m: Memory, **scope: Any) -> list[str]:
    return sorted(r["content"] for r in m.list(**scope)["items"])


def llm_store(fake: FakeLLM, **extra: Any) -> Memory:
    return Memory(embedder=HASHING, llm=openai_llm(fake, **extra))


# --------------------------------------------------------------------------- the flow


def test_pizza_then_vegetarian_with_the_local_model() -> None:
    """mem0's README flow on the native API: a preference, then a change of diet that
    updates it; events, history (naming the model), search and the requests sent."""

    def answer(request: dict[str, Any]) -> Reply:
        if is_extraction(request):
            if "vegetarian" in user_message(request):
                return facts(["Is vegetarian", "Loves pizza without meat"])
            return facts(["Loves pepperoni pizza"])
        old = shown_id(request, "Loves pepperoni pizza")
        return decisions(
            [
                {"fact": 0, "event": "ADD"},
                {"fact": 1, "event": "UPDATE", "id": old, "text": "Loves vegetarian pizza"},
            ]
        )

    with FakeLLM(answer) as fake, Memory(llm=openai_llm(fake)) as m:
        assert m.llm == "openai:gpt-4.1-nano"
        first = m.add_messages(
            [
                {"role": "system", "content": "You are a cooking assistant."},
                {"role": "user", "content": "Hi! My favourite dinner is pepperoni pizza."},
                {"role": "assistant", "content": "Pepperoni pizza, noted!"},
            ],
            user_id="alice",
        )
        assert first == [
            {
                "id": first[0]["id"],
                "memory": "Loves pepperoni pizza",
                "event": "ADD",
                "change_id": first[0]["change_id"],
            }
        ]
        assert len(fake.requests) == 1, "nothing similar stored: no decision call"

        second = m.add_messages(
            "I'm vegetarian now, so no more pepperoni. Still love pizza though!",
            user_id="alice",
        )
        assert len(fake.requests) == 3
        assert [(e["event"], e["memory"]) for e in second] == [
            ("ADD", "Is vegetarian"),
            ("UPDATE", "Loves vegetarian pizza"),
        ]
        # The new wording supersedes the old memory, kept and closed.
        assert second[1]["supersedes"] == first[0]["id"]
        assert second[1]["previous_memory"] == "Loves pepperoni pizza"
        assert "previous_memory" not in second[0]
        assert m.get(first[0]["id"])["superseded_by"] == second[1]["id"]

        history = m.history(first[0]["id"])
        assert [h["event"] for h in history] == ["ADD", "UPDATE"]
        assert history[1]["change_id"] == second[1]["change_id"]
        assert {h["actor"] for h in history} == {"llm:openai:gpt-4.1-nano"}
        assert m.history(second[1]["id"])[0]["new_content"] == "Loves vegetarian pizza"
        added = m.get(second[0]["id"])
        assert (added["kind"], added["user_id"]) == ("semantic", "alice")

        hits = m.search("what should I cook for alice?", user_id="alice", limit=2)
        assert "Is vegetarian" in [h["content"] for h in hits]

        extraction = fake.requests[0]
        assert (extraction["method"], extraction["path"]) == ("POST", "/v1/chat/completions")
        assert extraction["headers"]["authorization"] == "Bearer sk-test-key"
        assert extraction["body"]["model"] == "gpt-4.1-nano"
        assert extraction["body"]["response_format"] == {"type": "json_object"}
        said = user_message(extraction)
        assert "user: Hi! My favourite dinner is pepperoni pizza." in said
        assert "assistant: Pepperoni pizza, noted!" in said
        # The model sees small integers, never the store's ids.
        assert first[0]["id"] not in user_message(fake.requests[2])


def test_nothing_to_remember_changes_nothing(fake: FakeLLM) -> None:
    fake.push(facts([]))
    with llm_store(fake) as m:
        assert m.add_messages("Hello there!", user_id="alice") == []
        assert m.count() == 0


def test_a_fact_already_stored_is_none_without_a_decision_call(fake: FakeLLM) -> None:
    fake.push(facts(["Is vegetarian"]), facts(["Is vegetarian"]))
    with llm_store(fake) as m:
        first = m.add_messages("I'm vegetarian", user_id="alice")
        again = m.add_messages("As I said, I'm vegetarian", user_id="alice")
        assert again == [{"id": first[0]["id"], "memory": "Is vegetarian", "event": "NONE"}]
        assert len(fake.requests) == 2
        assert len(m.history(first[0]["id"])) == 1


def test_delete_replaces_and_scope_metadata_come_from_the_call() -> None:
    def answer(request: dict[str, Any]) -> Reply:
        if is_extraction(request):
            return openai_chat(json.dumps({"facts": ["Lives in Berlin"], "user_id": "mallory"}))
        paris = shown_id(request, "Lives in Paris")
        return decisions([{"fact": 0, "event": "DELETE", "id": paris, "user_id": "mallory"}])

    with FakeLLM(answer) as fake, llm_store(fake) as m:
        paris = m.add("Lives in Paris", user_id="alice")["id"]
        events = m.add_messages(
            {"role": "user", "content": "I moved from Paris to Berlin"},
            user_id="alice",
            metadata={"source": "chat"},
            expires_at="2999-01-01",
        )
        assert [(e["event"], e["memory"]) for e in events] == [
            ("DELETE", "Lives in Paris"),
            ("ADD", "Lives in Berlin"),
        ]
        assert events[0]["id"] == paris
        berlin = m.get(events[1]["id"])
        assert berlin["user_id"] == "alice"
        assert berlin["metadata"] == {"source": "chat"}
        assert berlin["expires_at"].startswith("2999-01-01")
        assert contents(m) == ["Lives in Berlin"]
        assert m.history(paris)[-1]["actor"] == "llm:openai:gpt-4.1-nano"


# --------------------------------------------------------------------------- errors


def test_unreadable_answers_raise_llm_error_and_change_nothing(fake: FakeLLM) -> None:
    with llm_store(fake) as m:
        m.add("Plays the cello", user_id="alice")
        before = contents(m)

        fake.push(openai_chat("{'facts': ['I'm a cellist']}"))
        with pytest.raises(LlmError, match="not valid JSON") as bad_json:
            m.add_messages("I'm a cellist", user_id="alice")
        assert "fact extraction" in str(bad_json.value)
        assert contents(m) == before

        fake.push(facts(["Plays the cello well"]), openai_chat("Update memory 0, I think."))
        with pytest.raises(LlmError, match="memory decisions"):
            m.add_messages("I play the cello well", user_id="alice")
        assert contents(m) == before


def test_a_provider_error_passes_its_message_but_never_the_key(fake: FakeLLM) -> None:
    fake.push(openai_error(401, "invalid_request_error", "Incorrect API key provided: sk-te***"))
    with llm_store(fake) as m:
        with pytest.raises(LlmError, match="Incorrect API key provided") as e:
            m.add_messages("I play the cello", user_id="alice")
        assert e.value.code == 8
        assert "sk-test-key" not in str(e.value)
        assert m.count() == 0


def test_a_timeout_raises_llm_error_quickly_and_changes_nothing(fake: FakeLLM) -> None:
    fake.push(openai_chat(json.dumps({"facts": ["Lives in Berlin"]}), delay=3.0))
    with llm_store(fake, timeout_ms=300) as m:
        started = time.monotonic()
        with pytest.raises(LlmError, match="timed out"):
            m.add_messages("I moved to Berlin", user_id="alice")
        assert time.monotonic() - started < 2.5
        assert m.count() == 0


def test_a_rate_limit_is_waited_out(fake: FakeLLM) -> None:
    fake.push(
        openai_error(429, "rate_limit_exceeded", "Rate limit reached", {"Retry-After": "1"}),
        facts(["Speaks Japanese"]),
    )
    with llm_store(fake, max_retries=2) as m:
        started = time.monotonic()
        events = m.add_messages("私は日本語を話します", user_id="alice")
        assert time.monotonic() - started >= 1.0
        assert [e["memory"] for e in events] == ["Speaks Japanese"]
        assert len(fake.requests) == 2


def test_no_scripted_reply_is_a_server_error(fake: FakeLLM) -> None:
    with llm_store(fake) as m, pytest.raises(LlmError, match="no scripted reply"):
        m.add_messages("hello", user_id="alice")


def test_bad_requests_are_refused_before_any_call(fake: FakeLLM) -> None:
    with llm_store(fake) as m:
        for messages, scope in [
            ("I like tea", {}),  # inference needs a scope
            ([], {"user_id": "a"}),
            ([{"role": "wizard", "content": "hi"}], {"user_id": "a"}),
            ([{"role": "user"}], {"user_id": "a"}),
            ([{"role": "user", "content": "hi", "mood": "happy"}], {"user_id": "a"}),
            (42, {"user_id": "a"}),
        ]:
            with pytest.raises(InvalidInputError):
                m.add_messages(messages, **scope)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="prompt"):
            m.add_messages("hi", user_id="a", prompt="  ")
        assert fake.requests == []
        assert m.count() == 0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"llm": {"provider": "openai", "modle": "x", "api_key": "k"}}, "modle"),
        ({"llm": {"provider": "skynet"}}, "skynet"),
        ({"llm": {"provider": "openai_compatible", "model": "m"}}, "base_url"),
        ({"llm": {"provider": "openai", "api_key": "k", "timeout_ms": 0}}, "timeout_ms"),
        ({"prompts": {"fact_extraction": ""}}, "fact_extraction"),
        ({"prompts": {"facts": "x"}}, "facts"),
        ({"embedder": {"provider": "anthropic", "api_key": "k"}}, "embeddings"),
    ],
)
def test_bad_options_are_refused_at_open(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        Memory(**options)


def test_a_missing_api_key_is_refused_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InvalidInputError, match="OPENAI_API_KEY"):
        Memory(embedder=HASHING, llm={"provider": "openai"})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with Memory(embedder=HASHING, llm={"provider": "openai"}) as m:
        assert m.llm == "openai:gpt-4.1-nano"


# --------------------------------------------------------------------------- other paths


def test_anthropic_drives_the_same_pipeline() -> None:
    def answer(request: dict[str, Any]) -> Reply:
        assert request["path"] == "/v1/messages"
        if "extract the facts" in request["body"]["system"]:
            return anthropic_message('{"facts": ["Lives in Berlin"]}')
        stored = json.loads(request["body"]["messages"][0]["content"])["stored_memories"]
        paris = next(s["id"] for s in stored if s["text"] == "Lives in Paris")
        decided = {"decisions": [{"fact": 0, "event": "UPDATE", "id": paris, "text": "Berlin"}]}
        return anthropic_message("```json\n" + json.dumps(decided) + "\n```")

    with FakeLLM(answer) as fake:
        llm = {"provider": "anthropic", "api_key": "sk-ant-test", "base_url": fake.url}
        with Memory(embedder=HASHING, llm=llm) as m:
            assert m.llm == "anthropic:claude-haiku-4-5"
            paris = m.add("Lives in Paris", user_id="alice")["id"]
            events = m.add_messages("I moved to Berlin", user_id="alice")
            assert [(e["event"], e["supersedes"]) for e in events] == [("UPDATE", paris)]
            assert m.history(paris)[1]["actor"] == "llm:anthropic:claude-haiku-4-5"
        assert fake.requests[0]["headers"]["x-api-key"] == "sk-ant-test"
        assert "anthropic-version" in fake.requests[0]["headers"]


def test_an_anthropic_error_is_an_llm_error(fake: FakeLLM) -> None:
    fake.push(anthropic_error(400, "invalid_request_error", "max_tokens: too large"))
    llm = {"provider": "anthropic", "api_key": "k", "base_url": fake.url, "max_retries": 0}
    with Memory(embedder=HASHING, llm=llm) as m, pytest.raises(LlmError, match="too large"):
        m.add_messages("hi", user_id="alice")


def test_a_procedural_memory_summarises_the_run(fake: FakeLLM) -> None:
    summary = "Task: book a flight Paris→Berlin.\n1. Found 4 flights.\n2. Chose AF1234."
    fake.push(openai_chat(summary))
    with llm_store(fake) as m:
        events = m.add_messages(
            [
                {"role": "user", "content": "Book me a flight from Paris to Berlin"},
                {"role": "assistant", "content": "Found 4. AF1234 at 09:40 is 189 EUR."},
                {"role": "user", "content": "Take AF1234"},
            ],
            user_id="alice",
            agent_id="travel-agent",
            kind="procedural",
        )
        assert events == [{"id": events[0]["id"], "memory": summary, "event": "ADD"}]
        record = m.get(events[0]["id"])
        assert (record["kind"], record["agent_id"]) == ("procedural", "travel-agent")
        assert "response_format" not in fake.requests[0]["body"], "a plain-text answer"
        assert "assistant: Found 4." in user_message(fake.requests[0])

        with pytest.raises(InvalidInputError, match="agent_id"):
            m.add_messages("summarise", user_id="alice", kind="procedural")
        assert len(fake.requests) == 1


def test_without_inference_messages_are_stored_as_given(fake: FakeLLM) -> None:
    with llm_store(fake) as m:
        events = m.add_messages(
            (
                {"role": "system", "content": "You are helpful"},
                {"role": "user", "content": "I'm vegetarian"},
                {"role": "assistant", "content": "Noted, no meat.", "name": "chef-bot"},
            ),
            user_id="alice",
            infer=False,
        )
        assert [(e["event"], e["memory"]) for e in events] == [
            ("ADD", "I'm vegetarian"),
            ("ADD", "Noted, no meat."),
        ]
        record = m.get(events[1]["id"])
        assert record["kind"] == "episodic"
        assert record["metadata"] == {"role": "assistant", "actor_id": "chef-bot"}
        assert fake.requests == [], "no model call"


def test_a_store_without_a_model_stores_raw(mem: Memory) -> None:
    assert mem.llm is None
    events: list[MemoryEvent] = mem.add_messages("I'm vegetarian", user_id="alice")
    assert [(e["event"], e["memory"]) for e in events] == [("ADD", "I'm vegetarian")]
    again = mem.add_messages({"role": "user", "content": "I'm vegetarian"}, user_id="alice")
    assert again == [
        {"id": events[0]["id"], "memory": "I'm vegetarian", "event": "NONE", "role": "user"}
    ]
    # Without inference no scope is needed.
    assert mem.add_messages("a global note")[0]["event"] == "ADD"


def test_custom_prompts_replace_the_built_in_ones(fake: FakeLLM) -> None:
    fake.push(facts(["Likes sushi"]), facts([]))
    prompts = {"fact_extraction": 'Extract food facts only. Today is {today}. {"facts": []}'}
    with Memory(embedder=HASHING, llm=openai_llm(fake), prompts=prompts) as m:
        m.add_messages("I like sushi and skiing", user_id="alice")
        assert system_prompt(fake.requests[0]).startswith("Extract food facts only. Today is 20")
        m.add_messages("hello", user_id="alice", prompt="Per-call prompt")
        assert system_prompt(fake.requests[1]) == "Per-call prompt"


def test_a_remote_embedder_serves_the_store(tmp_path: Any) -> None:
    def embed(request: dict[str, Any]) -> Reply:
        assert request["path"] == "/v1/embeddings"
        vectors = []
        for text in request["body"]["input"]:
            v = [0.01] * 8
            for i, b in enumerate(text.encode()):
                v[(b + i) % 8] += 1.0
            vectors.append(v)
        return openai_embeddings(vectors)

    with FakeLLM(embed) as fake:
        embedder = {
            "provider": "openai",
            "model": "text-embedding-3-small",
            "api_key": "sk-emb",
            "base_url": fake.openai_base,
        }
        path = tmp_path / "remote.db"
        with Memory(path, embedder=embedder) as m:
            assert m.embedding_model == "openai:text-embedding-3-small"
            m.add("Likes tea", user_id="u")
            m.add("Likes coffee", user_id="u")
            hits = m.search("Likes tea", user_id="u", limit=1, mode="vector")
            assert hits[0]["content"] == "Likes tea"
        assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-emb"
        assert fake.requests[0]["body"]["model"] == "text-embedding-3-small"
        with pytest.raises(InvalidInputError, match="openai:text-embedding-3-small"):
            Memory(path, embedder=HASHING)


# --------------------------------------------------------------------------- async


def test_async_add_messages_does_not_block_the_loop(fake: FakeLLM) -> None:
    fake.push(openai_chat(json.dumps({"facts": ["Likes tea"]}), delay=0.6))

    async def main() -> None:
        m = await AsyncMemory.open(embedder=HASHING, llm=openai_llm(fake))
        assert m.llm == "openai:gpt-4.1-nano"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        events = await m.add_messages("I like tea", user_id="alice")
        task.cancel()
        assert [(e["event"], e["memory"]) for e in events] == [("ADD", "Likes tea")]
        assert ticks >= 5, "the loop kept running while the model answered"

        fake.push(openai_error(500, "server_error", "boom"))
        with pytest.raises(LlmError, match="boom"):
            await m.add_messages("I like coffee", user_id="alice")
        raw = await m.add_messages("raw note", user_id="alice", infer=False)
        assert raw[0]["event"] == "ADD"
        assert await m.count(user_id="alice") == 2
        await m.close()

    asyncio.run(main())
