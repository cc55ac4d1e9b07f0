"""Reading turns out of the database and turning each into a chat in the OpenAI message format.

Streams: turns come from one cursor ordered by session (the unique index on turns makes that an
index walk), and each turn's messages and tool calls are fetched by indexed lookups, so memory holds
one session's schemas and one turn at a time, whatever the size of the database.

A turn becomes `[user, assistant(text, tool_calls, reasoning), tool, ..., assistant(final answer)]`:
- content blocks of one API response (each its own transcript entry, sharing `api_message_id`) are
  one assistant message;
- each `tool_result` becomes a `tool` message right after the assistant message that made the call,
  with the text the model saw; calls only the hooks saw (no transcript) fall back to the call's
  `response_text` (the view tool_call_results, where every reader gets a call's result), then the error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .filters import TurnFacts
from .qualifying import turn_facts

NO_RESULT = "(no result was recorded for this call)"


@dataclass
class TurnData:
    id: int
    session_id: str
    agent_id: str | None
    turn_index: int
    prompt_text: str
    final_answer: str | None
    outcome: str | None
    is_synthetic: bool
    cwd: str | None
    messages: list  # chat messages (no system), see turn_chat
    calls: list  # [(tool_name, status, tool_use_id, tool_input dict, error)] in order
    tool_call_count: int
    source: str = "transcript"  # transcript | hooks | bootstrap | openai-trace (sessions.source of another agent)
    extra: dict = field(default_factory=dict)

    def facts(self) -> TurnFacts:
        calls = [(name, status, tool_input) for name, status, _, tool_input, _ in self.calls]
        return turn_facts(self.tool_call_count, self.final_answer, self.outcome, calls)


def table_exists(db, name: str) -> bool:
    return bool(db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [name]).fetchone())


def _loads(text, default):
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def result_text(content) -> str:
    """A tool_result's content as the model saw it (a string, or text/image blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(block.get("text") or "")
                elif block.get("type") == "image":
                    parts.append("[image]")
                elif block.get("type") == "tool_reference":
                    parts.append("[tool loaded: %s]" % block.get("tool_name", "?"))
                else:
                    parts.append(json.dumps(block, ensure_ascii=False))
            else:
                parts.append(str(block))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def _hook_result_text(call: dict) -> str:
    if call.get("response_text"):
        return call["response_text"]
    if call.get("error"):
        return call["error"]
    resp = _loads(call.get("tool_response"), None)
    if isinstance(resp, dict):
        # The shapes of PostToolUse's tool_response for the common tools (docs/claude-code-hooks.md).
        if "stdout" in resp:
            return "\n".join(x for x in (resp.get("stdout"), resp.get("stderr")) if x)
        if isinstance(resp.get("file"), dict) and "content" in resp["file"]:
            return resp["file"]["content"]
        if "filenames" in resp:
            return resp.get("content") or "\n".join(resp["filenames"])
    if resp is not None:
        return resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
    return NO_RESULT


def turn_chat(
    message_rows: list[dict], call_rows: list[dict], prompt_text: str, final_answer: str | None, thinking: bool = True
) -> list[dict]:
    """The turn as chat messages (user first, no system). See the module docstring."""
    chat: list[dict] = [{"role": "user", "content": prompt_text or ""}]
    calls_by_id = {c["tool_use_id"]: c for c in call_rows}
    steps: list[dict] = []  # {"api": id, "text": [], "thinking": [], "calls": [], "results": {}}
    owner: dict[str | None, dict] = {}  # tool_use_id -> step

    for row in message_rows:
        if row.get("is_meta") or row.get("is_compact_summary") or row.get("is_api_error"):
            continue
        blocks = _loads(row.get("content"), [])
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        if row["role"] == "assistant":
            api_id = row.get("api_message_id")
            if steps and api_id and steps[-1]["api"] == api_id:
                step = steps[-1]
            else:
                step = {"api": api_id, "text": [], "thinking": [], "calls": [], "results": {}}
                steps.append(step)
            for b in blocks:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "text" and (b.get("text") or "").strip():
                    step["text"].append(b["text"])
                elif b.get("type") == "thinking" and (b.get("thinking") or "").strip():
                    step["thinking"].append(b["thinking"])
                elif b.get("type") == "tool_use":
                    step["calls"].append((b.get("id"), b.get("name"), b.get("input") or {}))
                    owner[b.get("id")] = step
        else:
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    called_in = owner.get(b.get("tool_use_id"))
                    if called_in is not None:
                        called_in["results"][b.get("tool_use_id")] = result_text(b.get("content"))

    if not steps and call_rows:
        # Hook-only turn (no transcript): one assistant step per recorded call, in order.
        for c in call_rows:
            step = {"api": None, "text": [], "thinking": [], "calls": [], "results": {}}
            step["calls"].append((c["tool_use_id"], c["tool_name"], _loads(c.get("tool_input"), {})))
            step["results"][c["tool_use_id"]] = _hook_result_text(c)
            steps.append(step)

    for step in steps:
        msg: dict = {"role": "assistant", "content": "\n\n".join(step["text"])}
        if thinking and step["thinking"]:
            msg["reasoning"] = "\n\n".join(step["thinking"])
        if step["calls"]:
            msg["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(inp, ensure_ascii=False)},
                }
                for cid, name, inp in step["calls"]
            ]
        elif not msg["content"] and "reasoning" not in msg:
            continue
        chat.append(msg)
        for cid, name, _ in step["calls"]:
            if cid in step["results"]:
                text = step["results"][cid]
            elif cid in calls_by_id:
                text = _hook_result_text(calls_by_id[cid])
            else:
                text = NO_RESULT
            chat.append({"role": "tool", "tool_call_id": cid, "name": name, "content": text})

    last = chat[-1]
    ends_with_answer = last["role"] == "assistant" and not last.get("tool_calls") and last["content"]
    if not ends_with_answer and final_answer:
        # The transcript lacked the final message (Stop fires before it is flushed): the Stop hook's copy.
        chat.append({"role": "assistant", "content": final_answer})
    return chat


class TurnReader:
    """Streams TurnData from the database, one session at a time."""

    def __init__(self, db, thinking: bool = True, include_subagents: bool = True):
        if not table_exists(db, "turns"):
            raise LookupError("no turns table")
        self.db = db
        self.thinking = thinking
        self.include_subagents = include_subagents
        self.has_messages = table_exists(db, "messages")
        self.has_shapes = table_exists(db, "api_shapes")

    def count(self) -> int:
        where = "" if self.include_subagents else " WHERE agent_id IS NULL"
        return self.db.execute("SELECT count(*) FROM turns" + where).fetchone()[0]

    def session_tools(self, session_id: str) -> list[str]:
        if not self.has_shapes:
            return []
        return [
            r[0]
            for r in self.db.execute(
                "SELECT tools FROM api_shapes WHERE session_id = ? AND tools IS NOT NULL ORDER BY timestamp",
                [session_id],
            )
        ]

    def session_system(self, session_id: str) -> str | None:
        if not self.has_shapes:
            return None
        row = self.db.execute(
            "SELECT system FROM api_shapes WHERE session_id = ? AND system IS NOT NULL ORDER BY timestamp LIMIT 1",
            [session_id],
        ).fetchone()
        return row[0] if row else None

    def __iter__(self):
        where = "" if self.include_subagents else "WHERE t.agent_id IS NULL"
        cursor = self.db.conn.execute(
            f"""SELECT t.id, t.session_id, t.agent_id, t.turn_index, t.prompt_text, t.final_answer,
                       t.outcome, t.is_synthetic, t.tool_call_count, s.cwd, s.source AS session_source
                FROM turns t LEFT JOIN sessions s ON s.id = t.session_id {where}
                ORDER BY t.session_id, coalesce(t.agent_id, ''), t.turn_index"""
        )
        cols = [d[0] for d in cursor.description]
        for values in cursor:
            t = dict(zip(cols, values))
            yield self.load(t)

    def load(self, t: dict) -> TurnData:
        call_rows = self._rows(
            "SELECT tool_use_id, tool_name, tool_input, tool_response, response_text, status, error "
            "FROM tool_call_results WHERE turn_id = ? ORDER BY seq",
            [t["id"]],
        )
        message_rows = []
        if self.has_messages:
            message_rows = self._rows(
                "SELECT role, content, api_message_id, is_meta, is_compact_summary, is_api_error, cwd "
                "FROM messages WHERE turn_id = ? ORDER BY entry_seq",
                [t["id"]],
            )
        chat = turn_chat(message_rows, call_rows, t["prompt_text"], t["final_answer"], self.thinking)
        # Call order and statuses: tool_calls when recorded, else the chat's own calls.
        calls = [
            (c["tool_name"], c["status"], c["tool_use_id"], _loads(c["tool_input"], {}), c["error"]) for c in call_rows
        ]
        if not calls:
            calls = [
                (tc["function"]["name"], "success", tc["id"], _loads(tc["function"]["arguments"], {}), None)
                for m in chat
                for tc in m.get("tool_calls", [])
            ]
        cwd = next((m["cwd"] for m in message_rows if m.get("cwd")), None) or t.get("cwd")
        return TurnData(
            id=t["id"],
            session_id=t["session_id"],
            agent_id=t["agent_id"],
            turn_index=t["turn_index"],
            prompt_text=t["prompt_text"] or "",
            final_answer=t["final_answer"],
            outcome=t["outcome"],
            is_synthetic=bool(t["is_synthetic"]),
            cwd=cwd,
            messages=chat,
            calls=calls,
            tool_call_count=max(t["tool_call_count"] or 0, len(calls)),
            source=(
                t["session_source"]
                if t.get("session_source") not in (None, "claude-code")
                else ("transcript" if message_rows else "hooks")
            ),
        )

    def _rows(self, sql, params):
        cur = self.db.conn.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur]
