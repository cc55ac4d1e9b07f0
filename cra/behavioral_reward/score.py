"""Combining the components into one reward, and the same reward as TRL reward functions.

>>> from cra.behavioral_reward import Context, score_text
>>> ctx = Context.build([{"role": "user", "content": "What is in a.py?"}], [],
...                    {"role": "assistant", "content": "", "tool_calls": [
...                        {"function": {"name": "Read", "arguments": '{"file_path": "a.py"}'}}]})
>>> round(score_text(ctx, '<tool_call>{"name": "Read", "arguments": {"file_path": "a.py"}}</tool_call>').total, 3)
1.0
"""

from __future__ import annotations

import json
import statistics
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..chat.toolcalls import ParsedAction, parse_action
from .components import BEHAVIOR_COMPONENTS, Component, agreement, format_validity
from .config import RewardWeights, parse_weights
from .context import Context

COMPONENTS = ("format_validity", "agreement", *BEHAVIOR_COMPONENTS)


@dataclass
class Score:
    total: float
    components: dict[str, Component]
    gate: float
    weights: dict[str, float]  # effective share of each component
    contributions: dict[str, float] = field(default_factory=dict)  # what each adds to total

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "gate": self.gate,
            "components": {
                k: {
                    "score": c.score,
                    "weight": self.weights[k],
                    "contribution": self.contributions[k],
                    "reason": c.reason,
                }
                for k, c in self.components.items()
            },
        }


def behavior_gate(ctx: Context, action: ParsedAction, fmt: Component) -> float:
    """How much behavioural credit an action may collect: its format score when it is the same kind
    of action as Claude's (both call tools, or both answer), else 0.

    Without it, doing nothing would score well on "broke no constraint" and "wasted no call".
    """
    same_kind = bool(action.calls) == bool(ctx.reference_action.calls)
    return fmt.score if same_kind else 0.0


def score_action(ctx: Context, action: ParsedAction, weights: RewardWeights | None = None) -> Score:
    weights = weights or RewardWeights()
    share = weights.effective()
    comps: dict[str, Component] = {
        "format_validity": format_validity(ctx, action),
        "agreement": agreement(ctx, action),
    }
    for name, fn in BEHAVIOR_COMPONENTS.items():
        comps[name] = fn(ctx, action)
    gate = behavior_gate(ctx, action, comps["format_validity"])
    contributions = {}
    for name, comp in comps.items():
        factor = 1.0 if name in ("format_validity", "agreement") else gate
        contributions[name] = share[name] * factor * comp.score
    return Score(sum(contributions.values()), comps, gate, share, contributions)


def score_text(ctx: Context, completion: str, weights: RewardWeights | None = None) -> Score:
    """Score a generated assistant message (raw text, as the model wrote it) at this context."""
    return score_action(ctx, parse_action(completion), weights)


def completion_text(completion) -> str:
    """TRL hands completions as text, or (conversational data) as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    parts = []
    for m in completion or ():
        content = m.get("content")
        parts.append(content if isinstance(content, str) else json.dumps(content))
        for tc in m.get("tool_calls") or ():  # a response parser already split the calls out
            fn = tc.get("function", tc)
            args = fn.get("arguments")
            args = json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args
            parts.append("<tool_call>" + json.dumps({"name": fn.get("name"), "arguments": args}) + "</tool_call>")
    return "\n".join(p for p in parts if p)


class RewardScorer:
    """Scores batches of completions for TRL, once per completion: every component's reward function
    reads the same cached Score, so the components TRL logs add up to the reward it trains on.

    Dataset columns it reads: `context` (JSON: messages, tools, reference; see `Context.to_json`).
    Also keeps per-batch statistics (mean and standard deviation of the total and of each component)
    for the run registry.
    """

    def __init__(self, weights: RewardWeights | str | dict | None = None, cache_size: int = 4096):
        self.weights = parse_weights(weights)
        self.share = self.weights.effective()
        self._cache: OrderedDict = OrderedDict()
        self._contexts: dict[str, Context] = {}
        self.cache_size = cache_size
        self.history: list[dict] = []  # one entry per scored batch

    def context(self, raw: str | dict) -> Context:
        key = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
        ctx = self._contexts.get(key)
        if ctx is None:
            data = json.loads(raw) if isinstance(raw, str) else raw
            ctx = Context.build(data["messages"], data.get("tools"), data["reference"])
            if len(self._contexts) > self.cache_size:
                self._contexts.clear()
            self._contexts[key] = ctx
        return ctx

    def score(self, context_raw, completion) -> Score:
        text = completion_text(completion)
        key = (context_raw if isinstance(context_raw, str) else json.dumps(context_raw, sort_keys=True), text)
        hit = self._cache.get(key)
        if hit is None:
            hit = score_text(self.context(context_raw), text, self.weights)
            self._cache[key] = hit
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return hit

    def batch(self, completions, context) -> list[Score]:
        scores = [self.score(c, t) for c, t in zip(context, completions)]
        self._record(scores)
        return scores

    def _record(self, scores: list[Score]) -> None:
        if not scores:
            return
        entry: dict[str, Any] = {"n": len(scores)}
        for name in ("total", *COMPONENTS):
            values = [s.total if name == "total" else s.components[name].score for s in scores]
            entry[name] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
        self.history.append(entry)

    def reward_functions(self) -> tuple[list, list[float]]:
        """(functions, weights) for GRPOTrainer: one function per component (named after it, so TRL
        logs `rewards/<component>/mean` and `/std`), each returning its gated score; the weights are
        the components' shares, so TRL's weighted sum is exactly `Score.total`."""
        funcs = []
        for name in COMPONENTS:
            funcs.append(self._function(name))
        return funcs, [self.share[n] for n in COMPONENTS]

    def _function(self, name: str):
        first = name == COMPONENTS[0]

        def reward(prompts=None, completions=None, context=None, **kwargs):
            if context is None:
                raise ValueError("the behavioral reward needs the dataset's `context` column")
            scores = (
                self.batch(completions, context) if first else [self.score(c, t) for c, t in zip(context, completions)]
            )
            out = []
            for s in scores:
                factor = 1.0 if name in ("format_validity", "agreement") else s.gate
                out.append(factor * s.components[name].score)
            return out

        reward.__name__ = name
        reward.__doc__ = f"cra's behavioral reward, component {name} (gated as in Score.total)."
        return reward
