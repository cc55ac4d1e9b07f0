"""Benchmark `cra import`: throughput against bare JSON parsing, re-import cost, peak memory.

    .venv/bin/python scripts/bench_import.py                 # 50 and 200 MB of fixtures, 60 MB of long sessions
    .venv/bin/python scripts/bench_import.py --size-mb 400 --small-mb 100 --long-mb 0 --keep /tmp/corpus

Two kinds of corpus, in a ~/.claude/projects-like tree:
- fixtures: the project's own transcript fixtures (tests/fixtures/recorded and
  tests/fixtures/transcripts; ../shared's recordings too when present), each source session copied
  many times with fresh session ids and uuids, subagent files included: many short sessions;
- long sessions: generated (_LongSession), shaped like Claude Code 2.1.3xx's: ~3 MB main transcripts
  of many turns, tool outputs of up to 160 KB stored both as the tool_result's text and as the
  structured toolUseResult (as the client writes them), subagents in their own files, a compaction.
Each corpus is measured in a fresh subprocess (so peak RSS is that size's own), and within it,
side by side in --rounds rounds of: an import whose files alternate, every 2 MB, with their bare
parse, each timed apart (a slow spell of the machine hits both alike; the parse starts each block on
caches the import left cold, and the benchmark prints how much slower it runs than alone); then, run
back to back, reading + json.loads of every line (the floor any importer pays), storing the raw
lines only (the hook's `tail_file` without a normaliser, into a scratch database: the part of an
import that is copying lines into SQLite), and `import_paths` into an empty database. Three ratios
of import to bare parse come out: interleaved (the median of the interleaved rounds: the steadiest
on a machine whose speed wanders), paired (the median of each round's import over its own parse),
and least over least. Then a second import of the same tree (which should find nothing new).

Ratios are of CPU time (time.process_time: user + system time of this process, SQLite's included),
not wall time: on a shared machine wall time mostly measures the other jobs.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UUID = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)([0-9a-f]{12})")
TOOL_USE_ID = re.compile(rb"(toolu_[A-Za-z0-9_]+)")
# The interleaved measure's block: this much of the corpus imported, then the same files parsed.
INTERLEAVE_BYTES = 2_000_000


def source_sessions():
    """(main transcript, [subagent files]) for every fixture session we have."""
    roots = [REPO / "tests" / "fixtures" / "recorded", REPO / "tests" / "fixtures" / "transcripts"]
    shared = REPO.parent / "shared" / "fixtures"
    if shared.is_dir():
        roots += [
            shared / "claude-code-2.1.328",
            shared / "public" / "sniffly-cc1.0.17",
            shared / "public" / "spotter-cc2.1.38",
        ]
    sessions = []
    for root in roots:
        for path in sorted(root.rglob("*.jsonl")):
            if "subagents" in path.parts or path.name in ("hooks.jsonl", "api_requests.jsonl"):
                continue
            subs = sorted((path.parent / path.stem / "subagents").glob("agent-*.jsonl"))
            sessions.append((path, subs))
    if not sessions:
        sys.exit("no fixture transcripts found under tests/fixtures")
    return sessions


def build_corpus(dest: Path, size_mb: float) -> int:
    """Copies of the fixture sessions with fresh ids until the tree holds size_mb MB. Returns bytes."""
    sessions = source_sessions()
    blobs = [(p.read_bytes(), [(s.name, s.read_bytes()) for s in subs]) for p, subs in sessions]
    total, copy = 0, 0
    target = int(size_mb * 1e6)
    while total < target:
        for data, subs in blobs:
            copy += 1
            tag = b"%012x" % copy

            # Every uuid (session ids included) gets this copy's last 12 hex digits: same shape, unique.
            def fresh(blob, tag=tag):
                blob = UUID.sub(lambda match: match.group(1) + tag, blob)
                return TOOL_USE_ID.sub(lambda match: match.group(1) + b"_" + tag, blob)  # tool calls unique too

            new = fresh(data)
            first = json.loads(new.split(b"\n", 1)[0] or b"{}")
            sid = None
            for line in new.split(b"\n", 40):
                m = re.search(rb'"sessionId": ?"([^"]+)"', line)
                if m:
                    sid = m.group(1).decode()
                    break
            sid = sid or "session-%d" % copy
            project = dest / ("-bench-project-%d" % (copy % 50))
            project.mkdir(parents=True, exist_ok=True)
            (project / f"{sid}.jsonl").write_bytes(new)
            total += len(new)
            for name, sub in subs:
                sub_dir = project / sid / "subagents"
                sub_dir.mkdir(parents=True, exist_ok=True)
                sub = fresh(sub)
                (sub_dir / name).write_bytes(sub)
                total += len(sub)
            del first
            if total >= target:
                break
    return total


# ---------------------------------------------------------------------------------------------
# Long sessions: generated, shaped like Claude Code 2.1.3xx's (entry fields, content blocks, the
# structured toolUseResult beside the tool_result text), with what the fixtures lack: large tool
# outputs, many turns, subagents and a compaction, ~3 MB per main transcript.

LONG_SESSION_BYTES = 3_000_000
_WORDS = (
    "the quick brown fox jumps over lazy dog function return value import module class self"
    " config path error test assert result data file line read write open close index"
).split()


def _text(rng, n_bytes):
    """Source-code-like text of about n_bytes: lines of words with indentation."""
    out, size = [], 0
    while size < n_bytes:
        line = "    " * rng.randrange(4) + " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 14)))
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


class _LongSession:
    """Writes one long session: its main transcript and its subagents' files."""

    def __init__(self, rng, project: Path, n: int):
        self.rng, self.project, self.n = rng, project, n
        self.sid = "7e570000-0000-4000-8000-%012x" % n
        self.cwd = "/home/dev/long-project-%d" % (n % 7)
        self.seq = 0
        self.parent = None
        self.clock = 1_767_225_600 + n * 86_400  # 2026-01-01 + n days

    def _uuid(self):
        self.seq += 1
        return "%08x-0000-4000-8000-%012x" % (self.n, self.seq)

    def _stamp(self):
        self.clock += self.rng.uniform(0.2, 20)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock)) + ".%03dZ" % self.rng.randrange(1000)

    def _base(self, kind, agent=None):
        uuid = self._uuid()
        entry = {
            "parentUuid": self.parent,
            "isSidechain": agent is not None,
            "type": kind,
            "uuid": uuid,
            "timestamp": self._stamp(),
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self.cwd,
            "sessionId": self.sid,
            "version": "2.1.330",
            "gitBranch": "main",
        }
        if agent is not None:
            entry["agentId"] = agent
        self.parent = uuid
        return entry

    def _prompt(self, text, agent=None, prompt_id=None):
        e = self._base("user", agent)
        e.update(promptId=prompt_id or self._uuid(), message={"role": "user", "content": text})
        return e

    def _assistant(self, blocks, msg_id, agent=None, stop="tool_use"):
        e = self._base("assistant", agent)
        usage = {
            "input_tokens": self.rng.randrange(5, 500),
            "cache_creation_input_tokens": self.rng.randrange(0, 5000),
            "cache_read_input_tokens": self.rng.randrange(10_000, 150_000),
            "output_tokens": self.rng.randrange(20, 2000),
            "service_tier": "standard",
        }
        e.update(
            message={
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": "claude-opus-5-5",
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            },
            requestId="req_%s" % msg_id[4:],
        )
        return e

    def _tool_round(self, entries, agent, big):
        """One assistant response (thinking, text, one to three tool calls) and the results."""
        rng = self.rng
        msg_id = "msg_%08x%06x" % (self.n, self.seq)
        calls = []
        entries.append(
            self._assistant(
                [{"type": "thinking", "thinking": _text(rng, rng.randrange(200, 3000)), "signature": "sig" * 40}],
                msg_id,
                agent,
            )
        )
        entries.append(self._assistant([{"type": "text", "text": _text(rng, rng.randrange(50, 400))}], msg_id, agent))
        for _ in range(rng.choice((1, 1, 2, 3))):
            tool = rng.choice(("Read", "Read", "Bash", "Grep"))
            tid = "toolu_%08x%08x" % (self.n, self.seq)
            args = {
                "Read": {"file_path": "%s/src/mod_%d.py" % (self.cwd, rng.randrange(200))},
                "Bash": {"command": "pytest -q tests/test_%d.py" % rng.randrange(90), "description": "Run tests"},
                "Grep": {"pattern": rng.choice(_WORDS), "path": self.cwd, "output_mode": "content"},
            }[tool]
            entries.append(
                self._assistant([{"type": "tool_use", "id": tid, "name": tool, "input": args}], msg_id, agent)
            )
            calls.append((tid, tool, args))
        for tid, tool, args in calls:
            size = rng.randrange(20_000, 160_000) if big and tool == "Read" else rng.randrange(500, 30_000)
            output = _text(rng, size)
            if tool == "Read":
                result = {
                    "type": "text",
                    "file": {
                        "filePath": args["file_path"],
                        "content": output,
                        "numLines": output.count("\n") + 1,
                        "startLine": 1,
                        "totalLines": output.count("\n") + 1,
                    },
                }
            elif tool == "Bash":
                result = {"stdout": output, "stderr": "", "interrupted": False, "isImage": False}
            else:
                result = {
                    "mode": "content",
                    "numFiles": rng.randrange(1, 30),
                    "filenames": [],
                    "content": output,
                    "numLines": output.count("\n") + 1,
                }
            e = self._base("user", agent)
            e.update(
                message={
                    "role": "user",
                    "content": [{"tool_use_id": tid, "type": "tool_result", "content": output, "is_error": False}],
                },
                toolUseResult=result,
                sourceToolAssistantUUID=self.parent,
            )
            entries.append(e)

    def _subagent(self, entries):
        """An Agent call: its own transcript (and meta file) beside the main one, and its result."""
        rng = self.rng
        agent = "%08x%09x" % (self.n, self.seq)
        tid = "toolu_agent_%08x%06x" % (self.n, self.seq)
        msg_id = "msg_agent_%08x%06x" % (self.n, self.seq)
        description = "Explore the %s module" % rng.choice(_WORDS)
        entries.append(
            self._assistant(
                [
                    {
                        "type": "tool_use",
                        "id": tid,
                        "name": "Agent",
                        "input": {"description": description, "prompt": _text(rng, 600), "subagent_type": "Explore"},
                    }
                ],
                msg_id,
            )
        )
        main_parent = self.parent
        self.parent = None
        sub = [self._prompt(_text(rng, 600), agent=agent)]
        for _ in range(rng.randrange(3, 8)):
            self._tool_round(sub, agent, big=True)
        report = _text(rng, rng.randrange(800, 4000))
        sub.append(self._assistant([{"type": "text", "text": report}], msg_id + "_end", agent, stop="end_turn"))
        folder = self.project / self.sid / "subagents"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"agent-{agent}.jsonl").write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in sub))
        (folder / f"agent-{agent}.meta.json").write_text(
            json.dumps({"agentType": "Explore", "description": description, "toolUseId": tid})
        )
        self.parent = main_parent
        e = self._base("user")
        e.update(
            message={
                "role": "user",
                "content": [{"tool_use_id": tid, "type": "tool_result", "content": [{"type": "text", "text": report}]}],
            },
            toolUseResult={
                "status": "completed",
                "agentId": agent,
                "agentType": "Explore",
                "content": [{"type": "text", "text": report}],
                "totalToolUseCount": len(sub) // 3,
                "description": description,
            },
        )
        entries.append(e)

    def _compaction(self, entries):
        e = self._base("system")
        e.update(
            subtype="compact_boundary",
            content="Conversation compacted",
            isMeta=False,
            level="info",
            compactMetadata={"trigger": "auto", "preTokens": self.rng.randrange(150_000, 190_000)},
        )
        entries.append(e)
        summary = self._prompt(
            "This session is being continued from a previous conversation that ran out of"
            " context. Summary:\n" + _text(self.rng, 12_000)
        )
        summary["isCompactSummary"] = True
        entries.append(summary)

    def write(self, target=LONG_SESSION_BYTES):
        rng = self.rng
        entries, size, compacted = [], 0, False
        while size < target:
            entries.append(self._prompt(_text(rng, rng.randrange(40, 600))))
            for _ in range(rng.randrange(2, 9)):
                if rng.random() < 0.12:
                    self._subagent(entries)
                else:
                    self._tool_round(entries, None, big=rng.random() < 0.5)
            entries.append(
                self._assistant(
                    [{"type": "text", "text": _text(rng, rng.randrange(200, 2500))}],
                    "msg_end_%08x%06x" % (self.n, self.seq),
                    stop="end_turn",
                )
            )
            size = sum(len(json.dumps(e)) + 1 for e in entries)
            if not compacted and size > target / 2:
                self._compaction(entries)
                compacted = True
        data = b"".join(json.dumps(e).encode() + b"\n" for e in entries)
        (self.project / f"{self.sid}.jsonl").write_bytes(data)
        return data


def build_long_sessions(dest: Path, size_mb: float, seed: int = 7) -> int:
    """Long sessions (main transcripts of ~3 MB, their subagents beside them) until the tree holds
    size_mb MB. Returns bytes."""
    import random

    rng = random.Random(seed)
    total, n = 0, 0
    while total < size_mb * 1e6:
        n += 1
        project = dest / ("-home-dev-long-project-%d" % (n % 7))
        project.mkdir(parents=True, exist_ok=True)
        session = _LongSession(rng, project, n)
        session.write()
        total += sum(f.stat().st_size for f in project.rglob("*.jsonl") if session.sid in str(f))
    return total


def _timed(fn):
    """(result, wall seconds, CPU seconds, system CPU seconds) of fn()."""
    t, c, sys0 = time.perf_counter(), time.process_time(), os.times().system
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c, os.times().system - sys0


def _fresh(path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def worker(corpus: str, db_path: str, rounds: int) -> dict:
    """`rounds` interleaved rounds of bare parse, raw lines only, and a whole import into a fresh
    database; the least of each is reported (on a shared machine, the least disturbed run), all
    of them in the JSON. Then one re-import of the last round's database."""
    sys.path.insert(0, str(REPO))
    from claude_hooks import transcript_tail
    from cra.db import open_db
    from cra.transcripts import importer

    files = importer.discover([corpus])
    nbytes = sum(os.path.getsize(f) for f in files)

    def bare_parse():
        lines = 0
        for f in files:
            with open(f, "rb") as fh:
                for line in fh:
                    if line.strip():
                        json.loads(line)
                        lines += 1
        return lines

    def bare_parse_file(f):
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    json.loads(line)

    def interleaved():
        """An import with the bare parse of its files run alongside, in blocks: after every
        INTERLEAVE_BYTES of files imported, the parse of those files (untimed for the import). The
        two alternate every few tens of milliseconds, so a slow spell of the machine hits both alike,
        and each parse block is long enough that starting on the caches the import left cold costs
        it little. Returns (import CPU s, bare CPU s)."""
        _fresh(db_path + "-interleaved")
        idb = open_db(db_path + "-interleaved", drain=False)
        spent = {"import": 0.0, "bare": 0.0, "mark": 0.0}
        block = []

        def parse_block():
            now = time.process_time()
            for f in block:
                bare_parse_file(f)
            block.clear()
            spent["mark"] = time.process_time()
            spent["bare"] += spent["mark"] - now

        def progress(path):
            spent["import"] += time.process_time() - spent["mark"]
            block.append(path)
            if sum(os.path.getsize(f) for f in block) >= INTERLEAVE_BYTES:
                parse_block()
            else:
                spent["mark"] = time.process_time()

        spent["mark"] = time.process_time()
        importer.import_paths(idb.conn, files, progress=progress)
        spent["import"] += time.process_time() - spent["mark"]  # the last batch's commit
        parse_block()
        idb.conn.close()
        _fresh(db_path + "-interleaved")
        return spent["import"], spent["bare"]

    bare, raw_only, first, mixed = [], [], [], []
    for _ in range(rounds):
        mixed.append(interleaved())
        lines, *t = _timed(bare_parse)
        bare.append(t)

        _fresh(db_path + "-raw-only")
        raw_db = open_db(db_path + "-raw-only", drain=False)
        _, *t = _timed(lambda raw_db=raw_db: [transcript_tail.tail_file(raw_db.conn, f) for f in files])
        raw_only.append(t)
        raw_db.conn.close()
        _fresh(db_path + "-raw-only")

        _fresh(db_path)
        db = open_db(db_path, drain=False)
        r, *t = _timed(lambda db=db: importer.import_paths(db.conn, files))
        assert not r.errors, r.errors[:3]
        first.append(t)
        if len(first) < rounds:
            db.conn.close()
    r2, *again = _timed(lambda: importer.import_paths(db.conn, files))
    assert r2.lines == 0 and r2.messages == 0
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # (wall s, CPU s, system CPU s) of the least-CPU round of each
    bare_w, bare_cpu, _ = min(bare, key=lambda t: t[1])
    _, raw_cpu, _ = min(raw_only, key=lambda t: t[1])
    import_w, import_cpu, import_sys = min(first, key=lambda t: t[1])
    mixed_ratios = [i / b for i, b in mixed]
    # How much slower the parse runs interleaved than alone, same round: the measure's lean.
    bare_slowdowns = [m[1] / b[1] for m, b in zip(mixed, bare)]
    # Each round's import against the same round's bare parse, run seconds before it.
    paired_ratios = [i[1] / b[1] for i, b in zip(first, bare)]
    again_w, again_cpu, _ = again
    return {
        "files": len(files),
        "mb": nbytes / 1e6,
        "lines": lines,
        "messages": r.messages,
        "tool_calls": r.tool_calls_new,
        "turns": r.turns,
        "rounds": rounds,
        "bare_cpu_s_all": [t[1] for t in bare],
        "raw_only_cpu_s_all": [t[1] for t in raw_only],
        "import_cpu_s_all": [t[1] for t in first],
        "bare_parse_s": bare_w,
        "import_s": import_w,
        "reimport_s": again_w,
        "bare_cpu_s": bare_cpu,
        "raw_only_cpu_s": raw_cpu,
        "import_cpu_s": import_cpu,
        "import_sys_cpu_s": import_sys,
        "reimport_cpu_s": again_cpu,
        "bare_mb_s_cpu": nbytes / 1e6 / bare_cpu,
        "import_mb_s_cpu": nbytes / 1e6 / import_cpu,
        "import_vs_bare_cpu": import_cpu / bare_cpu,
        "interleaved_cpu_s_all": mixed,
        "interleaved_vs_bare_all": mixed_ratios,
        "interleaved_vs_bare": sorted(mixed_ratios)[len(mixed_ratios) // 2],
        "interleaved_bare_slowdown_all": bare_slowdowns,
        "interleaved_bare_slowdown": sorted(bare_slowdowns)[len(bare_slowdowns) // 2],
        "paired_vs_bare_all": paired_ratios,
        "paired_vs_bare": sorted(paired_ratios)[len(paired_ratios) // 2],
        "raw_only_vs_bare_cpu": raw_cpu / bare_cpu,
        "reimport_vs_import_cpu": again_cpu / import_cpu,
        "load_avg_1m": os.getloadavg()[0],
        "bare_mb_s": nbytes / 1e6 / bare_w,
        "import_mb_s": nbytes / 1e6 / import_w,
        "import_vs_bare": import_w / bare_w,
        "reimport_vs_import": again_w / import_w,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "db_mb": os.path.getsize(db_path) / 1e6,
    }


def _run_worker(script, corpus, db, rounds) -> dict:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    out = subprocess.run(
        [sys.executable, str(script), "--worker", str(corpus), str(db), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _side_by_side(ref, ref_script, corpus, db, rounds):
    """One-round workers of REF's code and this tree's, alternating, on the same corpus."""
    keys = ("interleaved_vs_bare", "paired_vs_bare", "import_vs_bare_cpu", "db_mb")
    runs: dict[str, list] = {ref: [], "this tree": []}
    for _ in range(rounds):
        for name, script in ((ref, ref_script), ("this tree", __file__)):
            runs[name].append(_run_worker(script, corpus, db, 1))
    print(f"{corpus.name}: interleaved, paired, least/least import over bare parse (CPU time); database MB")
    for name, rs in runs.items():
        print(f"  {name:>10}: " + "; ".join(", ".join(f"{r[k]:.2f}" for k in keys) for r in rs))
    print(json.dumps({name: [{k: r[k] for k in keys} for r in rs] for name, rs in runs.items()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=200)
    ap.add_argument("--small-mb", type=float, default=50, help="second, smaller corpus (memory flatness); 0 to skip")
    ap.add_argument("--long-mb", type=float, default=60, help="long sessions (~3 MB transcripts); 0 to skip")
    ap.add_argument("--keep", help="build the corpora under this folder and keep them")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size; the least of each is reported")
    ap.add_argument(
        "--against",
        metavar="REF",
        help="also run REF's code (git archive REF) on the same corpora, one round at a time alternating with this"
        " tree's, and print both rounds' ratios side by side",
    )
    ap.add_argument("--worker", nargs=3, metavar=("CORPUS", "DB", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        corpus, db, rounds = args.worker
        print(json.dumps(worker(corpus, db, int(rounds))))
        return
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cra-bench-"))
    corpora = [("fixtures", args.small_mb, build_corpus), ("fixtures", args.size_mb, build_corpus)]
    corpora.append(("long sessions", args.long_mb, build_long_sessions))
    results = {}
    if args.against:
        ref_tree = base / "ref-src"
        ref_tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.against], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(ref_tree)], input=archive.stdout, check=True)
    try:
        for kind, size, build in [c for c in corpora if c[1]]:
            name = f"{kind.replace(' ', '-')}-{int(size)}mb"
            corpus = base / f"corpus-{name}"
            if not corpus.exists():
                print(f"building a {size:.0f} MB corpus of {kind} in {corpus} ...", file=sys.stderr)
                build(corpus, size)
            db = base / f"bench-{name}.db"
            for p in base.glob(f"bench-{name}.db*"):
                p.unlink()
            print(f"importing {corpus} ...", file=sys.stderr)
            if args.against:
                _side_by_side(args.against, ref_tree / "scripts" / "bench_import.py", corpus, db, args.rounds)
                continue
            results[f"{size:.0f} MB {kind}"] = _run_worker(__file__, corpus, db, args.rounds)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.against:
        return
    print(
        "CPU time (time.process_time, user + system, SQLite included) is what the ratios compare, the least of"
        f" {args.rounds} rounds each: wall time on a shared machine mostly measures the other jobs."
    )
    print(
        "import/bare: the median over the rounds of each round's import over the same round's bare parse;"
        " least/least: the least import over the least bare parse; interleaved: the median over the rounds of"
        " an import whose files alternate with their bare parse every %.0f MB (the parse runs %s slower that"
        " way than alone, by corpus)."
        % (
            INTERLEAVE_BYTES / 1e6,
            ", ".join("%+.0f%%" % (100 * r["interleaved_bare_slowdown"] - 100) for r in results.values()),
        )
    )
    head = (
        ("corpus", 26),
        ("files", 6),
        ("lines", 8),
        ("bare MB/s", 10),
        ("import MB/s", 12),
        ("import/bare", 12),
        ("least/least", 12),
        ("interleaved", 12),
        ("raw-only/bare", 14),
        ("reimport s", 11),
        ("re/import", 10),
        ("peak RSS MB", 12),
        ("db MB", 7),
        ("load", 6),
    )
    print(" ".join(f"{h:>{w}}" for h, w in head))
    for label, r in results.items():
        cells = (
            label,
            r["files"],
            r["lines"],
            f"{r['bare_mb_s_cpu']:.1f}",
            f"{r['import_mb_s_cpu']:.1f}",
            f"{r['paired_vs_bare']:.2f}x",
            f"{r['import_vs_bare_cpu']:.2f}x",
            f"{r['interleaved_vs_bare']:.2f}x",
            f"{r['raw_only_vs_bare_cpu']:.2f}x",
            f"{r['reimport_cpu_s']:.3f}",
            f"{r['reimport_vs_import_cpu']:.4f}x",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['db_mb']:.0f}",
            f"{r['load_avg_1m']:.1f}",
        )
        print(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, head)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
