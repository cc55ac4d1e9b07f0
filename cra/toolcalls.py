"""Tool calls as a model writes them: parsing generated text, checking calls against tool schemas,
and how close one call's arguments are to another's.

Shared by evaluation (cra/eval) and the behavioral reward (cra/behavioral_reward): one parser and one argument
similarity, so that "the model called Read on the right file" means the same thing in both. Pure
standard library; nothing heavy.

    >>> call = '<tool_call>\\n{"name": "Read", "arguments": {"file_path": "a.py"}}\\n</tool_call>'
    >>> action = parse_action('Let me look.\\n' + call)
    >>> action.kind, action.calls[0].name, action.calls[0].arguments
    ('call', 'Read', {'file_path': 'a.py'})
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
# Llama 3.x writes a bare JSON object (sometimes after <|python_tag|>) as the whole message.
_PYTHON_TAG = "<|python_tag|>"


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
    """A generated assistant message: its text and the tool calls it attempted, in order."""

    text: str
    calls: list[ParsedCall] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """'call' when the message attempts at least one tool call (well-formed or not), else 'answer'."""
        return "call" if self.calls else "answer"

    @property
    def names(self) -> list[str | None]:
        return [c.name for c in self.calls]


def _call_from_json(raw: str) -> ParsedCall:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        name = re.search(r'"name"\s*:\s*"([^"]+)"', raw)  # still credit the tool choice of a broken call
        return ParsedCall(name.group(1) if name else None, None, raw, f"not valid JSON: {exc.msg}")
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


def parse_action(text: str) -> ParsedAction:
    """Split a generated assistant message into its text and its tool calls."""
    text = text or ""
    blocks = list(_TOOL_CALL.finditer(text))
    if blocks:
        calls = [_call_from_json(m.group(1).strip()) for m in blocks]
        rest = _TOOL_CALL.sub("", text).strip()
        return ParsedAction(rest, calls)
    stripped = text.strip()
    if stripped.startswith(_PYTHON_TAG):
        stripped = stripped[len(_PYTHON_TAG) :].strip()
        return ParsedAction("", [_call_from_json(stripped)])
    if stripped.startswith("{") and '"name"' in stripped:
        call = _call_from_json(stripped)
        if call.parseable and ("arguments" in stripped or "parameters" in stripped):
            return ParsedAction("", [call])
    return ParsedAction(stripped)


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
    return ParsedAction((message.get("content") or "").strip(), calls)


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
