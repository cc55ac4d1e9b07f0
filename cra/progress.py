"""Progress lines from long library calls (training, evaluation, export, auto cycles).

A function that reports progress takes `echo`, called as `echo(message)` or, for lines that belong on
stderr, `echo(message, err=True)`. The default prints them as the CLI shows them; a caller that
wants them elsewhere passes its own function (a log file, `logging`, or `quiet`). The library never
imports click for this.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

Echo = Callable[..., None]


def echo(message: str = "", err: bool = False) -> None:
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def to_stderr(message: str = "", err: bool = False) -> None:
    """Every line on stderr: stdout is left to the JSON a command prints with --json."""
    print(message, file=sys.stderr, flush=True)


def quiet(message: str = "", err: bool = False) -> None:
    """Reports nothing."""
