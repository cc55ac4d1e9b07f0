"""Held out that means held out (`cra dataset build --split-by`), and gap mining (`cra eval gaps`, then
`cra dataset build --focus`), end to end on a hand-built database with hand-made predictions (no model)."""

import json

import pytest
from click.testing import CliRunner
from dataset_db import Session, answer

from cra.cli import cli
from cra.db import open_db
from cra.eval import metrics, store
from cra.eval.steps import load_steps, steps_hash
from cra.signals.situations import situation

BUILD = ["dataset", "build", "--min-tool-calls", "1", "--min-answer-words", "1", "--tools", "used", "--system", "none"]


def _task(session, kind, n):
    """A turn of one of three kinds: read then answer, grep then read, or a failed read then a glob."""
    read = ("Read", {"file_path": f"/p/{n}.py"}, "1\tdef f(): pass", "success")
    if kind == "read":
        steps = [("", [read])]
    elif kind == "grep":
        steps = [("", [("Grep", {"pattern": f"def f{n}"}, f"/p/{n}.py", "success")]), ("", [read])]
    else:
        missing = ("Read", {"file_path": f"/conf/{n}.toml"}, "File does not exist.", "failure")
        steps = [("", [missing]), ("", [("Glob", {"pattern": f"**/{n}.toml"}, f"/p/{n}.toml", "success")])]
    session.turn(f"{kind} task {n}", steps, answer(12, topic=f"task {n}"))


def _database(sessions=24, projects=6):
    db = open_db()
    for i in range(sessions):
        s = Session(db, f"sess-{i:02d}", cwd=f"/home/user/project-{i % projects}")
        _task(s, ("read", "grep", "recover")[i % 3], i)
        db.execute("UPDATE turns SET started_at = ? WHERE session_id = ?", [f"2026-01-{i + 1:02d}T10:00:00Z", s.id])
    db.conn.commit()
    return db


def _sessions(path):
    return {json.loads(line)["meta"]["session_id"] for line in open(path)}


def test_split_by_session_project_or_time_is_recorded_and_shown(tmp_path):
    db = _database()
    splits = {}
    for how in ("session", "project", "time"):
        out = tmp_path / how
        result = CliRunner().invoke(
            cli, [*BUILD, "--eval-fraction", "0.34", "--split-by", how, "-o", str(out)], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        assert f"held out by {how}" in result.output
        assert f"Split by **{how}**" in (out / "README.md").read_text()
        params = json.loads(next(db.query("SELECT params FROM datasets ORDER BY id DESC LIMIT 1"))["params"])
        assert params["split_by"] == how
        train, held = _sessions(out / "train.jsonl"), _sessions(out / "eval.jsonl")
        assert train and held and not train & held and len(train | held) == 24
        splits[how] = held
    projects = {s: int(s[-2:]) % 6 for s in splits["project"]}
    # Every session of a held-out project is held out: the eval split holds projects never trained on.
    held_projects = set(projects.values())
    assert {f"sess-{i:02d}" for i in range(24) if i % 6 in held_projects} == splits["project"]
    assert 0 < len(held_projects) < 6
    # By time: the newest sessions (by their first turn) are held out.
    assert splits["time"] == {f"sess-{i:02d}" for i in range(16, 24)}
    bad = CliRunner().invoke(cli, [*BUILD, "--split-by", "random", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "session" in bad.output


def _record(db, run_id, dataset, predict):
    """An eval row of run `run_id` on the dataset's eval split, predictions from predict(step)."""
    steps, skipped = load_steps(dataset / "eval.jsonl")
    digest = steps_hash(steps)
    store.write_steps(steps, digest)
    predictions = [predict(s) for s in steps]
    scores = [metrics.score_step(s, p) for s, p in zip(steps, predictions)]
    row = {
        "run_id": run_id,
        "subject": "run",
        "model_run_id": run_id,
        "base_model": "tiny",
        "adapter": "/a",
        "backend": "hf",
        "dataset": str(dataset),
        "split": "eval",
        "step_limit": None,
        "steps_hash": digest,
        "step_count": len(steps),
        "settings": {},
        "metrics": metrics.aggregate(scores),
        "seconds": 0.0,
    }
    per_step = [{"prediction": p, **s.as_dict()} for p, s in zip(predictions, scores)]
    return store.get_eval(db, store.insert_eval(db, row, per_step))


def _claude_unless_recovering(step):
    """Claude's own action, except after a failed call: there the 'model' answers instead."""
    if situation(step.context, step.target).recovering:
        return "I could not find it."
    return (
        "".join(
            "<tool_call>"
            + json.dumps({"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])})
            + "</tool_call>"
            for c in step.target.get("tool_calls") or ()
        )
        or step.target["content"]
    )


def test_gaps_find_the_situations_the_model_gets_wrong_and_focus_oversamples_them(tmp_path):
    from cra.train import runs

    db = _database(sessions=30, projects=30)
    first = tmp_path / "round1"
    out = CliRunner().invoke(cli, [*BUILD, "--eval-fraction", "0.3", "-o", str(first)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    run = runs.start_run(db, kind="sft", base_model="tiny", dataset=str(first), config={}, runs_dir=tmp_path / "runs")
    runs.finish_run(db, run["id"], "completed", metrics={})
    row = _record(db, run["id"], first, _claude_unless_recovering)

    target = tmp_path / "gaps.json"
    result = CliRunner().invoke(cli, ["eval", "gaps", str(run["id"]), "-o", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(target.read_text())
    assert report["eval_id"] == row["id"] and report["steps"] == row["step_count"]
    worst = report["groups"][0]
    assert worst["key"] == "Glob after Read, recovering from a failure, explored minimal"
    assert worst["disagree"]["rate"] == 1.0 and report["focus"] == [worst["key"]]
    assert all(g["disagree"]["k"] == 0 for g in report["groups"][1:])  # everything else agreed
    assert "Glob after Read, recovering from a failure" in result.output and "focus" in result.output
    assert f"cra dataset build --focus {target}" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["eval", "gaps", "--eval", str(row["id"]), "--json"]).output)
    assert as_json["focus"] == report["focus"] and as_json["path"].endswith(f"gaps-eval{row['id']:04d}.json")

    second = tmp_path / "round2"
    out = CliRunner().invoke(
        cli, [*BUILD, "--eval-fraction", "0.3", "--focus", str(target), "-o", str(second)], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    plain = [json.loads(line) for line in open(first / "train.jsonl")]
    focused = [json.loads(line) for line in open(second / "train.jsonl")]
    recover = [e for e in plain if e["messages"][0]["content"].startswith("recover")]
    assert recover and len(focused) == len(plain) + 2 * len(recover)  # written three times each
    assert sum(e["messages"][0]["content"].startswith("recover") for e in focused) == 3 * len(recover)
    assert (second / "eval.jsonl").read_text() == (first / "eval.jsonl").read_text()  # never oversampled
    card = (second / "README.md").read_text()
    assert "## Focus" in card and f"{len(recover)} training examples" in card
    assert f"focus: {len(recover)} training examples in 1 gap situation(s)" in out.output


@pytest.mark.parametrize(
    "content, message",
    [("not json", "is not JSON"), (json.dumps({"focus": []}), "is not a gaps file")],
)
def test_focus_file_that_is_not_a_gaps_file_is_refused(tmp_path, content, message):
    _database(sessions=3)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = CliRunner().invoke(cli, [*BUILD, "--focus", str(bad), "-o", str(tmp_path / "ds")])
    assert out.exit_code == 1 and message in out.output and "cra eval gaps" in out.output
    assert not (tmp_path / "ds" / "README.md").exists()  # nothing half-built is recorded
    assert open_db()["datasets"].count == 0
