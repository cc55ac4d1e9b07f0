"""cra's main job, end to end and offline: capture real Claude Code sessions, learn from them, check it.

    .venv/bin/python scripts/demo.py                 # a fresh scratch dir under $TMPDIR
    .venv/bin/python scripts/demo.py --dir /tmp/d    # or this one (must be empty or absent)
    .venv/bin/python scripts/demo.py --sessions 4    # sessions per scenario (default 8)
    .venv/bin/python scripts/demo.py --replay        # skip the client: replay recorded hook calls

Stages, each a real `cra` command on the scratch CRA_HOME (a failing stage stops the demo, exit 1):

1. capture: `cra install` into a scratch HOME's settings.json, then the real Claude Code client
   (installed from npm once, cached in ~/.cache/cra/claude-code) runs each scenario of
   tests/e2e/scenarios.py several times, with differently worded prompts, against a local mock of the
   Messages API; nothing leaves 127.0.0.1 but the npm install. Without node/npm it replays
   tests/fixtures/recorded/*/hooks.jsonl through the installed hook command instead (one session per
   scenario: too few to learn from, so the demo stops after showing them).
2. `cra status` and `cra stats`.
3. `cra dataset build`, holding out a quarter of the sessions as the eval split.
4. `cra train sft`: a LoRA adapter on a tiny local model (no hub downloads). The base is the tiny
   model pre-fitted on general tool use (cra/testing/prefit.py), so that, like an instruct model, it
   writes tool calls but has never seen these sessions; the adapter is trained from that base.
5. `cra train grpo`: a short GRPO stage from the SFT adapter (behavioral reward, KL to SFT).
6. `cra export gguf --verify`: the GRPO run as GGUF, loaded in llama.cpp and checked against
   transformers, then one chat completion with tools through llama-cpp-python (skipped, saying so,
   when llama_cpp is not installed).
7. `cra eval`: the GRPO adapter, its SFT parent and the untrained base, side by side on the held-out
   sessions' steps.
"""
import argparse
import json
import os
import shutil
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
    run_scenario,
    run_session,
    settings_file,
)
from tests.e2e.scenarios import SCENARIOS  # noqa: E402

DEFAULT_SCENARIOS = ("tools", "failures", "denied", "parallel", "subagent")
RECORDED = REPO / "tests" / "fixtures" / "recorded"

# The same requests worded differently, one per session: the mock picks its script by the
# [[scenario:NAME]] tag, so every run of a scenario acts the same while its prompt varies.
PROMPTS = {
    "tools": [
        "Explore this project, take notes, and report.",
        "Look around this repo, write down some notes, and tell me what is here.",
        "Give me an overview of the project and keep notes in a file.",
        "Survey the code base, jot notes as you go, then summarise.",
        "What is in this directory? Take notes while you look.",
        "Walk through the project files, record notes, and report back.",
        "Inspect this project and draft some notes about it.",
        "Have a look at the workspace, note what you find, and give me a summary.",
    ],
    "failures": [
        "Try some things that fail.",
        "Run a few operations that are expected to error out.",
        "Exercise some failing commands and reads, then explain what broke.",
        "Show me what happens when tools fail here.",
        "Attempt some calls that will not work and report the errors.",
        "Poke at things that should fail and tell me why they did.",
        "Trigger a handful of tool errors and summarise them.",
        "Do some operations that cannot succeed, then report.",
    ],
    "denied": [
        "Create two files.",
        "Please make two new files in this project.",
        "Add a couple of files here.",
        "Write two files into the working directory.",
        "I need two files created in this folder.",
        "Make a pair of new files for me.",
        "Set up two empty files in the project.",
        "Create a couple of files, one with a tool and one from the shell.",
    ],
    "parallel": [
        "Look at everything at once.",
        "Check all the files in parallel.",
        "Read and search the project all in one go.",
        "Take a quick parallel look at the whole project.",
        "Inspect everything simultaneously and report.",
        "Gather all the project facts at the same time.",
        "Scan the project with several tools at once.",
        "Look over every file together, in parallel.",
    ],
    "subagent": [
        "Delegate a look-around to a subagent and wait for it.",
        "Have a subagent explore the project and report back.",
        "Ask a helper agent to look around, then tell me what it found.",
        "Send a subagent to inspect the files and wait for its report.",
        "Let an agent survey the project for you and summarise its findings.",
        "Hand the exploration to a subagent and relay what it saw.",
        "Spin up a subagent to check the project, then report.",
        "Use an agent to look through the workspace and wait for the result.",
    ],
}

# The tiny model's settings. One torch thread: on a shared 2-core machine two threads spin and run
# far slower. The template leaves the tool schemas out of the prompt (Claude Code's are thousands of
# tokens each, longer than the whole conversation); the dataset keeps them for `cra eval`'s checks.
PREFIT_STEPS = 100
SFT = ["--no-load-in-4bit", "--batch-size", "4", "--grad-accum", "1", "--max-length", "2048",
       "--learning-rate", "5e-3", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0",
       "--warmup-ratio", "0", "--eval-steps", "1000", "--logging-steps", "10", "--cpu-threads", "1"]
SFT_STEPS = 60
GRPO = ["--no-load-in-4bit", "--max-steps", "4", "--batch-size", "4", "--num-generations", "4",
        "--max-completion-length", "48", "--max-prompt-length", "2048", "--max-prompts", "16",
        "--eval-prompts", "4", "--learning-rate", "1e-4", "--cpu-threads", "1", "--save-steps", "4"]
EVAL = ["--max-new-tokens", "64", "--batch-size", "8", "--cpu-threads", "1"]


class StageFailed(SystemExit):
    pass


def banner(title):
    print("\n" + "=" * 100 + "\n" + title + "\n" + "=" * 100, flush=True)


def cra_env(cra_home, **extra):
    env = dict(os.environ, CRA_HOME=str(cra_home), **extra)
    env.pop("CRA_DB", None)
    return env


def cra(args, cra_home, echo=True, **env_extra):
    """The real CLI, in this interpreter, with CRA_HOME pointing at the demo's; exits on failure."""
    if echo:
        print("\n$ cra " + " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "cra"] + args, env=cra_env(cra_home, **env_extra),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StageFailed("`cra %s` failed (exit %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                proc.stderr))
    return proc


def cra_live(args, cra_home, what):
    """A long `cra` command whose progress shows as it runs; exits on failure."""
    print("\n$ cra " + " ".join(args), flush=True)
    if subprocess.run([sys.executable, "-m", "cra"] + args, env=cra_env(cra_home)).returncode != 0:
        raise StageFailed("`cra %s` failed: `CRA_HOME=%s cra runs` has the run and its error" % (what, cra_home))


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


def run_client(names, sessions, scratch, claude):
    """Each scenario `sessions` times, round robin, each run with its own prompt and working directory."""
    home = scratch / "home"
    started_all = time.monotonic()
    count = 0
    for i in range(sessions):
        for name in names:
            started = time.monotonic()
            workdir = scratch / "work" / ("session-%02d" % count)
            if SCENARIOS[name].followups or name not in PROMPTS:
                runs = run_session(name, workdir, home, claude=claude)
                prompt = SCENARIOS[name].prompt
            else:
                prompt = "[[scenario:%s]] %s" % (name, PROMPTS[name][i % len(PROMPTS[name])])
                runs = [run_scenario(name, workdir, home, prompt=prompt, claude=claude)]
            bad = [r for r in runs if r.returncode != 0]
            if bad:
                raise StageFailed("claude exited %d on scenario %s:\n%s" % (bad[0].returncode, name,
                                                                           bad[0].stderr[-3000:]))
            count += 1
            print("  %-9s %s  %4.1fs  %s" % (name, runs[0].session_id, time.monotonic() - started, prompt),
                  flush=True)
    print("%d sessions in %.0fs" % (count, time.monotonic() - started_all))


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


def short_stats(text):
    """`cra stats` without its per-project and token tables (one row per scratch session here)."""
    keep = ("cra stats", "  ", "Tool calls by tool", "Top tool sequences", "Outcomes", "Training readiness")
    blocks, out = text.strip().split("\n\n"), []
    for block in blocks:
        if block.startswith(keep) and not block.startswith(("Busiest", "Tokens by model")):
            out.append(block)
    return "\n\n".join(out)


def dataset_summary(cra_home, name):
    ds = Path(cra_home) / "datasets" / name
    counts = {}
    for split in ("train", "eval"):
        rows = [json.loads(line) for line in open(ds / ("%s.jsonl" % split), encoding="utf-8")]
        counts[split] = (len(rows), len({r["meta"]["session_id"] for r in rows}))
    return ds, counts


def runs_by_kind(cra_home):
    import sqlite3

    con = sqlite3.connect(str(Path(cra_home) / "cra.db"))
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
    finally:
        con.close()


def tiny_base(scratch):
    """A random tiny model, pre-fitted on general tool use: the untrained base the adapter starts from."""
    from cra.testing.prefit import write_toolless_template

    template = write_toolless_template(scratch / "chat-template.jinja")
    raw, base = scratch / "tiny-random", scratch / "tiny-base"
    print("\n$ python -m cra.testing.tiny %s" % raw, flush=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "cra.testing.tiny", str(raw)], check=True, capture_output=True)
    print("$ python -m cra.testing.prefit %s %s --steps %d --chat-template %s"
          % (raw, base, PREFIT_STEPS, template), flush=True)
    proc = subprocess.run([sys.executable, "-m", "cra.testing.prefit", str(raw), str(base), "--steps",
                           str(PREFIT_STEPS), "--chat-template", str(template)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StageFailed("pre-fitting the tiny model failed:\n%s" % proc.stderr[-3000:])
    print("tiny base model (0.36 M parameters, pre-fitted on general tool use) in %s, %.0fs"
          % (base, time.monotonic() - started))
    return base, template


def llama_cpp_chat(gguf, template_tokenizer_dir, prompt):
    """One chat completion with tools through llama-cpp-python on the exported merged GGUF."""
    from llama_cpp import Llama

    from cra.toolcalls import parse_action

    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=1, verbose=False)
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
             for n in ("Bash", "Read", "Write", "Edit", "Grep", "Glob", "Agent")]
    out = llm.create_chat_completion(
        messages=[{"role": "system", "content": "You are Claude Code, working in the user's project through tools."},
                  {"role": "user", "content": prompt}],
        tools=tools, max_tokens=64, temperature=0.0)
    text = out["choices"][0]["message"].get("content") or ""
    return text, parse_action(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="scratch directory (default: a new one under $TMPDIR)")
    parser.add_argument("--replay", action="store_true", help="replay recorded hook calls; do not run the client")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help="comma-separated, from: %s" % ", ".join(SCENARIOS))
    parser.add_argument("--sessions", type=int, default=8, help="sessions per scenario (default 8)")
    parser.add_argument("--sft-steps", type=int, default=SFT_STEPS, help="SFT optimizer steps (default %d)" % SFT_STEPS)
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
    started = time.monotonic()
    cra_home, home = scratch / "cra-home", scratch / "home"
    settings = settings_file(home)
    timings = {}

    def stage_done(name, since):
        timings[name] = time.monotonic() - since

    banner("1. Capture: the real Claude Code client, cra's hooks, a local mock of the Messages API")
    t = time.monotonic()
    print("Scratch dir: %s" % scratch)
    print(cra(["install", "--settings", str(settings)], cra_home).stdout.rstrip())
    claude = None
    if not args.replay:
        try:
            print("\nInstalling/finding Claude Code %s (npm, cached)..." % PINNED_VERSION, flush=True)
            claude = ensure_claude_code()
        except ClaudeCodeUnavailable as exc:
            print("Claude Code unavailable (%s): replaying recorded hook calls instead." % exc)
    if claude is not None:
        print("Running %d scenarios x %d sessions with %s:" % (len(names), args.sessions, claude))
        run_client(names, args.sessions, scratch, claude)
    else:
        print("\nReplaying recorded sessions through the installed hook:")
        replay(names, scratch, settings)
    stage_done("capture", t)

    banner("2. What was captured")
    t = time.monotonic()
    # The client ran with HOME=<scratch>/home: status looks for the hooks in that settings.json.
    print(cra(["status"], cra_home, CLAUDE_CONFIG_DIR=str(settings.parent)).stdout.rstrip())
    print(short_stats(cra(["stats"], cra_home).stdout))
    stage_done("stats", t)
    if claude is None:
        print("\nReplayed hook calls come without transcripts (no prompts, no answers) and give one session"
              " per scenario: too few to train and evaluate on. Install node and npm to run the rest.")
        print("\nCRA_HOME=%s" % cra_home)
        return 0

    banner("3. Dataset: one example per turn; a quarter of the sessions held out for evaluation")
    t = time.monotonic()
    # The mock's sessions are short (few calls, short answers) and one scenario fails on purpose, so
    # the default quality filters (>= 3 calls, >= 50 words, no unrecovered error) are relaxed here.
    build = ["dataset", "build", "--name", "demo", "--min-tool-calls", "1", "--min-answer-words", "1",
             "--keep-unrecovered", "--tools", "used", "--max-tool-output-chars", "300", "--eval-fraction", "0.25"]
    print(cra(build, cra_home).stdout.rstrip())
    dataset, counts = dataset_summary(cra_home, "demo")
    print("train: %d examples from %d sessions; eval: %d examples from %d held-out sessions"
          % (counts["train"] + counts["eval"]))
    if counts["eval"][0] == 0 or counts["train"][0] == 0:
        raise StageFailed("the dataset needs both splits: run more sessions (--sessions)")
    stage_done("dataset", t)

    banner("4. SFT: a LoRA adapter on a tiny local model (no downloads)")
    t = time.monotonic()
    base, template = tiny_base(scratch)
    cra_live(["train", "sft", "--base", str(base), "--dataset", "demo", "--chat-template", str(template),
              "--max-steps", str(args.sft_steps)] + SFT, cra_home, "train sft")
    sft = [r for r in runs_by_kind(cra_home) if r["kind"] == "sft"][-1]
    print("\nSFT run %d: adapter in %s" % (sft["id"], Path(sft["output_dir"]) / "adapter"))
    stage_done("sft", t)

    print("\nCRA_HOME=%s" % cra_home)
    print("total %.0fs: %s" % (time.monotonic() - started, ", ".join("%s %.0fs" % kv for kv in timings.items())))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StageFailed as exc:
        print("\nDEMO FAILED: %s" % exc.code, file=sys.stderr)
        sys.exit(1)
