"""Capture under failure: whatever is killed when, every event from a hook that exited 0 is stored
exactly once, `cra status` counts what waits, and files that are not events never hang or fool it."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import HOOK_SCRIPT, REPO, run_hook, wait_for_drainer

import claude_hooks
from claude_hooks import drain, spool
from cra.cli import cli
from cra.db import open_db

WRITERS = 16
EVENTS = 500
MARKER = "cra-kill-test-%d" % os.getpid()  # in every writer's (and its drainers') command line

# A hook in a loop: each spool.handle() is one hook run (it spools and may fork a drainer, as the
# hook process does); the index is logged once it returned, i.e. once "the hook exited 0".
WRITER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from claude_hooks import spool
worker, start, count, log = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
env = dict(os.environ)
out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
for i in range(start, count):
    raw = json.dumps({"session_id": "kill-%d" % (worker % 4), "cwd": "/tmp/project", "transcript_path": "",
        "hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/f/%d/%d" % (worker, i)},
        "tool_use_id": "toolu_kill_%d_%d" % (worker, i)}).encode()
    spool.handle(raw, env)
    os.write(out, b"%d\n" % i)
"""


def _ours(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MARKER.encode() in f.read()
    except OSError:
        return False


def _our_processes():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid() and _ours(int(p))]


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


def _claimants(spool_dir):
    pids = []
    for name in os.listdir(spool_dir) if os.path.isdir(spool_dir) else []:
        if drain.CLAIM in name:
            pid = name.partition(drain.CLAIM)[2].split("-")[0]
            if pid.isdigit():
                pids.append(int(pid))
    return pids


LONG_WAIT = {"CRA_DRAIN_TIMEOUT": "60"}  # the hook's drainer waits (holding its claim) for the database


def _claim_names(spool_dir):
    return {n for n in os.listdir(spool_dir) if drain.CLAIM in n} if os.path.isdir(spool_dir) else set()


def _strand_next_claim(spool_dir, fire):
    """Fire a hook while the database is locked and SIGKILL its drainer once it holds a claim."""
    before = _claim_names(spool_dir)
    fire()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = _claim_names(spool_dir) - before
        if new:
            (name,) = new
            return _kill(int(name.partition(drain.CLAIM)[2].split("-")[0]))
        time.sleep(0.01)
    return 0


def _logged(log):
    try:
        with open(log, "rb") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _stored(db_path, like):
    con = sqlite3.connect(db_path, timeout=60)
    try:
        return [r[0] for r in con.execute("SELECT tool_use_id FROM events WHERE tool_use_id LIKE ?", (like,))]
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the processes to kill in /proc")
def test_killing_hooks_and_drainers_at_random_loses_and_duplicates_nothing(cra_home, tmp_path, monkeypatch):
    """16 writers x 500 events while drainers (those holding a claim first) and hooks are killed at
    random and the database is locked on and off; then the database stays locked, hooks fire and
    their drainers are killed holding their claims: `cra status` counts every event that waits, and
    `cra ingest` stores each event of a hook that exited 0 exactly once."""
    db_path = str(cra_home / "cra.db")
    open_db().conn.close()
    spool_dir = claude_hooks.home_spool_dir(str(cra_home))
    env = {**os.environ, "CRA_HOME": str(cra_home), "CRA_DRAIN_TIMEOUT": "0.3"}
    done = threading.Event()
    kills = {"drainers": 0, "any": 0, "writers_restarted": 0}
    logs = [str(tmp_path / f"writer-{w}.log") for w in range(WRITERS)]
    rng = random.Random(20)

    def writer(w):
        start = 0
        while start < EVENTS:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", WRITER, str(REPO), str(w), str(start), str(EVENTS), logs[w], MARKER],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if proc.wait() == 0:
                return
            kills["writers_restarted"] += 1
            logged = _logged(logs[w])
            # The event in flight when it was killed may or may not be spooled: never send it again.
            start = (max(logged) if logged else start - 1) + 2

    def killer():
        while not done.is_set():
            time.sleep(rng.uniform(0.002, 0.03))
            for pid in _claimants(spool_dir):  # a drainer in the middle of an event
                if rng.random() < 0.5 and _ours(pid) and _kill(pid):
                    kills["drainers"] += 1
            if rng.random() < 0.3:
                ours = _our_processes()
                if ours and _kill(rng.choice(ours)):
                    kills["any"] += 1

    def locker():
        con = sqlite3.connect(db_path, isolation_level=None, timeout=60)
        while not done.is_set():
            con.execute("BEGIN IMMEDIATE")
            time.sleep(rng.uniform(0.05, 0.4))
            con.execute("COMMIT")
            time.sleep(rng.uniform(0.05, 0.4))
        con.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    helpers = [threading.Thread(target=killer), threading.Thread(target=locker)]
    for t in threads + helpers:
        t.start()
    for t in threads:
        t.join(timeout=900)
    done.set()
    for t in helpers:
        t.join()
    assert not any(t.is_alive() for t in threads)
    assert kills["drainers"] > 0 and kills["any"] > 0 and kills["writers_restarted"] > 0, kills

    # The database locked for good; hooks fire and their drainers die while they hold the claim.
    locker_con = sqlite3.connect(db_path, isolation_level=None)
    locker_con.execute("BEGIN IMMEDIATE")
    for pid in _our_processes():
        _kill(pid)
    stranded = 0
    for i in range(5):
        stranded += _strand_next_claim(
            spool_dir, lambda i=i: run_hook(_payload(f"toolu_stranded_{i}"), env=LONG_WAIT, wait=False)
        )
    assert stranded == 5
    time.sleep(0.2)  # (the kernel releases their locks)

    logged = {f"toolu_kill_{w}_{i}" for w in range(WRITERS) for i in _logged(logs[w])}
    waiting = logged - set(_stored(db_path, "toolu_kill_%")) | {f"toolu_stranded_{i}" for i in range(5)}
    monkeypatch.setattr("cra.db.LOCK_TIMEOUT_S", 0.5)
    r = CliRunner().invoke(cli, ["status", "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert "busy" in status["drain_error"]
    assert status["spool_backlog"] >= len(waiting) >= 5  # every event that waits is counted
    locker_con.execute("ROLLBACK")
    locker_con.close()

    r = CliRunner().invoke(cli, ["ingest"])
    assert r.exit_code == 0, r.output
    assert r.output.rstrip().endswith("0 left.")
    stored = _stored(db_path, "toolu_%")
    assert len(stored) == len(set(stored))  # nothing twice
    assert logged | {f"toolu_stranded_{i}" for i in range(5)} <= set(stored)  # every hook that exited 0
    con = sqlite3.connect(db_path)
    calls = {r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls")}
    assert logged <= calls
    names = os.listdir(spool_dir)
    assert not [n for n in names if n.endswith(spool.EVENT) or drain.CLAIM in n or n.endswith(drain.UNREADABLE)]
    assert json.loads(CliRunner().invoke(cli, ["status", "--json"]).output)["spool_backlog"] == 0


def _payload(tool_use_id, event="PreToolUse", **fields):
    return json.dumps(
        {
            "session_id": "fail-session",
            "cwd": "/tmp/project",
            "transcript_path": "",
            "hook_event_name": event,
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
            "tool_use_id": tool_use_id,
            **fields,
        }
    )


def test_a_drainer_killed_while_waiting_for_the_database_strands_nothing(cra_home, monkeypatch):
    """The reviewer's reproduction: hold the database locked, fire a hook, kill -9 its drainer."""
    path = str(cra_home / "cra.db")
    open_db().conn.close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    spool_dir = claude_hooks.home_spool_dir(str(cra_home))
    assert _strand_next_claim(spool_dir, lambda: run_hook(_payload("toolu_orphan"), env=LONG_WAIT, wait=False))
    time.sleep(0.2)
    monkeypatch.setattr("cra.db.LOCK_TIMEOUT_S", 0.5)
    try:
        r = CliRunner().invoke(cli, ["status", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["spool_backlog"] == 1  # the claimed event is still counted
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    r = CliRunner().invoke(cli, ["ingest"])
    assert r.exit_code == 0 and "Ingested 1 spooled event; 0 left." in r.output, r.output
    assert _stored(path, "toolu_orphan") == ["toolu_orphan"]


def test_a_claim_of_a_live_drainer_is_left_alone_until_stale(cra_home, monkeypatch):
    open_db().conn.close()
    home = str(cra_home)
    event = drain.Event(_payload("toolu_live").encode(), {})
    directory = spool.spool_event(home, event, reason="test")
    (name,) = os.listdir(directory)
    # Claimed by a live process (this test's parent: alive, and not this process).
    claimed = os.path.join(directory, "%s%s%d-%d" % (name, drain.CLAIM, os.getppid(), int(time.time())))
    os.rename(os.path.join(directory, name), claimed)
    assert drain.spool_counts(home) == {"queued": 0, "claimed": 1, "unreadable": 0}
    assert open_db().execute("SELECT count(*) FROM events").fetchone()[0] == 0  # not taken from its owner
    monkeypatch.setattr(drain, "CLAIM_STALE_S", 0)  # past the bound, even a live owner's claim goes back
    assert open_db().execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert drain.spool_counts(home) == {"queued": 0, "claimed": 0, "unreadable": 0}


def test_claims_of_an_older_cra_are_recovered(cra_home):
    """Claims named `.claimed-<pid>` (no time), as an earlier cra left them, by a dead process."""
    open_db().conn.close()
    directory = spool.spool_event(str(cra_home), drain.Event(_payload("toolu_old_claim").encode(), {}), "test")
    (name,) = os.listdir(directory)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    os.rename(os.path.join(directory, name), os.path.join(directory, f"{name}.claimed-{dead.pid}"))
    r = CliRunner().invoke(cli, ["ingest"])
    assert "Ingested 1 spooled event; 0 left." in r.output, r.output


def test_a_spool_file_without_an_event_uid_is_stored_once(cra_home):
    open_db().conn.close()
    directory = claude_hooks.home_spool_dir(str(cra_home))
    os.makedirs(directory, exist_ok=True)
    name = "%d-%s.event" % (time.time_ns(), "0" * 16)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(b'{"env": {}}\n' + _payload("toolu_no_uid").encode())
    r = CliRunner().invoke(cli, ["ingest"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "Ingested 1 spooled event; 0 left." in r.output
    con = sqlite3.connect(str(cra_home / "cra.db"))
    ((uid, received_at),) = con.execute("SELECT event_uid, received_at FROM events").fetchall()
    assert uid.startswith("spool-") and received_at[:4].isdigit()


@pytest.mark.parametrize("header", [b"not json at all", b"[1, 2]"])
def test_a_spool_file_that_is_not_an_event_is_set_aside_and_counted(cra_home, header):
    open_db().conn.close()
    directory = claude_hooks.home_spool_dir(str(cra_home))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "1-aa.event"), "wb") as f:
        f.write(header + b"\n{}")
    r = CliRunner().invoke(cli, ["status"])
    assert r.exit_code == 0, r.output
    assert "Spool files that are not events, set aside: 1" in r.output
    assert os.listdir(directory) == ["1-aa.event.unreadable"]  # kept, out of the queue


def _unblock(fifo):
    """Release whatever is stuck opening `fifo` for reading (the old, hanging behaviour)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


def test_a_fifo_or_symlink_in_the_spool_never_hangs_or_leaks(cra_home, tmp_path):
    open_db().conn.close()
    assert run_hook(_payload("toolu_beside_fifo")).returncode == 0
    directory = claude_hooks.home_spool_dir(str(cra_home))
    fifo = os.path.join(directory, "1-fifo.event")
    os.mkfifo(fifo)
    secret = tmp_path / "secret.txt"
    secret.write_text('{"env": {}}\n{"hook_event_name": "Stop", "secret": "hunter2"}')
    os.symlink(secret, os.path.join(directory, "2-link.event"))
    # A hook's drainer meets them first: it must finish (release the drain lock) all the same.
    assert run_hook(_payload("toolu_after_fifo"), wait=False).returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lock = claude_hooks.try_drain_lock(str(cra_home))
        if lock is not None:
            claude_hooks.release_drain_lock(lock)
            break
        time.sleep(0.05)
    else:
        for name in os.listdir(directory):
            _unblock(os.path.join(directory, name))
        pytest.fail("the hook's drainer hung on a FIFO in the spool")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cra", "ingest"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("cra ingest hung on a FIFO in the spool")
    finally:
        for name in os.listdir(directory):
            if "fifo" in name:
                _unblock(os.path.join(directory, name))
    assert proc.returncode == 0, err
    con = sqlite3.connect(str(cra_home / "cra.db"))
    payloads = [r[0] for r in con.execute("SELECT payload FROM events ORDER BY id")]
    assert len(payloads) == 2 and "toolu_beside_fifo" in payloads[0] and "toolu_after_fifo" in payloads[1]
    assert not any("hunter2" in p for p in payloads)
    assert sorted(os.listdir(directory)) == ["1-fifo.event.unreadable", "2-link.event.unreadable"]


def test_a_killed_hooks_temporary_file_is_taken_in_or_cleaned(cra_home):
    open_db().conn.close()
    directory = claude_hooks.home_spool_dir(str(cra_home))
    os.makedirs(directory, exist_ok=True)
    header = spool.event_header(claude_hooks.new_uid(), claude_hooks.now_iso(), {})
    cut = os.path.join(directory, ".1-aa.event.tmp")  # killed after its header: salvaged
    with open(cut, "wb") as f:
        f.write(header + b"\n" + _payload("toolu_cut").encode()[:40])
    empty = os.path.join(directory, ".2-bb.event.tmp")  # killed before writing: removed
    open(empty, "wb").close()
    fresh = os.path.join(directory, ".3-cc.event.tmp")  # a hook writing now: left alone
    with open(fresh, "wb") as f:
        f.write(header)
    old = time.time() - drain.TMP_STALE_S - 60
    for p in (cut, empty):
        os.utime(p, (old, old))
    r = CliRunner().invoke(cli, ["ingest"])
    assert "Ingested 1 spooled event; 0 left." in r.output, r.output
    assert os.listdir(directory) == [".3-cc.event.tmp"]
    con = sqlite3.connect(str(cra_home / "cra.db"))
    ((payload, parse_error),) = con.execute("SELECT payload, parse_error FROM events").fetchall()
    assert payload == _payload("toolu_cut")[:40] and parse_error.startswith("invalid JSON")


def test_cra_home_created_by_a_hook_is_owner_only(cra_home):
    assert not cra_home.exists()
    assert run_hook(_payload("toolu_first")).returncode == 0
    assert (cra_home.stat().st_mode & 0o777, (cra_home / "spool").stat().st_mode & 0o777) == (0o700, 0o700)


def test_the_hook_writes_the_payload_bytes_exactly_from_a_pipe_or_a_file(cra_home, tmp_path):
    """The hook moves stdin to the spool file without reading it (splice) when stdin is a pipe; from a
    file (no splice) it copies. Either way the stored payload is the exact bytes."""
    open_db().conn.close()
    raw = _payload("toolu_exact", tool_response={"content": "é\x00" + "x" * 3_000_000}).encode()
    assert run_hook(raw).returncode == 0
    as_file = tmp_path / "stdin.json"
    as_file.write_bytes(raw.replace(b"toolu_exact", b"toolu_exac2"))
    with open(as_file, "rb") as f:
        proc = subprocess.run([sys.executable, "-S", str(HOOK_SCRIPT)], stdin=f, capture_output=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    wait_for_drainer()
    con = sqlite3.connect(str(cra_home / "cra.db"))
    stored = dict(con.execute("SELECT tool_use_id, payload FROM events").fetchall())
    assert stored == {"toolu_exact": raw.decode(), "toolu_exac2": as_file.read_text()}
