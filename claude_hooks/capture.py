"""Spooled hook events -> rows in cra's SQLite database.

The hook process only spools (claude_hooks/spool.py); the one drainer at a time (a detached child of
a hook, or any `cra` command) replays the spool through `record` here, so live capture and catch-up
share one code path. Standard library only.

The raw payload always lands (in `events`, or in the spool); deriving `sessions` and `tool_calls`
from it happens in the same transaction but inside a savepoint, so a bug or an odd payload costs the
derived rows, never the event.
"""

import os
import time

# The hook pays for every import on every tool call (BENCHMARKS.md): fastjson is json.loads/dumps
# without importing the json package (re, enum, ...); _sqlite3 is the sqlite3 package's C module
# without the datetime adapters the package registers and cra never uses.
from claude_hooks import fastjson as json

try:
    import _sqlite3 as sqlite3
except ImportError:  # pragma: no cover - a Python whose sqlite3 is not the C module
    import sqlite3  # type: ignore[no-redef]  # the same API, from the package

from claude_hooks.spool import (  # noqa: F401  (cra reads these names from here)
    DB_NAME,
    ENV_KEYS,
    ERROR_LOG,
    IGNORE_FILE,
    OFF_FLAG,
    SPOOL_DIR,
    cra_home,
    db_path,
    event_header,
    fallback_spool_dir,
    now_iso,
    spool_dirs,
    write_event,
)
from claude_hooks.spool import (
    log_error as _log_line,
)

# For type checkers only (mypy reads the name as true): the hook never pays for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

AUTO_TRIGGER = "auto-trigger.json"  # present: Stop may start `cra auto once` (`cra auto hook on`)
# The drainer is off Claude Code's path: it can wait for `cra` commands holding the write lock
# (CRA_DRAIN_TIMEOUT overrides); past that the events stay spooled for the next drainer.
BUSY_TIMEOUT_S = 10.0
# The migrations (cra/db/migrations.py) the SQL below needs, by name: m002 adds tool_calls.source.
# A database `cra` has not migrated that far keeps events in the spool until a `cra` command
# upgrades it, instead of half-deriving them. By name, not by count: migrations from parallel work
# are appended in any order, so a position says nothing about which ones a database has.
REQUIRED_MIGRATIONS = ("m002_transcripts",)

# Boundaries at which Claude Code is between tool calls: a call still pending has ended unseen.
# Stop ends the main thread's calls, SubagentStop one agent's, SessionEnd everything.
_FINALIZING_EVENTS = ("Stop", "SubagentStop", "SessionEnd")


class Event:
    """A hook call as received: exact bytes, parsed payload when it parses, and why not when not."""

    __slots__ = ("uid", "received_at", "text", "raw_bytes", "payload", "parse_error", "env")

    def __init__(
        self, raw: bytes, env: "Mapping[str, str]", uid: str | None = None, received_at: str | None = None
    ) -> None:
        self.uid = uid or os.urandom(16).hex()  # random like uuid4, without uuid's imports (platform, ...)
        self.received_at = received_at or now_iso()
        self.env = {k: env[k] for k in ENV_KEYS if k in env}
        self.raw_bytes = None
        self.payload = None
        self.parse_error = None
        try:
            self.text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Keep the exact bytes too: the text column gets a readable, valid-UTF-8 copy.
            self.text = raw.decode("utf-8", "replace")
            self.raw_bytes = raw
            self.parse_error = "invalid UTF-8: %s" % exc
        try:
            payload = json.loads(self.text)
        except (ValueError, RecursionError) as exc:
            # RecursionError: valid but absurdly deep JSON ([[[[...]]]]); keep it raw like any junk.
            self.parse_error = "invalid JSON: %s" % exc
        else:
            if isinstance(payload, dict):
                self.payload = payload
            else:
                self.parse_error = "payload is %s, not an object" % type(payload).__name__

    def field(self, name: str):
        return _scalar(self.payload.get(name) if self.payload else None)

    @property
    def name(self) -> str | None:
        return self.field("hook_event_name")


# SQLite integers are 64-bit: a bigger JSON number is kept as its text.
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _scalar(value):
    """A JSON value as something SQLite binds: numbers and text as they are, anything else as JSON."""
    if value is None or isinstance(value, float) or (isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX):
        return value
    return _safe_text(value if isinstance(value, str) else json.dumps(value))


def _safe_text(s):
    """SQLite rejects lone surrogates (valid in JSON escapes): replace them rather than fail."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")


def _json(obj):
    return None if obj is None else _safe_text(json.dumps(obj, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------
# Entry point


def drain_into_db(home: str, env: "Mapping[str, str]", via: str = "hook") -> int | None:
    """Replay the whole spool into the database; the caller holds the drain lock. Returns how many
    events were ingested, or None when the database can't take them (they stay spooled, the error
    is logged)."""
    path = db_path(env)
    try:
        if not os.path.exists(path):
            raise FileNotFoundError("no database at %s (run any cra command to create it)" % path)
        con = connect(path, timeout=float(env.get("CRA_DRAIN_TIMEOUT") or BUSY_TIMEOUT_S))
        try:
            missing = missing_migrations(con)
            if missing:
                raise RuntimeError(
                    "the database schema is older than this cra needs (%s not applied): run any cra command"
                    % ", ".join(missing)
                )
            return drain_spool(con, home, via=via)
        finally:
            con.close()
    except Exception as exc:
        _log_line(home, None, None, exc)
        return None


def _after_record(con, home, event, via):
    _tail_transcripts(con, home, event)
    if event.name == "Stop" and via == "hook":
        _maybe_start_cycle(con, home, event)


# Kept equal to transcript_tail.BOUNDARY_EVENTS (a test checks): no import for the other events.
_BOUNDARY_EVENTS = ("Stop", "SubagentStop", "PreCompact", "SessionEnd", "UserPromptSubmit", "SessionStart")


def _tail_transcripts(con, home, event):
    """At boundaries, copy new transcript lines (bounded; the rest waits for the next boundary or
    `cra`). The event is already committed: a failure here only logs, it never spools the event."""
    if event.payload is None or event.name not in _BOUNDARY_EVENTS:
        return
    try:
        from claude_hooks import transcript_tail  # only boundary events pay for importing it

        transcript_tail.tail_for_event(con, event.payload)
    except Exception as exc:
        log_error(home, event, exc)


def _maybe_start_cycle(con, home, event):
    """Start a detached `cra auto once` when the trigger file says a cycle may be due.

    Off by default: then this costs one failed open(). cra/auto/trigger.py writes the file and
    documents its fields; `cra auto once` makes the real decision under its lock. Never spools the
    event (already committed) and never waits for the child."""
    path = os.path.join(home, AUTO_TRIGGER)
    try:
        with open(path, "rb") as f:
            trig = json.loads(f.read())
    except (OSError, ValueError):
        return
    try:
        now = time.time()
        if now < trig.get("not_before", 0):
            return
        stops = con.execute(
            "SELECT count(*) FROM events WHERE hook_event_name = 'Stop' AND id > ?", (trig.get("since_event", 0),)
        ).fetchone()[0]
        due_at = trig.get("due_at")
        if stops < trig.get("stops_needed", 0) and not (
            due_at is not None and now >= due_at and stops >= (trig.get("due_stops_needed") or 0)
        ):
            return
        # Claimed before spawning: concurrent Stops (parallel sessions) start one cycle, not many.
        trig["not_before"] = now + trig.get("spawn_every_s", 600)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(json.dumps(trig).encode("utf-8"))
        os.replace(tmp, path)
        import subprocess  # only on the rare path that starts a cycle

        subprocess.Popen(
            trig["argv"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except Exception as exc:
        log_error(home, event, exc)


def missing_migrations(con: "sqlite3.Connection", required: tuple[str, ...] = REQUIRED_MIGRATIONS) -> list[str]:
    """The required migrations sqlite-utils' log does not list as applied to this database."""
    try:
        applied = {
            row[0]
            for row in con.execute(
                "SELECT name FROM _sqlite_migrations WHERE migration_set = 'cra' AND name IN (%s)"
                % ",".join("?" * len(required)),
                required,
            )
        }
    except sqlite3.OperationalError:  # no migration log: no cra command has opened it yet
        applied = set()
    return [name for name in required if name not in applied]


def connect(path: str, timeout: float = BUSY_TIMEOUT_S) -> "sqlite3.Connection":
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    # WAL is persistent (set when cra creates the file); NORMAL is durable enough under WAL and
    # saves an fsync per event.
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def record(con: "sqlite3.Connection", event: Event, via: str = "hook") -> None:
    """Insert the event and derive rows from it, in one transaction. Idempotent on event.uid."""
    con.execute("BEGIN IMMEDIATE")
    try:
        cur = con.execute(
            "INSERT OR IGNORE INTO events (event_uid, received_at, hook_event_name, session_id,"
            " agent_id, tool_use_id, prompt_id, payload, payload_bytes, parse_error, env, via)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                event.uid,
                event.received_at,
                event.name,
                event.field("session_id"),
                event.field("agent_id"),
                event.field("tool_use_id"),
                event.field("prompt_id"),
                _safe_text(event.text),
                event.raw_bytes,
                event.parse_error,
                json.dumps(event.env) if event.env else None,
                via,
            ),
        )
        if cur.rowcount and event.payload is not None:
            event_id = cur.lastrowid
            con.execute("SAVEPOINT derive")
            try:
                derive(con, event, event_id)
                con.execute("RELEASE derive")
            except Exception as exc:
                con.execute("ROLLBACK TO derive")
                con.execute("RELEASE derive")
                con.execute("UPDATE events SET derive_error = ? WHERE id = ?", (repr(exc)[:2000], event_id))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------------------------
# Deriving sessions and tool_calls


def derive(con, ev, event_id):
    session_id = ev.field("session_id")
    if not isinstance(session_id, str):
        return
    name = ev.name
    t = ev.received_at
    _touch_session(con, ev, session_id, t)
    if name in _TOOL_HANDLERS:
        _TOOL_HANDLERS[name](con, ev, session_id, t, event_id)
    if name == "SessionStart":
        con.execute(
            "UPDATE sessions SET started_at = coalesce(started_at, ?), start_source = coalesce(start_source, ?),"
            " model = coalesce(?, model) WHERE id = ?",
            (t, ev.field("source"), ev.field("model"), session_id),
        )
    elif name == "SessionEnd":
        con.execute(
            "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
            (t, ev.field("reason"), session_id),
        )
    if name in _FINALIZING_EVENTS:
        _finalize_pending(con, session_id, name, ev.field("agent_id"))


def _touch_session(con, ev, session_id, t):
    cwd = ev.field("cwd")
    con.execute(
        "INSERT INTO sessions (id, cwd, project_dir, transcript_path, permission_mode, entrypoint,"
        " first_event_at, last_event_at) VALUES (?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET last_event_at = excluded.last_event_at,"
        " cwd = coalesce(sessions.cwd, excluded.cwd),"
        " project_dir = coalesce(sessions.project_dir, excluded.project_dir),"
        " transcript_path = coalesce(excluded.transcript_path, sessions.transcript_path),"
        " permission_mode = coalesce(excluded.permission_mode, sessions.permission_mode),"
        " entrypoint = coalesce(sessions.entrypoint, excluded.entrypoint)",
        (
            session_id,
            cwd,
            ev.env.get("CLAUDE_PROJECT_DIR") or cwd,
            ev.field("transcript_path"),
            ev.field("permission_mode"),
            ev.env.get("CLAUDE_CODE_ENTRYPOINT"),
            t,
            t,
        ),
    )


def _next_seq(con, session_id):
    return con.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM tool_calls WHERE session_id = ?", (session_id,)
    ).fetchone()[0]


def _ensure_call(con, ev, session_id, tool_use_id, tool_name, tool_input):
    """The tool_calls row for this id, created (status pending, next seq) if new. Returns its id.

    Older clients send no tool_use_id: their calls get a synthetic id and are paired by order.
    """
    if tool_use_id is None:
        tool_use_id = "cra-%s-%d" % (session_id, _next_seq(con, session_id))
        synthetic = 1
    else:
        synthetic = 0
    con.execute(
        "INSERT INTO tool_calls (tool_use_id, session_id, agent_id, agent_type, prompt_id, tool_name,"
        " tool_input, status, seq, permission_mode, cwd, synthetic_id)"
        " VALUES (?,?,?,?,?,?,?,'pending',?,?,?,?)"
        " ON CONFLICT(tool_use_id) DO UPDATE SET"
        " tool_name = coalesce(tool_calls.tool_name, excluded.tool_name),"
        " tool_input = coalesce(tool_calls.tool_input, excluded.tool_input),"
        " agent_id = coalesce(tool_calls.agent_id, excluded.agent_id),"
        " agent_type = coalesce(tool_calls.agent_type, excluded.agent_type),"
        " prompt_id = coalesce(tool_calls.prompt_id, excluded.prompt_id),"
        " permission_mode = coalesce(tool_calls.permission_mode, excluded.permission_mode),"
        " cwd = coalesce(tool_calls.cwd, excluded.cwd),"
        # A call `cra` first saw in the transcript (sync ran mid-session) now has hook data too.
        " source = CASE WHEN tool_calls.source = 'transcript' THEN 'both' ELSE tool_calls.source END",
        (
            tool_use_id,
            session_id,
            ev.field("agent_id"),
            ev.field("agent_type"),
            ev.field("prompt_id"),
            tool_name,
            _json(tool_input),
            _next_seq(con, session_id),
            ev.field("permission_mode"),
            ev.field("cwd"),
            synthetic,
        ),
    )
    return tool_use_id


def _pair_without_id(con, session_id, ev):
    """Older clients: the earliest pending synthetic call of the same tool with the same input.

    Their Pre and Post carry the same input; a Post whose Pre never arrived must not take over
    another call's row (seen in real logs), so it gets a row of its own.
    """
    row = con.execute(
        "SELECT tool_use_id FROM tool_calls WHERE session_id = ? AND synthetic_id = 1"
        " AND status = 'pending' AND tool_name IS ? AND tool_input IS ? ORDER BY seq LIMIT 1",
        (session_id, ev.field("tool_name"), _json(ev.payload.get("tool_input"))),
    ).fetchone()
    return row[0] if row else None


def _call_for(con, ev, session_id):
    tool_use_id = ev.field("tool_use_id")
    if tool_use_id is None:
        tool_use_id = _pair_without_id(con, session_id, ev)
    return _ensure_call(con, ev, session_id, tool_use_id, ev.field("tool_name"), ev.payload.get("tool_input"))


def _on_pre_tool_use(con, ev, session_id, t, event_id):
    if ev.field("tool_use_id") is None:
        # Each PreToolUse without an id is a new call: never pair it with an earlier pending one.
        call = _ensure_call(con, ev, session_id, None, ev.field("tool_name"), ev.payload.get("tool_input"))
    else:
        call = _call_for(con, ev, session_id)
    con.execute("UPDATE tool_calls SET pre_at = coalesce(pre_at, ?) WHERE tool_use_id = ?", (t, call))


def _on_post_tool_use(con, ev, session_id, t, event_id):
    call = _call_for(con, ev, session_id)
    con.execute(
        "UPDATE tool_calls SET status = 'success', tool_response = ?, duration_ms = ?, post_at = ?,"
        " error = NULL WHERE tool_use_id = ?",
        (_json(ev.payload.get("tool_response")), _duration(ev, con, call, t), t, call),
    )


def _on_post_tool_use_failure(con, ev, session_id, t, event_id):
    call = _call_for(con, ev, session_id)
    interrupted = bool(ev.payload.get("is_interrupt"))
    con.execute(
        "UPDATE tool_calls SET status = ?, error = ?, is_interrupt = ?, duration_ms = ?, post_at = ?"
        " WHERE tool_use_id = ?",
        (
            "interrupted" if interrupted else "failure",
            ev.field("error"),
            int(interrupted),
            _duration(ev, con, call, t),
            t,
            call,
        ),
    )


def _on_permission_request(con, ev, session_id, t, event_id):
    # PermissionRequest carries no tool_use_id: it belongs to the latest pending call with this input.
    con.execute(
        "UPDATE tool_calls SET permission_requested = 1 WHERE tool_use_id = ("
        " SELECT tool_use_id FROM tool_calls WHERE session_id = ? AND status = 'pending'"
        " AND tool_name IS ? AND agent_id IS ? ORDER BY (tool_input IS ?) DESC, seq DESC LIMIT 1)",
        (session_id, ev.field("tool_name"), ev.field("agent_id"), _json(ev.payload.get("tool_input"))),
    )


def _on_permission_denied(con, ev, session_id, t, event_id):
    call = _call_for(con, ev, session_id)
    con.execute(
        "UPDATE tool_calls SET status = 'denied', error = coalesce(?, error), post_at = coalesce(post_at, ?)"
        " WHERE tool_use_id = ?",
        (ev.field("reason"), t, call),
    )


def _on_post_tool_batch(con, ev, session_id, t, event_id):
    calls = ev.payload.get("tool_calls")
    if not isinstance(calls, list):
        return
    ids = []
    for item in calls:
        if not isinstance(item, dict):
            continue
        tool_use_id = item.get("tool_use_id")
        if not isinstance(tool_use_id, str):
            continue
        call = _ensure_call(con, ev, session_id, tool_use_id, _scalar(item.get("tool_name")), item.get("tool_input"))
        ids.append(call)
        response = item.get("tool_response")
        text = response if isinstance(response, str) else _json(response)
        con.execute(
            "UPDATE tool_calls SET response_text = ?, batch_id = ? WHERE tool_use_id = ?",
            (_safe_text(text) if text is not None else None, event_id, call),
        )
        row = con.execute(
            "SELECT status, permission_requested FROM tool_calls WHERE tool_use_id = ?", (call,)
        ).fetchone()
        if row[0] == "pending":
            # No PostToolUse/Failure: denied, invalid, unknown tool, Edit mismatch or blocked.
            status = classify_unfinished(text or "", bool(row[1]))
            con.execute(
                "UPDATE tool_calls SET status = ?, error = ?, post_at = coalesce(post_at, ?) WHERE tool_use_id = ?",
                (status, text, t, call),
            )
    _order_batch(con, ids)


def _order_batch(con, ids):
    """Parallel calls' hooks arrive in any order; the batch lists them in the model's order."""
    if len(ids) < 2:
        return
    marks = ",".join("?" * len(ids))
    seqs = sorted(r[0] for r in con.execute("SELECT seq FROM tool_calls WHERE tool_use_id IN (%s)" % marks, ids))
    for tool_use_id, seq in zip(ids, seqs):
        con.execute("UPDATE tool_calls SET seq = ? WHERE tool_use_id = ?", (seq, tool_use_id))


def classify_unfinished(text: str, permission_requested: object) -> str:
    """Status of a call that got no PostToolUse(Failure), from the text the model was shown."""
    lowered = text.lower()
    if text.startswith("PreToolUse:") and "hook error" in text:
        return "blocked"
    if "InputValidationError" in text or "No such tool available" in text:
        return "invalid"
    denial_phrases = (
        "has been denied",
        "haven't granted",
        "needs approval",
        "permission to use",
        "doesn't want to proceed",
        "was rejected",
    )
    if permission_requested or any(p in lowered for p in denial_phrases):
        return "denied"
    return "failure"


def _finalize_pending(con, session_id, boundary, agent_id):
    """Calls still pending at a boundary ended unseen (Esc at a permission prompt, a killed tool)."""
    where = "session_id = ? AND status = 'pending'"
    args = [session_id]
    if boundary == "Stop":
        where += " AND agent_id IS NULL"
    elif boundary == "SubagentStop":
        where += " AND agent_id IS ?"
        args.append(agent_id)
    con.execute(
        "UPDATE tool_calls SET status = CASE WHEN permission_requested = 1 THEN 'denied'"
        " ELSE 'interrupted' END, error = coalesce(error, 'no result before ' || ?) WHERE " + where,
        [boundary] + args,
    )


def _duration(ev, con, call, t):
    duration = ev.payload.get("duration_ms")
    if isinstance(duration, (int, float)) and 0 <= duration < 1e15:  # not NaN, inf or absurd
        return int(duration)
    # Older clients: time between our PreToolUse and this event.
    row = con.execute(
        "SELECT CAST(round((julianday(?) - julianday(pre_at)) * 86400000) AS INTEGER)"
        " FROM tool_calls WHERE tool_use_id = ?",
        (t, call),
    ).fetchone()
    return row[0] if row else None


_TOOL_HANDLERS = {
    "PreToolUse": _on_pre_tool_use,
    "PostToolUse": _on_post_tool_use,
    "PostToolUseFailure": _on_post_tool_use_failure,
    "PermissionRequest": _on_permission_request,
    "PermissionDenied": _on_permission_denied,
    "PostToolBatch": _on_post_tool_batch,
}


# ---------------------------------------------------------------------------------------------
# The spool: one file per event that the database could not take, replayed later.


def spool(home: str, event: Event, reason: str) -> str | None:
    """Put an already-parsed event back in the spool (used by `cra` when it cannot store one)."""
    raw = event.raw_bytes if event.raw_bytes is not None else event.text.encode("utf-8", "surrogateescape")
    return write_event(home, raw, event_header(event.uid, event.received_at, event.env, reason), fsync=True)


def drain_spool(con: "sqlite3.Connection", home: str, limit: int | None = None, via: str = "cra") -> int:
    """Replay spooled events into the database, oldest first. Returns how many were ingested.

    Callers hold the drain lock, so events land in the order they happened; even so a file is
    claimed by renaming it, and `record` ignores an event uid it already has, so a crash between
    insert and unlink duplicates nothing.
    """
    done = 0
    for directory in spool_dirs(home):
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".event"))
        except OSError:
            continue
        for name in names:
            if limit is not None and done >= limit:
                return done
            path = os.path.join(directory, name)
            claimed = path + ".claimed-%d" % os.getpid()
            try:
                os.rename(path, claimed)
            except OSError:
                continue  # another process took it
            try:
                event = read_spooled(claimed)
                record(con, event, via=via)
            except sqlite3.Error:
                os.rename(claimed, path)  # the database failed again: leave it for later
                raise
            except (OSError, ValueError):
                os.rename(claimed, path + ".unreadable")
                continue
            os.unlink(claimed)
            done += 1
            _after_record(con, home, event, via)
    return done


def read_spooled(path: str) -> Event:
    with open(path, "rb") as f:
        data = f.read()
    header, _, raw = data.partition(b"\n")
    meta = json.loads(header)
    return Event(raw, meta.get("env") or {}, uid=meta["event_uid"], received_at=meta["received_at"])


def log_error(home: str, event: Event, exc: BaseException) -> None:
    """Append one line to hook-errors.log (what `cra status` counts)."""
    _log_line(home, event.name if event.payload else None, event.uid, exc)
