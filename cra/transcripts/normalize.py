"""Transcript entries (every client version) -> messages, tool_calls links, subagents, compactions,
api_shapes; then turns.

Entry shapes handled (unknown types and fields are left in `transcript_lines.raw`, never an error):
- `user` / `assistant` (1.0.x to 2.1.3xx): one row in `messages` each. Assistant content blocks of one
  API response are separate entries sharing `message.id`. Tool results are `user` entries with
  `tool_result` blocks and, on the main thread, the structured `toolUseResult`.
- `progress` with `data.type == "agent_progress"` (2.1.x before subagent files): a subagent's message,
  nested; it becomes a sidechain message of that agent.
- `system` `compact_boundary` + the following `isCompactSummary` user entry: `compactions`.
  `summary` entries (1.0.x) are kept there too, marked trigger 'summary-entry'.
- `api-request-shape` (2.1.3xx): the system prompt and tool schemas sent to the API: `request_shapes`,
  once per shape, and `session_request_shapes` (both seen through the `api_shapes` view).
"""

import json

from claude_hooks import drain, transcript_tail

try:
    import orjson
except ImportError:  # a dependency, but cra still imports (more slowly) without it
    orjson = None  # type: ignore[assignment]

_safe = drain.safe_text
# Parses a line's bytes without decoding them first (transcript_tail.parse_lines' loads_bytes).
loads_bytes = orjson.loads if orjson is not None else None


def _json(obj):
    """obj as compact JSON (None for None), to bind as CAST(? AS TEXT): orjson's UTF-8 bytes where it
    can take the value (it serialises 7x faster than json's C encoder, and SQLite stores the bytes as
    they are, where text would be decoded here and encoded back by sqlite3); json's text
    (drain.json_text) for lone surrogates and ints past 64 bits."""
    if obj is None:
        return None
    if orjson is not None:
        try:
            return orjson.dumps(obj)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return drain.json_text(obj)


INTERRUPT_MARK = "[Request interrupted by user"
# User entries that are the output of a local command, not something the model answers.
LOCAL_OUTPUT_PREFIXES = ("<local-command-stdout>", "<local-command-stderr>")
SYNTHETIC_PREFIXES = ("<task-notification>",)


def _str(v):
    return v if isinstance(v, str) else None


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def content_blocks(content):
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    return []


def block_text(content):
    """Plain text of a tool_result's content (a string, or a list of text/image blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if isinstance(b, dict):
                if b.get("type") == "text" and isinstance(b.get("text"), str):
                    parts.append(b["text"])
                elif b.get("type"):
                    parts.append("[%s]" % b["type"])
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def result_status(block, entry, text):
    """A tool call's status from its transcript tool_result (for calls no hook saw end)."""
    decision = entry.get("permissionDecision")
    if entry.get("toolDenialKind") or (isinstance(decision, dict) and decision.get("decision") in ("reject", "deny")):
        return "denied"
    tur = entry.get("toolUseResult")
    if isinstance(tur, dict) and tur.get("interrupted") is True:
        return "interrupted"
    if not block.get("is_error"):
        return "success"
    if INTERRUPT_MARK in text[:200]:
        return "interrupted"
    return drain.classify_unfinished(text, False)


_MESSAGE_COLUMNS = (
    "uuid, session_id, agent_id, parent_uuid, is_sidechain, role, path, line_id, entry_seq, timestamp, model,"
    " api_message_id, request_id, content, text, thinking, tool_use_ids, tool_result_ids, input_tokens,"
    " output_tokens, cache_read_tokens, cache_creation_tokens, stop_reason, prompt_id, is_compact_summary,"
    " is_meta, is_api_error, cwd, version"
)
_JSON_COLUMNS = {"content", "tool_use_ids", "tool_result_ids"}  # bound as _json's bytes
_MESSAGES_SQL = "INSERT OR IGNORE INTO messages (%s) VALUES (%s)" % (
    _MESSAGE_COLUMNS,
    ",".join("CAST(? AS TEXT)" if c.strip() in _JSON_COLUMNS else "?" for c in _MESSAGE_COLUMNS.split(",")),
)
_CALL_UPDATE_SQL = (
    "UPDATE tool_calls SET message_uuid = ?, source = CASE WHEN source = 'transcript'"
    " THEN 'transcript' ELSE 'both' END, tool_name = coalesce(tool_name, ?),"
    " tool_input = coalesce(tool_input, CAST(? AS TEXT)), agent_id = coalesce(agent_id, ?),"
    " prompt_id = coalesce(prompt_id, ?) WHERE tool_use_id = ?"
)
_CALL_INSERT_SQL = (
    "INSERT INTO tool_calls (tool_use_id, session_id, agent_id, prompt_id, tool_name, tool_input,"
    " status, seq, cwd, pre_at, message_uuid, source) VALUES (?,?,?,?,?,CAST(? AS TEXT),'pending',?,?,?,?,'transcript')"
)
# A call inserted in this chunk whose result is in the chunk too: one INSERT with the values
# _RESULT_SQL would give a pending row, instead of writing the row twice.
_CALL_INSERT_RESULT_SQL = (
    "INSERT INTO tool_calls (tool_use_id, session_id, agent_id, prompt_id, tool_name, tool_input, seq, cwd,"
    " pre_at, message_uuid, source, result_uuid, status, error, post_at, duration_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, CAST(?6 AS TEXT), ?7, ?8, ?9, ?10, 'transcript', ?11, ?13, ?12, ?14,"
    " CAST(round((julianday(?14) - julianday(?9)) * 86400000) AS INTEGER))"
)
# The result's text and structured form are not copied into the row: `result_uuid` points at the
# message that holds them, and the view tool_call_results (m015) reads them from there. Only a failed
# call's text is kept, as its `error`.
_RESULT_SQL = (
    "UPDATE tool_calls SET result_uuid = coalesce(result_uuid, ?1),"
    " error = CASE WHEN status = 'pending' AND ?3 != 'success' THEN coalesce(error, ?2) ELSE error END,"
    " status = CASE WHEN status = 'pending' THEN ?3 ELSE status END,"
    " post_at = coalesce(post_at, ?4),"
    " duration_ms = coalesce(duration_ms, CAST(round((julianday(?4) - julianday(pre_at)) * 86400000) AS INTEGER))"
    " WHERE tool_use_id = ?5"
)
_RESULT_AGENT_SQL = (
    "INSERT INTO subagents (agent_id, session_id, parent_tool_use_id, description) VALUES (?,?,?,?)"
    " ON CONFLICT(agent_id) DO UPDATE SET parent_tool_use_id = coalesce(subagents.parent_tool_use_id,"
    " excluded.parent_tool_use_id), session_id = coalesce(subagents.session_id, excluded.session_id),"
    " description = coalesce(subagents.description, excluded.description)"
)
_SUMMARY_SQL = (
    "UPDATE compactions SET summary = ?, summary_uuid = ? WHERE id = (SELECT id FROM compactions"
    " WHERE session_id = ? AND summary_uuid IS NULL AND trigger IS NOT 'summary-entry' ORDER BY id DESC LIMIT 1)"
)


def _run(con, statements):
    """Execute (sql, params) in order; consecutive ones with the same sql as one executemany."""
    i, n = 0, len(statements)
    while i < n:
        sql = statements[i][0]
        j = i + 1
        while j < n and statements[j][0] is sql:
            j += 1
        if j - i == 1:
            con.execute(sql, statements[i][1])
        else:
            con.executemany(sql, [p for _, p in statements[i:j]])
        i = j


class Normalizer:
    """The `on_lines` callback of `transcript_tail.tail_file`: normalises each chunk of new lines in the
    chunk's own transaction, so raw lines and their normal form commit (or roll back) together."""

    def __init__(self):
        self.touched = set()  # (session_id, agent_id) streams whose turns need rebuilding
        self.counts = {"messages": 0, "tool_calls_new": 0, "tool_calls_linked": 0}
        self._seq = {}
        self._meta_done = set()

    def saved(self):
        """This normaliser's state, for restore() (the importer's batch rollback)."""
        return set(self.touched), dict(self.counts), dict(self._seq), set(self._meta_done)

    def restore(self, state):
        touched, counts, seq, meta_done = state
        self.touched, self.counts, self._seq, self._meta_done = set(touched), dict(counts), dict(seq), set(meta_done)

    def __call__(self, con, path, rows):
        """rows: [(line_id, line_no, entry or None)]: each stored line's id, its number in the file, and
        its parsed entry (None when it is not a JSON object)."""
        file_sid, file_aid = _file_identity(con, path)
        if file_aid and path not in self._meta_done:
            self._meta_done.add(path)
            _subagent_meta(con, path, file_sid, file_aid)
        messages: list[tuple] = []
        calls: list[tuple] = []  # ("use", ...) / ("result", ...) / ("summary", ...) in file order
        last_id = 0
        for line_id, line_no, entry in rows:
            last_id = line_id
            if entry is None:
                continue
            etype = entry.get("type")
            if etype == "user" or etype == "assistant":
                self._message(messages, calls, entry, path, line_id, line_no, file_sid, file_aid)
            elif etype == "progress":
                data = entry.get("data")
                if isinstance(data, dict) and data.get("type") == "agent_progress":
                    self._agent_progress(con, messages, calls, entry, data, path, line_id, line_no, file_sid)
            elif etype == "system":
                if entry.get("subtype") == "compact_boundary":
                    _compaction(con, entry, file_sid)
            elif etype == "summary":
                if isinstance(entry.get("summary"), str):
                    con.execute(
                        "INSERT OR IGNORE INTO compactions (session_id, uuid, trigger, summary)"
                        " VALUES (?,?,'summary-entry',?)",
                        (
                            _str(entry.get("sessionId")) or file_sid,
                            _str(entry.get("leafUuid")),
                            _safe(entry["summary"]),
                        ),
                    )
            elif etype == "api-request-shape":
                _api_shape(con, entry, file_sid)
        if messages:
            cur = con.executemany(_MESSAGES_SQL, messages)
            self.counts["messages"] += max(cur.rowcount, 0)
        if calls:
            statements: list[tuple] = []
            known = _known_calls(con, [op[1]["id"] for op in calls if op[0] == "use"])
            unanswered: dict[str, int] = {}  # tool_use_id -> index in statements of its INSERT, until its result comes
            for op in calls:
                if op[0] == "use":
                    self._tool_use(con, statements, known, unanswered, *op[1:])
                elif op[0] == "result":
                    _tool_result(statements, unanswered, *op[1:])
                else:
                    # After its compact_boundary (inserted above): attach to the latest without a summary.
                    statements.append((_SUMMARY_SQL, (_safe(op[3]), op[2], op[1])))
            _run(con, statements)
        con.execute("UPDATE transcript_files SET norm_line_id = max(norm_line_id, ?) WHERE path = ?", (last_id, path))

    # -- entries ----------------------------------------------------------------------------------

    def _message(
        self, messages, calls, entry, path, line_id, line_no, file_sid, file_aid, agent_id=None, sidechain=None
    ):
        get = entry.get
        uuid = _str(get("uuid"))
        msg = get("message")
        if uuid is None or not isinstance(msg, dict):
            return
        session_id = _str(get("sessionId")) or file_sid
        agent_id = agent_id or _str(get("agentId")) or file_aid
        role = _str(msg.get("role")) or get("type")
        texts, thinking, uses, results = [], [], [], []
        blocks = content_blocks(msg.get("content"))
        for b in blocks:
            if not isinstance(b, dict):
                continue
            t = b.get("type")
            if t == "text":
                if isinstance(b.get("text"), str):
                    texts.append(b["text"])
            elif t == "tool_use":
                if isinstance(b.get("id"), str):
                    uses.append(b["id"])
                    calls.append(("use", b, entry, uuid, session_id, agent_id))
            elif t == "tool_result":
                if isinstance(b.get("tool_use_id"), str):
                    results.append(b["tool_use_id"])
                    calls.append(("result", b, entry, uuid, session_id, agent_id))
            elif t == "thinking":
                if isinstance(b.get("thinking"), str):
                    thinking.append(b["thinking"])
        usage = msg.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        compact_summary = get("isCompactSummary")
        if compact_summary:
            calls.append(("summary", session_id, uuid, "\n".join(texts)))
        is_sidechain = sidechain if sidechain is not None else bool(get("isSidechain"))
        messages.append(
            (
                uuid,
                session_id,
                agent_id,
                _str(get("parentUuid")),
                int(is_sidechain),
                role,
                path,
                line_id,
                line_no,
                _str(get("timestamp")),
                _str(msg.get("model")),
                _str(msg.get("id")),
                _str(get("requestId")),
                _json(blocks),
                _safe("\n".join(texts)) if texts else None,
                _safe("\n".join(thinking)) if thinking else None,
                _json(uses) if uses else None,
                _json(results) if results else None,
                _int(usage.get("input_tokens")),
                _int(usage.get("output_tokens")),
                _int(usage.get("cache_read_input_tokens")),
                _int(usage.get("cache_creation_input_tokens")),
                _str(msg.get("stop_reason")),
                _str(get("promptId")),
                int(bool(compact_summary)),
                int(bool(get("isMeta"))),
                int(bool(get("isApiErrorMessage"))),
                _str(get("cwd")),
                _str(get("version")),
            )
        )
        self.touched.add((session_id, agent_id))

    def _agent_progress(self, con, messages, calls, entry, data, path, line_id, line_no, file_sid):
        inner = data.get("message")
        agent_id = _str(data.get("agentId"))
        if not isinstance(inner, dict) or agent_id is None:
            return
        session_id = _str(entry.get("sessionId")) or file_sid
        nested = dict(inner)
        nested.setdefault("sessionId", session_id)
        nested.setdefault("cwd", entry.get("cwd"))
        nested.setdefault("version", entry.get("version"))
        self._message(
            messages, calls, nested, path, line_id, line_no, file_sid, None, agent_id=agent_id, sidechain=True
        )
        con.execute(
            "INSERT INTO subagents (agent_id, session_id, parent_tool_use_id) VALUES (?,?,?)"
            " ON CONFLICT(agent_id) DO UPDATE SET session_id = coalesce(subagents.session_id, excluded.session_id),"
            " parent_tool_use_id = coalesce(subagents.parent_tool_use_id, excluded.parent_tool_use_id)",
            (agent_id, session_id, _str(entry.get("parentToolUseID"))),
        )

    def _tool_use(self, con, statements, known, unanswered, block, entry, message_uuid, session_id, agent_id):
        """Queue the link (or the new row) for one tool_use block; `known` maps the chunk's tool_use ids
        already in tool_calls to their source, and is kept current as statements are queued."""
        tool_use_id = block["id"]
        source = known.get(tool_use_id)
        if source is not None:
            statements.append(
                (
                    _CALL_UPDATE_SQL,
                    (
                        message_uuid,
                        _str(block.get("name")),
                        _json(block.get("input")),
                        agent_id,
                        _str(entry.get("promptId")),
                        tool_use_id,
                    ),
                )
            )
            if source != "transcript":
                self.counts["tool_calls_linked"] += 1
                known[tool_use_id] = "both"
            return
        seq = self._seq.get(session_id)
        if seq is None:
            seq = con.execute(
                "SELECT coalesce(max(seq), 0) FROM tool_calls WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
        seq += 1
        self._seq[session_id] = seq
        unanswered[tool_use_id] = len(statements)
        statements.append(
            (
                _CALL_INSERT_SQL,
                (
                    tool_use_id,
                    session_id,
                    agent_id,
                    _str(entry.get("promptId")),
                    _str(block.get("name")),
                    _json(block.get("input")),
                    seq,
                    _str(entry.get("cwd")),
                    _str(entry.get("timestamp")),
                    message_uuid,
                ),
            )
        )
        known[tool_use_id] = "transcript"
        self.counts["tool_calls_new"] += 1


def _known_calls(con, ids):
    """{tool_use_id: source} for those of `ids` already in tool_calls."""
    known = {}
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        known.update(
            con.execute(
                "SELECT tool_use_id, source FROM tool_calls WHERE tool_use_id IN (%s)" % ",".join("?" * len(part)), part
            ).fetchall()
        )
    return known


def _file_identity(con, path):
    row = con.execute("SELECT session_id, agent_id FROM transcript_files WHERE path = ?", (path,)).fetchone()
    sid, aid = transcript_tail.file_identity(path)
    if row:
        return row[0] or sid, row[1] or aid
    return sid, aid


def _subagent_meta(con, path, session_id, agent_id):
    """`agent-<id>.meta.json` beside a subagent transcript: its type, description and parent call."""
    meta = {}
    try:
        with open(path[: -len(".jsonl")] + ".meta.json", encoding="utf-8") as f:
            loaded = json.load(f)
        meta = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    con.execute(
        "INSERT INTO subagents (agent_id, session_id, parent_tool_use_id, agent_type, description, transcript_path)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT(agent_id) DO UPDATE SET"
        " session_id = coalesce(subagents.session_id, excluded.session_id),"
        " parent_tool_use_id = coalesce(subagents.parent_tool_use_id, excluded.parent_tool_use_id),"
        " agent_type = coalesce(subagents.agent_type, excluded.agent_type),"
        " description = coalesce(subagents.description, excluded.description),"
        " transcript_path = excluded.transcript_path",
        (
            agent_id,
            session_id,
            _str(meta.get("toolUseId")),
            _str(meta.get("agentType")),
            _str(meta.get("description")),
            path,
        ),
    )


def _tool_result(statements, unanswered, block, entry, message_uuid, session_id, agent_id):
    tool_use_id = block["tool_use_id"]
    tur = entry.get("toolUseResult")
    # The text is needed only to classify an error and to keep it as the call's `error`.
    text = _safe(block_text(block.get("content"))) if block.get("is_error") else ""
    status = result_status(block, entry, text)
    error = None if status == "success" else (text or _safe(block_text(block.get("content"))))
    timestamp = _str(entry.get("timestamp"))
    i = unanswered.pop(tool_use_id, None)
    if i is not None:
        # Nothing queued in between touches these columns (a repeated tool_use only fills others).
        statements[i] = (_CALL_INSERT_RESULT_SQL, statements[i][1] + (message_uuid, error, status, timestamp))
    else:
        statements.append((_RESULT_SQL, (message_uuid, error, status, timestamp, tool_use_id)))
    if isinstance(tur, dict) and isinstance(tur.get("agentId"), str):
        # An Agent/Task call's result names the subagent it started.
        statements.append((_RESULT_AGENT_SQL, (tur["agentId"], session_id, tool_use_id, _str(tur.get("description")))))


def _compaction(con, entry, session_id):
    meta = entry.get("compactMetadata") if isinstance(entry.get("compactMetadata"), dict) else {}
    con.execute(
        "INSERT OR IGNORE INTO compactions (session_id, uuid, timestamp, trigger, pre_tokens) VALUES (?,?,?,?,?)",
        (
            _str(entry.get("sessionId")) or session_id,
            _str(entry.get("uuid")),
            _str(entry.get("timestamp")),
            _str(meta.get("trigger")),
            _int(meta.get("preTokens")),
        ),
    )


def _api_shape(con, entry, session_id):
    shape = entry.get("shape")
    shape_hash = _str(entry.get("shapeHash"))
    if not isinstance(shape, dict) or shape_hash is None:
        return
    session_id = _str(entry.get("sessionId")) or session_id
    con.execute(
        "INSERT OR IGNORE INTO session_request_shapes (session_id, shape_hash, timestamp, version) VALUES (?,?,?,?)",
        (session_id, shape_hash, _str(entry.get("timestamp")), _str(entry.get("version"))),
    )
    # A known hash is not serialised again: sessions share shapes, and some versions repeat one per request.
    if con.execute("SELECT 1 FROM request_shapes WHERE shape_hash = ?", (shape_hash,)).fetchone():
        return
    system = shape.get("system")
    if isinstance(system, str):
        system_text = system
    elif isinstance(system, list):
        system_text = "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    else:
        system_text = None
    con.execute(
        "INSERT INTO request_shapes (shape_hash, system, system_blocks, tools)"
        " VALUES (?,?,CAST(? AS TEXT),CAST(? AS TEXT))",
        (shape_hash, _safe(system_text) if system_text else None, _json(system), _json(shape.get("tools"))),
    )


def normalise_pending(con, path, normalizer, batch=2000, savepoints=True):
    """Normalise lines the hook stored raw (transcript_lines.id > norm_line_id), in batches, each in
    one transaction that also reads the cursor (two cra processes never normalise a line twice).
    savepoints: as transcript_tail.begin's."""
    while True:
        # A cheap look first: most files have nothing pending, and need no write lock.
        row = con.execute("SELECT norm_line_id FROM transcript_files WHERE path = ?", (path,)).fetchone()
        if (
            row is None
            or not con.execute(
                "SELECT 1 FROM transcript_lines WHERE path = ? AND id > ? LIMIT 1", (path, row[0])
            ).fetchone()
        ):
            return
        opened = transcript_tail.begin(con, savepoints)  # (nested in `cra import`'s batch)
        try:
            row = con.execute("SELECT norm_line_id FROM transcript_files WHERE path = ?", (path,)).fetchone()
            lines = (
                []
                if row is None
                else con.execute(
                    "SELECT id, line_no, raw FROM transcript_lines WHERE path = ? AND id > ? ORDER BY id LIMIT ?",
                    (path, row[0], batch),
                ).fetchall()
            )
            if not lines:
                transcript_tail.end(con, opened, commit=True)
                return
            rows = []
            for line_id, line_no, raw in lines:
                try:
                    entry = json.loads(raw)
                except (ValueError, RecursionError):
                    entry = None
                rows.append((line_id, line_no, entry if isinstance(entry, dict) else None))
            normalizer(con, path, rows)
            transcript_tail.end(con, opened, commit=True)
        except BaseException:
            if con.in_transaction:
                transcript_tail.end(con, opened, commit=False)
            raise
