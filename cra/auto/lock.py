"""One cycle at a time: an exclusive flock on `$CRA_HOME/auto.lock`.

The kernel drops a flock when its holder dies however it dies (kill -9, OOM, power loss ends the
boot), so a crash never leaves the lock held: there is nothing to time out and no pid to trust. The
holder writes its pid, host and start time into the file for `cra auto status`; finding the file
naming a holder while the lock is free means that holder crashed (the cycle it left `running` is
then marked crashed).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = "auto.lock"


class CycleRunning(Exception):
    """Another process holds the lock: its recorded pid, host and start time are in `holder`."""

    def __init__(self, holder: dict | None):
        self.holder = holder or {}
        who = f"pid {self.holder.get('pid')} on {self.holder.get('host')}" if self.holder else "another process"
        super().__init__(f"a cycle is already running ({who}, since {self.holder.get('started_at', '?')})")


def lock_path(home: str | os.PathLike) -> Path:
    return Path(home) / LOCK_NAME


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    try:
        return json.loads(data) if data.strip() else None
    except ValueError:
        return None


class CycleLock:
    """`with CycleLock(home) as lock:` holds the lock or raises CycleRunning at once (never waits).

    `lock.stale` is what a crashed previous holder left in the file (None after a clean release)."""

    def __init__(self, home: str | os.PathLike):
        self.path = lock_path(home)
        self.fd: int | None = None
        self.stale: dict | None = None

    def acquire(self) -> CycleLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise CycleRunning(holder) from None
        self.fd = fd
        self.stale = _read(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        # Emptied before unlocking: a clean release leaves no holder behind to be taken for a crash.
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> CycleLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(home: str | os.PathLike) -> dict | None:
    """Who holds the lock (pid, host, started_at), or None, for display only.

    Read without touching the lock (taking it even briefly could turn a starting cycle away): the
    recorded holder counts when its process is alive, or runs on another host sharing CRA_HOME."""
    try:
        with open(lock_path(home), "rb") as f:
            info = json.loads(f.read() or b"null")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    if info.get("host") != socket.gethostname():
        return info
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None  # crashed: the next cycle finds it stale
    except PermissionError:
        pass
    return info
