"""Reading JSON that may be wrong: JSONL files a row at a time (with the line number a user needs when
a row is wrong), and stored JSON objects that may be empty or malformed."""

import json


def numbered_rows(path, error=ValueError):
    """(line number, parsed row) for each non-blank line of the JSONL file at `path`, 1-based. A line
    that is not JSON raises `error("line N is not JSON (why)")`: the caller's type and wording."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise error(f"line {line_no} is not JSON ({exc})") from exc
            yield line_no, row


def json_object(text) -> dict:
    """A stored JSON object (a tool call's input): {} when the column is empty, not JSON, or not an object."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
