"""The server: Starlette routes for the Messages API, the routing of each request (local model or
upstream; share, stickiness, fallback, shadow), and a serve_requests row for every request.

Routing is by session: a session's point in [0, 1) is a hash of its id, and it is answered locally
while that point is below the share. Raising the share keeps every local session local; lowering it
sends the highest points back upstream. Requests without a session id are keyed by their first
message (the same conversation, the same point).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from ..errors import StageError
from . import protocol, render
from .answer import AnswerStream
from .protocol import ApiError

# Request headers never forwarded (hop-by-hop, or set by the HTTP client itself).
DROP_REQUEST_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding"}
DROP_REQUEST_HEADERS |= {"proxy-authorization", "proxy-connection", "te", "upgrade"}
DROP_RESPONSE_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}
# Why generation stopped -> the API's stop_reason (a cancelled answer was cut short, as by max_tokens).
STOP_REASONS = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "cancelled": "max_tokens",
}


@dataclass
class ServeConfig:
    upstream: str | None = None  # base URL of the real API; None: everything is answered locally
    share: float = 1.0
    fallback: bool = False
    shadow: bool = False
    timeout: float | None = None  # seconds a local answer may take (from the request's arrival)
    max_new_tokens: int = 1024
    max_body_bytes: int = 32 * 1024 * 1024  # the API's own limit for a Messages request
    model_name: str | None = None  # the model name answers carry; None: the one the request asked for

    def __post_init__(self):
        if not 0 <= self.share <= 1:
            raise ValueError("share must be between 0 and 1")
        if self.upstream is None and (self.share < 1 or self.fallback or self.shadow):
            raise ValueError("--share below 1, --fallback and --shadow need --upstream URL")
        if self.upstream:
            self.upstream = self.upstream.rstrip("/")


def session_point(key: str) -> float:
    """Where a session falls in [0, 1): the same key always lands on the same point."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def routing_key(session_id: str | None, body: dict) -> str:
    if session_id:
        return session_id
    messages = body.get("messages") or [None]
    return "first-message:" + json.dumps(messages[0], sort_keys=True, default=str)


class Server:
    """One model, one upstream, one request log. `app()` is the ASGI application."""

    def __init__(self, config: ServeConfig, model, log, share=None):
        self.config = config
        self.model = model
        self.log = log
        self.share = share  # store.ShareState, or None: config.share, fixed
        self.client: Any = None  # httpx.AsyncClient for the upstream, made at startup
        self.shadow_tasks: set[asyncio.Task] = set()
        # Run when the server stops (uvicorn re-raises SIGTERM after its shutdown: a caller's `finally` may never run).
        self.on_shutdown: list = []

    # -- the application ------------------------------------------------------------------------

    def app(self):
        from starlette.applications import Starlette
        from starlette.routing import Route

        routes = [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/{path:path}", self.other, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
        ]
        return Starlette(routes=routes, lifespan=self._lifespan)

    def _lifespan(self, app):
        server = self

        class Lifespan:
            async def __aenter__(self):
                await server.startup()

            async def __aexit__(self, *exc):
                await server.shutdown()

        return Lifespan()

    async def startup(self):
        if self.config.upstream and self.client is None:
            import httpx

            # Claude Code waits up to 600 s for an answer; so does the forwarding.
            self.client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=15.0))

    async def shutdown(self):
        for task in list(self.shadow_tasks):
            task.cancel()
        if self.shadow_tasks:
            await asyncio.gather(*self.shadow_tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        for callback in self.on_shutdown:
            callback()

    def current_share(self) -> float:
        return self.share.current() if self.share is not None else self.config.share

    # -- handlers -------------------------------------------------------------------------------

    async def health(self, request):
        from starlette.responses import JSONResponse

        spec = self.model.spec if self.model is not None else None
        return JSONResponse(
            {
                "status": "ok",
                "model": spec.label if spec else None,
                "backend": getattr(self.model, "backend", None),
                "share": self.current_share(),
                "upstream": self.config.upstream,
            }
        )

    async def messages(self, request):
        return await self._handle(request, "messages")

    async def count_tokens(self, request):
        return await self._handle(request, "count_tokens")

    async def other(self, request):
        """Anything else Claude Code asks the API goes upstream as it is, or gets the API's 404."""
        row = self._row(request, "other")
        if self.config.upstream is None:
            row["route"] = "none"
            return self._error(
                row, ApiError("not_found_error", f"cra serve has no {request.method} {request.url.path}")
            )
        try:
            raw = await self._read_body(request)
        except ApiError as exc:
            row["route"] = "none"
            return self._error(row, exc)
        row["route"] = "upstream"
        return await self._forward(request, raw, row)

    async def _handle(self, request, endpoint: str):
        row = self._row(request, endpoint)
        try:
            raw = await self._read_body(request)
            body = protocol.parse_json(raw)
        except ApiError as exc:
            row["route"] = "none"
            return self._error(row, exc)
        row["session_id"] = protocol.session_of(request.headers, body)
        row["stream"] = int(bool(body.get("stream"))) if endpoint == "messages" else None
        local = self.config.upstream is None or (
            not self.config.shadow and session_point(routing_key(row["session_id"], body)) < self.current_share()
        )
        if not local:
            row["route"] = "shadow" if self.config.shadow and endpoint == "messages" else "upstream"
            if protocol.strip_local_thinking(body):
                raw = json.dumps(body).encode()
            return await self._forward(request, raw, row, shadow_body=body if row["route"] == "shadow" else None)
        row["route"] = "local"
        try:
            protocol.validate(body, count_only=endpoint == "count_tokens")
        except ApiError as exc:
            return self._error(row, exc)
        if endpoint == "count_tokens":
            return await self._count_locally(body, row)
        return await self._answer_locally(request, body, row)

    # -- pieces ---------------------------------------------------------------------------------

    def _row(self, request, endpoint: str) -> dict[str, Any]:
        from .store import now_iso

        return {
            "received_at": now_iso(),
            "endpoint": endpoint,
            "agent_id": request.headers.get("x-claude-code-agent-id"),
            "status": 0,
            "outcome": "ok",
            "fell_back": 0,
            "_t0": time.perf_counter(),
        }

    def _finish(self, row: dict[str, Any]) -> None:
        t0 = row.pop("_t0", None)
        if t0 is not None:
            row["latency_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        self.log.write(row)

    def _mark_first_token(self, row: dict[str, Any]) -> None:
        if row.get("first_token_ms") is None and "_t0" in row:
            row["first_token_ms"] = round(1000 * (time.perf_counter() - row["_t0"]), 2)

    def _error(self, row: dict[str, Any], exc: ApiError):
        from starlette.responses import JSONResponse

        row["status"] = exc.status
        row["outcome"] = {
            400: "invalid_request",
            404: "not_found",
            413: "too_large",
        }.get(exc.status, "upstream_error" if exc.status in (502, 504) else "local_error")
        row["error"] = exc.message
        self._finish(row)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def _read_body(self, request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        too_large = ApiError("request_too_large", f"the request body is larger than {limit} bytes")
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _deadline(self, row) -> float | None:
        if self.config.timeout is None:
            return None
        elapsed = time.perf_counter() - row["_t0"]
        return asyncio.get_running_loop().time() + max(0.0, self.config.timeout - elapsed)

    def _prepare(self, body: dict):
        """A function that renders the request and tokenizes it (run in the model's worker thread)."""
        model, config = self.model, self.config

        def prepare():
            budget = model.n_ctx - min(config.max_new_tokens, body.get("max_tokens") or config.max_new_tokens)
            example = render.request_to_example(
                body, model.spec.build_options, counter=model.counter, max_tokens=budget - 16
            )
            ids = model.encode(render.render_prompt(model.tokenizer, example, model.counter.family))
            room = model.n_ctx - len(ids)
            if room < 1:
                raise render.TooLong(f"the prompt takes {len(ids)} tokens of the local model's {model.n_ctx}")
            max_new = min(body.get("max_tokens") or config.max_new_tokens, config.max_new_tokens, room)
            return ids, max_new

        return prepare

    def _generation(self, body: dict):
        from .model import Generation

        return Generation(
            self.model,
            self._prepare(body),
            temperature=body.get("temperature"),
            stop_sequences=tuple(body.get("stop_sequences") or ()),
        )

    async def _count_locally(self, body: dict, row):
        from starlette.responses import JSONResponse

        def count():
            with self.model.lock:
                example = render.request_to_example(body, self.model.spec.build_options, counter=self.model.counter)
                return len(
                    self.model.encode(render.render_prompt(self.model.tokenizer, example, self.model.counter.family))
                )

        try:
            n = await asyncio.to_thread(count)
        except render.TooLong as exc:
            return self._error(row, ApiError("invalid_request_error", str(exc)))
        row.update(status=200, input_tokens=n)
        self._finish(row)
        return JSONResponse({"input_tokens": n})

    def _can_fall_back(self) -> bool:
        return self.config.fallback and self.config.upstream is not None

    async def _fall_back(self, request, body: dict, row, reason: str, error: str | None = None):
        row.update(fell_back=1, fallback_reason=reason, error=error)
        protocol.strip_local_thinking(body)
        return await self._forward(request, json.dumps(body).encode(), row)

    async def _answer_locally(self, request, body: dict, row):
        from starlette.responses import JSONResponse, StreamingResponse

        model_name = self.config.model_name or body["model"]
        generation = self._generation(body)
        deadline = self._deadline(row)
        try:
            input_tokens = await generation.started(deadline)
        except render.TooLong as exc:
            if self._can_fall_back():
                return await self._fall_back(request, body, row, "too_long", str(exc))
            return self._error(row, ApiError("invalid_request_error", str(exc)))
        except TimeoutError:
            if self._can_fall_back():
                return await self._fall_back(request, body, row, "timeout")
            return self._error(row, ApiError("overloaded_error", "the local model is busy: try again"))
        except Exception as exc:
            if self._can_fall_back():
                return await self._fall_back(request, body, row, "local_error", repr(exc))
            return self._error(row, ApiError("api_error", f"the local model could not read the request: {exc}"))
        row["input_tokens"] = input_tokens
        thinking = (body.get("thinking") or {}).get("type") != "disabled"

        if body.get("stream") and not self._can_fall_back():
            # Streamed as generated: the first words reach the client while the model writes the rest.
            writer = protocol.EventWriter(model_name, input_tokens)
            answer = AnswerStream(writer, body.get("tools"), thinking)
            return StreamingResponse(
                self._stream(generation, writer, answer, row, deadline),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )

        # Buffered: read whole, so an unusable answer can still be replaced by upstream's.
        timed_out = False
        try:
            text = await generation.complete(deadline)
        except TimeoutError:
            timed_out, text = True, generation.text
        result = generation.result
        if timed_out and self._can_fall_back():
            return await self._fall_back(request, body, row, "timeout")
        if result is not None and result.stop == "error":
            if self._can_fall_back():
                return await self._fall_back(request, body, row, "local_error", result.error)
            return self._error(row, ApiError("api_error", f"the local model failed: {result.error}"))
        reading = render.read_completion(text, body.get("tools"))
        row["parsed"] = int(reading.parsed)
        if not reading.parsed and self._can_fall_back():
            return await self._fall_back(request, body, row, "unparsable", "; ".join(reading.problems))
        if not thinking:
            reading.thinking = None
        stop = "max_tokens" if timed_out else STOP_REASONS.get(result.stop, "end_turn")
        if reading.tool_uses and stop == "end_turn":
            stop = "tool_use"
        output_tokens = result.output_tokens if result else generation.tokens_out
        content = reading.blocks(protocol.SIGNATURE_PREFIX + "local")
        message = protocol.message(model_name, content, stop, input_tokens, output_tokens)
        row.update(
            status=200,
            output_tokens=output_tokens,
            stop_reason=stop,
            tool_calls=len(reading.tool_uses),
            parsed=int(reading.parsed),
        )
        if not body.get("stream"):
            self._mark_first_token(row)
            self._finish(row)
            return JSONResponse(message)
        writer = protocol.EventWriter(model_name, input_tokens)
        return StreamingResponse(
            self._buffered_stream(writer, content, stop, output_tokens, row),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def _stream(self, generation, writer, answer: AnswerStream, row, deadline):
        row["status"] = 200
        timed_out = False
        try:
            yield writer.start()
            try:
                async for piece in generation.pieces(deadline):
                    chunk = answer.feed(piece)
                    if chunk:
                        self._mark_first_token(row)
                        yield chunk
            except TimeoutError:
                timed_out = True
            result = generation.result
            if result is not None and result.stop == "error":
                row.update(outcome="local_error", error=result.error)
                yield writer.error("api_error", "the local model failed while answering")
                return
            stop = "max_tokens" if timed_out else STOP_REASONS.get(result.stop, "end_turn")
            output_tokens = result.output_tokens if result else generation.tokens_out
            tail, reading, stop = answer.finish(stop, output_tokens)
            self._mark_first_token(row)
            yield tail
            row.update(
                output_tokens=output_tokens,
                stop_reason=stop,
                tool_calls=len(reading.tool_uses),
                parsed=int(reading.parsed),
            )
        except BaseException:  # the client left (cancelled, or the send failed): stop the model
            generation.cancel()
            row["outcome"] = "client_closed"
            raise
        finally:
            generation.cancel()
            self._finish(row)

    async def _buffered_stream(self, writer, content, stop, output_tokens, row):
        try:
            yield writer.start()
            for block in content:
                self._mark_first_token(row)
                yield writer.block(block)
            yield writer.finish(stop, output_tokens)
        except BaseException:
            row["outcome"] = "client_closed"
            raise
        finally:
            self._finish(row)

    # -- upstream -------------------------------------------------------------------------------

    async def _forward(self, request, raw: bytes, row, shadow_body: dict | None = None):
        """Send the request upstream as it came (the user's key in its headers) and pass the answer back."""
        import httpx
        from starlette.responses import StreamingResponse

        url = self.config.upstream + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST_HEADERS]
        try:
            upstream = await self.client.send(
                self.client.build_request(request.method, url, headers=headers, content=raw), stream=True
            )
        except httpx.HTTPError as exc:
            # The exception names the URL, never the headers: the key stays out of the log.
            return self._error(row, ApiError("api_error", f"the upstream API failed: {type(exc).__name__}", 502))
        row["status"] = upstream.status_code
        if upstream.status_code >= 400:
            row["outcome"] = "upstream_error"
        is_stream = upstream.headers.get("content-type", "").startswith("text/event-stream")
        reader = protocol.StreamReader() if is_stream else None
        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE_HEADERS}

        async def relay():
            buffered = bytearray()
            finish_here = True
            try:
                async for chunk in upstream.aiter_bytes():
                    self._mark_first_token(row)
                    if reader is not None:
                        reader.feed(chunk)
                    elif len(buffered) < 4 * 1024 * 1024:
                        buffered += chunk
                    yield chunk
            except httpx.HTTPError as exc:
                row.update(outcome="upstream_error", error=f"the upstream API stream broke: {type(exc).__name__}")
                if is_stream:
                    yield protocol.sse("error", protocol.error_body("api_error", "the upstream API stream broke"))
            except BaseException:
                row["outcome"] = "client_closed"
                raise
            finally:
                # The row first: a cancelled relay (the client left) may not get past the await below.
                answer = reader.message if reader is not None else _json_or_none(bytes(buffered))
                if reader is not None and reader.error:
                    row.update(outcome="upstream_error", error=json.dumps(reader.error))
                _usage_into(row, answer)
                if shadow_body is not None and row["outcome"] == "ok" and isinstance(answer, dict):
                    finish_here = not self._start_shadow(shadow_body, answer, row)
                if finish_here:
                    self._finish(row)
                await upstream.aclose()

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=response_headers)

    # -- shadow ---------------------------------------------------------------------------------

    def _start_shadow(self, body: dict, upstream_answer: dict, row) -> bool:
        """Generate locally after the client has its answer; False when the model is still busy with
        an earlier shadow (that request is recorded as not compared)."""
        if self.model is None or any(not t.done() for t in self.shadow_tasks):
            row["shadow_detail"] = {"skipped": "the local model was busy with an earlier comparison"}
            return False
        row["latency_ms"] = round(1000 * (time.perf_counter() - row.pop("_t0")), 2)
        task = asyncio.get_running_loop().create_task(self._shadow(body, upstream_answer, row))
        self.shadow_tasks.add(task)
        task.add_done_callback(self.shadow_tasks.discard)
        return True

    async def _shadow(self, body: dict, upstream_answer: dict, row):
        try:
            generation = self._generation(dict(body, stream=False))
            deadline = None if self.config.timeout is None else asyncio.get_running_loop().time() + self.config.timeout
            await generation.started(deadline)
            text = await generation.complete(deadline)
            row["shadow_agreed"], row["shadow_detail"] = compare_actions(body, upstream_answer, text)
        except TimeoutError:
            row["shadow_detail"] = {"skipped": "the local answer timed out"}
        except render.TooLong as exc:
            row["shadow_detail"] = {"skipped": str(exc)}
        except asyncio.CancelledError:
            row["shadow_detail"] = {"skipped": "the server stopped first"}
            raise
        except Exception as exc:
            row["shadow_detail"] = {"skipped": f"the local model failed: {type(exc).__name__}"}
        finally:
            self.log.write(row)


def compare_actions(body: dict, upstream_answer: dict, local_text: str) -> tuple[int, dict]:
    """Did the local model take the same next action as upstream? Scored as `cra eval` scores a step
    (eval.metrics.score_step): the same kind (a call or an answer) and, for a call, the same first tool."""
    from ..eval.metrics import score_step
    from ..eval.steps import Step

    tools = json.dumps([render.tool_schema(t) for t in body.get("tools") or [] if render.tool_schema(t)])
    target = render.assistant_message(upstream_answer.get("content") or [])
    step = Step("shadow", "shadow", 0, 1, [], target, tools)
    _, rest = render.split_thinking(local_text)
    score = score_step(step, rest)
    agreed = score.stop_correct and score.name_correct is not False
    detail = {
        "upstream": {"kind": score.target_kind, "tools": score.target_names},
        "local": {"kind": score.pred_kind, "tools": score.pred_names},
        "local_parsed": render.read_completion(local_text, body.get("tools")).parsed,
        "arg_similarity": score.arg_similarity,
    }
    return int(agreed), detail


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _usage_into(row: dict, answer) -> None:
    if not isinstance(answer, dict) or answer.get("type") != "message":
        if isinstance(answer, dict) and "input_tokens" in answer:  # count_tokens
            row["input_tokens"] = answer["input_tokens"]
        return
    usage = answer.get("usage") or {}
    row["input_tokens"] = usage.get("input_tokens")
    row["output_tokens"] = usage.get("output_tokens")
    row["stop_reason"] = answer.get("stop_reason")
    row["tool_calls"] = sum(
        1 for b in answer.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_use"
    )


def build(config: ServeConfig, model, log, share=None):
    """The ASGI app for `cra serve` (and for tests, which drive it in-process)."""
    if model is None and (config.upstream is None or config.share > 0 or config.shadow or config.fallback):
        raise StageError("a local model is needed to answer locally")
    return Server(config, model, log, share)
