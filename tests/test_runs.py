"""The run registry (runs, artifacts) and `cra runs` / `cra runs show`, without training anything."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from cra.cli import cli
from cra.db import open_db
from cra.db.migrations import migrations
from cra.errors import ConfigError, NotFoundError, StageError
from cra.train import runs


def test_migration_creates_runs_and_artifacts():
    db = Database(memory=True)
    migrations.apply(db)
    assert db["runs"].columns_dict == {
        "id": int,
        "kind": str,
        "base_model": str,
        "dataset": str,
        "config": str,
        "status": str,
        "started_at": str,
        "ended_at": str,
        "metrics": str,
        "output_dir": str,
        "parent_run": int,
        "error": str,
    }
    assert db["artifacts"].columns_dict == {
        "id": int,
        "run_id": int,
        "kind": str,
        "path": str,
        "bytes": int,
        "created_at": str,
        "meta": str,
    }


def test_adapter_lookup_and_last_are_one_rule_for_eval_export_and_auto(cra_home, tmp_path):
    """runs.adapter_dir: the newest recorded adapter still on disk, else <output_dir>/adapter;
    runs.newest_with_adapter ('last'): the newest completed run that has one."""
    db = open_db()

    def adapter(path):
        path.mkdir(parents=True)
        (path / "adapter_config.json").write_text("{}")
        return path

    a = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={})
    b = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={})
    c = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={})
    assert runs.adapter_dir(db, a) is None and runs.newest_with_adapter(db) is None

    own = adapter(Path(a["output_dir"]) / "adapter")
    assert runs.adapter_dir(db, a) == str(own)
    moved = adapter(tmp_path / "elsewhere")
    runs.record_artifact(db, a["id"], "adapter", moved)
    assert runs.adapter_dir(db, a) == str(moved.resolve())  # the recorded one wins while it exists
    (moved / "adapter_config.json").unlink()
    assert runs.adapter_dir(db, a) == str(own)

    adapter(Path(c["output_dir"]) / "adapter")
    runs.finish_run(db, a["id"], "completed")
    runs.finish_run(db, b["id"], "completed")  # newer than a, but without an adapter
    runs.finish_run(db, c["id"], "failed")  # has one, but failed
    assert runs.newest_with_adapter(db)["id"] == a["id"]


def test_runs_get_versioned_directories_and_a_lifecycle(cra_home):
    db = open_db()
    a = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={"lora_r": 16})
    b = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={"lora_r": 8}, parent_run=a["id"])
    assert a["status"] == "running" and a["output_dir"] == str((cra_home / "runs" / "sft-0001").resolve())
    assert b["output_dir"].endswith("sft-0002") and b["parent_run"] == a["id"]
    assert json.loads((cra_home / "runs" / "sft-0001" / "config.json").read_text()) == {"lora_r": 16}

    runs.finish_run(db, a["id"], "failed", error="boom")
    (cra_home / "runs" / "sft-0002" / "adapter").mkdir()
    (cra_home / "runs" / "sft-0002" / "adapter" / "w.bin").write_bytes(b"x" * 100)
    runs.record_artifact(db, b["id"], "adapter", cra_home / "runs" / "sft-0002" / "adapter", {"step": 4})
    runs.finish_run(db, b["id"], "completed", metrics={"steps": 4, "eval_loss_best": 1.25})

    done = runs.get_run(db, b["id"])
    assert done["status"] == "completed" and done["metrics"]["steps"] == 4 and done["ended_at"]
    (artifact,) = runs.run_artifacts(db, b["id"])
    assert artifact["bytes"] == 100 and artifact["meta"] == {"step": 4}
    assert [r["id"] for r in runs.list_runs(db)] == [2, 1]
    with pytest.raises(ValueError):
        runs.finish_run(db, a["id"], "exploded")

    listing = CliRunner().invoke(cli, ["runs"]).output.splitlines()
    assert listing[0].split()[:3] == ["id", "kind", "status"]
    assert listing[1].split()[:3] == ["2", "sft", "completed"] and "1.2500" in listing[1]
    assert listing[2].split()[:3] == ["1", "sft", "failed"]
    as_json = json.loads(CliRunner().invoke(cli, ["runs", "--json", "-n", "1"]).output)
    assert [r["id"] for r in as_json] == [2]

    shown = CliRunner().invoke(cli, ["runs", "show", "1"]).output
    assert "Run 1 (sft): failed" in shown and "boom" in shown and "lora_r" in shown
    shown = CliRunner().invoke(cli, ["runs", "show", "2"]).output
    assert "parent_run  1" in shown and "adapter" in shown and "(100 bytes)" in shown


def test_unknown_run_and_empty_registry():
    assert "No runs yet" in CliRunner().invoke(cli, ["runs"]).output
    result = CliRunner().invoke(cli, ["runs", "show", "7"])
    assert result.exit_code == 1 and "no run 7" in result.output


def test_resume_picks_the_newest_unfinished_run_with_a_checkpoint(cra_home):
    db = open_db()
    a = runs.start_run(db, kind="sft", base_model="m", dataset="d", config={})
    runs.finish_run(db, a["id"], "interrupted")
    with pytest.raises(NotFoundError, match="no checkpoint to resume from"):
        runs.resumable_run(db, "sft", "last")
    for step in (2, 10, 4):
        ckpt = os.path.join(a["output_dir"], "checkpoints", f"checkpoint-{step}")
        os.makedirs(ckpt)
        open(os.path.join(ckpt, "trainer_state.json"), "w").write("{}")
    assert runs.last_checkpoint(a["output_dir"]).name == "checkpoint-10"
    assert runs.resumable_run(db, "sft", "last")["id"] == a["id"]
    assert runs.resumable_run(db, "sft", str(a["id"]))["id"] == a["id"]
    with pytest.raises(ConfigError, match="is a sft run, not grpo"):
        runs.resumable_run(db, "grpo", str(a["id"]))
    with pytest.raises(ConfigError, match="run id or 'last'"):
        runs.resumable_run(db, "sft", "yesterday")
    runs.start_run(db, kind="sft", base_model="m", dataset="d", config={}, parent_run=a["id"])
    with pytest.raises(NotFoundError, match="run 2 has no checkpoint"):
        runs.resumable_run(db, "sft", "last")  # run 1 was continued by run 2, the newest unfinished one


def test_ranks_of_one_launch_share_the_run_rank_0_registered(monkeypatch):
    db = open_db()
    assert runs.launch_key() is None and runs.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    config = {"lora_r": 16, "launch": runs.launch_key()}
    assert config["launch"]["world_size"] == 2 and config["launch"]["master"] == "127.0.0.1:29500"
    runs.start_run(db, kind="sft", base_model="m", dataset="d", config={"lora_r": 16})  # another run
    registered = runs.start_run(db, kind="sft", base_model="m", dataset="d", config=config)
    monkeypatch.setenv("RANK", "1")
    assert not runs.is_main_process()
    assert runs.wait_for_launch_run(db, "sft", config, timeout=1)["id"] == registered["id"]
    other = {**config, "launch": {**config["launch"], "master": "127.0.0.1:29501"}}
    with pytest.raises(StageError, match="no run registered by rank 0"):
        runs.wait_for_launch_run(db, "sft", other, timeout=0.6)
