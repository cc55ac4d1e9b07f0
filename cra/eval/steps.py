"""Held-out steps: every point in a recorded turn where Claude acted, with the conversation before it.

A step is (context, target): the messages up to an assistant message of the turn, and that message
(tool calls, or the final answer). Examples come from a dataset split in `cra dataset build`'s openai
format, per turn or per step (a per-step dataset repeats each turn's prefix; identical steps are
kept once). Synthetic examples (`cra bootstrap`) and other agents' traces (`cra import --format
openai-trace`) are never evaluated: the held-out steps are Claude's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, NotFoundError
from ..jsonl import numbered_rows


@dataclass
class Step:
    step_id: str  # content hash of context + target: the same step always has the same id
    turn_key: str  # which turn it belongs to (session:turn from the example's meta, else the example)
    index: int  # position among the turn's assistant messages (0 = the first action after the prompt)
    turn_steps: int  # how many steps the turn has in the dataset (before any --limit)
    context: list[dict]
    target: dict
    tools: str | None  # the example's tool schemas (JSON string), as the model is shown them
    session_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "turn_key": self.turn_key,
            "index": self.index,
            "turn_steps": self.turn_steps,
            "context": self.context,
            "target": self.target,
            "tools": self.tools,
            "session_id": self.session_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        values: dict[str, Any] = {k: d.get(k) for k in cls.__dataclass_fields__}
        return cls(**values)


def _is_synthetic(example: dict) -> bool:
    meta = example.get("meta") or {}
    return (
        bool(meta.get("synthetic"))
        or meta.get("source") == "bootstrap"
        or str(meta.get("session_id") or "").startswith("synthetic-")
    )


def _digest(context: list[dict], target: dict, tools: str | None) -> str:
    blob = json.dumps([context, target, tools], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def steps_from_examples(examples: Iterable[dict]) -> tuple[list[Step], dict[str, int]]:
    """Every step of every real example, in dataset order; and counts of what was skipped."""
    steps: list[Step] = []
    seen: set[str] = set()
    skipped = {"synthetic_examples": 0, "trace_examples": 0, "duplicate_steps": 0, "examples_without_steps": 0}
    turn_sizes: dict[str, int] = {}
    for n, example in enumerate(examples):
        if "messages" not in example:
            raise InputFormatError(
                "the dataset is not in the openai format (no 'messages'): "
                "build it with `cra dataset build --format openai`"
            )
        if _is_synthetic(example):
            skipped["synthetic_examples"] += 1
            continue
        if (example.get("meta") or {}).get("source") == "openai-trace":  # another agent's, not Claude's
            skipped["trace_examples"] += 1
            continue
        messages = example["messages"]
        meta = example.get("meta") or {}
        if meta.get("session_id") is not None and meta.get("turn_id") is not None:
            turn_key = f"{meta['session_id']}:{meta['turn_id']}"
        else:
            turn_key = f"example-{n}"
        # The turn starts after its prompt: earlier assistant messages are context from previous turns.
        start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1) + 1
        index = 0
        found = 0
        for i in range(start, len(messages)):
            if messages[i].get("role") != "assistant":
                continue
            context, target = messages[:i], messages[i]
            step_id = _digest(context, target, example.get("tools"))
            found += 1
            if step_id in seen:
                skipped["duplicate_steps"] += 1
            else:
                seen.add(step_id)
                steps.append(
                    Step(step_id, turn_key, index, 0, context, target, example.get("tools"), meta.get("session_id"))
                )
            index += 1
        if not found:
            skipped["examples_without_steps"] += 1
        turn_sizes[turn_key] = max(turn_sizes.get(turn_key, 0), index)
    for step in steps:
        step.turn_steps = turn_sizes[step.turn_key]
    return steps, skipped


def read_jsonl(path: Path) -> list[dict]:
    try:
        return [row for _, row in numbered_rows(path, lambda message: InputFormatError(f"{path}: {message}"))]
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror}") from exc


def load_steps(path: Path, limit: int | None = None) -> tuple[list[Step], dict[str, int]]:
    steps, skipped = steps_from_examples(read_jsonl(path))
    if limit is not None and limit < len(steps):
        skipped["beyond_limit"] = len(steps) - limit
        steps = steps[:limit]
    return steps, skipped


def steps_hash(steps: list[Step]) -> str:
    """Identifies a set of steps: evaluations on the same hash saw exactly the same contexts."""
    h = hashlib.sha256()
    for s in steps:
        h.update(s.step_id.encode())
    return h.hexdigest()[:16]
