"""Comparing the model's next action with Claude's, step by step and turn by turn (docs/eval.md).

Pure functions over plain data: `score_step` compares one prediction with Claude's action,
`aggregate` turns scored steps into the report (every rate with a Wilson interval, every mean with a
t interval). Sequence metrics are teacher-forced: at every step the model saw Claude's real history
(its calls and their results), and the names it predicted step after step form its rollout.

Strict metrics come first: a call counts only if it parses, names a tool the step offered and has
valid arguments, and a step with several calls (Claude's parallel calls) is scored call by call: the
valid calls' tools against Claude's as a multiset (all of them: set match; each: partial credit).
The lenient metrics (the first call's tool name, even from a broken call) are kept beside them,
labelled as such.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..chat import toolcalls
from ..signals.situations import exploration_depth
from .intervals import mean_ci, wilson
from .steps import Step

STOP = "<answer>"  # the sequence token for "answered instead of calling a tool"


@dataclass
class StepScore:
    step_id: str
    turn_key: str
    index: int
    turn_steps: int
    target_kind: str  # 'call' or 'answer'
    pred_kind: str
    target_names: list[str | None]
    pred_names: list[str | None]
    target_calls: list[dict]  # [{name, arguments}] (Claude's)
    pred_calls: list[dict]  # [{name, arguments}] (the model's, arguments None when unparseable)
    stop_correct: bool
    name_correct: bool | None  # None on Claude's answer steps: there is no tool to agree with
    exact_args: bool | None
    arg_similarity: float | None  # only where the tool name agrees
    calls_parseable: int
    calls_known: int
    calls_valid_args: int
    calls_valid: int
    # Strict: only valid calls count (parsed, offered tool, valid arguments); parallel steps per call.
    strict_matched: int = 0  # Claude's calls whose tool a valid call of the model names (multiset)
    strict_set_match: bool | None = None  # every call valid and the tools are exactly Claude's (call steps)
    strict_credit: float | None = None  # matched / max(model's calls, Claude's calls) (call steps)
    strict_exact: bool | None = None  # set match and every call's arguments equal Claude's (call steps)
    strict_stop_correct: bool = False  # answered where Claude answered, a valid call where Claude called
    reward: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _multiset_overlap(a: list, b: list) -> int:
    return sum((Counter(a) & Counter(b)).values())


def _exact_calls(valid: list[toolcalls.ParsedCall], target: list[toolcalls.ParsedCall]) -> bool:
    """Every one of Claude's calls paired with a distinct valid call of the same tool and equal arguments."""
    left = list(valid)
    for t in target:
        match = next(
            (c for c in left if c.name == t.name and toolcalls.arguments_equal(c.arguments, t.arguments)), None
        )
        if match is None:
            return False
        left.remove(match)
    return not left


def score_step(step: Step, prediction: str, reward_fn: Callable | None = None) -> StepScore:
    target = toolcalls.action_from_message(step.target)
    pred = toolcalls.parse_action(prediction)
    schemas = toolcalls.tool_schemas(step.tools)
    validity = [toolcalls.check_call(c, schemas) for c in pred.calls]
    valid = [c for c, v in zip(pred.calls, validity) if v.valid]
    all_valid = len(valid) == len(pred.calls)
    matched = _multiset_overlap([c.name for c in valid], [c.name for c in target.calls])
    set_match = credit = strict_exact = None
    if target.kind == "call":
        set_match = all_valid and sorted(c.name or "" for c in valid) == sorted(c.name or "" for c in target.calls)
        credit = matched / max(len(pred.calls), len(target.calls))
        strict_exact = set_match and _exact_calls(valid, target.calls)
        strict_stop = bool(valid)
    else:
        strict_stop = pred.kind == "answer"
    name_correct = exact = similarity = None
    if target.kind == "call":
        t0, p0 = target.calls[0], (pred.calls[0] if pred.calls else None)
        name_correct = p0 is not None and p0.name == t0.name
        if p0 is not None and name_correct:
            exact = toolcalls.arguments_equal(p0.arguments, t0.arguments)
            similarity = toolcalls.argument_similarity(t0.name, p0.arguments, t0.arguments)
        else:
            exact = False
    return StepScore(
        step_id=step.step_id,
        turn_key=step.turn_key,
        index=step.index,
        turn_steps=step.turn_steps,
        target_kind=target.kind,
        pred_kind=pred.kind,
        target_names=[c.name for c in target.calls],
        pred_names=pred.names,
        target_calls=[{"name": c.name, "arguments": c.arguments} for c in target.calls],
        pred_calls=[{"name": c.name, "arguments": c.arguments} for c in pred.calls],
        stop_correct=pred.kind == target.kind,
        name_correct=name_correct,
        exact_args=exact,
        arg_similarity=similarity,
        calls_parseable=sum(v.parseable for v in validity),
        calls_known=sum(v.known_tool for v in validity),
        calls_valid_args=sum(v.valid_arguments for v in validity),
        calls_valid=sum(v.valid for v in validity),
        strict_matched=matched,
        strict_set_match=set_match,
        strict_credit=credit,
        strict_exact=strict_exact,
        strict_stop_correct=strict_stop,
        reward=reward_fn(step, prediction) if reward_fn else {},
    )


def edit_distance(a: list, b: list) -> int:
    """Levenshtein distance between two sequences (insertions, deletions, substitutions cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def normalized_edit_distance(a: list, b: list) -> float:
    """Edit distance over the longer length: 0 identical, 1 nothing in common (both empty: 0)."""
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0


@dataclass
class TurnScore:
    turn_key: str
    claude_sequence: list[str]
    model_sequence: list[str]
    edit_distance: int
    normalized_edit_distance: float
    claude_depth: str | None
    model_depth: str | None
    claude_exploration_calls: int
    model_exploration_calls: int

    @property
    def depth_agrees(self) -> bool:
        return self.claude_depth == self.model_depth


def score_turns(scores: list[StepScore]) -> list[TurnScore]:
    """Sequence-level scores for every turn whose steps were all evaluated (a --limit can cut one)."""
    by_turn: dict[str, list[StepScore]] = defaultdict(list)
    for s in scores:
        by_turn[s.turn_key].append(s)
    out = []
    for key, steps in by_turn.items():
        steps.sort(key=lambda s: s.index)
        if [s.index for s in steps] != list(range(steps[0].turn_steps)):
            continue
        claude = [n or "?" for s in steps for n in (s.target_names or [STOP])]
        model = [n or "?" for s in steps for n in (s.pred_names or [STOP])]
        claude_depth, claude_explore = exploration_depth([c for s in steps for c in s.target_calls])
        model_depth, model_explore = exploration_depth([c for s in steps for c in s.pred_calls])
        out.append(
            TurnScore(
                key,
                claude,
                model,
                edit_distance(claude, model),
                normalized_edit_distance(claude, model),
                claude_depth,
                model_depth,
                claude_explore,
                model_explore,
            )
        )
    return out


def _prop(flags) -> dict:
    flags = [bool(f) for f in flags]
    return wilson(sum(flags), len(flags)).as_dict()


def aggregate(scores: list[StepScore]) -> dict[str, Any]:
    """The report for one model on a set of steps (keys documented in docs/eval.md)."""
    calls = [s for s in scores if s.target_kind == "call"]
    attempted = sum(len(s.pred_names) for s in scores)
    by_tool: dict[str, list[float]] = defaultdict(list)
    for s in calls:
        if s.arg_similarity is not None:
            by_tool[s.target_names[0] or "?"].append(s.arg_similarity)
    turns = score_turns(scores)
    reward_keys = sorted({k for s in scores for k in s.reward})
    claude_calls = sum(len(s.target_names) for s in calls)
    return {
        "steps": len(scores),
        "call_steps": len(calls),
        "answer_steps": len(scores) - len(calls),
        "strict": {
            "tool_name_accuracy": _prop(s.strict_set_match for s in calls),
            "tool_name_credit": mean_ci([s.strict_credit for s in calls], 0, 1).as_dict(),
            "exact_action": _prop(s.strict_exact for s in calls),
            "stop_accuracy": _prop(s.strict_stop_correct for s in scores),
            "call_recall": wilson(sum(s.strict_matched for s in calls), claude_calls).as_dict(),
            "call_precision": wilson(sum(s.strict_matched for s in scores), attempted).as_dict(),
        },
        "tool_name_accuracy": _prop(s.name_correct for s in calls),
        "stop_accuracy": _prop(s.stop_correct for s in scores),
        "exact_args": _prop(s.exact_args for s in calls),
        "arg_similarity": mean_ci([s.arg_similarity for s in calls if s.arg_similarity is not None], 0, 1).as_dict(),
        "arg_similarity_by_tool": {t: mean_ci(v, 0, 1).as_dict() for t, v in sorted(by_tool.items())},
        "format": {
            "calls": attempted,
            "parseable": wilson(sum(s.calls_parseable for s in scores), attempted).as_dict(),
            "known_tool": wilson(sum(s.calls_known for s in scores), attempted).as_dict(),
            "valid_arguments": wilson(sum(s.calls_valid_args for s in scores), attempted).as_dict(),
            "valid": wilson(sum(s.calls_valid for s in scores), attempted).as_dict(),
        },
        "sequence": {
            "turns": len(turns),
            "edit_distance": mean_ci([t.normalized_edit_distance for t in turns], 0, 1).as_dict(),
            "raw_edit_distance": mean_ci([t.edit_distance for t in turns], 0).as_dict(),
            "depth_agreement": _prop(t.depth_agrees for t in turns),
            "exploration_calls_diff": mean_ci(
                [abs(t.model_exploration_calls - t.claude_exploration_calls) for t in turns], 0
            ).as_dict(),
        },
        "reward": {k: mean_ci([s.reward[k] for s in scores if k in s.reward], 0, 1).as_dict() for k in reward_keys},
    }
