"""The base model a run starts from: the default, the length budget shared by `cra dataset build` and
`cra train`, and where a base comes from (a directory, the local hub cache, or the hub), decided at
once: a hub that cannot be reached is seen in one TCP connect, not after a minute of retries.

Standard library only: the dataset build and the CLI's option defaults import it without the ML stack.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import ConfigError

DEFAULT_BASE = "meta-llama/Llama-3.1-8B-Instruct"
# One budget for the whole path: `cra dataset build --max-tokens` defaults to it too. A Claude Code turn
# with its system prompt and used tools' schemas fits; an 8B base trains at this length on one 24 GB
# GPU (docs/training.md).
DEFAULT_MAX_LENGTH = 8192


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the model hub (through the HTTPS proxy when one is set)?

    One TCP connect with a short timeout: huggingface_hub's own retries take about a minute to give up.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection(
            (url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout
        ).close()
    except OSError:
        return False
    return True


def is_hub_id(base: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", base)) and not base.startswith((".", "~"))


def in_hub_cache(base: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(base, "config.json")
    return isinstance(found, str)


def check_base(base: str) -> None:
    """Fail at once, saying what to pass, when `base` is a hub id that can be loaded from nowhere.

    A hub id in the local cache loads offline (HF_HUB_OFFLINE is set when the hub cannot be reached, so
    nothing waits on retries); one that is neither cached nor reachable is an error now, not after a
    minute of retries. A path is left to the loader, whose error the run records.
    """
    if Path(base).expanduser().exists() or not is_hub_id(base):
        return
    if hub_reachable():
        return
    if in_hub_cache(base):
        os.environ["HF_HUB_OFFLINE"] = "1"
        return
    raise ConfigError(
        f"--base {base} is a model hub id, and the hub cannot be reached from this machine (offline?) and the "
        f"model is not in the local hub cache: pass --base with a local directory holding the model (config.json, "
        f"weights, tokenizer), for example one copied from a machine that ran `hf download {base} --local-dir DIR`"
    )
