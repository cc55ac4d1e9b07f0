"""Evaluations side by side, as text: one column per model, every number with its 95% interval."""

from __future__ import annotations

from typing import Any


def _pct(p: dict | None) -> str:
    if not p or p.get("rate") is None:
        return "-"
    return f"{100 * p['rate']:.1f}% [{100 * p['low']:.0f}-{100 * p['high']:.0f}] {p['k']}/{p['n']}"


def _mean(m: dict | None, digits: int = 2) -> str:
    if not m or m.get("mean") is None:
        return "-"
    if m.get("low") is None:
        return f"{m['mean']:.{digits}f} n={m['n']}"
    return f"{m['mean']:.{digits}f} [{m['low']:.{digits}f}, {m['high']:.{digits}f}] n={m['n']}"


def column_title(row: dict[str, Any]) -> str:
    if row["subject"] == "base":
        return "base"
    return f"{row['subject']} {row['model_run_id']}" if row["subject"] == "parent" else f"run {row['model_run_id']}"


def metric_rows(evals: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    ms = [e["metrics"] for e in evals]
    rows = [
        ("tool name accuracy", [_pct(m["tool_name_accuracy"]) for m in ms]),
        ("stop vs continue accuracy", [_pct(m["stop_accuracy"]) for m in ms]),
        ("exact argument match", [_pct(m["exact_args"]) for m in ms]),
        ("argument similarity", [_mean(m["arg_similarity"]) for m in ms]),
    ]
    tools = sorted({t for m in ms for t in m["arg_similarity_by_tool"]})
    for tool in tools:
        rows.append((f"  {tool}", [_mean(m["arg_similarity_by_tool"].get(tool)) for m in ms]))
    rows += [
        ("format: parseable calls", [_pct(m["format"]["parseable"]) for m in ms]),
        ("format: known tools", [_pct(m["format"]["known_tool"]) for m in ms]),
        ("format: valid arguments", [_pct(m["format"]["valid_arguments"]) for m in ms]),
        ("sequence edit distance (lower=closer)", [_mean(m["sequence"]["edit_distance"]) for m in ms]),
        ("exploration depth agreement", [_pct(m["sequence"]["depth_agreement"]) for m in ms]),
        ("exploration calls |diff|", [_mean(m["sequence"]["exploration_calls_diff"], 1) for m in ms]),
    ]
    for comp in sorted({k for m in ms for k in m.get("reward", {})}):
        rows.append((f"reward: {comp}", [_mean(m["reward"].get(comp)) for m in ms]))
    return rows


def table(header: list[str], rows: list[tuple[str, list[str]]]) -> str:
    grid = [header] + [[label, *cells] for label, cells in rows]
    widths = [max(len(r[i]) for r in grid) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in grid)


def side_by_side(evals: list[dict[str, Any]], title: str) -> str:
    m0 = evals[0]["metrics"]
    lines = [
        title,
        f"{m0['steps']} steps ({m0['call_steps']} tool calls, {m0['answer_steps']} answers), "
        f"{m0['sequence']['turns']} complete turns; 95% intervals in brackets.",
        "",
        table(["", *[column_title(e) for e in evals]], metric_rows(evals)),
    ]
    subjects = {e["subject"]: e for e in evals}
    if "run" in subjects and "base" in subjects:
        run, base = subjects["run"]["metrics"]["tool_name_accuracy"], subjects["base"]["metrics"]["tool_name_accuracy"]
        if run.get("rate") is not None and base.get("rate") is not None:
            diff = 100 * (run["rate"] - base["rate"])
            verdict = "beats" if run["low"] > base["high"] else ("ahead of" if diff > 0 else "not ahead of")
            lines += [
                "",
                f"Tool-name accuracy: run {100 * run['rate']:.1f}% vs base {100 * base['rate']:.1f}% "
                f"({diff:+.1f} points): the adapter {verdict} its base"
                + (" (intervals do not overlap)." if verdict == "beats" else "."),
            ]
    return "\n".join(lines)
