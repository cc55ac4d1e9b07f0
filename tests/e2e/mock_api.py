"""A scripted mock of the Anthropic Messages API, to drive the real Claude Code client offline.

The client is pointed at it with ANTHROPIC_BASE_URL, and HTTP(S)_PROXY point at it too, so a request
for any other host is answered here (refused) instead of leaving loopback.

Which reply: the first `[[scenario:NAME]]` tag in the request's user messages picks the script (a
subagent's own prompt carries its own tag, so it gets its own script); a request without a tag gets
the `default` script when the mock was given one (the main job's prompts carry no tag: one mock per
client run, playing that run's script); the number of assistant messages already in the request
picks the step. A script is a list of steps; a step is a list of
content blocks (`text`, `thinking`, `tool_use`), or `{"content": [...], "delay_s": 1.0}`. A tool_use
block may carry `"_expect": "<status>"`: the status cra should record for that call (kept in
`MockAPI.expected`, stripped from the reply). Strings in scripts may contain variables (e.g.
`@WORK@`) replaced by the values given to the mock.

Requests that are not scenario steps still get a sensible answer: compaction summary requests get an
`<analysis>`/`<summary>` reply, token counting gets a count, anything else a short text.
"""

import http.server
import itertools
import json
import re
import threading
import time
import urllib.parse
import uuid

SCENARIO_TAG = re.compile(r"\[\[scenario:([A-Za-z0-9_.\-]+)\]\]")
# Claude Code's compaction prompt (2.1.x) says this; the reply must hold a <summary> block.
COMPACT_MARKER = "create a detailed summary of the conversation"


def _text_of(content):
    """All text in a message's content (a string or a list of blocks), tool results included."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return "\n".join(parts)


def _substitute(value, variables):
    if isinstance(value, str):
        for key, replacement in variables.items():
            value = value.replace(key, replacement)
        return value
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def _chunks(s, size):
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def find_scenario(messages):
    for message in messages:
        if message.get("role") != "user":
            continue
        match = SCENARIO_TAG.search(_text_of(message.get("content")))
        if match:
            return match.group(1)
    return None


def is_compaction_request(body):
    messages = body.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        return False
    last = _text_of(users[-1].get("content")).lower()
    return COMPACT_MARKER in last


class MockAPI:
    """The server. `with MockAPI(scripts, {"@WORK@": path}) as mock: ... mock.base_url ...`"""

    def __init__(self, scripts, variables=None, model_fallback="claude-mock", default=None):
        self.scripts = scripts
        self.default = default  # the script for requests without a [[scenario:...]] tag (None: no script)
        self.variables = dict(variables or {})
        self.model_fallback = model_fallback
        self.requests = []  # one dict per request received, in arrival order
        self.expected = {}  # tool_use id -> status cra should record
        self.tool_uses = []  # every tool_use block sent: {id, scenario, step, name, input}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._server = None
        self._thread = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        handler = type("Handler", (_Handler,), {"mock": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-api", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- what to answer ----------------------------------------------------------------------

    def reply_for(self, body):
        """(kind, scenario, step, content blocks, delay_s) for a /v1/messages request body."""
        messages = body.get("messages") or []
        scenario = find_scenario(messages) or self.default
        step = sum(1 for m in messages if m.get("role") == "assistant")
        if is_compaction_request(body):
            return "compact_summary", scenario, step, [{"type": "text", "text": _summary_text(messages)}], 0
        if scenario is None:
            return "other", None, step, [{"type": "text", "text": "Mock reply: nothing scripted for this request."}], 0
        script = self.scripts.get(scenario)
        if script is None:
            text = "Mock: no script named %s." % scenario
            return "unknown_scenario", scenario, step, [{"type": "text", "text": text}], 0
        if step >= len(script):
            text = "Mock: script for %s exhausted (step %d). Done." % (scenario, step)
            return "exhausted", scenario, step, [{"type": "text", "text": text}], 0
        entry = script[step]
        delay = 0
        if isinstance(entry, dict):
            delay = entry.get("delay_s", 0)
            entry = entry["content"]
        content = []
        for index, block in enumerate(_substitute(entry, self.variables)):
            block = dict(block)
            expect = block.pop("_expect", None)
            if block["type"] == "tool_use":
                block["id"] = "toolu_mock_%s_s%d_b%d_%s" % (scenario, step, index, uuid.uuid4().hex[:8])
                with self._lock:
                    self.expected[block["id"]] = expect or "success"
                    self.tool_uses.append(
                        {
                            "id": block["id"],
                            "scenario": scenario,
                            "step": step,
                            "name": block["name"],
                            "input": block["input"],
                        }
                    )
            elif block["type"] == "thinking":
                block.setdefault("signature", "mock-signature-" + uuid.uuid4().hex)
            content.append(block)
        return "scenario", scenario, step, content, delay

    def message(self, body, content):
        n = next(self._counter)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
        output_tokens = max(1, sum(len(json.dumps(b)) for b in content) // 4)
        return {
            "id": "msg_mock_%03d_%s" % (n, uuid.uuid4().hex[:10]),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or self.model_fallback,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, len(json.dumps(body.get("messages") or [])) // 4),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
            },
        }

    def _log(self, entry):
        with self._lock:
            self.requests.append(entry)

    def scenario_requests(self, scenario=None):
        return [
            r for r in self.requests if r.get("kind") == "scenario" and (scenario is None or r["scenario"] == scenario)
        ]


def _summary_text(messages):
    """A compaction summary in the shape Claude Code asks for (analysis, then summary)."""
    scenario = find_scenario(messages) or "unknown"
    tools = []
    for m in messages:
        if m.get("role") == "assistant" and isinstance(m.get("content"), list):
            tools += [b.get("name") for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
    return (
        "<analysis>\nThe conversation ran the scripted scenario %s and used %d tool call(s).\n</analysis>\n\n"
        "<summary>\n1. Primary Request and Intent: the user ran scenario %s.\n"
        "2. Key Technical Concepts: none.\n3. Files and Code Sections: none.\n4. Errors and fixes: none.\n"
        "5. Problem Solving: done.\n6. All user messages: the scenario prompt.\n7. Pending Tasks: none.\n"
        "8. Current Work: finished; tools used: %s.\n</summary>"
        % (scenario, len(tools), scenario, ", ".join(t for t in tools if t) or "none")
    )


def sse_events(message):
    """The Messages API streaming events for a complete message, in order: (event name, data)."""
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in _chunks(block["text"], 48):
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
        elif kind == "thinking":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
            for piece in _chunks(block["thinking"], 48):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": piece},
                    },
                )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                },
            )
        elif kind == "tool_use":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                },
            )
            for piece in _chunks(json.dumps(block["input"]), 32):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        else:
            raise ValueError("mock cannot stream a %r block" % kind)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


class _Handler(http.server.BaseHTTPRequestHandler):
    mock = None  # set per server by MockAPI.start
    protocol_version = "HTTP/1.1"  # the client keeps connections alive; every reply has a length

    def log_message(self, format, *args):
        pass  # the request log is self.mock.requests

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, content_type, payload, extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_mock_" + uuid.uuid4().hex[:16])
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _json(self, status, obj):
        self._send(status, "application/json", json.dumps(obj).encode("utf-8"))

    def _error(self, status, kind, message):
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _entry(self, kind, body=None, **extra):
        entry = {
            "t": time.time(),
            "method": self.command,
            "path": self.path,
            "kind": kind,
            "headers": {k: v for k, v in self.headers.items() if k.lower() not in ("x-api-key", "authorization")},
            "body": body,
        }
        entry.update(extra)
        self.mock._log(entry)
        return entry

    def _foreign(self):
        """A proxied request for another host (absolute URL): refuse, so nothing leaves loopback."""
        parts = urllib.parse.urlsplit(self.path)
        if parts.netloc and parts.netloc not in ("127.0.0.1:%d" % self.mock.port, "localhost:%d" % self.mock.port):
            self._entry("proxy_refused")
            self._error(502, "api_error", "mock API: offline, %s is not reachable" % parts.netloc)
            return True
        return False

    def do_CONNECT(self):
        # HTTPS through the proxy: no tunnels out of loopback.
        self._entry("proxy_refused")
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_GET(self):
        if self._foreign():
            return
        self._entry("get")
        self._error(404, "not_found_error", "mock API: no GET %s" % self.path)

    do_HEAD = do_GET
    do_DELETE = do_GET

    def do_POST(self):
        if self._foreign():
            self._read_body()
            return
        raw = self._read_body()
        path = urllib.parse.urlsplit(self.path).path
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._entry("bad_json", raw.decode("utf-8", "replace"))
            self._error(400, "invalid_request_error", "mock API: body is not JSON")
            return
        if path.endswith("/v1/messages/count_tokens"):
            self._entry("count_tokens", body)
            self._json(200, {"input_tokens": max(1, len(raw) // 4)})
            return
        if not path.endswith("/v1/messages"):
            self._entry("unknown_post", body)
            self._error(404, "not_found_error", "mock API: no POST %s" % path)
            return
        try:
            kind, scenario, step, content, delay = self.mock.reply_for(body)
            message = self.mock.message(body, content)
        except Exception as exc:  # a broken script: tell the client (and the log) instead of hanging
            self._entry("mock_error", body, error=repr(exc))
            self._error(500, "api_error", "mock API failed: %r" % exc)
            return
        self._entry(kind, body, scenario=scenario, step=step, response_content=content)
        if delay:
            time.sleep(delay)
        if body.get("stream"):
            payload = "".join(
                "event: %s\ndata: %s\n\n" % (name, json.dumps(data)) for name, data in sse_events(message)
            ).encode("utf-8")
            self._send(200, "text/event-stream; charset=utf-8", payload, [("Cache-Control", "no-cache")])
        else:
            self._json(200, message)
