"""Turns: one user prompt and everything until the next one, per session (and per subagent).

Rebuilt from `messages` whenever a stream got new messages. Rows are updated in place keyed by
(session_id, agent_id, turn_index), so `turns.id` stays stable for the tables that point at it.
"""

import json

from .normalize import INTERRUPT_MARK, LOCAL_OUTPUT_PREFIXES, SYNTHETIC_PREFIXES

_HEAD = 300  # characters of a user message's text enough to classify it


def _classify_user(row):
    """'prompt', 'synthetic' (a prompt not typed by the user), 'interrupt', or None (part of a turn)."""
    head = row["head"]
    if row["tool_result_ids"] or row["is_meta"] or row["is_compact_summary"] or head is None:
        return "interrupt" if head and head.startswith(INTERRUPT_MARK) else None
    if head.startswith(INTERRUPT_MARK):
        return "interrupt"
    if head.startswith(LOCAL_OUTPUT_PREFIXES):
        return None
    if head.lstrip().startswith(SYNTHETIC_PREFIXES):
        return "synthetic"
    return "prompt"


def _ms_between(a, b):
    from datetime import datetime

    try:
        ta = datetime.fromisoformat(a.replace("Z", "+00:00"))
        tb = datetime.fromisoformat(b.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return int(round((tb - ta).total_seconds() * 1000))


def rebuild_turns(con, session_id, agent_id):
    """Recompute the turns of one stream; link messages and tool_calls to them. Returns the count.

    Everything is recomputed from the stream's messages (one query), but only what changed is
    written: a stream that grew by a few lines rewrites its last turn, not all of them."""
    cols = (
        "uuid, role, timestamp, text, json_array_length(tool_use_ids) AS tool_uses, tool_result_ids, is_meta,"
        " is_compact_summary, prompt_id,"
        " api_message_id, model, stop_reason, input_tokens, output_tokens, cache_read_tokens,"
        " cache_creation_tokens, is_api_error, line_id"
    )
    where = "session_id = ? AND agent_id IS ?"
    if agent_id is None:
        where += " AND is_sidechain = 0"  # 1.0.x kept Task subagents inline, marked as sidechain
    cur = con.execute("SELECT %s FROM messages WHERE %s ORDER BY line_id" % (cols, where), (session_id, agent_id))
    names = [d[0] for d in cur.description]
    turns = []
    current = None
    for values in cur:
        row = dict(zip(names, values))
        text = row["text"]
        row["head"] = None if text is None else text[:_HEAD]
        if row["role"] == "user":
            kind = _classify_user(row)
            if kind in ("prompt", "synthetic"):
                current = {"prompt": row, "synthetic": kind == "synthetic", "rows": [], "interrupted": False}
                turns.append(current)
            elif kind == "interrupt" and current is not None:
                current["interrupted"] = True
        if current is not None:
            current["rows"].append(row)
    built = [_summarise(t) for t in turns]
    _reconcile_with_stop(con, session_id, agent_id, built)
    _write(con, session_id, agent_id, built, where)
    if agent_id is None:
        _fill_session(con, session_id)
    return len(built)


def _summarise(t):
    rows = t["rows"]
    prompt = t["prompt"]
    assistants = [r for r in rows if r["role"] == "assistant"]
    usage: dict[str, list[int]] = {}
    tool_calls = 0
    for r in assistants:
        tool_calls += r["tool_uses"] or 0
        key = r["api_message_id"] or r["uuid"]
        u = usage.setdefault(key, [0, 0, 0, 0])
        for i, name in enumerate(("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")):
            # Each block of a streamed response repeats (or grows) the usage: count it once, the largest.
            u[i] = max(u[i], r[name] or 0)
    final_answer = None
    outcome = "incomplete"
    model = None
    if assistants:
        last = assistants[-1]
        real = [r for r in assistants if r["model"] and r["model"] != "<synthetic>"]
        model = real[-1]["model"] if real else last["model"]
        group = [r for r in assistants if last["api_message_id"] and r["api_message_id"] == last["api_message_id"]] or [
            last
        ]
        if not any(r["tool_uses"] for r in group):
            final_answer = "\n".join(r["text"] for r in group if r["text"] is not None) or None
            outcome = "error" if last["is_api_error"] else "completed"
    if t["interrupted"]:
        outcome = "interrupted"
    elif not assistants and (
        (prompt["head"] or "").lstrip().startswith(("<command-name>", "<command-message>"))
        or any((r["head"] or "").startswith(LOCAL_OUTPUT_PREFIXES) for r in rows)
    ):
        outcome = "completed"  # a local command (/compact, /model ...): answered by Claude Code itself
    prompt_text = prompt["text"]
    started, ended = prompt["timestamp"], rows[-1]["timestamp"]
    totals = [sum(u[i] for u in usage.values()) for i in range(4)]
    return {
        "prompt_id": prompt["prompt_id"],
        "prompt_uuid": prompt["uuid"],
        "prompt_text": prompt_text,
        "started_at": started,
        "ended_at": ended,
        "final_answer": final_answer,
        "final_answer_source": "transcript" if final_answer is not None else None,
        "tool_call_count": tool_calls,
        "duration_ms": _ms_between(started, ended) if started and ended else None,
        "input_tokens": totals[0] if usage else None,
        "output_tokens": totals[1] if usage else None,
        "cache_read_tokens": totals[2] if usage else None,
        "cache_creation_tokens": totals[3] if usage else None,
        "model": model,
        "outcome": outcome,
        "is_synthetic": int(t["synthetic"]),
        "message_count": len(rows),
        "_first_line": rows[0]["line_id"],
        "_last_line": rows[-1]["line_id"],
    }


def _reconcile_with_stop(con, session_id, agent_id, built):
    """Stop fires before the client flushes the final message: until the transcript has it, the Stop
    payload's last_assistant_message is the turn's final answer."""
    pending = [t for t in built if t["final_answer"] is None and t["outcome"] != "interrupted"]
    if not pending:
        return
    if agent_id is None:
        events = con.execute(
            "SELECT received_at, prompt_id, payload FROM events WHERE session_id = ? AND hook_event_name = 'Stop'"
            " AND agent_id IS NULL ORDER BY id",
            (session_id,),
        ).fetchall()
    else:
        events = con.execute(
            "SELECT received_at, prompt_id, payload FROM events WHERE session_id = ?"
            " AND hook_event_name = 'SubagentStop' AND agent_id = ? ORDER BY id",
            (session_id, agent_id),
        ).fetchall()
    if not events:
        return
    starts = [t["started_at"] or "" for t in built]
    for t in pending:
        i = built.index(t)
        next_start = starts[i + 1] if i + 1 < len(built) else None
        for received_at, prompt_id, payload in events:
            if prompt_id and t["prompt_id"] and agent_id is None:
                match = prompt_id == t["prompt_id"]
            else:
                match = received_at >= (t["started_at"] or "") and (next_start is None or received_at < next_start)
            if not match:
                continue
            try:
                message = json.loads(payload).get("last_assistant_message")
            except (ValueError, AttributeError):
                message = None
            if isinstance(message, str) and message:
                t["final_answer"] = message
                t["final_answer_source"] = "stop_hook"
                t["outcome"] = "completed"
                t["ended_at"] = max(t["ended_at"] or "", received_at)
                t["duration_ms"] = _ms_between(t["started_at"], t["ended_at"]) if t["started_at"] else None


_FIELDS = (
    "prompt_id",
    "prompt_uuid",
    "prompt_text",
    "started_at",
    "ended_at",
    "final_answer",
    "final_answer_source",
    "tool_call_count",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "model",
    "outcome",
    "is_synthetic",
    "message_count",
)


def _write(con, session_id, agent_id, built, where):
    existing = {
        r[0]: (r[1], r[2:])
        for r in con.execute(
            "SELECT turn_index, id, %s FROM turns WHERE session_id = ? AND agent_id IS ?" % ", ".join(_FIELDS),
            (session_id, agent_id),
        )
    }
    updates, inserts = [], []
    for index, t in enumerate(built):
        values = tuple(t[f] for f in _FIELDS)
        if index in existing:
            t["id"], old = existing[index]
            if old != values:  # unchanged turns are not rewritten (nor re-indexed for search)
                updates.append(values + (t["id"],))
        else:
            inserts.append((session_id, agent_id, index) + values)
    if updates:
        con.executemany("UPDATE turns SET %s WHERE id = ?" % ", ".join("%s = ?" % f for f in _FIELDS), updates)
    if inserts:
        con.executemany(
            "INSERT INTO turns (session_id, agent_id, turn_index, %s) VALUES (?,?,?,%s)"
            % (", ".join(_FIELDS), ",".join("?" * len(_FIELDS))),
            inserts,
        )
        ids = dict(
            con.execute(
                "SELECT turn_index, id FROM turns WHERE session_id = ? AND agent_id IS ? AND turn_index >= ?",
                (session_id, agent_id, inserts[0][2]),
            ).fetchall()
        )
        for _, _, index, *_ in inserts:
            built[index]["id"] = ids[index]
    # A turn is a contiguous run of its stream's lines.
    con.executemany(
        "UPDATE messages SET turn_id = ? WHERE %s AND line_id BETWEEN ? AND ? AND turn_id IS NOT ?" % where,
        [(t["id"], session_id, agent_id, t["_first_line"], t["_last_line"], t["id"]) for t in built],
    )
    if len(existing) > len(built):
        con.execute(
            "DELETE FROM turns WHERE session_id = ? AND agent_id IS ? AND turn_index >= ?",
            (session_id, agent_id, len(built)),
        )
    # Only rows whose turn changes are rewritten (a call's row can hold a whole file).
    con.execute(
        "UPDATE tool_calls SET turn_id = (SELECT turn_id FROM messages WHERE uuid = tool_calls.message_uuid)"
        " WHERE session_id = ? AND agent_id IS ? AND message_uuid IS NOT NULL"
        " AND turn_id IS NOT (SELECT turn_id FROM messages WHERE uuid = tool_calls.message_uuid)",
        (session_id, agent_id),
    )
    # Calls only a hook saw (no transcript message yet): by prompt id.
    con.execute(
        "UPDATE tool_calls SET turn_id = (SELECT id FROM turns WHERE turns.session_id = tool_calls.session_id"
        " AND turns.agent_id IS tool_calls.agent_id AND turns.prompt_id = tool_calls.prompt_id ORDER BY turn_index"
        " LIMIT 1) WHERE session_id = ? AND agent_id IS ? AND message_uuid IS NULL AND prompt_id IS NOT NULL"
        " AND turn_id IS NOT (SELECT id FROM turns WHERE turns.session_id = tool_calls.session_id"
        " AND turns.agent_id IS tool_calls.agent_id AND turns.prompt_id = tool_calls.prompt_id ORDER BY turn_index"
        " LIMIT 1)",
        (session_id, agent_id),
    )


def _fill_session(con, session_id):
    """Sessions known only from a transcript (imported history) get a sessions row; hook-captured
    ones get what only the transcript knows (client version)."""
    row = con.execute(
        "SELECT min(timestamp), max(timestamp), max(version), min(path),"
        " (SELECT cwd FROM messages WHERE session_id = ?1 AND cwd IS NOT NULL ORDER BY line_id LIMIT 1),"
        " (SELECT model FROM messages WHERE session_id = ?1 AND model IS NOT NULL AND model != '<synthetic>'"
        "  ORDER BY line_id DESC LIMIT 1)"
        " FROM messages WHERE session_id = ?1 AND agent_id IS NULL",
        (session_id,),
    ).fetchone()
    first, last, version, path, cwd, model = row
    if first is None:
        return
    con.execute(
        "INSERT INTO sessions (id, cwd, project_dir, model, started_at, transcript_path, client_version,"
        " first_event_at, last_event_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
        " cwd = coalesce(sessions.cwd, excluded.cwd),"
        " project_dir = coalesce(sessions.project_dir, excluded.project_dir),"
        " model = coalesce(sessions.model, excluded.model),"
        " started_at = coalesce(sessions.started_at, excluded.started_at),"
        " transcript_path = coalesce(sessions.transcript_path, excluded.transcript_path),"
        " client_version = excluded.client_version,"
        " first_event_at = min(coalesce(sessions.first_event_at, excluded.first_event_at), excluded.first_event_at),"
        " last_event_at = max(coalesce(sessions.last_event_at, excluded.last_event_at), excluded.last_event_at)",
        (session_id, cwd, cwd, model, first, path, version, first, last),
    )
