"""`cra auto` without training: settings, readiness, backoff, the lock across processes, promotion
and its pointer, the Stop-hook trigger, and the readiness `cra status`/`cra stats` show.

Cycles on the tiny model are in test_auto_cycles.py."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import REPO, run_hook
from dataset_db import Session, answer, good_steps

from cra.auto import lock, store, trigger
from cra.auto.config import AutoSettings, load_settings
from cra.auto.cycle import metric_value, run_once
from cra.auto.readiness import backoff_seconds, readiness
from cra.cli import cli
from cra.dataset.qualifying import qualifying_turns
from cra.db import open_db


@pytest.fixture
def db(cra_home):
    return open_db()


def add_turns(db, n, start=0, qualifying=True):
    for i in range(start, start + n):
        final = answer(topic=f"task {i}") if qualifying else "ok"  # a 1-word answer fails the filters
        Session(db, f"s-{i}").turn(f"task {i}", good_steps(str(i)), final)


def completed_cycle(db, qualifying, started_at=None, number=1):
    return store.insert_cycle(
        db,
        number=number,
        attempt=1,
        status="completed",
        trigger="first",
        qualifying_turns=qualifying,
        new_turns=qualifying,
        with_rl=0,
        started_at=started_at or store.now_iso(),
        ended_at=store.now_iso(),
    )


# -- settings ------------------------------------------------------------------------------------------


def test_defaults_are_the_original_design():
    s = AutoSettings()
    assert (s.min_new_turns, s.min_total_turns, s.max_interval_hours, s.rl_every) == (50, 50, 24.0, 2)
    assert s.export and s.promote_tolerance == 0.0
    from cra.report import stats

    assert stats.READY_TURNS == s.min_total_turns  # one source


def test_settings_file_and_its_errors(cra_home):
    cra_home.mkdir(parents=True)
    (cra_home / "auto.toml").write_text(
        "min_new_turns = 7\nrl_every = 3\n[sft]\nmax_steps = 5\n[filters]\nmin_tool_calls = 1\n"
    )
    s = load_settings()
    assert (s.min_new_turns, s.rl_every, s.sft["max_steps"], s.turn_filters().min_tool_calls) == (7, 3, 5, 1)
    assert s.sft_settings("d", None).max_steps == 5
    # Typos and bad values fail when the file is read, not when the stage runs hours later.
    for text, needle in (
        ("min_new_turn = 3\n", "min_new_turn"),
        ("[sft]\nmax_step = 3\n", "max_step"),
        ("[sft]\nbase = 'x'\n", "each cycle sets it"),
        ("export_outtype = 'q9'\n", "export_outtype"),
        ("[filters]\nmin_words = 3\n", "min_words"),
    ):
        (cra_home / "auto.toml").write_text(text)
        result = CliRunner().invoke(cli, ["auto", "config"])
        assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output, text


def test_metric_value_reads_means_and_rates():
    report = {
        "reward": {"total": {"n": 3, "mean": 0.5, "low": 0.1, "high": 0.9}},
        "tool_name_accuracy": {"k": 1, "n": 4, "rate": 0.25, "low": 0, "high": 1},
    }
    assert metric_value(report, "reward.total") == 0.5
    assert metric_value(report, "tool_name_accuracy") == 0.25
    with pytest.raises(Exception, match="not in the eval report"):
        metric_value(report, "reward.nope")


# -- readiness -----------------------------------------------------------------------------------------


def test_qualifying_turns_use_the_dataset_filters(db):
    add_turns(db, 3)
    add_turns(db, 2, start=3, qualifying=False)
    s = AutoSettings()
    counts = qualifying_turns(db, s.turn_filters())
    assert (counts["candidates"], counts["qualifying"], counts["excluded"]["short_final_answer"]) == (5, 3, 2)
    assert qualifying_turns(db, AutoSettings(filters={"min_answer_words": 1}).turn_filters())["qualifying"] == 5


def test_first_cycle_then_new_turns_then_interval(db):
    s = AutoSettings(min_total_turns=3, min_new_turns=2, max_interval_hours=24)
    add_turns(db, 2)
    r = readiness(db, s)
    assert (r.due, r.qualifying, r.number, r.cycles_completed) == (False, 2, 1, 0)
    assert "2/3" in r.reason
    add_turns(db, 1, start=2)
    r = readiness(db, s)
    assert (r.due, r.trigger, r.with_rl) == (True, "first", False)

    now = time.time()
    completed_cycle(db, 3, started_at=store.now_iso(now))
    r = readiness(db, s, now=now)
    assert (r.due, r.new, r.number, r.with_rl) == (False, 0, 2, True)  # RL on every second cycle
    add_turns(db, 1, start=3)
    assert readiness(db, s, now=now).due is False  # 1/2 new
    # A day later one new turn is enough; without any new turn it is not.
    r = readiness(db, s, now=now + 25 * 3600)
    assert (r.due, r.trigger, r.new) == (True, "interval", 1)
    add_turns(db, 1, start=4)
    r = readiness(db, s, now=now)
    assert (r.due, r.trigger, r.new) == (True, "new_turns", 2)


def test_interval_needs_a_new_turn(db):
    s = AutoSettings(min_total_turns=1, min_new_turns=5)
    add_turns(db, 2)
    now = time.time()
    completed_cycle(db, 2, started_at=store.now_iso(now))
    assert readiness(db, s, now=now + 48 * 3600).due is False


def test_backoff_after_failures_doubles(db):
    s = AutoSettings(min_total_turns=1, backoff_minutes=10, backoff_max_hours=1)
    assert [backoff_seconds(s, n) for n in (0, 1, 2, 3, 4)] == [0, 600, 1200, 2400, 3600]
    add_turns(db, 1)
    now = time.time()
    store.insert_cycle(
        db,
        number=1,
        attempt=1,
        status="failed",
        trigger="first",
        qualifying_turns=1,
        new_turns=1,
        with_rl=0,
        failed_stage="sft",
        error="boom",
        started_at=store.now_iso(now),
        ended_at=store.now_iso(now),
    )
    r = readiness(db, s, now=now + 599)
    assert not r.due and r.failures == 1 and "stage sft" in r.reason
    r = readiness(db, s, now=now + 601)
    assert (r.due, r.trigger, r.number) == (True, "retry", 1)
    store.insert_cycle(
        db,
        number=1,
        attempt=2,
        status="crashed",
        trigger="retry",
        qualifying_turns=1,
        new_turns=1,
        with_rl=0,
        started_at=store.now_iso(now + 601),
        ended_at=store.now_iso(now + 601),
    )
    assert not readiness(db, s, now=now + 601 + 1199).due  # 20 minutes after a second failure
    assert readiness(db, s, now=now + 601 + 1201).due


def test_not_due_runs_nothing(db):
    add_turns(db, 2)
    result = run_once(db, AutoSettings(min_total_turns=3), echo=lambda *a, **k: None)
    assert result["status"] == "not_due"
    assert db.execute("SELECT count(*) FROM cycles").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


# -- the lock ------------------------------------------------------------------------------------------

HOLDER = """
import sys, time
from cra.auto.lock import CycleLock
from cra.auto import store
from cra.db import open_db
db = open_db()
lock = CycleLock(sys.argv[1]).acquire()
# a cycle that will never finish: the process is killed mid-cycle
store.insert_cycle(db, number=1, attempt=1, status="running", trigger="first", qualifying_turns=0, new_turns=0,
                   with_rl=0, stages=[{"name": "sft", "status": "running"}])
print("held", flush=True)
time.sleep(120)
"""


def test_lock_keeps_a_second_process_out_and_a_crash_frees_it(db, cra_home):
    add_turns(db, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cra_home)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.holder(cra_home)["pid"] == holder.pid
        # Another process (the CLI, as cron would run it) is turned away at once, even with --force.
        out = subprocess.run(
            [sys.executable, "-m", "cra", "auto", "once", "--force"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and f"already running (pid {holder.pid}" in out.stdout
        assert run_once(db, AutoSettings(min_total_turns=1), force=True)["status"] == "locked"
        assert db.execute("SELECT count(*) FROM cycles").fetchone()[0] == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock.holder(cra_home) is None
    # The kernel released the lock with the process; the cycle it left running is marked crashed.
    result = run_once(db, AutoSettings(min_total_turns=5), echo=lambda *a, **k: None)
    assert result["status"] == "not_due"
    (row,) = store.list_cycles(db)
    assert row["status"] == "crashed" and f"pid {holder.pid}" in row["error"] and row["failed_stage"] == "sft"
    assert readiness(db, AutoSettings(min_total_turns=1)).failures == 1  # a crash backs off like a failure


def test_lock_released_cleanly_leaves_no_stale_holder(cra_home):
    with lock.CycleLock(cra_home) as first:
        assert first.stale is None
        with pytest.raises(lock.CycleRunning, match=f"pid {os.getpid()}"):
            lock.CycleLock(cra_home).acquire()
    with lock.CycleLock(cra_home) as again:
        assert again.stale is None


# -- promotion -----------------------------------------------------------------------------------------


def fake_trained_run(db, tmp_path, name):
    """A completed run with an adapter directory on disk (what promotion checks), without training."""
    from cra.train import runs

    run = runs.start_run(db, kind="sft", base_model="base", dataset=None, config={}, runs_dir=tmp_path / "runs")
    adapter = tmp_path / name / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    gguf = tmp_path / name / "merged-f16.gguf"
    gguf.write_bytes(b"GGUF")
    runs.record_artifact(db, run["id"], "adapter", adapter)
    runs.finish_run(db, run["id"], "completed", metrics={"adapter": str(adapter)})
    return run["id"], str(gguf)


def test_promotion_is_one_flag_and_a_pointer(db, tmp_path, cra_home):
    a, a_gguf = fake_trained_run(db, tmp_path, "a")
    b, b_gguf = fake_trained_run(db, tmp_path, "b")
    store.promote(db, a, gguf=a_gguf, reason="first")
    store.promote(db, b, gguf=b_gguf, reason="second")
    assert db.execute("SELECT run_id FROM promotions WHERE current = 1").fetchall() == [(b,)]
    pointer = json.loads((cra_home / "models" / "promoted.json").read_text())
    assert pointer["run_id"] == b and pointer["gguf"] == b_gguf
    assert os.readlink(cra_home / "models" / "promoted.gguf") == b_gguf

    # A promotion that fails inside its transaction changes nothing (here: a column that does not exist).
    with pytest.raises(sqlite3.OperationalError, match="no_such_column"):
        store.promote(db, a, cycle_id=1, cycle_fields={"no_such_column": 1})
    assert db.execute("SELECT run_id FROM promotions WHERE current = 1").fetchall() == [(b,)]
    # A crash after the commit but before the pointer's rename: cra rewrites it from the database.
    (cra_home / "models" / "promoted.json").unlink()
    result = CliRunner().invoke(cli, ["auto", "status", "--json"], catch_exceptions=False)
    assert json.loads(result.output)["promoted"]["run_id"] == b
    assert json.loads((cra_home / "models" / "promoted.json").read_text())["run_id"] == b


def test_promote_by_hand_refuses_a_run_without_adapter(db, tmp_path):
    from cra.train import runs

    run = runs.start_run(db, kind="sft", base_model="base", dataset=None, config={}, runs_dir=tmp_path)
    result = CliRunner().invoke(cli, ["auto", "promote", str(run["id"])])
    assert result.exit_code == 1 and "has no adapter" in result.output
    good, _ = fake_trained_run(db, tmp_path, "good")
    result = CliRunner().invoke(cli, ["auto", "promote", str(good)], catch_exceptions=False)
    assert result.exit_code == 0 and store.promoted(db)["run_id"] == good


# -- the Stop-hook trigger -----------------------------------------------------------------------------


def stop(n=0):
    """A Stop event through the real hook, drained in the hook's own process (CRA_HOOK_SYNC) so that
    whatever it does with the trigger file has happened when this returns."""
    payload = json.dumps(
        {
            "hook_event_name": "Stop",
            "session_id": "live",
            "cwd": "/tmp",
            "transcript_path": f"/nonexistent/live-{n}.jsonl",
        }
    )
    return run_hook(payload, env={"CRA_HOOK_SYNC": "1"})


def test_hook_trigger_is_off_by_default_and_starts_a_detached_cycle(db, cra_home, tmp_path):
    add_turns(db, 1)
    stop()
    assert not trigger.trigger_path().exists()

    result = CliRunner().invoke(cli, ["auto", "hook", "on"], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(trigger.trigger_path().read_text())
    assert data["argv"] == [sys.executable, "-m", "cra", "auto", "once", "--quiet"]
    assert data["stops_needed"] == 49  # 1 of 50 qualifying turns: at least 49 more turns must end
    # What the hook starts is the file's argv: here a marker instead of a cycle, to see it run detached.
    marker = tmp_path / "started"
    data.update(
        argv=[sys.executable, "-c", f"import os; open({str(marker)!r}, 'w').write(str(os.getsid(0)))"], stops_needed=2
    )
    trigger.trigger_path().write_text(json.dumps(data))
    stop(n=1)
    time.sleep(0.5)
    assert not marker.exists()  # one Stop of the two needed
    started = time.time()
    out = stop(n=2)
    assert out.returncode == 0 and out.stdout == b""
    for _ in range(100):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    assert marker.read_text() and int(marker.read_text()) != os.getsid(0)  # its own session
    claimed = json.loads(trigger.trigger_path().read_text())
    assert claimed["not_before"] >= started + trigger.SPAWN_EVERY_S - 5  # no second start right after
    marker.unlink()
    stop(n=3)
    time.sleep(0.5)
    assert not marker.exists()

    assert CliRunner().invoke(cli, ["auto", "hook", "off"]).exit_code == 0
    assert not trigger.trigger_path().exists()


def test_hook_trigger_file_tracks_backoff_and_due(db):
    s = AutoSettings(min_total_turns=2, min_new_turns=3)
    add_turns(db, 2)
    data = trigger.contents(db, readiness(db, s), s)
    assert data["stops_needed"] == 0 and data["not_before"] == 0  # due now: the next Stop starts it
    now = time.time()
    completed_cycle(db, 2, started_at=store.now_iso(now))
    data = trigger.contents(db, readiness(db, s, now=now), s, now=now)
    assert data["stops_needed"] == 3 and data["due_stops_needed"] == 1
    assert abs(data["due_at"] - (now + 24 * 3600)) < 2


# -- what `cra status` and `cra stats` show ------------------------------------------------------------


def test_status_and_stats_show_the_configured_readiness(db, cra_home):
    add_turns(db, 2)
    add_turns(db, 1, start=2, qualifying=False)
    (cra_home / "auto.toml").write_text("min_total_turns = 4\n")
    result = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
    assert "Turns:         3 captured, 2 qualify for training" in result.output
    assert "First cycle:   2/4 qualifying turns" in result.output
    stats = json.loads(CliRunner().invoke(cli, ["stats", "--json"], catch_exceptions=False).output)
    assert (stats["readiness"]["qualifying"], stats["readiness"]["threshold"]) == (2, 4)
    completed_cycle(db, 2)
    add_turns(db, 1, start=3)
    data = json.loads(CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False).output)
    assert data["training"]["next_cycle"] == [1, 50] and data["training"]["cycles_completed"] == 1
    text = CliRunner().invoke(cli, ["auto", "status"], catch_exceptions=False).output
    assert "Qualifying turns: 3 of 4 recorded" in text and "Next cycle:       2 (with RL): 1/50 new qualifying" in text
