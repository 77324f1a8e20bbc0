"""tests/fake_llm.py itself: its wire formats, and the CLI that the C and Node suites use
(script file in, port file out, one JSON line per request in the log, exit on SIGTERM)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fake_llm import (
    FakeLLM,
    Reply,
    anthropic_answer,
    anthropic_stream,
    anthropic_stream_error,
    openai_answer,
    openai_chat,
    openai_error,
    openai_stream,
    openai_stream_error,
    reply_from_json,
    streamed,
)

SCRIPT = Path(__file__).resolve().parents[2] / "tests" / "fake_llm.py"


def post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        status, head, raw = e.code, dict(e.headers), e.read()
    text = raw.decode()
    try:
        return status, head, json.loads(text)
    except ValueError:
        return status, head, text


def test_the_python_api_records_and_answers() -> None:
    with FakeLLM() as fake:
        fake.push(openai_chat("hello"))
        status, head, body = post(
            fake.openai_base + "/chat/completions",
            {"model": "m", "messages": []},
            {"Authorization": "Bearer sk-x"},
        )
        assert status == 200
        assert head["Connection"] == "close"
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {
            "role": "assistant",
            "content": "hello",
            "refusal": None,
        }
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["total_tokens"] == 25
        assert fake.requests == [
            {
                "method": "POST",
                "path": "/v1/chat/completions",
                "headers": fake.requests[0]["headers"],
                "body": {"model": "m", "messages": []},
            }
        ]
        assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-x"

        status, _, body = post(fake.url + "/v1/messages", {})
        assert status == 500
        assert body == {
            "error": {
                "message": "fake server: no scripted reply for POST /v1/messages",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }

        # A chunked body is read too.
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
        conn.request("POST", "/v1/embeddings", body=iter([b'{"input":', b' ["a"]}']))
        conn.getresponse().read()
        conn.close()
        assert fake.requests[-1]["body"] == {"input": ["a"]}


def test_the_cli_serves_a_script(tmp_path: Path) -> None:
    script = [
        {"openai_chat": '{"facts": []}', "delay_ms": 50},
        {"anthropic_message": "bonjour"},
        {"openai_embeddings": [[0.5, 1.5]]},
        {
            "status": 429,
            "body": {"error": {"message": "slow down", "type": "rate_limit_exceeded"}},
            "headers": {"Retry-After": "1"},
        },
        {"status": 503, "body": "upstream down"},
    ]
    (tmp_path / "script.json").write_text(json.dumps(script), encoding="utf-8")
    port_file, log = tmp_path / "port", tmp_path / "log.jsonl"
    server = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--script",
            str(tmp_path / "script.json"),
            "--port-file",
            str(port_file),
            "--log",
            str(log),
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"

        started = time.monotonic()
        status, _, body = post(url + "/v1/chat/completions", {"n": 1})
        assert (status, body["choices"][0]["message"]["content"]) == (200, '{"facts": []}')
        assert time.monotonic() - started >= 0.05
        status, _, body = post(url + "/v1/messages", {"n": 2}, {"x-api-key": "sk-ant"})
        assert (status, body["type"], body["content"]) == (
            200,
            "message",
            [{"type": "text", "text": "bonjour"}],
        )
        assert body["stop_reason"] == "end_turn"
        assert body["id"].startswith("msg_")
        status, _, body = post(url + "/v1/embeddings", {"n": 3})
        assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, 1.5]}]
        status, head, body = post(url + "/v1/chat/completions", {"n": 4})
        assert (status, head["Retry-After"], body["error"]["message"]) == (429, "1", "slow down")
        status, _, body = post(url + "/v1/chat/completions", {"n": 5})
        assert (status, body) == (503, "upstream down")
        status, _, body = post(url + "/v1/chat/completions", {"n": 6})
        assert status == 500
        assert "no scripted reply for POST /v1/chat/completions" in body["error"]["message"]

        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        assert [line["body"]["n"] for line in lines] == [1, 2, 3, 4, 5, 6]
        assert lines[1]["path"] == "/v1/messages"
        assert lines[1]["method"] == "POST"
        assert lines[1]["headers"]["x-api-key"] == "sk-ant"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


# ---------------------------------------------------------------------------------------
# Streams (server-sent events)

TEXT = "Hél" + "lo " + "“wörld” 🌍"
DELTAS = ["Hél", "lo ", "“wörld” 🌍"]


def stream_post(
    port: int, body: Any, path: str = "/v1/chat/completions"
) -> tuple[http.client.HTTPResponse, list[bytes]]:
    """POSTs ``body`` and reads the answer as it arrives: the response and each read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    reads: list[bytes] = []
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        reads.append(chunk)
    conn.close()
    return response, reads


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """The ``(event name or None, data)`` of each event of a complete SSE body."""
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), text[-80:]
    events: list[tuple[str | None, str]] = []
    for block in text[:-2].split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            else:
                assert field == "data", line
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def assert_stream_head(response: http.client.HTTPResponse) -> None:
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("Connection") == "close"
    assert response.getheader("Content-Length") is None
    assert response.getheader("Transfer-Encoding") is None


OPENAI_FIRST = (
    b'data: {"id":"chatcmpl-fake123","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4.1-nano-2025-04-14","system_fingerprint":"fp_fake","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
)


def test_an_openai_stream_is_chunks_then_done() -> None:
    with FakeLLM() as fake:
        # A 429 before the stream still comes as a plain JSON error.
        fake.push(openai_error(429, "rate_limit_exceeded", "slow down", {"Retry-After": "1"}))
        fake.push(openai_stream(DELTAS))
        response, reads = stream_post(fake.port, {"stream": True})
        assert (response.status, response.getheader("Retry-After")) == (429, "1")
        assert json.loads(b"".join(reads))["error"]["message"] == "slow down"

        response, reads = stream_post(fake.port, {"stream": True})
        assert_stream_head(response)
        body = b"".join(reads)
        assert body.startswith(OPENAI_FIRST)
        events = sse_events(body)
        assert all(name is None for name, _ in events)
        assert events[-1][1] == "[DONE]"
        chunks = [json.loads(data) for _, data in events[:-1]]
        for chunk in chunks:
            assert chunk["object"] == "chat.completion.chunk"
            assert chunk["id"] == "chatcmpl-fake123"
            assert len(chunk["choices"]) == 1
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert [c["choices"][0]["delta"] for c in chunks[1:-1]] == [{"content": d} for d in DELTAS]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == TEXT
        assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["stop"]
        assert chunks[-1]["choices"][0]["delta"] == {}


def test_an_anthropic_stream_is_the_messages_events() -> None:
    with FakeLLM() as fake:
        fake.push(anthropic_stream(DELTAS))
        response, reads = stream_post(fake.port, {"stream": True}, "/v1/messages")
        assert_stream_head(response)
        events = sse_events(b"".join(reads))
        names = [name for name, _ in events]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            *["content_block_delta"] * 3,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        data = [json.loads(d) for _, d in events]
        assert [d["type"] for d in data] == names  # every data names its own event
        message = data[0]["message"]
        assert (message["id"], message["role"], message["content"]) == (
            "msg_01FakeFakeFakeFake",
            "assistant",
            [],
        )
        assert data[1]["content_block"] == {"type": "text", "text": ""}
        assert "".join(d["delta"]["text"] for d in data[3:6]) == TEXT
        assert data[6] == {"type": "content_block_stop", "index": 0}
        assert data[7]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
        assert data[7]["usage"] == {"output_tokens": 5}


def test_split_delivers_the_same_bytes_in_pieces_of_n() -> None:
    whole = openai_stream(DELTAS)
    split = openai_stream(DELTAS, split=7, chunk_delay=0.002)
    assert split.body == whole.body
    assert whole.pieces is not None
    assert split.pieces is not None
    assert len(whole.pieces) == 6  # one per event
    assert b"".join(split.pieces) == whole.body
    assert [len(p) for p in split.pieces[:-1]] == [7] * (len(split.pieces) - 1)
    assert 1 <= len(split.pieces[-1]) <= 7

    def utf8(piece: bytes) -> bool:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    # Some pieces end in the middle of a character.
    assert not all(utf8(p) for p in split.pieces)

    with FakeLLM() as fake:
        fake.push(whole, split)
        _, reads = stream_post(fake.port, {"stream": True})
        assert b"".join(reads) == whole.body
        started = time.monotonic()
        response, reads = stream_post(fake.port, {"stream": True})
        elapsed = time.monotonic() - started
        assert_stream_head(response)
        assert b"".join(reads) == whole.body
        # Each read holds whole pieces (several when the reader was late), and they came one
        # by one, chunk_delay apart.
        assert len(reads) > 1
        assert all(len(r) % 7 == 0 for r in reads[:-1]), [len(r) for r in reads]
        assert len(reads[-1]) % 7 == len(whole.body) % 7
        assert elapsed >= (len(split.pieces) - 1) * 0.002


def test_cut_after_closes_the_connection_mid_stream() -> None:
    whole = openai_stream(DELTAS)
    assert whole.pieces is not None
    with FakeLLM() as fake:
        fake.push(
            openai_stream(DELTAS, cut_after=2),
            openai_stream(DELTAS, split=10, cut_after=3),
            anthropic_stream(DELTAS, cut_after=0),
        )
        response, reads = stream_post(fake.port, {"stream": True})
        assert_stream_head(response)
        body = b"".join(reads)
        assert body == b"".join(whole.pieces[:2])
        assert b"[DONE]" not in body
        assert len(sse_events(body)) == 2

        _, reads = stream_post(fake.port, {"stream": True})
        assert b"".join(reads) == whole.body[:30]

        response, reads = stream_post(fake.port, {"stream": True}, "/v1/messages")
        assert_stream_head(response)
        assert reads == []


def test_the_error_events() -> None:
    with FakeLLM() as fake:
        fake.push(
            openai_stream_error(["Hel"], 'over "capacity"'),
            anthropic_stream_error(["Hel"], "Overloaded"),
        )
        response, reads = stream_post(fake.port, {"stream": True})
        assert_stream_head(response)
        events = sse_events(b"".join(reads))
        assert len(events) == 3  # the role, one delta, the error: no finish, no [DONE]
        assert json.loads(events[1][1])["choices"][0]["delta"] == {"content": "Hel"}
        assert events[-1] == (
            None,
            '{"error":{"message":"over \\"capacity\\"","type":"server_error",'
            '"param":null,"code":null}}',
        )

        response, reads = stream_post(fake.port, {"stream": True}, "/v1/messages")
        assert_stream_head(response)
        events = sse_events(b"".join(reads))
        assert [name for name, _ in events] == [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error",
        ]
        assert json.loads(events[-1][1]) == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        }


def test_a_slow_stream_ends_at_once_when_the_server_closes() -> None:
    fake = FakeLLM()
    try:
        fake.push(openai_stream(["a", "b"], chunk_delay=30))
        timer = threading.Timer(0.3, fake.close)
        timer.start()
        started = time.monotonic()
        _, reads = stream_post(fake.port, {"stream": True})
        assert time.monotonic() - started < 10
        assert b"".join(reads) == openai_stream(["a", "b"]).body
        timer.join()
    finally:
        fake.close()


def test_the_answer_helpers_follow_the_request() -> None:
    text = "Bonjour à tous 🌍!"
    assert streamed({"body": {"stream": True}})
    assert not streamed({"body": {"stream": False}})
    assert not streamed({"body": {"stream": "true"}})
    assert not streamed({"body": None})
    assert not streamed({"body": "stream"})

    def handler(request: dict[str, Any]) -> Reply:
        if request["path"] == "/v1/messages":
            return anthropic_answer(request, text)
        return openai_answer(request, text)

    with FakeLLM(handler=handler) as fake:
        response, reads = stream_post(fake.port, {"stream": True})
        assert_stream_head(response)
        events = sse_events(b"".join(reads))
        deltas = [json.loads(d)["choices"][0]["delta"].get("content", "") for _, d in events[1:-1]]
        assert "".join(deltas) == text
        # Four characters at a time (not bytes), then the last chunk with no content.
        assert deltas == ["Bonj", "our ", "à to", "us 🌍", "!", ""]

        status, head, body = post(fake.openai_base + "/chat/completions", {"stream": False})
        assert (status, head["Content-Type"], body["object"]) == (
            200,
            "application/json",
            "chat.completion",
        )
        assert body["choices"][0]["message"]["content"] == text

        response, reads = stream_post(fake.port, {"stream": True}, "/v1/messages")
        assert_stream_head(response)
        events = sse_events(b"".join(reads))
        assert (
            "".join(
                json.loads(d)["delta"]["text"]
                for name, d in events
                if name == "content_block_delta"
            )
            == text
        )
        assert events[-1][0] == "message_stop"

        status, _, body = post(fake.url + "/v1/messages", {"model": "m"})
        assert (status, body["type"], body["content"]) == (
            200,
            "message",
            [{"type": "text", "text": text}],
        )


def test_the_script_forms_of_streams() -> None:
    def same(a: Reply, b: Reply) -> None:
        assert (a.status, a.headers, a.body, a.pieces) == (b.status, b.headers, b.body, b.pieces)
        assert (a.delay, a.chunk_delay, a.cut_after) == (b.delay, b.chunk_delay, b.cut_after)

    same(
        reply_from_json(
            {"openai_stream": ["Hel", "lo"], "split": 3, "chunk_delay_ms": 5, "cut_after": 2}
        ),
        openai_stream(["Hel", "lo"], split=3, chunk_delay=0.005, cut_after=2),
    )
    same(
        reply_from_json({"anthropic_stream": ["Hel", "lo"], "delay_ms": 20}),
        anthropic_stream(["Hel", "lo"], delay=0.02),
    )
    same(
        reply_from_json({"openai_stream_error": ["Hel"], "message": "boom"}),
        openai_stream_error(["Hel"], "boom"),
    )
    same(
        reply_from_json({"anthropic_stream_error": ["Hel"], "message": "Overloaded", "split": 5}),
        anthropic_stream_error(["Hel"], "Overloaded", split=5),
    )
    with pytest.raises(ValueError, match="list of text deltas"):
        reply_from_json({"openai_stream": "Hello"})
    with pytest.raises(ValueError, match="split"):
        reply_from_json({"openai_stream": ["a"], "split": 0})


@contextmanager
def serve_script(tmp_path: Path, script: list[Any]) -> Iterator[int]:
    """Runs the CLI on ``script``: its port, until the block ends."""
    (tmp_path / "script.json").write_text(json.dumps(script), encoding="utf-8")
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--script",
            str(tmp_path / "script.json"),
            "--port-file",
            str(port_file),
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.02)
        yield int(port_file.read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


def test_the_cli_serves_streams(tmp_path: Path) -> None:
    script = [
        {"openai_stream": ["Hel", "lo"], "split": 50, "chunk_delay_ms": 5},
        {"anthropic_stream": ["Hel", "lo"], "cut_after": 3},
        {"openai_stream_error": ["Hel"], "message": "boom"},
    ]
    with serve_script(tmp_path, script) as port:
        response, reads = stream_post(port, {"stream": True})
        assert_stream_head(response)
        assert b"".join(reads) == openai_stream(["Hel", "lo"]).body
        assert all(len(r) % 50 == 0 for r in reads[:-1])

        response, reads = stream_post(port, {"stream": True}, "/v1/messages")
        assert [name for name, _ in sse_events(b"".join(reads))] == [
            "message_start",
            "content_block_start",
            "ping",
        ]

        response, reads = stream_post(port, {"stream": True})
        events = sse_events(b"".join(reads))
        assert json.loads(events[-1][1])["error"]["message"] == "boom"
