"""Benchmark redaction: cra's redactor against detect-secrets (as a library) and the redactor it
replaced, on recall, precision and speed, side by side in one run.

    .venv/bin/python scripts/bench_redact.py              # seeds 0-4 of the generated corpus
    .venv/bin/python scripts/bench_redact.py --seeds 20

- recall: share of the generated secrets (cra/testing/secret_corpus.py, one per kind per seed) that
  would be gone. cra (new and old) redact spans, so a secret counts as caught when its value is no
  longer in the output. detect-secrets flags lines: a secret counts as caught when any line it
  touches is flagged (generous: dropping the flagged lines is the most a user could do with it);
- precision: look-alikes (SHAs, UUIDs, lockfile hashes, data URIs, ...) left untouched, and
  findings per 100 KB of ordinary code (this repository's own modules, outside its redaction and
  test-corpus code) and of the clean fixtures;
- speed: MB/s over the same corpus texts and over the code, each tool on the same strings in the
  same process, alternating, best of --repeat.

The old redactor is read from git (`cra/dataset/redact.py` at --old-ref, by default 3e4ab0e, the
last commit before it moved to cra/redact), so the comparison needs no second checkout.
detect-secrets is in the dev extra (constraints.txt pins it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def load_old(ref: str):
    """The redactor module at git `ref` (before it moved to cra/redact), or None."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:cra/dataset/redact.py"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "old_redact.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_redact", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CraTool:
    def __init__(self, redactor_class, name):
        self.name = name
        self.make = lambda: redactor_class(homes=[])

    def caught(self, text: str, value: str) -> bool:
        return value not in self.make().redact(text)

    def changed(self, text: str) -> bool:
        return self.make().redact(text) != text

    def findings(self, text: str) -> int:
        r = self.make()
        r.redact(text)
        return sum(r.counts.values())

    def run(self, texts):
        r = self.make()
        for t in texts:
            r.redact(t)


class DetectSecretsTool:
    """detect-secrets as its docs use it as a library: default settings (every plugin, every
    filter), `SecretsCollection.scan_file` on each text written to a file beforehand (writing is not
    timed). Its findings are lines."""

    name = "detect-secrets 1.5 (default plugins and filters)"

    def __init__(self):
        from detect_secrets import SecretsCollection
        from detect_secrets.settings import default_settings

        self._collection = SecretsCollection
        self._settings = default_settings
        self._dir = Path(tempfile.mkdtemp(prefix="bench-redact-"))
        self._files: dict[str, Path] = {}

    def _file(self, text: str) -> Path:
        path = self._files.get(text)
        if path is None:
            path = self._dir / f"{len(self._files)}.txt"
            path.write_text(text, encoding="utf-8")
            self._files[text] = path
        return path

    def _lines(self, text: str) -> list[int]:
        """0-based lines flagged."""
        path = str(self._file(text))
        with self._settings():
            found = self._collection()
            found.scan_file(path)
            return [secret.line_number - 1 for _, secret in found]

    def caught(self, text: str, value: str) -> bool:
        start = text.index(value)
        first = text.count("\n", 0, start)
        last = first + value.count("\n")
        return any(first <= i <= last for i in self._lines(text))

    def changed(self, text: str) -> bool:
        return bool(self._lines(text))

    def findings(self, text: str) -> int:
        return len(set(self._lines(text)))

    def prepare(self, texts):
        for t in texts:
            self._file(t)

    def run(self, texts):
        paths = [str(self._file(t)) for t in texts]
        with self._settings():
            for path in paths:
                self._collection().scan_file(path)


def code_texts() -> list[str]:
    skip = ("cra/redact/", "cra/testing/secret_corpus.py")
    files = sorted(p for p in (ROOT / "cra").rglob("*.py") if not str(p.relative_to(ROOT)).startswith(skip))
    files += sorted((ROOT / "tests" / "fixtures" / "secrets" / "clean").iterdir())
    return [p.read_text(encoding="utf-8") for p in files]


def timed(tool, texts, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        tool.run(texts)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="corpus seeds (each: one secret per kind)")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per tool (best is kept)")
    parser.add_argument("--old-ref", default="3e4ab0e", help="git ref holding the previous cra/dataset/redact.py")
    ns = parser.parse_args()

    from cra.redact import Redactor
    from cra.testing.secret_corpus import lookalikes, secrets

    tools = [CraTool(Redactor, "cra (cra/redact)")]
    old = load_old(ns.old_ref)
    if old is not None:
        tools.append(CraTool(old.Redactor, f"cra before ({ns.old_ref}:cra/dataset/redact.py)"))
    try:
        tools.append(DetectSecretsTool())
    except ImportError:
        print("detect-secrets is not installed (pip install -e '.[dev]'): left out", file=sys.stderr)

    secret_items = [it for seed in range(ns.seeds) for it in secrets(seed)]
    lookalike_items = [it for seed in range(ns.seeds) for it in lookalikes(seed)]
    code = code_texts()
    code_kb = sum(len(t) for t in code) / 1024
    corpus_texts = [it.text for it in secret_items + lookalike_items]
    corpus_mb = sum(len(t) for t in corpus_texts) / 2**20

    print(
        f"corpus: {len(secret_items)} secrets ({len(secret_items) // ns.seeds} kinds x {ns.seeds} seeds), "
        f"{len(lookalike_items)} look-alikes; code: {len(code)} files, {code_kb:.0f} KB; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for t in tools:
        getattr(t, "prepare", lambda texts: None)(corpus_texts + code)
    rows = []
    timings = {t.name: [float("inf"), float("inf")] for t in tools}
    for _ in range(ns.repeat):  # alternate tools so that load changes affect all alike
        for t in tools:
            timings[t.name][0] = min(timings[t.name][0], timed(t, corpus_texts, 1))
            timings[t.name][1] = min(timings[t.name][1], timed(t, code, 1))
    for t in tools:
        caught = [it for it in secret_items if t.caught(it.text, it.value)]
        kinds_missed = sorted({it.kind for it in secret_items} - {it.kind for it in caught})
        kept = sum(1 for it in lookalike_items if not t.changed(it.text))
        code_findings = sum(t.findings(text) for text in code)
        rows.append(
            (
                t.name,
                f"{100 * len(caught) / len(secret_items):.1f}%",
                len(kinds_missed),
                f"{100 * kept / len(lookalike_items):.1f}%",
                f"{100 * code_findings / code_kb:.1f}",
                f"{corpus_mb / timings[t.name][0]:.2f}",
                f"{code_kb / 1024 / timings[t.name][1]:.2f}",
            )
        )
        if kinds_missed:
            print(f"{t.name} missed: {', '.join(kinds_missed)}", file=sys.stderr)
    print(
        "\n| tool | recall | kinds missed | look-alikes kept | flagged per 100 KB of code | corpus MB/s | code MB/s |"
        "\n|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
