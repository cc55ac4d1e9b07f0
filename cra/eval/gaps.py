"""Gap mining: the held-out situations where the model disagrees with Claude most (`cra eval gaps RUN`).

Every step is put in a situation: the tool(s) Claude chose there, the action before it in the turn,
whether it follows a failed call (recovery), and how deep the turn had explored so far (cra/signals'
depth labels). Steps are grouped by situation and the groups ranked by how often the model
disagreed with Claude (strictly: a call step counts as agreed only when every call the model made is
valid and names exactly Claude's tools; an answer step when the model answered too).

The report is printed and written as JSON; its `focus` list (situations where the model disagreed
on at least half the steps) is what `cra dataset build --focus FILE` oversamples in the training
split of the next round, and what `cra auto` feeds from one cycle into the next. What a situation is
lives in cra/signals/situations.py, which dataset building reads too, so the two agree by construction.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..signals.situations import GAPS_FORMAT, Situation, situation
from .intervals import mean_ci, wilson
from .steps import Step

FOCUS_RATE = 0.5  # a situation is a focus when the model disagreed on at least this share of its steps


def find_gaps(eval_row: dict[str, Any], steps: dict[str, Step], predictions: list[dict]) -> dict[str, Any]:
    """Group an eval's steps by situation; rank the groups by disagreements with Claude."""
    from .metrics import score_step

    groups: dict[Situation, list[dict]] = defaultdict(list)
    for p in predictions:
        step = steps.get(p["step_id"])
        if step is None:
            continue
        score = score_step(step, p["prediction"])
        agreed = score.strict_set_match if score.target_kind == "call" else score.strict_stop_correct
        groups[situation(step.context, step.target)].append(
            {"step_id": step.step_id, "agreed": bool(agreed), "reward": (p.get("reward") or {}).get("total")}
        )
    rows: list[dict[str, Any]] = []
    for sit, members in groups.items():
        disagree = sum(not m["agreed"] for m in members)
        rewards = [m["reward"] for m in members if m["reward"] is not None]
        rows.append(
            {
                "key": sit.key,
                "situation": asdict(sit),
                "steps": len(members),
                "disagree": wilson(disagree, len(members)).as_dict(),
                "reward": mean_ci(rewards, 0, 1).as_dict(),
                "step_ids": [m["step_id"] for m in members if not m["agreed"]],
            }
        )
    rows.sort(key=lambda r: (-r["disagree"]["k"], -r["disagree"]["rate"], r["key"]))
    total = sum(r["steps"] for r in rows)
    missed = sum(r["disagree"]["k"] for r in rows)
    return {
        "format": GAPS_FORMAT,
        "eval_id": eval_row["id"],
        "run_id": eval_row["run_id"],
        "dataset": eval_row["dataset"],
        "split": eval_row["split"],
        "steps": total,
        "disagree": wilson(missed, total).as_dict(),
        "groups": rows,
        "focus": [r["key"] for r in rows if r["disagree"]["k"] and r["disagree"]["rate"] >= FOCUS_RATE],
    }


def by_dimension(report: dict[str, Any]) -> dict[str, list[tuple[str, int, int]]]:
    """Disagreements summed along each dimension of the situation: name -> [(value, disagree, steps)]."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in report["groups"]:
        for dim, value in row["situation"].items():
            cell = out[dim][str(value)]
            cell[0] += row["disagree"]["k"]
            cell[1] += row["steps"]
    return {
        dim: sorted(((v, k, n) for v, (k, n) in values.items()), key=lambda t: (-t[1], t[0]))
        for dim, values in out.items()
    }


def write_gaps(report: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _pct(p: dict) -> str:
    return f"{100 * p['rate']:.0f}% [{100 * p['low']:.0f}-{100 * p['high']:.0f}]" if p.get("rate") is not None else "-"


def report_text(report: dict[str, Any], path: Path | None = None, top: int = 10) -> str:
    """The gaps as a person reads them: the worst situations, then each dimension on its own."""
    total = report["disagree"]
    lines = [
        f"Eval {report['eval_id']} (run {report['run_id']}, {report['split']} split of {report['dataset']}): "
        f"the model disagreed with Claude on {total['k']} of {total['n']} steps ({_pct(total)}).",
        "",
        f"Situations where it disagreed most (of {len(report['groups'])}):",
    ]
    width = max((len(r["key"]) for r in report["groups"][:top]), default=10)
    for row in report["groups"][:top]:
        if not row["disagree"]["k"]:
            break
        mark = "  focus" if row["key"] in report["focus"] else ""
        lines.append(
            f"  {row['key'].ljust(width)}  {row['disagree']['k']:>3}/{row['steps']:<3} {_pct(row['disagree'])}{mark}"
        )
    for dim, values in by_dimension(report).items():
        cells = ", ".join(f"{value} {k}/{n}" for value, k, n in values[:6])
        lines.append(f"By {dim}: {cells}")
    if path is not None:
        lines += [
            "",
            f"Wrote {path}: {len(report['focus'])} focus situation(s). Next round: cra dataset build --focus {path}",
        ]
    return "\n".join(lines)
