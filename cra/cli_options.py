"""Click options shared by several commands. CLI layer only: stages' library code never imports this."""

from __future__ import annotations

import os
from typing import Literal, get_args, get_origin

import click
from pydantic import BaseModel

from .when import WHEN_FORMS, parse_when


def _database_in_existing_folder(ctx, param, value):
    """-d names a database file, new or not, in a folder that exists: a typo in the folder is an
    error, not a tree of new directories (only the default, $CRA_HOME, is created)."""
    if value is not None:
        folder = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(folder):
            raise click.BadParameter(f"there is no folder {folder}: create it first, or check the path.")
    return value


database_option = click.option(
    "-d",
    "--database",
    type=click.Path(dir_okay=False),
    envvar="CRA_DB",
    callback=_database_in_existing_folder,
    help="Database file [default: $CRA_HOME/cra.db, see `cra path`]",
)


def json_option(help_text: str = "Print the result as JSON."):
    """`--json` (the `as_json` parameter): what the command prints, in a form a script can parse."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


class _When(click.ParamType):
    """A "when" as cra.when reads it; checked here so a typo is a usage error, passed on as typed
    (the library decides whether a bare date means the start or the end of its day)."""

    name = "WHEN"

    def convert(self, value, param, ctx):
        try:
            parse_when(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value


def since_option(what: str):
    return click.option("--since", type=_When(), help=f"{what} at or after this: {WHEN_FORMS}.")


def until_option(what: str):
    return click.option(
        "--until", type=_When(), help=f"{what} up to this: the same forms; a bare date includes its whole day."
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
