"""`cra merge SRC.db... [-d DEST]`."""

import json

import click

from ..cli_options import database_option, json_option


def _counts_text(c) -> str:
    parts = [f"{c.new} new", f"{c.duplicate} duplicate"]
    if c.conflicting:
        parts.append(f"{c.conflicting} conflicting ({c.updated} updated)")
    return ", ".join(parts)


@click.command(name="merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
@json_option("Print the report as JSON")
def merge_command(sources, database, as_json):
    """Merge cra databases from other machines into this one (or into -d DEST).

    Rows are matched by their natural ids (event uid, tool_use_id, message uuid, transcript path +
    generation + line), so merging twice changes nothing and the order of merging does not matter.
    Each row remembers the machine it was recorded on (`machines`, `origin`); turns and signals are
    recomputed for the sessions that changed. A source with an older schema is migrated in a copy:
    source files are only read. Datasets, runs and evaluations stay on the machine that made them.

    \b
    Examples:
      scp laptop:.local/share/cra/cra.db laptop.db && cra merge laptop.db
      cra merge alice.db bob.db -d team.db --json
    """
    from ..db import open_db
    from .merge import merge_databases

    db = open_db(database)
    report = merge_databases(db, list(sources))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for s in report.sources:
            if s.error:
                click.echo(f"Skipped {s.path}: {s.error}", err=True)
                continue
            who = s.machine["host"] + (f" (user {s.machine['user']})" if s.machine["user"] else "")
            migrated = f"; its schema was migrated ({', '.join(s.migrated)})" if s.migrated else ""
            click.echo(f"Merged {s.path} from {who}{migrated}:")
            for name, counts in s.tables.items():
                if counts.new or counts.duplicate or counts.conflicting:
                    click.echo(f"  {name:<23} {_counts_text(counts)}")
            line = f"  {s.turns_rebuilt} turns rebuilt in {s.sessions_changed} changed sessions"
            if s.signals:
                line += f"; signals: {s.signals['computed']} computed, {s.signals['unchanged']} unchanged"
            click.echo(line)
        click.echo(f"Into {report.destination}. Not merged (made per machine): {', '.join(report.not_merged)}.")
    if report.failed:
        raise click.ClickException(
            f"{len(report.failed)} of {len(report.sources)} source(s) could not be merged (listed above);"
            " the others were."
        )
