"""`cra import`, `cra sessions`, `cra show`: backfill, idempotence, resumption, merging with hook
capture, and every client format we have recordings of."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import handle_in_process

from cra.cli import cli
from cra.db import open_db
from cra.transcripts import importer
from cra.transcripts.normalize import Normalizer

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "transcripts"
RECORDED = HERE / "fixtures" / "recorded"
S1 = "10000000-0000-4000-8000-000000000001"
S2 = "20000000-0000-4000-8000-000000000002"


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def counts(db):
    return {
        t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in (
            "transcript_lines",
            "messages",
            "turns",
            "tool_calls",
            "subagents",
            "compactions",
            "api_shapes",
            "sessions",
        )
    }


def test_import_is_idempotent_and_summarises(tmp_path):
    r = run("import", str(FIXTURES))
    assert r.exit_code == 0, r.output
    assert "3 of 3 files had new lines" in r.output
    assert "2 sessions" in r.output and "5 from transcripts only, 0 merged with hook captures" in r.output
    db = open_db()
    first = counts(db)
    assert first["messages"] == 10 + 12 + 4 and first["sessions"] == 2 and first["subagents"] == 1
    assert f"{first['transcript_lines']} lines, 26 messages" in r.output
    r = run("import", str(FIXTURES), "--json")
    summary = json.loads(r.stdout)
    assert summary["lines"] == 0 and summary["messages"] == 0 and summary["files_changed"] == 0
    assert counts(db) == first


def test_import_reports_unreadable_files_and_continues(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"not": "an array"}')
    hooklog = tmp_path / "hooks.jsonl"
    hooklog.write_text('{"event": "Stop", "payload": {}}\n')
    r = CliRunner().invoke(cli, ["import", str(bad), str(hooklog), str(FIXTURES / "v1_old")])
    assert r.exit_code == 0
    assert f"Skipped {bad}: not a transcript" in r.stderr
    assert f"Skipped {hooklog}: not a Claude Code transcript" in r.stderr
    assert "2 file(s) skipped" in r.stdout
    db = open_db()
    assert db.execute("SELECT count(*) FROM messages WHERE session_id = ?", [S1]).fetchone()[0] == 10
    assert db.execute("SELECT count(*) FROM transcript_files").fetchone()[0] == 1  # nothing stored for the rest


def test_import_of_a_missing_path_fails_after_importing_the_others(tmp_path):
    missing = tmp_path / "missing.jsonl"
    r = CliRunner().invoke(cli, ["import", str(missing), str(FIXTURES / "v1_old")])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == f"Error: no such file or folder: {missing} (the others were imported)"
    assert "Traceback" not in r.output
    assert open_db().execute("SELECT count(*) FROM messages WHERE session_id = ?", [S1]).fetchone()[0] == 10
    r = CliRunner().invoke(cli, ["import", str(missing)])
    assert (r.exit_code, r.output.splitlines()[-1]) == (1, f"Error: no such file or folder: {missing}")


def test_import_without_history_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    r = CliRunner().invoke(cli, ["import"])
    assert r.exit_code == 1
    assert "No Claude Code history at" in r.output and "cra import path/to/projects" in r.output


def fts_consistent(db):
    """The insert triggers are back and each FTS5 index matches its content table row for row
    (FTS5's integrity-check with rank 1 compares the index with the external content)."""
    triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"messages_ai", "messages_au", "messages_ad", "turns_ai", "turns_au", "turns_ad"} <= triggers
    for fts in ("messages_fts", "turns_fts"):
        db.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")  # raises if not
    return True


def _crash_on_chunk(monkeypatch, n):
    calls = {"n": 0}
    real = Normalizer.__call__

    def crash(self, con, path, rows):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-import
        return real(self, con, path, rows)

    monkeypatch.setattr(Normalizer, "__call__", crash)
    return lambda: monkeypatch.setattr(Normalizer, "__call__", real)


def test_import_resumes_after_a_crash(tmp_path, monkeypatch):
    """Files commit in batches: a crash loses the batch it interrupts (whole files, their offsets with
    them, FTS included) and keeps the batches before it; a rerun ends where a clean import does."""
    clean = open_db(str(tmp_path / "clean.db"))
    importer.import_paths(clean.conn, [str(FIXTURES)])
    expected = counts(clean)
    assert fts_consistent(clean)

    # One batch for the whole (small) tree: a crash in its second file leaves nothing half-stored.
    db = open_db()
    restore = _crash_on_chunk(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        importer.import_paths(db.conn, [str(FIXTURES)])
    assert not db.conn.in_transaction
    assert counts(db)["messages"] == 0 and counts(db)["transcript_lines"] == 0
    assert fts_consistent(db)
    restore()
    importer.import_paths(db.conn, [str(FIXTURES)])
    assert counts(db) == expected
    assert fts_consistent(db)
    assert importer.import_paths(db.conn, [str(FIXTURES)]).lines == 0

    # A batch per file: the files committed before the crash stay, each whole.
    monkeypatch.setattr(importer, "BATCH_BYTES", 1)
    db2 = open_db(str(tmp_path / "batches.db"))
    restore = _crash_on_chunk(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        importer.import_paths(db2.conn, [str(FIXTURES)])
    partial = counts(db2)
    assert 0 < partial["messages"] < expected["messages"]
    stored = db2.execute(
        "SELECT f.line_count, (SELECT count(*) FROM transcript_lines l WHERE l.path = f.path),"
        " f.norm_line_id = (SELECT max(id) FROM transcript_lines l WHERE l.path = f.path)"
        " FROM transcript_files f"
    ).fetchall()
    assert stored and all(n == lines and normalised for n, lines, normalised in stored)
    assert fts_consistent(db2)
    restore()
    importer.import_paths(db2.conn, [str(FIXTURES)])
    assert counts(db2) == expected
    assert fts_consistent(db2)
    assert importer.import_paths(db2.conn, [str(FIXTURES)]).lines == 0


def test_bulk_import_fts_matches_per_row_triggers(tmp_path, monkeypatch):
    """Messages imported in one batch (FTS filled once, before commit) are found exactly as those
    imported a file at a time, and a message added later by the per-row trigger is found too."""

    def search(db, word):
        return sorted(
            r[0]
            for r in db.execute(
                "SELECT m.uuid FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
                " WHERE messages_fts MATCH ?",
                (word,),
            )
        )

    bulk = open_db(str(tmp_path / "bulk.db"))
    importer.import_paths(bulk.conn, [str(FIXTURES)])
    monkeypatch.setattr(importer, "BATCH_BYTES", 1)
    monkeypatch.setattr(importer, "DEFERRED_FTS", ())  # the triggers alone, file by file
    by_row = open_db(str(tmp_path / "by_row.db"))
    importer.import_paths(by_row.conn, [str(FIXTURES)])
    words = {
        w.lower()
        for (t,) in bulk.execute("SELECT text FROM messages WHERE text IS NOT NULL")
        for w in t.split()
        if w.isalpha() and len(w) > 3
    }
    assert len(words) > 20
    for word in sorted(words):
        found = search(bulk, word)
        assert found and found == search(by_row, word), word
    assert fts_consistent(bulk)
    bulk.execute(
        "INSERT INTO messages (uuid, session_id, role, line_id, text) VALUES ('late', ?, 'user', 0, 'zyzzyva')", [S1]
    )
    assert search(bulk, "zyzzyva") == ["late"]


def test_a_file_failing_mid_batch_leaves_the_others_turns(tmp_path, monkeypatch):
    """Turns are rebuilt once per batch: a file rolled back in the middle of one costs its own rows
    and turns only; the files before and after it in the batch get theirs, and a rerun completes."""
    files = importer.discover([str(FIXTURES)])
    assert len(files) == 3
    real = Normalizer.__call__

    def fail_second(self, con, path, rows):
        real(self, con, path, rows)  # (its streams are touched, then the file is rolled back)
        if path == files[1]:
            raise ValueError("simulated bad chunk")
        return None

    monkeypatch.setattr(Normalizer, "__call__", fail_second)
    db = open_db()
    result = importer.import_paths(db.conn, files)
    assert [p for p, _ in result.errors] == [files[1]]
    monkeypatch.setattr(Normalizer, "__call__", real)
    # The batch was rolled back and its other files ingested again: counted once.
    others = importer.import_paths(open_db(str(tmp_path / "others.db")).conn, [files[0], files[2]])
    assert (result.lines, result.messages, result.files, result.files_changed) == (others.lines, others.messages, 3, 2)
    assert result.lines == counts(db)["transcript_lines"]
    by_file = dict(
        db.execute(
            "SELECT f.path, (SELECT count(*) FROM turns t WHERE t.session_id = f.session_id"
            " AND t.agent_id IS f.agent_id) FROM transcript_files f"
        ).fetchall()
    )
    assert files[1] not in by_file
    assert by_file[files[0]] > 0 and by_file[files[2]] > 0
    assert fts_consistent(db)
    importer.import_paths(db.conn, files)
    clean = open_db(str(tmp_path / "clean.db"))
    importer.import_paths(clean.conn, files)
    assert counts(db) == counts(clean)
    assert fts_consistent(db)


def test_a_file_failing_again_when_the_batch_is_redone_is_dropped_too(tmp_path, monkeypatch):
    """A file that fails after writing makes the batch start over without it; one that then fails
    on the way starts it over again without that one too. Each error is reported once."""
    files = importer.discover([str(FIXTURES)])
    real = Normalizer.__call__
    calls = {}

    def flaky(self, con, path, rows):
        real(self, con, path, rows)
        calls[path] = calls.get(path, 0) + 1
        if path == files[1] or (path == files[0] and calls[path] == 2):
            raise ValueError("simulated bad chunk")

    monkeypatch.setattr(Normalizer, "__call__", flaky)
    db = open_db()
    result = importer.import_paths(db.conn, files)
    monkeypatch.setattr(Normalizer, "__call__", real)
    assert [p for p, _ in result.errors] == [files[1], files[0]]
    assert [r[0] for r in db.execute("SELECT path FROM transcript_files")] == [files[2]]
    alone = open_db(str(tmp_path / "alone.db"))
    expected = importer.import_paths(alone.conn, [files[2]])
    assert counts(db) == counts(alone) and result.lines == expected.lines
    assert fts_consistent(db)


def test_in_a_callers_transaction_a_failing_file_is_rolled_back_alone(tmp_path, monkeypatch):
    """The caller's transaction cannot be rolled back for one file: each chunk takes a savepoint."""
    files = importer.discover([str(FIXTURES)])
    real = Normalizer.__call__

    def fail_second(self, con, path, rows):
        real(self, con, path, rows)
        if path == files[1]:
            raise ValueError("simulated bad chunk")

    monkeypatch.setattr(Normalizer, "__call__", fail_second)
    db = open_db()
    db.conn.execute("BEGIN IMMEDIATE")
    db.conn.execute("INSERT INTO sessions (id) VALUES ('callers-own-row')")
    result = importer.import_paths(db.conn, files)
    assert db.conn.in_transaction  # the import committed nothing of the caller's
    db.conn.execute("COMMIT")
    monkeypatch.setattr(Normalizer, "__call__", real)
    assert [p for p, _ in result.errors] == [files[1]]
    assert db.execute("SELECT count(*) FROM sessions WHERE id = 'callers-own-row'").fetchone()[0] == 1
    assert sorted(r[0] for r in db.execute("SELECT path FROM transcript_files")) == sorted([files[0], files[2]])
    assert fts_consistent(db)


def test_deferred_turn_indexing_handles_reused_rowids(tmp_path):
    """While turns are rebuilt, their FTS inserts wait for one INSERT ... SELECT. A deleted turn's
    rowid can be given to a new one (no AUTOINCREMENT): that turn is indexed too."""
    db = open_db()
    con = db.conn
    insert = "INSERT INTO turns (session_id, turn_index, prompt_text) VALUES ('s', ?, ?)"
    con.execute(insert, (0, "aardvark"))
    con.execute(insert, (1, "bison"))
    top = con.execute("SELECT max(id) FROM turns").fetchone()[0]
    con.execute("BEGIN")
    suspended = importer._suspend_fts_inserts(con, "turns", "turns_ai", "turns_fts")
    con.execute("DELETE FROM turns WHERE turn_index = 1")  # the highest rowid
    con.execute(insert, (1, "caribou"))
    con.execute(insert, (2, "dromedary"))
    con.execute("UPDATE turns SET prompt_text = 'emu' WHERE turn_index = 0")
    importer._catch_up_fts(con, suspended)
    con.execute("COMMIT")
    assert con.execute("SELECT id FROM turns WHERE turn_index = 1").fetchone()[0] == top  # reused
    assert fts_consistent(db)
    found = lambda word: [
        r[0]
        for r in con.execute(
            "SELECT t.turn_index FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid WHERE turns_fts MATCH ?", (word,)
        )
    ]
    assert found("caribou") == [1] and found("dromedary") == [2] and found("emu") == [0]
    assert found("bison") == [] and found("aardvark") == []
    assert con.execute("SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger'").fetchone()[0] == 0


def test_json_array_transcript(tmp_path):
    entries = [
        json.loads(line)
        for line in (FIXTURES / "v1_old" / "-home-dev-old-project" / f"{S1}.jsonl").read_text().splitlines()
    ]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(entries, indent=2))
    db = open_db()
    r = importer.import_paths(db.conn, [str(path)])
    assert r.errors == [] and r.messages == 10
    assert db.execute("SELECT count(*) FROM turns WHERE session_id = ?", [S1]).fetchone()[0] == 2
    assert importer.import_paths(db.conn, [str(path)]).lines == 0


# -- sessions and show ------------------------------------------------------------------------------


def test_sessions_lists_newest_first_with_filters():
    run("import", str(FIXTURES))
    r = run("sessions")
    header, *lines = r.output.strip().splitlines()
    assert header.split() == ["STARTED", "(UTC)", "ID", "TURNS", "TOOLS", "PROJECT", "FIRST", "PROMPT"]
    assert len(lines) == 2
    assert lines[0].startswith("2026-11-20 10:00  20000000") and "/home/dev/new-project" in lines[0]
    assert "3 turns" in lines[0] and "Look around with a helper" in lines[0]
    assert lines[1].startswith("2025-06-10 12:00  10000000") and "list the files" in lines[1]
    # --since/--until take times and ages as `cra stats` does.
    assert [x["id"] for x in json.loads(run("sessions", "--json", "--since", "2026-11-20T09:59").output)] == [S2]
    assert json.loads(run("sessions", "--json", "--since", "2026-11-20T10:01").output) == []
    assert [x["id"] for x in json.loads(run("sessions", "--json", "--since", "36500d").output)] == [S2, S1]
    bad = run("sessions", "--since", "June")
    assert bad.exit_code == 2 and "'June' is not a date (2025-06-01), a UTC time" in bad.output
    rows = json.loads(run("sessions", "--json", "-n", "1").output)
    assert [x["id"] for x in rows] == [S2] and rows[0]["subagents"] == 1 and rows[0]["tool_calls"] == 3
    assert [x["id"] for x in json.loads(run("sessions", "--json", "--project", "old-proj").output)] == [S1]
    assert [x["id"] for x in json.loads(run("sessions", "--json", "--since", "2026-01-01").output)] == [S2]
    assert [x["id"] for x in json.loads(run("sessions", "--json", "--until", "2025-06-10").output)] == [S1]
    assert "No sessions match" in run("sessions", "--project", "nowhere").output


def test_show_prints_a_timeline_with_nested_subagents():
    run("import", str(FIXTURES))
    out = run("show", "2000").output
    lines = out.splitlines()
    assert lines[0] == f"Session {S2}"
    assert "Claude Code 2.1.330" in lines[1]
    text = "\n".join(lines)
    assert "> Look around with a helper, then summarise." in text
    assert "⏺ Agent(List files)  [success" in text
    assert "┌ subagent a0123456789abcdef (Explore): List files" in text
    # The subagent's own call is nested under the Agent call, before the main thread continues.
    i_sub = text.index("⏺ Bash(ls)")
    assert (
        text.index("┌ subagent")
        < i_sub
        < text.index("└ end of subagent")
        < text.index("Summary: the project has a.py.")
    )
    assert "══ conversation compacted (manual, 4321 tokens before) ══" in text
    assert "> /compact" in text
    assert "⏺ Bash(pytest -q)  [failure" in text and "│ 1 failed" in text
    assert "A helper can list the files." not in text
    assert "∴ A helper can list the files." in run("show", S2, "--thinking").output
    # Each turn's id is shown, and --json gives the same turns with their calls.
    data = json.loads(run("show", "2000", "--json").output)
    assert data["session"]["id"] == S2 and {a["agent_id"] for a in data["subagents"]} == {"a0123456789abcdef"}
    main_turns = [t for t in data["turns"] if t["agent_id"] is None]
    assert [t["turn_index"] for t in main_turns] == [0, 1, 2]
    assert all(f"turn {t['turn_index'] + 1} (id {t['id']})" in text for t in main_turns)
    assert {"Agent", "Bash"} <= {c["tool_name"] for c in data["tool_calls"]}
    assert {c["turn_id"] for c in data["tool_calls"]} <= {t["id"] for t in data["turns"]}
    # ... the id `cra signals --show` takes.
    shown = json.loads(run("signals", "--show", str(main_turns[0]["id"])).output)
    assert shown["turn_id"] == main_turns[0]["id"]


def test_show_bounds_output_and_resolves_prefixes(tmp_path):
    path = tmp_path / "s.jsonl"
    long_output = "\n".join(f"line {i}" for i in range(40))
    entries = [
        {
            "type": "user",
            "uuid": "a1",
            "sessionId": "abc-1",
            "timestamp": "2026-01-01T00:00:00Z",
            "message": {"role": "user", "content": "go"},
        },
        {
            "type": "assistant",
            "uuid": "a2",
            "sessionId": "abc-1",
            "timestamp": "2026-01-01T00:00:01Z",
            "message": {
                "id": "m1",
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "seq 40"}}],
            },
        },
        {
            "type": "user",
            "uuid": "a3",
            "sessionId": "abc-1",
            "timestamp": "2026-01-01T00:00:02Z",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": long_output}],
            },
        },
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    run("import", str(path))
    out = run("show", "abc", "--lines", "5").output
    assert "│ line 4" in out and "│ line 5" not in out and "(+35 more lines)" in out
    assert "│ line 39" in run("show", "abc", "--full").output
    r = CliRunner().invoke(cli, ["show", "zzz"])
    assert r.exit_code == 1 and "No session matches 'zzz'" in r.output


# -- merging with hook capture (the project's own real-client recordings) --------------------------


def _recorded(name):
    d = RECORDED / name
    if not (d / "hooks.jsonl").exists():
        pytest.skip(f"tests/fixtures/recorded/{name} not recorded")
    return d


def _replay_hooks(scenario_dir, projects_copy, cra_home):
    """Feed the recorded hook payloads to the hook code, pointing transcript paths at our copy."""

    def moved(p):
        return (
            str(projects_copy / p.split("/.claude/projects/", 1)[1])
            if isinstance(p, str) and "/.claude/projects/" in p
            else p
        )

    for line in (scenario_dir / "hooks.jsonl").read_text().splitlines():
        rec = json.loads(line)
        payload = rec["payload"]
        for key in ("transcript_path", "agent_transcript_path"):
            if key in payload:
                payload[key] = moved(payload[key])
        handle_in_process(json.dumps(payload).encode(), {"CRA_HOME": str(cra_home)})


@pytest.mark.parametrize(
    "scenario", ["tools", "subagent", "failures", "denied", "parallel", "subagent_async", "compact"]
)
def test_live_capture_and_import_merge(scenario, tmp_path, cra_home):
    d = _recorded(scenario)
    copy = tmp_path / "projects"
    shutil.copytree(d / "transcripts", copy)
    db = open_db()
    _replay_hooks(d, copy, cra_home)
    hook_calls = {r[0]: r for r in db.execute("SELECT tool_use_id, status, tool_response FROM tool_calls")}
    assert hook_calls
    r = run("import", str(copy))
    assert r.exit_code == 0, r.output
    transcript_ids = set()
    for (ids,) in db.execute("SELECT tool_use_ids FROM messages WHERE tool_use_ids IS NOT NULL"):
        transcript_ids.update(json.loads(ids))
    rows = {
        r[0]: r
        for r in db.execute("SELECT tool_use_id, status, tool_response, source, message_uuid, turn_id FROM tool_calls")
    }
    assert transcript_ids <= set(rows)  # every call in the transcript has a row ...
    assert len(rows) == len(set(hook_calls) | transcript_ids)  # ... exactly one
    for tool_use_id, row in rows.items():
        if tool_use_id in hook_calls and tool_use_id in transcript_ids:
            assert row[3] == "both" and row[4] is not None and row[5] is not None, row
            assert row[1] == hook_calls[tool_use_id][1]  # the hook's status ...
            assert row[2] == hook_calls[tool_use_id][2] or hook_calls[tool_use_id][2] is None  # ... and response kept
    assert all(rows[i][3] == "both" for i in set(hook_calls) & transcript_ids)
    # Every main-thread turn that Claude answered has its final answer from the transcript.
    turns = db.execute("SELECT outcome, final_answer FROM turns WHERE agent_id IS NULL").fetchall()
    assert turns and all(o in ("completed", "interrupted", "error", "incomplete") for o, _ in turns)
    assert any(o == "completed" and a for o, a in turns)
    # Reimporting changes nothing.
    before = counts(db)
    run("import", str(copy))
    assert counts(db) == before


def test_recorded_subagent_links_to_its_agent_call(tmp_path):
    d = _recorded("subagent")
    db = open_db()
    importer.import_paths(db.conn, [str(d / "transcripts")])
    agents = db.execute("SELECT agent_id, parent_tool_use_id, agent_type FROM subagents").fetchall()
    assert len(agents) == 1 and agents[0][1] is not None
    parent = db.execute("SELECT tool_name FROM tool_calls WHERE tool_use_id = ?", [agents[0][1]]).fetchone()
    assert parent[0] in ("Agent", "Task")
    assert db.execute("SELECT count(*) FROM turns WHERE agent_id = ?", [agents[0][0]]).fetchone()[0] >= 1


# -- format coverage on real sessions from other client versions (../shared, when present) ----------


def test_formats_from_every_client_version(shared_dir):
    fx = shared_dir / "fixtures"
    db = open_db()
    paths = [
        fx / "public" / "sniffly-cc1.0.17",
        fx / "public" / "spotter-cc2.1.38",
        fx / "public" / "hooklogs" / "ast-grep+claude-skill" / "chat.json",
    ] + sorted((fx / "claude-code-2.1.328").glob("*/transcripts"))
    r = importer.import_paths(db.conn, [str(p) for p in paths])
    assert r.errors == []
    versions = {v for (v,) in db.execute("SELECT DISTINCT version FROM messages")}
    assert {"1.0.17", "2.1.38", "2.0.47", "2.1.328"} <= versions
    # 2.1.38 kept subagent messages inside progress entries: they become that agent's messages.
    agent = db.execute("SELECT agent_id, parent_tool_use_id FROM subagents WHERE agent_id = 'afb92ff'").fetchone()
    assert agent == ("afb92ff", "toolu_01Cz2Pnv7qNcnK1ZiocxWhQX")
    assert db.execute("SELECT count(*) FROM messages WHERE agent_id = 'afb92ff' AND is_sidechain = 1").fetchone()[0] > 5
    # 2.1.328: the exact system prompt and tool schemas, and compaction with its summary.
    assert db.execute("SELECT count(DISTINCT session_id) FROM api_shapes").fetchone()[0] == 12
    c = db.execute("SELECT trigger, pre_tokens, summary FROM compactions WHERE trigger = 'manual'").fetchone()
    assert c[0] == "manual" and c[1] == 120 and "continued from a previous conversation" in c[2]
    # Statuses of calls seen only in transcripts.
    statuses = dict(db.execute("SELECT status, count(*) FROM tool_calls GROUP BY status").fetchall())
    assert statuses.get("denied", 0) >= 4 and statuses.get("failure", 0) >= 3 and statuses.get("invalid", 0) >= 1
    # Every user/assistant line became a message (copies across files dedupe by uuid).
    n_lines = db.execute(
        "SELECT count(DISTINCT uuid) FROM transcript_lines WHERE entry_type IN ('user', 'assistant')"
    ).fetchone()[0]
    n_top = db.execute("SELECT count(*) FROM messages WHERE uuid IN (SELECT uuid FROM transcript_lines)").fetchone()[0]
    assert n_top == n_lines
