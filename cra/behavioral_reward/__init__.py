"""The behavioral reward: how much a generated assistant action behaves like Claude at that point.

Shared by RL training (`cra train grpo`) and evaluation. Pure Python over plain data: a `Context`
(the conversation before one of Claude's actions, the tools offered, and Claude's real action) and a
generated message; `score_text` returns the total and every component with its reason.
docs/rl.md describes the components and the weights.
"""

from .components import (
    BEHAVIOR_COMPONENTS,
    Component,
    agreement,
    constraint_adherence,
    exploration_fit,
    format_validity,
    reasoning_depth,
    self_correction,
    tool_efficiency,
)
from .config import RewardWeights, parse_weights
from .context import Context, contexts_from_example
from .score import COMPONENTS, RewardScorer, Score, score_action, score_text

__all__ = [
    "BEHAVIOR_COMPONENTS",
    "COMPONENTS",
    "Component",
    "Context",
    "RewardScorer",
    "RewardWeights",
    "Score",
    "agreement",
    "constraint_adherence",
    "contexts_from_example",
    "exploration_fit",
    "format_validity",
    "parse_weights",
    "reasoning_depth",
    "score_action",
    "score_text",
    "self_correction",
    "tool_efficiency",
]
