"""The repository as a Claude Code plugin (and marketplace), and the manual settings example."""

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, wait_for_drainer

import cra
from claude_hooks import HOOK_EVENTS, TOOL_EVENTS
from cra.db import open_db

PLUGIN_COMMAND = 'python3 -S "${CLAUDE_PLUGIN_ROOT}/claude_hooks/hook.py"'


def load(relative):
    return json.loads((REPO / relative).read_text(encoding="utf-8"))


def registered(hooks):
    """{event: [(matcher, command), ...]} from a settings-style hooks object."""
    return {
        event: [(group.get("matcher"), hook["command"]) for group in groups for hook in group["hooks"]]
        for event, groups in hooks.items()
    }


@pytest.mark.parametrize("relative", ["hooks/hooks.json", "settings.example.json"])
def test_hooks_register_exactly_hook_events(relative):
    hooks = registered(load(relative)["hooks"])
    assert list(hooks) == list(HOOK_EVENTS)
    assert "WorktreeCreate" not in hooks
    for event, entries in hooks.items():
        assert len(entries) == 1, event
        matcher, command = entries[0]
        assert matcher == ("*" if event in TOOL_EVENTS else None), event
        assert "-S" in command.split() and command.rstrip('"').endswith("claude_hooks/hook.py")
    for groups in load(relative)["hooks"].values():
        for group in groups:
            for hook in group["hooks"]:
                assert hook["type"] == "command" and 0 < hook["timeout"] <= 60


def test_plugin_manifests():
    plugin = load(".claude-plugin/plugin.json")
    assert plugin["name"] == "cra"
    assert plugin["version"] == cra.__version__  # a changed hooks.json reaches users only with a bump
    assert plugin["description"] and plugin["author"]["name"]
    for groups in load("hooks/hooks.json")["hooks"].values():
        assert {hook["command"] for group in groups for hook in group["hooks"]} == {PLUGIN_COMMAND}
    marketplace = load(".claude-plugin/marketplace.json")
    assert marketplace["name"] and marketplace["owner"]["name"]
    (entry,) = marketplace["plugins"]
    assert entry["name"] == plugin["name"] and entry["source"] == "./" and entry["version"] == plugin["version"]


def test_plugin_command_records(tmp_path, cra_home):
    """The plugin's command as Claude Code runs it: through a shell, CLAUDE_PLUGIN_ROOT in the env."""
    if not shutil.which("python3"):
        pytest.skip("no python3 on PATH")
    open_db().conn.close()
    payload = {
        "session_id": "plugin-s",
        "cwd": str(tmp_path),
        "transcript_path": "",
        "hook_event_name": "SessionStart",
        "source": "startup",
    }
    proc = subprocess.run(
        ["sh", "-c", PLUGIN_COMMAND],
        input=json.dumps(payload).encode(),
        capture_output=True,
        env={**os.environ, "CLAUDE_PLUGIN_ROOT": str(REPO)},
        cwd=tmp_path,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    wait_for_drainer({"CRA_HOME": str(cra_home)})  # the hook's background drainer writes the rows
    con = sqlite3.connect(str(cra_home / "cra.db"))
    assert con.execute("SELECT id, start_source FROM sessions").fetchall() == [("plugin-s", "startup")]
    assert json.loads(con.execute("SELECT env FROM events").fetchone()[0])["CLAUDE_PLUGIN_ROOT"] == str(REPO)


def _cached_claude():
    found = sorted(Path.home().glob(".cache/cra/claude-code/*/node_modules/.bin/claude"))
    return found[-1] if found else None


def test_claude_plugin_validate(tmp_path):
    claude = _cached_claude()
    if claude is None:
        pytest.skip("the Claude Code CLI is not cached in ~/.cache/cra/claude-code (the e2e tests install it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC"))}
    env.update(
        HOME=str(tmp_path), DISABLE_TELEMETRY="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1"
    )
    proc = subprocess.run(
        [str(claude), "plugin", "validate", str(REPO)], capture_output=True, text=True, env=env, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation passed" in proc.stdout
    for event in HOOK_EVENTS:
        assert f"hooks: {event} " in proc.stdout
