"""Which machine recorded what: the `machines` table and the `origin` columns (m012).

A database's own rows have `origin` NULL; its own machine is the `machines` row with `is_self = 1`
(cra/db/machine.py names it). Rows merged from another database point at the machine that
recorded them.
"""

from __future__ import annotations

import sqlite3


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
