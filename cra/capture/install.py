"""Merging cra's hooks into a Claude Code settings.json, and taking them out (`cra install` / `cra uninstall`).

Every existing hook and setting is kept; the file is backed up and replaced atomically. cra's own
entries are recognised by the hook script's path, so uninstall removes exactly those.
"""

import json
import os
import shlex
import sys
import time
from pathlib import Path

import claude_hooks
from claude_hooks import HOOK_EVENTS, TOOL_EVENTS

from ..errors import ConfigError

HOOK_SCRIPT = Path(claude_hooks.__file__).resolve().parent / "hook.py"
MARKER = "claude_hooks/hook.py"
HOOK_TIMEOUT_S = 30


def hook_command(env_overrides: dict[str, str] | None = None) -> str:
    """The command Claude Code runs: this interpreter by absolute path (a pyenv shim costs ~50 ms),
    with -S (the hook needs no site-packages, and `site` can cost ~30 ms)."""
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env_overrides or {}).items())
    return f"{prefix}{shlex.quote(sys.executable)} -S {shlex.quote(str(HOOK_SCRIPT))}"


def is_cra_hook(hook: dict) -> bool:
    return isinstance(hook, dict) and MARKER in str(hook.get("command", ""))


def merge_hooks(settings: dict, command: str) -> dict:
    """settings with cra's hook on every event in HOOK_EVENTS; idempotent, keeps everything else."""
    settings = json.loads(json.dumps(settings))  # deep copy
    hooks = settings.setdefault("hooks", {})
    ours = {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}
    for event in HOOK_EVENTS:
        groups = hooks.setdefault(event, [])
        found = False
        for group in groups:
            for i, hook in enumerate(group.get("hooks", [])):
                if is_cra_hook(hook):
                    group["hooks"][i] = dict(ours)  # refresh (interpreter may have moved)
                    found = True
        if not found:
            group = {"hooks": [dict(ours)]}
            if event in TOOL_EVENTS:
                group = {"matcher": "*", **group}
            groups.append(group)
    return settings


def remove_hooks(settings: dict) -> dict:
    settings = json.loads(json.dumps(settings))
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return settings
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            group_hooks = group.get("hooks", []) if isinstance(group, dict) else []
            kept = [h for h in group_hooks if not is_cra_hook(h)]
            if kept or len(kept) == len(group_hooks):
                if isinstance(group, dict):
                    group["hooks"] = kept
                kept_groups.append(group)
        if kept_groups:
            hooks[event] = kept_groups
        else:
            del hooks[event]
    if not hooks:
        del settings["hooks"]
    return settings


def settings_path(settings: str | None, project: bool) -> Path:
    if settings:
        return Path(settings).expanduser()
    if project:
        return Path.cwd() / ".claude" / "settings.json"
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
    return Path(config_dir) / "settings.json"


def read_settings(path: Path) -> dict:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); fix it by hand first, cra will not overwrite it."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object; fix it by hand first.")
    return data


def _new_backup_path(path: Path) -> Path:
    """A backup name no earlier backup has: install then uninstall within one second must not
    overwrite the backup of the original file."""
    stem = f"{path.name}.cra-backup-{time.strftime('%Y%m%d-%H%M%S')}"
    backup, n = path.with_name(stem), 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{stem}-{n}")
    return backup


def write_settings(path: Path, data: dict) -> Path | None:
    """Back up the old file, then replace it atomically. Returns the backup path, if any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode = 0o600
    if path.exists():
        mode = path.stat().st_mode & 0o777
        backup = _new_backup_path(path)
        backup.write_bytes(path.read_bytes())
    tmp = path.with_name(f".{path.name}.cra-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return backup
