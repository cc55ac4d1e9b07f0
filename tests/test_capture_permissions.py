"""The fallback spool in a shared temporary folder, against another local user: run as a second,
unprivileged user (`setpriv` to nobody) where the machine allows it (root with setpriv).

The hook falls back to `$TMPDIR/cra-spool-<uid>` when CRA_HOME is unusable, and every drain reads
it. It must be ours alone: created 0700, refused when another user made it first or anyone else
can write to it, and read without following links or blocking on a FIFO."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest
from conftest import REPO, run_hook

import claude_hooks
from claude_hooks import drain, privacy, spool
from cra.db import open_db

NOBODY = "nobody"


def _as_nobody(script, cwd="/"):
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", "--regid=nogroup", "--clear-groups", "--", "sh", "-c", script],
        capture_output=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def shared_tmp(monkeypatch):
    """A sticky, world-writable temporary folder both users can reach (like /tmp), as TMPDIR."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as a second user")
    if _as_nobody("true").returncode != 0:
        pytest.skip("setpriv cannot switch to nobody here")
    path = tempfile.mkdtemp(prefix="cra-shared-tmp-", dir="/tmp")
    os.chmod(path, 0o1777)
    monkeypatch.setenv("TMPDIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _unusable_home(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return str(blocker / "cra")  # can't be created, even by root


def _payload(tool_use_id):
    return json.dumps(
        {"session_id": "perm", "cwd": "/tmp/p", "hook_event_name": "PreToolUse", "tool_name": "Bash",
         "tool_input": {"command": "ls"}, "tool_use_id": tool_use_id}
    )  # fmt: skip


def _cra(*args, timeout=60):
    proc = subprocess.Popen(
        [sys.executable, "-m", "cra", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"cra {' '.join(args)} hung")
    return proc.returncode, out.decode(), err.decode()


def test_a_spool_another_user_created_first_is_refused(shared_tmp, tmp_path, cra_home):
    """nobody creates the victim's fallback spool first, world-writable, with a planted event and a
    FIFO in it: the victim's hook writes nothing there, its drain reads nothing from it (and does
    not hang), and `cra status` says why."""
    target = os.path.join(shared_tmp, "cra-spool-%d" % os.geteuid())
    planted = (
        spool.event_header("planted-uid", "2020-01-01T00:00:00.000Z", {}).decode() + "\n" + _payload("toolu_planted")
    )
    attack = _as_nobody(
        f"mkdir '{target}' && chmod 777 '{target}' && printf '%s' '{planted}' > '{target}/1-aa.event'"
        f" && mkfifo '{target}/2-bb.event'"
    )
    assert attack.returncode == 0, attack.stderr
    before = sorted(os.listdir(target))

    proc = run_hook(_payload("toolu_victim"), env={"CRA_HOME": _unusable_home(tmp_path)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert sorted(os.listdir(target)) == before  # nothing written into the attacker's directory

    rc, out, err = _cra("status", "--json")
    assert rc == 0, err
    status = json.loads(out)
    assert status["events"] == 0  # the planted event was not ingested
    assert "belongs to another user" in status["spool_refused"]
    assert sorted(os.listdir(target)) == before  # nor anything taken from it
    rc, out, _ = _cra("status")
    assert f"Refused spool: {target} belongs to another user" in out


def test_another_user_cannot_read_plant_or_delete_in_the_victims_spool(shared_tmp, tmp_path, cra_home):
    proc = run_hook(_payload("toolu_private"), env={"CRA_HOME": _unusable_home(tmp_path)})
    assert proc.returncode == 0
    target = claude_hooks.fallback_spool_dir()
    assert target.startswith(shared_tmp)
    st = os.lstat(target)
    assert (st.st_uid, st.st_mode & 0o777) == (os.geteuid(), 0o700)
    (name,) = os.listdir(target)
    for attempt in (
        f"ls '{target}'",
        f"cat '{target}/{name}'",
        f"touch '{target}/9-planted.event'",
        f"rm -f '{target}/{name}'",
    ):
        assert _as_nobody(attempt).returncode != 0, attempt
    assert os.listdir(target) == [name]
    open_db().conn.close()  # the victim's next cra command (CRA_HOME usable again) takes the event in
    con = sqlite3.connect(str(cra_home / "cra.db"))
    assert [r[0] for r in con.execute("SELECT tool_use_id FROM events")] == ["toolu_private"]
    assert os.listdir(target) == []


def test_a_spool_others_can_write_to_is_refused_even_if_ours(tmp_path, cra_home, monkeypatch):
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared))
    target = claude_hooks.fallback_spool_dir()
    os.mkdir(target)
    os.chmod(target, 0o777)
    assert run_hook(_payload("toolu_group"), env={"CRA_HOME": _unusable_home(tmp_path)}).returncode == 0
    assert os.listdir(target) == []
    assert drain.usable_dirs(str(cra_home)) == [claude_hooks.home_spool_dir(str(cra_home))]
    assert "can be written by other users" in privacy.spool_dir_refusal(target)
    os.chmod(target, 0o700)  # made private again: used again
    assert run_hook(_payload("toolu_private_again"), env={"CRA_HOME": _unusable_home(tmp_path)}).returncode == 0
    assert len(os.listdir(target)) == 1
