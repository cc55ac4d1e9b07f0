"""`cra dataset build|pairs`, `cra bootstrap`, `cra import-pairs`."""

from __future__ import annotations

import json
import os
import time

import click

from cra.base_model import DEFAULT_BASE, DEFAULT_MAX_LENGTH
from cra.cli_options import database_option, json_option
from cra.db import cra_home, open_db
from cra.errors import CraError

from .filters import TurnFilters


def _out_dir(out, name, force):
    path = out or os.path.join(cra_home(), "datasets", name)
    if os.path.isdir(path) and os.listdir(path) and not force:
        raise click.ClickException(
            f"{path} already holds files. Pick another --out or --name, or pass --force to overwrite."
        )
    return path


def _filter_options(f):
    defaults = TurnFilters()
    f = click.option(
        "--min-tool-calls",
        type=click.IntRange(0),
        default=defaults.min_tool_calls,
        show_default=True,
        help="Keep turns with at least this many tool calls.",
    )(f)
    f = click.option(
        "--min-answer-words",
        type=click.IntRange(0),
        default=defaults.min_answer_words,
        show_default=True,
        help="Keep turns whose final answer has at least this many words.",
    )(f)
    f = click.option(
        "--keep-failed", is_flag=True, help="Keep interrupted, errored and incomplete turns (skipped by default)."
    )(f)
    f = click.option(
        "--keep-unrecovered",
        is_flag=True,
        help="Keep turns where a failed call was never recovered (skipped by default).",
    )(f)
    return f


def _filters(min_tool_calls, min_answer_words, keep_failed, keep_unrecovered):
    return TurnFilters(
        min_tool_calls=min_tool_calls,
        min_answer_words=min_answer_words,
        skip_failed=not keep_failed,
        skip_unrecovered=not keep_unrecovered,
    )


@click.group(name="dataset")
def dataset_group():
    """Build training data from recorded sessions."""


@dataset_group.command(name="build")
@database_option
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), help="Output directory [default: $CRA_HOME/datasets/NAME]"
)
@click.option("--name", help="Dataset name [default: sft-<timestamp>]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["openai", "sharegpt"]),
    default="openai",
    show_default=True,
    help="openai: {messages, tools} with tool_calls; sharegpt: LLaMA-Factory's function_call/observation.",
)
@click.option(
    "--unit",
    type=click.Choice(["turn", "step"]),
    default="turn",
    show_default=True,
    help="One example per turn, or per assistant step (the history before it + the step).",
)
@click.option(
    "--context-turns",
    type=click.IntRange(0, 20),
    default=0,
    show_default=True,
    help="Earlier turns of the session (prompt + final answer) included as context.",
)
@click.option(
    "--thinking",
    type=click.Choice(["reasoning", "omit"]),
    default="reasoning",
    show_default=True,
    help="Claude's thinking as a `reasoning` field on assistant messages, or left out.",
)
@click.option(
    "--tools",
    "tools_mode",
    type=click.Choice(["offered", "compact", "used"]),
    default="offered",
    show_default=True,
    help="Tool schemas listed: every tool the session offered; the same without long descriptions (compact); "
    "or only those the example calls. The dataset card says what each costs in tokens.",
)
@click.option(
    "--system",
    "system_mode",
    type=click.Choice(["default", "recorded", "none"]),
    default="default",
    show_default=True,
    help="System message: a short built-in one, the client's recorded one, or none.",
)
@click.option(
    "--max-tool-output-chars",
    type=click.IntRange(200),
    default=4000,
    show_default=True,
    help="Longer tool outputs keep their head and tail around a visible marker.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(256),
    default=DEFAULT_MAX_LENGTH,
    show_default=True,
    help="Example length budget (`cra train sft`'s default --max-length); longer examples are shrunk, else dropped.",
)
@click.option(
    "--base",
    default=DEFAULT_BASE,
    show_default=True,
    help="The base model to train: its tokenizer counts tokens (a directory, or a hub id in the local cache).",
)
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, file_okay=False),
    help="Count with this tokenizer directory instead of the base's.",
)
@click.option(
    "--chat-template",
    default="auto",
    show_default=True,
    help="How the base renders conversations, as in `cra train sft --chat-template`.",
)
@_filter_options
@click.option(
    "--eval-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of sessions held out for evaluation (split by session).",
)
@click.option(
    "--split-by",
    type=click.Choice(["session", "project", "time"]),
    default="session",
    show_default=True,
    help="Hold out whole sessions, whole projects, or the newest sessions (train on the past, eval on the future).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the session or project split.")
@click.option(
    "--focus",
    type=click.Path(exists=True, dir_okay=False),
    help="A gaps file from `cra eval gaps`: oversample training examples in the situations it lists.",
)
@click.option(
    "--focus-factor",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="With --focus: how many times each such training example is written.",
)
@click.option(
    "--no-redact",
    is_flag=True,
    help="Write secrets and home paths exactly as recorded (redaction is on by default). Never share the result.",
)
@click.option("--no-subagents", is_flag=True, help="Leave out turns run inside subagents.")
@click.option("--no-synthetic", is_flag=True, help="Leave out `cra bootstrap` workflows.")
@click.option("--limit", type=click.IntRange(1), help="Stop after this many examples.")
@click.option("--force", is_flag=True, help="Overwrite an existing output directory.")
@json_option("Print the summary as JSON.")
def build_command(
    database,
    out,
    name,
    fmt,
    unit,
    context_turns,
    thinking,
    tools_mode,
    system_mode,
    max_tool_output_chars,
    max_tokens,
    base,
    tokenizer,
    chat_template,
    min_tool_calls,
    min_answer_words,
    keep_failed,
    keep_unrecovered,
    eval_fraction,
    split_by,
    seed,
    focus,
    focus_factor,
    no_redact,
    no_subagents,
    no_synthetic,
    limit,
    force,
    as_json,
):
    """Turn recorded turns into tool-calling training examples (train.jsonl, eval.jsonl, README.md).

    Every string written is redacted (API keys, tokens, private keys, passwords, credentials in
    URLs, auth headers, home directories) unless --no-redact.

    \b
    Examples:
      cra dataset build --name mine --eval-fraction 0.2 --split-by project
      cra dataset build --focus ~/.cra/evals/gaps-eval0012.json   # oversample the last model's gaps
    """
    from .build import BuildOptions, DatasetBuilder, record_dataset, write_card
    from .turn_chats import table_exists

    options = BuildOptions(
        format=fmt,
        unit=unit,
        context_turns=context_turns,
        thinking=thinking,
        tools=tools_mode,
        system=system_mode,
        max_tool_output_chars=max_tool_output_chars,
        max_tokens=max_tokens,
        base=base,
        tokenizer=tokenizer,
        chat_template=chat_template,
        eval_fraction=eval_fraction,
        split_by=split_by,
        seed=seed,
        focus=focus,
        focus_factor=focus_factor,
        redact=not no_redact,
        include_subagents=not no_subagents,
        synthetic=not no_synthetic,
        limit=limit,
        filters=_filters(min_tool_calls, min_answer_words, keep_failed, keep_unrecovered),
    )
    db = open_db(database)
    _sync_transcripts(db)
    has_turns = table_exists(db, "turns") and db.execute("SELECT 1 FROM turns LIMIT 1").fetchone()
    has_synth = not no_synthetic and db.execute("SELECT 1 FROM synthetic_workflows LIMIT 1").fetchone()
    if not has_turns and not has_synth:
        raise click.ClickException(
            "no turns recorded yet. Work with Claude Code with capture on, or import existing sessions "
            "with `cra import`, or add synthetic workflows with `cra bootstrap --synthetic N`."
        )
    name = name or time.strftime("sft-%Y%m%d-%H%M%S")
    path = _out_dir(out, name, force)
    try:
        summary = DatasetBuilder(db, options).build(path)
    except CraError as exc:  # an unreadable focus file
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write the dataset to {path}: {exc}") from exc
    write_card(os.path.join(path, "README.md"), name, options, summary)
    dataset_id = record_dataset(db, name, "sft", fmt, path, options.as_dict(), summary)
    if as_json:
        click.echo(json.dumps({"id": dataset_id, "name": name, "path": path, **summary}, indent=2))
        return
    removed = ", ".join(f"{k} {v}" for k, v in summary["removed"].items() if v) or "none"
    click.echo(f"Dataset {name} (#{dataset_id}) in {path}")
    click.echo(f"  turns: {summary['turns_seen']} seen, {summary['turns_kept']} kept; removed: {removed}")
    click.echo(
        f"  examples: {summary['train_examples']} train, {summary['eval_examples']} eval "
        f"({summary['synthetic_examples']} synthetic, train only); held out by {split_by}"
    )
    if summary.get("focus"):
        f = summary["focus"]
        click.echo(
            f"  focus: {f['examples']} training examples in {f['situations']} gap situation(s) written "
            f"{f['factor']} times ({f['copies']} extra copies)"
        )
    red = sum(summary["redactions"].values())
    click.echo(f"  redaction: {'off (--no-redact)' if not summary['redaction_enabled'] else f'{red} values replaced'}")
    t = summary["tokens"]
    click.echo(f"  tokens per example: median {t['median']}, p95 {t['p95']}, max {t['max']} ({t['counted_with']})")
    if not summary["train_examples"] + summary["eval_examples"]:
        click.echo(
            "  No example passed the filters: see README.md for what removed them, or relax "
            "--min-tool-calls / --min-answer-words."
        )
    elif not summary["train_examples"] or (eval_fraction > 0 and not summary["eval_examples"]):
        # The split hashes each session id with the seed (a session never changes sides as data
        # grows): with a handful of sessions, every one can land on the same side.
        empty = "train" if not summary["train_examples"] else "eval"
        sessions = summary["train_sessions"] + summary["eval_sessions"]
        click.echo(
            f"  warning: the {empty} split is empty: all {sessions} kept session(s) fell on the other side of "
            f"the --eval-fraction {eval_fraction} split. Try another --seed"
            + (", or --eval-fraction 0 to train on everything." if empty == "train" else "."),
            err=True,
        )


def _sync_transcripts(db):
    """Bring transcripts of recorded sessions up to date first, when the transcripts stage is there."""
    try:
        from cra.transcripts import importer
    except ImportError:
        return
    sync = getattr(importer, "sync", None)
    if sync is not None:
        try:
            sync(db.conn)
        except Exception as exc:  # a sync problem must not block building from what is stored
            click.echo(f"warning: could not sync transcripts ({exc}); building from what is stored", err=True)


@dataset_group.command(name="pairs")
@database_option
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), help="Output directory [default: $CRA_HOME/datasets/NAME]"
)
@click.option("--name", help="Dataset name [default: pairs-<timestamp>]")
@click.option(
    "--perturbed-per-turn",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Pairs of Claude's real next action against a perturbed one (wrong tool, malformed arguments), per turn.",
)
@click.option(
    "--max-tool-output-chars",
    type=click.IntRange(200),
    default=4000,
    show_default=True,
    help="Longer tool outputs in the prompt keep their head and tail.",
)
@click.option("--eval-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--no-redact", is_flag=True, help="Write secrets and home paths exactly as recorded. Never share the result."
)
@click.option("--no-mine", is_flag=True, help="Only export the pairs already stored (imported, mined before).")
@click.option("--force", is_flag=True, help="Overwrite an existing output directory.")
@json_option("Print the summary as JSON.")
def pairs_command(
    database,
    out,
    name,
    perturbed_per_turn,
    max_tool_output_chars,
    eval_fraction,
    seed,
    no_redact,
    no_mine,
    force,
    as_json,
):
    """Preference pairs (chosen/rejected) for DPO and reward models.

    Mined from sessions: the user's denials (the denied call is rejected, what Claude did instead is
    chosen), failed calls followed by a correction, and Claude's real next action against perturbed
    alternatives. Stored in the `pairs` table with imported ones (`cra import-pairs`), then written
    out split by session.

    \b
    Examples:
      cra dataset pairs --name pairs
      cra dataset pairs --no-mine --eval-fraction 0.2 --json
    """
    from .build import record_dataset, write_card
    from .pairs import PairMiner, export_pairs

    db = open_db(database)
    _sync_transcripts(db)
    mined = {}
    if not no_mine:
        mined = PairMiner(db, perturbed_per_turn=perturbed_per_turn, seed=seed).mine()
    if not db.execute("SELECT 1 FROM pairs LIMIT 1").fetchone():
        raise click.ClickException(
            "no preference pairs: no denials, corrected failures or tool calls were found. Record more "
            "sessions, `cra import` existing ones, or `cra import-pairs FILE`."
        )
    name = name or time.strftime("pairs-%Y%m%d-%H%M%S")
    path = _out_dir(out, name, force)
    summary = export_pairs(
        db,
        path,
        eval_fraction=eval_fraction,
        seed=seed,
        redact=not no_redact,
        max_tool_output_chars=max_tool_output_chars,
    )
    summary["mined"] = mined
    params = {
        "perturbed_per_turn": perturbed_per_turn,
        "eval_fraction": eval_fraction,
        "seed": seed,
        "redact": not no_redact,
        "max_tool_output_chars": max_tool_output_chars,
    }
    write_card(os.path.join(path, "README.md"), name, None, summary, kind="pairs")
    dataset_id = record_dataset(db, name, "pairs", "dpo", path, params, summary)
    if as_json:
        click.echo(json.dumps({"id": dataset_id, "name": name, "path": path, **summary}, indent=2))
        return
    click.echo(f"Pairs {name} (#{dataset_id}) in {path}")
    click.echo("  newly mined: " + (", ".join(f"{k} {v}" for k, v in mined.items()) or "nothing new"))
    click.echo(
        f"  written: {summary['train_examples']} train, {summary['eval_examples']} eval; by source: "
        + ", ".join(f"{k} {v}" for k, v in summary["sources"].items())
    )


@click.command(name="bootstrap")
@database_option
@click.option(
    "--synthetic",
    "count",
    type=click.IntRange(1, 100000),
    required=True,
    help="How many synthetic workflows to generate.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@json_option("Print the counts as JSON.")
def bootstrap_command(database, count, seed, as_json):
    """Add synthetic tool-use workflows from templates (code search, file modification, debugging,
    system analysis, deployment), for a first model before enough real sessions exist.

    They are stored apart (`synthetic_workflows`), marked synthetic: `cra dataset build` puts them
    after real turns (a real duplicate wins) and only ever in the train split.

    \b
    Examples:
      cra bootstrap --synthetic 200
      cra bootstrap --synthetic 50 --seed 1 --json
    """
    from .bootstrap import store_synthetic

    db = open_db(database)
    added, by_template = store_synthetic(db, count, seed)
    if as_json:
        click.echo(json.dumps({"added": added, "already_stored": count - added, "by_template": by_template}))
        return
    click.echo(
        f"Added {added} synthetic workflows ({', '.join(f'{k} {v}' for k, v in by_template.items())}); "
        f"{count - added} were already stored."
    )


@click.command(name="import-pairs")
@database_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--synthetic", is_flag=True, help="Mark the pairs synthetic (never used for evaluation).")
@json_option("Print the counts as JSON.")
def import_pairs_command(database, file, synthetic, as_json):
    """Load external preference pairs (JSONL: prompt, chosen, rejected; strings or message lists;
    optional tools) into the pair store.

    \b
    Examples:
      cra import-pairs pairs.jsonl
      cra import-pairs generated.jsonl --synthetic --json
    """
    from .pairs import PairFormatError, import_pairs

    db = open_db(database)
    try:
        added, skipped = import_pairs(db, file, synthetic=synthetic)
    except PairFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"file": file, "imported": added, "already_stored": skipped}))
        return
    click.echo(f"Imported {added} pairs from {file}" + (f" ({skipped} already stored)" if skipped else ""))
