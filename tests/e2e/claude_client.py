"""Install the pinned Claude Code client from npm (cached) and run scenarios with it, offline.

    claude = ensure_claude_code()               # npm install once into $CRA_CLAUDE_CODE_CACHE
    install_cra_hooks(home, cra_home)           # the real `cra install` into <home>/.claude/settings.json
    result = run_scenario("tools", workdir, home)

Each run gets a fresh mock API (mock_api.MockAPI) on 127.0.0.1, which is also the client's HTTP(S)
proxy, and an environment built from scratch (HOME, TMPDIR and friends inside the scratch dir), so
nothing leaves loopback and nothing of the caller's Claude setup leaks in.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .mock_api import MockAPI
from .scenarios import DEFAULT_TOOLS, SCENARIOS, Scenario

# 2.1.198+ declare Node >= 22 but ship a native binary that runs here (Node 20) after an engine
# warning; 2.1.330 was the newest release when this was pinned and ran every scenario.
PINNED_VERSION = "2.1.330"
PACKAGE = "@anthropic-ai/claude-code"
NPM_TIMEOUT_S = 900
REPO = Path(__file__).resolve().parents[2]
RECORD_HOOK = Path(__file__).resolve().parent / "record_hook.py"

# Every event the pinned client knows, for the recording hook. Never WorktreeCreate: registering it
# replaces worktree creation.
RECORD_EVENTS = (
    "PreToolUse PostToolUse PostToolUseFailure PostToolBatch Notification UserPromptSubmit "
    "UserPromptExpansion SessionStart SessionEnd Stop StopFailure SubagentStart SubagentStop PreCompact "
    "PostCompact PreModelSwitch PostModelSwitch PermissionRequest PermissionDenied Setup TeammateIdle "
    "TaskCreated TaskCompleted Elicitation ElicitationResult ConfigChange WorktreeRemove "
    "InstructionsLoaded CwdChanged FileChanged DirectoryAdded MessageDisplay"
).split()


class ClaudeCodeUnavailable(RuntimeError):
    """Node/npm are missing, or the client could not be installed."""


def cache_root() -> Path:
    return Path(os.environ.get("CRA_CLAUDE_CODE_CACHE") or Path.home() / ".cache" / "cra" / "claude-code")


def _binary_candidates(prefix: Path):
    modules = prefix / "node_modules"
    yield modules / ".bin" / "claude"
    # Without its postinstall (npm --ignore-scripts), bin/claude.exe is a placeholder: the real
    # binary sits in the platform package.
    yield from sorted(modules.glob("@anthropic-ai/claude-code-*/claude"))


def _working_binary(prefix: Path, version: str):
    for candidate in _binary_candidates(prefix):
        if not candidate.exists():
            continue
        try:
            out = subprocess.run(
                [str(candidate), "--version"],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(prefix), "DISABLE_AUTOUPDATER": "1"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.startswith(version):
            return candidate
    return None


def ensure_claude_code(version: str = PINNED_VERSION) -> Path:
    """Path to a working `claude` of this version, installing it with npm into the cache if needed."""
    prefix = cache_root() / version
    found = _working_binary(prefix, version)
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ClaudeCodeUnavailable("node and npm are needed to install %s@%s" % (PACKAGE, version))
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / (version + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent test run or demo installs once, not twice
        found = _working_binary(prefix, version)
        if found:
            return found
        try:
            proc = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(prefix),
                    "%s@%s" % (PACKAGE, version),
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClaudeCodeUnavailable("npm install %s@%s failed: %s" % (PACKAGE, version, exc)) from exc
        found = _working_binary(prefix, version)
        if found is None:
            raise ClaudeCodeUnavailable(
                "npm install %s@%s into %s failed (exit %s): %s"
                % (PACKAGE, version, prefix, proc.returncode, (proc.stderr or proc.stdout)[-2000:])
            )
        return found


# ---------------------------------------------------------------------------------------------
# Settings: cra's hooks (through the real CLI) or the recording hook


def settings_file(home) -> Path:
    return Path(home) / ".claude" / "settings.json"


def install_cra_hooks(home, cra_home) -> subprocess.CompletedProcess:
    """`cra install --settings <home>/.claude/settings.json` with CRA_HOME set: the hook command pins it."""
    env = dict(os.environ, CRA_HOME=str(cra_home))
    env.pop("CRA_DB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "cra", "install", "--settings", str(settings_file(home))],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError("cra install failed: %s%s" % (proc.stdout, proc.stderr))
    return proc


def install_recording_hooks(home, out_jsonl, python="/usr/bin/python3"):
    """A settings.json whose every event runs record_hook.py, appending to out_jsonl."""
    python = python if os.path.exists(python) else sys.executable
    command = "%s -S %s %s" % (python, RECORD_HOOK, out_jsonl)
    hooks = {}
    for event in RECORD_EVENTS:
        group = {"hooks": [{"type": "command", "command": command, "timeout": 30}]}
        if event in ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"):
            group = {"matcher": "*", **group}
        hooks[event] = [group]
    path = settings_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"hooks": hooks}, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class RunResult:
    scenario: str
    args: list
    returncode: int
    stdout: str
    stderr: str
    messages: list  # stream-json lines, parsed
    session_id: str | None
    result: dict | None  # the last `result` message
    home: Path
    workdir: Path
    requests: list = field(default_factory=list)  # what the mock received
    expected: dict = field(default_factory=dict)  # tool_use id -> status cra should record
    wall_s: float = 0.0

    @property
    def result_text(self):
        return (self.result or {}).get("result")

    def transcript(self) -> Path | None:
        return transcript_path(self.home, self.session_id) if self.session_id else None

    def subagent_transcripts(self) -> list:
        main = self.transcript()
        if main is None:
            return []
        return sorted((main.parent / self.session_id / "subagents").glob("agent-*.jsonl"))


def projects_dir(home) -> Path:
    return Path(home) / ".claude" / "projects"


def transcript_path(home, session_id) -> Path | None:
    found = sorted(projects_dir(home).glob("*/%s.jsonl" % session_id))
    return found[0] if found else None


def load_jsonl(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def offline_env(home, base_url, env_extra=None) -> dict:
    """The documented offline environment, built from scratch (nothing inherited but PATH/locale)."""
    home = Path(home)
    tmp = home / "tmp"
    runtime = home / "run"
    for d in (tmp, runtime):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": str(home),
        "USER": os.environ.get("USER", "user"),
        "SHELL": "/bin/bash",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "dummy",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HTTPS_PROXY": base_url,
        "HTTP_PROXY": base_url,
        "https_proxy": base_url,
        "http_proxy": base_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "CLAUDE_CODE_TMPDIR": str(tmp),
        "TMPDIR": str(tmp),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    env.update(env_extra or {})
    return env


# Smaller transcripts for committed fixtures: no per-conversation system prompt snapshot (~70 kB), only
# the tools the scenarios use (the schemas of the rest are ~30 kB per request shape), and no skills
# listing (~14 kB) unless the scenario needs slash commands (/compact).
LEAN_ARGS = ["--system-prompt-snapshot", "off", "--tools", ",".join(DEFAULT_TOOLS.split())]


def claude_args(scenario, prompt, resume=None, lean=False):
    args = [
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-hook-events",
        "--allowedTools",
        scenario.allowed_tools,
    ]
    if lean:
        args += LEAN_ARGS
        if not any(p.startswith("/") for p in scenario.followups):
            args.append("--disable-slash-commands")
    if scenario.permission_mode:
        args += ["--permission-mode", scenario.permission_mode]
    if resume:
        args += ["--resume", resume]
    return args


def run_scenario(name, workdir, home, env_extra=None, resume=None, prompt=None, claude=None, timeout=180, lean=False):
    """Run `claude -p` for scenario NAME (or a Scenario) in WORKDIR with HOME=home, against a fresh mock.
    -> RunResult.

    With `resume` (a session id) and `prompt`, continues that session (e.g. prompt="/compact").
    `lean` adds LEAN_ARGS (smaller transcripts).
    The project files are created in workdir when it is empty.
    """
    scenario = name if isinstance(name, Scenario) else SCENARIOS[name]
    name = scenario.name
    claude = claude or ensure_claude_code()
    workdir, home = Path(workdir), Path(home)
    home.mkdir(parents=True, exist_ok=True)
    if not workdir.exists() or not any(workdir.iterdir()):
        scenario.write_project(workdir)
    args = claude_args(scenario, prompt or scenario.prompt, resume, lean)
    with MockAPI(scenario.scripts, {"@WORK@": str(workdir)}, default=scenario.default_script) as mock:
        env = offline_env(home, mock.base_url, env_extra)
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(claude)] + args,
            cwd=str(workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The client and any tool it started (its own process group).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise TimeoutError(
                "claude ran past %ss on scenario %s; stderr: %s" % (timeout, name, stderr[-2000:])
            ) from None
        wall = time.monotonic() - started
        requests, expected = list(mock.requests), dict(mock.expected)
    messages = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                messages.append(json.loads(line))
    session_id = resume
    result = None
    for m in messages:
        session_id = session_id or m.get("session_id")
        if m.get("type") == "result":
            result = m
    return RunResult(
        scenario=name,
        args=args,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        messages=messages,
        session_id=session_id,
        result=result,
        home=home,
        workdir=workdir,
        requests=requests,
        expected=expected,
        wall_s=wall,
    )


def run_session(name, workdir, home, env_extra=None, claude=None, timeout=180, lean=False):
    """The scenario's first run, then each of its follow-up prompts with --resume. -> [RunResult]."""
    first = run_scenario(name, workdir, home, env_extra, claude=claude, timeout=timeout, lean=lean)
    runs = [first]
    for prompt in SCENARIOS[name].followups:
        if first.session_id is None:
            break
        runs.append(
            run_scenario(
                name,
                workdir,
                home,
                env_extra,
                resume=first.session_id,
                prompt=prompt,
                claude=claude,
                timeout=timeout,
                lean=lean,
            )
        )
    return runs
