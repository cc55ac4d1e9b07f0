"""An export's inputs and its GGUF files: what `cra export gguf` does, for any caller (the CLI, `cra auto`).

`Source` resolves and checks the run, base model and adapter before anything is written;
`export_gguf` writes the files all or nothing and records each in `artifacts` against its run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import progress
from ..progress import Echo
from ..train import runs
from .model_files import ExportError


class Source:
    """The run (if any), base model and adapter an export reads: resolved and validated."""

    def __init__(self, db, run_ref: str | None, adapter_dir: str | None, base_ref: str | None):
        from . import model_files

        self.run = None
        if not run_ref and not adapter_dir and model_files.promoted_run_id(db) is not None:
            run_ref = "promoted"  # no RUN named: the model `cra auto` promoted is what users get
        if run_ref:
            if adapter_dir:
                raise ExportError("give RUN or --adapter-dir, not both")
            self.run = model_files.find_run(db, run_ref)
            found = runs.adapter_dir(db, self.run)
            if found is None:
                raise ExportError(
                    f"run {self.run['id']} ({self.run['status']}) has no adapter in {self.run['output_dir']}: "
                    "only a completed training run can be exported"
                )
            adapter_path = Path(found)
            base_ref = base_ref or self.run["base_model"]
        elif adapter_dir:
            adapter_path = Path(adapter_dir).expanduser().resolve()
            if not base_ref:
                config_file = adapter_path / "adapter_config.json"
                try:
                    base_ref = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
                except (OSError, ValueError):
                    base_ref = None
                if not base_ref:
                    raise ExportError(f"which base model does {adapter_path} adapt? Pass --base MODEL")
            self.run = model_files.run_for_adapter(db, adapter_path)
        else:
            raise ExportError("name a RUN (an id, 'last' or 'promoted') or pass --adapter-dir DIR [--base MODEL]")
        self.base = model_files.load_base(base_ref)
        self.adapter = model_files.load_adapter(adapter_path, self.base)

    def default_dir(self) -> Path:
        if self.run is not None:
            return Path(self.run["output_dir"]) / "gguf"
        return self.adapter.path.parent / "gguf"

    def label(self) -> str:
        base_name = Path(self.base.ref.rstrip("/")).name
        return f"{base_name} + cra run {self.run['id']}" if self.run else f"{base_name} + {self.adapter.path.name}"


def export_gguf(
    db,
    source: Source,
    *,
    merged: bool,
    adapter: bool,
    with_base: bool,
    outtype: str,
    out: str | None,
    verify: bool = False,
    echo: Echo = progress.echo,
) -> list[dict[str, Any]]:
    """Write the requested GGUF files; return one dict per file (what `artifacts` records)."""
    from . import writer

    if adapter:
        writer.check_outtype(outtype, adapter=True)
    writer.check_outtype(outtype, adapter=False)
    if verify and not writer.llama_cpp_available():
        raise ExportError(
            "--verify runs the files in llama.cpp: pip install 'cra[llama]' (builds llama.cpp, ~7 minutes)"
        )

    jobs = []  # (type, file name, prepared, write function)
    if merged:
        prepared = writer.prepare_model(source.base, source.adapter, outtype)
        jobs.append(
            (
                "merged",
                f"merged-{outtype}.gguf",
                lambda p, prep=prepared: writer.write_model(
                    source.base, source.adapter, outtype, p, name=source.label(), prepared=prep
                ),
            )
        )
    if adapter:
        plan = writer.plan_adapter(source.base, source.adapter, outtype)
        jobs.append(
            (
                "adapter",
                f"adapter-{outtype}.gguf",
                lambda p, plan=plan: writer.write_adapter(
                    source.base, source.adapter, outtype, p, name=source.label(), plan=plan
                ),
            )
        )
        if with_base:
            prepared_base = writer.prepare_model(source.base, None, outtype)
            jobs.append(
                (
                    "base",
                    f"base-{outtype}.gguf",
                    lambda p, prep=prepared_base: writer.write_model(
                        source.base, None, outtype, p, name=Path(source.base.ref.rstrip("/")).name, prepared=prep
                    ),
                )
            )

    if out and out.endswith(".gguf"):
        if len(jobs) != 1:
            raise ExportError(f"--out {out} names one file but this export writes {len(jobs)}: pass a directory")
        targets = [Path(out).expanduser().resolve()]
    else:
        directory = Path(out).expanduser().resolve() if out else source.default_dir()
        targets = [directory / filename for _, filename, _ in jobs]

    written: list[dict[str, Any]] = []
    target = None
    try:
        for (kind, _, write), target in zip(jobs, targets):
            echo(f"Writing {kind} GGUF ({outtype}) -> {target}", err=True)
            info = write(target)
            written.append({"type": kind, **info})
    except BaseException as exc:
        # All or nothing: the files this export already finished go too.
        for info in written:
            Path(info["path"]).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(
                f"writing {target} failed: {exc}. Nothing was left behind; free space or pick --out"
            ) from exc
        raise
    for info in written:
        info.update(
            arch=source.base.arch.gguf_arch,
            base_model=source.base.ref,
            adapter=str(source.adapter.path),
        )
    try:
        if verify:
            from .verify import verify_files

            verify_files(source.base, source.adapter, written, echo)
    finally:
        _record(db, source, "gguf", written, echo)  # the files exist either way; `verified` says how they fared
    return written


def _record(db, source: Source, kind: str, infos: list[dict[str, Any]], echo: Echo) -> None:
    if source.run is None:
        echo("Not recorded in the database: this adapter directory belongs to no recorded run.", err=True)
        return
    for info in infos:
        meta = {k: v for k, v in info.items() if k not in ("path", "bytes")}
        info["artifact_id"] = runs.record_artifact(db, source.run["id"], kind, info["path"], meta)
