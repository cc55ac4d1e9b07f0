"""`accelerate launch` of `cra train sft` and `cra train grpo` on two CPU processes (DDP over gloo) on the
tiny model: both ranks train, rank 0 alone writes the run row and the adapter, and SFT ends where one
process on the same global batch ends."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")

from cra.db import open_db  # noqa: E402

pytestmark = pytest.mark.slow

# 4 examples, so every step's global batch is the whole split whatever the sampler's order: on one
# process 4 x 1, on two 2 x 2. No dropout, no warm-up, no packing: nothing random between the two.
SFT = [
    "--no-load-in-4bit",
    "--backend",
    "trl",
    "--max-steps",
    "4",
    "--grad-accum",
    "1",
    "--max-length",
    "512",
    "--learning-rate",
    "3e-3",
    "--cpu-threads",
    "1",
    "--logging-steps",
    "1",
    "--warmup-ratio",
    "0",
    "--lora-dropout",
    "0",
    "--packing",
    "off",
    "--eval-steps",
    "2",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cra(home: Path, args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    """`cra ARGS` with CRA_HOME=home, on one process or under `accelerate launch` on several."""
    env = {**os.environ, "CRA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    open_db(str(home / "cra.db"), drain=False).conn.close()  # created (and migrated) before the ranks start
    if processes == 1:
        command = [sys.executable, "-m", "cra", *args]
    else:
        accelerate = str(Path(sys.executable).with_name("accelerate"))
        command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes)]
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(free_port()), "-m", "cra", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def only_run(home: Path, kind: str) -> dict:
    db = open_db(str(home / "cra.db"), drain=False)
    (run,) = [r for r in db.query("SELECT * FROM runs WHERE kind = ?", [kind])]
    run["metrics"], run["config"] = json.loads(run["metrics"]), json.loads(run["config"])
    run["artifacts"] = list(db.query("SELECT * FROM artifacts WHERE run_id = ?", [run["id"]]))
    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cra.testing.tiny import build_model, synthetic_conversations, write_splits

    root = tmp_path_factory.mktemp("ddp")
    data = write_splits(root / "data", synthetic_conversations(5, seed=0), 4)  # 4 train, 1 eval
    return str(build_model(root / "model")), str(data)


def test_sft_on_two_processes_is_one_run_that_matches_one_process(tiny, tmp_path):
    model, data = tiny
    common = ["train", "sft", "--base", model, "--dataset", data, *SFT]
    cra(tmp_path / "one", [*common, "--batch-size", "4"])
    two = cra(tmp_path / "two", [*common, "--batch-size", "2"], processes=2)

    single, ddp = only_run(tmp_path / "one", "sft"), only_run(tmp_path / "two", "sft")
    # Both ranks trained: each saved its RNG state in the checkpoint, and the token count summed over
    # ranks is the single process's.
    checkpoint = Path(ddp["metrics"]["last_checkpoint"])
    assert {p.name for p in checkpoint.glob("rng_state*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert ddp["metrics"]["processes"] == 2 and single["metrics"]["processes"] == 1
    assert ddp["metrics"]["tokens"] == single["metrics"]["tokens"] > 0
    assert ddp["config"]["launch"]["world_size"] == 2 and "launch" not in single["config"]
    # Rank 0 alone wrote: one run, one directory, one adapter artifact, one summary line.
    assert ddp["status"] == "completed" and [a["kind"] for a in ddp["artifacts"]] == ["adapter"]
    assert [p.name for p in (tmp_path / "two" / "runs").iterdir()] == ["sft-0001"]
    assert two.stdout.count("Run 1 completed") == 1

    # Same global batch, same result: the loss curves, the eval loss and the adapter's weights.
    for key in ("train_loss_curve", "eval_loss_curve"):
        a, b = single["metrics"][key], ddp["metrics"][key]
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 2
        assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 1e-4, (a, b)
    assert ddp["metrics"]["train_loss_last"] < ddp["metrics"]["train_loss_first"]
    from safetensors.torch import load_file

    one = load_file(Path(single["metrics"]["adapter"]) / "adapter_model.safetensors")
    both = load_file(Path(ddp["metrics"]["adapter"]) / "adapter_model.safetensors")
    assert one.keys() == both.keys()
    moved = max((one[k] - both[k]).abs().max().item() for k in one)
    scale = max(one[k].abs().max().item() for k in one)
    assert moved < 1e-4 * max(scale, 1.0), (moved, scale)


def test_grpo_on_two_processes_is_one_run_written_by_rank_0(tmp_path_factory, tmp_path):
    from rl_setup import sft_database

    home = tmp_path / "home"
    home.mkdir()
    src = sft_database(tmp_path_factory.mktemp("rl-ddp"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{home / 'cra.db'}{suffix}")
    args = ["train", "grpo", "--no-load-in-4bit", "--num-generations", "4", "--temperature", "0.7"]
    args += ["--max-completion-length", "32", "--learning-rate", "1e-3", "--cpu-threads", "1", "--max-prompts", "8"]
    args += ["--save-steps", "2", "--max-steps", "2", "--eval-prompts", "2"]
    # Per process 2 completions: a group of 4 spans both ranks (the settings check counts processes).
    result = cra(home, [*args, "--batch-size", "2"], processes=2)
    run = only_run(home, "grpo")
    assert run["status"] == "completed" and run["metrics"]["processes"] == 2
    assert run["metrics"]["steps"] == 2 and len(run["metrics"]["step_log"]) == 2
    assert all(s["reward_std"] >= 0 and "kl" in s for s in run["metrics"]["step_log"])
    checkpoint = Path(run["output_dir"]) / "checkpoints" / "checkpoint-2"
    assert {p.name for p in checkpoint.glob("rng_state*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert [a["kind"] for a in run["artifacts"]] == ["adapter"]
    assert (Path(run["metrics"]["adapter"]) / "adapter_model.safetensors").is_file()
    assert run["metrics"]["reward_before"]["n"] == run["metrics"]["reward_after"]["n"] == 8  # rank 0's measure
    assert result.stdout.count("(grpo) completed") == 1
    assert [p.name for p in (home / "runs").iterdir()] == [f"grpo-{run['id']:04d}"]


@pytest.mark.parametrize("launcher", [None, "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"])
def test_a_4bit_base_is_placed_as_the_launch_needs(tiny, monkeypatch, launcher):
    """One process or DDP: the whole 4-bit base on this rank's device. FSDP or DeepSpeed ZeRO-3 (set by
    `accelerate launch --config_file`): no placement, and the 4-bit weights stored in the compute dtype,
    which those shard (PEFT's FSDP-QLoRA and ZeRO-3-QLoRA recipe)."""
    pytest.importorskip("bitsandbytes")
    import torch

    from cra.train import loading
    from cra.train.config import SFTSettings

    for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)
    if launcher:
        monkeypatch.setenv(launcher, "true")
    model, data = tiny
    settings = SFTSettings(base=model, dataset=data, load_in_4bit=True, backend="trl")
    loaded = loading.load_for_lora(settings, "trl", loading.resolve_precision("fp32"))
    weight = loaded.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert type(weight).__name__ == "Params4bit"
    assert weight.dtype == (torch.float32 if launcher else torch.uint8) and weight.device.type == "cpu"
