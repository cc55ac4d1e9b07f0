"""cra's main job at this stage: capture real Claude Code sessions into a fresh database and show them.

    .venv/bin/python scripts/demo.py                 # a fresh scratch dir under $TMPDIR
    .venv/bin/python scripts/demo.py --dir /tmp/d    # or this one (must be empty or absent)
    .venv/bin/python scripts/demo.py --replay        # skip the client: replay recorded hook calls

In a scratch dir it makes a CRA_HOME, runs `cra install` into a scratch HOME's settings.json, then
runs a few scenarios with the real Claude Code client (installed from npm once, cached in
~/.cache/cra/claude-code) against a local mock of the Messages API; nothing leaves 127.0.0.1 but the
npm install. Without node/npm it replays tests/fixtures/recorded/*/hooks.jsonl through the installed
hook command instead, one process per event, exactly as Claude Code would run it. Then it prints
`cra status` and what was captured, and the CRA_HOME to explore with `CRA_HOME=... cra ...`.
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.e2e: the mock API and client driver live beside the tests

from tests.e2e.claude_client import (  # noqa: E402
    ClaudeCodeUnavailable,
    PINNED_VERSION,
    ensure_claude_code,
    run_session,
    settings_file,
)
from tests.e2e.scenarios import SCENARIOS  # noqa: E402

DEFAULT_SCENARIOS = ("tools", "failures", "denied", "subagent")
RECORDED = REPO / "tests" / "fixtures" / "recorded"


def cra(args, cra_home, check=True, **env_extra):
    """The real CLI, in this interpreter, with CRA_HOME pointing at the demo's."""
    env = dict(os.environ, CRA_HOME=str(cra_home), **env_extra)
    env.pop("CRA_DB", None)
    proc = subprocess.run([sys.executable, "-m", "cra"] + args, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit("`cra %s` failed (exit %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def installed_hook_commands(settings):
    """event -> the hook commands settings.json registers for it (what Claude Code would run)."""
    data = json.loads(Path(settings).read_text())
    commands = {}
    for event, groups in data.get("hooks", {}).items():
        for group in groups:
            for hook in group.get("hooks", []):
                if hook.get("type") == "command":
                    commands.setdefault(event, []).append((hook["command"], hook.get("timeout", 600)))
    return commands


def run_client(names, scratch, claude):
    home = scratch / "home"
    for name in names:
        started = time.monotonic()
        runs = run_session(name, scratch / "work" / name, home, claude=claude)
        bad = [r for r in runs if r.returncode != 0]
        if bad:
            sys.exit("claude exited %d on scenario %s:\n%s" % (bad[0].returncode, name, bad[0].stderr[-3000:]))
        print("  %-15s session %s  %.1fs  %s" % (name, runs[0].session_id, time.monotonic() - started,
                                               SCENARIOS[name].description))


def replay(names, scratch, settings):
    """Feed recorded hook payloads to the installed hook command, one process per event, in the order
    the client started them, with the environment the client gave them."""
    commands = installed_hook_commands(settings)
    for name in names:
        path = RECORDED / name / "hooks.jsonl"
        if not path.exists():
            print("  %-15s no recording at %s" % (name, path))
            continue
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        lines.sort(key=lambda r: r["t_start"])
        calls = 0
        for line in lines:
            payload = line["payload"]
            event = payload.get("hook_event_name") if isinstance(payload, dict) else line["event"]
            for command, timeout in commands.get(event, []):
                env = dict(os.environ, **line.get("env", {}))
                subprocess.run(["/bin/sh", "-c", command], input=json.dumps(payload).encode("utf-8"),
                               env=env, cwd=str(scratch), capture_output=True, timeout=timeout)
                calls += 1
        print("  %-15s %d hook calls replayed from %s" % (name, calls, path.relative_to(REPO)))


def summary(cra_home):
    con = sqlite3.connect(str(Path(cra_home) / "cra.db"))
    try:
        rows = con.execute(
            "SELECT tool_name, status, count(*), sum(agent_id IS NOT NULL) FROM tool_calls"
            " GROUP BY tool_name, status ORDER BY tool_name, status"
        ).fetchall()
        sessions = con.execute(
            "SELECT id, start_source, end_reason, (SELECT count(*) FROM tool_calls t WHERE t.session_id = s.id)"
            " FROM sessions s ORDER BY first_event_at"
        ).fetchall()
        events = con.execute(
            "SELECT hook_event_name, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    finally:
        con.close()
    print("\nTool calls by tool and status:")
    print("  %-12s %-12s %5s %9s" % ("tool", "status", "calls", "subagent"))
    for tool, status, n, in_agent in rows:
        print("  %-12s %-12s %5d %9d" % (tool, status, n, in_agent or 0))
    print("\nSessions:")
    for sid, source, reason, n in sessions:
        print("  %s  start=%s end=%s tool_calls=%d" % (sid, source, reason, n))
    print("\nEvents: " + ", ".join("%s %d" % e for e in events))


def train_tiny_adapter(scratch, cra_home):
    """QLoRA SFT of a tiny adapter on the recorded sessions, on a 0.36 M-parameter model built locally.

    The tiny model stands in for a real base (no hub downloads): it shows the whole path, dataset ->
    run -> adapter, in about a minute on 2 cores. `--tools used` keeps examples short enough for it.
    """
    build = ["dataset", "build", "--name", "demo-train", "--min-tool-calls", "1", "--min-answer-words", "1",
             "--tools", "used", "--eval-fraction", "0"]
    print("\n$ cra " + " ".join(build))
    print(cra(build, cra_home).stdout.rstrip())
    model_dir = scratch / "tiny-model"
    print("\nBuilding a tiny local base model (python -m cra.testing.tiny %s)..." % model_dir)
    subprocess.run([sys.executable, "-m", "cra.testing.tiny", str(model_dir)], check=True, capture_output=True)
    train = ["train", "sft", "--base", str(model_dir), "--dataset", "demo-train", "--max-steps", "40",
             "--batch-size", "1", "--grad-accum", "1", "--max-length", "6144",
             "--learning-rate", "3e-3", "--cpu-threads", "1", "--logging-steps", "5"]
    print("\n$ cra " + " ".join(train), flush=True)
    env = dict(os.environ, CRA_HOME=str(cra_home))
    env.pop("CRA_DB", None)
    # Not captured: transformers' progress bars show while it trains; the summary ends with the adapter.
    if subprocess.run([sys.executable, "-m", "cra"] + train, env=env).returncode != 0:
        sys.exit("`cra train sft` failed: `CRA_HOME=%s cra runs show 1` has the error" % cra_home)
    # A short GRPO stage on the SFT adapter: the behavioral reward on the recorded contexts, KL to SFT.
    grpo = ["train", "grpo", "--max-steps", "3", "--batch-size", "4", "--num-generations", "4",
            "--max-completion-length", "48", "--max-prompt-length", "6144", "--max-prompts", "8",
            "--eval-prompts", "4", "--learning-rate", "1e-3", "--cpu-threads", "1", "--save-steps", "3"]
    print("\n$ cra " + " ".join(grpo), flush=True)
    if subprocess.run([sys.executable, "-m", "cra"] + grpo, env=env).returncode != 0:
        sys.exit("`cra train grpo` failed: `CRA_HOME=%s cra runs show 2` has the error" % cra_home)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="scratch directory (default: a new one under $TMPDIR)")
    parser.add_argument("--replay", action="store_true", help="replay recorded hook calls; do not run the client")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help="comma-separated, from: %s" % ", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    names = [n for n in args.scenarios.split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario(s) %s; choose from %s" % (", ".join(unknown), ", ".join(SCENARIOS)))
    if args.dir:
        scratch = Path(args.dir).resolve()
        if scratch.exists() and any(scratch.iterdir()):
            parser.error("%s is not empty: give a new or empty directory" % scratch)
        scratch.mkdir(parents=True, exist_ok=True)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="cra-demo-"))
    cra_home, home = scratch / "cra-home", scratch / "home"
    settings = settings_file(home)

    print("Scratch dir: %s" % scratch)
    print(cra(["install", "--settings", str(settings)], cra_home).stdout.rstrip())

    claude = None
    if not args.replay:
        try:
            print("\nInstalling/finding Claude Code %s (npm, cached)..." % PINNED_VERSION)
            claude = ensure_claude_code()
        except ClaudeCodeUnavailable as exc:
            print("Claude Code unavailable (%s): replaying recorded hook calls instead." % exc)
    if claude is not None:
        print("Running %d scenarios with %s against a local mock API:" % (len(names), claude))
        run_client(names, scratch, claude)
    else:
        print("\nReplaying recorded sessions through the installed hook:")
        replay(names, scratch, settings)

    print("\n$ cra status")
    # The client ran with HOME=<scratch>/home: status looks for the hooks in that settings.json.
    print(cra(["status"], cra_home, CLAUDE_CONFIG_DIR=str(settings.parent)).stdout.rstrip())
    summary(cra_home)
    # The recorded sessions as training data. The mock's sessions are short (few calls, one-line
    # answers), so the default quality filters (>= 3 calls, >= 50 words) are relaxed here.
    build = ["dataset", "build", "--name", "demo", "--min-tool-calls", "1", "--min-answer-words", "1",
             "--eval-fraction", "0"]
    print("\n$ cra " + " ".join(build))
    # Replayed hook calls come without transcripts, hence without turns: then it explains and moves on.
    proc = cra(build, cra_home, check=claude is not None)
    print((proc.stdout + proc.stderr).rstrip())
    if proc.returncode == 0:
        train_tiny_adapter(scratch, cra_home)
    print("\nCRA_HOME=%s" % cra_home)
    cra_script = Path(sys.executable).parent / "cra"
    cra_cmd = str(cra_script) if cra_script.exists() else "%s -m cra" % sys.executable
    print("Explore it:  CRA_HOME=%s %s status" % (cra_home, cra_cmd))
    if claude is not None:
        print("Transcripts: %s" % (home / ".claude" / "projects"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
