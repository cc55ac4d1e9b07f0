"""One process's part in a training run launched on several processes (`accelerate launch`, one
process per GPU; gloo on CPU): every rank trains, rank 0 alone registers the run and writes what it
produces (the `runs` row, summary, adapter, artifacts), so a launch is one run, as on one process.

The trainers call this and nothing else about distribution; TRL and Accelerate do the rest (the
data split between ranks, gradient averaging, checkpoints written once). docs/training.md, "More
than one GPU".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import runs


def _skip(*args, **kwargs):
    return None


class Launch:
    """This process's rank in the launch (rank 0, world size 1 when not launched on several)."""

    def __init__(self):
        self.key = runs.launch_key()  # None when not distributed
        self.main = runs.is_main_process()
        self.world_size = self.key["world_size"] if self.key else 1

    def start_run(self, db, config: dict[str, Any], start: Callable[[dict], dict]) -> dict:
        """The launch's one `runs` row: start(config) registers it on rank 0 (the config records the
        launch), which sends its id to the other ranks over the launch's own process group."""
        if not self.key:
            return start(config)
        import torch
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        # The process group the Trainer will use (TrainingArguments asks for the same state).
        PartialState(cpu=not torch.cuda.is_available())
        run_id = [start({**config, "launch": self.key})["id"] if self.main else None]
        broadcast_object_list(run_id, from_process=0)
        assert run_id[0] is not None  # rank 0's id, now on every rank
        return runs.get_run(db, run_id[0])

    def on_main(self, fn: Callable) -> Callable:
        """fn on rank 0; elsewhere a no-op (what writes rows and files)."""
        return fn if self.main else _skip

    def total(self, value: float) -> float:
        """The sum of `value` over the ranks (each counts only the batches it trained on); every rank
        must call it at the same point."""
        if self.world_size == 1:
            return value
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            return value
        # NCCL reduces GPU tensors only; gloo (CPU) CPU ones.
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        total = tensor.item()
        return int(total) if isinstance(value, int) else total


def shards_parameters() -> bool:
    """Launched with FSDP or DeepSpeed (`accelerate launch --config_file ...`): they place and shard the
    model's parameters themselves."""
    import os

    return any(os.environ.get(k, "").lower() == "true" for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def four_bit_loading(compute_dtype, cuda: bool) -> tuple[dict, dict]:
    """(extra BitsAndBytesConfig fields, extra from_pretrained arguments) for a 4-bit base in this launch.

    One process, or DDP: the whole base on this rank's GPU (LOCAL_RANK), or the CPU. FSDP or DeepSpeed
    ZeRO-3: no placement (they shard it), and the 4-bit weights stored in the compute dtype, as PEFT's
    and bitsandbytes' FSDP-QLoRA and ZeRO-3-QLoRA guides require (those shard float tensors only).
    """
    import os

    if shards_parameters():
        return {"bnb_4bit_quant_storage": compute_dtype}, {}
    return {}, {"device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))} if cuda else {"": "cpu"}}
