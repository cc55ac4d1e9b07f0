"""`cra eval`: thin Click wrappers over cra.eval (heavy imports happen on use).

cra eval 3                        # run 3, its base and the baselines, on the dataset's held-out steps
cra eval last --limit 200 --backend llama.cpp
cra eval --compare 3 5
cra eval gaps 3                   # where the model disagrees with Claude most, and a --focus file
cra eval pack -o ab.html          # blind A/B page for people (the newest eval)
cra eval judge judgements-....json
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli_options import database_option, json_option
from ..db import open_db


class EvalGroup(click.Group):
    """`cra eval RUN ...` is `cra eval run RUN ...`: the group's first word is a run unless it names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(name="eval", cls=EvalGroup, no_args_is_help=True)
def eval_group():
    """Does the model do what Claude did? Replays held-out steps and compares next actions.

    \b
    Usage:
      cra eval RUN [--base-only] [--split eval] [--limit N] [--backend hf|llama.cpp]
      cra eval --compare RUN1 RUN2
      cra eval gaps RUN               /    cra dataset build --focus FILE
      cra eval pack [RUN] -o ab.html  /    cra eval judge FILE
    """


@eval_group.command(name="run")
@click.argument("run_ref", metavar="RUN", required=False)
@click.option("--base-only", is_flag=True, help="Evaluate only the run's base model (no adapter).")
@click.option(
    "--split",
    type=click.Choice(["eval", "train"]),
    default="eval",
    show_default=True,
    help="Dataset split to replay: eval is held out (never trained on); train measures fit.",
)
@click.option("--limit", type=click.IntRange(1), help="Evaluate the first N steps only.")
@click.option(
    "--backend",
    type=click.Choice(["hf", "llama.cpp"]),
    default="hf",
    show_default=True,
    help="hf: transformers + the PEFT adapter; llama.cpp: the run's exported GGUF (`cra export gguf`).",
)
@click.option("--dataset", help="Dataset name or path [default: the one the run trained on].")
@click.option(
    "--max-new-tokens", type=click.IntRange(1), default=256, show_default=True, help="Longest generated action."
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Steps generated together (hf)."
)
@click.option(
    "--max-context-tokens",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Keep only the last N prompt tokens (0: all); for models with a short context.",
)
@click.option(
    "--cpu-threads",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Torch/llama.cpp CPU threads (0: default).",
)
@click.option("--fresh", is_flag=True, help="Generate again even if this model was already evaluated on these steps.")
@click.option(
    "--compare", nargs=2, metavar="RUN1 RUN2", help="Show two runs' latest evals side by side (no generation)."
)
@json_option("Print the evals as JSON.")
@database_option
def run_command(
    run_ref,
    base_only,
    split,
    limit,
    backend,
    dataset,
    max_new_tokens,
    batch_size,
    max_context_tokens,
    cpu_threads,
    fresh,
    compare,
    as_json,
    database,
):
    """Evaluate RUN (an id, or 'last') side by side with its base model (and its parent, for RL runs)
    and two baselines fitted on the training split: Claude's most frequent tool, and the most frequent
    next action after the previous one.

    Every step of the held-out split is replayed: the model gets the conversation up to where Claude
    acted and writes its next action, which is compared with Claude's, strictly (valid calls only,
    parallel calls one by one) and leniently. The verdict compares the model with the best baseline.
    Results go to the `evals` table.

    \b
    Examples:
      cra eval last
      cra eval 3 --limit 200 --backend llama.cpp
      cra eval --compare 3 5
    """
    from . import report, runner

    db = open_db(database)
    if compare:
        if run_ref:
            raise click.UsageError("give RUN or --compare RUN1 RUN2, not both")
        from . import store

        evals = store.comparable_pair(db, *(runner.find_run(db, ref)["id"] for ref in compare))
        differences = store.differences(*evals)
        if as_json:
            click.echo(json.dumps({"evals": evals, "differences": differences}, indent=2, default=str))
            return
        click.echo(
            report.side_by_side(
                evals,
                f"Runs {compare[0]} and {compare[1]} (evals {evals[0]['id']} and {evals[1]['id']})",
            )
        )
        if differences:
            click.echo(
                "\nWarning: these two evals are NOT comparable as they stand: " + "; ".join(differences) + ". "
                f"Evaluate both the same way (e.g. `cra eval {compare[1]} --dataset {evals[0]['dataset']}` with "
                "the same options) before reading a difference into them."
            )
        return
    if not run_ref:
        raise click.UsageError("name a RUN (an id, or 'last'), or pass --compare RUN1 RUN2")
    from .backends import GenerationSettings

    settings = GenerationSettings(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        cpu_threads=cpu_threads,
        max_context_tokens=max_context_tokens,
    )
    rows = runner.evaluate_run(
        db,
        run_ref,
        base_only=base_only,
        split=split,
        limit=limit,
        backend=backend,
        dataset=dataset,
        settings=settings,
        fresh=fresh,
        echo=lambda m, err=False: click.echo(m, err=err),
    )
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    first = rows[0]
    click.echo(
        report.side_by_side(
            rows,
            f"Run {first['run_id']} on the {first['split']} split of {first['dataset']} ({first['backend']}); "
            f"evals {', '.join(str(r['id']) for r in rows)}",
        )
    )


def _latest(db, run):
    from . import store

    row = store.latest_of_model(db, run["id"])
    if row is None:
        raise click.ClickException(f"run {run['id']} has not been evaluated yet: cra eval {run['id']}")
    return row


@eval_group.command(name="list")
@click.option("--run", "run_id", type=int, help="Only evals of this run.")
@click.option("-n", "--limit", type=int, default=20, show_default=True)
@json_option()
@database_option
def list_command(run_id, limit, as_json, database):
    """Recorded evals, newest first.

    \b
    Examples:
      cra eval list
      cra eval list --run 3 --json
    """
    from . import report, store

    rows = store.list_evals(open_db(database), run_id, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No evals yet: `cra eval RUN` makes one.")
        return
    table = []
    for r in rows:
        m = r["metrics"]
        acc = m["tool_name_accuracy"]
        table.append(
            (
                str(r["id"]),
                str(r["run_id"]),
                report.column_title(r),
                r["backend"],
                r["split"],
                str(r["step_count"]),
                f"{100 * acc['rate']:.1f}%" if acc.get("rate") is not None else "-",
                r["created_at"],
            )
        )
    click.echo(
        report.table(
            ["id", "run", "model", "backend", "split", "steps", "tool acc", "created"],
            [(row[0], list(row[1:])) for row in table],
        )
    )


@eval_group.command(name="gaps")
@click.argument("run_ref", metavar="RUN", required=False)
@click.option("--eval", "eval_id", type=int, help="Mine this eval [default: RUN's latest eval].")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), help="Gaps file [default: $CRA_HOME/evals/gaps-eval<id>.json]."
)
@click.option("-n", "--top", type=click.IntRange(1), default=10, show_default=True, help="Situations listed.")
@json_option("Print the report as JSON.")
@database_option
def gaps_command(run_ref, eval_id, out, top, as_json, database):
    """Where the model disagrees with Claude most on the held-out steps, grouped by situation.

    A situation is the tool Claude chose, the action before it, whether it follows a failed call, and
    how deep the turn had explored. The report is also written as a file whose focus situations
    `cra dataset build --focus FILE` oversamples in the next round's training split.

    \b
    Examples:
      cra eval gaps last
      cra eval gaps 3 -o gaps.json && cra dataset build --focus gaps.json
    """
    from . import gaps, runner, store

    db = open_db(database)
    if eval_id is not None:
        row = store.get_eval(db, eval_id)
    elif run_ref:
        row = _latest(db, runner.find_run(db, run_ref))
    else:
        raise click.UsageError("name a RUN (an id, or 'last'), or pass --eval ID")
    report = gaps.find_gaps(row, store.read_steps(row["steps_hash"]), store.read_predictions(row))
    target = gaps.write_gaps(report, Path(out) if out else store.evals_dir() / f"gaps-eval{row['id']:04d}.json")
    if as_json:
        click.echo(json.dumps({**report, "path": str(target)}, indent=2))
        return
    click.echo(gaps.report_text(report, target, top))


@eval_group.command(name="pack")
@click.argument("run_ref", metavar="[RUN]", required=False)
@click.option(
    "--eval", "eval_id", type=int, help="Use this eval's predictions [default: RUN's latest eval, or the newest]."
)
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), help="HTML file [default: $CRA_HOME/evals/pack-<id>.html]."
)
@click.option("--items", type=click.IntRange(1), default=40, show_default=True, help="Steps to show (sampled).")
@click.option("--seed", type=int, help="Sampling and A/B order seed [default: random].")
@database_option
@json_option("Print what was written (path, pack and eval ids, items) as JSON.")
def pack_command(run_ref, eval_id, out, items, seed, database, as_json):
    """A blind A/B page: Claude's and the model's next action for the same context, in random order.

    Open it in a browser, choose which side is Claude's, export the judgements, then `cra eval judge FILE`.
    Without RUN or --eval: the newest eval of a trained model.

    \b
    Examples:
      cra eval pack -o ab.html
      cra eval pack 3 --items 60 -o ab.html
    """
    from . import pack, runner, store

    db = open_db(database)
    if eval_id is not None:
        row = store.get_eval(db, eval_id)
    elif run_ref:
        row = _latest(db, runner.find_run(db, run_ref))
    else:
        newest = store.newest_model_eval(db)
        if newest is None:
            raise click.ClickException("no eval of a trained model yet: `cra eval last` makes one")
        row = newest
    target = Path(out) if out else store.evals_dir() / f"pack-eval{row['id']:04d}.html"
    info = pack.make_pack(db, row, target, items=items, seed=seed)
    if as_json:
        click.echo(json.dumps({**info, "eval_id": row["id"], "run_id": row["run_id"]}, indent=2, default=str))
        return
    click.echo(
        f"Wrote {info['items']} items to {info['path']} (pack {info['pack_id']}; "
        f"{info['identical']} items show the same action on both sides)."
    )
    click.echo("Open it in a browser, judge, export, then: cra eval judge FILE")


@eval_group.command(name="judge")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@database_option
@json_option("Print each file's judgements and rates as a JSON list.")
def judge_command(files, database, as_json):
    """Record judgements exported from a pack page and print the indistinguishability rate (target > 45%).

    \b
    Example:
      cra eval judge ~/Downloads/cra-judgements.json
    """
    from . import pack

    db = open_db(database)
    results = [{"file": path, **pack.record_judgements(db, Path(path))} for path in files]
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
        return
    for result in results:
        path = result["file"]
        every, differing = result["all"], result["differing"]
        click.echo(
            f"{path}: {result['recorded']} judgements by {result['judge']} (pack {result['pack_id']}, "
            f"eval {result['eval_id']})."
        )
        if every["rate"] is None:
            continue
        verdict = "meets" if every["rate"] > 0.45 else "below"
        click.echo(
            f"Indistinguishability: {100 * every['rate']:.1f}% [{100 * every['low']:.0f}-{100 * every['high']:.0f}] of "
            f"{every['n']} judgements by {result['judges']} judge(s) took the model for Claude "
            f"({verdict} the 45% target)."
        )
        if differing["n"] and differing["n"] != every["n"]:
            click.echo(
                f"  where the two actions differ: {100 * differing['rate']:.1f}% "
                f"[{100 * differing['low']:.0f}-{100 * differing['high']:.0f}] of {differing['n']}"
            )
