"""`cra import`, `cra sync`, `cra sessions`, `cra show`."""

import json
import os
import sys

import click

from ..cli_options import database_option, json_option, since_option, until_option
from ..db import open_db
from ..errors import NotFoundError
from ..when import parse_when
from . import importer
from .show import prompt_display, terminal_safe


def _summary_line(r: importer.ImportResult) -> str:
    return (
        f"{r.files_changed} of {r.files} file{'s' if r.files != 1 else ''} had new lines"
        f" ({r.bytes_read / 1e6:.1f} MB): {r.lines} lines, {r.messages} messages,"
        f" {len(r.sessions)} session{'s' if len(r.sessions) != 1 else ''} ({r.turns} turns rebuilt);"
        f" tool calls: {r.tool_calls_new} from transcripts only, {r.tool_calls_linked} merged with hook captures."
    )


def _report_errors(r: importer.ImportResult):
    for path, error in r.errors:
        click.echo(terminal_safe(f"Skipped {path}: {error}"), err=True)
    for path, warning in r.warnings:
        click.echo(terminal_safe(f"Read {path}, but {warning}"), err=True)
    if r.ignored:
        click.echo(f"{len(r.ignored)} file(s) of ignored projects not read (`cra ignore list`).", err=True)


@click.command(name="import")
@click.argument("paths", nargs=-1, type=click.Path())
@database_option
@json_option("Print the summary as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["claude-code", "openai-trace"]),
    default="claude-code",
    show_default=True,
    help="Claude Code transcripts, or traces of other agents and scripts (docs/traces.md).",
)
def import_command(paths, database, as_json, fmt):
    """Backfill Claude Code transcripts into the database.

    PATHS are folders (searched for *.jsonl, subagents included) or files; the default is
    ~/.claude/projects. Safe to rerun: each file is read from where the last run stopped, so a second
    run adds nothing and an interrupted one resumes. Sessions also captured by the hooks are merged
    with their hook data. With --format openai-trace, PATHS are trace files (docs/traces.md): their
    sessions are marked as not Claude Code's.

    \b
    Examples:
      cra import
      cra import ~/.claude/projects/-home-me-myapp --json
      cra import --format openai-trace run.jsonl
    """
    if not paths and fmt == "openai-trace":
        raise click.ClickException(
            "Pass the trace files or folders to import, e.g. `cra import --format openai-trace run.jsonl`."
        )
    if not paths:
        default = os.path.expanduser(importer.DEFAULT_ROOT)
        if not os.path.isdir(default):
            raise click.ClickException(
                f"No Claude Code history at {default}. Pass the folders or transcript files to import, "
                "e.g. `cra import path/to/projects`."
            )
        paths = (default,)
    missing = [p for p in paths if not os.path.lexists(os.path.expanduser(p))]
    db = open_db(database)
    files = importer.discover([p for p in paths if p not in missing])
    sizes = {}
    for f in files:
        try:
            sizes[f] = os.path.getsize(f)
        except OSError:
            sizes[f] = 0
    result = importer.ImportResult()
    # A length and no iterable: click cannot name the item type the bar shows.
    with click.progressbar(  # type: ignore[var-annotated]
        length=max(sum(sizes.values()), 1),
        label=f"Importing {len(files)} files",
        file=sys.stderr,
        show_eta=True,
        item_show_func=lambda p: os.path.basename(p) if p else None,
    ) as bar:

        def progress(path):
            bar.update(sizes.get(path, 0), path)

        if fmt == "openai-trace":
            from .traces import import_traces

            result = import_traces(db.conn, files, progress=progress)
        else:
            result = importer.import_paths(db.conn, files, progress=progress)
    _report_errors(result)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(_summary_line(result))
        if result.errors:
            click.echo(f"{len(result.errors)} file(s) skipped (listed above); the rest were imported.")
    if missing:
        raise NotFoundError(
            "no such file or folder: " + ", ".join(missing) + (" (the others were imported)" if files else "")
        )


@click.command(name="sync")
@database_option
@json_option("Print the summary as JSON.")
def sync_command(database, as_json):
    """Catch up on transcripts the hooks know of: normalise stored lines, read what is new.

    \b
    Examples:
      cra sync
      cra sync --json
    """
    db = open_db(database)
    result = importer.sync(db.conn)
    _report_errors(result)
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else _summary_line(result))


def _sync_quietly(db, session_id=None):
    result = importer.sync(db.conn, session_id)
    _report_errors(result)


SESSIONS_SQL = """
SELECT s.id, coalesce(s.started_at, s.first_event_at) AS started, s.last_event_at AS last_event,
  coalesce(s.project_dir, s.cwd) AS project, s.model, s.client_version,
  (SELECT count(*) FROM turns t WHERE t.session_id = s.id AND t.agent_id IS NULL) AS turns,
  (SELECT count(*) FROM tool_calls c WHERE c.session_id = s.id) AS tool_calls,
  (SELECT count(*) FROM subagents a WHERE a.session_id = s.id) AS subagents,
  coalesce(
    (SELECT prompt_text FROM turns t WHERE t.session_id = s.id AND t.agent_id IS NULL ORDER BY turn_index LIMIT 1),
    (SELECT json_extract(payload, '$.prompt') FROM events e WHERE e.session_id = s.id
      AND e.hook_event_name = 'UserPromptSubmit' AND json_valid(payload) ORDER BY e.id LIMIT 1)
  ) AS first_prompt
FROM sessions s
WHERE {where}
ORDER BY started DESC
LIMIT ?
"""


@click.command(name="sessions")
@database_option
@click.option(
    "-n", "--limit", default=20, show_default=True, type=click.IntRange(0, 2**62), help="How many sessions (0: all)"
)
@json_option("Print the sessions as JSON.")
@click.option("-p", "--project", help="Only sessions whose project directory contains this text")
@since_option("Sessions started")
@until_option("Sessions started")
@click.option("--no-sync", is_flag=True, help="Don't read new transcript lines first")
def sessions_command(database, limit, as_json, project, since, until, no_sync):
    """List recorded sessions, newest first: `cra show ID` prints one (a prefix of the id will do).

    \b
    Examples:
      cra sessions -n 5
      cra sessions --project myapp --since 7d
      cra sessions --since 2025-06-01 --until 2025-06-30 --json
    """
    db = open_db(database)
    if not no_sync:
        _sync_quietly(db)
    where, args = ["1"], []
    if project:
        where.append("coalesce(s.project_dir, s.cwd, '') LIKE ? ESCAPE '\\'")
        args.append("%" + project.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if since:
        where.append("coalesce(s.started_at, s.first_event_at) >= ?")
        args.append(parse_when(since))
    if until:
        where.append("coalesce(s.started_at, s.first_event_at) < ?")
        args.append(parse_when(until, end=True))
    cur = db.execute(SESSIONS_SQL.format(where=" AND ".join(where)), args + [limit if limit > 0 else -1])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(
            "No sessions" + (" match" if len(where) > 1 else " yet: run `cra install`, or `cra import` your history.")
        )
        return
    click.echo(f"{'STARTED (UTC)':16}  {'ID':8}  {'TURNS':>9} {'TOOLS':>10}  PROJECT  FIRST PROMPT")
    for r in rows:
        started = (r["started"] or "")[:16].replace("T", " ")
        prompt = " ".join(prompt_display(r["first_prompt"]).split())
        if len(prompt) > 70:
            prompt = prompt[:69] + "…"
        click.echo(
            terminal_safe(
                f"{started:16}  {r['id'][:8]}  {r['turns']:>3} turns {r['tool_calls']:>4} tools  "
                f"{r['project'] or '-'}  {prompt}"
            )
        )


@click.command(name="show")
@click.argument("session")
@database_option
@click.option("--full", is_flag=True, help="Show tool inputs and outputs whole")
@click.option("--lines", "max_lines", default=8, show_default=True, help="Output lines shown per tool call")
@click.option("--thinking", is_flag=True, help="Show the assistant's thinking")
@click.option("--no-sync", is_flag=True, help="Don't read new transcript lines first")
@json_option("Print the session, its turns (with their ids) and tool calls as JSON.")
def show_command(session, database, full, max_lines, thinking, no_sync, as_json):
    """Print one session as a timeline: prompts, assistant text, tool calls, subagents.

    SESSION is a session id or a unique prefix of one (see `cra sessions`). Each turn shows its id,
    the one `cra signals --show` takes.

    \b
    Examples:
      cra show 3f2a
      cra show 3f2a --full --thinking
      cra show 3f2a --json
    """
    from .show import render_session, resolve_session, session_data

    db = open_db(database)
    session_id = resolve_session(db, session)
    if not no_sync:
        _sync_quietly(db, session_id)
    if as_json:
        click.echo(json.dumps(session_data(db, session_id), indent=2, ensure_ascii=False))
        return
    for line in render_session(db, session_id, full=full, max_lines=max_lines, thinking=thinking):
        click.echo(terminal_safe(line))
