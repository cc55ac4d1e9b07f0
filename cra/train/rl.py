"""What the RL stages share: their settings, the SFT run they start from, the policy, the prompts.

Prompts are real contexts from the SFT dataset: each conversation cut before one of Claude's
assistant messages, rendered with the chat template (generation prompt appended); the model writes
the next assistant message and the behavioral reward (cra/behavioral_reward) compares it with what Claude did
there. Nothing is executed. Heavy imports stay inside functions.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError, NotFoundError, StageError
from . import runs


def run_ref(value: str) -> str:
    """A run reference in settings: a run id or 'last'."""
    value = str(value).strip()
    if value != "last" and not value.isdigit():
        raise ValueError("give a run id or 'last'")
    return value


class RLSettings(BaseModel):
    """Fields every RL stage has (`cra train grpo`, `ppo`, `reward`); defaults visible in --help."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    sft_run: str = Field("last", description="SFT run to start from: a run id, or last (the newest completed sft run).")
    base: str | None = Field(None, description="Base model (none: the SFT run's base).")
    dataset: str | None = Field(None, description="Dataset of conversations (none: the SFT run's dataset).")
    load_in_4bit: bool = Field(True, description="Load the base in 4-bit NF4 through bitsandbytes (QLoRA).")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate.")
    max_steps: int = Field(100, ge=1, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Sequences per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "constant", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps spent warming up.")
    max_prompt_length: int = Field(2048, ge=16, description="Contexts longer than this (tokens) are skipped.")
    max_prompts: int = Field(0, ge=0, description="Use at most this many contexts (0: all).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 where the GPU supports it, else fp16; fp32 on CPU."
    )
    optim: str = Field(
        "auto", description="Optimizer: auto = 8-bit AdamW on CUDA, AdamW on CPU; or a transformers name."
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", description="Trade compute for memory: auto = on with CUDA, off on CPU."
    )
    chat_template: str = Field("auto", description="auto: the SFT adapter's (or model's) template, or a Jinja file.")
    save_steps: int = Field(50, ge=1, description="Save a resumable checkpoint every N steps.")
    save_total_limit: int = Field(3, ge=1, description="Checkpoints kept.")
    logging_steps: int = Field(1, ge=1, description="Log rewards and KL every N steps.")
    eval_prompts: int = Field(
        16, ge=0, description="Training contexts scored before and after training, to show the change (0: skip)."
    )
    seed: int = Field(42, description="Random seed.")
    cpu_threads: int = Field(0, ge=0, description="Torch CPU threads (0: torch's default).")
    runs_dir: str | None = Field(None, description="Where run directories go (none: $CRA_HOME/runs).")

    _run_ref = field_validator("sft_run")(staticmethod(run_ref))


# -- the SFT run -------------------------------------------------------------------------------------------


def sft_parent(db, ref: str) -> dict[str, Any]:
    """The completed SFT run an RL stage starts from, with its adapter directory checked."""
    if ref == "last":
        rows = list(
            db.query("SELECT id FROM runs WHERE kind = 'sft' AND status = 'completed' ORDER BY id DESC LIMIT 1")
        )
        if not rows:
            raise NotFoundError(
                "no completed SFT run to start from: train one with `cra train sft` (RL starts from its adapter)"
            )
        run = runs.get_run(db, rows[0]["id"])
    else:
        run = runs.get_run(db, int(ref))
        if run["kind"] != "sft":
            raise ConfigError(f"run {run['id']} is a {run['kind']} run: RL starts from an sft run")
        if run["status"] != "completed":
            raise ConfigError(
                f"sft run {run['id']} is {run['status']}, not completed: "
                f"finish it first (cra train sft --resume {run['id']})"
            )
    adapter = (run.get("metrics") or {}).get("adapter")
    if not adapter or not (Path(adapter) / "adapter_config.json").is_file():
        raise NotFoundError(f"sft run {run['id']} has no adapter on disk ({adapter}): train a new one")
    return run


def fill_from_parent(settings, parent: dict[str, Any]):
    """Base and dataset default to the SFT run's."""
    if settings.base is None:
        settings.base = parent["base_model"]
    if settings.dataset is None:
        settings.dataset = parent["dataset"]
    if not settings.dataset:
        raise ConfigError("no dataset: pass --dataset (the SFT run recorded none)")
    return settings


# -- models ------------------------------------------------------------------------------------------------


def load_tokenizer(settings, adapter_dir: str | None):
    """The tokenizer the SFT run trained with (saved beside its adapter), else the base's."""
    from transformers import AutoTokenizer

    from .. import chat
    from . import loading

    source = adapter_dir if adapter_dir and (Path(adapter_dir) / "tokenizer_config.json").is_file() else settings.base
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load a tokenizer from {source!r}: {exc}") from exc
    loading._pad_token(tokenizer)
    chat.resolve_family(tokenizer, settings.chat_template)  # installs a template file or cra's ChatML
    return tokenizer


def load_causal_lm(settings, precision, *, trainable: bool = True):
    """The base causal LM (4-bit NF4 when asked), ready for adapter training."""
    from transformers import AutoModelForCausalLM

    from . import distributed, loading

    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype}
    if settings.load_in_4bit:
        kwargs.update(loading.quantization_kwargs(precision))
    try:
        model = AutoModelForCausalLM.from_pretrained(settings.base, **kwargs)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load model {settings.base!r}: {exc}") from exc
    if settings.load_in_4bit and trainable and not distributed.shards_parameters():
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=loading.gradient_checkpointing(settings.gradient_checkpointing)
        )
    return model


def load_policy(settings, precision, adapter_dir: str, *, trainable: bool = True):
    """Base + the SFT adapter; with `trainable`, the adapter itself is what RL trains (so the result is
    an adapter of the same shape, for the same base, that export and eval take as they take SFT's)."""
    from peft import PeftModel

    model = load_causal_lm(settings, precision, trainable=trainable)
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)


def save_adapter(model, tokenizer, out_dir: Path) -> Path:
    """Only the trained adapter ("default"), with the tokenizer (its chat template) beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), selected_adapters=["default"])
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


# -- prompts -----------------------------------------------------------------------------------------------


def build_prompts(settings, db, tokenizer) -> tuple[list[dict], dict[str, int]]:
    """[{prompt, context}] from the dataset's train split: one per assistant message that fits."""
    from .. import chat
    from ..behavioral_reward import contexts_from_example
    from ..dataset.files import resolve_dataset

    family = chat.resolve_family(tokenizer, settings.chat_template)
    train_path, _ = resolve_dataset(db, settings.dataset)
    rows, stats = [], {"contexts": 0, "too_long": 0}
    with open(train_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            example = json.loads(line)
            for ctx, _ in contexts_from_example(example):
                stats["contexts"] += 1
                text = chat.render_prompt(ctx.messages, example.get("tools"), family)
                if len(tokenizer(text, add_special_tokens=False)["input_ids"]) > settings.max_prompt_length:
                    stats["too_long"] += 1
                    continue
                rows.append({"prompt": text, "context": json.dumps(ctx.to_json(), ensure_ascii=False)})
                if settings.max_prompts and len(rows) >= settings.max_prompts:
                    stats["prompts"] = len(rows)
                    return rows, stats
    stats["prompts"] = len(rows)
    if not rows:
        raise StageError(
            f"no usable context in {train_path}: every assistant message's context is longer than "
            f"--max-prompt-length {settings.max_prompt_length} tokens (or the dataset has no assistant messages)"
        )
    return rows, stats


def decode_completion(tokenizer, ids) -> str:
    """Generated ids as text with tool-call markers kept (they may be special tokens), end/pad tokens dropped."""
    text = tokenizer.decode(list(ids), skip_special_tokens=False)
    for token in {tokenizer.eos_token, tokenizer.pad_token}:
        if token:
            text = text.split(token)[0] if token == tokenizer.eos_token else text.replace(token, "")
    return text.strip()


def mean_reward(
    model,
    tokenizer,
    rows: list[dict],
    scorer,
    max_new_tokens: int,
    *,
    samples: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
) -> dict:
    """The policy's expected behavioral reward on `rows`: `samples` sampled completions per context
    (at the training temperature, seeded, so two adapters are compared on equal terms), scored;
    mean total and mean of each component. With samples=0, one greedy completion per context."""
    import torch

    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    totals: list[float] = []
    per: dict[str, list[float]] = {}
    sampling = samples > 0
    torch.manual_seed(seed)
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            enc = tokenizer([r["prompt"] for r in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            n = samples if sampling else 1
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=sampling,
                    num_return_sequences=n,
                    temperature=temperature if sampling else None,
                    top_k=0 if sampling else None,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            for j, ids in enumerate(out[:, enc["input_ids"].shape[1] :]):
                s = scorer.score(chunk[j // n]["context"], decode_completion(tokenizer, ids))
                totals.append(s.total)
                for name, comp in s.components.items():
                    per.setdefault(name, []).append(comp.score)
    finally:
        tokenizer.padding_side = padding_side
        if was_training:
            model.train()
    return {
        "mean": statistics.fmean(totals) if totals else None,
        "n": len(totals),
        "contexts": len(rows),
        "sampled": sampling,
        "components": {k: statistics.fmean(v) for k, v in per.items()},
    }


def step_log(log_history: list[dict], keys: dict[str, str]) -> list[dict]:
    """Per-step statistics from a Trainer's log history, renamed by `keys` (trainer name -> ours)."""
    out = []
    for entry in log_history:
        if "step" not in entry or not any(k in entry for k in keys):
            continue
        row = {"step": entry["step"]}
        for theirs, ours in keys.items():
            if theirs in entry:
                row[ours] = entry[theirs]
        out.append(row)
    return out


def _fmt(value, spec=".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_text(run: dict[str, Any]) -> str:
    """An RL run in a few lines: rewards over training, KL, the before/after check, the adapter."""
    m = run.get("metrics") or {}
    lines = [
        f"Run {run['id']} ({run['kind']}) {run['status']}: {m.get('steps', '-')} steps in "
        f"{_fmt(m.get('train_seconds'), '.1f')} s (from sft run {m.get('sft_run', '-')})"
    ]
    if m.get("reward_first") is not None:
        lines.append(f"  reward       {_fmt(m.get('reward_first'))} -> {_fmt(m.get('reward_last'))} (batch means)")
    if m.get("kl_last") is not None:
        lines.append(f"  kl           {_fmt(m.get('kl_last'), '.4f')} (last step)")
    before, after = m.get("reward_before") or {}, m.get("reward_after") or {}
    if "ended" in before and "ended" in after:  # ppo
        for key, what in (("reward_model", "reward-model score"), ("behavioral", "behavioral reward")):
            if before.get(key) is not None and after.get(key) is not None:
                lines.append(
                    f"  {what} of {after['n']} sampled responses on {after.get('contexts')} training contexts: "
                    f"{before[key]:.3f} -> {after[key]:.3f}"
                )
        if before.get("reward") is not None and after.get("reward") is not None:
            lines.append(
                f"  less the missing-EOS penalty (what PPO maximises): {before['reward']:.3f} -> "
                f"{after['reward']:.3f}; ended {before['ended']:.0%} -> {after['ended']:.0%}"
            )
    if before.get("mean") is not None and after.get("mean") is not None:
        how = f"{after['n']} sampled completions" if after.get("sampled") else f"{after['n']} greedy completions"
        lines.append(
            f"  mean reward of the starting -> trained adapter ({how}, {after.get('contexts', after['n'])} "
            f"training contexts): {before['mean']:.3f} -> {after['mean']:.3f}"
        )
    acc_before, acc_after = m.get("accuracy_before") or {}, m.get("accuracy_after") or {}
    if acc_after:  # reward model
        lines.append(
            f"  pair accuracy ({m.get('pairs_scored_on')}, {acc_after['n']} pairs) "
            f"{_fmt(acc_before.get('accuracy'))} -> {_fmt(acc_after['accuracy'])}, "
            f"margin {_fmt(acc_before.get('margin'))} -> {_fmt(acc_after['margin'])}"
        )
    if m.get("adapter"):
        lines.append(f"  adapter      {m['adapter']}")
    return "\n".join(lines)
