"""tests/fake_llm.py itself: its wire formats, and the CLI that the C and Node suites use
(script file in, port file out, one JSON line per request in the log, exit on SIGTERM)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fake_llm import FakeLLM, openai_chat

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
