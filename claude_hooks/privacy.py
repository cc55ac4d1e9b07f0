"""Keeping capture private: owner-only directories, refusing a shared spool directory others control,
and the ignore list (`cra ignore`).

A spool directory in a shared temporary folder is trusted only when it is a real directory of this
user that nobody else can write to: another local user could otherwise create it first and read,
plant or delete events. The ignore list is matched with symbolic links resolved on both sides, for
every way data comes in (the hook, the spool's replay, `cra import` and `cra sync`).
"""

import os
import stat

from claude_hooks import IGNORE_FILE


def make_private_dir(path: str, home: str) -> None:
    """Create the directory `path`, at or below `home` (CRA_HOME), each missing directory from `home`
    down owner-only (0700, like the database); those above `home` get the default mode. An existing
    directory is left as it is."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if os.path.normpath(path) == os.path.normpath(home) or parent == path:
            os.makedirs(parent, exist_ok=True)
        else:
            make_private_dir(parent, home)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass


def trusted_dir(path: str) -> bool:
    """Whether `path` is a directory (not a link to one) owned by this user and writable by no one
    else. Checked before the shared temporary folder's spool is written or read."""
    return _refusal(path, missing_ok=False) is None


def spool_dir_refusal(path: str) -> str | None:
    """Why the spool directory `path` is refused (a sentence), or None when it is usable or absent."""
    return _refusal(path, missing_ok=True)


def _refusal(path: str, missing_ok: bool) -> str | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None if missing_ok else "%s does not exist" % path
    if not stat.S_ISDIR(st.st_mode):
        return "%s is not a directory" % path
    if st.st_uid != os.geteuid():
        return "%s belongs to another user (uid %d)" % (path, st.st_uid)
    if st.st_mode & 0o022:
        return "%s can be written by other users (mode %o)" % (path, st.st_mode & 0o777)
    return None


def ignored_dirs(home: str) -> list[str]:
    """The ignore list, each entry with its symbolic links resolved."""
    try:
        # surrogateescape: a hand-edited file with stray bytes still reads (and never costs the event).
        with open(os.path.join(home, IGNORE_FILE), encoding="utf-8", errors="surrogateescape") as f:
            entries = [line.strip() for line in f if line.strip()]
    except OSError:
        return []
    return [_resolved(e) for e in entries]


def is_ignored(ignored: list[str], *dirs: object) -> bool:
    """Whether any of `dirs` (strings; other values are skipped) is an `ignored` directory or below
    one, compared with symbolic links resolved on both sides."""
    if not ignored:
        return False
    for d in dirs:
        if isinstance(d, str) and d:
            d = _resolved(d)
            for ig in ignored:
                if d == ig or d.startswith(ig.rstrip("/") + "/"):
                    return True
    return False


def _resolved(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):  # (ValueError: an embedded NUL)
        return path
