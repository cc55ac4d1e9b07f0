"""`cra stats` as readable text: short sections of aligned columns."""

from ..db.schema import CALL_OUTCOMES
from .serving import render_text as render_serving

# The same words as tool_calls_with_turns.call_outcome, in both reports.
CALL_LEGEND = f"errored: {CALL_OUTCOMES['errored']}; denied: {CALL_OUTCOMES['denied']}"


def reasoning_line(r: dict) -> str:
    return (
        f"{r['turns_with_plan']} turns with a plan, {r['constraints']} constraints, "
        f"{r['prunings']} pruning decisions, {r['self_corrections']} self-corrections, "
        f"{r['recoveries']}/{r['failures']} errored calls recovered, {r['denials']} denials"
    )


def _table(headers, rows, align=None):
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    align = align or ["<"] + [">"] * (len(headers) - 1)
    fmt = "  ".join("{:%s%d}" % (a, w) for a, w in zip(align, widths))
    lines = ["  " + fmt.format(*headers).rstrip(), "  " + fmt.format(*("-" * w for w in widths))]
    lines += ["  " + fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def _pct(x):
    return "" if x is None else f"{100 * x:.1f}%"


def _bar(n, total, width=24):
    return "#" * (round(width * n / total) if total else 0)


def render(stats: dict) -> str:
    out = []
    t = stats["totals"]
    title = "cra stats"
    if stats["filters"]:
        title += " (" + ", ".join(f"{k}={v}" for k, v in stats["filters"].items()) + ")"
    out.append(title)
    out.append(
        f"  {t['sessions']} sessions, {t['turns']} turns (+{t['subagent_turns']} in subagents), "
        f"{t['tool_calls']} tool calls; signals for {t['turns_with_signals']} turns"
    )
    if stats["tools"]:
        out.append("\nTool calls by tool")
        out.append(
            _table(
                ["tool", "calls", "errored", "denied", "error rate", "median ms"],
                [
                    [r["tool"], r["calls"], r["errored"], r["denied"], _pct(r["error_rate"]), r["median_ms"]]
                    for r in stats["tools"]
                ],
            )
        )
        out.append(f"  {CALL_LEGEND}")
    if stats["sequences"]:
        out.append("\nTop tool sequences (per turn; `X+` = repeated, `[A|B]` = in parallel)")
        out.append(
            _table(["turns", "sequence"], [[r["turns"], r["pattern"]] for r in stats["sequences"]], align=[">", "<"])
        )
    if stats["workflows"]:
        total = sum(r["turns"] for r in stats["workflows"])
        out.append("\nWorkflow patterns")
        out.append(
            _table(
                ["workflow", "turns", ""],
                [[r["workflow"], r["turns"], _bar(r["turns"], total)] for r in stats["workflows"]],
                align=["<", ">", "<"],
            )
        )
    depth = stats["depth"]
    if any(depth.values()):
        total = sum(depth.values())
        out.append("\nExploration depth (reads and searches before the first change)")
        out.append(
            _table(["depth", "turns", ""], [[k, v, _bar(v, total)] for k, v in depth.items()], align=["<", ">", "<"])
        )
    if stats["outcomes"]:
        out.append("\nOutcomes: " + ", ".join(f"{k} {v}" for k, v in stats["outcomes"].items()))
        out.append("Reasoning: " + reasoning_line(stats["reasoning"]))
    if stats["tokens_by_model"]:
        out.append("\nTokens by model")
        out.append(
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
            )
        )
    if stats["projects"]:
        out.append("\nBusiest projects")
        out.append(
            _table(
                ["project", "sessions", "turns", "tool calls"],
                [[r["project"], r["sessions"], r["turns"], r["tool_calls"]] for r in stats["projects"]],
            )
        )
    rd = stats["readiness"]
    out.append("\nTraining readiness")
    out.append(
        f"  {rd['qualifying']} of {rd['candidates']} turns pass the dataset filters; a training cycle "
        f"needs {rd['threshold']}: " + ("ready." if rd["ready"] else f"{rd['threshold'] - rd['qualifying']} to go.")
    )
    f = rd["filters"]
    excluded = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rd["excluded"].items() if v)
    out.append(
        f"  filters: >= {f['min_tool_calls']} tool calls, final answer >= {f['min_answer_words']} words"
        + (", completed only" if f.get("skip_failed") else "")
        + (", no unrecovered error" if f.get("skip_unrecovered") else "")
    )
    if excluded:
        out.append(f"  excluded: {excluded}")
    out += render_serving(stats.get("serving"))
    return "\n".join(out)
