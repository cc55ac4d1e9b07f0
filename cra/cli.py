"""The `cra` command line. Nothing heavy here: each subcommand's module loads only when it runs."""

import importlib

import click

from . import __version__

# name -> "module:attribute". Add a command by adding a line; its module is imported on use only,
# so `cra --help` and capture never pay for training libraries.
COMMANDS = {
    "path": "cra.capture.commands:path_command",
    "status": "cra.capture.commands:status_command",
    "on": "cra.capture.commands:on_command",
    "off": "cra.capture.commands:off_command",
    "ignore": "cra.capture.commands:ignore_group",
    "install": "cra.capture.install_commands:install_command",
    "uninstall": "cra.capture.install_commands:uninstall_command",
    "ingest": "cra.capture.commands:ingest_command",
    "import": "cra.transcripts.commands:import_command",
    "sync": "cra.transcripts.commands:sync_command",
    "sessions": "cra.transcripts.commands:sessions_command",
    "show": "cra.transcripts.commands:show_command",
    "signals": "cra.signals.commands:signals_command",
    "stats": "cra.report.commands:stats_command",
    "browse": "cra.report.commands:browse_command",
    "train": "cra.train.commands:train_group",
    "runs": "cra.train.commands:runs_group",
    "dataset": "cra.dataset.commands:dataset_group",
    "bootstrap": "cra.dataset.commands:bootstrap_command",
    "import-pairs": "cra.dataset.commands:import_pairs_command",
    "export": "cra.export.commands:export_group",
    "reward": "cra.behavioral_reward.commands:reward_group",
    "eval": "cra.eval.commands:eval_group",
    "auto": "cra.auto.commands:auto_group",
    "merge": "cra.merge.commands:merge_command",
    "serve": "cra.serve.commands:serve_group",
}

# One-line help shown by `cra --help` without importing the command's module.
SHORT_HELP = {
    "path": "Print the path of the cra database.",
    "status": "Is capture installed and on, what has it recorded, is anything stuck?",
    "on": "Resume capture.",
    "off": "Pause capture: hooks record nothing until `cra on`.",
    "ignore": "Project directories that are never recorded.",
    "install": "Add cra's hooks to Claude Code's settings.json.",
    "uninstall": "Remove exactly the hooks `cra install` added.",
    "ingest": "Replay spooled hook events into the database.",
    "import": "Backfill Claude Code transcripts (default ~/.claude/projects), or other agents' traces; safe to rerun.",
    "sync": "Catch up on transcripts the hooks know of (messages, turns, subagents).",
    "sessions": "List sessions, newest first (-n, --json, --project, --since/--until).",
    "show": "Print one session as a timeline: prompts, text, tool calls, subagents.",
    "signals": "Compute per-turn reasoning signals (incremental).",
    "browse": "Browse the database in Datasette, tables and columns described, with canned queries.",
    "stats": "What Claude did: tools, sequences, depth, tokens, training readiness (--json, --html).",
    "train": "Train a LoRA adapter on recorded sessions (`cra train sft`).",
    "dataset": "Build tool-calling training data (`build`) and preference pairs (`pairs`), redacted.",
    "bootstrap": "Add synthetic template workflows (`--synthetic N`), train split only.",
    "export": "Export a trained run as GGUF (llama.cpp) or an Ollama model (`gguf`, `ollama`); tables as `parquet`.",
    "reward": "Score completions with the behavioral reward, component by component (`cra reward score`).",
    "eval": "Does the model do what Claude did? Held-out next actions vs its base (`pack`, `judge`).",
    "import-pairs": "Load external preference pairs (JSONL) into the pair store.",
    "runs": "Training runs and their results (`cra runs show ID`).",
    "auto": "Continuous learning: train, evaluate, promote as turns accumulate (`once`, `run`, `status`).",
    "merge": "Merge databases from other machines into this one, by natural ids (idempotent, --json).",
    "serve": "Serve the trained model to Claude Code, to a share of sessions (`status`, `set-share`).",
}


class LazyGroup(click.Group):
    def invoke(self, ctx):
        # The CLI edge: the library raises cra.errors, a person sees one line and exit status 1.
        from .errors import CraError
        from .quiet import quiet_libraries

        quiet_libraries()
        try:
            return super().invoke(ctx)
        except CraError as exc:
            raise click.ClickException(str(exc)) from exc

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="cra")
def cli():
    """cra: record what Claude Code does, understand it, and train a local model that works the same way.

    Hooks write every tool call into one SQLite database (`cra path`); transcripts add the
    conversation around them.
    """
