"""The scripted conversations the mock API plays to the real client, one `Scenario` each.

A script is a list of steps (one assistant message each; see mock_api). `@WORK@` stands for the
scenario's working directory (tools that take absolute paths need it). `_expect` on a tool_use block
is the status cra must record for that call; it defaults to success.

Every scenario's prompt starts with its `[[scenario:NAME]]` tag; a subagent's prompt carries the tag
of its own script.
"""

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOOLS = "Bash Read Write Edit Grep Glob Agent"


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str  # the prompt after the tag
    scripts: dict  # script name -> steps; the scenario's own name is the main thread's
    allowed_tools: str = DEFAULT_TOOLS
    permission_mode: str | None = None
    # Prompts sent afterwards, each as `claude -p PROMPT --resume <session>` (e.g. "/compact").
    followups: tuple = ()
    description: str = ""
    # Files the run must not have created (denied writes), relative to the working directory.
    must_not_exist: tuple = field(default=())
    # Part of the committed recordings (tests/fixtures/recorded)? Other tests count over that set,
    # so a new scenario joins it only together with those counts.
    recorded: bool = True

    @property
    def prompt(self):
        return "[[scenario:%s]] %s" % (self.name, self.task)


def make_project(workdir):
    """The small project every scenario works in."""
    work = Path(workdir)
    (work / "src").mkdir(parents=True, exist_ok=True)
    (work / "sub").mkdir(exist_ok=True)
    (work / "hello.txt").write_text("hello world\nsecond line\n")
    (work / "README.md").write_text("# Demo project\n\nA tiny project for cra's end-to-end tests.\n")
    (work / "CLAUDE.md").write_text("# Project memory\nThis is a demo project; keep answers short.\n")
    (work / "src" / "app.py").write_text(
        'def greet(name):\n    return "hello " + name\n\n\ndef main():\n    print(greet("world"))\n'
    )
    (work / "src" / "util.py").write_text("def add(a, b):\n    return a + b\n")
    return work


def text(s):
    return {"type": "text", "text": s}


def thinking(s):
    return {"type": "thinking", "thinking": s}


def tool(name, expect=None, **tool_input):
    block = {"type": "tool_use", "name": name, "input": tool_input}
    if expect:
        block["_expect"] = expect
    return block


def bash(command, description, expect=None):
    return tool("Bash", expect, command=command, description=description)


TOOLS_FINAL = (
    "Here is what I found and changed in this project.\n\n"
    "The working directory holds a README, a CLAUDE.md with project memory, hello.txt with two lines of "
    "text, and a src/ package with app.py (a greet function and a main entry point) and util.py (an add "
    "helper). Searching for 'hello' matched both hello.txt and the greeting in app.py.\n\n"
    "I created notes.md with a first draft of my notes and then edited it into a second draft. Two "
    "read-only shell commands ran in parallel to confirm the environment, and a final command checked "
    "the sub/ directory. Nothing else was modified."
)

FAILURES_FINAL = (
    "Several of the steps I tried did not work, and that is expected here.\n\n"
    "The shell command exited with status 3 after printing to both streams. Reading does_not_exist.txt "
    "failed because the file is missing. The edit of hello.txt could not apply because the text to "
    "replace is not in the file. One Read call used a wrong parameter name and was rejected before it "
    "ran, and NoSuchTool is not a tool that exists.\n\n"
    "Only the plain read of hello.txt succeeded; no file was changed."
)

DENIED_FINAL = (
    "I could not create the files you asked for.\n\n"
    "Both the Write call and the shell command that would have created a file were denied, because "
    "neither tool is allowed in this session. Reading is allowed, so I read hello.txt instead and "
    "confirmed that it still holds its original two lines. If you want the files created, allow Write "
    "or Bash for this project and ask again."
)

PARALLEL_FINAL = (
    "I looked at the project with five read-only tools at once.\n\n"
    "hello.txt has two lines, src/app.py defines greet and main, a search for function definitions "
    "under src found greet, main and add, the Markdown files are README.md and CLAUDE.md, and the line "
    "count confirmed hello.txt is two lines long.\n\n"
    "Everything ran in parallel because none of the calls changes anything on disk."
)

SUBAGENT_FINAL = (
    "The subagent finished its look around and reported back.\n\n"
    "It listed the working directory, read hello.txt, and searched src/ for the greeting, then "
    "summarised what it saw: a small demo project whose hello.txt says hello world and whose app.py "
    "greets the world. I did not need to run any tool myself, and nothing was modified along the way."
)

SCENARIOS = {}


def _add(scenario):
    SCENARIOS[scenario.name] = scenario
    return scenario


_add(
    Scenario(
        name="tools",
        task="Explore this project, take notes, and report.",
        description="Bash, Read, Write, Edit, Grep, Glob; a parallel read-only batch; thinking; a long answer.",
        scripts={
            "tools": [
                [text("I'll start by listing the directory."), bash("ls -la", "List files in the working directory")],
                [
                    thinking(
                        "The user wants an overview. I will read hello.txt, grep for 'hello' and glob the Python "
                        "files at once."
                    ),
                    text("Reading, searching and globbing in parallel."),
                    tool("Read", file_path="@WORK@/hello.txt"),
                    tool("Grep", pattern="hello", path="@WORK@", output_mode="content", **{"-n": True}),
                    tool("Glob", pattern="**/*.py", path="@WORK@"),
                ],
                [tool("Write", file_path="@WORK@/notes.md", content="# Notes\nfirst draft\n")],
                [tool("Edit", file_path="@WORK@/notes.md", old_string="first draft", new_string="second draft")],
                [
                    text("Two shell commands in parallel."),
                    bash("sleep 0.5; echo alpha", "alpha"),
                    bash("sleep 0.5; echo beta", "beta"),
                ],
                [bash("cd sub && pwd", "Change into sub")],
                [thinking("Everything is done; summarise for the user."), text(TOOLS_FINAL)],
            ]
        },
    )
)

_add(
    Scenario(
        name="failures",
        task="Try some things that fail.",
        description="A failing Bash, a missing file, an Edit mismatch, invalid input, an unknown tool.",
        scripts={
            "failures": [
                [bash("echo to-stdout; echo to-stderr >&2; exit 3", "Command that fails", expect="failure")],
                [tool("Read", "failure", file_path="@WORK@/does_not_exist.txt")],
                [tool("Read", file_path="@WORK@/hello.txt")],
                [tool("Edit", "failure", file_path="@WORK@/hello.txt", old_string="NOT PRESENT", new_string="x")],
                [tool("Read", "invalid", path_typo="@WORK@/hello.txt")],
                [tool("NoSuchTool", "invalid", foo=1)],
                [thinking("Summarise which calls failed and why."), text(FAILURES_FINAL)],
            ]
        },
    )
)

_add(
    Scenario(
        name="denied",
        task="Create two files.",
        description="Write and a mutating Bash that --allowedTools does not allow: denied in -p mode.",
        allowed_tools="Read Grep Glob",
        permission_mode="default",
        must_not_exist=("created_by_write.txt", "created_by_bash.txt"),
        scripts={
            "denied": [
                [
                    text("Creating the first file."),
                    tool("Write", "denied", file_path="@WORK@/created_by_write.txt", content="x\n"),
                ],
                [bash("touch created_by_bash.txt", "Create a file", expect="denied")],
                [tool("Read", file_path="@WORK@/hello.txt")],
                [text(DENIED_FINAL)],
            ]
        },
    )
)

_add(
    Scenario(
        name="denied_dontask",
        task="Create two files without asking.",
        description="The same denials in dontAsk mode: no PermissionRequest, only the denial text.",
        allowed_tools="Read Grep Glob",
        permission_mode="dontAsk",
        recorded=False,
        must_not_exist=("created_by_write.txt", "created_by_bash.txt"),
        scripts={
            "denied_dontask": [
                [bash("touch created_by_bash.txt", "Create a file", expect="denied")],
                [tool("Write", "denied", file_path="@WORK@/created_by_write.txt", content="x\n")],
                [tool("Read", file_path="@WORK@/hello.txt")],
                [text(DENIED_FINAL)],
            ]
        },
    )
)

_add(
    Scenario(
        name="parallel",
        task="Look at everything at once.",
        description="Five read-only tools in one assistant message (run in parallel by the client).",
        scripts={
            "parallel": [
                [
                    thinking("All of these are read-only, so they can run together."),
                    text("Reading, searching, globbing and counting in parallel."),
                    tool("Read", file_path="@WORK@/hello.txt"),
                    tool("Read", file_path="@WORK@/src/app.py"),
                    tool("Grep", pattern="def ", path="@WORK@/src", output_mode="files_with_matches"),
                    tool("Glob", pattern="*.md", path="@WORK@"),
                    bash("wc -l hello.txt", "Count lines"),
                ],
                [text(PARALLEL_FINAL)],
            ]
        },
    )
)

_add(
    Scenario(
        name="subagent",
        task="Delegate a look-around to a subagent and wait for it.",
        description="A synchronous Agent call; the subagent uses Bash, Read and Grep.",
        scripts={
            "subagent": [
                [
                    text("Delegating to a subagent."),
                    tool(
                        "Agent",
                        description="Look around",
                        subagent_type="general-purpose",
                        run_in_background=False,
                        prompt="[[scenario:subagent_inner]] List the files, read hello.txt, search src, then report.",
                    ),
                ],
                [text(SUBAGENT_FINAL)],
            ],
            "subagent_inner": [
                [text("Subagent: listing."), bash("ls", "List files (subagent)")],
                [
                    tool("Read", file_path="@WORK@/hello.txt"),
                    tool("Grep", pattern="hello", path="@WORK@/src", output_mode="content"),
                ],
                [text("Subagent report: hello.txt says hello world; src/app.py greets the world.")],
            ],
        },
    )
)

_add(
    Scenario(
        name="subagent_async",
        task="Start a background subagent.",
        description="An Agent call in the background; its completion arrives as a task notification.",
        scripts={
            "subagent_async": [
                [
                    text("Starting a background subagent."),
                    tool(
                        "Agent",
                        description="Background look",
                        subagent_type="general-purpose",
                        run_in_background=True,
                        prompt="[[scenario:subagent_async_inner]] Read hello.txt and count its lines, then report.",
                    ),
                ],
                [text("The subagent is running in the background; I will report when it finishes.")],
                # The task notification for the finished subagent is the next user turn.
                [text("The background subagent finished: hello.txt has two lines and says hello world.")],
            ],
            "subagent_async_inner": [
                # The delay lets the main thread end its turn first, as a slow subagent would.
                {"delay_s": 0.5, "content": [tool("Read", file_path="@WORK@/hello.txt")]},
                [bash("wc -l < hello.txt", "Count lines (subagent)")],
                [text("Background report: hello.txt has 2 lines and says hello world.")],
            ],
        },
    )
)

_add(
    Scenario(
        name="compact",
        task="Do one thing, then I will compact.",
        description="A short session, then `claude -p /compact --resume <session>`.",
        followups=("/compact",),
        scripts={
            "compact": [
                [bash("echo one", "Echo one")],
                [
                    thinking("One command ran; report it."),
                    text(
                        "I ran one command and it printed one.\n\n"
                        "There is nothing else to do in this session, so it is a good moment to compact the "
                        "conversation: the summary will keep the request, the command I ran and its output, "
                        "and drop the rest of the context so that later turns start from a short history."
                    ),
                ],
            ]
        },
    )
)


def blocks(step):
    """A step's content blocks (a step is a list of blocks, or {"content": [...], "delay_s": ...})."""
    return step["content"] if isinstance(step, dict) else step


def all_scripts():
    """Every scenario's scripts in one dict (one mock can serve every scenario)."""
    scripts = {}
    for scenario in SCENARIOS.values():
        scripts.update(scenario.scripts)
    return scripts
