"""Redaction: secrets and home directories out of everything cra writes for others to see.

Claude Code stores whatever was typed or read verbatim (keys pasted into prompts, `.env` files
printed by `cat`, tokens in `curl` headers), so anything built from sessions is a leak waiting to
happen. Every output passes through here: datasets and pairs, the eval pack, `cra stats` JSON and
HTML, `cra serve`'s logs, export metadata; `cra redact check` audits a file or dataset and
`cra redact db` rewrites the database at rest (docs/redaction.md).

The stable API (other stages call only this):

    from cra.redact import Redactor, redact_text, redact_obj
    redact_text("token ghp_...")          # -> "token [REDACTED:github_token]"
    r = Redactor(); r.redact(text); r.redact_obj(json_value); r.counts   # counts by kind
    r.findings(text)                      # what would be replaced, as (start, end, kind, replacement)

Rooms: `providers.py` (shaped tokens, from the providers' documented formats), `names.py` (which
names hold secrets, which values are secrets), `context.py` (values found by their context),
`redactor.py` (spans merged and replaced), `scan.py` (`cra redact check`), `at_rest.py`
(`cra redact db`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .names import is_secret_name
from .redactor import MARK, Finding, Redactor, replaced

__all__ = ["MARK", "Finding", "Redactor", "is_secret_name", "redact_obj", "redact_text"]


@lru_cache(maxsize=1)
def _shared() -> Redactor:
    return Redactor()


def redact_text(text: str) -> str:
    """`text` with secrets and this user's home directory replaced. Safe from any thread (it counts
    nothing: a server's log calls it from several)."""
    return replaced(text, _shared().findings(text))


def redact_obj(obj: Any) -> Any:
    """Every string inside a JSON-like value redacted, as `redact_text` does."""
    return _shared().redact_obj(obj)
