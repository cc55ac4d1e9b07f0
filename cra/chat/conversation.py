"""A conversation as the renderer takes it: the dataset's example format, checked and normalised.

`cra dataset build` writes OpenAI-style rows: `{"messages": [...], "tools": "<JSON list>"}` where an
assistant message has `content`, optionally `reasoning` (Claude's thinking) and `tool_calls`
(`{id, type, function: {name, arguments}}`, arguments a JSON string), and each tool result is a
`tool` message with the `tool_call_id` of its call. `Conversation.from_example` reads that (and the
same with arguments as objects, as an API request has them) into `Message`s whose arguments are
dicts, whose results follow their calls in the calls' order (so a family that ties results to calls
by position ties the right ones), and refuses with `InputFormatError` what no renderer can show
faithfully: a role it does not know, arguments that are not a JSON object, a result for no call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputFormatError

ROLES = ("system", "user", "assistant", "tool")
THINKING_MODES = ("keep", "omit")


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    id: str | None = None
    malformed: str | None = None  # arguments text that is not a JSON object, kept as written (strict=False)

    @property
    def arguments_json(self) -> str:
        """The arguments as a model writes them: a JSON object (`tojson`), or the malformed text as it was."""
        if self.malformed is not None:
            return self.malformed
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Message:
    role: str
    content: str = ""
    thinking: str = ""  # the assistant's reasoning before its text and calls
    calls: list[Call] = field(default_factory=list)
    call_id: str | None = None  # a tool result: the call it answers
    name: str | None = None  # a tool result: the tool that produced it


@dataclass
class Conversation:
    messages: list[Message]
    tools: list[dict] = field(default_factory=list)  # OpenAI function schemas, as the example lists them

    @classmethod
    def from_example(cls, example: dict, thinking: str = "keep", strict: bool = True) -> Conversation:
        """Read one dataset row (or `{"messages", "tools"}` built in code). `thinking="omit"` drops reasoning.

        `strict=False` keeps arguments that are not a JSON object as written instead of refusing them: the
        rejected side of a preference pair is sometimes exactly that.
        """
        if thinking not in THINKING_MODES:
            raise ValueError(f"thinking must be one of {', '.join(THINKING_MODES)}")
        if not isinstance(example, Mapping) or not isinstance(example.get("messages"), list):
            raise InputFormatError(
                "a conversation is an object with a 'messages' list (`cra dataset build` writes them)"
            )
        messages = [_message(m, i, thinking, strict) for i, m in enumerate(example["messages"])]
        return cls(_tie_results(messages), tools_list(example.get("tools")))

    def tool_names(self) -> list[str]:
        return [(t.get("function") or t).get("name", "") for t in self.tools]

    def called(self) -> list[str]:
        """Names of the tools the conversation's assistant messages call, first use first."""
        return list(dict.fromkeys(c.name for m in self.messages for c in m.calls))


def tools_list(tools: Any) -> list[dict]:
    """An example's `tools` (a JSON string, a list, or nothing) as a list of schemas."""
    if tools is None or tools == "":
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError as exc:
            raise InputFormatError(f"the example's 'tools' is not valid JSON ({exc})") from exc
    if not isinstance(tools, list) or not all(isinstance(t, Mapping) for t in tools):
        raise InputFormatError("the example's 'tools' must be a list of function schemas")
    return tools


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content blocks: keep their text
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in value)
    raise InputFormatError(f"{where} must be text, not {type(value).__name__}")


def _call(raw: Any, where: str, strict: bool = True) -> Call:
    if not isinstance(raw, Mapping):
        raise InputFormatError(f"{where} is not an object")
    fn = raw.get("function") or raw
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InputFormatError(f"{where} has no tool name")
    args = fn.get("arguments", {})
    text = args if isinstance(args, str) else None
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as exc:
            if strict:
                raise InputFormatError(f"{where} ({name}): arguments are not valid JSON ({exc})") from exc
            return Call(name, {}, raw.get("id"), malformed=text)
    if not isinstance(args, Mapping):
        if strict:
            raise InputFormatError(f"{where} ({name}): arguments must be a JSON object, not {type(args).__name__}")
        return Call(name, {}, raw.get("id"), malformed=text if text is not None else json.dumps(args))
    return Call(name, dict(args), raw.get("id"))


def _message(raw: Any, index: int, thinking: str, strict: bool = True) -> Message:
    where = f"message {index}"
    if not isinstance(raw, Mapping):
        raise InputFormatError(f"{where} is not an object")
    role = raw.get("role")
    if role not in ROLES:
        raise InputFormatError(f"{where} has role {role!r}: cra renders {', '.join(ROLES)}")
    content = _text(raw.get("content"), f"{where}'s content")
    if role == "assistant":
        calls = [_call(c, f"{where}'s tool call {k}", strict) for k, c in enumerate(raw.get("tool_calls") or [])]
        reasoning = "" if thinking == "omit" else _text(raw.get("reasoning") or raw.get("reasoning_content"), where)
        return Message(role, content, reasoning, calls)
    if role == "tool":
        return Message(role, content, call_id=raw.get("tool_call_id"), name=raw.get("name"))
    return Message(role, content)


def _tie_results(messages: list[Message]) -> list[Message]:
    """Results after an assistant message, reordered to its calls' order; a result for no call is refused."""
    out: list[Message] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        out.append(m)
        i += 1
        if m.role != "assistant" or not m.calls:
            continue
        results = []
        while i < len(messages) and messages[i].role == "tool":
            results.append(messages[i])
            i += 1
        order = {c.id: k for k, c in enumerate(m.calls) if c.id}
        if all(r.call_id is None for r in results):
            out.extend(results)  # no ids to tie by: the order they came in
            continue
        for r in results:
            if r.call_id not in order:
                raise InputFormatError(
                    f"a tool result (tool_call_id {r.call_id!r}) answers none of the calls of the assistant message "
                    f"before it ({', '.join(c.id or '?' for c in m.calls)})"
                )
        out.extend(sorted(results, key=lambda r: order[r.call_id or ""]))
    for k, m in enumerate(out):
        before = out[k - 1] if k else None
        if m.role == "tool" and not (before and (before.role == "tool" or before.calls)):
            raise InputFormatError(f"a tool result (message {k}) does not follow an assistant message with calls")
    return out
