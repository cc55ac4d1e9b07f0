"""The situation of one of Claude's actions: what it did, after what, whether it was recovering from a
failed call, and how deep the turn had explored so far.

Shared by evaluation (`cra eval gaps` groups held-out steps by situation) and dataset building
(`cra dataset build --focus` oversamples training examples in the situations a gaps file lists), so
both sides agree on what a situation is by construction. Pure standard library, on openai-format
messages (`cra dataset build`'s rows).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..chat.toolcalls import action_from_message
from ..errors import InputFormatError
from .extract import ToolCall, Turn, extract

GAPS_FORMAT = "cra-gaps/1"  # the gaps file `cra eval gaps` writes

# How Claude Code reports a failed call in the tool result the model reads (docs/claude-code-hooks.md):
# input validation, unknown tools, Edit mismatches come wrapped in <tool_use_error>; Bash failures
# start with their exit code; Read of a missing file says so.
_FAILURE = re.compile(
    r"^\s*(?:<tool_use_error>|Exit code [1-9]\d*|Error\b|error:|Traceback \(most recent call last\)|"
    r"File does not exist|String to replace not found|InputValidationError|No such file or directory|"
    r"Permission denied|command not found)",
    re.I,
)
_DENIAL = re.compile(r"^\s*(?:The user doesn't want to proceed|Permission to use \S+ has been denied)", re.I)


def result_failed(content: str | None, message: dict | None = None) -> bool:
    """Did this tool result report a failure? An explicit `is_error`/`status` on the message wins."""
    if message is not None:
        if "is_error" in message:
            return bool(message["is_error"])
        if message.get("status"):
            return message["status"] in ("failure", "invalid", "blocked", "error")
    return bool(content and _FAILURE.match(content) and not _DENIAL.match(content))


def exploration_depth(calls: list[dict]) -> tuple[str | None, int]:
    """Exploration depth label and exploring calls before the first change, by the signals' rules
    (`calls`: [{name, arguments}]; None without calls)."""
    turn = Turn(
        tool_calls=[
            ToolCall(tool_use_id=str(i), name=c["name"] or "?", input=c["arguments"] or {}) for i, c in enumerate(calls)
        ]
    )
    signals = extract(turn)
    return signals.exploration_depth, signals.exploration_calls


@dataclass(frozen=True)
class Situation:
    claude: str  # Claude's tools at this step ("Read", "Read+Grep"), or "answer"
    after: str  # the turn's previous action the same way, or "start"
    recovering: bool  # the last tool result before this step reported a failure
    depth: str  # exploring calls in the turn so far: none, minimal, moderate, thorough, exhaustive

    @property
    def key(self) -> str:
        recovery = ", recovering from a failure" if self.recovering else ""
        return f"{self.claude} after {self.after}{recovery}, explored {self.depth}"


def _names(message: dict) -> str:
    names = [c.name or "?" for c in action_from_message(message).calls]
    return "+".join(names) if names else "answer"


def situation(context: list[dict], target: dict) -> Situation:
    """The situation of Claude's action `target` after the conversation `context`."""
    start = max((i for i, m in enumerate(context) if m.get("role") == "user"), default=-1) + 1
    turn = context[start:]
    assistants = [i for i, m in enumerate(turn) if m.get("role") == "assistant"]
    after = _names(turn[assistants[-1]]) if assistants else "start"
    results = turn[assistants[-1] + 1 :] if assistants else []
    recovering = any(m.get("role") == "tool" and result_failed(m.get("content"), m) for m in results)
    calls = [
        {"name": c.name, "arguments": c.arguments}
        for m in turn
        if m.get("role") == "assistant"
        for c in action_from_message(m).calls
    ]
    depth, _ = exploration_depth(calls)
    return Situation(_names(target), after, recovering, depth or "none")


def example_situations(example: dict) -> list[Situation]:
    """The situation of every step of a dataset example (each assistant message after its prompt)."""
    messages = example.get("messages") or []
    start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1) + 1
    return [
        situation(messages[:i], messages[i]) for i in range(start, len(messages)) if messages[i]["role"] == "assistant"
    ]


def read_focus(path: str | os.PathLike) -> list[str]:
    """The focus situations (their keys) of a gaps file that `cra eval gaps` wrote."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputFormatError(f"cannot read the gaps file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputFormatError(f"{path} is not JSON ({exc}): write it with `cra eval gaps RUN -o FILE`") from exc
    if not isinstance(data, dict) or data.get("format") != GAPS_FORMAT or not isinstance(data.get("focus"), list):
        raise InputFormatError(
            f"{path} is not a gaps file (format {GAPS_FORMAT}): write one with `cra eval gaps RUN -o FILE`"
        )
    return [str(k) for k in data["focus"]]
