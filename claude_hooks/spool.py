"""The hook process's work: put the event in the spool, and hand the database work to one drainer.

Claude Code waits for every hook, and loading SQLite alone costs about half an interpreter start-up.
So the process Claude Code waits for only writes the event to the spool, one file per event, and
exits; whichever hook gets the drain lock forks a detached child that replays the spool into SQLite
(drain.py), one drainer at a time, oldest event first.

A spool file, `<time_ns>-<random>.event`, holds a JSON header line (event uid, time received, a few
CLAUDE_* variables) and then the payload's exact bytes. It is written as a hidden temporary file and
renamed into place: a reader sees a whole file or none. A payload on a pipe (the hook's stdin) moves
from the pipe to the file inside the kernel (splice), never through this process.

Durability matches SQLite's WAL with synchronous=NORMAL, which the database uses: a crash of the
hook or of Claude Code loses nothing (the file is complete or absent); only an operating-system crash
in the moment between write-back and ingestion could.

Standard library only, and nothing heavier than os, time and fcntl on this path: no JSON module (the
header is formatted by hand) unless the ignore list has to be checked against the payload.
"""

import os
import time

from claude_hooks import (
    ENV_KEYS,
    EVENT,
    IGNORE_FILE,
    OFF_FLAG,
    TMP,
    cra_home,
    home_spool_dir,
    new_uid,
    now_iso,
    spool_dirs,
    try_drain_lock,
)

# For type checkers only (mypy reads the name as true): the hook never pays for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from claude_hooks.drain import Event

SYNC_ENV = "CRA_HOOK_SYNC"  # set: the hook drains in its own process (no fork), e.g. for debugging
# The hook's stdin pipe is grown to this before the payload is moved: a large payload then crosses in
# a few steps instead of one 64 KB step per wake-up of the writer (Claude Code) and of this process.
PIPE_BYTES = 1 << 20

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def handle(raw: bytes, env: "Mapping[str, str]") -> None:
    """The hook's work for a payload in memory. Never raises."""
    home = cra_home(env)
    if _paused(home) or _ignored(home, raw, env):
        return
    directory = write_event(home, raw, event_header(new_uid(), now_iso(), env))
    _start_drainer(home, env, directory)


def handle_stdin(fd: int, env: "Mapping[str, str]") -> None:
    """handle() for a payload still on stdin: moved to the spool file without being read into this
    process, unless something must look at it (the ignore list)."""
    home = cra_home(env)
    if _paused(home):
        return
    if os.path.exists(os.path.join(home, IGNORE_FILE)):
        handle(read_all(fd), env)
        return
    directory = write_event_from(home, fd, event_header(new_uid(), now_iso(), env))
    _start_drainer(home, env, directory)


def _paused(home: str) -> bool:
    return os.path.exists(os.path.join(home, OFF_FLAG))


def _ignored(home: str, raw: bytes, env: "Mapping[str, str]") -> bool:
    if not os.path.exists(os.path.join(home, IGNORE_FILE)):
        return False
    from claude_hooks import fastjson, privacy

    try:
        payload = fastjson.loads(raw.decode("utf-8", "replace"))
    except Exception:
        payload = None
    cwd = payload.get("cwd") if isinstance(payload, dict) else None
    return privacy.is_ignored(privacy.ignored_dirs(home), cwd, env.get("CLAUDE_PROJECT_DIR"))


def _start_drainer(home: str, env: "Mapping[str, str]", directory: str | None) -> None:
    if directory != home_spool_dir(home):
        return  # CRA_HOME unusable: the event waits in the fallback spool for a `cra` command
    lock = try_drain_lock(home)
    if lock is None:
        return  # a drainer is running: it re-checks the spool after releasing the lock
    if env.get(SYNC_ENV) or not hasattr(os, "fork"):
        _drain(home, env, lock)
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
            _drain(home, env, lock)
        finally:
            os._exit(0)
    # The parent returns at once; the child holds the lock (a shared open file description).


def _drain(home: str, env: "Mapping[str, str]", lock: int) -> None:
    from claude_hooks import drain  # (SQLite loads here, in the drainer, never in the hook Claude Code waits for)

    drain.drain_until_empty(home, env, lock)


# ---------------------------------------------------------------------------------------------
# Spool files


def event_header(uid: str, received_at: str, env: "Mapping[str, str]", reason: str | None = None) -> bytes:
    """The header line's bytes: what json.dumps writes for {"event_uid", "received_at", "env"[,
    "reason"]}. Plain values are formatted here, so the hook's path never loads a JSON module."""
    kept = [(k, env[k]) for k in ENV_KEYS if k in env]
    if reason is None and all(_plain(v) for _, v in kept) and _plain(uid) and _plain(received_at):
        pairs = ", ".join('"%s": "%s"' % kv for kv in kept)
        return ('{"event_uid": "%s", "received_at": "%s", "env": {%s}}' % (uid, received_at, pairs)).encode()
    from claude_hooks import fastjson

    meta = {"event_uid": uid, "received_at": received_at, "env": dict(kept)}
    if reason:
        meta["reason"] = reason
    return fastjson.dumps(meta).encode("utf-8")


def _plain(value: object) -> bool:
    """A string JSON writes as it is: printable ASCII without quotes or backslashes."""
    return isinstance(value, str) and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


def new_name() -> str:
    return "%d-%s%s" % (time.time_ns(), os.urandom(8).hex(), EVENT)


def write_event(home: str, raw: bytes, header: bytes, fsync: bool = False) -> str | None:
    """Put one event in the spool (CRA_HOME's, else the fallback). Returns the directory, or None."""
    name = new_name()
    parts = [header + b"\n", raw]  # written with writev: no copy of a large payload
    for directory in spool_dirs(home):
        try:
            fd = _open_new(directory, name, home)
        except OSError:
            continue
        try:
            _write_all(fd, parts)
            if fsync:
                os.fsync(fd)
        except OSError:
            _discard(fd, directory, name)
            continue
        os.close(fd)
        _publish(directory, name)
        return directory
    return None


def spool_event(home: str, event: "Event", reason: str) -> str | None:
    """Put an already-parsed event (a drain.Event) back in the spool, for `cra` when it can't store it."""
    raw = event.raw_bytes if event.raw_bytes is not None else event.text.encode("utf-8", "surrogateescape")
    return write_event(home, raw, event_header(event.uid, event.received_at, event.env, reason), fsync=True)


def write_event_from(home: str, fd_in: int, header: bytes) -> str | None:
    """write_event for a payload still on a file descriptor (the hook's stdin). Returns the
    directory, or None."""
    _grow_pipe(fd_in)
    name = new_name()
    for directory in spool_dirs(home):
        try:
            fd = _open_new(directory, name, home)
        except OSError:
            continue
        try:
            _write_all(fd, [header + b"\n"])
            _copy_fd(fd_in, fd)
        except OSError:
            # This directory failed mid-copy (a full disk): take what it got back and go on with
            # bytes, so the next directory gets the whole payload.
            raw = _read_back(fd, len(header) + 1) + read_all(fd_in)
            _discard(fd, directory, name)
            return write_event(home, raw, header)
        os.close(fd)
        _publish(directory, name)
        return directory
    return None


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl  # (loaded anyway, for the drain lock)

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not a pipe, not Linux, or over the system's limit: the copy works all the same


def _open_new(directory: str, name: str, home: str) -> int:
    path = os.path.join(directory, "." + name + TMP)
    if directory != home_spool_dir(home):
        from claude_hooks import privacy

        # The shared temporary folder: only a directory that is ours alone.
        privacy.make_private_dir(directory, directory)
        if not privacy.trusted_dir(directory):
            raise PermissionError("refusing the spool directory %s" % directory)
        return os.open(path, _NEW_FILE, 0o600)
    try:
        return os.open(path, _NEW_FILE, 0o600)
    except FileNotFoundError:
        from claude_hooks import privacy

        privacy.make_private_dir(directory, home)
        return os.open(path, _NEW_FILE, 0o600)


def _write_all(fd: int, parts: list[bytes]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written < total:  # a short write (rare): finish the rest plainly
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


_SPLICE = getattr(os, "splice", None)  # Linux, Python 3.10+


def _copy_fd(fd_in: int, fd_out: int) -> None:
    chunk = PIPE_BYTES
    if _SPLICE is not None:
        try:
            while _SPLICE(fd_in, fd_out, chunk):
                pass
            return
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EBADF):
                raise  # a write error: the caller falls back to another directory
            # stdin is not a pipe (a file, a terminal): copy through memory, from where splice stopped
    while True:
        data = os.read(fd_in, chunk)
        if not data:
            return
        _write_all(fd_out, [data])


def _read_back(fd: int, start: int) -> bytes:
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, max(0, size - start), start) if size > start else b""
    except OSError:
        return b""


def read_all(fd_in: int) -> bytes:
    parts: list[bytes] = []
    while True:
        data = os.read(fd_in, 1 << 20)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _discard(fd: int, directory: str, name: str) -> None:
    os.close(fd)
    try:
        os.unlink(os.path.join(directory, "." + name + TMP))
    except OSError:
        pass


def _publish(directory: str, name: str) -> None:
    # rename is atomic: a drainer sees a whole file or none.
    os.rename(os.path.join(directory, "." + name + TMP), os.path.join(directory, name))
