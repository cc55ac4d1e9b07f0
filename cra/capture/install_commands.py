"""`cra install` / `cra uninstall`: the commands over cra.capture.install."""

import os

import click

from claude_hooks import HOOK_EVENTS

from ..cli_options import database_option
from . import install as installer


def _settings_options(f):
    f = click.option("--project", is_flag=True, help="Use ./.claude/settings.json (this project only).")(f)
    f = click.option(
        "--settings",
        type=click.Path(dir_okay=False),
        help="Settings file [default: ~/.claude/settings.json, or $CLAUDE_CONFIG_DIR/settings.json]",
    )(f)
    return f


@click.command(name="install")
@_settings_options
@database_option
def install_command(settings, project, database):
    """Add cra's hooks to Claude Code's settings.json (idempotent; keeps everything else).

    The hook command pins this interpreter and, when set, CRA_HOME / the database, so capture
    keeps writing where this command would read.

    \b
    Examples:
      cra install
      cra install --project
      cra install -d ~/work/cra.db
    """
    from ..db import cra_home, open_db

    env = {k: os.environ[k] for k in ("CRA_HOME",) if os.environ.get(k)}
    if database:
        env["CRA_DB"] = os.path.abspath(database)
    open_db(database).conn.close()  # the hook writes only to an existing, migrated database
    change = installer.install(installer.settings_path(settings, project), env, cra_home())
    if not change.changed:
        click.echo(f"cra's hooks are already in {change.path}")
        return
    click.echo(f"Added cra's hooks for {len(HOOK_EVENTS)} events to {change.path}")
    if change.backup:
        click.echo(f"Backup of the previous file: {change.backup}")
    click.echo(f"Hook command: {change.command}")


@click.command(name="uninstall")
@_settings_options
def uninstall_command(settings, project):
    """Remove the hooks `cra install` added (and nothing else). The database is kept.

    \b
    Examples:
      cra uninstall
      cra uninstall --project
    """
    from ..db import cra_home

    change = installer.uninstall(installer.settings_path(settings, project), cra_home())
    if not change.changed:
        click.echo(f"No cra hooks in {change.path}")
        return
    click.echo(f"Removed cra's hooks from {change.path} (backup: {change.backup})")
