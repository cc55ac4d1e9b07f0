"""What a tool call does: explore (read, search, web), change (edit, mutating shell), delegate, plan.

Bash is classified by its command: read-only when every command in it is a known reader (ls, cat,
grep, git status, ...) and nothing is redirected into a file. Anything we cannot prove read-only
counts as a change, so exploration depth is never overstated.
"""

import functools
import re
import shlex

READ_TOOLS = {"Read", "NotebookRead", "LS", "BashOutput", "TaskOutput"}
SEARCH_TOOLS = {"Grep", "Glob", "ToolSearch", "LSP"}
WEB_TOOLS = {"WebFetch", "WebSearch"}
EDIT_TOOLS = {"Edit", "Write", "MultiEdit", "NotebookEdit"}
DELEGATE_TOOLS = {"Agent", "Task"}
# Todo lists and plan mode: the model writing its plan down.
PLAN_TOOLS = {"TodoWrite", "TaskCreate", "TaskUpdate", "EnterPlanMode", "ExitPlanMode", "update_plan"}
SHELL_TOOLS = {"Bash", "PowerShell"}

# Categories, as stored in signals.tool_sequence and used by the patterns.
EXPLORE = "explore"
CHANGE = "change"
RUN = "run"  # a mutating shell command (tests, builds, installs, file operations)
DELEGATE = "delegate"
PLAN = "plan"
OTHER = "other"

READ_ONLY_COMMANDS = {
    "ls",
    "cat",
    "head",
    "tail",
    "less",
    "more",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ag",
    "ack",
    "find",
    "fd",
    "wc",
    "pwd",
    "echo",
    "printf",
    "tree",
    "file",
    "stat",
    "which",
    "whereis",
    "type",
    "du",
    "df",
    "env",
    "printenv",
    "whoami",
    "id",
    "date",
    "uname",
    "hostname",
    "sort",
    "uniq",
    "cut",
    "tr",
    "diff",
    "cmp",
    "comm",
    "jq",
    "yq",
    "awk",
    "sed",
    "realpath",
    "dirname",
    "basename",
    "readlink",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "nl",
    "column",
    "ps",
    "free",
    "uptime",
    "test",
    "[",
    "true",
    "false",
    "cd",
    "tac",
    "rev",
    "od",
    "xxd",
    "hexdump",
    "strings",
    "lsof",
    "zcat",
    "bat",
    "exa",
    "eza",
    "command",
    "ldd",
    "nproc",
    "locate",
    "exit",
    "sleep",
}
GIT_READ_SUBCOMMANDS = {
    "status",
    "log",
    "diff",
    "show",
    "branch",
    "remote",
    "rev-parse",
    "ls-files",
    "ls-tree",
    "blame",
    "grep",
    "describe",
    "shortlog",
    "reflog",
    "cat-file",
    "rev-list",
    "merge-base",
    "whatchanged",
}
# Prefixes that run the next word as the command.
_WRAPPERS = {"time", "nice", "nohup", "builtin", "xargs", "timeout", "stdbuf"}
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&", "{", "}"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


def bash_is_read_only(command) -> bool:
    """True only when every command in `command` only reads (see module docstring)."""
    return isinstance(command, str) and _bash_is_read_only(command)


@functools.lru_cache(maxsize=4096)  # sessions repeat the same commands (ls, git status, pytest)
def _bash_is_read_only(command: str) -> bool:
    if not command.strip():
        return False
    for line in _logical_lines(command):
        if not _line_is_read_only(line):
            return False
    # Command substitutions run too: `echo $(rm x)` is not read-only.
    for inner in _SUBSTITUTION.findall(command):
        if not bash_is_read_only(inner[0] or inner[1]):
            return False
    return True


def _logical_lines(command):
    """Lines of a script with continuations joined and here-document bodies dropped."""
    lines = command.replace("\\\n", " ").split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        m = _HEREDOC.search(line)
        i += 1
        if m:
            while i < len(lines) and lines[i].strip() != m.group(1):
                i += 1
            i += 1
    return out


def _line_is_read_only(line):
    try:
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|<>(){}")
        lex.whitespace_split = True
        lex.commenters = "#"
        tokens = list(lex)
    except ValueError:
        return False  # unbalanced quotes: we cannot tell
    segment: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SEPARATORS:
            if not _segment_is_read_only(segment):
                return False
            segment = []
        elif set(tok) <= set("<>&|") and ">" in tok:
            target = tokens[i + 1] if i + 1 < len(tokens) else ""
            # 2>&1, >/dev/null and >&2 write no file.
            if not (tok.endswith("&") or target.startswith("&") or target.isdigit() or target == "/dev/null"):
                return False
            i += 1
        elif set(tok) <= set("<"):
            i += 1  # input redirection or here-document: reads
        else:
            segment.append(tok)
        i += 1
    return _segment_is_read_only(segment)


def _segment_is_read_only(words):
    words = list(words)
    while words and (
        _ASSIGNMENT.match(words[0]) or words[0] in _WRAPPERS or words[0].startswith("-") or (words[0].isdigit())
    ):
        words.pop(0)
    if not words:
        return True
    name = words[0].rsplit("/", 1)[-1]
    args = words[1:]
    if name == "git":
        sub = _git_subcommand(args)
        return sub in GIT_READ_SUBCOMMANDS and not (
            sub == "branch" and any(a in ("-d", "-D", "-m", "-M") for a in args)
        )
    if name not in READ_ONLY_COMMANDS:
        return False
    if name == "sed" and any(a == "-i" or a.startswith("-i") or a.startswith("--in-place") for a in args):
        return False
    if name == "find" and any(a in ("-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fls") for a in args):
        return False
    if name == "sort" and any(a == "-o" or a.startswith("--output") for a in args):
        return False
    return True


def _git_subcommand(args):
    skip_next = False
    for a in args:
        if skip_next:
            skip_next = False
            continue
        if a in ("-C", "-c", "--git-dir", "--work-tree"):
            skip_next = True
            continue
        if a.startswith("-"):
            continue
        return a
    return None


def category(name, tool_input=None) -> str:
    """One of explore, change, run, delegate, plan, other."""
    if name in READ_TOOLS or name in SEARCH_TOOLS or name in WEB_TOOLS:
        return EXPLORE
    if name in EDIT_TOOLS:
        return CHANGE
    if name in SHELL_TOOLS:
        command = tool_input.get("command") if isinstance(tool_input, dict) else None
        return EXPLORE if bash_is_read_only(command) else RUN
    if name in DELEGATE_TOOLS:
        return DELEGATE
    if name in PLAN_TOOLS:
        return PLAN
    if isinstance(name, str) and name.startswith("mcp__"):
        # MCP tools named like readers are exploration; the rest we cannot judge.
        verb = name.rsplit("__", 1)[-1].lower()
        if verb.startswith(("get", "list", "read", "search", "find", "fetch", "query", "show", "browser_snapshot")):
            return EXPLORE
    return OTHER


def is_change(cat) -> bool:
    """Acting on the world: what exploration depth counts up to."""
    return cat in (CHANGE, RUN)
