"""The spool: one file per hook event, waiting on disk to be replayed into SQLite.

The hook process (receive.py) writes each event as `<time_ns>-<random>.event`: a JSON header line
(event uid, time received, a few CLAUDE_* variables), then the payload's exact bytes. It writes a
hidden temporary file and renames it into place, so a reader sees a whole file or none. A drainer
(drain.py) claims a file by renaming it to `<name>.claimed-<pid>-<time>`, records it, then deletes
it. Nothing is stranded whatever is killed when:
- a claim whose drainer died, or older than CLAIM_STALE_S, goes back to the queue (replaying is
  idempotent: the database ignores an event uid it already has);
- the temporary file of a hook killed mid-write is taken into the queue once older than
  TMP_STALE_S (a cut-off payload is then stored raw with its parse error), or deleted when it holds
  no complete header;
- a file that is not an event (no header, not a regular file) is renamed `<name>.unreadable`, kept
  and counted by `cra status`.

Files are opened without following symbolic links and without blocking, and only regular files are
read. Durability matches SQLite's WAL with synchronous=NORMAL, which the database uses: a crash of
the hook or of Claude Code loses nothing; only an operating-system crash in the moment between
write-back and ingestion could.

Standard library only, and nothing heavier than os and time on the hook's path (write_event, the
drain lock).
"""

import os
import time

from claude_hooks import paths

EVENT = ".event"
CLAIM = ".claimed-"  # <name>.claimed-<pid>-<unix time>
UNREADABLE = ".unreadable"
TMP = ".tmp"  # .<name>.tmp while a hook writes it
# A claim is released once its drainer is dead, or after this long whatever it is doing (the
# drainer's longest wait for the database is its busy timeout, 10-30 s): a reused pid can't hold it.
CLAIM_STALE_S = 600
# A hook writes its file in milliseconds (Claude Code kills a hook after its timeout, 30 s): a
# temporary file this old belongs to a hook that was killed.
TMP_STALE_S = 600

# Environment variables worth keeping with an event (never the messaging token).
ENV_KEYS = (
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PID",
    "CLAUDE_PLUGIN_ROOT",
)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_READ_FILE = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def new_uid():
    return os.urandom(16).hex()  # random like uuid4, without uuid's imports


# ---------------------------------------------------------------------------------------------
# Writing (the hook's path)


def event_header(uid, received_at, env, reason=None):
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


def _plain(value):
    """A string JSON writes as it is: printable ASCII without quotes or backslashes."""
    return isinstance(value, str) and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


def new_name():
    return "%d-%s%s" % (time.time_ns(), os.urandom(8).hex(), EVENT)


def write_event(home, raw, header, fsync=False):
    """Put one event in the spool (CRA_HOME's, else the fallback). Returns the directory, or None."""
    name = new_name()
    parts = [header + b"\n", raw]  # written with writev: no copy of a large payload
    for directory in paths.spool_dirs(home):
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


def write_event_from(home, fd_in, header):
    """write_event for a payload still on a file descriptor (the hook's stdin): the bytes move from
    the pipe to the spool file inside the kernel (splice), never through this process, where it
    can. Returns the directory, or None."""
    name = new_name()
    for directory in paths.spool_dirs(home):
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


def _open_new(directory, name, home):
    path = os.path.join(directory, "." + name + TMP)
    if directory != paths.home_spool_dir(home):
        # The shared temporary folder: only a directory that is ours alone.
        paths.make_private_dir(directory, directory)
        if not paths.trusted_dir(directory):
            raise PermissionError("refusing the spool directory %s" % directory)
        return os.open(path, _NEW_FILE, 0o600)
    try:
        return os.open(path, _NEW_FILE, 0o600)
    except FileNotFoundError:
        paths.make_private_dir(directory, home)
        return os.open(path, _NEW_FILE, 0o600)


def _write_all(fd, parts):
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written < total:  # a short write (rare): finish the rest plainly
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


_SPLICE = getattr(os, "splice", None)  # Linux, Python 3.10+


def _copy_fd(fd_in, fd_out):
    chunk = 1 << 20
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


def _read_back(fd, start):
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, max(0, size - start), start) if size > start else b""
    except OSError:
        return b""


def read_all(fd_in):
    parts = []
    while True:
        data = os.read(fd_in, 1 << 20)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _discard(fd, directory, name):
    os.close(fd)
    try:
        os.unlink(os.path.join(directory, "." + name + TMP))
    except OSError:
        pass


def _publish(directory, name):
    # rename is atomic: a drainer sees a whole file or none.
    os.rename(os.path.join(directory, "." + name + TMP), os.path.join(directory, name))


# ---------------------------------------------------------------------------------------------
# The drain lock


def try_drain_lock(home, blocking=False):
    """The drain lock's fd if this process got it, else None. flock: released by the kernel when
    the holder dies, so a crashed drainer never wedges capture."""
    import fcntl

    try:
        fd = os.open(os.path.join(home, paths.DRAIN_LOCK), os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release_drain_lock(fd):
    os.close(fd)  # closing the last descriptor of the open file releases the flock


# ---------------------------------------------------------------------------------------------
# Reading (drainers)


class UnreadableEvent(ValueError):
    """A spool file that is not an event: not a regular file, or no header line."""


def usable_dirs(home):
    """The spool directories a drainer may read: CRA_HOME's, and the fallback when it is trusted."""
    return [d for d in paths.spool_dirs(home) if d == paths.home_spool_dir(home) or paths.trusted_dir(d)]


def queued(directory, now=None):
    """The event files waiting in `directory`, oldest first, after putting back what nobody will
    finish: claims of dead (or stale) drainers, temporary files of killed hooks."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    now = time.time() if now is None else now
    events = []
    for name in names:
        if name.endswith(EVENT):
            events.append(name)
        elif CLAIM in name:
            back = _release_if_abandoned(directory, name, now)
            if back:
                events.append(back)
        elif name.startswith(".") and name.endswith(EVENT + TMP):
            back = _salvage_tmp(directory, name, now)
            if back:
                events.append(back)
    return sorted(events)


def _release_if_abandoned(directory, name, now):
    """Put a claim back in the queue when its owner is gone. Returns the event's name if it did."""
    base, _, owner = name.partition(CLAIM)
    if not base.endswith(EVENT):
        return None
    pid, _, claimed_at = owner.partition("-")
    try:
        pid = int(pid)
        claimed_at = int(claimed_at) if claimed_at else None
    except ValueError:
        pid, claimed_at = None, None
    if claimed_at is None:  # (a claim of an older cra: no time in its name)
        try:
            claimed_at = os.lstat(os.path.join(directory, name)).st_mtime
        except OSError:
            return None
    if pid is not None and pid != os.getpid() and _alive(pid) and now - claimed_at < CLAIM_STALE_S:
        return None
    try:
        os.rename(os.path.join(directory, name), os.path.join(directory, base))
    except OSError:
        return None  # taken back by another drainer first
    return base


def _alive(pid):
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            state = f.read().rpartition(b")")[2].split()[:1]
        return state not in ([b"Z"], [b"X"])
    except FileNotFoundError:
        return not os.path.isdir("/proc/self") and _signalable(pid)
    except OSError:
        return _signalable(pid)


def _signalable(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (EPERM: it exists)
    return True


def _salvage_tmp(directory, name, now):
    """A killed hook's temporary file: queued once stale if it holds a header line, else deleted."""
    path = os.path.join(directory, name)
    try:
        if now - os.lstat(path).st_mtime < TMP_STALE_S:
            return None  # a hook may be writing it
        with open(path, "rb") as f:
            has_header = b"\n" in f.read(64 << 10)
        event = name[1 : -len(TMP)]
        if has_header:
            os.rename(path, os.path.join(directory, event))
            return event
        os.unlink(path)
    except OSError:
        pass
    return None


def claim(directory, name):
    """Take `name` for this process (rename). Returns the claimed path, or None if another did."""
    claimed = os.path.join(directory, "%s%s%d-%d" % (name, CLAIM, os.getpid(), int(time.time())))
    try:
        os.rename(os.path.join(directory, name), claimed)
    except OSError:
        return None
    return claimed


def unclaim(claimed):
    """Give a claimed file back to the queue (the database refused it for now)."""
    try:
        os.rename(claimed, claimed.partition(CLAIM)[0])
    except OSError:
        pass  # (already put back by a drainer that took this claim for abandoned)


def done(claimed):
    try:
        os.unlink(claimed)
    except FileNotFoundError:
        pass  # put back and replayed meanwhile by another drainer: the database has the event once


def set_aside(claimed):
    """Keep a file that is not an event out of the queue, where `cra status` counts it."""
    try:
        os.rename(claimed, claimed.partition(CLAIM)[0] + UNREADABLE)
    except OSError:
        pass


def read_event(path):
    """(header dict, payload bytes) of a spool file. Raises UnreadableEvent for anything that is not
    one (a FIFO or device is never opened for reading: it would block or consume)."""
    import errno
    import stat

    try:
        fd = os.open(path, _READ_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link (O_NOFOLLOW)
            raise UnreadableEvent("a symbolic link, not a regular file") from exc
        raise
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableEvent("not a regular file")
        data = f.read()
    header, newline, raw = data.partition(b"\n")
    if not newline:
        raise UnreadableEvent("no header line")
    from claude_hooks import fastjson

    try:
        meta = fastjson.loads(header.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:
        raise UnreadableEvent("the header line is not JSON") from exc
    if not isinstance(meta, dict):
        raise UnreadableEvent("the header line is not a JSON object")
    return meta, raw


def name_time(name):
    """The time (seconds) in a spool file's name, or None."""
    stamp = os.path.basename(name).split("-", 1)[0].lstrip(".")
    return int(stamp) / 1e9 if stamp.isdigit() else None


def counts(home):
    """{"queued", "claimed", "unreadable"}: files in every spool directory drainers read (counted
    without changing anything). A hook's temporary file is not counted: it is an event once its
    hook has finished writing it, or, if the hook was killed, once a drainer salvages it."""
    found = {"queued": 0, "claimed": 0, "unreadable": 0}
    for directory in usable_dirs(home):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for n in names:
            if n.endswith(EVENT):
                found["queued"] += 1
            elif CLAIM in n:
                found["claimed"] += 1
            elif n.endswith(UNREADABLE):
                found["unreadable"] += 1
    return found


def has_queued(home):
    for directory in usable_dirs(home):
        try:
            if any(n.endswith(EVENT) for n in os.listdir(directory)):
                return True
        except OSError:
            pass
    return False
