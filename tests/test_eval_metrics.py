"""`cra eval`'s metrics on fixed predictions: every number pinned (no model involved)."""

import json
import math

import pytest

from cra.chat import toolcalls
from cra.eval import metrics
from cra.eval.intervals import mean_ci, wilson
from cra.eval.steps import steps_from_examples

SCHEMA = [
    {
        "type": "function",
        "function": {
            "name": "Read",
            "parameters": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}},
                "required": ["file_path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Grep",
            "parameters": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Edit",
            "parameters": {
                "type": "object",
                "properties": {
                    "file_path": {"type": "string"},
                    "old_string": {"type": "string"},
                    "new_string": {"type": "string"},
                },
                "required": ["file_path", "old_string", "new_string"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
                "additionalProperties": False,
            },
        },
    },
]
TOOLS = json.dumps(SCHEMA)


def call(name, args, i):
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
    }


def result(i, text="ok"):
    return {"role": "tool", "tool_call_id": f"c{i}", "content": text}


def tc(name, args):
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


EXAMPLES = [
    {
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Fix the bug in app.py"},
            call("Read", {"file_path": "src/app.py"}, 1),
            result(1),
            call("Grep", {"pattern": "def main"}, 2),
            result(2),
            call("Edit", {"file_path": "src/app.py", "old_string": "a", "new_string": "b"}, 3),
            result(3),
            {"role": "assistant", "content": "Fixed."},
        ],
        "tools": TOOLS,
        "meta": {"session_id": "s1", "turn_id": 1},
    },
    {
        "messages": [
            {"role": "user", "content": "Run the tests"},
            call("Bash", {"command": "pytest -q"}, 4),
            result(4, "3 passed"),
            {"role": "assistant", "content": "All pass."},
        ],
        "tools": TOOLS,
        "meta": {"session_id": "s2", "turn_id": 2},
    },
]
PREDICTIONS = [
    tc("Read", {"file_path": "src/app.py"}),  # exact
    tc("Open", {"file_path": "lib/app.py"}),  # a tool that was not offered
    tc("Edit", {"file_path": "src/app.py", "old_string": "a", "new_string": "c"}),  # right tool, 2 of 3 args
    "Done.",  # answers, as Claude did
    '<tool_call>\n{"name": "Bash", "arguments": {"command": "pytest"\n</tool_call>',  # right tool, broken JSON
    tc("Bash", {"cmd": "pytest"}),  # calls when Claude answered; bad args
]


@pytest.fixture
def report():
    steps, skipped = steps_from_examples(EXAMPLES)
    assert [s.index for s in steps] == [0, 1, 2, 3, 0, 1] and skipped["duplicate_steps"] == 0
    scores = [metrics.score_step(s, p) for s, p in zip(steps, PREDICTIONS)]
    return metrics.aggregate(scores)


def test_next_action_agreement(report):
    assert report["steps"] == 6 and report["call_steps"] == 4 and report["answer_steps"] == 2
    # Read, Edit, and Bash: a broken call still names its tool (format validity is what it loses).
    assert (report["tool_name_accuracy"]["k"], report["tool_name_accuracy"]["n"]) == (3, 4)
    assert (report["stop_accuracy"]["k"], report["stop_accuracy"]["n"]) == (5, 6)
    assert (report["exact_args"]["k"], report["exact_args"]["n"]) == (1, 4)
    # Only where the tool agrees: Read exact (1), Edit with one of three arguments different (2/3), Bash
    # with unparseable arguments (0).
    assert report["arg_similarity"]["n"] == 3
    assert report["arg_similarity"]["mean"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert report["arg_similarity_by_tool"]["Read"]["mean"] == 1.0
    assert report["arg_similarity_by_tool"]["Edit"]["mean"] == pytest.approx(2 / 3)
    assert report["arg_similarity_by_tool"]["Bash"]["mean"] == 0.0
    assert set(report["arg_similarity_by_tool"]) == {"Read", "Edit", "Bash"}


def test_format_validity(report):
    fmt = report["format"]
    assert fmt["calls"] == 5
    assert (fmt["parseable"]["k"], fmt["known_tool"]["k"], fmt["valid_arguments"]["k"], fmt["valid"]["k"]) == (
        4,
        4,
        2,
        2,
    )
    assert fmt["valid"]["rate"] == 0.4


def test_sequence_edit_distance_and_depth(report):
    seq = report["sequence"]
    assert seq["turns"] == 2
    # Turn 1: Read Grep Edit <answer> vs Read Open Edit <answer> (1 of 4); turn 2: Bash <answer> vs Bash Bash (1 of 2).
    assert seq["edit_distance"]["mean"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert seq["raw_edit_distance"]["mean"] == pytest.approx(1.0)
    # Depth by cra/signals: turn 1 Claude explored twice before editing (moderate), the model once (Open is
    # not exploration: minimal); turn 2 both ran a command first (minimal).
    assert (seq["depth_agreement"]["k"], seq["depth_agreement"]["n"]) == (1, 2)
    assert seq["exploration_calls_diff"]["mean"] == pytest.approx(0.5)


def test_turn_sequences_are_teacher_forced_rollouts():
    steps, _ = steps_from_examples(EXAMPLES)
    scores = [metrics.score_step(s, p) for s, p in zip(steps, PREDICTIONS)]
    turns = {t.turn_key: t for t in metrics.score_turns(scores)}
    assert turns["s1:1"].claude_sequence == ["Read", "Grep", "Edit", metrics.STOP]
    assert turns["s1:1"].model_sequence == ["Read", "Open", "Edit", metrics.STOP]
    assert (turns["s1:1"].claude_depth, turns["s1:1"].model_depth) == ("moderate", "minimal")
    assert turns["s2:2"].model_sequence == ["Bash", "Bash"] and turns["s2:2"].edit_distance == 1
    # A turn cut by --limit has no sequence score.
    assert [t.turn_key for t in metrics.score_turns(scores[:5])] == ["s1:1"]


def test_reward_components_are_cra_reward_on_the_same_steps():
    from cra.behavioral_reward import COMPONENTS, Context, score_text
    from cra.eval.runner import reward_function

    steps, _ = steps_from_examples(EXAMPLES)
    fn = reward_function()
    scores = [metrics.score_step(s, p, fn) for s, p in zip(steps, PREDICTIONS)]
    report = metrics.aggregate(scores)
    assert set(report["reward"]) == {"total", *COMPONENTS}
    direct = [score_text(Context.build(s.context, s.tools, s.target), p) for s, p in zip(steps, PREDICTIONS)]
    assert report["reward"]["total"]["mean"] == pytest.approx(sum(d.total for d in direct) / 6)
    assert report["reward"]["agreement"]["mean"] == pytest.approx(
        sum(d.components["agreement"].score for d in direct) / 6
    )
    assert scores[0].reward["total"] == pytest.approx(1.0)  # Claude's exact action
    assert scores[5].reward["total"] < scores[3].reward["total"]  # calling where Claude answered


def test_intervals():
    p = wilson(8, 10)
    assert (round(p.low, 3), round(p.high, 3)) == (0.49, 0.943)
    zero = wilson(0, 10)
    assert zero.rate == 0 and zero.low == 0 and zero.high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0).rate is None
    m = mean_ci([1, 2, 3])
    assert m.mean == 2 and m.low == pytest.approx(2 - 4.303 * math.sqrt(1 / 3), abs=1e-3)
    assert mean_ci([0.0, 1.0], 0, 1).low == 0.0 and mean_ci([0.0, 1.0], 0, 1).high == 1.0
    assert mean_ci([0.5]).low is None and mean_ci([]).mean is None
    # Large samples use the normal quantile.
    big = mean_ci([0, 1] * 50)
    assert big.high - big.mean == pytest.approx(1.96 * math.sqrt(0.25 * 100 / 99 / 100), abs=1e-3)


def test_parse_action_formats():
    a = toolcalls.parse_action(
        'Let me look.\n<tool_call>\n{"name": "Read", "arguments": {"file_path": "a.py"}}\n</tool_call>'
        '\n<tool_call>\n{"name": "Grep", "arguments": "{\\"pattern\\": \\"x\\"}"}\n</tool_call>'
    )
    assert a.kind == "call" and a.text == "Let me look." and a.names == ["Read", "Grep"]
    assert a.calls[1].arguments == {"pattern": "x"}
    cut = toolcalls.parse_action('<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"')
    assert cut.kind == "call" and cut.calls[0].name == "Bash" and not cut.calls[0].parseable
    llama = toolcalls.parse_action('<|python_tag|>{"name": "Read", "parameters": {"file_path": "a"}}')
    assert llama.names == ["Read"] and llama.calls[0].arguments == {"file_path": "a"}
    bare = toolcalls.parse_action('{"name": "Glob", "arguments": {"pattern": "*.py"}}')
    assert bare.names == ["Glob"]
    assert toolcalls.parse_action("The answer is {name} in a template.").kind == "answer"
    assert toolcalls.parse_action('<tool_call>["Read"]</tool_call>').calls[0].error == "not a JSON object"


def test_argument_similarity_per_kind():
    sim = toolcalls.argument_similarity
    assert sim("Read", {"file_path": "src/a.py"}, {"file_path": "src/a.py"}) == 1.0
    assert sim("Read", {"file_path": "lib/a.py"}, {"file_path": "src/a.py"}) == 0.5  # same file name, no shared dir
    assert sim("Read", {"file_path": "src/b.py"}, {"file_path": "src/a.py"}) == 0.5  # same directory, other file
    assert sim("Bash", {"command": "pytest -q tests"}, {"command": "pytest tests"}) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert sim("Bash", {"command": "ls"}, {"command": "pytest"}) == 0.0
    assert sim("Grep", {"pattern": "def main"}, {"pattern": "def main"}) == 1.0
    assert 0.5 < sim("Grep", {"pattern": "def mian"}, {"pattern": "def main"}) < 1.0
    assert sim("Grep", {"pattern": "x", "path": "src"}, {"pattern": "x"}) == 0.5  # an extra key costs
    assert sim("Read", None, {"file_path": "a"}) == 0.0 and sim("X", {}, {}) == 1.0


def test_argument_problems_against_schema():
    schema = SCHEMA[3]["function"]["parameters"]
    assert toolcalls.argument_problems(schema, {"command": "ls"}) == []
    assert toolcalls.argument_problems(schema, {"cmd": "ls"}) == [
        "missing required argument 'command'",
        "unknown argument 'cmd'",
    ]
    assert toolcalls.argument_problems(schema, {"command": 3}) == ["argument 'command' should be string"]
    enum = {"properties": {"mode": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer"}}}
    assert toolcalls.argument_problems(enum, {"mode": "c", "n": True}) == [
        "argument 'mode' must be one of ['a', 'b']",
        "argument 'n' should be integer",
    ]


def test_steps_skip_synthetic_dedupe_prefixes_and_ignore_context_turns():
    convo = EXAMPLES[0]["messages"]
    per_step = [  # a per-step dataset: each example is the turn up to one assistant message
        {"messages": convo[:end], "tools": TOOLS, "meta": {"session_id": "s1", "turn_id": 1, "step": end}}
        for end in (3, 5, 7, 9)
    ]
    synthetic = {**EXAMPLES[1], "meta": {"session_id": "synthetic-1", "synthetic": True}}
    with_context = {
        "messages": [
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "earlier answer"},
            *EXAMPLES[1]["messages"],
        ],
        "tools": TOOLS,
    }
    steps, skipped = steps_from_examples([*per_step, synthetic, with_context])
    assert skipped["synthetic_examples"] == 1 and skipped["duplicate_steps"] == 6  # 1+2+3 repeated prefixes
    assert [(s.turn_key, s.index) for s in steps] == [
        ("s1:1", 0),
        ("s1:1", 1),
        ("s1:1", 2),
        ("s1:1", 3),
        ("example-5", 0),
        ("example-5", 1),
    ]
    assert all(s.turn_steps == (4 if s.turn_key == "s1:1" else 2) for s in steps)
    # The earlier turn's answer is context, not a step of this turn.
    assert steps[4].context[-1]["content"] == "Run the tests"


def test_strict_metrics_count_only_valid_calls(report):
    """The same six predictions, strictly: Open is no offered tool, the Bash call's JSON is broken, and
    calling where Claude answered is no valid call either; the lenient name accuracy (3/4) credits both."""
    strict = report["strict"]
    assert (strict["tool_name_accuracy"]["k"], strict["tool_name_accuracy"]["n"]) == (2, 4)  # Read, Edit
    assert strict["tool_name_credit"]["mean"] == pytest.approx(0.5)
    assert (strict["exact_action"]["k"], strict["exact_action"]["n"]) == (1, 4)  # Read only: Edit's new_string differs
    # Answered where Claude answered (1 of 2 answer steps), a valid call where Claude called (2 of 4).
    assert (strict["stop_accuracy"]["k"], strict["stop_accuracy"]["n"]) == (3, 6)
    assert (strict["call_recall"]["k"], strict["call_recall"]["n"]) == (2, 4)
    assert (strict["call_precision"]["k"], strict["call_precision"]["n"]) == (2, 5)
    assert report["tool_name_accuracy"]["k"] == 3  # lenient, beside it


def _parallel_step():
    """Claude read two files at once."""
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "p1", "type": "function", "function": {"name": "Read", "arguments": '{"file_path": "a.py"}'}},
            {"id": "p2", "type": "function", "function": {"name": "Read", "arguments": '{"file_path": "b.py"}'}},
        ],
    }
    example = {"messages": [{"role": "user", "content": "Compare a.py and b.py"}, message], "tools": TOOLS}
    (step,), _ = steps_from_examples([example])
    return step


@pytest.mark.parametrize(
    "prediction, set_match, credit, exact",
    [
        (tc("Read", {"file_path": "a.py"}) + tc("Read", {"file_path": "b.py"}), True, 1.0, True),
        (tc("Read", {"file_path": "b.py"}) + tc("Read", {"file_path": "a.py"}), True, 1.0, True),  # any order
        (tc("Read", {"file_path": "a.py"}) + tc("Read", {"file_path": "c.py"}), True, 1.0, False),  # wrong file
        (tc("Read", {"file_path": "a.py"}), False, 0.5, False),  # one of the two
        (tc("Read", {"file_path": "a.py"}) + tc("Grep", {"pattern": "x"}), False, 0.5, False),  # one right, one not
        (tc("Read", {"file_path": "a.py"}) + tc("Read", {"path": "b.py"}), False, 0.5, False),  # invalid arguments
        (tc("Read", {"file_path": "a.py"}) + '<tool_call>{"name": "Read"', False, 0.5, False),  # broken JSON
        (tc("Read", {"file_path": "a.py"}) * 3, False, 2 / 3, False),  # a third call costs credit
        ("I would read both.", False, 0.0, False),
    ],
)
def test_parallel_steps_are_scored_per_call(prediction, set_match, credit, exact):
    score = metrics.score_step(_parallel_step(), prediction)
    assert score.strict_set_match is set_match
    assert score.strict_credit == pytest.approx(credit)
    assert score.strict_exact is exact
    assert score.name_correct is (prediction != "I would read both.")  # lenient: the first call's name


def test_baselines_fitted_on_train_predict_held_out_steps():
    from cra.eval import baselines

    def turn(session, names_per_step, answer="Done."):
        messages = [{"role": "user", "content": f"task {session}"}]
        for i, names in enumerate(names_per_step):
            args = {"Read": {"file_path": "a.py"}, "Grep": {"pattern": "x"}, "Edit": {}, "Bash": {"command": "ls"}}
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": f"{session}{i}{j}", "function": {"name": n, "arguments": json.dumps(args[n])}}
                        for j, n in enumerate(names)
                    ],
                }
            )
            messages += [
                {"role": "tool", "tool_call_id": f"{session}{i}{j}", "content": "ok"} for j in range(len(names))
            ]
        messages.append({"role": "assistant", "content": answer})
        return {"messages": messages, "tools": TOOLS, "meta": {"session_id": session, "turn_id": 1}}

    # Training: Grep first twice, Read first once; after Grep always Read; after Read: Bash twice, answer once.
    train, _ = steps_from_examples(
        [turn("t1", [["Grep"], ["Read"], ["Bash"]]), turn("t2", [["Grep"], ["Read"], ["Bash"]]), turn("t3", [["Read"]])]
    )
    fitted = baselines.Baselines.fit(train)
    assert fitted.majority == ("Read",)  # Read 3 times, Grep 2, Bash 2
    assert fitted.after[baselines.START] == ("Grep",) and fitted.after[("Grep",)] == ("Read",)
    assert fitted.after[("Read",)] == ("Bash",) and fitted.arguments["Grep"] == {"pattern": "x"}
    held, _ = steps_from_examples([turn("e1", [["Grep"], ["Read"]]), turn("e2", [["Bash"], ["Edit"]])])
    predicted = [
        baselines.signature({"role": "assistant", **_as_message(fitted.predict("previous_tool", s))}) for s in held
    ]
    # e1: start->Grep (right), Grep->Read (right), Read->Bash (Claude answered); e2: start->Grep (Claude ran
    # Bash), Bash->answer as in training (Claude edited), Edit never seen in training: the majority, Read.
    assert predicted == [("Grep",), ("Read",), ("Bash",), ("Grep",), (), ("Read",)]
    reports = baselines.evaluate(fitted, held)
    assert (reports["previous_tool"]["strict"]["tool_name_accuracy"]["k"], reports["previous_tool"]["call_steps"]) == (
        2,
        4,
    )
    assert reports["majority"]["strict"]["tool_name_accuracy"]["k"] == 1  # always Read: right once
    assert reports["majority"]["train_steps"] == len(train) == 10


def _as_message(text):
    action = toolcalls.parse_action(text)
    return {
        "content": action.text,
        "tool_calls": [{"function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in action.calls],
    }


def test_leakage_check_warns_about_steps_and_actions_seen_in_training():
    from cra.eval import leakage

    steps, _ = steps_from_examples(EXAMPLES)
    renamed = json.loads(json.dumps(EXAMPLES[0]).replace('"c1"', '"other-id"'))  # same step, other call ids
    renamed["meta"] = {"session_id": "s9", "turn_id": 9}
    train, _ = steps_from_examples([renamed])
    result = leakage.check(steps, train)
    assert result["same_step"]["k"] == 4 and result["same_action"]["k"] == 4 and result["same_step"]["n"] == 6
    assert any("not held out" in w for w in result["warnings"]) and any("baselines" in w for w in result["warnings"])
    clean = leakage.check(steps[4:], train)
    assert clean["same_step"]["k"] == 0 and clean["warnings"] == []
