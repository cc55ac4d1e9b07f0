"""`cra serve`: the trained model behind the Messages API, for Claude Code (docs/serve.md).

cra serve                                   # the promoted model (else the last run), llama.cpp
cra serve 3 --upstream https://api.anthropic.com --share 0.05 --fallback
cra serve status
cra serve set-share 0.2
"""

from __future__ import annotations

import json
import socket

import click

from ..cli_options import database_option, json_option
from ..errors import ConfigError, NotFoundError


class ServeGroup(click.Group):
    """`cra serve [RUN|GGUF] [options]` runs the server; `status` and `set-share` are subcommands."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(name="serve", cls=ServeGroup)
def serve_group():
    """Serve the trained model to Claude Code (ANTHROPIC_BASE_URL), all of it or a share of sessions.

    \b
    Examples:
      cra serve --port 8787                     # answer every request locally
      cra serve 3 --upstream https://api.anthropic.com --share 0.05 --fallback
      cra serve --upstream https://api.anthropic.com --shadow
      cra serve status
      cra serve set-share 0.2
    """


def _share(value: str) -> float:
    text = value.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a fraction (0.05) or a percentage (5%)") from None
    if not 0 <= share <= 1:
        raise click.BadParameter(f"{value!r}: the share is between 0 and 1 (0% and 100%)")
    return share


@serve_group.command(name="run")
@click.argument("model_ref", required=False, metavar="[RUN|GGUF]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (another only when asked).")
@click.option("--port", type=int, default=8787, show_default=True, help="Port (0: any free port, printed).")
@click.option("--backend", type=click.Choice(["llama.cpp", "hf"]), default="llama.cpp", show_default=True)
@click.option("--upstream", metavar="URL", help="The real API, for the sessions not answered locally.")
@click.option("--share", "share_text", default="1", show_default=True, help="Fraction of sessions answered locally.")
@click.option("--fallback", is_flag=True, help="Retry upstream when a local answer does not parse or times out.")
@click.option("--shadow", is_flag=True, help="Answer from upstream; generate locally and record if it agreed.")
@click.option("--timeout", type=float, help="Seconds a local answer may take (with --fallback: then upstream).")
@click.option("--max-new-tokens", type=int, default=1024, show_default=True, help="Longest local answer, in tokens.")
@click.option("--ctx", type=int, help="Context window for the local model [default: the model's, at most 8192].")
@click.option("--tokenizer", type=click.Path(exists=True), help="Tokenizer directory (a GGUF of no recorded run).")
@click.option("--chat-template", type=click.Path(exists=True, dir_okay=False), help="Override the run's template.")
@click.option("--cpu-threads", type=int, default=0, help="Threads for generation [default: the library's].")
@click.option("--max-body-mb", type=float, default=32, show_default=True, help="Largest request body accepted.")
@database_option
def run_command(
    model_ref,
    host,
    port,
    backend,
    upstream,
    share_text,
    fallback,
    shadow,
    timeout,
    max_new_tokens,
    ctx,
    tokenizer,
    chat_template,
    cpu_threads,
    max_body_mb,
    database,
):
    """Serve RUN (an id, 'last', 'promoted'; default: the promoted model, else the last run) or a GGUF file.

    Point Claude Code at it: ANTHROPIC_BASE_URL=http://127.0.0.1:8787 claude

    \b
    Examples:
      cra serve run --port 8787
      cra serve run 3 --upstream https://api.anthropic.com --share 0.05 --fallback
    """
    from ..db import open_db
    from . import app, model, store

    share = _share(share_text)
    if shadow and share_text == "1":
        share = 0.0  # shadow mode answers from upstream: nothing is served locally unless asked
    try:
        config = app.ServeConfig(
            upstream=upstream,
            share=share,
            fallback=fallback,
            shadow=shadow,
            timeout=timeout,
            max_new_tokens=max_new_tokens,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            "cra serve needs its web stack: pip install 'cra-claude[serve,llama]' (or [serve,train] for --backend hf)"
        ) from exc
    db = open_db(database)
    spec = model.resolve(db, model_ref, backend, tokenizer, chat_template)
    click.echo(f"Loading {spec.label} ({spec.backend})...", err=True)
    local = model.load(spec, n_ctx=ctx, threads=cpu_threads)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    sock.listen(128)
    port = sock.getsockname()[1]
    server_id = store.start_server(
        db,
        host=host,
        port=port,
        model=spec.label,
        backend=spec.backend,
        upstream=config.upstream,
        share=config.share,
        fallback=fallback,
        shadow=shadow,
    )
    log = store.RequestLog(database, server_id)
    server = app.build(config, local, log, store.ShareState(database, server_id, config.share))
    stopped: list[bool] = []

    def stop():
        if not stopped:  # once: from the app's shutdown, or from `finally` when uvicorn never started it
            stopped.append(True)
            log.close()
            store.stop_server(db, server_id)

    server.on_shutdown.append(stop)
    mode = f"share {config.share:g}" + (", fallback" if fallback else "") + (", shadow" if shadow else "")
    click.echo(
        f"cra serve {server_id}: {spec.label} ({mode}" + (f", upstream {config.upstream})" if config.upstream else ")"),
        err=True,
    )
    click.echo(f"Listening on http://{host}:{port}", err=True)
    try:
        uvicorn_config = uvicorn.Config(
            server.app(), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        uvicorn.Server(uvicorn_config).run(sockets=[sock])
    finally:
        stop()
        local.close()
        sock.close()


@serve_group.command(name="status")
@json_option("Print as JSON.")
@database_option
def status_command(as_json, database):
    """Running servers: model, address, share, and how their requests went.

    \b
    Examples:
      cra serve status
      cra serve status --json
    """
    from ..db import open_db
    from . import store

    db = open_db(database)
    servers = store.running_servers(db)
    for s in servers:
        s["requests"] = store.request_summary(db, s["id"])
    if as_json:
        click.echo(json.dumps(servers, indent=2))
        return
    if not servers:
        click.echo("No cra serve is running (start one with `cra serve`).")
        return
    for s in servers:
        r = s["requests"]
        flags = ", ".join(f for f in ("fallback" if s["fallback"] else "", "shadow" if s["shadow"] else "") if f)
        click.echo(
            f"cra serve {s['id']} (pid {s['pid']}): http://{s['host']}:{s['port']}, {s['backend']}, {s['model']}"
        )
        click.echo(
            f"  share {s['share']:g} of sessions answered locally"
            + (f", the rest by {s['upstream']}" if s["upstream"] else "")
            + (f" ({flags})" if flags else "")
            + f"; set {s['share_changed_at']}"
        )
        click.echo(
            f"  {r['requests']} requests from {r['sessions']} sessions: {r['answered_locally']} answered locally, "
            f"{r['fell_back']} fell back, {r['upstream'] + r['shadow']} upstream"
            + (f", parsed {r['parsed']}/{r['local_answers']}" if r["local_answers"] else "")
            + (f", shadow agreed {r['shadow_agreed']}/{r['shadow_compared']}" if r["shadow_compared"] else "")
        )


@serve_group.command(name="set-share")
@click.argument("share_text", metavar="SHARE")
@click.option("--server", "server_id", type=int, help="Which server (`cra serve status`), when several run.")
@database_option
@json_option("Print the server and its old and new share as JSON.")
def set_share_command(share_text, server_id, database, as_json):
    """Change the share of sessions a running server answers locally (0.2 or 20%), within a second.

    \b
    Examples:
      cra serve set-share 20%
      cra serve set-share 0.05 --server 2
    """
    from ..db import open_db
    from . import store

    share = _share(share_text)
    db = open_db(database)
    servers = store.running_servers(db)
    if server_id is not None:
        servers = [s for s in servers if s["id"] == server_id]
        if not servers:
            raise NotFoundError(f"no running cra serve {server_id}: `cra serve status` lists them")
    if not servers:
        raise NotFoundError("no cra serve is running: start one with `cra serve`")
    if len(servers) > 1:
        ids = ", ".join(str(s["id"]) for s in servers)
        raise ConfigError(f"{len(servers)} servers are running ({ids}): pick one with --server ID")
    target = servers[0]
    if share < 1 and not target["upstream"]:
        raise ConfigError(
            f"cra serve {target['id']} has no --upstream: every request must be answered locally (share 1)"
        )
    store.set_share(db, target["id"], share)
    if as_json:
        click.echo(json.dumps({"server": target["id"], "share_before": target["share"], "share": share}))
        return
    click.echo(f"cra serve {target['id']}: share {target['share']:g} -> {share:g}")
