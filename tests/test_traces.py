"""Traces from outside Claude Code: the openai-trace format round-trips through `cra import --format
openai-trace` and `cra dataset build`; `cra.record` writes and imports it; imported sessions are
marked, filtered like Claude Code's and never evaluated as Claude's; every format error is clear."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db
from cra.errors import InputFormatError
from cra.testing.tiny import synthetic_conversations
from cra.transcripts import importer
from cra.transcripts.traces import import_traces

BUILD = ["--min-tool-calls", "1", "--min-answer-words", "1", "--eval-fraction", "0", "--no-redact"]


def trace_lines(example: dict, session_id: str, day: int = 1) -> list[dict]:
    """A dataset example (`{"messages", "tools"}`) as the trace of one session."""
    messages = example["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    lines = [
        {
            "type": "session",
            "session_id": session_id,
            "agent": "tiny-agent/1.0",
            "model": "tiny",
            "cwd": "/work/project",
            "started_at": f"2026-03-{day:02d}T09:00:00Z",
            "system": system,
            "tools": json.loads(example["tools"]),
            "metadata": {"run": day},
        }
    ]
    for i, m in enumerate(x for x in messages if x["role"] != "system"):
        lines.append(
            {
                "type": "message",
                "session_id": session_id,
                "timestamp": f"2026-03-{day:02d}T09:00:{i:02d}Z",
                "message": m,
            }
        )
    lines.append({"type": "session_end", "session_id": session_id, "reason": "done"})
    return lines


def write_trace(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def build(db_path, out, *extra):
    result = CliRunner().invoke(
        cli, ["dataset", "build", "-d", str(db_path), "-o", str(out), "--name", "t", *BUILD, *extra]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def test_a_trace_round_trips_through_import_and_dataset_build(tmp_path):
    examples = synthetic_conversations(4, seed=3)
    trace = write_trace(
        tmp_path / "agent.jsonl", [line for i, ex in enumerate(examples) for line in trace_lines(ex, f"s{i}", i + 1)]
    )
    db_path = tmp_path / "cra.db"
    result = CliRunner().invoke(cli, ["import", "--format", "openai-trace", str(trace), "-d", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sessions"] == 4 and summary["errors"] == []

    db = open_db(str(db_path), drain=False)
    sessions = db.execute(
        "SELECT id, source, client_version, model, cwd, started_at, end_reason FROM sessions ORDER BY id"
    ).fetchall()
    assert sessions == [
        (f"s{i}", "openai-trace", "tiny-agent/1.0", "tiny", "/work/project", f"2026-03-0{i + 1}T09:00:00Z", "done")
        for i in range(4)
    ]
    assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == 4

    built = build(db_path, tmp_path / "ds", "--system", "recorded", "--tools", "used")
    assert len(built) == 4
    by_session = {ex["meta"]["session_id"]: ex for ex in built}
    for i, original in enumerate(examples):
        ex = by_session[f"s{i}"]
        assert ex["meta"]["source"] == "openai-trace"
        assert ex["messages"][0] == {"role": "system", "content": original["messages"][0]["content"]}
        # Every message comes back as logged (tool results also carry the tool's name).
        expected = [dict(m) for m in original["messages"][1:]]
        names = {tc["id"]: tc["function"]["name"] for m in expected for tc in m.get("tool_calls", [])}
        for m in expected:
            if m["role"] == "tool":
                m["name"] = names[m["tool_call_id"]]
        assert ex["messages"][1:] == expected
        assert sorted(json.loads(ex["tools"]), key=str) == sorted(json.loads(original["tools"]), key=str)

    # Importing again adds nothing.
    again = import_traces(db.conn, [str(trace)])
    assert again.lines == 0 and again.messages == 0


def record_session(tmp_path, **kwargs):
    from cra import record

    tools = [{"type": "function", "function": {"name": "Bash", "description": "Run a command.", "parameters": {}}}]
    with record.session(agent="my-agent/0.3", model="qwen-x", tools=tools, **kwargs) as s:
        s.user("Fix the failing test in parser.py")
        (read,) = s.assistant(
            "Let me look.", tool_calls=[("Read", {"file_path": "parser.py"})], reasoning="Read first."
        )
        s.tool(read, "def parse(): pass")
        first, second = s.assistant(tool_calls=[("Bash", {"command": "pytest -q"}), ("Grep", {"pattern": "parse"})])
        s.tool(first, "1 failed", is_error=True)
        s.tool(second, {"matches": 2})
        (run,) = s.assistant(
            "Fixing it.", tool_calls=[{"function": {"name": "Bash", "arguments": '{"command": "pytest"}'}}]
        )
        s.tool(run, "1 passed")
        s.assistant(
            "Fixed: parse() now skips blank lines, and the suite passes again.", usage={"completion_tokens": 12}
        )
    return s


def test_record_logs_a_session_straight_into_the_database(tmp_path):
    s = record_session(tmp_path)
    assert s.path.startswith(str(tmp_path / "cra-home" / "traces"))
    assert s.result.errors == [] and s.result.messages == 9
    db = open_db()
    ((source, agent, model, reason),) = db.execute(
        "SELECT source, client_version, model, end_reason FROM sessions WHERE id = ?", (s.session_id,)
    ).fetchall()
    assert (source, agent, model, reason) == ("openai-trace", "my-agent/0.3", "qwen-x", "completed")
    calls = db.execute("SELECT tool_name, status FROM tool_calls ORDER BY seq").fetchall()
    assert calls == [("Read", "success"), ("Bash", "failure"), ("Grep", "success"), ("Bash", "success")]
    ((prompt, answer, outcome, count, out_tokens),) = db.execute(
        "SELECT prompt_text, final_answer, outcome, tool_call_count, output_tokens FROM turns"
    ).fetchall()
    assert prompt == "Fix the failing test in parser.py" and answer.startswith("Fixed:")
    assert (outcome, count, out_tokens) == ("completed", 4, 12)
    assert db.execute("SELECT thinking FROM messages WHERE thinking IS NOT NULL").fetchall() == [("Read first.",)]
    # `cra sync` (and every `cra sessions`) leaves trace files to the trace importer.
    assert s.path not in importer.known_files(db.conn)
    shown = CliRunner().invoke(cli, ["show", s.session_id]).output
    assert "openai-trace: my-agent/0.3" in shown and "Claude Code" not in shown and "Grep" in shown


def test_record_can_write_only_a_file_for_a_later_import(tmp_path):
    path = tmp_path / "out" / "run.jsonl"
    s = record_session(tmp_path, path=path, database=False)
    assert s.result is None and not (tmp_path / "cra-home" / "cra.db").exists()
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert kinds[0] == "session" and kinds[-1] == "session_end" and kinds.count("message") == 9
    result = CliRunner().invoke(cli, ["import", "--format", "openai-trace", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert open_db().execute("SELECT count(*) FROM messages").fetchone()[0] == 9


def test_a_trace_still_being_written_is_imported_in_parts(tmp_path):
    lines = trace_lines(synthetic_conversations(1, seed=5)[0], "live")
    path = tmp_path / "live.jsonl"
    write_trace(path, lines[:3])
    db = open_db()
    assert import_traces(db.conn, [str(path)]).messages == 2
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines[3:])
    importer.sync(db.conn)  # Claude Code's catch-up does not swallow the new lines
    assert import_traces(db.conn, [str(path)]).messages == len(lines) - 4
    ((count, answer),) = db.execute("SELECT tool_call_count, final_answer FROM turns").fetchall()
    assert answer and count == sum(len(m.get("tool_calls", [])) for m in (line.get("message", {}) for line in lines))
    assert db.execute("SELECT count(DISTINCT parent_uuid) FROM messages").fetchone()[0] == len(lines) - 4 + 1


def test_traces_are_filtered_like_claude_code_turns_and_never_evaluated_as_claudes(recorded_db, tmp_path):
    from cra.eval.steps import steps_from_examples

    examples = synthetic_conversations(6, seed=7)
    short = dict(examples[0])
    short["messages"] = [m for m in examples[0]["messages"] if not m.get("tool_calls") and m["role"] != "tool"]
    trace = write_trace(
        tmp_path / "t.jsonl",
        trace_lines(short, "short") + [line for i, ex in enumerate(examples[1:]) for line in trace_lines(ex, f"t{i}")],
    )
    db = open_db(str(recorded_db), drain=False)
    assert import_traces(db.conn, [str(trace)]).errors == []
    rows = build(recorded_db, tmp_path / "mixed")
    sources = [r["meta"]["source"] for r in rows]
    assert sources.count("openai-trace") == 5 and "transcript" in sources  # the one without tool calls: filtered
    assert not any(r["meta"]["session_id"] == "short" for r in rows)
    steps, skipped = steps_from_examples(rows)
    assert skipped["trace_examples"] == 5
    assert steps and not any(s.session_id.startswith("t") and len(s.session_id) == 2 for s in steps)
    claude_sessions = {r["meta"]["session_id"] for r in rows if r["meta"]["source"] != "openai-trace"}
    assert {s.session_id for s in steps} == claude_sessions


BAD = [
    ("not_json", lambda L: [L[0], "{not json"], "line 2: not a JSON object"),
    ("claude_transcript", lambda L: [{"type": "user", "sessionId": "x", "uuid": "u"}], "import it without --format"),
    ("no_session_first", lambda L: L[1:], "line 1: an openai-trace starts with a session line"),
    ("unknown_type", lambda L: [L[0], {**L[1], "type": "note"}], "line 2: type must be one of"),
    ("unknown_session", lambda L: [L[0], {**L[1], "session_id": "other"}, L[0]], "message for session other before"),
    ("bad_role", lambda L: [L[0], {**L[1], "message": {"role": "robot", "content": "hi"}}], "line 2: role must be"),
    (
        "orphan_result",
        lambda L: [L[0], L[1], {**L[1], "message": {"role": "tool", "tool_call_id": "nope", "content": "x"}}],
        "line 3: a tool message needs the tool_call_id of an earlier assistant tool call",
    ),
    (
        "bad_arguments",
        lambda L: [
            L[0],
            L[1],
            {
                **L[2],
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "Read", "arguments": "{oops"}}],
                },
            },
        ],
        "line 3, tool call 0: arguments are not valid JSON",
    ),
    (
        "no_call_id",
        lambda L: [
            L[0],
            L[1],
            {
                **L[2],
                "message": {"role": "assistant", "tool_calls": [{"function": {"name": "Read", "arguments": "{}"}}]},
            },
        ],
        "line 3, tool call 0: needs an id",
    ),
    ("bad_field", lambda L: [{**L[0], "model": 7}], "line 1: model must be a string"),
    ("bad_tools", lambda L: [{**L[0], "tools": [{"type": "function"}]}], "tool 0: a tool is"),
]


@pytest.mark.parametrize("kind,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_a_broken_trace_fails_whole_with_its_line_and_the_others_go_on(kind, mutate, message, tmp_path):
    good_lines = trace_lines(synthetic_conversations(1, seed=9)[0], "good")
    good = write_trace(tmp_path / "a_good.jsonl", good_lines)
    broken = tmp_path / "b_broken.jsonl"
    broken.write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n"
            for line in mutate(trace_lines(synthetic_conversations(1, seed=10)[0], "broken"))
        ),
        encoding="utf-8",
    )
    db = open_db()
    result = import_traces(db.conn, [str(good), str(broken)])
    assert [(p, e) for p, e in result.errors if message in e] == [(str(broken), result.errors[0][1])], result.errors
    # Nothing of the broken file stays; the good one is whole.
    assert db.execute("SELECT count(*) FROM transcript_lines WHERE path = ?", (str(broken),)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM transcript_files WHERE path = ?", (str(broken),)).fetchone()[0] == 0
    assert db.execute("SELECT DISTINCT session_id FROM messages").fetchall() == [("good",)]
    assert db.execute("SELECT count(*) FROM transcript_lines").fetchone()[0] == len(good_lines)


def test_a_trace_may_not_take_over_a_claude_code_session(recorded_db, tmp_path):
    db = open_db(str(recorded_db), drain=False)
    (claude_session,) = db.execute("SELECT id FROM sessions LIMIT 1").fetchone()
    trace = write_trace(tmp_path / "t.jsonl", trace_lines(synthetic_conversations(1)[0], claude_session))
    result = CliRunner().invoke(cli, ["import", "--format", "openai-trace", str(trace), "-d", str(recorded_db)])
    assert result.exit_code == 0
    assert f"Skipped {trace}: line 1: session {claude_session} is already a Claude Code session" in result.output
    assert db.execute("SELECT source FROM sessions WHERE id = ?", (claude_session,)).fetchone() == ("claude-code",)


def test_record_refuses_what_the_format_cannot_hold(tmp_path):
    from cra import record

    with record.session(database=False, path=tmp_path / "r.jsonl") as s:
        with pytest.raises(InputFormatError, match="no tool call 'call_x' is waiting"):
            s.tool("call_x", "result")
        with pytest.raises(InputFormatError, match="arguments of Read are not valid JSON"):
            s.assistant(tool_calls=[("Read", "{oops")])
        with pytest.raises(InputFormatError, match="content must be a string"):
            s.user(["not", "text"])
    with pytest.raises(InputFormatError, match="closed"):
        s.user("again")


def test_importing_cra_record_is_light():
    code = "import sys, cra.record; print(sorted(m for m in ('sqlite_utils', 'cra.db', 'click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
