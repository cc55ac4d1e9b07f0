"""Which recorded turns qualify for training: one definition for the build, `cra status`, `cra auto`
and `cra stats`, so they never disagree.

A turn qualifies when `cra dataset build` keeps it: a main-thread turn (not a subagent's, not
synthetic) that passes `TurnFilters` (filters.py). `turn_facts` is the one place a turn's facts are
made: the build calls it turn by turn (turn_chats.py), `count_qualifying` in bulk from turns and tool_calls.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from ..jsonl import json_object
from .filters import TurnFacts, TurnFilters

# Qualifying turns before a first training cycle is worth it: `cra auto`'s min_total_turns default
# ($CRA_HOME/auto.toml sets another), and the bar `cra stats` shows when given none.
MIN_TRAINING_TURNS = 50

# Main-thread turns of real sessions: the candidates (bootstrap's synthetic turns never count).
CANDIDATES_SQL = (
    "SELECT id, tool_call_count, final_answer, outcome FROM turns WHERE agent_id IS NULL AND NOT is_synthetic"
)


def turn_facts(tool_call_count: int | None, final_answer: str | None, outcome: str | None, calls) -> TurnFacts:
    """What the filters look at. `calls`: [(tool_name, status, tool_input dict)] in call order; a turn
    with more calls than its row counted (calls only a hook saw) counts them all. Tool categories are
    the signals stage's, so a recovery means the same here as in `cra signals`."""
    from ..signals.tools import category

    return TurnFacts(
        tool_call_count=max(tool_call_count or 0, len(calls)),
        final_answer=final_answer,
        outcome=outcome,
        calls=[(name, status, category(name, tool_input)) for name, status, tool_input in calls],
    )


def count_qualifying(db, filters: TurnFilters, turns: Iterable[Mapping]) -> dict:
    """{"candidates", "qualifying", "excluded": {filter: turns it removed first}} over `turns`: rows of
    main-thread real turns with id, tool_call_count, final_answer and outcome."""
    turns = list(turns)
    calls = _calls_by_turn(db, [t["id"] for t in turns])
    excluded = Counter({name: 0 for name in TurnFilters.ORDER})
    qualifying = 0
    for t in turns:
        reason = filters.evaluate(turn_facts(t["tool_call_count"], t["final_answer"], t["outcome"], calls[t["id"]]))
        if reason is None:
            qualifying += 1
        else:
            excluded[reason] += 1
    return {"candidates": len(turns), "qualifying": qualifying, "excluded": dict(excluded)}


def qualifying_turns(db, filters: TurnFilters) -> dict:
    """count_qualifying over every recorded main-thread real turn."""
    if not db["turns"].exists():
        return count_qualifying(db, filters, [])
    return count_qualifying(db, filters, db.query(CANDIDATES_SQL))


def _calls_by_turn(db, turn_ids: list[int]) -> defaultdict[int, list]:
    """turn id -> [(tool_name, status, tool_input dict)] in call order, the calls the build reads."""
    calls: defaultdict[int, list] = defaultdict(list)
    for start in range(0, len(turn_ids), 500):  # under SQLite's bound-parameter limit
        chunk = turn_ids[start : start + 500]
        for turn_id, name, status, tool_input in db.execute(
            "SELECT turn_id, tool_name, status, tool_input FROM tool_calls WHERE turn_id IN (%s) ORDER BY turn_id, seq"
            % ",".join("?" * len(chunk)),
            chunk,
        ):
            calls[turn_id].append((name, status, json_object(tool_input)))
    return calls
