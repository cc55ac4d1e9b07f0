"""The `cycles` and `promotions` tables, and the promoted-model pointer in `$CRA_HOME/models/`.

The database is the truth about which model is promoted: a promotion is one transaction that moves
the `current` flag (and records the cycle's decision with it). The pointer file `promoted.json` and
the symlink `promoted.gguf` are derived from it, each replaced by an atomic rename, and rewritten
from the database whenever cra looks at them: a crash between the commit and the rename leaves a
pointer one promotion behind for a moment, never a half-written one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..db import cra_home
from ..errors import NotFoundError

POINTER = "promoted.json"
LINK = "promoted.gguf"


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def parse_iso(value: str) -> float:
    import calendar

    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


def models_dir() -> Path:
    return Path(cra_home()) / "models"


# -- cycles ------------------------------------------------------------------------------------------------


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["stages"] = json.loads(row["stages"]) if row.get("stages") else []
    return row


def insert_cycle(db, **fields) -> int:
    fields = {
        **fields,
        "stages": json.dumps(fields.get("stages") or []),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": fields.get("started_at") or now_iso(),
    }
    cursor = db.conn.execute(
        f"INSERT INTO cycles ({', '.join(fields)}) VALUES ({', '.join('?' for _ in fields)})", list(fields.values())
    )
    return cursor.lastrowid


def update_cycle(db, cycle_id: int, **fields) -> None:
    if "stages" in fields:
        fields["stages"] = json.dumps(fields["stages"], default=str)
    db.conn.execute(
        f"UPDATE cycles SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?", [*fields.values(), cycle_id]
    )


def get_cycle(db, cycle_id: int) -> dict[str, Any]:
    row = next(iter(db.query("SELECT * FROM cycles WHERE id = ?", [cycle_id])), None)
    if row is None:
        raise NotFoundError(f"no cycle id {cycle_id}: `cra auto status` lists the cycles")
    return _decode(row)


def list_cycles(db, limit: int = 10) -> list[dict[str, Any]]:
    return [_decode(r) for r in db.query("SELECT * FROM cycles ORDER BY id DESC LIMIT ?", [limit])]


def last_completed(db) -> dict[str, Any] | None:
    row = next(iter(db.query("SELECT * FROM cycles WHERE status = 'completed' ORDER BY id DESC LIMIT 1")), None)
    return _decode(row) if row is not None else None


def failures_since_completed(db, stopped: bool = False) -> list[dict[str, Any]]:
    """Failed (or crashed) attempts after the last completed cycle, oldest first: they set the backoff.
    With stopped=True, stopped attempts too: the attempts that give the next one its number and the
    stages it may reuse (a stop is not a failure: it sets no backoff)."""
    done = last_completed(db)
    statuses = ("failed", "crashed", "stopped") if stopped else ("failed", "crashed")
    rows = db.query(
        "SELECT * FROM cycles WHERE status IN (%s) AND id > ? ORDER BY id" % ", ".join("?" * len(statuses)),
        [*statuses, done["id"] if done else 0],
    )
    return [_decode(r) for r in rows]


def mark_crashed(db, stale_holder: dict | None) -> list[int]:
    """Cycles left `running` by a process that died (called with the lock held, so none is live)."""
    rows = list(db.query("SELECT id, run_id, stages FROM cycles WHERE status = 'running'"))
    who = f"pid {stale_holder.get('pid')} on {stale_holder.get('host')}" if stale_holder else "its process"
    error = f"{who} died mid-cycle; nothing was promoted by it"
    for row in rows:
        stages = json.loads(row["stages"] or "[]")
        for stage in stages:
            if stage.get("status") == "running":
                stage.update(status="crashed", error=error)
                if stage.get("run_id"):
                    finish_if_running(db, stage["run_id"], error)
        update_cycle(
            db,
            row["id"],
            status="crashed",
            ended_at=now_iso(),
            error=error,
            stages=stages,
            failed_stage=next((s["name"] for s in stages if s.get("status") == "crashed"), None),
        )
        if row["run_id"]:
            finish_if_running(db, row["run_id"], error)
    return [r["id"] for r in rows]


def finish_if_running(db, run_id: int, error: str) -> None:
    from ..train import runs

    run = runs.get_run(db, run_id)
    if run["status"] == "running":
        runs.finish_run(
            db,
            run_id,
            "interrupted" if run["kind"] in ("sft", "grpo") else "failed",
            metrics=run.get("metrics"),
            error=error,
        )


# -- promotions ----------------------------------------------------------------------------------------------


def promoted(db) -> dict[str, Any] | None:
    """The current promotion joined with its run (kind, base_model, output_dir), or None."""
    rows = list(
        db.query(
            "SELECT p.*, r.kind, r.base_model, r.output_dir, r.dataset FROM promotions p JOIN runs r ON r.id = p.run_id"
            " WHERE p.current = 1"
        )
    )
    return rows[0] if rows else None


def promote(
    db,
    run_id: int,
    *,
    cycle_id: int | None = None,
    gguf: str | None = None,
    reason: str | None = None,
    cycle_fields: dict[str, Any] | None = None,
) -> int:
    """Make `run_id` the promoted model, in one transaction with the cycle's outcome; then the pointer."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("UPDATE promotions SET current = 0 WHERE current = 1")
        cursor = conn.execute(
            "INSERT INTO promotions (run_id, cycle_id, promoted_at, current, gguf, reason) VALUES (?, ?, ?, 1, ?, ?)",
            (run_id, cycle_id, now_iso(), gguf, reason),
        )
        if cycle_id is not None and cycle_fields:
            update_cycle(db, cycle_id, **cycle_fields)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    write_pointer(db)
    return cursor.lastrowid


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def pointer_data(db) -> dict[str, Any] | None:
    from ..train import runs

    row = promoted(db)
    if row is None:
        return None
    run = runs.get_run(db, row["run_id"])
    return {
        "promotion_id": row["id"],
        "run_id": row["run_id"],
        "kind": row["kind"],
        "cycle_id": row["cycle_id"],
        "base_model": row["base_model"],
        "adapter": runs.adapter_dir(db, run),
        "gguf": row["gguf"],
        "promoted_at": row["promoted_at"],
        "reason": row["reason"],
    }


def write_pointer(db) -> dict[str, Any] | None:
    """Bring `models/promoted.json` (and the `promoted.gguf` link) in line with the database."""
    data = pointer_data(db)
    root = models_dir()
    pointer, link = root / POINTER, root / LINK
    if data is None:
        return None
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = (json.dumps(data, indent=2) + "\n").encode()
    try:
        current = pointer.read_bytes()
    except OSError:
        current = None
    if current != text:
        _atomic_write(pointer, text)
    target = data["gguf"]
    if target and Path(target).is_file():
        if not link.is_symlink() or os.readlink(link) != target:
            tmp = link.with_name(f".{LINK}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)
    elif link.is_symlink():
        link.unlink()  # the promoted model has no GGUF: a link to an older one would mislead
    return data


def read_pointer() -> dict[str, Any] | None:
    try:
        return json.loads((models_dir() / POINTER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
