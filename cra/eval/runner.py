"""`cra eval RUN`: replay held-out steps through the run's model and its base, score, store, report.

Every evaluation of one `cra eval` sees exactly the same steps (same contexts, same tools), and a
model already evaluated on those steps with the same settings is not generated again: its stored
result stands (`--fresh` regenerates).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import progress
from ..errors import ConfigError, NotFoundError, StageError
from . import metrics, store
from .backends import GenerationSettings, gguf_files
from .steps import Step, load_steps, steps_hash

RL_KINDS = ("grpo", "ppo", "rl", "dpo")


@dataclass
class Subject:
    label: str  # run, parent, base
    model_run_id: int | None
    base_model: str
    adapter: str | None  # PEFT adapter directory (hf)


def find_run(db, ref: str) -> dict[str, Any]:
    """A run by id, or 'last': the newest completed run that has an adapter."""
    from ..train import runs

    if ref == "last":
        run = runs.newest_with_adapter(db)
        if run is None:
            raise NotFoundError("no completed run with an adapter: train one with `cra train sft`")
        return run
    if not str(ref).isdigit():
        raise ConfigError(f"RUN is a run id or 'last', not {ref!r} (`cra runs` lists them)")
    return runs.get_run(db, int(ref))


def subjects_for(db, run: dict[str, Any], base_only: bool) -> list[Subject]:
    """The run's model, its parent's (RL runs), and the bare base: what the report sets side by side."""
    from ..train import runs

    out = []
    if not base_only:
        adapter = runs.adapter_dir(db, run)
        if adapter is None:
            raise NotFoundError(
                f"run {run['id']} ({run['status']}) has no adapter in {run['output_dir']}: evaluate a completed run, "
                "or pass --base-only to evaluate its base model alone"
            )
        out.append(Subject("run", run["id"], run["base_model"], adapter))
        if run.get("parent_run") and run["kind"] in RL_KINDS:
            parent = runs.get_run(db, run["parent_run"])
            parent_adapter = runs.adapter_dir(db, parent)
            if parent_adapter:
                out.append(Subject("parent", parent["id"], parent["base_model"], parent_adapter))
    out.append(Subject("base", None, run["base_model"], None))
    return out


def resolve_split(db, run: dict[str, Any], dataset: str | None, split: str) -> tuple[str, Path]:
    from ..dataset.files import resolve_dataset

    ref = dataset or run.get("dataset")
    if not ref:
        raise ConfigError(f"run {run['id']} records no dataset: pass --dataset NAME|PATH")
    train, held_out = resolve_dataset(db, ref)
    if split == "train":
        return ref, train
    if held_out is None:
        raise NotFoundError(
            f"dataset {ref} has no eval split to hold out: rebuild it with `cra dataset build --eval-fraction 0.1` "
            "(or pass --split train to measure fit on the training data)"
        )
    return ref, held_out


def model_spec(db, kind: str, run: dict[str, Any], subject: Subject) -> tuple[dict[str, Any], str | None]:
    """What a subject loads with this backend (nothing loaded yet), and the label stored as `evals.adapter`."""
    if kind == "hf":
        return {"base": subject.base_model, "adapter": subject.adapter}, subject.adapter
    owner = subject.model_run_id or run["id"]
    files = gguf_files(db, owner)
    if subject.label == "base":
        if "base" not in files:
            raise NotFoundError(
                "--backend llama.cpp needs the base model as GGUF to compare with: "
                f"`cra export gguf {owner} --adapter` "
                "writes it beside the adapter"
            )
        return {"model_path": str(files["base"]), "lora_path": None}, None
    if "merged" in files:
        return {"model_path": str(files["merged"]), "lora_path": None}, str(files["merged"])
    if "adapter" in files and "base" in files:
        return {
            "model_path": str(files["base"]),
            "lora_path": str(files["adapter"]),
        }, f"{files['base']}+{files['adapter']}"
    raise NotFoundError(
        f"run {owner} has no exported GGUF to evaluate with llama.cpp: run `cra export gguf {owner}` (merged) "
        f"or `cra export gguf {owner} --adapter` (adapter and base)"
    )


def load_backend(kind: str, spec: dict[str, Any], settings: GenerationSettings, tokenizer_path: str):
    from .backends import HFBackend, LlamaCppBackend

    if kind == "hf":
        return HFBackend(spec["base"], spec["adapter"], tokenizer_path, settings)
    return LlamaCppBackend(spec["model_path"], spec["lora_path"], tokenizer_path, settings)


def reward_function() -> Callable:
    """The behavioral reward (cra/behavioral_reward, the one RL trains on) for a step: its total and every component."""
    from ..behavioral_reward import Context, score_text

    def components(step: Step, prediction: str) -> dict[str, float]:
        score = score_text(Context.build(step.context, step.tools, step.target), prediction)
        return {"total": score.total, **{name: c.score for name, c in score.components.items()}}

    return components


def evaluate_run(
    db,
    run_ref: str,
    *,
    base_only: bool = False,
    split: str = "eval",
    limit: int | None = None,
    backend: str = "hf",
    dataset: str | None = None,
    settings: GenerationSettings | None = None,
    fresh: bool = False,
    echo=progress.echo,
) -> list[dict[str, Any]]:
    """Evaluate a run (and its base, and its parent for RL runs); return the stored evals rows."""
    run = find_run(db, run_ref)
    if run["kind"] == "reward":
        raise ConfigError(
            f"run {run['id']} is a reward model: it scores actions, it does not write them. Evaluate its policy "
            "(an sft, grpo or ppo run) instead"
        )
    settings = settings or GenerationSettings()
    settings.chat_template = (run.get("config") or {}).get("chat_template", settings.chat_template)
    subjects = subjects_for(db, run, base_only)
    dataset_ref, path = resolve_split(db, run, dataset, split)
    steps, skipped = load_steps(path, limit)
    if not steps:
        raise StageError(
            f"no real steps to evaluate in {path} ({skipped['synthetic_examples']} synthetic examples skipped): "
            "record and build more sessions (`cra dataset build`)"
        )
    digest = steps_hash(steps)
    store.write_steps(steps, digest)
    # Every model sees the prompt rendered by the run's own tokenizer (the adapter directory keeps the
    # template it trained with), so base and run differ only in weights.
    own = next((s.adapter for s in subjects if s.label == "run"), None)
    tokenizer_path = own if own and (Path(own) / "tokenizer_config.json").is_file() else run["base_model"]
    echo(f"Evaluating run {run['id']} on {len(steps)} {split} steps of {dataset_ref} ({backend}).", err=True)
    rows = []
    for subject in subjects:
        rows.append(
            _evaluate_subject(
                db,
                run,
                subject,
                steps,
                digest,
                skipped,
                backend,
                dataset_ref,
                split,
                limit,
                settings,
                tokenizer_path,
                fresh,
                echo,
            )
        )
    return rows


def _evaluate_subject(
    db,
    run,
    subject,
    steps: list[Step],
    digest,
    skipped,
    backend,
    dataset_ref,
    split,
    limit,
    settings,
    tokenizer_path,
    fresh,
    echo,
) -> dict[str, Any]:
    spec, adapter_label = model_spec(db, backend, run, subject)
    if not fresh:
        cached = store.find_cached(
            db,
            base_model=subject.base_model,
            adapter=adapter_label,
            backend=backend,
            steps_hash=digest,
            settings=settings.as_dict(),
        )
        if cached:
            echo(f"  {subject.label}: eval {cached['id']} already measured these steps (--fresh redoes it)", err=True)
            return _copy_for(db, cached, run, subject)
    started = time.time()
    model = load_backend(backend, spec, settings, tokenizer_path)
    echo(f"  {subject.label}: generating {len(steps)} next actions...", err=True)
    predictions = model.generate(steps)
    del model
    gc.collect()
    reward_fn = reward_function()
    scores = [metrics.score_step(s, p, reward_fn) for s, p in zip(steps, predictions)]
    report = metrics.aggregate(scores)
    report["skipped"] = skipped
    row = {
        "run_id": run["id"],
        "subject": subject.label,
        "model_run_id": subject.model_run_id,
        "base_model": subject.base_model,
        "adapter": adapter_label,
        "backend": backend,
        "dataset": dataset_ref,
        "split": split,
        "step_limit": limit,
        "steps_hash": digest,
        "step_count": len(steps),
        "settings": settings.as_dict(),
        "metrics": report,
        "seconds": round(time.time() - started, 3),
    }
    per_step = [{"prediction": p, **s.as_dict()} for p, s in zip(predictions, scores)]
    eval_id = store.insert_eval(db, row, per_step)
    return store.get_eval(db, eval_id)


def _copy_for(db, cached: dict[str, Any], run, subject: Subject) -> dict[str, Any]:
    """A cached result recorded again under this run (the same numbers, the same predictions file)."""
    if cached["run_id"] == run["id"] and cached["subject"] == subject.label:
        return cached
    row = {
        k: cached[k]
        for k in (
            "base_model",
            "adapter",
            "backend",
            "dataset",
            "split",
            "step_limit",
            "steps_hash",
            "step_count",
            "settings",
            "metrics",
            "predictions",
            "seconds",
        )
    }
    row.update(run_id=run["id"], subject=subject.label, model_run_id=subject.model_run_id)
    row["settings"] = json.dumps(row["settings"], sort_keys=True)
    row["metrics"] = json.dumps(row["metrics"], sort_keys=True)
    row["created_at"] = store.now_iso()
    with db.conn:
        cursor = db.conn.execute(
            f"INSERT INTO evals ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
    return store.get_eval(db, cursor.lastrowid)
