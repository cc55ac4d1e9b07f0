"""Tool calls as a model writes them: parsing generated text, checking calls against tool schemas,
and how close one call's arguments are to another's.

Shared by evaluation (cra/eval), the behavioral reward (cra/behavioral_reward) and serving: one parser and one
argument similarity, so that "the model called Read on the right file" means the same thing
everywhere. Pure standard library; nothing heavy.

The parser reads every family's syntax (cra/chat/families.py), whichever family wrote it:
- thinking: `<think>...</think>` blocks (an unclosed one is thinking cut off: not ok);
- ChatML families: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, text around them;
- Llama 3: after any text, one `{"name": ..., "parameters": {...}}` object per call (a line each, or
  separated by `;`), optionally after `<|python_tag|>`.

    >>> call = '{"name": "Read", "arguments": {"file_path": "a.py"}}'
    >>> action = parse_action('Let me look.\\n<tool_call>\\n' + call + '\\n</tool_call>')
    >>> action.kind, action.calls[0].name, action.calls[0].arguments, action.ok
    ('call', 'Read', {'file_path': 'a.py'}, True)
    >>> llama = '{"name": "Read", "parameters": {"file_path": "a.py"}}\\n{"name": "Grep"'
    >>> broken = parse_action('<think>Two reads.</think>' + llama)
    >>> broken.thinking, [c.name for c in broken.calls], broken.ok, broken.reason
    ('Two reads.', ['Read', 'Grep'], False, "call 2 (Grep): not valid JSON: Expecting ',' delimiter")
    >>> argument_similarity("Bash", {"command": "pytest -q tests"}, {"command": "pytest tests"})
    0.8333333333333333
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

# Hermes/Qwen/cra-ChatML style: <tool_call>{"name": ..., "arguments": ...}</tool_call>. An unclosed
# block at the end (generation cut off) is still an attempted call.
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
# Llama 3.x writes bare JSON objects (sometimes after <|python_tag|>) after any text, one a line.
_PYTHON_TAG = "<|python_tag|>"
_JSON_CALL_START = re.compile(r'(?m)^[ \t]*(?:<\|python_tag\|>)?[ \t]*\{\s*"name"\s*:')
_THINK = re.compile(r"<think>(.*?)(</think>|\Z)", re.S)
_JSON = json.JSONDecoder()


@dataclass
class ParsedCall:
    name: str | None  # None when the call could not be parsed far enough to name a tool
    arguments: dict | None  # None when the arguments are not a JSON object
    raw: str
    error: str | None = None  # why the call is not well-formed JSON with a name and object arguments

    @property
    def parseable(self) -> bool:
        return self.error is None


@dataclass
class ParsedAction:
    """A generated assistant message: its text, its thinking, and the tool calls it attempted, in order."""

    text: str
    calls: list[ParsedCall] = field(default_factory=list)
    thinking: str = ""
    error: str | None = None  # a problem of the message as a whole (thinking never closed)

    @property
    def kind(self) -> str:
        """'call' when the message attempts at least one tool call (well-formed or not), else 'answer'."""
        return "call" if self.calls else "answer"

    @property
    def names(self) -> list[str | None]:
        return [c.name for c in self.calls]

    @property
    def ok(self) -> bool:
        """Everything parsed: thinking closed, every call JSON with a name and object arguments."""
        return self.error is None and all(c.parseable for c in self.calls)

    @property
    def reason(self) -> str | None:
        """Why not ok (the first problem), else None."""
        if self.error:
            return self.error
        for k, c in enumerate(self.calls, 1):
            if not c.parseable:
                return f"call {k}" + (f" ({c.name})" if c.name else "") + f": {c.error}"
        return None


def _call_from_obj(obj: Any, raw: str) -> ParsedCall:
    if not isinstance(obj, dict):
        return ParsedCall(None, None, raw, "not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return ParsedCall(None, None, raw, "no tool name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # OpenAI style: arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return ParsedCall(name, None, raw, "arguments are not valid JSON")
    if not isinstance(args, dict):
        return ParsedCall(name, None, raw, "arguments are not a JSON object")
    return ParsedCall(name, args, raw)


def _call_from_json(raw: str) -> ParsedCall:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        name = re.search(r'"name"\s*:\s*"([^"]+)"', raw)  # still credit the tool choice of a broken call
        return ParsedCall(name.group(1) if name else None, None, raw, f"not valid JSON: {exc.msg}")
    return _call_from_obj(obj, raw)


def split_thinking(text: str) -> tuple[str, str, str | None]:
    """(text without thinking, the thinking, a problem or None). A `</think>` with no opening tag ends
    thinking that the prompt opened."""
    text = text or ""
    close = text.find("</think>")
    if close != -1 and "<think>" not in text[:close]:
        head, text = text[:close], text[close + len("</think>") :]
        rest, more, error = split_thinking(text)
        return rest, "\n\n".join(p for p in (head.strip(), more) if p), error
    parts, error = [], None
    for m in _THINK.finditer(text):
        parts.append(m.group(1).strip())
        if not m.group(2):
            error = "thinking not closed (<think> without </think>)"
    return _THINK.sub("", text).strip(), "\n\n".join(p for p in parts if p), error


def _json_calls(text: str) -> tuple[str, list[ParsedCall]]:
    """Llama-style calls: (the text before them, the calls), or (text, []) when there are none."""
    tag = text.find(_PYTHON_TAG)
    start = _JSON_CALL_START.search(text)
    if tag != -1 and (start is None or tag <= start.start()):
        before, pos = text[:tag], tag + len(_PYTHON_TAG)
    elif start is not None:
        before, pos = text[: start.start()], start.start()
    else:
        return text, []
    calls = []
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] == ";"):
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, end = _JSON.raw_decode(text, pos)
        except ValueError:
            calls.append(_call_from_json(text[pos:].strip()))
            break
        calls.append(_call_from_obj(obj, text[pos:end]))
        pos = end
    if tag == -1 and calls and calls[0].name is None:
        return text, []  # a brace at a line start that is not a call: an answer with JSON in it
    return before, calls


def parse_action(text: str) -> ParsedAction:
    """Split a generated assistant message into its text, its thinking and its tool calls (any family)."""
    rest, thinking, error = split_thinking(text)
    blocks = list(_TOOL_CALL.finditer(rest))
    if blocks:
        calls = [_call_from_json(m.group(1).strip()) for m in blocks]
        return ParsedAction(_TOOL_CALL.sub("", rest).strip(), calls, thinking, error)
    before, calls = _json_calls(rest)
    if calls:
        return ParsedAction(before.strip(), calls, thinking, error)
    return ParsedAction(rest.strip(), [], thinking, error)


def action_from_message(message: dict) -> ParsedAction:
    """The same structure for a recorded (openai-format) assistant message."""
    calls = []
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function", tc)
        args = fn.get("arguments")
        raw = args if isinstance(args, str) else json.dumps(args)
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            parsed = None
        calls.append(ParsedCall(fn.get("name"), parsed if isinstance(parsed, dict) else None, raw))
    return ParsedAction((message.get("content") or "").strip(), calls, (message.get("reasoning") or "").strip())


# -- schemas ---------------------------------------------------------------------------------------------

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def tool_schemas(tools: str | list | None) -> dict[str, dict]:
    """name -> parameters schema, from an example's `tools` (openai format, JSON string or list)."""
    if isinstance(tools, str):
        tools = json.loads(tools) if tools else []
    out = {}
    for tool in tools or ():
        fn = tool.get("function", tool)
        if fn.get("name"):
            out[fn["name"]] = fn.get("parameters") or {}
    return out


def _type_ok(value: Any, expected) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    for name in names:
        py = _JSON_TYPES.get(name)
        if py is None:
            return True  # a type we do not check
        if isinstance(value, bool) and name in ("integer", "number"):
            continue  # JSON true is not a number
        if isinstance(value, py):
            return True
    return False


def argument_problems(schema: dict, arguments: dict) -> list[str]:
    """What is wrong with `arguments` for a tool with this parameters schema (empty: valid).

    Checks what models get wrong in practice: required keys, unknown keys (when the schema forbids
    them), top-level types and enums. Nested schemas are not descended into.
    """
    problems = []
    props = schema.get("properties") or {}
    for key in schema.get("required") or ():
        if key not in arguments:
            problems.append(f"missing required argument {key!r}")
    for key, value in arguments.items():
        spec = props.get(key)
        if spec is None:
            if schema.get("additionalProperties") is False:
                problems.append(f"unknown argument {key!r}")
            continue
        if "type" in spec and not _type_ok(value, spec["type"]):
            problems.append(f"argument {key!r} should be {spec['type']}")
        if "enum" in spec and value not in spec["enum"]:
            problems.append(f"argument {key!r} must be one of {spec['enum']}")
    return problems


@dataclass
class CallValidity:
    parseable: bool
    known_tool: bool
    valid_arguments: bool
    problems: list[str]

    @property
    def valid(self) -> bool:
        return self.parseable and self.known_tool and self.valid_arguments


def check_call(call: ParsedCall, schemas: dict[str, dict]) -> CallValidity:
    """Is the call parseable, is its tool one the context offered, do its arguments fit the schema?"""
    if not call.parseable:
        return CallValidity(False, call.name in schemas, False, [call.error or "unparseable"])
    if call.name not in schemas:
        return CallValidity(True, False, False, [f"unknown tool {call.name!r}"])
    problems = argument_problems(schemas[call.name], call.arguments or {})
    return CallValidity(True, True, not problems, problems)


# -- argument similarity ---------------------------------------------------------------------------------

PATH_KEYS = {"file_path", "path", "notebook_path", "cwd", "directory"}
COMMAND_KEYS = {"command", "cmd"}
PATTERN_KEYS = {"pattern", "glob", "query", "url", "regex", "include"}
_MAX_TEXT = 2000  # difflib is quadratic: long strings are compared on their first characters


def path_similarity(a: str, b: str) -> float:
    """1 for the same path; half the credit for the same file name, half for the shared leading directories."""
    a, b = posixpath.normpath(a.strip()), posixpath.normpath(b.strip())
    if a == b:
        return 1.0
    pa, pb = [p for p in a.split("/") if p], [p for p in b.split("/") if p]
    if not pa or not pb:
        return 0.0
    same_name = 1.0 if pa[-1] == pb[-1] else 0.0
    da, db = pa[:-1], pb[:-1]
    common = 0
    for x, y in zip(da, db):
        if x != y:
            break
        common += 1
    dirs = 1.0 if not da and not db else common / max(len(da), len(db))
    return 0.5 * same_name + 0.5 * dirs


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def command_similarity(a: str, b: str) -> float:
    """Half for running the same program, half for the overlap (Jaccard) of all words."""
    wa, wb = _words(a), _words(b)
    if wa == wb:
        return 1.0
    if not wa or not wb:
        return 0.0
    program = 1.0 if wa[0] == wb[0] else 0.0
    sa, sb = set(wa), set(wb)
    return 0.5 * program + 0.5 * len(sa & sb) / len(sa | sb)


def text_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a[:_MAX_TEXT], b[:_MAX_TEXT], autojunk=False).ratio()


def value_similarity(key: str, a: Any, b: Any) -> float:
    if a == b:
        return 1.0
    if isinstance(a, str) and isinstance(b, str):
        if key in PATH_KEYS:
            return path_similarity(a, b)
        if key in COMMAND_KEYS:
            return command_similarity(a, b)
        return text_similarity(a, b)  # patterns, queries, edit strings, prompts
    if isinstance(a, (dict, list)) and isinstance(b, (dict, list)):
        return text_similarity(json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True))
    return 0.0


def argument_similarity(tool: str | None, predicted: dict | None, reference: dict | None) -> float:
    """How close predicted arguments are to the reference call's, in [0, 1].

    The mean over every key either side uses (a key only one side has scores 0): paths by file name
    and shared directories, commands by program and words, patterns and other strings by character
    similarity, anything else by equality. `tool` is accepted for tool-specific rules.
    """
    if predicted is None or reference is None:
        return 0.0
    keys = set(predicted) | set(reference)
    if not keys:
        return 1.0
    total = 0.0
    for key in keys:
        if key in predicted and key in reference:
            total += value_similarity(key, predicted[key], reference[key])
    return total / len(keys)


def arguments_equal(predicted: dict | None, reference: dict | None) -> bool:
    return predicted is not None and reference is not None and predicted == reference
