"""`cra train grpo`, `cra train reward`, `cra train ppo`: Click wrappers (heavy imports happen on use).

Same conventions as `cra train sft`: defaults < `--config` file < options; `--resume [RUN_ID]`
continues an interrupted run from its last checkpoint with the parent's settings.
"""

from __future__ import annotations

import importlib
import json

import click

from .. import progress
from ..cli_options import config_option, database_option, json_option, resume_option, settings_options
from ..db import open_db
from .config import resolve_settings
from .grpo import GRPOSettings
from .ppo import PPOSettings
from .reward_model import RewardModelSettings


def _trainer_command(kind: str, model, trainer: str, help_text: str) -> click.Command:
    """`cra train KIND`: settings from `model`'s options, --config and --resume, then `trainer`
    ("module:function" in cra.train, imported when the command runs) trains and records the run."""

    def command(config_file, resume, database, as_json, **options):
        from .commands import run_record

        module, function = trainer.split(":")
        train = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        db = open_db(database)
        settings, parent = resolve_settings(model, kind, db, config_file, resume, options)
        run = train(settings, db, parent=parent, echo=progress.to_stderr if as_json else progress.echo)
        if as_json:
            click.echo(json.dumps(run_record(db, run["id"]), indent=2, default=str))

    command.__doc__ = help_text
    as_json = json_option(
        "Print the finished run (id, output directory, metrics, artifacts) as JSON; progress to stderr."
    )
    for decorate in reversed((config_option, resume_option, settings_options(model), database_option, as_json)):
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
    Examples:
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
    Examples:
      cra dataset pairs --name pairs
      cra train reward --pairs pairs              # initialised from the newest completed SFT run
      cra train reward --pairs pairs --no-from-sft --base Qwen/Qwen2.5-0.5B-Instruct
    """,
)

ppo_command = _trainer_command(
    "ppo",
    PPOSettings,
    "ppo:train_ppo",
    """PPO from an SFT adapter, scored by the behavioral reward (default) or a reward model (docs/rl.md).

    Policy: the SFT adapter; a frozen copy of it is the reference for the KL penalty. Episodes are real
    contexts from the dataset; `--reward behavioral` scores each sampled message against what Claude
    did there (the reward GRPO trains on), `--reward model` with a `cra train reward` run's score.

    \b
    Examples:
      cra train ppo                               # newest SFT run, behavioral reward
      cra train ppo --sft-run 3 --max-steps 50 --batch-size 8
      cra train ppo --reward model --reward-run 5 # the learned reward model instead
    """,
)
