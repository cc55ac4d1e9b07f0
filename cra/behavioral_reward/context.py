"""The point in a conversation where Claude acted: what came before, what Claude did, what was offered.

A `Context` is the conversation up to one assistant message (openai format: system, user, assistant
with `tool_calls`, tool), the tools offered there, and that message itself: Claude's real next
action, the reference every reward component compares with. `contexts_from_example` cuts a training
conversation (`cra dataset build`'s rows) at each assistant message. Pure standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

from ..chat.toolcalls import ParsedAction, action_from_message, tool_schemas
from ..signals.situations import result_failed  # one reading of failed results, shared with eval gaps


@dataclass
class PriorCall:
    """A tool call already made in the current turn, with what came back."""

    name: str
    arguments: dict | None
    result: str
    failed: bool

    @property
    def key(self) -> tuple:
        return call_key(self.name, self.arguments)


def call_key(name, arguments) -> tuple:
    """Identity of a call for "the same call again": tool name and canonical arguments."""
    return name, json.dumps(arguments, sort_keys=True, ensure_ascii=False) if arguments is not None else None


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


@dataclass
class Context:
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    reference: dict = field(default_factory=dict)

    @classmethod
    def build(cls, messages, tools=None, reference=None) -> Context:
        if isinstance(messages, str):
            messages = json.loads(messages)
        if isinstance(tools, str):
            tools = json.loads(tools) if tools else []
        if isinstance(reference, str):
            reference = json.loads(reference)
        if not isinstance(reference, dict) or reference.get("role", "assistant") != "assistant":
            raise ValueError("the reference must be an assistant message (Claude's real next action)")
        return cls(list(messages or []), list(tools or []), reference)

    @cached_property
    def schemas(self) -> dict[str, dict]:
        """Tool name -> parameters schema for the tools offered here, plus any tool Claude used anyway
        (then its arguments are not checked: the schema we have does not describe it)."""
        schemas = tool_schemas(self.tools)
        for call in self.reference_action.calls:
            if call.name and call.name not in schemas:
                schemas[call.name] = {}
        return schemas

    @cached_property
    def reference_action(self) -> ParsedAction:
        return action_from_message(self.reference)

    @cached_property
    def reference_reasoning(self) -> str:
        return _text(self.reference.get("reasoning") or self.reference.get("reasoning_content") or "")

    @cached_property
    def turn_start(self) -> int:
        """Index of the user message that opened the current turn (0 if none)."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].get("role") == "user":
                return i
        return 0

    @cached_property
    def prompt_text(self) -> str:
        """The user's request this turn answers."""
        if self.messages and self.messages[self.turn_start].get("role") == "user":
            return _text(self.messages[self.turn_start].get("content"))
        return ""

    @cached_property
    def turn_calls(self) -> list[PriorCall]:
        """Tool calls made in this turn before the action, in order, with their results."""
        results: dict[str, tuple[str, dict | None]] = {}
        unnamed: list[tuple[str, dict | None]] = []
        for m in self.messages[self.turn_start :]:
            if m.get("role") == "tool":
                entry = (_text(m.get("content")), m)
                if m.get("tool_call_id"):
                    results[m["tool_call_id"]] = entry
                else:
                    unnamed.append(entry)
        calls = []
        for m in self.messages[self.turn_start :]:
            if m.get("role") != "assistant":
                continue
            action = action_from_message(m)
            for tc, parsed in zip(m.get("tool_calls") or (), action.calls):
                result = results.get(tc.get("id")) or (unnamed.pop(0) if unnamed else ("", None))
                calls.append(
                    PriorCall(parsed.name or "", parsed.arguments, result[0], result_failed(result[0], result[1]))
                )
        return calls

    @cached_property
    def last_failures(self) -> list[PriorCall]:
        """Failed calls among the results the model has just read (the last assistant message's calls)."""
        last = None
        for i in range(len(self.messages) - 1, self.turn_start - 1, -1):
            if self.messages[i].get("role") == "assistant":
                last = i
                break
        if last is None or not self.messages[last].get("tool_calls"):
            return []
        n = len(self.messages[last]["tool_calls"])
        return [c for c in self.turn_calls[-n:] if c.failed]

    def to_json(self) -> dict:
        return {"messages": self.messages, "tools": self.tools, "reference": self.reference}


def contexts_from_example(example: dict, max_per_example: int | None = None):
    """Every (Context, index) in a training conversation: one per assistant message, cut just before it.

    `example` is a row of `cra dataset build` (`{"messages": [...], "tools": "<JSON>"}`).
    """
    messages = example["messages"]
    if isinstance(messages, str):
        messages = json.loads(messages)
    tools = example.get("tools")
    out = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or i == 0:
            continue
        if not (m.get("content") or m.get("tool_calls")):
            continue
        out.append((Context.build(messages[:i], tools, m), i))
        if max_per_example and len(out) >= max_per_example:
            break
    return out
