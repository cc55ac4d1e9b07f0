"""Traces from outside Claude Code: `cra import --format openai-trace` (docs/traces.md defines the format;
cra/record.py writes it).

A trace is JSONL: a `session` line (id, agent, model, cwd, system prompt, tools in the OpenAI function
format, free metadata), then one `message` line per message in the dataset's OpenAI shape (user,
assistant with `tool_calls` and `reasoning`, `tool` results), and optionally a `session_end` line.

It goes through the same code path as a Claude Code transcript: `transcript_tail` stores each line
raw, in chunks, from where the last import stopped (so a trace still being appended to can be
imported again); each message is rewritten as the transcript entry Claude Code would have written
for it and handed to the same Normalizer (messages, tool calls and their results, the tool schemas
as a request shape), and turns are rebuilt by the same code. The session row is marked
`source = 'openai-trace'`, so datasets label its examples and eval never takes them for Claude's.

A file that breaks the format fails whole, with the line and what is wrong, and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

from claude_hooks import transcript_tail

from . import importer
from .normalize import loads_bytes

FORMAT = "openai-trace"  # transcript_files.format and sessions.source of imported traces
LINE_TYPES = ("session", "message", "session_end")
ROLES = ("system", "user", "assistant", "tool")
_NAMESPACE = uuid.UUID("5b0c2f4e-8a6d-4f0e-9c39-6d1f2e7a9b10")  # message uuids of lines without an `id`


def import_traces(con, paths, progress=None) -> importer.ImportResult:
    """Import every trace file under `paths` (folders are searched for *.jsonl). A file that cannot be
    read or breaks the format is recorded in result.errors, and the others go on."""
    reader = TraceReader()
    return importer._ingest_all(con, importer.discover(paths), reader.ingest, progress)


class TraceError(ValueError):
    """A trace line that breaks the format (the importer reports it as the file's error)."""


class TraceReader:
    """The `ingest` function `importer._ingest_all` calls per file, and the sessions' state across
    a file's chunks (and files)."""

    def __init__(self):
        self.sessions: dict = {}  # session id -> its session line's fields, and the last message's uuid

    def ingest(self, con, path, normalizer, result, savepoints=True):
        row = con.execute("SELECT format FROM transcript_files WHERE path = ?", (path,)).fetchone()
        if row is not None and row[0] != FORMAT:
            raise TraceError("already imported as a Claude Code transcript, not an openai-trace")
        if not os.path.isfile(path):
            raise OSError("not a file" if os.path.exists(path) else "no such file")
        if row is None:
            with open(path, "rb") as f:
                _check_first_line(f.readline(1 << 20))

        def on_lines(con, path, rows):
            entries, sessions = self._entries(con, rows)
            result.sessions.update(sessions)
            # Not a Claude Code transcript: `cra sync` leaves it alone. Its session, when it holds one.
            known = {
                r[0] for r in con.execute("SELECT DISTINCT session_id FROM transcript_lines WHERE path = ?", (path,))
            }
            con.execute(
                "UPDATE transcript_files SET format = ?, session_id = ? WHERE path = ?",
                (FORMAT, next(iter(known)) if len(known) == 1 else None, path),
            )
            normalizer(con, path, entries)
            result.lines += len(rows)

        n = transcript_tail.tail_file(con, path, on_lines=on_lines, loads_bytes=loads_bytes, savepoints=savepoints)
        result.bytes_read += n
        if n:
            result.files_changed += 1
        return n

    # -- lines -> transcript entries -----------------------------------------------------------------

    def _entries(self, con, rows):
        """The Claude Code transcript entries for a chunk's trace lines (rows: (line id, line number,
        parsed line)), with the stored raw lines given their session and message ids."""
        out, line_keys = [], []
        for line_id, line_no, line in rows:
            where = f"line {line_no + 1}"
            if line is None:
                raise TraceError(f"{where}: not a JSON object")
            kind = line.get("type")
            if kind not in LINE_TYPES:
                raise TraceError(f"{where}: type must be one of {', '.join(LINE_TYPES)}, not {kind!r}")
            if kind == "session":
                session_id = self._session(con, line, where)
                shape = self._shape(line, session_id)
                out.append((line_id, line_no, shape))
                line_keys.append((session_id, None, line_id))
                continue
            session_id = line.get("session_id") or self._only_session(where)
            state = self._state(con, session_id, where)
            if kind == "session_end":
                con.execute(
                    "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
                    (_text(line, "timestamp", where) or _now(), _text(line, "reason", where), session_id),
                )
                out.append((line_id, line_no, None))
                line_keys.append((session_id, None, line_id))
                continue
            entry = self._message(line, state, session_id, line_no, where)
            out.append((line_id, line_no, entry))
            line_keys.append((session_id, entry and entry["uuid"], line_id))
        # transcript_tail named the lines after the file; a trace names its session on each line.
        con.executemany("UPDATE transcript_lines SET session_id = ?, uuid = ? WHERE id = ?", line_keys)
        return out, {k[0] for k in line_keys}

    def _session(self, con, line, where):
        session_id = _text(line, "session_id", where)
        if not session_id:
            raise TraceError(f"{where}: a session line needs a session_id")
        existing = con.execute("SELECT source FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if existing is not None and existing[0] != FORMAT:
            raise TraceError(
                f"{where}: session {session_id} is already a Claude Code session: give the trace its own id"
            )
        if not isinstance(line.get("metadata") or {}, dict):
            raise TraceError(f"{where}: metadata must be an object")
        state = {
            "agent": _text(line, "agent", where),
            "model": _text(line, "model", where),
            "cwd": _text(line, "cwd", where),
            "started_at": _text(line, "started_at", where) or _now(),
            "last_uuid": None,
            "calls": set(),
        }
        self.sessions[session_id] = state
        con.execute(
            "INSERT INTO sessions (id, cwd, project_dir, model, started_at, client_version, first_event_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET source = excluded.source,"
            " cwd = coalesce(excluded.cwd, cwd), model = coalesce(excluded.model, model)",
            (
                session_id,
                state["cwd"],
                state["cwd"],
                state["model"],
                state["started_at"],
                state["agent"],
                state["started_at"],
                FORMAT,
            ),
        )
        return session_id

    def _only_session(self, where):
        if len(self.sessions) == 1:
            return next(iter(self.sessions))
        raise TraceError(f"{where}: no session_id, and the file does not hold exactly one session to default to")

    def _state(self, con, session_id, where):
        if not isinstance(session_id, str):
            raise TraceError(f"{where}: session_id must be a string")
        state = self.sessions.get(session_id)
        if state is None:  # a trace appended to since its last import: the session line was read then
            row = con.execute(
                "SELECT client_version, model, cwd, started_at FROM sessions WHERE id = ? AND source = ?",
                (session_id, FORMAT),
            ).fetchone()
            if row is None:
                raise TraceError(f"{where}: message for session {session_id} before its session line")
            last = con.execute(
                "SELECT uuid FROM messages WHERE session_id = ? ORDER BY line_id DESC LIMIT 1", (session_id,)
            ).fetchone()
            calls = {
                r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls WHERE session_id = ?", (session_id,))
            }
            state = dict(zip(("agent", "model", "cwd", "started_at"), row))
            state.update(last_uuid=last[0] if last else None, calls=calls)
            self.sessions[session_id] = state
        return state

    def _shape(self, line, session_id):
        """The session's system prompt and tools as the `api-request-shape` entry the Normalizer stores."""
        tools = line.get("tools") or []
        if not isinstance(tools, list):
            raise TraceError("a session line's tools must be a list of OpenAI function schemas")
        converted = [_anthropic_tool(t, f"tool {i}") for i, t in enumerate(tools)]
        system = line.get("system")
        if system is None and not converted:
            return None
        shape = {"system": system if isinstance(system, str) else None, "tools": converted}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "type": "api-request-shape",
            "sessionId": session_id,
            "timestamp": self.sessions[session_id]["started_at"],
            "version": self.sessions[session_id]["agent"],
            "shapeHash": "trace-" + digest,
            "shape": shape,
        }

    def _message(self, line, state, session_id, line_no, where):
        message = line.get("message")
        if not isinstance(message, dict):
            raise TraceError(f"{where}: a message line needs a message object")
        role = message.get("role")
        if role not in ROLES:
            raise TraceError(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
        if role == "system":
            return None  # the session line's `system` is what is stored; kept raw here
        uid = line.get("id")
        if uid is not None and not isinstance(uid, str):
            raise TraceError(f"{where}: id must be a string")
        if uid is None:
            seed = f"{session_id}\n{line_no}\n{json.dumps(message, sort_keys=True)}"
            uid = str(uuid.uuid5(_NAMESPACE, seed))
        entry = {
            "uuid": uid,
            "parentUuid": state["last_uuid"],
            "sessionId": session_id,
            "timestamp": _text(line, "timestamp", where) or state["started_at"],
            "cwd": state["cwd"],
            "version": state["agent"],
        }
        state["last_uuid"] = uid
        content = _content_text(message.get("content"), where)
        if role == "user":
            entry.update(type="user", message={"role": "user", "content": content})
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in state["calls"]:
                raise TraceError(f"{where}: a tool message needs the tool_call_id of an earlier assistant tool call")
            result = {"type": "tool_result", "tool_use_id": call_id, "content": content}
            if message.get("is_error"):
                result["is_error"] = True
            entry.update(type="user", message={"role": "user", "content": [result]})
        else:
            blocks = []
            reasoning = message.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                blocks.append({"type": "thinking", "thinking": reasoning})
            if content:
                blocks.append({"type": "text", "text": content})
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise TraceError(f"{where}: tool_calls must be a list")
            for i, call in enumerate(calls):
                block = _tool_use(call, f"{where}, tool call {i}")
                state["calls"].add(block["id"])
                blocks.append(block)
            usage = line.get("usage") or message.get("usage") or {}
            entry.update(
                type="assistant",
                message={
                    "role": "assistant",
                    "id": "trace-" + uid,
                    "model": _text(line, "model", where) or state["model"],
                    "content": blocks,
                    "stop_reason": "tool_use" if calls else "end_turn",
                    "usage": {
                        "input_tokens": usage.get("prompt_tokens", usage.get("input_tokens")),
                        "output_tokens": usage.get("completion_tokens", usage.get("output_tokens")),
                    }
                    if isinstance(usage, dict)
                    else {},
                },
            )
        return entry


def _check_first_line(first):
    try:
        line = json.loads(first)
    except (ValueError, RecursionError):
        raise TraceError("line 1: not JSON (an openai-trace starts with a session line)") from None
    if not isinstance(line, dict) or line.get("type") != "session":
        hint = (
            " (a Claude Code transcript? import it without --format)"
            if isinstance(line, dict) and ("sessionId" in line or "parentUuid" in line)
            else ""
        )
        raise TraceError(f'line 1: an openai-trace starts with a session line ({{"type": "session", ...}}){hint}')


def _text(line, key, where):
    value = line.get(key)
    if value is not None and not isinstance(value, str):
        raise TraceError(f"{where}: {key} must be a string")
    return value


def _content_text(content, where):
    """OpenAI content: a string, null, or a list of parts of which the text ones are kept."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise TraceError(f"{where}: content must be a string or a list of parts")


def _tool_use(call, where):
    if not isinstance(call, dict):
        raise TraceError(f"{where}: must be an object")
    function: dict = call["function"] if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise TraceError(f"{where}: needs a function name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise TraceError(f"{where}: arguments are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise TraceError(f"{where}: arguments must be a JSON object")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise TraceError(f"{where}: needs an id (the tool message answering it names it)")
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def _anthropic_tool(tool, where):
    """An OpenAI function schema as the {name, description, input_schema} a request shape stores
    (the dataset converts it back)."""
    function = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TraceError(f'session line, {where}: a tool is {{"type": "function", "function": {{"name", ...}}}}')
    return {
        "name": function["name"],
        "description": function.get("description") or "",
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
