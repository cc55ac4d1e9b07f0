"""Signal extraction on hand-made turns: each case is small enough to check by eye."""

import json

import pytest

from cra.signals import Message, SignalConfig, ToolCall, Turn, extract
from cra.signals.config import DepthThresholds
from cra.signals.extract import pattern
from cra.signals.text import CONSTRAINT_PATTERNS, find, mask_code
from cra.signals.tools import bash_is_read_only, category


def call(i, name, status="success", batch=None, **inp):
    return ToolCall(tool_use_id=f"t{i}", name=name, input=inp, status=status, batch=batch, message_uuid=f"m{i}")


def kinds(sig, kind):
    return [e for e in sig.evidence if e["kind"] == kind]


@pytest.mark.parametrize(
    "command, read_only",
    [
        ("ls -la", True),
        ("cat a.txt | grep foo | wc -l", True),
        ("git status && git log --oneline -5", True),
        ("cd src && rg TODO", True),
        ("ls missing 2>&1 >/dev/null", True),
        ("echo $(cat VERSION)", True),
        ("echo hi > notes.txt", False),
        ("cat a | tee b", False),
        ("sed -i 's/a/b/' f", False),
        ("find . -name '*.pyc' -delete", False),
        ("git commit -am wip", False),
        ("pytest -q", False),
        ("echo $(rm -rf build)", False),
        ("grep 'unbalanced", False),
        ("", False),
    ],
)
def test_bash_read_only(command, read_only):
    assert bash_is_read_only(command) is read_only


def test_categories():
    assert category("Read") == "explore"
    assert category("Grep") == "explore"
    assert category("WebFetch") == "explore"
    assert category("Bash", {"command": "ls"}) == "explore"
    assert category("Bash", {"command": "make test"}) == "run"
    assert category("Edit") == "change"
    assert category("Write") == "change"
    assert category("Agent") == "delegate"
    assert category("TodoWrite") == "plan"
    assert category("mcp__github__list_issues") == "explore"
    assert category("SomethingElse") == "other"


def test_sequence_parallel_groups_and_pattern():
    turn = Turn(
        tool_calls=[
            call(1, "Read"),
            call(2, "Read"),
            call(3, "Grep", batch="a"),
            call(4, "Glob", batch="a"),
            call(5, "Edit"),
        ],
        final_answer="done",
    )
    sig = extract(turn)
    assert sig.tool_sequence == [["Read"], ["Read"], ["Grep", "Glob"], ["Edit"]]
    assert sig.sequence_pattern == "Read+ > [Glob|Grep] > Edit"
    assert sig.tool_count == 5 and sig.distinct_tools == 4
    assert sig.parallel_groups == 1
    assert kinds(sig, "parallel") == [{"kind": "parallel", "tool_use_ids": ["t3", "t4"]}]
    assert sig.workflow == "parallel"
    # Four exploring calls before the first Edit.
    assert sig.exploration_calls == 4 and sig.exploration_depth == "moderate"


def test_pattern_collapses_runs_only_of_equal_groups():
    assert pattern([["Read"], ["Read"], ["Read"], ["Edit"], ["Read"]]) == "Read+ > Edit > Read"
    assert pattern([["Grep", "Glob"], ["Glob", "Grep"]]) == "[Glob|Grep]+"
    assert pattern([["Bash", "Read", "Bash"]]) == "[Bash*2|Read]"
    assert pattern([]) == ""


@pytest.mark.parametrize(
    "n_explore, depth",
    [
        (0, "minimal"),
        (1, "minimal"),
        (2, "moderate"),
        (4, "moderate"),
        (5, "thorough"),
        (9, "thorough"),
        (10, "exhaustive"),
        (14, "exhaustive"),
    ],
)
def test_exploration_depth_thresholds(n_explore, depth):
    calls = [call(i, "Read") for i in range(n_explore)] + [call(99, "Write"), call(100, "Read")]
    sig = extract(Turn(tool_calls=calls))
    assert sig.exploration_calls == n_explore  # the Read after the Write doesn't count
    assert sig.exploration_depth == depth


def test_depth_counts_read_only_bash_and_stops_at_mutating_bash():
    calls = [
        call(1, "Bash", command="ls"),
        call(2, "Bash", command="cat x"),
        call(3, "Bash", command="rm x"),
        call(4, "Read"),
        call(5, "Read"),
    ]
    sig = extract(Turn(tool_calls=calls))
    assert sig.exploration_calls == 2
    assert kinds(sig, "first_change")[0]["tool_use_id"] == "t3"


def test_depth_thresholds_are_configurable_and_validated():
    config = SignalConfig(depth=DepthThresholds(moderate=1, thorough=2, exhaustive=3))
    sig = extract(Turn(tool_calls=[call(1, "Read"), call(2, "Read"), call(3, "Edit")]), config)
    assert sig.exploration_depth == "thorough"
    with pytest.raises(ValueError, match="must increase"):
        DepthThresholds(moderate=5, thorough=5, exhaustive=10)
    assert config.fingerprint() != SignalConfig().fingerprint()


def test_no_tools_means_no_depth_and_no_workflow():
    sig = extract(Turn(prompt_text="hi", final_answer="Hello! How can I help today?"))
    assert sig.exploration_depth is None
    assert sig.workflow == "none" and sig.workflow_tags == []
    assert sig.outcome == "completed"
    assert sig.final_answer_words == 6 and sig.final_answer_chars == 28


def test_failures_recoveries_and_denials():
    calls = [
        call(1, "Bash", "failure", command="pytest"),  # recovered by the retry t4
        call(2, "Read", "failure", file_path="/nope"),  # recovered by Glob right after (alternative)
        call(3, "Glob", pattern="**/nope"),
        call(4, "Bash", command="pytest -x"),
        call(5, "Grep", "failure", pattern="("),  # a later Glob is not an alternative: not right after
        call(6, "Edit", "invalid"),  # never recovered
        call(7, "Glob", pattern="*.py"),
        call(8, "Write", "denied"),
    ]
    calls[0].error = "exit 1"
    sig = extract(Turn(tool_calls=calls, final_answer="partial"))
    assert sig.failures == 4
    assert sig.recoveries == 2
    assert sig.unrecovered_failures == 2
    assert sig.denials == 1
    rec = {(e["failed"], e["by"], e["how"]) for e in kinds(sig, "recovery")}
    assert rec == {("t1", "t4", "retry"), ("t2", "t3", "alternative")}
    assert [e["tool_use_id"] for e in kinds(sig, "denial")] == ["t8"]
    assert kinds(sig, "failure")[0]["error"] == "exit 1"


def test_workflow_iterative_edit_run_fix():
    calls = [
        call(1, "Read"),
        call(2, "Edit"),
        call(3, "Bash", "failure", command="pytest"),
        call(4, "Edit"),
        call(5, "Bash", command="pytest"),
    ]
    sig = extract(Turn(tool_calls=calls))
    assert sig.workflow == "iterative"
    assert kinds(sig, "edit_run_fix")[0]["tool_use_ids"] == ["t2", "t3", "t4"]


def test_workflow_delegated_takes_precedence():
    calls = [
        call(1, "Agent", subagent_type="Explore", prompt="look around"),
        call(2, "Read", batch="x"),
        call(3, "Read", batch="x"),
    ]
    sig = extract(Turn(tool_calls=calls))
    assert sig.workflow == "delegated"
    assert sig.workflow_tags == ["delegated", "parallel"]


def test_workflow_exploratory_and_linear():
    sig = extract(Turn(tool_calls=[call(1, "Read"), call(2, "Grep"), call(3, "Bash", command="ls"), call(4, "Edit")]))
    assert sig.workflow == "exploratory"  # 3 of 4 calls explore
    sig = extract(Turn(tool_calls=[call(1, "Read"), call(2, "Edit"), call(3, "Bash", command="make")]))
    assert sig.workflow == "linear" and sig.workflow_tags == ["linear"]


def test_plan_from_todo_tool():
    sig = extract(Turn(tool_calls=[call(1, "Read"), call(2, "TodoWrite", todos=[])]))
    assert sig.has_plan and sig.plan_source == "tool"


def test_plan_announced_before_first_call():
    text = "I'll do this in steps:\n1. Read the config\n2. Fix the parser\n3. Run the tests"
    msgs = [Message("a1", text=text), Message("a2", tool_use_ids=["t1"]), Message("a3", text="Done.")]
    sig = extract(Turn(messages=msgs, tool_calls=[call(1, "Read")]))
    assert sig.has_plan and sig.plan_source == "text"
    ev = kinds(sig, "plan")[0]
    assert ev["message_uuid"] == "a1"
    start, end = ev["span"]
    assert text[start:end].startswith("1. Read") and text[start:end].endswith("Run the tests")


def test_steps_after_the_first_call_are_not_a_plan():
    msgs = [Message("a1", tool_use_ids=["t1"]), Message("a2", text="1. first\n2. second")]
    sig = extract(Turn(messages=msgs, tool_calls=[call(1, "Read")]))
    assert not sig.has_plan and sig.plan_source is None


def test_plan_first_then_phrase_in_thinking():
    msgs = [
        Message("a1", thinking="First I'll look at the failing test, then patch the function."),
        Message("a2", tool_use_ids=["t1"]),
    ]
    sig = extract(Turn(messages=msgs, tool_calls=[call(1, "Read")]))
    assert sig.plan_source == "thinking"


def test_constraints_with_evidence_spans():
    prompt = "Fix the bug. You must not change the public API, and only touch parser.py. Keep it under 50 lines."
    sig = extract(Turn(prompt_text=prompt, prompt_uuid="p1"))
    hits = kinds(sig, "constraint")
    assert [h["pattern"] for h in hits] == ["must", "only", "limit"]
    for h in hits:
        assert h["message_uuid"] == "p1" and h["field"] == "prompt"
        start, end = h["span"]
        assert prompt[start:end] == h["match"]
    assert [h["match"] for h in hits] == ["must not", "only", "under 50"]
    assert sig.constraints == 3


def test_constraint_words_inside_code_are_ignored():
    text = "Run `only_this --must` and\n```\nmust never only\n```\nthat's it."
    assert find(CONSTRAINT_PATTERNS, text) == []
    assert len(mask_code(text)) == len(text)


def test_not_only_is_not_a_constraint_but_dont_imperative_is():
    sig = extract(Turn(prompt_text="This is not only slow but wrong. Don't add dependencies.", prompt_uuid="p"))
    assert [h["match"] for h in kinds(sig, "constraint")] == ["Don't"]


def test_descriptive_only_in_assistant_text_is_not_a_constraint():
    msgs = [
        Message("a1", text="Only the read succeeded; I used read-only tools without changes."),
        Message("a2", text="I must not touch the lockfile."),
    ]
    sig = extract(Turn(messages=msgs))
    assert [(h["message_uuid"], h["match"]) for h in kinds(sig, "constraint")] == [("a2", "must not")]


def test_pruning_and_self_corrections_in_text_and_thinking():
    msgs = [
        Message("a1", thinking="A regex would be overkill here; I'll use split rather than a parser."),
        Message("a2", text="Actually, the file is YAML. My mistake: I misread the extension."),
    ]
    sig = extract(Turn(messages=msgs))
    assert {h["pattern"] for h in kinds(sig, "pruning")} == {"overkill", "rather than"}
    assert all(h["field"] == "thinking" for h in kinds(sig, "pruning"))
    corr = kinds(sig, "self_correction")
    assert [h["pattern"] for h in corr] == ["actually", "my mistake", "misread"]
    assert corr[0]["message_uuid"] == "a2" and corr[0]["span"] == [0, 8]
    assert sig.prunings == 2 and sig.self_corrections == 3


def test_actually_mid_sentence_is_not_a_correction():
    sig = extract(Turn(messages=[Message("a", text="This is what actually happens at runtime.")]))
    assert sig.self_corrections == 0


def test_tool_self_corrections_retry_and_revert():
    calls = [
        call(1, "Edit", "failure", file_path="f.py", old_string="x", new_string="y"),
        call(2, "Edit", file_path="f.py", old_string="a = 1", new_string="a = 2"),
        call(3, "Edit", file_path="f.py", old_string="a = 2", new_string="a = 1"),  # undoes t2
        call(4, "Write", file_path="g.py", content="..."),
        call(5, "Bash", command="git checkout -- g.py"),  # undoes t4
    ]
    sig = extract(Turn(tool_calls=calls))
    tool_corr = [e for e in kinds(sig, "self_correction") if e["source"] == "tool"]
    assert [(e["pattern"], e["tool_use_ids"]) for e in tool_corr] == [
        ("retry after error", ["t1", "t2"]),
        ("revert of own edit", ["t2", "t3"]),
        ("revert of own edit", ["t4", "t5"]),
    ]
    assert sig.self_corrections == 3


@pytest.mark.parametrize(
    "calls, final, given, expected",
    [
        ([], "answer", None, "completed"),
        ([("Bash", "interrupted")], None, None, "interrupted"),
        ([("Bash", "failure")], None, None, "error"),
        ([("Read", "success")], None, None, "incomplete"),
        ([("Read", "success")], "x", "interrupted", "interrupted"),  # the transcript's verdict wins
    ],
)
def test_outcome(calls, final, given, expected):
    turn = Turn(tool_calls=[call(i, n, s) for i, (n, s) in enumerate(calls)], final_answer=final, outcome=given)
    assert extract(turn).outcome == expected


def test_row_is_json_serialisable():
    sig = extract(Turn(prompt_text="only this", tool_calls=[call(1, "Read")], final_answer="ok"))
    row = sig.as_row()
    assert json.loads(row["tool_sequence"]) == [["Read"]]
    assert isinstance(json.loads(row["evidence"]), list)
    assert row["has_plan"] == 0


def test_instead_of_needs_a_decision_in_its_sentence():
    msgs = [
        Message("a1", text="- Words play simultaneously instead of sequentially.\nI'll use a dict instead of a list.")
    ]
    sig = extract(Turn(messages=msgs))
    hits = kinds(sig, "pruning")
    assert [(h["match"], h["excerpt"]) for h in hits] == [("instead of", "I'll use a dict instead of a list.")]
    start, end = hits[0]["span"]
    assert msgs[0].text[start:end] == "instead of"
