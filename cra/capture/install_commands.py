"""`cra install` / `cra uninstall`: the commands over cra.capture.install."""

import compileall
import os

import click

from claude_hooks import HOOK_EVENTS

from ..cli_options import database_option
from .install import HOOK_SCRIPT, hook_command, merge_hooks, read_settings, remove_hooks, settings_path, write_settings


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
    """
    from ..db import open_db

    env = {k: os.environ[k] for k in ("CRA_HOME",) if os.environ.get(k)}
    if database:
        env["CRA_DB"] = os.path.abspath(database)
    db = open_db(database)  # the hook writes only to an existing, migrated database
    db.conn.close()
    # The hook runs with PYTHONDONTWRITEBYTECODE on some machines: compile it ahead once.
    compileall.compile_dir(str(HOOK_SCRIPT.parent), quiet=2)
    path = settings_path(settings, project)
    current = read_settings(path)
    command = hook_command(env)
    merged = merge_hooks(current, command)
    if merged == current:
        click.echo(f"cra's hooks are already in {path}")
        return
    backup = write_settings(path, merged)
    click.echo(f"Added cra's hooks for {len(HOOK_EVENTS)} events to {path}")
    if backup:
        click.echo(f"Backup of the previous file: {backup}")
    click.echo(f"Hook command: {command}")


@click.command(name="uninstall")
@_settings_options
def uninstall_command(settings, project):
    """Remove the hooks `cra install` added (and nothing else). The database is kept."""
    path = settings_path(settings, project)
    current = read_settings(path)
    cleaned = remove_hooks(current)
    if cleaned == current:
        click.echo(f"No cra hooks in {path}")
        return
    backup = write_settings(path, cleaned)
    click.echo(f"Removed cra's hooks from {path} (backup: {backup})")
