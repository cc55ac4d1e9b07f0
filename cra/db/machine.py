"""This database's own machine: the `machines` row with `is_self = 1` (m012; `cra merge` credits rows
to machines, cra/merge/machines.py).

Written the first time a `cra` command opens the database as CRA_HOME's (the one its hooks write
to), and kept when the file is copied elsewhere: rows with `origin` NULL were recorded there.
"""

from __future__ import annotations

import getpass
import socket
import sqlite3

from .. import __version__


def this_machine() -> tuple[str, str]:
    """(host, user) of the running process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME: a bare container
        user = ""
    return socket.gethostname() or "localhost", user


def record_self(conn: sqlite3.Connection) -> None:
    """Name this database's own machine, once; afterwards only a new cra version is written."""
    try:
        row = conn.execute("SELECT id, cra_version FROM machines WHERE is_self = 1").fetchone()
        if row is not None:
            if row[1] != __version__:
                conn.execute("UPDATE machines SET cra_version = ? WHERE id = ?", (__version__, row[0]))
            return
        host, user = this_machine()
        conn.execute(
            "INSERT INTO machines (host, user, cra_version, is_self) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (host, user) DO UPDATE SET is_self = 1, cra_version = excluded.cra_version",
            (host, user, __version__),
        )
    except sqlite3.Error:
        pass  # provenance never stops a command (a read-only or busy database is named on a later run)
