"""Merging cra's hooks into a Claude Code settings.json, and taking them out again (the library behind
`cra install` / `cra uninstall`, whose commands are in install_commands.py).

Every existing hook and setting is kept. cra's own entries are recognised exactly: a hook whose
command has the form cra writes (`[CRA_HOME=... CRA_DB=...] <python> -S <dir>/claude_hooks/hook.py`
and nothing else), so a hook of the user's that merely mentions hook.py is never taken for cra's.
The file is backed up (with its mode) and replaced atomically, keeping its mode and owner; a settings
file that is a symbolic link has its target written. Backups and temporary files are created
exclusively and never through a symbolic link, so a link planted in a cloned repository's `.claude/`
can't redirect the write.

Event keys that held an empty list before `install` keep it after `uninstall`: the state file in
CRA_HOME (STATE_FILE) remembers them per settings file.
"""

import compileall
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import claude_hooks
from claude_hooks import HOOK_EVENTS, TOOL_EVENTS

from ..errors import ConfigError

HOOK_SCRIPT = Path(claude_hooks.__file__).resolve().parent / "hook.py"
HOOK_TIMEOUT_S = 30
# Only these may precede the interpreter in a command cra wrote (hook_command).
PINNED_ENV = ("CRA_HOME", "CRA_DB")
STATE_FILE = "install-state.json"


def hook_command(env_overrides: dict[str, str] | None = None) -> str:
    """The command Claude Code runs: this interpreter by absolute path (a pyenv shim costs ~50 ms),
    with -S (the hook needs no site-packages, and `site` can cost ~30 ms)."""
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env_overrides or {}).items())
    return f"{prefix}{shlex.quote(sys.executable)} -S {shlex.quote(str(HOOK_SCRIPT))}"


_ASSIGNMENT = re.compile(r"^(%s)=" % "|".join(PINNED_ENV))


def is_cra_hook(hook) -> bool:
    """Whether `hook` (a settings entry) is one `cra install` wrote, from any checkout or interpreter."""
    if not isinstance(hook, dict) or hook.get("type", "command") != "command":
        return False
    command = hook.get("command")
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    return (
        len(words) == 3
        and os.path.basename(words[0]).startswith("python")
        and words[1] == "-S"
        and words[2].replace("\\", "/").endswith("/claude_hooks/hook.py")
    )


def check_hooks_shape(path: Path, settings: dict):
    """Refuse settings whose `hooks` cra can't merge into without overwriting something: not an
    object, or an event whose value is not a list."""
    hooks = settings.get("hooks")
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise ConfigError(
            f'{path}: "hooks" is {_json_kind(hooks)}, not an object; fix it by hand first, cra will not overwrite it.'
        )
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise ConfigError(
                f'{path}: "hooks"."{event}" is {_json_kind(groups)}, not a list; fix it by hand first, cra will '
                "not overwrite it."
            )


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _hook_lists(groups: list):
    """The `hooks` lists of an event's groups, skipping what is not shaped like a group."""
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            yield group["hooks"]


def merge_hooks(settings: dict, command: str) -> dict:
    """settings with cra's hook on every event in HOOK_EVENTS; idempotent, keeps everything else.
    Call check_hooks_shape first."""
    settings = json.loads(json.dumps(settings))  # deep copy
    hooks = settings.setdefault("hooks", {})
    ours = {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}
    for event in HOOK_EVENTS:
        groups = hooks.setdefault(event, [])
        found = False
        for entries in _hook_lists(groups):
            for i, hook in enumerate(entries):
                if is_cra_hook(hook):
                    entries[i] = dict(ours)  # refresh (the interpreter may have moved)
                    found = True
        if not found:
            group: dict[str, object] = {"hooks": [dict(ours)]}
            if event in TOOL_EVENTS:
                group = {"matcher": "*", **group}
            groups.append(group)
    return settings


def remove_hooks(settings: dict, kept_empty: tuple = ()) -> dict:
    """settings without cra's hooks. A group left empty goes; so does an event left without groups
    and `hooks` left without events, unless named in kept_empty (as they were before install: an
    event name, or "hooks" for the object itself)."""
    settings = json.loads(json.dumps(settings))
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return settings
    removed_any = False
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept_groups = []
        changed = False
        for group in groups:
            entries = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(entries, list):
                kept_groups.append(group)
                continue
            kept = [h for h in entries if not is_cra_hook(h)]
            if len(kept) == len(entries):
                kept_groups.append(group)
                continue
            changed = True
            if kept:
                group["hooks"] = kept
                kept_groups.append(group)
        removed_any = removed_any or changed
        if kept_groups or not changed or event in kept_empty:
            hooks[event] = kept_groups
        else:
            del hooks[event]
    if removed_any and not hooks and "hooks" not in kept_empty:
        del settings["hooks"]
    return settings


def empty_before(settings: dict) -> list[str]:
    """What remove_hooks must keep though empty: the events holding an empty list, and "hooks" when
    it is an empty object, in settings as they are before install."""
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return []
    return [e for e, groups in hooks.items() if groups == []] + (["hooks"] if not hooks else [])


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); fix it by hand first, cra will not overwrite it.") from exc
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


def installed_in(path: Path) -> bool:
    """Whether `path` holds one of cra's hooks. Never raises: a file cra can't read holds none."""
    try:
        hooks = read_settings(path).get("hooks")
    except ConfigError:
        return False
    if not isinstance(hooks, dict):
        return False
    return any(
        is_cra_hook(h) for groups in hooks.values() if isinstance(groups, list) for e in _hook_lists(groups) for h in e
    )


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _create_exclusive(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None):
    """Write a new file at `path`: never an existing one, never through a symbolic link."""
    fd = os.open(path, _NEW, 0o600)
    try:
        os.fchmod(fd, mode)  # the mode asked for, whatever the umask
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _write_backup(path: Path, data: bytes, mode: int, owner) -> Path:
    """A backup name no earlier backup (nor anything else) has: install then uninstall within one
    second must not overwrite the backup of the original file."""
    stem = f"{path.name}.cra-backup-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        backup = path.with_name(stem if n == 1 else f"{stem}-{n}")
        try:
            _create_exclusive(backup, data, mode, owner)
            return backup
        except FileExistsError:
            continue
    raise ConfigError(f"cannot name a backup of {path}: clear out old {path.name}.cra-backup-* files first.")


def write_settings(path: Path, data: dict) -> Path | None:
    """Back up the old file, then replace it atomically. Returns the backup path, if any."""
    target = Path(os.path.realpath(path))  # a settings file that is a link: write where it points
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    mode, owner = 0o600, None
    if target.exists():
        st = target.stat()
        mode = st.st_mode & 0o7777
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            owner = (st.st_uid, st.st_gid)  # root editing a user's file leaves it theirs
        backup = _write_backup(target, target.read_bytes(), mode, owner)
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    tmp = target.with_name(f".{target.name}.cra-tmp-{os.getpid()}-{os.urandom(4).hex()}")
    _create_exclusive(tmp, text, mode, owner)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return backup


# ---------------------------------------------------------------------------------------------
# What the commands do


@dataclass
class Change:
    path: Path
    changed: bool
    backup: Path | None = None
    command: str | None = None


def _state_path(home: str) -> Path:
    return Path(home) / STATE_FILE


def _load_state(home: str) -> dict:
    try:
        state = json.loads(_state_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(home: str, state: dict):
    path = _state_path(home)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}")
    try:
        _create_exclusive(tmp, json.dumps(state, indent=2).encode("utf-8"), 0o600, None)
        os.replace(tmp, path)
    except OSError:
        pass  # only costs keeping an empty event list at uninstall


def install(path: Path, env_overrides: dict[str, str], home: str) -> Change:
    """Merge cra's hooks into the settings file at `path`. Raises ConfigError (the file is left
    as it is) when the file is not a JSON object cra can merge into."""
    current = read_settings(path)
    check_hooks_shape(path, current)
    # The hook runs with PYTHONDONTWRITEBYTECODE on some machines: compile it ahead once.
    compileall.compile_dir(str(HOOK_SCRIPT.parent), quiet=2)
    command = hook_command(env_overrides)
    merged = merge_hooks(current, command)
    if merged == current:
        return Change(path, False, command=command)
    keep = empty_before(current)
    if keep:
        state = _load_state(home)
        state[os.path.realpath(path)] = {"kept_empty": keep}
        _save_state(home, state)
    return Change(path, True, write_settings(path, merged), command)


def uninstall(path: Path, home: str) -> Change:
    """Take exactly cra's hooks out of the settings file at `path`."""
    current = read_settings(path)
    kept_empty = tuple(_load_state(home).get(os.path.realpath(path), {}).get("kept_empty", ()))
    cleaned = remove_hooks(current, kept_empty)
    if cleaned == current:
        return Change(path, False)
    return Change(path, True, write_settings(path, cleaned))
