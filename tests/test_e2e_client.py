"""End to end: the real Claude Code client, cra's hooks installed by the real `cra install`, a mock API.

For each scenario (tests/e2e/scenarios.py) the database must agree with the client's own transcript:
every tool_use block has a tool_calls row with the same input, the structured result where the
client ran the tool, the status the scenario expects, and the subagent that made it. The hooks must
not change what the client does, and nothing may end up in hook-errors.log or the spool.

Needs node and npm (the pinned client is installed once into $CRA_CLAUDE_CODE_CACHE, default
~/.cache/cra/claude-code); skips only when they are missing. The same checks also run without node,
on the committed recordings (tests/fixtures/recorded) replayed through the hook.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_drainer

try:
    from e2e import claude_client
    from e2e.claude_client import ClaudeCodeUnavailable, install_cra_hooks, load_jsonl, run_scenario, run_session
    from e2e.scenarios import SCENARIOS, blocks
except ImportError:  # tests/ imported as a package
    from tests.e2e import claude_client
    from tests.e2e.claude_client import ClaudeCodeUnavailable, install_cra_hooks, load_jsonl, run_scenario, run_session
    from tests.e2e.scenarios import SCENARIOS, blocks

# Mock request kinds that mean a scenario went off script, or the client tried to leave loopback.
BAD_REQUEST_KINDS = {"exhausted", "unknown_scenario", "mock_error", "bad_json", "proxy_refused"}


@pytest.fixture(scope="module")
def claude():
    try:
        return claude_client.ensure_claude_code()
    except ClaudeCodeUnavailable as exc:
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("node/npm not available: cannot install the Claude Code client (%s)" % exc)
        raise


def final_text(name):
    """The text of the main script's last step: what the client's `result` must be."""
    return [b["text"] for b in blocks(SCENARIOS[name].scripts[name][-1]) if b["type"] == "text"][-1]


# ---------------------------------------------------------------------------------------------
# Reading both sides


def transcript_calls(main_transcript, subagent_transcripts):
    """Every tool_use in the transcripts: id -> {name, input, agent_id}; and main-thread results by id."""
    calls, results = {}, {}
    assert main_transcript is not None and Path(main_transcript).exists(), "no main transcript"
    files = [(main_transcript, None)] + [(p, Path(p).stem[len("agent-") :]) for p in subagent_transcripts]
    for path, agent_id in files:
        for entry in load_jsonl(path):
            message = entry.get("message") or {}
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if not isinstance(block, dict):
                    continue
                if entry.get("type") == "assistant" and block.get("type") == "tool_use":
                    calls[block["id"]] = {"name": block["name"], "input": block["input"], "agent_id": agent_id}
                elif entry.get("type") == "user" and block.get("type") == "tool_result" and agent_id is None:
                    results[block["tool_use_id"]] = {
                        "content": block.get("content"),
                        "is_error": bool(block.get("is_error")),
                        "toolUseResult": entry.get("toolUseResult"),
                    }
    return calls, results


def db_rows(cra_home, sql, args=()):
    # The hooks hand events to a background drainer: let it finish before reading.
    wait_for_drainer({"CRA_HOME": str(cra_home)})
    con = sqlite3.connect(str(Path(cra_home) / "cra.db"))
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def assert_capture_clean(cra_home, hook_tmpdir):
    """No hook errors, nothing spooled (in CRA_HOME or the fallback under the hooks' TMPDIR), and
    every event parsed and derived."""
    wait_for_drainer({"CRA_HOME": str(cra_home)})
    log = Path(cra_home) / "hook-errors.log"
    assert not log.exists() or log.read_text() == "", log.read_text()
    for spool in (Path(cra_home) / "spool", Path(hook_tmpdir) / ("cra-spool-%d" % os.getuid())):
        left = sorted(p.name for p in spool.glob("*")) if spool.exists() else []
        assert left == [], "spooled events left in %s: %s" % (spool, left)
    bad = db_rows(
        cra_home,
        "SELECT hook_event_name, parse_error, derive_error FROM events"
        " WHERE parse_error IS NOT NULL OR derive_error IS NOT NULL",
    )
    assert bad == []


def assert_db_matches_transcripts(cra_home, session_id, main_transcript, subagent_transcripts, expected):
    """The database's tool_calls against the transcripts; `expected`: tool_use id -> status."""
    calls, results = transcript_calls(main_transcript, subagent_transcripts)
    rows = {
        r["tool_use_id"]: r
        for r in db_rows(cra_home, "SELECT * FROM tool_call_results WHERE session_id = ?", (session_id,))
    }

    # Both sides hold exactly the calls the mock scripted.
    assert set(calls) == set(expected), "transcript tool_use ids differ from the mock's"
    assert set(rows) == set(calls), "tool_calls rows differ from the transcript's tool_use blocks"

    for tool_use_id, call in calls.items():
        row = rows[tool_use_id]
        where = "%s %s" % (call["name"], tool_use_id)
        assert row["session_id"] == session_id, where
        assert row["tool_name"] == call["name"], where
        assert json.loads(row["tool_input"]) == call["input"], where
        assert row["agent_id"] == call["agent_id"], where
        assert row["status"] == expected[tool_use_id], "%s: %s (%s)" % (where, row["status"], row["error"])
        result = results.get(tool_use_id)
        if call["agent_id"] is None:
            assert result is not None, "no tool_result in the transcript for %s" % where
            if row["status"] == "success":
                # PostToolUse's tool_response is exactly the transcript's structured result.
                assert json.loads(row["tool_response"]) == result["toolUseResult"], where
                assert not result["is_error"], where
            else:
                assert result["is_error"], where
                assert row["tool_response"] is None, where
                assert row["error"], where
            if isinstance(result["content"], str):
                # PostToolBatch carries the text the model was shown.
                assert row["response_text"] == result["content"], where
        else:
            assert row["agent_type"] == "general-purpose", where
            assert row["response_text"] is not None, where
            if row["status"] == "success":
                assert row["tool_response"] is not None, where
    assert not [r for r in rows.values() if r["status"] == "pending"]
    return calls, rows


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_capture_matches_transcript(name, claude, cra_home, tmp_path):
    scenario = SCENARIOS[name]
    home, work = tmp_path / "home", tmp_path / "work"
    install_cra_hooks(home, cra_home)
    runs = run_session(name, work, home, claude=claude)

    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.result is not None and not run.result.get("is_error"), run.stdout[-3000:]
        kinds = {r["kind"] for r in run.requests}
        assert not kinds & BAD_REQUEST_KINDS, [r for r in run.requests if r["kind"] in BAD_REQUEST_KINDS]
    assert runs[0].result_text == final_text(name)
    assert all(r.session_id == runs[0].session_id for r in runs)

    assert_capture_clean(cra_home, home / "tmp")  # the client's TMPDIR (claude_client.offline_env)
    expected = {}
    for run in runs:
        expected.update(run.expected)
    calls, rows = assert_db_matches_transcripts(
        cra_home, runs[0].session_id, runs[0].transcript(), runs[0].subagent_transcripts(), expected
    )

    session = db_rows(cra_home, "SELECT * FROM sessions WHERE id = ?", (runs[0].session_id,))
    assert len(session) == 1
    assert session[0]["transcript_path"] == str(runs[0].transcript())
    assert session[0]["entrypoint"] == "sdk-cli"
    assert session[0]["start_source"] == "startup"
    assert session[0]["ended_at"] is not None
    events = [r["hook_event_name"] for r in db_rows(cra_home, "SELECT hook_event_name FROM events ORDER BY id")]
    for required in ("SessionStart", "UserPromptSubmit", "Stop", "SessionEnd"):
        assert required in events

    for relative in scenario.must_not_exist:
        assert not (work / relative).exists(), "a denied call created %s" % relative

    if name == "tools":
        # Write and Edit really ran, in order.
        assert (work / "notes.md").read_text() == "# Notes\nsecond draft\n"
    if name == "parallel":
        main = sorted(rows.values(), key=lambda r: r["seq"])
        assert len(main) == 5 and len({r["batch_id"] for r in main}) == 1
        # seq follows the model's order even though the hooks ran concurrently.
        first_step = [r for r in runs[0].requests if r["kind"] == "scenario" and r["step"] == 0][0]
        model_order = [b["id"] for b in first_step["response_content"] if b["type"] == "tool_use"]
        assert [r["tool_use_id"] for r in main] == model_order
        pre = db_rows(cra_home, "SELECT count(*) AS n FROM events WHERE hook_event_name = 'PreToolUse'")
        assert pre[0]["n"] == 5
    if name in ("subagent", "subagent_async"):
        agents = {c["agent_id"] for c in calls.values()} - {None}
        assert len(agents) == 1, agents
        agent_id = agents.pop()
        inner = [r for r in rows.values() if r["agent_id"] == agent_id]
        assert sorted(r["tool_name"] for r in inner) == sorted(
            b["name"] for step in scenario.scripts[name + "_inner"] for b in blocks(step) if b["type"] == "tool_use"
        )
        agent_call = [r for r in rows.values() if r["tool_name"] == "Agent"][0]
        assert json.loads(agent_call["tool_response"])["agentId"] == agent_id
        stops = db_rows(cra_home, "SELECT agent_id FROM events WHERE hook_event_name = 'SubagentStop'")
        assert {s["agent_id"] for s in stops} == {agent_id}
    if name == "compact":
        sources = [
            r["s"]
            for r in db_rows(
                cra_home,
                "SELECT json_extract(payload, '$.source') AS s FROM events"
                " WHERE hook_event_name = 'SessionStart' ORDER BY id",
            )
        ]
        assert sources == ["startup", "resume", "compact"]
        assert {"PreCompact", "PostCompact"} <= set(events)
        summary = [r for r in runs[1].requests if r["kind"] == "compact_summary"]
        assert summary, "the /compact run sent no summary request"
        assert any(e.get("isCompactSummary") for e in load_jsonl(runs[0].transcript())), (
            "no compact summary in the transcript"
        )


@pytest.mark.e2e
def test_hooks_do_not_change_client_output(claude, cra_home, tmp_path):
    """Same scenario with and without cra's hooks: the same answer, turns and tool results."""

    def outcome(run):
        blocks = []
        for m in run.messages:
            if m.get("type") in ("assistant", "user"):
                for b in m["message"]["content"] if isinstance(m["message"]["content"], list) else []:
                    if b["type"] == "tool_use":
                        blocks.append(("tool_use", b["name"], json.dumps(b["input"], sort_keys=True)))
                    elif b["type"] == "tool_result":
                        blocks.append(("tool_result", bool(b.get("is_error"))))
                    elif b["type"] == "text":
                        blocks.append(("text", b["text"]))
        r = run.result
        return r["result"], r["subtype"], r["is_error"], r["num_turns"], r.get("stop_reason"), blocks

    # The same working directory path for both runs, so tool inputs (absolute paths) are identical.
    work = tmp_path / "work"
    plain = run_scenario("failures", work, tmp_path / "home-plain", claude=claude)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert not (Path(cra_home) / "cra.db").exists()  # nothing recorded without hooks

    shutil.rmtree(work)
    install_cra_hooks(tmp_path / "home-hooked", cra_home)
    hooked = run_scenario("failures", work, tmp_path / "home-hooked", claude=claude)
    assert hooked.returncode == 0, hooked.stderr[-3000:]
    assert db_rows(cra_home, "SELECT count(*) AS n FROM tool_calls")[0]["n"] == 6

    assert outcome(hooked) == outcome(plain)
    assert plain.result_text == final_text("failures")


# ---------------------------------------------------------------------------------------------
# Without node: the recordings (tests/fixtures/recorded, made by `python -m tests.e2e.record`)
# replayed through the hook, one process per event as Claude Code runs it.

RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"
HOOK = Path(__file__).resolve().parent.parent / "claude_hooks" / "hook.py"
MOCK_ID = re.compile(r"^toolu_mock_(?P<script>.+)_s(?P<step>\d+)_b(?P<block>\d+)_[0-9a-f]{8}$")


def expected_status(tool_use_id):
    """The mock's ids say which script, step and block made a call: its `_expect`, else success."""
    m = MOCK_ID.match(tool_use_id)
    assert m, tool_use_id
    for scenario in SCENARIOS.values():
        if m["script"] in scenario.scripts:
            step = blocks(scenario.scripts[m["script"]][int(m["step"])])
            return step[int(m["block"])].get("_expect") or "success"
    raise AssertionError("no script %s" % m["script"])


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDED.glob("*") if (p / "hooks.jsonl").exists()))
def test_recorded_sessions_replayed_through_hook(name, cra_home, tmp_path):
    from cra.db import open_db

    open_db().conn.close()  # the hook writes only into an existing database
    lines = [json.loads(line) for line in (RECORDED / name / "hooks.jsonl").read_text().splitlines()]
    lines.sort(key=lambda r: r["t_start"])  # the order the client started the hooks in
    for line in lines:
        proc = subprocess.run(
            [sys.executable, "-S", str(HOOK)],
            input=json.dumps(line["payload"]).encode(),
            env={**os.environ, **line["env"]},
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0 and proc.stdout == b"", proc

    meta = json.loads((RECORDED / name / "scenario.json").read_text())
    session_id = meta["session_id"]
    main = sorted((RECORDED / name / "transcripts").glob("*/%s.jsonl" % session_id))
    assert len(main) == 1
    subagents = sorted((main[0].parent / session_id / "subagents").glob("agent-*.jsonl"))
    calls, _ = transcript_calls(main[0], subagents)
    expected = {tool_use_id: expected_status(tool_use_id) for tool_use_id in calls}
    assert_db_matches_transcripts(cra_home, session_id, main[0], subagents, expected)
    assert_capture_clean(cra_home, tmp_path)


# ---------------------------------------------------------------------------------------------
# The mock itself (no client needed)


def _post(mock, body, path="/v1/messages?beta=true"):
    import http.client

    con = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    con.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = con.getresponse()
    data = resp.read().decode("utf-8")
    con.close()
    return resp.status, resp.getheader("Content-Type"), data


def _assemble(sse):
    """Rebuild the message from SSE events as a client does."""
    message, partial = None, {}
    for chunk in sse.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        if data["type"] == "message_start":
            message = data["message"]
        elif data["type"] == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif data["type"] == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif data["type"] == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial.pop(data["index"]))
        elif data["type"] == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
    assert data["type"] == "message_stop"
    return message


def test_mock_api_streams_scripted_steps_and_answers_the_rest():
    try:
        from e2e.mock_api import MockAPI
    except ImportError:
        from tests.e2e.mock_api import MockAPI

    script = {
        "demo": [
            [
                {"type": "thinking", "thinking": "plan " * 30},
                {"type": "text", "text": "Looking."},
                {
                    "type": "tool_use",
                    "name": "Read",
                    "input": {"file_path": "@WORK@/a.txt", "n": [1, {"x": "y"}]},
                    "_expect": "failure",
                },
            ],
            [{"type": "text", "text": "Done."}],
        ]
    }
    user = {
        "role": "user",
        "content": [
            {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            {"type": "text", "text": "[[scenario:demo]] go"},
        ],
    }
    with MockAPI(script, {"@WORK@": "/w"}) as mock:
        status, ctype, data = _post(mock, {"model": "m", "stream": True, "messages": [user]})
        assert status == 200 and ctype.startswith("text/event-stream")
        message = _assemble(data)
        assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
        assert message["content"][0]["thinking"] == "plan " * 30 and message["content"][0]["signature"]
        tool_use = message["content"][2]
        assert tool_use["input"] == {"file_path": "/w/a.txt", "n": [1, {"x": "y"}]}
        assert message["stop_reason"] == "tool_use" and message["model"] == "m"
        assert mock.expected == {tool_use["id"]: "failure"}

        # Step 1: one assistant message already in the request; not streamed -> plain JSON.
        history = [
            user,
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "x"}]},
        ]
        status, ctype, data = _post(mock, {"model": "m", "messages": history})
        reply = json.loads(data)
        assert ctype == "application/json" and reply["content"] == [{"type": "text", "text": "Done."}]
        assert reply["stop_reason"] == "end_turn"

        compact = history + [
            {"role": "user", "content": "Your task is to create a detailed summary of the conversation so far"}
        ]
        reply = json.loads(_post(mock, {"model": "m", "messages": compact})[2])
        assert "<summary>" in reply["content"][0]["text"] and "demo" in reply["content"][0]["text"]
        assert json.loads(_post(mock, {"messages": [user]}, "/v1/messages/count_tokens")[2])["input_tokens"] > 0
        other = json.loads(_post(mock, {"messages": [{"role": "user", "content": "title?"}]})[2])
        assert other["content"][0]["type"] == "text"

        import http.client

        con = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
        con.request("CONNECT", "api.example.com:443")
        assert con.getresponse().status == 403  # as a proxy it opens no tunnel out of loopback
        con.close()
    assert [r["kind"] for r in mock.requests] == [
        "scenario",
        "scenario",
        "compact_summary",
        "count_tokens",
        "other",
        "proxy_refused",
    ]
    assert [r["step"] for r in mock.scenario_requests("demo")] == [0, 1]
