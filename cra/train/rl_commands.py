"""`cra train grpo`, `cra train reward`, `cra train ppo`: Click wrappers (heavy imports happen on use).

Same conventions as `cra train sft`: defaults < `--config` file < options; `--resume [RUN_ID]`
continues an interrupted run from its last checkpoint with the parent's settings.
"""

from __future__ import annotations

import click

from ..cli_options import database_option, settings_options
from ..db import open_db
from .config import build_settings, read_config_file
from .grpo import GRPOSettings
from .ppo import PPOSettings
from .reward_model import RewardModelSettings


def _resume_option(func):
    return click.option(
        "--resume",
        default=None,
        is_flag=False,
        flag_value="last",
        metavar="[RUN_ID]",
        help="Continue an interrupted run from its last checkpoint (the newest unfinished one if no id).",
    )(func)


def _config_option(func):
    return click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), help="Settings file (.yaml, .json, .toml)."
    )(func)


def resolve_settings(model, kind: str, db, config_file, resume, options):
    """(settings, parent run to resume or None): defaults < parent's settings < config file < options."""
    from . import runs

    values: dict = {}
    parent = None
    if resume:
        parent = runs.resumable_run(db, kind, resume)
        values.update({k: v for k, v in parent["config"].items() if k in model.model_fields})
    if config_file:
        data = read_config_file(config_file)
        if set(data) == {kind} and isinstance(data[kind], dict):  # a [grpo] / [ppo] / [reward] section
            data = data[kind]
        values.update(data)
    values.update({k: v for k, v in options.items() if v is not None})
    return build_settings(model, None, values, source=config_file or "options"), parent


@click.command(name="grpo")
@_config_option
@_resume_option
@settings_options(GRPOSettings)
@database_option
def grpo_command(config_file, resume, database, **options):
    """GRPO from an SFT adapter with the behavioral reward (docs/rl.md).

    Prompts are real contexts from the dataset (the conversation before one of Claude's actions); the
    model writes the next message, scored against what Claude did there. KL to the SFT policy (beta).

    \b
      cra train grpo                          # newest completed SFT run, its base and dataset
      cra train grpo --sft-run 3 --max-steps 200 --num-generations 8
      cra train grpo --resume
    """
    from .grpo import train_grpo

    db = open_db(database)
    settings, parent = resolve_settings(GRPOSettings, "grpo", db, config_file, resume, options)
    train_grpo(settings, db, parent=parent)


@click.command(name="reward")
@_config_option
@_resume_option
@settings_options(RewardModelSettings)
@database_option
def reward_command(config_file, resume, database, **options):
    """Train a reward model (sequence classification head, LoRA) on preference pairs with TRL's RewardTrainer.

    \b
      cra dataset pairs --name pairs
      cra train reward --pairs pairs              # initialised from the newest completed SFT run
      cra train reward --pairs pairs --no-from-sft --base Qwen/Qwen2.5-0.5B-Instruct
    """
    from .reward_model import train_reward_model

    db = open_db(database)
    settings, parent = resolve_settings(RewardModelSettings, "reward", db, config_file, resume, options)
    train_reward_model(settings, db, parent=parent)


@click.command(name="ppo")
@_config_option
@_resume_option
@settings_options(PPOSettings)
@database_option
def ppo_command(config_file, resume, database, **options):
    """PPO from an SFT adapter, scored by a reward model from `cra train reward` (docs/rl.md).

    Policy: the SFT adapter; value model: initialised from the reward model; a frozen copy of the SFT
    policy is the reference for the KL penalty. Episodes are real contexts from the dataset.

    \b
      cra train ppo                               # newest SFT run and newest reward run
      cra train ppo --reward-run 5 --episodes 512
    """
    from .ppo import train_ppo

    db = open_db(database)
    settings, parent = resolve_settings(PPOSettings, "ppo", db, config_file, resume, options)
    train_ppo(settings, db, parent=parent)
