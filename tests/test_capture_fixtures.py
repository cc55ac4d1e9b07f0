"""Hook payloads recorded from real Claude Code runs, fed to the hook as the client fed them, and the
resulting tool_calls checked against the client's own transcripts.

Sources (each skipped when absent): ../shared/fixtures/claude-code-2.1.328/<scenario>/ and this
project's own recordings in tests/fixtures/recorded/<scenario>/ (hooks.jsonl + transcripts/), and the
older clients' hook logs in ../shared/fixtures/public/hooklogs/ (no tool_use_id: paired by order).
"""

import collections
import json
import os
import sqlite3

import pytest
from conftest import REPO, SHARED, handle_in_process, run_hook

import claude_hooks
from claude_hooks import drain
from cra.db import open_db

SHARED_SCENARIOS = SHARED / "fixtures" / "claude-code-2.1.328"
RECORDED = REPO / "tests" / "fixtures" / "recorded"
HOOKLOGS = SHARED / "fixtures" / "public" / "hooklogs"


def _scenarios(root):
    return sorted(p.parent for p in root.glob("*/hooks.jsonl")) if root.is_dir() else []


def _params(root, label):
    found = _scenarios(root)
    if not found:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {label} fixtures in {root}"))]
    return [pytest.param(p, id=f"{label}-{p.name}") for p in found]


ALL_SCENARIOS = _params(SHARED_SCENARIOS, "shared") + _params(RECORDED, "recorded")

# What each shared scenario must produce: (tool, status, inside a subagent), in session order.
S, F, D, V, B = "success", "failure", "denied", "invalid", "blocked"  # V: failed validation
PINNED = {
    "basic_json": [("Bash", S, False)],
    "compact": [("Bash", S, False)],
    "denied": [("Bash", D, False), ("Write", D, False), ("Read", S, False)],
    "denied_dontask": [("Bash", D, False), ("Write", D, False), ("Read", S, False)],
    "failures": [
        ("Bash", F, False),  # exit 3: PostToolUseFailure
        ("Read", F, False),  # missing file: PostToolUseFailure
        ("Read", S, False),
        ("Edit", F, False),  # old text not found: only PostToolBatch tells
        ("Read", V, False),  # InputValidationError
        ("NoSuchTool", V, False),
    ],
    "hook_exit2": [("Bash", B, False)],
    "misc_events": [("Bash", S, False)],
    "parallel_mixed": [
        ("Write", S, False),
        ("Read", S, False),
        ("Write", S, False),
        ("Bash", S, False),
        ("Bash", S, False),
    ],
    "slash_command": [("Bash", S, False)],
    "subagent": [("Agent", S, False), ("Bash", S, True), ("Read", S, True)],
    "subagent_sync": [("Agent", S, False), ("Read", S, True)],
    "tools": [
        ("Bash", S, False),
        ("Read", S, False),
        ("Grep", S, False),
        ("Glob", S, False),
        ("Write", S, False),
        ("Edit", S, False),
        ("Bash", S, False),
        ("Bash", S, False),
        ("Bash", S, False),
    ],
}


def load_hook_lines(scenario):
    lines = []
    with open(scenario / "hooks.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(json.loads(line))
    return lines


def feed(scenario):
    """Each recorded hook call, through the real hook process, with the client's CLAUDE_* env."""
    open_db().conn.close()
    lines = load_hook_lines(scenario)
    for line in lines:
        env = {k: v for k, v in (line.get("env") or {}).items() if k.startswith("CLAUDE")}
        proc = run_hook(json.dumps(line["payload"]), env=env)
        assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    return lines


def transcript_calls(scenario):
    """tool_use blocks in the client's transcripts, in order per file, with their results."""
    uses, results = {}, {}
    order = collections.defaultdict(list)  # agent id (None: main thread) -> tool_use ids in order
    for path in sorted((scenario / "transcripts").rglob("*.jsonl")):
        agent = path.stem[len("agent-") :] if path.stem.startswith("agent-") else None
        if agent and agent.startswith("acompact"):
            continue  # compaction's own run: not a session's tool calls
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            content = (entry.get("message") or {}).get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "tool_use" and block["id"] not in uses:
                    uses[block["id"]] = {"name": block["name"], "input": block["input"], "agent": agent}
                    order[agent].append(block["id"])
                elif block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = {
                        "is_error": bool(block.get("is_error")),
                        "content": block.get("content"),
                        "toolUseResult": entry.get("toolUseResult", None),
                        "has_structured": "toolUseResult" in entry,
                        "denial": entry.get("toolDenialKind"),
                        "decision": (entry.get("permissionDecision") or {}).get("decision"),
                    }
    return uses, results, order


def _db():
    con = sqlite3.connect(claude_hooks.db_path(os.environ))
    con.row_factory = sqlite3.Row
    return con


@pytest.mark.parametrize("scenario", ALL_SCENARIOS)
def test_scenario_matches_client_transcript(scenario, cra_home):
    lines = feed(scenario)
    con = _db()
    sessions = {line["payload"].get("session_id") for line in lines}

    # Every hook call is an event, kept as received, derived without error; nothing left behind.
    rows = con.execute("SELECT hook_event_name, payload, derive_error, via FROM events ORDER BY id").fetchall()
    assert [r["hook_event_name"] for r in rows] == [line["payload"]["hook_event_name"] for line in lines]
    assert [json.loads(r["payload"]) for r in rows] == [line["payload"] for line in lines]
    assert all(r["derive_error"] is None for r in rows)
    assert {r["via"] for r in rows} == {"hook"}
    assert not any((cra_home / claude_hooks.SPOOL_DIR).glob("*.event"))
    assert set(r[0] for r in con.execute("SELECT id FROM sessions")) == sessions

    calls = {r["tool_use_id"]: r for r in con.execute("SELECT * FROM tool_call_results")}
    uses, results, order = transcript_calls(scenario)
    assert uses, "the transcript has tool calls"
    assert set(calls) == set(uses)
    for tool_use_id, use in uses.items():
        row = calls[tool_use_id]
        assert row["tool_name"] == use["name"]
        assert json.loads(row["tool_input"]) == use["input"], tool_use_id
        assert row["agent_id"] == use["agent"], tool_use_id
        assert row["status"] != "pending"
        result = results.get(tool_use_id)
        if result is None:
            continue
        # The model saw an error exactly when cra says the call did not succeed.
        assert (row["status"] != "success") == result["is_error"], (tool_use_id, row["status"])
        if row["status"] == "success" and result["has_structured"] and use["agent"] is None:
            assert json.loads(row["tool_response"]) == result["toolUseResult"]
        if row["status"] in ("denied", "invalid", "blocked"):
            assert row["error"] and row["post_at"]
        # The client's own verdicts, where it wrote them: a denial, or a permitted run that failed.
        if result["denial"]:  # the client files a PreToolUse hook's block (exit 2) as a denial too
            assert row["status"] in ("denied", "blocked"), tool_use_id
        if result["is_error"] and result["decision"] == "accept":
            assert row["status"] in ("failure", "interrupted"), tool_use_id

    # Order within the session is the model's order, per thread (parallel hooks finish in any order).
    for agent, ids in order.items():
        rows = con.execute(
            "SELECT tool_use_id FROM tool_calls WHERE agent_id IS ? AND session_id IN (%s) ORDER BY seq"
            % ",".join("?" * len(sessions)),
            [agent, *sessions],
        ).fetchall()
        assert [r[0] for r in rows] == ids
    for session in sessions:
        seqs = [r[0] for r in con.execute("SELECT seq FROM tool_calls WHERE session_id = ? ORDER BY seq", [session])]
        assert seqs == list(range(1, len(seqs) + 1))
    # Calls that ran as one assistant message share their PostToolBatch.
    assert all(r["batch_id"] is not None for r in calls.values())

    pinned = PINNED.get(scenario.name) if scenario.parent == SHARED_SCENARIOS else None
    if pinned is not None:
        got = [
            (r["tool_name"], r["status"], r["agent_id"] is not None)
            for r in con.execute("SELECT * FROM tool_calls ORDER BY session_id, seq")
        ]
        assert got == pinned


PARALLEL = [p for p in (SHARED_SCENARIOS / "parallel_mixed", RECORDED / "parallel") if (p / "hooks.jsonl").exists()]


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(p, id=p.parent.parent.name + "-" + p.name) for p in PARALLEL]
    or [pytest.param(None, marks=pytest.mark.skip(reason="no parallel fixture"))],
)
def test_parallel_batch_keeps_model_order(scenario, cra_home, tmp_path):
    """Parallel read-only calls' hooks overlap and arrive in any order: PostToolBatch restores the
    model's order. A parallel run replayed with each batch's hook calls reversed."""
    lines = load_hook_lines(scenario)
    batch_ids = [
        [c["tool_use_id"] for c in line["payload"]["tool_calls"]] for line in lines if line["event"] == "PostToolBatch"
    ]
    assert max(map(len, batch_ids)) > 1
    shuffled = list(lines)
    for ids in batch_ids:
        for event in ("PreToolUse", "PostToolUse"):
            positions = [
                n
                for n, line in enumerate(lines)
                if line["payload"].get("tool_use_id") in ids and line["event"] == event
            ]
            for n, m in zip(positions, reversed(positions)):
                shuffled[n] = lines[m]
    (tmp_path / "reversed").mkdir()
    with open(tmp_path / "reversed" / "hooks.jsonl", "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in shuffled)
    feed(tmp_path / "reversed")
    con = _db()
    first = [
        r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls WHERE post_at IS NOT NULL ORDER BY pre_at, rowid")
    ]
    assert first != [i for ids in batch_ids for i in ids]  # the replay really was out of order
    by_seq = [r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls ORDER BY seq")]
    assert by_seq == [i for ids in batch_ids for i in ids]
    batches = [
        [r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls WHERE batch_id = ? ORDER BY seq", [b])]
        for (b,) in con.execute("SELECT DISTINCT batch_id FROM tool_calls ORDER BY batch_id")
    ]
    assert batches == batch_ids


# ---------------------------------------------------------------------------------------------
# Older clients' hook logs: no tool_use_id, one file per event type.


def _hooklog_dirs():
    if not HOOKLOGS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{HOOKLOGS} absent"))]
    return [pytest.param(p, id=p.name) for p in sorted(HOOKLOGS.iterdir()) if p.is_dir()]


def _key(payload):
    return (payload.get("session_id"), payload.get("tool_name"), json.dumps(payload.get("tool_input")))


@pytest.mark.parametrize("logdir", _hooklog_dirs())
def test_older_client_hook_logs(logdir, cra_home):
    db = open_db()
    # Per-event files lose the interleaving: replay every PreToolUse, then every PostToolUse, then
    # the rest (Stop, ...), the order in which they happened within each call.
    rank = {"pre_tool_use.json": 0, "post_tool_use.json": 1}
    files = sorted(logdir.glob("*.json"), key=lambda p: (rank.get(p.name, 2), p.name))
    fed = collections.defaultdict(list)
    total = 0
    for path in files:
        for payload in json.loads(path.read_text(encoding="utf-8")):
            handle_in_process(json.dumps(payload).encode("utf-8"), dict(os.environ))
            fed[path.name].append(payload)
            total += 1
    con = db.conn
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == total
    assert con.execute("SELECT count(*) FROM events WHERE derive_error IS NOT NULL").fetchone()[0] == 0
    assert not os.listdir(cra_home / claude_hooks.SPOOL_DIR) if (cra_home / claude_hooks.SPOOL_DIR).exists() else True

    pres, posts = fed["pre_tool_use.json"], fed["post_tool_use.json"]
    if not pres and not posts:
        assert con.execute("SELECT count(*) FROM tool_calls").fetchone()[0] == 0
        return
    rows = [
        dict(zip(("id", "session", "name", "input", "response", "status", "pre_at", "synthetic", "seq"), r))
        for r in con.execute(
            "SELECT tool_use_id, session_id, tool_name, tool_input, tool_response, status, pre_at,"
            " synthetic_id, seq FROM tool_calls"
        )
    ]
    # One row per call: each Post joined the Pre with the same tool and input, else got its own row.
    pre_count = collections.Counter(map(_key, pres))
    post_count = collections.Counter(map(_key, posts))
    row_count = collections.Counter((r["session"], r["name"], json.dumps(json.loads(r["input"]))) for r in rows)
    assert row_count == {k: max(pre_count[k], post_count[k]) for k in pre_count | post_count}
    # Every Post's result is on a row with its own input, and nothing got two results.
    success = collections.Counter(
        (r["session"], r["name"], json.dumps(json.loads(r["input"])), r["response"])
        for r in rows
        if r["status"] == "success"
    )
    expected = collections.Counter(_key(p) + (drain.json_text(p.get("tool_response")),) for p in posts)
    assert success == expected
    assert sum(1 for r in rows if r["pre_at"]) == len(pres)
    for r in rows:
        assert r["synthetic"] == (0 if any(r["id"] == p.get("tool_use_id") for p in pres + posts) else 1)
        assert r["status"] in ("success", "pending", "interrupted")
    for session in {r["session"] for r in rows}:
        seqs = sorted(r["seq"] for r in rows if r["session"] == session)
        assert seqs == list(range(1, len(seqs) + 1))
    # A Stop ends the calls its session left unfinished.
    stopped = {p["session_id"] for p in fed["stop.json"]}
    assert not [r for r in rows if r["session"] in stopped and r["status"] == "pending"]


def test_older_client_pairs_in_order_without_ids(cra_home):
    """Hand-written: two identical calls without ids, then their Posts: first Pre pairs with first Post."""
    db = open_db()
    base = {"session_id": "old", "cwd": "/p", "transcript_path": "/p/t.jsonl", "tool_name": "Bash"}
    events = [
        dict(base, hook_event_name="PreToolUse", tool_input={"command": "date"}),
        dict(base, hook_event_name="PreToolUse", tool_input={"command": "ls"}),
        dict(base, hook_event_name="PreToolUse", tool_input={"command": "date"}),
        dict(base, hook_event_name="PostToolUse", tool_input={"command": "ls"}, tool_response={"stdout": "a"}),
        dict(base, hook_event_name="PostToolUse", tool_input={"command": "date"}, tool_response={"stdout": "1"}),
        dict(base, hook_event_name="PostToolUse", tool_input={"command": "date"}, tool_response={"stdout": "2"}),
        dict(base, hook_event_name="PostToolUse", tool_input={"command": "pwd"}, tool_response={"stdout": "/p"}),
    ]
    for payload in events:
        handle_in_process(json.dumps(payload).encode(), dict(os.environ))
    got = [
        (json.loads(r[0])["command"], json.loads(r[1])["stdout"], r[2], r[3] is not None)
        for r in db.conn.execute("SELECT tool_input, tool_response, seq, pre_at FROM tool_calls ORDER BY seq")
    ]
    assert got == [("date", "1", 1, True), ("ls", "a", 2, True), ("date", "2", 3, True), ("pwd", "/p", 4, False)]
