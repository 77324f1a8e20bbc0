"""The knowledge graph from Python: ``memory.graph`` (and ``AsyncMemory.graph``) over the
core's graph: resolution by name within a scope, functional predicates closing the old
relation, provenance, walks, and bad input as ``InvalidInputError`` / ``NotFoundError``."""

from __future__ import annotations

import asyncio
import datetime as dt
from xml.etree import ElementTree

import pytest

from agent_mem import AsyncMemory, InvalidInputError, Memory, NotFoundError
from conftest import HASHING


def test_names_resolve_within_a_scope(mem: Memory) -> None:
    alice = mem.graph.add_entity(
        "Alice Smith", entity_type="person", aliases=["Alice"], user_id="a"
    )
    assert alice["type"] == "person"
    assert alice["aliases"] == ["Alice"]
    assert mem.graph.add_entity("  alice SMITH", user_id="a")["id"] == alice["id"]
    assert mem.graph.add_entity("Alice", user_id="b")["id"] != alice["id"]
    assert [e["id"] for e in mem.graph.entities("ali", user_id="a")] == [alice["id"]]


def test_a_functional_predicate_closes_the_old_relation(mem: Memory) -> None:
    paris = mem.graph.add_relation(
        "Alice", "lives in", "Paris", user_id="a", valid_from="2023-01-01"
    )
    assert paris["created"]
    assert paris["relation"]["predicate"] == "lives_in"
    berlin = mem.graph.add_relation(
        "alice",
        "lives_in",
        {"name": "Berlin", "type": "place"},
        user_id="a",
        valid_from="2024-03-01",
    )
    assert berlin["closed"] == [paris["relation"]["id"]]
    now = mem.graph.relations(user_id="a")
    assert [r["object_name"] for r in now] == ["Berlin"]
    then = mem.graph.relations(user_id="a", valid_at="2023-06-01")
    assert [r["object_name"] for r in then] == ["Paris"]
    every = mem.graph.relations(user_id="a", include_closed=True)
    closed = next(r for r in every if r["object_name"] == "Paris")
    assert closed["closed_by"] == berlin["relation"]["id"]
    assert closed["valid_to"].startswith("2024-03-01")


def test_relations_from_a_deleted_memory_go(mem: Memory) -> None:
    source = mem.add("Carol is allergic to peanuts", user_id="c")["id"]
    mem.graph.add_relation("Carol", "allergic_to", value="peanuts", user_id="c", sources=[source])
    assert mem.graph.relations(user_id="c", source=source)[0]["literal"] is True
    mem.delete(source)
    assert mem.graph.relations(user_id="c") == []


def test_walks_and_paths(mem: Memory) -> None:
    for a, b in [("Ann", "Ben"), ("Ben", "Cy"), ("Cy", "Di")]:
        mem.graph.add_relation(a, "knows", b, user_id="u")
    ann = mem.graph.entities("ann", user_id="u")[0]["id"]
    di = mem.graph.entities("di", user_id="u")[0]["id"]
    near = mem.graph.neighbors(ann, depth=2)
    assert {(n["entity"]["name"], n["depth"]) for n in near} == {("Ben", 1), ("Cy", 2)}
    assert [n["entity"]["name"] for n in mem.graph.neighbors(ann, direction="in")] == []
    path = mem.graph.path(ann, di)
    assert path is not None
    assert [r["subject_name"] for r in path] == ["Ann", "Ben", "Cy"]
    assert mem.graph.path(ann, di, max_depth=2) is None
    detail = mem.graph.entity(ann)
    assert detail["entity"]["name"] == "Ann"
    assert [r["object_name"] for r in detail["relations"]] == ["Ben"]


def test_bad_input_is_refused(mem: Memory) -> None:
    with pytest.raises(InvalidInputError, match="depth"):
        mem.graph.neighbors(mem.graph.add_entity("X")["id"], depth=9)
    with pytest.raises(InvalidInputError, match="predicate"):
        mem.graph.add_relation("X", "->", "Y")
    with pytest.raises(InvalidInputError):
        mem.graph.add_relation("X", "knows", "Y", value="both")
    with pytest.raises(NotFoundError):
        mem.graph.entity("nobody")
    with pytest.raises(TypeError):
        mem.graph.add_relation(3, "knows", "Y")  # type: ignore[arg-type]
    assert [e["name"] for e in mem.graph.entities()] == ["X"]


def test_async_graph() -> None:
    async def main() -> None:
        async with await AsyncMemory.open(embedder=HASHING) as m:
            added = await m.graph.add_relation("Eve", "works at", "Acme", user_id="e")
            eve = added["relation"]["subject"]
            assert (await m.graph.entity(eve))["entity"]["name"] == "Eve"
            assert len(await m.graph.neighbors(eve)) == 1

    asyncio.run(main())


def test_functional_predicates_are_an_open_option() -> None:
    with Memory(embedder=HASHING, graph={"functional_predicates": ["drives"]}) as m:
        m.graph.add_relation("Bo", "drives", "a Volvo")
        assert len(m.graph.add_relation("Bo", "drives", "a Saab")["closed"]) == 1
        m.graph.add_relation("Bo", "lives_in", "Oslo")
        assert m.graph.add_relation("Bo", "lives_in", "Bergen")["closed"] == []
    with pytest.raises(InvalidInputError, match="graph"):
        Memory(embedder=HASHING, graph={"extract": True, "colour": 1})


def test_corrections_merge_rename_and_split(mem: Memory) -> None:
    bob = mem.graph.add_entity("Bob", entity_type="person", user_id="u")
    robert = mem.graph.add_entity("Robert", entity_type="person", user_id="u")
    mem.graph.add_relation("Robert", "plays", "chess", user_id="u")
    merged = mem.graph.merge_entities(bob["id"], robert["id"])
    assert merged["entity"]["aliases"] == ["Robert"]
    assert [r["subject_name"] for r in merged["relations"]] == ["Bob"]
    with pytest.raises(NotFoundError, match="merged into"):
        mem.graph.entity(robert["id"])
    renamed = mem.graph.rename_entity(bob["id"], "Bobby")
    assert renamed["aliases"] == ["Bob", "Robert"]
    split = mem.graph.split_entity(
        bob["id"], "Robert", aliases=["robert"], relations=[merged["relations"][0]["id"]]
    )
    assert split["split_off"]["entity"]["name"] == "Robert"
    assert split["split_off"]["relations"][0]["subject_name"] == "Robert"
    assert split["entity"]["entity"]["aliases"] == ["Bob"]
    events = [e["event"] for e in mem.graph.entity_history(bob["id"])]
    assert events == ["merged", "renamed", "split"]
    with pytest.raises(InvalidInputError, match="merge"):
        mem.graph.rename_entity(bob["id"], "robert")


def test_async_corrections() -> None:
    async def main() -> None:
        async with await AsyncMemory.open(embedder=HASHING) as m:
            a = await m.graph.add_entity("Al", user_id="u")
            b = await m.graph.add_entity("Albert", user_id="u")
            merged = await m.graph.merge_entities(a["id"], b["id"])
            assert merged["entity"]["aliases"] == ["Albert"]
            history = await m.graph.entity_history(b["id"])
            assert history[0]["event"] == "merged_into"

    asyncio.run(main())


def test_name_similarity_is_an_open_option() -> None:
    with pytest.raises(InvalidInputError, match="name_similarity"):
        Memory(embedder=HASHING, graph={"name_similarity": 0.1})


def test_add_with_entities_and_relations_in_one_call(mem: Memory) -> None:
    added = mem.add(
        "Alice (Ally) moved to Paris in 2024",
        user_id="a",
        entities=[{"name": "Alice", "type": "person", "aliases": ["Ally"]}, "Paris"],
        relations=[
            {
                "subject": "Ally",
                "predicate": "lives in",
                "object": "Paris",
                "valid_from": dt.date(2024, 1, 1),
            },
            {"subject": {"name": "Alice"}, "predicate": "age", "value": "30"},
        ],
    )
    relations = mem.graph.relations(user_id="a")
    assert [(r["subject_name"], r["predicate"], r["object_name"]) for r in relations] == [
        ("Alice", "lives_in", "Paris"),
        ("Alice", "age", "30"),
    ]
    assert all(r["sources"] == [added["id"]] for r in relations)
    assert relations[0]["valid_from"].startswith("2024-01-01")
    # A bad relation fails the whole call: no memory, no entity, no relation.
    before = (mem.count(), len(mem.graph.entities(user_id="a")))
    with pytest.raises(NotFoundError):
        mem.add(
            "Alice knows someone",
            user_id="a",
            relations=[
                {"subject": "Alice", "predicate": "knows", "object": "Zed"},
                {"subject": "Alice", "predicate": "knows", "object": {"id": "no-such-entity"}},
            ],
        )
    with pytest.raises(InvalidInputError, match="predicate"):
        mem.add("x", user_id="a", relations=[{"subject": "Alice", "predicate": "?", "value": "v"}])
    assert (mem.count(), len(mem.graph.entities(user_id="a"))) == before
    with pytest.raises(TypeError, match="one memory"):
        mem.add(["a", "b"], relations=[{"subject": "A", "predicate": "p", "value": "v"}])
    # Batch items carry their own.
    ids = mem.add_batch(
        [
            {
                "content": "Bob likes jazz",
                "user_id": "b",
                "relations": [{"subject": "Bob", "predicate": "likes", "value": "jazz"}],
            },
            {"content": "Cy likes rock", "user_id": "c", "entities": ["Cy"]},
        ]
    )
    assert mem.graph.relations(user_id="b")[0]["sources"] == [ids[0]["id"]]
    assert [e["name"] for e in mem.graph.entities(user_id="c")] == ["Cy"]


def test_import_and_export_round_trip(mem: Memory) -> None:
    report = mem.graph.import_triples(
        [
            {
                "subject": "Ann",
                "subject_type": "person",
                "predicate": "lives_in",
                "object": "Oslo",
                "object_type": "place",
                "valid_from": dt.date(2020, 1, 1),
            },
            {
                "subject": "Ann",
                "predicate": "lives_in",
                "object": "Rome",
                "valid_from": "2023-01-01",
            },
            {"subject": "Ann", "predicate": "motto", "value": 'say "hi" & <wave>\nnow'},
        ],
        entities=[{"name": "Ann", "aliases": ["Annie"], "summary": "a <friend>"}],
        user_id="u",
    )
    assert report == {
        "relations_created": 3,
        "relations_held": 0,
        "entities_created": 3,
        "closed": [mem.graph.relations(user_id="u", include_closed=True)[0]["id"]],
    }
    with pytest.raises(InvalidInputError, match="triples"):
        mem.graph.import_triples([{"subject": "Ann", "predicate": "!", "value": "v"}])
    doc = mem.graph.export(user_id="u", include_closed=True)
    assert doc["format"] == "json"
    assert [e["name"] for e in doc["content"]["entities"]] == ["Ann", "Oslo", "Rome"]
    # The JSON content imports back, into another scope.
    again = mem.graph.import_triples(**doc["content"], user_id="copy")
    assert again["relations_created"] == 3
    assert again["closed"] == []
    assert mem.graph.export(user_id="copy", include_closed=True) == doc
    # GraphML parses as XML, with the text as it was.
    graphml = mem.graph.export("graphml", user_id="u", include_closed=True)["content"]
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ElementTree.fromstring(graphml)
    nodes = root.findall("g:graph/g:node", ns)
    edges = root.findall("g:graph/g:edge", ns)
    assert len(nodes) == 4
    assert len(edges) == 3
    names = {d.text for n in nodes for d in n.findall("g:data[@key='name']", ns)}
    assert 'say "hi" & <wave>\nnow' in names
    summaries = [
        d.text
        for d in root.iter("{http://graphml.graphdrawing.org/xmlns}data")
        if d.get("key") == "summary"
    ]
    assert summaries == ["a <friend>"]
    dot = mem.graph.export("dot", user_id="u")["content"]
    assert dot.startswith("digraph agent_mem {")
    assert r'[label="say \"hi\" & <wave>\nnow", shape=note];' in dot
    with pytest.raises(InvalidInputError):
        mem.graph.export("svg")  # type: ignore[arg-type]


def test_async_import_and_export() -> None:
    async def main() -> None:
        async with await AsyncMemory.open(embedder=HASHING) as m:
            await m.add(
                "Eve works at Acme",
                user_id="e",
                relations=[{"subject": "Eve", "predicate": "works_at", "object": "Acme"}],
            )
            report = await m.graph.import_triples(
                [{"subject": "Eve", "predicate": "knows", "object": "Dan"}], user_id="e"
            )
            assert report["relations_created"] == 1
            doc = await m.graph.export(user_id="e")
            assert len(doc["content"]["triples"]) == 2

    asyncio.run(main())


def test_the_graph_as_recorded_at_a_past_moment(mem: Memory) -> None:
    said = mem.add("Ann lives in Oslo", user_id="u")["id"]
    oslo = mem.graph.add_relation("Ann", "lives in", "Oslo", user_id="u", sources=[said])
    then = oslo["relation"]["created_at"]
    mem.graph.add_relation("Ann", "lives in", "Rome", user_id="u")
    mem.delete(said)
    now = [r["object_name"] for r in mem.graph.relations(user_id="u")]
    past = [r["object_name"] for r in mem.graph.relations(user_id="u", as_of=then)]
    assert (now, past) == (["Rome"], ["Oslo"])
    ann = oslo["relation"]["subject"]
    assert [n["entity"]["name"] for n in mem.graph.neighbors(ann, as_of=then)] == ["Oslo"]
    with pytest.raises(InvalidInputError, match="as_of"):
        mem.graph.relations(user_id="u", as_of="yesterday-ish")
