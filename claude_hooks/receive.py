"""What the hook process does with one event: spool it, and hand the database work to one drainer.

Claude Code waits for every hook, and loading SQLite alone costs about half an interpreter start-up.
So the process Claude Code waits for only puts the event in the spool (spool.py) and exits; whichever
hook gets the drain lock forks a detached child that replays the spool into SQLite (drain.py), one
drainer at a time, oldest event first.

Standard library only, and nothing heavier than os, time and fcntl on this path: no JSON module
(the header is formatted by hand) unless the ignore list has to be checked against the payload.
"""

import os

from claude_hooks import paths, spool

SYNC_ENV = "CRA_HOOK_SYNC"  # set: the hook drains in its own process (no fork), e.g. for debugging


def handle(raw, env):
    """The hook's work for a payload in memory. Never raises."""
    home = paths.cra_home(env)
    if _paused(home) or _ignored(home, raw, env):
        return
    directory = spool.write_event(home, raw, spool.event_header(spool.new_uid(), spool.now_iso(), env))
    _start_drainer(home, env, directory)


def handle_stdin(fd, env):
    """handle() for a payload still on stdin: moved to the spool file without being read into this
    process when nothing needs to look at it (the ignore list does)."""
    home = paths.cra_home(env)
    if _paused(home):
        return
    if os.path.exists(os.path.join(home, paths.IGNORE_FILE)):
        handle(spool.read_all(fd), env)
        return
    directory = spool.write_event_from(home, fd, spool.event_header(spool.new_uid(), spool.now_iso(), env))
    _start_drainer(home, env, directory)


def _paused(home):
    return os.path.exists(os.path.join(home, paths.OFF_FLAG))


def _ignored(home, raw, env):
    if not os.path.exists(os.path.join(home, paths.IGNORE_FILE)):
        return False
    from claude_hooks import fastjson

    try:
        payload = fastjson.loads(raw.decode("utf-8", "replace"))
    except Exception:
        payload = None
    cwd = payload.get("cwd") if isinstance(payload, dict) else None
    return paths.is_ignored(paths.ignored_dirs(home), cwd, env.get("CLAUDE_PROJECT_DIR"))


def _start_drainer(home, env, directory):
    if directory != paths.home_spool_dir(home):
        return  # CRA_HOME unusable: the event waits in the fallback spool for a `cra` command
    lock = spool.try_drain_lock(home)
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


def _drain(home, env, lock):
    from claude_hooks import drain  # (SQLite loads here, in the drainer, never in the hook Claude Code waits for)

    drain.drain_until_empty(home, env, lock)
