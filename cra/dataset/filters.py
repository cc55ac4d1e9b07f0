"""Which turns are good enough to train on: the thresholds in one config, and one evaluator.

Defaults come from the original design: a training turn used tools (at least 3 calls), ended
with a real answer (at least 50 words), finished normally (not interrupted, not an API error,
not incomplete), and did not leave an error unrecovered. Every threshold is a `cra dataset build`
flag; the build reports how many turns each filter removed (the first filter a turn fails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

# Statuses that are errors of the call itself; a denial is the user's choice, not an error.
from ..db.schema import ERRORED as FAILED

_WORD = re.compile(r"\S+")


def word_count(text: str | None) -> int:
    return len(_WORD.findall(text or ""))


@dataclass
class TurnFacts:
    """What the filters look at, gathered from turns + tool_calls (or a synthetic workflow)."""

    tool_call_count: int
    final_answer: str | None
    outcome: str | None  # completed, interrupted, error, incomplete
    calls: list = field(default_factory=list)  # [(tool_name, status, category)] in order


def unrecovered_failures(calls) -> int:
    """Failed calls never recovered, by the signals stage's definition (one source:
    cra.signals.extract.recovered_by): a later success of the same tool (a retry), or, right after
    the failure, a success of another tool in the same category (an alternative)."""
    from ..signals.extract import recovered_by

    names = [n for n, _, _ in calls]
    statuses = [s for _, s, _ in calls]
    # A call without a category never counts as another's alternative.
    cats = [c if c is not None else ("?", i) for i, (_, _, c) in enumerate(calls)]
    return sum(1 for i, s in enumerate(statuses) if s in FAILED and recovered_by(i, names, statuses, cats) is None)


@dataclass
class TurnFilters:
    min_tool_calls: int = field(default=3, metadata={"help": "Keep turns with at least this many tool calls."})
    min_answer_words: int = field(
        default=50, metadata={"help": "Keep turns whose final answer has at least this many words."}
    )
    skip_failed: bool = field(default=True, metadata={"help": "Skip interrupted, errored and incomplete turns."})
    skip_unrecovered: bool = field(default=True, metadata={"help": "Skip turns with a failed call never recovered."})

    # Filter names in evaluation order, as reported by the build.
    ORDER = ("failed_or_interrupted", "too_few_tool_calls", "short_final_answer", "unrecovered_error")

    def __post_init__(self):
        if self.min_tool_calls < 0 or self.min_answer_words < 0:
            raise ValueError("filter thresholds cannot be negative")

    def evaluate(self, facts: TurnFacts) -> str | None:
        """The first filter the turn fails, or None when it is kept."""
        if self.skip_failed and (facts.outcome or "completed") != "completed":
            return "failed_or_interrupted"
        if facts.tool_call_count < self.min_tool_calls:
            return "too_few_tool_calls"
        if word_count(facts.final_answer) < self.min_answer_words:
            return "short_final_answer"
        if self.skip_unrecovered and unrecovered_failures(facts.calls):
            return "unrecovered_error"
        return None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
