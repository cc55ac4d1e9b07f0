"""Per-turn reasoning signals as pure functions over plain data (no database here).

A turn is its prompt, its assistant messages in order (text and thinking) and its tool calls in
order. `extract(turn)` returns a `TurnSignals`; every text-based signal carries its evidence
(message uuid, field, character span, matched words, the sentence around them), every tool-based
one the tool_use ids involved. docs/signals.md defines each signal.
"""

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from ..db.schema import DENIED
from ..db.schema import ERRORED as FAILED
from . import text as phrases
from . import tools
from .config import SignalConfig

INTERRUPTED = ("interrupted",)


@dataclass
class ToolCall:
    tool_use_id: str
    name: str
    input: dict = field(default_factory=dict)
    status: str = "success"  # success, failure, denied, blocked, invalid, interrupted, pending
    error: str | None = None
    # Calls with the same batch key were issued together (one assistant API message).
    batch: str | None = None
    agent_id: str | None = None
    message_uuid: str | None = None
    duration_ms: int | None = None


@dataclass
class Message:
    uuid: str
    text: str = ""
    thinking: str = ""
    tool_use_ids: list = field(default_factory=list)


@dataclass
class Turn:
    id: int | None = None
    prompt_text: str = ""
    prompt_uuid: str | None = None
    messages: list = field(default_factory=list)  # assistant messages, in order
    tool_calls: list = field(default_factory=list)  # in order (model order within a batch)
    final_answer: str | None = None
    outcome: str | None = None  # completed, interrupted, error, incomplete; None: derive it


@dataclass
class TurnSignals:
    tool_sequence: list  # [[name, ...], ...]: each inner list one group, >1 name = parallel
    sequence_pattern: str  # the sequence with repeats collapsed, e.g. "Read+ > [Grep|Glob] > Edit"
    tool_count: int
    distinct_tools: int
    failures: int
    recoveries: int
    unrecovered_failures: int
    denials: int
    interruptions: int
    parallel_groups: int
    exploration_calls: int  # exploring calls before the first change (all of them if no change)
    change_calls: int
    exploration_depth: str | None  # minimal, moderate, thorough, exhaustive; None without tools
    workflow: str  # delegated, iterative, parallel, exploratory, linear; none without tools
    workflow_tags: list  # every pattern that applies, primary first
    has_plan: bool
    plan_source: str | None  # tool, text, thinking
    constraints: int
    prunings: int
    self_corrections: int
    outcome: str
    final_answer_chars: int
    final_answer_words: int
    evidence: list  # [{kind, ...}], see docs/signals.md

    def as_row(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in fields(self)}  # asdict() deep-copies the evidence
        for key in ("tool_sequence", "workflow_tags", "evidence"):
            row[key] = json.dumps(row[key], ensure_ascii=False)
        row["has_plan"] = int(self.has_plan)
        return row


def extract(turn: Turn, config: SignalConfig | None = None) -> TurnSignals:
    config = config or SignalConfig()
    calls = list(turn.tool_calls)
    cats = [tools.category(c.name, c.input) for c in calls]
    evidence: list[dict[str, Any]] = []

    groups = _groups(calls)
    sequence = [[c.name for c in g] for g in groups]
    parallel = [g for g in groups if len(g) >= config.parallel_min_group]
    for g in parallel:
        evidence.append({"kind": "parallel", "tool_use_ids": [c.tool_use_id for c in g]})

    failures, recoveries, unrecovered = _failures_and_recoveries(calls, cats, evidence)
    denials = sum(c.status in DENIED for c in calls)
    for c in calls:
        if c.status in DENIED:
            evidence.append({"kind": "denial", "tool_use_id": c.tool_use_id, "tool": c.name, "error": _short(c.error)})
    interruptions = sum(c.status in INTERRUPTED for c in calls)

    first_change = next((i for i, cat in enumerate(cats) if tools.is_change(cat)), None)
    before = cats if first_change is None else cats[:first_change]
    exploration = sum(cat == tools.EXPLORE for cat in before)
    change_calls = sum(tools.is_change(cat) for cat in cats)
    depth = config.depth.label(exploration) if calls else None
    if first_change is not None:
        evidence.append(
            {
                "kind": "first_change",
                "tool_use_id": calls[first_change].tool_use_id,
                "tool": calls[first_change].name,
                "exploration_before": exploration,
            }
        )

    tags = _workflow_tags(calls, cats, parallel, config, evidence)
    workflow = tags[0] if tags else "none"

    plan_source = _plan(turn, calls, config, evidence)
    constraints = _phrases(
        turn,
        phrases.CONSTRAINT_PATTERNS,
        "constraint",
        config,
        evidence,
        prompt=True,
        assistant_patterns=[p for p in phrases.CONSTRAINT_PATTERNS if p[0] in phrases.ASSISTANT_CONSTRAINT_LABELS],
    )
    prunings = _phrases(turn, phrases.PRUNING_PATTERNS, "pruning", config, evidence)
    corrections = _phrases(turn, phrases.SELF_CORRECTION_PATTERNS, "self_correction", config, evidence)
    corrections += _tool_corrections(calls, evidence)

    final = turn.final_answer or ""
    outcome = turn.outcome or _derive_outcome(turn, calls, unrecovered)
    return TurnSignals(
        tool_sequence=sequence,
        sequence_pattern=pattern(sequence),
        tool_count=len(calls),
        distinct_tools=len({c.name for c in calls}),
        failures=failures,
        recoveries=recoveries,
        unrecovered_failures=unrecovered,
        denials=denials,
        interruptions=interruptions,
        parallel_groups=len(parallel),
        exploration_calls=exploration,
        change_calls=change_calls,
        exploration_depth=depth,
        workflow=workflow,
        workflow_tags=tags,
        has_plan=plan_source is not None,
        plan_source=plan_source,
        constraints=constraints,
        prunings=prunings,
        self_corrections=corrections,
        outcome=outcome,
        final_answer_chars=len(final),
        final_answer_words=len(final.split()),
        evidence=evidence,
    )


def _groups(calls):
    """Consecutive calls sharing a batch key form one group; a call without one is alone."""
    groups: list[list] = []
    for c in calls:
        if groups and c.batch is not None and groups[-1][-1].batch == c.batch:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


def pattern(sequence) -> str:
    """A compact, comparable form of a tool sequence: runs of the same single tool collapse to
    `Name+`, parallel groups read `[A|B*2]` (names sorted, so order inside a batch doesn't matter;
    `*2`: that tool twice in the group)."""
    parts: list[str] = []
    for group in sequence:
        token = (
            group[0]
            if len(group) == 1
            else "["
            + "|".join(name if group.count(name) == 1 else f"{name}*{group.count(name)}" for name in sorted(set(group)))
            + "]"
        )
        if parts and parts[-1].rstrip("+") == token:
            parts[-1] = token + "+"
        else:
            parts.append(token)
    return " > ".join(parts)


def recovered_by(i, names, statuses, cats):
    """Index of the call that recovers failed call i, or None: a later successful call of the same
    tool (a retry), or, right after the failure, a successful call of another tool of the same
    category (an alternative: Read of a missing file, then Glob finds it)."""
    for j in range(i + 1, len(names)):
        if statuses[j] == "success" and (names[j] == names[i] or (j == i + 1 and cats[j] == cats[i])):
            return j
    return None


def _failures_and_recoveries(calls, cats, evidence):
    failures = recoveries = unrecovered = 0
    names = [c.name for c in calls]
    statuses = [c.status for c in calls]
    for i, c in enumerate(calls):
        if c.status not in FAILED + DENIED:
            continue
        if c.status in FAILED:
            failures += 1
        fix = recovered_by(i, names, statuses, cats)
        if c.status in FAILED:
            evidence.append(
                {
                    "kind": "failure",
                    "tool_use_id": c.tool_use_id,
                    "tool": c.name,
                    "status": c.status,
                    "error": _short(c.error),
                }
            )
        if fix is not None:
            recoveries += 1
            evidence.append(
                {
                    "kind": "recovery",
                    "failed": c.tool_use_id,
                    "by": calls[fix].tool_use_id,
                    "how": "retry" if calls[fix].name == c.name else "alternative",
                    "tool": calls[fix].name,
                }
            )
        elif c.status in FAILED:
            unrecovered += 1
    return failures, recoveries, unrecovered


def _workflow_tags(calls, cats, parallel, config, evidence):
    tags = []
    if any(cat == tools.DELEGATE for cat in cats):
        tags.append("delegated")
    loop = _edit_run_fix(calls, cats)
    if loop:
        tags.append("iterative")
        evidence.append({"kind": "edit_run_fix", "tool_use_ids": loop})
    if parallel:
        tags.append("parallel")
    explore = sum(cat == tools.EXPLORE for cat in cats)
    if explore >= config.exploratory_min_calls and explore >= config.exploratory_share * len(calls):
        tags.append("exploratory")
    if calls and not tags:
        tags.append("linear")
    return tags


def _edit_run_fix(calls, cats):
    """The first edit, then a mutating shell command, then another edit: the loop's tool_use ids."""
    edit = run = None
    for c, cat in zip(calls, cats):
        if cat == tools.CHANGE:
            if edit is not None and run is not None:
                return [edit, run, c.tool_use_id]
            edit = c.tool_use_id
        elif cat == tools.RUN and edit is not None:
            run = c.tool_use_id
    return None


def _plan(turn, calls, config, evidence):
    """A plan/todo tool anywhere in the turn, else steps announced in text before the first call."""
    for c in calls:
        if c.name in tools.PLAN_TOOLS:
            evidence.append({"kind": "plan", "source": "tool", "tool_use_id": c.tool_use_id, "tool": c.name})
            return "tool"
    if not calls:
        return None
    first_ids = {calls[0].tool_use_id}
    for m in turn.messages:
        if first_ids & set(m.tool_use_ids or ()) or (calls[0].message_uuid and m.uuid == calls[0].message_uuid):
            break
        for field_name in ("text", "thinking"):
            body = getattr(m, field_name) or ""
            hit = phrases.announced_plan(body, config.excerpt_chars)
            if hit:
                label, start, end, match, ex = hit
                evidence.append(
                    {
                        "kind": "plan",
                        "source": field_name,
                        "message_uuid": m.uuid,
                        "field": field_name,
                        "span": [start, end],
                        "match": _short(match, 200),
                        "pattern": label,
                        "excerpt": ex,
                    }
                )
                return field_name
    return None


def _phrases(turn, patterns, kind, config, evidence, prompt=False, assistant_patterns=None):
    sources = []
    if prompt and turn.prompt_text:
        sources.append((turn.prompt_uuid, "prompt", turn.prompt_text))
    for m in turn.messages:
        sources.append((m.uuid, "text", m.text))
        if kind != "constraint":
            # Thinking is where pruning and second thoughts happen; constraints are stated aloud.
            sources.append((m.uuid, "thinking", m.thinking))
    count = 0
    for uuid, field_name, body in sources:
        if not body:
            continue
        use = patterns if field_name == "prompt" or assistant_patterns is None else assistant_patterns
        for label, start, end, match, ex in phrases.find(use, body, config.excerpt_chars):
            count += 1
            evidence.append(
                {
                    "kind": kind,
                    "message_uuid": uuid,
                    "field": field_name,
                    "span": [start, end],
                    "match": match,
                    "pattern": label,
                    "excerpt": ex,
                }
            )
    return count


_GIT_REVERT = re.compile(r"\bgit\s+(?:checkout\s+(?:HEAD\s+)?--|restore|reset\s+--hard|stash(?:\s+push)?\b)")


def _tool_corrections(calls, evidence):
    """Retries after an error, and reverts of the turn's own edits."""
    count = 0
    for i, c in enumerate(calls):
        if c.status in FAILED:
            retry = next((j for j in range(i + 1, len(calls)) if calls[j].name == c.name), None)
            if retry is not None:
                count += 1
                evidence.append(
                    {
                        "kind": "self_correction",
                        "source": "tool",
                        "pattern": "retry after error",
                        "tool_use_ids": [c.tool_use_id, calls[retry].tool_use_id],
                    }
                )
    edits: list = []
    for c in calls:
        inp = c.input if isinstance(c.input, dict) else {}
        if c.name == "Edit" and c.status == "success":
            for prev in edits:
                pin = prev.input
                if (
                    pin.get("file_path") == inp.get("file_path")
                    and pin.get("new_string")
                    and pin.get("new_string") == inp.get("old_string")
                    and pin.get("old_string") == inp.get("new_string")
                ):
                    count += 1
                    evidence.append(
                        {
                            "kind": "self_correction",
                            "source": "tool",
                            "pattern": "revert of own edit",
                            "tool_use_ids": [prev.tool_use_id, c.tool_use_id],
                        }
                    )
                    break
        if c.name in ("Edit", "Write", "MultiEdit") and c.status == "success":
            edits.append(c)
        elif c.name in tools.SHELL_TOOLS and edits and _GIT_REVERT.search(str(inp.get("command") or "")):
            count += 1
            evidence.append(
                {
                    "kind": "self_correction",
                    "source": "tool",
                    "pattern": "revert of own edit",
                    "tool_use_ids": [edits[-1].tool_use_id, c.tool_use_id],
                }
            )
    return count


def _derive_outcome(turn, calls, unrecovered):
    """For turns whose outcome the transcript did not settle (hook-only data)."""
    if calls and calls[-1].status in INTERRUPTED:
        return "interrupted"
    if turn.final_answer:
        return "completed"
    if unrecovered:
        return "error"
    return "incomplete"


def _short(s, n=300):
    if s is None:
        return None
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "\u2026"
