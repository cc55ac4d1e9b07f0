"""Small capture commands: path, on/off, ignore, ingest, status."""

import json
import os
import time
from pathlib import Path

import click

from claude_hooks import capture

from ..cli_options import database_option
from ..db import cra_home, default_db_path, drain_spool, open_db, spool_backlog
from ..errors import ConfigError
from .install import is_cra_hook, read_settings, settings_path


@click.command(name="path")
def path_command():
    """Print the path of the cra database (CRA_HOME or CRA_DB change it)."""
    click.echo(default_db_path())


def _flag() -> Path:
    return Path(cra_home()) / capture.OFF_FLAG


@click.command(name="off")
def off_command():
    """Pause capture: hooks exit at once and record nothing until `cra on`."""
    _flag().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _flag().touch()
    click.echo("Capture is off. `cra on` resumes it.")


@click.command(name="on")
def on_command():
    """Resume capture."""
    _flag().unlink(missing_ok=True)
    click.echo("Capture is on.")


def _ignore_file() -> Path:
    return Path(cra_home()) / capture.IGNORE_FILE


def _ignored() -> list[str]:
    try:
        return [line.strip() for line in _ignore_file().read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


@click.group(name="ignore")
def ignore_group():
    """Project directories that are never recorded (nor anything below them)."""


@ignore_group.command(name="add")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def ignore_add(directory):
    """Never record sessions in DIRECTORY (default: the current one)."""
    directory = os.path.abspath(directory).rstrip("/") or "/"
    entries = _ignored()
    if directory not in entries:
        entries.append(directory)
        _ignore_file().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _ignore_file().write_text("\n".join(entries) + "\n", encoding="utf-8")
    click.echo(f"Ignoring {directory}")


@ignore_group.command(name="remove")
@click.argument("directory", type=click.Path(file_okay=False), default=".")
def ignore_remove(directory):
    """Record DIRECTORY again."""
    directory = os.path.abspath(directory).rstrip("/") or "/"
    entries = [e for e in _ignored() if e != directory]
    _ignore_file().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _ignore_file().write_text("".join(e + "\n" for e in entries), encoding="utf-8")
    click.echo(f"Recording {directory} again")


@ignore_group.command(name="list")
def ignore_list():
    """List ignored directories."""
    for entry in _ignored():
        click.echo(entry)


@click.command(name="ingest")
@database_option
def ingest_command(database):
    """Replay events the hooks had to spool (any cra command does this too)."""
    db = open_db(database, drain=False)
    count = drain_spool(db)
    click.echo(f"Ingested {count} spooled event{'s' if count != 1 else ''}; {spool_backlog()} left.")


def _hook_errors() -> int:
    home = Path(cra_home())
    total = 0
    for path in (home / capture.ERROR_LOG, home / (capture.ERROR_LOG + ".1")):
        try:
            with open(path, "rb") as f:
                total += sum(1 for _ in f)
        except OSError:
            pass
    return total


def status_report(database: str | None) -> dict:
    path = database or default_db_path()
    settings = settings_path(None, False)
    installed = False
    try:
        for groups in read_settings(settings).get("hooks", {}).values():
            for group in groups:
                installed = installed or any(is_cra_hook(h) for h in group.get("hooks", []))
    except ConfigError:
        pass
    db = open_db(path)
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
        "spool_backlog": spool_backlog(),
        "hook_errors": _hook_errors(),
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
@click.option("--json", "as_json", is_flag=True, help="Output JSON")
def status_command(database, as_json):
    """Is capture installed and on, what has it recorded, is anything stuck?"""
    r = status_report(database)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"Database:      {r['database']} ({r['database_bytes'] / 1e6:.1f} MB)")
    click.echo("Installed:     " + (r["installed_in"] or "no (run `cra install`, or use the plugin)"))
    click.echo("Capture:       " + ("on" if r["capture_on"] else "OFF (`cra on` resumes)"))
    click.echo(f"Events:        {r['events']} ({r['events_today']} today), last at {r['last_event_at'] or '-'}")
    click.echo(f"Sessions:      {r['sessions']}, tool calls: {r['tool_calls']}")
    click.echo(f"Spool backlog: {r['spool_backlog']}")
    click.echo(f"Hook errors:   {r['hook_errors']} (see {Path(cra_home()) / capture.ERROR_LOG})")
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
