"""`cra export gguf` and `cra export ollama`.

    cra export gguf last                         # merged model, f16: <run>/gguf/merged-f16.gguf
    cra export gguf 3 --adapter --outtype q8_0   # adapter-q8_0.gguf + base-q8_0.gguf (llama.cpp --lora)
    cra export gguf --adapter-dir DIR --base MODEL --merged --adapter
    cra export ollama last --name my-agent       # Modelfile, then `ollama create` when installed

Everything an export reads is checked before the first file is written; files are written under a
temporary name and renamed when complete; an export that fails part-way removes the files it had
already written. Each file is recorded in `artifacts` against its run (`cra runs show RUN`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from ..cli import database_option
from .source import ExportError
from .writer import OUTTYPES


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


class Source:
    """The run (if any), base model and adapter an export reads: resolved and validated."""

    def __init__(self, db, run_ref: str | None, adapter_dir: str | None, base_ref: str | None):
        from . import source

        self.run = None
        if not run_ref and not adapter_dir and source.promoted_run_id(db) is not None:
            run_ref = "promoted"  # no RUN named: the model `cra auto` promoted is what users get
        if run_ref:
            if adapter_dir:
                raise ExportError("give RUN or --adapter-dir, not both")
            self.run = source.find_run(db, run_ref)
            found = source.run_adapter_dir(db, self.run)
            if found is None:
                raise ExportError(
                    f"run {self.run['id']} ({self.run['status']}) has no adapter in {self.run['output_dir']}: "
                    "only a completed training run can be exported"
                )
            adapter_path = found
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
            self.run = source.run_for_adapter(db, adapter_path)
        else:
            raise ExportError("name a RUN (an id, 'last' or 'promoted') or pass --adapter-dir DIR [--base MODEL]")
        self.base = source.load_base(base_ref)
        self.adapter = source.load_adapter(adapter_path, self.base)

    def default_dir(self) -> Path:
        if self.run is not None:
            return Path(self.run["output_dir"]) / "gguf"
        return self.adapter.path.parent / "gguf"

    def label(self) -> str:
        """The model's name in GGUF metadata and the Modelfile: files meant to be shared, so redacted."""
        from ..redact import redact_text

        base_name = Path(self.base.ref.rstrip("/")).name
        label = f"{base_name} + cra run {self.run['id']}" if self.run else f"{base_name} + {self.adapter.path.name}"
        return redact_text(label)


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
    echo=_echo_err,
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
            echo(f"Writing {kind} GGUF ({outtype}) -> {target}")
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
        _record(db, source, "gguf", written)  # the files exist either way; `verified` says how they fared
    return written


def _record(db, source: Source, kind: str, infos: list[dict[str, Any]]) -> None:
    if source.run is None:
        _echo_err("Not recorded in the database: this adapter directory belongs to no recorded run.")
        return
    from ..train import runs

    for info in infos:
        meta = {k: v for k, v in info.items() if k not in ("path", "bytes")}
        info["artifact_id"] = runs.record_artifact(db, source.run["id"], kind, info["path"], meta)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group(name="export")
def export_group():
    """Export a trained run for local runtimes: GGUF files (llama.cpp, LM Studio) and an Ollama model."""


_source_options = [
    click.argument("run", required=False),
    click.option(
        "--adapter-dir",
        type=click.Path(exists=True, file_okay=False),
        help="Export this PEFT adapter directory instead of a run.",
    ),
    click.option(
        "--base",
        "base_ref",
        help="Base model (hub id or directory) [default: the run's, or the adapter's base_model_name_or_path].",
    ),
    click.option(
        "--outtype",
        type=click.Choice(OUTTYPES),
        default="f16",
        show_default=True,
        help="Tensor type: f32/f16/bf16/q8_0/q4_0 are written directly; q4_k_m uses llama.cpp's quantizer (llama-cpp-python).",
    ),
    click.option(
        "--out", help="Output directory (or a .gguf file when one file is written) [default: <run dir>/gguf]."
    ),
    database_option,
]


def _with_source_options(func):
    for option in reversed(_source_options):
        func = option(func)
    return func


@export_group.command(name="gguf")
@_with_source_options
@click.option("--merged", is_flag=True, help="Write the base with the adapter merged in (the default).")
@click.option(
    "--adapter",
    "as_adapter",
    is_flag=True,
    help="Write the LoRA adapter GGUF (llama.cpp --lora) and the base it applies to.",
)
@click.option("--no-base", is_flag=True, help="With --adapter: skip the base model GGUF (you have one already).")
@click.option(
    "--verify",
    is_flag=True,
    help="Run the files in llama.cpp (llama-cpp-python) and compare logits with transformers'.",
)
def gguf_command(run, adapter_dir, base_ref, outtype, out, database, merged, as_adapter, no_base, verify):
    """Export RUN (an id, or 'last') as GGUF: a merged model and/or a LoRA adapter file.

    \b
    cra export gguf last
    cra export gguf 3 --adapter --outtype q8_0 --verify
    llama-cli -m base-q8_0.gguf --lora adapter-q8_0.gguf
    """
    from ..db import open_db

    db = open_db(database)
    source = Source(db, run, adapter_dir, base_ref)
    if not merged and not as_adapter:
        merged = True
    written = export_gguf(
        db, source, merged=merged, adapter=as_adapter, with_base=not no_base, outtype=outtype, out=out, verify=verify
    )
    for info in written:
        click.echo(f"{info['type']:8} {_human(info['bytes']):>9}  {info['path']}")
    if source.run is not None:
        click.echo(f"Recorded in run {source.run['id']} (cra runs show {source.run['id']}).")


def _reusable(db, source: Source, kind: str, outtype: str) -> str | None:
    """An earlier export of the same file that is still intact (same size as recorded)."""
    if source.run is None:
        return None
    rows = db.query(
        "SELECT path, bytes, meta FROM artifacts WHERE run_id = ? AND kind = 'gguf' ORDER BY id DESC",
        [source.run["id"]],
    )
    for row in rows:
        meta = json.loads(row["meta"] or "{}")
        path = Path(row["path"])
        if (
            meta.get("type") == kind
            and meta.get("outtype") == outtype
            and path.is_file()
            and path.stat().st_size == row["bytes"]
        ):
            return str(path)
    return None


def _chat_template_of(path: str) -> str | None:
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.get_field(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    return field.contents() if field is not None else None


@export_group.command(name="ollama")
@_with_source_options
@click.option("--name", required=True, help="The Ollama model name (e.g. my-agent or my-agent:v2).")
@click.option(
    "--adapter",
    "as_adapter",
    is_flag=True,
    help="FROM the base GGUF with the adapter as ADAPTER, instead of FROM the merged model.",
)
@click.option(
    "--template",
    "template_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A Go template for TEMPLATE, for chat templates cra has no Ollama form for.",
)
@click.option(
    "--create/--no-create", default=True, show_default=True, help="Run `ollama create` when Ollama is installed."
)
def ollama_command(run, adapter_dir, base_ref, outtype, out, database, name, as_adapter, template_file, create):
    """Write an Ollama Modelfile for RUN and run `ollama create NAME` (or print the command).

    Reuses GGUF files an earlier `cra export gguf` wrote for the run; exports them otherwise.
    """
    from ..db import open_db
    from . import ollama

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._-]+)?", name):
        raise ExportError(f"--name {name!r}: use letters, digits, '.', '_', '-', '/' and an optional ':tag'")
    if out and out.endswith(".gguf"):
        raise ExportError("--out is a directory for `cra export ollama`")
    db = open_db(database)
    source = Source(db, run, adapter_dir, base_ref)
    kinds = ("base", "adapter") if as_adapter else ("merged",)
    paths = {kind: _reusable(db, source, kind, outtype) for kind in kinds}
    missing = [kind for kind, path in paths.items() if path is None]
    if missing:
        written = export_gguf(
            db,
            source,
            merged="merged" in missing,
            adapter="adapter" in missing,
            with_base="base" in missing,
            outtype=outtype,
            out=out,
        )
        paths.update({info["type"]: info["path"] for info in written})
    model_path = Path(paths["base"] if as_adapter else paths["merged"])

    if template_file:
        text = Path(template_file).read_text(encoding="utf-8")
        template = ollama.OllamaTemplate("custom", text, [])
    else:
        template = ollama.template_for(_chat_template_of(str(model_path)))
    comment = (
        f"Written by cra export ollama: {source.label()} ({outtype}, {'base + adapter' if as_adapter else 'merged'})"
    )
    text = ollama.modelfile_text(
        model=model_path,
        adapter=Path(paths["adapter"]) if as_adapter else None,
        template=template,
        comment=comment,
    )
    directory = Path(out).expanduser().resolve() if out else model_path.parent
    modelfile = directory / f"{name.replace('/', '_').replace(':', '_')}.Modelfile"
    from .writer import atomic_output

    with atomic_output(modelfile) as tmp:
        tmp.write_text(text, encoding="utf-8")
    click.echo(f"Modelfile ({template.family} template) -> {modelfile}")
    if create:
        created, output = ollama.run_create(name, modelfile)
    else:
        created, output = False, ollama.shlex.join(ollama.create_command(name, modelfile))
    if source.run is not None:
        from ..train import runs

        runs.record_artifact(
            db,
            source.run["id"],
            "modelfile",
            modelfile,
            {
                "name": name,
                "template": template.family,
                "created": created,
                "from": str(model_path),
                "adapter": paths.get("adapter") if as_adapter else None,
                "outtype": outtype,
            },
        )
    if created:
        click.echo(output)
        click.echo(f"Created Ollama model {name}: ollama run {name}")
    else:
        reason = "" if not create else "Ollama is not installed (https://ollama.com/download); then run:\n  "
        click.echo(f"{reason}{output}" if reason else f"To create the model, run:\n  {output}")
