"""`cra install` / `cra uninstall`: merge into settings.json, keep everything else, take out exactly
what was added; and the installed command really records."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import wait_for_drainer

from claude_hooks import HOOK_EVENTS, TOOL_EVENTS
from cra.capture.install import HOOK_SCRIPT
from cra.cli import cli

EXISTING = {
    "model": "opus",
    "permissions": {"allow": ["Bash(ls:*)"], "deny": []},
    "env": {"FOO": "bar"},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "echo pre >> /tmp/x"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done", "timeout": 5}]}],
        "WorktreeRemove": [{"hooks": [{"type": "command", "command": "true"}]}],
    },
    "statusLine": {"type": "command", "command": "echo hi"},
}


@pytest.fixture(autouse=True)
def claude_config(tmp_path, monkeypatch):
    # Never read or write the real ~/.claude from these tests.
    config = tmp_path / "claude-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    return config


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cra_hooks(settings):
    found = {}
    for event, groups in settings.get("hooks", {}).items():
        for group in groups:
            for hook in group["hooks"]:
                if "claude_hooks/hook.py" in hook["command"]:
                    found.setdefault(event, []).append((group.get("matcher"), hook))
    return found


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))


def test_install_keeps_everything_and_is_idempotent(tmp_path):
    path = tmp_path / "settings.json"
    write(path, EXISTING)
    os.chmod(path, 0o640)
    original = path.read_bytes()
    inode = path.stat().st_ino

    result = invoke("install", "--settings", str(path))
    assert result.exit_code == 0
    installed = json.loads(path.read_text())
    # Everything that was there is still there, untouched.
    for key in ("model", "permissions", "env", "statusLine"):
        assert installed[key] == EXISTING[key]
    for event, groups in EXISTING["hooks"].items():
        for group in groups:
            assert group in installed["hooks"][event]
    # cra's hook on every event, once, tool events with matcher "*"; never WorktreeCreate.
    ours = cra_hooks(installed)
    assert set(ours) == set(HOOK_EVENTS)
    assert "WorktreeCreate" not in installed["hooks"]
    for event, entries in ours.items():
        assert len(entries) == 1
        matcher, hook = entries[0]
        assert matcher == ("*" if event in TOOL_EVENTS else None)
        assert hook["type"] == "command"
        assert f"{sys.executable} -S {HOOK_SCRIPT}" in hook["command"]  # absolute interpreter, no site
        assert os.path.isabs(hook["command"].split("CRA_HOME=", 1)[1].split()[0])
    # A backup of the previous bytes; the file was replaced (new inode), mode kept, no temp left.
    backups = list(tmp_path.glob("settings.json.cra-backup-*"))
    assert [b.read_bytes() for b in backups] == [original]
    assert path.stat().st_ino != inode
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    before = path.read_bytes()
    result = invoke("install", "--settings", str(path))
    assert "already" in result.output
    assert path.read_bytes() == before
    assert len(list(tmp_path.glob("settings.json.cra-backup-*"))) == 1


def test_uninstall_restores_the_original(tmp_path):
    path = tmp_path / "settings.json"
    write(path, EXISTING)
    original = path.read_bytes()
    invoke("install", "--settings", str(path))
    result = invoke("uninstall", "--settings", str(path))
    assert result.exit_code == 0 and "Removed" in result.output
    assert json.loads(path.read_text()) == EXISTING
    # Both backups survive: the original and the installed version.
    backups = sorted(tmp_path.glob("settings.json.cra-backup-*"))
    assert original in [b.read_bytes() for b in backups] and len(backups) == 2
    result = invoke("uninstall", "--settings", str(path))
    assert "No cra hooks" in result.output
    assert json.loads(path.read_text()) == EXISTING


def test_install_into_missing_file_and_uninstall(tmp_path):
    path = tmp_path / "nested" / "settings.json"
    invoke("install", "--settings", str(path))
    assert set(cra_hooks(json.loads(path.read_text()))) == set(HOOK_EVENTS)
    assert path.stat().st_mode & 0o777 == 0o600
    invoke("uninstall", "--settings", str(path))
    assert json.loads(path.read_text()) == {}


def test_default_and_project_settings(tmp_path, monkeypatch, claude_config):
    invoke("install")
    assert set(cra_hooks(json.loads((claude_config / "settings.json").read_text()))) == set(HOOK_EVENTS)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    invoke("install", "--project")
    assert set(cra_hooks(json.loads((project / ".claude" / "settings.json").read_text()))) == set(HOOK_EVENTS)
    status = json.loads(invoke("status", "--json").output)
    assert status["installed_in"] == str(claude_config / "settings.json")
    invoke("uninstall", "--project")
    assert json.loads((project / ".claude" / "settings.json").read_text()) == {}
    assert set(cra_hooks(json.loads((claude_config / "settings.json").read_text()))) == set(HOOK_EVENTS)


@pytest.mark.parametrize("content", ['{"hooks": {', "[1, 2]"])
def test_bad_settings_file_is_left_untouched(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_text(content)
    for command in ("install", "uninstall"):
        result = CliRunner().invoke(cli, [command, "--settings", str(path)])
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert str(path) in result.output and "fix it by hand" in result.output
        assert path.read_text() == content
    assert list(tmp_path.glob("settings.json.cra-*")) == []


def test_installed_command_records_through_sh(tmp_path, cra_home, monkeypatch):
    path = tmp_path / "settings.json"
    invoke("install", "--settings", str(path))
    ((_, hook),) = cra_hooks(json.loads(path.read_text()))["PreToolUse"]
    payload = json.dumps(
        {
            "session_id": "sh-session",
            "cwd": str(tmp_path),
            "transcript_path": "",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
            "tool_use_id": "toolu_sh",
        }
    )
    # Claude Code runs the command through a shell, from the project directory, with its own env:
    # the pinned CRA_HOME in the command is what points the hook at this database.
    env = {k: v for k, v in os.environ.items() if k != "CRA_HOME"}
    proc = subprocess.run(
        ["sh", "-c", hook["command"]], input=payload.encode(), capture_output=True, env=env, cwd=tmp_path, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    wait_for_drainer({"CRA_HOME": str(cra_home)})  # the hook's background drainer writes the rows
    con = sqlite3.connect(str(cra_home / "cra.db"))
    assert con.execute("SELECT tool_use_id, tool_name, status FROM tool_calls").fetchall() == [
        ("toolu_sh", "Bash", "pending")
    ]


# -- hostile and unusual settings files --------------------------------------------------------------


def test_a_planted_temp_or_backup_symlink_is_never_written_through(tmp_path, monkeypatch):
    """A cloned repository can ship `.claude/` with links named like cra's temporary file and
    backups: `cra install --project` must not write through them."""
    project = tmp_path / "cloned-repo"
    claude = project / ".claude"
    claude.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (claude / ".settings.json.cra-tmp").symlink_to(victim)
    write(claude / "settings.json", {"model": "opus"})
    import time as _time

    now = _time.time()
    for dt in range(-1, 6):  # the backup names of the next seconds
        stamp = _time.strftime("%Y%m%d-%H%M%S", _time.localtime(now + dt))
        (claude / f"settings.json.cra-backup-{stamp}").symlink_to(victim)
    monkeypatch.chdir(project)
    assert invoke("install", "--project").exit_code == 0
    assert victim.read_text() == "precious\n"
    assert set(cra_hooks(json.loads((claude / "settings.json").read_text()))) == set(HOOK_EVENTS)
    assert not (claude / "settings.json").is_symlink()


def test_only_cras_own_hook_commands_are_taken_for_cras(tmp_path):
    path = tmp_path / "settings.json"
    theirs = [
        {"type": "command", "command": "python3 /opt/other/claude_hooks/hook.py --log /tmp/x"},
        {"type": "command", "command": "echo claude_hooks/hook.py >> /tmp/audit"},
        {"type": "command", "command": "FOO=1 python3 -S /opt/mine/claude_hooks/hook.py"},
    ]
    write(
        path, {"hooks": {"Stop": [{"hooks": list(theirs)}], "PreToolUse": [{"matcher": "Bash", "hooks": theirs[:1]}]}}
    )
    assert invoke("install", "--settings", str(path)).exit_code == 0
    installed = json.loads(path.read_text())
    assert installed["hooks"]["Stop"][0] == {"hooks": theirs}  # kept, not "refreshed" into cra's
    assert installed["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": theirs[:1]}
    ours = [h for g in installed["hooks"]["Stop"] for h in g["hooks"] if h not in theirs]
    assert len(ours) == 1 and str(HOOK_SCRIPT) in ours[0]["command"]
    assert invoke("uninstall", "--settings", str(path)).exit_code == 0
    assert json.loads(path.read_text()) == {
        "hooks": {"Stop": [{"hooks": theirs}], "PreToolUse": [{"matcher": "Bash", "hooks": theirs[:1]}]}
    }


@pytest.mark.parametrize("mode", [0o600, 0o666, 0o640])
def test_the_files_mode_is_kept_and_its_backup_has_it_too(tmp_path, mode):
    path = tmp_path / "settings.json"
    write(path, {"model": "opus"})
    os.chmod(path, mode)
    invoke("install", "--settings", str(path))
    (backup,) = tmp_path.glob("settings.json.cra-backup-*")
    assert (path.stat().st_mode & 0o777, backup.stat().st_mode & 0o777) == (mode, mode)


def test_a_symlinked_settings_file_has_its_target_written(tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "claude-settings.json"
    write(target, EXISTING)
    link = tmp_path / "settings.json"
    link.symlink_to(target)
    invoke("install", "--settings", str(link))
    assert link.is_symlink() and link.resolve() == target
    assert set(cra_hooks(json.loads(target.read_text()))) == set(HOOK_EVENTS)
    invoke("uninstall", "--settings", str(link))
    assert link.is_symlink() and json.loads(target.read_text()) == EXISTING


def test_empty_hook_lists_and_objects_survive_install_and_uninstall(tmp_path):
    for original in ({"hooks": {"Stop": [], "PreToolUse": []}, "x": 1}, {"hooks": {}}):
        path = tmp_path / "settings.json"
        write(path, original)
        invoke("install", "--settings", str(path))
        invoke("uninstall", "--settings", str(path))
        assert json.loads(path.read_text()) == original
        path.unlink()
    # Uninstall on a file cra never touched changes nothing, empty lists included.
    write(path, {"hooks": {"Notification": []}})
    assert "No cra hooks" in invoke("uninstall", "--settings", str(path)).output


@pytest.mark.parametrize(
    "settings, what",
    [
        ({"hooks": []}, '"hooks" is a list, not an object'),
        ({"hooks": "none"}, '"hooks" is a string, not an object'),
        ({"hooks": {"Stop": {"hooks": []}}}, '"hooks"."Stop" is an object, not a list'),
    ],
)
def test_hooks_of_the_wrong_type_are_one_line_errors(tmp_path, claude_config, settings, what):
    path = claude_config / "settings.json"
    write(path, settings)
    before = path.read_bytes()
    for command in (["install"], ["uninstall"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
        if command == ["install"]:
            assert result.exit_code == 1 and what in result.output and "fix it by hand" in result.output
    assert path.read_bytes() == before
    status = CliRunner().invoke(cli, ["status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["installed_in"] is None


def test_odd_groups_are_kept_and_cra_is_still_added(tmp_path):
    path = tmp_path / "settings.json"
    odd = {"hooks": {"Stop": ["not a group", {"matcher": "x"}, {"hooks": "nope"}]}}
    write(path, odd)
    assert invoke("install", "--settings", str(path)).exit_code == 0
    stop = json.loads(path.read_text())["hooks"]["Stop"]
    assert stop[:3] == odd["hooks"]["Stop"] and len(stop) == 4
    invoke("uninstall", "--settings", str(path))
    assert json.loads(path.read_text()) == odd
