"""`cra serve` with a real model: a tiny model trained to act inside Claude Code (tests/serve_model.py),
exported to GGUF and answered by llama.cpp; the official `anthropic` client reads its streams; the real
Claude Code client runs a session against it; an upstream on loopback stands in for the API.

Every request is checked in serve_requests too: route, outcome, tokens, parsed, fallback, shadow.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'cra-claude[llama]')")
pytest.importorskip("trl")

sys.path.insert(0, str(Path(__file__).parent))
from serve_model import build_served_run  # noqa: E402

try:
    from e2e import claude_client
    from e2e.mock_api import MockAPI, sse_events
    from e2e.scenarios import SCENARIOS, blocks, make_project
except ImportError:  # tests/ imported as a package
    from tests.e2e import claude_client
    from tests.e2e.mock_api import MockAPI, sse_events
    from tests.e2e.scenarios import SCENARIOS, blocks, make_project

GLOB = {
    "name": "Glob",
    "description": "Find files by glob pattern.",
    "input_schema": {
        "type": "object",
        "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
        "required": ["pattern"],
    },
}
SYSTEM = [{"type": "text", "text": "You are Claude Code.\n - Primary working directory: /home/user/project"}]
KEY = "sk-ant-api03-cra-serve-test-key-" + "x" * 40


def ask(content="List the md files", **extra) -> dict:
    body = {
        "model": "claude-test",
        "max_tokens": 200,
        "system": SYSTEM,
        "tools": [GLOB],
        "messages": [{"role": "user", "content": content}],
    }
    body.update(extra)
    return body


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-model")
    return build_served_run(root)


@pytest.fixture(scope="module")
def local_model(served):
    from cra.db import open_db
    from cra.serve import model

    spec = model.resolve(open_db(served["db"]), str(served["run_id"]), "llama.cpp")
    loaded = model.load(spec, threads=1)
    yield loaded
    loaded.close()


@pytest.fixture
def db_path(served, tmp_path):
    """A copy of the run's database per test: each test's rows are its own."""
    path = tmp_path / "cra.db"
    source, copy = sqlite3.connect(served["db"]), sqlite3.connect(path)
    source.backup(copy)  # the WAL's pages too
    source.close()
    copy.close()
    return str(path)


class Serving:
    """The app on uvicorn in a thread, on a free loopback port."""

    def __init__(self, db_path, model, **config):
        import uvicorn

        from cra.db import open_db
        from cra.serve import app, store

        self.db_path = db_path
        self.config = app.ServeConfig(**config)
        db = open_db(db_path)
        self.server_id = store.start_server(
            db,
            host="127.0.0.1",
            port=0,
            model=model.spec.label,
            backend=model.backend,
            upstream=self.config.upstream,
            share=self.config.share,
            fallback=self.config.fallback,
            shadow=self.config.shadow,
        )
        self.log = store.RequestLog(db_path, self.server_id)
        self.server = app.build(
            self.config, model, self.log, store.ShareState(db_path, self.server_id, self.config.share)
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.server.app(), log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)
        self.log.close()

    def rows(self, wait_for: int = 0, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            con = sqlite3.connect(self.db_path)
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM serve_requests ORDER BY id")]
            con.close()
            if len(rows) >= wait_for or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


@contextlib.contextmanager
def serving(db_path, model, **config):
    s = Serving(db_path, model, **config)
    try:
        yield s
    finally:
        s.stop()


class Upstream:
    """A loopback stand-in for the API that keeps every request exactly as it arrived (bytes, headers)
    and answers with a scripted message, as JSON or as the API's events."""

    def __init__(self, content=None, status=200):
        self.requests = []
        self.content = content or [{"type": "text", "text": "Upstream answer."}]
        self.status = status
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.requests.append({"path": self.path, "headers": dict(self.headers.items()), "raw": raw})
                body = json.loads(raw or b"{}")
                if upstream.status != 200:
                    payload = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
                    self._send(upstream.status, "application/json", payload.encode())
                    return
                if self.path.startswith("/v1/messages/count_tokens"):
                    self._send(200, "application/json", b'{"input_tokens": 7}')
                    return
                message = {
                    "id": "msg_upstream",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "content": [dict(b, id="toolu_up") if b["type"] == "tool_use" else b for b in upstream.content],
                    "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in upstream.content) else "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 11, "output_tokens": 5},
                }
                if body.get("stream"):
                    events = "".join(
                        "event: %s\ndata: %s\n\n" % (n, json.dumps(d)) for n, d in sse_events(message)
                    ).encode()
                    self._send(200, "text/event-stream", events)
                else:
                    self._send(200, "application/json", json.dumps(message).encode())

            def _send(self, status, kind, payload):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("request-id", "req_upstream_1")
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def post(url, body, headers=None, raw=None):
    return httpx.post(
        url + "/v1/messages",
        content=raw if raw is not None else json.dumps(body),
        headers={"content-type": "application/json", **(headers or {})},
        timeout=120,
    )


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


# -- the local model through the official client ----------------------------------------------------------


def test_anthropic_client_reads_a_streamed_answer_with_thinking_and_a_tool_call(db_path, local_model):
    anthropic = pytest.importorskip("anthropic")
    with serving(db_path, local_model) as s:
        client = anthropic.Anthropic(base_url=s.url, api_key="dummy", max_retries=0)
        body = ask()
        with client.messages.stream(
            model=body["model"], max_tokens=200, system=body["system"], tools=body["tools"], messages=body["messages"]
        ) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
        created = client.messages.create(**body)
        raw = post(s.url, ask(stream=True))
        rows = s.rows(wait_for=3)
    assert [b.type for b in final.content] == ["thinking", "tool_use"], final.content
    assert final.content[0].thinking == "This needs Glob." and final.content[0].signature.startswith("cra-local:")
    call = final.content[1]
    assert call.name == "Glob" and call.input["pattern"].startswith("*.") and call.id.startswith("toolu_")
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "input_json" in kinds
    # The same conversation answered buffered: the same blocks (greedy), its own tool_use id.
    assert [b.type for b in created.content] == ["thinking", "tool_use"]
    assert created.content[1].input == call.input and created.content[1].id != call.id
    # The wire format, event by event, in the API's order.
    names = [name for name, _ in events(raw.text)]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    deltas = [d["delta"]["type"] for n, d in events(raw.text) if n == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "input_json_delta"
    assert len(rows) == 3 and {r["route"] for r in rows} == {"local"} and all(r["parsed"] == 1 for r in rows)
    assert all(r["outcome"] == "ok" and r["status"] == 200 and r["tool_calls"] == 1 for r in rows)
    assert all(r["first_token_ms"] <= r["latency_ms"] and r["input_tokens"] > 0 for r in rows)


def test_after_the_tool_result_the_model_answers_and_ends_the_turn(db_path, local_model):
    body = ask(
        messages=[
            {"role": "user", "content": "List the md files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "This needs Glob.", "signature": "cra-local:local"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Glob", "input": {"pattern": "*.md"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "README.md"}]},
        ]
    )
    with serving(db_path, local_model) as s:
        answer = post(s.url, body).json()
        count_body = {k: v for k, v in body.items() if k != "max_tokens"}
        tokens = httpx.post(s.url + "/v1/messages/count_tokens", json=count_body, timeout=60).json()
    assert answer["content"] == [{"type": "text", "text": "Done."}] and answer["stop_reason"] == "end_turn"
    # count_tokens renders the same prompt as the answer did.
    assert tokens == {"input_tokens": answer["usage"]["input_tokens"]}


def test_a_call_the_request_does_not_allow_is_never_sent_as_tool_use(db_path, local_model):
    """The model calls Glob; this request offers no Glob: the call becomes a note, never a tool_use block."""
    with serving(db_path, local_model) as s:
        answer = post(s.url, ask(tools=[])).json()
        streamed = post(s.url, ask(tools=[], stream=True))
        rows = s.rows(wait_for=2)
    assert [b["type"] for b in answer["content"]] == ["thinking", "text"] and answer["stop_reason"] == "end_turn"
    assert "cannot be used" in answer["content"][1]["text"] and "unknown tool 'Glob'" in answer["content"][1]["text"]
    kinds = [d["content_block"]["type"] for n, d in events(streamed.text) if n == "content_block_start"]
    assert "tool_use" not in kinds and kinds[-1] == "text"
    assert [r["parsed"] for r in rows] == [0, 0] and [r["tool_calls"] for r in rows] == [0, 0]


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_requests_get_the_apis_error_shape_and_a_row(db_path, local_model):
    with serving(db_path, local_model, max_body_bytes=4096) as s:
        cases = {
            "malformed": post(s.url, None, raw=b'{"model": "x", "messages": [}'),
            "not an object": post(s.url, None, raw=b"[1, 2]"),
            "unknown field": post(s.url, ask(colour="blue")),
            "no max_tokens": post(s.url, {k: v for k, v in ask().items() if k != "max_tokens"}),
            "bad role": post(s.url, ask(messages=[{"role": "robot", "content": "hi"}])),
            "oversize": post(s.url, ask(content="x" * 10000)),
            "unknown path": httpx.get(s.url + "/v1/models", timeout=30),
        }
        after = post(s.url, ask())
        rows = s.rows(wait_for=8)
    for name, response in cases.items():
        body = response.json()
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, name
    assert cases["malformed"].status_code == 400 and "not valid JSON" in cases["malformed"].json()["error"]["message"]
    assert cases["unknown field"].json()["error"]["message"] == "colour: Extra inputs are not permitted"
    assert cases["no max_tokens"].status_code == cases["bad role"].status_code == 400
    assert cases["oversize"].status_code == 413 and cases["oversize"].json()["error"]["type"] == "request_too_large"
    assert cases["unknown path"].status_code == 404
    assert after.status_code == 200  # the server is unharmed
    outcomes = [r["outcome"] for r in rows]
    assert outcomes == ["invalid_request"] * 5 + ["too_large", "not_found", "ok"]


def test_a_client_that_leaves_mid_stream_stops_the_model_and_leaves_a_row(db_path, local_model, monkeypatch):
    """Generation slowed to a token per 50 ms, so the client can leave while the model still writes."""
    real = type(local_model).run_tokens

    def slow(self, ids, max_new, temperature, cancel, emit):
        return real(self, ids, max_new, temperature, cancel, lambda t: (time.sleep(0.05), emit(t))[1])

    monkeypatch.setattr(type(local_model), "run_tokens", slow)
    with serving(db_path, local_model) as s:
        with httpx.stream("POST", s.url + "/v1/messages", json=ask(stream=True), timeout=60) as response:
            for line in response.iter_lines():
                if "thinking_delta" in line:
                    break  # leave after the first words
        time.sleep(0.5)
        monkeypatch.setattr(type(local_model), "run_tokens", real)
        after = post(s.url, ask())
        rows = s.rows(wait_for=2)
    assert rows[0]["outcome"] == "client_closed" and rows[0]["status"] == 200
    assert after.status_code == 200 and rows[1]["outcome"] == "ok"
    assert rows[1]["output_tokens"] > 0 and (rows[0]["output_tokens"] or 0) < rows[1]["output_tokens"]


# -- rollout: share, upstream, fallback, shadow -------------------------------------------------------------


def test_sessions_are_routed_by_share_and_stay_where_they_are(db_path, local_model, upstream):
    from cra.serve.app import session_point

    points = {f"session-{i}": session_point(f"session-{i}") for i in range(400)}
    local = [k for k, p in points.items() if p < 0.25]
    assert 0.18 < len(local) / len(points) < 0.32  # a hash, evenly spread
    with serving(db_path, local_model, upstream=upstream.url, share=0.25) as s:
        for sid in list(points)[:12]:
            for _ in range(2):  # the same session twice: the same route
                post(s.url, ask(), headers={"x-claude-code-session-id": sid, "x-api-key": KEY})
        rows = s.rows(wait_for=24)
    by_session = {}
    for r in rows:
        by_session.setdefault(r["session_id"], set()).add(r["route"])
    for sid, routes in by_session.items():
        assert routes == {"local" if points[sid] < 0.25 else "upstream"}, sid
    assert len(upstream.requests) == sum(1 for r in rows if r["route"] == "upstream")


def test_forwarded_requests_reach_upstream_unchanged_and_the_key_is_never_stored(db_path, local_model, upstream):
    headers = {
        "x-api-key": KEY,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219",
        "x-claude-code-session-id": "s-forward",
    }
    raw = json.dumps(ask(stream=True), indent=1).encode()  # odd spacing: forwarded byte for byte
    with serving(db_path, local_model, upstream=upstream.url, share=0.0) as s:
        streamed = post(s.url + "", None, headers=headers, raw=raw)
        plain = post(s.url, ask(), headers={**headers, "x-claude-code-session-id": "s-forward"})
        rows = s.rows(wait_for=2)
    first = upstream.requests[0]
    assert first["raw"] == raw and first["path"] == "/v1/messages"
    assert first["headers"]["x-api-key"] == KEY and first["headers"]["anthropic-beta"] == "claude-code-20250219"
    assert [n for n, _ in events(streamed.text)][-1] == "message_stop"
    assert streamed.headers["request-id"] == "req_upstream_1" and plain.json()["id"] == "msg_upstream"
    assert [r["route"] for r in rows] == ["upstream", "upstream"]
    assert rows[0]["input_tokens"] == 11 and rows[0]["output_tokens"] == 5 and rows[0]["stop_reason"] == "end_turn"
    for path in Path(db_path).parent.glob("cra.db*"):
        assert KEY.encode() not in path.read_bytes() and b"sk-ant" not in path.read_bytes()


def test_upstream_failures_are_api_errors_and_rows(db_path, local_model):
    failing = Upstream(status=529)
    with serving(db_path, local_model, upstream="http://127.0.0.1:9", share=0.0) as s:
        unreachable = post(s.url, ask(), headers={"x-api-key": KEY})
    with serving(db_path, local_model, upstream=failing.url, share=0.0) as s2:
        busy = post(s2.url, ask(), headers={"x-api-key": KEY})
        rows = s2.rows(wait_for=2)
    failing.close()
    assert unreachable.status_code == 502 and unreachable.json()["error"]["type"] == "api_error"
    assert busy.status_code == 529 and busy.json()["error"]["type"] == "overloaded_error"  # passed through
    assert [(r["outcome"], r["status"]) for r in rows] == [("upstream_error", 502), ("upstream_error", 529)]


def test_fallback_sends_unusable_or_late_local_answers_upstream(db_path, local_model, upstream):
    local_thinking = {"type": "thinking", "thinking": "x", "signature": "cra-local:local"}
    history = ask(
        tools=[],
        messages=[
            {"role": "user", "content": "List the md files"},
            {"role": "assistant", "content": [local_thinking, {"type": "text", "text": "Looking."}]},
            {"role": "user", "content": "List the md files"},
        ],
    )
    with serving(db_path, local_model, upstream=upstream.url, share=1.0, fallback=True) as s:
        unusable = post(s.url, history, headers={"x-api-key": KEY})
    with serving(db_path, local_model, upstream=upstream.url, share=1.0, fallback=True, timeout=0.0) as s2:
        late = post(s2.url, ask(stream=True), headers={"x-api-key": KEY})
        rows = s2.rows(wait_for=2)
    assert unusable.json()["id"] == "msg_upstream" and "message_stop" in late.text
    assert [(r["route"], r["fell_back"], r["fallback_reason"]) for r in rows] == [
        ("local", 1, "unparsable"),
        ("local", 1, "timeout"),
    ]
    assert rows[0]["parsed"] == 0 and "unknown tool 'Glob'" in rows[0]["error"]
    # Thinking cra wrote cannot verify upstream: it is dropped from what is forwarded, nothing else is.
    sent = json.loads(upstream.requests[0]["raw"])
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "Looking."}]
    assert sent["messages"][0] == history["messages"][0] and sent["tools"] == []


def test_shadow_answers_from_upstream_and_records_whether_the_local_model_agreed(db_path, local_model):
    agreeing = Upstream(content=[{"type": "tool_use", "name": "Glob", "input": {"pattern": "*.md"}}])
    answering = Upstream(content=[{"type": "text", "text": "There are two."}])
    try:
        with serving(db_path, local_model, upstream=agreeing.url, share=0.0, shadow=True) as s:
            first = post(s.url, ask(stream=True), headers={"x-api-key": KEY, "x-claude-code-session-id": "a"})
            s.rows(wait_for=1)
        with serving(db_path, local_model, upstream=answering.url, share=0.0, shadow=True) as s2:
            second = post(s2.url, ask(), headers={"x-api-key": KEY, "x-claude-code-session-id": "b"})
            rows = s2.rows(wait_for=2)
    finally:
        agreeing.close()
        answering.close()
    assert "toolu_up" in first.text and second.json()["content"][0]["text"] == "There are two."
    assert [(r["route"], r["shadow_agreed"]) for r in rows] == [("shadow", 1), ("shadow", 0)]
    detail = json.loads(rows[1]["shadow_detail"])
    assert detail["upstream"] == {"kind": "answer", "tools": []} and detail["local"]["tools"] == ["Glob"]
    assert json.loads(rows[0]["shadow_detail"])["arg_similarity"] is not None


# -- the command line and the real client --------------------------------------------------------------------


@contextlib.contextmanager
def cra_serve(db_path, *args, env=None):
    """`cra serve` as a user runs it, in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cra", "serve", *args, "-d", db_path, "--port", "0", "--cpu-threads", "1"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        url = None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("Listening on "):
                url = line.split()[-1]
                break
        assert url, "cra serve did not start:\n" + "".join(lines)
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_status_and_set_share_change_a_running_server(db_path, served, upstream):
    from click.testing import CliRunner

    from cra.cli import cli

    run = str(served["run_id"])
    with cra_serve(db_path, run, "--upstream", upstream.url, "--share", "0") as url:
        before = post(url, ask(), headers={"x-claude-code-session-id": "moving", "x-api-key": KEY})
        changed = CliRunner().invoke(cli, ["serve", "set-share", "100%", "-d", db_path], catch_exceptions=False)
        time.sleep(1.5)  # the server reads its share at most once a second
        after = post(url, ask(), headers={"x-claude-code-session-id": "moving", "x-api-key": KEY})
        deadline = time.monotonic() + 30
        while True:  # the server's log thread writes the row a moment after the answer
            status = CliRunner().invoke(cli, ["serve", "status", "-d", db_path, "--json"], catch_exceptions=False)
            if json.loads(status.output)[0]["requests"]["requests"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        text = CliRunner().invoke(cli, ["serve", "status", "-d", db_path], catch_exceptions=False)
    assert before.json()["id"] == "msg_upstream" and after.json()["id"].startswith("msg_cra")
    assert changed.exit_code == 0 and "share 0 -> 1" in changed.output
    (server,) = json.loads(status.output)
    assert server["share"] == 1.0 and server["requests"]["answered_locally"] == 1
    assert "share 1 of sessions answered locally" in text.output
    stopped = CliRunner().invoke(cli, ["serve", "status", "-d", db_path], catch_exceptions=False)
    assert "No cra serve is running" in stopped.output
    refused = CliRunner().invoke(cli, ["serve", "set-share", "0.5", "-d", db_path])
    assert refused.exit_code == 1 and "no cra serve is running" in refused.output
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT stopped_at IS NOT NULL FROM serve_servers").fetchone() == (1,)


def test_serve_refuses_what_it_cannot_do(db_path, served):
    from click.testing import CliRunner

    from cra.cli import cli

    cases = {
        ("--share", "0.5"): "need --upstream",
        ("--share", "2"): "between 0 and 1",
        ("nope.gguf",): "no GGUF file",
        ("99",): "99",
    }
    for args, words in cases.items():
        result = CliRunner().invoke(cli, ["serve", *args, "-d", db_path])
        assert result.exit_code != 0 and words in result.output, (args, result.output)


def test_stats_shows_the_share_served_locally(db_path, local_model, upstream):
    from click.testing import CliRunner

    from cra.cli import cli

    with serving(db_path, local_model, upstream=upstream.url, share=1.0, fallback=True) as s:
        post(s.url, ask(), headers={"x-claude-code-session-id": "one"})
        post(s.url, ask(tools=[]), headers={"x-claude-code-session-id": "two"})
        s.rows(wait_for=2)
    result = CliRunner().invoke(cli, ["stats", "-d", db_path], catch_exceptions=False)
    data = json.loads(CliRunner().invoke(cli, ["stats", "-d", db_path, "--json"], catch_exceptions=False).output)
    serving_stats = data["serving"]
    assert serving_stats["requests"] == 2 and serving_stats["answered_locally"] == 1
    assert serving_stats["fell_back"] == 1 and serving_stats["parsed"] == 1
    assert "Served by cra serve" in result.output and "1 of 2 requests answered locally (50.0%)" in result.output


@pytest.fixture(scope="module")
def claude():
    try:
        return claude_client.ensure_claude_code()
    except claude_client.ClaudeCodeUnavailable as exc:
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("node/npm not available: cannot install the Claude Code client (%s)" % exc)
        raise


def run_claude(claude, url, workdir, home, prompt, tools="Glob"):
    env = claude_client.offline_env(home, url)
    args = ["-p", prompt, "--output-format", "stream-json", "--verbose", "--allowedTools", tools, "--tools", tools]
    args += ["--system-prompt-snapshot", "off", "--disable-slash-commands"]
    proc = subprocess.run([str(claude), *args], cwd=str(workdir), env=env, capture_output=True, text=True, timeout=300)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, messages


@pytest.mark.e2e
def test_claude_code_runs_the_local_models_tool_call(claude, served, db_path, tmp_path):
    """The real client against `cra serve` on the tiny model's GGUF: the model calls Glob, Claude Code
    runs it, the result comes back, and the model ends the turn."""
    workdir = make_project(tmp_path / "work")
    with cra_serve(db_path, str(served["run_id"])) as url:
        proc, messages = run_claude(claude, url, workdir, tmp_path / "home", "List the md files")
    assert proc.returncode == 0, proc.stderr[-3000:]
    uses = [
        b
        for m in messages
        if m.get("type") == "assistant"
        for b in m["message"]["content"]
        if b.get("type") == "tool_use"
    ]
    results = [
        b
        for m in messages
        if m.get("type") == "user"
        for b in m["message"]["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    assert [u["name"] for u in uses] == ["Glob"] and uses[0]["input"]["pattern"].startswith("*.")
    assert results and results[0]["tool_use_id"] == uses[0]["id"] and not results[0].get("is_error")
    final = next(m for m in messages if m.get("type") == "result")
    assert final["result"] == "Done." and final["subtype"] == "success"
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT route, parsed, tool_calls, stop_reason, session_id FROM serve_requests").fetchall()
    main = [r for r in rows if r[2] is not None]
    assert ("local", 1, 1, "tool_use", final["session_id"]) in main
    assert ("local", 1, 0, "end_turn", final["session_id"]) in main


@pytest.mark.e2e
def test_claude_code_at_share_zero_reaches_the_upstream_unchanged(claude, served, db_path, tmp_path):
    scenario = SCENARIOS["tools"]
    workdir = make_project(tmp_path / "work")
    with MockAPI(scenario.scripts, {"@WORK@": str(workdir)}) as mock:
        with cra_serve(db_path, str(served["run_id"]), "--upstream", mock.base_url, "--share", "0") as url:
            env = claude_client.offline_env(tmp_path / "home", url)
            # The client's proxy stays the mock (nothing leaves loopback); cra serve is on 127.0.0.1 (NO_PROXY).
            for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
                env[k] = mock.base_url
            args = claude_client.claude_args(scenario, scenario.prompt, lean=True)
            proc = subprocess.run(
                [str(claude), *args], cwd=str(workdir), env=env, capture_output=True, text=True, timeout=300
            )
        requests = list(mock.requests)
    assert proc.returncode == 0, proc.stderr[-3000:]
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    final = next(m for m in messages if m.get("type") == "result")
    assert final["result"] == [b["text"] for b in blocks(scenario.scripts["tools"][-1]) if b["type"] == "text"][-1]
    steps = [r for r in requests if r["kind"] == "scenario"]
    assert len(steps) == len(scenario.scripts["tools"])
    sessions = {{k.lower(): v for k, v in r["headers"].items()}.get("x-claude-code-session-id") for r in steps}
    assert sessions == {final["session_id"]}
    assert not [r for r in requests if r["kind"] in ("bad_json", "mock_error", "exhausted")]
    con = sqlite3.connect(db_path)
    routes = {r[0] for r in con.execute("SELECT route FROM serve_requests")}
    assert routes == {"upstream"}


def test_the_hf_backend_answers_as_the_gguf_does(db_path, served, local_model):
    """transformers + the PEFT adapter: the same rendering, the same greedy answer as llama.cpp."""
    from cra.db import open_db
    from cra.serve import model

    hf = model.load(model.resolve(open_db(db_path), str(served["run_id"]), "hf"), threads=1)
    with serving(db_path, hf) as s:
        answer = post(s.url, ask()).json()
        rows = s.rows(wait_for=1)
    with serving(db_path, local_model) as s2:
        reference = post(s2.url, ask()).json()
    strip = lambda content: [{k: v for k, v in b.items() if k != "id"} for b in content]  # noqa: E731
    assert hf.backend == "hf" and strip(answer["content"]) == strip(reference["content"])
    assert answer["usage"]["input_tokens"] == reference["usage"]["input_tokens"] and rows[0]["parsed"] == 1
