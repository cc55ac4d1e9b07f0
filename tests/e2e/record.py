"""Record every scenario with the real client: hook payloads plus the client's transcripts.

    python -m tests.e2e.record tests/fixtures/recorded [SCENARIO ...]

Without scenario names: every scenario whose `recorded` is true (the committed set).

For each scenario, OUTDIR/<scenario>/ gets
  hooks.jsonl        one line per hook call: {event, t_start, t_end, payload, env} (payload = stdin)
  transcripts/       the client's ~/.claude/projects tree (<project-dir>/<session>.jsonl, subagents/)
  scenario.json      prompt(s), client arguments and version, session id, exit codes
Paths inside are the scratch paths the client really used; they are kept as written. Runs use
claude_client.LEAN_ARGS to keep the transcripts small.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from .claude_client import (
    PINNED_VERSION,
    ensure_claude_code,
    install_recording_hooks,
    projects_dir,
    run_session,
)
from .scenarios import SCENARIOS


def record_scenario(name, outdir, claude=None, scratch=None):
    """Run scenario NAME with the recording hook; write OUTDIR/NAME/. Returns that directory."""
    claude = claude or ensure_claude_code()
    scratch = Path(scratch or tempfile.mkdtemp(prefix="cra-record-"))
    home, work = scratch / name / "home", scratch / name / "work"
    hooks_out = scratch / name / "hooks.jsonl"
    install_recording_hooks(home, hooks_out)
    runs = run_session(name, work, home, claude=claude, lean=True)
    for run in runs:
        if run.returncode != 0:
            raise RuntimeError("scenario %s: claude exited %s: %s" % (name, run.returncode, run.stderr[-2000:]))
    target = Path(outdir) / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copyfile(hooks_out, target / "hooks.jsonl")
    shutil.copytree(projects_dir(home), target / "transcripts")
    meta = {
        "scenario": name,
        "description": SCENARIOS[name].description,
        "claude_version": PINNED_VERSION,
        "session_id": runs[0].session_id,
        "runs": [{"args": r.args, "returncode": r.returncode, "wall_s": round(r.wall_s, 2)} for r in runs],
        "home": str(home),
        "workdir": str(work),
        "result": runs[-1].result_text,
    }
    (target / "scenario.json").write_text(json.dumps(meta, indent=1) + "\n")
    return target


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    outdir, names = Path(argv[0]), argv[1:] or [n for n, s in SCENARIOS.items() if s.recorded]
    claude = ensure_claude_code()
    scratch = Path(tempfile.mkdtemp(prefix="cra-record-"))
    try:
        for name in names:
            target = record_scenario(name, outdir, claude=claude, scratch=scratch)
            size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            print("%-16s %6.1f kB  %s" % (name, size / 1e3, target))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
