"""A call only the transcript saw has its output stored once beyond the raw line (in its tool_result
message), and every reader gets it from one place: the view tool_call_results (m015)."""

import json

from click.testing import CliRunner

from cra.cli import cli
from cra.dataset.turn_chats import TurnReader
from cra.db import open_db
from cra.merge.merge import merge_databases
from cra.signals.situations import result_failed
from cra.transcripts import importer

SID = "30000000-0000-4000-8000-000000000003"
OUTPUT = "README.md\n" + "".join("line %d of a long listing\n" % i for i in range(2000)) + "END-OF-OUTPUT"
FAILED = "Exit code 2\nls: cannot access 'nope': No such file or directory"


def _entry(kind, uuid, parent, content, ts, **extra):
    role = "assistant" if kind == "assistant" else "user"
    message = {"role": role, "content": content}
    if kind == "assistant":
        message.update(id="msg_" + uuid, model="claude-opus-5-5", stop_reason="tool_use")
    return {
        "type": kind,
        "sessionId": SID,
        "uuid": uuid,
        "parentUuid": parent,
        "timestamp": ts,
        "cwd": "/home/dev/p",
        "version": "2.1.330",
        "message": message,
        **extra,
    }


def _session(projects):
    structured = {"stdout": OUTPUT, "stderr": "", "interrupted": False}
    entries = [
        _entry("user", "u0", None, "list the files", "2026-11-01T10:00:00.000Z", promptId="p1"),
        _entry(
            "assistant",
            "a1",
            "u0",
            [{"type": "tool_use", "id": "toolu_ls", "name": "Bash", "input": {"command": "ls"}}],
            "2026-11-01T10:00:01.000Z",
        ),
        _entry(
            "user",
            "u1",
            "a1",
            [{"type": "tool_result", "tool_use_id": "toolu_ls", "content": [{"type": "text", "text": OUTPUT}]}],
            "2026-11-01T10:00:02.500Z",
            toolUseResult=structured,
            promptId="p1",
        ),
        _entry(
            "assistant",
            "a2",
            "u1",
            [{"type": "tool_use", "id": "toolu_bad", "name": "Bash", "input": {"command": "ls nope"}}],
            "2026-11-01T10:00:03.000Z",
        ),
        _entry(
            "user",
            "u2",
            "a2",
            [{"type": "tool_result", "tool_use_id": "toolu_bad", "content": FAILED, "is_error": True}],
            "2026-11-01T10:00:04.000Z",
            toolUseResult="Error: " + FAILED,
            promptId="p1",
        ),
        _entry("assistant", "a3", "u2", [{"type": "text", "text": "Done."}], "2026-11-01T10:00:05.000Z"),
    ]
    path = projects / "-home-dev-p" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return structured


def _results(db):
    return {
        r[0]: r[1:]
        for r in db.execute("SELECT tool_use_id, response_text, tool_response, status, error FROM tool_call_results")
    }


def test_a_transcript_only_output_is_stored_once_and_every_reader_sees_it(tmp_path, cra_home):
    structured = _session(tmp_path / "projects")
    db = open_db()
    importer.import_paths(db.conn, [str(tmp_path / "projects")])

    # Not in tool_calls: the row points at the message that holds the result.
    stored = db.execute(
        "SELECT tool_use_id, response_text, tool_response, result_uuid, source FROM tool_calls ORDER BY seq"
    ).fetchall()
    assert stored == [("toolu_ls", None, None, "u1", "transcript"), ("toolu_bad", None, None, "u2", "transcript")]
    # Once beyond the raw line: every text column of every table but transcript_lines.
    holders = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table == "transcript_lines" or table.endswith(("_fts", "_data", "_idx", "_docsize", "_config", "_content")):
            continue
        for column in db[table].columns_dict:
            n = db.execute(f"SELECT count(*) FROM [{table}] WHERE instr([{column}], 'END-OF-OUTPUT')").fetchone()[0]
            holders += [(table, column)] * n
    assert holders == [("messages", "content")]

    # The view: the text the model was shown and the structured result, as they were stored before.
    results = _results(db)
    assert results["toolu_ls"][0] == OUTPUT
    assert json.loads(results["toolu_ls"][1]) == structured
    assert results["toolu_ls"][2:] == ("success", None)
    assert results["toolu_bad"] == (FAILED, None, "failure", FAILED)  # a string toolUseResult is not structured
    with_turns = dict(db.execute("SELECT tool_use_id, response_text FROM tool_calls_with_turns").fetchall())
    assert with_turns == {"toolu_ls": OUTPUT, "toolu_bad": FAILED}

    # cra show
    shown = CliRunner().invoke(cli, ["show", SID, "--full"])
    assert shown.exit_code == 0, shown.output
    assert "END-OF-OUTPUT" in shown.output and "cannot access 'nope'" in shown.output

    # The dataset build's chats, and the signals' reading of a failed result in them.
    (turn,) = list(TurnReader(db))
    tools = [m for m in turn.messages if m["role"] == "tool"]
    assert [m["content"] for m in tools] == [OUTPUT, FAILED]
    assert [result_failed(m["content"]) for m in tools] == [False, True]

    # Re-import reads nothing and changes nothing; a merge into another database keeps the result.
    importer.import_paths(db.conn, [str(tmp_path / "projects")])
    assert _results(db) == results
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other = open_db(str(tmp_path / "other.db"))
    report = merge_databases(other, [str(cra_home / "cra.db")])
    assert all(s.error is None for s in report.sources)
    assert _results(other) == results
    assert other.execute("SELECT count(*) FROM tool_calls WHERE response_text IS NOT NULL").fetchone() == (0,)


def test_the_view_has_every_column_of_tool_calls_in_order(cra_home):
    """tool_call_results stands for tool_calls (Parquet exports tool_calls through it): a column added
    to the table must be added to the view too."""
    db = open_db()
    table = [r[1] for r in db.execute("PRAGMA table_info(tool_calls)")]
    view = [r[1] for r in db.execute("PRAGMA table_info(tool_call_results)")]
    assert view == table


def test_a_result_without_content_or_with_other_blocks_reads_as_before(tmp_path, cra_home):
    """block_text's rules, in SQL: no content is '', non-text blocks are [type], text blocks joined."""
    projects = tmp_path / "projects"
    uses = [{"type": "tool_use", "id": f"toolu_{i}", "name": "Read", "input": {}} for i in range(3)]
    blocks = [
        {"type": "tool_result", "tool_use_id": "toolu_0"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "a"}, {"type": "image", "source": {}}, "junk", {"type": "text"}],
        },
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "plain — ✓"},
    ]
    entries = [
        _entry("user", "u0", None, "read", "2026-11-01T10:00:00.000Z"),
        _entry("assistant", "a1", "u0", uses, "2026-11-01T10:00:01.000Z"),
        _entry("user", "u1", "a1", blocks, "2026-11-01T10:00:02.000Z"),
    ]
    path = projects / "-p" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    db = open_db()
    importer.import_paths(db.conn, [str(projects)])
    texts = {k: v[0] for k, v in _results(db).items()}
    assert texts == {"toolu_0": "", "toolu_1": "a\n[image]\n[text]", "toolu_2": "plain — ✓"}
