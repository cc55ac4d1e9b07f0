"""cra's database: where it lives, how to open it, and its schema (one source: migrations.py)."""

import os
import sqlite3
import sys
from typing import TYPE_CHECKING

from claude_hooks import capture

from .. import errors


def _import_sqlite_utils():
    """Import sqlite-utils without the pandas and numpy it imports when they are installed.

    It only uses them to map their types, which cra never passes it, and with the training extras
    installed they cost over a second on every `cra` command.
    """
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError while set
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

if TYPE_CHECKING:
    from sqlite_utils import Database

# migrations.py imports sqlite_utils itself: only after the import above has hidden pandas and numpy.
from .migrations import migrations  # noqa: E402


def cra_home() -> str:
    return capture.cra_home(os.environ)


def default_db_path() -> str:
    return capture.db_path(os.environ)


PAGE_SIZE = 16384


class DatabaseError(errors.DatabaseError):
    """The cra database cannot be opened (cra.errors.DatabaseError, kept here for `cra.db` callers)."""


def open_db(path: str | None = None, *, drain: bool = True) -> "Database":
    """Open (creating and migrating if needed) the database, and replay any spooled events.

    Created owner-only, in WAL mode, with a busy timeout so that `cra` commands wait for hooks
    instead of failing.
    """
    path = path or default_db_path()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        # Create the file ourselves so it is owner-only from the first byte.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        if os.path.getsize(path) == 0:
            # Only a new file takes a page size (a WAL database keeps its own). Transcript lines
            # and tool results run to kilobytes: 16 KB pages hold most in one page instead of a chain
            # of 4 KB overflow pages, and write a quarter as many WAL frames (BENCHMARKS.md, Import).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        db = sqlite_utils.Database(conn)
        if migrations.pending(db):
            migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(
            f"cannot open the cra database at {path}: {exc}. If the file is corrupt, move it aside "
            "(hooks keep spooling events meanwhile) and run `cra status` to start a fresh one."
        ) from exc
    # Hooks spool for the database they write to (CRA_HOME's): only that one takes the backlog, and
    # only that one is named after this machine (what `cra merge` credits its rows to elsewhere).
    if os.path.abspath(path) == os.path.abspath(default_db_path()):
        from .machine import record_self

        record_self(conn)
        if drain:
            drain_spool(db)
    return db


def drain_spool(db: "Database", timeout: float = 30.0) -> int:
    """Ingest the events waiting in the spool, under the hooks' drain lock (so in order, and never
    alongside a hook's drainer: this waits for it to finish first)."""
    import time

    from claude_hooks import spool

    home = cra_home()
    deadline = time.monotonic() + timeout
    while True:
        lock = spool.try_drain_lock(home)
        if lock is not None:
            break
        if not os.path.isdir(home) or time.monotonic() > deadline:
            # No lock file possible (read-only home) or a drainer stuck: ingest anyway; claims by
            # rename and idempotent inserts keep it correct, only strict ordering is at stake.
            return capture.drain_spool(db.conn, home)
        time.sleep(0.02)
    try:
        return capture.drain_spool(db.conn, home)
    finally:
        spool.release_drain_lock(lock)


def spool_backlog(home: str | None = None) -> int:
    total = 0
    for directory in capture.spool_dirs(home or cra_home()):
        try:
            total += sum(1 for n in os.listdir(directory) if n.endswith(".event"))
        except OSError:
            pass
    return total
