"""Transcript tailing (the hook's part) and normalisation into messages, turns, subagents, compactions."""

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import handle_in_process

import claude_hooks
from claude_hooks import drain, transcript_tail
from cra.db import open_db
from cra.transcripts.importer import import_paths, sync

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
S1 = "10000000-0000-4000-8000-000000000001"
S2 = "20000000-0000-4000-8000-000000000002"
AGENT = "a0123456789abcdef"


@pytest.fixture
def db(cra_home):
    return open_db()


def _entry(i, session="sess-1", **extra):
    return {
        "type": "user",
        "uuid": f"uuid-{i}",
        "sessionId": session,
        "timestamp": "2026-01-01T00:00:%02d.000Z" % (i % 60),
        "message": {"role": "user", "content": f"prompt {i}"},
        **extra,
    }


def _line(obj):
    return (json.dumps(obj) + "\n").encode()


def _lines(db, path):
    return db.execute(
        "SELECT line_no, byte_offset, entry_type, uuid, raw, raw_bytes, parse_error, generation FROM transcript_lines"
        " WHERE path = ? ORDER BY id",
        [str(path)],
    ).fetchall()


# -- tailing ---------------------------------------------------------------------------------------


def test_tail_reads_only_new_complete_lines(db, tmp_path):
    path = tmp_path / "sess-1.jsonl"
    first = _line(_entry(0)) + _line(_entry(1))
    partial = _line(_entry(2))
    path.write_bytes(first + partial[:10])  # the client is mid-write on the third line
    assert transcript_tail.tail_file(db.conn, str(path)) == len(first)
    assert [r[3] for r in _lines(db, path)] == ["uuid-0", "uuid-1"]
    # Nothing new: nothing read, nothing added.
    assert transcript_tail.tail_file(db.conn, str(path)) == 0
    with open(path, "ab") as f:
        f.write(partial[10:] + _line(_entry(3)))
    assert transcript_tail.tail_file(db.conn, str(path)) == len(partial) + len(_line(_entry(3)))
    rows = _lines(db, path)
    assert [r[3] for r in rows] == ["uuid-0", "uuid-1", "uuid-2", "uuid-3"]
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert rows[2][1] == len(first)  # byte offset of the completed line
    assert rows[2][4] == partial[:-1].decode()  # raw exactly as in the file
    f = db.execute("SELECT byte_offset, size, line_count, session_id FROM transcript_files").fetchone()
    assert f == (path.stat().st_size, path.stat().st_size, 4, "sess-1")


def test_tail_keeps_bad_lines_raw(db, tmp_path):
    path = tmp_path / "sess-1.jsonl"
    bad_utf8 = b'{"type":"user","uuid":"u-latin1","sessionId":"sess-1","message":{"role":"user","content":"caf\xe9"}}'
    path.write_bytes(_line(_entry(0)) + b"{not json\n" + bad_utf8 + b"\n" + b"[1, 2]\n" + b"\n" + _line(_entry(1)))
    transcript_tail.tail_file(db.conn, str(path))
    rows = _lines(db, path)
    assert len(rows) == 5  # the blank line is skipped, every other line kept
    assert rows[1][4] == "{not json" and rows[1][6].startswith("invalid JSON")
    assert rows[2][5] == bad_utf8  # exact bytes kept beside a readable copy
    assert rows[2][3] == "u-latin1" and "\ufffd" in rows[2][4]
    assert rows[3][6] == "line is list, not an object"
    assert rows[4][3] == "uuid-1"
    # The undecodable message still normalises (with a replacement character).
    sync(db.conn)
    assert db.execute("SELECT text FROM messages WHERE uuid = 'u-latin1'").fetchone()[0] == "caf\ufffd"


def test_tail_cap_and_huge_lines(db, tmp_path):
    path = tmp_path / "sess-1.jsonl"
    huge = _entry(0)
    huge["message"]["content"] = "x" * 300_000
    small = [_line(_entry(i)) for i in range(1, 50)]
    path.write_bytes(_line(huge) + b"".join(small))
    # A capped caller (the hook) never takes a line longer than its cap, and reads nothing past it.
    assert transcript_tail.tail_file(db.conn, str(path), max_bytes=100_000) == 0
    assert _lines(db, path) == []
    # An uncapped one (cra) reads it whole, even with a chunk smaller than the line.
    n = transcript_tail.tail_file(db.conn, str(path), chunk_bytes=64_000)
    assert n == path.stat().st_size
    rows = _lines(db, path)
    assert len(rows) == 50 and len(rows[0][4]) > 300_000
    # A cap is respected on ordinary lines: at most max_bytes per call, progress every call.
    path2 = tmp_path / "sess-2.jsonl"
    path2.write_bytes(b"".join(small))
    got = transcript_tail.tail_file(db.conn, str(path2), max_bytes=1000)
    assert 0 < got <= 1000
    total = got
    while n := transcript_tail.tail_file(db.conn, str(path2), max_bytes=1000):
        total += n
    assert total == path2.stat().st_size and len(_lines(db, path2)) == 49


def test_tail_detects_truncation_and_rewrite(db, tmp_path):
    path = tmp_path / "sess-1.jsonl"
    path.write_bytes(_line(_entry(0)) + _line(_entry(1)))
    transcript_tail.tail_file(db.conn, str(path))
    # Rewritten with different content of at least the same length: the head guard notices.
    path.write_bytes(_line(_entry(7)) + _line(_entry(8)) + _line(_entry(9)))
    transcript_tail.tail_file(db.conn, str(path))
    rows = _lines(db, path)
    assert [(r[3], r[7]) for r in rows] == [
        ("uuid-0", 0),
        ("uuid-1", 0),
        ("uuid-7", 1),
        ("uuid-8", 1),
        ("uuid-9", 1),
    ]  # the first generation's lines stay: they may be the only copy
    # Truncated: shorter than what was read.
    path.write_bytes(_line(_entry(5)))
    transcript_tail.tail_file(db.conn, str(path))
    assert [(r[3], r[7]) for r in _lines(db, path)][-1] == ("uuid-5", 2)


def test_file_identity():
    assert transcript_tail.file_identity("/p/-proj/abc.jsonl") == ("abc", None)
    assert transcript_tail.file_identity("/p/-proj/abc/subagents/agent-a1b2.jsonl") == ("abc", "a1b2")


def test_capture_boundary_list_matches_tail():
    assert drain._BOUNDARY_EVENTS == transcript_tail.BOUNDARY_EVENTS


# -- normalisation of the hand-made fixtures --------------------------------------------------------


def test_old_format_session(db):
    r = import_paths(db.conn, [str(FIXTURES / "v1_old")])
    assert r.errors == [] and r.files == 1
    msgs = db.execute(
        "SELECT uuid, role, is_sidechain, turn_id FROM messages WHERE session_id = ? ORDER BY line_id", [S1]
    ).fetchall()
    assert len(msgs) == 10
    turns = db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY turn_index", [S1])
    turns = list(turns)
    assert [t["prompt_text"] for t in turns] == ["list the files", "push to github"]
    t0, t1 = turns
    assert t0["outcome"] == "completed" and t0["final_answer"] == "Two files: a.py and b.py."
    assert t0["tool_call_count"] == 1 and t0["duration_ms"] == 5000 and t0["prompt_id"] is None
    # Blocks of one API response repeat its usage: counted once per response (two responses here).
    assert t0["input_tokens"] == 20 and t0["output_tokens"] == 12 + 8
    assert t0["model"] == "claude-sonnet-4-20250514"
    assert t1["outcome"] == "interrupted" and t1["final_answer"] is None
    # The inline sidechain message is kept but belongs to no main-thread turn.
    side = [m for m in msgs if m[0] == "u1-side1"][0]
    assert side[2] == 1 and side[3] is None
    calls = {c["tool_use_id"]: c for c in db.query("SELECT * FROM tool_call_results")}
    assert calls["toolu_v1_ls"]["status"] == "success" and calls["toolu_v1_ls"]["source"] == "transcript"
    assert calls["toolu_v1_ls"]["duration_ms"] == 1500
    assert json.loads(calls["toolu_v1_ls"]["tool_response"])["stdout"] == "a.py\nb.py"
    assert calls["toolu_v1_ls"]["message_uuid"] == "u1-0003" and calls["toolu_v1_ls"]["turn_id"] == t0["id"]
    assert calls["toolu_v1_push"]["status"] == "denied" and calls["toolu_v1_push"]["turn_id"] == t1["id"]
    summary = db.execute("SELECT trigger, summary FROM compactions WHERE session_id = ?", [S1]).fetchone()
    assert summary == ("summary-entry", "Listing files and a cancelled push")
    s = db.execute("SELECT client_version, cwd, started_at FROM sessions WHERE id = ?", [S1]).fetchone()
    assert s == ("1.0.17", "/home/dev/old-project", "2025-06-10T12:00:00.000Z")


def test_new_format_session_with_subagent_and_compaction(db):
    r = import_paths(db.conn, [str(FIXTURES / "v2_new")])
    assert r.errors == [] and r.files == 2
    m = db.query("SELECT * FROM messages WHERE uuid = 'u2-0002'").__next__()
    assert m["thinking"] == "A helper can list the files." and m["text"] is None
    assert m["api_message_id"] == "msg_n1" and m["request_id"] == "req_msg_n1"
    assert m["input_tokens"] == 100 and m["cache_read_tokens"] == 50 and m["stop_reason"] == "tool_use"
    assert json.loads(m["content"])[0]["signature"] == "sig"
    m = db.query("SELECT * FROM messages WHERE uuid = 'u2-0003'").__next__()
    assert json.loads(m["tool_use_ids"]) == ["toolu_n_agent"]
    prompt = db.query("SELECT content, prompt_id FROM messages WHERE uuid = 'u2-0001'").__next__()
    assert prompt["prompt_id"] == "p2-prompt-1"
    assert json.loads(prompt["content"]) == [{"type": "text", "text": "Look around with a helper, then summarise."}]
    # The unknown entry type is kept raw and did not stop anything.
    raw = db.execute("SELECT raw FROM transcript_lines WHERE entry_type = 'hologram-future-entry'").fetchone()[0]
    assert json.loads(raw)["weird"] == {"nested": [1, 2, 3]}

    turns = list(db.query("SELECT * FROM turns WHERE session_id = ? AND agent_id IS NULL ORDER BY turn_index", [S2]))
    assert [t["prompt_id"] for t in turns] == ["p2-prompt-1", "p2-prompt-2", "p2-prompt-3"]
    assert turns[0]["final_answer"] == "Summary: the project has a.py." and turns[0]["outcome"] == "completed"
    assert turns[0]["tool_call_count"] == 1 and turns[0]["output_tokens"] == 40
    assert turns[1]["outcome"] == "completed" and turns[1]["final_answer"] is None  # /compact: local command
    assert turns[2]["final_answer"] == "One test fails." and turns[2]["tool_call_count"] == 1

    sub = list(db.query("SELECT * FROM turns WHERE agent_id = ?", [AGENT]))
    assert len(sub) == 1 and sub[0]["prompt_text"] == "List the files here." and sub[0]["session_id"] == S2
    assert sub[0]["final_answer"] == "The helper found: a.py"
    agent = db.query("SELECT * FROM subagents").__next__()
    assert agent["agent_id"] == AGENT and agent["parent_tool_use_id"] == "toolu_n_agent"
    assert agent["agent_type"] == "Explore" and agent["description"] == "List files" and agent["session_id"] == S2
    assert agent["transcript_path"].endswith(f"agent-{AGENT}.jsonl")

    calls = {c["tool_use_id"]: c for c in db.query("SELECT * FROM tool_call_results")}
    assert set(calls) == {"toolu_n_agent", "toolu_n_sub_ls", "toolu_n_pytest"}
    assert calls["toolu_n_sub_ls"]["agent_id"] == AGENT and calls["toolu_n_sub_ls"]["turn_id"] == sub[0]["id"]
    assert (
        calls["toolu_n_pytest"]["status"] == "failure"
        and calls["toolu_n_pytest"]["response_text"] == "Exit code 1\n1 failed"
    )
    assert calls["toolu_n_agent"]["response_text"] == "The helper found: a.py"

    c = db.query("SELECT * FROM compactions WHERE session_id = ?", [S2]).__next__()
    assert (c["uuid"], c["trigger"], c["pre_tokens"], c["summary_uuid"]) == ("u2-compact", "manual", 4321, "u2-0007")
    assert c["summary"].startswith("This session is being continued")
    assert db.execute("SELECT is_compact_summary FROM messages WHERE uuid = 'u2-0007'").fetchone()[0] == 1
    shape = db.query("SELECT * FROM api_shapes").__next__()
    assert shape["system"] == "You are a Claude agent.\n\nBe brief."
    assert [t["name"] for t in json.loads(shape["tools"])] == ["Bash", "Agent"]


def test_turn_ids_stay_stable_when_a_session_grows(db, tmp_path):
    src = FIXTURES / "v2_new" / "-home-dev-new-project" / f"{S2}.jsonl"
    path = tmp_path / f"{S2}.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:9]))  # up to the first final answer
    import_paths(db.conn, [str(path)])
    before = db.execute("SELECT id, turn_index, outcome FROM turns WHERE session_id = ?", [S2]).fetchall()
    assert [r[1:] for r in before] == [(0, "completed")]
    with open(path, "ab") as f:
        f.write(b"".join(lines[9:]))
    import_paths(db.conn, [str(path)])
    after = db.execute("SELECT id, turn_index FROM turns WHERE session_id = ? ORDER BY turn_index", [S2]).fetchall()
    assert len(after) == 3 and after[0][0] == before[0][0]


# -- the hook side --------------------------------------------------------------------------------


def _hook(payload, cra_home):
    handle_in_process(json.dumps(payload).encode(), {"CRA_HOME": str(cra_home)})


def test_stop_before_flush_uses_last_assistant_message_then_reconciles(db, cra_home, tmp_path):
    src = FIXTURES / "v2_new" / "-home-dev-new-project" / f"{S2}.jsonl"
    lines = src.read_bytes().splitlines(keepends=True)
    path = tmp_path / f"{S2}.jsonl"
    path.write_bytes(b"".join(lines[:7]))  # the final assistant message is not flushed yet
    base = {"session_id": S2, "transcript_path": str(path), "cwd": "/home/dev/new-project"}
    _hook(
        {**base, "hook_event_name": "UserPromptSubmit", "prompt": "Look around", "prompt_id": "p2-prompt-1"}, cra_home
    )
    _hook(
        {
            **base,
            "hook_event_name": "Stop",
            "prompt_id": "p2-prompt-1",
            "last_assistant_message": "Summary: the project has a.py.",
        },
        cra_home,
    )
    # The hook stored the raw lines (bounded work); normalisation is cra's.
    assert db.execute("SELECT count(*) FROM transcript_lines").fetchone()[0] == 7
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert not (cra_home / claude_hooks.ERROR_LOG).exists()
    sync(db.conn)
    t = db.query("SELECT * FROM turns WHERE session_id = ?", [S2]).__next__()
    assert (t["final_answer"], t["final_answer_source"], t["outcome"]) == (
        "Summary: the project has a.py.",
        "stop_hook",
        "completed",
    )
    turn_id = t["id"]
    # The client flushes; the next boundary tails it and cra reconciles from the transcript.
    with open(path, "ab") as f:
        f.write(b"".join(lines[7:9]))
    _hook({**base, "hook_event_name": "SessionEnd", "reason": "other"}, cra_home)
    sync(db.conn)
    t = db.query("SELECT * FROM turns WHERE session_id = ?", [S2]).__next__()
    assert (t["id"], t["final_answer_source"], t["final_answer"]) == (
        turn_id,
        "transcript",
        "Summary: the project has a.py.",
    )


def test_tail_failure_never_loses_the_event(db, cra_home, tmp_path, monkeypatch):
    def boom(con, payload, budget=0):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(transcript_tail, "tail_for_event", boom)
    _hook(
        {
            "session_id": "s-x",
            "transcript_path": str(tmp_path / "s-x.jsonl"),
            "cwd": "/tmp",
            "hook_event_name": "Stop",
            "last_assistant_message": "ok",
        },
        cra_home,
    )
    assert db.execute("SELECT hook_event_name FROM events").fetchall() == [("Stop",)]
    assert (
        not any((cra_home / claude_hooks.SPOOL_DIR).glob("*.event"))
        if (cra_home / claude_hooks.SPOOL_DIR).exists()
        else True
    )
    assert "disk on fire" in (cra_home / claude_hooks.ERROR_LOG).read_text()


def test_subagent_stop_tails_both_files(db, cra_home, tmp_path):
    src = FIXTURES / "v2_new" / "-home-dev-new-project"
    dst = tmp_path / "projects" / "-home-dev-new-project"
    shutil.copytree(src, dst)
    main = dst / f"{S2}.jsonl"
    agent = dst / S2 / "subagents" / f"agent-{AGENT}.jsonl"
    _hook(
        {
            "session_id": S2,
            "transcript_path": str(main),
            "agent_transcript_path": str(agent),
            "cwd": "/x",
            "hook_event_name": "SubagentStop",
            "agent_id": AGENT,
            "agent_type": "Explore",
        },
        cra_home,
    )
    paths = {r[0]: r[1] for r in db.execute("SELECT path, agent_id FROM transcript_files")}
    assert paths == {str(agent): AGENT, str(main): None}


def test_hook_stop_stays_fast_on_a_big_transcript(db, cra_home, tmp_path):
    """A 3 MB transcript seen for the first time at Stop: the hook reads at most its budget."""
    path = tmp_path / "big.jsonl"
    filler = {"type": "attachment", "sessionId": "big", "uuid": "x", "attachment": {"text": "y" * 2000}}
    with open(path, "wb") as f:
        for i in range(1500):
            filler["uuid"] = f"x{i}"
            f.write(_line(filler))
    assert path.stat().st_size > 3_000_000
    payload = {
        "session_id": "big",
        "transcript_path": str(path),
        "cwd": "/tmp",
        "hook_event_name": "Stop",
        "last_assistant_message": "done",
    }
    t = time.perf_counter()
    _hook(payload, cra_home)
    elapsed = time.perf_counter() - t
    offset = db.execute("SELECT byte_offset FROM transcript_files").fetchone()[0]
    assert 0 < offset <= transcript_tail.HOOK_BUDGET_BYTES
    assert elapsed < 2.0  # generous for slow CI; typically ~30 ms
    # The next boundaries continue where it stopped; cra takes the rest in one go.
    _hook({**payload, "hook_event_name": "UserPromptSubmit", "prompt": "more"}, cra_home)
    assert db.execute("SELECT byte_offset FROM transcript_files").fetchone()[0] > offset
    sync(db.conn)
    assert db.execute("SELECT byte_offset FROM transcript_files").fetchone()[0] == path.stat().st_size
    assert db.execute("SELECT count(*) FROM transcript_lines").fetchone()[0] == 1500
