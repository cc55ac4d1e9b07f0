"""`cra show`: one session as a readable timeline."""

import json
import re

from ..errors import ConfigError, NotFoundError

INDENT = "    "

# What a terminal would act on instead of print: C0 controls but tab and newline, DEL, C1 controls
# (escape sequences start with ESC or CSI), and the bidirectional overrides that reorder text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` with control characters shown as escapes (ESC as `\\x1b`): a transcript's escape
    sequences never reach the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def prompt_display(text: str | None) -> str:
    """A prompt as the user typed it: slash-command markup becomes `/name args`."""
    if not text:
        return ""
    if "<command-name>" in text:
        import re

        name = re.search(r"<command-name>(.*?)</command-name>", text, re.S)
        args = re.search(r"<command-args>(.*?)</command-args>", text, re.S)
        if name:
            return (name.group(1).strip() + " " + (args.group(1).strip() if args else "")).strip()
    return text


def resolve_session(db, prefix: str) -> str:
    prefix = prefix.strip()
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ids = [
        r[0]
        for r in db.execute(
            "SELECT id FROM sessions WHERE id LIKE ?1 ESCAPE '\\' UNION"
            " SELECT DISTINCT session_id FROM messages WHERE session_id LIKE ?1 ESCAPE '\\' LIMIT 10",
            [like],
        )
    ]
    if not ids:
        raise NotFoundError(f"No session matches {prefix!r}. `cra sessions` lists them.")
    if len(ids) > 1 and prefix not in ids:
        raise ConfigError(
            f"{prefix!r} matches several sessions ({', '.join(i[:12] for i in ids[:5])}...): give more of the id."
        )
    return prefix if prefix in ids else ids[0]


def _clock(ts):
    return (ts or "")[11:19]


def _bounded(text, max_lines, full, width=160):
    if text is None:
        return []
    lines = text.splitlines() or [""]
    if full:
        return lines
    out = [line if len(line) <= width else line[: width - 1] + "…" for line in lines[:max_lines]]
    if len(lines) > max_lines:
        out.append(f"… (+{len(lines) - max_lines} more lines)")
    return out


def input_summary(tool_name, tool_input):
    """The part of a tool's input a reader wants first (the command, the path, the pattern)."""
    try:
        data = json.loads(tool_input) if tool_input else {}
    except ValueError:
        return tool_input or ""
    if not isinstance(data, dict):
        return json.dumps(data)
    for key in ("command", "pattern", "file_path", "path", "url", "query", "description", "prompt"):
        if isinstance(data.get(key), str):
            value = data[key]
            extra = ""
            if key == "pattern" and isinstance(data.get("path"), str):
                extra = f" in {data['path']}"
            return " ".join((value + extra).split())
    return json.dumps(data, ensure_ascii=False)


class _Renderer:
    def __init__(self, db, session_id, full, max_lines, thinking):
        self.db = db
        self.session_id = session_id
        self.full = full
        self.max_lines = max_lines
        self.thinking = thinking
        self.calls = {
            r["tool_use_id"]: r for r in db.query("SELECT * FROM tool_call_results WHERE session_id = ?", [session_id])
        }
        self.agents_by_call: dict[str, list[dict]] = {}
        self.agents = list(db.query("SELECT * FROM subagents WHERE session_id = ? ORDER BY rowid", [session_id]))
        for a in self.agents:
            if a["parent_tool_use_id"]:
                self.agents_by_call.setdefault(a["parent_tool_use_id"], []).append(a)
        self.shown_agents = set()
        self.turns = {r["prompt_uuid"]: r for r in db.query("SELECT * FROM turns WHERE session_id = ?", [session_id])}
        self.compactions = {
            r["summary_uuid"]: r
            for r in db.query(
                "SELECT * FROM compactions WHERE session_id = ? AND summary_uuid IS NOT NULL", [session_id]
            )
        }

    def header(self):
        s = self.db.execute(
            "SELECT id, coalesce(project_dir, cwd), model, client_version, coalesce(started_at, first_event_at),"
            " ended_at, end_reason, source FROM sessions WHERE id = ?",
            [self.session_id],
        ).fetchone()
        if s is None:
            yield f"Session {self.session_id}"
            return
        yield f"Session {s[0]}"
        client = "Claude Code" if s[7] == "claude-code" else f"{s[7]}:"  # (another agent's trace: its name)
        facts = [x for x in (s[1], s[2], f"{client} {s[3]}" if s[3] else None) if x]
        yield "  " + " · ".join(facts)
        n_turns = sum(1 for t in self.turns.values() if t["agent_id"] is None)
        yield (
            f"  started {s[4] or '?'}"
            + (f", ended {s[5]} ({s[6]})" if s[5] else "")
            + f" · {n_turns} turn{'s' if n_turns != 1 else ''} · {len(self.calls)} tool calls"
            + (f" · {len(self.agents)} subagents" if self.agents else "")
        )

    def stream(self, agent_id, depth):
        pad = INDENT * depth
        where = "session_id = ? AND agent_id IS ?" + (" AND is_sidechain = 0" if agent_id is None else "")
        rows = self.db.query(
            f"SELECT uuid, role, timestamp, text, thinking, content, tool_use_ids, tool_result_ids, is_meta,"
            f" is_compact_summary FROM messages WHERE {where} ORDER BY line_id",
            [self.session_id, agent_id],
        )
        for m in rows:
            if m["role"] == "user":
                yield from self.user(m, pad)
            else:
                yield from self.assistant(m, pad, depth)

    def user(self, m, pad):
        if m["is_compact_summary"]:
            c = self.compactions.get(m["uuid"])
            how = f" ({c['trigger']}, {c['pre_tokens']} tokens before)" if c and c["trigger"] else ""
            yield ""
            yield f"{pad}══ conversation compacted{how} ══"
            return
        turn = self.turns.get(m["uuid"])
        if turn is None:
            return  # tool results (shown with their call), injected context, local command output
        yield ""
        # The id is what `cra signals --show` takes.
        facts = [f"turn {turn['turn_index'] + 1} (id {turn['id']})", _clock(turn["started_at"]), turn["outcome"]]
        if turn["duration_ms"] is not None:
            facts.append(f"{turn['duration_ms'] / 1000:.1f} s")
        if turn["input_tokens"] is not None:
            facts.append(f"{turn['input_tokens']} in / {turn['output_tokens']} out tokens")
        if turn["is_synthetic"]:
            facts.append("notification")
        yield f"{pad}── " + " · ".join(x for x in facts if x)
        text = prompt_display(m["text"])
        for i, line in enumerate(_bounded(text, max(self.max_lines, 20), self.full)):
            yield f"{pad}{'> ' if i == 0 else '  '}{line}"
        if turn["final_answer_source"] == "stop_hook":
            yield f"{pad}  (final answer from the Stop hook; not in the transcript yet)"
            for line in _bounded(turn["final_answer"], self.max_lines, self.full):
                yield f"{pad}  {line}"

    def assistant(self, m, pad, depth):
        if self.thinking and m["thinking"]:
            for line in _bounded(m["thinking"], self.max_lines, self.full):
                yield f"{pad}  ∴ {line}"
        if m["text"] and m["text"].strip():
            for line in m["text"].strip().splitlines():
                yield f"{pad}  {line}"
        for tool_use_id in json.loads(m["tool_use_ids"] or "[]"):
            yield from self.call(tool_use_id, pad, depth)

    def call(self, tool_use_id, pad, depth):
        c = self.calls.get(tool_use_id)
        if c is None:
            yield f"{pad}  ⏺ (tool call {tool_use_id}: no record)"
            return
        facts = [c["status"]]
        if c["duration_ms"] is not None:
            facts.append(f"{c['duration_ms']} ms")
        summary = input_summary(c["tool_name"], c["tool_input"])
        if not self.full and len(summary) > 120:
            summary = summary[:119] + "…"
        yield f"{pad}  ⏺ {c['tool_name']}({summary})  [{', '.join(facts)}]"
        if self.full and c["tool_input"]:
            for line in json.dumps(json.loads(c["tool_input"]), indent=2, ensure_ascii=False).splitlines():
                yield f"{pad}    {line}"
        output = c["response_text"]
        if output is None and c["tool_response"] is not None:
            output = c["tool_response"]
        if output is None and c["error"]:
            output = c["error"]
        for line in _bounded(output, self.max_lines, self.full):
            yield f"{pad}    │ {line}"
        for agent in self.agents_by_call.get(tool_use_id, []):
            self.shown_agents.add(agent["agent_id"])
            kind = agent["agent_type"] or "subagent"
            yield f"{pad}    ┌ subagent {agent['agent_id']} ({kind})" + (
                f": {agent['description']}" if agent["description"] else ""
            )
            yield from self.stream(agent["agent_id"], depth + 1)
            yield f"{pad}    └ end of subagent {agent['agent_id']}"

    def orphans(self):
        for agent in self.agents:
            if agent["agent_id"] not in self.shown_agents:
                yield ""
                kind = agent["agent_type"] or "subagent"
                yield f"┌ subagent {agent['agent_id']} ({kind}), its launching call not recorded"
                yield from self.stream(agent["agent_id"], 1)


def render_session(db, session_id, full=False, max_lines=8, thinking=False):
    r = _Renderer(db, session_id, full, max_lines, thinking)
    yield from r.header()
    yield from r.stream(None, 0)
    yield from r.orphans()
    if not any(True for _ in db.execute("SELECT 1 FROM messages WHERE session_id = ? LIMIT 1", [session_id])):
        # Hook capture only (transcript not read yet or gone): the tool calls in order.
        yield ""
        yield "(no transcript messages recorded; tool calls from the hooks:)"
        for c in db.query("SELECT tool_use_id FROM tool_calls WHERE session_id = ? ORDER BY seq", [session_id]):
            yield from r.call(c["tool_use_id"], "", 0)


def session_data(db, session_id) -> dict:
    """One session as `cra show --json` prints it: the session row, its turns (with the ids
    `cra signals --show` takes) and its tool calls in order, each with the turn it belongs to."""
    session = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    names = [d[0] for d in db.execute("SELECT * FROM sessions LIMIT 0").description]
    turns = db.query(
        "SELECT id, agent_id, turn_index, started_at, ended_at, outcome, duration_ms, tool_call_count,"
        " input_tokens, output_tokens, prompt_text, final_answer FROM turns WHERE session_id = ?"
        " ORDER BY agent_id IS NOT NULL, agent_id, turn_index",
        [session_id],
    )
    calls = db.query(
        "SELECT tool_use_id, turn_id, agent_id, tool_name, tool_input, status, error, duration_ms, pre_at, post_at"
        " FROM tool_calls WHERE session_id = ? ORDER BY seq",
        [session_id],
    )
    return {
        "session": dict(zip(names, session)) if session else {"id": session_id},
        "turns": list(turns),
        "tool_calls": list(calls),
        "subagents": list(db.query("SELECT * FROM subagents WHERE session_id = ? ORDER BY rowid", [session_id])),
    }
