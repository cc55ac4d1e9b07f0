"""The schema described from itself: column notes, the migration that made each table, the links
between tables, and Datasette metadata built from them.

The notes are the `-- comments` written beside each column in cra/db/migrations.py; SQLite keeps the
CREATE TABLE text verbatim, so a database describes itself and the README (scripts/schema_doc.py),
Datasette (`cra browse`) and this module read one source.
"""

import re

# tool_calls.status grouped as the reports, the signals, the dataset filters and the
# `tool_calls_with_turns.call_outcome` column (m014) count calls: one definition for all of them.
ERRORED = ("failure", "invalid", "blocked")  # the call errored (invalid input; blocked: a hook refused it)
DENIED = ("denied",)  # the user or the permission rules said no
CALL_OUTCOMES = {
    "succeeded": "the tool ran and returned a result",
    "errored": "the tool failed, its input was invalid, or a hook blocked it (status failure, invalid, blocked)",
    "denied": "the user or the permission rules refused it (status denied)",
    "interrupted": "the user interrupted it",
    "pending": "no result was recorded",
}

_CONSTRAINT = re.compile(r"^\s*(PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK|CONSTRAINT)\b", re.I)
_COLUMN = re.compile(r"^\s*\[?([A-Za-z_][A-Za-z0-9_]*)\]?\s+[^-]*?(?:--\s*(.*))?$")
_COMMENT_ONLY = re.compile(r"^\s*--\s*(.*)$")

# Questions people ask of their traces, one click away in Datasette.
CANNED_QUERIES = {
    "tool_outcomes": {
        "title": "Tool calls by tool and status",
        "description": "How each tool's calls ended (status: see the tool_calls table's notes).",
        "sql": "select tool_name, status, count(*) as calls from tool_calls group by 1, 2 order by calls desc",
    },
    "failed_calls": {
        "title": "Recent calls that did not succeed",
        "description": "Failed, denied, blocked, invalid and interrupted calls, newest first, with their turn.",
        "sql": "select tool_use_id, session_id, tool_name, status, error, turn_index, prompt_text, pre_at"
        " from tool_calls_with_turns where status not in ('success', 'pending') order by pre_at desc limit 100",
    },
    "workflows": {
        "title": "Workflows and exploration depth of main-thread turns",
        "sql": "select workflow, exploration_depth, count(*) as turns from turns_with_signals"
        " where agent_id is null group by 1, 2 order by turns desc",
    },
    "recoveries": {
        "title": "Turns with failures, and whether Claude recovered",
        "sql": "select id, session_id, sequence_pattern, failures, recoveries, unrecovered_failures"
        " from turns_with_signals where failures > 0 order by id desc limit 100",
    },
    "search_messages": {
        "title": "Search prompts, answers and thinking",
        "description": "Full-text search over messages (FTS5 syntax).",
        "sql": "select m.session_id, m.role, snippet(messages_fts, -1, '[', ']', '...', 16) as hit"
        " from messages_fts join messages m on m.rowid = messages_fts.rowid"
        " where messages_fts match :query order by m.timestamp desc limit 50",
    },
    "sessions_by_day": {
        "title": "Sessions and tool calls per day",
        "sql": "select substr(s.started_at, 1, 10) as day, count(distinct s.id) as sessions,"
        " count(t.tool_use_id) as tool_calls from sessions s left join tool_calls t on t.session_id = s.id"
        " group by 1 order by 1 desc",
    },
}


def column_notes(create_sql: str) -> dict:
    """column -> its `-- comment` in the CREATE TABLE (continued on following comment-only lines)."""
    notes: dict[str, str] = {}
    last = None
    body = create_sql[create_sql.find("(") + 1 :]
    for line in body.splitlines():
        only = _COMMENT_ONLY.match(line)
        if only and last:
            notes[last] = (notes.get(last, "") + " " + only.group(1).strip()).strip()
            continue
        if _CONSTRAINT.match(line):
            last = None
            continue
        m = _COLUMN.match(line)
        if m:
            last = m.group(1)
            if m.group(2):
                notes[last] = m.group(2).strip()
    return notes


def build_schema_db():
    """A fresh in-memory database with every migration applied, and which migration made what:
    {("table" | "view", name): (migration name, its docstring as one line)}."""
    import sqlite_utils

    from .migrations import migrations

    db = sqlite_utils.Database(memory=True)
    origin: dict[tuple[str, str], tuple[str, str]] = {}
    pending = migrations.pending(db)
    for i, migration in enumerate(pending):
        migrations.apply(db, stop_before=[m.name for m in pending[i + 1 :]])
        doc = " ".join((migration.fn.__doc__ or "").split())
        # Keyed by kind too: a table a later migration replaced by a view (api_shapes) is that one's.
        for name in db.table_names():
            origin.setdefault(("table", name), (migration.name, doc))
        for name in db.view_names():
            origin.setdefault(("view", name), (migration.name, doc))
    return db, origin


def internal_tables(db) -> set:
    """FTS indexes, their shadow tables and the migrations' bookkeeping: not user-facing tables."""
    fts = {t for t in db.table_names() if t.endswith("_fts")}
    shadow = {t for t in db.table_names() for f in fts if t.startswith(f + "_")}
    return fts | shadow | {"_sqlite_migrations"}


def datasette_metadata(database_name: str) -> dict:
    """Datasette metadata for a cra database named `database_name` (its file name without `.db`):
    every table's and column's description, from the migrations, and the canned queries."""
    db, origin = build_schema_db()
    skip = internal_tables(db)
    tables = {}
    for name in db.table_names():
        if name in skip:
            continue
        notes = column_notes(db[name].schema)
        tables[name] = {"description": origin.get(("table", name), ("", ""))[1], "columns": notes}
    for name in db.view_names():
        migration, _ = origin.get(("view", name), ("", ""))
        tables[name] = {"description": f"View ({migration}); its columns are described on the tables it joins."}
    return {
        "title": "cra: what Claude Code did",
        "description": "Hook events, tool calls, transcripts, signals, datasets, runs and evals recorded by cra.",
        "databases": {database_name: {"tables": tables, "queries": CANNED_QUERIES}},
    }
