"""`cra stats --html FILE`: one self-contained page (inline CSS and SVG, no scripts, nothing
fetched) with the charts a person would rather look at: tools over time, sequence patterns,
exploration depth, workflows, tool calls that errored or were denied, outcomes and reasoning: the same
sections, numbers and words as the text report."""

from html import escape

from .text import CALL_LEGEND, reasoning_line

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
OTHER_COLOR = "#bab0ac"
FAIL_COLOR = "#e15759"
DENIED_COLOR = "#edc948"
OK_COLOR = "#4e79a7"

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px auto;
       max-width: 1040px; color: #222; background: #fff; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; color: #555; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { display: block; margin: 8px 0; } svg text { font: 12px "DejaVu Sans", sans-serif; fill: #333; }
.ready { color: #2a7a2a; font-weight: bold; } .notready { color: #b35c00; font-weight: bold; }
.empty { color: #888; font-style: italic; }
"""


def render(stats: dict) -> str:
    t = stats["totals"]
    rd = stats["readiness"]
    filters = ", ".join(f"{k} = {v}" for k, v in stats["filters"].items()) or "all data"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>cra stats</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>How Claude worked</h1>",
        f'<p class="sub">cra stats &middot; {escape(filters)}</p>',
        '<div class="cards">',
        *(
            f'<div class="card"><b>{v}</b>{escape(k)}</div>'
            for k, v in (
                ("sessions", t["sessions"]),
                ("turns", t["turns"]),
                ("subagent turns", t["subagent_turns"]),
                ("tool calls", t["tool_calls"]),
                ("qualifying turns", rd["qualifying"]),
            )
        ),
        "</div>",
        "<h2>Tools over time</h2>",
        timeline_chart(stats["timeline"]),
        "<h2>Top tool sequences</h2>",
        '<p class="sub"><code>X+</code> repeated, <code>[A|B]</code> issued in parallel</p>',
        hbar_chart("chart-sequences", [(r["pattern"], r["turns"]) for r in stats["sequences"]], "turns"),
        "<h2>Exploration depth</h2>",
        '<p class="sub">reads, searches and read-only shell commands before the first change</p>',
        column_chart("chart-depth", list(stats["depth"].items())),
        "<h2>Workflow patterns</h2>",
        hbar_chart("chart-workflows", [(r["workflow"], r["turns"]) for r in stats["workflows"]], "turns"),
        "<h2>Tool calls: errored and denied</h2>",
        f'<p class="sub">{escape(CALL_LEGEND)}</p>',
        failure_chart(stats["tools"]),
        _tools_table(stats["tools"]),
        "<h2>Outcomes and reasoning</h2>",
        _table(["turn outcome", "turns"], list(stats["outcomes"].items())),
        f"<p>{escape(reasoning_line(stats['reasoning']))}</p>",
        "<h2>Tokens by model</h2>",
        _table(
            ["model", "turns", "input", "output", "cache read", "cache write"],
            [
                [
                    r["model"],
                    r["turns"],
                    r["input_tokens"],
                    r["output_tokens"],
                    r["cache_read_tokens"],
                    r["cache_creation_tokens"],
                ]
                for r in stats["tokens_by_model"]
            ],
        ),
        "<h2>Busiest projects</h2>",
        _table(
            ["project", "sessions", "turns", "tool calls"],
            [[r["project"], r["sessions"], r["turns"], r["tool_calls"]] for r in stats["projects"]],
        ),
        "<h2>Training readiness</h2>",
        _readiness(rd),
        "</body></html>",
    ]
    return "\n".join(parts)


def _empty(chart_id, what="no data"):
    return (
        f'<svg class="chart" id="{chart_id}" width="600" height="40" role="img">'
        f'<text x="8" y="24" class="empty">{escape(what)}</text></svg>'
    )


def timeline_chart(timeline, width=960, height=260):
    """Stacked columns: tool calls per day, the busiest tools coloured, the rest grey."""
    if not timeline:
        return _empty("chart-timeline")
    totals: dict[str, int] = {}
    for day in timeline:
        for tool, n in day["tools"].items():
            totals[tool] = totals.get(tool, 0) + n
    top = [tool for tool, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: len(PALETTE)]]
    colors = {tool: PALETTE[i] for i, tool in enumerate(top)}
    left, bottom, top_pad = 44, 40, 10
    plot_w, plot_h = width - left - 150, height - bottom - top_pad
    peak = max(d["total"] for d in timeline) or 1
    step = plot_w / len(timeline)
    bar_w = max(2.0, min(48.0, step * 0.8))
    out = [
        f'<svg class="chart" id="chart-timeline" width="{width}" height="{height}" role="img" '
        f'viewBox="0 0 {width} {height}"><title>Tool calls per day</title>'
    ]
    out += _y_axis(left, top_pad, plot_h, plot_w, peak)
    label_every = max(1, len(timeline) // 10)
    for i, day in enumerate(timeline):
        x = left + i * step + (step - bar_w) / 2
        y = top_pad + plot_h
        segments = [(tool, n) for tool, n in day["tools"].items() if tool in colors]
        other = day["total"] - sum(n for _, n in segments)
        for tool, n in sorted(segments, key=lambda s: top.index(s[0])) + ([("other", other)] if other else []):
            h = plot_h * n / peak
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colors.get(tool, OTHER_COLOR)}"><title>{escape(day["day"])} {escape(tool)}: {n}</title></rect>'
            )
        if i % label_every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle">'
                f"{escape(day['day'][5:])}</text>"
            )
    legend = top + (["other"] if len(totals) > len(top) else [])
    for i, tool in enumerate(legend):
        y = top_pad + 4 + i * 18
        out.append(f'<rect x="{width - 140}" y="{y}" width="12" height="12" fill="{colors.get(tool, OTHER_COLOR)}"/>')
        out.append(f'<text x="{width - 122}" y="{y + 10}">{escape(_clip(tool, 18))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _y_axis(left, top_pad, plot_h, plot_w, peak):
    out = [
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>',
    ]
    for frac in (0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(peak * frac)}</text>')
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
    return out


def hbar_chart(chart_id, items, unit, width=960):
    """Horizontal bars with their label on the left and the count on the right."""
    if not items:
        return _empty(chart_id)
    label_w, row_h = 380, 24
    height = row_h * len(items) + 10
    peak = max(n for _, n in items) or 1
    bar_max = width - label_w - 70
    out = [
        f'<svg class="chart" id="{chart_id}" width="{width}" height="{height}" role="img" '
        f'viewBox="0 0 {width} {height}"><title>{escape(chart_id)}</title>'
    ]
    for i, (label, n) in enumerate(items):
        y = 5 + i * row_h
        w = max(1.0, bar_max * n / peak)
        out.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(_clip(label, 50))}'
            f"<title>{escape(label)}</title></text>"
        )
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{escape(label)}: {n} {unit}</title></rect>"
        )
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{n}</text>')
    out.append("</svg>")
    return "\n".join(out)


def column_chart(chart_id, items, width=520, height=240):
    """Vertical columns, one per category in the given order (a histogram of labelled bins)."""
    if not any(n for _, n in items):
        return _empty(chart_id, "no turns with tool calls")
    left, bottom, top_pad = 44, 34, 14
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    peak = max(n for _, n in items) or 1
    step = plot_w / len(items)
    out = [
        f'<svg class="chart" id="{chart_id}" width="{width}" height="{height}" role="img" '
        f'viewBox="0 0 {width} {height}"><title>{escape(chart_id)}</title>'
    ]
    out += _y_axis(left, top_pad, plot_h, plot_w, peak)
    for i, (label, n) in enumerate(items):
        h = plot_h * n / peak
        x = left + i * step + step * 0.15
        y = top_pad + plot_h - h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{escape(label)}: {n}</title></rect>"
        )
        out.append(f'<text x="{x + step * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle">{n}</text>')
        out.append(
            f'<text x="{x + step * 0.35:.1f}" y="{top_pad + plot_h + 18}" text-anchor="middle">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def failure_chart(tools, width=960, n=12):
    """Per tool: calls as a bar, the errored share of it in red and the denied share in amber."""
    tools = tools[:n]
    if not tools:
        return _empty("chart-failures")
    label_w, row_h = 160, 22
    height = row_h * len(tools) + 10
    peak = max(r["calls"] for r in tools) or 1
    bar_max = width - label_w - 220
    out = [
        f'<svg class="chart" id="chart-failures" width="{width}" height="{height}" role="img" '
        f'viewBox="0 0 {width} {height}"><title>Tool calls: errored and denied</title>'
    ]
    for i, r in enumerate(tools):
        y = 5 + i * row_h
        w = max(1.0, bar_max * r["calls"] / peak)
        out.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(_clip(r["tool"], 22))}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{OK_COLOR}"/>')
        x = float(label_w)
        for key, color in (("errored", FAIL_COLOR), ("denied", DENIED_COLOR)):
            if r[key]:
                part = bar_max * r[key] / peak
                out.append(
                    f'<rect class="{key}" x="{x:.1f}" y="{y + 3}" width="{part:.1f}" height="{row_h - 8}" '
                    f'fill="{color}"><title>{escape(r["tool"])}: {r[key]} {key}</title></rect>'
                )
                x += part
        notes = [f"{r['errored']} errored"] if r["errored"] else []
        notes += [f"{r['denied']} denied"] if r["denied"] else []
        label = f"{r['calls']}" + (f" ({', '.join(notes)})" if notes else "")
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _tools_table(tools):
    return _table(
        ["tool", "calls", "errored", "denied", "error rate", "median ms"],
        [
            [
                r["tool"],
                r["calls"],
                r["errored"],
                r["denied"],
                "" if r["error_rate"] is None else f"{100 * r['error_rate']:.1f}%",
                r["median_ms"],
            ]
            for r in tools
        ],
    )


def _table(headers, rows):
    if not rows:
        return '<p class="empty">no data</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for v in r:
            cls = ' class="n"' if isinstance(v, (int, float)) else ""
            cells.append(f"<td{cls}>{'' if v is None else escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _readiness(rd):
    status = (
        '<span class="ready">ready for a training cycle</span>'
        if rd["ready"]
        else f'<span class="notready">{rd["threshold"] - rd["qualifying"]} more qualifying turns needed</span>'
    )
    f = rd["filters"]
    rows = [[k.replace("_", " "), v] for k, v in rd["excluded"].items()]
    return (
        f"<p>{rd['qualifying']} of {rd['candidates']} turns pass the dataset filters "
        f"(&ge; {f['min_tool_calls']} tool calls, final answer &ge; {f['min_answer_words']} words, "
        f"completed, no unrecovered error); a cycle needs {rd['threshold']}: {status}.</p>"
        + _table(["excluded by", "turns"], rows)
    )


def _clip(s, n):
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "\u2026"
