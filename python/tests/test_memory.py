"""The native API, agent_mem.Memory: every operation, argument conversion, lifetime."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import agent_mem
from agent_mem import (
    ClosedError,
    InvalidInputError,
    Memory,
    NotFoundError,
    UnsupportedError,
)
from conftest import HASHING

RECORD_KEYS = {
    "id",
    "content",
    "hash",
    "kind",
    "metadata",
    "created_at",
    "updated_at",
    "version",
    "valid_from_tx",
}


def test_add_get_and_the_record_shape(mem: Memory) -> None:
    out = mem.add("Alice is allergic to peanuts", user_id="alice", metadata={"source": "chat"})
    assert set(out) == {"id", "added"}
    assert out["added"] is True
    record = mem.get(out["id"])
    assert set(record) == RECORD_KEYS | {"user_id"}
    assert record["content"] == "Alice is allergic to peanuts"
    assert record["user_id"] == "alice"
    assert record["kind"] == "episodic"
    assert record["metadata"] == {"source": "chat"}
    assert record["hash"] == "a4ee6ab02ba3430190bad8b89da90d63"  # md5 of the content
    assert record["created_at"].endswith("Z")
    assert record["created_at"] == record["updated_at"] == record["valid_from_tx"]
    assert record["version"] == 1


def test_json_types_round_trip(mem: Memory) -> None:
    metadata = {
        "flag": True,
        "n": 1,
        "big": 2**63,
        "neg": -(2**63),
        "x": 0.25,
        "none": None,
        "list": [1, "two", [3.5]],
        "tuple": (1, 2),
        "nested": {"a": {"b": "c"}},
        "text": "咖啡 ☕",
    }
    record = mem.get(mem.add("types", metadata=metadata)["id"])
    got = record["metadata"]
    assert got["flag"] is True
    assert got["n"] == 1
    assert type(got["n"]) is int
    assert got["big"] == 2**63
    assert got["neg"] == -(2**63)
    assert got["x"] == 0.25
    assert got["none"] is None
    assert got["list"] == [1, "two", [3.5]]
    assert got["tuple"] == [1, 2]
    assert got["nested"] == {"a": {"b": "c"}}
    assert got["text"] == "咖啡 ☕"


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"v": float("nan")}, "metadata.v"),
        ({"v": float("inf")}, "metadata.v"),
        ({"deep": {"v": [1.0, float("-inf")]}}, "metadata.deep.v[1]"),
        ({1: "x"}, "keys must be strings"),
        ({"s": {1, 2}}, "set"),
        ({"b": b"bytes"}, "bytes"),
        ({"d": dt.date(2020, 1, 1)}, "date"),
        ({"big": 2**64}, "64 bits"),
        ({"s": "\ud800"}, "surrogate"),
    ],
)
def test_what_cannot_be_json_is_invalid_input(
    mem: Memory, metadata: dict[Any, Any], needle: str
) -> None:
    with pytest.raises(InvalidInputError, match=None) as info:
        mem.add("x", metadata=metadata)
    assert needle in str(info.value)
    assert mem.count() == 0


def test_a_list_containing_itself_is_refused(mem: Memory) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidInputError, match="nested deeper"):
        mem.add("x", metadata={"loop": loop})


def test_core_validation_reaches_python(mem: Memory) -> None:
    for bad in ("", "   ", "nul\x00byte"):
        with pytest.raises(InvalidInputError):
            mem.add(bad)
    with pytest.raises(InvalidInputError, match="reserved"):
        mem.add("x", metadata={"user_id": "mallory"})
    with pytest.raises(InvalidInputError, match="kind"):
        mem.add("x", kind="dream")
    with pytest.raises(InvalidInputError):
        mem.add("x", expires_at="next tuesday")
    with pytest.raises(InvalidInputError, match="usr_id"):
        mem.add_batch([{"content": "x", "usr_id": "u"}])
    with pytest.raises(InvalidInputError, match=r"memories\[1\]"):
        mem.add_batch([{"content": "a"}, {"user_id": "u"}])
    assert mem.count() == 0


def test_times_accept_strings_dates_and_datetimes(mem: Memory) -> None:
    aware = dt.datetime(2999, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2999, 1, 2, 3, 4, 5)
    cases = [
        ("2999-01-01", "2999-01-01T00:00:00.000000Z"),
        (dt.date(2999, 1, 1), "2999-01-01T00:00:00.000000Z"),
        (aware, "2999-01-02T01:04:05.000000Z"),
        (naive, "2999-01-02T03:04:05.000000Z"),  # naive is UTC
    ]
    for i, (given, stored) in enumerate(cases):
        out = mem.add(f"memory {i}", expires_at=given)
        assert mem.get(out["id"])["expires_at"] == stored


def test_duplicates_and_batches(mem: Memory) -> None:
    first = mem.add("likes tea", user_id="u")
    again = mem.add("likes tea", user_id="u")
    assert again == {"id": first["id"], "added": False}
    other_scope = mem.add("likes tea", user_id="v")
    assert other_scope["added"] is True
    batch = mem.add(["a", "b", "a"], user_id="w", kind="semantic", metadata={"k": 1})
    assert [o["added"] for o in batch] == [True, True, False]
    assert batch[0]["id"] == batch[2]["id"]
    assert {mem.get(o["id"])["kind"] for o in batch} == {"semantic"}
    items = mem.add_batch(
        [
            {"content": "x", "user_id": "z", "expires_at": dt.date(2999, 1, 1)},
            {"content": "y", "agent_id": "bot", "metadata": {"n": 2}},
        ]
    )
    assert mem.get(items[1]["id"])["agent_id"] == "bot"
    assert mem.get(items[0]["id"])["expires_at"].startswith("2999-01-01")
    with pytest.raises(TypeError):
        mem.add(["a"], vector=[1.0])  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        mem.add({"content": "x"})  # type: ignore[call-overload]


def test_search_modes_explain_and_threshold(mem: Memory) -> None:
    mem.add("I love pizza with extra cheese", user_id="u")
    mem.add("San Francisco is foggy in summer", user_id="u")
    mem.add("我喜欢喝咖啡，特别是拿铁", user_id="u")
    hits = mem.search("pizza", user_id="u", mode="keyword")
    assert [h["content"] for h in hits][:1] == ["I love pizza with extra cheese"]
    assert "explain" not in hits[0]
    explained = mem.search("pizza", user_id="u", mode="keyword", explain=True)
    assert explained[0]["explain"]["keyword"]["rank"] == 1
    assert mem.search("piza", user_id="u", mode="fuzzy")[0]["content"].startswith("I love pizza")
    assert mem.search("咖啡", user_id="u", mode="keyword")[0]["content"].startswith("我喜欢")
    phrase = mem.search("foggy in summer", user_id="u", mode="phrase")
    assert [h["content"] for h in phrase] == ["San Francisco is foggy in summer"]
    assert mem.search("pizza", user_id="nobody") == []
    hybrid = mem.search("pizza cheese", user_id="u", limit=1)
    assert len(hybrid) == 1
    assert 0 < hybrid[0]["score"] <= 1
    assert "similarity" in hybrid[0]
    assert mem.search("pizza", user_id="u", mode="vector", threshold=1.0) == []
    with pytest.raises(InvalidInputError, match="magic"):
        mem.search("x", mode="magic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        mem.search("x", limit=0)


def test_filters_scopes_and_the_global_layer(mem: Memory) -> None:
    mem.add("global fact")
    mem.add("red", user_id="u", metadata={"colour": "red", "n": 1})
    mem.add("blue", user_id="u", metadata={"colour": "blue", "n": 5})
    page = mem.list(user_id="u", filters={"n": {"gte": 2}})
    assert [r["content"] for r in page["items"]] == ["blue"]
    assert mem.count(user_id="u", filters={"colour": {"in": ["red", "blue"]}}) == 2
    assert mem.count(filters={"OR": [{"colour": "red"}, {"colour": "blue"}]}) == 2
    with_global = mem.list(user_id="u", include_global=True)
    assert {r["content"] for r in with_global["items"]} == {"global fact", "red", "blue"}
    with pytest.raises(InvalidInputError, match=r"filters\.n\.gte"):
        mem.count(filters={"n": {"gte": {"nested": 1}}})


def test_list_pages_with_cursors_and_offsets(mem: Memory) -> None:
    ids = [o["id"] for o in mem.add([f"memory {i}" for i in range(7)], user_id="u")]
    seen: list[str] = []
    cursor = None
    while True:
        page = mem.list(user_id="u", limit=3, cursor=cursor, order="created_asc")
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7
    offset = mem.list(user_id="u", limit=2, offset=6, order="created_asc")
    assert len(offset["items"]) == 1
    with pytest.raises(InvalidInputError):
        mem.list(order="sideways")  # type: ignore[arg-type]


def test_update_delete_history(mem: Memory) -> None:
    mid = mem.add("likes tea", user_id="u", metadata={"a": 1}, expires_at="2999-01-01")["id"]
    time.sleep(0.002)
    updated = mem.update(mid, content="likes green tea", metadata={"b": 2}, kind="semantic")
    assert updated["content"] == "likes green tea"
    assert updated["metadata"] == {"b": 2}  # replaced whole
    assert updated["kind"] == "semantic"
    assert updated["updated_at"] > updated["created_at"]
    assert "expires_at" in updated  # UNSET leaves it
    assert "expires_at" not in mem.update(mid, expires_at=None)  # None removes it
    mem.delete(mid)
    with pytest.raises(NotFoundError):
        mem.get(mid)
    with pytest.raises(NotFoundError):
        mem.delete(mid)
    with pytest.raises(NotFoundError):
        mem.update(mid, content="x")
    rows = mem.history(mid)
    assert [r["event"] for r in rows] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert set(rows[0]) == {
        "id",
        "memory_id",
        "event",
        "old_content",
        "new_content",
        "is_deleted",
        "actor",
        "created_at",
        "change_id",
    }
    assert rows[1]["old_content"] == "likes tea"
    assert rows[1]["new_content"] == "likes green tea"
    assert rows[-1]["is_deleted"] is True
    with pytest.raises(NotFoundError):
        mem.history("no-such-id")


def test_list_with_its_total(mem: Memory) -> None:
    mem.add([f"memory {i}" for i in range(7)], user_id="u")
    mem.add("old", user_id="u", expires_at="2000-01-01")
    mem.add("everyone's")
    page = mem.list(user_id="u", limit=3, with_total=True)
    assert (len(page["items"]), page["total"]) == (3, 7)
    assert mem.list(user_id="u", limit=3, offset=6, with_total=True)["total"] == 7
    assert mem.list(user_id="u", include_expired=True, with_total=True)["total"] == 8
    assert mem.list(user_id="u", include_global=True, with_total=True)["total"] == 8
    assert "total" not in mem.list(user_id="u")
    assert "total" not in mem.list(user_id="u", with_total=False)


def test_update_merges_metadata_atomically(tmp_path: Path) -> None:
    with Memory(tmp_path / "merge.db", embedder=HASHING) as mem:
        mid = mem.add("shared notes", metadata={"base": 0, "b": {"x": 1}})["id"]
        merged = mem.update(mid, metadata={"b": {"y": 2}, "c": 3}, merge_metadata=True)
        assert merged["metadata"] == {"base": 0, "b": {"y": 2}, "c": 3}  # shallow, new wins
        with pytest.raises(InvalidInputError, match="metadata"):
            mem.update(mid, merge_metadata=True)

        # Threads (and a second handle on the same file) each merging keys of their own.
        other = Memory(tmp_path / "merge.db", embedder=HASHING)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            store = other if t % 2 else mem
            try:
                for r in range(20):
                    store.update(mid, metadata={f"t{t}_r{r}": r}, merge_metadata=True)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        other.close()
        assert errors == []
        stored = mem.get(mid)["metadata"]
        assert {f"t{t}_r{r}" for t in range(4) for r in range(20)} <= set(stored)
        assert len(stored) == 3 + 80


def test_messages_stored_as_given_report_role_and_author(mem: Memory) -> None:
    events = mem.add_messages(
        [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "I'm vegetarian", "name": "al"},
            {"role": "assistant", "content": "Noted, no meat."},
        ],
        user_id="alice",
        infer=False,
    )
    assert [(e["event"], e.get("role"), e.get("actor_id")) for e in events] == [
        ("ADD", "user", "al"),
        ("ADD", "assistant", None),
    ]
    assert mem.get(events[0]["id"])["metadata"] == {"role": "user", "actor_id": "al"}
    assert mem.get(events[1]["id"])["metadata"] == {"role": "assistant"}


def test_delete_all_purge_and_reset(mem: Memory) -> None:
    mem.add(["a", "b"], user_id="u")
    mem.add("c", user_id="v")
    mem.add("old", user_id="v", expires_at="2000-01-01")
    assert mem.count() == 3  # the expired one is not counted
    assert mem.search("old", user_id="v", mode="keyword") == []
    assert len(mem.search("old", user_id="v", mode="keyword", include_expired=True)) == 1
    with pytest.raises(InvalidInputError, match="reset"):
        mem.delete_all()
    assert mem.delete_all(user_id="u") == 2
    assert mem.purge_expired() == 1
    mem.reset()
    assert mem.count() == 0


def test_caller_vectors_without_an_embedder() -> None:
    with Memory(embedder="none") as m:
        assert m.embedding_model is None
        with pytest.raises(UnsupportedError):
            m.add("no vector")
        east = m.add("points east", vector=[1, 0, 0])["id"]
        m.add(["north", "up"], vectors=[[0, 1, 0], [0, 0, 1]])
        hits = m.search(vector=[0.9, 0.1, 0], mode="vector", limit=1)
        assert hits[0]["id"] == east
        with pytest.raises(InvalidInputError, match="NaN"):
            m.add("bad", vector=[float("nan"), 0, 0])
        with pytest.raises(InvalidInputError):
            m.add("short", vector=[1.0, 0.0])
        m.update(east, content="points west", vector=[-1, 0, 0])
        assert m.search(vector=[-1, 0, 0], mode="vector", limit=1)[0]["id"] == east


def test_options_are_checked_by_the_core() -> None:
    with pytest.raises(InvalidInputError, match="unknown provider"):
        Memory(embedder="gpt")
    with pytest.raises(InvalidInputError, match="conectivity"):
        Memory(embedder=HASHING, index={"conectivity": 8})
    with pytest.raises(InvalidInputError, match="path"):
        Memory("", embedder=HASHING)
    with Memory(embedder=HASHING, search={"mode": "keyword", "limit": 1}) as m:
        m.add(["red apple", "red car"])
        assert len(m.search("red")) == 1


def test_location_and_copy_into_between_files(tmp_path: Path) -> None:
    with Memory(tmp_path / "a.db", embedder=HASHING) as source, Memory(embedder=HASHING) as mem:
        assert source.location == str(tmp_path / "a.db")
        assert mem.location == ":memory:"
        assert mem.location in repr(mem)
        kept = source.add("kept", user_id="u", metadata={"n": 1})["id"]
        gone = source.add("gone", user_id="u")["id"]
        source.update(kept, content="kept and changed")
        source.delete(gone)
        source.graph.add_relation("Alice", "lives in", "Paris", user_id="u", sources=[kept])
        assert source.copy_into(mem) == {
            "memories": 1,
            "history": 4,
            "versions": 2,
            "entities": 2,
            "relations": 1,
        }
        assert mem.graph.relations(user_id="u") == source.graph.relations(user_id="u")
        assert mem.get(kept) == source.get(kept)
        assert mem.history(gone) == source.history(gone)
        with pytest.raises(agent_mem.AlreadyExistsError, match="not empty"):
            source.copy_into(mem)
        # A file into itself is refused before anything is read.
        with (
            Memory(tmp_path / "a.db", embedder=HASHING) as same,
            pytest.raises(InvalidInputError, match="itself"),
        ):
            source.copy_into(same)
        closed = Memory(embedder=HASHING)
        closed.close()
        with pytest.raises(ClosedError, match="target"):
            source.copy_into(closed)
        with pytest.raises(TypeError, match="AsyncMemory"):
            source.copy_into(str(tmp_path / "b.db"))  # type: ignore[arg-type]


def test_lifetime_close_and_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Memory(path, embedder=HASHING) as m:
        assert m.path == str(path)
        mid = m.add("kept on disk", user_id="u")["id"]
        assert "store.db" in repr(m)
    assert m.closed
    assert (tmp_path / "store.db.usearch").exists()  # the index was saved on close
    with pytest.raises(ClosedError) as info:
        m.count()
    assert info.value.code == agent_mem.ErrorCode.Closed
    m.close()  # idempotent
    with Memory(str(path), embedder=HASHING) as again:
        assert again.get(mid)["content"] == "kept on disk"
        assert again.search("disk", user_id="u", mode="vector")[0]["id"] == mid
    in_memory = Memory(":memory:", embedder=HASHING)
    assert in_memory.path is None
    in_memory.close()


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(agent_mem.CorruptedError) as info:
        Memory(path, embedder=HASHING)
    assert path.read_bytes().startswith(b"this is not")  # untouched
    assert info.value.code == agent_mem.ErrorCode.Corrupted
    # The SQLite error that caused it is kept as the cause.
    assert isinstance(info.value.__cause__, agent_mem.CoreCause)
    assert "database" in str(info.value.__cause__)


def test_threads_share_one_store(mem: Memory) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                mem.add(f"thread {t} memory {i}", user_id=f"t{t}")
                mem.search(f"memory {i}", user_id=f"t{t}", mode="keyword")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert mem.count() == 100
    assert all(mem.count(user_id=f"t{t}") == 25 for t in range(4))


def test_the_gil_is_released_during_core_calls(model_mem: Memory) -> None:
    """While one thread embeds a batch in the core, Python code in another thread runs."""
    texts = [f"sentence number {i} about the weather, trains and music" for i in range(300)]
    done = threading.Event()
    took: list[float] = []

    def embed() -> None:
        start = time.perf_counter()
        model_mem.add(texts, user_id="u")
        took.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=embed)
    ticks = 0
    worker.start()
    while not done.is_set():
        ticks += 1  # pure Python: needs the GIL
        time.sleep(0)
    worker.join()
    assert took[0] > 0.2, "the batch was too quick to tell"
    # Holding the GIL for the whole call would leave the loop a handful of ticks at most.
    assert ticks > 1000, f"only {ticks} ticks in {took[0]:.2f} s: the GIL was held"


def test_the_real_model_finds_by_meaning(model_mem: Memory) -> None:
    assert model_mem.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    model_mem.add("Alice is allergic to peanuts", user_id="alice")
    model_mem.add("Alice works as a site reliability engineer", user_id="alice")
    model_mem.add("我喜欢喝咖啡，特别是拿铁", user_id="alice")
    hits = model_mem.search("what food should alice avoid?", user_id="alice", mode="vector")
    assert hits[0]["content"] == "Alice is allergic to peanuts"
    assert hits[0]["similarity"] > hits[1]["similarity"]
    hybrid = model_mem.search("咖啡", user_id="alice")
    assert hybrid[0]["content"] == "我喜欢喝咖啡，特别是拿铁"


def test_versions_and_the_store_as_of_a_past_moment(mem: Memory) -> None:
    first = mem.add("Erin lives in Lyon", user_id="erin")["id"]
    other = mem.add("Erin's cat is called Mochi", user_id="erin")["id"]
    before = dt.datetime.fromisoformat(mem.get(other)["valid_from_tx"].replace("Z", "+00:00"))
    updated = mem.update(first, content="Erin lives in Porto")
    assert updated["version"] == 2
    mem.delete(other)

    then = mem.get(first, as_of=before)
    assert (then["content"], then["version"]) == ("Erin lives in Lyon", 1)
    assert then["valid_to_tx"] == updated["valid_from_tx"]
    assert "valid_to_tx" not in mem.get(first)
    assert [v["content"] for v in mem.versions(first)] == [
        "Erin lives in Lyon",
        "Erin lives in Porto",
    ]
    hits = mem.search("Lyon", user_id="erin", mode="keyword", as_of=before)
    assert [h["content"] for h in hits] == ["Erin lives in Lyon"]
    assert mem.search("Lyon", user_id="erin", mode="keyword") == []
    page = mem.list(user_id="erin", as_of=before.isoformat(), with_total=True)
    assert page["total"] == 2
    assert mem.count(user_id="erin", as_of=before) == 2
    assert mem.count(user_id="erin") == 1
    # A moment before the store, or still to come: nothing, not an error.
    assert mem.count(as_of=dt.date(2000, 1, 1)) == 0
    assert mem.search("Lyon", as_of=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)) == []
    with pytest.raises(NotFoundError):
        mem.get(first, as_of=dt.date(2000, 1, 1))
    with pytest.raises(InvalidInputError, match="as_of"):
        mem.search("Lyon", as_of="last tuesday")
    with pytest.raises(NotFoundError):
        mem.versions("no-such-id")


def test_valid_time_supersede_undo_and_revert(mem: Memory) -> None:
    paris = mem.add("Alice lives in Paris", user_id="alice", valid_from=dt.date(2019, 5, 1))["id"]
    assert mem.get(paris)["valid_from"] == "2019-05-01T00:00:00.000000Z"
    done = mem.supersede(paris, "Alice lives in Berlin", valid_from="2024-03-01")
    assert done["superseded"]["superseded_by"] == done["memory"]["id"]
    assert done["superseded"]["valid_to"] == "2024-03-01T00:00:00.000000Z"

    def found(**kwargs: Any) -> list[str]:
        hits = mem.search("Alice lives", user_id="alice", mode="keyword", **kwargs)
        return sorted(h["content"] for h in hits)

    assert found() == ["Alice lives in Berlin"]
    assert found(include_superseded=True) == ["Alice lives in Berlin", "Alice lives in Paris"]
    assert found(valid_at=dt.date(2022, 1, 1)) == ["Alice lives in Paris"]
    assert mem.count(user_id="alice") == 1
    assert mem.count(user_id="alice", include_superseded=True) == 2
    assert len(mem.list(user_id="alice", valid_at="2025-01-01")["items"]) == 1

    undone = mem.undo(done["change_id"])
    assert undone["removed"] == [done["memory"]["id"]]
    assert found() == ["Alice lives in Paris"]
    with pytest.raises(InvalidInputError, match="already undone"):
        mem.undo(done["change_id"])
    history = mem.history(paris)
    assert history[-2]["undone_by"] == undone["change_id"]

    mem.update(paris, content="Alice lives in Lyon", valid_to=dt.date(2030, 1, 1))
    changed = mem.history(paris)[-1]["change_id"]
    mem.update(paris, content="Alice lives in Nice")
    with pytest.raises(InvalidInputError, match="force"):
        mem.undo(changed)
    assert mem.undo(changed, force=True)["restored"][0]["content"] == "Alice lives in Paris"
    reverted = mem.revert(paris, 1)
    assert reverted["restored"][0]["content"] == "Alice lives in Paris"
    with pytest.raises(NotFoundError):
        mem.revert(paris, 99)
    with pytest.raises(InvalidInputError, match="valid_to"):
        mem.update(paris, valid_to="2000-01-01")
    with pytest.raises(NotFoundError):
        mem.undo("no-such-change")


def test_time_words_in_a_query(mem: Memory) -> None:
    mem.add("Bob worked in Oslo", user_id="bob", valid_from="2022-01-01", valid_to="2023-06-01")
    mem.add("Bob works in Bergen", user_id="bob", valid_from="2023-06-01")
    hits = mem.search(
        "where did Bob work in 2022",
        user_id="bob",
        mode="keyword",
        time_aware=True,
        now="2025-01-01",
    )
    assert [h["content"] for h in hits] == ["Bob worked in Oslo"]
    hits = mem.search("Bob 去年在哪里工作", user_id="bob", time_aware=True, now=dt.date(2025, 3, 1))
    assert [h["content"] for h in hits] == ["Bob works in Bergen"]


def test_prune_versions_follows_the_retention() -> None:
    with Memory(embedder=HASHING, history_retention={"keep_versions": 1}) as m:
        memory_id = m.add("Dana drinks tea")["id"]
        for drink in ("coffee", "cocoa"):
            m.update(memory_id, content=f"Dana drinks {drink}")
        assert m.prune_versions() == {"versions": 1}
        assert [v["version"] for v in m.versions(memory_id)] == [2, 3]
    with pytest.raises(InvalidInputError, match="keep"):
        Memory(embedder=HASHING, history_retention={"keep": 1})
