"""The Messages API as Claude Code uses it: request checks, messages, errors and server-sent events.

Event order of a streamed answer (what the API sends and the `anthropic` SDK accumulates):
message_start, ping, then per content block content_block_start / content_block_delta ... /
content_block_stop (text_delta; thinking_delta then signature_delta; input_json_delta for tool_use),
message_delta (stop_reason, output usage), message_stop. Errors are `{"type": "error", "error":
{"type", "message"}}`, as a JSON body before a stream starts and as an `error` event after.
"""

from __future__ import annotations

import json
import secrets

# Status codes and error types of the API (docs: errors).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# Top-level fields of a Messages request, as the API and Claude Code's betas know them. Anything else
# is refused the way the API refuses it (for the local route; forwarded requests go as sent).
MESSAGE_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_k",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "context_management",
    "mcp_servers",
    "output_config",
    "output_format",
    "inference_geo",
    "speed",
}
COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", "context_management", "mcp_servers"}
COUNT_FIELDS |= {"output_config", "output_format"}
ROLES = ("user", "assistant", "system")
SIGNATURE_PREFIX = "cra-local:"  # thinking cra wrote: the API cannot verify it, so it is never sent upstream


class ApiError(Exception):
    """An answer in the API's error shape: `status`, `type` (invalid_request_error, ...), message."""

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status or ERROR_STATUS.get(kind, 500)

    def body(self) -> dict:
        return error_body(self.kind, self.message)


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("invalid_request_error", f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError("invalid_request_error", "the request body must be a JSON object")
    return body


def _invalid(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def validate(body: dict, *, count_only: bool = False) -> None:
    """Refuse what the API would refuse before the model sees it (field names as the API words them)."""
    allowed = COUNT_FIELDS if count_only else MESSAGE_FIELDS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"{unknown[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _invalid("model: Field required (a model name string)")
    if not count_only:
        tokens = body.get("max_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
            raise _invalid("max_tokens: Field required (an integer >= 1)")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _invalid("stream: Input should be a valid boolean")
        stops = body.get("stop_sequences")
        if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
            raise _invalid("stop_sequences: Input should be a list of strings")
        temperature = body.get("temperature")
        if temperature is not None and (
            not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 1
        ):
            raise _invalid("temperature: Input should be a number between 0 and 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: Field required (a non-empty list)")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise _invalid(f"messages.{i}.content: Input should be a string or a list of content blocks")
        for j, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _invalid(f"messages.{i}.content.{j}: a content block needs a 'type'")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _invalid("system: Input should be a string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
        ):
            raise _invalid("tools: Input should be a list of tools, each with a name")


def session_of(headers, body: dict | None) -> str | None:
    """Claude Code's session id: its header, else the one inside metadata.user_id (JSON in 2.x,
    `..._session_<uuid>` in 1.x)."""
    value = headers.get("x-claude-code-session-id")
    if value:
        return value
    user_id = ((body or {}).get("metadata") or {}).get("user_id") if isinstance(body, dict) else None
    if not isinstance(user_id, str):
        return None
    try:
        parsed = json.loads(user_id)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
        return parsed["session_id"]
    _, marker, session = user_id.rpartition("_session_")
    return session or None if marker else None


def new_message_id() -> str:
    return "msg_cra" + secrets.token_hex(12)


def message(model: str, content: list[dict], stop_reason: str | None, input_tokens: int, output_tokens: int) -> dict:
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        },
    }


def sse(event: str, data: dict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def strip_local_thinking(body: dict) -> bool:
    """Drop thinking blocks cra wrote (their signature cannot verify upstream) from a request's
    assistant messages; True when anything was dropped. A session the local model answered keeps them
    in its history, and the API refuses such a request when it is forwarded (fallback, or a lower share)."""
    dropped = False
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        kept = [
            b
            for b in content
            if not (
                isinstance(b, dict)
                and b.get("type") == "thinking"
                and str(b.get("signature", "")).startswith(SIGNATURE_PREFIX)
            )
        ]
        if len(kept) != len(content):
            message["content"] = kept or [{"type": "text", "text": "(thinking)"}]
            dropped = True
    return dropped


class EventWriter:
    """Server-sent events for one streamed message, block by block, in the API's order."""

    def __init__(self, model: str, input_tokens: int):
        self.model = model
        self.input_tokens = input_tokens
        self.index = -1
        self.open_kind: str | None = None

    def start(self) -> bytes:
        start = message(self.model, [], None, self.input_tokens, 1)
        start["stop_reason"] = None
        return sse("message_start", {"type": "message_start", "message": start}) + sse("ping", {"type": "ping"})

    def open(self, kind: str, **fields) -> bytes:
        out = self.close()
        self.index += 1
        self.open_kind = kind
        block = {"type": kind, **fields}
        return out + sse(
            "content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}
        )

    def delta(self, delta: dict) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def close(self) -> bytes:
        if self.open_kind is None:
            return b""
        self.open_kind = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def text(self, piece: str) -> bytes:
        out = b"" if self.open_kind == "text" else self.open("text", text="")
        return out + self.delta({"type": "text_delta", "text": piece})

    def thinking(self, piece: str) -> bytes:
        out = b"" if self.open_kind == "thinking" else self.open("thinking", thinking="", signature="")
        return out + self.delta({"type": "thinking_delta", "thinking": piece})

    def signature(self, signature: str) -> bytes:
        return self.delta({"type": "signature_delta", "signature": signature})

    def tool_use(self, block: dict, chunk: int = 64) -> bytes:
        out = self.open("tool_use", id=block["id"], name=block["name"], input={})
        text = json.dumps(block["input"], ensure_ascii=False)
        for i in range(0, len(text), chunk):
            out += self.delta({"type": "input_json_delta", "partial_json": text[i : i + chunk]})
        return out + self.close()

    def block(self, block: dict) -> bytes:
        """A whole block at once (a buffered answer)."""
        kind = block["type"]
        if kind == "text":
            return self.text(block["text"]) + self.close()
        if kind == "thinking":
            return self.thinking(block["thinking"]) + self.signature(block["signature"]) + self.close()
        return self.tool_use(block)

    def finish(self, stop_reason: str, output_tokens: int) -> bytes:
        return (
            self.close()
            + sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
            + sse("message_stop", {"type": "message_stop"})
        )

    def error(self, kind: str, text: str) -> bytes:
        return sse("error", error_body(kind, text))


class StreamReader:
    """Reads a forwarded stream as it passes through: the message it adds up to (content, usage,
    stop_reason), or the error event it ended with. Tolerates anything it does not know."""

    def __init__(self):
        self._buffer = b""
        self.message: dict | None = None
        self.error: dict | None = None
        self._json: dict[int, str] = {}

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n\n", 1)
            data = b"".join(line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:"))
            if not data:
                continue
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._event(event)

    def _event(self, event: dict) -> None:
        kind = event.get("type")
        m = self.message
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self.message = dict(event["message"], content=[])
        elif kind == "error":
            self.error = event.get("error") or {}
        elif m is None:
            return
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            m["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            index, delta = event.get("index"), event.get("delta") or {}
            if not isinstance(index, int) or not 0 <= index < len(m["content"]):
                return
            block = m["content"][index]
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif delta.get("type") == "signature_delta":
                block["signature"] = delta.get("signature", "")
            elif delta.get("type") == "input_json_delta":
                self._json[index] = self._json.get(index, "") + delta.get("partial_json", "")
        elif kind == "content_block_stop":
            index = event.get("index")
            if index in self._json:
                try:
                    m["content"][index]["input"] = json.loads(self._json.pop(index) or "{}")
                except (ValueError, IndexError):
                    pass
        elif kind == "message_delta":
            m["stop_reason"] = (event.get("delta") or {}).get("stop_reason")
            usage = event.get("usage") or {}
            m.setdefault("usage", {}).update({k: v for k, v in usage.items() if isinstance(v, int)})
