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

import click

from ..cli_options import database_option, json_option
from .exporter import Source, export_gguf
from .model_files import ExportError
from .writer import OUTTYPES


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group(name="export")
def export_group():
    """Export a trained run for local runtimes: GGUF files (llama.cpp, LM Studio) and an Ollama model;
    or the database's tables as Parquet (`parquet`)."""


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
        help="Tensor type: f32/f16/bf16/q8_0/q4_0 are written directly; "
        "q4_k_m uses llama.cpp's quantizer (llama-cpp-python).",
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
@json_option("Print the run and the files written (type, path, bytes) as JSON.")
def gguf_command(run, adapter_dir, base_ref, outtype, out, database, merged, as_adapter, no_base, verify, as_json):
    """Export RUN (an id, or 'last') as GGUF: a merged model and/or a LoRA adapter file.

    \b
    Examples:
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
    if as_json:
        click.echo(json.dumps({"run": source.run["id"] if source.run else None, "files": written}, indent=2))
        return
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
@json_option("Print the Modelfile, the GGUF files it uses and whether the model was created, as JSON.")
def ollama_command(
    run, adapter_dir, base_ref, outtype, out, database, name, as_adapter, template_file, create, as_json
):
    """Write an Ollama Modelfile for RUN and run `ollama create NAME` (or print the command).

    Reuses GGUF files an earlier `cra export gguf` wrote for the run; exports them otherwise.

    \b
    Examples:
      cra export ollama last --name my-agent
      cra export ollama 3 --name my-agent:v2 --adapter --no-create
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
    reusable = {kind: _reusable(db, source, kind, outtype) for kind in kinds}
    paths = {kind: path for kind, path in reusable.items() if path is not None}
    missing = [kind for kind in kinds if kind not in paths]
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
    if not as_json:
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
    if as_json:
        result = {
            "run": source.run["id"] if source.run else None,
            "name": name,
            "modelfile": str(modelfile),
            "template": template.family,
            "files": paths,
            "created": created,
            "ollama": output,  # `ollama create`'s output, or the command to run when it did not
        }
        click.echo(json.dumps(result, indent=2))
    elif created:
        click.echo(output)
        click.echo(f"Created Ollama model {name}: ollama run {name}")
    else:
        reason = "" if not create else "Ollama is not installed (https://ollama.com/download); then run:\n  "
        click.echo(f"{reason}{output}" if reason else f"To create the model, run:\n  {output}")


@export_group.command(name="parquet")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--table", "tables", multiple=True, help="Only this table (repeatable) [default: every table].")
@database_option
@json_option("Print the manifest as JSON.")
def parquet_command(out_dir, tables, database, as_json):
    """Every table as Parquet, partitioned by month: OUT_DIR/<table>/month=YYYY-MM/part-0.parquet.

    Columns keep the schema's types; OUT_DIR/manifest.json lists tables, rows and types. Rerunning
    replaces each table's directory. Needs pyarrow (pip install 'cra-claude[parquet]').

    \b
    Example:
      cra export parquet traces/
      python -c "import duckdb; print(duckdb.sql(\"FROM 'traces/turns/*/*.parquet'\"))"
    """
    from ..db import open_db
    from .parquet import export_parquet

    manifest = export_parquet(open_db(database).conn, out_dir, list(tables) or None)
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    for name, t in manifest["tables"].items():
        months = f"{len(t['months'])} month(s)" if t["months"] else "empty"
        bad = (
            f"; {sum(t['mismatched'].values())} values not of their column's type written as NULL"
            if t["mismatched"]
            else ""
        )
        click.echo(f"  {name:<24} {t['rows']:>9} rows, {months}{bad}")
    click.echo(f"Wrote {len(manifest['tables'])} tables to {Path(out_dir).resolve()} ({manifest['seconds']:.1f} s).")
