"""Click options shared by several commands. CLI layer only: stages' library code never imports this."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import click
from pydantic import BaseModel

database_option = click.option(
    "-d",
    "--database",
    type=click.Path(dir_okay=False),
    envvar="CRA_DB",
    help="Database file [default: $CRA_HOME/cra.db, see `cra path`]",
)

# The trainers' shared options (`cra train sft|grpo|reward|ppo`).
config_option = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="Settings file (.yaml, .json, .toml)."
)
resume_option = click.option(
    "--resume",
    default=None,
    is_flag=False,
    flag_value="last",
    metavar="[RUN_ID]",
    help="Continue an interrupted run from its last checkpoint (the newest unfinished one if no id).",
)


def _default_text(field) -> str:
    default = field.get_default(call_default_factory=True)
    if isinstance(default, list):
        return ",".join(default)
    if default is None:
        return "none"
    return str(default)


def settings_options(model: type[BaseModel], skip: tuple[str, ...] = ()):
    """Click options for every field of a settings model, each help line ending in its default.

    Option defaults are None so that a config file's values are not overridden by defaults the user never typed.
    """

    def decorate(func):
        for name, field in reversed(list(model.model_fields.items())):
            if name in skip:
                continue
            flag = "--" + name.replace("_", "-")
            help_text = f"{field.description} [default: {_default_text(field)}]"
            annotation = field.annotation
            if annotation is bool:
                option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
            elif get_origin(annotation) is Literal:
                option = click.option(flag, name, type=click.Choice(get_args(annotation)), default=None, help=help_text)
            elif annotation is int:
                option = click.option(flag, name, type=int, default=None, help=help_text)
            elif annotation is float:
                option = click.option(flag, name, type=float, default=None, help=help_text)
            else:  # str, optional str, list[str] (comma-separated)
                option = click.option(flag, name, type=str, default=None, help=help_text)
            func = option(func)
        return func

    return decorate
