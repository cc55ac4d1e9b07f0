"""`cra train reward`: a reward model on preference pairs (`cra dataset pairs`), for `cra train ppo`.

A sequence-classification head (one score) on the base model, initialised from the SFT run (its
adapter merged into the base) unless `--no-from-sft`, trained with LoRA by TRL's RewardTrainer:
the chosen message must outscore the rejected one (Bradley-Terry loss). Each pair is rendered with
the SFT run's chat template exactly as PPO renders a context and its completion, so the score PPO
asks for is the score the model learned. The run directory's `adapter/` holds the LoRA weights and
the trained score head; `runs` records accuracy and margin before and after on the eval split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import chat, progress
from ..errors import ConfigError, NotFoundError, StageError
from . import loading, rl, runs
from .config import ALL_PROJECTIONS
from .lifecycle import RLRun, make_graceful_stop


class RewardModelSettings(BaseModel):
    """A LoRA reward model (sequence classification, one score) trained on chosen/rejected pairs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pairs: str | None = Field(None, description="Pairs from `cra dataset pairs`: a name, a directory or a JSONL file.")
    sft_run: str = Field(
        "last", description="SFT run whose base (and adapter) the reward model starts from: id or last."
    )
    from_sft: bool = Field(True, description="Merge the SFT adapter into the base before adding the score head.")
    base: str | None = Field(None, description="Base model (none: the SFT run's base).")
    load_in_4bit: bool = Field(True, description="Load the base in 4-bit NF4 through bitsandbytes.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_PROJECTIONS), description="Modules that get LoRA adapters (comma-separated)."
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training pairs.")
    max_steps: int = Field(-1, description="Stop after this many steps (-1: use epochs).")
    batch_size: int = Field(4, ge=1, description="Pairs per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(2048, ge=16, description="Pairs whose longer side exceeds this (tokens) are skipped.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16/fp16 on GPU, fp32 on CPU."
    )
    optim: str = Field(
        "auto", description="Optimizer: auto = 8-bit AdamW on CUDA, AdamW on CPU; or a transformers name."
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field("auto", description="auto = on with CUDA, off on CPU.")
    chat_template: str = Field("auto", description="auto: the SFT adapter's (or model's) template, or a Jinja file.")
    eval_steps: int = Field(50, ge=1, description="Evaluate and save a checkpoint every N steps.")
    save_total_limit: int = Field(3, ge=1, description="Checkpoints kept.")
    logging_steps: int = Field(10, ge=1, description="Log loss and accuracy every N steps.")
    seed: int = Field(42, description="Random seed.")
    cpu_threads: int = Field(0, ge=0, description="Torch CPU threads (0: torch's default).")
    runs_dir: str | None = Field(None, description="Where run directories go (none: $CRA_HOME/runs).")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split(cls, value: Any):
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    _run_ref = field_validator("sft_run")(staticmethod(rl.run_ref))


def resolve_pairs(db, ref: str) -> tuple[Path, Path | None]:
    from ..dataset.files import resolve_dataset

    try:
        return resolve_dataset(db, ref)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no pairs {ref!r}: give a name from `cra dataset pairs`, a directory or a JSONL file"
        ) from exc


def _messages(value, role):
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return list(value)


def _through_last_eos(ids: list[int], eos_id) -> list[int]:
    """Cut what the chat template adds after the message's end-of-turn token (ChatML's "\n"). The score
    is read at the last token: PPO reads it at the end-of-turn token its response stops at, so the
    reward model must learn it there (trained on the "\n", its score at `<|im_end|>` was another,
    barely correlated number, and higher for responses that never ended)."""
    if eos_id is not None and eos_id in ids:
        return ids[: len(ids) - ids[::-1].index(eos_id)]
    return ids


def tokenize_pairs(path: Path, tokenizer, max_length: int, family=None) -> tuple[list[dict], int]:
    """[{chosen_ids, rejected_ids}] rendered as prompt + message by the renderer (cra.chat); (rows, skipped)."""
    family = family or chat.resolve_family(tokenizer, "auto")
    rows, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            pair = json.loads(line)
            prompt = _messages(pair.get("prompt") or [], "user")
            ids = []
            for side in ("chosen", "rejected"):
                # strict=False: a rejected action with malformed arguments is shown as it was written.
                example = {"messages": prompt + _messages(pair[side], "assistant"), "tools": pair.get("tools")}
                text = chat.render(chat.Conversation.from_example(example, strict=False), family).text
                ids.append(
                    _through_last_eos(tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id)
                )
            if max(len(i) for i in ids) > max_length or ids[0] == ids[1]:
                skipped += 1
                continue
            rows.append({"chosen_ids": ids[0], "rejected_ids": ids[1]})
    return rows, skipped


def load_sequence_classifier(base: str, precision, load_in_4bit: bool, merge_adapters=(), trainable: bool = True):
    """The base with a one-score head; each adapter in `merge_adapters` merged into the weights."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype, "num_labels": 1}
    if load_in_4bit:
        kwargs.update(loading.quantization_kwargs(precision))
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load {base!r} with a classification head: {exc}") from exc
    for adapter in merge_adapters:
        # A causal-LM adapter on the same backbone: load it without its task type (which would wrap
        # the model for generation) and fold it into the weights.
        config = PeftConfig.from_pretrained(adapter)
        config.task_type = None
        model = PeftModel.from_pretrained(model, adapter, config=config).merge_and_unload()
    if load_in_4bit and trainable:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def reward_run(db, run_ref: str) -> dict:
    """The completed `reward` run `run_ref` names (an id or 'last')."""
    if run_ref == "last":
        rows = list(
            db.query("SELECT id FROM runs WHERE kind = 'reward' AND status = 'completed' ORDER BY id DESC LIMIT 1")
        )
        if not rows:
            raise NotFoundError("no completed reward run: train one with `cra train reward --pairs NAME`")
        return runs.get_run(db, rows[0]["id"])
    run = runs.get_run(db, int(run_ref))
    if run["kind"] != "reward" or run["status"] != "completed":
        raise ConfigError(f"run {run['id']} is not a completed reward run ({run['kind']}, {run['status']})")
    return run


def load_reward_run(run: dict, precision, load_in_4bit: bool = False):
    """(model, tokenizer) of a completed reward run, LoRA merged: a plain module PPO can call."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    m = run["metrics"] or {}
    merge = [m["sft_adapter"]] if m.get("sft_adapter") else []
    model = load_sequence_classifier(run["base_model"], precision, load_in_4bit, merge, trainable=False)
    model = PeftModel.from_pretrained(model, m["adapter"]).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(m["adapter"])
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def pair_accuracy(model, rows: list[dict], pad_id: int, batch_size: int = 8) -> dict[str, float] | None:
    """Share of pairs whose chosen side scores higher, and the mean margin."""
    import torch

    if not rows:
        return None
    was_training = model.training
    model.eval()
    wins, margins = 0, []
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            seqs = [r["chosen_ids"] for r in chunk] + [r["rejected_ids"] for r in chunk]
            width = max(len(s) for s in seqs)
            ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs], device=model.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=model.device)
            with torch.no_grad():
                scores = model(input_ids=ids, attention_mask=mask).logits[:, 0].float()
            chosen, rejected = scores[: len(chunk)], scores[len(chunk) :]
            wins += int((chosen > rejected).sum())
            margins.extend((chosen - rejected).tolist())
    finally:
        if was_training:
            model.train()
    return {"accuracy": wins / len(rows), "margin": sum(margins) / len(margins), "n": len(rows)}


def _config(settings: RewardModelSettings, output_dir: Path, has_eval: bool):
    from trl import RewardConfig

    return RewardConfig(
        **runs.trainer_args(settings, output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_eval_batch_size=settings.batch_size,
        max_length=None,  # cra skipped the long pairs already
        eval_strategy="steps" if has_eval else "no",
        eval_steps=settings.eval_steps,
        save_steps=settings.eval_steps,
        logging_first_step=True,
        data_seed=settings.seed,
    )


def train_reward_model(settings: RewardModelSettings, db, *, parent=None, callbacks: tuple = (), echo=progress.echo):
    """Train, record the run (kind `reward`), return its final `runs` row."""
    loading.require()
    if not settings.pairs:
        raise ConfigError("no pairs: pass --pairs NAME|PATH (`cra dataset pairs` makes them)")
    sft = rl.sft_parent(db, settings.sft_run)
    settings.sft_run = str(sft["id"])
    if settings.base is None:
        settings.base = sft["base_model"]
    sft_adapter = sft["metrics"]["adapter"]
    train_path, eval_path = resolve_pairs(db, settings.pairs)
    resume_from = runs.last_checkpoint(parent["output_dir"]) if parent else None
    run = RLRun.start(
        db, "reward", settings, sft, parent, echo, dataset=settings.pairs, label="reward model", resumable=False
    )
    output_dir = run.output_dir
    with run:
        runs.set_cpu_threads(settings.cpu_threads)
        precision = loading.resolve_precision(settings.precision)
        tokenizer = rl.load_tokenizer(settings, sft_adapter)
        family = chat.resolve_family(tokenizer, settings.chat_template)
        train_rows, skipped = tokenize_pairs(train_path, tokenizer, settings.max_length, family)
        eval_rows, eval_skipped = (
            tokenize_pairs(eval_path, tokenizer, settings.max_length, family) if eval_path else ([], 0)
        )
        if not train_rows:
            raise StageError(
                f"no usable pair in {train_path} "
                f"({skipped} longer than --max-length {settings.max_length} or identical)"
            )
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        set_seed(settings.seed)  # the new score head and LoRA draw from the global generators
        model = load_sequence_classifier(
            settings.base, precision, settings.load_in_4bit, [sft_adapter] if settings.from_sft else []
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        targets = loading._target_modules(model, settings.target_modules)
        model = get_peft_model(
            model,
            LoraConfig(
                r=settings.lora_r,
                lora_alpha=settings.lora_alpha,
                lora_dropout=settings.lora_dropout,
                target_modules=targets,
                task_type="SEQ_CLS",
                bias="none",
            ),
        )
        scored = eval_rows or train_rows  # before/after accuracy: the eval split, else the training pairs
        before = pair_accuracy(model, scored, tokenizer.pad_token_id)

        from datasets import Dataset
        from trl import RewardTrainer

        stop = make_graceful_stop()
        trainer = RewardTrainer(
            model=model,
            args=_config(settings, output_dir, bool(eval_rows)),
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
            processing_class=tokenizer,
            callbacks=[stop, *callbacks],
        )
        result = stop.train(trainer, resume_from)
        steps = rl.step_log(
            trainer.state.log_history,
            {
                "loss": "loss",
                "accuracy": "accuracy",
                "margin": "margin",
                "mean_reward": "reward_mean",
                "eval_loss": "eval_loss",
                "eval_accuracy": "eval_accuracy",
                "eval_margin": "eval_margin",
            },
        )
        metrics: dict[str, Any] = {
            "steps": trainer.state.global_step,
            "sft_run": sft["id"],
            "sft_adapter": sft_adapter if settings.from_sft else None,
            "train_loss": result.training_loss,
            "train_seconds": result.metrics.get("train_runtime"),
            "train_pairs": len(train_rows),
            "eval_pairs": len(eval_rows),
            "skipped_pairs": skipped + eval_skipped,
            "target_modules": targets,
            "step_log": steps,
            "pairs_scored_on": "eval" if eval_rows else "train",
            "accuracy_before": before,
            "last_checkpoint": str(runs.last_checkpoint(output_dir) or ""),
        }
        if stop.requested:
            return run.interrupted(metrics)
        metrics["accuracy_after"] = pair_accuracy(trainer.model, scored, tokenizer.pad_token_id)
        adapter_dir = output_dir / "adapter"
        trainer.model.save_pretrained(str(adapter_dir))  # LoRA weights and the score head (modules_to_save)
        tokenizer.save_pretrained(str(adapter_dir))
        return run.completed(metrics, adapter_dir, "reward_model", {"base": settings.base, "sft_run": sft["id"]})
