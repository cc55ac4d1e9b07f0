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
