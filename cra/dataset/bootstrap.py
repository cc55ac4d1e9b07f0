"""`cra bootstrap --synthetic N`: template workflows for a first model before real sessions exist.

Five templates from the original design (code search, file modification, debugging, system
analysis, deployment), each a complete turn in the example format with Claude Code's real tools,
plausible outputs and a final answer, varied by a seeded generator. They are stored in
`synthetic_workflows` (never in the transcripts' tables): builds put them after all real turns and
only in the train split; evaluation never sees them.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from typing import Any

PROJECT = "/home/user/project"
_MODULES = ["auth", "billing", "parser", "scheduler", "cache", "storage", "notifications", "search", "config", "api"]
_FUNCS = [
    "load_config",
    "parse_header",
    "refresh_token",
    "compute_total",
    "retry_request",
    "flush_queue",
    "resolve_path",
    "validate_input",
    "render_page",
    "open_session",
]
_ERRORS = [
    ("KeyError", "'timeout'"),
    ("TypeError", "unsupported operand type(s) for +: 'int' and 'NoneType'"),
    ("AttributeError", "'NoneType' object has no attribute 'strip'"),
    ("ValueError", "invalid literal for int() with base 10: ''"),
    ("IndexError", "list index out of range"),
]
_SERVICES = ["api", "worker", "web", "scheduler"]


class _Conv:
    """Builds one conversation: assistant steps with tool calls, tool results, a final answer."""

    def __init__(self, prompt: str, n: int):
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        self.n = n
        self.k = 0

    def step(self, text: str, *calls):
        """calls: (tool name, arguments dict, result text)."""
        tool_calls = []
        for name, args, _ in calls:
            self.k += 1
            tool_calls.append(
                {
                    "id": f"toolu_synth_{self.n}_{self.k}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            )
        self.messages.append({"role": "assistant", "content": text, "tool_calls": tool_calls})
        for tc, (name, _, result) in zip(tool_calls, calls):
            self.messages.append({"role": "tool", "tool_call_id": tc["id"], "name": name, "content": result})

    def answer(self, text: str):
        self.messages.append({"role": "assistant", "content": text})
        return self.messages


def _numbered(lines):
    return "\n".join(f"{i}\t{line}" for i, line in enumerate(lines, 1))


def code_search(rng, n):
    mod, fn = rng.choice(_MODULES), rng.choice(_FUNCS)
    c = _Conv(f"Where is `{fn}` defined and who calls it? I want to understand the {mod} flow.", n)
    callers = rng.sample([m for m in _MODULES if m != mod], 2)
    c.step(
        f"I'll search for the definition and the call sites of `{fn}` in parallel.",
        (
            "Grep",
            {"pattern": f"def {fn}", "path": PROJECT, "output_mode": "content", "-n": True},
            f"src/{mod}/core.py:{rng.randint(10, 90)}:def {fn}(self, value, *, strict=False):",
        ),
        (
            "Grep",
            {"pattern": f"{fn}\\(", "path": PROJECT, "output_mode": "files_with_matches"},
            "\n".join([f"src/{mod}/core.py"] + [f"src/{m}/service.py" for m in callers]),
        ),
    )
    line = rng.randint(10, 90)
    c.step(
        "Found it. Reading the definition to see what it does.",
        (
            "Read",
            {"file_path": f"{PROJECT}/src/{mod}/core.py", "offset": max(1, line - 5), "limit": 30},
            _numbered(
                [
                    f"def {fn}(self, value, *, strict=False):",
                    '    """Normalise value for the ' + mod + ' layer."""',
                    "    if value is None:",
                    "        return self.default",
                    "    result = self._convert(value)",
                    "    if strict and not self._valid(result):",
                    f"        raise ValueError('bad {mod} value')",
                    "    return result",
                ]
            ),
        ),
    )
    c.step(
        "Checking how the callers use the result.",
        (
            "Grep",
            {
                "pattern": f"{fn}\\(",
                "path": f"{PROJECT}/src/{callers[0]}",
                "output_mode": "content",
                "-n": True,
                "-C": 2,
            },
            f"src/{callers[0]}/service.py:41:        value = self.{mod}.{fn}(payload.get('{mod}'), strict=True)",
        ),
    )
    return c.answer(
        f"`{fn}` is defined in `src/{mod}/core.py` as a method of the {mod} layer. It returns the layer's default "
        f"when the value is missing, converts the value otherwise, and with `strict=True` raises `ValueError` when "
        f"the converted value fails validation. It is called from `src/{callers[0]}/service.py` (with `strict=True`, "
        f"so bad input surfaces as an error there) and from `src/{callers[1]}/service.py`. If you change its "
        f"behaviour, those two services are the places to check, and the strict path is the one that can raise."
    )


def file_modification(rng, n):
    mod, fn = rng.choice(_MODULES), rng.choice(_FUNCS)
    timeout = rng.choice([5, 10, 30, 60])
    c = _Conv(
        f"Add a `timeout` parameter (default {timeout} seconds) to `{fn}` in the {mod} module and pass it through.", n
    )
    c.step(
        "Let me find the function first.",
        (
            "Grep",
            {"pattern": f"def {fn}", "path": f"{PROJECT}/src/{mod}", "output_mode": "content", "-n": True},
            f"src/{mod}/client.py:27:def {fn}(url, retries=3):",
        ),
    )
    c.step(
        "Reading the function before editing it.",
        (
            "Read",
            {"file_path": f"{PROJECT}/src/{mod}/client.py", "offset": 20, "limit": 20},
            _numbered(
                [
                    "import requests",
                    "",
                    f"def {fn}(url, retries=3):",
                    "    for attempt in range(retries):",
                    "        response = requests.get(url)",
                    "        if response.ok:",
                    "            return response.json()",
                    "    raise RuntimeError('gave up')",
                ]
            ),
        ),
    )
    c.step(
        "Adding the parameter and passing it to `requests.get`.",
        (
            "Edit",
            {
                "file_path": f"{PROJECT}/src/{mod}/client.py",
                "old_string": (
                    f"def {fn}(url, retries=3):\n"
                    "    for attempt in range(retries):\n"
                    "        response = requests.get(url)"
                ),
                "new_string": (
                    f"def {fn}(url, retries=3, timeout={timeout}):\n"
                    "    for attempt in range(retries):\n"
                    "        response = requests.get(url, timeout=timeout)"
                ),
            },
            f"The file {PROJECT}/src/{mod}/client.py has been updated successfully.",
        ),
    )
    c.step(
        "Running the module's tests to make sure nothing else broke.",
        (
            "Bash",
            {"command": f"python -m pytest tests/{mod} -q", "description": f"Run the {mod} tests"},
            f"{rng.randint(8, 40)} passed in {rng.uniform(0.5, 4):.2f}s",
        ),
    )
    return c.answer(
        f"I added a `timeout` parameter to `{fn}` in `src/{mod}/client.py` with a default of {timeout} seconds, and "
        f"it is now passed to `requests.get`, so a hung server no longer blocks the retry loop forever. Existing "
        f"callers keep working unchanged because the parameter has a default. The {mod} test suite passes. If some "
        f"callers need a different limit, they can now pass `timeout=` explicitly."
    )


def debugging(rng, n):
    mod, fn = rng.choice(_MODULES), rng.choice(_FUNCS)
    err, msg = rng.choice(_ERRORS)
    c = _Conv(f"`pytest tests/{mod}` fails with {err}. Can you find out why and fix it?", n)
    c.step(
        "First, reproducing the failure.",
        (
            "Bash",
            {
                "command": f"python -m pytest tests/{mod} -x -q 2>&1 | tail -20",
                "description": "Reproduce the failing test",
            },
            f"FAILED tests/{mod}/test_core.py::test_{fn} - {err}: {msg}\n"
            f'  File "{PROJECT}/src/{mod}/core.py", line 52, in {fn}\n'
            f"1 failed, {rng.randint(5, 30)} passed",
        ),
    )
    c.step(
        "The traceback points at line 52. Reading around it.",
        (
            "Read",
            {"file_path": f"{PROJECT}/src/{mod}/core.py", "offset": 45, "limit": 15},
            _numbered(
                [
                    "    def " + fn + "(self, options):",
                    "        settings = options.get('settings')",
                    "        value = settings['timeout'] + self.grace",
                    "        return value",
                ]
            ),
        ),
    )
    c.step(
        "`settings` can lack `timeout`. Fixing it with a default.",
        (
            "Edit",
            {
                "file_path": f"{PROJECT}/src/{mod}/core.py",
                "old_string": "        value = settings['timeout'] + self.grace",
                "new_string": "        value = settings.get('timeout', self.default_timeout) + self.grace",
            },
            f"The file {PROJECT}/src/{mod}/core.py has been updated successfully.",
        ),
    )
    c.step(
        "Re-running the tests.",
        (
            "Bash",
            {"command": f"python -m pytest tests/{mod} -q", "description": "Re-run the tests"},
            f"{rng.randint(6, 31)} passed in {rng.uniform(0.4, 3):.2f}s",
        ),
    )
    return c.answer(
        f"The failure came from `{fn}` in `src/{mod}/core.py`: it indexed `settings['timeout']` directly, but the test "
        f"builds options without a timeout, so the lookup failed with {err}. I changed it to fall back to "
        f"`self.default_timeout` when the key is missing, which matches how the rest of the class treats optional "
        f"settings. The whole {mod} suite passes now. You may want a test that covers the missing-timeout "
        "case explicitly."
    )


def system_analysis(rng, n):
    svc = rng.choice(_SERVICES)
    usage = rng.randint(78, 97)
    c = _Conv(f"The {svc} server is slow today. Can you check disk, memory and what is using the CPU?", n)
    c.step(
        "Checking disk, memory and the top processes in parallel.",
        (
            "Bash",
            {"command": "df -h /", "description": "Disk usage"},
            "Filesystem      Size  Used Avail Use% Mounted on\n"
            f"/dev/sda1        50G   {usage * 50 // 100}G  {50 - usage * 50 // 100}G  {usage}% /",
        ),
        (
            "Bash",
            {"command": "free -m", "description": "Memory usage"},
            "               total        used        free\n"
            f"Mem:           15951       {rng.randint(9000, 15000)}         {rng.randint(200, 900)}",
        ),
        (
            "Bash",
            {"command": "ps aux --sort=-%cpu | head -5", "description": "Top CPU processes"},
            "USER  PID %CPU %MEM COMMAND\n"
            f"app  {rng.randint(1000, 9999)} {rng.randint(80, 190)}.0 12.1 python -m {svc}.main\n"
            f"app  {rng.randint(1000, 9999)}  4.0  1.2 nginx: worker",
        ),
    )
    c.step(
        "Looking at the service log for what it is busy with.",
        (
            "Bash",
            {"command": f"journalctl -u {svc} --since '1 hour ago' | tail -20", "description": f"Recent {svc} logs"},
            "WARN slow query on orders (2.8s)\nWARN slow query on orders (3.1s)\nINFO retrying connection to cache",
        ),
    )
    return c.answer(
        f"The {svc} process is the one using most of the CPU, and its log shows repeated slow queries on the `orders` "
        f"table (about three seconds each) plus cache reconnections. The root disk is {usage}% full, which is worth "
        f"cleaning up soon but is not the cause of the slowness. Memory is tight but not swapping. I would look at "
        f"the orders query plan first (a missing index is the usual suspect) and at why the cache connection drops."
    )


def deployment(rng, n):
    svc = rng.choice(_SERVICES)
    version = f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    c = _Conv(f"Deploy version {version} of the {svc} service to staging and confirm it is healthy.", n)
    c.step(
        "Checking the working tree and the current tag before deploying.",
        (
            "Bash",
            {"command": "git status --short && git describe --tags", "description": "Check tree and tag"},
            f"v{version}",
        ),
    )
    c.step(
        "Building the image.",
        (
            "Bash",
            {"command": f"docker build -t registry.example.com/{svc}:{version} .", "description": "Build the image"},
            f"Successfully built {rng.getrandbits(48):012x}\nSuccessfully tagged registry.example.com/{svc}:{version}",
        ),
    )
    c.step(
        "Pushing and rolling out to staging.",
        (
            "Bash",
            {
                "command": (
                    f"docker push registry.example.com/{svc}:{version} && kubectl -n staging set image "
                    f"deployment/{svc} {svc}=registry.example.com/{svc}:{version}"
                ),
                "description": "Push and roll out",
            },
            f"deployment.apps/{svc} image updated",
        ),
    )
    c.step(
        "Waiting for the rollout and checking health.",
        (
            "Bash",
            {
                "command": f"kubectl -n staging rollout status deployment/{svc} --timeout=120s && curl -fsS https://staging.example.com/{svc}/health",
                "description": "Rollout status and health check",
            },
            f'deployment "{svc}" successfully rolled out\n{{"status": "ok", "version": "{version}"}}',
        ),
    )
    return c.answer(
        f"Version {version} of {svc} is deployed to staging. The working tree was clean and tagged `v{version}`, "
        f"the image was built and pushed as `registry.example.com/{svc}:{version}`, and the rollout completed within "
        f"the two-minute timeout. The health endpoint answers `ok` and reports version {version}, so staging runs "
        "the new build. Production is untouched; promote it when the staging checks you rely on have passed."
    )


TEMPLATES = {
    "code_search": code_search,
    "file_modification": file_modification,
    "debugging": debugging,
    "system_analysis": system_analysis,
    "deployment": deployment,
}


def generate(count: int, seed: int = 0):
    """Yield (template, messages) for `count` workflows, templates in rotation, deterministic by seed."""
    names = list(TEMPLATES)
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        name = names[i % len(names)]
        yield name, TEMPLATES[name](rng, i)


def store_synthetic(db, count: int, seed: int = 0) -> tuple[int, dict]:
    added, by_template = 0, Counter[str]()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    start = db.execute("SELECT coalesce(max(id), 0) FROM synthetic_workflows").fetchone()[0]
    with db.atomic():
        for i, (template, messages) in enumerate(generate(count, seed)):
            blob = json.dumps(messages, ensure_ascii=False)
            tools = sorted({tc["function"]["name"] for m in messages for tc in m.get("tool_calls") or ()})
            cur = db.conn.execute(
                "INSERT OR IGNORE INTO synthetic_workflows (template, session_id, messages, tool_names, seed,"
                " content_hash, created_at) VALUES (?,?,?,?,?,?,?)",
                [
                    template,
                    f"synthetic-{start + i + 1}",
                    blob,
                    json.dumps(tools),
                    seed,
                    hashlib.sha256(blob.encode()).hexdigest(),
                    now,
                ],
            )
            if cur.rowcount == 1:
                added += 1
                by_template[template] += 1
    return added, dict(by_template)
