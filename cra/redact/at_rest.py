"""`cra redact db`: rewrite the secrets stored in the database, in place.

For users who must not keep raw secrets on disk. Everything cra stored as it was recorded (hook
payloads, raw transcript lines, messages, turns, tool calls, compaction summaries, request shapes,
subagent descriptions, pairs) is redacted where it stands: JSON columns as data (so a key that names
a secret counts), text columns as text. Home paths stay: they are not secrets, and they locate the
transcript files cra reads.

What keeps the rest consistent:
- the full-text indexes follow through their update triggers, then are optimized, so no deleted
  term is left in an index segment;
- pairs get their content hash recomputed (two pairs the redaction made equal become one);
- signals are recomputed for the turns whose text changed (their input keys changed);
- `secure_delete`, a WAL checkpoint and VACUUM leave no old page content in the file.

A consistent copy of the database is written first (`VACUUM INTO`); it holds the originals, and the
caller is told to delete it once satisfied. Claude Code's own transcript files are not cra's to
change: they keep what they hold.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import DatabaseError
from .redactor import Redactor

# (table, column, how): 'json' parsed and redacted as data, 'text' as text, 'bytes' decoded, redacted
# and encoded back (the rare lines and payloads that were not valid UTF-8).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("events", "payload", "json"),
    ("events", "payload_bytes", "bytes"),
    ("events", "env", "json"),
    ("transcript_lines", "raw", "json"),
    ("transcript_lines", "raw_bytes", "bytes"),
    ("messages", "content", "json"),
    ("messages", "text", "text"),
    ("messages", "thinking", "text"),
    ("turns", "prompt_text", "text"),
    ("turns", "final_answer", "text"),
    ("tool_calls", "tool_input", "json"),
    ("tool_calls", "tool_response", "json"),
    ("tool_calls", "response_text", "text"),
    ("tool_calls", "error", "text"),
    ("compactions", "summary", "text"),
    ("request_shapes", "system", "text"),
    ("request_shapes", "system_blocks", "json"),
    ("request_shapes", "tools", "json"),
    ("subagents", "description", "text"),
    ("pairs", "prompt", "json"),
    ("pairs", "chosen", "json"),
    ("pairs", "rejected", "json"),
    ("pairs", "tools", "json"),
)
FTS_TABLES = ("messages_fts", "turns_fts")
_BATCH = 500


@dataclass
class RewriteResult:
    applied: bool
    backup: str | None = None
    rows: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows changed (or to change)
    kinds: dict[str, int] = field(default_factory=dict)  # replacements by kind
    merged_pairs: int = 0

    @property
    def changed(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "backup": self.backup,
            "rows_changed": self.changed,
            "rows": self.rows,
            "replacements": self.kinds,
            "merged_pairs": self.merged_pairs,
        }


def redact_database(db, *, apply: bool, backup: str | None = None) -> RewriteResult:
    """Redact every stored copy of recorded content. With apply=False nothing is written: the
    result says what would change. With apply=True a backup is written first to `backup`
    (default: beside the database), then the rows are rewritten in one transaction."""
    conn: sqlite3.Connection = db.conn
    redactor = Redactor(home_paths=False)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    result = RewriteResult(applied=apply)
    if apply:
        result.backup = _backup(conn, backup)
        conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left holding secrets
        conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, how in COLUMNS:
            if table not in tables:
                continue
            changed = _rewrite_column(conn, redactor, table, column, how, apply)
            if changed:
                result.rows[f"{table}.{column}"] = changed
        if apply and "pairs" in tables and any(k.startswith("pairs.") for k in result.rows):
            result.merged_pairs = _rehash_pairs(conn)
        if apply:
            conn.execute("COMMIT")
    except BaseException:
        if apply and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    result.kinds = dict(sorted(redactor.counts.items()))
    if apply and result.changed:
        _settle(db, tables)
    return result


def _backup(conn: sqlite3.Connection, path: str | None) -> str:
    main = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = f"{main}.before-redact-{stamp}"
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path):
        raise DatabaseError(f"{path} already exists: name another backup file (--backup PATH)")
    umask = os.umask(0o077)  # owner-only from the first byte, as the database itself
    try:
        conn.execute("VACUUM INTO ?", [path])
    except sqlite3.Error as exc:
        raise DatabaseError(f"could not write the backup {path}: {exc}. Nothing was changed.") from exc
    finally:
        os.umask(umask)
    return path


def _rewrite_column(conn, redactor: Redactor, table: str, column: str, how: str, apply: bool) -> int:
    changed = 0
    last = 0
    while True:
        rows = conn.execute(
            f"SELECT rowid, [{column}] FROM [{table}] WHERE rowid > ? AND [{column}] IS NOT NULL"
            " ORDER BY rowid LIMIT ?",
            [last, _BATCH],
        ).fetchall()
        if not rows:
            return changed
        updates = []
        for rowid, value in rows:
            new = _redacted(redactor, value, how)
            if new is not None:
                updates.append((new, rowid))
        changed += len(updates)
        if apply and updates:
            conn.executemany(f"UPDATE [{table}] SET [{column}] = ? WHERE rowid = ?", updates)
        last = rows[-1][0]


def _redacted(redactor: Redactor, value, how: str):
    """The redacted value, or None when redaction changes nothing."""
    if how == "bytes":
        if not isinstance(value, bytes):
            return None
        text = value.decode("utf-8", errors="surrogateescape")
        new = redactor.redact(text)
        return new.encode("utf-8", errors="surrogateescape") if new != text else None
    if not isinstance(value, str):
        return None
    if how == "json":
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if isinstance(data, (dict, list, str)):
            new_data = redactor.redact_obj(data)
            if new_data == data:
                return None
            compact = '": ' not in value and '", ' not in value
            return json.dumps(new_data, ensure_ascii=False, separators=(",", ":") if compact else None)
    new = redactor.redact(value)
    return new if new != value else None


def _rehash_pairs(conn) -> int:
    """Recompute each pair's content hash; a pair that became equal to another is dropped."""
    from ..db.identity import pair_hash

    rows = conn.execute("SELECT id, prompt, chosen, rejected, content_hash FROM pairs ORDER BY id").fetchall()
    keep: dict[str, int] = {}
    drop, moved = [], []
    for pair_id, prompt, chosen, rejected, old in rows:
        new = pair_hash(json.loads(prompt), json.loads(chosen), json.loads(rejected))
        if new in keep:
            drop.append(pair_id)
        else:
            keep[new] = pair_id
            if new != old:
                moved.append((new, pair_id))
    conn.executemany("DELETE FROM pairs WHERE id = ?", [(i,) for i in drop])
    # Through placeholders first: a new hash may still be another row's old one (UNIQUE).
    conn.executemany("UPDATE pairs SET content_hash = 'rehash-' || id WHERE id = ?", [(i,) for _, i in moved])
    conn.executemany("UPDATE pairs SET content_hash = ? WHERE id = ?", moved)
    return len(drop)


def _settle(db, tables: set[str]) -> None:
    """Derived rows and the file itself after the rewrite: signals, indexes, old pages."""
    from ..signals.store import update_signals

    conn = db.conn
    update_signals(db)
    for fts in FTS_TABLES:
        if fts in tables:
            conn.execute(f"INSERT INTO [{fts}] ([{fts}]) VALUES ('optimize')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
