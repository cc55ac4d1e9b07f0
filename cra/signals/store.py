"""Keep the `signals` table current: read turns, extract, write rows. Incremental: a turn is
recomputed only when it has no row yet, or its input key changed (new messages or tool calls,
a different outcome, or a different config / extraction version).
"""

import hashlib
import json
from dataclasses import dataclass

from claude_hooks.capture import now_iso

from ..jsonl import json_object
from .config import SignalConfig
from .extract import Message, ToolCall, Turn, extract

# One cheap row per turn whose digest changes whenever anything extract() reads changes.
_KEY_SQL = """
SELECT t.id, t.session_id,
  coalesce(t.ended_at, '') || '|' || coalesce(t.outcome, '') || '|' || t.tool_call_count || '|' ||
  t.message_count || '|' || length(coalesce(t.final_answer, '')) || '|' ||
  length(coalesce(t.prompt_text, '')) || '|' || coalesce(t.prompt_uuid, '') || '|' ||
  (SELECT count(*) || ':' || coalesce(group_concat(tool_use_id || '=' || status || '@' ||
          coalesce(batch_id, '') || '#' || coalesce(message_uuid, ''), ','), '')
     FROM tool_calls tc WHERE tc.turn_id = t.id) || '|' ||
  (SELECT count(*) || ':' || coalesce(sum(length(text)), 0) || ':' || coalesce(sum(length(thinking)), 0)
          || ':' || coalesce(max(line_id), 0)
     FROM messages m WHERE m.turn_id = t.id AND m.role = 'assistant')
FROM turns t
"""


@dataclass
class UpdateResult:
    computed: int = 0
    unchanged: int = 0
    removed: int = 0


def input_keys(db, config: SignalConfig, session_id: str | None = None) -> dict:
    """turn id -> (session id, input key)."""
    sql, args = _KEY_SQL, []
    if session_id:
        sql += " WHERE t.session_id = ?"
        args.append(session_id)
    fp = config.fingerprint()
    return {
        row[0]: (row[1], fp + ":" + hashlib.sha1(row[2].encode("utf-8", "replace")).hexdigest()[:20])
        for row in db.execute(sql, args)
    }


def load_turn(db, turn_id: int) -> Turn:
    """The plain-data turn extract() works on, read from turns, messages and tool_calls."""
    t = db.execute(
        "SELECT id, agent_id, prompt_text, prompt_uuid, final_answer, outcome FROM turns WHERE id = ?",
        [turn_id],
    ).fetchone()
    if t is None:
        raise KeyError(turn_id)
    messages = [
        Message(uuid=uuid, text=text or "", thinking=thinking or "", tool_use_ids=_json_list(ids))
        for uuid, text, thinking, ids in db.execute(
            "SELECT uuid, text, thinking, tool_use_ids FROM messages WHERE turn_id = ? AND role = 'assistant'"
            " ORDER BY coalesce(entry_seq, line_id), line_id",
            [turn_id],
        )
    ]
    calls = []
    # Calls of the turn's own thread: a subagent's calls belong to the subagent's turns.
    for row in db.execute(
        "SELECT tc.tool_use_id, tc.tool_name, tc.tool_input, tc.status, tc.error, tc.batch_id, tc.agent_id,"
        " tc.message_uuid, tc.duration_ms, m.api_message_id"
        " FROM tool_calls tc LEFT JOIN messages m ON m.uuid = tc.message_uuid"
        " WHERE tc.turn_id = ? AND tc.agent_id IS ? ORDER BY tc.seq",
        [turn_id, t[1]],
    ):
        tool_use_id, name, tool_input, status, error, batch_id, agent_id, message_uuid, duration, api_id = row
        # Blocks of one API response were issued together; hook-only calls have their batch event.
        batch = f"m:{api_id}" if api_id else (f"b:{batch_id}" if batch_id is not None else None)
        calls.append(
            ToolCall(
                tool_use_id=tool_use_id,
                name=name or "?",
                input=json_object(tool_input),
                status=status,
                error=error,
                batch=batch,
                agent_id=agent_id,
                message_uuid=message_uuid,
                duration_ms=duration,
            )
        )
    return Turn(
        id=t[0],
        prompt_text=t[2] or "",
        prompt_uuid=t[3],
        messages=messages,
        tool_calls=calls,
        final_answer=t[4],
        outcome=t[5],
    )


def update_signals(
    db, config: SignalConfig | None = None, *, force: bool = False, session_id: str | None = None, batch_size: int = 200
) -> UpdateResult:
    """Compute signals for new and changed turns (all turns with force). Returns the counts."""
    config = config or SignalConfig()
    keys = input_keys(db, config, session_id)
    where, args = ("WHERE session_id = ?", [session_id]) if session_id else ("", [])
    stored = dict(db.execute(f"SELECT turn_id, input_key FROM signals {where}", args).fetchall())
    result = UpdateResult()
    todo = [tid for tid, (_, key) in keys.items() if force or stored.get(tid) != key]
    result.unchanged = len(keys) - len(todo)
    gone = [tid for tid in stored if tid not in keys]
    for start in range(0, len(todo), batch_size):
        rows = []
        for tid in todo[start : start + batch_size]:
            sig = extract(load_turn(db, tid), config)
            session, key = keys[tid]
            rows.append(
                {"turn_id": tid, "session_id": session, "input_key": key, "computed_at": now_iso(), **sig.as_row()}
            )
        with db.atomic():
            db["signals"].upsert_all(rows, pk="turn_id")
        result.computed += len(rows)
    if gone:
        with db.atomic():
            for start in range(0, len(gone), 500):
                chunk = gone[start : start + 500]
                db.execute(f"DELETE FROM signals WHERE turn_id IN ({','.join('?' * len(chunk))})", chunk)
        result.removed = len(gone)
    return result


def _json_list(value):
    try:
        out = json.loads(value) if value else []
    except ValueError:
        return []
    return out if isinstance(out, list) else []
