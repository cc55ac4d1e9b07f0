"""The optional Stop-hook trigger: `cra auto hook on` writes `$CRA_HOME/auto-trigger.json`.

The hook's drainer (claude_hooks/drain.py, `_maybe_start_cycle`) reads only this file, at Stop events: when
it is absent (the default) the cost is one failed open(). The hook cannot count qualifying turns
(turns are built by `cra`), so cra writes what it can check in one indexed query: how many more Stop
events (one per finished main-thread turn; every new qualifying turn ends with one) must arrive
after event `since_event` before a cycle can be due, or the time after which the interval trigger
may fire. The hook then starts `cra auto once` detached, which does the real check under the lock
and rewrites this file. `not_before` keeps a backoff or a recent start from spawning again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import claude_hooks

from ..db import cra_home
from . import store
from .readiness import Readiness

SPAWN_EVERY_S = 600  # at most one `cra auto once` per this long, whatever the hook sees


def trigger_path(home: str | None = None) -> Path:
    return Path(home or cra_home()) / claude_hooks.AUTO_TRIGGER


def enabled() -> bool:
    return trigger_path().is_file()


def command() -> list[str]:
    """How the hook starts a cycle: this interpreter (the one cra is installed in), cra as a module."""
    return [sys.executable, "-m", "cra", "auto", "once", "--quiet"]


def contents(db, ready: Readiness, settings, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    since = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    data = {
        "argv": command(),
        "since_event": since,
        "spawn_every_s": SPAWN_EVERY_S,
        "written_at": now,
        "not_before": 0,
        "stops_needed": 0,
        "due_at": None,
        "due_stops_needed": None,
    }
    if ready.backoff_until and not ready.due:
        data["not_before"] = store.parse_iso(ready.backoff_until)
    elif not ready.due:
        if ready.cycles_completed == 0:
            data["stops_needed"] = max(1, ready.first_threshold - ready.qualifying)
        else:
            data["stops_needed"] = max(1, ready.next_threshold - ready.new)
            if ready.qualifying >= settings.min_total_turns and ready.interval_due_at:
                data["due_at"] = store.parse_iso(ready.interval_due_at)
                data["due_stops_needed"] = max(0, settings.interval_min_new_turns - ready.new)
    return data


def write(db, ready: Readiness, settings) -> Path:
    path = trigger_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store._atomic_write(path, json.dumps(contents(db, ready, settings)).encode())
    return path


def refresh(db, ready: Readiness, settings) -> None:
    """Rewrite the file with current numbers, only when the trigger is on."""
    if enabled():
        write(db, ready, settings)


def disable() -> bool:
    try:
        os.unlink(trigger_path())
        return True
    except FileNotFoundError:
        return False
