"""Chat templates for training: which one renders the examples, and which tokens carry the loss.

Three cases, in order (docs/training.md explains them):

1. The template marks assistant output with `{% generation %}` ... `{% endgeneration %}`: TRL computes
   the assistant mask itself (`assistant_only_loss=True`).
2. The template has no such markers (most models' own templates, Llama 3.1's included): cra renders
   each conversation once per assistant message, before it (with the generation prompt) and after it,
   and the characters in between are the assistant's. Labels are -100 everywhere else. This needs a
   template whose rendering of a conversation's first k messages is a prefix of its rendering of the
   whole; cra checks, and says so when it is not.
3. The tokenizer has no template at all (a base, non-instruct model): cra's ChatML template below,
   which supports tools and has generation markers. Its `<|im_start|>`/`<|im_end|>` are plain text to
   such a tokenizer (several tokens each), which trains fine but is not what an instruct model expects.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ConfigError

GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")

# ChatML with tools in the system turn and tool calls as <tool_call> JSON (Qwen2.5/Hermes style).
CHATML_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call one or more functions. Function signatures:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each call, return "
    '<tool_call>{"name": ..., "arguments": ...}</tool_call>.<|im_end|>\\n\' }}'
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}"
    "{%- elif message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}"
    "{%- if message.content %}{{- message.content }}{%- endif %}"
    "{%- for call in message.tool_calls or [] %}"
    "{%- if message.content or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{%- set fn = call.function if call.function is defined else call %}"
    '{{- \'<tool_call>\\n{"name": "\' + fn.name + \'", "arguments": \' }}'
    "{%- if fn.arguments is string %}{{- fn.arguments }}{%- else %}{{- fn.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>' }}"
    "{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def has_generation_markers(template: str | None) -> bool:
    return bool(template and GENERATION_MARKER.search(template))


def choose_template(tokenizer, setting: str) -> str:
    """Install the template to train with on `tokenizer`; return which case applies: 'markers' or 'prefix'."""
    if setting != "auto":
        try:
            with open(setting, encoding="utf-8") as f:
                tokenizer.chat_template = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read chat template {setting}: {exc.strerror}") from exc
    elif not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return "markers" if has_generation_markers(tokenizer.chat_template) else "prefix"


def _tools(example: dict[str, Any]):
    tools = example.get("tools")
    return json.loads(tools) if isinstance(tools, str) and tools else tools or None


def _render(tokenizer, messages, tools, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def tokenize_for_training(tokenizer, example: dict[str, Any], mode: str, assistant_only: bool = True) -> dict:
    """input_ids and labels for one conversation; labels are -100 outside assistant output when asked.

    cra tokenizes every example itself (TRL then only truncates or packs): one code path for both
    template cases, and examples whose assistant tokens all fall past max_length can be dropped
    instead of training on an all-masked row.
    """
    messages = example["messages"]
    tools = _tools(example)
    if not assistant_only:
        ids = tokenizer(_render(tokenizer, messages, tools), add_special_tokens=False)["input_ids"]
        return {"input_ids": list(ids), "labels": list(ids)}
    if mode == "markers":
        out = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(out["input_ids"])
        return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, out["assistant_masks"])]}
    return tokenize_with_assistant_labels(tokenizer, example)


def tokenize_with_assistant_labels(tokenizer, example: dict[str, Any]) -> dict:
    """Case 2: input_ids and labels (-100 outside assistant messages) for one conversation.

    Spans are found in characters (rendering before and after each assistant message), then mapped to
    tokens through the fast tokenizer's offsets, so token merges at span edges cannot shift them.
    """
    messages = example["messages"]
    tools = _tools(example)
    full = _render(tokenizer, messages, tools)
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:i], tools, add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], tools)
        if not (full.startswith(through) and through.startswith(before)):
            raise ConfigError(
                "the chat template does not render conversations prefix-consistently (a conversation's start renders "
                "differently from the whole), so cra cannot find the assistant tokens: pass --chat-template FILE with "
                "a template that marks assistant output with {% generation %} ... {% endgeneration %}, or "
                "--no-assistant-only-loss"
            )
        spans.append((len(before), len(through)))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [
        token_id if end > start and any(s <= start < e for s, e in spans) else -100
        for token_id, (start, end) in zip(ids, encoded["offset_mapping"])
    ]
    return {"input_ids": ids, "labels": labels}
