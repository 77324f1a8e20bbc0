#!/usr/bin/env python3
"""A fake LLM provider for tests: a real HTTP/1.1 server on 127.0.0.1 that speaks the OpenAI
Chat Completions, OpenAI Embeddings and Anthropic Messages wire formats, records every request
and answers with scripted replies. Standard library only (Python 3.9+); no network beyond the
loopback interface.

From Python (pytest)::

    from fake_llm import FakeLLM, openai_chat

    with FakeLLM() as fake:
        fake.push(openai_chat('{"facts": ["Likes pizza"]}'))
        ...  # a client with base_url=fake.openai_base (OpenAI) or fake.url (Anthropic)
        assert fake.requests[0]["path"] == "/v1/chat/completions"

Replies queued with ``push`` are used first in, first out; ``FakeLLM(handler=f)`` answers
every request with ``f(request)`` instead. A request with no reply gets a 500 with an
OpenAI-style error, ``"fake server: no scripted reply for POST /v1/chat/completions"``.

Answers can be streamed as server-sent events, as the providers stream when a request says
``"stream": true``: ``openai_stream(["Hel", "lo"])`` (``chat.completion.chunk`` events, then
``data: [DONE]``), ``anthropic_stream([...])`` (``message_start`` ... ``message_stop``), and
``openai_stream_error`` / ``anthropic_stream_error`` (the deltas, then an error event, then
the end of the connection). One piece is written (and flushed) per event, unless
``split=N`` cuts the stream into pieces of N bytes (boundaries in the middle of UTF-8
characters and of JSON); ``chunk_delay`` waits between pieces (seconds; cut short by
``close``); ``cut_after=N`` closes the connection after N pieces (no ``[DONE]``). A
streamed reply has no Content-Length and ends when the connection closes.
``openai_answer(request, text)`` / ``anthropic_answer(request, text)`` answer what the
request asked for: a stream of ``text`` in deltas of four characters, or the JSON answer.

From any other language (the CLI)::

    python3 tests/fake_llm.py --script replies.json --port-file port.txt [--log requests.jsonl]

``replies.json`` is a JSON list of replies consumed in order, each one of
``{"openai_chat": "text"}``, ``{"anthropic_message": "text"}``,
``{"openai_embeddings": [[0.1, 0.2], ...]}``,
``{"openai_stream": ["Hel", "lo"]}``, ``{"anthropic_stream": ["Hel", "lo"]}``,
``{"openai_stream_error": ["Hel"], "message": "text"}``,
``{"anthropic_stream_error": ["Hel"], "message": "text"}`` or
``{"status": 429, "body": {...} or "text", "headers": {"Retry-After": "1"}}``, each with an
optional ``"delay_ms"``; the four streams also take ``"split"`` (bytes per piece),
``"chunk_delay_ms"`` and ``"cut_after"`` (pieces). The port is written to the port file once
the server listens (the file appears complete, written under another name and renamed); each
request is appended to the log as one JSON line ``{"method", "path", "headers", "body"}``.
The server runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import http.server
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Callable

__all__ = [
    "FakeLLM",
    "Reply",
    "anthropic_answer",
    "anthropic_error",
    "anthropic_message",
    "anthropic_stream",
    "anthropic_stream_error",
    "main",
    "openai_answer",
    "openai_chat",
    "openai_embeddings",
    "openai_error",
    "openai_stream",
    "openai_stream_error",
    "reply_from_json",
    "streamed",
]

#: A recorded request: ``{"method", "path", "headers" (names lowercased), "body"}``; the body
#: is parsed JSON, or the text when it is not JSON, or None when empty.
Request = dict[str, Any]
Handler = Callable[[Request], "Reply"]


class Reply:
    """One HTTP answer: a status, a body (JSON-encoded unless it is a str or bytes), extra
    headers, and a delay in seconds before it is sent.

    A streamed answer has ``pieces``: they are written one by one, each flushed, with
    ``chunk_delay`` seconds between two, without Content-Length, and the connection is closed
    after the last one, or after ``cut_after`` pieces when that is set. Its ``body`` is the
    pieces joined, for the record."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        *,
        pieces: Sequence[bytes] | None = None,
        chunk_delay: float = 0.0,
        cut_after: int | None = None,
    ) -> None:
        self.status = int(status)
        self.body: bytes
        if isinstance(body, bytes):
            self.body = body
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        elif body is None:
            self.body = b""
        else:
            self.body = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.headers = dict(headers or {})
        self.delay = float(delay)
        self.pieces: list[bytes] | None = None if pieces is None else [bytes(p) for p in pieces]
        if self.pieces is not None and body is None:
            self.body = b"".join(self.pieces)
        self.chunk_delay = float(chunk_delay)
        if cut_after is not None and cut_after < 0:
            raise ValueError(f"cut_after must be 0 or more, not {cut_after}")
        self.cut_after = cut_after

    def __repr__(self) -> str:
        stream = "" if self.pieces is None else f" pieces={len(self.pieces)}"
        return f"<Reply {self.status} {self.body[:60]!r} delay={self.delay}{stream}>"


def openai_chat(text: str, *, delay: float = 0.0, model: str = "gpt-4.1-nano-2025-04-14") -> Reply:
    """A 200 ``chat.completion`` whose first choice says ``text``."""
    return Reply(
        200,
        {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
            "system_fingerprint": "fp_fake",
        },
        delay=delay,
    )


def anthropic_message(
    text: str, *, delay: float = 0.0, model: str = "claude-haiku-4-5-20251001"
) -> Reply:
    """A 200 Messages API answer of one text block."""
    return Reply(
        200,
        {
            "id": "msg_01FakeFakeFakeFake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 5},
        },
        delay=delay,
    )


def openai_embeddings(
    vectors: Sequence[Sequence[float]],
    *,
    delay: float = 0.0,
    model: str = "text-embedding-3-small",
) -> Reply:
    """A 200 embeddings answer, one entry per vector, indexed in order."""
    return Reply(
        200,
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        },
        delay=delay,
    )


def openai_error(
    status: int,
    type: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    delay: float = 0.0,
) -> Reply:
    """An OpenAI error: ``{"error": {"message", "type", "param": null, "code": null}}``."""
    body = {"error": {"message": message, "type": type, "param": None, "code": None}}
    return Reply(status, body, headers, delay)


def anthropic_error(
    status: int,
    type: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    delay: float = 0.0,
) -> Reply:
    """An Anthropic error: ``{"type": "error", "error": {"type", "message"}}``."""
    return Reply(
        status, {"type": "error", "error": {"type": type, "message": message}}, headers, delay
    )


def _json(value: Any) -> str:
    """Compact JSON, as the providers stream it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _openai_event(delta: Mapping[str, Any], finish_reason: str | None, model: str) -> bytes:
    chunk = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return f"data: {_json(chunk)}\n\n".encode()


def _openai_deltas(deltas: Sequence[str], model: str) -> list[bytes]:
    events = [_openai_event({"role": "assistant", "content": "", "refusal": None}, None, model)]
    events += [_openai_event({"content": str(d)}, None, model) for d in deltas]
    return events


def _sse(name: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_json(data)}\n\n".encode()


def _anthropic_deltas(deltas: Sequence[str], model: str) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_01FakeFakeFakeFake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 1},
        },
    }
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    events = [_sse("message_start", start), _sse("content_block_start", block)]
    events.append(_sse("ping", {"type": "ping"}))
    for d in deltas:
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": str(d)},
        }
        events.append(_sse("content_block_delta", delta))
    return events


def _stream(
    events: list[bytes],
    split: int | None,
    chunk_delay: float,
    cut_after: int | None,
    delay: float,
) -> Reply:
    """A 200 ``text/event-stream`` reply: one piece per event, or pieces of ``split`` bytes."""
    pieces = events
    if split is not None:
        if split < 1:
            raise ValueError(f"split must be 1 byte or more, not {split}")
        raw = b"".join(events)
        pieces = [raw[i : i + split] for i in range(0, len(raw), split)]
    return Reply(
        200,
        b"".join(events),
        {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        delay,
        pieces=pieces,
        chunk_delay=chunk_delay,
        cut_after=cut_after,
    )


def openai_stream(
    deltas: Sequence[str],
    *,
    split: int | None = None,
    chunk_delay: float = 0.0,
    cut_after: int | None = None,
    delay: float = 0.0,
    model: str = "gpt-4.1-nano-2025-04-14",
) -> Reply:
    """A 200 Chat Completions stream: a first ``chat.completion.chunk`` with the role, one
    per text delta, a last one with ``"finish_reason": "stop"``, then ``data: [DONE]``."""
    events = _openai_deltas(deltas, model)
    events.append(_openai_event({}, "stop", model))
    events.append(b"data: [DONE]\n\n")
    return _stream(events, split, chunk_delay, cut_after, delay)


def openai_stream_error(
    deltas: Sequence[str],
    message: str,
    *,
    split: int | None = None,
    chunk_delay: float = 0.0,
    cut_after: int | None = None,
    delay: float = 0.0,
    model: str = "gpt-4.1-nano-2025-04-14",
) -> Reply:
    """A Chat Completions stream that fails part way: the chunks of ``deltas``, then
    ``data: {"error": {"message", "type": "server_error", "param": null, "code": null}}`` and
    the end of the connection (no finish reason, no ``[DONE]``)."""
    events = _openai_deltas(deltas, model)
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    events.append(f"data: {_json(error)}\n\n".encode())
    return _stream(events, split, chunk_delay, cut_after, delay)


def anthropic_stream(
    deltas: Sequence[str],
    *,
    split: int | None = None,
    chunk_delay: float = 0.0,
    cut_after: int | None = None,
    delay: float = 0.0,
    model: str = "claude-haiku-4-5-20251001",
) -> Reply:
    """A 200 Messages stream: ``message_start``, ``content_block_start``, ``ping``, one
    ``content_block_delta`` per text delta, ``content_block_stop``, ``message_delta``
    (``"stop_reason": "end_turn"``) and ``message_stop``."""
    events = _anthropic_deltas(deltas, model)
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 5},
    }
    events.append(_sse("message_delta", end))
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return _stream(events, split, chunk_delay, cut_after, delay)


def anthropic_stream_error(
    deltas: Sequence[str],
    message: str,
    *,
    split: int | None = None,
    chunk_delay: float = 0.0,
    cut_after: int | None = None,
    delay: float = 0.0,
    model: str = "claude-haiku-4-5-20251001",
) -> Reply:
    """A Messages stream that fails part way: the events of ``deltas``, then ``event: error``
    (``{"type": "error", "error": {"type": "overloaded_error", "message"}}``) and the end of
    the connection (no ``message_stop``)."""
    events = _anthropic_deltas(deltas, model)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
    events.append(_sse("error", error))
    return _stream(events, split, chunk_delay, cut_after, delay)


def streamed(request: Request) -> bool:
    """Whether ``request`` asked for a streamed answer (``"stream": true`` in its body)."""
    body = request.get("body")
    return isinstance(body, dict) and body.get("stream") is True


def _text_deltas(text: str) -> list[str]:
    return [text[i : i + 4] for i in range(0, len(text), 4)]


def openai_answer(request: Request, text: str) -> Reply:
    """What an OpenAI-compatible provider answers ``request`` with ``text``: a stream of
    deltas of four characters when the request asked for one, ``openai_chat`` otherwise."""
    if streamed(request):
        return openai_stream(_text_deltas(text))
    return openai_chat(text)


def anthropic_answer(request: Request, text: str) -> Reply:
    """What Anthropic answers ``request`` with ``text``: a stream of deltas of four
    characters when the request asked for one, ``anthropic_message`` otherwise."""
    if streamed(request):
        return anthropic_stream(_text_deltas(text))
    return anthropic_message(text)


def _stream_from_json(item: Mapping[str, Any], delay: float) -> Reply | None:
    """The streamed forms of a scripted reply, or None when ``item`` is not one."""
    split = None if item.get("split") is None else int(item["split"])
    cut_after = None if item.get("cut_after") is None else int(item["cut_after"])
    options: dict[str, Any] = {
        "split": split,
        "chunk_delay": float(item.get("chunk_delay_ms", 0)) / 1000.0,
        "cut_after": cut_after,
        "delay": delay,
    }
    for name, make in (("openai_stream", openai_stream), ("anthropic_stream", anthropic_stream)):
        if name in item:
            return make(_deltas_from_json(item[name], name), **options)
    for name, make_error in (
        ("openai_stream_error", openai_stream_error),
        ("anthropic_stream_error", anthropic_stream_error),
    ):
        if name in item:
            message = str(item.get("message", "fake stream error"))
            return make_error(_deltas_from_json(item[name], name), message, **options)
    return None


def _deltas_from_json(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"{name} takes a list of text deltas, not {value!r}")
    return [str(d) for d in value]


def reply_from_json(item: Mapping[str, Any]) -> Reply:
    """A reply from its script form (see the module documentation)."""
    if not isinstance(item, Mapping):
        raise ValueError(f"a scripted reply must be an object, not {item!r}")
    delay = float(item.get("delay_ms", 0)) / 1000.0
    stream = _stream_from_json(item, delay)
    if stream is not None:
        return stream
    if "openai_chat" in item:
        return openai_chat(str(item["openai_chat"]), delay=delay)
    if "anthropic_message" in item:
        return anthropic_message(str(item["anthropic_message"]), delay=delay)
    if "openai_embeddings" in item:
        return openai_embeddings(item["openai_embeddings"], delay=delay)
    if "status" in item:
        return Reply(int(item["status"]), item.get("body"), item.get("headers"), delay)
    raise ValueError(
        "a scripted reply needs one of openai_chat, anthropic_message, openai_embeddings, "
        "openai_stream, anthropic_stream, openai_stream_error, anthropic_stream_error "
        f"or status: {dict(item)!r}"
    )


def _no_reply(request: Request) -> Reply:
    return openai_error(
        500,
        "server_error",
        f"fake server: no scripted reply for {request['method']} {request['path']}",
    )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLM


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the requests are recorded instead

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.read(2)  # CRLF
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        raw = self._read_body()
        text = raw.decode("utf-8", errors="replace")
        body: Any
        if not text.strip():
            body = None
        else:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        request: Request = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        fake = self.server.fake
        reply = fake._answer(request)
        fake._wait(reply.delay)
        self.send_response(reply.status)
        names = {k.lower() for k in reply.headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.pieces is None:
            self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        try:
            self.end_headers()
            if reply.pieces is None:
                self.wfile.write(reply.body)
                self.wfile.flush()
                return
            # A stream: no length, the end of the connection ends the body. Every piece
            # leaves at once, in its own segment, so the client reads it on its own.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i, piece in enumerate(reply.pieces):
                if reply.cut_after is not None and i >= reply.cut_after:
                    break  # cut off: the rest is never sent
                if i > 0:
                    fake._wait(reply.chunk_delay)
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:
            pass  # the client gave up (a timeout test): nothing to tell it

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_PATCH = _serve


class FakeLLM:
    """A fake provider listening on ``127.0.0.1:<free port>`` from construction until
    :meth:`close` (or the end of a ``with`` block).

    ``url`` is ``http://127.0.0.1:PORT`` (an Anthropic base URL), ``openai_base`` the same
    with ``/v1`` (an OpenAI-compatible base URL). ``push(reply)`` queues a reply;
    ``handler=f`` answers every request with ``f(request)`` instead. ``requests`` lists the
    requests received, in order; ``log`` (a path) also appends each one as a JSON line.
    """

    def __init__(self, handler: Handler | None = None, *, log: str | None = None) -> None:
        self.handler = handler
        self.log = log
        self.requests: list[Request] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_base = f"{self.url}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-llm",
            daemon=True,
        )
        self._thread.start()

    def push(self, *replies: Reply) -> None:
        """Queues replies, answered in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not used yet."""
        with self._lock:
            return len(self._queue)

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.log is not None:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(request, ensure_ascii=False) + "\n")
            if self.handler is None:
                return self._queue.popleft() if self._queue else _no_reply(request)
        try:
            return self.handler(request)
        except Exception as e:  # a broken handler is a test bug: say so in the answer
            return openai_error(500, "server_error", f"fake server: handler failed: {e!r}")

    def _wait(self, seconds: float) -> None:
        """Sleeps, but returns at once when the server is closed."""
        if seconds > 0:
            self._stop.wait(seconds)

    def close(self) -> None:
        """Stops the server (idempotent); delayed replies still pending are cut short."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeLLM {self.url} requests={len(self.requests)} pending={self.pending}>"


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: serves a script of replies until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--script", required=True, help="a JSON list of replies, used in order")
    parser.add_argument("--port-file", required=True, help="where to write the port")
    parser.add_argument("--log", help="append each request here as a JSON line")
    args = parser.parse_args(argv)

    with open(args.script, encoding="utf-8") as f:
        script = json.load(f)
    if not isinstance(script, list):
        parser.error("--script must hold a JSON list of replies")
    replies = [reply_from_json(item) for item in script]

    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    with FakeLLM(log=args.log) as fake:
        fake.push(*replies)
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{fake.port}\n")
        os.replace(tmp, args.port_file)
        while not stopped.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
