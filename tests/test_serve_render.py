"""`cra serve`'s rendering and reading, without a model: a Messages request becomes exactly the example
`cra dataset build` wrote for the same moment of a real session; completions read back into blocks,
never into a broken tool_use; the streamed events add up to the buffered answer however the text
arrives; requests are checked as the API checks them.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cra.dataset.build import BuildOptions
from cra.serve import protocol, render
from cra.serve.answer import AnswerStream, held_back

FIXTURES = "fixtures/claude-code-2.1.328"
# Every recorded scenario of the real client (../shared): the main thread, subagents, parallel calls,
# failures, denials, compaction, slash commands, background-task notifications, a `cd` mid-turn.
SCENARIOS = [
    "basic_json",
    "compact",
    "denied",
    "denied_dontask",
    "failures",
    "hook_exit2",
    "misc_events",
    "parallel_mixed",
    "slash_command",
    "subagent",
    "subagent_sync",
    "tools",
]
GLOB = {
    "name": "Glob",
    "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_recorded_request_renders_as_its_training_example(shared_dir, tmp_path, scenario, monkeypatch):
    """The client's own API requests (recorded by the mock) against the dataset built from the same
    session's hooks and transcripts: each request, converted, is the per-step example's context."""
    from conftest import build_fixture_db

    from cra.dataset.build import DatasetBuilder
    from cra.dataset.filters import TurnFilters
    from cra.db import open_db

    monkeypatch.setenv("CRA_HOME", str(tmp_path / "home"))
    source = shared_dir / FIXTURES / scenario
    db = open_db(str(build_fixture_db(tmp_path / "cra.db", [source])))
    keep_all = TurnFilters(min_tool_calls=0, min_answer_words=0, skip_failed=False, skip_unrecovered=False)
    # No shrinking on either side (the default budget would drop unused tool schemas from long examples).
    options = BuildOptions(
        unit="step",
        eval_fraction=0,
        redact=False,
        synthetic=False,
        filters=keep_all,
        max_tool_output_chars=10**6,
        max_tokens=10**6,
    )
    DatasetBuilder(db, options).build(str(tmp_path / "ds"))
    examples = [json.loads(line) for line in open(tmp_path / "ds" / "train.jsonl")]
    contexts = {json.dumps(e["messages"][:-1], sort_keys=True): e for e in examples}
    requests = [json.loads(line) for line in open(source / "api_requests.jsonl")]
    requests = [r["body"] for r in requests if isinstance(r.get("body"), dict) and r["body"].get("messages")]
    assert requests
    for body in requests:
        served = render.request_to_example(body, options)
        key = json.dumps(served["messages"], sort_keys=True)
        assert key in contexts, json.dumps(served["messages"])[-600:]
        trained = [t["function"]["name"] for t in json.loads(contexts[key]["tools"])]
        offered = [t["function"]["name"] for t in json.loads(served["tools"])]
        # Training lists the session's tools plus any the turn called that were not offered (it knows
        # the answer); serving lists what this request offers. Subagents: training uses the session's list.
        assert set(offered) <= set(trained) and offered == [n for n in trained if n in offered]


def test_context_turns_and_the_working_directory_follow_the_dataset_options():
    body = {
        "system": [{"type": "text", "text": "Env\n - Primary working directory: /srv/app"}],
        "tools": [GLOB],
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nignore me\n</system-reminder>"},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
    }
    plain = render.request_to_example(body, BuildOptions())
    assert plain["messages"][0]["content"].endswith("\nWorking directory: /srv/app")
    assert [m["role"] for m in plain["messages"]] == ["system", "user"] and plain["messages"][1]["content"] == "second"
    with_context = render.request_to_example(body, BuildOptions(context_turns=1, system="none"))
    assert [m["content"] for m in with_context["messages"]] == ["first question", "first answer", "second"]
    recorded = render.request_to_example(body, BuildOptions(system="recorded"))
    assert recorded["messages"][0]["content"] == "Env\n - Primary working directory: /srv/app"


def test_a_conversation_too_long_for_the_model_shrinks_then_refuses():
    huge = "line\n" * 20000
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "x"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": huge}]},
        ]
    }
    fitted = render.request_to_example(body, BuildOptions(), max_tokens=2000)
    assert "[... cra truncated" in fitted["messages"][-1]["content"]  # the builder's own truncation
    with pytest.raises(render.TooLong):
        render.request_to_example({"messages": [{"role": "user", "content": huge}]}, BuildOptions(), max_tokens=300)


# -- reading completions ------------------------------------------------------------------------------------


def call(name, args):
    return '<tool_call>\n{"name": "%s", "arguments": %s}\n</tool_call>' % (name, json.dumps(args))


@pytest.mark.parametrize(
    "text, problem",
    [
        ('<tool_call>\n{"name": "Glob", "arguments": {"pattern": \n</tool_call>', "not valid JSON"),
        (call("Nope", {"pattern": "*"}), "unknown tool 'Nope'"),
        (call("Glob", {"path": "/"}), "missing required argument 'pattern'"),
        (call("Glob", {"pattern": 3}), "should be string"),
        ('<tool_call>\n{"arguments": {}}\n</tool_call>', "no tool name"),
        ('Let me look.\n<tool_call>\n{"name": "Glob", "argum', "not valid JSON"),  # cut off
    ],
)
def test_a_malformed_call_never_becomes_a_tool_use_block(text, problem):
    reading = render.read_completion(text, [GLOB])
    assert reading.tool_uses == [] and not reading.parsed
    assert problem in " ".join(reading.problems) and "cannot be used" in reading.text
    assert all(b["type"] != "tool_use" for b in reading.blocks("sig"))


def test_a_valid_answer_reads_into_thinking_text_and_tool_uses():
    text = (
        "<think>\nNeed files.\n</think>\nLooking.\n"
        + call("Glob", {"pattern": "*.md"})
        + "\n"
        + call("Glob", {"pattern": "*.py"})
    )
    reading = render.read_completion(text, [GLOB])
    assert reading.parsed and reading.thinking == "Need files." and reading.text == "Looking."
    assert [u["input"] for u in reading.tool_uses] == [{"pattern": "*.md"}, {"pattern": "*.py"}]
    assert len({u["id"] for u in reading.tool_uses}) == 2
    assert [b["type"] for b in reading.blocks("s")] == ["thinking", "text", "tool_use", "tool_use"]
    # One bad call among good ones: none run (half of a turn's calls would leave it inconsistent).
    mixed = render.read_completion(call("Glob", {"pattern": "*"}) + call("Nope", {}), [GLOB])
    assert mixed.tool_uses == [] and not mixed.parsed
    assert render.read_completion("Just an answer.", [GLOB]).blocks("s") == [
        {"type": "text", "text": "Just an answer."}
    ]


COMPLETIONS = [
    "<think>Need files.</think>\n" + call("Glob", {"pattern": "*.md"}),
    "  Looking around first.\n\n" + call("Glob", {"pattern": "*.py"}) + "\nand more text",
    "Looking.\n\n" + call("Glob", {"pattern": "*.md"}),
    "<think>\n  a\n\n</think>\n\nx  \n y \n",
    "Plain answer with <tags> and { braces }.\n",
    '{"name": "Glob", "arguments": {"pattern": "*.md"}}',
    "<think>unclosed thinking that runs out",
    '<tool_call>\n{"name": "Glob", "arguments": {"pattern": ',
    "<think> </think>" + call("Nope", {"x": 1}),
    "",
    "<thin",
    "a < b and c <tool_ d",
]


def replay(text: str, cuts: list[int], thinking: bool = True) -> tuple[dict, render.Reading, list[str]]:
    writer = protocol.EventWriter("m", 5)
    stream = AnswerStream(writer, [GLOB], thinking)
    out = writer.start()
    pieces, last = [], 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(text))) + [len(text)]:
        pieces.append(text[last:cut])
        last = cut
    for piece in pieces:
        out += stream.feed(piece)
    tail, reading, _ = stream.finish("end_turn", 9)
    reader = protocol.StreamReader()
    reader.feed(out + tail)
    names = [line[7:] for line in (out + tail).decode().splitlines() if line.startswith("event: ")]
    return reader.message, reading, names


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(COMPLETIONS), st.lists(st.integers(min_value=0, max_value=200), max_size=12), st.booleans())
def test_streamed_events_add_up_to_the_buffered_answer_however_the_text_arrives(text, cuts, thinking):
    message, reading, names = replay(text, cuts, thinking)
    buffered = render.read_completion(text, [GLOB])
    expected = buffered.blocks(protocol.SIGNATURE_PREFIX + "local")
    if not thinking:
        expected = [b for b in expected if b["type"] != "thinking"]
    got = [{k: v for k, v in b.items() if k != "id"} for b in message["content"]]
    assert got == [{k: v for k, v in b.items() if k != "id"} for b in expected]
    assert message["stop_reason"] == ("tool_use" if buffered.tool_uses else "end_turn")
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == len(expected)
    assert reading.parsed == buffered.parsed


def test_text_is_streamed_before_the_answer_ends():
    writer = protocol.EventWriter("m", 5)
    stream = AnswerStream(writer, [GLOB])
    writer.start()
    assert b"text_delta" in stream.feed("Hello there, ")  # words go out as they come
    assert stream.feed("<tool_") == b""  # maybe a call: held
    assert stream.feed('call>\n{"name"') == b""  # a call: held to the end, then read whole
    assert held_back("abc<tool_", ("<tool_call>",)) == 6 and held_back("abc", ("<tool_call>",)) == 0


# -- the API's shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, words",
    [
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "foo": 1},
            "foo: Extra inputs",
        ),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "'type'"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "temperature": 3},
            "temperature",
        ),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{}]}, "tools"),
    ],
)
def test_requests_are_refused_as_the_api_refuses_them(body, words):
    with pytest.raises(protocol.ApiError) as info:
        protocol.validate(body)
    assert info.value.status == 400 and info.value.kind == "invalid_request_error" and words in info.value.message
    assert info.value.body() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": info.value.message},
    }


def test_recorded_requests_pass_the_checks_and_carry_their_session(shared_dir):
    for path in sorted((shared_dir / FIXTURES).glob("*/api_requests.jsonl")):
        for line in open(path):
            recorded = json.loads(line)
            protocol.validate(recorded["body"])  # everything the real client sends is accepted
            headers = {k.lower(): v for k, v in recorded["headers"].items()}
            session = protocol.session_of(headers, recorded["body"])
            assert session == headers["x-claude-code-session-id"]
            # Without the header, metadata.user_id still names it.
            assert protocol.session_of({}, recorded["body"]) == session


def test_session_ids_of_older_clients_and_requests_without_one():
    assert protocol.session_of({}, {"metadata": {"user_id": "user_abc_account__session_1234-5678"}}) == "1234-5678"
    assert protocol.session_of({}, {"metadata": {"user_id": "someone"}}) is None
    assert protocol.session_of({}, {}) is None


def test_local_thinking_is_dropped_before_a_request_goes_upstream():
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "a", "signature": "cra-local:local"},
                    {"type": "text", "text": "x"},
                ],
            },
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "b", "signature": "real-signature"}]},
        ]
    }
    assert protocol.strip_local_thinking(body)
    assert body["messages"][1]["content"] == [{"type": "text", "text": "x"}]
    assert body["messages"][2]["content"][0]["signature"] == "real-signature"
    assert not protocol.strip_local_thinking(body)
