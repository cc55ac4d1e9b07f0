"""The hook's hot path: put the event in the spool, hand the database work to one background drainer.

Claude Code waits for every hook, and loading SQLite alone costs about half an interpreter start-up.
So the process Claude Code waits for only appends the event to the spool (one file per event,
renamed into place) and exits; whichever hook gets the drain lock forks a detached child that
replays the spool into SQLite (`capture.drain_spool`), one drainer at a time, oldest event first.

Durability matches SQLite's WAL with synchronous=NORMAL, which the database uses: a crash of the
hook or of Claude Code loses nothing (the file is complete or absent); only an operating-system crash
in the moment between write-back and ingestion could.

Standard library only, and nothing heavier than os, time and fcntl on this path.
"""

import os
import time

# For type checkers only (mypy reads the name as true): the hook never pays for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DB_NAME = "cra.db"
OFF_FLAG = "off"  # present in CRA_HOME: capture is paused (`cra off`)
IGNORE_FILE = "ignored-projects"  # one directory a line: never recorded
SPOOL_DIR = "spool"
DRAIN_LOCK = "drain.lock"  # held by the one process replaying the spool into the database
ERROR_LOG = "hook-errors.log"
ERROR_LOG_MAX = 1_000_000
SYNC_ENV = "CRA_HOOK_SYNC"  # set: the hook drains in its own process (no fork), e.g. for debugging

# Environment variables worth keeping with an event (never the messaging token).
ENV_KEYS = (
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PID",
    "CLAUDE_PLUGIN_ROOT",
)


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


def fallback_spool_dir() -> str:
    """Where events go when CRA_HOME itself is missing and can't be created, or read-only."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(tmp, "cra-spool-%d" % os.getuid())


def spool_dirs(home: str) -> list[str]:
    return [os.path.join(home, SPOOL_DIR), fallback_spool_dir()]


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def new_uid() -> str:
    return os.urandom(16).hex()  # random like uuid4, without uuid's imports


def event_header(uid: str, received_at: str, env: "Mapping[str, str]", reason: str | None = None) -> bytes:
    from claude_hooks import fastjson

    meta = {"event_uid": uid, "received_at": received_at, "env": {k: env[k] for k in ENV_KEYS if k in env}}
    if reason:
        meta["reason"] = reason
    return fastjson.dumps(meta).encode("utf-8")


def write_event(home: str, raw: bytes, header: bytes, fsync: bool = False) -> str | None:
    """Put one event in the spool (CRA_HOME's, else the fallback). Returns the directory, or None."""
    name = "%d-%s.event" % (time.time_ns(), os.urandom(8).hex())
    parts = [header + b"\n", raw]  # written with writev: no copy of a large payload
    for directory in spool_dirs(home):
        try:
            _write_file(directory, name, parts, fsync)
            return directory
        except OSError:
            continue
    return None


def _write_file(directory: str, name: str, parts: list[bytes], fsync: bool) -> None:
    try:
        fd = _open_new(directory, name)
    except FileNotFoundError:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = _open_new(directory, name)
    try:
        total = sum(len(p) for p in parts)
        written = os.writev(fd, parts)
        if written < total:  # a short write (rare): finish the rest plainly
            rest = memoryview(b"".join(parts))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    # rename is atomic: a drainer sees a whole file or none.
    os.rename(os.path.join(directory, "." + name + ".tmp"), os.path.join(directory, name))


def _open_new(directory: str, name: str) -> int:
    return os.open(os.path.join(directory, "." + name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def try_drain_lock(home: str, blocking: bool = False) -> int | None:
    """The drain lock's fd if this process got it, else None. flock: released by the kernel when
    the holder dies, so a crashed drainer never wedges capture."""
    import fcntl

    try:
        fd = os.open(os.path.join(home, DRAIN_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
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


def spool_pending(home: str) -> bool:
    for directory in spool_dirs(home):
        try:
            if any(n.endswith(".event") for n in os.listdir(directory)):
                return True
        except OSError:
            pass
    return False


def is_ignored(home: str, cwd: object, project_dir: object) -> bool:
    try:
        # surrogateescape: a hand-edited file with stray bytes still reads (and never costs the event).
        with open(os.path.join(home, IGNORE_FILE), encoding="utf-8", errors="surrogateescape") as f:
            ignored = [line.strip().rstrip("/") for line in f if line.strip()]
    except OSError:
        return False
    for d in (cwd, project_dir):
        if isinstance(d, str):
            for ig in ignored:
                if d == ig or d.startswith(ig + "/"):
                    return True
    return False


def handle(raw: bytes, env: "Mapping[str, str]") -> None:
    """What the hook process does: spool the event, start a drainer if none runs. Never raises."""
    home = cra_home(env)
    if os.path.exists(os.path.join(home, OFF_FLAG)):
        return
    if os.path.exists(os.path.join(home, IGNORE_FILE)) and _ignored_payload(home, raw, env):
        return
    received_at = now_iso()
    directory = write_event(home, raw, event_header(new_uid(), received_at, env))
    if directory != os.path.join(home, SPOOL_DIR):
        return  # CRA_HOME unusable: the event waits in the fallback spool for a `cra` command
    lock = try_drain_lock(home)
    if lock is None:
        return  # a drainer is running: it re-checks the spool after releasing the lock
    if env.get(SYNC_ENV) or not hasattr(os, "fork"):
        _drain_and_release(home, env, lock)
        return
    # Claude Code reads the hook's stdout and stderr until every holder closes them: point both
    # processes' stdio at /dev/null before forking, so the pipes close when this process exits,
    # not when the drainer is done (this hook prints nothing anyway).
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if os.fork() == 0:
        # The child: its own session, so Claude Code's cleanup of the hook's group can't reach it.
        try:
            os.setsid()
            _drain_and_release(home, env, lock)
        finally:
            os._exit(0)
    # The parent returns at once; the child holds the lock (a shared open file description).


def _ignored_payload(home: str, raw: bytes, env: "Mapping[str, str]") -> bool:
    from claude_hooks import fastjson

    try:
        payload = fastjson.loads(raw.decode("utf-8", "replace"))
    except Exception:
        return False
    cwd = payload.get("cwd") if isinstance(payload, dict) else None
    return is_ignored(home, cwd, env.get("CLAUDE_PROJECT_DIR"))


def _drain_and_release(home: str, env: "Mapping[str, str]", lock: int) -> None:
    """Drain until the spool is empty, releasing the lock between rounds so that an event written
    while this process held it is never stranded (its writer saw the lock taken and left)."""
    from claude_hooks import capture

    while True:
        try:
            ingested = capture.drain_into_db(home, env)
        finally:
            release_drain_lock(lock)
        if ingested is None or not spool_pending(home):
            return  # done, or the database refuses: the backlog waits for the next event or `cra`
        again = try_drain_lock(home)
        if again is None:
            return  # another drainer took over
        lock = again


def log_error(home: str, event_name: str | None, uid: str | None, exc: BaseException) -> None:
    """Append one line to hook-errors.log (what `cra status` counts). Bounded, and best effort."""
    try:
        from claude_hooks import fastjson

        path = os.path.join(home, ERROR_LOG)
        try:
            if os.path.getsize(path) > ERROR_LOG_MAX:
                os.replace(path, path + ".1")
        except OSError:
            pass
        line = fastjson.dumps({"at": now_iso(), "event": event_name, "uid": uid, "error": repr(exc)[:500]})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
        finally:
            os.close(fd)
    except Exception:
        pass
