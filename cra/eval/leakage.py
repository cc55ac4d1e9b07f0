"""Is the held-out split held out? Exact overlaps between the eval steps and the training split.

Two checks, both on content with tool-call ids left out (every recording has its own ids):

- `same_step`: an eval step whose whole context and action are a training step too: the model was
  trained on exactly what it is asked, so that step is not held out at all;
- `same_action`: an eval step whose action (text and tool calls with their arguments) appears
  verbatim as some training step's action: sessions that repeat the same actions let a lookup of
  training actions score well, so only a comparison with the baselines says whether a model learned
  more than that.
"""

from __future__ import annotations

import hashlib
import json

from .intervals import wilson
from .steps import Step

SAME_ACTION_WARNING = 0.5  # warn when at least this share of eval actions appears verbatim in training


def _without_ids(value):
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("id", "tool_call_id")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _key(value) -> str:
    blob = json.dumps(_without_ids(value), sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def action_key(message: dict) -> str:
    """The action itself: text and tool calls (name, arguments), parsed where they are JSON strings."""
    calls = []
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function", tc)
        args = fn.get("arguments")
        try:
            args = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            pass
        calls.append([fn.get("name"), args])
    return _key([(message.get("content") or "").strip(), calls])


def step_key(step: Step) -> str:
    return _key([step.context, action_key(step.target), step.tools])


def check(eval_steps: list[Step], train_steps: list[Step]) -> dict:
    """Overlap counts with Wilson intervals, and the warnings to print (empty when nothing overlaps)."""
    train_steps_seen = {step_key(s) for s in train_steps}
    train_actions = {action_key(s.target) for s in train_steps}
    same_step = sum(step_key(s) in train_steps_seen for s in eval_steps)
    same_action = sum(action_key(s.target) in train_actions for s in eval_steps)
    n = len(eval_steps)
    warnings = []
    if same_step:
        warnings.append(
            f"{same_step} of {n} held-out steps appear in the training split exactly (context and action): "
            "the same work was recorded in a training session too, so these steps are not held out."
        )
    if n and same_action / n >= SAME_ACTION_WARNING:
        warnings.append(
            f"{100 * same_action / n:.0f}% of held-out actions appear verbatim in the training split: a lookup of "
            "training actions can score well here, so judge the model against the baselines."
        )
    return {
        "train_steps": len(train_steps),
        "same_step": wilson(same_step, n).as_dict(),
        "same_action": wilson(same_action, n).as_dict(),
        "warnings": warnings,
    }
