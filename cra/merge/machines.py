"""Which machine recorded what: the `machines` table and the `origin` columns (m012).

A database's own rows have `origin` NULL; its own machine is the `machines` row with `is_self = 1`,
written the first time a `cra` command opens it as CRA_HOME's database (the one its hooks write
to), and kept when the file is copied elsewhere. Rows merged from another database point at the
machine that recorded them.
"""

from __future__ import annotations

import getpass
import socket
import sqlite3

from .. import __version__


def this_machine() -> tuple[str, str]:
    """(host, user) of the running process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME: a bare container
        user = ""
    return socket.gethostname() or "localhost", user


def record_self(conn: sqlite3.Connection) -> None:
    """Name this database's own machine, once; afterwards only a new cra version is written."""
    try:
        row = conn.execute("SELECT id, cra_version FROM machines WHERE is_self = 1").fetchone()
        if row is not None:
            if row[1] != __version__:
                conn.execute("UPDATE machines SET cra_version = ? WHERE id = ?", (__version__, row[0]))
            return
        host, user = this_machine()
        conn.execute(
            "INSERT INTO machines (host, user, cra_version, is_self) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (host, user) DO UPDATE SET is_self = 1, cra_version = excluded.cra_version",
            (host, user, __version__),
        )
    except sqlite3.Error:
        pass  # provenance never stops a command (a read-only or busy database is named on a later run)


def self_machine(conn: sqlite3.Connection, schema: str = "main") -> dict | None:
    """The database's own machine row, or None when it was never opened as CRA_HOME's database."""
    row = conn.execute(f"SELECT id, host, user, cra_version FROM {schema}.machines WHERE is_self = 1").fetchone()
    return None if row is None else {"id": row[0], "host": row[1], "user": row[2], "cra_version": row[3]}


# Where a machine's activity shows: the span of these timestamps over its rows is first/last seen.
_ACTIVITY = (
    ("events", "received_at", "received_at"),
    ("sessions", "coalesce(started_at, first_event_at)", "coalesce(last_event_at, ended_at, first_event_at)"),
)


def refresh_spans(conn: sqlite3.Connection) -> None:
    """first_seen / last_seen of every machine from the rows credited to it (its own rows, origin
    NULL, for the self row)."""
    self_row = conn.execute("SELECT id FROM machines WHERE is_self = 1").fetchone()
    self_id = self_row[0] if self_row else None
    spans: dict = {}
    for table, first, last in _ACTIVITY:
        for origin, lo, hi in conn.execute(
            f"SELECT coalesce(origin, ?), min({first}), max({last}) FROM {table} GROUP BY 1", (self_id,)
        ):
            if origin is None:
                continue  # rows recorded here, in a database that never named its machine
            old = spans.get(origin, (None, None))
            spans[origin] = (_pick(min, old[0], lo), _pick(max, old[1], hi))
    for (machine_id,) in conn.execute("SELECT id FROM machines").fetchall():
        lo, hi = spans.get(machine_id, (None, None))
        conn.execute(
            "UPDATE machines SET first_seen = ?, last_seen = ?"
            " WHERE id = ? AND (first_seen IS NOT ? OR last_seen IS NOT ?)",
            (lo, hi, machine_id, lo, hi),
        )


def _pick(fn, a, b):
    values = [v for v in (a, b) if v is not None]
    return fn(values) if values else None


def newer_version(a: str | None, b: str | None) -> str | None:
    """The later of two cra versions (numeric parts compared as numbers), either when one is None."""
    if a is None or b is None:
        return a if b is None else b

    def key(v: str):
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.replace("-", ".").split(".")]

    return max(a, b, key=key)
