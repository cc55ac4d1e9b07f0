"""One learning cycle: sync -> signals -> dataset -> sft -> (rl) -> export -> eval -> promote.

Each cycle is a `runs` row of kind `cycle` (directory `runs/cycle-NNNN/`) and a `cycles` row. Its
stages are recorded in `cycles.stages` as they go; the training stages are ordinary `sft`/`grpo`
runs whose directories sit inside the cycle's, and every other stage is a child run
(`parent_run` = the cycle's run, kind `cycle-<stage>`), so `cra runs` shows the whole history.

A failed stage fails the cycle: its error is recorded, nothing is promoted, and the next attempt
(after backoff, readiness.py) keeps the cycle's number and reuses the stages the failed attempt
finished (dataset, sft, rl, export) when their settings are unchanged and their files still exist.
Promotion is the last step and a single transaction (store.promote): a crash anywhere before it
leaves the previous model promoted.

Ctrl-C or SIGTERM (systemd stopping `cra auto run`) mid-cycle records it as `stopped`: not a failure
(no backoff), the next check runs it again and reuses what it finished, and the process exits.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import progress
from ..db import cra_home
from ..errors import CraError
from . import store
from .config import AutoSettings
from .lock import CycleLock, CycleRunning
from .readiness import Readiness, readiness

STAGES = ("sync", "signals", "dataset", "sft", "rl", "export", "eval", "promote")
REUSABLE = ("dataset", "sft", "rl", "export")  # costly, and valid as long as their settings are unchanged
TRAINING = ("sft", "rl")  # stages that are runs of their own


class StageError(Exception):
    pass


class CycleStopped(BaseException):
    """The process was asked to stop mid-cycle (SIGTERM, or Ctrl-C during training). A BaseException,
    so that the trainers' error handling lets it through to the cycle, which records it."""


@contextmanager
def stop_on_sigterm():
    """While a command runs: SIGTERM raises CycleStopped in the main thread (by default it would kill
    the process mid-cycle, leaving the cycle to be found crashed and retried only after a backoff)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise CycleStopped("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def metric_value(report: dict[str, Any], key: str) -> float | None:
    """A number from an eval report by dotted key: a mean's `mean`, a proportion's `rate`."""
    value: Any = report
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise StageError(f"promote_metric {key!r} is not in the eval report (see docs/eval.md for its keys)")
        value = value[part]
    if isinstance(value, dict):
        value = value.get("mean", value.get("rate"))
    return float(value) if isinstance(value, (int, float)) else None


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, CycleStopped):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "stopped by Ctrl-C"
    if isinstance(exc, CraError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Cycle:
    """Runs the stages of one cycle (the lock is held by the caller)."""

    def __init__(self, db, settings: AutoSettings, ready: Readiness, trigger: str, echo: Callable = progress.echo):
        from ..train import runs

        self.db, self.settings, self.ready, self.echo = db, settings, ready, echo
        self.number = ready.number
        previous = store.failures_since_completed(db, stopped=True)
        self.attempt = len(previous) + 1
        self.previous = previous[-1] if previous else None
        self.run = runs.start_run(
            db,
            kind="cycle",
            base_model=settings.base,
            dataset=None,
            config={"number": self.number, "attempt": self.attempt, "trigger": trigger, **settings.model_dump()},
        )
        self.dir = Path(self.run["output_dir"])
        self.stages: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self.id = store.insert_cycle(
            db,
            number=self.number,
            attempt=self.attempt,
            run_id=self.run["id"],
            status="running",
            trigger=trigger,
            qualifying_turns=ready.qualifying,
            new_turns=ready.new,
            with_rl=int(ready.with_rl),
            stages=[],
        )

    # -- the plan ----------------------------------------------------------------------------------------

    def plan(self) -> list[str]:
        skip = set()
        if not self.ready.with_rl:
            skip.add("rl")
        if not self.settings.export:
            skip.add("export")
        return [s for s in STAGES if s not in skip]

    def fingerprints(self) -> dict[str, str]:
        s = self.settings
        data = _fingerprint([s.filters, s.dataset])
        sft = _fingerprint([data, s.base, s.sft])
        rl = _fingerprint([sft, s.grpo])
        return {
            "dataset": data,
            "sft": sft,
            "rl": rl,
            "export": _fingerprint([rl, s.export_outtype, self.ready.with_rl]),
        }

    def reusable(self) -> dict[str, dict[str, Any]]:
        """Stages the failed attempt before this one finished, still valid: a contiguous run of REUSABLE."""
        if self.previous is None or self.previous["number"] != self.number:
            return {}
        done = {st["name"]: st for st in self.previous["stages"] if st.get("status") in ("completed", "reused")}
        prints = self.fingerprints()
        out = {}
        for name in (n for n in self.plan() if n in REUSABLE):
            stage = done.get(name)
            if (
                stage is None
                or stage.get("fingerprint") != prints[name]
                or not _outputs_exist(stage.get("outputs") or {})
            ):
                break
            out[name] = stage
        return out

    # -- running -----------------------------------------------------------------------------------------

    def run_all(self) -> dict[str, Any]:
        from ..train import runs

        self.echo(
            f"Cycle {self.number} (attempt {self.attempt}, cycle id {self.id}, run {self.run['id']}): "
            f"{' -> '.join(self.plan())}"
        )
        reuse = self.reusable()
        prints = self.fingerprints()
        started = time.time()
        for name in self.plan():
            if name in reuse:
                assert self.previous is not None  # what is reused comes from the previous attempt
                outputs = reuse[name]["outputs"]
                self.state.update(outputs)
                self._record(
                    {
                        "name": name,
                        "status": "reused",
                        "run_id": reuse[name].get("run_id"),
                        "from_cycle": self.previous["id"],
                        "outputs": outputs,
                        "fingerprint": prints.get(name),
                    }
                )
                self.echo(f"  {name}: reused from cycle id {self.previous['id']}")
                continue
            stage: dict[str, Any] = {
                "name": name,
                "status": "running",
                "started_at": store.now_iso(),
                "fingerprint": prints.get(name),
            }
            child = None
            if name not in TRAINING:
                child = runs.start_run(
                    self.db,
                    kind=f"cycle-{name}",
                    base_model=self.settings.base,
                    dataset=self.state.get("dataset"),
                    config={"cycle_id": self.id, "stage": name},
                    runs_dir=self.dir,
                    parent_run=self.run["id"],
                )
                stage["run_id"] = child["id"]
            self._record(stage)
            t0 = time.time()
            last_run = self.db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
            try:
                outputs = getattr(self, f"stage_{name}")(stage)
            except BaseException as exc:
                error = _error_text(exc)
                stopped = isinstance(exc, (CycleStopped, KeyboardInterrupt))
                if name in TRAINING and "run_id" not in stage:
                    # The trainer registered its run before failing: link it (its error and traceback are there).
                    row = self.db.execute(
                        "SELECT min(id) FROM runs WHERE id > ? AND kind IN ('sft', 'grpo')", [last_run]
                    ).fetchone()
                    stage["run_id"] = row[0]
                if stopped and name in TRAINING and stage.get("run_id"):
                    store.finish_if_running(self.db, stage["run_id"], error)  # a stop skips the trainer's own record
                status = "stopped" if stopped else "failed"
                stage.update(status=status, error=error, ended_at=store.now_iso(), seconds=round(time.time() - t0, 3))
                if child:
                    runs.finish_run(
                        self.db,
                        child["id"],
                        "interrupted" if stopped else "failed",
                        error=error + "\n" + traceback.format_exc(limit=6),
                    )
                self._fail(name, error, stage, status)
                if not isinstance(exc, Exception):
                    raise  # a stop, SystemExit: recorded, then let it stop the process
                self.echo(f"  {name}: FAILED: {error}")
                return store.get_cycle(self.db, self.id)
            self.state.update(outputs)
            stage.update(
                status="completed", outputs=outputs, ended_at=store.now_iso(), seconds=round(time.time() - t0, 3)
            )
            if child:
                runs.finish_run(self.db, child["id"], "completed", metrics=outputs)
            if name != "promote":  # promote records its stage inside the promotion's transaction
                self._record(stage)
            self.echo(f"  {name}: done in {stage['seconds']:.1f} s")
        runs.finish_run(
            self.db,
            self.run["id"],
            "completed",
            metrics={"cycle_id": self.id, "seconds": round(time.time() - started, 3), **self.state},
        )
        return store.get_cycle(self.db, self.id)

    def _record(self, stage: dict[str, Any]) -> None:
        if stage not in self.stages:
            self.stages.append(stage)
        store.update_cycle(self.db, self.id, stages=self.stages)

    def _fail(self, name: str, error: str, stage: dict[str, Any], status: str = "failed") -> None:
        from ..train import runs

        self._record(stage)
        store.update_cycle(self.db, self.id, status=status, failed_stage=name, error=error, ended_at=store.now_iso())
        runs.finish_run(
            self.db,
            self.run["id"],
            "interrupted" if status == "stopped" else "failed",
            metrics={"cycle_id": self.id, **self.state},
            error=f"stage {name}: {error}",
        )

    # -- stages ------------------------------------------------------------------------------------------

    def stage_sync(self, stage) -> dict[str, Any]:
        from ..transcripts import importer

        result = importer.sync(self.db.conn)
        out = result.as_dict()
        return {
            "sync": {k: out[k] for k in ("files", "lines", "messages", "turns", "sessions")},
            "sync_errors": len(out["errors"]),
        }

    def stage_signals(self, stage) -> dict[str, Any]:
        from ..signals.store import update_signals

        result = update_signals(self.db)
        return {"signals_computed": result.computed}

    def stage_dataset(self, stage) -> dict[str, Any]:
        from ..dataset.build import DatasetBuilder, record_dataset, write_card

        options = self.settings.build_options()
        name = f"cycle-{self.number:04d}-{self.id}"
        path = Path(cra_home()) / "datasets" / name
        summary = DatasetBuilder(self.db, options).build(str(path))
        write_card(str(path / "README.md"), name, options, summary)
        dataset_id = record_dataset(self.db, name, "sft", options.format, str(path), options.as_dict(), summary)
        if not summary["train_examples"]:
            raise StageError(
                f"dataset {name} has no training examples: every turn was filtered out ({summary['removed']})"
            )
        if not summary["eval_examples"]:
            raise StageError(
                f"dataset {name} has no held-out examples to evaluate on ({summary['train_examples']} train): "
                "record more sessions, or raise eval_fraction in [dataset] of auto.toml"
            )
        return {
            "dataset": str(path),
            "dataset_name": name,
            "dataset_id": dataset_id,
            "train_examples": summary["train_examples"],
            "eval_examples": summary["eval_examples"],
        }

    def stage_sft(self, stage) -> dict[str, Any]:
        from ..train.sft import train_sft

        settings = self.settings.sft_settings(self.state["dataset"], str(self.dir))
        run = _trained(stage, "sft", train_sft(settings, self.db, echo=self._quiet))
        return {"sft_run": run["id"], "model_run": run["id"], "adapter": run["metrics"]["adapter"]}

    def stage_rl(self, stage) -> dict[str, Any]:
        from ..train.grpo import train_grpo

        settings = self.settings.grpo_settings(self.state["sft_run"], str(self.dir))
        run = _trained(stage, "grpo", train_grpo(settings, self.db, echo=self._quiet))
        return {"rl_run": run["id"], "model_run": run["id"], "adapter": run["metrics"]["adapter"]}

    def stage_export(self, stage) -> dict[str, Any]:
        from ..export.exporter import Source, export_gguf

        source = Source(self.db, str(self.state["model_run"]), None, None)
        written = export_gguf(
            self.db,
            source,
            merged=True,
            adapter=False,
            with_base=False,
            outtype=self.settings.export_outtype,
            out=None,
            echo=self._quiet,
        )
        return {"gguf": written[0]["path"]}

    def stage_eval(self, stage) -> dict[str, Any]:
        from ..eval.backends import GenerationSettings
        from ..eval.runner import evaluate_run

        s = self.settings

        def generation():
            return GenerationSettings(
                max_new_tokens=s.eval_max_new_tokens, batch_size=s.eval_batch_size, cpu_threads=s.eval_cpu_threads
            )

        limit = s.eval_limit or None
        rows = evaluate_run(
            self.db,
            str(self.state["model_run"]),
            dataset=self.state["dataset"],
            limit=limit,
            settings=generation(),
            echo=self._quiet,
        )
        candidate = next(r for r in rows if r["subject"] == "run")
        current = store.promoted(self.db)
        if current is not None:
            # The promoted model on exactly the candidate's steps (the base's result is reused from above).
            base_rows = evaluate_run(
                self.db,
                str(current["run_id"]),
                dataset=self.state["dataset"],
                limit=limit,
                settings=generation(),
                echo=self._quiet,
            )
            baseline = next(r for r in base_rows if r["subject"] == "run")
        else:
            baseline = next(r for r in rows if r["subject"] == "base")  # the first model must beat its base
        if baseline["steps_hash"] != candidate["steps_hash"]:
            raise StageError("the candidate and the promoted model were evaluated on different steps")
        return {
            "eval_id": candidate["id"],
            "baseline_eval_id": baseline["id"],
            "baseline_run": current["run_id"] if current else None,
            "score": metric_value(candidate["metrics"], s.promote_metric),
            "baseline_score": metric_value(baseline["metrics"], s.promote_metric),
        }

    def stage_promote(self, stage) -> dict[str, Any]:
        s = self.settings
        score, baseline = self.state["score"], self.state["baseline_score"]
        against = f"run {self.state['baseline_run']}" if self.state["baseline_run"] else "the base model"
        if score is None:
            better, why = False, f"{s.promote_metric} could not be measured for the candidate"
        elif baseline is None:
            better, why = True, f"{s.promote_metric} {score:.4f}; {against} has none"
        else:
            better = score >= baseline - s.promote_tolerance
            slack = f" - {s.promote_tolerance:g}" if s.promote_tolerance else ""
            why = f"{s.promote_metric} {score:.4f} {'>=' if better else '<'} {baseline:.4f}{slack} ({against})"
        outputs = {"decision": "promoted" if better else "kept", "reason": why}
        stage.update(status="completed", outputs=outputs, ended_at=store.now_iso(), seconds=0.0)
        fields = dict(
            status="completed",
            ended_at=store.now_iso(),
            decision=outputs["decision"],
            model_run_id=self.state["model_run"],
            baseline_run_id=self.state["baseline_run"],
            metric=s.promote_metric,
            score=score,
            baseline_score=baseline,
            stages=self.stages,
        )
        if better:
            store.promote(
                self.db,
                self.state["model_run"],
                cycle_id=self.id,
                gguf=self.state.get("gguf"),
                reason=why,
                cycle_fields=fields,
            )
        else:
            store.update_cycle(self.db, self.id, **fields)
        self.echo(f"  promote: {'PROMOTED' if better else 'kept the promoted model'}: {why}")
        return outputs

    def _quiet(self, *args, **kwargs) -> None:
        """Stage output goes to the cycle's log file, not the terminal."""
        message = " ".join(str(a) for a in args)
        with open(self.dir / "cycle.log", "a", encoding="utf-8") as f:
            f.write(message + "\n")


def _trained(stage: dict[str, Any], kind: str, run: dict[str, Any]) -> dict[str, Any]:
    """A training stage's run, linked to its stage, if it completed; a stop or an error otherwise."""
    stage["run_id"] = run["id"]
    if run["status"] == "interrupted":  # Ctrl-C: it saved a checkpoint and stopped early
        raise CycleStopped(f"{kind} run {run['id']} stopped by Ctrl-C")
    if run["status"] != "completed":
        raise StageError(f"{kind} run {run['id']} ended {run['status']}: {run.get('error') or ''}".strip())
    return run


def _outputs_exist(outputs: dict[str, Any]) -> bool:
    for key in ("dataset", "adapter", "gguf"):
        if key in outputs and outputs[key] and not Path(outputs[key]).exists():
            return False
    return True


def run_once(
    db, settings: AutoSettings, *, force: bool = False, now: float | None = None, echo: Callable = progress.echo
) -> dict[str, Any]:
    """Run one cycle if one is due (or `force`), under the lock. Never waits for another cycle.

    Returns {"status": "locked" | "not_due" | "completed" | "failed", "readiness": ..., "cycle": ...}."""
    home = cra_home()
    try:
        lock = CycleLock(home).acquire()
    except CycleRunning as exc:
        return {"status": "locked", "message": str(exc), "holder": exc.holder}
    try:
        crashed = store.mark_crashed(db, lock.stale)
        if crashed:
            echo(
                f"Cycle id{'s' if len(crashed) > 1 else ''} {', '.join(map(str, crashed))} had crashed "
                "(marked so; it will be retried)."
            )
        store.write_pointer(db)
        ready = readiness(db, settings, now)
        if not ready.due and not force:
            return {"status": "not_due", "readiness": ready.as_dict()}
        trigger = ready.trigger if ready.due and ready.trigger else "forced"
        cycle = Cycle(db, settings, ready, trigger, echo).run_all()
        return {"status": cycle["status"], "readiness": ready.as_dict(), "cycle": cycle}
    finally:
        lock.release()
