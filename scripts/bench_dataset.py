"""Benchmark `cra dataset build`: examples per second, and peak memory at two corpus sizes.

    .venv/bin/python scripts/bench_dataset.py                 # 10,000 and 50,000 turns
    .venv/bin/python scripts/bench_dataset.py --sizes 2000 8000

Each size gets a synthetic database (turns, messages, tool calls with realistic sizes: a parallel
step, file reads of a few KB, a 60-word answer, a planted secret every 50 turns), built once and
cached under --work. The build runs in a fresh child process so that its peak RSS is the build's
alone; memory must stay flat across sizes (the build streams).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def make_db(path: str, turns: int, seed: int = 0) -> None:
    from cra.db import open_db

    if os.path.exists(path):
        os.remove(path)
    db = open_db(path, drain=False)
    conn = db.conn
    rng = random.Random(seed)
    words = (
        "the parser reads config files and the tests check every branch of the retry logic before "
        "we ship a change to the storage layer"
    ).split()
    conn.execute("BEGIN")
    per_session = 10
    uid = 0
    for t in range(turns):
        sid = f"bench-{t // per_session:06d}"
        if t % per_session == 0:
            conn.execute("INSERT INTO sessions (id, cwd) VALUES (?, ?)", [sid, "/home/alice/proj"])
        answer = " ".join(rng.choice(words) for _ in range(60))
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
        if t % 50 == 0:
            prompt += " my token is ghp_" + "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyzABCDEF0123456789") for _ in range(36)
            )
        cur = conn.execute(
            "INSERT INTO turns (session_id, turn_index, prompt_text, final_answer, tool_call_count, outcome)"
            " VALUES (?,?,?,?,?,?)",
            [sid, t % per_session, prompt, answer, 3, "completed"],
        )
        turn_id = cur.lastrowid
        seq = 0

        def msg(role, content, api=None, sid=sid, turn_id=turn_id):
            nonlocal uid, seq
            uid += 1
            seq += 1
            conn.execute(
                "INSERT INTO messages (uuid, session_id, role, entry_seq, content, api_message_id, turn_id, cwd)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [f"m{uid}", sid, role, seq, json.dumps(content), api, turn_id, "/home/alice/proj"],
            )

        def call(name, inp, result, api, sid=sid, turn_id=turn_id):
            nonlocal uid
            uid += 1
            cid = f"toolu_{uid}"
            msg("assistant", [{"type": "tool_use", "id": cid, "name": name, "input": inp}], api)
            conn.execute(
                "INSERT INTO tool_calls (tool_use_id, session_id, tool_name, tool_input, status, seq, turn_id, source)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [cid, sid, name, json.dumps(inp), "success", uid, turn_id, "transcript"],
            )
            return cid, result

        msg("user", [{"type": "text", "text": prompt}])
        api = f"msg_{turn_id}_a"
        msg("assistant", [{"type": "thinking", "thinking": "I will look at the files first.", "signature": "s"}], api)
        msg("assistant", [{"type": "text", "text": "Searching and listing in parallel."}], api)
        c1 = call("Grep", {"pattern": "def load", "path": "/home/alice/proj"}, "src/a.py:3:def load():", api)
        c2 = call(
            "Bash",
            {"command": "ls -la src"},
            "\n".join(f"-rw-r--r-- 1 u u {rng.randint(10, 9999)} f{i}.py" for i in range(20)),
            api,
        )
        for cid, res in (c1, c2):
            msg("user", [{"type": "tool_result", "tool_use_id": cid, "content": res}])
        api = f"msg_{turn_id}_b"
        body = "\n".join(
            f"{i}\t" + " ".join(rng.choice(words) for _ in range(8)) for i in range(1, rng.randint(20, 200))
        )
        cid, res = call("Read", {"file_path": "/home/alice/proj/src/a.py"}, body, api)
        msg("user", [{"type": "tool_result", "tool_use_id": cid, "content": res}])
        msg("assistant", [{"type": "text", "text": answer}], f"msg_{turn_id}_c")
    conn.execute("COMMIT")
    conn.close()


def run_build(db_path: str, out: str) -> dict:
    """In this process (called in a child): build, report time and peak RSS."""
    from cra.dataset.build import BuildOptions, DatasetBuilder
    from cra.db import open_db

    db = open_db(db_path, drain=False)
    started = time.perf_counter()
    summary = DatasetBuilder(db, BuildOptions(eval_fraction=0.1)).build(out)
    seconds = time.perf_counter() - started
    examples = summary["train_examples"] + summary["eval_examples"]
    return {
        "turns": summary["turns_seen"],
        "examples": examples,
        "seconds": round(seconds, 2),
        "examples_per_s": round(examples / seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "redactions": sum(summary["redactions"].values()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 50_000], help="turns in the two corpora")
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "cra-bench-dataset"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        print(json.dumps(run_build(*ns.child)))
        return
    os.makedirs(ns.work, exist_ok=True)
    env = {**os.environ, "CRA_HOME": os.path.join(ns.work, "home")}
    results = []
    for size in ns.sizes:
        db_path = os.path.join(ns.work, f"turns-{size}.db")
        if not os.path.exists(db_path):
            t0 = time.perf_counter()
            make_db(db_path, size)
            print(f"made {db_path} ({size} turns) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        out = os.path.join(ns.work, f"out-{size}")
        proc = subprocess.run(
            [sys.executable, __file__, "--child", db_path, out], env=env, capture_output=True, text=True, check=True
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    small, big = results
    print("\n| turns | examples | seconds | examples/s | peak RSS (MiB) |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['turns']:,} | {r['examples']:,} | {r['seconds']} | {r['examples_per_s']} | {r['peak_rss_mib']} |")
    growth = big["peak_rss_mib"] - small["peak_rss_mib"]
    print(f"\npeak RSS grew {growth:+.1f} MiB for {big['turns'] / small['turns']:.0f}x the turns")


if __name__ == "__main__":
    main()
