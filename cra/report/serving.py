"""`cra stats`' serving section: how much of the work `cra serve` answered locally, and how it went."""

from __future__ import annotations


def compute(db, filters=None) -> dict | None:
    """Requests `cra serve` recorded (within --since/--until), or None when it never served any."""
    from ..serve.store import request_summary
    from ..when import parse_when

    since = parse_when(filters.since) if filters is not None and filters.since else None
    until = parse_when(filters.until, end=True) if filters is not None and filters.until else None
    summary = request_summary(db, since=since, until=until)
    return summary if summary["requests"] else None


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def render_text(s: dict | None) -> list[str]:
    if not s:
        return []
    lines = [
        "\nServed by cra serve",
        f"  {s['answered_locally']} of {s['requests']} requests answered locally "
        f"({_pct(s['answered_locally'], s['requests'])}), from {s['local_sessions']} of {s['sessions']} sessions; "
        f"{s['upstream']} forwarded upstream, {s['fell_back']} fell back to it",
    ]
    details = []
    if s["local_answers"]:
        details.append(
            f"local answers parsed {s['parsed']}/{s['local_answers']} ({_pct(s['parsed'], s['local_answers'])})"
        )
    if s["local_median_latency_ms"] is not None:
        details.append(f"median local latency {s['local_median_latency_ms']:.0f} ms")
    if s["shadow_compared"]:
        details.append(
            f"shadow: local agreed {s['shadow_agreed']}/{s['shadow_compared']} "
            f"({_pct(s['shadow_agreed'], s['shadow_compared'])})"
        )
    if s["not_ok"]:
        details.append(f"{s['not_ok']} not ok (errors, clients that left)")
    if details:
        lines.append("  " + "; ".join(details))
    return lines
