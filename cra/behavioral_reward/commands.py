"""`cra reward score`: score completions against their context and show every component's reason."""

from __future__ import annotations

import json

import click

from ..cli_options import database_option, json_option
from ..jsonl import numbered_rows


@click.group(name="reward")
def reward_group():
    """The behavioral reward RL trains with (`cra reward score`)."""


def _summarise(text: str, width: int = 100) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _rows_from_file(path: str):
    for line_no, row in numbered_rows(path, lambda message: click.ClickException(f"{path} {message}")):
        messages = row.get("messages", row.get("prompt")) if isinstance(row, dict) else None
        if messages is None or "reference" not in row:
            raise click.ClickException(
                f"{path} line {line_no}: each row needs `messages` (the context) and `reference` "
                "(Claude's real next assistant message); `completion` or `completions` are scored"
            )
        completions = row.get("completions") or ([row["completion"]] if "completion" in row else [])
        yield f"line {line_no}", messages, row.get("tools"), row["reference"], completions


def _rows_from_dataset(db, ref: str, limit: int):
    from ..dataset.files import resolve_dataset
    from .context import contexts_from_example

    train, _ = resolve_dataset(db, ref)
    count = 0
    for line_no, example in numbered_rows(train, lambda message: click.ClickException(f"{train} {message}")):
        for ctx, index in contexts_from_example(example):
            yield f"{train.name}:{line_no} message {index}", ctx.messages, ctx.tools, ctx.reference, []
            count += 1
            if count >= limit:
                return


@reward_group.command(name="score")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--dataset", help="Take contexts from a training dataset instead (name, directory or JSONL).")
@click.option("-n", "--limit", type=click.IntRange(1), default=5, show_default=True, help="Contexts from --dataset.")
@click.option(
    "-c",
    "--completion",
    "completions",
    multiple=True,
    help="A completion to score at every context (repeatable). Default: the file's own, else Claude's.",
)
@click.option("--weights", help="name=value,... or a .json/.toml file (see docs/rl.md).")
@json_option("One JSON object per scored completion.")
@database_option
def score_command(file, dataset, limit, completions, weights, as_json, database):
    """Score completions against their context and print each component, with why it scored so.

    FILE is JSONL, one context per line: `messages` (the conversation before Claude acted), `tools`,
    `reference` (Claude's real next assistant message) and `completion`/`completions` (what a model
    wrote there, raw text with <tool_call> blocks). Without completions, Claude's own action is
    scored: it gets full marks on every component by construction.

    \b
    Examples:
      cra reward score contexts.jsonl
      cra reward score --dataset mydata -n 3 \\
        -c '<tool_call>{"name": "Read", "arguments": {"file_path": "a.py"}}</tool_call>'
    """
    from .config import parse_weights
    from .context import Context
    from .score import completion_text, score_text

    if bool(file) == bool(dataset):
        raise click.ClickException("give a FILE of contexts or --dataset (one of them)")
    try:
        w = parse_weights(weights)
    except ValueError as exc:
        raise click.ClickException(f"--weights: {exc}") from exc
    if dataset:
        from ..db import open_db

        rows = _rows_from_dataset(open_db(database), dataset, limit)
    else:
        rows = _rows_from_file(file)
    scored = 0
    for where, messages, tools, reference, own in rows:
        try:
            ctx = Context.build(messages, tools, reference)
        except (ValueError, TypeError, KeyError) as exc:
            raise click.ClickException(f"{where}: {exc}") from exc
        reference_text = completion_text(ctx.reference)
        for completion in list(completions) or own or [reference_text]:
            completion = completion_text(completion)
            s = score_text(ctx, completion, w)
            scored += 1
            if as_json:
                click.echo(json.dumps({"where": where, "completion": completion, **s.as_dict()}, ensure_ascii=False))
                continue
            click.echo(f"{where}  reward {s.total:.3f}")
            click.echo(f"  Claude:     {_summarise(reference_text)}")
            click.echo(f"  completion: {_summarise(completion)}")
            for name, comp in s.components.items():
                gated = "" if name in ("format_validity", "agreement") or s.gate == 1 else f" x gate {s.gate:.2f}"
                click.echo(
                    f"  {name:<21} {comp.score:.2f}  x {s.weights[name]:.3f}{gated} = {s.contributions[name]:.3f}  "
                    f"{comp.reason}"
                )
            click.echo("")
    if not scored:
        raise click.ClickException("nothing to score: no contexts found")
