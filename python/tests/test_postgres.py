"""Stores on PostgreSQL (+ pgvector): the conformance cases, copies between SQLite and
PostgreSQL both ways, AsyncMemory, the ``postgres`` open option, the password kept out of
everything shown, and mem0's ``pgvector`` vector store.

The server is the one ``bash tests/postgres.sh run -- bash python/tests/run.sh`` starts
(``AGENTMEM_TEST_PG_URL``); without it these tests are skipped, or fail with
``AGENTMEM_REQUIRE_POSTGRES=1``. Every store gets a schema of its own (the ``pg`` fixture).
The checks that need no server (option validation, the mem0 URL mapping) always run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from agent_mem import (
    AlreadyExistsError,
    AsyncMemory,
    InvalidInputError,
    Memory,
    SearchHit,
    StorageError,
    UnsupportedError,
)
from agent_mem import mem0 as mem0_module
from agent_mem.mem0 import Mem0CompatWarning
from conftest import HASHING, PgSchemas, _psycopg, pg_server, with_search_path
from test_conformance import FILES, open_store, run_file

# A password no role has: it must never come back in a message.
WRONG_PASSWORD = "wrong-Pw-7f3a9c"
EVERYTHING: dict[str, Any] = {"include_expired": True, "order": "created_asc", "limit": 10_000}


def secrets_of(url: str) -> list[str]:
    """What must not show wherever a store describes itself: the password in its URL form
    (``:password@``, since the user name may show) and the whole URL."""
    parts = urlsplit(url)
    shown = [url]
    if parts.password:
        shown.append(f":{parts.password}@")
        shown.append(f":{unquote(parts.password)}@")
    return shown


def assert_hidden(text: str, url: str) -> None:
    for secret in [*secrets_of(url), WRONG_PASSWORD]:
        assert secret not in text, f"{secret!r} shows in {text!r}"


def error_texts(error: BaseException) -> str:
    """An error's message and those of its causes."""
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts.append(str(seen))
        seen = seen.__cause__
    return "\n".join(texts)


def with_password(url: str, password: str) -> str:
    """The URL with another password."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_conformance_case_on_postgres(path: Path, pg: PgSchemas) -> None:
    ran = run_file(path, lambda embedder: open_store(embedder, pg.url(path.stem)))
    assert ran == len(json.loads(path.read_text(encoding="utf-8"))["steps"])


# --------------------------------------------------------------------------- copies


def fill(m: Memory) -> dict[str, str]:
    """Memories of every shape (scopes, kinds, metadata, an expiry), then changes: updated
    content and metadata, a deleted memory (its history stays). Named ids."""
    ids = {
        "alice": m.add(
            "Alice is vegetarian and allergic to peanuts",
            user_id="alice",
            agent_id="chef",
            metadata={"topic": "food", "stars": 5, "tags": ["diet", "health"]},
        )["id"],
        "bob": m.add(
            "Bob lives in Lyon", user_id="bob", run_id="r1", org_id="acme", kind="semantic"
        )["id"],
        "global": m.add("The office closes at 6 pm", kind="knowledge")["id"],
        "old": m.add("a passing thought", user_id="alice", expires_at="2001-01-01")["id"],
        "gone": m.add("Dan hates olives", user_id="dan")["id"],
        "cjk": m.add("我喜欢喝咖啡,特别是拿铁", user_id="alice", kind="episodic")["id"],
    }
    m.update(ids["bob"], content="Bob lives in Paris", metadata={"moved": True})
    m.update(ids["alice"], metadata={"topic": "food", "stars": 4})
    m.delete(ids["gone"])
    batch = m.add(["first of a batch", "second of a batch"], agent_id="bot")
    ids["batch0"], ids["batch1"] = batch[0]["id"], batch[1]["id"]
    return ids


QUERIES: list[dict[str, Any]] = [
    {"query": "Paris", "mode": "keyword"},
    {"query": "vegetarian peanuts", "mode": "keyword", "user_id": "alice"},
    # Two: the third would be one of several memories at similarity 0, an arbitrary one.
    {"query": "Alice is vegetarian", "mode": "vector", "limit": 2},
    {"query": "vegetarain", "mode": "fuzzy"},
    {"query": "who lives in Paris", "user_id": "bob"},
    {"query": "咖啡", "mode": "keyword"},
    {"query": "batch", "agent_id": "bot", "mode": "phrase"},
    {"query": "office", "include_expired": True, "mode": "keyword"},
]


def ranking(hits: list[SearchHit]) -> list[tuple[float, set[str]]]:
    """Hits as (score, ids) groups, best first: the order among equal scores is no one's
    promise."""
    groups: list[tuple[float, set[str]]] = []
    for hit in hits:
        if groups and math.isclose(groups[-1][0], hit["score"], rel_tol=1e-4, abs_tol=1e-6):
            groups[-1][1].add(hit["id"])
        else:
            groups.append((hit["score"], {hit["id"]}))
    return groups


def assert_same(a: Memory, b: Memory, ids: dict[str, str]) -> None:
    """Same memories (ids, contents, scopes, kinds, metadata, times), same history of every
    memory (the deleted one's too), same searches (order, scores)."""
    assert b.list(**EVERYTHING) == a.list(**EVERYTHING)
    assert b.count() == a.count()
    for name, memory_id in ids.items():
        assert b.history(memory_id) == a.history(memory_id), name
    for query in QUERIES:
        want = ranking(a.search(**query))
        got = ranking(b.search(**query))
        assert want, query
        assert [ids for _, ids in got] == [ids for _, ids in want], query
        assert [score for score, _ in got] == pytest.approx([s for s, _ in want], rel=1e-4)


def test_copy_sqlite_to_postgres_and_back(tmp_path: Path, pg: PgSchemas) -> None:
    with Memory(tmp_path / "source.db", embedder=HASHING) as source:
        ids = fill(source)
        history_rows = sum(len(source.history(i)) for i in ids.values())
        assert [e["event"] for e in source.history(ids["gone"])] == ["ADD", "DELETE"]
        url = pg.url("copy")
        with Memory(url, embedder=HASHING) as on_pg:
            report = source.copy_into(on_pg)
            # Every row but an ADD replaced a version: the past versions.
            assert report == {
                "memories": len(ids) - 1,
                "history": history_rows,
                "versions": history_rows - len(ids),
                "entities": 0,
                "relations": 0,
            }
            assert_same(source, on_pg, ids)

            with Memory(tmp_path / "back.db", embedder=HASHING) as back:
                assert on_pg.copy_into(back) == report
                assert_same(source, back, ids)

            # A second copy into the same (no longer empty) store is refused, and nothing
            # is written; the message names the store without its password.
            with pytest.raises(AlreadyExistsError, match="not empty") as refused:
                source.copy_into(on_pg)
            assert_hidden(error_texts(refused.value), url)
            assert on_pg.list(**EVERYTHING) == source.list(**EVERYTHING)

            # The copy is a store like any other: it takes new writes.
            new = on_pg.add("written after the copy", user_id="carol")["id"]
            assert on_pg.search("written after the copy", mode="keyword")[0]["id"] == new
            on_pg.delete(new)

    # Reopened from scratch, the PostgreSQL store and the file copied back still agree.
    back_path = tmp_path / "back.db"
    with Memory(url, embedder=HASHING) as on_pg, Memory(back_path, embedder=HASHING) as back:
        assert back.list(**EVERYTHING) == on_pg.list(**EVERYTHING)
        assert back.history(ids["gone"]) == on_pg.history(ids["gone"])


def test_copy_refuses_another_model(tmp_path: Path, pg: PgSchemas) -> None:
    with Memory(tmp_path / "a.db", embedder=HASHING) as source:
        source.add("something to copy")
        with Memory(pg.url("narrow"), embedder={"provider": "hashing", "dimensions": 32}) as t:
            with pytest.raises(InvalidInputError, match="hashing-64"):
                source.copy_into(t)
            assert t.count() == 0
        with pytest.raises(TypeError, match="Memory or AsyncMemory"):
            source.copy_into(pg.url("not-a-store"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the password


def test_the_password_never_shows(pg: PgSchemas) -> None:
    url = pg.url("secret")
    with Memory(url, embedder=HASHING) as m:
        assert m.path is None
        assert m.location.startswith(("postgres://", "postgresql://"))
        assert urlsplit(m.location).hostname == urlsplit(url).hostname
        assert_hidden(m.location, url)
        assert_hidden(repr(m), url)
        assert m.location in repr(m)
    assert_hidden(repr(m), url)  # closed

    # A wrong password: a clear StorageError that does not repeat it.
    with pytest.raises(StorageError) as wrong:
        Memory(with_password(url, WRONG_PASSWORD), embedder=HASHING)
    text = error_texts(wrong.value)
    assert "password" in text.lower()
    assert_hidden(text, url)

    # Nothing listens on port 1.
    parts = urlsplit(url)
    nowhere = parts._replace(netloc=f"{parts.username}:{WRONG_PASSWORD}@127.0.0.1:1").geturl()
    with pytest.raises(StorageError) as unreachable:
        Memory(nowhere, embedder=HASHING, postgres={"connect_timeout_ms": 2000})
    assert_hidden(error_texts(unreachable.value), url)


def test_a_connection_string_opens_like_a_url(pg: PgSchemas) -> None:
    server = urlsplit(pg.server)
    schema = pg.schema("conninfo")
    password = unquote(server.password or "")
    conninfo = (
        f"host={server.hostname} port = {server.port} dbname='{server.path.lstrip('/')}' "
        f"user={server.username} password='{password}' "
        f"options='-c search_path={schema},public'"
    )
    with Memory(conninfo, embedder=HASHING) as m:
        assert m.path is None
        memory_id = m.add("opened by a connection string", user_id="u")["id"]
        assert "password=***" in m.location
        for shown in (m.location, repr(m)):
            assert f"password='{password}'" not in shown
            assert f"password={password} " not in shown
    # The same store by URL.
    with Memory(with_search_path(pg.server, schema), embedder=HASHING) as by_url:
        assert by_url.get(memory_id)["content"] == "opened by a connection string"
    # A wrong password: a StorageError that does not repeat it; bad strings are refused.
    with pytest.raises(StorageError) as wrong:
        Memory(conninfo.replace(f"'{password}'", f"'{WRONG_PASSWORD}'"), embedder=HASHING)
    assert WRONG_PASSWORD not in error_texts(wrong.value)
    with pytest.raises(InvalidInputError) as unterminated:
        Memory(f"host=h password='{WRONG_PASSWORD}", embedder=HASHING)
    assert WRONG_PASSWORD not in error_texts(unterminated.value)
    with pytest.raises(UnsupportedError, match="sslcert"):
        Memory(f"{conninfo} sslcert=/tmp/client.pem", embedder=HASHING)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("postgres", "needle"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_sise": 2}, "pool_sise"),
        ({"pool_size": "eight"}, "options.postgres"),
        ({"connect_timeout_ms": -1}, "options.postgres"),
    ],
)
def test_postgres_options_are_checked(postgres: dict[str, Any], needle: str) -> None:
    # Checked before anything opens: the same error with or without a server.
    with pytest.raises(InvalidInputError, match=needle):
        Memory(embedder=HASHING, postgres=postgres)
    with pytest.raises(InvalidInputError, match=needle):
        Memory("postgres://nobody@127.0.0.1:1/none", embedder=HASHING, postgres=postgres)


def test_postgres_options_on_the_server(pg: PgSchemas) -> None:
    options = {
        "pool_size": 2,
        "connect_timeout_ms": 5000,
        "pool_timeout_ms": 5000,
        "statement_timeout_ms": 10_000,
    }
    with Memory(pg.url("pool"), embedder=HASHING, postgres=options) as m:
        ids = [m.add(f"memory number {i}", user_id="u")["id"] for i in range(5)]
        assert m.count(user_id="u") == 5
        assert m.search("number 3", user_id="u", mode="keyword")[0]["id"] == ids[3]


# --------------------------------------------------------------------------- async


def test_async_memory_on_postgres(tmp_path: Path, pg: PgSchemas) -> None:
    url = pg.url("async")

    async def main() -> None:
        async with await AsyncMemory.open(url, embedder=HASHING, postgres={"pool_size": 4}) as m:
            assert_hidden(m.location, url)
            assert_hidden(repr(m), url)
            added = await asyncio.gather(
                *(m.add(f"fact {i} about tea", user_id="u", metadata={"i": i}) for i in range(20))
            )
            assert len({a["id"] for a in added}) == 20
            assert await m.count(user_id="u") == 20
            hits = await m.search("fact 7 about tea", user_id="u", mode="vector", limit=1)
            assert hits[0]["id"] == added[7]["id"]
            got = await m.get(added[3]["id"])
            assert got["metadata"] == {"i": 3}
            await m.update(added[3]["id"], content="fact 3 about coffee")
            await m.delete(added[4]["id"])
            events = [e["event"] for e in await m.history(added[3]["id"])]
            assert events == ["ADD", "UPDATE"]
            async with AsyncMemory(tmp_path / "from_pg.db", embedder=HASHING) as copy:
                report = await m.copy_into(copy)
                assert report == {
                    "memories": 19,
                    "history": 22,
                    "versions": 2,
                    "entities": 0,
                    "relations": 0,
                }
                assert (await copy.list(**EVERYTHING)) == (await m.list(**EVERYTHING))
            async with AsyncMemory(embedder=HASHING) as other:
                await other.add("not empty")
                with pytest.raises(AlreadyExistsError):
                    await m.copy_into(other)

    asyncio.run(main())


# --------------------------------------------------------------------------- mem0


def test_mem0_pgvector_settings_become_a_url() -> None:
    settings, ignored = mem0_module._settings_from_config(
        {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "user": "mem0 user",
                    "password": "p@ss:w/rd %?#",
                    "host": "db.example.com",
                    "port": 5433,
                    "dbname": "memories",
                    "sslmode": "disable",
                    "maxconn": 7,
                    "minconn": 1,
                    "hnsw": True,
                    "diskann": False,
                },
            }
        }
    )
    assert settings.path == (
        "postgresql://mem0%20user:p%40ss%3Aw%2Frd%20%25%3F%23@db.example.com:5433/memories"
        "?sslmode=disable"
    )
    assert settings.options["postgres"] == {"pool_size": 7}
    assert ignored == []

    # mem0's defaults: localhost, database "postgres"; an IPv6 host in brackets; a socket
    # directory percent-encoded.
    for config, url in [
        ({"user": "u"}, "postgresql://u@localhost/postgres"),
        ({"host": "::1", "port": "5432"}, "postgresql://[::1]:5432/postgres"),
        ({"host": "/run/postgresql", "dbname": "d"}, "postgresql://%2Frun%2Fpostgresql/d"),
    ]:
        settings, _ = mem0_module._settings_from_config(
            {"vector_store": {"provider": "pgvector", "config": config}}
        )
        assert settings.path == url

    # A connection string wins, as in mem0: a URL or libpq's key=value pairs, as they are
    # (the core reads both).
    settings, ignored = mem0_module._settings_from_config(
        {
            "vector_store": {
                "provider": "pgvector",
                "config": {"connection_string": "postgresql://a:b@h/d", "dbname": "postgres"},
            }
        }
    )
    assert (settings.path, ignored) == ("postgresql://a:b@h/d", [])
    settings, ignored = mem0_module._settings_from_config(
        {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "connection_string": "host=h port=5 user=u password='it\\'s \\\\ x' "
                    "dbname=d options='-csearch_path=s,public'",
                    "user": "ignored",
                },
            }
        }
    )
    assert settings.path == (
        "host=h port=5 user=u password='it\\'s \\\\ x' dbname=d options='-csearch_path=s,public'"
    )
    assert ignored == [
        "vector_store pgvector settings ['user'] (connection_string is used, as in mem0)"
    ]
    with pytest.raises(InvalidInputError) as bad:
        mem0_module._settings_from_config(
            {"vector_store": {"provider": "pgvector", "config": {"connection_string": "s3cret"}}}
        )
    assert "s3cret" not in str(bad.value)
    # Only what the core opens on a server passes: never a file path by mistake.
    for text in ("colour=blue", "./host=x.db", "memories.db"):
        with pytest.raises(InvalidInputError, match="neither a postgresql:// URL"):
            mem0_module._settings_from_config(
                {"vector_store": {"provider": "pgvector", "config": {"connection_string": text}}}
            )


def test_mem0_pgvector_says_what_it_does_not_apply() -> None:
    _, ignored = mem0_module._settings_from_config(
        {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "collection_name": "memories",
                    "embedding_model_dims": 1536,
                    "diskann": True,
                    "hnsw": False,
                    "minconn": 3,
                    "maxconn": 5,
                    "weird": 1,
                },
            },
            "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
        }
    )
    said = "\n".join(ignored)
    for what in (
        "collection_name 'memories'",
        "diskann",
        "hnsw=False",
        "minconn 3",
        "['weird']",
        "embedding_model_dims 1536",
    ):
        assert what in said, what
    # The embedder's own dimension is no news.
    _, ignored = mem0_module._settings_from_config(
        {
            "vector_store": {"provider": "pgvector", "config": {"embedding_model_dims": 384}},
        }
    )
    assert ignored == []
    with pytest.raises(UnsupportedError, match="connection_pool"):
        mem0_module._settings_from_config(
            {"vector_store": {"provider": "pgvector", "config": {"connection_pool": object()}}}
        )


def superuser() -> Any:
    """A superuser connection to the test server over its unix socket (tests/postgres.sh
    trusts it), to make roles and databases."""
    sockdir = os.environ.get("AGENTMEM_TEST_PG_SOCKDIR")
    port = os.environ.get("AGENTMEM_TEST_PG_PORT")
    if not sockdir or not port:
        pytest.fail("AGENTMEM_TEST_PG_SOCKDIR and AGENTMEM_TEST_PG_PORT come with the server")
    return _psycopg().connect(
        host=sockdir, port=port, user="postgres", dbname="postgres", autocommit=True
    )


def test_mem0_from_config_with_pgvector_reaches_the_server() -> None:
    server = urlsplit(pg_server())
    # A role whose password needs percent-encoding, owning a database of its own (mem0's
    # separate settings carry no schema: the store lives in that database's public schema).
    suffix = uuid.uuid4().hex[:8]
    role, database, password = f"py_mem0_{suffix}", f"py_mem0_{suffix}", f"p@ss:w/rd %{suffix}"
    with superuser() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    psycopg = _psycopg()
    with psycopg.connect(
        host=os.environ["AGENTMEM_TEST_PG_SOCKDIR"],
        port=os.environ["AGENTMEM_TEST_PG_PORT"],
        user="postgres",
        dbname=database,
        autocommit=True,
    ) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE EXTENSION pg_trgm")
    config = {
        "vector_store": {
            "provider": "pgvector",
            "config": {
                "user": role,
                "password": password,
                "host": server.hostname,
                "port": server.port,
                "dbname": database,
                "maxconn": 3,
                "hnsw": True,
            },
        },
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
    }
    with mem0_module.Memory.from_config(config) as m:
        assert m.path is None
        assert m.config["options"]["postgres"] == {"pool_size": 3}
        assert password not in m.location
        assert password not in json.dumps(m.config)
        assert database in m.location
        added = m.add("I love sci-fi movies", user_id="alice", infer=False)["results"]
        assert [r["event"] for r in added] == ["ADD"]
        found = m.search("sci-fi movies", user_id="alice")["results"]
        assert found[0]["memory"] == "I love sci-fi movies"
        m.update(added[0]["id"], "I love sci-fi and horror movies")
        assert [h["event"] for h in m.history(added[0]["id"])] == ["ADD", "UPDATE"]
        assert len(m.get_all(user_id="alice")["results"]) == 1

    # The same store through a connection string (libpq form), and a wrong password.
    conninfo = (
        f"host={server.hostname} port={server.port} dbname={database} user={role} "
        f"password='{password}'"
    )
    by_string = {"provider": "pgvector", "config": {"connection_string": conninfo}}
    with mem0_module.Memory.from_config({**config, "vector_store": by_string}) as m:
        [item] = m.get_all(user_id="alice")["results"]
        assert item["memory"] == "I love sci-fi and horror movies"
    with pytest.raises(StorageError) as wrong:
        mem0_module.Memory.from_config(
            {
                **config,
                "vector_store": {
                    "provider": "pgvector",
                    "config": {**config["vector_store"]["config"], "password": WRONG_PASSWORD},
                },
            }
        )
    assert WRONG_PASSWORD not in error_texts(wrong.value)
    assert password not in error_texts(wrong.value)


def test_mem0_pgvector_in_a_schema_warns_about_collection_name(pg: PgSchemas) -> None:
    url = pg.url("mem0")
    config = {
        "vector_store": {
            "provider": "pgvector",
            "config": {"connection_string": url, "collection_name": "mem0"},
        },
        "embedder": {"provider": "hashing", "config": {"embedding_dims": 64}},
    }
    with pytest.warns(Mem0CompatWarning, match="collection_name 'mem0'"):
        m = mem0_module.AsyncMemory.from_config(config)

    async def main() -> None:
        added = await m.add("Bob drinks tea", user_id="bob", infer=False)
        memory_id = added["results"][0]["id"]
        assert (await m.get(memory_id))["memory"] == "Bob drinks tea"
        assert (await m.search("tea", user_id="bob"))["results"][0]["id"] == memory_id
        await m.close()

    asyncio.run(main())
    # It is a native store like any other.
    with Memory(url, embedder=HASHING) as native:
        assert native.count(user_id="bob") == 1
