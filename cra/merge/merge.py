"""`cra merge`: databases recorded on several machines, merged into one by natural ids.

Each source is read through a consistent snapshot (its file is only read), migrated to this cra's
schema when it is older, attached to the destination, and merged in one transaction:

- recorded rows are matched by their natural ids (TABLES: events by event_uid, tool calls by
  tool_use_id, transcript lines by path + generation + line number, messages by uuid, ...). A row
  the destination lacks is copied; an identical one is a duplicate; a different one is a conflict;
- a conflict keeps, whatever the order of merging, the more complete version (a finished tool call
  over a pending one, more columns filled, then the larger by value) with its empty columns filled
  from the other; sessions keep the earliest start and the latest end. Two different lines at one
  transcript position are both kept: nothing recorded is dropped;
- references between tables (a call's batch event, a message's transcript line, a file's read
  cursors) are translated to the destination's ids; turns are rebuilt, and signals recomputed, for
  the sessions the merge changed, by the stages that own them;
- copied rows name the machine that recorded them in `origin` (machines.py); a row both machines
  recorded is credited to the one first by host and user.

So merging twice changes nothing, and A into B holds the same rows as B into A. What a machine made
from its rows (datasets, pairs, runs, evals, cycles) stays where it was made (NOT_MERGED).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CraError, DatabaseError, InputFormatError, NotFoundError
from . import machines

# Products of a machine's own work, with paths into its disk: rebuilt from the merged rows instead.
NOT_MERGED = (
    "datasets",
    "pairs",
    "synthetic_workflows",
    "runs",
    "artifacts",
    "evals",
    "eval_packs",
    "eval_judgements",
    "cycles",
    "promotions",
)


@dataclass
class Counts:
    new: int = 0
    duplicate: int = 0
    conflicting: int = 0
    updated: int = 0  # conflicting rows whose kept version changed in the destination


@dataclass
class SourceReport:
    path: str
    machine: dict | None = None  # {"host", "user"} its own rows are credited to
    migrated: list = field(default_factory=list)  # migrations its snapshot needed (an older schema)
    tables: dict = field(default_factory=dict)  # table -> Counts
    sessions_changed: int = 0
    turns_rebuilt: int = 0
    signals: dict | None = None  # {"computed", "unchanged", "removed"} when signals are in use
    error: str | None = None

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["tables"] = {name: dict(c.__dict__) for name, c in self.tables.items()}
        return d


@dataclass
class MergeReport:
    destination: str
    sources: list = field(default_factory=list)
    not_merged: tuple = NOT_MERGED

    @property
    def failed(self) -> list:
        return [s for s in self.sources if s.error]

    def as_dict(self) -> dict:
        return {
            "destination": self.destination,
            "sources": [s.as_dict() for s in self.sources],
            "not_merged": list(self.not_merged),
        }


# -- how each table merges --------------------------------------------------------------------------------


def _filled(row: dict) -> int:
    return sum(v is not None for v in row.values())


def _by_value(row: dict) -> str:
    """A total order on a row's values, the same on every machine (the last tie-break)."""
    return json.dumps(
        [row[c].hex() if isinstance(row[c], bytes) else row[c] for c in sorted(row)], ensure_ascii=False, default=str
    )


def _call_rank(row: dict) -> tuple:
    return (row.get("status") != "pending", row.get("source") == "both", _filled(row))


def _sql_order(value):
    """SQLite's order across types: numbers, then text, then blobs."""
    return (0 if isinstance(value, (int, float)) else 1 if isinstance(value, str) else 2, value)


def _session_span(merged: dict, a: dict, b: dict) -> None:
    for column, pick in (("started_at", min), ("first_event_at", min), ("last_event_at", max), ("ended_at", max)):
        values = [v for v in (a[column], b[column]) if v is not None]
        merged[column] = pick(values, key=_sql_order) if values else None


def _call_source(merged: dict, a: dict, b: dict) -> None:
    if {a["source"], b["source"]} == {"hook", "transcript"}:
        merged["source"] = "both"  # one machine saw the hooks, the other read the transcript


def _first_sent(merged: dict, a: dict, b: dict) -> None:
    values = [v for v in (a["timestamp"], b["timestamp"]) if v is not None]
    merged["timestamp"] = min(values, key=_sql_order) if values else None


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple  # the natural id
    ident: str | None = None  # an INTEGER PRIMARY KEY other tables point at: new rows get fresh ids
    skip: tuple = ()  # links rebuilt here (turn ids): neither copied nor compared
    remap: tuple = ()  # (column, table whose ids it holds): translated to the destination's ids
    rank: Callable = _filled  # of two versions, the larger is kept (then _by_value)
    combine: Callable | None = None  # columns merged from both versions after the fill
    # The columns `combine` recomputes from both versions: left out when choosing the winner, or the
    # kept row (its span widened) could lose to one of its own inputs on a second merge.
    combined: tuple = ()
    keep_both: bool = False  # differing versions are both kept
    match: str | None = None  # SQL matching d (destination) to s (source) when the key may be NULL
    origin: bool = False  # has an `origin` column


TABLES = (
    Table("events", ("event_uid",), ident="id", origin=True),
    Table(
        "sessions",
        ("id",),
        combine=_session_span,
        combined=("started_at", "first_event_at", "last_event_at", "ended_at"),
        origin=True,
    ),
    Table(
        "tool_calls",
        ("tool_use_id",),
        skip=("turn_id",),
        remap=(("batch_id", "events"),),
        rank=_call_rank,
        combine=_call_source,
        origin=True,
    ),
    Table("subagents", ("agent_id",)),
    Table("transcript_lines", ("path", "generation", "line_no"), ident="id", keep_both=True, origin=True),
    Table("transcript_files", ("path",)),  # read cursors: see _merge_files
    Table("messages", ("uuid",), skip=("turn_id",), remap=(("line_id", "transcript_lines"),), origin=True),
    Table(
        "compactions",
        ("uuid",),
        ident="id",
        # Older `summary` entries may have no uuid: then the session and the summary name it.
        match="d.uuid = s.uuid OR (s.uuid IS NULL AND d.uuid IS NULL AND d.session_id IS s.session_id"
        " AND d.trigger IS s.trigger AND d.summary IS s.summary)",
    ),
    Table("request_shapes", ("shape_hash",)),
    Table("session_request_shapes", ("session_id", "shape_hash"), combine=_first_sent, combined=("timestamp",)),
)

# transcript_files: where each file was read to. The further reading wins; the cursors into
# transcript_lines (norm_line_id, turns_line_id) are the destination's own.
_FILE_READING = (
    "byte_offset",
    "size",
    "inode",
    "mtime",
    "head_hash",
    "head_len",
    "line_count",
    "generation",
    "format",
    "updated_at",
)


# -- snapshots ---------------------------------------------------------------------------------------------


def snapshot(path: str, into_dir: str) -> tuple[str, list[str]]:
    """A consistent copy of the database at `path` (which is only read), migrated to this cra's
    schema. Returns (the copy's path, the migrations it needed)."""
    from ..db import sqlite_utils
    from ..db.migrations import migrations

    if not os.path.isfile(path):
        raise NotFoundError(f"no database file at {path}: pass the path of a cra database (`cra path` prints it)")
    copy = os.path.join(into_dir, "snapshot-%d.db" % len(os.listdir(into_dir)))
    try:
        source = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path)), uri=True)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # a consistent snapshot even while hooks write to the source
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.DatabaseError as exc:
        raise InputFormatError(f"{path} is not a readable SQLite database ({exc})") from exc
    db = sqlite_utils.Database(copy)
    try:
        if "_sqlite_migrations" not in db.table_names():
            raise InputFormatError(f"{path} is not a cra database (it has no schema migrations table)")
        applied = {r[0] for r in db.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'cra'")}
        if not applied:
            raise InputFormatError(f"{path} is not a cra database (no cra migration was ever applied to it)")
        unknown = sorted(applied - {m.name for m in migrations.pending(sqlite_utils.Database(memory=True))})
        if unknown:
            raise DatabaseError(
                f"{path} was written by a newer cra (its schema has {', '.join(unknown)}): upgrade cra here first"
            )
        pending = [m.name for m in migrations.pending(db)]
        if pending:
            migrations.apply(db)
    finally:
        db.conn.close()
    return copy, pending


# -- the merge ---------------------------------------------------------------------------------------------


def merge_databases(db, sources: list[str], *, progress: Callable[[str], None] | None = None) -> MergeReport:
    """Merge each database in `sources` into `db` (a sqlite_utils.Database), one transaction per
    source. A source that cannot be read is reported (its `error`) and the others go on."""
    dest_path = db.execute("PRAGMA database_list").fetchone()[2]
    report = MergeReport(destination=dest_path)
    with tempfile.TemporaryDirectory(prefix="cra-merge-") as tmp:
        for path in sources:
            if progress is not None:
                progress(path)
            result = SourceReport(path=path)
            report.sources.append(result)
            try:
                if dest_path and os.path.exists(path) and os.path.samefile(path, dest_path):
                    raise InputFormatError(f"{path} is the destination database itself")
                copy, result.migrated = snapshot(path, tmp)
                _merge_one(db, copy, path, result)
            except CraError as exc:
                result.error = str(exc)
            finally:
                for name in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, name))
    return report


def _merge_one(db, copy: str, path: str, result: SourceReport) -> None:
    con = db.conn
    con.execute("ATTACH DATABASE ? AS src", (copy,))
    try:
        uses_signals = bool(
            con.execute("SELECT 1 FROM main.signals LIMIT 1").fetchone()
            or con.execute("SELECT 1 FROM src.signals LIMIT 1").fetchone()
        )
        con.execute("BEGIN IMMEDIATE")
        try:
            merger = _Merger(con, result)
            merger.map_origins(path)
            for table in TABLES:
                if table.name == "transcript_files":
                    merger.merge_files()
                else:
                    merger.merge(table)
            result.turns_rebuilt = merger.rebuild_turns()
            result.sessions_changed = len(merger.sessions)
            machines.refresh_spans(con)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            for name in [r[0] for r in con.execute("SELECT name FROM temp.sqlite_master WHERE type = 'table'")]:
                if name.startswith("merge_"):
                    con.execute(f"DROP TABLE temp.[{name}]")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"merging {path} failed ({exc}); the destination is unchanged") from exc
    finally:
        con.execute("DETACH DATABASE src")
    if uses_signals and merger.sessions:
        from ..signals.store import update_signals

        totals = {"computed": 0, "unchanged": 0, "removed": 0}
        for session_id in sorted(merger.sessions):
            r = update_signals(db, session_id=session_id)
            totals["computed"] += r.computed
            totals["unchanged"] += r.unchanged
            totals["removed"] += r.removed
        result.signals = totals


class _Merger:
    """One source's merge, inside the destination's transaction; the source is attached as `src`."""

    def __init__(self, con: sqlite3.Connection, result: SourceReport):
        self.con, self.result = con, result
        self.sessions: set = set()  # sessions whose rows changed: their turns are rebuilt

    # -- machines --------------------------------------------------------------------------------------

    def map_origins(self, path: str) -> None:
        """temp.merge_origin: the source's origin (0 for its own rows) -> the destination's (NULL: its own)."""
        con = self.con
        own = machines.self_machine(con, "src")
        if own is None:  # never opened as a machine's CRA_HOME database: named after its file
            own = {"id": None, "host": os.path.splitext(os.path.basename(path))[0], "user": "", "cra_version": None}
        self.result.machine = {"host": own["host"], "user": own["user"]}
        here = machines.self_machine(con, "main")
        con.execute("CREATE TEMP TABLE merge_origin (s INTEGER PRIMARY KEY, d INTEGER)")
        entries = [(0, own)]
        for row in con.execute("SELECT id, host, user, cra_version, is_self FROM src.machines").fetchall():
            entries.append((row[0], own if row[4] else {"host": row[1], "user": row[2], "cra_version": row[3]}))
        for source_id, m in entries:
            if here is not None and (m["host"], m["user"]) == (here["host"], here["user"]):
                dest_id = None  # recorded on this database's own machine
            else:
                found = con.execute(
                    "SELECT id, cra_version FROM machines WHERE host = ? AND user = ?", (m["host"], m["user"])
                ).fetchone()
                if found is None:
                    dest_id = con.execute(
                        "INSERT INTO machines (host, user, cra_version) VALUES (?, ?, ?)",
                        (m["host"], m["user"], m["cra_version"]),
                    ).lastrowid
                else:
                    dest_id = found[0]
                    version = machines.newer_version(found[1], m["cra_version"])
                    if version != found[1]:
                        con.execute("UPDATE machines SET cra_version = ? WHERE id = ?", (version, dest_id))
            con.execute("INSERT INTO temp.merge_origin (s, d) VALUES (?, ?)", (source_id, dest_id))
        # The order that credits a row both machines recorded: host, user (this database's own rows as
        # its own machine; unnamed own rows first).
        self.order = {r[0]: (1, r[1], r[2]) for r in con.execute("SELECT id, host, user FROM machines")}
        self.order[None] = self.order[here["id"]] if here else (0, "", "")

    def _credit(self, origin):
        return self.order.get(origin, self.order[None])

    # -- tables ----------------------------------------------------------------------------------------

    def _columns(self, table: Table) -> list[str]:
        skip = set(table.skip) | {"origin"} | ({table.ident} if table.ident else set())
        return [r[1] for r in self.con.execute(f"PRAGMA main.table_info([{table.name}])") if r[1] not in skip]

    def _incoming(self, table: Table, columns: list[str]) -> list[str]:
        """SQL for each column's value as the destination will hold it (over source row `s`)."""
        remap = dict(table.remap)
        return [
            f"(SELECT m.d FROM temp.merge_ids_{remap[c]} m WHERE m.s = s.[{c}])" if c in remap else f"s.[{c}]"
            for c in columns
        ]

    def merge(self, table: Table) -> None:
        con, name = self.con, table.name
        counts = self.result.tables.setdefault(name, Counts())
        columns = self._columns(table)
        incoming = self._incoming(table, columns)
        origin = "(SELECT o.d FROM temp.merge_origin o WHERE o.s = coalesce(s.origin, 0))" if table.origin else None
        con.execute("CREATE TEMP TABLE merge_pair (s INTEGER PRIMARY KEY, d INTEGER, same INTEGER, clash INTEGER)")
        if table.keep_both:
            self._pair_keeping_both(table, columns, incoming)
        else:
            match = table.match or " AND ".join(f"d.[{k}] = s.[{k}]" for k in table.key)
            con.execute(
                f"INSERT INTO temp.merge_pair (s, d) SELECT s.rowid, min(d.rowid) FROM src.[{name}] s"
                f" LEFT JOIN main.[{name}] d ON {match} GROUP BY s.rowid"
            )
            same = " AND ".join(f"{value} IS d.[{c}]" for c, value in zip(columns, incoming))
            con.execute(
                f"UPDATE temp.merge_pair SET same = (SELECT {same} FROM src.[{name}] s, main.[{name}] d"
                f" WHERE s.rowid = merge_pair.s AND d.rowid = merge_pair.d) WHERE d IS NOT NULL"
            )
        counts.duplicate += con.execute("SELECT count(*) FROM temp.merge_pair WHERE same").fetchone()[0]
        has_session = "session_id" in columns
        # New rows, in the source's order (a stream's messages are ordered by their lines' ids).
        con.execute("CREATE TEMP TABLE merge_new (n INTEGER PRIMARY KEY, s INTEGER)")
        con.execute("INSERT INTO temp.merge_new (s) SELECT s FROM temp.merge_pair WHERE d IS NULL ORDER BY s")
        added = con.execute("SELECT count(*) FROM temp.merge_new").fetchone()[0]
        clashes = con.execute("SELECT count(*) FROM temp.merge_pair WHERE d IS NULL AND clash").fetchone()[0]
        counts.new += added - clashes
        counts.conflicting += clashes
        base = 0  # new rows of a table with ids get base + 1, base + 2, ... in the source's order
        if table.ident:
            base = con.execute(f"SELECT coalesce(max([{table.ident}]), 0) FROM main.[{name}]").fetchone()[0]
        if added:
            target = list(columns)
            values = list(incoming)
            if table.ident:
                target.insert(0, table.ident)
                values.insert(0, f"{base} + n.n")
            if origin:
                target.append("origin")
                values.append(origin)
            con.execute(
                f"INSERT INTO main.[{name}] ({', '.join(f'[{c}]' for c in target)})"
                f" SELECT {', '.join(values)} FROM temp.merge_new n JOIN src.[{name}] s ON s.rowid = n.s ORDER BY n.n"
            )
            if has_session:
                self._touch(f"SELECT DISTINCT s.session_id FROM temp.merge_new n JOIN src.[{name}] s ON s.rowid = n.s")
        if table.ident:  # source id -> destination id, for the tables that point at this one
            con.execute(f"CREATE TEMP TABLE merge_ids_{name} (s INTEGER PRIMARY KEY, d INTEGER)")
            con.execute(
                f"INSERT INTO temp.merge_ids_{name} (s, d) SELECT p.s, coalesce(p.d, ? + n.n)"
                f" FROM temp.merge_pair p LEFT JOIN temp.merge_new n ON n.s = p.s",
                (base,),
            )
        if not table.keep_both:
            self._resolve_conflicts(table, columns, incoming, origin, counts)
        if origin:
            self._credit_duplicates(table, origin)
        con.execute("DROP TABLE temp.merge_pair")
        con.execute("DROP TABLE temp.merge_new")

    def _pair_keeping_both(self, table: Table, columns: list[str], incoming: list[str]) -> None:
        """Transcript lines: a duplicate is a stored line at the same position with the same bytes; a
        line at a taken position with other bytes is kept beside it (`clash`)."""
        con, name = self.con, table.name
        key = ", ".join(table.key)
        # The destination's lines of the source's files, indexed by position (its own index is by id).
        con.execute(
            f"CREATE TEMP TABLE merge_keys AS SELECT rowid AS d, {key} FROM main.[{name}]"
            f" WHERE path IN (SELECT DISTINCT path FROM src.[{name}])"
        )
        con.execute(f"CREATE INDEX temp.merge_keys_position ON merge_keys ({key})")
        match = " AND ".join(f"k.[{k}] = s.[{k}]" for k in table.key)
        con.execute(
            f"INSERT INTO temp.merge_pair (s, d, same, clash)"
            f" SELECT s.rowid, min(CASE WHEN x.raw IS s.raw AND x.raw_bytes IS s.raw_bytes THEN x.rowid END),"
            f" min(CASE WHEN x.raw IS s.raw AND x.raw_bytes IS s.raw_bytes THEN 1 END), max(k.d IS NOT NULL)"
            f" FROM src.[{name}] s LEFT JOIN temp.merge_keys k ON {match}"
            f" LEFT JOIN main.[{name}] x ON x.rowid = k.d GROUP BY s.rowid"
        )
        con.execute("DROP TABLE temp.merge_keys")

    def _resolve_conflicts(self, table: Table, columns, incoming, origin, counts: Counts) -> None:
        con, name = self.con, table.name
        origin_sql = origin or "NULL"
        rows = con.execute(
            f"SELECT p.d, {origin_sql}, {'d.origin' if origin else 'NULL'}, {', '.join(incoming)},"
            f" {', '.join(f'd.[{c}]' for c in columns)} FROM temp.merge_pair p JOIN src.[{name}] s ON s.rowid = p.s"
            f" JOIN main.[{name}] d ON d.rowid = p.d WHERE NOT p.same"
        ).fetchall()
        n = len(columns)
        for row in rows:
            rowid, new_origin, old_origin = row[:3]
            theirs, ours = dict(zip(columns, row[3 : 3 + n])), dict(zip(columns, row[3 + n :]))
            counts.conflicting += 1
            kept, theirs_won = keep(table, ours, theirs)
            kept_origin = new_origin if theirs_won else old_origin
            if kept == ours and kept_origin == old_origin:
                continue
            changed = [c for c in columns if kept[c] != ours[c]]
            sets = [f"[{c}] = ?" for c in changed] + (["origin = ?"] if origin else [])
            params = [kept[c] for c in changed] + ([kept_origin] if origin else [])
            con.execute(f"UPDATE main.[{name}] SET {', '.join(sets)} WHERE rowid = ?", (*params, rowid))
            counts.updated += 1
            if "session_id" in columns:
                self.sessions.update(v for v in (ours["session_id"], kept["session_id"]) if v is not None)

    def _credit_duplicates(self, table: Table, origin: str) -> None:
        """A row both databases hold goes to the machine first by host and user (so A into B and B into
        A credit it alike)."""
        con, name = self.con, table.name
        rows = con.execute(
            f"SELECT p.d, {origin}, d.origin FROM temp.merge_pair p JOIN src.[{name}] s ON s.rowid = p.s"
            f" JOIN main.[{name}] d ON d.rowid = p.d WHERE p.same AND {origin} IS NOT d.origin"
        ).fetchall()
        updates = [(new, rowid) for rowid, new, old in rows if self._credit(new) < self._credit(old)]
        con.executemany(f"UPDATE main.[{name}] SET origin = ? WHERE rowid = ?", updates)

    def merge_files(self) -> None:
        """transcript_files, after transcript_lines: a new file gets the source's read position and its
        normalisation cursors translated; a known one keeps the further read position."""
        con = self.con
        counts = self.result.tables.setdefault("transcript_files", Counts())
        reading = ", ".join(_FILE_READING)
        rows = con.execute(
            f"SELECT s.path, s.session_id, s.agent_id, {', '.join('s.' + c for c in _FILE_READING)},"
            " s.norm_line_id, s.turns_line_id,"
            " (SELECT count(*) FROM src.transcript_lines l WHERE l.path = s.path AND l.id > s.norm_line_id)"
            " FROM src.transcript_files s ORDER BY s.path"
        ).fetchall()
        for path, session_id, agent_id, *rest in rows:
            theirs = dict(zip(_FILE_READING, rest[: len(_FILE_READING)]))
            norm, turns, pending = rest[len(_FILE_READING) :]
            mine = con.execute(
                f"SELECT session_id, agent_id, {reading}, norm_line_id FROM main.transcript_files WHERE path = ?",
                (path,),
            ).fetchone()
            last = con.execute("SELECT max(id) FROM main.transcript_lines WHERE path = ?", (path,)).fetchone()[0] or 0
            if mine is None:
                counts.new += 1
                # Lines the source had normalised came with their messages; any others wait for `cra sync`.
                cursor = last if not pending else self._line_id(min(norm, turns))
                con.execute(
                    f"INSERT INTO main.transcript_files (path, session_id, agent_id, {reading}, norm_line_id,"
                    f" turns_line_id) VALUES (?, ?, ?, {', '.join('?' * len(_FILE_READING))}, ?, ?)",
                    (path, session_id, agent_id, *theirs.values(), cursor, cursor),
                )
                continue
            ours = dict(zip(_FILE_READING, mine[2 : 2 + len(_FILE_READING)]))
            my_norm = mine[-1]
            mine_pending = con.execute(
                "SELECT count(*) FROM main.transcript_lines WHERE path = ? AND id > ?", (path, my_norm)
            ).fetchone()[0]
            if _same_reading(ours, theirs) and mine[0] == (mine[0] or session_id) and mine[1] == (mine[1] or agent_id):
                counts.duplicate += 1
            else:
                counts.conflicting += 1
            further = theirs if _reading_rank(theirs) > _reading_rank(ours) else ours
            # Every line normalised on both sides (the new ones came with their messages): caught up.
            cursor = my_norm if mine_pending else (last if not pending else min(my_norm, self._line_id(norm)))
            if further != ours or cursor != my_norm or mine[0] is None or mine[1] is None:
                con.execute(
                    f"UPDATE main.transcript_files SET {', '.join(c + ' = ?' for c in _FILE_READING)},"
                    " session_id = coalesce(session_id, ?), agent_id = coalesce(agent_id, ?),"
                    " norm_line_id = ?, turns_line_id = min(turns_line_id, ?) WHERE path = ?",
                    (*further.values(), session_id, agent_id, cursor, cursor, path),
                )
                if further != ours:
                    counts.updated += 1

    def _line_id(self, source_id: int) -> int:
        """A source transcript_lines id as the destination's (0 when it is not a line's)."""
        row = self.con.execute("SELECT d FROM temp.merge_ids_transcript_lines WHERE s = ?", (source_id,)).fetchone()
        return row[0] if row else 0

    def _touch(self, sql: str) -> None:
        self.sessions.update(r[0] for r in self.con.execute(sql) if r[0] is not None)

    # -- derived rows ----------------------------------------------------------------------------------

    def rebuild_turns(self) -> int:
        """Turns of every stream of the sessions the merge changed, by the transcripts stage's code."""
        from ..transcripts.turns import rebuild_turns

        ids = sorted(self.sessions)
        streams = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            streams.update(
                self.con.execute(
                    "SELECT DISTINCT session_id, agent_id FROM messages WHERE session_id IN (%s)"
                    % ",".join("?" * len(part)),
                    part,
                ).fetchall()
            )
        return sum(rebuild_turns(self.con, s, a) for s, a in sorted(streams, key=lambda k: (k[0], k[1] or "")))


def _same_reading(a: dict, b: dict) -> bool:
    """Read to the same place of the same file (when each machine last looked aside)."""
    return all(a[c] == b[c] for c in _FILE_READING if c != "updated_at")


def _reading_rank(reading: dict) -> tuple:
    return (
        reading["generation"] or 0,
        reading["line_count"] or 0,
        reading["byte_offset"] or 0,
        _by_value(reading),
    )


def keep(table: Table, ours: dict, theirs: dict) -> tuple[dict, bool]:
    """The version of a conflicting row both orders of merging keep: the larger by the table's rank
    (then by value), its empty columns filled from the other, then the table's own column rules.
    Returns (row, whether `theirs` won)."""

    def order(row):
        chosen_by = {c: v for c, v in row.items() if c not in table.combined}
        return table.rank(chosen_by), _by_value(chosen_by)

    theirs_won = order(theirs) > order(ours)
    winner, other = (theirs, ours) if theirs_won else (ours, theirs)
    kept = {c: winner[c] if winner[c] is not None else other[c] for c in winner}
    if table.combine is not None:
        table.combine(kept, ours, theirs)
    return kept, theirs_won
