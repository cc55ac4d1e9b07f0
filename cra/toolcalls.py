"""Moved to `cra.chat` (the conversation renderer): this name stays so that older imports keep working."""

from .chat.toolcalls import *  # noqa: F403
