"""`cra auto`: continuous learning cycles (docs/auto.md). Thin Click wrappers over cra.auto.

cra auto status                 # progress to the next cycle, the last cycles, the promoted model
cra auto once                   # one cycle if due (--force: now)
cra auto run --interval 900     # loop: for a systemd user service or cron
cra auto hook on                # let the Stop hook start `cra auto once` when a cycle may be due
"""

from __future__ import annotations

import json
import time

import click

from ..cli_options import database_option, json_option

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Settings file [default: $CRA_HOME/auto.toml when it exists].",
)


def _setup(database, config_file):
    from ..db import open_db
    from .config import load_settings

    settings = load_settings(config_file)
    return open_db(database), settings


@click.group(name="auto")
def auto_group():
    """Continuous learning: train, evaluate and promote a model as turns accumulate.

    A cycle runs when enough new qualifying turns have been recorded (or a day passed): sync ->
    signals -> dataset -> SFT (-> GRPO every second cycle) -> GGUF export -> eval against the
    promoted model -> promote if not worse. Thresholds: $CRA_HOME/auto.toml (`cra auto config`).
    """


def _refresh_trigger(db, settings):
    from . import trigger
    from .readiness import readiness

    if trigger.enabled():
        trigger.write(db, readiness(db, settings), settings)


def _once(db, settings, force: bool, quiet: bool, as_json: bool) -> dict:
    from .cycle import run_once

    echo = (lambda *a, **k: None) if quiet or as_json else click.echo
    try:
        result = run_once(db, settings, force=force, echo=echo)
    finally:
        _refresh_trigger(db, settings)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    elif not quiet:
        if result["status"] == "locked":
            click.echo(f"Not starting: {result['message']}.")
        elif result["status"] == "not_due":
            click.echo(f"No cycle due: {result['readiness']['reason']} (`--force` runs one now).")
        else:
            click.echo(_cycle_line(result["cycle"]))
    return result


@auto_group.command(name="once")
@click.option("--force", is_flag=True, help="Run a cycle now, due or not (never alongside another one).")
@click.option("--quiet", is_flag=True, help="Print nothing (the Stop hook and cron use this).")
@json_option("Print the outcome as JSON.")
@config_option
@database_option
def once_command(force, quiet, as_json, config_file, database):
    """Run one cycle if one is due (or --force). Exits 1 when the cycle failed (recorded; retried later).

    \b
    Examples:
      cra auto once
      cra auto once --force --json
    """
    from .cycle import CycleStopped, stop_on_sigterm

    db, settings = _setup(database, config_file)
    try:
        with stop_on_sigterm():
            result = _once(db, settings, force, quiet, as_json)
    except (CycleStopped, KeyboardInterrupt) as exc:
        if not quiet:
            click.echo(
                f"Stopped ({_stop_reason(exc)}): the cycle is recorded as stopped and runs again at the next check.",
                err=True,
            )
        raise SystemExit(1) from None
    if result["status"] == "failed":
        cycle = result["cycle"]
        if quiet or as_json:
            raise SystemExit(1)
        raise click.ClickException(
            f"cycle {cycle['number']} failed at stage {cycle['failed_stage']}: {cycle['error']} "
            "(recorded; retried after backoff, see `cra auto status`)"
        )


@auto_group.command(name="run")
@click.option("--interval", type=click.FloatRange(1), default=900, show_default=True, help="Seconds between checks.")
@click.option("--max-cycles", type=click.IntRange(1), help="Stop after this many cycles have run (default: never).")
@click.option("--quiet", is_flag=True, help="Print only cycles, not every check.")
@config_option
@database_option
def run_command(interval, max_cycles, quiet, config_file, database):
    """Check every --interval seconds and run a cycle whenever one is due, until Ctrl-C or SIGTERM.

    Suited to a systemd user service (docs/auto.md has a unit file): stopping it mid-cycle records the
    cycle as stopped (no backoff; the next start runs it again, reusing what it had finished). The
    settings file is read again at every check, so edits apply without a restart.

    \b
    Examples:
      cra auto run
      cra auto run --interval 3600 --quiet
    """
    from ..db import open_db
    from .config import load_settings
    from .cycle import CycleStopped, stop_on_sigterm

    db = open_db(database)
    ran = 0
    try:
        with stop_on_sigterm():
            while True:
                settings = load_settings(config_file)
                result = _once(db, settings, False, quiet=quiet, as_json=False)
                if result["status"] in ("completed", "failed"):
                    ran += 1
                    if quiet:
                        click.echo(_cycle_line(result["cycle"]))
                    if max_cycles and ran >= max_cycles:
                        return
                time.sleep(interval)
    except (CycleStopped, KeyboardInterrupt) as exc:
        click.echo(f"Stopped ({_stop_reason(exc)}).")


def _stop_reason(exc: BaseException) -> str:
    return str(exc) or "Ctrl-C"


def _cycle_line(c: dict) -> str:
    if c["status"] == "failed":
        return f"Cycle {c['number']} (attempt {c['attempt']}) FAILED at {c['failed_stage']}: {c['error']}"
    if c["status"] != "completed":
        return f"Cycle {c['number']} (attempt {c['attempt']}): {c['status']}"
    score = "" if c["score"] is None else f" {c['metric']} {c['score']:.4f}"
    base = "" if c["baseline_score"] is None else f" vs {c['baseline_score']:.4f}"
    verdict = "promoted" if c["decision"] == "promoted" else "not promoted (worse than the promoted model)"
    return f"Cycle {c['number']}: model run {c['model_run_id']} {verdict}:{score}{base}"


def status_data(db, settings) -> dict:
    from ..db import cra_home
    from . import lock, store, trigger
    from .config import config_path
    from .readiness import readiness

    store.write_pointer(db)
    ready = readiness(db, settings)
    return {
        "readiness": ready.as_dict(),
        "running": lock.holder(cra_home()),
        "promoted": store.pointer_data(db),
        "cycles": store.list_cycles(db, 5),
        "hook_trigger": trigger.enabled(),
        "config": str(config_path()),
    }


@auto_group.command(name="status")
@click.option("-n", "--limit", type=click.IntRange(1), default=5, show_default=True, help="Cycles shown.")
@json_option("Print JSON.")
@config_option
@database_option
def status_command(limit, as_json, config_file, database):
    """Progress to the next cycle, the last cycles with their stages, and the promoted model.

    \b
    Examples:
      cra auto status
      cra auto status -n 20 --json
    """
    from . import store

    db, settings = _setup(database, config_file)
    data = status_data(db, settings)
    data["cycles"] = store.list_cycles(db, limit)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    r = data["readiness"]
    click.echo(f"Qualifying turns: {r['qualifying']} of {r['candidates']} recorded")
    due = f"due now ({r['trigger']}): " if r["due"] else ""
    click.echo(f"Next cycle:       {r['number']}{' (with RL)' if r['with_rl'] else ''}: {due}{r['reason']}")
    if data["running"]:
        h = data["running"]
        click.echo(f"Running now:      pid {h.get('pid')} on {h.get('host')} since {h.get('started_at')}")
    p = data["promoted"]
    if p:
        click.echo(f"Promoted model:   run {p['run_id']} ({p['kind']}, {p['base_model']}) since {p['promoted_at']}")
        click.echo(f"                  {p['gguf'] or p['adapter']}")
    else:
        click.echo("Promoted model:   none yet")
    click.echo(f"Stop hook trigger: {'on' if data['hook_trigger'] else 'off (`cra auto hook on`)'}")
    if data["cycles"]:
        click.echo("Last cycles:")
    for c in data["cycles"]:
        stages = " ".join(f"{s['name']}:{s['status']}" for s in c["stages"])
        click.echo(
            f"  #{c['id']} cycle {c['number']}.{c['attempt']} {c['status']:<9} {c['started_at']} "
            f"[{c['trigger']}] {c['decision'] or ''}"
        )
        click.echo(f"      {stages}")
        if c["error"]:
            click.echo(f"      error: {c['error'][:300]}")


@auto_group.command(name="hook")
@click.argument("state", type=click.Choice(["on", "off"]))
@config_option
@database_option
def hook_command(state, config_file, database):
    """Let the Stop hook start `cra auto once` in the background when a cycle may be due (off by default).

    \b
    Examples:
      cra auto hook on
      cra auto hook off
    """
    from . import trigger
    from .readiness import readiness

    if state == "off":
        trigger.disable()
        click.echo("The Stop hook no longer starts cycles.")
        return
    db, settings = _setup(database, config_file)
    path = trigger.write(db, readiness(db, settings), settings)
    click.echo(f"The Stop hook starts `{' '.join(trigger.command())}` when a cycle may be due ({path}).")


@auto_group.command(name="promote")
@click.argument("run_id", type=int)
@database_option
@json_option("Print the promoted model (run, adapter, GGUF) as JSON.")
def promote_command(run_id, database, as_json):
    """Make RUN the promoted model by hand (the one `cra export ollama` uses by default).

    \b
    Example:
      cra auto promote 3
    """
    from ..db import open_db
    from ..train import runs
    from . import store

    db = open_db(database)
    run = runs.get_run(db, run_id)
    if runs.adapter_dir(db, run) is None:
        raise click.ClickException(
            f"run {run_id} ({run['kind']}, {run['status']}) has no adapter: promote a completed training run"
        )
    gguf = next(
        (
            a["path"]
            for a in runs.run_artifacts(db, run_id)
            if a["kind"] == "gguf" and (a.get("meta") or {}).get("type") == "merged"
        ),
        None,
    )
    store.promote(db, run_id, gguf=gguf, reason="promoted by hand")
    if as_json:
        click.echo(json.dumps(store.pointer_data(db), indent=2, default=str))
        return
    click.echo(f"Promoted run {run_id}.")


@auto_group.command(name="config")
@click.option("--defaults", is_flag=True, help="Print the defaults, ignoring the settings file.")
def config_command(defaults):
    """Print the settings in effect (TOML-ready JSON) and the file they come from.

    \b
    Examples:
      cra auto config
      cra auto config --defaults
    """
    from .config import AutoSettings, config_path, load_settings

    settings = AutoSettings() if defaults else load_settings()
    path = config_path()
    click.echo(f"# {path}{'' if path.is_file() else ' (absent: defaults)'}", err=True)
    click.echo(json.dumps(settings.model_dump(), indent=2))
