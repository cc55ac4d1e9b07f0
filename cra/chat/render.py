"""Rendering for a tokenizer: which family writes, the text, the tokens and their loss mask."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .conversation import Conversation
from .families import FAMILIES, Family, Rendered, TemplateFamily, detect
from .templates import CHATML_TEMPLATE, read_template

# The model's end of turn in families cra has no renderer for (stop strings when generating).
_KNOWN_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def resolve_family(tokenizer, setting: str = "auto") -> Family:
    """The family that renders for this tokenizer.

    `setting`: `auto` (the family of the tokenizer's own template; cra's ChatML when it has none; the
    template itself when cra has no renderer for its family), a family name (llama3, qwen2.5, qwen3,
    chatml), or a Jinja file (rendered as given). A tokenizer without a template is given cra's ChatML
    template, so that it is saved with the run's adapter.
    """
    if setting in FAMILIES:
        return FAMILIES[setting]
    if setting != "auto":
        tokenizer.chat_template = read_template(setting)
        return template_family(tokenizer)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    return detect(tokenizer.chat_template) or template_family(tokenizer)


def template_family(tokenizer) -> TemplateFamily:
    template = tokenizer.chat_template
    if not isinstance(template, str):
        raise ConfigError(
            "the tokenizer has several named chat templates: pass --chat-template with a family (llama3, qwen2.5, "
            "qwen3, chatml) or a Jinja file"
        )
    vocab = tokenizer.get_vocab()
    ends = tuple(t for t in (*_KNOWN_END_OF_TURN, tokenizer.eos_token) if t and t in vocab and t in template)
    return TemplateFamily(template, dict(tokenizer.special_tokens_map), ends or ((tokenizer.eos_token,)))


def conversation(example: dict | Conversation, thinking: str = "keep") -> Conversation:
    return example if isinstance(example, Conversation) else Conversation.from_example(example, thinking)


def render(example: dict | Conversation, family: Family, *, add_generation_prompt: bool = False) -> Rendered:
    """A conversation (a dataset row or a Conversation) as the family writes it, in segments."""
    return family.render(conversation(example), add_generation_prompt)


def render_prompt(messages: list[dict], tools: Any, family: Family) -> str:
    """The text a model is given to write its next message after `messages` (ends with the generation prompt)."""
    return render({"messages": messages, "tools": tools}, family, add_generation_prompt=True).text


def prompt_ids(tokenizer, messages: list[dict], tools: Any, family: Family) -> list[int]:
    """`render_prompt` tokenized as training tokenizes (what the model wrote before, apart)."""
    return tokenize(tokenizer, render({"messages": messages, "tools": tools}, family, add_generation_prompt=True))[
        "input_ids"
    ]


def tokenize(tokenizer, rendered: Rendered, assistant_only: bool = True) -> dict[str, list[int]]:
    """input_ids and labels (-100 outside the assistant's text when `assistant_only`).

    Text the model is shown and text it writes are tokenized apart, as they are when it runs: the
    prompt is tokenized up to its generation prompt, and what the model writes starts a fresh token.
    So a label never covers a token that merges prompt and answer characters.
    """
    runs: list[tuple[str, bool]] = []
    for segment in rendered.segments:
        if runs and runs[-1][1] == segment.assistant:
            runs[-1] = (runs[-1][0] + segment.text, segment.assistant)
        else:
            runs.append((segment.text, segment.assistant))
    if not runs:
        return {"input_ids": [], "labels": []}
    encoded = tokenizer([text for text, _ in runs], add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    labels: list[int] = []
    for (_, assistant), part in zip(runs, encoded):
        ids += part
        labels += part if (assistant or not assistant_only) else [-100] * len(part)
    return {"input_ids": ids, "labels": labels}


def tokenize_example(tokenizer, example: dict, family: Family, assistant_only: bool = True) -> dict[str, list[int]]:
    return tokenize(tokenizer, render(example, family), assistant_only)


def count_tokens(tokenizer, example: dict | Conversation, family: Family) -> int:
    """Tokens of the rendered conversation: what training would feed the model."""
    return len(tokenize(tokenizer, render(example, family))["input_ids"])
