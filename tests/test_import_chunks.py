"""`cra import`'s shortcuts must not change what it stores.

- A tool call whose tool_use and tool_result arrive in one chunk is written once (INSERT with its
  result); one split across chunks is inserted pending, then updated. Both must end identical, so an
  import in tiny chunks has to give the same database as one in whole files.
- Rebuilding a stream's turns writes only what changed: earlier turns (and their tool calls) of a
  session that grew are not rewritten.
"""

import sqlite3
from pathlib import Path

from conftest import build_fixture_db, scenario_dirs

from claude_hooks import transcript_tail
from cra.db import open_db
from cra.transcripts.importer import import_paths

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
RECORDED = Path(__file__).parent / "fixtures" / "recorded"
S2 = "20000000-0000-4000-8000-000000000002"

TABLES = {
    "transcript_lines": "id",
    "messages": "uuid",
    "tool_calls": "tool_use_id",
    "turns": "session_id, agent_id, turn_index",
    "compactions": "uuid",
    "subagents": "agent_id",
    "sessions": "id",
    "api_shapes": "session_id, shape_hash",
}


def _dump(path):
    con = sqlite3.connect(str(path))
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}
    finally:
        con.close()


def _build(path, monkeypatch, chunk_bytes=None):
    """The recorded scenarios (hook events, then their transcripts) and the hand-written transcripts,
    imported with `chunk_bytes` per chunk. Returns the SQL the import ran."""
    real = transcript_tail.tail_file
    if chunk_bytes is not None:
        monkeypatch.setattr(
            transcript_tail, "tail_file", lambda con, p, **kw: real(con, p, **{**kw, "chunk_bytes": chunk_bytes})
        )
    statements = []
    real_open = open_db

    def traced_open(*a, **kw):
        db = real_open(*a, **kw)
        db.conn.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr("cra.db.open_db", traced_open)
    build_fixture_db(path, scenario_dirs(RECORDED), transcript_paths=[str(FIXTURES)])
    monkeypatch.setattr(transcript_tail, "tail_file", real)
    return statements


def test_chunking_does_not_change_what_is_stored(tmp_path, monkeypatch):
    whole_sql = _build(tmp_path / "whole.db", monkeypatch)
    tiny_sql = _build(tmp_path / "tiny.db", monkeypatch, chunk_bytes=2000)
    folded = (
        "INSERT INTO tool_calls (tool_use_id, session_id, agent_id, prompt_id, tool_name, tool_input, seq, cwd, pre_at"
    )
    # Both paths really ran: results folded into the INSERT in whole files, applied by UPDATE in tiny chunks.
    assert sum(s.startswith(folded) for s in whole_sql) > 0
    assert sum(s.startswith(folded) for s in tiny_sql) < sum(s.startswith(folded) for s in whole_sql)
    assert any(s.startswith("UPDATE tool_calls SET result_uuid") for s in tiny_sql)
    whole, tiny = _dump(tmp_path / "whole.db"), _dump(tmp_path / "tiny.db")
    assert whole["tool_calls"] and whole["turns"] and whole["messages"]
    con = sqlite3.connect(str(tmp_path / "whole.db"))
    # tool_response cut from the raw line; errors and durations from the result.
    filled = con.execute(
        "SELECT count(tool_response), count(error), count(duration_ms) FROM tool_call_results"
    ).fetchone()
    con.close()
    assert all(filled), filled
    for table in TABLES:
        assert whole[table] == tiny[table], table


def test_a_grown_session_rewrites_only_its_changed_turns(tmp_path):
    db = open_db(str(tmp_path / "cra.db"))
    src = FIXTURES / "v2_new" / "-home-dev-new-project" / f"{S2}.jsonl"
    path = tmp_path / f"{S2}.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:9]))  # the first turn, answered
    import_paths(db.conn, [str(path)])
    first = db.execute("SELECT id, outcome FROM turns WHERE session_id = ?", [S2]).fetchall()
    assert len(first) == 1 and first[0][1] == "completed"
    calls = [r[0] for r in db.execute("SELECT tool_use_id FROM tool_calls WHERE turn_id = ?", [first[0][0]])]
    db.execute("CREATE TEMP TABLE rewritten (tbl TEXT, key TEXT)")
    db.execute(
        "CREATE TEMP TRIGGER log_turns AFTER UPDATE ON main.turns BEGIN"
        " INSERT INTO rewritten VALUES ('turns', old.id); END"
    )
    db.execute(
        "CREATE TEMP TRIGGER log_calls AFTER UPDATE ON main.tool_calls BEGIN"
        " INSERT INTO rewritten VALUES ('tool_calls', old.tool_use_id); END"
    )
    with open(path, "ab") as f:
        f.write(b"".join(lines[9:]))
    import_paths(db.conn, [str(path)])
    turns = db.execute("SELECT id, turn_index FROM turns WHERE session_id = ? ORDER BY turn_index", [S2]).fetchall()
    assert len(turns) == 3 and turns[0][0] == first[0][0]
    rewritten = db.execute("SELECT tbl, key FROM rewritten").fetchall()
    assert ("turns", str(first[0][0])) not in [(t, str(k)) for t, k in rewritten]
    assert not [k for t, k in rewritten if t == "tool_calls" and k in calls]
    # What the first turn says is still right.
    row = db.execute("SELECT outcome, final_answer, message_count FROM turns WHERE id = ?", [first[0][0]]).fetchone()
    assert row[0] == "completed" and row[1] and row[2] > 0
    assert db.execute("SELECT count(*) FROM messages WHERE turn_id = ?", [turns[2][0]]).fetchone()[0] > 0
