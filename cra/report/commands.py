"""`cra stats`: a summary of what was recorded, as text, JSON, or an HTML report with charts."""

import json
from pathlib import Path

import click

from ..cli import database_option


@click.command(name="stats")
@database_option
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a self-contained HTML report with charts to this file.",
)
@click.option("--project", help="Only projects whose directory contains this text.")
@click.option("--since", metavar="DATE", help="From this date (YYYY-MM-DD or ISO datetime, UTC).")
@click.option("--until", metavar="DATE", help="Up to this date (a bare date includes the whole day).")
@click.option("--model", help="Only models whose id contains this text (e.g. sonnet).")
def stats_command(database, as_json, html_path, project, since, until, model):
    """Sessions, turns, tool calls by tool (failure rate, median duration), top tool sequences and
    workflows, exploration depth, tokens by model, busiest projects, and how many turns are ready
    for training. Signals for new turns are computed first.

    \b
    Examples:
      cra stats
      cra stats --project myapp --since 2025-06-01 --json
      cra stats --html report.html
    """
    from ..db import open_db
    from ..signals.store import update_signals
    from . import stats as stats_mod

    filters = stats_mod.StatsFilters(project=project, since=since, until=until, model=model)
    for name in ("since", "until"):
        value = getattr(filters, name)
        if value:
            try:
                stats_mod.parse_when(value)
            except ValueError as exc:
                raise click.ClickException(f"--{name}: {exc}; e.g. --{name} 2025-06-30") from exc
    db = open_db(database)
    update_signals(db)
    data = stats_mod.compute(db, filters)
    shared = data
    if html_path or as_json:
        from ..redact import redact_obj

        shared = redact_obj(data)  # files and JSON get passed on: no home directory, no secret in them
    if html_path:
        from .html import render as render_html

        try:
            Path(html_path).write_text(render_html(shared), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write the HTML report to {html_path}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(shared, indent=2, ensure_ascii=False))
    else:
        from .text import render as render_text

        click.echo(render_text(data))
        if html_path:
            click.echo(f"\nHTML report: {html_path}")
