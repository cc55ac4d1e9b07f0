"""Compact tool schemas: names and parameters without the long descriptions (`--tools compact`).

Claude Code's own tool descriptions run to thousands of tokens (Agent's and Bash's are pages of
guidance); a small model learns the tools from the calls it sees. Compact keeps what a call must get
right, the name and each parameter's type, allowed values and whether it is required, and a tool's
first sentence. It lives here, beside the renderer, because a model trained on compact schemas must
be served compact schemas too.
"""

from __future__ import annotations

import re

# What a call must satisfy; everything else in a JSON schema (descriptions, titles, examples,
# defaults) is guidance for the model, which compact drops.
_KEEP = ("type", "properties", "required", "items", "enum", "const", "anyOf", "oneOf", "additionalProperties")
FIRST_SENTENCE_CHARS = 120


def first_sentence(text: str, limit: int = FIRST_SENTENCE_CHARS) -> str:
    text = (text or "").strip()
    match = re.search(r"(?<=[.!?])\s|\n", text)
    sentence = text[: match.start()].strip() if match else text
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


def _compact_schema(schema):
    if isinstance(schema, list):
        return [_compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key in _KEEP:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _compact_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _compact_schema(value)
        else:
            out[key] = value
    return out


def compact_tools(tools: list[dict]) -> list[dict]:
    """The same tools in the same order, each with its first sentence and its parameters' shapes only."""
    out = []
    for tool in tools:
        fn = tool.get("function", tool)
        compact = {"name": fn.get("name"), "description": first_sentence(fn.get("description", ""))}
        compact["parameters"] = _compact_schema(fn.get("parameters") or {"type": "object", "properties": {}})
        out.append({"type": "function", "function": compact} if "function" in tool else compact)
    return out
