"""Signals over a real database: built from the project's recorded Claude Code sessions (hooks +
transcripts), pinned on turns checked by hand, kept current incrementally, shown by `cra signals`."""

import json
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import SHARED, build_fixture_db, scenario_dirs

from cra.cli import cli
from cra.db import open_db
from cra.signals import SignalConfig
from cra.signals.config import DepthThresholds
from cra.signals.store import update_signals


def signals_by_prompt(db, prefix, agent=False):
    rows = db.execute(
        "SELECT sg.*, t.agent_id FROM signals sg JOIN turns t ON t.id = sg.turn_id"
        " WHERE t.prompt_text LIKE ? AND (t.agent_id IS NOT NULL) = ?",
        [prefix + "%", int(agent)],
    )
    cols = [d[0] for d in rows.description]
    found = [dict(zip(cols, r)) for r in rows.fetchall()]
    assert len(found) == 1, (prefix, found)
    row = found[0]
    for key in ("tool_sequence", "workflow_tags", "evidence"):
        row[key] = json.loads(row[key])
    return row


def kinds(row, kind):
    return [e for e in row["evidence"] if e["kind"] == kind]


@pytest.fixture
def db(recorded_db):
    db = open_db(str(recorded_db), drain=False)
    result = update_signals(db)
    assert result.computed == db.execute("SELECT count(*) FROM turns").fetchone()[0] > 0
    return db


def test_failures_turn(db):
    # Bash exit 3, Read of a missing file, Read ok, Edit whose old text is absent, Read with a bad
    # parameter, an unknown tool: five failures; only the missing-file Read is recovered (the next
    # Read succeeds), which is also a retry after an error.
    s = signals_by_prompt(db, "[[scenario:failures]]")
    assert s["sequence_pattern"] == "Bash > Read+ > Edit > Read > NoSuchTool"
    assert s["tool_sequence"] == [["Bash"], ["Read"], ["Read"], ["Edit"], ["Read"], ["NoSuchTool"]]
    assert (s["tool_count"], s["distinct_tools"]) == (6, 4)
    assert (s["failures"], s["recoveries"], s["unrecovered_failures"], s["denials"]) == (5, 1, 4, 0)
    # `echo ...; exit 3` and two Reads come before the Edit.
    assert (s["exploration_calls"], s["exploration_depth"]) == (3, "moderate")
    assert s["workflow"] == "exploratory"
    assert s["self_corrections"] == 1
    assert s["outcome"] == "completed" and s["final_answer_words"] == 84
    failed = {e["tool"]: e["status"] for e in kinds(s, "failure")}
    assert failed == {"Bash": "failure", "Read": "invalid", "Edit": "failure", "NoSuchTool": "invalid"}
    (rec,) = kinds(s, "recovery")
    assert (rec["how"], rec["tool"]) == ("retry", "Read")
    status = dict(db.execute("SELECT tool_use_id, status FROM tool_calls").fetchall())
    assert (status[rec["failed"]], status[rec["by"]]) == ("failure", "success")


def test_parallel_turn(db):
    s = signals_by_prompt(db, "[[scenario:parallel]]")
    assert s["sequence_pattern"] == "[Bash|Glob|Grep|Read*2]"
    assert s["parallel_groups"] == 1 and len(s["tool_sequence"]) == 1
    assert (s["exploration_calls"], s["exploration_depth"]) == (5, "thorough")
    assert s["workflow_tags"] == ["parallel", "exploratory"]
    assert s["change_calls"] == 0


def test_tools_turn(db):
    s = signals_by_prompt(db, "[[scenario:tools]]")
    assert s["sequence_pattern"] == "Bash > [Glob|Grep|Read] > Write > Edit > [Bash*2] > Bash"
    # ls -la, then Read/Grep/Glob in parallel: four explorations before the Write.
    assert (s["exploration_calls"], s["exploration_depth"]) == (4, "moderate")
    (first,) = kinds(s, "first_change")
    assert first["tool"] == "Write"
    assert s["workflow"] == "parallel" and s["parallel_groups"] == 2
    assert (s["failures"], s["denials"], s["has_plan"]) == (0, 0, 0)


def test_denied_turn(db):
    s = signals_by_prompt(db, "[[scenario:denied]]")
    assert s["sequence_pattern"] == "Write > Bash > Read"
    assert (s["denials"], s["failures"], s["recoveries"]) == (2, 0, 0)
    assert {e["tool"] for e in kinds(s, "denial")} == {"Write", "Bash"}
    assert s["workflow"] == "linear" and s["exploration_depth"] == "minimal"


def test_subagent_turns(db):
    main = signals_by_prompt(db, "[[scenario:subagent]]")
    assert main["sequence_pattern"] == "Agent" and main["workflow"] == "delegated"
    inner = signals_by_prompt(db, "[[scenario:subagent_inner]]", agent=True)
    assert inner["agent_id"] is not None
    assert inner["sequence_pattern"] == "Bash > [Grep|Read]"
    assert (inner["exploration_calls"], inner["exploration_depth"]) == (3, "moderate")


def test_turn_without_tools(db):
    s = signals_by_prompt(db, "<command-name>/compact")
    assert (s["tool_count"], s["exploration_depth"], s["workflow"], s["sequence_pattern"]) == (0, None, "none", "")


def test_incremental_updates(db):
    assert update_signals(db).computed == 0
    tid, call = db.execute(
        "SELECT turn_id, tool_use_id FROM tool_calls WHERE tool_name = 'Read' AND status = 'success'"
        " AND turn_id IS NOT NULL AND agent_id IS NULL ORDER BY seq LIMIT 1"
    ).fetchone()
    before = db.execute("SELECT failures, computed_at FROM signals WHERE turn_id = ?", [tid]).fetchone()
    db.execute("UPDATE tool_calls SET status = 'failure' WHERE tool_use_id = ?", [call])
    result = update_signals(db)
    assert (result.computed, result.removed) == (1, 0)
    after = db.execute("SELECT failures FROM signals WHERE turn_id = ?", [tid]).fetchone()
    assert after[0] == before[0] + 1
    # New thresholds: every turn is recomputed, and depth follows them.
    config = SignalConfig(depth=DepthThresholds(moderate=1, thorough=2, exhaustive=3))
    n = db.execute("SELECT count(*) FROM turns").fetchone()[0]
    assert update_signals(db, config).computed == n
    s = signals_by_prompt(db, "[[scenario:parallel]]")
    assert s["exploration_depth"] == "exhaustive"
    # A turn that disappears loses its row.
    db.execute("DELETE FROM turns WHERE id = ?", [tid])
    assert update_signals(db, config).removed == 1
    assert db.execute("SELECT count(*) FROM signals WHERE turn_id = ?", [tid]).fetchone()[0] == 0


def _check_spans(db):
    """Every text-based piece of evidence names a message (or prompt) whose text, sliced at the
    span, is the match: a reader can always find what triggered a signal. Returns how many."""
    checked = 0
    for turn_id, evidence in db.execute("SELECT turn_id, evidence FROM signals"):
        for e in json.loads(evidence):
            if "span" not in e:
                continue
            start, end = e["span"]
            if e["field"] == "prompt":
                text = db.execute("SELECT prompt_text FROM turns WHERE id = ?", [turn_id]).fetchone()[0]
            else:
                text = db.execute(f"SELECT {e['field']} FROM messages WHERE uuid = ?", [e["message_uuid"]]).fetchone()[
                    0
                ]
            assert text[start:end] == e["match"] or e["kind"] == "plan", e
            if e["kind"] == "plan":
                assert text[start:end].startswith(e["match"][:50])
            checked += 1
    return checked


def test_cli_signals_and_show(recorded_db):
    runner = CliRunner()
    result = runner.invoke(cli, ["signals", "-d", str(recorded_db)], catch_exceptions=False)
    assert result.exit_code == 0
    n = sqlite3.connect(recorded_db).execute("SELECT count(*) FROM turns").fetchone()[0]
    assert f"Signals: {n} computed, 0 unchanged ({n} turns)." in result.output
    result = runner.invoke(cli, ["signals", "-d", str(recorded_db)], catch_exceptions=False)
    assert f"Signals: 0 computed, {n} unchanged" in result.output
    tid = (
        sqlite3.connect(recorded_db)
        .execute("SELECT id FROM turns WHERE prompt_text LIKE '[[scenario:parallel]]%'")
        .fetchone()[0]
    )
    result = runner.invoke(cli, ["signals", "-d", str(recorded_db), "--show", str(tid)], catch_exceptions=False)
    shown = json.loads(result.output)
    assert shown["turn_id"] == tid and shown["tool_sequence"] == [["Read", "Read", "Grep", "Glob", "Bash"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--depth-thresholds", "5,2,10"], "must increase"),
        (["--depth-thresholds", "a,b"], "three increasing integers"),
        (["--show", "999999"], "no turn 999999"),
    ],
)
def test_cli_signals_errors(recorded_db, args, message):
    result = CliRunner().invoke(cli, ["signals", "-d", str(recorded_db), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_signals_config_file(recorded_db, tmp_path):
    cfg = tmp_path / "signals.toml"
    cfg.write_text(
        "[signals]\nexploratory_min_calls = 50\n[signals.depth]\nmoderate = 1\nthorough = 2\nexhaustive = 3\n"
    )
    result = CliRunner().invoke(cli, ["signals", "-d", str(recorded_db), "--config", str(cfg)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    con = sqlite3.connect(recorded_db)
    depth, tags = con.execute(
        "SELECT exploration_depth, workflow_tags FROM signals JOIN turns t ON t.id = turn_id"
        " WHERE t.prompt_text LIKE '[[scenario:parallel]]%'"
    ).fetchone()
    assert depth == "exhaustive" and json.loads(tags) == ["parallel"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"depth": {"moderate": 0}}')
    result = CliRunner().invoke(cli, ["signals", "-d", str(recorded_db), "--config", str(bad)])
    assert result.exit_code == 1 and "invalid signals config" in result.output


def test_views_and_full_text_search(db):
    rows = db.execute(
        "SELECT tool_name, turn_index, prompt_text FROM tool_calls_with_turns WHERE status = 'invalid'"
    ).fetchall()
    assert {r[0] for r in rows} == {"Read", "NoSuchTool"}
    assert all(r[1] == 0 and r[2].startswith("[[scenario:failures]]") for r in rows)
    row = db.execute(
        "SELECT workflow, exploration_depth, project_dir FROM turns_with_signals"
        " WHERE prompt_text LIKE '[[scenario:parallel]]%'"
    ).fetchone()
    assert row[:2] == ("parallel", "thorough") and row[2].endswith("/parallel/work")
    # FTS5 over assistant text and thinking (porter stemming: "globbing" finds "glob")...
    hits = db.execute(
        "SELECT m.uuid, m.text FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
        " WHERE messages_fts MATCH 'glob'"
    ).fetchall()
    assert hits and all("glob" in (t or "").lower() or "glob" in _thinking(db, u) for u, t in hits)
    # ...and over prompts and final answers, through sqlite-utils' own search.
    found = list(db["turns"].search("delegate"))
    assert {r["prompt_text"].split("]]")[0] for r in found} >= {"[[scenario:subagent"}
    # The index follows edits and deletes (triggers).
    uuid = hits[0][0]
    db.execute("UPDATE messages SET text = 'zyxwvut' , thinking = NULL WHERE uuid = ?", [uuid])
    assert [r["uuid"] for r in db["messages"].search("zyxwvut")] == [uuid]
    db.execute("DELETE FROM messages WHERE uuid = ?", [uuid])
    assert list(db["messages"].search("zyxwvut")) == []
    db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def _thinking(db, uuid):
    return (db.execute("SELECT thinking FROM messages WHERE uuid = ?", [uuid]).fetchone()[0] or "").lower()


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    scenarios = SHARED / "fixtures" / "claude-code-2.1.328"
    public = SHARED / "fixtures" / "public"
    if not scenarios.is_dir():
        pytest.skip("../shared is absent")
    path = tmp_path_factory.mktemp("shared-db") / "cra.db"
    build_fixture_db(
        path, scenario_dirs(scenarios), [str(public / "spotter-cc2.1.38"), str(public / "sniffly-cc1.0.17")]
    )
    db = open_db(str(path), drain=False)
    update_signals(db)
    return db


def test_shared_fixture_turns(shared_db):
    db = shared_db
    s = signals_by_prompt(db, "[[scenario:failures]]")
    assert (s["failures"], s["recoveries"], s["unrecovered_failures"]) == (5, 1, 4)
    s = signals_by_prompt(db, "[[scenario:parallel_mixed]]")
    assert s["workflow"] == "parallel" and s["parallel_groups"] == 2
    s = signals_by_prompt(db, "[[scenario:hook_exit2]]")
    assert s["failures"] == 1 and kinds(s, "failure")[0]["status"] == "blocked"
    # A real session (sniffly, Claude Code 1.0.17): "Let me first check the current git status and
    # then push the changes." before its first call is an announced plan.
    s = signals_by_prompt(db, "push to github")
    (plan,) = kinds(s, "plan")
    assert (s["plan_source"], plan["pattern"]) == ("text", "first ... then")
    assert plan["match"] == "first check the current git status and then"
    # Another (ai-music): TodoWrite is a written plan; the turn edits, runs and fixes.
    s = signals_by_prompt(db, "all of texts now sound the same")
    assert s["plan_source"] == "tool" and s["workflow"] == "iterative"
    assert _check_spans(db) >= 5
