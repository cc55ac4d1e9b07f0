"""Parallel hooks (Claude Code runs read-only tools and their hooks at once; several sessions and
subagents write together) and parallel drainers never lose or duplicate an event."""

import json
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from conftest import REPO, run_hook

from claude_hooks import capture
from cra.cli import cli
from cra.db import open_db, spool_backlog

WORKERS = 8
PER_WORKER = 50


def _payload(worker, i):
    return json.dumps(
        {
            "session_id": f"session-{worker % 3}",  # workers share sessions, as parallel tools do
            "cwd": "/tmp/project",
            "transcript_path": "",
            "hook_event_name": "PreToolUse",
            "tool_name": "Read",
            "tool_input": {"file_path": f"/tmp/project/{worker}-{i}.txt"},
            "tool_use_id": f"toolu_w{worker}_{i}",
        }
    )


def _worker(worker):
    failures = 0
    for i in range(PER_WORKER):
        proc = run_hook(_payload(worker, i))
        failures += proc.returncode != 0 or proc.stdout != b"" or proc.stderr != b""
    return failures


@pytest.mark.slow
def test_parallel_hooks_lose_and_duplicate_nothing(cra_home):
    path = str(cra_home / "cra.db")
    open_db().conn.close()
    with ThreadPoolExecutor(WORKERS) as pool:
        assert sum(pool.map(_worker, range(WORKERS))) == 0
    # Hooks that lost the lock race spooled; the next cra command takes those in.
    result = CliRunner().invoke(cli, ["ingest"])
    assert result.exit_code == 0, result.output
    assert spool_backlog() == 0
    con = sqlite3.connect(path)
    total = WORKERS * PER_WORKER
    assert con.execute("SELECT count(*), count(DISTINCT event_uid) FROM events").fetchone() == (total, total)
    expected = {f"toolu_w{w}_{i}" for w in range(WORKERS) for i in range(PER_WORKER)}
    assert {r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls")} == expected
    assert {r[0] for r in con.execute("SELECT tool_use_id FROM events")} == expected
    # Concurrent writers to one session still get distinct, gapless positions.
    for (session,) in con.execute("SELECT DISTINCT session_id FROM tool_calls").fetchall():
        seqs = [r[0] for r in con.execute("SELECT seq FROM tool_calls WHERE session_id = ? ORDER BY seq", [session])]
        assert seqs == list(range(1, len(seqs) + 1))


DRAINERS = 4
SPOOLED = 300

DRAIN_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[1])
from claude_hooks import capture
con = capture.connect(capture.db_path(os.environ))
total = 0
while True:
    n = capture.drain_spool(con, capture.cra_home(os.environ), limit=25)
    total += n
    if n == 0:
        break
print(total)
"""


def test_concurrent_drainers_ingest_each_event_once(cra_home):
    open_db().conn.close()
    home = str(cra_home)
    for i in range(SPOOLED):
        event = capture.Event(json.dumps({"session_id": "s", "hook_event_name": "Notification", "n": i}).encode(), {})
        assert capture.spool(home, event, reason="test") == os.path.join(home, capture.SPOOL_DIR)
    assert spool_backlog() == SPOOLED
    procs = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", DRAIN_SCRIPT, str(REPO)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(DRAINERS)
    ]
    # A live hook writes (and drains) meanwhile, as it would during a session.
    for i in range(5):
        assert run_hook(json.dumps({"session_id": "s", "hook_event_name": "Stop", "live": i})).returncode == 0
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        counts.append(int(out))
    assert spool_backlog() == 0
    assert not [n for n in os.listdir(os.path.join(home, capture.SPOOL_DIR)) if not n.endswith(".event")]
    con = sqlite3.connect(str(cra_home / "cra.db"))
    payloads = [json.loads(p) for (p,) in con.execute("SELECT payload FROM events")]
    spooled = [p["n"] for p in payloads if "n" in p]
    assert sorted(spooled) == list(range(SPOOLED))
    # The drainers (and the live hooks' drainers) together took each file exactly once.
    assert sum(counts) <= SPOOLED
    assert sorted(p["live"] for p in payloads if "live" in p) == list(range(5))


def test_replaying_a_spool_file_twice_is_a_no_op(cra_home):
    """A drainer that dies between insert and unlink leaves the file: the next replay adds nothing."""
    db = open_db()
    event = capture.Event(json.dumps({"session_id": "s", "hook_event_name": "Stop"}).encode(), {})
    capture.record(db.conn, event, via="cra")
    capture.spool(str(cra_home), event, reason="crash before unlink")
    assert capture.drain_spool(db.conn, str(cra_home)) == 1
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert spool_backlog() == 0
