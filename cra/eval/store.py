"""The `evals` table and the files beside it ($CRA_HOME/evals/): steps once per step set, predictions per eval."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..db import cra_home
from ..errors import NotFoundError
from .steps import Step


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def evals_dir() -> Path:
    path = Path(cra_home()) / "evals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_steps(steps: list[Step], digest: str) -> Path:
    """The steps an eval saw, once per step set (packs show their contexts)."""
    path = evals_dir() / f"steps-{digest}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for s in steps:
                f.write(json.dumps(s.as_dict(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return path


def read_steps(digest: str) -> dict[str, Step]:
    path = evals_dir() / f"steps-{digest}.jsonl"
    if not path.is_file():
        raise NotFoundError(f"the steps of this eval ({path}) are gone: run the eval again")
    with open(path, encoding="utf-8") as f:
        steps = [Step.from_dict(json.loads(line)) for line in f if line.strip()]
    return {s.step_id: s for s in steps}


def insert_eval(db, row: dict[str, Any], predictions: list[dict[str, Any]]) -> int:
    """Insert the eval and write its predictions file ($CRA_HOME/evals/eval-<id>.jsonl)."""
    row = {**row, "created_at": now_iso()}
    for key in ("settings", "metrics"):
        row[key] = json.dumps(row[key], sort_keys=True)
    with db.conn:
        cursor = db.conn.execute(
            f"INSERT INTO evals ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        eval_id = cursor.lastrowid
    path = evals_dir() / f"eval-{eval_id:04d}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    with db.conn:
        db.conn.execute("UPDATE evals SET predictions = ? WHERE id = ?", (str(path), eval_id))
    return eval_id


def update_metrics(db, eval_id: int, metrics: dict[str, Any]) -> None:
    with db.conn:
        db.conn.execute("UPDATE evals SET metrics = ? WHERE id = ?", (json.dumps(metrics, sort_keys=True), eval_id))


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for key in ("settings", "metrics"):
        if row.get(key):
            row[key] = json.loads(row[key])
    return row


def get_eval(db, eval_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM evals WHERE id = ?", [eval_id]))
    if not rows:
        raise NotFoundError(f"no eval {eval_id}: `cra eval list` shows the recorded evals")
    return _decode(rows[0])


def find_cached(
    db, *, base_model: str, adapter: str | None, backend: str, steps_hash: str, settings: dict
) -> dict | None:
    """An earlier eval of the same model on the same steps with the same settings: its result stands."""
    rows = db.query(
        "SELECT * FROM evals WHERE base_model = ? AND adapter IS ? AND backend = ? AND steps_hash = ? AND settings = ? "
        "ORDER BY id DESC LIMIT 1",
        [base_model, adapter, backend, steps_hash, json.dumps(settings, sort_keys=True)],
    )
    for row in rows:
        if row["predictions"] and Path(row["predictions"]).is_file():
            return _decode(row)
    return None


def latest_for_run(db, run_id: int, subject: str = "run") -> dict[str, Any] | None:
    rows = list(
        db.query("SELECT * FROM evals WHERE run_id = ? AND subject = ? ORDER BY id DESC LIMIT 1", [run_id, subject])
    )
    return _decode(rows[0]) if rows else None


MODEL_SUBJECTS = ("run", "parent")  # rows that measured a run's own adapter (a parent is an RL run's SFT run)


def evals_of_model(db, run_id: int) -> list[dict[str, Any]]:
    """Every eval of run `run_id`'s adapter, newest first, whether it was asked about that run or
    measured it as an RL run's parent."""
    rows = db.query(
        "SELECT * FROM evals WHERE model_run_id = ? AND subject IN (?, ?) ORDER BY id DESC", [run_id, *MODEL_SUBJECTS]
    )
    return [_decode(r) for r in rows]


def latest_of_model(db, run_id: int) -> dict[str, Any] | None:
    rows = evals_of_model(db, run_id)
    return rows[0] if rows else None


def newest_model_eval(db) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM evals WHERE subject = 'run' ORDER BY id DESC LIMIT 1"))
    return _decode(rows[0]) if rows else None


def _comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["steps_hash"], a["backend"], a["settings"]) == (b["steps_hash"], b["backend"], b["settings"])


def comparable_pair(db, first: int, second: int) -> list[dict[str, Any]]:
    """The two runs' newest evals made on the same steps with the same backend and settings; when they
    have none in common, each run's newest eval (`differences` says what differs)."""
    found: list[list[dict[str, Any]]] = []
    for run_id in (first, second):
        rows = evals_of_model(db, run_id)
        if not rows:
            raise NotFoundError(f"run {run_id} has not been evaluated yet: cra eval {run_id}")
        found.append(rows)
    pairs = [(a, b) for a in found[0] for b in found[1] if _comparable(a, b)]
    if pairs:
        newest = max(pairs, key=lambda pair: max(pair[0]["id"], pair[1]["id"]))
        return [newest[0], newest[1]]
    return [found[0][0], found[1][0]]


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What makes two evals' numbers incomparable, in words (empty: the same steps, backend, settings)."""
    out = []
    if a["steps_hash"] != b["steps_hash"]:
        seen = [
            f"{e['step_count']} steps of {e['dataset']} ({e['split']} split, limit {e['step_limit']})" for e in (a, b)
        ]
        out.append(f"different steps ({seen[0]} vs {seen[1]})")
    if a["backend"] != b["backend"]:
        out.append(f"backend {a['backend']} vs {b['backend']}")
    sa, sb = a.get("settings") or {}, b.get("settings") or {}
    changed = [f"{k} {sa.get(k)} vs {sb.get(k)}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    if changed:
        out.append("generation settings " + ", ".join(changed))
    return out


def list_evals(db, run_id: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
    sql = "SELECT * FROM evals" + (" WHERE run_id = ?" if run_id is not None else "") + " ORDER BY id DESC LIMIT ?"
    params = ([run_id] if run_id is not None else []) + [limit]
    return [_decode(r) for r in db.query(sql, params)]


def read_predictions(row: dict[str, Any]) -> list[dict[str, Any]]:
    path = row.get("predictions")
    if not path or not Path(path).is_file():
        raise NotFoundError(f"eval {row['id']} has no predictions file ({path}): run the eval again")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
