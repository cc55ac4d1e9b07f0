"""Baselines: what a model must beat before its numbers mean anything (docs/eval.md).

A trained adapter that scores 75% is no achievement when always answering "Read" scores 38% and a
lookup on the previous tool scores 89%. Two lookups are fitted on the training split, and predict
every held-out step through the same parser and metrics as the model:

- `majority`: always Claude's most frequent tool call in training (a step's tools, in order);
- `previous_tool`: Claude's most frequent next action in training after the same previous action in
  the turn (the turn's start counts as one), falling back to `majority` where training never saw it.

A predicted call carries the arguments Claude most often gave that tool in training, so that a
baseline is judged by the strict metrics on equal terms. The third baseline, the untrained base model,
is a model and is evaluated as one (`runner`). Pure Python; nothing heavy.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..chat import toolcalls
from .steps import Step

START = "<start>"  # the previous action of a turn's first step
ANSWER: tuple[str, ...] = ()  # an action without tool calls
NAMES = {"majority": "majority next tool", "previous_tool": "next tool given the previous one"}


def signature(message: dict) -> tuple[str, ...]:
    """An assistant message's tool names in order (empty: it answered)."""
    return tuple(c.name or "?" for c in toolcalls.action_from_message(message).calls)


def previous_action(step: Step) -> tuple[str, ...] | str:
    """The signature of the turn's assistant message before this step, or START for its first step."""
    start = max((i for i, m in enumerate(step.context) if m.get("role") == "user"), default=-1) + 1
    for message in reversed(step.context[start:]):
        if message.get("role") == "assistant":
            return signature(message)
    return START


def render_call(name: str, arguments: dict) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


@dataclass
class Baselines:
    """Both lookups, fitted on training steps: `predict(kind, step)` is a prediction in the model's format."""

    majority: tuple[str, ...] = ()
    after: dict = field(default_factory=dict)  # previous signature -> most frequent next signature
    arguments: dict = field(default_factory=dict)  # tool -> Claude's most frequent arguments for it
    answer: str = "Done."
    train_steps: int = 0

    @classmethod
    def fit(cls, steps: list[Step]) -> Baselines:
        calls: Counter = Counter()
        after: dict = defaultdict(Counter)
        arguments: dict = defaultdict(Counter)
        answers: Counter = Counter()
        for step in steps:
            action = toolcalls.action_from_message(step.target)
            sig = signature(step.target)
            after[previous_action(step)][sig] += 1
            if sig:
                calls[sig] += 1
            else:
                answers[action.text] += 1
            for call in action.calls:
                if call.name and call.arguments is not None:
                    arguments[call.name][json.dumps(call.arguments, sort_keys=True, ensure_ascii=False)] += 1
        return cls(
            majority=calls.most_common(1)[0][0] if calls else ANSWER,
            after={prev: counts.most_common(1)[0][0] for prev, counts in after.items()},
            arguments={name: json.loads(counts.most_common(1)[0][0]) for name, counts in arguments.items()},
            answer=answers.most_common(1)[0][0] if answers else "Done.",
            train_steps=len(steps),
        )

    def action(self, kind: str, step: Step) -> tuple[str, ...]:
        if kind == "majority":
            return self.majority
        if kind == "previous_tool":
            return self.after.get(previous_action(step), self.majority)
        raise ValueError(f"unknown baseline {kind!r}")

    def predict(self, kind: str, step: Step) -> str:
        names = self.action(kind, step)
        if not names:
            return self.answer
        return "\n".join(render_call(name, self.arguments.get(name, {})) for name in names)


def evaluate(baselines: Baselines, steps: list[Step], reward_fn=None) -> dict[str, dict]:
    """Each baseline's report on `steps`, by the same metrics as a model."""
    from .metrics import aggregate, score_step

    out = {}
    for kind in NAMES:
        report = aggregate([score_step(s, baselines.predict(kind, s), reward_fn) for s in steps])
        report["train_steps"] = baselines.train_steps
        out[kind] = report
    return out
