"""Thresholds for the signals, with their defaults in one place (docs/signals.md explains each).

A stored signals row remembers the fingerprint of the config it was computed with: changing a
threshold makes `cra signals` recompute every turn.
"""

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Bump when the extraction logic changes: stored rows computed by an older version are recomputed.
SIGNALS_VERSION = 1


class DepthThresholds(BaseModel):
    """Exploration calls (reads, searches, read-only shell, web) before the first change.

    Fewer than `moderate` is minimal; then moderate, thorough, and from `exhaustive` on, exhaustive.
    """

    model_config = ConfigDict(extra="forbid")

    moderate: int = Field(2, ge=1)
    thorough: int = Field(5, ge=1)
    exhaustive: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _increasing(self):
        if not self.moderate < self.thorough < self.exhaustive:
            raise ValueError(
                f"depth thresholds must increase: moderate ({self.moderate}) < thorough "
                f"({self.thorough}) < exhaustive ({self.exhaustive})"
            )
        return self

    def label(self, exploration_calls: int) -> str:
        if exploration_calls >= self.exhaustive:
            return "exhaustive"
        if exploration_calls >= self.thorough:
            return "thorough"
        if exploration_calls >= self.moderate:
            return "moderate"
        return "minimal"


class SignalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: DepthThresholds = Field(default_factory=DepthThresholds)
    # A turn is exploratory when at least this many of its calls explore...
    exploratory_min_calls: int = Field(3, ge=1)
    # ...and they are at least this share of all its calls.
    exploratory_share: float = Field(0.6, gt=0, le=1)
    # Calls issued in one assistant message form a parallel group from this size on.
    parallel_min_group: int = Field(2, ge=2)
    # Characters of context kept with each piece of text evidence.
    excerpt_chars: int = Field(160, ge=20, le=2000)

    def fingerprint(self) -> str:
        """Identifies the logic and thresholds a row was computed with."""
        blob = json.dumps({"version": SIGNALS_VERSION, **self.model_dump()}, sort_keys=True)
        return "v%d-%s" % (SIGNALS_VERSION, hashlib.sha256(blob.encode()).hexdigest()[:12])

    @classmethod
    def from_file(cls, path) -> "SignalConfig":
        """Read a JSON or TOML file holding SignalConfig's fields (all optional)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            from ..compat import tomllib

            data = tomllib.loads(text)
            data = data.get("signals", data)
        else:
            data = json.loads(text)
        return cls.model_validate(data)


__all__ = ["DepthThresholds", "SignalConfig", "SIGNALS_VERSION", "ValidationError"]
