"""Every `cra` command, walked from `cra.cli.cli`: `--json` where it prints data, `-d/--database` where
it opens the database, an example in its help, and every example parses. A few light commands run for
real against the test's CRA_HOME, their JSON checked."""

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cra.cli import cli

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"

# Commands without --json, each for a reason.
NO_JSON = {
    "on": "one line confirming a switch, nothing to parse",
    "off": "one line confirming a switch, nothing to parse",
    "ignore add": "one line confirming the change; `cra ignore list --json` reads the list",
    "ignore remove": "one line confirming the change; `cra ignore list --json` reads the list",
    "path": "prints a bare path, already what a script wants",
    "install": "edits settings.json and says so; `cra status --json` reports the result",
    "uninstall": "edits settings.json and says so; `cra status --json` reports the result",
    "browse": "starts Datasette, a web UI",
    "serve run": "a server that runs until stopped; `cra serve status --json` reports on it",
    "auto run": "a loop that runs until stopped; `cra auto status --json` reports on it",
    "auto hook": "one line confirming a switch; `cra auto status --json` shows it",
    "auto config": "always prints JSON",
}

# Commands without -d/--database: they never open the database (checked below by running them).
NO_DATABASE = {
    "on": "the switch is a file in $CRA_HOME, for every database",
    "off": "the switch is a file in $CRA_HOME, for every database",
    "ignore add": "the list is a file in $CRA_HOME, for every database",
    "ignore list": "the list is a file in $CRA_HOME, for every database",
    "ignore remove": "the list is a file in $CRA_HOME, for every database",
    "uninstall": "edits settings.json only",
    "auto config": "reads $CRA_HOME/auto.toml only",
    "redact check": "reads a file or folder, not the database",
}


def commands(group=cli, path=()):
    """(name, command) for every command that runs: leaves, and groups that run on their own (`cra runs`)."""
    ctx = click.Context(group, info_name="cra")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        full = (*path, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield " ".join(full), command
            yield from commands(command, full)
        else:
            yield " ".join(full), command


ALL = dict(commands())


def options(command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


def examples(command) -> list[str]:
    """The command lines in the help's "Example(s):" blocks (`\\b` paragraphs), continuations joined."""
    lines, found, inside = (command.help or "").splitlines(), [], False
    for line in lines:
        text = line.strip()
        if re.fullmatch(r"Examples?:", text):
            inside = True
        elif not text or text == "\b":
            inside = False
        elif inside:
            if found and found[-1].endswith("\\"):
                found[-1] = found[-1][:-1] + " " + text
            else:
                found.append(text)
    return found


def parse_example(line: str):
    """Parse a `cra ...` example as the CLI would, down to its command; returns that command's name."""
    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):
        if word in ("&&", "|", ";"):
            words = words[:i]
            break
    assert words[0] == "cra", line
    ctx = cli.make_context("cra", words[1:])
    command, name = cli, []
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest and command.invoke_without_command:
            break
        sub_name, sub, rest = command.resolve_command(ctx, rest)
        name.append(sub_name)
        try:
            ctx = sub.make_context(sub_name, rest, parent=ctx)
        except click.BadParameter as exc:
            # A file the reader would have (`cra import-pairs pairs.jsonl`): the example is right.
            if exc.param is None or not isinstance(exc.param.type, click.Path):
                raise
        command = sub
    return " ".join(name)


def test_the_walk_finds_every_command():
    assert {"sessions", "show", "ignore list", "train sft", "eval pack", "serve set-share", "runs"} <= set(ALL)
    assert len(ALL) > 40
    assert set(NO_JSON) <= set(ALL) and set(NO_DATABASE) <= set(ALL)  # no stale allow-list entries


@pytest.mark.parametrize("name", sorted(ALL))
def test_json_where_the_command_prints_data(name):
    has_json = "--json" in options(ALL[name])
    assert has_json != (name in NO_JSON), (
        f"`cra {name}` has no --json" if not has_json else f"`cra {name}` has --json: drop it from NO_JSON"
    )


@pytest.mark.parametrize("name", sorted(ALL))
def test_database_option_where_the_command_opens_the_database(name):
    has_database = {"-d", "--database"} <= options(ALL[name])
    assert has_database != (name in NO_DATABASE), (
        f"`cra {name}`: -d/--database {'missing' if not has_database else 'present, but allow-listed'}"
    )


@pytest.mark.parametrize("name", sorted(ALL))
def test_help_has_examples_that_parse(name):
    shown = [parse_example(line) for line in examples(ALL[name]) if line.startswith("cra ")]
    assert name in shown, f"`cra {name} --help` has no Example: block with a line that runs `cra {name}`"


def test_an_example_with_a_wrong_option_fails_to_parse():
    with pytest.raises(click.NoSuchOption):
        parse_example("cra sessions --sinse 7d")
    with pytest.raises(click.BadParameter, match="not a date"):
        parse_example("cra sessions --since yesterday")
    assert parse_example("cra eval 3 --limit 20") == "eval run"  # the group's shorthand resolves
    assert parse_example("cra import-pairs missing.jsonl --json") == "import-pairs"
    assert parse_example("cra runs --json") == "runs"


def cra(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_commands_without_database_option_never_create_one(cra_home, tmp_path):
    secret = tmp_path / "notes.txt"
    secret.write_text("nothing to see\n")
    cra("off")
    cra("on")
    cra("ignore", "add", str(tmp_path))
    cra("ignore", "list")
    cra("ignore", "remove", str(tmp_path))
    cra("uninstall", "--settings", str(tmp_path / "settings.json"))
    cra("auto", "config")
    cra("redact", "check", str(secret))
    assert not (cra_home / "cra.db").exists()


def test_light_commands_print_the_json_they_promise(cra_home, tmp_path):
    assert json.loads(cra("ignore", "list", "--json")) == []
    assert "No directories are ignored" in cra("ignore", "list")
    cra("ignore", "add", str(tmp_path))
    assert json.loads(cra("ignore", "list", "--json")) == [str(tmp_path)]

    database = tmp_path / "mine.db"
    assert cra("path", "-d", str(database)).strip() == str(database)
    assert cra("path").strip() == str(cra_home / "cra.db")

    assert json.loads(cra("sessions", "--json", "-d", str(database))) == []
    assert json.loads(cra("ingest", "--json", "-d", str(database))) == {"ingested": 0, "left": 0}
    cra("import", str(FIXTURES), "-d", str(database))
    assert set(json.loads(cra("sync", "--json", "-d", str(database)))) >= {"files", "lines", "messages"}

    sessions = json.loads(cra("sessions", "--json", "-d", str(database)))
    assert len(sessions) == 2 and {"id", "started", "turns", "tool_calls", "first_prompt"} <= set(sessions[0])
    shown = json.loads(cra("show", sessions[0]["id"][:8], "--json", "-d", str(database)))
    assert set(shown) == {"session", "turns", "tool_calls", "subagents"}
    assert shown["session"]["id"] == sessions[0]["id"]
    assert len([t for t in shown["turns"] if t["agent_id"] is None]) == sessions[0]["turns"]
    assert len(shown["tool_calls"]) == sessions[0]["tool_calls"]

    added = json.loads(cra("bootstrap", "--synthetic", "5", "--json", "-d", str(database)))
    assert added["added"] == 5 and added["already_stored"] == 0 and sum(added["by_template"].values()) == 5
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "list files", "chosen": "ls", "rejected": "rm -rf ."}) + "\n")
    assert json.loads(cra("import-pairs", str(pairs), "--json", "-d", str(database))) == {
        "file": str(pairs),
        "imported": 1,
        "already_stored": 0,
    }


def test_status_names_the_hook_error_log_only_when_it_exists(cra_home):
    import claude_hooks

    report = json.loads(cra("status", "--json"))
    assert report["hook_errors"] == 0 and report["hook_errors_log"] is None
    assert "(see " not in cra("status")
    log = cra_home / claude_hooks.ERROR_LOG
    log.write_text("one failure\n")
    report = json.loads(cra("status", "--json"))
    assert report["hook_errors"] == 1 and report["hook_errors_log"] == str(log)
    assert f"(see {log})" in cra("status")
