"""What `cra stats` reports, as one JSON-ready dict: computed from the database with plain SQL over
the views (tool_calls_with_turns, turns_with_signals), filtered by project, dates and model.
"""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ..dataset.filters import TurnFilters
from ..dataset.qualifying import MIN_TRAINING_TURNS, count_qualifying
from ..db.schema import DENIED, ERRORED
from ..when import parse_when
from . import serving

# Qualifying turns the training orchestrator waits for before it starts a cycle, when the caller
# gives no bar; `cra stats` passes the one in effect ($CRA_HOME/auto.toml, read by cra/auto/config.py).
READY_TURNS = MIN_TRAINING_TURNS
DEPTHS = ("minimal", "moderate", "thorough", "exhaustive")
TOP = 10


@dataclass
class StatsFilters:
    project: str | None = None  # substring of the project directory (or cwd)
    since: str | None = None  # ISO date or datetime, inclusive
    until: str | None = None  # ISO date (inclusive, the whole day) or datetime (exclusive)
    model: str | None = None  # substring of the model id

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if v is not None}


def _where(filters: StatsFilters, when: str, project: str, model: str):
    clauses, args = [], []
    if filters.project:
        clauses.append(f"{project} LIKE ?")
        args.append(f"%{filters.project}%")
    if filters.model:
        clauses.append(f"{model} LIKE ?")
        args.append(f"%{filters.model}%")
    if filters.since:
        clauses.append(f"{when} >= ?")
        args.append(parse_when(filters.since))
    if filters.until:
        clauses.append(f"{when} < ?")
        args.append(parse_when(filters.until, end=True))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def compute(
    db, filters: StatsFilters | None = None, turn_filters: TurnFilters | None = None, ready_turns: int | None = None
) -> dict:
    filters = filters or StatsFilters()
    turn_filters = turn_filters or TurnFilters()
    ready_turns = READY_TURNS if ready_turns is None else ready_turns

    # Tool calls, each with its project, model and time.
    call_where, call_args = _where(
        filters,
        when="coalesce(pre_at, post_at, turn_started_at, s_first)",
        project="coalesce(project_dir, session_cwd, cwd)",
        model="model",
    )
    calls = db.execute(
        "SELECT * FROM (SELECT v.tool_use_id, v.session_id, v.agent_id, v.turn_id, v.tool_name, v.tool_input,"
        " v.status, v.duration_ms, v.pre_at, v.post_at, v.turn_started_at, v.project_dir, v.session_cwd, v.cwd,"
        " v.model, s.first_event_at AS s_first, v.seq"
        " FROM tool_calls_with_turns v LEFT JOIN sessions s ON s.id = v.session_id)"
        + call_where
        + " ORDER BY session_id, seq",
        call_args,
    ).fetchall()
    cols = (
        "tool_use_id",
        "session_id",
        "agent_id",
        "turn_id",
        "tool_name",
        "tool_input",
        "status",
        "duration_ms",
        "pre_at",
        "post_at",
        "turn_started_at",
        "project_dir",
        "session_cwd",
        "cwd",
        "model",
        "s_first",
        "seq",
    )
    calls = [dict(zip(cols, r)) for r in calls]

    # Turns, each with its signals.
    turn_where, turn_args = _where(
        filters,
        when="coalesce(tw.started_at, s.started_at, s.first_event_at)",
        project="coalesce(tw.project_dir, s.cwd)",
        model="coalesce(tw.model, s.model)",
    )
    turn_rows = db.execute(
        "SELECT tw.id, tw.session_id, tw.agent_id, tw.is_synthetic, tw.outcome, tw.final_answer,"
        " tw.tool_call_count, tw.input_tokens, tw.output_tokens, tw.cache_read_tokens,"
        " tw.cache_creation_tokens, coalesce(tw.model, s.model) AS model,"
        " coalesce(tw.project_dir, s.cwd) AS project, tw.sequence_pattern, tw.workflow,"
        " tw.exploration_depth, tw.has_plan, tw.constraints, tw.prunings, tw.self_corrections,"
        " tw.failures, tw.recoveries, tw.denials, tw.signals_computed_at"
        " FROM turns_with_signals tw LEFT JOIN sessions s ON s.id = tw.session_id" + turn_where,
        turn_args,
    )
    tcols = [d[0] for d in turn_rows.description]
    turns = [dict(zip(tcols, r)) for r in turn_rows.fetchall()]
    main_turns = [t for t in turns if t["agent_id"] is None]

    sess_where, sess_args = _where(
        filters,
        when="coalesce(started_at, first_event_at)",
        project="coalesce(project_dir, cwd)",
        model="model",
    )
    session_ids = {r[0] for r in db.execute("SELECT id FROM sessions" + sess_where, sess_args)}
    # Sessions known only through imported turns or calls count too.
    session_ids |= {t["session_id"] for t in turns} | {c["session_id"] for c in calls}

    return {
        "filters": filters.as_dict(),
        "totals": {
            "sessions": len(session_ids),
            "turns": len(main_turns),
            "subagent_turns": len(turns) - len(main_turns),
            "tool_calls": len(calls),
            "turns_with_signals": sum(t["signals_computed_at"] is not None for t in turns),
        },
        "tools": _tools(calls),
        "sequences": _top(Counter(t["sequence_pattern"] for t in main_turns if t["sequence_pattern"]), "pattern"),
        "workflows": _top(Counter(t["workflow"] for t in main_turns if t["workflow"]), "workflow"),
        "depth": {d: sum(t["exploration_depth"] == d for t in main_turns) for d in DEPTHS},
        "outcomes": dict(Counter(t["outcome"] or "unknown" for t in main_turns).most_common()),
        "reasoning": {
            "turns_with_plan": sum(bool(t["has_plan"]) for t in main_turns),
            "constraints": sum(t["constraints"] or 0 for t in main_turns),
            "prunings": sum(t["prunings"] or 0 for t in main_turns),
            "self_corrections": sum(t["self_corrections"] or 0 for t in main_turns),
            "failures": sum(t["failures"] or 0 for t in main_turns),
            "recoveries": sum(t["recoveries"] or 0 for t in main_turns),
            "denials": sum(t["denials"] or 0 for t in main_turns),
        },
        "tokens_by_model": _tokens(turns),
        "projects": _projects(calls, turns),
        "timeline": _timeline(calls),
        "readiness": _readiness(db, main_turns, turn_filters, ready_turns),
        "serving": serving.compute(db, filters),
    }


def _top(counter, key, n=TOP):
    return [{key: k, "turns": v} for k, v in counter.most_common(n)]


def _tools(calls):
    by_tool = defaultdict(list)
    for c in calls:
        by_tool[c["tool_name"] or "?"].append(c)
    rows = []
    for name, items in by_tool.items():
        durations = [c["duration_ms"] for c in items if c["duration_ms"] is not None]
        errored = sum(c["status"] in ERRORED for c in items)
        finished = sum(c["status"] != "pending" for c in items)
        # The categories of tool_calls_with_turns.call_outcome (cra/db/schema.py CALL_OUTCOMES).
        rows.append(
            {
                "tool": name,
                "calls": len(items),
                "errored": errored,
                "denied": sum(c["status"] in DENIED for c in items),
                "interrupted": sum(c["status"] == "interrupted" for c in items),
                "error_rate": round(errored / finished, 4) if finished else None,
                "median_ms": int(statistics.median(durations)) if durations else None,
            }
        )
    rows.sort(key=lambda r: (-r["calls"], r["tool"]))
    return rows


def _tokens(turns):
    by_model: defaultdict[str, dict[str, int]] = defaultdict(
        lambda: {"turns": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_creation_tokens": 0}
    )
    for t in turns:
        row = by_model[t["model"] or "unknown"]
        row["turns"] += 1
        for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
            row[key] += t[key] or 0
    rows: list[dict[str, Any]] = [{"model": m, **v} for m, v in by_model.items()]
    rows.sort(key=lambda r: (-(r["input_tokens"] + r["output_tokens"]), r["model"]))
    return rows


def _projects(calls, turns, n=TOP):
    stats: defaultdict[str, dict[str, Any]] = defaultdict(lambda: {"sessions": set(), "turns": 0, "tool_calls": 0})
    for c in calls:
        p = stats[c["project_dir"] or c["session_cwd"] or c["cwd"] or "unknown"]
        p["tool_calls"] += 1
        p["sessions"].add(c["session_id"])
    for t in turns:
        p = stats[t["project"] or "unknown"]
        p["sessions"].add(t["session_id"])
        if t["agent_id"] is None:
            p["turns"] += 1
    rows = [
        {"project": k, "sessions": len(v["sessions"]), "turns": v["turns"], "tool_calls": v["tool_calls"]}
        for k, v in stats.items()
    ]
    rows.sort(key=lambda r: (-r["tool_calls"], -r["turns"], r["project"]))
    return rows[:n]


def _timeline(calls):
    """Tool calls per day, by tool: the HTML report's first chart."""
    days: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for c in calls:
        when = c["pre_at"] or c["post_at"] or c["turn_started_at"] or c["s_first"]
        if when:
            days[when[:10]][c["tool_name"] or "?"] += 1
    return [{"day": d, "total": sum(days[d].values()), "tools": dict(days[d].most_common())} for d in sorted(days)]


def _readiness(db, main_turns, turn_filters, ready_turns):
    """Turns that qualify for training (cra/dataset/qualifying.py), against the orchestrator's bar."""
    counts = count_qualifying(db, turn_filters, [t for t in main_turns if not t["is_synthetic"]])
    return {
        "candidates": counts["candidates"],
        "qualifying": counts["qualifying"],
        "threshold": ready_turns,
        "ready": counts["qualifying"] >= ready_turns,
        "excluded": counts["excluded"],
        "filters": turn_filters.as_dict(),
    }
