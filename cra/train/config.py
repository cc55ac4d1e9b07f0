"""Training configs: one pydantic model per trainer, every default visible in `--help` and in files.

Precedence: the defaults here < a `--config` file (YAML, JSON or TOML) < options on the command line.
Nothing heavy is imported: `cra train sft --help` builds its options from these models alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..base_model import DEFAULT_BASE, DEFAULT_MAX_LENGTH
from ..errors import ConfigError, MissingDependencyError

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class SFTSettings(BaseModel):
    """Supervised fine-tuning of a LoRA adapter (QLoRA when 4-bit) on recorded tool-calling turns."""

    # Unknown keys in a config file are mistakes (a typo silently ignored would train the wrong thing).
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base: str = Field(DEFAULT_BASE, description="Base model: a hub id or a local directory.")
    dataset: str | None = Field(
        None,
        description="Dataset: a name from `cra dataset build`, a directory with train/eval JSONL, or a JSONL file.",
    )
    backend: Literal["auto", "unsloth", "trl"] = Field(
        "auto", description="unsloth (CUDA only), trl (TRL SFTTrainer + PEFT), or auto: unsloth when usable."
    )
    load_in_4bit: bool = Field(True, description="Load the base in 4-bit NF4 through bitsandbytes (QLoRA).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_PROJECTIONS),
        description="Modules that get LoRA adapters (comma-separated): all attention and MLP projections.",
    )
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training split.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: use epochs).")
    batch_size: int = Field(2, ge=1, description="Examples per device per step.")
    grad_accum: int = Field(4, ge=1, description="Gradient accumulation steps (effective batch = batch_size x this).")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_length: int = Field(
        DEFAULT_MAX_LENGTH, ge=16, description="Longest example in tokens (longer ones are truncated)."
    )
    packing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Pack examples into max_length rows without padding. auto: on with FlashAttention or "
        "unsloth; otherwise batches group examples of similar length (packing without FlashAttention is slower).",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 where the GPU supports it, else fp16; fp32 on CPU."
    )
    optim: str = Field(
        "auto", description="Optimizer: auto = 8-bit AdamW on CUDA, AdamW on CPU; or a transformers name."
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", description="Trade compute for memory: auto = on with CUDA, off on CPU."
    )
    assistant_only_loss: bool = Field(True, description="Compute the loss on assistant turns only.")
    chat_template: str = Field(
        "auto",
        description="How conversations are rendered: auto (the base's family: llama3, qwen2.5, qwen3; its own "
        "template for others; cra's ChatML when it has none), a family name, or a Jinja file.",
    )
    eval_steps: int = Field(50, ge=1, description="Evaluate on the eval split and save a checkpoint every N steps.")
    save_total_limit: int = Field(3, ge=1, description="Checkpoints kept (the best one is always kept).")
    logging_steps: int = Field(10, ge=1, description="Log the training loss every N steps.")
    seed: int = Field(42, description="Random seed (data order, LoRA init).")
    cpu_threads: int = Field(
        0, ge=0, description="Torch CPU threads (0: torch's default). 1 is far faster on a busy or tiny-model CPU run."
    )
    runs_dir: str | None = Field(None, description="Where run directories go (none: $CRA_HOME/runs).")

    @field_validator("packing", "gradient_checkpointing", mode="before")
    @classmethod
    def _on_off(cls, value: Any):
        # YAML reads on/off/true/false as booleans
        return ("on" if value else "off") if isinstance(value, bool) else value

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("target_modules")
    @classmethod
    def _modules_not_empty(cls, value: list[str]):
        if not value:
            raise ValueError("name at least one module (e.g. q_proj,v_proj)")
        return value

    @field_validator("optim")
    @classmethod
    def _known_optim(cls, value: str):
        # Checked against transformers' list only when training: importing it here would slow --help.
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be a positive number of steps, or -1 to train for `epochs`")
        return self


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        lines.append(f"  {where}: {err['msg']}")
    return f"invalid training config ({source}):\n" + "\n".join(lines)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file as a dict: YAML, JSON or TOML, chosen by extension. Keys may use - or _."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            from ..compat import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise MissingDependencyError(
                    "YAML config files need PyYAML: pip install pyyaml (or use a .json or .toml file)"
                ) from exc
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use a .yaml, .yml, .json or .toml file")
    except (ConfigError, MissingDependencyError):
        raise
    except Exception as exc:  # each parser has its own error type; all mean "fix the file"
        raise ConfigError(f"config file {path} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    # A TOML/YAML file may group settings in a section named after the trainer ([sft]).
    if set(data) == {"sft"} and isinstance(data["sft"], dict):
        data = data["sft"]
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_settings(model: type[BaseModel], config_file: str | None, overrides: dict[str, Any], source: str = "options"):
    """Defaults < config file < command-line overrides (None means "not given"), validated as one."""
    values: dict[str, Any] = {}
    if config_file:
        values.update(read_config_file(config_file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model(**values)
    except ValidationError as exc:
        where = f"{config_file} and command-line options" if config_file else source
        raise ConfigError(_format_errors(exc, where)) from exc


def resolve_settings(model: type[BaseModel], kind: str, db, config_file: str | None, resume: str | None, options):
    """(settings, the run to resume or None) for `cra train KIND`: defaults < the resumed run's
    settings < the config file (or its [KIND] section) < options given on the command line."""
    from . import runs

    values: dict[str, Any] = {}
    parent = None
    if resume:
        parent = runs.resumable_run(db, kind, resume)
        # The parent's settings, with anything given now on top (e.g. a larger --max-steps).
        values.update({k: v for k, v in parent["config"].items() if k in model.model_fields})
    if config_file:
        data = read_config_file(config_file)
        if set(data) == {kind} and isinstance(data[kind], dict):  # a [grpo] / [ppo] / [reward] section
            data = data[kind]
        values.update(data)
    values.update({k: v for k, v in options.items() if v is not None})
    source = f"{config_file} and command-line options" if config_file else "options"
    return build_settings(model, None, values, source=source), parent
