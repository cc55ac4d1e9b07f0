"""Where a built dataset's files are: by name (the `datasets` table `cra dataset build` records),
a directory, or a JSONL file. Training, evaluation and the reward read datasets through this."""

from __future__ import annotations

from pathlib import Path

from ..errors import NotFoundError


def newest_dataset(db) -> dict | None:
    """The newest SFT dataset `cra dataset build` recorded (id, name, created_at), or None."""
    if "datasets" not in db.table_names():
        return None
    rows = db.query("SELECT id, name, created_at FROM datasets WHERE kind = 'sft' ORDER BY id DESC LIMIT 1")
    return next(iter(rows), None)


def resolve_dataset(db, ref: str) -> tuple[Path, Path | None]:
    """(train.jsonl, eval.jsonl or None) for a dataset name, a directory, or a JSONL file."""
    path = Path(ref).expanduser()
    if not path.exists() and "datasets" in db.table_names():
        rows = list(db.query("SELECT path FROM datasets WHERE name = ? ORDER BY id DESC LIMIT 1", [ref]))
        if rows:
            path = Path(rows[0]["path"])
    if path.is_dir():
        train = path / "train.jsonl"
        if not train.is_file():
            raise NotFoundError(f"dataset directory {path} has no train.jsonl: build one with `cra dataset build`")
        evals = [path / name for name in ("eval.jsonl", "validation.jsonl", "test.jsonl") if (path / name).is_file()]
        return train, evals[0] if evals else None
    if path.is_file():
        sibling = path.with_name(path.name.replace("train", "eval")) if "train" in path.name else None
        return path, sibling if sibling and sibling.is_file() else None
    raise NotFoundError(
        f"no dataset {ref!r}: give a name from `cra dataset build`, a directory with train.jsonl, or a JSONL file"
    )
