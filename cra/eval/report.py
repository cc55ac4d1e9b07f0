"""Evaluations side by side, as text: one column per model and per baseline, every number with its
95% interval, strict metrics first, then the lenient ones (labelled), then the verdict."""

from __future__ import annotations

from typing import Any

from .baselines import NAMES as BASELINE_NAMES

HEADLINE = ("strict", "tool_name_accuracy")  # what the verdict compares


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


def _get(m: dict, *path) -> Any:
    value: Any = m
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def column_title(row: dict[str, Any]) -> str:
    if row["subject"] == "base":
        return "base"
    return f"{row['subject']} {row['model_run_id']}" if row["subject"] == "parent" else f"run {row['model_run_id']}"


def columns(evals: list[dict[str, Any]]) -> list[tuple[str, dict]]:
    """(title, metrics) for every model, then every baseline the first eval measured on the same steps."""
    cols = [(column_title(e), e["metrics"]) for e in evals]
    same_steps = len({e["steps_hash"] for e in evals}) == 1
    for kind, report in (evals[0]["metrics"].get("baselines") or {}).items() if same_steps else ():
        cols.append((BASELINE_NAMES.get(kind, kind), report))
    return cols


def metric_rows(ms: list[dict]) -> list[tuple[str, list[str] | None]]:
    """(label, one cell per column); a row without cells is a section heading."""

    def pct(*path):
        return [_pct(_get(m, *path)) for m in ms]

    def mean(*path, digits=2):
        return [_mean(_get(m, *path), digits) for m in ms]

    rows = [
        ("STRICT: a call counts only if it parses, names an offered tool and has valid arguments", None),
        ("tool calls right (all of the step's)", pct("strict", "tool_name_accuracy")),
        ("tool calls right (partial credit)", mean("strict", "tool_name_credit")),
        ("exact action (tools and arguments)", pct("strict", "exact_action")),
        ("stop vs continue", pct("strict", "stop_accuracy")),
        ("Claude's calls matched (recall)", pct("strict", "call_recall")),
        ("model's calls right (precision)", pct("strict", "call_precision")),
        ("LENIENT: the first call's tool, even from a broken call", None),
        ("tool name accuracy (lenient)", pct("tool_name_accuracy")),
        ("stop vs continue (lenient)", pct("stop_accuracy")),
        ("exact argument match (lenient)", pct("exact_args")),
        ("argument similarity (lenient)", mean("arg_similarity")),
    ]
    tools = sorted({t for m in ms for t in (m.get("arg_similarity_by_tool") or {})})
    for tool in tools:
        rows.append((f"  {tool}", mean("arg_similarity_by_tool", tool)))
    rows += [
        ("format: parseable calls", pct("format", "parseable")),
        ("format: known tools", pct("format", "known_tool")),
        ("format: valid arguments", pct("format", "valid_arguments")),
        ("sequence edit distance (lower=closer)", mean("sequence", "edit_distance")),
        ("exploration depth agreement", pct("sequence", "depth_agreement")),
        ("exploration calls |diff|", mean("sequence", "exploration_calls_diff", digits=1)),
    ]
    for comp in sorted({k for m in ms for k in (m.get("reward") or {})}):
        rows.append((f"reward: {comp}", mean("reward", comp)))
    return rows


def table(header: list[str], rows: list[tuple[str, list[str] | None]]) -> str:
    """Aligned columns; a row without cells is printed as a heading line across the table."""
    grid = [header] + [[label, *cells] for label, cells in rows if cells is not None]
    widths = [max(len(r[i]) for r in grid) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header)] + [label if cells is None else line([label, *cells]) for label, cells in rows])


def _compare(name: str, model: dict, other_name: str, other: dict) -> tuple[str, str]:
    """(verdict word, sentence) for `model` against `other` on the same steps (Wilson intervals)."""
    diff = 100 * (model["rate"] - other["rate"])
    if model["low"] > other["high"]:
        word = "beats"
        tail = "(intervals do not overlap)"
    elif diff > 0:
        word = "is ahead of, but not shown to beat,"
        tail = "(the intervals overlap)"
    else:
        word = "does NOT beat"
        tail = "(it is behind)" if diff < 0 else "(a tie)"
    return word, (
        f"{name} {100 * model['rate']:.1f}% vs {other_name} {100 * other['rate']:.1f}% ({diff:+.1f} points): "
        f"the model {word} {other_name} {tail}."
    )


def verdict(evals: list[dict[str, Any]]) -> list[str]:
    """The model against its base and against the best baseline, on strict tool-call accuracy."""
    subjects = {e["subject"]: e for e in evals}
    run = subjects.get("run")
    if run is None or _get(run["metrics"], *HEADLINE) is None:
        return []
    model = _get(run["metrics"], *HEADLINE)
    if model.get("rate") is None:
        return []
    name = column_title(run)
    candidates = []
    if "base" in subjects and _get(subjects["base"]["metrics"], *HEADLINE):
        candidates.append(("the untrained base", _get(subjects["base"]["metrics"], *HEADLINE)))
    for kind, report in (run["metrics"].get("baselines") or {}).items():
        if _get(report, *HEADLINE):
            candidates.append((BASELINE_NAMES.get(kind, kind), _get(report, *HEADLINE)))
    candidates = [(n, p) for n, p in candidates if p.get("rate") is not None]
    if not candidates:
        return []
    lines = ["Verdict on strict tool-call accuracy:"]
    base = next((p for n, p in candidates if n == "the untrained base"), None)
    if base is not None:
        lines.append("  " + _compare(name, model, "its base", base)[1])
    best_name, best = max(candidates, key=lambda c: c[1]["rate"])
    word, sentence = _compare(name, model, f"the best baseline ({best_name})", best)
    lines.append("  " + sentence)
    if word != "beats":
        lines.append(
            "  The model has not shown that it learned more than the best baseline: "
            "do not rely on it to act like Claude."
        )
    return lines


def held_out_line(m: dict[str, Any]) -> str:
    info = m.get("held_out") or {}
    how = info.get("split_by")
    split = "held out " + (f"by {how}" if how else "(split method unknown: not built by `cra dataset build`)")
    if info.get("split") == "train":
        split = "the training split itself (fit, not generalisation)"
    return f"Steps: {split}; baselines fitted on {info.get('train_steps', '?')} training steps."


def side_by_side(evals: list[dict[str, Any]], title: str) -> str:
    m0 = evals[0]["metrics"]
    cols = columns(evals)
    lines = [
        title,
        f"{m0['steps']} steps ({m0['call_steps']} tool calls, {m0['answer_steps']} answers), "
        f"{m0['sequence']['turns']} complete turns; 95% intervals in brackets.",
    ]
    if m0.get("held_out"):
        lines.append(held_out_line(m0))
    lines += ["", table(["", *[t for t, _ in cols]], metric_rows([m for _, m in cols]))]
    decided = verdict(evals)
    if decided:
        lines += ["", *decided]
    warnings = (m0.get("leakage") or {}).get("warnings") or []
    if warnings:
        lines += ["", *("Warning: " + w for w in warnings)]
    return "\n".join(lines)
