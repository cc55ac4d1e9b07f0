"""`cra stats`: a summary of what was recorded, as text, JSON, or an HTML report with charts."""

import json
from pathlib import Path

import click

from ..cli_options import database_option, json_option, since_option, until_option


@click.command(name="stats")
@database_option
@json_option("Print the numbers as JSON.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write a self-contained HTML report with charts to this file.",
)
@click.option("--project", help="Only projects whose directory contains this text.")
@since_option("Activity")
@until_option("Activity")
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
    from ..auto.config import thresholds
    from ..db import open_db
    from ..signals.store import update_signals
    from . import stats as stats_mod

    filters = stats_mod.StatsFilters(project=project, since=since, until=until, model=model)
    db = open_db(database)
    update_signals(db)
    # The readiness `cra auto` acts on: its bar and filters ($CRA_HOME/auto.toml), shown as `cra status` does.
    configured = thresholds()
    data = stats_mod.compute(db, filters, configured["settings"].turn_filters(), configured["min_total_turns"])
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


@click.command(name="browse")
@database_option
@click.option("--metadata", "metadata_only", is_flag=True, help="Print the Datasette metadata (JSON) and exit.")
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
def browse_command(database, metadata_only, datasette_args):
    """Browse the database in Datasette, with every table and column described, links between
    tables, and canned queries (failed calls, workflows, recoveries, full-text search).

    Datasette binds 127.0.0.1 unless you pass `--host`. Arguments after `--` go to `datasette serve`.
    Needs Datasette: `pip install 'cra-claude[browse]'`, or any `datasette` on PATH.

    \b
    Examples:
      cra browse
      cra browse -- --port 8002 --open
      cra browse --metadata > cra-metadata.json && datasette "$(cra path)" -m cra-metadata.json
    """
    import importlib.util
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from ..db import default_db_path, open_db
    from ..db.schema import datasette_metadata

    path = os.path.abspath(database or default_db_path())
    name = os.path.splitext(os.path.basename(path))[0]
    metadata = datasette_metadata(name)
    if metadata_only:
        click.echo(json.dumps(metadata, indent=2))
        return
    open_db(path).conn.close()  # created and migrated (foreign keys declared) before Datasette reads it
    if importlib.util.find_spec("datasette") is not None:
        command = [sys.executable, "-m", "datasette"]
    elif found := shutil.which("datasette"):
        command = [found]
    else:
        raise click.ClickException(
            "Datasette is not installed: pip install 'cra-claude[browse]' (or `pipx install datasette`), "
            "or run `cra browse --metadata > m.json` and `datasette DB -m m.json` yourself."
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="cra-datasette-", delete=False) as f:
        json.dump(metadata, f)
    # A child, not exec: the metadata file is removed when Datasette stops.
    try:
        status = subprocess.call([*command, "serve", path, "--metadata", f.name, *datasette_args])
    except KeyboardInterrupt:
        status = 130
    finally:
        os.unlink(f.name)
    raise SystemExit(status)
