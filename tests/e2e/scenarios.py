"""The scripted conversations the mock API plays to the real client, one `Scenario` each.

A script is a list of steps (one assistant message each; see mock_api). `@WORK@` stands for the
scenario's working directory (tools that take absolute paths need it). `_expect` on a tool_use block
is the status cra must record for that call; it defaults to success.

Every scenario here starts its prompt with its `[[scenario:NAME]]` tag; a subagent's prompt carries
the tag of its own script. The main job's sessions come from `task_scenario` instead: generated tasks
whose prompts carry no tag (the mock plays the one script it is given, `Scenario.default_script`), and
whose next action has to be read from the context: which file the prompt names, what a tool
returned, what the task asks for.
"""

import random
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
    # False: the prompt is the task alone and the mock plays this scenario's script by default.
    tagged: bool = True
    # Files written into the project (relative path -> text) besides make_project's.
    files: dict = field(default_factory=dict)

    @property
    def prompt(self):
        return "[[scenario:%s]] %s" % (self.name, self.task) if self.tagged else self.task

    @property
    def default_script(self):
        """The script the mock plays for a request without a tag (an untagged scenario's own)."""
        return None if self.tagged else self.name

    def write_project(self, workdir):
        work = make_project(workdir)
        for relative, content in self.files.items():
            path = work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return work


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


# -- generated tasks without tags (the main job) --------------------------------------------------------
#
# Seven kinds of task. What Claude does next depends on what the context says, not on a tag or a step
# count: the first tool on how the request is phrased (a file named: Read; a function: Grep; an
# extension: Glob; "run": Bash; two files: two Reads at once), later ones on the task (explain: answer
# after reading; fix: Edit after reading, then run) and on what a tool returned (a script that crashed
# is read, one that ran is reported; a missing file is searched for). Names, files and wording vary
# from session to session.

_MODULES = [
    ("parser", "parse_line", "splits a line into fields"),
    ("config", "load_config", "reads the settings"),
    ("report", "render_report", "formats the summary"),
    ("cache", "get_cached", "looks a key up in the cache"),
    ("auth", "check_token", "validates a token"),
    ("billing", "total_price", "adds up the invoice"),
    ("search", "find_matches", "filters the matching rows"),
    ("storage", "save_record", "writes a record to disk"),
    ("network", "fetch_page", "downloads a page"),
    ("schedule", "next_run", "computes the next run time"),
    ("metrics", "count_events", "counts the events"),
    ("export", "to_csv", "turns rows into CSV"),
]
_EXTENSIONS = ["md", "toml", "txt", "json", "cfg"]
_PHRASES = {
    "explain": ["What does src/{mod}.py do?", "Explain src/{mod}.py to me.", "Read src/{mod}.py and summarise it."],
    "find": ["Where is {fn} defined?", "Find the definition of {fn}.", "Which file defines {fn}?"],
    "fix": [
        "{fn} in src/{mod}.py should add {k}, not subtract it. Fix it.",
        "Fix the bug in src/{mod}.py: {fn} must add {k}.",
        "src/{mod}.py has a sign error in {fn} (it should add {k}); please fix it.",
    ],
    "list": ["Which .{ext} files are in this project?", "List the {ext} files here.", "Find all .{ext} files."],
    "run": ["Run src/{mod}.py and tell me what it prints.", "Execute src/{mod}.py.", "What does src/{mod}.py print?"],
    "compare": [
        "Compare src/{mod}.py with src/{mod2}.py.",
        "How do src/{mod}.py and src/{mod2}.py differ?",
        "Read src/{mod}.py and src/{mod2}.py side by side.",
    ],
    "recover": [
        "Show me the {mod} settings in conf/{mod}.toml.",
        "Open conf/{mod}.toml.",
        "What is in conf/{mod}.toml?",
    ],
}
TASK_KINDS = tuple(_PHRASES)


def _module_source(fn, desc, k, op="+", crash=False):
    main = "    print(%s(None))\n" % fn if crash else "    print(%s(%d))\n" % (fn, 10 + k)
    return 'def %s(value):\n    """%s."""\n    return value %s %d\n\n\nif __name__ == "__main__":\n%s' % (
        fn,
        desc.capitalize(),
        op,
        k,
        main,
    )


def task_scenario(index, seed=0):
    """Session `index` of the main job: a task of kind TASK_KINDS[index % 7] on a generated project,
    its prompt without a tag, its script what Claude does for that task on that project."""
    rng = random.Random("%d:%d" % (seed, index))
    kind = TASK_KINDS[index % len(TASK_KINDS)]
    (mod, fn, desc), (mod2, fn2, desc2) = rng.sample(_MODULES, 2)
    k, ext = rng.randint(2, 9), rng.choice(_EXTENSIONS)
    crash = kind == "run" and rng.random() < 0.5
    files = {
        "src/%s.py" % mod: _module_source(fn, desc, k, "-" if kind == "fix" else "+", crash),
        "src/%s.py" % mod2: _module_source(fn2, desc2, rng.randint(2, 9)),
        "notes/todo.%s" % ext: "- check %s\n" % mod,
        "settings/%s.toml" % mod: '[%s]\nenabled = true\nlevel = "%s"\n' % (mod, rng.choice(["low", "high"])),
    }
    prompt = rng.choice(_PHRASES[kind]).format(mod=mod, mod2=mod2, fn=fn, k=k, ext=ext)
    path = "@WORK@/src/%s.py" % mod
    if kind == "explain":
        steps = [[tool("Read", file_path=path)], [text("src/%s.py defines %s, which %s." % (mod, fn, desc))]]
    elif kind == "find":
        steps = [
            [tool("Grep", pattern="def %s" % fn)],
            [tool("Read", file_path=path)],
            [text("%s is defined in src/%s.py; it %s." % (fn, mod, desc))],
        ]
    elif kind == "fix":
        steps = [
            [tool("Read", file_path=path)],
            [tool("Edit", file_path=path, old_string="return value - %d" % k, new_string="return value + %d" % k)],
            [tool("Bash", command="python3 src/%s.py" % mod)],
            [text("Fixed: %s in src/%s.py now adds %d, and the module runs." % (fn, mod, k))],
        ]
    elif kind == "list":
        steps = [
            [tool("Glob", pattern="**/*.%s" % ext)],
            [text("The .%s files here: notes/todo.%s." % (ext, ext))],
        ]
    elif kind == "run":
        steps = [[tool("Bash", "failure" if crash else None, command="python3 src/%s.py" % mod)]]
        if crash:
            steps += [
                [tool("Read", file_path=path)],
                [
                    text(
                        "src/%s.py crashed: its main block calls %s(None), which cannot add a number to None."
                        % (mod, fn)
                    )
                ],
            ]
        else:
            steps += [[text("src/%s.py printed %d." % (mod, 10 + 2 * k))]]
    elif kind == "compare":
        steps = [
            [tool("Read", file_path=path), tool("Read", file_path="@WORK@/src/%s.py" % mod2)],
            [text("src/%s.py has %s (it %s); src/%s.py has %s (it %s)." % (mod, fn, desc, mod2, fn2, desc2))],
        ]
    else:  # recover: the named file does not exist; the settings live elsewhere
        steps = [
            [tool("Read", "failure", file_path="@WORK@/conf/%s.toml" % mod)],
            [tool("Glob", pattern="**/%s.toml" % mod)],
            [tool("Read", file_path="@WORK@/settings/%s.toml" % mod)],
            [text("There is no conf/%s.toml; the %s settings are in settings/%s.toml." % (mod, mod, mod))],
        ]
    name = "task-%03d" % index
    return Scenario(
        name=name,
        task=prompt,
        scripts={name: steps},
        description="generated %s task" % kind,
        recorded=False,
        tagged=False,
        files=files,
    )
