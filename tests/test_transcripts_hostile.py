"""Transcript files as they may come: named by a payload (FIFOs, symbolic links), binary, with lines
of any length, from ignored projects, without their main transcript; and transcript text that
would drive the terminal."""

import json
import os
import sqlite3
import time
import tracemalloc

import pytest
from click.testing import CliRunner
from conftest import run_hook, wait_for_drainer

import claude_hooks
from claude_hooks import drain, spool, transcript_tail
from cra.cli import cli
from cra.db import open_db
from cra.transcripts.importer import import_paths

SESSION = "30000000-0000-4000-8000-000000000003"


def entry(i, session=SESSION, cwd="/home/dev/project", text=None, **extra):
    return {
        "type": "user",
        "uuid": f"u-{session[:4]}-{i}",
        "sessionId": session,
        "cwd": cwd,
        "timestamp": "2026-02-01T00:00:%02d.000Z" % (i % 60),
        "message": {"role": "user", "content": text if text is not None else f"prompt {i}"},
        **extra,
    }


def jsonl(*entries):
    return b"".join((json.dumps(e) + "\n").encode() for e in entries)


def cra(*args):
    return CliRunner().invoke(cli, list(args))


def stop_payload(transcript_path):
    return json.dumps(
        {"session_id": SESSION, "cwd": "/tmp/p", "hook_event_name": "Stop", "transcript_path": str(transcript_path)}
    )


def lines_of(db_path, path):
    con = sqlite3.connect(db_path)
    try:
        return con.execute(
            "SELECT raw, parse_error FROM transcript_lines WHERE path = ? ORDER BY id", (str(path),)
        ).fetchall()
    finally:
        con.close()


def _drainer_finished(home, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lock = claude_hooks.try_drain_lock(home)
        if lock is not None:
            claude_hooks.release_drain_lock(lock)
            return True
        time.sleep(0.05)
    return False


# -- named by a payload ----------------------------------------------------------------------------


def test_a_symlinked_transcript_path_is_not_followed(cra_home, tmp_path):
    """Run as root, a payload naming `x.jsonl` -> /etc/shadow copied the file into the database."""
    open_db().conn.close()
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n")
    link = tmp_path / "x.jsonl"
    link.symlink_to(secret)
    assert run_hook(stop_payload(link)).returncode == 0
    db_path = str(cra_home / "cra.db")
    assert lines_of(db_path, link) == []
    con = sqlite3.connect(db_path)
    assert not [r for r in con.execute("SELECT raw FROM transcript_lines") if "saltsalt" in r[0]]
    assert "symbolic link" in (cra_home / claude_hooks.ERROR_LOG).read_text()  # said, not silent


def test_a_fifo_transcript_path_never_hangs_the_drainer(cra_home, tmp_path):
    open_db().conn.close()
    fifo = tmp_path / "y.jsonl"
    os.mkfifo(fifo)
    try:
        assert run_hook(stop_payload(fifo), wait=False).returncode == 0
        finished = _drainer_finished(str(cra_home))
    finally:
        try:  # (release a drainer stuck opening it, as the old code was)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert finished, "the drainer hung opening a FIFO named by the payload"
    wait_for_drainer()
    con = sqlite3.connect(str(cra_home / "cra.db"))
    assert con.execute("SELECT hook_event_name FROM events").fetchall() == [("Stop",)]
    assert "not a regular file" in (cra_home / claude_hooks.ERROR_LOG).read_text()


# -- binary, and lines of any length ---------------------------------------------------------------


def test_a_binary_jsonl_is_refused_with_a_word(cra_home, tmp_path):
    junk = tmp_path / "data.jsonl"
    junk.write_bytes(bytes(range(256)) * 40 + b"\n" + os.urandom(4000) + b"\n")
    r = cra("import", str(junk))
    assert r.exit_code == 0, r.output
    assert f"Skipped {junk}: binary data, not a transcript" in r.stderr
    assert open_db().execute("SELECT count(*) FROM transcript_lines").fetchone()[0] == 0
    text = tmp_path / "notes.jsonl"  # text, but not JSON lines at all
    text.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    r = cra("import", str(text))
    assert f"Skipped {text}: not a transcript: none of its first lines is a JSON object" in r.stderr


def test_a_binary_transcript_named_by_a_payload_is_not_stored(cra_home, tmp_path):
    open_db().conn.close()
    junk = tmp_path / "z.jsonl"
    junk.write_bytes(b"\x00\x01\x02garbage\n" * 100)
    assert run_hook(stop_payload(junk)).returncode == 0
    assert lines_of(str(cra_home / "cra.db"), junk) == []
    assert "binary data" in (cra_home / claude_hooks.ERROR_LOG).read_text()


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(transcript_tail, "MAX_LINE_BYTES", 1 << 20)
    monkeypatch.setattr(transcript_tail, "CHUNK_BYTES", 256 << 10)


def test_a_line_over_the_limit_is_skipped_and_reported(cra_home, tmp_path, small_limits):
    path = tmp_path / f"{SESSION}.jsonl"
    huge = entry(1, pad="x" * (3 << 20))
    path.write_bytes(jsonl(entry(0)) + jsonl(huge) + jsonl(entry(2)))
    r = cra("import", str(path))
    assert r.exit_code == 0, r.output
    size = len(jsonl(huge))
    assert f"Read {path}, but the line at byte {len(jsonl(entry(0)))} ({size / 1e6:.0f} MB) skipped" in r.stderr
    db = open_db()
    rows = db.execute(
        "SELECT line_no, length(raw), parse_error FROM transcript_lines WHERE path = ? ORDER BY id", [str(path)]
    ).fetchall()
    assert [r[:2] for r in rows] == [(0, len(jsonl(entry(0))) - 1), (1, 0), (2, len(jsonl(entry(2))) - 1)]
    assert rows[1][2] == f"line of {size} bytes skipped: longer than the 1 MiB limit"
    assert [r[0] for r in db.execute("SELECT uuid FROM messages ORDER BY line_id")] == ["u-3000-0", "u-3000-2"]
    assert "0 of 1 file had new lines" in cra("import", str(path)).stdout


def test_a_line_without_end_is_read_in_bounded_memory_and_once(cra_home, tmp_path, small_limits):
    """Reading a transcript with no newline used to grow one buffer (quadratically) to the whole file
    on every sync. Now: memory stays near the limit, it is said once, and reading resumes after it."""
    path = tmp_path / f"{SESSION}.jsonl"
    first = jsonl(entry(0))
    with open(path, "wb") as f:
        f.write(first + b'{"type": "user", "pad": "' + b"y" * (20 << 20))
    db = open_db()
    tracemalloc.start()
    try:
        result = import_paths(db.conn, [str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # the limit (1 MiB) and a chunk or two, not the 20 MB line
    assert result.warnings == [
        (str(path), f"the line at byte {len(first)} (not ended yet) skipped: longer than the 1 MiB limit")
    ]
    again = import_paths(db.conn, [str(path)])
    assert again.warnings == [] and again.bytes_read == 0  # nothing read again, nothing said again
    with open(path, "ab") as f:  # the line ends; the next one is read
        f.write(b'"}\n' + jsonl(entry(5)))
    later = import_paths(db.conn, [str(path)])
    assert [w for _, w in later.warnings] == [
        f"the line at byte {len(first)} ({((20 << 20) + 28) / 1e6:.0f} MB) skipped: longer than the 1 MiB limit"
    ]
    assert [r[0] for r in db.execute("SELECT uuid FROM messages ORDER BY line_id")] == ["u-3000-0", "u-3000-5"]


# -- the ignore list, for every way data comes in ------------------------------------------------


def test_import_and_sync_skip_ignored_projects_by_resolved_path(cra_home, tmp_path):
    real = tmp_path / "secret-project"
    (real / "sub").mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    assert cra("ignore", "add", str(alias)).exit_code == 0  # ignored through a link to it
    projects = tmp_path / "projects"
    (projects / "-secret").mkdir(parents=True)
    (projects / "-public").mkdir()
    secret = projects / "-secret" / f"{SESSION}.jsonl"
    secret.write_bytes(jsonl(entry(0, cwd=str(real / "sub"), text="the launch codes")))
    public_session = "40000000-0000-4000-8000-000000000004"
    (projects / "-public" / f"{public_session}.jsonl").write_bytes(jsonl(entry(0, session=public_session)))
    r = cra("import", str(projects))
    assert r.exit_code == 0, r.output
    assert "1 file(s) of ignored projects not read" in r.stderr
    db = open_db()
    assert [r[0] for r in db.execute("SELECT DISTINCT session_id FROM transcript_lines")] == [public_session]
    assert not db.execute("SELECT 1 FROM messages WHERE text LIKE '%launch codes%'").fetchone()
    # A transcript stored below an ignored folder, whatever its cwd.
    (real / "copy.jsonl").write_bytes(jsonl(entry(1, cwd="/elsewhere")))
    cra("import", str(real / "copy.jsonl"))
    assert db.execute("SELECT count(*) FROM transcript_files WHERE path LIKE ?", [f"{real}%"]).fetchone()[0] == 0
    # The hooks learnt of the session's transcript (they only record what is not ignored: here the
    # project was ignored later): sync does not read it either.
    db.execute("INSERT INTO sessions (id, transcript_path) VALUES (?, ?)", [SESSION, str(secret)])
    db.conn.commit()
    assert cra("sync").exit_code == 0
    assert db.execute("SELECT count(*) FROM transcript_lines WHERE path = ?", [str(secret)]).fetchone()[0] == 0


def test_the_hook_ignores_a_project_by_resolved_path(cra_home, tmp_path):
    open_db().conn.close()
    real = tmp_path / "real-project"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert cra("ignore", "add", str(tmp_path / "link")).exit_code == 0
    payload = json.loads(stop_payload(tmp_path / "none.jsonl"))
    assert run_hook(json.dumps({**payload, "cwd": str(real)})).returncode == 0
    assert run_hook(json.dumps({**payload, "cwd": str(tmp_path / "link" / "deeper")})).returncode == 0
    con = sqlite3.connect(str(cra_home / "cra.db"))
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_spooled_events_of_a_project_ignored_since_are_dropped(cra_home, tmp_path):

    open_db().conn.close()
    project = tmp_path / "later-secret"
    project.mkdir()
    payload = json.loads(stop_payload(tmp_path / "none.jsonl"))
    spool.spool_event(str(cra_home), drain.Event(json.dumps({**payload, "cwd": str(project)}).encode(), {}), "test")
    assert cra("ignore", "add", str(project)).exit_code == 0
    r = cra("ingest")
    assert "0 left" in r.output
    assert open_db().execute("SELECT count(*) FROM events").fetchone()[0] == 0


# -- a subagent without its main transcript --------------------------------------------------------


def test_an_orphan_subagent_transcript_gets_a_session_row(cra_home, tmp_path):
    sub = tmp_path / "proj" / SESSION / "subagents"
    sub.mkdir(parents=True)
    agent = sub / "agent-a1.jsonl"
    agent.write_bytes(
        jsonl(
            entry(0, agentId="a1", isSidechain=True, text="explore"),
            {
                "type": "assistant",
                "uuid": "u-a1-1",
                "sessionId": SESSION,
                "agentId": "a1",
                "isSidechain": True,
                "cwd": "/home/dev/project",
                "timestamp": "2026-02-01T00:00:09.000Z",
                "message": {
                    "role": "assistant",
                    "id": "msg_1",
                    "content": [
                        {"type": "tool_use", "id": "toolu_orphan_1", "name": "Read", "input": {"file_path": "/a"}}
                    ],
                },
            },
        )
    )
    assert cra("import", str(agent)).exit_code == 0
    db = open_db()
    assert db.execute("SELECT count(*) FROM messages WHERE session_id = ?", [SESSION]).fetchone()[0] == 2
    assert db.execute("SELECT session_id FROM tool_calls").fetchall() == [(SESSION,)]
    row = db.execute("SELECT cwd, started_at, first_event_at FROM sessions WHERE id = ?", [SESSION]).fetchone()
    assert row == ("/home/dev/project", None, "2026-02-01T00:00:00.000Z")
    assert SESSION[:8] in cra("sessions", "--no-sync").output


# -- what reaches the terminal ----------------------------------------------------------------------


def test_escape_sequences_from_transcripts_never_reach_the_terminal(cra_home, tmp_path):
    path = tmp_path / f"{SESSION}.jsonl"
    evil = "hi \x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\u202eevil"
    path.write_bytes(
        jsonl(
            entry(0, text=evil),
            {
                "type": "assistant",
                "uuid": "u-asst",
                "sessionId": SESSION,
                "timestamp": "2026-02-01T00:00:05.000Z",
                "message": {"role": "assistant", "id": "m1", "content": [{"type": "text", "text": "ok \x1b[5m"}]},
            },
        )
    )
    assert cra("import", str(path)).exit_code == 0
    for args in (["sessions", "--no-sync"], ["show", SESSION, "--no-sync"]):
        out = cra(*args).output
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out, args
        assert "\\x1b]0;pwned\\x07" in out or args[0] == "sessions"
    assert "\\x1b[31mred" in cra("sessions", "--no-sync").output


def test_a_huge_session_count_is_a_usage_error(cra_home):
    r = cra("sessions", "-n", str(10**23))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Invalid value for '-n'" in r.output
