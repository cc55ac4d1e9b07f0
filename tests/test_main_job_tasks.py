"""The main job's sessions (tests/e2e/scenarios.py: task_scenario): generated tasks whose prompts carry
no `[[scenario:...]]` tag, played by a mock that was given its one script as the default; and, with the
real Claude Code client, every kind of task runs to its answer without going off script."""

import json
import shutil
import urllib.request

import pytest

try:
    from e2e import claude_client
    from e2e.mock_api import MockAPI
    from e2e.scenarios import SCENARIOS, TASK_KINDS, blocks, task_scenario
except ImportError:  # tests/ imported as a package
    from tests.e2e import claude_client
    from tests.e2e.mock_api import MockAPI
    from tests.e2e.scenarios import SCENARIOS, TASK_KINDS, blocks, task_scenario


def test_tasks_carry_no_tag_and_vary_what_matters():
    tasks = [task_scenario(i) for i in range(63)]
    assert all("[[" not in t.prompt and t.prompt == t.task for t in tasks)
    assert all(t.default_script == t.name and not t.recorded for t in tasks)
    assert [t.description for t in tasks[:7]] == ["generated %s task" % k for k in TASK_KINDS]
    assert len({t.prompt for t in tasks}) >= 55  # wording, files and names vary

    def first_tools(t):
        return tuple(b["name"] for b in blocks(t.scripts[t.name][0]) if b["type"] == "tool_use")

    # The first action follows from the request: a file named -> Read, a function -> Grep, and so on.
    assert {first_tools(t) for t in tasks} == {("Read",), ("Grep",), ("Glob",), ("Bash",), ("Read", "Read")}
    # After a Read, what comes next depends on the task (answer, Edit), after a run on its result.
    lengths = {len(t.scripts[t.name]) for t in tasks}
    assert lengths == {2, 3, 4}
    runs = [t for t in tasks if t.description == "generated run task"]
    assert {len(t.scripts[t.name]) for t in runs} == {2, 3}  # a crash is read, a clean run reported
    assert task_scenario(5, seed=1).prompt != task_scenario(5).prompt  # another seed, other tasks
    assert all(t.name not in SCENARIOS for t in tasks)  # the capture tests' scenarios are unchanged


def _post(mock, body):
    request = urllib.request.Request(
        mock.base_url + "/v1/messages", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_mock_plays_its_default_script_for_untagged_requests():
    script = {"mine": [[{"type": "text", "text": "first"}], [{"type": "text", "text": "second"}]]}
    user = {"role": "user", "content": "What does src/app.py do?"}
    with MockAPI(script, default="mine") as mock:
        assert _post(mock, {"messages": [user]})["content"] == [{"type": "text", "text": "first"}]
        history = [user, {"role": "assistant", "content": "first"}, {"role": "user", "content": "and?"}]
        assert _post(mock, {"messages": history})["content"] == [{"type": "text", "text": "second"}]
    assert [(r["kind"], r["scenario"], r["step"]) for r in mock.requests] == [
        ("scenario", "mine", 0),
        ("scenario", "mine", 1),
    ]
    with MockAPI(script) as plain:  # without a default, as before: nothing scripted for untagged requests
        assert "nothing scripted" in _post(plain, {"messages": [user]})["content"][0]["text"]


@pytest.fixture(scope="module")
def claude():
    try:
        return claude_client.ensure_claude_code()
    except claude_client.ClaudeCodeUnavailable as exc:
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("node/npm not available: cannot install the Claude Code client (%s)" % exc)
        raise


@pytest.mark.e2e
def test_every_kind_of_task_runs_in_the_real_client(claude, tmp_path):
    # Sessions 0-6 are one of each kind; 18 is a run task whose script crashes (seed 0).
    for index in (*range(len(TASK_KINDS)), 18):
        task = task_scenario(index)
        run = claude_client.run_scenario(task, tmp_path / task.name, tmp_path / "home", claude=claude)
        kinds = [r["kind"] for r in run.requests if r["kind"] != "count_tokens"]
        steps = task.scripts[task.name]
        assert run.returncode == 0 and kinds == ["scenario"] * len(steps), (task.prompt, kinds, run.stderr[-500:])
        assert run.result_text == blocks(steps[-1])[-1]["text"]
        results = [
            b
            for m in run.messages
            if m.get("type") == "user"
            for b in m["message"]["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        expected = [b.get("_expect", "success") for step in steps for b in blocks(step) if b["type"] == "tool_use"]
        assert [bool(b.get("is_error")) for b in results] == [e != "success" for e in expected], task.prompt
