"""A Messages API request as the model was trained on it, and the model's text back as content blocks.

The one place `cra serve` touches the conversation renderer: the request becomes the example
`cra dataset build` writes for the same moment of a session (turn_chats.turn_chat for each turn, the
builder's system prompt, context turns, tool schemas, truncation and token budget), rendered by the
tokenizer and chat template the run trained with (eval's loader) through the conversation renderer
(cra.chat: the family the run trained with), and the completion is read by the parser eval and the
reward use (cra.chat.parse_action).

Not applied at serve time: redaction (the model reads the user's real paths and must act on them) and
`tools: used` (the tools a turn will call are not known before it runs; every offered tool is listed).
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from dataclasses import dataclass, field

from ..chat import ParsedAction, check_call, parse_action, resolve_family, tool_schemas
from ..chat import render_prompt as render_chat
from ..dataset.build import BuildOptions, DatasetBuilder, TokenCounter
from ..dataset.tool_schemas import from_anthropic as tool_schema
from ..dataset.turn_chats import TurnData, turn_chat
from ..eval.backends import END_OF_TURN, load_tokenizer
from ..redact import Redactor
from ..transcripts.normalize import INTERRUPT_MARK, LOCAL_OUTPUT_PREFIXES

__all__ = [
    "END_OF_TURN",
    "load_tokenizer",
    "request_to_example",
    "render_prompt",
    "read_completion",
    "assistant_message",
    "TooLong",
    "ExactCounter",
    "tool_schema",
]

REMINDER = "<system-reminder>"
TASK_OPEN, TASK_CLOSE = "<task-notification>", "</task-notification>"
COMMAND_PREFIX = "<command-"  # a slash command's tags: <command-message>, <command-name>, <command-args>
# Claude Code states the working directory in its system prompt, and again in a system turn after `cd`.
_CWD = re.compile(r"Primary working directory:\s*(\S[^\n]*?)(?:\s+\(was [^\n]*\))?\s*$", re.M)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


_NO_REDACTION = Redactor(enabled=False)


class ExactCounter(TokenCounter):
    """The dataset builder's token counter, on the tokenizer (and chat template) being served."""

    def __init__(self, tokenizer, chat_template: str = "auto"):
        self.tokenizer = tokenizer
        self.family = resolve_family(tokenizer, chat_template)
        self.method = "the served model's tokenizer"


class TooLong(ValueError):
    """The conversation does not fit the model's context even with outputs truncated and context dropped."""


def _blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _prompt_text(blocks: list[dict]) -> str | None:
    """A user message's prompt as the transcript stores it. The API request carries more than the
    transcript's prompt entry: reminders (meta entries there), a slash command's expansion after its
    tags (meta too), and a background task's notification wrapped in a reminder (bare there)."""
    texts = []
    for b in blocks:
        text = b.get("text") if b.get("type") == "text" else None
        if not isinstance(text, str):
            continue
        if text.lstrip().startswith(REMINDER):
            start, end = text.find(TASK_OPEN), text.rfind(TASK_CLOSE)
            if start >= 0 and end > start:
                texts.append(text[start : end + len(TASK_CLOSE)])
            continue
        texts.append(text)
    if texts and texts[0].startswith(COMMAND_PREFIX):
        texts = [texts[0].rstrip("\n")]
    text = "\n".join(texts)
    if not text.strip() or text.startswith(INTERRUPT_MARK) or text.startswith(LOCAL_OUTPUT_PREFIXES):
        return None
    return text


def _system_text(system) -> str | None:
    if isinstance(system, str):
        return system or None
    if isinstance(system, list):
        # As the transcript importer joins the client's system blocks (request_shapes.system).
        return "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict)) or None
    return None


def _turns(messages: list[dict]) -> tuple[list[dict], str | None]:
    """The request's messages cut into turns ({prompt, rows, cwd}) the way the transcript importer
    cuts a session; each turn's cwd is the one a system turn last stated before its prompt."""
    turns: list[dict] = []
    cwd = None
    for i, message in enumerate(messages):
        role = message.get("role")
        blocks = _blocks(message.get("content"))
        if role == "system":
            found = _CWD.findall("\n".join(b.get("text", "") for b in blocks if isinstance(b.get("text"), str)))
            cwd = found[-1].strip() if found else cwd
            if turns and not turns[-1]["rows"]:  # Claude Code states it right after the prompt
                turns[-1]["cwd"] = cwd
            continue
        if role == "user" and not any(b.get("type") == "tool_result" for b in blocks):
            prompt = _prompt_text(blocks)
            if prompt is not None:
                turns.append({"prompt": prompt, "rows": [], "cwd": cwd})
                continue
        if not turns:
            turns.append({"prompt": "", "rows": [], "cwd": cwd})
        # Each assistant message of a request is one API response: its own id groups its blocks.
        turns[-1]["rows"].append({"role": role, "content": json.dumps(blocks), "api_message_id": f"request-{i}"})
    return turns, cwd


def request_to_example(
    request: dict,
    options: BuildOptions,
    *,
    counter: TokenCounter | None = None,
    max_tokens: int | None = None,
    session_id: str = "serve",
) -> dict:
    """The example (`{"messages", "tools"}`, openai format) `cra dataset build` would write for the
    conversation in `request`, ending where the model must act next. `max_tokens` (the context left
    for the prompt) replaces the dataset's budget; raises TooLong when nothing fits."""
    turns, cwd = _turns(request.get("messages") or [])
    thinking = options.thinking == "reasoning"
    chats = [turn_chat(t["rows"], [], t["prompt"], None, thinking) for t in turns] or [[]]
    context = []
    for turn, chat in zip(turns[:-1], chats[:-1]):
        last = chat[-1] if chat else {}
        if last.get("role") == "assistant" and not last.get("tool_calls") and last.get("content"):
            context.append((turn["prompt"], last["content"]))
    if options.context_turns:
        context = context[-options.context_turns :]
    system = _system_text(request.get("system"))
    # The directory the turn started in, as the transcript records it (a `cd` later in the turn does not count).
    cwd = turns[-1]["cwd"] if turns else cwd
    if cwd is None and system:
        found = _CWD.findall(system)
        cwd = found[-1].strip() if found else None
    if max_tokens is not None:
        options = dataclasses.replace(options, max_tokens=max(256, max_tokens))
    builder = DatasetBuilder(None, options, redactor=_NO_REDACTION, counter=counter)
    builder.start_session([json.dumps(request.get("tools") or [])], system)
    current = TurnData(
        id=0,
        session_id=session_id,
        agent_id=None,
        turn_index=len(turns),
        prompt_text=turns[-1]["prompt"] if turns else "",
        final_answer=None,
        outcome=None,
        is_synthetic=False,
        cwd=cwd,
        messages=chats[-1] if turns else [{"role": "user", "content": ""}],
        calls=[],
        tool_call_count=0,
    )
    example = builder.example(current, context)
    if example is None:
        raise TooLong(
            f"the conversation does not fit the local model's context ({options.max_tokens} tokens for the "
            "prompt), even with tool outputs truncated"
        )
    return example


def render_prompt(tokenizer, example: dict, family=None) -> str:
    """The prompt text: the example rendered as the run trained (its family; by default the one the
    tokenizer's template calls for), ready for the assistant's turn."""
    return render_chat(example["messages"], example.get("tools"), family or resolve_family(tokenizer, "auto"))


def new_tool_use_id() -> str:
    return "toolu_cra" + secrets.token_hex(10)


@dataclass
class Reading:
    """A completion read back: content blocks for the answer, and whether it read cleanly."""

    thinking: str | None
    text: str
    tool_uses: list[dict] = field(default_factory=list)  # Anthropic tool_use blocks, valid calls only
    problems: list[str] = field(default_factory=list)  # why a tool call was not passed on

    @property
    def parsed(self) -> bool:
        return not self.problems

    def blocks(self, thinking_signature: str) -> list[dict]:
        out: list[dict] = []
        if self.thinking:
            out.append({"type": "thinking", "thinking": self.thinking, "signature": thinking_signature})
        if self.text:
            out.append({"type": "text", "text": self.text})
        return out + self.tool_uses


def split_thinking(text: str) -> tuple[str | None, str]:
    """(thinking, the rest) for a completion that opens with <think>...</think>; an unclosed block is all thinking."""
    stripped = text.lstrip()
    if not stripped.startswith(THINK_OPEN):
        return None, text
    body = stripped[len(THINK_OPEN) :]
    inner, closed, rest = body.partition(THINK_CLOSE)
    return inner.strip() or None, rest if closed else ""


def unusable_note(problems: list[str]) -> str:
    return "[cra serve: the local model wrote a tool call that cannot be used (%s); it was not run]" % "; ".join(
        problems
    )


def read_completion(text: str, tools: list[dict] | None) -> Reading:
    """Thinking, text and tool_use blocks from the model's text. A call that does not parse, names a
    tool the request did not offer, or has arguments its schema refuses is never passed on: it is
    listed in `problems`, and a note replaces it in the text."""
    thinking, rest = split_thinking(text)
    action: ParsedAction = parse_action(rest)
    schemas = tool_schemas([{"name": t.get("name"), "parameters": t.get("input_schema")} for t in tools or []])
    uses, problems = [], []
    for call in action.calls:
        validity = check_call(call, schemas)
        if validity.valid:
            uses.append({"type": "tool_use", "id": new_tool_use_id(), "name": call.name, "input": call.arguments})
        else:
            problems.append(f"{call.name or 'unnamed call'}: {', '.join(validity.problems)}")
    body = action.text
    if problems:
        body = (body + "\n\n" if body else "") + unusable_note(problems)
        uses = []  # half of an answer's calls would leave the turn inconsistent: none of them run
    return Reading(thinking, body, uses, problems)


def assistant_message(content: list[dict], thinking: bool = True) -> dict:
    """An Anthropic assistant message's content as the openai-format assistant message training uses."""
    rows = [{"role": "assistant", "content": json.dumps(content), "api_message_id": "answer"}]
    chat = turn_chat(rows, [], "", None, thinking)
    return chat[1] if len(chat) > 1 else {"role": "assistant", "content": ""}
