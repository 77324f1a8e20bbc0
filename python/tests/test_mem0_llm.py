"""agent_mem.mem0 with an LLM: mem0's config shapes mapped onto agent_mem's llm, prompts and
remote embedder options, and mem0's README flow (add → ADD, a change → ADD + UPDATE, search,
history) against a fake provider (tests/fake_llm.py) on 127.0.0.1. No internet."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from agent_mem import InvalidInputError, LlmError, UnsupportedError
from agent_mem.mem0 import AsyncMemory, Mem0CompatWarning, Memory
from conftest import decisions, facts, is_extraction, shown_id, system_prompt, user_message
from fake_llm import FakeLLM, Reply, anthropic_message, openai_chat, openai_embeddings, openai_error

IN_MEMORY = {"provider": "agent_mem", "config": {"path": ":memory:"}}
HASHING = {"provider": "hashing", "config": {"embedding_dims": 64}}


def openai_config(fake: FakeLLM, **extra: Any) -> dict[str, Any]:
    """mem0's config of an OpenAI LLM, pointed at the fake server."""
    llm = {
        "model": "gpt-4.1-nano",
        "api_key": "sk-test",
        "openai_base_url": fake.openai_base,
        "max_retries": 0,  # agent_mem's own key: no retries of scripted errors
    }
    return {
        "llm": {"provider": "openai", "config": {**llm, **extra}},
        "vector_store": IN_MEMORY,
        "embedder": HASHING,
    }


@pytest.fixture
def m(fake: FakeLLM) -> Iterator[Memory]:
    with Memory.from_config(openai_config(fake)) as memory:
        yield memory


# --------------------------------------------------------------------------- README flow


def test_the_readme_flow_with_the_local_model() -> None:
    """mem0's README: `Memory.from_config` with an OpenAI LLM, then add → ADD, a change of
    diet → ADD + UPDATE with previous_memory, search, and history showing the UPDATE."""

    def answer(request: dict[str, Any]) -> Reply:
        if is_extraction(request):
            if "vegetarian" in user_message(request):
                return facts(["Is vegetarian", "Likes pizza without meat"])
            return facts(["Likes pizza"])
        pizza = shown_id(request, "Likes pizza")
        return decisions(
            [
                {"fact": 0, "event": "ADD"},
                {"fact": 1, "event": "UPDATE", "id": pizza, "text": "Likes vegetarian pizza"},
            ]
        )

    with FakeLLM(answer) as fake:
        config = {
            "llm": {
                "provider": "openai",
                "config": {
                    "model": "gpt-4.1-nano",
                    "api_key": "sk-test",
                    "openai_base_url": fake.openai_base,
                    "temperature": 0.1,
                    "max_tokens": 2000,
                    "top_p": 0.1,  # mem0's defaults: ignored without a warning
                    "top_k": 1,
                },
            },
            "vector_store": IN_MEMORY,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = Memory.from_config(config)
        with m:
            assert m.llm == "openai:gpt-4.1-nano"
            assert m.config["options"]["llm"]["api_key"] == "***"
            first = m.add(
                [
                    {"role": "user", "content": "I like pizza"},
                    {"role": "assistant", "content": "Pizza, noted! Any favourite topping?"},
                ],
                user_id="alice",
            )
            assert first == {
                "results": [
                    {"id": first["results"][0]["id"], "memory": "Likes pizza", "event": "ADD"}
                ]
            }
            pizza = first["results"][0]["id"]

            second = m.add(
                [{"role": "user", "content": "I'm vegetarian now, but I still love pizza"}],
                user_id="alice",
            )
            assert [(r["event"], r["memory"]) for r in second["results"]] == [
                ("ADD", "Is vegetarian"),
                ("UPDATE", "Likes vegetarian pizza"),
            ]
            assert second["results"][1]["id"] == pizza
            assert second["results"][1]["previous_memory"] == "Likes pizza"

            hits = m.search("what food does alice eat?", user_id="alice", limit=3)
            found = [h["memory"] for h in hits["results"]]
            assert set(found) == {"Is vegetarian", "Likes vegetarian pizza"}
            assert hits["results"][0]["user_id"] == "alice"

            history = m.history(pizza)
            assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
                ("ADD", None, "Likes pizza"),
                ("UPDATE", "Likes pizza", "Likes vegetarian pizza"),
            ]
            assert len(m.get_all(user_id="alice")["results"]) == 2

        sent = fake.requests[0]
        assert sent["path"] == "/v1/chat/completions"
        assert sent["headers"]["authorization"] == "Bearer sk-test"
        assert sent["body"]["temperature"] == pytest.approx(0.1)
        assert sent["body"]["max_tokens"] == 2000
        assert "top_p" not in sent["body"]
        assert len(fake.requests) == 3


def test_none_events_are_not_reported(fake: FakeLLM, m: Memory) -> None:
    fake.push(facts(["Is vegetarian"]), facts(["Is vegetarian"]))
    first = m.add("I'm vegetarian", user_id="alice")
    assert [r["event"] for r in first["results"]] == ["ADD"]
    assert m.add("As I said: vegetarian", user_id="alice") == {"results": []}
    assert len(m.get_all(user_id="alice")["results"]) == 1


def test_inferred_memories_take_the_calls_metadata_and_scope(fake: FakeLLM, m: Memory) -> None:
    fake.push(facts(["Plays tennis"]))
    meta = {"category": "hobbies", "user_id": "mallory"}
    out = m.add(
        [
            {"role": "system", "content": "Remember hobbies."},
            {"role": "user", "content": "I play tennis", "name": "al", "extra": 1},
        ],
        user_id="alice",
        agent_id="coach",
        metadata=meta,
    )
    item = m.get(out["results"][0]["id"])
    assert item is not None
    assert (item["user_id"], item["agent_id"]) == ("alice", "coach")
    assert item["metadata"] == {"category": "hobbies"}
    assert meta == {"category": "hobbies", "user_id": "mallory"}, "the caller's dict is kept"
    said = user_message(fake.requests[0])
    assert "system: Remember hobbies." in said, "system messages are context for the model"
    assert "user: I play tennis" in said


def test_unknown_roles_are_skipped_for_the_model(fake: FakeLLM, m: Memory) -> None:
    fake.push(facts(["Likes jazz"]))
    with pytest.warns(Mem0CompatWarning, match="role 'function'"):
        out = m.add(
            [
                {"role": "function", "content": "{}"},
                {"role": "user", "content": "I like jazz"},
            ],
            user_id="alice",
        )
    assert [r["memory"] for r in out["results"]] == ["Likes jazz"]
    assert m.add([{"role": "system", "content": "only context"}], user_id="a") == {"results": []}
    assert len(fake.requests) == 1


def test_model_errors_raise_llm_error_and_store_nothing(fake: FakeLLM, m: Memory) -> None:
    fake.push(openai_error(401, "invalid_request_error", "Incorrect API key provided"))
    with pytest.raises(LlmError, match="Incorrect API key provided"):
        m.add("I like tea", user_id="alice")
    fake.push(openai_chat("not json at all"))
    with pytest.raises(LlmError, match="not valid JSON"):
        m.add("I like tea", user_id="alice")
    assert m.get_all(user_id="alice")["results"] == []


def test_infer_false_never_calls_the_model(fake: FakeLLM, m: Memory) -> None:
    out = m.add(
        [
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "I love sushi", "name": "al"},
        ],
        user_id="bob",
        infer=False,
    )
    assert out["results"] == [
        {
            "id": out["results"][0]["id"],
            "memory": "I love sushi",
            "event": "ADD",
            "actor_id": "al",
            "role": "user",
        }
    ]
    assert fake.requests == []


def test_infer_without_an_llm_still_warns_and_stores_raw() -> None:
    with Memory.from_config({"vector_store": IN_MEMORY, "embedder": HASHING}) as m:
        assert m.llm is None
        with pytest.warns(Mem0CompatWarning, match="no LLM is configured"):
            out = m.add("I love sushi", user_id="bob")
        assert [(r["event"], r["memory"], r["role"]) for r in out["results"]] == [
            ("ADD", "I love sushi", "user")
        ]


def test_procedural_memory_with_an_llm(fake: FakeLLM, m: Memory) -> None:
    summary = "Task: find flights.\n1. Searched: 4 found.\n2. Chose AF1234."
    fake.push(openai_chat(summary))
    out = m.add(
        [
            {"role": "user", "content": "Find me a flight to Berlin"},
            {"role": "assistant", "content": "Found 4; AF1234 is cheapest."},
        ],
        agent_id="travel-agent",
        memory_type="procedural_memory",
        prompt="Summarise the agent's steps.",
    )
    assert out == {"results": [{"id": out["results"][0]["id"], "memory": summary, "event": "ADD"}]}
    item = m.get(out["results"][0]["id"])
    assert item is not None
    assert item["agent_id"] == "travel-agent"
    assert item["metadata"] == {"memory_type": "procedural_memory"}
    assert system_prompt(fake.requests[0]) == "Summarise the agent's steps."
    with pytest.raises(InvalidInputError, match="agent_id"):
        m.add("summarise", user_id="alice", memory_type="procedural_memory")
    assert len(fake.requests) == 1


def test_custom_prompts(fake: FakeLLM) -> None:
    config = {
        **openai_config(fake),
        "custom_fact_extraction_prompt": 'Extract food facts only, as {"facts": [...]}.',
    }
    with Memory.from_config(config) as m:
        fake.push(facts(["Likes sushi"]))
        m.add("I like sushi and skiing", user_id="alice")
        assert system_prompt(fake.requests[0]) == 'Extract food facts only, as {"facts": [...]}.'
        fake.push(facts(["Likes ramen"]))
        m.add("I like ramen", user_id="bob", prompt="ignored outside procedural memories")
        assert system_prompt(fake.requests[1]).startswith("Extract food facts only")

    update_prompt = {**openai_config(fake), "custom_update_memory_prompt": "Return {memory: []}"}
    with pytest.warns(Mem0CompatWarning, match="custom_update_memory_prompt.*does not read"):
        Memory.from_config(update_prompt).close()


def test_the_async_memory_infers_too(fake: FakeLLM) -> None:
    fake.push(facts(["Likes tea"]), openai_error(500, "server_error", "boom"))

    async def main() -> None:
        async with AsyncMemory.from_config(openai_config(fake)) as m:
            assert m.llm == "openai:gpt-4.1-nano"
            out = await m.add("I like tea", user_id="alice")
            assert [(r["event"], r["memory"]) for r in out["results"]] == [("ADD", "Likes tea")]
            with pytest.raises(LlmError, match="boom"):
                await m.add("I like coffee", user_id="alice")
            raw = await m.add("raw", user_id="alice", infer=False)
            assert raw["results"][0]["role"] == "user"
            assert len((await m.get_all(user_id="alice"))["results"]) == 2

    asyncio.run(main())


# --------------------------------------------------------------------------- config mapping


def llm_options(provider: str, config: dict[str, Any]) -> dict[str, Any]:
    full = {"llm": {"provider": provider, "config": config}, "vector_store": IN_MEMORY}
    with Memory.from_config({**full, "embedder": HASHING}) as m:
        return dict(m.config["options"]["llm"])


def test_llm_providers_map_onto_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OLLAMA_HOST", "VLLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert llm_options("anthropic", {"api_key": "k", "anthropic_base_url": "http://h:1"}) == {
        "provider": "anthropic",
        "api_key": "***",
        "base_url": "http://h:1",
    }
    assert llm_options("deepseek", {"api_key": "k", "model": "deepseek-chat"}) == {
        "provider": "deepseek",
        "api_key": "***",
        "model": "deepseek-chat",
    }
    # Ollama's own API root becomes its OpenAI-compatible /v1; mem0's default model.
    assert llm_options("ollama", {"ollama_base_url": "http://gpu:11434"}) == {
        "provider": "ollama",
        "model": "llama3.1:70b",
        "base_url": "http://gpu:11434/v1",
    }
    assert llm_options("ollama", {"model": "qwen3", "ollama_base_url": "http://x/ollama/v1"})[
        "base_url"
    ] == ("http://x/ollama/v1")
    lmstudio = llm_options("lmstudio", {})
    assert lmstudio["provider"] == "openai_compatible"
    assert lmstudio["base_url"] == "http://localhost:1234/v1"
    assert lmstudio["json_mode"] is False
    vllm = llm_options("vllm", {"model": "qwen", "vllm_base_url": "http://v:8000/v1"})
    assert (vllm["provider"], vllm["base_url"], vllm["model"]) == (
        "openai_compatible",
        "http://v:8000/v1",
        "qwen",
    )
    litellm = llm_options("litellm", {"model": "gpt-4o", "base_url": "http://proxy:4000"})
    assert (litellm["provider"], litellm["base_url"]) == ("openai_compatible", "http://proxy:4000")
    # mem0's OPENAI_API_BASE is read when agent_mem's OPENAI_BASE_URL is not set.
    monkeypatch.setenv("OPENAI_API_BASE", "http://legacy:9/v1")
    assert llm_options("openai", {"api_key": "k"})["base_url"] == "http://legacy:9/v1"
    # agent_mem's own keys pass through.
    own = llm_options("openai", {"api_key": "k", "timeout_ms": 1234, "max_retries": 1})
    assert (own["timeout_ms"], own["max_retries"]) == (1234, 1)


def test_llm_settings_that_change_behaviour_warn(fake: FakeLLM) -> None:
    config = openai_config(fake, http_client_proxies="http://proxy:3128", enable_vision=True)
    with pytest.warns(Mem0CompatWarning, match="http_client_proxies") as record:
        Memory.from_config(config).close()
    assert "enable_vision" in str(record[0].message)


@pytest.mark.parametrize(
    ("llm", "error", "needle"),
    [
        ({"provider": "gemini", "config": {"api_key": "k"}}, UnsupportedError, "openai_base_url"),
        ({"provider": "litellm", "config": {"model": "gpt-4o"}}, UnsupportedError, "proxy"),
        ({"provider": "openai", "config": {"model": "x"}}, InvalidInputError, "OPENAI_API_KEY"),
        (
            {"provider": "openai", "config": {"api_key": "k", "temperature": 5}},
            InvalidInputError,
            "temperature",
        ),
    ],
)
def test_llm_configs_that_cannot_work_are_refused(
    llm: dict[str, Any], error: type[Exception], needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(error, match=needle):
        Memory.from_config({"llm": llm, "vector_store": IN_MEMORY, "embedder": HASHING})


def test_a_remote_embedder_from_the_mem0_config(tmp_path: Any) -> None:
    def answer(request: dict[str, Any]) -> Reply:
        if request["path"] == "/v1/embeddings":
            texts = request["body"]["input"]
            return openai_embeddings([[1.0 + ("tea" in t), 1.0 + ("coffee" in t)] for t in texts])
        return anthropic_message('{"facts": ["Likes tea"]}')

    with FakeLLM(answer) as fake:
        config = {
            "embedder": {
                "provider": "openai",
                "config": {
                    "model": "text-embedding-3-small",
                    "api_key": "sk-emb",
                    "openai_base_url": fake.openai_base,
                    "embedding_dims": 2,
                },
            },
            "llm": {
                "provider": "anthropic",
                "config": {"api_key": "sk-ant", "anthropic_base_url": fake.url},
            },
            "vector_store": {"provider": "agent_mem", "config": {"path": str(tmp_path / "r.db")}},
        }
        with Memory.from_config(config) as m:
            assert m.config["options"]["embedder"]["dimensions"] == 2
            out = m.add("I like tea", user_id="u")
            assert out["results"][0]["memory"] == "Likes tea"
            m.add("Likes coffee", user_id="u", infer=False)
            hits = m.search("tea", user_id="u", limit=1, mode="vector")
            assert hits["results"][0]["memory"] == "Likes tea"
        embeddings = [r for r in fake.requests if r["path"] == "/v1/embeddings"]
        assert embeddings[0]["headers"]["authorization"] == "Bearer sk-emb"
        assert embeddings[0]["body"]["dimensions"] == 2
        chat = [r for r in fake.requests if r["path"] == "/v1/messages"]
        assert chat[0]["headers"]["x-api-key"] == "sk-ant"


def test_embedder_providers_map_onto_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)

    def embedder(provider: str, config: dict[str, Any]) -> Any:
        full = {"embedder": {"provider": provider, "config": config}, "vector_store": IN_MEMORY}
        with Memory.from_config(full) as m:
            return m.config["options"]["embedder"]

    assert embedder("ollama", {"embedding_dims": 768}) == {
        "provider": "ollama",
        "model": "nomic-embed-text",
    }
    assert embedder("ollama", {"model": "bge-m3", "ollama_base_url": "http://gpu:11434/"}) == {
        "provider": "ollama",
        "model": "bge-m3",
        "base_url": "http://gpu:11434/v1",
    }
    lmstudio = embedder("lmstudio", {"lmstudio_base_url": "http://box:1234/v1"})
    assert (lmstudio["provider"], lmstudio["base_url"]) == (
        "openai_compatible",
        "http://box:1234/v1",
    )
    with pytest.warns(Mem0CompatWarning, match="model_kwargs"):
        embedder("ollama", {"model_kwargs": {"truncate": True}})
    tei = embedder("huggingface", {"huggingface_base_url": "http://tei:8080/v1"})
    assert tei == {
        "provider": "openai_compatible",
        "model": "tei",
        "base_url": "http://tei:8080/v1",
    }
