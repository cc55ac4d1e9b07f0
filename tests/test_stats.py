"""`cra stats` on a database of recorded Claude Code sessions: numbers checked against the data,
filters, JSON and text output, readable errors."""

import datetime as dt
import json
import sqlite3
import statistics

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.db import open_db
from cra.report import stats as stats_mod
from cra.report.stats import StatsFilters, compute, parse_when
from cra.signals.store import update_signals


@pytest.fixture
def db(recorded_db):
    db = open_db(str(recorded_db), drain=False)
    update_signals(db)
    return db


def test_totals_and_tools(db):
    s = compute(db)
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert s["totals"] == {
        "sessions": 7,  # one per recorded scenario
        "turns": one("SELECT count(*) FROM turns WHERE agent_id IS NULL"),
        "subagent_turns": 2,
        "tool_calls": one("SELECT count(*) FROM tool_calls"),
        "turns_with_signals": one("SELECT count(*) FROM turns"),
    }
    tools = {r["tool"]: r for r in s["tools"]}
    # Read: missing file (failure) and a bad parameter (invalid) fail; the rest succeed.
    read_total = one("SELECT count(*) FROM tool_calls WHERE tool_name = 'Read'")
    assert (tools["Read"]["calls"], tools["Read"]["errored"]) == (read_total, 2)
    assert tools["Read"]["error_rate"] == round(2 / read_total, 4)
    durations = [
        r[0]
        for r in db.execute("SELECT duration_ms FROM tool_calls WHERE tool_name = 'Read' AND duration_ms IS NOT NULL")
    ]
    assert tools["Read"]["median_ms"] == int(statistics.median(durations))
    assert (tools["NoSuchTool"]["errored"], tools["NoSuchTool"]["error_rate"]) == (1, 1.0)
    assert tools["Write"]["denied"] == 1 and tools["Write"]["errored"] == 0
    assert [r["calls"] for r in s["tools"]] == sorted((r["calls"] for r in s["tools"]), reverse=True)


def test_the_report_and_the_view_count_outcomes_alike(db):
    """`cra stats` and SQL over tool_calls_with_turns.call_outcome give the same errored and denied counts."""
    s = compute(db)
    by_sql = dict(db.execute("SELECT call_outcome, count(*) FROM tool_calls_with_turns GROUP BY 1").fetchall())
    assert by_sql.get("errored", 0) == sum(r["errored"] for r in s["tools"]) > 0
    assert by_sql.get("denied", 0) == sum(r["denied"] for r in s["tools"]) > 0
    assert sum(by_sql.values()) == s["totals"]["tool_calls"]
    assert set(by_sql) <= {"succeeded", "errored", "denied", "interrupted", "pending"}


def test_sequences_workflows_depth_and_reasoning(db):
    s = compute(db)
    seqs = {r["pattern"]: r["turns"] for r in s["sequences"]}
    assert seqs["[Bash|Glob|Grep|Read*2]"] == 1
    assert seqs["Agent"] == 2  # the two delegating main turns
    workflows = {r["workflow"]: r["turns"] for r in s["workflows"]}
    assert workflows["delegated"] == 2 and workflows["parallel"] == 2
    with_tools = db.execute(
        "SELECT count(*) FROM turns t JOIN signals s ON s.turn_id = t.id WHERE t.agent_id IS NULL AND s.tool_count > 0"
    ).fetchone()[0]
    assert sum(s["depth"].values()) == with_tools
    assert s["depth"]["thorough"] == 1  # the parallel look-around: five reads and searches
    assert s["outcomes"] == {"completed": s["totals"]["turns"]}
    assert s["reasoning"]["failures"] == 5 and s["reasoning"]["recoveries"] == 1
    assert s["reasoning"]["denials"] == 2


def test_tokens_projects_timeline(db):
    s = compute(db)
    (model,) = s["tokens_by_model"]
    assert model["model"] == "claude-opus-5-5"
    assert model["output_tokens"] == db.execute("SELECT sum(output_tokens) FROM turns").fetchone()[0]
    projects = {r["project"].rsplit("/", 2)[-2]: r for r in s["projects"]}
    assert projects["tools"]["tool_calls"] == 9 and projects["tools"]["turns"] == 1
    assert sum(d["total"] for d in s["timeline"]) == s["totals"]["tool_calls"]


def test_readiness_uses_the_dataset_filters(db):
    rd = compute(db)["readiness"]
    # Kept: tools (9 calls, 98 words), parallel (5, 62), denied (3 calls, 67 words; denials are not
    # errors). Out: failures (errors never recovered), and four turns with fewer than 3 calls.
    # The task-notification turn is synthetic and not a candidate.
    assert (rd["candidates"], rd["qualifying"], rd["threshold"], rd["ready"]) == (8, 3, 50, False)
    assert rd["excluded"] == {
        "failed_or_interrupted": 0,
        "too_few_tool_calls": 4,
        "short_final_answer": 0,
        "unrecovered_error": 1,
    }
    assert compute(db, ready_turns=3)["readiness"]["ready"] is True


def test_stats_status_and_the_build_count_the_same_turns(db, tmp_path):
    """One definition of a qualifying turn (cra/dataset/qualifying.py): `cra stats`, `cra status`
    (through auto's readiness) and the turns a dataset build keeps agree."""
    from cra.auto.config import AutoSettings
    from cra.auto.readiness import readiness
    from cra.dataset.build import BuildOptions, DatasetBuilder
    from cra.dataset.filters import TurnFilters

    for filters in (TurnFilters(), TurnFilters(min_tool_calls=1, min_answer_words=5, skip_unrecovered=False)):
        shown = compute(db, turn_filters=filters)["readiness"]
        status = readiness(db, AutoSettings(filters=filters.as_dict()))
        # Main-thread turns of real sessions, all in train: the build keeps exactly those that qualify.
        options = BuildOptions(include_subagents=False, synthetic=False, eval_fraction=0, filters=filters)
        built = DatasetBuilder(db, options).build(str(tmp_path / "out"))
        synthetic = db.execute("SELECT count(*) FROM turns WHERE agent_id IS NULL AND is_synthetic").fetchone()[0]
        assert built["real_turns_seen"] == shown["candidates"] + synthetic
        assert (status.candidates, status.qualifying) == (shown["candidates"], shown["qualifying"])
        assert built["turns_kept"] == shown["qualifying"] > 0


def test_filters(db):
    s = compute(db, StatsFilters(project="parallel"))
    assert s["totals"]["sessions"] == 1 and s["totals"]["tool_calls"] == 5
    assert [r["pattern"] for r in s["sequences"]] == ["[Bash|Glob|Grep|Read*2]"]
    assert compute(db, StatsFilters(model="sonnet"))["totals"]["turns"] == 0
    assert compute(db, StatsFilters(model="opus"))["totals"]["turns"] == compute(db)["totals"]["turns"]
    day = db.execute("SELECT min(started_at) FROM turns").fetchone()[0][:10]
    everything = compute(db)["totals"]
    assert compute(db, StatsFilters(since=day, until=day))["totals"] == everything
    after = compute(db, StatsFilters(since="2100-01-01"))["totals"]
    assert (after["turns"], after["tool_calls"]) == (0, 0)
    before = compute(db, StatsFilters(until="2000-01-01"))["totals"]
    assert (before["turns"], before["tool_calls"]) == (0, 0)


def test_parse_when():
    assert parse_when("2025-06-30") == "2025-06-30T00:00:00.000Z"
    assert parse_when("2025-06-30", end=True) == "2025-07-01T00:00:00.000Z"
    assert parse_when("2025-06-30T12:00:00+02:00") == "2025-06-30T10:00:00.000Z"
    noon = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.timezone.utc)
    assert parse_when("7d", now=noon) == "2025-06-23T12:00:00.000Z"
    assert parse_when("90m", now=noon) == "2025-06-30T10:30:00.000Z"
    assert parse_when("2w", now=noon) == "2025-06-16T12:00:00.000Z"
    with pytest.raises(ValueError, match="not a date"):
        parse_when("last week")
    with pytest.raises(ValueError, match="or an age"):
        parse_when("7 days")


def test_cli_text_and_json(recorded_db):
    runner = CliRunner()
    text = runner.invoke(cli, ["stats", "-d", str(recorded_db)], catch_exceptions=False).output
    for heading in (
        "Tool calls by tool",
        "Top tool sequences",
        "Workflow patterns",
        "Exploration depth",
        "Tokens by model",
        "Busiest projects",
        "Training readiness",
    ):
        assert heading in text
    assert "3 of 8 turns pass the dataset filters; a training cycle needs 50: 47 to go." in text
    result = runner.invoke(
        cli, ["stats", "-d", str(recorded_db), "--json", "--project", "failures"], catch_exceptions=False
    )
    data = json.loads(result.output)
    assert data["filters"] == {"project": "failures"}
    assert data["totals"]["tool_calls"] == 6
    assert data == compute(open_db(str(recorded_db), drain=False), StatsFilters(project="failures"))


def test_cli_computes_missing_signals_first(recorded_db):
    con = sqlite3.connect(recorded_db)
    assert con.execute("SELECT count(*) FROM signals").fetchone()[0] == 0
    CliRunner().invoke(cli, ["stats", "-d", str(recorded_db)], catch_exceptions=False)
    assert (
        con.execute("SELECT count(*) FROM signals").fetchone()[0]
        == con.execute("SELECT count(*) FROM turns").fetchone()[0]
    )


def test_cli_bad_date_is_a_readable_error(recorded_db):
    result = CliRunner().invoke(cli, ["stats", "-d", str(recorded_db), "--since", "yesterday"])
    assert result.exit_code == 2  # a usage error, as for any option given a value it can't take
    assert "'--since': 'yesterday' is not a date (2025-06-01)" in result.output and "Traceback" not in result.output


def test_empty_database(tmp_path):
    result = CliRunner().invoke(cli, ["stats", "-d", str(tmp_path / "empty.db")], catch_exceptions=False)
    assert result.exit_code == 0
    assert "0 sessions, 0 turns" in result.output
    assert "0 of 0 turns pass" in result.output
    assert stats_mod.READY_TURNS == 50
