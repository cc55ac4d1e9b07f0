"""What `cra serve` records: a row per server started (its share, changed while it runs) and a row per
request (serve_requests), written by one thread so the event loop never waits on the database.

No bodies and no headers are stored: the user's key travels in the headers, code and secrets in the
bodies. The one free-text column, `error`, is redacted first.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from typing import Any

from ..dataset.redact import Redactor

# cra.redact (redact_text) is being created beside this; until it lands, the dataset's redactor.
_REDACTOR = Redactor()
_redact_lock = threading.Lock()

REQUEST_COLUMNS = (
    "server_id",
    "received_at",
    "endpoint",
    "session_id",
    "agent_id",
    "route",
    "stream",
    "status",
    "outcome",
    "latency_ms",
    "first_token_ms",
    "input_tokens",
    "output_tokens",
    "stop_reason",
    "tool_calls",
    "parsed",
    "fell_back",
    "fallback_reason",
    "shadow_agreed",
    "shadow_detail",
    "error",
)


def redact_text(text: str) -> str:
    with _redact_lock:  # the redactor counts what it replaced: one caller at a time
        return _REDACTOR.redact(text)


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def _open(path: str | None):
    from ..db import open_db

    return open_db(path, drain=False)


def start_server(db, *, host, port, model, backend, upstream, share, fallback, shadow) -> int:
    with db.conn:
        cursor = db.conn.execute(
            "INSERT INTO serve_servers (started_at, pid, host, port, model, backend, upstream, share, fallback, shadow,"
            " share_changed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                now_iso(),
                os.getpid(),
                host,
                port,
                model,
                backend,
                upstream,
                share,
                int(fallback),
                int(shadow),
                now_iso(),
            ),
        )
    return cursor.lastrowid


def stop_server(db, server_id: int) -> None:
    with db.conn:
        db.conn.execute("UPDATE serve_servers SET stopped_at = ? WHERE id = ?", (now_iso(), server_id))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_servers(db) -> list[dict[str, Any]]:
    """Servers that were started and not stopped, whose process still exists (this host)."""
    if "serve_servers" not in db.table_names():
        return []
    rows = list(db.query("SELECT * FROM serve_servers WHERE stopped_at IS NULL ORDER BY id"))
    return [r for r in rows if _alive(r["pid"])]


def set_share(db, server_id: int, share: float) -> None:
    with db.conn:
        db.conn.execute(
            "UPDATE serve_servers SET share = ?, share_changed_at = ? WHERE id = ?", (share, now_iso(), server_id)
        )


def request_summary(db, server_id: int | None = None, since: str | None = None, until: str | None = None) -> dict:
    """Requests by route and how they went (one server's or all; received since/until, ISO UTC),
    for `cra serve status` and `cra stats`."""
    if "serve_requests" not in db.table_names():
        return {"requests": 0}
    clauses, args = [], []
    for clause, value in (("server_id = ?", server_id), ("received_at >= ?", since), ("received_at < ?", until)):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    row = db.execute(
        f"""SELECT count(*),
               sum(route = 'local'), sum(route = 'local' AND fell_back = 0 AND outcome = 'ok'), sum(route = 'upstream'),
               sum(route = 'shadow'), sum(parsed = 1), sum(parsed IS NOT NULL), sum(fell_back),
               sum(shadow_agreed), sum(shadow_agreed IS NOT NULL), sum(outcome != 'ok'),
               sum(CASE WHEN route = 'local' AND fell_back = 0 THEN output_tokens END),
               count(DISTINCT session_id), count(DISTINCT CASE WHEN route = 'local' THEN session_id END)
            FROM serve_requests{where}""",
        args,
    ).fetchone()
    keys = (
        "requests",
        "local",
        "answered_locally",
        "upstream",
        "shadow",
        "parsed",
        "local_answers",
        "fell_back",
        "shadow_agreed",
        "shadow_compared",
        "not_ok",
        "local_output_tokens",
        "sessions",
        "local_sessions",
    )
    out = {k: v or 0 for k, v in zip(keys, row)}
    latencies = [
        r[0]
        for r in db.execute(
            f"SELECT latency_ms FROM serve_requests{where or ' WHERE 1'} AND route = 'local' AND fell_back = 0"
            " AND outcome = 'ok' AND latency_ms IS NOT NULL ORDER BY latency_ms",
            args,
        )
    ]
    out["local_median_latency_ms"] = round(latencies[len(latencies) // 2], 1) if latencies else None
    return out


class RequestLog:
    """Writes request rows from a queue in its own thread and connection; `close()` writes what is left."""

    def __init__(self, db_path: str | None, server_id: int | None):
        self.db_path = db_path
        self.server_id = server_id
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cra-serve-log", daemon=True)
        self._thread.start()

    def write(self, row: dict[str, Any]) -> None:
        row = dict(row, server_id=self.server_id)
        if row.get("error"):
            row["error"] = redact_text(str(row["error"]))[:2000]
        if isinstance(row.get("shadow_detail"), dict):
            row["shadow_detail"] = json.dumps(row["shadow_detail"], sort_keys=True)
        self._queue.put(row)

    def _run(self) -> None:
        db = _open(self.db_path)
        sql = "INSERT INTO serve_requests (%s) VALUES (%s)" % (
            ", ".join(REQUEST_COLUMNS),
            ", ".join("?" for _ in REQUEST_COLUMNS),
        )
        while True:
            row = self._queue.get()
            if row is None:
                break
            batch = [row]
            while not self._queue.empty():  # rows that arrived meanwhile go in the same transaction
                more = self._queue.get()
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                with db.conn:
                    db.conn.executemany(sql, [[r.get(c) for c in REQUEST_COLUMNS] for r in batch])
            except Exception as exc:  # a locked or broken database must not take the server down
                print(f"cra serve: could not record {len(batch)} request(s): {exc}", flush=True)
        db.conn.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)


class ShareState:
    """The share of sessions answered locally, as `cra serve set-share` last set it (read at most once a second)."""

    def __init__(self, db_path: str | None, server_id: int, share: float):
        self.db_path = db_path
        self.server_id = server_id
        self._share = share
        self._read_at = time.monotonic()
        self._db: Any = None  # a sqlite3 connection, opened on first use

    def current(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= 1.0:
            self._read_at = now
            try:
                if self._db is None:
                    self._db = _open(self.db_path)
                row = self._db.execute("SELECT share FROM serve_servers WHERE id = ?", [self.server_id]).fetchone()
                if row is not None:
                    self._share = float(row[0])
            except Exception:
                pass  # keep the last known share: the database may be busy for a moment
        return self._share
