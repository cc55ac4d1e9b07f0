"""`cra export parquet DIR`: every table of the database as Parquet, partitioned by month, so months
of traces from a team (`cra merge`) can be queried with DuckDB, Spark or pandas.

Layout (Hive partitioning): `DIR/<table>/month=YYYY-MM/part-0.parquet`, plus `DIR/manifest.json`
(tables, rows, columns with their SQLite and Arrow types, when and from what it was written). Columns
have the schema's declared types: INTEGER -> int64, REAL -> float64, TEXT -> string (JSON and ISO
8601 times stay text, as stored), BLOB -> binary. A value SQLite's dynamic typing let in that does
not fit its column's type is written as NULL and counted in the manifest's `mismatched`.

A row's month comes from its own time (an event's receipt, a message's timestamp, a run's start), or
its session's or turn's when it has none (transcript lines, subagents, signals); rows with no date
at all go to `month=unknown`. An empty table is still written, as one empty file with its schema.

All tables are read in one read transaction (a consistent snapshot while hooks keep writing), and
written beside DIR's current export, which each table's directory replaces only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .. import __version__
from ..errors import MissingDependencyError, NotFoundError

BATCH_ROWS = 5000

_SESSION_MONTH = "(SELECT coalesce(s.started_at, s.first_event_at) FROM sessions s WHERE s.id = t.session_id)"
_TURN_MONTH = "(SELECT u.started_at FROM turns u WHERE u.id = t.turn_id)"

# Which time puts a table's row in a month (SQL over the row `t`). Tables not named here (added by a
# later migration) use their first time-like column, else their session's time, else `unknown`.
MONTH_OF = {
    "events": "t.received_at",
    "sessions": "coalesce(t.started_at, t.first_event_at)",
    "tool_calls": f"coalesce(t.pre_at, t.post_at, {_SESSION_MONTH})",
    "transcript_files": f"coalesce({_SESSION_MONTH}, t.updated_at)",
    "transcript_lines": _SESSION_MONTH,
    "messages": f"coalesce(t.timestamp, {_SESSION_MONTH})",
    "turns": f"coalesce(t.started_at, {_SESSION_MONTH})",
    "subagents": _SESSION_MONTH,
    "compactions": f"coalesce(t.timestamp, {_SESSION_MONTH})",
    "signals": f"coalesce({_TURN_MONTH}, t.computed_at)",
    "request_shapes": "(SELECT min(r.timestamp) FROM session_request_shapes r WHERE r.shape_hash = t.shape_hash)",
    "session_request_shapes": f"coalesce(t.timestamp, {_SESSION_MONTH})",
    "machines": "t.first_seen",
}
# Tables exported as a view reads their rows (the table's columns, in its order): tool_calls with each
# call's result resolved from the transcript (m015), as every reader of a call's result sees it.
READ_THROUGH = {"tool_calls": ("tool_call_results", "tool_use_id")}
_TIME_COLUMNS = ("created_at", "started_at", "received_at", "timestamp", "recorded_at", "promoted_at", "computed_at")


@dataclass
class TableExport:
    name: str
    rows: int = 0
    months: list = field(default_factory=list)
    columns: list = field(default_factory=list)  # [{"name", "sqlite_type", "arrow_type"}]
    mismatched: dict = field(default_factory=dict)  # column -> values written as NULL


def arrow_type(declared: str):
    """The Arrow type for a column's declared SQLite type (SQLite's affinity rules)."""
    import pyarrow as pa

    t = (declared or "").upper()
    if "INT" in t:
        return pa.int64()
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return pa.large_string()
    if "BLOB" in t:
        return pa.large_binary()
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return pa.large_string()  # no declared type: kept as text


def exported_tables(con) -> list[str]:
    """Every table but SQLite's own and the internal ones (full-text indexes, rebuilt from the tables
    they index; the migrations' bookkeeping)."""
    from ..db import sqlite_utils
    from ..db.schema import internal_tables

    db = sqlite_utils.Database(con)
    skip = internal_tables(db)
    return sorted(t for t in db.table_names() if t not in skip and not t.startswith("sqlite_"))


def _month_sql(table: str, columns: list[str]) -> str:
    expr = MONTH_OF.get(table)
    if expr is None:
        own = next((c for c in _TIME_COLUMNS if c in columns), None)
        expr = f"t.[{own}]" if own else (_SESSION_MONTH if "session_id" in columns else "NULL")
    return f"CASE WHEN {expr} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]*' THEN substr({expr}, 1, 7) ELSE 'unknown' END"


def _array(values: list, typ, pa):
    """values as an Arrow array of `typ`; values that do not fit become NULL. Returns (array, how many)."""
    try:
        return pa.array(values, type=typ), 0
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        pass
    kind = (
        int
        if pa.types.is_integer(typ)
        else float
        if pa.types.is_floating(typ)
        else str
        if pa.types.is_large_string(typ)
        else bytes
    )
    fits = [v if v is None or (isinstance(v, kind) and not isinstance(v, bool)) else None for v in values]
    if kind is float:
        fits = [float(v) if isinstance(v, int) else f for v, f in zip(values, fits)]
    return pa.array(fits, type=typ), sum(1 for v, f in zip(values, fits) if v is not None and f is None)


def export_parquet(con, out_dir: str, tables: list[str] | None = None) -> dict:
    """Write the tables (default: all, see exported_tables) under out_dir. Returns the manifest."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("Parquet export needs pyarrow: pip install 'cra-claude[parquet]'") from exc
    available = exported_tables(con)
    if tables:
        unknown = [t for t in tables if t not in available]
        if unknown:
            raise NotFoundError(f"no table {', '.join(unknown)} in the database; tables: {', '.join(available)}")
    chosen = list(tables) if tables else available
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".cra-export-", dir=out_dir)
    results = []
    started = time.time()
    try:
        con.execute("BEGIN")  # one snapshot for every table
        try:
            for table in chosen:
                results.append(_export_table(con, table, staging, pa, pq))
        finally:
            con.execute("COMMIT")
        for result in results:
            final = os.path.join(out_dir, result.name)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(os.path.join(staging, result.name), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    database = con.execute("PRAGMA database_list").fetchone()[2]
    manifest = {
        "database": database,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cra_version": __version__,
        "seconds": round(time.time() - started, 3),
        "partitioning": "hive: <table>/month=YYYY-MM (or month=unknown)",
        "tables": {r.name: {k: v for k, v in r.__dict__.items() if k != "name"} for r in results},
    }
    path = os.path.join(out_dir, "manifest.json")
    if tables and os.path.exists(path):  # a partial export updates the tables it wrote
        with open(path, encoding="utf-8") as f:
            previous = json.load(f).get("tables", {})
        manifest["tables"] = {**previous, **manifest["tables"]}
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(path + ".tmp", path)
    return manifest


def _export_table(con, table: str, staging: str, pa, pq) -> TableExport:
    info = con.execute(f"PRAGMA table_info([{table}])").fetchall()
    columns = [r[1] for r in info]
    types = [arrow_type(r[2]) for r in info]
    schema = pa.schema([pa.field(c, t) for c, t in zip(columns, types)])
    result = TableExport(
        name=table,
        columns=[{"name": r[1], "sqlite_type": r[2], "arrow_type": str(t)} for r, t in zip(info, types)],
    )
    select = ", ".join(f"t.[{c}]" for c in columns)
    rows = f"[{table}] t"
    if table in READ_THROUGH:
        view, key = READ_THROUGH[table]
        rows = f"[{table}] r JOIN [{view}] t ON t.[{key}] = r.[{key}]"
    order = "r.rowid" if table in READ_THROUGH else "t.rowid"
    cur = con.execute(f"SELECT {select}, {_month_sql(table, columns)} FROM {rows} ORDER BY {order}")
    writers: dict = {}
    try:
        while True:
            batch = cur.fetchmany(BATCH_ROWS)
            if not batch:
                break
            by_month: dict = {}
            for row in batch:
                by_month.setdefault(row[-1], []).append(row)
            for month, rows in by_month.items():
                arrays = []
                for i, (name, typ) in enumerate(zip(columns, types)):
                    array, bad = _array([r[i] for r in rows], typ, pa)
                    if bad:
                        result.mismatched[name] = result.mismatched.get(name, 0) + bad
                    arrays.append(array)
                writer = writers.get(month)
                if writer is None:
                    directory = os.path.join(staging, table, f"month={month}")
                    os.makedirs(directory)
                    writer = writers[month] = pq.ParquetWriter(os.path.join(directory, "part-0.parquet"), schema)
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                result.rows += len(rows)
        if not writers:  # an empty table: its schema, in one empty file
            directory = os.path.join(staging, table, "month=unknown")
            os.makedirs(directory)
            pq.write_table(schema.empty_table(), os.path.join(directory, "part-0.parquet"))
    finally:
        for writer in writers.values():
            writer.close()
    result.months = sorted(writers)
    return result
