"""mem0 vs agent_mem: model calls and the library's own time per ``add`` with inference.

Both libraries talk to the SAME fake OpenAI server (Chat Completions + Embeddings, stdlib
``http.server`` on 127.0.0.1) that answers at once with realistic bodies, so the wall time of
an ``add`` is the library's own overhead: localhost HTTP round trips, JSON, embeddings, vector
search and storage. Per configuration, after --warmup adds, --adds timed adds (a 2-message
conversation each, rotating over --users users, so that later adds find similar memories),
then one search per user. Counted on the server: chat calls and embedding requests (texts).

- mem0 1.0.11, classic pipeline: fact extraction call, then the update-memory call
  (ADD/UPDATE/DELETE/NONE); OpenAI LLM + OpenAI embedder (384-d) at the fake server,
  qdrant-client in local on-disk ``path`` mode, SQLite history.
- mem0 2.2.1: one "additive extraction" call (ADD only), same setup (without spaCy and
  fastembed, its optional extras: no entity linking, lemmatisation or BM25).
- agent_mem via ``agent_mem.mem0.Memory.from_config`` with the same llm config (falls back to
  native ``agent_mem.Memory(path, llm=...)`` if the drop-in has no LLM support), once with its
  local embedding model (all-MiniLM-L6-v2, in process) and once with the remote OpenAI
  embedder at the fake server (same work as mem0).

The fake server answers with two facts per message (unique per message) and ADDs every new
fact. Each configuration runs in its own child process (the server stays in this one, so it
takes no GIL from the measured library). Nothing leaves 127.0.0.1 (Python sockets elsewhere are
refused; mem0 telemetry is off).

Storage durability differs: mem0's SQLite files (history, qdrant local) fsync every commit,
agent_mem runs WAL with synchronous=NORMAL. On a slow disk mem0's time is mostly fsync; run with
``--tmpdir /dev/shm`` to see the overhead without disk latency. The machine's load shows in
the wall times; "CPU ms" (the library process's CPU time) is steadier.

Run: ``bash benches/mem0_compare/run.sh [--adds 50] [--tmpdir /dev/shm] [--verbose]``
(builds the venv, then runs this file).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIMS = 384
MODEL = "bench"
NOTE = re.compile(r"Note (\d+) for (\w+):")
SCRIPT = os.path.abspath(__file__)
CONFIGS = ["mem0-classic", "mem0-v2", "agent_mem-local", "agent_mem-remote"]

# --------------------------------------------------------------------------- fake server


def embed(text: str) -> list[float]:
    """Deterministic 384-d bag of hashed words (texts sharing words are similar), unit length."""
    v = [0.0] * DIMS
    for word in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
        v[h % DIMS] += 1.0 if h & 0x80000000 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


def facts_of(text: str) -> list[str]:
    """Two facts per message, from its last 'Note N for USER:' (the new messages come last)."""
    found = NOTE.findall(text)
    if not found:
        return []
    n, user = found[-1]
    name = user.capitalize()
    return [
        f"{name} is learning to play instrument number {n}",
        f"{name} visited city number {n} last month",
    ]


def answer_chat(body: dict) -> tuple[str, str, int]:
    """(kind of call, answer content, stored memories shown) for mem0's and agent_mem's
    prompts."""
    msgs = body.get("messages", [])
    system = next((m["content"] for m in msgs if m["role"] == "system"), "")
    user = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
    if "extract the facts" in system:  # agent_mem, extraction
        return "agent_mem extract", json.dumps({"facts": facts_of(user)}), 0
    if '"stored_memories"' in user and '"new_facts"' in user:  # agent_mem, decisions
        question = json.loads(user)
        return (
            "agent_mem decide",
            json.dumps(
                {"decisions": [{"fact": f["fact"], "event": "ADD"} for f in question["new_facts"]]}
            ),
            len(question["stored_memories"]),
        )
    if "smart memory manager" in user:  # mem0 classic, update call: keep old (NONE), ADD new
        old_part, _, new_part = user.partition("The new retrieved facts")
        old = [
            {"id": i, "text": t, "event": "NONE"}
            for i, t in re.findall(r"'id': '(\d+)', 'text': '([^']*)'", old_part)
        ]
        new = re.findall(r"'([^']*)'", new_part.split("```")[1]) if "```" in new_part else []
        adds = [{"id": str(len(old) + i), "text": t, "event": "ADD"} for i, t in enumerate(new)]
        return "mem0 update", json.dumps({"memory": old + adds}), len(old)
    if "Memory Extractor" in system:  # mem0 2.x, additive extraction
        new_messages = user.split("## New Messages")[-1]
        mems = [{"id": str(i), "text": t} for i, t in enumerate(facts_of(new_messages))]
        existing = user.split("## Existing Memories")[-1].split("## New Messages")[0]
        return "mem0 additive", json.dumps({"memory": mems}), existing.count('"id"')
    if "Information Organizer" in system:  # mem0 classic, fact extraction
        return "mem0 extract", json.dumps({"facts": facts_of(user)}), 0
    return "unknown", json.dumps({}), 0


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.stats: dict[str, int] = {}

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with self.server.lock:
            self.reply(200, dict(self.server.stats))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.endswith("/chat/completions"):
            kind, content, shown = answer_chat(body)
            self.server.count("chat")
            self.server.count(f"chat:{kind}")
            self.server.count(f"memories shown:{kind}", shown)
            self.reply(
                200,
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", MODEL),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540},
                },
            )
        elif self.path.endswith("/embeddings"):
            texts = body.get("input", [])
            texts = [texts] if isinstance(texts, str) else texts
            self.server.count("embed")
            self.server.count("embed texts", len(texts))
            b64 = body.get("encoding_format") == "base64"
            data = []
            for i, t in enumerate(texts):
                v = embed(str(t))[: body.get("dimensions") or DIMS]
                e = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if b64 else v
                data.append({"object": "embedding", "index": i, "embedding": e})
            self.reply(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", MODEL),
                    "usage": {"prompt_tokens": 8 * len(texts), "total_tokens": 8 * len(texts)},
                },
            )
        else:
            self.server.count("unknown path")
            self.reply(404, {"error": {"message": f"no route {self.path}"}})


# --------------------------------------------------------------------------- workload

USERS = ["alice", "bob", "carol", "dave", "erin"]


def conversation(i: int, users: int) -> tuple[list[dict], str]:
    user = USERS[i % users]
    return [
        {
            "role": "user",
            "content": f"Note {i} for {user}: I started learning instrument {i}, "
            f"and last month I visited city {i}.",
        },
        {"role": "assistant", "content": "Noted, that sounds great!"},
    ], user


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/_stats") as r:
        return json.loads(r.read())


def guard_network() -> None:
    """Refuse any Python-side connection that is not to loopback (no call leaves the machine)."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])  # type: ignore[index]
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise ConnectionRefusedError(f"benchmark: no network ({host})")
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]


def open_memory(config: str, url: str, work: str):
    """(label, add(messages, user), search(query, user)) for one configuration."""
    llm = {
        "provider": "openai",
        "config": {"model": MODEL, "api_key": "sk-bench", "openai_base_url": url + "/v1"},
    }
    remote_embedder = {
        "provider": "openai",
        "config": {
            "model": "text-embedding-3-small",
            "api_key": "sk-bench",
            "openai_base_url": url + "/v1",
            "embedding_dims": DIMS,
        },
    }
    store = {
        "provider": "qdrant",
        "config": {
            "path": os.path.join(work, "store"),
            "collection_name": "bench",
            "embedding_model_dims": DIMS,
            "on_disk": True,
        },
    }
    if config.startswith("mem0"):
        import mem0
        from mem0 import Memory

        m = Memory.from_config(
            {
                "llm": llm,
                "embedder": remote_embedder,
                "vector_store": store,
                "history_db_path": os.path.join(work, "history.db"),
            }
        )
        version = getattr(mem0, "__version__", None) or _dist_version("mem0ai")
        if config == "mem0-classic":
            return (
                f"mem0 {version} (classic)",
                lambda ms, u: m.add(ms, user_id=u),
                lambda q, u: m.search(q, user_id=u, limit=5),
            )
        return (
            f"mem0 {version} (additive)",
            lambda ms, u: m.add(ms, user_id=u),
            lambda q, u: m.search(q, filters={"user_id": u}, top_k=5),
        )

    import agent_mem
    import agent_mem.mem0

    warnings.simplefilter("ignore", agent_mem.mem0.Mem0CompatWarning)
    remote = config == "agent_mem-remote"
    emb = "remote emb" if remote else "local emb"
    cfg = {"llm": llm, "vector_store": {"provider": "qdrant", "config": {"path": work}}}
    if remote:
        cfg["embedder"] = remote_embedder
    try:
        m = agent_mem.mem0.Memory.from_config(cfg)
        if getattr(m, "llm", None) is None:
            raise RuntimeError("the drop-in has no LLM")
        return (
            f"agent_mem {agent_mem.__version__} mem0 drop-in, {emb}",
            lambda ms, u: m.add(ms, user_id=u),
            lambda q, u: m.search(q, user_id=u, limit=5),
        )
    except Exception as e:  # the drop-in's llm support not there (yet): the native API
        print(
            f"  agent_mem.mem0 drop-in not usable ({e}); native agent_mem.Memory", file=sys.stderr
        )
    native_llm = {
        "provider": "openai",
        "model": MODEL,
        "api_key": "sk-bench",
        "base_url": url + "/v1",
    }
    native_emb = (
        {
            "provider": "openai",
            "model": "text-embedding-3-small",
            "api_key": "sk-bench",
            "base_url": url + "/v1",
            "dimensions": DIMS,
        }
        if remote
        else None
    )
    n = agent_mem.Memory(os.path.join(work, "native.db"), llm=native_llm, embedder=native_emb)
    return (
        f"agent_mem {agent_mem.__version__} native, {emb}",
        lambda ms, u: n.add_messages(ms, user_id=u),
        lambda q, u: n.search(q, user_id=u, limit=5),
    )


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def child(args: argparse.Namespace) -> None:
    """Measures one configuration; prints one JSON line."""
    guard_network()
    work = tempfile.mkdtemp(prefix=f"{args.child}-", dir=args.workdir)
    label, add, search = open_memory(args.child, args.url, work)
    for i in range(args.warmup):
        add(*conversation(10_000 + i, args.users))
    before = stats(args.url)
    times, cpu = [], []
    for i in range(args.adds):
        msgs, user = conversation(i, args.users)
        t, c = time.perf_counter(), time.process_time()
        events = add(msgs, user)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    after = stats(args.url)
    searches = []
    for user in USERS[: args.users]:
        t = time.perf_counter()
        hits = search(f"which instrument is {user} learning?", user)
        searches.append((time.perf_counter() - t) * 1000)
    result = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    hits = hits["results"] if isinstance(hits, dict) else hits
    print(
        json.dumps(
            {
                "label": label,
                "times": times,
                "cpu": cpu,
                "search": searches,
                "counts": result,
                "last_events": events if isinstance(events, list) else events.get("results"),
                "last_hits": len(hits),
            },
            default=str,
        )
    )


# --------------------------------------------------------------------------- parent


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--only", nargs="*", choices=CONFIGS, default=CONFIGS)
    ap.add_argument("--mem0-v2-path", help="directory holding mem0ai 2.x (pip --target)")
    ap.add_argument("--tmpdir", help="where the stores go (default: the system temp dir)")
    ap.add_argument("--verbose", action="store_true", help="print call kinds and last events")
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="mem0-bench-", dir=args.tmpdir) as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER", "OPENAI"))}
        env.update(
            MEM0_TELEMETRY="False",
            MEM0_DIR=os.path.join(work, "mem0-home"),
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=url + "/v1",
            AGENTMEM_MEM0_DIR=os.path.join(work, "agent_mem-home"),
        )
        for config in args.only:
            child_env = dict(env)
            if config == "mem0-v2":
                if not args.mem0_v2_path:
                    print("skipping mem0-v2: no --mem0-v2-path", file=sys.stderr)
                    continue
                child_env["PYTHONPATH"] = args.mem0_v2_path
            print(f"== {config}", file=sys.stderr)
            cmd = [sys.executable, SCRIPT, "--child", config, "--url", url, "--workdir", work]
            cmd += [f"--{k}={getattr(args, k)}" for k in ("adds", "warmup", "users")]
            out = subprocess.run(cmd, env=child_env, stdout=subprocess.PIPE, text=True)
            if out.returncode != 0:
                print(f"  {config} failed (exit {out.returncode})", file=sys.stderr)
                failed.append(config)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if args.verbose:
                print(f"  counts {r['counts']}\n  last add {r['last_events']}", file=sys.stderr)
            rows.append(r)
    unknown = server.stats.get("chat:unknown", 0) + server.stats.get("unknown path", 0)

    n = args.adds
    head = (
        f"{'library / config':<44} {'LLM/add':>8} {'emb req/add':>11} {'emb texts/add':>13} "
        f"{'median ms':>10} {'p95 ms':>8} {'CPU ms':>7} {'search ms':>10}"
    )
    print(
        f"\n{n} adds after {args.warmup} warm-up adds, {args.users} users, "
        f"2 messages per add; fake OpenAI server at {url} (answers at once)\n"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        c = r["counts"]
        print(
            f"{r['label']:<44} {c.get('chat', 0) / n:>8.2f} {c.get('embed', 0) / n:>11.2f} "
            f"{c.get('embed texts', 0) / n:>13.2f} {statistics.median(r['times']):>10.1f} "
            f"{p95(r['times']):>8.1f} {statistics.median(r['cpu']):>7.1f} "
            f"{statistics.median(r['search']):>10.1f}"
        )
    if unknown:
        print(f"\nWARNING: {unknown} requests the fake server did not recognise")
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see the errors above)")
    print(
        "\nLLM/add, emb req/add (texts/add): calls during the timed adds only. median/p95 ms: "
        "wall time per add; CPU ms: median CPU time\nof the library's process per add (all "
        "threads; the server runs in another process). search ms: median of one search per "
        "user (limit 5)."
    )
    sys.exit(1 if failed or unknown else 0)


if __name__ == "__main__":
    main()
