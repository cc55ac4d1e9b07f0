"""Tool schemas for examples, in the OpenAI function format chat templates understand.

Preference order for a tool an example lists:
1. the schema the client actually sent in that session (`api_shapes.tools`, from the transcript's
   `api-request-shape` entries), converted from Anthropic's `{name, description, input_schema}`;
2. a built-in schema for Claude Code's own tools (below: short descriptions, real parameters);
3. for anything else (MCP tools `mcp__server__tool`, plugins' tools), a schema described from the
   inputs the tool was observed with.
"""

from __future__ import annotations

import json


def _fn(name, description, properties, required=()):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(required)},
        },
    }


def _s(description, type_="string", **extra):
    return {"type": type_, "description": description, **extra}


_TODO_ITEM = {
    "type": "object",
    "properties": {
        "content": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
        "activeForm": {"type": "string"},
        "id": {"type": "string"},
    },
    "required": ["content", "status"],
}
_AGENT_PARAMS = (
    {
        "description": _s("A short (3-5 word) description of the task"),
        "prompt": _s("The task for the agent to perform"),
        "subagent_type": _s("The type of specialized agent to use"),
        "model": _s("Optional model override for this agent"),
        "run_in_background": _s("Run the agent asynchronously", "boolean"),
    },
    ("description", "prompt"),
)

BUILTIN = {
    s["function"]["name"]: s
    for s in [
        _fn(
            "Bash",
            "Executes a bash command in a persistent shell session and returns its output.",
            {
                "command": _s("The command to execute"),
                "description": _s("Clear, concise description of what this command does in 5-10 words"),
                "timeout": _s("Optional timeout in milliseconds (max 600000)", "number"),
                "run_in_background": _s("Run the command in the background", "boolean"),
            },
            ["command"],
        ),
        _fn(
            "BashOutput",
            "Retrieves output from a running or completed background bash shell.",
            {"bash_id": _s("The ID of the background shell"), "filter": _s("Optional regex to filter lines")},
            ["bash_id"],
        ),
        _fn(
            "KillShell",
            "Kills a running background bash shell by its ID.",
            {"shell_id": _s("The ID of the background shell to kill")},
            ["shell_id"],
        ),
        _fn(
            "Read",
            "Reads a file from the local filesystem. Returns numbered lines (cat -n format).",
            {
                "file_path": _s("The absolute path to the file to read"),
                "offset": _s("The line number to start reading from", "integer"),
                "limit": _s("The number of lines to read", "integer"),
                "pages": _s('Page range for PDF files, e.g. "1-5"'),
            },
            ["file_path"],
        ),
        _fn(
            "Write",
            "Writes a file to the local filesystem, overwriting it if it exists.",
            {"file_path": _s("The absolute path to the file to write"), "content": _s("The content to write")},
            ["file_path", "content"],
        ),
        _fn(
            "Edit",
            "Performs an exact string replacement in a file.",
            {
                "file_path": _s("The absolute path to the file to modify"),
                "old_string": _s("The text to replace"),
                "new_string": _s("The text to replace it with (must differ from old_string)"),
                "replace_all": _s("Replace all occurrences of old_string", "boolean"),
            },
            ["file_path", "old_string", "new_string"],
        ),
        _fn(
            "MultiEdit",
            "Makes several exact string replacements in one file, atomically.",
            {
                "file_path": _s("The absolute path to the file to modify"),
                "edits": {
                    "type": "array",
                    "description": "Edits applied in order",
                    "items": {
                        "type": "object",
                        "properties": {
                            "old_string": {"type": "string"},
                            "new_string": {"type": "string"},
                            "replace_all": {"type": "boolean"},
                        },
                        "required": ["old_string", "new_string"],
                    },
                },
            },
            ["file_path", "edits"],
        ),
        _fn(
            "Glob",
            "Fast file pattern matching; returns matching paths sorted by modification time.",
            {
                "pattern": _s("The glob pattern to match files against"),
                "path": _s("The directory to search in (default: the current directory)"),
            },
            ["pattern"],
        ),
        _fn(
            "Grep",
            "Searches file contents with ripgrep regular expressions.",
            {
                "pattern": _s("The regular expression to search for"),
                "path": _s("File or directory to search in"),
                "glob": _s('Glob pattern to filter files, e.g. "*.js"'),
                "type": _s('File type to search, e.g. "py"'),
                "output_mode": _s(
                    "content, files_with_matches (default) or count", enum=["content", "files_with_matches", "count"]
                ),
                "-i": _s("Case insensitive search", "boolean"),
                "-n": _s("Show line numbers", "boolean"),
                "-A": _s("Lines of context after each match", "number"),
                "-B": _s("Lines of context before each match", "number"),
                "-C": _s("Lines of context around each match", "number"),
                "multiline": _s("Let patterns span lines", "boolean"),
                "head_limit": _s("Limit output to the first N entries", "number"),
            },
            ["pattern"],
        ),
        _fn(
            "LS",
            "Lists files and directories in a given absolute path.",
            {
                "path": _s("The absolute path to the directory to list"),
                "ignore": {"type": "array", "items": {"type": "string"}, "description": "Glob patterns to ignore"},
            },
            ["path"],
        ),
        _fn("Agent", "Launches a subagent to handle a complex, multi-step task autonomously.", *_AGENT_PARAMS),
        _fn("Task", "Launches a subagent to handle a complex, multi-step task autonomously.", *_AGENT_PARAMS),
        _fn(
            "TodoWrite",
            "Creates and updates a structured task list for the current session.",
            {"todos": {"type": "array", "items": _TODO_ITEM, "description": "The updated todo list"}},
            ["todos"],
        ),
        _fn(
            "WebFetch",
            "Fetches a URL, converts it to markdown and answers a prompt about its content.",
            {"url": _s("The URL to fetch content from"), "prompt": _s("What to extract from the page")},
            ["url", "prompt"],
        ),
        _fn(
            "WebSearch",
            "Searches the web and returns result titles, URLs and snippets.",
            {
                "query": _s("The search query"),
                "allowed_domains": {"type": "array", "items": {"type": "string"}},
                "blocked_domains": {"type": "array", "items": {"type": "string"}},
            },
            ["query"],
        ),
        _fn(
            "NotebookEdit",
            "Replaces, inserts or deletes a cell in a Jupyter notebook.",
            {
                "notebook_path": _s("The absolute path to the notebook"),
                "new_source": _s("The new source for the cell"),
                "cell_id": _s("The ID of the cell to edit"),
                "cell_type": _s("code or markdown", enum=["code", "markdown"]),
                "edit_mode": _s("replace (default), insert or delete", enum=["replace", "insert", "delete"]),
            },
            ["notebook_path", "new_source"],
        ),
        _fn(
            "NotebookRead",
            "Reads a Jupyter notebook and returns all cells with their outputs.",
            {"notebook_path": _s("The absolute path to the notebook"), "cell_id": _s("Optional cell ID")},
            ["notebook_path"],
        ),
        _fn(
            "ExitPlanMode",
            "Presents the plan to the user for approval and leaves plan mode.",
            {"plan": _s("The plan, in markdown")},
            ["plan"],
        ),
        _fn(
            "AskUserQuestion",
            "Asks the user one or more multiple-choice questions.",
            {"questions": {"type": "array", "items": {"type": "object"}, "description": "Questions to ask"}},
            ["questions"],
        ),
        _fn(
            "Skill",
            "Runs a skill (a packaged set of instructions) by name.",
            {"skill": _s("The skill name"), "args": _s("Optional arguments")},
            ["skill"],
        ),
        _fn(
            "SlashCommand",
            "Executes a slash command within the conversation.",
            {"command": _s("The slash command and its arguments")},
            ["command"],
        ),
        _fn(
            "ToolSearch",
            "Searches for and loads deferred tools by name or keyword.",
            {"query": _s("Tool names or keywords"), "max_results": _s("Maximum results", "integer")},
            ["query"],
        ),
    ]
}

# Placeholders the client lists but the model never calls.
NOT_CALLABLE = {"DeferredToolPlaceholder"}


def from_anthropic(tool: dict) -> dict | None:
    """{name, description, input_schema} (as the client sent it) -> the OpenAI function format."""
    name = tool.get("name")
    if not name or name in NOT_CALLABLE:
        return None
    params = dict(tool.get("input_schema") or {"type": "object", "properties": {}})
    params.pop("$schema", None)  # meta, and some templates choke on `$` keys
    return {
        "type": "function",
        "function": {"name": name, "description": tool.get("description") or "", "parameters": params},
    }


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return "string"


class ObservedSchemas:
    """Schemas for tools known only from their calls: every key seen, its types, and the keys
    present in every call as required."""

    def __init__(self):
        self._seen: dict[str, dict] = {}

    def observe(self, name: str, tool_input) -> None:
        if not name or not isinstance(tool_input, dict):
            return
        entry = self._seen.setdefault(name, {"calls": 0, "keys": {}, "present": {}})
        entry["calls"] += 1
        for key, value in tool_input.items():
            entry["keys"].setdefault(key, set()).add(_json_type(value))
            entry["present"][key] = entry["present"].get(key, 0) + 1

    def schema(self, name: str) -> dict | None:
        entry = self._seen.get(name)
        if entry is None:
            return None
        props = {}
        for key, types in entry["keys"].items():
            types = sorted(t for t in types if t != "null") or ["string"]
            props[key] = {"type": types[0] if len(types) == 1 else types}
        required = sorted(k for k, n in entry["present"].items() if n == entry["calls"])
        server, _, tool = name[len("mcp__") :].partition("__") if name.startswith("mcp__") else ("", "", name)
        desc = (
            f"{tool} (MCP server {server}; schema inferred from observed calls)"
            if server
            else f"{name} (schema inferred from observed calls)"
        )
        return _fn(name, desc, props, required)


class SchemaResolver:
    """Picks each tool's schema per session (recorded > built-in > observed)."""

    def __init__(self, observed: ObservedSchemas | None = None, prefer_recorded: bool = True):
        self.observed = observed or ObservedSchemas()
        self.prefer_recorded = prefer_recorded
        self._session_tools: dict[str, dict] = {}  # name -> schema for the current session
        self.sources = {"recorded": 0, "builtin": 0, "observed": 0, "minimal": 0}

    def set_session(self, recorded_tools_json: list[str]) -> None:
        """The session's recorded tool lists (api_shapes.tools JSON, one per shape)."""
        self._session_tools = {}
        if not self.prefer_recorded:
            return
        for blob in recorded_tools_json:
            try:
                tools = json.loads(blob) if isinstance(blob, str) else blob
            except ValueError:
                continue
            for tool in tools or []:
                if isinstance(tool, dict):
                    converted = from_anthropic(tool)
                    if converted:
                        self._session_tools.setdefault(converted["function"]["name"], converted)

    def offered(self) -> list[str]:
        """Tools the client offered in this session (empty when nothing was recorded)."""
        return list(self._session_tools)

    def get(self, name: str) -> dict:
        if name in self._session_tools:
            self.sources["recorded"] += 1
            return self._session_tools[name]
        if name in BUILTIN:
            self.sources["builtin"] += 1
            return BUILTIN[name]
        schema = self.observed.schema(name)
        if schema is not None:
            self.sources["observed"] += 1
            return schema
        self.sources["minimal"] += 1
        return _fn(name, name, {}, [])
