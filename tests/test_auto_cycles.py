"""`cra auto` cycles on the tiny model (CPU, a few training steps each): no cycle before the threshold,
the first at it, RL on the second, promotion only when eval does not regress, recovery after a failed
stage. Turns are written into the database as the transcripts stage would (tests/dataset_db.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

for _name in ("torch", "transformers", "trl", "peft", "datasets", "gguf"):
    pytest.importorskip(_name)

from dataset_db import Session, answer, good_steps  # noqa: E402

from cra.auto import store  # noqa: E402
from cra.auto.config import AutoSettings  # noqa: E402
from cra.auto.cycle import run_once  # noqa: E402
from cra.auto.readiness import readiness  # noqa: E402
from cra.cli import cli  # noqa: E402
from cra.db import open_db  # noqa: E402
from cra.train import runs  # noqa: E402

pytestmark = pytest.mark.slow
QUIET = dict(echo=lambda *a, **k: None)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from cra.testing.tiny import build_model

    return build_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def prefit_model(tmp_path_factory):
    """The tiny model fitted to write tool calls: its actions differ from the random model's."""
    from rl_setup import prefit_tiny_model

    return prefit_tiny_model(tmp_path_factory.mktemp("prefit") / "model", steps=40)


def add_turns(db, n, start=0):
    for i in range(start, start + n):
        Session(db, f"sess-{i}").turn(f"task {i}: fix the parser", good_steps(str(i)), answer(topic=f"task {i}"))


SETTINGS = dict(
    min_total_turns=6,
    min_new_turns=4,
    eval_max_new_tokens=32,
    eval_limit=4,
    eval_cpu_threads=1,
    dataset={"eval_fraction": 0.3, "tools": "used", "system": "none"},
    sft={
        "load_in_4bit": False,
        "max_steps": 1,
        "eval_steps": 1,
        "batch_size": 2,
        "grad_accum": 1,
        "max_length": 1024,
        "cpu_threads": 1,
        "logging_steps": 1,
        "warmup_ratio": 0,
    },
    grpo={
        "load_in_4bit": False,
        "max_steps": 1,
        "batch_size": 2,
        "num_generations": 2,
        "max_completion_length": 16,
        "eval_prompts": 0,
        "max_prompts": 4,
        "cpu_threads": 1,
        "save_steps": 1,
    },
)


def settings(base, **overrides):
    return AutoSettings(**{**SETTINGS, "base": str(base), **overrides})


def toml(s: AutoSettings) -> str:
    """auto.toml for these settings (flat values, then one table per section)."""

    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    flat = [f"{k} = {value(v)}" for k, v in s.model_dump().items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
        for k, v in s.model_dump().items()
        if isinstance(v, dict) and v
    ]
    return "\n".join(flat) + "\n" + "\n".join(tables) + "\n"


def test_first_cycle_at_the_threshold_and_rl_on_the_second(tiny_model, cra_home):
    db = open_db()
    # The flow, not the decision, is under test here: the first model is promoted if within 1.0 of its base.
    (cra_home / "auto.toml").write_text(toml(settings(tiny_model, promote_tolerance=1.0)))
    add_turns(db, 5)
    result = CliRunner().invoke(cli, ["auto", "once"], catch_exceptions=False)
    assert "No cycle due: 5/6 qualifying turns for the first cycle" in result.output
    assert db.execute("SELECT count(*) FROM cycles").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0

    add_turns(db, 5, start=5)
    result = CliRunner().invoke(cli, ["auto", "once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (first,) = store.list_cycles(db)
    assert (first["number"], first["status"], first["trigger"], first["with_rl"]) == (1, "completed", "first", 0)
    assert [s["name"] for s in first["stages"]] == ["sync", "signals", "dataset", "sft", "export", "eval", "promote"]
    assert all(s["status"] == "completed" for s in first["stages"])
    sft = runs.get_run(db, first["model_run_id"])
    assert sft["kind"] == "sft" and sft["status"] == "completed"
    assert first["decision"] == "promoted" and first["baseline_run_id"] is None  # compared with the base
    assert abs(first["score"] - first["baseline_score"]) <= 1.0
    # Every stage is in the run history: the cycle's run, its child runs, the training run inside its directory.
    cycle_run = runs.get_run(db, first["run_id"])
    assert cycle_run["kind"] == "cycle" and cycle_run["status"] == "completed"
    children = {r["kind"] for r in db.query("SELECT kind FROM runs WHERE parent_run = ?", [cycle_run["id"]])}
    assert children == {"cycle-sync", "cycle-signals", "cycle-dataset", "cycle-export", "cycle-eval", "cycle-promote"}
    assert sft["output_dir"].startswith(cycle_run["output_dir"] + "/")
    # Promoted: the flag, the pointer, the GGUF link, and what `cra export` takes when no run is named.
    pointer = json.loads((cra_home / "models" / "promoted.json").read_text())
    gguf = next(s for s in first["stages"] if s["name"] == "export")["outputs"]["gguf"]
    assert pointer["run_id"] == sft["id"] and pointer["gguf"] == gguf and os.path.isfile(gguf)
    assert os.readlink(cra_home / "models" / "promoted.gguf") == gguf
    from cra.export.exporter import Source

    assert Source(db, None, None, None).run["id"] == sft["id"]
    assert "Cycle 1: model run" in result.output and "promoted" in result.output

    assert CliRunner().invoke(cli, ["auto", "once"]).output.startswith("No cycle due: 0/4 new qualifying turns")
    add_turns(db, 4, start=10)
    result = CliRunner().invoke(cli, ["auto", "once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    second = store.list_cycles(db)[0]
    assert (second["number"], second["status"], second["trigger"], second["with_rl"]) == (
        2,
        "completed",
        "new_turns",
        1,
    )
    stages = {s["name"]: s for s in second["stages"]}
    assert list(stages) == ["sync", "signals", "dataset", "sft", "rl", "export", "eval", "promote"]
    grpo = runs.get_run(db, stages["rl"]["run_id"])
    assert grpo["kind"] == "grpo" and grpo["status"] == "completed"
    assert grpo["parent_run"] == stages["sft"]["run_id"] and second["model_run_id"] == grpo["id"]
    assert second["baseline_run_id"] == sft["id"]  # compared with the promoted model, not the base
    assert stages["eval"]["outputs"]["baseline_run"] == sft["id"]
    # Both evaluated on the same held-out steps of the new dataset.
    evals = {e["id"]: e for e in db.query("SELECT id, steps_hash, model_run_id FROM evals")}
    cand, base = evals[stages["eval"]["outputs"]["eval_id"]], evals[stages["eval"]["outputs"]["baseline_eval_id"]]
    assert cand["steps_hash"] == base["steps_hash"] and (cand["model_run_id"], base["model_run_id"]) == (
        grpo["id"],
        sft["id"],
    )

    status = CliRunner().invoke(cli, ["auto", "status"], catch_exceptions=False).output
    assert "cycle 2.1 completed" in status and "rl:completed" in status and "cycle 1.1 completed" in status


def test_promotion_only_when_eval_does_not_regress(tiny_model, prefit_model, cra_home):
    """Two bases whose actions score differently: the worse candidate never replaces the better model."""
    db = open_db()
    add_turns(db, 10)
    fast = dict(rl_every=0, export=False)
    a = run_once(db, settings(prefit_model, **fast), force=True, **QUIET)["cycle"]
    assert a["status"] == "completed"
    result = CliRunner().invoke(cli, ["auto", "promote", str(a["model_run_id"])], catch_exceptions=False)
    assert result.exit_code == 0 and store.promoted(db)["run_id"] == a["model_run_id"]

    b = run_once(db, settings(tiny_model, **fast), force=True, **QUIET)["cycle"]
    assert b["baseline_run_id"] == a["model_run_id"]
    assert b["score"] > b["baseline_score"], b
    assert b["decision"] == "promoted" and store.promoted(db)["run_id"] == b["model_run_id"]

    c = run_once(db, settings(prefit_model, **fast), force=True, **QUIET)["cycle"]
    assert c["status"] == "completed" and c["baseline_run_id"] == b["model_run_id"]
    assert c["score"] < c["baseline_score"], c
    assert c["decision"] == "kept"
    assert store.promoted(db)["run_id"] == b["model_run_id"]
    assert json.loads((cra_home / "models" / "promoted.json").read_text())["run_id"] == b["model_run_id"]
    assert db.execute("SELECT count(*) FROM promotions WHERE current = 1").fetchone()[0] == 1
    reason = next(s for s in c["stages"] if s["name"] == "promote")["outputs"]["reason"]
    assert f"(run {b['model_run_id']})" in reason and " < " in reason


def test_failed_stage_is_recorded_and_retried_with_backoff(tiny_model, cra_home, tmp_path):
    db = open_db()
    add_turns(db, 10)
    missing = str(tmp_path / "no-such-model")
    broken = settings(missing, rl_every=0, backoff_minutes=30)
    result = run_once(db, broken, **QUIET)
    failed = result["cycle"]
    assert (result["status"], failed["status"], failed["failed_stage"]) == ("failed", "failed", "sft")
    assert missing in failed["error"]
    stages = {s["name"]: s for s in failed["stages"]}
    assert stages["dataset"]["status"] == "completed" and stages["sft"]["status"] == "failed"
    assert "eval" not in stages and "promote" not in stages
    assert runs.get_run(db, stages["sft"]["run_id"])["status"] == "failed"
    assert runs.get_run(db, failed["run_id"])["status"] == "failed"
    assert store.promoted(db) is None and not (cra_home / "models" / "promoted.json").exists()

    # Right after: backing off, even though the thresholds are met.
    again = run_once(db, broken, **QUIET)
    assert again["status"] == "not_due" and "retrying after" in again["readiness"]["reason"]
    out = CliRunner().invoke(cli, ["auto", "status"], catch_exceptions=False).output
    assert "cycle 1.1 failed" in out and "sft:failed" in out and missing in out

    # After the backoff, with the base fixed: the same cycle number, its dataset reused, promoted.
    fixed = settings(tiny_model, rl_every=0, backoff_minutes=30, promote_tolerance=1.0)
    retry = run_once(db, fixed, now=time.time() + 31 * 60, **QUIET)["cycle"]
    assert (retry["number"], retry["attempt"], retry["trigger"], retry["status"]) == (1, 2, "retry", "completed")
    stages = {s["name"]: s for s in retry["stages"]}
    assert stages["dataset"]["status"] == "reused" and stages["dataset"]["from_cycle"] == failed["id"]
    assert stages["sft"]["status"] == "completed"  # its settings changed (the base): trained again
    assert retry["decision"] == "promoted" and store.promoted(db)["run_id"] == retry["model_run_id"]


def test_sigterm_mid_training_stops_the_cycle_without_a_backoff(tiny_model, cra_home, tmp_path):
    """systemd stops `cra auto run` with SIGTERM: the cycle in progress is recorded as stopped (its
    training run interrupted, not left running), the next check runs it again at once, reusing its
    dataset, and nothing waits for a backoff."""
    db = open_db()
    add_turns(db, 10)
    # Long enough to be inside trainer.train() when the signal comes.
    slow = settings(tiny_model, rl_every=0, sft={**SETTINGS["sft"], "max_steps": 5000, "eval_steps": 5000})
    config = tmp_path / "auto.toml"
    config.write_text(toml(slow))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cra", "auto", "run", "--interval", "1", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            row = db.execute("SELECT id, status, output_dir FROM runs WHERE kind = 'sft'").fetchone()
            if row and row[1] == "running" and os.path.isdir(row[2]):
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        else:
            pytest.fail("the sft stage never started")
        time.sleep(3)  # into the training steps
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Stopped (stopped by SIGTERM)" in out

    cycle = store.list_cycles(db)[0]
    assert (cycle["status"], cycle["failed_stage"], cycle["error"]) == ("stopped", "sft", "stopped by SIGTERM")
    stages = {st["name"]: st for st in cycle["stages"]}
    assert stages["dataset"]["status"] == "completed" and stages["sft"]["status"] == "stopped"
    assert runs.get_run(db, stages["sft"]["run_id"])["status"] == "interrupted"
    assert runs.get_run(db, cycle["run_id"])["status"] == "interrupted"
    assert db.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0

    # Not a failure: due again right away, no backoff, and the lock was released.
    ready = readiness(db, slow)
    assert ready.due and ready.failures == 0 and ready.backoff_until is None
    quick = settings(tiny_model, rl_every=0, promote_tolerance=1.0)
    retry = run_once(db, quick, **QUIET)["cycle"]
    assert (retry["number"], retry["attempt"], retry["status"]) == (1, 2, "completed")
    stages = {st["name"]: st for st in retry["stages"]}
    assert stages["dataset"]["status"] == "reused" and stages["dataset"]["from_cycle"] == cycle["id"]
