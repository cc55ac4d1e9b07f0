"""The redactor: every rule's spans over a text, merged, replaced once.

Rules never see each other's output: each finds spans in the original text (shaped provider
tokens, named values, shaped contexts), overlapping spans merge into one (so a secret two rules
half-match is replaced whole), and the text is rebuilt in one pass. A replacement reads
`[REDACTED:<kind>]`, so a model trained on the data sees that something was there, and the
dataset card can say how much of what was removed. Marks are never matched again: redacting
twice changes nothing.

Home directories are not secrets but say who the user is: `/home/<name>`, `/Users/<name>` and
`C:\\Users\\<name>` become `/home/user` (paths stay absolute and usable).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from functools import lru_cache
from typing import Any, NamedTuple

from . import context
from .names import MARK_PREFIX, looks_like_value, secret_name
from .providers import TOKEN_RULES

MARK = "[REDACTED:%s]"
NEUTRAL_USERS = ("user", "runner", "linuxbrew")
_MIN_SECRET_TEXT = 6  # nothing shorter holds a secret (`pwd=ab` is the shortest named one)
_MIN_TOKEN = 16  # no provider token is shorter (LTAI + 12)
_LONG_WORD = re.compile(r"\S{%d}" % _MIN_TOKEN)


class Finding(NamedTuple):
    """One replacement: text[start:end] becomes `replacement`."""

    start: int
    end: int
    kind: str
    replacement: str


class _Compiled:
    """The rules compiled once per process (on first use, not at import: `cra --help` never pays)."""

    def __init__(self):
        self.rules = [(rule, re.compile(rule.pattern)) for rule in TOKEN_RULES]
        in_words: dict[str, list[int]] = {}
        in_text: dict[str, list[int]] = {}
        for i, rule in enumerate(TOKEN_RULES):
            for keyword in rule.keywords:
                where = in_text if rule.near or any(c.isspace() for c in keyword) else in_words
                where.setdefault(keyword, []).append(i)
        self.in_words = list(in_words.items())  # keywords inside a token: looked for in long words
        self.in_text = list(in_text.items())  # keywords beside a token or with a space: in the text


@lru_cache(maxsize=1)
def _rules() -> _Compiled:
    return _Compiled()


_HOME_GENERIC = re.compile(
    # Only at the start of a path: `example.com/home/page` is a URL, not a home directory.
    r"(?<![A-Za-z0-9_.\-/:])(?:/home/|/Users/|[A-Za-z]:\\\\?Users\\\\?)(?P<val>[A-Za-z0-9._\-]+)"
)


class Redactor:
    """Replace secrets in strings; `counts` says how many of each kind were replaced.

    `homes`: home directories to anonymise (default: this user's); every `/home/<name>` and
    `/Users/<name>` becomes `/home/user` / `/Users/user` too. `home_paths=False` leaves paths alone
    (rewriting the database at rest keeps them: they locate transcript files).
    """

    def __init__(self, homes: list[str] | None = None, enabled: bool = True, home_paths: bool = True):
        self.enabled = enabled
        self.home_paths = home_paths
        self.counts: Counter[str] = Counter()
        home_list = [os.path.expanduser("~")] if homes is None else list(homes)
        home_list = [h.rstrip("/\\") for h in home_list if h and h.rstrip("/\\") not in ("", "/root")]
        self._homes = sorted(set(home_list), key=len, reverse=True)
        self._rules = _rules()

    # -- public ---------------------------------------------------------------------------------

    def findings(self, text: str) -> list[Finding]:
        """What `redact` would replace in `text`, in order, without counting anything."""
        if not self.enabled or not isinstance(text, str) or len(text) < _MIN_SECRET_TEXT:
            return []
        low = text.lower()
        spans = self._secret_spans(text, low)
        if "[redacted:" in low:
            spans = _outside_marks(text, spans)
        found = [Finding(s, e, k, MARK % k) for s, e, k in _merged(spans)]
        if self.home_paths:
            found = _without_overlaps(found, self._home_findings(text, low))
        return found

    def redact(self, text: str) -> str:
        found = self.findings(text)
        for f in found:
            self.counts[f.kind] += 1
        return replaced(text, found)

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like value. Dict keys are names, left alone, and a
        key that names a secret (`{"password": "hunter2"}` as structured tool input) has its whole
        value replaced."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                kind = self.named_value_kind(k, v)
                if kind:
                    self.counts[kind] += 1
                    out[k] = MARK % kind
                else:
                    out[k] = self.redact_obj(v)
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return obj

    def named_value_kind(self, key: Any, value: Any) -> str | None:
        """The kind to replace a whole dict value with, when its key names a secret and the value
        is one (`{"password": "hunter2"}` as structured tool input); None otherwise."""
        if not (self.enabled and isinstance(key, str) and isinstance(value, str)):
            return None
        strength = secret_name(key)
        if not strength or not looks_like_value(value, strength):
            return None
        inner = self.findings(value)
        return inner[0].kind if inner and inner[0].kind != "home_path" else "config_secret"

    # -- internals ------------------------------------------------------------------------------

    def _secret_spans(self, text: str, low: str) -> list[tuple[int, int, int, str]]:
        """(start, rule order, end, kind): provider rules first, so their kind wins a tie."""
        compiled = self._rules
        active: set[int] = set()
        for keyword, indexes in compiled.in_text:
            if keyword in low:
                active.update(indexes)
        if _LONG_WORD.search(low):
            long_words = "\n".join([w for w in low.split() if len(w) >= _MIN_TOKEN])
            for keyword, indexes in compiled.in_words:
                if keyword in long_words:
                    active.update(indexes)
        spans = []
        for i in sorted(active):
            rule, pattern = compiled.rules[i]
            for m in pattern.finditer(text):
                value = m.group(0)
                if value.startswith(MARK_PREFIX):
                    continue
                if rule.random and not _mixed(value):
                    continue
                spans.append((m.start(), i, m.end(), rule.kind))
        order = len(compiled.rules)
        for start, end, kind in context.named_values(text, low):
            spans.append((start, order, end, kind))
        for start, end, kind in context.shaped_contexts(text, low):
            spans.append((start, order + 1, end, kind))
        return spans

    def _home_findings(self, text: str, low: str) -> list[Finding]:
        found = []
        for home in self._homes:
            generic = "/Users/user" if home.startswith("/Users/") else "/home/user"
            if home == generic:
                continue
            start = text.find(home)
            while start != -1:
                end = start + len(home)
                if end == len(text) or not (text[end].isalnum() or text[end] in "._-"):
                    found.append(Finding(start, end, "home_path", generic))
                start = text.find(home, end)
        if "/home/" in text or "/users/" in low or "\\users\\" in low:
            for m in _HOME_GENERIC.finditer(text):
                if m["val"] in NEUTRAL_USERS or m["val"].startswith("[REDACTED"):
                    continue
                found.append(Finding(m.start("val"), m.end("val"), "home_path", "user"))
        found.sort()
        return found


def replaced(text: str, found: list[Finding]) -> str:
    """`text` with each finding's span replaced (findings in order, not overlapping)."""
    if not found:
        return text
    out, last = [], 0
    for f in found:
        out.append(text[last : f.start])
        out.append(f.replacement)
        last = f.end
    out.append(text[last:])
    return "".join(out)


_MARK = re.compile(r"\[REDACTED:[a-z0-9_]+\]")


def _outside_marks(text: str, spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """Spans that touch no earlier replacement: redacting twice changes nothing."""
    marks = [(m.start(), m.end()) for m in _MARK.finditer(text)]
    return [sp for sp in spans if not any(sp[0] < e and s < sp[2] for s, e in marks)]


def _mixed(value: str) -> bool:
    """A token with letters and digits both: a rule whose shape an identifier could take needs it."""
    tail = value.split("_", 1)[-1] if "_" in value else value
    return any(c.isdigit() for c in tail) and any(c.isalpha() for c in tail)


def _merged(spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans become one (the earliest-starting rule, providers first, names it)."""
    out: list[list] = []
    for start, _order, end, kind in sorted(spans):
        if out and start < out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end, kind])
    return [(s, e, k) for s, e, k in out]


def _without_overlaps(secrets: list[Finding], homes: list[Finding]) -> list[Finding]:
    if not homes:
        return secrets
    kept: list[Finding] = []
    for h in homes:
        if kept and h.start < kept[-1].end:
            continue
        if not any(s.start < h.end and h.start < s.end for s in secrets):
            kept.append(h)
    return sorted(secrets + kept)
