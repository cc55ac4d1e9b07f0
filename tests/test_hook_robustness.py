"""The hook never breaks Claude Code: whatever arrives on stdin and whatever state the disk is in, it
exits 0, prints nothing, and the event lands in the database or the spool (then in the database)."""

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess

import pytest
from click.testing import CliRunner
from conftest import run_hook, wait_for_drainer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_hooks import capture
from cra.cli import cli
from cra.db import open_db

SESSION = "5e55e55e-0000-4000-8000-000000000001"


def payload(event="PreToolUse", **fields):
    base = {
        "session_id": SESSION,
        "transcript_path": "/tmp/project/.claude/x.jsonl",
        "cwd": "/tmp/project",
        "hook_event_name": event,
    }
    if event == "PreToolUse":
        base.update(tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="toolu_01")
    base.update(fields)
    return json.dumps(base)


def init_db():
    db = open_db()
    db.conn.close()
    return capture.db_path(os.environ)


def events(path=None):
    con = sqlite3.connect(path or capture.db_path(os.environ))
    try:
        return con.execute(
            "SELECT hook_event_name, payload, payload_bytes, parse_error, via FROM events ORDER BY id"
        ).fetchall()
    finally:
        con.close()


def spooled(home):
    found = []
    for directory in capture.spool_dirs(str(home)):
        if os.path.isdir(directory):
            found += [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".event")]
    return found


def assert_silent_success(proc):
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert proc.stderr == b""


def cra(*args):
    result = CliRunner().invoke(cli, list(args))
    return result


# ---------------------------------------------------------------------------------------------
# Whatever arrives on stdin


BAD_INPUTS = {
    "truncated": payload()[:37].encode(),
    "malformed": b'{"session_id": "x", "hook_event_name": PreToolUse}',
    "invalid_utf8": b'{"session_id": "x", "hook_event_name": "Stop", "msg": "\xff\xfe\xc3("}',
    "array": b'["PreToolUse", 1, 2]',
    "number": b"42",
    "null": b"null",
    "empty": b"",
    "whitespace": b"  \n\t ",
    "nul_bytes": b"\x00\x00{}\x00",
    "lone_surrogate": b'{"session_id": "s", "hook_event_name": "Stop", "x": "\\ud800"}',
    "unknown_event": payload("SomeEventFromTheFuture", novel_field={"a": [1, 2]}).encode(),
    "missing_fields": b'{"hook_event_name": "PostToolUse"}',
    "wrong_types": json.dumps(
        {"session_id": 7, "hook_event_name": ["PreToolUse"], "tool_input": "not an object", "cwd": None}
    ).encode(),
    "deep_nesting": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_kept_raw_and_hook_stays_silent(name):
    init_db()
    raw = BAD_INPUTS[name]
    assert_silent_success(run_hook(raw))
    rows = events()
    assert len(rows) == 1
    hook_event_name, text, raw_bytes, parse_error, via = rows[0]
    assert via == "hook"
    if name == "invalid_utf8":
        # The exact bytes are kept; the text column gets a readable copy.
        assert raw_bytes == raw
        assert parse_error.startswith("invalid UTF-8")
    elif name == "lone_surrogate":
        assert raw_bytes is None and text == raw.decode()
    else:
        assert raw_bytes is None
        assert text == raw.decode("utf-8")
    parses_to_object = name in ("unknown_event", "missing_fields", "wrong_types", "lone_surrogate")
    assert (parse_error is None) == parses_to_object, parse_error
    if name == "unknown_event":
        assert hook_event_name == "SomeEventFromTheFuture"


def test_20mb_payload_lands_whole():
    init_db()
    big = "x" * (20 * 1024 * 1024)
    raw = payload("PostToolUse", tool_name="Read", tool_use_id="toolu_big", tool_response={"content": big})
    proc = run_hook(raw, timeout=120)
    assert_silent_success(proc)
    rows = events()
    assert len(rows) == 1 and rows[0][1] == raw and rows[0][3] is None
    con = sqlite3.connect(capture.db_path(os.environ))
    (response,) = con.execute("SELECT tool_response FROM tool_calls WHERE tool_use_id = 'toolu_big'").fetchone()
    assert json.loads(response) == {"content": big}


def test_every_registered_event_is_recorded():
    from claude_hooks import HOOK_EVENTS

    init_db()
    for name in HOOK_EVENTS:
        assert_silent_success(run_hook(payload(name)))
    assert [r[0] for r in events()] == list(HOOK_EVENTS)


# ---------------------------------------------------------------------------------------------
# Whatever state the disk is in


def test_missing_cra_home_is_created_and_event_spooled(cra_home):
    assert not cra_home.exists()
    assert_silent_success(run_hook(payload()))
    assert cra_home.is_dir()
    assert len(spooled(cra_home)) == 1
    # The next cra command creates the database and takes the event in.
    result = cra("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] == 1
    assert [r[4] for r in events()] == ["cra"]
    assert spooled(cra_home) == []


def test_uncreatable_cra_home_falls_back_to_tmp_spool(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = blocker / "cra"  # can't be created, even by root
    monkeypatch.setenv("CRA_HOME", str(home))
    raw = payload()
    assert_silent_success(run_hook(raw, env={"CRA_HOME": str(home)}))
    fallback = capture.fallback_spool_dir()
    assert fallback.startswith(str(tmp_path))  # conftest points TMPDIR at tmp_path
    files = [n for n in os.listdir(fallback) if n.endswith(".event")]
    assert len(files) == 1
    event = capture.read_spooled(os.path.join(fallback, files[0]))
    assert event.text == raw and event.name == "PreToolUse"


@contextlib.contextmanager
def read_only_dir(path):
    """chmod for users; root writes through modes, so for root the immutable attribute (chattr +i)."""
    if os.geteuid() != 0:
        os.chmod(path, stat.S_IRUSR | stat.S_IXUSR)
        try:
            yield
        finally:
            os.chmod(path, stat.S_IRWXU)
        return
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working chattr +i: cannot make a read-only directory")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_read_only_cra_home_spools_to_fallback(cra_home):
    init_db()
    raw = payload()
    with read_only_dir(cra_home):
        assert_silent_success(run_hook(raw))
        assert not (cra_home / capture.SPOOL_DIR).exists()
    fallback = capture.fallback_spool_dir()
    assert len([n for n in os.listdir(fallback) if n.endswith(".event")]) == 1
    result = cra("ingest")
    assert result.exit_code == 0, result.output
    assert [(r[1], r[4]) for r in events()] == [(raw, "cra")]
    assert os.listdir(fallback) == []


def test_locked_database_never_blocks_the_hook_and_loses_nothing(cra_home):
    """The hook only spools; its drainer waits for the lock in the background, then ingests."""
    path = init_db()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(3):
            assert_silent_success(run_hook(payload(tool_use_id=f"toolu_lock{i}"), wait=False))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_for_drainer()
    rows = events()
    assert len(rows) == 3  # each exactly once (by the hooks' drainer, or the waiter if it won the lock)
    con = sqlite3.connect(path)
    ids = [r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls ORDER BY seq")]
    assert ids == ["toolu_lock0", "toolu_lock1", "toolu_lock2"]
    assert spooled(cra_home) == []
    assert not (cra_home / capture.ERROR_LOG).exists()


def test_database_locked_past_the_timeout_keeps_events_spooled(cra_home):
    path = init_db()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(3):
            assert_silent_success(run_hook(payload(tool_use_id=f"toolu_lock{i}"), env={"CRA_DRAIN_TIMEOUT": "0.2"}))
        assert len(spooled(cra_home)) == 3
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert events() == []
    result = cra("ingest")
    assert result.exit_code == 0, result.output
    assert "Ingested 3 spooled events; 0 left." in result.output
    assert cra("ingest").output.startswith("Ingested 0")
    rows = events()
    assert len(rows) == 3 and {r[4] for r in rows} == {"cra"}
    con = sqlite3.connect(path)
    ids = [r[0] for r in con.execute("SELECT tool_use_id FROM tool_calls ORDER BY seq")]
    assert ids == ["toolu_lock0", "toolu_lock1", "toolu_lock2"]
    # Each drainer that gave up logged why (what `cra status` counts).
    assert len((cra_home / capture.ERROR_LOG).read_text().splitlines()) == 3


def test_next_hook_drains_what_an_earlier_one_left(cra_home):
    path = init_db()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    assert_silent_success(run_hook(payload(tool_use_id="toolu_a"), env={"CRA_DRAIN_TIMEOUT": "0.2"}))
    locker.execute("ROLLBACK")
    locker.close()
    assert len(spooled(cra_home)) == 1
    assert_silent_success(run_hook(payload(tool_use_id="toolu_b")))
    assert spooled(cra_home) == []
    assert [r[4] for r in events()] == ["hook", "hook"]


def test_corrupt_database_spools_and_status_explains(cra_home):
    path = init_db()
    with open(path, "wb") as f:
        f.write(b"this is not an SQLite database at all\n" * 200)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    assert_silent_success(run_hook(payload()))
    assert len(spooled(cra_home)) == 1
    result = cra("status")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "cannot open the cra database" in result.output and "move it aside" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # Moving it aside, as the message says, recovers every spooled event.
    os.rename(path, path + ".corrupt")
    result = cra("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] == 1


# ---------------------------------------------------------------------------------------------
# Privacy


def test_capture_off_records_nothing(cra_home):
    init_db()
    assert cra("off").exit_code == 0
    assert_silent_success(run_hook(payload()))
    assert events() == [] and spooled(cra_home) == []
    assert json.loads(cra("status", "--json").output)["capture_on"] is False
    assert cra("on").exit_code == 0
    assert_silent_success(run_hook(payload()))
    assert len(events()) == 1


def test_ignored_project_records_nothing(cra_home, tmp_path):
    init_db()
    project = tmp_path / "secret-project"
    project.mkdir()
    assert cra("ignore", "add", str(project)).exit_code == 0
    assert cra("ignore", "list").output.split() == [str(project)]
    assert_silent_success(run_hook(payload(cwd=str(project))))
    assert_silent_success(run_hook(payload(cwd=str(project / "sub" / "dir"))))
    # Bash `cd` moves cwd; the project dir in the environment still names the project.
    assert_silent_success(run_hook(payload(cwd="/elsewhere"), env={"CLAUDE_PROJECT_DIR": str(project)}))
    assert events() == [] and spooled(cra_home) == []
    # A sibling that merely shares the prefix is recorded.
    assert_silent_success(run_hook(payload(cwd=str(project) + "-public")))
    assert len(events()) == 1
    assert cra("ignore", "remove", str(project)).exit_code == 0
    assert_silent_success(run_hook(payload(cwd=str(project))))
    assert len(events()) == 2


def test_junk_in_the_ignore_file_costs_no_event(cra_home, tmp_path):
    init_db()
    project = tmp_path / "secret"
    (cra_home / capture.IGNORE_FILE).write_bytes(b"/caf\xe9-latin1\n\n" + str(project).encode() + b"\n")
    assert_silent_success(run_hook(payload(cwd=str(project))))
    assert_silent_success(run_hook(payload(cwd="/somewhere/else")))
    assert len(events()) == 1


# ---------------------------------------------------------------------------------------------
# In-process fuzzing: mutated real-shaped payloads through Event + record


BASE_PAYLOADS = [
    json.loads(payload("SessionStart", source="startup", model="claude-sonnet")),
    json.loads(payload("UserPromptSubmit", prompt="fix the bug", prompt_id="p1")),
    json.loads(payload("PreToolUse", permission_mode="default", prompt_id="p1")),
    json.loads(
        payload(
            "PostToolUse",
            tool_name="Read",
            tool_use_id="toolu_02",
            tool_input={"file_path": "/tmp/project/a.py"},
            tool_response={"type": "text", "file": {"filePath": "/tmp/project/a.py", "content": "x = 1\n"}},
            duration_ms=12,
        )
    ),
    json.loads(
        payload(
            "PostToolUseFailure",
            tool_name="Bash",
            tool_use_id="toolu_03",
            tool_input={"command": "false"},
            error="Exit code 1",
            is_interrupt=False,
            duration_ms=5,
        )
    ),
    json.loads(payload("PermissionRequest", tool_name="Write", tool_input={"file_path": "/x", "content": ""})),
    json.loads(payload("PermissionDenied", tool_name="Write", tool_use_id="toolu_04", tool_input={}, reason="denied")),
    json.loads(
        payload(
            "PostToolBatch",
            tool_calls=[
                {"tool_name": "Write", "tool_use_id": "toolu_04", "tool_input": {}, "tool_response": "has been denied"},
                {
                    "tool_name": "Read",
                    "tool_use_id": "toolu_05",
                    "tool_input": {"x": 1},
                    "tool_response": "InputValidationError",
                },
                {"tool_name": "Grep", "tool_use_id": "toolu_06", "tool_input": {}, "tool_response": {"numFiles": 0}},
            ],
        )
    ),
    json.loads(payload("SubagentStart", agent_id="a1", agent_type="Explore")),
    json.loads(payload("PreToolUse", agent_id="a1", agent_type="Explore", tool_use_id="toolu_07")),
    json.loads(payload("SubagentStop", agent_id="a1", agent_transcript_path="/x/agent-a1.jsonl")),
    json.loads(payload("Stop", stop_hook_active=False, last_assistant_message="done")),
    json.loads(payload("PreCompact", trigger="manual", custom_instructions="")),
    json.loads(payload("SessionEnd", reason="other")),
    # Older clients: no tool_use_id.
    {k: v for k, v in json.loads(payload("PreToolUse")).items() if k != "tool_use_id"},
    {k: v for k, v in json.loads(payload("PostToolUse", tool_response={"stdout": ""})).items() if k != "tool_use_id"},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_payloads(draw):
    """A real-shaped payload with fields dropped, retyped or added, then maybe truncated or corrupted."""
    doc = dict(draw(st.sampled_from(BASE_PAYLOADS)))
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del doc[key]
        else:
            doc[key] = draw(json_values)
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["tool_use_id", "agent_id", "tool_calls", "session_id", "x"]))] = draw(json_values)
    if isinstance(doc.get("tool_calls"), list) and doc["tool_calls"] and draw(st.booleans()):
        # PostToolBatch items: the same mutations one level down.
        items = [dict(i) if isinstance(i, dict) else i for i in doc["tool_calls"]]
        item = items[draw(st.integers(0, len(items) - 1))]
        if isinstance(item, dict):
            key = draw(st.sampled_from(["tool_use_id", "tool_name", "tool_input", "tool_response", "x"]))
            if draw(st.booleans()):
                item.pop(key, None)
            else:
                item[key] = draw(json_values)
        doc["tool_calls"] = items
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8")
    how = draw(st.sampled_from(["as is", "as is", "truncate", "garble"]))
    if how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif how == "garble":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


# CRA_FUZZ_EXAMPLES=5000 for a longer hunt.
@settings(
    max_examples=int(os.environ.get("CRA_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raws=st.lists(mutated_payloads(), min_size=1, max_size=6))
@pytest.mark.slow
def test_fuzzed_payloads_always_land(raws, tmp_path):
    con = _fuzz_db(tmp_path)
    before = con.execute("SELECT count(*) FROM events").fetchone()[0]
    for raw in raws:
        event = capture.Event(raw, {"CLAUDE_PROJECT_DIR": "/tmp/project"})
        capture.record(con, event)  # must not raise
        row = con.execute(
            "SELECT payload, payload_bytes, parse_error, derive_error FROM events WHERE event_uid = ?",
            (event.uid,),
        ).fetchone()
        assert row is not None
        text, raw_bytes, parse_error, derive_error = row
        try:
            exact = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert raw_bytes == raw
            # Invalid UTF-8 is noted even when the replaced text still parses (and derives).
            assert parse_error is not None
        else:
            assert raw_bytes is None and text == capture._safe_text(exact)
            assert (parse_error is None) == (event.payload is not None)
        # Odd shapes cost derived rows at worst, and should not even do that.
        assert derive_error is None, derive_error
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == before + len(raws)
    statuses = {r[0] for r in con.execute("SELECT DISTINCT status FROM tool_calls")}
    assert statuses <= {"pending", "success", "failure", "denied", "blocked", "invalid", "interrupted"}
    assert not con.in_transaction


_FUZZ_DBS = {}


def _fuzz_db(tmp_path):
    # One database per test run (hypothesis calls the test many times with the same tmp_path).
    key = str(tmp_path)
    if key not in _FUZZ_DBS:
        db = open_db(str(tmp_path / "fuzz.db"), drain=False)
        _FUZZ_DBS[key] = db.conn
    return _FUZZ_DBS[key]


def test_spooled_event_replays_identically(tmp_path):
    raw = b'{"session_id": "s", "hook_event_name": "Stop", "bad": "\xff"}'
    event = capture.Event(raw, {"CLAUDE_PROJECT_DIR": "/p", "CLAUDE_CODE_MESSAGING_TOKEN": "secret"})
    directory = capture.spool(str(tmp_path / "home"), event, reason="test")
    (name,) = [n for n in os.listdir(directory) if n.endswith(".event")]
    again = capture.read_spooled(os.path.join(directory, name))
    assert (again.uid, again.received_at, again.text, again.raw_bytes, again.env) == (
        event.uid,
        event.received_at,
        event.text,
        raw,
        {"CLAUDE_PROJECT_DIR": "/p"},  # never the messaging token
    )


def test_database_older_than_the_hook_keeps_events_spooled_until_upgraded(cra_home):
    """After an upgrade of cra, a database no `cra` command has migrated yet must not be half-written:
    the drainer leaves the events in the spool; the next cra command migrates and ingests them."""
    from sqlite_utils import Database

    from cra.db.migrations import migrations

    path = capture.db_path(os.environ)
    os.makedirs(cra_home, exist_ok=True)
    old = Database(path)
    migrations.apply(old, stop_before="m002_transcripts")  # a database from before m002
    old.conn.close()
    assert_silent_success(run_hook(payload(tool_use_id="toolu_old"), wait=False))
    from claude_hooks import spool

    spool.release_drain_lock(spool.try_drain_lock(str(cra_home), blocking=True))  # its drainer is done
    assert len(spooled(cra_home)) == 1
    assert "m002_transcripts not applied" in (cra_home / capture.ERROR_LOG).read_text()
    result = cra("ingest")
    assert result.exit_code == 0, result.output
    assert spooled(cra_home) == []
    con = sqlite3.connect(path)
    assert con.execute("SELECT tool_use_id, source FROM tool_calls").fetchall() == [("toolu_old", "hook")]
    assert capture.missing_migrations(con) == []
