"""`cra train ...` and `cra runs`: thin Click wrappers over cra.train (heavy imports happen on use)."""

from __future__ import annotations

import json

import click

from .. import progress
from ..cli_options import config_option, database_option, json_option, resume_option, settings_options
from ..db import open_db
from .config import SFTSettings, resolve_settings


@click.group(name="train")
def train_group():
    """Train local models on what Claude Code did (LoRA adapters; runs recorded in `cra runs`)."""


@train_group.command(name="sft")
@config_option
@resume_option
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the settings this command would train with (JSON, usable as --config) and exit.",
)
@settings_options(SFTSettings)
@database_option
@json_option("Print the finished run (id, output directory, metrics, artifacts) as JSON; progress goes to stderr.")
def sft_command(config_file, resume, print_config, database, as_json, **options):
    """Supervised fine-tuning (QLoRA behavioural cloning) of a LoRA adapter on a tool-calling dataset.

    \b
    Examples:
      cra train sft --base meta-llama/Llama-3.1-8B-Instruct --dataset mydata
      cra train sft --config sft.yaml --max-steps 200
      cra train sft --resume            # after Ctrl-C or a crash
    """
    from . import sft

    db = open_db(database)
    settings, parent = resolve_settings(SFTSettings, "sft", db, config_file, resume, options)
    if print_config:
        click.echo(json.dumps(settings.model_dump(), indent=2))
        return
    run = sft.train_sft(settings, db, parent=parent, echo=progress.to_stderr if as_json else progress.echo)
    if as_json:
        click.echo(json.dumps(run_record(db, run["id"]), indent=2, default=str))


def run_record(db, run_id: int) -> dict:
    """A run's row with its artifacts: what `cra runs show --json` and `cra train * --json` print."""
    from . import runs

    run = runs.get_run(db, run_id)
    run["artifacts"] = runs.run_artifacts(db, run_id)
    return run


@click.group(name="runs", invoke_without_command=True)
@click.option("-n", "--limit", type=int, default=20, show_default=True, help="Show this many runs, newest first.")
@click.option("--kind", help="Only runs of this kind (sft, ...).")
@json_option("Print JSON rows instead of a table.")
@database_option
@click.pass_context
def runs_group(ctx, limit, kind, as_json, database):
    """Training runs: id, kind, status, base model, dataset, losses, output directory.

    \b
    Examples:
      cra runs -n 5
      cra runs --kind sft --json
      cra runs show 3
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import runs

    rows = runs.list_runs(open_db(database), kind=kind, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No runs yet: `cra train sft --help` starts one.")
        return
    header = ("id", "kind", "status", "started", "base", "dataset", "steps", "eval loss", "output")
    table = [header]
    for r in rows:
        m = r.get("metrics") or {}
        best = m.get("eval_loss_best")
        table.append(
            (
                str(r["id"]),
                r["kind"],
                r["status"],
                r["started_at"],
                r["base_model"],
                r["dataset"] or "-",
                str(m.get("steps", "-")),
                f"{best:.4f}" if isinstance(best, (int, float)) else "-",
                r["output_dir"],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@runs_group.command(name="show")
@click.argument("run_id", type=int)
@json_option("Print the run as JSON.")
@database_option
def runs_show(run_id, as_json, database):
    """Everything recorded about one run: config, metrics, error, artifacts.

    \b
    Examples:
      cra runs show 3
      cra runs show 3 --json
    """
    from . import sft

    db = open_db(database)
    run = run_record(db, run_id)
    if as_json:
        click.echo(json.dumps(run, indent=2, default=str))
        return
    click.echo(f"Run {run['id']} ({run['kind']}): {run['status']}")
    for key in ("base_model", "dataset", "started_at", "ended_at", "output_dir", "parent_run"):
        click.echo(f"  {key:<11} {run[key] if run[key] is not None else '-'}")
    if run.get("metrics"):
        if run["kind"] in ("grpo", "ppo", "reward"):
            from . import rl

            click.echo(rl.summary_text(run))  # rewards, KL, before/after instead of losses
        else:
            click.echo(sft.summary_text(run))
    if run.get("error"):
        click.echo("Error:\n  " + run["error"].strip().replace("\n", "\n  "))
    if run["artifacts"]:
        click.echo("Artifacts:")
        for a in run["artifacts"]:
            click.echo(f"  {a['kind']:<10} {a['path']} ({a['bytes']} bytes)")
    click.echo("Config:")
    for key, value in sorted(run["config"].items()):
        click.echo(f"  {key:<22} {value}")


# The RL stages (docs/rl.md): GRPO with the behavioral reward, the reward model, PPO.
from .rl_commands import grpo_command, ppo_command, reward_command  # noqa: E402

train_group.add_command(grpo_command)
train_group.add_command(reward_command)
train_group.add_command(ppo_command)
