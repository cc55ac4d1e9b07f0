"""The hook runs on every tool call with `python -S`: it may import only the standard library and its
own package (never cra, never site-packages)."""

import ast
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import HOOK_SCRIPT, REPO

from cra.db import open_db

ALLOWED_OWN = {"claude_hooks"}


def _top(name):
    return name.split(".")[0]


def _not_stdlib(names):
    return sorted({n for n in names if _top(n) not in sys.stdlib_module_names and _top(n) not in ALLOWED_OWN})


def imported_by_hook(raw: bytes, env=None, sync=True):
    """Every module a real hook process imports, from `-X importtime` (which lists each import once).

    With `sync`, the hook drains in its own process instead of a forked child whose stderr is
    closed, so the drainer's imports are listed too."""
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", str(HOOK_SCRIPT)],
        input=raw,
        capture_output=True,
        env={**os.environ, **({"CRA_HOOK_SYNC": "1"} if sync else {}), **(env or {})},
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == b""
    names = []
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                names.append(name)
    return names


def _payload(event, session_id="5e55e55e-0000-4000-8000-0000000000aa", **fields):
    return json.dumps(
        {"session_id": session_id, "cwd": "/tmp", "hook_event_name": event, "transcript_path": "", **fields}
    ).encode()


@pytest.mark.slow
def test_hook_imports_only_stdlib_on_every_path(tmp_path, cra_home):
    seen = []
    # No database yet: the spool path.
    seen += imported_by_hook(_payload("SessionStart", source="startup"))
    open_db().conn.close()
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(
        json.dumps({"type": "user", "sessionId": "s", "message": {"role": "user", "content": "hi"}}) + "\n"
    )
    for raw in (
        _payload("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="toolu_1"),
        _payload(
            "PostToolUse", tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="toolu_1", tool_response={}
        ),
        _payload("PostToolBatch", tool_calls=[{"tool_use_id": "toolu_1", "tool_name": "Bash", "tool_response": "x"}]),
        # Boundaries: the hook may also read the transcript here.
        _payload("Stop", transcript_path=str(transcript)),
        _payload("SessionEnd", transcript_path=str(transcript), reason="other"),
        b"{not json",
        b'{"hook_event_name": "Stop", "x": "\xff"}',
    ):
        seen += imported_by_hook(raw)
    # A locked database: the spool path with a database present.
    locker = sqlite3.connect(str(cra_home / "cra.db"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        seen += imported_by_hook(_payload("Stop"))
    finally:
        locker.close()
    assert "claude_hooks.capture" in seen  # the parse above really saw the hook's imports
    assert _not_stdlib(seen) == []
    assert not any(_top(n) == "cra" for n in seen)


def test_the_process_claude_code_waits_for_never_loads_sqlite(cra_home):
    """The hot path only spools and forks: SQLite (and the json package) load in the drainer."""
    open_db().conn.close()
    seen = imported_by_hook(_payload("PreToolUse", tool_name="Bash", tool_input={"command": "ls"}), sync=False)
    assert "claude_hooks.spool" in seen
    assert not {"_sqlite3", "sqlite3", "json", "claude_hooks.capture"} & set(seen)
    assert _not_stdlib(seen) == []


def test_hook_sources_import_only_stdlib():
    """Static check too: an import in a branch the runs above never reach still counts."""
    found = []
    for path in sorted((REPO / "claude_hooks").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside claude_hooks
                    found.append("claude_hooks")
                else:
                    found.append(node.module)
    assert "json" in found or "sqlite3" in found or "_sqlite3" in found  # the walk found real imports
    assert _not_stdlib(found) == []


def test_not_stdlib_detects_third_party():
    # The checks above would pass vacuously if this helper accepted anything.
    assert _not_stdlib(["json", "claude_hooks.capture", "cra.db", "sqlite_utils", "click.core"]) == [
        "click.core",
        "cra.db",
        "sqlite_utils",
    ]


def test_hook_keeps_its_bytecode_fresh_under_dontwritebytecode(tmp_path):
    """PYTHONDONTWRITEBYTECODE is set on some machines: the hook still writes its own .pyc, so an
    updated capture.py is compiled once, not on every tool call."""
    import shutil

    copy = tmp_path / "plugin" / "claude_hooks"
    shutil.copytree(REPO / "claude_hooks", copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CRA_HOME": str(tmp_path / "home"), "CRA_HOOK_SYNC": "1"}
    proc = subprocess.run(
        [sys.executable, "-S", str(copy / "hook.py")], input=b"{}", capture_output=True, env=env, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    compiled = {p.name.split(".")[0] for p in (copy / "__pycache__").glob("*.pyc")}
    assert {"spool", "capture", "fastjson", "__init__"} <= compiled
