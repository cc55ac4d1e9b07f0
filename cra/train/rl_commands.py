"""`cra train grpo`, `cra train reward`, `cra train ppo`: Click wrappers (heavy imports happen on use).

Same conventions as `cra train sft`: defaults < `--config` file < options; `--resume [RUN_ID]`
continues an interrupted run from its last checkpoint with the parent's settings.
"""

from __future__ import annotations

import importlib

import click

from ..cli_options import config_option, database_option, resume_option, settings_options
from ..db import open_db
from .config import resolve_settings
from .grpo import GRPOSettings
from .ppo import PPOSettings
from .reward_model import RewardModelSettings


def _trainer_command(kind: str, model, trainer: str, help_text: str) -> click.Command:
    """`cra train KIND`: settings from `model`'s options, --config and --resume, then `trainer`
    ("module:function" in cra.train, imported when the command runs) trains and records the run."""

    def command(config_file, resume, database, **options):
        module, function = trainer.split(":")
        train = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        db = open_db(database)
        settings, parent = resolve_settings(model, kind, db, config_file, resume, options)
        train(settings, db, parent=parent)

    command.__doc__ = help_text
    for decorate in reversed((config_option, resume_option, settings_options(model), database_option)):
        command = decorate(command)
    return click.command(name=kind)(command)


grpo_command = _trainer_command(
    "grpo",
    GRPOSettings,
    "grpo:train_grpo",
    """GRPO from an SFT adapter with the behavioral reward (docs/rl.md).

    Prompts are real contexts from the dataset (the conversation before one of Claude's actions); the
    model writes the next message, scored against what Claude did there. KL to the SFT policy (beta).

    \b
      cra train grpo                          # newest completed SFT run, its base and dataset
      cra train grpo --sft-run 3 --max-steps 200 --num-generations 8
      cra train grpo --resume
    """,
)

reward_command = _trainer_command(
    "reward",
    RewardModelSettings,
    "reward_model:train_reward_model",
    """Train a reward model (sequence classification head, LoRA) on preference pairs with TRL's RewardTrainer.

    \b
      cra dataset pairs --name pairs
      cra train reward --pairs pairs              # initialised from the newest completed SFT run
      cra train reward --pairs pairs --no-from-sft --base Qwen/Qwen2.5-0.5B-Instruct
    """,
)

ppo_command = _trainer_command(
    "ppo",
    PPOSettings,
    "ppo:train_ppo",
    """PPO from an SFT adapter, scored by a reward model from `cra train reward` (docs/rl.md).

    Policy: the SFT adapter; value model: initialised from the reward model; a frozen copy of the SFT
    policy is the reference for the KL penalty. Episodes are real contexts from the dataset.

    \b
      cra train ppo                               # newest SFT run and newest reward run
      cra train ppo --reward-run 5 --episodes 512
    """,
)
