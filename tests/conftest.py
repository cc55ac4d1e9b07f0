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


def run_hook(payload: bytes | str, env: dict | None = None, timeout: float = 60):
    """Run the hook exactly as Claude Code does: a fresh interpreter, payload on stdin."""
    import subprocess

    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return subprocess.run(
        [sys.executable, "-S", str(HOOK_SCRIPT)],
        input=payload,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
