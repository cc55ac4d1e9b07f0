"""The schema: created from empty, and upgraded from every earlier version to the same result.

Generic over cra.db.migrations: a migration added later is covered without touching this file.
"""

import json
import os
import stat

import pytest
import sqlite_utils

from claude_hooks import capture
from cra.db import open_db
from cra.db.migrations import migrations

NAMES = [m.name for m in migrations.pending(sqlite_utils.Database(memory=True))]

# The capture tables' columns and types (later migrations may add columns, never drop these).
CAPTURE_COLUMNS = {
    "events": {
        "id": int,
        "event_uid": str,
        "received_at": str,
        "hook_event_name": str,
        "session_id": str,
        "agent_id": str,
        "tool_use_id": str,
        "prompt_id": str,
        "payload": str,
        "payload_bytes": bytes,
        "parse_error": str,
        "derive_error": str,
        "env": str,
        "via": str,
    },
    "sessions": {
        "id": str,
        "cwd": str,
        "project_dir": str,
        "model": str,
        "start_source": str,
        "started_at": str,
        "ended_at": str,
        "end_reason": str,
        "transcript_path": str,
        "client_version": str,
        "permission_mode": str,
        "entrypoint": str,
        "first_event_at": str,
        "last_event_at": str,
    },
    "tool_calls": {
        "tool_use_id": str,
        "session_id": str,
        "agent_id": str,
        "agent_type": str,
        "prompt_id": str,
        "tool_name": str,
        "tool_input": str,
        "tool_response": str,
        "response_text": str,
        "status": str,
        "error": str,
        "is_interrupt": int,
        "duration_ms": int,
        "pre_at": str,
        "post_at": str,
        "seq": int,
        "batch_id": int,
        "permission_requested": int,
        "permission_mode": str,
        "cwd": str,
        "synthetic_id": int,
    },
}


def schema(db):
    """Everything sqlite_master holds except the migration log's timestamps, order-independent."""
    return sorted(
        (row[0], row[1], row[2], " ".join((row[3] or "").split()))
        for row in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    )


@pytest.fixture
def fresh(tmp_path):
    return open_db(str(tmp_path / "fresh.db"), drain=False)


def test_migration_names_are_unique_and_numbered():
    assert NAMES and NAMES[0] == "m001_capture"
    assert len(set(NAMES)) == len(NAMES)
    numbers = [name.split("_")[0] for name in NAMES]
    assert all(n[0] == "m" and n[1:].isdigit() for n in numbers)
    assert len(set(numbers)) == len(numbers)


# Released migrations in the order databases applied them (m005 was merged before m004). New ones
# are appended after these, in whatever order parallel work lands; none may be inserted in between.
RELEASED = [
    "m001_capture",
    "m002_transcripts",
    "m003_signals",
    "m005_runs",
    "m004_datasets",
    "m006_evals",
    "m007_cycles",
    "m008_shared_request_shapes",
    "m013_foreign_keys",
    "m014_call_outcome",
]


def test_released_migrations_keep_their_order():
    assert NAMES[: len(RELEASED)] == RELEASED


def test_the_hook_names_the_migrations_it_needs():
    """The hook checks names, not a count: every migration it requires exists, and what it needs
    (tool_calls.source, from m002) is there once they are applied."""
    assert set(capture.REQUIRED_MIGRATIONS) <= set(NAMES)
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db, stop_before=capture.REQUIRED_MIGRATIONS[-1])
    assert capture.missing_migrations(db.conn) == [capture.REQUIRED_MIGRATIONS[-1]]
    migrations.apply(db)
    assert capture.missing_migrations(db.conn) == [] and "source" in db["tool_calls"].columns_dict


def test_the_hook_check_does_not_count_positions(fresh):
    """A database with as many migrations as the hook's list is long, but not the required one (as
    when branches append migrations in different orders), is refused; one without a migration log
    (never opened by cra) too."""
    required = capture.REQUIRED_MIGRATIONS[0]
    fresh.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [required])
    assert len(migrations.applied(fresh)) >= NAMES.index(required) + 1  # a count would have passed
    assert capture.missing_migrations(fresh.conn) == [required]
    assert capture.missing_migrations(sqlite_utils.Database(memory=True).conn) == list(capture.REQUIRED_MIGRATIONS)


def test_fresh_database(fresh, tmp_path):
    for table, columns in CAPTURE_COLUMNS.items():
        actual = fresh[table].columns_dict
        assert {k: actual.get(k) for k in columns} == columns, table
    assert fresh["events"].pks == ["id"]
    assert fresh["tool_calls"].pks == ["tool_use_id"]
    assert fresh["sessions"].pks == ["id"]
    assert [m.name for m in migrations.applied(fresh)] == NAMES
    assert migrations.pending(fresh) == []
    assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(os.stat(tmp_path / "fresh.db").st_mode) == 0o600


def test_reopening_is_a_no_op(fresh, tmp_path):
    before = schema(fresh)
    fresh.conn.close()
    again = open_db(str(tmp_path / "fresh.db"), drain=False)
    assert schema(again) == before
    assert [m.name for m in migrations.applied(again)] == NAMES


@pytest.mark.parametrize("stop_before", NAMES)
def test_upgrade_from_every_earlier_version(stop_before, fresh, tmp_path):
    path = str(tmp_path / "old.db")
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before=stop_before)
    done = NAMES[: NAMES.index(stop_before)]
    assert [m.name for m in migrations.applied(old)] == done
    # Data captured at that version survives the upgrade.
    had_events = old["events"].exists()
    if had_events:
        event = capture.Event(
            json.dumps(
                {
                    "session_id": "s",
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Bash",
                    "tool_use_id": "t1",
                    "tool_input": {"command": "ls"},
                    "cwd": "/p",
                }
            ).encode(),
            {},
        )
        capture.record(old.conn, event)
    old.conn.close()

    upgraded = open_db(path, drain=False)  # what users run: any cra command upgrades
    assert [m.name for m in migrations.applied(upgraded)] == NAMES
    assert schema(upgraded) == schema(fresh)
    if had_events:
        # (Its derived rows may be missing: today's hook derives against today's schema.)
        assert upgraded.execute("SELECT payload FROM events").fetchall() == [(event.text,)]
    # And the upgraded database takes new events as a fresh one would.
    capture.record(upgraded.conn, capture.Event(b'{"session_id": "s2", "hook_event_name": "Stop"}', {}))
    assert upgraded.execute("SELECT count(*) FROM sessions WHERE id = 's2'").fetchone()[0] == 1
