"""cra's database: where it lives, how to open it, and its schema (one source: migrations.py).

Opening never rewrites what it should not: a database written by a newer cra is refused before
anything is written to it, and a read-only one before SQLite creates files beside it. (The CLI's -d
refuses a folder that does not exist: cli_options.database_option.) Each failure is a DatabaseError
whose message says what to do.
"""

import os
import sqlite3
import sys
from typing import TYPE_CHECKING

import claude_hooks
from claude_hooks import drain, privacy

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

__all__ = ["DatabaseError", "cra_home", "default_db_path", "open_db", "drain_spool", "spool_backlog"]

PAGE_SIZE = 16384


class DatabaseError(errors.DatabaseError):
    """The cra database cannot be opened (cra.errors.DatabaseError, kept here for `cra.db` callers)."""


# How long a `cra` command waits for another process's write lock (a long import, a drainer).
LOCK_TIMEOUT_S = 30.0


def cra_home() -> str:
    return claude_hooks.cra_home(os.environ)


def default_db_path() -> str:
    return claude_hooks.db_path(os.environ)


def open_db(path: str | None = None, *, drain: bool = True) -> "Database":
    """Open (creating and migrating if needed) the database, and replay any spooled events.

    Created owner-only, in WAL mode, with a busy timeout so that `cra` commands wait for hooks
    instead of failing. Raises DatabaseError when it can't be opened or written.
    """
    path = path or default_db_path()
    _prepare(path)
    conn = None
    try:
        conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        db = sqlite_utils.Database(conn)
        _refuse_newer(db, path)
        if os.path.getsize(path) == 0:
            # Only a new file takes a page size (a WAL database keeps its own). Transcript lines
            # and tool results run to kilobytes: 16 KB pages hold most in one page instead of a chain
            # of 4 KB overflow pages, and write a quarter as many WAL frames (BENCHMARKS.md, Import).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if migrations.pending(db):
            migrations.apply(db)
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise database_error(path, exc) from exc
    except DatabaseError:
        if conn is not None:
            conn.close()
        raise
    # Hooks spool for the database they write to (CRA_HOME's): only that one takes the backlog, and
    # only that one is named after this machine (what `cra merge` credits its rows to elsewhere).
    if os.path.abspath(path) == os.path.abspath(default_db_path()):
        from .machine import record_self

        record_self(conn)
        if drain:
            drain_spool(db)
    return db


def _prepare(path: str):
    """The checks and the creation that come before SQLite touches anything."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        try:
            privacy.make_private_dir(directory, directory)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create {directory} for the cra database: {exc.strerror or exc}. Set CRA_HOME to a "
                "folder you can write to, or fix the permissions of the folders above it."
            ) from exc
    if os.path.isdir(path):
        raise DatabaseError(f"{path} is a folder, not a database file: pass a file path (-d/--database).")
    if not os.path.exists(path):
        try:
            # Create the file ourselves so it is owner-only from the first byte.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the cra database at {path}: {exc.strerror or exc}. Set CRA_HOME (or -d) to "
                "a folder you can write to, or fix its permissions."
            ) from exc
        return
    # A WAL database needs its file, its -wal and -shm, and a folder to create them in, all
    # writable. Checked first: SQLite would otherwise create a -shm as read-only as the file.
    sidecars = [path + "-wal", path + "-shm"]
    targets = [path] + sidecars + ([] if all(os.path.exists(s) for s in sidecars) else [directory])
    for target in targets:
        if os.path.exists(target) and not os.access(target, os.W_OK):
            raise DatabaseError(
                f"the cra database at {path} is read-only ({target} is not writable): make it writable "
                f"(chmod u+w {target}), or copy the database and pass the copy with -d."
            )


def _refuse_newer(db: "Database", path: str):
    """A database a newer cra migrated further than this one knows (a migration this cra lacks, by
    name): refused, never rewritten."""
    known = {m.name for m in migrations.pending(sqlite_utils.Database(memory=True))}  # (every one cra has)
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise DatabaseError(
            f"the database at {path} was written by a newer cra (migration {unknown[-1]}, unknown to this one, "
            f"cra {_version()}): upgrade cra to use it (pip install -U cra-claude). It was left unchanged."
        )


def _version() -> str:
    from .. import __version__

    return __version__


def database_error(path: str, exc: BaseException) -> DatabaseError:
    """The DatabaseError that says what `exc` (from SQLite or the OS, about `path`) means and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error):
        if exc.errno == 28:  # ENOSPC
            return _disk_full(path, text)
        return DatabaseError(f"cannot open the cra database at {path}: {exc.strerror or text}.")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return DatabaseError(
            f"the cra database at {path} is busy: another process (a `cra import`, a hook's drainer) has held "
            f"its write lock for over {LOCK_TIMEOUT_S:.0f} s. Run the command again when it is done."
        )
    if name == "SQLITE_FULL" or "disk is full" in text:
        return _disk_full(path, text)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return DatabaseError(
            f"the cra database at {path} is read-only ({text}): make it and its folder writable, or copy it "
            "and pass the copy with -d."
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return DatabaseError(
            f"cannot open the cra database at {path} ({text}): check that the file and its folder exist and are "
            "writable."
        )
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return DatabaseError(
            f"reading or writing the cra database at {path} failed ({text}): check the disk (space, errors) "
            "and run the command again."
        )
    return DatabaseError(
        f"cannot open the cra database at {path}: {text}. If the file is corrupt, move it aside "
        "(hooks keep spooling events meanwhile) and run `cra status` to start a fresh one."
    )


def _disk_full(path: str, text: str) -> DatabaseError:
    return DatabaseError(
        f"the disk holding the cra database at {path} is full ({text}): free some space and run the command "
        "again. Nothing was lost: events wait in the spool until the database can take them."
    )


def drain_spool(db: "Database", timeout: float | None = None) -> int:
    """Ingest the events waiting in the spool, under the hooks' drain lock (so in order, and never
    alongside a hook's drainer: this waits for it to finish first). Raises DatabaseError when the
    database can't take them (they stay spooled)."""
    import time

    home = cra_home()
    deadline = time.monotonic() + (LOCK_TIMEOUT_S if timeout is None else timeout)
    lock = None
    while True:
        lock = claude_hooks.try_drain_lock(home)
        if lock is not None or not os.path.isdir(home) or time.monotonic() > deadline:
            # No lock (no home to hold a lock file, or a drainer stuck): ingest anyway; claims by
            # rename and idempotent inserts keep it correct, only strict ordering is at stake.
            break
        time.sleep(0.02)
    try:
        return drain.drain_spool(db.conn, home)
    except sqlite3.Error as exc:
        raise database_error(_file_of(db), exc) from exc
    finally:
        if lock is not None:
            claude_hooks.release_drain_lock(lock)


def _file_of(db: "Database") -> str:
    try:
        return db.conn.execute("PRAGMA database_list").fetchone()[2] or "(in memory)"
    except sqlite3.Error:
        return "(the database)"


def spool_backlog(home: str | None = None) -> int:
    """Events waiting in the spool: queued, or claimed by a drainer that has not finished them."""
    counts = drain.spool_counts(home or cra_home())
    return counts["queued"] + counts["claimed"]
