"""What every trainer's run goes through besides training itself: Ctrl-C handled between steps."""

from __future__ import annotations

import signal
import threading

from .. import progress


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def make_graceful_stop():
    """Ctrl-C once: finish the current step, save a resumable checkpoint, stop. Twice: abort at once."""

    class GracefulStop(_callback_base()):
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
