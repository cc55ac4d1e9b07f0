"""Moved to `cra.chat` (the conversation renderer): these names stay so that older imports keep working.

New code calls `cra.chat.resolve_family` and `cra.chat.tokenize_example` directly.
"""

from __future__ import annotations

from ..chat import CHATML_TEMPLATE, has_generation_markers, resolve_family, tokenize_example

__all__ = ["CHATML_TEMPLATE", "choose_template", "has_generation_markers", "tokenize_for_training"]


def choose_template(tokenizer, setting: str) -> str:
    """Install the template to train with on `tokenizer` (as `resolve_family` does); return its family's name."""
    return resolve_family(tokenizer, setting).name


def tokenize_for_training(tokenizer, example: dict, mode: str | None = None, assistant_only: bool = True) -> dict:
    """input_ids and labels for one conversation, rendered by the family of the tokenizer's template."""
    return tokenize_example(tokenizer, example, resolve_family(tokenizer, "auto"), assistant_only)
