"""Is a cycle due? Qualifying turns, progress, backoff.

Turns qualify by the dataset's one definition (cra/dataset/qualifying.py), with the `[filters]` of
auto.toml: the same filters each cycle builds its dataset with. "New" turns are counted against the
number that qualified when the last completed cycle started.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..dataset.qualifying import qualifying_turns
from . import store
from .config import AutoSettings


def backoff_seconds(settings: AutoSettings, failures: int) -> float:
    """15 min, 30, 60, ... after 1, 2, 3 ... failed attempts in a row, up to backoff_max_hours."""
    if failures <= 0:
        return 0.0
    return min(settings.backoff_minutes * 60 * 2 ** (failures - 1), settings.backoff_max_hours * 3600)


@dataclass
class Readiness:
    candidates: int  # main-thread real turns recorded
    qualifying: int  # of which pass the filters
    new: int  # qualifying turns since the last completed cycle started (all of them before the first)
    cycles_completed: int
    number: int  # the next cycle's number
    with_rl: bool  # the next cycle runs the RL stage
    first_threshold: int  # min_total_turns: the first cycle's bar
    next_threshold: int  # min_new_turns: every later cycle's bar
    last_cycle_at: str | None  # when the last completed cycle started
    interval_due_at: str | None  # when the time trigger fires (if the turn counts allow it then)
    failures: int  # failed attempts since the last completed cycle
    backoff_until: str | None
    due: bool
    trigger: str | None  # first, new_turns, interval, retry
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def readiness(db, settings: AutoSettings, now: float | None = None) -> Readiness:
    now = time.time() if now is None else now
    counts = qualifying_turns(db, settings.turn_filters())
    done = store.last_completed(db)
    completed = db.execute("SELECT count(*) FROM cycles WHERE status = 'completed'").fetchone()[0]
    failures = store.failures_since_completed(db)
    number = completed + 1
    qualifying = counts["qualifying"]
    new = max(0, qualifying - done["qualifying_turns"]) if done else qualifying
    interval_at = None
    if done:
        interval_at = store.parse_iso(done["started_at"]) + settings.max_interval_hours * 3600
    backoff_until = None
    if failures:
        last = failures[-1]
        backoff_until = store.parse_iso(last["ended_at"] or last["started_at"]) + backoff_seconds(
            settings, len(failures)
        )

    due, trigger = False, None
    if backoff_until is not None and now < backoff_until:
        reason = (
            f"{len(failures)} failed attempt{'s' if len(failures) > 1 else ''} "
            f"(last at stage {failures[-1]['failed_stage'] or '?'}); retrying after {store.now_iso(backoff_until)}"
        )
    elif failures:
        due, trigger = True, "retry"
        reason = f"retrying cycle {number} after {len(failures)} failed attempt{'s' if len(failures) > 1 else ''}"
    elif done is None:
        due = qualifying >= settings.min_total_turns
        trigger = "first" if due else None
        reason = f"{qualifying}/{settings.min_total_turns} qualifying turns for the first cycle"
    elif new >= settings.min_new_turns:
        due, trigger = True, "new_turns"
        reason = f"{new}/{settings.min_new_turns} new qualifying turns"
    elif (
        interval_at is not None
        and now >= interval_at
        and qualifying >= settings.min_total_turns
        and new >= settings.interval_min_new_turns
    ):
        due, trigger = True, "interval"
        reason = f"{settings.max_interval_hours:g} h since the last cycle, with {new} new qualifying turns"
    else:
        reason = (
            f"{new}/{settings.min_new_turns} new qualifying turns "
            f"(or {settings.max_interval_hours:g} h after the last cycle)"
        )
    return Readiness(
        candidates=counts["candidates"],
        qualifying=qualifying,
        new=new,
        cycles_completed=completed,
        number=number,
        with_rl=bool(settings.rl_every) and number % settings.rl_every == 0,
        first_threshold=settings.min_total_turns,
        next_threshold=settings.min_new_turns,
        last_cycle_at=done["started_at"] if done else None,
        interval_due_at=store.now_iso(interval_at) if interval_at is not None else None,
        failures=len(failures),
        backoff_until=store.now_iso(backoff_until) if backoff_until is not None else None,
        due=due,
        trigger=trigger,
        reason=reason,
    )
