"""Keep library noise a user cannot act on out of cra's output.

Training, evaluation and export drive transformers, TRL, PEFT, datasets, bitsandbytes and llama.cpp,
which print deprecation warnings, advisory messages (bitsandbytes' "kernels-community" notice, even
without 4-bit) and progress bars for every map and filter. None of it says anything a cra user can
act on, and in a log it is most of the bytes. `CRA_VERBOSE=1` shows all of it again.

Environment variables are read by those libraries when they are imported, so this runs before any of
them is: at the CLI's edge, for every command (it costs no import).
"""

import logging
import os
import sys
import warnings

NOISY_LIBRARIES = (
    "accelerate",
    "bitsandbytes",
    "datasets",
    "huggingface_hub",
    "kernels",
    "peft",
    "torch",
    "transformers",
    "trl",
    "unsloth",
)

_ALWAYS = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    # Tokenizing, mapping and filtering a dataset take a second; their bars are noise even on a terminal.
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
# Off a terminal (logs, CI, pipes) a progress bar is thousands of carriage returns.
_OFF_A_TERMINAL = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}


def quiet_libraries(stream=None, environ=os.environ) -> None:
    """Silence the heavy libraries' warnings and, off a terminal, their progress bars.

    Settings the user made (an environment variable already set) win; `CRA_VERBOSE=1` skips it all.
    """
    if environ.get("CRA_VERBOSE", "") not in ("", "0"):
        return
    stream = stream if stream is not None else sys.stderr
    settings = dict(_ALWAYS)
    if not _is_terminal(stream):
        settings.update(_OFF_A_TERMINAL)
    for name, value in settings.items():
        environ.setdefault(name, value)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    pattern = "|".join(NOISY_LIBRARIES)
    warnings.filterwarnings("ignore", module=rf"({pattern})(\.|$)")


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
