"""cra's Claude Code hooks: standard library only, never imports cra.

Claude Code runs `hook.py` once per event. The package, by what each part does:
- here: what every part shares, loaded by every hook at no extra cost: the events cra registers,
  where things live (cra_home, db_path, the spool directories), the drain lock, times and ids;
- `spool.py`: the hook process's work: put the event in the spool, start a detached drainer;
- `drain.py`: a drainer's work (a hook's child, or any `cra` command): claim spool files, record
  them in SQLite (Event, record) and derive sessions and tool calls;
- `privacy.py`: the ignore list, owner-only directories, refusing a shared spool others control;
- `transcript_tail.py`: copying new transcript lines; `fastjson.py`: json without its import cost.

`cra` uses the public names of these modules (the names here, spool.handle, drain.Event / record /
drain_spool / spool_counts / safe_text / json_text, privacy.*, transcript_tail.*), never private ones.
Every module the hook process loads costs each tool call about 2% of an interpreter start-up
(BENCHMARKS.md, Hooks): the process Claude Code waits for loads this one and spool.py only.
"""

import os
import time

# For type checkers only (mypy reads the name as true): the hook never pays for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Events cra registers. Only names that Claude Code 2.1.197 and current releases both accept: a
# plugin hooks.json with an unknown event name fails to load on older clients. Never WorktreeCreate
# (registering it replaces worktree creation).
HOOK_EVENTS = (
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionRequest",
    "PermissionDenied",
    "Notification",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
)

# Events whose hooks take a tool-name matcher.
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied")

# Environment variables worth keeping with an event (never the messaging token).
ENV_KEYS = (
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PID",
    "CLAUDE_PLUGIN_ROOT",
)

# What lives in CRA_HOME.
DB_NAME = "cra.db"
OFF_FLAG = "off"  # present: capture is paused (`cra off`)
IGNORE_FILE = "ignored-projects"  # one directory a line: never recorded
SPOOL_DIR = "spool"
DRAIN_LOCK = "drain.lock"  # held by the one process replaying the spool into the database
ERROR_LOG = "hook-errors.log"
AUTO_TRIGGER = "auto-trigger.json"  # present: Stop may start `cra auto once` (`cra auto hook on`)
# Spool files: <time_ns>-<random>.event, written as .<name>.tmp and renamed (spool.py, drain.py).
EVENT = ".event"
TMP = ".tmp"


def cra_home(env: "Mapping[str, str]" = os.environ) -> str:
    """CRA_HOME, else the user data dir (XDG on Linux, Application Support on macOS)."""
    if env.get("CRA_HOME"):
        return env["CRA_HOME"]
    home = os.path.expanduser("~")
    if os.uname().sysname == "Darwin":
        return os.path.join(home, "Library", "Application Support", "cra")
    return os.path.join(env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "cra")


def db_path(env: "Mapping[str, str]" = os.environ) -> str:
    return env.get("CRA_DB") or os.path.join(cra_home(env), DB_NAME)


def home_spool_dir(home: str) -> str:
    return os.path.join(home, SPOOL_DIR)


def fallback_spool_dir() -> str:
    """Where events go when CRA_HOME is missing and can't be created, or is read-only: a per-user
    directory in the temporary folder, used only while privacy.trusted_dir accepts it."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(tmp, "cra-spool-%d" % os.geteuid())


def spool_dirs(home: str) -> list[str]:
    return [home_spool_dir(home), fallback_spool_dir()]


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def new_uid() -> str:
    return os.urandom(16).hex()  # random like uuid4, without uuid's imports


def try_drain_lock(home: str, blocking: bool = False) -> int | None:
    """The drain lock's fd if this process got it, else None. flock: released by the kernel when
    the holder dies, so a crashed drainer never wedges capture."""
    import fcntl

    try:
        fd = os.open(os.path.join(home, DRAIN_LOCK), os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release_drain_lock(fd: int) -> None:
    os.close(fd)  # closing the last descriptor of the open file releases the flock


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
