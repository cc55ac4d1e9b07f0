"""Opening the database when it can't be opened as usual: every failure is one line that says what
to do, never a traceback, and nothing is written that should not be (a newer cra's database, a
read-only one, a folder the user did not ask for)."""

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import REPO, run_hook

import claude_hooks
from claude_hooks import drain, spool
from cra.cli import cli
from cra.db import open_db


def cra(*args):
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result, *phrases):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: "), result.output
    for phrase in phrases:
        assert phrase in lines[-1], (phrase, lines[-1])
    return lines[-1]


def spool_one(home):
    event = drain.Event(b'{"session_id": "s", "hook_event_name": "Stop"}', {})
    spool.spool_event(str(home), event, reason="test")


@contextlib.contextmanager
def read_only_file(path):
    """chmod for users; root writes through modes, so for root the immutable attribute (chattr +i)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        try:
            yield
        finally:
            os.chmod(path, 0o600)
        return
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working chattr +i: cannot make a read-only file")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


@pytest.mark.parametrize("command", [["status"], ["sessions"], ["ingest"]])
def test_a_read_only_database_is_one_line_and_no_shm_is_created(cra_home, command):
    path = cra_home / "cra.db"
    open_db().conn.close()
    assert sorted(os.listdir(cra_home)) == ["cra.db", "drain.lock"]  # (-wal and -shm go on close)
    spool_one(cra_home)
    with read_only_file(path):
        line = assert_one_line_error(cra(*command), f"the cra database at {path} is read-only", "chmod u+w")
        assert "corrupt" not in line
        assert not (cra_home / "cra.db-shm").exists() and not (cra_home / "cra.db-wal").exists()
    assert cra("status").exit_code == 0  # writable again: works, and takes the spooled event in


def test_an_unwritable_cra_home_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CRA_HOME", str(blocker / "cra"))
    assert_one_line_error(cra("status"), f"cannot create {blocker / 'cra'} for the cra database", "Set CRA_HOME")


def test_a_lock_held_past_the_wait(cra_home, monkeypatch):
    """`cra ingest` says the database is busy; `cra status` still reports, with the backlog."""
    monkeypatch.setattr("cra.db.LOCK_TIMEOUT_S", 0.3)
    open_db().conn.close()
    spool_one(cra_home)
    locker = sqlite3.connect(str(cra_home / "cra.db"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        assert_one_line_error(cra("ingest"), "is busy", "held its write lock for over 0 s", "Run the command again")
        r = cra("status", "--json")
        assert r.exit_code == 0, r.output
        status = json.loads(r.output)
        assert status["spool_backlog"] == 1 and "is busy" in status["drain_error"]
        assert "Not ingested:  the cra database" in cra("status").output
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert "Ingested 1 spooled event; 0 left." in cra("ingest").output


def test_a_lock_held_while_the_database_needs_migrating(cra_home, monkeypatch):
    from sqlite_utils import Database

    from cra.db.migrations import migrations

    monkeypatch.setattr("cra.db.LOCK_TIMEOUT_S", 0.3)
    os.makedirs(cra_home)
    old = Database(str(cra_home / "cra.db"))
    old.execute("PRAGMA journal_mode=WAL")
    migrations.apply(old, stop_before="m009_capture")
    old.conn.close()
    locker = sqlite3.connect(str(cra_home / "cra.db"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        assert_one_line_error(cra("sessions"), "is busy")
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_a_database_from_a_newer_cra_is_refused_and_left_unchanged(cra_home):
    path = cra_home / "cra.db"
    db = open_db()
    db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('cra', 'm999_future', 'x')")
    db.execute("PRAGMA user_version = 999")
    db.conn.commit()
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    before = path.read_bytes()
    for command in (["status"], ["sessions"], ["ingest"]):
        assert_one_line_error(cra(*command), "written by a newer cra (migration m999_future", "upgrade cra")
    assert path.read_bytes() == before
    assert sqlite3.connect(str(path)).execute("PRAGMA user_version").fetchone()[0] == 999


def test_a_database_path_in_a_missing_folder_is_not_created(cra_home, tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    for command in (["status"], ["sessions"], ["ingest"], ["import", str(tmp_path)]):
        result = cra(*command, "-d", str(missing / "x.db"))
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"there is no folder {missing}: create it first" in result.output
    assert not (tmp_path / "no").exists()
    assert cra("status", "-d", str(tmp_path / "new.db")).exit_code == 0  # a new file in a folder that exists


def test_status_points_to_the_hook_error_log_only_when_there_is_one(cra_home):
    open_db().conn.close()
    out = cra("status").output
    assert "Hook errors:   0\n" in out and "see" not in out.split("Hook errors:")[1].splitlines()[0]
    drain.log_error(str(cra_home), None, RuntimeError("disk on fire"))
    out = cra("status").output
    assert f"Hook errors:   1 (see {cra_home / claude_hooks.ERROR_LOG})" in out


@pytest.fixture
def tiny_disk(tmp_path):
    """A command line prefix that runs a command with a 512 KB tmpfs mounted at tmp_path/disk, in a
    mount namespace of its own (root, or a user namespace allowing it), else skip."""
    mount = tmp_path / "disk"
    mount.mkdir()
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=512k tmpfs {mount}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {probe.stderr.decode().strip()}")
    return mount


def test_a_full_disk_is_said_as_such(tiny_disk, cra_home):
    """The database (1.1 MB once migrated) can't be created on a 512 KB disk: the message says the
    disk is full, not that the file may be corrupt, and the hook's event waits in the spool."""
    home = tiny_disk / "home"
    script = (
        f"mount -t tmpfs -o size=512k tmpfs {tiny_disk} && mkdir {home} && "
        f"{sys.executable} -S {REPO}/claude_hooks/hook.py < /dev/null && "
        f"{sys.executable} -m cra status; echo rc=$?; ls {home}/spool | wc -l"
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "CRA_HOME": str(home)},
        timeout=120,
    )
    out = proc.stdout.strip().splitlines()
    assert out[-2:] == ["rc=1", "1"], (out, proc.stderr)  # failed; the event is still spooled
    error = proc.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: the disk holding the cra database"), error
    assert "is full" in error[0] and "free some space" in error[0] and "corrupt" not in error[0]


def test_run_hook_still_spools_when_the_database_is_read_only(cra_home):
    """The hook's side of a read-only database: events wait in the spool, nothing printed."""
    open_db().conn.close()
    with read_only_file(cra_home / "cra.db"):
        proc = run_hook(json.dumps({"session_id": "s", "hook_event_name": "Stop"}))
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
        assert len(os.listdir(cra_home / "spool")) == 1
    assert cra("ingest").output.startswith("Ingested 1 spooled event")
