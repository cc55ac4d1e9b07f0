"""Where cra keeps things: CRA_HOME, the database, the spool directories, the ignore list.

Shared by the hook (standard library only, nothing heavier than os here) and by `cra`. A spool
directory in a shared temporary folder is trusted only when it is a real directory of this user
that nobody else can write to: another local user could otherwise create it first and read, plant
or delete events.
"""

import os
import stat

DB_NAME = "cra.db"
OFF_FLAG = "off"  # present in CRA_HOME: capture is paused (`cra off`)
IGNORE_FILE = "ignored-projects"  # one directory a line: never recorded
SPOOL_DIR = "spool"
DRAIN_LOCK = "drain.lock"  # held by the one process replaying the spool into the database
ERROR_LOG = "hook-errors.log"
AUTO_TRIGGER = "auto-trigger.json"  # present: Stop may start `cra auto once` (`cra auto hook on`)


def cra_home(env=os.environ):
    """CRA_HOME, else the user data dir (XDG on Linux, Application Support on macOS)."""
    if env.get("CRA_HOME"):
        return env["CRA_HOME"]
    home = os.path.expanduser("~")
    if os.uname().sysname == "Darwin":
        return os.path.join(home, "Library", "Application Support", "cra")
    return os.path.join(env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "cra")


def db_path(env=os.environ):
    return env.get("CRA_DB") or os.path.join(cra_home(env), DB_NAME)


def home_spool_dir(home):
    return os.path.join(home, SPOOL_DIR)


def fallback_spool_dir():
    """Where events go when CRA_HOME is missing and can't be created, or is read-only: a per-user
    directory in the temporary folder, used only while trusted_dir() accepts it."""
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(tmp, "cra-spool-%d" % os.geteuid())


def spool_dirs(home):
    return [home_spool_dir(home), fallback_spool_dir()]


def make_private_dir(path, home):
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


def trusted_dir(path):
    """Whether `path` is a directory (not a link to one) owned by this user and writable by no one
    else. Checked before the shared temporary folder's spool is written or read."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def spool_dir_refusal(path):
    """Why the spool directory `path` is refused (a sentence), or None when it is usable or absent."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return "%s is not a directory" % path
    if st.st_uid != os.geteuid():
        return "%s belongs to another user (uid %d)" % (path, st.st_uid)
    if st.st_mode & 0o022:
        return "%s can be written by other users (mode %o)" % (path, st.st_mode & 0o777)
    return None


def ignored_dirs(home):
    """The ignore list (`cra ignore`), each entry with its symbolic links resolved."""
    try:
        # surrogateescape: a hand-edited file with stray bytes still reads (and never costs the event).
        with open(os.path.join(home, IGNORE_FILE), encoding="utf-8", errors="surrogateescape") as f:
            entries = [line.strip() for line in f if line.strip()]
    except OSError:
        return []
    return [_resolved(e) for e in entries]


def is_ignored(ignored, *dirs):
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


def _resolved(path):
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):  # (ValueError: an embedded NUL)
        return path
