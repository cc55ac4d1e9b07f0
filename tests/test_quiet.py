"""Library noise stays out of cra's output: no warnings or progress bars in a training log."""

import io
import os
import subprocess
import sys

import pytest

from cra.quiet import quiet_libraries


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_off_a_terminal_progress_bars_are_off_and_user_settings_win():
    environ = {"TRANSFORMERS_VERBOSITY": "info"}
    quiet_libraries(stream=io.StringIO(), environ=environ)
    assert environ["TRANSFORMERS_VERBOSITY"] == "info"  # the user's own setting is kept
    assert environ["TQDM_DISABLE"] == "1" and environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert environ["TRL_EXPERIMENTAL_SILENCE"] == "1"


def test_on_a_terminal_the_training_bar_stays():
    environ = {}
    quiet_libraries(stream=_Terminal(), environ=environ)
    assert "TQDM_DISABLE" not in environ and environ["TRANSFORMERS_VERBOSITY"] == "error"


def test_cra_verbose_shows_everything():
    environ = {"CRA_VERBOSE": "1"}
    quiet_libraries(stream=io.StringIO(), environ=environ)
    assert environ == {"CRA_VERBOSE": "1"}


@pytest.mark.slow
def test_a_training_run_logs_no_library_noise(tmp_path):
    pytest.importorskip("trl")
    from cra.testing.tiny import build_model, write_dataset

    model = build_model(tmp_path / "model")
    data = write_dataset(tmp_path / "data", n_train=8, n_eval=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TQDM", "HF_", "TRANSFORMERS", "CRA_VERBOSE"))}
    args = ["train", "sft", "--base", str(model), "--dataset", str(data), "--max-steps", "2", "--batch-size", "4"]
    args += ["--max-length", "512", "--cpu-threads", "1"]
    proc = subprocess.run([sys.executable, "-m", "cra", *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Run 1 completed" in proc.stdout
    # Before: deprecation FutureWarnings, bitsandbytes' kernels-community notice, a dozen progress bars.
    assert proc.stderr == ""
    assert "\r" not in proc.stdout and "Warning" not in proc.stdout
