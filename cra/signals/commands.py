"""`cra signals`: compute per-turn signals for new and changed turns, or show one turn's."""

import json

import click

from ..cli_options import database_option, json_option


def _load_config(config_path, depth):
    from pydantic import ValidationError

    from .config import DepthThresholds, SignalConfig

    try:
        config = SignalConfig.from_file(config_path) if config_path else SignalConfig()
        if depth:
            parts = [p.strip() for p in depth.split(",")]
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise click.ClickException(
                    f"--depth-thresholds takes three increasing integers MODERATE,THOROUGH,EXHAUSTIVE "
                    f"(exploration calls before the first change), e.g. 2,5,10; got {depth!r}"
                )
            moderate, thorough, exhaustive = map(int, parts)
            config = config.model_copy(
                update={"depth": DepthThresholds(moderate=moderate, thorough=thorough, exhaustive=exhaustive)}
            )
    except ValidationError as exc:
        raise click.ClickException(f"invalid signals config: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the signals config {config_path}: {exc}") from exc
    return config


@click.command(name="signals")
@database_option
@click.option("--all", "force", is_flag=True, help="Recompute every turn, not only new and changed ones.")
@click.option("--session", help="Only this session's turns.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON or TOML file with signal thresholds (see docs/signals.md).",
)
@click.option(
    "--depth-thresholds",
    "depth",
    metavar="M,T,E",
    help="Exploration calls before the first change for moderate, thorough, exhaustive [2,5,10].",
)
@click.option(
    "--show",
    "show_turn",
    type=int,
    metavar="TURN_ID",
    help="Print one turn's signals and evidence as JSON (turn ids: `cra show SESSION`).",
)
@json_option("Print the counts as JSON.")
def signals_command(database, force, session, config_path, depth, show_turn, as_json):
    """Compute reasoning signals for each turn (incremental: only turns without signals, or changed
    since), so `cra stats` and SQL over `turns_with_signals` can use them.

    \b
    Examples:
      cra signals
      cra signals --depth-thresholds 3,8,15
      cra signals --show 42
      cra signals --session 3f2a --json
    """
    from ..db import open_db
    from .store import update_signals

    config = _load_config(config_path, depth)
    db = open_db(database)
    result = update_signals(db, config, force=force, session_id=session)
    if show_turn is not None:
        row = db.execute("SELECT * FROM signals WHERE turn_id = ?", [show_turn]).fetchone()
        if row is None:
            raise click.ClickException(
                f"no turn {show_turn}: `cra show SESSION` prints each turn's id (`cra sessions` lists sessions)"
            )
        cols = [d[0] for d in db.execute("SELECT * FROM signals LIMIT 0").description]
        out = dict(zip(cols, row))
        for key in ("tool_sequence", "workflow_tags", "evidence"):
            out[key] = json.loads(out[key]) if out[key] else None
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    total = result.computed + result.unchanged
    if as_json:
        counts = {"computed": result.computed, "unchanged": result.unchanged, "removed": result.removed}
        click.echo(json.dumps({**counts, "turns": total}, indent=2))
        return
    if total == 0:
        click.echo("No turns yet: import transcripts with `cra import` (or let the hooks record a session).")
        return
    click.echo(
        f"Signals: {result.computed} computed, {result.unchanged} unchanged"
        + (f", {result.removed} removed" if result.removed else "")
        + f" ({total} turns)."
    )
