"""`cra redact check PATH` (an audit before sharing) and `cra redact db` (redaction at rest)."""

from __future__ import annotations

import json

import click

from cra.cli_options import database_option, json_option

# `cra redact check` exit statuses, for scripts: 0 nothing found, 1 found something, 2 could not check.
EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2


class _CheckFailed(click.ClickException):
    exit_code = EXIT_ERROR


@click.group(name="redact")
def redact_group():
    """Find and remove secrets: audit a file or dataset (`check`), or rewrite the database (`db`).

    Everything cra writes for others (datasets, pairs, eval packs, reports, logs) is already
    redacted; these are for checking that, and for not keeping raw secrets on disk at all.
    See docs/redaction.md for what is found and how.
    """


@redact_group.command(name="check")
@click.argument("path", type=click.Path())
@json_option("Print the report as JSON.")
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True, help="Findings listed (0: all).")
def check_command(path, as_json, limit):
    """Report what redaction would replace in PATH: a file, or a directory such as a built dataset.

    Values are never printed whole: each finding shows its file, line, JSON path, kind and a
    masked preview. Exit status: 0 nothing found, 1 something found, 2 PATH could not be checked.

    \b
    Examples:
      cra redact check ~/.cra/datasets/mine && tar czf mine.tgz ~/.cra/datasets/mine
      cra redact check notes.md --json
    """
    from ..errors import CraError
    from .scan import check_path

    try:
        report = check_path(path)
    except CraError as exc:
        raise _CheckFailed(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        shown = report.findings if not limit else report.findings[:limit]
        for f in shown:
            where = f" {f.where}" if f.where else ""
            click.echo(f"{f.path}:{f.line}{where}: {f.kind} {f.preview}")
        if len(shown) < len(report.findings):
            click.echo(f"... and {len(report.findings) - len(shown)} more (--limit 0 lists all)")
        if report.findings:
            kinds = ", ".join(f"{k} {n}" for k, n in report.by_kind.items())
            click.echo(f"Found {len(report.findings)} values to redact in {report.files} files: {kinds}.")
        else:
            click.echo(f"Clean: nothing to redact in {report.files} files.")
    click.get_current_context().exit(EXIT_FOUND if report.findings else EXIT_CLEAN)


@redact_group.command(name="db")
@database_option
@click.option("--yes", is_flag=True, help="Rewrite for real (without it, only report what would change).")
@click.option(
    "--backup",
    type=click.Path(dir_okay=False),
    help="Where to write the copy taken first [default: beside the database, <db>.before-redact-<time>].",
)
@json_option("Print the result as JSON.")
def db_command(database, yes, backup, as_json):
    """Redact the secrets stored in the database, in place (payloads, transcript lines, messages,
    turns, tool calls, request shapes, pairs). Home paths stay.

    Without --yes nothing is written: it reports what would change. With --yes it first copies the
    database to a backup, then rewrites: the originals are gone from the database, the full-text
    index and the file's free pages. The backup still holds them: delete it once you have checked.
    Claude Code's own transcripts (~/.claude/projects) are not cra's to change and keep theirs.

    \b
    Examples:
      cra redact db
      cra redact db --yes --json
    """
    from ..db import open_db
    from .at_rest import redact_database

    db = open_db(database)
    result = redact_database(db, apply=yes, backup=backup)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    if not result.changed:
        click.echo("Nothing to redact: no stored value holds a secret redaction recognises.")
        if result.backup:
            click.echo(f"(A backup was taken anyway: {result.backup}; delete it if you do not need it.)")
        return
    for where, n in result.rows.items():
        click.echo(f"  {where}: {n} rows")
    kinds = ", ".join(f"{k} {n}" for k, n in result.kinds.items())
    if not yes:
        click.echo(f"Would rewrite {result.changed} stored values ({kinds}).")
        click.echo(
            "Warning: with --yes the originals are removed from the database for good (a backup is taken "
            "first). Rerun with --yes to rewrite."
        )
        return
    click.echo(f"Rewrote {result.changed} stored values ({kinds}).")
    if result.merged_pairs:
        click.echo(f"  {result.merged_pairs} pairs became identical to another and were merged.")
    click.echo(
        f"Warning: the backup {result.backup} still holds the original secrets: delete it once you have "
        "checked the database (or keep it somewhere safe)."
    )
    click.echo(
        "Claude Code's transcripts under ~/.claude/projects still hold them too; new sessions are recorded as "
        "they happen, so run this again after recording more."
    )
