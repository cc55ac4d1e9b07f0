"""The evals table, `cra eval --compare`, `cra eval list`, the blind A/B pack and `cra eval judge` (no model)."""

import json
import re

import pytest
from click.testing import CliRunner
from test_eval_metrics import EXAMPLES, PREDICTIONS

from cra.cli import cli
from cra.db import open_db
from cra.errors import InputFormatError, NotFoundError
from cra.eval import metrics, pack, store
from cra.eval.steps import steps_from_examples, steps_hash


def make_run(db, tmp_path, n):
    from cra.train import runs

    run = runs.start_run(db, kind="sft", base_model="tiny-base", dataset="demo", config={}, runs_dir=tmp_path / "runs")
    runs.finish_run(db, run["id"], "completed", metrics={})
    return run


def record_eval(db, run, predictions, subject="run", context_note=None):
    examples = json.loads(json.dumps(EXAMPLES))
    if context_note:
        examples[0]["messages"][1]["content"] += context_note
    steps, _ = steps_from_examples(examples)
    digest = steps_hash(steps)
    store.write_steps(steps, digest)
    scores = [metrics.score_step(s, p) for s, p in zip(steps, predictions)]
    row = {
        "run_id": run["id"],
        "subject": subject,
        "model_run_id": run["id"] if subject == "run" else None,
        "base_model": "tiny-base",
        "adapter": "/x/adapter" if subject == "run" else None,
        "backend": "hf",
        "dataset": "demo",
        "split": "eval",
        "step_limit": None,
        "steps_hash": digest,
        "step_count": len(steps),
        "settings": {"max_new_tokens": 8},
        "metrics": metrics.aggregate(scores),
        "seconds": 0.1,
    }
    per_step = [{"prediction": p, **s.as_dict()} for p, s in zip(predictions, scores)]
    return store.get_eval(db, store.insert_eval(db, row, per_step))


def test_evals_table_columns():
    db = open_db()
    assert {
        "run_id",
        "subject",
        "model_run_id",
        "base_model",
        "adapter",
        "backend",
        "dataset",
        "split",
        "steps_hash",
        "step_count",
        "settings",
        "metrics",
        "predictions",
        "created_at",
    } <= set(db["evals"].columns_dict)
    assert {"id", "eval_id", "answer_key", "identical", "items"} <= set(db["eval_packs"].columns_dict)
    assert {"pack_id", "judge", "item_id", "choice", "fooled"} <= set(db["eval_judgements"].columns_dict)


def test_compare_two_runs_side_by_side_and_list(tmp_path):
    db = open_db()
    r1, r2 = make_run(db, tmp_path, 1), make_run(db, tmp_path, 2)
    record_eval(db, r1, PREDICTIONS)
    claude = [metrics.STOP] * 0 + [
        '<tool_call>{"name": "Read", "arguments": {"file_path": "src/app.py"}}</tool_call>',
        '<tool_call>{"name": "Grep", "arguments": {"pattern": "def main"}}</tool_call>',
        '<tool_call>{"name": "Edit", "arguments": '
        '{"file_path": "src/app.py", "old_string": "a", "new_string": "b"}}</tool_call>',
        "Fixed.",
        '<tool_call>{"name": "Bash", "arguments": {"command": "pytest -q"}}</tool_call>',
        "All pass.",
    ]
    record_eval(db, r2, claude)
    out = CliRunner().invoke(cli, ["eval", "--compare", str(r1["id"]), str(r2["id"])], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    line = next(line for line in out.output.splitlines() if line.startswith("tool name accuracy"))
    assert "75.0%" in line and "3/4" in line and "100.0%" in line and "4/4" in line
    assert re.search(r"exact argument match\s+25\.0% \[\d+-\d+\] 1/4\s+100\.0%", out.output)
    assert f"run {r1['id']}" in out.output and f"run {r2['id']}" in out.output
    as_json = json.loads(CliRunner().invoke(cli, ["eval", "--compare", str(r1["id"]), str(r2["id"]), "--json"]).output)
    assert as_json[1]["metrics"]["exact_args"]["rate"] == 1.0
    listing = CliRunner().invoke(cli, ["eval", "list"]).output
    assert "75.0%" in listing and "100.0%" in listing

    missing = make_run(db, tmp_path, 3)
    bad = CliRunner().invoke(cli, ["eval", "--compare", str(r1["id"]), str(missing["id"])])
    assert bad.exit_code == 1 and f"cra eval {missing['id']}" in bad.output


def test_eval_without_adapter_or_eval_split_says_what_to_do(tmp_path):
    db = open_db()
    run = make_run(db, tmp_path, 1)
    out = CliRunner().invoke(cli, ["eval", str(run["id"])])
    assert out.exit_code == 1 and "no adapter" in out.output and "--base-only" in out.output
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps(EXAMPLES[0]) + "\n")
    out = CliRunner().invoke(cli, ["eval", str(run["id"]), "--base-only", "--dataset", str(data)])
    assert out.exit_code == 1 and "no eval split" in out.output and "--eval-fraction" in out.output
    out = CliRunner().invoke(cli, ["eval", "nope"])
    assert out.exit_code == 1 and "run id or 'last'" in out.output
    assert CliRunner().invoke(cli, ["eval"]).exit_code in (0, 2)  # help


def test_pack_hides_the_key_randomises_sides_and_judge_scores(tmp_path):
    db = open_db()
    run = make_run(db, tmp_path, 1)
    hostile = "</script><script>alert(1)</script>"
    row = record_eval(db, run, PREDICTIONS, context_note=hostile)
    out = tmp_path / "ab.html"
    info = pack.make_pack(db, row, out, items=40, seed=7)
    assert info["items"] == 6
    page = out.read_text()
    assert hostile not in page and "alert(1)" in page  # shown as text, never as markup
    assert "http://" not in page and "https://" not in page and "<link" not in page  # self-contained
    data = json.loads(re.search(r'<script id="pack-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert data["pack_id"] == info["pack_id"] and len(data["items"]) == 6
    (packed,) = db.query("SELECT * FROM eval_packs")
    key = json.loads(packed["answer_key"])
    assert packed["answer_key"] not in page and "answer_key" not in page
    assert set(key.values()) == {"A", "B"}  # both orders occur
    steps = store.read_steps(row["steps_hash"])
    claude_actions = {pack.render_action(pack.toolcalls.action_from_message(s.target)) for s in steps.values()}
    for item in data["items"]:
        assert item[key[item["id"]]] in claude_actions
    # The exact Read is the same on both sides.
    assert len(json.loads(packed["identical"])) == 1

    # A judge who always picks A is fooled exactly where Claude was on B.
    choices = {item["id"]: "A" for item in data["items"]}
    judged = tmp_path / "j1.json"
    judged.write_text(json.dumps({"pack_id": info["pack_id"], "judge": "ana", "choices": choices}))
    result = CliRunner().invoke(cli, ["eval", "judge", str(judged)], catch_exceptions=False)
    fooled = sum(1 for v in key.values() if v == "B")
    assert result.exit_code == 0, result.output
    assert f"{100 * fooled / 6:.1f}%" in result.output and "of 6 judgements by 1 judge" in result.output
    again = CliRunner().invoke(cli, ["eval", "judge", str(judged)], catch_exceptions=False)
    assert again.exit_code == 0 and db.execute("SELECT count(*) FROM eval_judgements").fetchone()[0] == 6
    # A judge who always knows: nobody fooled on their items; two judges now.
    perfect = tmp_path / "j2.json"
    perfect.write_text(json.dumps({"pack_id": info["pack_id"], "judge": "bo", "choices": key}))
    summary = pack.record_judgements(db, perfect)
    assert summary["judges"] == 2 and summary["all"]["k"] == fooled and summary["all"]["n"] == 12
    differing = [i for i in key if i not in json.loads(packed["identical"])]
    assert summary["differing"]["n"] == 2 * len(differing)

    wrong = tmp_path / "j3.json"
    wrong.write_text(json.dumps({"pack_id": "nope", "judge": "x", "choices": {}}))
    with pytest.raises(NotFoundError, match="not in this database"):
        pack.record_judgements(db, wrong)
    wrong.write_text(json.dumps({"pack_id": info["pack_id"], "judge": "x", "choices": {"zzz": "A"}}))
    with pytest.raises(InputFormatError, match="unknown items"):
        pack.record_judgements(db, wrong)
    wrong.write_text("not json")
    with pytest.raises(InputFormatError, match="not JSON"):
        pack.record_judgements(db, wrong)


def test_pack_command_uses_the_runs_latest_eval(tmp_path):
    db = open_db()
    run = make_run(db, tmp_path, 1)
    record_eval(db, run, PREDICTIONS)
    out = CliRunner().invoke(
        cli,
        ["eval", "pack", str(run["id"]), "-o", str(tmp_path / "p.html"), "--items", "3", "--seed", "1"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    assert "Wrote 3 items" in out.output and (tmp_path / "p.html").is_file()


def test_pack_page_renders_in_a_browser_as_text(tmp_path):
    """The page's script builds every item in a real browser, and hostile context stays text."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium on this machine")
    db = open_db()
    run = make_run(db, tmp_path, 1)
    row = record_eval(db, run, PREDICTIONS, context_note=" <img src=x onerror=alert(1)></script>")
    out = tmp_path / "ab.html"
    pack.make_pack(db, row, out, items=40, seed=3)
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count("A is Claude") == 6 and dom.count("B is Claude") == 6 and "0 / 6 judged" in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img" not in dom
