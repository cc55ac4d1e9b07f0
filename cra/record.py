"""Record a session of any agent or script in cra's trace format (docs/traces.md), so it can be
looked at, filtered and trained on beside Claude Code's sessions.

    from cra import record

    with record.session(agent="my-agent/0.3", model="qwen2.5-coder-7b", tools=TOOLS) as s:
        s.user("Fix the failing test in parser.py")
        (call,) = s.assistant("Let me look.", tool_calls=[("Read", {"file_path": "parser.py"})])
        s.tool(call, open("parser.py").read())
        s.assistant("Fixed: parse() now skips blank lines.")

Each message is appended to the trace file and flushed as it is logged, so a crash loses nothing.
When the session ends the file is imported into the database (`$CRA_HOME/cra.db`, or `database=`)
by the same code as `cra import --format openai-trace`; `database=False` only writes the file.
The file is `$CRA_HOME/traces/<session id>.jsonl` unless `path=` names another.

Standard library only at import time: logging a message costs a JSON line, nothing more.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from typing import Any

from .errors import InputFormatError


def session(
    *,
    agent: str | None = None,
    model: str | None = None,
    tools: list[dict] | None = None,
    system: str | None = None,
    cwd: str | None = None,
    metadata: dict | None = None,
    session_id: str | None = None,
    path: str | os.PathLike | None = None,
    database: str | os.PathLike | bool = True,
) -> Recorder:
    """Start recording a session; use it as a context manager (or call close()).

    agent: name/version of what is being recorded; tools: OpenAI function schemas
    (`{"type": "function", "function": {"name", "description", "parameters"}}`); database: True for
    cra's database, a path for another, False to write the trace file only."""
    return Recorder(
        agent=agent,
        model=model,
        tools=tools,
        system=system,
        cwd=cwd if cwd is not None else os.getcwd(),
        metadata=metadata,
        session_id=session_id or str(uuid.uuid4()),
        path=path,
        database=database,
    )


class Recorder:
    """One session being recorded. Methods return what later calls refer to (tool call ids)."""

    def __init__(self, *, agent, model, tools, system, cwd, metadata, session_id, path, database):
        from claude_hooks.spool import cra_home  # (standard library only, like everything here)

        self.session_id = session_id
        self.database = database
        if path is None:
            path = os.path.join(cra_home(os.environ), "traces", f"{session_id}.jsonl")
        self.path = os.fspath(path)
        self.result = None  # the import's result once closed (when a database is written)
        self._pending_calls: set[str] = set()
        self._closed = False
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._write(
            {
                "type": "session",
                "session_id": session_id,
                "agent": agent,
                "model": model,
                "cwd": cwd,
                "started_at": _now(),
                "system": system,
                "tools": list(tools or []),
                "metadata": dict(metadata or {}),
            }
        )

    # -- messages --------------------------------------------------------------------------------------

    def user(self, content: str) -> str:
        """The user's (or the calling program's) request. Returns the message id."""
        return self.message({"role": "user", "content": _text(content, "content")})

    def assistant(
        self,
        content: str = "",
        *,
        tool_calls: Iterable | None = None,
        reasoning: str | None = None,
        usage: dict | None = None,
        model: str | None = None,
    ) -> list[str]:
        """What the model said: text, and the tool calls it made, each a (name, arguments) pair or an
        OpenAI tool call dict. Returns the calls' ids, for tool()."""
        calls = [_tool_call(c) for c in tool_calls or ()]
        message: dict = {"role": "assistant", "content": _text(content, "content")}
        if reasoning:
            message["reasoning"] = _text(reasoning, "reasoning")
        if calls:
            message["tool_calls"] = calls
        extra: dict[str, Any] = {"usage": usage} if usage else {}
        if model:
            extra["model"] = model
        self.message(message, **extra)
        ids = [c["id"] for c in calls]
        self._pending_calls.update(ids)
        return ids

    def tool(self, call_id: str, content, *, is_error: bool = False, name: str | None = None) -> str:
        """A tool's result for an earlier call (its id from assistant()). Non-text results are JSON."""
        if call_id not in self._pending_calls:
            raise InputFormatError(f"no tool call {call_id!r} is waiting for a result in this session")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
        message: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": text}
        if name:
            message["name"] = name
        if is_error:
            message["is_error"] = True
        self._pending_calls.discard(call_id)
        return self.message(message)

    def message(self, message: dict, **fields) -> str:
        """Any message in the OpenAI shape, as is. Returns its id."""
        if self._closed:
            raise InputFormatError("this session is closed")
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
            raise InputFormatError("a message is a dict with role system, user, assistant or tool")
        message_id = str(uuid.uuid4())
        self._write(
            {
                "type": "message",
                "session_id": self.session_id,
                "id": message_id,
                "timestamp": _now(),
                **fields,
                "message": message,
            }
        )
        return message_id

    # -- the end ---------------------------------------------------------------------------------------

    def close(self, reason: str = "completed"):
        """End the session, and import it into the database unless database=False. Returns the
        import's result (cra.transcripts.importer.ImportResult), or None."""
        if self._closed:
            return self.result
        self._write({"type": "session_end", "session_id": self.session_id, "timestamp": _now(), "reason": reason})
        self._file.close()
        self._closed = True
        if self.database is not False:
            from .db import open_db
            from .transcripts.traces import import_traces

            db = open_db(None if self.database is True else os.fspath(self.database))
            try:
                self.result = import_traces(db.conn, [self.path])
            finally:
                db.conn.close()
            if self.result.errors:
                raise InputFormatError(
                    f"the trace {self.path} was written but not imported: {self.result.errors[0][1]}"
                )
        return self.result

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close("completed" if exc_type is None else f"error: {exc_type.__name__}")
        return False

    def _write(self, line: dict) -> None:
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()


def _text(value, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputFormatError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _tool_call(call) -> dict:
    """(name, arguments) or an OpenAI tool call dict -> the OpenAI tool call, with an id."""
    if isinstance(call, (tuple, list)) and len(call) == 2:
        name, arguments = call
        call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if not isinstance(call, dict):
        raise InputFormatError("a tool call is (name, arguments) or {'function': {'name', 'arguments'}}")
    function: dict = call["function"] if isinstance(call.get("function"), dict) else call
    name, arguments = function.get("name"), function.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise InputFormatError("a tool call needs a name")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InputFormatError(f"the arguments of {name} are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise InputFormatError(f"the arguments of {name} must be an object")
    return {
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)
