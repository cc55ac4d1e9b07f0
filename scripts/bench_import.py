"""Benchmark `cra import`: throughput against bare JSON parsing, re-import cost, peak memory.

    .venv/bin/python scripts/bench_import.py                 # 200 MB and 50 MB corpora
    .venv/bin/python scripts/bench_import.py --size-mb 400 --small-mb 100 --keep /tmp/corpus

The corpus is built from the project's own transcript fixtures (tests/fixtures/recorded and
tests/fixtures/transcripts; ../shared's recordings too when present): each source session is copied
many times with fresh session ids and uuids, subagent files included, into a ~/.claude/projects-like
tree. Each size is measured in a fresh subprocess (so peak RSS is that size's own), and within it,
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
                blob = UUID.sub(lambda found: found.group(1) + tag, blob)
                return TOOL_USE_ID.sub(lambda found: found.group(1) + b"_" + tag, blob)  # tool calls unique too

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=200)
    ap.add_argument("--small-mb", type=float, default=50, help="second, smaller corpus (memory flatness); 0 to skip")
    ap.add_argument("--keep", help="build the corpora under this folder and keep them")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size; the least of each is reported")
    ap.add_argument("--worker", nargs=3, metavar=("CORPUS", "DB", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        corpus, db, rounds = args.worker
        print(json.dumps(worker(corpus, db, int(rounds))))
        return
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cra-bench-"))
    results = {}
    try:
        for size in [s for s in (args.small_mb, args.size_mb) if s]:
            corpus = base / f"corpus-{int(size)}mb"
            if not corpus.exists():
                print(f"building a {size:.0f} MB corpus in {corpus} ...", file=sys.stderr)
                build_corpus(corpus, size)
            db = base / f"bench-{int(size)}mb.db"
            for p in base.glob(f"bench-{int(size)}mb.db*"):
                p.unlink()
            print(f"importing {corpus} ...", file=sys.stderr)
            out = subprocess.run(
                [sys.executable, __file__, "--worker", str(corpus), str(db), str(args.rounds)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[size] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(
        "CPU time (time.process_time, user + system, SQLite included) is what the ratios compare, the least of"
        f" {args.rounds} rounds each: wall time on a shared machine mostly measures the other jobs."
    )
    print(
        "import/bare: the median over the rounds of each round's import over the same round's bare parse;"
        " least/least: the least import over the least bare parse; interleaved: the median over the rounds of"
        " an import whose files alternate with their bare parse every %.0f MB (the parse runs %s slower that"
        " way than alone, by size)."
        % (
            INTERLEAVE_BYTES / 1e6,
            ", ".join("%+.0f%%" % (100 * r["interleaved_bare_slowdown"] - 100) for r in results.values()),
        )
    )
    print(
        f"{'corpus':>10} {'files':>6} {'lines':>8} {'bare MB/s':>10} {'import MB/s':>12} {'import/bare':>12}"
        f" {'least/least':>12} {'interleaved':>12} {'raw-only/bare':>14} {'reimport s':>11} {'re/import':>10}"
        f" {'peak RSS MB':>12} {'db MB':>7} {'load':>6}"
    )
    print(
        f"{'':>10} {'':>6} {'':>8} {'(CPU)':>10} {'(CPU)':>12} {'(CPU)':>12} {'(CPU)':>12} {'(CPU)':>12} {'(CPU)':>14}"
        f" {'(CPU)':>11} {'(CPU)':>10}"
    )
    for r in results.values():
        print(
            f"{r['mb']:>8.0f}MB {r['files']:>6} {r['lines']:>8} {r['bare_mb_s_cpu']:>10.1f} "
            f"{r['import_mb_s_cpu']:>12.1f}"
            f" {r['paired_vs_bare']:>11.2f}x {r['import_vs_bare_cpu']:>11.2f}x {r['interleaved_vs_bare']:>11.2f}x"
            f" {r['raw_only_vs_bare_cpu']:>13.2f}x {r['reimport_cpu_s']:>11.3f}"
            f" {r['reimport_vs_import_cpu']:>9.4f}x {r['peak_rss_mb']:>12.0f} {r['db_mb']:>7.0f} "
            f"{r['load_avg_1m']:>6.1f}"
        )
    print(json.dumps({str(k): v for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
