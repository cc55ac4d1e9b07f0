"""Small capture commands: path, on/off, ignore, ingest, status (install/uninstall: install_commands.py)."""

import json
import os
import time
from pathlib import Path

import click

import claude_hooks
from claude_hooks import drain, privacy

from ..cli_options import database_option, json_option
from ..db import DatabaseError, cra_home, default_db_path, drain_spool, open_db, spool_backlog
from . import install as installer


@click.command(name="path")
@database_option
def path_command(database):
    """Print the path of the cra database (CRA_HOME or CRA_DB change it; -d names one).

    \b
    Examples:
      cra path
      sqlite3 "$(cra path)" 'SELECT count(*) FROM tool_calls'
    """
    click.echo(os.path.abspath(database) if database else default_db_path())


def _flag() -> Path:
    return Path(cra_home()) / claude_hooks.OFF_FLAG


def _make_home():
    privacy.make_private_dir(cra_home(), cra_home())


@click.command(name="off")
def off_command():
    """Pause capture: hooks exit at once and record nothing until `cra on`.

    The switch is a file in $CRA_HOME, so it pauses capture into every database.

    \b
    Example:
      cra off
    """
    _make_home()
    _flag().touch()
    click.echo("Capture is off. `cra on` resumes it.")


@click.command(name="on")
def on_command():
    """Resume capture (after `cra off`).

    \b
    Example:
      cra on
    """
    _flag().unlink(missing_ok=True)
    click.echo("Capture is on.")


def _ignore_file() -> Path:
    return Path(cra_home()) / claude_hooks.IGNORE_FILE


def _ignored() -> list[str]:
    try:
        return [line.strip() for line in _ignore_file().read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


@click.group(name="ignore")
def ignore_group():
    """Project directories that are never recorded (nor anything below them).

    The list is a file in $CRA_HOME, shared by every database.

    \b
    Examples:
      cra ignore add ~/secret-project
      cra ignore list
      cra ignore remove ~/secret-project
    """


@ignore_group.command(name="add")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def ignore_add(directory):
    """Never record sessions in DIRECTORY (default: the current one).

    \b
    Examples:
      cra ignore add
      cra ignore add ~/secret-project
    """
    directory = os.path.abspath(directory).rstrip("/") or "/"
    entries = _ignored()
    if directory not in entries:
        entries.append(directory)
        _make_home()
        _ignore_file().write_text("\n".join(entries) + "\n", encoding="utf-8")
    click.echo(f"Ignoring {directory}")


@ignore_group.command(name="remove")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def ignore_remove(directory):
    """Record DIRECTORY again (default: the current one).

    \b
    Example:
      cra ignore remove ~/secret-project
    """
    directory = os.path.abspath(directory).rstrip("/") or "/"
    entries = [e for e in _ignored() if e != directory]
    _make_home()
    _ignore_file().write_text("".join(e + "\n" for e in entries), encoding="utf-8")
    click.echo(f"Recording {directory} again")


@ignore_group.command(name="list")
@json_option("Print the directories as a JSON list.")
def ignore_list(as_json):
    """List ignored directories, one a line.

    \b
    Examples:
      cra ignore list
      cra ignore list --json
    """
    entries = _ignored()
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("No directories are ignored (`cra ignore add DIR` adds one).")
    for entry in entries:
        click.echo(entry)


@click.command(name="ingest")
@database_option
@json_option("Print the counts as JSON.")
def ingest_command(database, as_json):
    """Replay events the hooks had to spool (any cra command does this too).

    \b
    Examples:
      cra ingest
      cra ingest --json
    """
    db = open_db(database, drain=False)
    count = drain_spool(db)
    left = spool_backlog()
    if as_json:
        click.echo(json.dumps({"ingested": count, "left": left}))
        return
    click.echo(f"Ingested {count} spooled event{'s' if count != 1 else ''}; {left} left.")


def _hook_errors() -> int:
    home = Path(cra_home())
    total = 0
    for path in (home / claude_hooks.ERROR_LOG, home / (claude_hooks.ERROR_LOG + ".1")):
        try:
            with open(path, "rb") as f:
                total += sum(1 for _ in f)
        except OSError:
            pass
    return total


def status_report(database: str | None) -> dict:
    path = database or default_db_path()
    settings = installer.settings_path(None, False)
    installed = installer.installed_in(settings)
    db = open_db(path, drain=False)
    # The spool's backlog is taken in first, as any command does; a database busy past the wait still
    # gets a report (reading works beside another process's write lock), with the backlog it left.
    drain_error = None
    if os.path.abspath(path) == os.path.abspath(default_db_path()):
        try:
            drain_spool(db)
        except DatabaseError as exc:
            drain_error = str(exc)
    home = cra_home()
    counts = drain.spool_counts(home)
    error_log = Path(home) / claude_hooks.ERROR_LOG
    today = time.strftime("%Y-%m-%d", time.gmtime())
    row = db.execute(
        "SELECT count(*), max(received_at), sum(received_at >= ?),"
        " sum(parse_error IS NOT NULL OR derive_error IS NOT NULL) FROM events",
        [today],
    ).fetchone()
    report = {
        "database": path,
        "database_bytes": os.path.getsize(path),
        "installed_in": str(settings) if installed else None,
        "capture_on": not _flag().exists(),
        "events": row[0],
        "events_today": row[2] or 0,
        "last_event_at": row[1],
        "events_with_errors": row[3] or 0,
        "sessions": db.execute("SELECT count(*) FROM sessions").fetchone()[0],
        "tool_calls": db.execute("SELECT count(*) FROM tool_calls").fetchone()[0],
        "spool_backlog": counts["queued"] + counts["claimed"],
        "spool_claimed": counts["claimed"],  # being ingested, or by a drainer that died (taken back next drain)
        "spool_unreadable": counts["unreadable"],
        "spool_refused": privacy.spool_dir_refusal(claude_hooks.fallback_spool_dir()),
        "drain_error": drain_error,
        "hook_errors": _hook_errors(),
        "hook_errors_log": str(error_log) if error_log.exists() else None,
        "ignored_projects": _ignored(),
        "training": _training_readiness(db),
    }
    return report


def _training_readiness(db) -> dict:
    """Turns captured and progress to the first/next training cycle, by `cra auto`'s own rules."""
    from ..auto.config import thresholds
    from ..auto.readiness import readiness

    r = readiness(db, thresholds()["settings"])
    return {
        "turns": r.candidates,
        "qualifying": r.qualifying,
        "cycles_completed": r.cycles_completed,
        "first_cycle": [min(r.qualifying, r.first_threshold), r.first_threshold],
        "next_cycle": [min(r.new, r.next_threshold), r.next_threshold],
        "due": r.due,
        "reason": r.reason,
    }


@click.command(name="status")
@database_option
@json_option("Print the report as JSON.")
def status_command(database, as_json):
    """Is capture installed and on, what has it recorded, is anything stuck?

    \b
    Examples:
      cra status
      cra status --json
    """
    r = status_report(database)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"Database:      {r['database']} ({r['database_bytes'] / 1e6:.1f} MB)")
    click.echo("Installed:     " + (r["installed_in"] or "no (run `cra install`, or use the plugin)"))
    click.echo("Capture:       " + ("on" if r["capture_on"] else "OFF (`cra on` resumes)"))
    click.echo(f"Events:        {r['events']} ({r['events_today']} today), last at {r['last_event_at'] or '-'}")
    click.echo(f"Sessions:      {r['sessions']}, tool calls: {r['tool_calls']}")
    backlog = f"Spool backlog: {r['spool_backlog']}"
    if r["spool_claimed"]:
        backlog += f" ({r['spool_claimed']} being ingested)"
    click.echo(backlog)
    if r["drain_error"]:
        click.echo(f"Not ingested:  {r['drain_error']}")
    if r["spool_unreadable"]:
        click.echo(f"Spool files that are not events, set aside: {r['spool_unreadable']} (*.unreadable in the spool)")
    if r["spool_refused"]:
        click.echo(f"Refused spool: {r['spool_refused']}: remove it (hooks can't spool there while it exists)")
    click.echo(
        f"Hook errors:   {r['hook_errors']}" + (f" (see {r['hook_errors_log']})" if r["hook_errors_log"] else "")
    )
    if r["events_with_errors"]:
        click.echo(f"Events kept raw but not parsed/derived: {r['events_with_errors']}")
    if r["ignored_projects"]:
        click.echo("Ignored:       " + ", ".join(r["ignored_projects"]))
    t = r["training"]
    click.echo(f"Turns:         {t['turns']} captured, {t['qualifying']} qualify for training")
    if t["cycles_completed"]:
        done, need = t["next_cycle"]
        click.echo(
            f"Next cycle:    {done}/{need} new qualifying turns ({t['cycles_completed']} cycles so far;"
            " `cra auto status`)"
        )
    else:
        done, need = t["first_cycle"]
        click.echo(f"First cycle:   {done}/{need} qualifying turns" + (" (due: `cra auto once`)" if t["due"] else ""))
