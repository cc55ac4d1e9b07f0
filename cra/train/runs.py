"""The run registry: every training run is a `runs` row plus its own versioned directory.

Status moves running -> completed | failed | interrupted. A run left `running` by a killed process is
reported as such: `cra runs` shows it, and `--resume` can continue it from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import sqlite_utils

from ..db import cra_home
from ..errors import ConfigError, CraError, NotFoundError, StageError

STATUSES = ("running", "completed", "failed", "interrupted")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def default_runs_dir() -> Path:
    return Path(cra_home()) / "runs"


def start_run(
    db: sqlite_utils.Database,
    *,
    kind: str,
    base_model: str,
    dataset: str | None,
    config: dict[str, Any],
    runs_dir: str | os.PathLike | None = None,
    parent_run: int | None = None,
) -> dict[str, Any]:
    """Insert a `running` row and create its directory `<runs_dir>/<kind>-<id:04d>` (ids never repeat)."""
    root = Path(runs_dir) if runs_dir else default_runs_dir()
    with db.conn:
        cursor = db.conn.execute(
            "INSERT INTO runs (kind, base_model, dataset, config, status, started_at, output_dir, parent_run) "
            "VALUES (?, ?, ?, ?, 'running', ?, '', ?)",
            (kind, base_model, dataset, json.dumps(config, sort_keys=True), now_iso(), parent_run),
        )
        run_id = cursor.lastrowid
        assert run_id is not None  # an INSERT's row
        output_dir = (root / f"{kind}-{run_id:04d}").resolve()
        db.conn.execute("UPDATE runs SET output_dir = ? WHERE id = ?", (str(output_dir), run_id))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return get_run(db, run_id)


def launch_key() -> dict[str, Any] | None:
    """Identifies one `accelerate launch`/torchrun launch (all its ranks share it), None when not distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return {
        "world_size": int(os.environ["WORLD_SIZE"]),
        "master": f"{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}",
        "run": os.environ.get("TORCHELASTIC_RUN_ID", ""),
    }


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_launch_run(db: sqlite_utils.Database, kind: str, config: dict[str, Any], timeout: float = 300) -> dict:
    """On ranks other than 0: the run rank 0 registered for this launch (same config, same launch key).

    Only rank 0 writes the registry; the others need its output directory. Single node only: the
    database is a local file.
    """
    wanted = json.dumps(config, sort_keys=True)
    deadline = time.time() + timeout
    while True:
        rows = list(
            db.query("SELECT id FROM runs WHERE kind = ? AND config = ? ORDER BY id DESC LIMIT 1", [kind, wanted])
        )
        if rows:
            return get_run(db, rows[0]["id"])
        if time.time() > deadline:
            raise StageError(
                f"rank {os.environ.get('RANK')} found no run registered by rank 0 within {timeout:.0f} s: "
                "multi-GPU runs need every process on one machine, sharing CRA_HOME"
            )
        time.sleep(0.5)


def finish_run(
    db: sqlite_utils.Database,
    run_id: int,
    status: str,
    *,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    with db.conn:
        db.conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, metrics = ?, error = ? WHERE id = ?",
            (status, now_iso(), json.dumps(metrics, sort_keys=True) if metrics is not None else None, error, run_id),
        )


class recorded_end:
    """Records a run that ends by an exception, then says so as a StageError.

    A second Ctrl-C (KeyboardInterrupt): `interrupted`, with the last checkpoint and the resume
    command (`resumable`, else just "aborted"); anything else: `failed`, with the error and its
    traceback. `finish` is what writes the row (a no-op on ranks other than 0).
    """

    def __init__(
        self,
        db,
        run_id: int,
        kind: str,
        output_dir: Path,
        *,
        started: float | None = None,
        resumable: bool = True,
        finish=finish_run,
    ):
        self.db, self.run_id, self.kind, self.output_dir = db, run_id, kind, output_dir
        self.started, self.resumable, self.finish = started, resumable, finish

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        db, run_id = self.db, self.run_id
        if exc_type is None:
            return False
        if issubclass(exc_type, KeyboardInterrupt):
            if not self.resumable:
                self.finish(db, run_id, "interrupted", error="aborted by a second Ctrl-C")
                raise StageError(f"run {run_id} aborted") from None
            checkpoint = last_checkpoint(self.output_dir)
            metrics: dict[str, Any] = {"last_checkpoint": str(checkpoint or "")}
            if self.started is not None:
                metrics["wall_seconds"] = time.time() - self.started
            self.finish(db, run_id, "interrupted", metrics=metrics, error="aborted by a second Ctrl-C")
            hint = (
                f"cra train {self.kind} --resume {run_id}"
                if checkpoint
                else "no checkpoint was saved yet: start a new run"
            )
            raise StageError(f"run {run_id} aborted; {hint}") from None
        if issubclass(exc_type, Exception):
            error = f"{exc_type.__name__}: {exc}"
            trace = "".join(traceback.format_exception(exc_type, exc, tb, limit=8))
            self.finish(db, run_id, "failed", error=error + "\n" + trace)
            message = str(exc) if isinstance(exc, CraError) else error
            raise StageError(f"run {run_id} failed: {message} (recorded: cra runs show {run_id})") from exc
        return False


def set_cpu_threads(threads: int) -> int | None:
    """Torch's CPU thread count set to `threads` (0: left alone); the count before, to restore, or None."""
    if not threads:
        return None
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


def trainer_args(settings, output_dir: Path) -> dict[str, Any]:
    """The TrainingArguments fields every trainer sets alike from its settings; checkpoints go in the run's
    `checkpoints/`."""
    from . import loading

    precision = loading.resolve_precision(settings.precision)
    return dict(
        output_dir=str(Path(output_dir) / "checkpoints"),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        optim=loading.resolve_optim(settings.optim, settings.load_in_4bit),
        bf16=precision.bf16,
        fp16=precision.fp16,
        use_cpu=not loading.cuda_available(),
        gradient_checkpointing=loading.gradient_checkpointing(settings.gradient_checkpointing),
        save_strategy="steps",
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        report_to="none",
        seed=settings.seed,
    )


def record_artifact(
    db: sqlite_utils.Database, run_id: int, kind: str, path: str | os.PathLike, meta: dict[str, Any] | None = None
) -> int:
    """An output file or directory of a run (adapter, checkpoint, gguf, ...), with its size in bytes."""
    path = Path(path).resolve()
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        size = path.stat().st_size
    with db.conn:
        cursor = db.conn.execute(
            "INSERT INTO artifacts (run_id, kind, path, bytes, created_at, meta) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, kind, str(path), size, now_iso(), json.dumps(meta, sort_keys=True) if meta else None),
        )
    assert cursor.lastrowid is not None  # an INSERT's row
    return cursor.lastrowid


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for key in ("config", "metrics", "meta"):
        if row.get(key):
            row[key] = json.loads(row[key])
    return row


def get_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFoundError(f"no run {run_id}: `cra runs` lists the recorded runs")
    return _decode(rows[0])


def list_runs(db: sqlite_utils.Database, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id DESC"
    params: list[Any] = [kind] if kind else []
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    return [_decode(r) for r in db.query(sql, params)]


def run_artifacts(db: sqlite_utils.Database, run_id: int) -> list[dict[str, Any]]:
    return [_decode(r) for r in db.query("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", [run_id])]


def adapter_dir(db: sqlite_utils.Database, run: dict[str, Any]) -> str | None:
    """The run's PEFT adapter directory: the newest recorded `adapter` artifact still on disk, else
    <output_dir>/adapter; None when neither holds an adapter (a failed or unfinished run)."""
    rows = db.query("SELECT path FROM artifacts WHERE run_id = ? AND kind = 'adapter' ORDER BY id DESC", [run["id"]])
    candidates = [r["path"] for r in rows] + [str(Path(run["output_dir"]) / "adapter")]
    return next((c for c in candidates if (Path(c) / "adapter_config.json").is_file()), None)


def newest_with_adapter(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """RUN 'last' for eval, export and auto: the newest completed run whose adapter is on disk."""
    for row in db.query("SELECT id FROM runs WHERE status = 'completed' ORDER BY id DESC"):
        run = get_run(db, row["id"])
        if adapter_dir(db, run) is not None:
            return run
    return None


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest `checkpoint-N` directory of a run (Trainer's layout), or None."""
    root = Path(output_dir) / "checkpoints"
    best: tuple[int, Path] | None = None
    for child in root.glob("checkpoint-*") if root.is_dir() else ():
        suffix = child.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (child / "trainer_state.json").exists():
            if best is None or int(suffix) > best[0]:
                best = (int(suffix), child)
    return best[1] if best else None


def resumable_run(db: sqlite_utils.Database, kind: str, ref: str) -> dict[str, Any]:
    """The run `--resume` continues: an id, or 'last' for the newest unfinished run of this kind."""
    if ref == "last":
        rows = list(
            db.query(
                "SELECT id FROM runs WHERE kind = ? AND status IN ('interrupted', 'failed', 'running') "
                "AND id NOT IN (SELECT parent_run FROM runs WHERE parent_run IS NOT NULL) "  # already continued
                "ORDER BY id DESC LIMIT 1",
                [kind],
            )
        )
        if not rows:
            raise NotFoundError(f"no unfinished {kind} run to resume: `cra runs` lists the runs")
        run = get_run(db, rows[0]["id"])
    else:
        if not ref.isdigit():
            raise ConfigError(f"--resume takes a run id or 'last', not {ref!r}")
        run = get_run(db, int(ref))
        if run["kind"] != kind:
            raise ConfigError(f"run {run['id']} is a {run['kind']} run, not {kind}")
    if last_checkpoint(run["output_dir"]) is None:
        raise NotFoundError(
            f"run {run['id']} has no checkpoint to resume from (in {run['output_dir']}/checkpoints): start a new run"
        )
    return run
