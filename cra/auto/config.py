"""`cra auto` settings: when a cycle is due, and how each stage of a cycle runs.

Defaults are the original design's thresholds. They are read from `$CRA_HOME/auto.toml` (or `.json`,
`.yaml`) when it exists, and from nothing else: `cra stats` and `cra status` read the same file, so
the readiness they show is the one the orchestrator acts on. Sections `[filters]`, `[dataset]`,
`[sft]` and `[grpo]` hold options of `cra dataset build` and `cra train sft|grpo`, checked when the
file is read, not hours later when the stage starts.

    min_new_turns = 20
    [sft]
    max_steps = 200
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..dataset.qualifying import MIN_TRAINING_TURNS
from ..errors import ConfigError, CraError, MissingDependencyError
from ..train.config import DEFAULT_BASE

CONFIG_NAMES = ("auto.toml", "auto.json", "auto.yaml", "auto.yml")
# Set by a cycle's stages themselves, never by the config.
_SFT_OWN = ("base", "dataset", "runs_dir")
_GRPO_OWN = ("sft_run", "base", "dataset", "runs_dir")
_DATASET_OWN = ("filters",)


class AutoSettings(BaseModel):
    """Thresholds and stage settings of continuous learning (docs/auto.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    min_new_turns: int = Field(
        50, ge=1, description="A cycle when this many new qualifying turns accumulated since the last one."
    )
    min_total_turns: int = Field(
        MIN_TRAINING_TURNS,
        ge=1,
        description="Qualifying turns needed before the first cycle (and for the time trigger).",
    )
    max_interval_hours: float = Field(
        24.0, gt=0, description="Or a cycle this long after the last one, given min_total_turns..."
    )
    interval_min_new_turns: int = Field(
        1, ge=0, description="...and at least this many new turns (retraining on the same data changes nothing)."
    )
    rl_every: int = Field(2, ge=0, description="The RL stage (GRPO) runs on every Nth cycle (0: never).")
    base: str = Field(DEFAULT_BASE, description="Base model every cycle trains from: a hub id or a local directory.")
    export: bool = Field(True, description="Export each cycle's model as GGUF.")
    export_outtype: str = Field("f16", description="GGUF tensor type of the export (see `cra export gguf --help`).")
    promote_metric: str = Field(
        "reward.total",
        description="Eval report key that decides promotion (docs/eval.md): reward.total, tool_name_accuracy, "
        "stop_accuracy, exact_args, arg_similarity, format.valid, ...",
    )
    promote_tolerance: float = Field(0.0, ge=0, description="Promote when new >= promoted - this (not worse).")
    eval_limit: int = Field(0, ge=0, description="Evaluate on the first N held-out steps (0: all).")
    eval_max_new_tokens: int = Field(256, ge=1, description="Longest generated action during evaluation.")
    eval_batch_size: int = Field(8, ge=1, description="Steps generated together during evaluation.")
    eval_cpu_threads: int = Field(0, ge=0, description="Torch CPU threads during evaluation (0: default).")
    backoff_minutes: float = Field(
        15.0, ge=0, description="Wait after a failed cycle before retrying; doubles each time."
    )
    backoff_max_hours: float = Field(24.0, ge=0, description="Longest wait between retries.")
    filters: dict[str, Any] = Field(
        default_factory=dict, description="Which turns qualify (`cra dataset build` filter options)."
    )
    dataset: dict[str, Any] = Field(
        default_factory=dict, description="Other `cra dataset build` options (format, eval_fraction, ...)."
    )
    sft: dict[str, Any] = Field(
        default_factory=dict, description="`cra train sft` settings (base and dataset are the cycle's)."
    )
    grpo: dict[str, Any] = Field(
        default_factory=dict, description="`cra train grpo` settings (starts from the cycle's SFT run)."
    )

    @field_validator("export_outtype")
    @classmethod
    def _known_outtype(cls, value: str):
        from ..export.writer import OUTTYPES

        if value not in OUTTYPES:
            raise ValueError(f"must be one of {', '.join(OUTTYPES)}")
        return value

    @model_validator(mode="after")
    def _sections_valid(self):
        for section, own in (("sft", _SFT_OWN), ("grpo", _GRPO_OWN), ("dataset", _DATASET_OWN)):
            taken = sorted(set(getattr(self, section)) & set(own))
            if taken:
                raise ValueError(f"[{section}] cannot set {', '.join(taken)}: each cycle sets it")
        self.turn_filters()
        self.build_options()
        self.sft_settings("check", "check")
        self.grpo_settings(1)
        return self

    # -- what each stage runs with --------------------------------------------------------------------

    def turn_filters(self):
        from ..dataset.filters import TurnFilters

        try:
            return TurnFilters(**self.filters)
        except TypeError as exc:
            raise ValueError(f"[filters]: {exc}") from None

    def build_options(self):
        from ..dataset.build import BuildOptions

        try:
            return BuildOptions(**self.dataset, filters=self.turn_filters())
        except TypeError as exc:
            raise ValueError(f"[dataset]: {exc}") from None

    def sft_settings(self, dataset: str, runs_dir: str | None):
        from ..train.config import SFTSettings

        return SFTSettings(**{**self.sft, "base": self.base, "dataset": dataset, "runs_dir": runs_dir})

    def grpo_settings(self, sft_run: int, runs_dir: str | None = None):
        from ..train.grpo import GRPOSettings

        return GRPOSettings(**{**self.grpo, "sft_run": str(sft_run), "runs_dir": runs_dir})


def config_path(home: str | None = None) -> Path:
    """The settings file in use: the first of auto.toml/.json/.yaml in CRA_HOME (auto.toml if none)."""
    from ..db import cra_home

    root = Path(home or cra_home())
    for name in CONFIG_NAMES:
        if (root / name).is_file():
            return root / name
    return root / CONFIG_NAMES[0]


def _read(path: Path) -> dict[str, Any]:
    """A settings file as a dict (TOML, JSON or YAML by extension); top-level keys may use - or _."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            from ..compat import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            import json

            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except ImportError:
        raise MissingDependencyError(f"{path}: YAML needs PyYAML (pip install pyyaml), or use auto.toml") from None
    except Exception as exc:  # each parser has its own error type; all mean "fix the file"
        raise ConfigError(f"cannot read the auto settings {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table of settings, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_settings(path: str | os.PathLike | None = None, **overrides) -> AutoSettings:
    """Defaults < the settings file < overrides (None means not given)."""
    path = Path(path) if path else config_path()
    values: dict[str, Any] = {}
    if path.is_file():
        values.update(_read(path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AutoSettings(**values)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"invalid auto settings in {path}:\n" + "\n".join(lines)) from exc


def thresholds() -> dict[str, Any]:
    """The readiness thresholds as `cra stats`/`cra status` show them; defaults if the file is broken
    (those commands must still work: `cra auto config` reports the problem)."""
    try:
        s = load_settings()
    except CraError:
        s = AutoSettings.model_construct()
        for name, field in AutoSettings.model_fields.items():
            setattr(s, name, field.get_default(call_default_factory=True))
    return {"min_total_turns": s.min_total_turns, "min_new_turns": s.min_new_turns, "settings": s}
