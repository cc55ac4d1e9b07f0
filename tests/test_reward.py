"""The behavioral reward's components on hand-made cases, their combination, and `cra reward score`."""

import json

import pytest
from click.testing import CliRunner

from cra.behavioral_reward import (
    COMPONENTS,
    Context,
    RewardScorer,
    RewardWeights,
    agreement,
    constraint_adherence,
    exploration_fit,
    format_validity,
    parse_weights,
    reasoning_depth,
    score_text,
    self_correction,
    tool_efficiency,
)
from cra.behavioral_reward.score import completion_text
from cra.chat import parse_action
from cra.cli import cli


def tool(name, **props):
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
                "required": list(props)[:1],
            },
        },
    }


TOOLS = [
    tool("Read", file_path="string"),
    tool("Grep", pattern="string", path="string"),
    tool("Glob", pattern="string"),
    tool("Edit", file_path="string", old_string="string", new_string="string"),
    tool("Bash", command="string"),
]


def call(name, **args):
    return {
        "id": f"c_{name}_{len(args)}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def assistant(text="", *calls):
    m = {"role": "assistant", "content": text}
    if calls:
        m["tool_calls"] = list(calls)
    return m


def result(c, content):
    return {"role": "tool", "tool_call_id": c["id"], "content": content}


def gen(text="", *calls):
    """Text as a model writes it: prose, then <tool_call> blocks."""
    blocks = "".join(f"\n<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls)
    return (text + blocks).strip()


def ctx(prompt, reference, history=()):
    return Context.build(
        [{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": prompt}, *history],
        TOOLS,
        reference,
    )


READ_APP = ("Read", {"file_path": "src/app.py"})
REF_READ = assistant("Let me read the app first.", call("Read", file_path="src/app.py"))


# -- format ----------------------------------------------------------------------------------------------------


def test_format_gives_partial_credit_by_how_far_a_call_got():
    c = ctx("Fix the bug in src/app.py", REF_READ)
    s = lambda text: format_validity(c, parse_action(text)).score
    assert s(gen("", READ_APP)) == 1.0
    assert s(gen("", ("Read", {}))) == pytest.approx(0.9)  # required file_path missing: one problem
    assert s(gen("", ("Open", {"file_path": "a"}))) == pytest.approx(0.4)  # parses, unknown tool
    assert s('<tool_call>{"name": "Read", "arguments": {"file_path": </tool_call>') == pytest.approx(
        0.3
    )  # broken JSON, known name
    assert s("<tool_call>garbage</tool_call>") == 0.0
    assert s("") == 0.0
    assert s("All done, the fix is in.") == 1.0
    assert s('Done. "arguments": {"x": 1}') == pytest.approx(0.3)  # leftover call markup in an answer


def test_a_tool_claude_used_but_the_context_did_not_list_is_known():
    ref = assistant("", call("TodoWrite", todos=[]))
    c = ctx("plan it", ref)
    assert format_validity(c, parse_action(gen("", ("TodoWrite", {"todos": [{"content": "x"}]})))).score == 1.0


# -- agreement -------------------------------------------------------------------------------------------------


def test_agreement_same_tool_and_argument_similarity():
    c = ctx("Fix the bug in src/app.py", REF_READ)
    a = lambda text: agreement(c, parse_action(text)).score
    assert a(gen("", READ_APP)) == 1.0
    other_file = a(gen("", ("Read", {"file_path": "src/other.py"})))
    assert 0.5 < other_file < 1.0  # right tool, same directory, other file
    assert a(gen("", ("Read", {"file_path": "docs/x.md"}))) < other_file
    assert a(gen("", ("Grep", {"pattern": "bug"}))) == pytest.approx(0.15)  # another exploring tool
    assert a(gen("", ("Edit", {"file_path": "src/app.py"}))) == 0.0
    assert a("I think the bug is in app.py.") == 0.0
    # An extra call beside the right one costs: the match is shared over the larger count.
    assert a(gen("", READ_APP, ("Glob", {"pattern": "*.py"}))) == pytest.approx(0.5)


def test_agreement_when_claude_answered():
    c = ctx("What does app.py do?", assistant("It parses the config and starts the server."))
    a = lambda text: agreement(c, parse_action(text)).score
    assert a("It parses the config and starts the server.") == 1.0
    assert 0.5 < a("It starts the server after reading config.") < 1.0
    assert a(gen("", READ_APP)) == pytest.approx(0.1)
    assert a(gen("", ("Edit", {"file_path": "a"}))) == 0.0


# -- constraints -----------------------------------------------------------------------------------------------


def test_constraint_adherence_uses_the_users_stated_constraints():
    ref = assistant("", call("Read", file_path="tests/test_app.py"))
    c = ctx("Find why the test fails. Do not modify tests/test_app.py.", ref)
    s = lambda text: constraint_adherence(c, parse_action(text)).score
    assert s(gen("", ("Read", {"file_path": "tests/test_app.py"}))) == 1.0
    assert s(gen("", ("Edit", {"file_path": "tests/test_app.py", "old_string": "a", "new_string": "b"}))) == 0.0
    assert s(gen("", ("Edit", {"file_path": "src/app.py", "old_string": "a", "new_string": "b"}))) == 1.0  # other file
    both = gen("", ("Read", {"file_path": "src/app.py"}), ("Edit", {"file_path": "tests/test_app.py"}))
    assert s(both) == 0.5

    read_only = ctx("Only explain what the parser does, read-only please.", REF_READ)
    assert constraint_adherence(read_only, parse_action(gen("", ("Bash", {"command": "rm -rf build"})))).score == 0.0
    assert constraint_adherence(read_only, parse_action(gen("", ("Bash", {"command": "ls src"})))).score == 1.0

    no_run = ctx("Fix the typo without running the tests.", REF_READ)
    assert constraint_adherence(no_run, parse_action(gen("", ("Bash", {"command": "pytest -q"})))).score == 0.0

    no_bash = ctx("Don't use Bash for this.", REF_READ)
    assert constraint_adherence(no_bash, parse_action(gen("", ("Bash", {"command": "cat src/app.py"})))).score == 0.0

    free = ctx("Fix the bug in src/app.py", REF_READ)
    assert constraint_adherence(free, parse_action(gen("", ("Bash", {"command": "rm x"})))).score == 1.0


def test_a_rule_claudes_own_action_breaks_is_dropped():
    # "never" here is about style, not about editing; Claude edits: the reward must not punish editing.
    ref = assistant("", call("Edit", file_path="src/app.py", old_string="a", new_string="b"))
    c = ctx("Never change the public API when you edit src/app.py.", ref)
    assert constraint_adherence(c, parse_action(gen("", ("Edit", {"file_path": "src/app.py"})))).score == 1.0


# -- reasoning depth -------------------------------------------------------------------------------------------


def test_reasoning_depth_follows_claudes_amount_of_reasoning_and_plan():
    plan = "Plan:\n1. Read the parser.\n2. Reproduce the failure.\n3. Fix it."
    c = ctx("Fix the parser", assistant(plan, call("Read", file_path="src/parser.py")))
    s = lambda text: reasoning_depth(c, parse_action(text)).score
    assert s(gen(plan, ("Read", {"file_path": "src/parser.py"}))) == 1.0
    similar = s(gen("First I will read the parser, then reproduce and fix the failure.", READ_APP))
    no_plan = s(gen("Reading now, checking the parser code for errors today.", READ_APP))
    silent = s(gen("", READ_APP))
    assert similar > no_plan > silent
    assert silent < 0.4

    terse = ctx("Fix the parser", assistant("", call("Read", file_path="src/parser.py")))
    t = lambda text: reasoning_depth(terse, parse_action(text)).score
    assert t(gen("", READ_APP)) == 1.0
    assert t(gen(" ".join(["word"] * 60), READ_APP)) < 0.5  # a wall of text where Claude just acted


def test_thinking_blocks_count_as_reasoning():
    c = ctx(
        "Fix it",
        {
            "role": "assistant",
            "content": "",
            "reasoning": "the parser drops the last token so the loop is off by one",
            "tool_calls": [call("Read", file_path="src/parser.py")],
        },
    )
    with_think = "<think>the parser drops the last token so the loop is off by one</think>" + gen("", READ_APP)
    assert reasoning_depth(c, parse_action(with_think)).score == 1.0
    assert reasoning_depth(c, parse_action(gen("", READ_APP))).score < 0.5


# -- efficiency ------------------------------------------------------------------------------------------------


def test_tool_efficiency_penalises_repeats_and_extra_calls():
    read = call("Read", file_path="src/app.py")
    history = [assistant("", read), result(read, "def main(): ...")]
    c = ctx("Fix the bug", assistant("", call("Grep", pattern="main")), history)
    s = lambda text: tool_efficiency(c, parse_action(text)).score
    assert s(gen("", ("Grep", {"pattern": "main"}))) == 1.0
    assert s(gen("", READ_APP)) == 0.0  # the same read again, nothing changed since
    assert s(gen("", ("Grep", {"pattern": "main"}), ("Glob", {"pattern": "*.py"}))) == pytest.approx(0.75)
    assert s(gen("", ("Grep", {"pattern": "x"}), ("Grep", {"pattern": "x"}))) == pytest.approx(0.25)
    assert s("no calls at all") == 1.0

    # After an edit, reading the file again is checking the change, not waste.
    edit = call("Edit", file_path="src/app.py", old_string="a", new_string="b")
    after_edit = ctx(
        "Fix the bug",
        assistant("", call("Read", file_path="src/app.py")),
        history + [assistant("", edit), result(edit, "ok")],
    )
    assert tool_efficiency(after_edit, parse_action(gen("", READ_APP))).score == 1.0
    # Claude's own repeat is not waste.
    again = ctx("Fix the bug", assistant("", call("Read", file_path="src/app.py")), history)
    assert tool_efficiency(again, parse_action(gen("", READ_APP))).score == 1.0


# -- self-correction -------------------------------------------------------------------------------------------


def test_self_correction_after_a_failed_call():
    bad = call("Read", file_path="src/ap.py")
    history = [assistant("", bad), result(bad, "<tool_use_error>File does not exist.</tool_use_error>")]
    c = ctx("Fix the bug", assistant("Wrong name; reading src/app.py.", call("Read", file_path="src/app.py")), history)
    s = lambda text: self_correction(c, parse_action(text)).score
    assert s(gen("", READ_APP)) == 1.0  # retry with new arguments, as Claude did
    assert s(gen("", ("Read", {"file_path": "src/ap.py"}))) == 0.0  # the failing call again
    assert s(gen("", ("Glob", {"pattern": "src/*.py"}))) == pytest.approx(0.8)  # an alternative
    assert s(gen("That file does not exist, let me search instead.", ("Glob", {"pattern": "src/*.py"}))) == 1.0
    assert s(gen("", ("Bash", {"command": "make"}))) == pytest.approx(0.4)
    assert s("I could not find the file.") == pytest.approx(0.4)  # gave up (0.2) but said why (+0.2)

    ok = call("Read", file_path="src/app.py")
    fine = ctx("Fix", REF_READ, [assistant("", ok), result(ok, "print('hi')")])
    assert self_correction(fine, parse_action(gen("", ("Read", {"file_path": "src/app.py"})))).score == 1.0


def test_bash_exit_codes_count_as_failures():
    run = call("Bash", command="pytest")
    c = ctx(
        "Run the tests",
        assistant("", call("Bash", command="python -m pytest")),
        [assistant("", run), result(run, "Exit code 127\npytest: command not found")],
    )
    assert c.last_failures and c.last_failures[0].name == "Bash"
    assert self_correction(c, parse_action(gen("", ("Bash", {"command": "pytest"})))).score == 0.0
    assert self_correction(c, parse_action(gen("", ("Bash", {"command": "python -m pytest"})))).score == 1.0


# -- exploration -----------------------------------------------------------------------------------------------


def test_exploration_fit_explore_where_claude_explored():
    c = ctx("Fix the bug", REF_READ)
    s = lambda text: exploration_fit(c, parse_action(text)).score
    assert s(gen("", ("Grep", {"pattern": "bug"}))) == 1.0  # also exploring
    assert s(gen("", ("Bash", {"command": "git status"}))) == 1.0  # read-only shell explores
    assert s(gen("", ("Edit", {"file_path": "src/app.py"}))) == pytest.approx(0.1)  # acting blind
    assert s("Done.") == 0.0

    reads = []
    for i in range(2):
        r = call("Read", file_path=f"src/m{i}.py")
        reads += [assistant("", r), result(r, "code")]
    informed = ctx("Fix the bug", REF_READ, reads)
    assert exploration_fit(informed, parse_action(gen("", ("Edit", {"file_path": "a"})))).score == pytest.approx(0.4)

    acting = ctx("Fix the bug", assistant("", call("Edit", file_path="src/app.py", old_string="a", new_string="b")))
    assert exploration_fit(acting, parse_action(gen("", ("Bash", {"command": "sed -i s/a/b/ x"})))).score == 1.0
    assert exploration_fit(acting, parse_action(gen("", READ_APP))).score == 0.5


# -- combination -----------------------------------------------------------------------------------------------

CASES = [
    ctx("Fix the bug in src/app.py. Do not modify tests/.", REF_READ),
    ctx("What does it do?", assistant("It parses the config.")),
]
COMPLETIONS = [
    gen("Let me read the app first.", READ_APP),
    gen("Let me look.", ("Read", {"file_path": "src/main.py"})),
    gen("", ("Read", {})),  # the right tool, its required argument missing
    gen("", ("Grep", {"pattern": "bug"})),
    gen("", ("Edit", {"file_path": "tests/test_app.py", "old_string": "a", "new_string": "b"})),
    "<tool_call>{broken</tool_call>",
    "It parses the config file.",
    "The bug is fixed.",
    "",
]


@pytest.mark.parametrize("c", CASES)
def test_claudes_own_action_is_the_best_on_every_component(c):
    """The components may not contradict agreement: nothing beats Claude's real action anywhere."""
    best = score_text(c, completion_text(c.reference))
    assert best.total == pytest.approx(1.0)
    assert all(comp.score == 1.0 for comp in best.components.values())
    for text in COMPLETIONS:
        s = score_text(c, text)
        assert 0.0 <= s.total <= best.total
        for name in COMPONENTS:
            assert s.components[name].score <= 1.0


def test_total_orders_completions_sensibly_and_is_dense():
    c = CASES[0]
    totals = [score_text(c, t).total for t in COMPLETIONS[:6]]
    assert totals == sorted(totals, reverse=True), totals  # each is a worse action than the one before
    assert len({round(t, 4) for t in totals}) == len(totals)  # partial credit: all different
    # Doing nothing collects no behavioural credit for "broke no constraint, wasted no call".
    nothing = score_text(c, "The bug is fixed.")
    assert nothing.gate == 0.0 and nothing.total == pytest.approx(0.2)
    assert score_text(c, "").total == 0.0


def test_weights_default_to_the_original_design_and_are_configurable():
    w = RewardWeights()
    share = w.effective()
    assert sum(share.values()) == pytest.approx(1.0)
    behavior = {
        k: share[k] / w.behavior
        for k in ("constraint_adherence", "reasoning_depth", "tool_efficiency", "self_correction", "exploration_fit")
    }
    assert behavior == pytest.approx(
        {
            "constraint_adherence": 0.25,
            "reasoning_depth": 0.20,
            "tool_efficiency": 0.20,
            "self_correction": 0.15,
            "exploration_fit": 0.20,
        }
    )
    custom = parse_weights("agreement=1,format=0,behavior=0")
    c = CASES[0]
    text = gen("", ("Read", {"file_path": "src/main.py"}))
    assert score_text(c, text, custom).total == pytest.approx(agreement(c, parse_action(text)).score)
    with pytest.raises(ValueError):
        parse_weights("agreement=x")
    with pytest.raises(ValueError):
        parse_weights("format=0,agreement=0,behavior=0")


def test_scorer_reward_functions_sum_to_the_total_and_log_statistics():
    scorer = RewardScorer()
    funcs, weights = scorer.reward_functions()
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    context = [json.dumps(CASES[0].to_json())] * 4
    completions = [[{"role": "assistant", "content": t}] for t in COMPLETIONS[:4]]  # conversational form too
    columns = [f(prompts=[""] * 4, completions=completions, context=context) for f in funcs]
    for i, text in enumerate(COMPLETIONS[:4]):
        weighted = sum(w * col[i] for w, col in zip(weights, columns))
        assert weighted == pytest.approx(score_text(CASES[0], text).total)
    (entry,) = scorer.history
    assert entry["n"] == 4 and entry["total"]["std"] > 0
    assert set(entry) >= {"total", *COMPONENTS}


def test_contexts_from_a_training_conversation():
    from cra.behavioral_reward import contexts_from_example
    from cra.testing.tiny import synthetic_conversations

    example = synthetic_conversations(1, seed=5)[0]
    contexts = contexts_from_example(example)
    assistants = [i for i, m in enumerate(example["messages"]) if m["role"] == "assistant"]
    assert [i for _, i in contexts] == assistants
    for c, i in contexts:
        assert c.messages == example["messages"][:i] and c.reference is example["messages"][i]
        assert score_text(c, completion_text(c.reference)).total == pytest.approx(1.0)


# -- the command -----------------------------------------------------------------------------------------------


def test_reward_score_prints_each_component_with_its_reason(tmp_path):
    path = tmp_path / "contexts.jsonl"
    c = CASES[0]
    path.write_text(
        json.dumps(
            {
                **c.to_json(),
                "completions": [
                    gen("", ("Edit", {"file_path": "tests/test_app.py", "old_string": "a", "new_string": "b"})),
                    gen("Let me read the app first.", READ_APP),
                ],
            }
        )
        + "\n"
    )
    out = CliRunner().invoke(cli, ["reward", "score", str(path)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    first, second = out.output.split("\n\n")[:2]
    assert "reward 1.000" in second
    for name in COMPONENTS:
        assert name in first
    assert "breaks: " in first and "Do not modify tests/" in first  # why it lost constraint credit
    assert "acted after 0 exploring call(s)" in first

    as_json = CliRunner().invoke(
        cli, ["reward", "score", str(path), "--json", "--weights", "agreement=1,format=0,behavior=0"]
    )
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert [r["total"] for r in rows] == pytest.approx([0.0, 1.0])
    assert rows[0]["components"]["constraint_adherence"]["score"] == 0.0


def test_reward_score_from_a_dataset_scores_claudes_action_by_default(tmp_path):
    from cra.testing.tiny import write_dataset

    data = write_dataset(tmp_path / "data", n_train=3, n_eval=1)
    out = CliRunner().invoke(cli, ["reward", "score", "--dataset", str(data), "-n", "3"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert out.output.count("reward 1.000") == 3


def test_reward_score_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    out = CliRunner().invoke(cli, ["reward", "score", str(bad)])
    assert out.exit_code == 1 and "needs `messages`" in out.output and "`reference`" in out.output
    out = CliRunner().invoke(cli, ["reward", "score"])
    assert out.exit_code == 1 and "FILE of contexts or --dataset" in out.output
    out = CliRunner().invoke(cli, ["reward", "score", str(bad), "--weights", "nope"])
    assert out.exit_code == 1 and "--weights" in out.output
