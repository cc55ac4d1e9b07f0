"""Model families: how each one writes a conversation, character for character.

A family renders a `Conversation` into `Segment`s: text the model is shown (system, user, tool
results, the headers that open a turn) and text the model writes (everything after its turn's
header, through its end-of-turn token), which is what the loss covers.

Where a family's own chat template can show a conversation, cra writes exactly what that template
writes (tests/test_chat_render.py checks it against the real templates). Where the template cannot,
cra extends the family's own syntax rather than drop what Claude did:

- Parallel calls: Llama 3.1's template refuses more than one call per message; cra writes each call
  as its own `{"name": ..., "parameters": ...}` line. ChatML families list one `<tool_call>` block per
  call, as their templates already do.
- Text said before or between calls: Llama 3.1's template drops it; cra writes it first, then the
  calls, one line each.
- Arguments: always a JSON object (`tojson` of the dict), never a JSON string inside JSON.
- Thinking: Qwen3 has it natively (`<think>\\n...\\n</think>\\n\\n` at the start of its message, shown
  for the current turn's messages as Qwen3's template does). The other families get the same block,
  as plain text, at the start of the assistant message: `THINK_OPEN` ... `THINK_CLOSE`. `--thinking
  omit` (dataset build) leaves reasoning out of the examples, so no block is written.
- Results: in the order of the calls they answer (the conversation is put in that order first).
- Llama 3's date line is fixed (Llama 3.2's template prints today's date): the same conversation
  renders the same on any day, at training and at serving time.

`TemplateFamily` is the fallback for any other model: its own Jinja template, with the assistant's
text found through `{% generation %}` markers or by rendering each conversation's prefixes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import InputFormatError
from .conversation import Conversation, Message

THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"


@dataclass
class Segment:
    text: str
    assistant: bool  # written by the model: the loss covers it


@dataclass
class Rendered:
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def assistant_text(self) -> str:
        return "".join(s.text for s in self.segments if s.assistant)

    def shown(self, text: str) -> None:
        if text:
            self.segments.append(Segment(text, False))

    def written(self, text: str) -> None:
        if text:
            self.segments.append(Segment(text, True))


def tojson(value) -> str:
    """JSON as transformers' chat templates write it (`tojson`: no ASCII escaping, default separators)."""
    return json.dumps(value, ensure_ascii=False)


def think_block(thinking: str) -> str:
    return THINK_OPEN + thinking.strip("\n") + THINK_CLOSE if thinking else ""


class Family:
    """How one model family writes conversations; see the module docstring."""

    name = ""
    description = ""
    end_of_turn: tuple[str, ...] = ()  # what ends the model's turn (generation stops there)
    native_thinking = False

    def render(self, conversation: Conversation, add_generation_prompt: bool = False) -> Rendered:
        raise NotImplementedError


def _tool_groups(messages: list[Message]) -> list[tuple[bool, bool]]:
    """(first of a run of tool results, last of it) per message."""
    flags = []
    for i, m in enumerate(messages):
        first = m.role == "tool" and (i == 0 or messages[i - 1].role != "tool")
        last = m.role == "tool" and (i == len(messages) - 1 or messages[i + 1].role != "tool")
        flags.append((first, last))
    return flags


class _ChatMLBase(Family):
    """ChatML turns (`<|im_start|>role\\n...<|im_end|>\\n`), `<tool_call>` JSON, results in a user turn."""

    end_of_turn = ("<|im_end|>",)
    tools_intro = ""
    tools_outro = ""
    default_system: str | None = None

    system_separator = "\n\n"

    def _system(self, conversation: Conversation) -> str:
        """The opening system turn: the system prompt (or the family's default) and the tool list."""
        messages = conversation.messages
        system = messages[0].content if messages and messages[0].role == "system" else None
        if conversation.tools:
            body = system if system is not None else (self.default_system or "")
            if body or system is not None:
                body += self.system_separator
            body += self.tools_intro + "".join("\n" + tojson(t) for t in conversation.tools) + self.tools_outro
            return "<|im_start|>system\n" + body + "<|im_end|>\n"
        if system is None:
            system = self.default_system
        return "<|im_start|>system\n" + system + "<|im_end|>\n" if system is not None else ""

    @staticmethod
    def _calls(message: Message, content: str) -> str:
        out = ""
        for k, call in enumerate(message.calls):
            if content or k:
                out += "\n"
            out += '<tool_call>\n{"name": "' + call.name + '", "arguments": ' + call.arguments_json + "}\n</tool_call>"
        return out

    def _turn_state(self, messages: list[Message]) -> dict:
        """What `_assistant_body` needs to know about the whole conversation."""
        return {}

    def _assistant_body(self, message: Message, index: int, state: dict) -> str:
        """What the model writes in this message, before its end-of-turn token."""
        return think_block(message.thinking) + message.content + self._calls(message, message.content)

    def _renders_system_in_loop(self, index: int) -> bool:
        return index > 0  # a second system message is a turn of its own

    def render(self, conversation: Conversation, add_generation_prompt: bool = False) -> Rendered:
        out = Rendered()
        messages = conversation.messages
        out.shown(self._system(conversation))
        groups = _tool_groups(messages)
        state = self._turn_state(messages)
        for i, m in enumerate(messages):
            if m.role == "system":
                if self._renders_system_in_loop(i):
                    out.shown("<|im_start|>system\n" + m.content + "<|im_end|>\n")
            elif m.role == "user":
                out.shown("<|im_start|>user\n" + m.content + "<|im_end|>\n")
            elif m.role == "assistant":
                out.shown("<|im_start|>assistant\n")
                out.written(self._assistant_body(m, i, state) + "<|im_end|>")
                out.shown("\n")
            else:
                first, last = groups[i]
                out.shown(
                    ("<|im_start|>user" if first else "") + "\n<tool_response>\n" + m.content + "\n</tool_response>"
                )
                if last:
                    out.shown("<|im_end|>\n")
        if add_generation_prompt:
            out.shown(self._generation_prompt())
        return out

    def _generation_prompt(self) -> str:
        return "<|im_start|>assistant\n"


class ChatML(_ChatMLBase):
    """cra's own ChatML template (cra/chat/templates.py CHATML_TEMPLATE), for bases without a template."""

    name = "chatml"
    description = "cra's ChatML (bases without a chat template; the tiny test model)"
    tools_intro = "# Tools\n\nYou may call one or more functions. Function signatures:\n<tools>"
    tools_outro = '\n</tools>\n\nFor each call, return <tool_call>{"name": ..., "arguments": ...}</tool_call>.'

    def _renders_system_in_loop(self, index: int) -> bool:
        return False  # cra's template shows only the first system message


class Qwen25(_ChatMLBase):
    name = "qwen2.5"
    description = "Qwen2.5 Instruct (and Qwen2.5-Coder): ChatML, <tool_call> JSON, no native thinking"
    default_system: str | None = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    tools_intro = (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    )
    tools_outro = (
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
        "<args-json-object>}\n</tool_call>"
    )


class Qwen3(Qwen25):
    """Qwen3: Qwen2.5's tool format plus native `<think>` blocks in the current turn."""

    name = "qwen3"
    description = "Qwen3 (hybrid thinking): ChatML, <tool_call> JSON, native <think> blocks"
    default_system = None
    native_thinking = True

    def _turn_state(self, messages: list[Message]) -> dict:
        last_query = len(messages) - 1
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            wrapped = m.content.startswith("<tool_response>") and m.content.endswith("</tool_response>")
            if m.role == "user" and not wrapped:
                last_query = i
                break
        return {"last_query": last_query, "last": len(messages) - 1}

    def _assistant_body(self, message: Message, index: int, state: dict) -> str:
        # Qwen3's template: the current turn's messages carry their reasoning (its last message an empty
        # block when it has none); messages of earlier turns are shown without it.
        content = message.content
        if index > state["last_query"] and (index == state["last"] or message.thinking):
            body = "<think>\n" + message.thinking.strip("\n") + "\n</think>\n\n" + content.lstrip("\n")
        else:
            body = content
        return body + self._calls(message, content)


class Llama3(Family):
    """Llama 3.1 / 3.2 / 3.3 Instruct: header tokens, JSON tool calls, results as `ipython` turns."""

    name = "llama3"
    description = "Llama 3.1 / 3.2 / 3.3 Instruct: JSON calls ({name, parameters}), tools in the first user turn"
    end_of_turn = ("<|eot_id|>", "<|eom_id|>")
    date = "26 Jul 2024"

    @staticmethod
    def _header(role: str) -> str:
        return "<|start_header_id|>" + role + "<|end_header_id|>\n\n"

    def render(self, conversation: Conversation, add_generation_prompt: bool = False) -> Rendered:
        out = Rendered()
        messages = list(conversation.messages)
        system = ""
        if messages and messages[0].role == "system":
            system = messages.pop(0).content.strip()
        tools = conversation.tools
        out.shown(
            "<|begin_of_text|>"
            + self._header("system")
            + ("Environment: ipython\n" if tools else "")
            + "Cutting Knowledge Date: December 2023\n"
            + f"Today Date: {self.date}\n\n"
            + system
            + "<|eot_id|>"
        )
        if tools:
            if not messages or messages[0].role != "user":
                raise InputFormatError(
                    "Llama 3 shows the tools in the first user message: a conversation with tools must start with one"
                )
            first = messages.pop(0)
            out.shown(
                self._header("user")
                + "Given the following functions, please respond with a JSON for a function call with its proper "
                "arguments that best answers the given prompt.\n\n"
                'Respond in the format {"name": function name, "parameters": dictionary of argument name and its '
                "value}.Do not use variables.\n\n"
                + "".join(json.dumps(t, ensure_ascii=False, indent=4) + "\n\n" for t in tools)
                + first.content.strip()
                + "<|eot_id|>"
            )
        for m in messages:
            if m.role == "tool":
                # The template writes a tool result with `tojson` (a string becomes a quoted JSON string).
                out.shown(self._header("ipython") + tojson(m.content) + "<|eot_id|>")
            elif m.role == "assistant":
                out.shown(self._header("assistant"))
                calls = "\n".join('{"name": "' + c.name + '", "parameters": ' + c.arguments_json + "}" for c in m.calls)
                text = m.content.strip()
                body = think_block(m.thinking) + text + ("\n" if text and calls else "") + calls
                out.written(body + "<|eot_id|>")
            else:
                out.shown(self._header(m.role) + m.content.strip() + "<|eot_id|>")
        if add_generation_prompt:
            out.shown(self._header("assistant"))
        return out


FAMILIES: dict[str, Family] = {f.name: f for f in (Llama3(), Qwen25(), Qwen3(), ChatML())}

# What each family's own template says and no other template in llama.cpp's collection of real ones
# does (tests/test_chat_render.py checks all of them): the tool instructions cra writes itself, word
# for word, and the family's turn markers. Qwen3.5 and Qwen3-Coder write XML calls: not qwen3.
_QWEN_TOOLS = "You may call one or more functions to assist with the user query."
_SIGNATURES = {
    "llama3": ("<|start_header_id|>", "<|eot_id|>", '"parameters": ', "Cutting Knowledge Date: December 2023"),
    "qwen3": ("<|im_start|>", _QWEN_TOOLS, "reasoning_content", "last_query_index", "<think>"),
    "qwen2.5": ("<|im_start|>", _QWEN_TOOLS, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
}


def detect(template: str | None) -> Family | None:
    """The family whose own chat template this is; None for a template cra has no renderer for."""
    from .templates import CHATML_TEMPLATE

    if not template or template == CHATML_TEMPLATE:
        return FAMILIES["chatml"]
    for name, marks in _SIGNATURES.items():
        if all(mark in template for mark in marks):
            return FAMILIES[name]
    return None


class TemplateFamily(Family):
    """Any other model: its own Jinja template renders, cra finds the assistant's text.

    Thinking goes in front of the message's content as a `<think>` block (the template knows no
    reasoning field). The assistant's characters come from `{% generation %}` markers when the template
    has them, else from rendering the conversation before and through each assistant message (which
    needs a template that renders a conversation's start as a prefix of the whole: checked).
    """

    name = "template"
    description = "the base model's own chat template (a family cra has no renderer for)"
    native_thinking = False

    def __init__(self, template: str, special_tokens: dict | None = None, end_of_turn: tuple[str, ...] = ()):
        self.template = template
        self.special_tokens = dict(special_tokens or {})
        self.end_of_turn = end_of_turn
        self.markers = bool(re.search(r"\{%-?\s*generation\s*-?%\}", template))

    @staticmethod
    def openai_messages(conversation: Conversation) -> list[dict]:
        out = []
        for m in conversation.messages:
            if m.role == "assistant":
                msg: dict = {"role": "assistant", "content": think_block(m.thinking) + m.content}
                if m.calls:
                    msg["tool_calls"] = [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.malformed or c.arguments},
                        }
                        for c in m.calls
                    ]
                out.append(msg)
            elif m.role == "tool":
                out.append({"role": "tool", "tool_call_id": m.call_id, "name": m.name, "content": m.content})
            else:
                out.append({"role": m.role, "content": m.content})
        return out

    def _render(self, messages, tools, add_generation_prompt=False, spans=False):
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            rendered, indices = render_jinja_template(
                [messages],
                tools=tools or None,
                chat_template=self.template,
                return_assistant_tokens_mask=spans,
                add_generation_prompt=add_generation_prompt,
                **self.special_tokens,
            )
        except Exception as exc:  # jinja2 raises TemplateError and whatever raise_exception() was given
            raise InputFormatError(f"the model's chat template cannot render this conversation: {exc}") from exc
        return rendered[0], (indices[0] if indices else [])

    def render(self, conversation: Conversation, add_generation_prompt: bool = False) -> Rendered:
        messages = self.openai_messages(conversation)
        tools = conversation.tools
        if self.markers:
            text, spans = self._render(messages, tools, add_generation_prompt, spans=True)
        else:
            text, _ = self._render(messages, tools, add_generation_prompt)
            spans = []
            for i, m in enumerate(messages):
                if m["role"] != "assistant":
                    continue
                before, _ = self._render(messages[:i], tools, add_generation_prompt=True)
                through, _ = self._render(messages[: i + 1], tools)
                if not (text.startswith(through) and through.startswith(before)):
                    raise InputFormatError(
                        "the chat template does not render conversations prefix-consistently (a conversation's "
                        "start renders differently from the whole), so cra cannot find the assistant's tokens: pass "
                        "--chat-template with a family cra renders itself (llama3, qwen2.5, qwen3, chatml) or a "
                        "template file that marks assistant output with {% generation %} ... {% endgeneration %}"
                    )
                spans.append((len(before), len(through)))
        out = Rendered()
        pos = 0
        for start, end in spans:
            out.shown(text[pos:start])
            out.written(text[start:end])
            pos = end
        out.shown(text[pos:])
        return out
