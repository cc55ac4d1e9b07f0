"""`cra train sft`: supervised fine-tuning of a LoRA adapter on recorded tool-calling conversations.

Data: the openai-format JSONL `cra dataset build` writes (`{"messages": [...], "tools": "<JSON>"}`),
train and eval splits. The run's directory (`$CRA_HOME/runs/sft-0001/`) holds `config.json`,
`checkpoints/checkpoint-N/` (resumable: optimizer, scheduler, RNG, data position), `adapter/` (the
best checkpoint by eval loss, loadable with PEFT) and `summary.json`.

Multi-GPU: `accelerate launch -m cra.cli train sft ...` (TRL's own distributed path; see docs/training.md).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from .. import chat, progress
from ..base_model import check_base
from ..dataset.files import newest_dataset, resolve_dataset
from ..errors import ConfigError, InputFormatError, NotFoundError
from . import loading, runs
from .config import SFTSettings
from .distributed import Launch
from .lifecycle import make_graceful_stop, write_summary

# -- data --------------------------------------------------------------------------------------------------


def _has_rows(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        return any(line.strip() for line in f)


def load_splits(train_path: Path, eval_path: Path | None):
    from datasets import load_dataset

    if not _has_rows(train_path):
        raise InputFormatError(f"{train_path} holds no examples: build a dataset with training examples")
    if eval_path and not _has_rows(eval_path):
        eval_path = None  # an empty eval split is the same as none
    files = {"train": str(train_path)}
    if eval_path:
        files["eval"] = str(eval_path)
    try:
        data = load_dataset("json", data_files=files)
    except Exception as exc:  # datasets raises several types for unreadable JSON
        raise InputFormatError(f"cannot read the dataset ({train_path}): {exc}") from exc
    if "messages" not in data["train"].column_names:
        raise InputFormatError(
            f"{train_path} has no 'messages' column: cra trains on openai-format conversations (`cra dataset build`)"
        )
    if len(data["train"]) == 0:
        raise InputFormatError(f"{train_path} holds no examples")
    keep = [c for c in ("messages", "tools") if c in data["train"].column_names]
    return data["train"].select_columns(keep), (data["eval"].select_columns(keep) if eval_path else None)


# -- callbacks ---------------------------------------------------------------------------------------------


class TokenCounter:
    """Wraps the data collator: counts real and padded tokens of training batches (tokens/s, padding waste)."""

    def __init__(self, collator, model):
        self.collator = collator
        self.model = model
        self.real = 0
        self.total = 0

    def __call__(self, features, *args, **kwargs):
        batch = self.collator(features, *args, **kwargs)
        if self.model.training:
            ids = batch["input_ids"]
            mask = batch.get("attention_mask")
            self.total += int(ids.numel())
            self.real += int(mask.sum()) if mask is not None else int(ids.numel())
        return batch


# -- training ----------------------------------------------------------------------------------------------


def _trl_config(settings: SFTSettings, output_dir: Path, has_eval: bool, packing: bool):
    from trl import SFTConfig

    return SFTConfig(
        **runs.trainer_args(settings, output_dir),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_eval_batch_size=settings.batch_size,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=settings.weight_decay,
        max_length=settings.max_length,
        packing=packing,
        # Without packing, batches of similar lengths keep padding low (see loading.use_packing).
        train_sampling_strategy="random" if packing else "group_by_length",
        assistant_only_loss=False,  # labels are already masked by cra (see _prepare)
        eval_strategy="steps" if has_eval else "no",
        eval_steps=settings.eval_steps,
        eval_on_start=has_eval,  # the starting eval loss makes "did it learn" visible in the summary
        save_steps=settings.eval_steps,
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        logging_first_step=True,
        data_seed=settings.seed,
        dataset_num_proc=None,
    )


def _prepare(dataset, tokenizer, family, settings: SFTSettings, split: str, stats: dict):
    """Render, tokenize and label every example; truncate to max_length; drop rows left without assistant tokens."""
    if dataset is None:
        return None
    total = len(dataset)

    def tokenize(example, index):
        try:
            return chat.tokenize_example(tokenizer, example, family, settings.assistant_only_loss)
        except InputFormatError as exc:
            raise InputFormatError(f"{split} example {index + 1}: {exc}") from exc

    # The fingerprint names what the result depends on (datasets cannot hash a closure over a tokenizer).
    key = (
        f"{dataset._fingerprint} {tokenizer.name_or_path} {len(tokenizer)} {family.name} {settings.assistant_only_loss}"
    )
    dataset = dataset.map(
        tokenize,
        with_indices=True,
        remove_columns=dataset.column_names,
        desc=f"Tokenizing {split}",
        new_fingerprint=hashlib.sha256((key + getattr(family, "template", "")).encode()).hexdigest()[:16],
    )
    limit = settings.max_length
    lengths = list(map(len, dataset["input_ids"]))
    stats[f"{split}_truncated"] = sum(1 for n in lengths if n > limit)
    stats[f"{split}_tokens_max"] = max(lengths, default=0)
    dataset = dataset.map(lambda ex: {"input_ids": ex["input_ids"][:limit], "labels": ex["labels"][:limit]})
    dataset = dataset.filter(lambda ex: any(label != -100 for label in ex["labels"]))
    stats[f"{split}_examples"] = len(dataset)
    stats[f"{split}_dropped"] = total - len(dataset)
    if len(dataset) == 0:
        raise ConfigError(
            f"no {split} example has an assistant token within --max-length {limit}: raise --max-length "
            "(the system prompt and tool schemas come first), or build the dataset for this length "
            f"(`cra dataset build --base BASE --max-tokens {limit}`)"
        )
    return dataset


def _loss_history(log_history: list[dict]) -> dict[str, Any]:
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    out: dict[str, Any] = {}
    if train:
        out["train_loss_first"], out["train_loss_last"] = train[0][1], train[-1][1]
    if evals:
        out["eval_loss_first"], out["eval_loss_last"] = evals[0][1], evals[-1][1]
        out["eval_loss_best"] = min(loss for _, loss in evals)
    out["train_loss_curve"] = train
    out["eval_loss_curve"] = evals
    return out


def _peak_gpu_memory_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def train_sft(
    settings: SFTSettings,
    db,
    *,
    parent: dict[str, Any] | None = None,
    callbacks: tuple = (),
    echo=progress.echo,
) -> dict[str, Any]:
    """Train, record the run, return its final `runs` row. Raises StageError on a failed run."""
    dataset, newest = settings.dataset, None
    if not dataset:
        newest = newest_dataset(db)
        if newest is None:
            raise NotFoundError(
                "no dataset: build one with `cra dataset build` (the newest is used when --dataset is not given), "
                "or pass --dataset DIR|FILE"
            )
        dataset = newest["name"]
        settings = settings.model_copy(update={"dataset": dataset})
    backend = loading.resolve_backend(settings.backend)
    check_base(settings.base)  # a hub id with no hub to reach fails now, not after retries
    loading.import_backend(backend)  # before datasets/trl/transformers/peft
    train_path, eval_path = resolve_dataset(db, dataset)
    resume_from = runs.last_checkpoint(parent["output_dir"]) if parent else None

    # Under accelerate launch every rank trains; rank 0 alone registers, finishes and writes the run.
    launch = Launch()
    echo = launch.on_main(echo)
    if newest is not None:
        echo(
            f"No --dataset given: using {newest['name']} (#{newest['id']}, built {newest['created_at']}), "
            "the newest dataset."
        )
    run = launch.start_run(
        db,
        settings.model_dump(),
        lambda config: runs.start_run(
            db,
            kind="sft",
            base_model=settings.base,
            dataset=settings.dataset,
            config=config,
            runs_dir=settings.runs_dir,
            parent_run=parent["id"] if parent else None,
        ),
    )
    run_id, output_dir = run["id"], Path(run["output_dir"])
    finish, record, summarize = (launch.on_main(fn) for fn in (runs.finish_run, runs.record_artifact, write_summary))
    echo(f"Run {run_id} (sft, backend {backend}) -> {output_dir}")
    if parent and resume_from:
        echo(f"Resuming run {parent['id']} from {resume_from}")
    threads_before = None
    started = time.time()
    try:
        with runs.recorded_end(db, run_id, "sft", output_dir, started=started, finish=finish):
            train_ds, eval_ds = load_splits(train_path, eval_path)
            if eval_ds is None:
                echo("No eval split: the last checkpoint is the result (no best-checkpoint selection).", err=True)
            threads_before = runs.set_cpu_threads(settings.cpu_threads)
            precision = loading.resolve_precision(settings.precision)
            loaded = loading.load_for_lora(settings, backend, precision)
            tokenizer = loaded.tokenizer
            family = chat.resolve_family(tokenizer, settings.chat_template)
            data_stats: dict[str, Any] = {}
            train_ds = _prepare(train_ds, tokenizer, family, settings, "train", data_stats)
            eval_ds = _prepare(eval_ds, tokenizer, family, settings, "eval", data_stats)
            if data_stats["train_truncated"]:
                echo(
                    f"{data_stats['train_truncated']} training examples are longer than "
                    f"--max-length {settings.max_length}."
                )
            packing = loading.use_packing(settings.packing, loaded.model, backend)
            args = _trl_config(settings, output_dir, eval_ds is not None, packing)

            from trl import SFTTrainer

            stop = make_graceful_stop()
            trainer = SFTTrainer(
                model=loaded.model,
                args=args,
                train_dataset=train_ds,
                eval_dataset=eval_ds,
                processing_class=tokenizer,
                callbacks=[stop, *callbacks],
            )
            counter = TokenCounter(trainer.data_collator, trainer.model)
            trainer.data_collator = counter
            result = stop.train(trainer, resume_from)
            seconds = result.metrics.get("train_runtime", time.time() - started)
            metrics: dict[str, Any] = {
                "steps": trainer.state.global_step,
                "epochs": trainer.state.epoch,
                "train_loss": result.training_loss,
                "tokens": launch.total(counter.real),  # every rank's batches
                "padded_tokens": launch.total(counter.total),
                "processes": launch.world_size,
                "train_seconds": seconds,
                "backend": backend,
                "chat_template": family.name,
                # TRL's chunked_nll (unsloth: its fused loss) applies the output layer only where a label is.
                "loss_type": getattr(trainer.args, "loss_type", None),
                "packing": packing,
                "attention": getattr(getattr(loaded.model, "config", None), "_attn_implementation", None),
                **data_stats,
                "target_modules": loaded.target_modules,
                "quantized_4bit": loaded.quantized,
                "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                **_loss_history(trainer.state.log_history),
            }
            padded = metrics["padded_tokens"]
            metrics["padding_fraction"] = 1 - metrics["tokens"] / padded if padded else 0.0
            metrics["tokens_per_second"] = metrics["tokens"] / seconds if seconds else None
            metrics["last_checkpoint"] = str(runs.last_checkpoint(output_dir) or "")
            metrics["peak_gpu_memory_mb"] = _peak_gpu_memory_mb()
            if stop.requested:
                metrics["wall_seconds"] = time.time() - started
                finish(db, run_id, "interrupted", metrics=metrics, error="stopped by Ctrl-C")
                echo(
                    f"Run {run_id} interrupted at step {metrics['steps']}; checkpoint in {metrics['last_checkpoint']}. "
                    f"Continue it with: cra train sft --resume {run_id}"
                )
                summarize(output_dir, metrics)
                return runs.get_run(db, run_id)
            adapter_dir = output_dir / "adapter"
            if trainer.is_fsdp_enabled:  # every rank hands rank 0 its shard: one whole adapter (PEFT's recipe)
                trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
            trainer.save_model(str(adapter_dir))  # the best checkpoint's weights when an eval split exists
            metrics["adapter"] = str(adapter_dir)
            metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
            metrics["best_eval_loss"] = trainer.state.best_metric
            metrics["wall_seconds"] = time.time() - started
            summarize(output_dir, metrics)
            record(
                db,
                run_id,
                "adapter",
                adapter_dir,
                {"best_checkpoint": metrics["best_checkpoint"], "base": settings.base},
            )
            finish(db, run_id, "completed", metrics=metrics)
            echo(summary_text(runs.get_run(db, run_id)))
            return runs.get_run(db, run_id)
    finally:
        if threads_before:  # the thread count is process-wide: leave it as it was
            import torch

            torch.set_num_threads(threads_before)


def _fmt(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def summary_text(run: dict[str, Any]) -> str:
    m = run.get("metrics") or {}
    lines = [
        f"Run {run['id']} {run['status']}: {m.get('steps', '-')} steps in {_fmt(m.get('train_seconds'), '.1f')} s",
        f"  train loss   {_fmt(m.get('train_loss_first'))} -> {_fmt(m.get('train_loss_last'))}",
    ]
    if m.get("eval_loss_first") is not None:
        lines.append(
            f"  eval loss    {_fmt(m.get('eval_loss_first'))} -> best {_fmt(m.get('eval_loss_best'))}"
            f" ({m.get('best_checkpoint') or 'final'})"
        )
    lines.append(
        f"  throughput   {_fmt(m.get('tokens_per_second'), '.0f')} tokens/s"
        f" ({m.get('tokens', 0)} tokens, padding {_fmt(100 * m.get('padding_fraction', 0), '.1f')}%)"
    )
    if m.get("adapter"):
        lines.append(f"  adapter      {m['adapter']}")
    return "\n".join(lines)
