"""`cra redact check PATH`: what redaction would replace in a file or a directory (a built dataset,
a pairs export, an eval pack, a report), for a person's own audit before sharing.

JSON and JSONL are read as data: every string is scanned, JSON inside a string (tool arguments, a
tool list) is decoded and scanned too, and a key that names a secret counts as the redactor counts
it; other files are scanned as text. A finding says where (file, line, JSON path) and what kind, and
shows only a masked preview: the report itself never repeats a secret.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputFormatError, NotFoundError
from .redactor import Redactor

# Files a directory scan reads; anything else (model weights, images, databases) is skipped.
TEXT_SUFFIXES = {".jsonl", ".json", ".md", ".txt", ".html", ".csv", ".yaml", ".yml", ".toml", ".log", ".py", ".sh"}
_SNIFF = 8192


@dataclass
class Finding:
    path: str
    line: int  # 1-based
    where: str  # JSON path inside the line or document ("" for plain text)
    kind: str
    preview: str  # the first characters of the value and its length, never the whole value

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    files: int
    findings: list[Finding]
    skipped: list[str]

    @property
    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "clean": not self.findings,
            "found": len(self.findings),
            "by_kind": self.by_kind,
            "findings": [f.as_dict() for f in self.findings],
            "skipped": self.skipped,
        }


def mask(value: str) -> str:
    shown = value[:4] if len(value) >= 12 else value[:1]
    return f"{shown}... ({len(value)} chars)"


def check_path(path: str | os.PathLike, redactor: Redactor | None = None) -> Report:
    """Scan a file, or every text file under a directory."""
    root = Path(path).expanduser()
    if not root.exists():
        raise NotFoundError(f"{root} does not exist: give a file or a dataset directory")
    redactor = redactor or Redactor()
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    findings: list[Finding] = []
    skipped: list[str] = []
    scanned = 0
    for file in files:
        if root.is_dir() and file.suffix.lower() not in TEXT_SUFFIXES:
            skipped.append(str(file))
            continue
        try:
            text = _read_text(file)
        except InputFormatError:
            if root.is_file():
                raise
            skipped.append(str(file))
            continue
        scanned += 1
        findings.extend(_scan_file(file, text, redactor))
    return Report(scanned, findings, skipped)


def _read_text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputFormatError(f"cannot read {file}: {exc.strerror}") from exc
    if b"\0" in data[:_SNIFF]:
        raise InputFormatError(f"{file} is a binary file: check text files (JSONL, JSON, Markdown, ...)")
    return data.decode("utf-8", errors="replace")


def _scan_file(file: Path, text: str, redactor: Redactor) -> Iterator[Finding]:
    name = str(file)
    if file.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            try:
                value = json.loads(line)
            except ValueError:
                yield from _scan_text(name, line, redactor, first_line=n)
                continue
            for where, kind, secret in _scan_json(value, "$", redactor):
                yield Finding(name, n, where, kind, mask(secret))
        return
    if file.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if value is not None:
            for where, kind, secret in _scan_json(value, "$", redactor):
                yield Finding(name, 1, where, kind, mask(secret))
            return
    yield from _scan_text(name, text, redactor)


def _scan_text(name: str, text: str, redactor: Redactor, first_line: int = 1) -> Iterator[Finding]:
    for f in redactor.findings(text):
        line = first_line + text.count("\n", 0, f.start)
        yield Finding(name, line, "", f.kind, mask(text[f.start : f.end]))


def _scan_json(value: Any, where: str, redactor: Redactor) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, str):
        if value[:1] in "[{" and value[-1:] in "]}":
            try:
                inner = json.loads(value)
            except ValueError:
                inner = None
            if isinstance(inner, (dict, list)):
                yield from _scan_json(inner, where + "<json>", redactor)
                return
        for f in redactor.findings(value):
            yield where, f.kind, value[f.start : f.end]
    elif isinstance(value, dict):
        for k, v in value.items():
            kind = redactor.named_value_kind(k, v)
            if kind:
                yield f"{where}.{k}", kind, v
            else:
                yield from _scan_json(v, f"{where}.{k}", redactor)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _scan_json(v, f"{where}[{i}]", redactor)
