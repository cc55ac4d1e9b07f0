"""The behavioral reward's weights, with the original design's defaults.

reward = format x format_validity + agreement x agreement + behavior x gate x behavioral

behavioral = the original design's mix: constraint adherence 25%, reasoning depth 20%, tool
efficiency 20%, self-correction 15%, exploration fit 20%. The block weights (format 0.2, agreement
0.4, behavior 0.4) add what keeps the reward honest; `gate` (see cra/behavioral_reward/score.py) stops an empty
or malformed action, or one of a different kind than Claude's, from collecting behavioural credit.
Each group is normalised to sum to 1, so a weights file may give any positive numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

BEHAVIOR_DEFAULTS = {
    "constraint_adherence": 0.25,
    "reasoning_depth": 0.20,
    "tool_efficiency": 0.20,
    "self_correction": 0.15,
    "exploration_fit": 0.20,
}


class RewardWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: float = Field(0.2, ge=0, description="Block weight: well-formed tool calls.")
    agreement: float = Field(0.4, ge=0, description="Block weight: agreement with Claude's real next action.")
    behavior: float = Field(0.4, ge=0, description="Block weight: the behavioural components below.")
    constraint_adherence: float = Field(0.25, ge=0)
    reasoning_depth: float = Field(0.20, ge=0)
    tool_efficiency: float = Field(0.20, ge=0)
    self_correction: float = Field(0.15, ge=0)
    exploration_fit: float = Field(0.20, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self):
        if self.format + self.agreement + self.behavior <= 0:
            raise ValueError("format, agreement and behavior weights cannot all be 0")
        if self.behavior > 0 and sum(getattr(self, k) for k in BEHAVIOR_DEFAULTS) <= 0:
            raise ValueError("behavior > 0 needs at least one behavioural component weight > 0")
        return self

    def effective(self) -> dict[str, float]:
        """Each component's share of the total reward (sums to 1)."""
        blocks = self.format + self.agreement + self.behavior
        inner = sum(getattr(self, k) for k in BEHAVIOR_DEFAULTS) or 1.0
        out = {"format_validity": self.format / blocks, "agreement": self.agreement / blocks}
        for k in BEHAVIOR_DEFAULTS:
            out[k] = self.behavior / blocks * getattr(self, k) / inner
        return out


def parse_weights(value: Any) -> RewardWeights:
    """Weights from a dict, a JSON/TOML file path, or "name=value,name=value" (unnamed ones keep their defaults)."""
    if value is None or isinstance(value, RewardWeights):
        return value or RewardWeights()
    if isinstance(value, dict):
        return RewardWeights(**value)
    text = str(value).strip()
    path = Path(text)
    if text.endswith((".json", ".toml")) and path.is_file():
        raw = path.read_text(encoding="utf-8")
        if text.endswith(".toml"):
            from ..compat import tomllib

            data = tomllib.loads(raw)
            data = data.get("reward", data)
        else:
            data = json.loads(raw)
        return RewardWeights(**data)
    data = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"weights: expected name=value, got {part!r}")
        key, number = part.split("=", 1)
        try:
            data[key.strip().replace("-", "_")] = float(number)
        except ValueError as exc:
            raise ValueError(f"weights: {number!r} is not a number") from exc
    return RewardWeights(**data)
