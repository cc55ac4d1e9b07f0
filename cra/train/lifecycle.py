"""What a training run goes through besides training itself: registration, Ctrl-C handled between
steps, and its end recorded (interrupted and resumable, completed with an adapter, or failed)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from .. import progress
from ..progress import Echo
from . import runs
from .distributed import Launch


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def make_graceful_stop():
    """Ctrl-C once: finish the current step, save a resumable checkpoint, stop. Twice: abort at once."""

    class GracefulStop(_callback_base()):  # type: ignore[misc]  # transformers' TrainerCallback, imported on use
        def __init__(self):
            self.requested = False
            self._previous = None

        def request(self, *_):
            self.requested = True
            progress.echo("\nStopping after this step and saving a checkpoint (Ctrl-C again to abort now)...", err=True)
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

        def install(self):
            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(signal.SIGINT, self.request)

        def uninstall(self):
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

        def train(self, trainer, resume_from=None):
            """trainer.train() with Ctrl-C handled by this callback (which must be among its callbacks)."""
            self.install()
            try:
                return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            finally:
                self.uninstall()

        def on_step_end(self, args, state, control, **kwargs):
            if self.requested:
                control.should_save = True
                control.should_training_stop = True
            return control

    return GracefulStop()


def write_summary(output_dir: Path, metrics: dict[str, Any]) -> None:
    """<run dir>/summary.json: the run's metrics beside its files."""
    (output_dir / "summary.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")


class RLRun:
    """One run of an RL-stage trainer (grpo, reward, ppo), from its `runs` row to its final state.

    As a context around the training, it records a failure or a second Ctrl-C (runs.recorded_end);
    the trainer ends it with `interrupted` (the first Ctrl-C: a resumable checkpoint) or `completed`.
    Under accelerate launch every rank has one, and only rank 0's writes (`main`; distributed.Launch).
    """

    def __init__(
        self,
        db,
        kind: str,
        run_id: int,
        output_dir: Path,
        echo: Echo,
        *,
        resumable: bool = True,
        launch: Launch | None = None,
    ):
        self.launch = launch or Launch()
        self.main = self.launch.main
        self.db, self.kind, self.id, self.output_dir = db, kind, run_id, output_dir
        self.echo = self.launch.on_main(echo)
        self.started = time.time()
        self._end = runs.recorded_end(
            db,
            run_id,
            kind,
            output_dir,
            started=self.started,
            resumable=resumable,
            finish=self.launch.on_main(runs.finish_run),
        )

    @classmethod
    def start(
        cls,
        db,
        kind: str,
        settings,
        sft: dict[str, Any],
        parent: dict[str, Any] | None,
        echo: Echo,
        *,
        dataset: str | None = None,
        label: str | None = None,
        resumable: bool = True,
    ) -> RLRun:
        """Register the run (its parent: the run it resumes, else the SFT run) and say where it goes;
        under accelerate launch rank 0 registers it and the other ranks get its id."""
        launch = Launch()

        def register(config):
            return runs.start_run(
                db,
                kind=kind,
                base_model=settings.base,
                dataset=dataset or settings.dataset,
                config=config,
                runs_dir=settings.runs_dir,
                parent_run=parent["id"] if parent else sft["id"],
            )

        run = launch.start_run(db, settings.model_dump(), register)
        launch.on_main(echo)(f"Run {run['id']} ({label or kind} from sft run {sft['id']}) -> {run['output_dir']}")
        return cls(db, kind, run["id"], Path(run["output_dir"]), echo, resumable=resumable, launch=launch)

    def __enter__(self) -> RLRun:
        self._end.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        return self._end.__exit__(exc_type, exc, tb)

    def interrupted(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Stopped by Ctrl-C after saving a checkpoint: recorded as resumable; the final row."""
        if not self.main:
            return runs.get_run(self.db, self.id)
        metrics["wall_seconds"] = time.time() - self.started
        runs.finish_run(self.db, self.id, "interrupted", metrics=metrics, error="stopped by Ctrl-C")
        self.echo(
            f"Run {self.id} interrupted at step {metrics['steps']}. "
            f"Continue it with: cra train {self.kind} --resume {self.id}"
        )
        return runs.get_run(self.db, self.id)

    def completed(
        self, metrics: dict[str, Any], adapter_dir: Path, artifact: str, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The trained adapter saved in `adapter_dir`: summary, artifact (`artifact` kind) and row recorded."""
        from .rl import summary_text

        if not self.main:
            return runs.get_run(self.db, self.id)
        metrics["adapter"] = str(adapter_dir)
        metrics["wall_seconds"] = time.time() - self.started
        write_summary(self.output_dir, metrics)
        runs.record_artifact(self.db, self.id, artifact, adapter_dir, meta)
        runs.finish_run(self.db, self.id, "completed", metrics=metrics)
        final = runs.get_run(self.db, self.id)
        self.echo(summary_text(final))
        return final
