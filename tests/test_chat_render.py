"""The conversation renderer (cra/chat): each family's text against reviewed golden files and against
the real chat templates, loss masks with the real tokenizers, parsing back, and bad input.

The golden turn (tests/fixtures/chat/turn.json) is a recorded multi-step turn: text before calls, two
parallel batches, thinking on a call step and on the answer, a failing tool result. Real tokenizers and
templates come from the llama-cpp-python sdist (cra/testing/bases.py), fetched once from PyPI.
"""

import copy
import json
from pathlib import Path

import pytest

from cra import chat
from cra.errors import InputFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "chat"
TURN = json.loads((FIXTURES / "turn.json").read_text(encoding="utf-8"))
BASE_OF = {"llama3": "llama3.1", "qwen2.5": "qwen2.5", "qwen3": "qwen3"}


def hf_messages(example: dict, reasoning: bool) -> list[dict]:
    """The example as a chat template takes it: arguments as objects, reasoning as `reasoning_content`."""
    out = []
    for src in example["messages"]:
        m = {k: v for k, v in src.items() if k != "reasoning"}
        if m["role"] == "assistant":
            if m.get("tool_calls"):
                m["tool_calls"] = [
                    {**tc, "function": {**tc["function"], "arguments": json.loads(tc["function"]["arguments"])}}
                    for tc in m["tool_calls"]
                ]
            else:
                m.pop("tool_calls", None)
            if reasoning and src.get("reasoning"):
                m["reasoning_content"] = src["reasoning"]
        out.append(m)
    return out


def template_text(template: str, example: dict, reasoning: bool, add_generation_prompt=False, **kwargs) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    tools = json.loads(example["tools"]) if example.get("tools") else None
    rendered, _ = render_jinja_template(
        [hf_messages(example, reasoning)],
        tools=tools,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        bos_token="<|begin_of_text|>",
        **kwargs,
    )
    return rendered[0]


def single_calls_without_text(example: dict) -> dict:
    """What Llama 3.1's own template can show: one call per message, no text beside it, no thinking."""
    out, dropped = [], set()
    for m in copy.deepcopy(example["messages"]):
        m.pop("reasoning", None)
        if m["role"] == "assistant" and m.get("tool_calls"):
            dropped |= {tc["id"] for tc in m["tool_calls"][1:]}
            m["tool_calls"], m["content"] = m["tool_calls"][:1], ""
        if m["role"] == "tool" and m["tool_call_id"] in dropped:
            continue
        out.append(m)
    return {**example, "messages": out}


def without_thinking(example: dict) -> dict:
    out = copy.deepcopy(example)
    for m in out["messages"]:
        m.pop("reasoning", None)
    return out


# -- golden files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(chat.FAMILIES))
def test_golden_rendering_of_a_recorded_turn(family):
    """Byte for byte against the reviewed file: everything Claude did is there, in the family's syntax."""
    expected = (FIXTURES / "golden" / f"{family}.txt").read_text(encoding="utf-8")
    rendered = chat.render(TURN, chat.FAMILIES[family])
    assert rendered.text == expected
    written = rendered.assistant_text
    for m in TURN["messages"]:
        if m["role"] == "assistant":
            assert m["content"].strip() in written
            assert (m.get("reasoning") or "") in written  # thinking: native in qwen3, a <think> block elsewhere
            for tc in m.get("tool_calls") or ():
                assert json.dumps(json.loads(tc["function"]["arguments"]), ensure_ascii=False) in written
        elif len(m["content"]) > 20:  # what the user, system and tools said is shown, never learned
            assert json.dumps(m["content"])[1:-1] not in written and m["content"] not in written
    assert written.count("<think>") == 2 and "NOT PRESENT" in rendered.text  # the failing result is shown


def test_results_follow_their_calls_whatever_order_they_came_in():
    shuffled = copy.deepcopy(TURN)
    shuffled["messages"][5:8] = reversed(shuffled["messages"][5:8])  # the three parallel results
    for family in chat.FAMILIES.values():
        assert chat.render(shuffled, family).text == chat.render(TURN, family).text


# -- against the real templates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, template, reduce, reasoning",
    [
        ("llama3", "llama3.1", single_calls_without_text, False),
        ("llama3", "llama3.2", single_calls_without_text, False),
        ("llama3", "llama3.3", single_calls_without_text, False),
        ("qwen2.5", "qwen2.5", without_thinking, False),
        ("qwen3", "qwen3", lambda e: e, True),
    ],
)
def test_families_write_what_their_own_templates_write(llama_cpp_models, family, template, reduce, reasoning):
    """Wherever a family's real template can show the conversation, cra writes exactly the same text, with
    and without tools, the whole turn and every prompt before an assistant message."""
    from cra.testing.bases import real_template

    source = real_template(template)
    assert chat.detect(source) is chat.FAMILIES[family]
    example = reduce(TURN)
    for tools in (example["tools"], None):
        case = {**example, "tools": tools}
        extra = {"date_string": "26 Jul 2024"} if template == "llama3.2" else {}
        assert chat.render(case, chat.FAMILIES[family]).text == template_text(source, case, reasoning, **extra)
        for i, m in enumerate(case["messages"]):
            if m["role"] == "assistant":
                context = {**case, "messages": case["messages"][:i]}
                expected = template_text(source, context, reasoning, add_generation_prompt=True, **extra)
                assert chat.render_prompt(context["messages"], tools, chat.FAMILIES[family]) == expected


def test_cra_chatml_writes_what_its_template_writes():
    for example in (TURN, without_thinking(TURN)):
        ours = chat.render(without_thinking(example), chat.FAMILIES["chatml"]).text
        assert ours == template_text(chat.CHATML_TEMPLATE, without_thinking(example), False)


def test_llama_template_refuses_parallel_calls_cra_writes_them(llama_cpp_models):
    from cra.testing.bases import real_template

    with pytest.raises(Exception, match="only supports single tool-calls"):
        template_text(real_template("llama3.1"), without_thinking(TURN), False)
    text = chat.render(TURN, chat.FAMILIES["llama3"]).text
    assert text.count('{"name": "Bash", "parameters"') == 4  # ls, two parallel ones, cd


def test_family_detection_on_llama_cpp_templates(llama_cpp_models):
    """Exactly the families' own templates are detected; every other real template renders as itself."""
    detected = {
        p.name: family.name
        for p in sorted((llama_cpp_models / "templates").glob("*.jinja"))
        if (family := chat.detect(p.read_text(encoding="utf-8"))) is not None
    }
    assert detected == {
        "meta-llama-Llama-3.1-8B-Instruct.jinja": "llama3",
        "meta-llama-Llama-3.2-3B-Instruct.jinja": "llama3",
        "meta-llama-Llama-3.3-70B-Instruct.jinja": "llama3",
        "Qwen-Qwen2.5-7B-Instruct.jinja": "qwen2.5",
        "Qwen-Qwen3-0.6B.jinja": "qwen3",
    }
    assert chat.detect(None) is chat.FAMILIES["chatml"] and chat.detect(chat.CHATML_TEMPLATE) is chat.FAMILIES["chatml"]


# -- tokens and masks with the real tokenizers -----------------------------------------------------------------


@pytest.mark.slow  # builds the real tokenizers (seconds each)
def test_real_vocabularies_tokenize_as_llama_cpp_expects(llama_cpp_models, real_tokenizers):
    """llama.cpp ships the tokenizations its vocab files must give: ours give every one of them."""
    from cra.testing.bases import BASES

    for family in ("llama3.1", "qwen3"):
        vocab = llama_cpp_models / BASES[family].vocab
        texts = (vocab.parent / (vocab.name + ".inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
        expected = (vocab.parent / (vocab.name + ".out")).read_text(encoding="utf-8").split("\n")
        assert len(texts) > 40
        for text, ids in zip(texts, expected):
            assert real_tokenizers[family](text, add_special_tokens=False)["input_ids"] == [int(i) for i in ids.split()]


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(BASE_OF))
def test_labels_cover_exactly_what_the_assistant_wrote(real_tokenizers, family):
    tokenizer = real_tokenizers[BASE_OF[family]]
    resolved = chat.resolve_family(tokenizer, "auto")
    assert resolved is chat.FAMILIES[family]
    rendered = chat.render(TURN, resolved)
    encoded = chat.tokenize(tokenizer, rendered)
    ids, labels = encoded["input_ids"], encoded["labels"]
    # Tokenizing what is shown and what is written apart gives the tokens of the whole text here.
    assert ids == tokenizer(rendered.text, add_special_tokens=False)["input_ids"]
    learned = [t for t, label in zip(ids, labels) if label != -100]
    assert tokenizer.decode(learned) == rendered.assistant_text
    assert all(label in (-100, t) for t, label in zip(ids, labels))
    # Each of the assistant's messages is learned through its end-of-turn token, and nothing before it.
    end = tokenizer.convert_tokens_to_ids(resolved.end_of_turn[0])
    assistant_messages = sum(m["role"] == "assistant" for m in TURN["messages"])
    assert sum(1 for t, label in zip(ids, labels) if t == end and label != -100) == assistant_messages
    header = "<|start_header_id|>" if family == "llama3" else "<|im_start|>"
    assert header not in tokenizer.decode(learned)
    # Thinking is trained on: inside the labels, as the family writes it.
    for m in TURN["messages"]:
        if m.get("reasoning"):
            assert m["reasoning"] in tokenizer.decode(learned)


@pytest.mark.slow
def test_thinking_uses_qwen3_special_tokens(real_tokenizers):
    tokenizer = real_tokenizers["qwen3"]
    ids = chat.tokenize(tokenizer, chat.render(TURN, chat.FAMILIES["qwen3"]))["input_ids"]
    assert tokenizer.convert_tokens_to_ids("<think>") in ids and tokenizer.convert_tokens_to_ids("</think>") in ids


# -- parsing back ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(chat.FAMILIES))
def test_what_a_family_writes_parses_back_to_what_claude_did(family):
    rendered = chat.render(TURN, chat.FAMILIES[family])
    written = [s.text for s in rendered.segments if s.assistant]
    claude = [m for m in TURN["messages"] if m["role"] == "assistant"]
    assert len(written) == len(claude)
    for text, message in zip(written, claude):
        for end in chat.FAMILIES[family].end_of_turn:
            text = text.removesuffix(end)
        action = chat.parse_action(text)
        assert action.ok and action.reason is None
        assert action.text == message["content"].strip()
        assert [(c.name, c.arguments) for c in action.calls] == [
            (tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in message.get("tool_calls") or ()
        ]
        assert action.thinking == (message.get("reasoning") or "").strip()


def test_parse_reads_every_syntax_and_says_what_is_wrong():
    first, second = ('{"name": "Read", "parameters": {"file_path": "%s"}}' % path for path in ("a.py", "b"))
    llama = chat.parse_action(f"Two reads.\n{first}; {second}")
    assert llama.text == "Two reads." and [c.arguments["file_path"] for c in llama.calls] == ["a.py", "b"]
    tagged = chat.parse_action('<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}')
    assert tagged.names == ["Bash"] and tagged.ok
    cut = chat.parse_action('<think>\nplan\n</think>\n\n{"name": "Bash", "parameters": {"command": "l')
    assert cut.thinking == "plan" and cut.names == ["Bash"] and not cut.ok and "not valid JSON" in cut.reason
    unclosed = chat.parse_action("<think>\nstill thinking when the tokens ran out")
    assert unclosed.kind == "answer" and not unclosed.ok and "thinking not closed" in unclosed.reason
    opened_by_prompt = chat.parse_action("plan first</think>\n\nThe answer.")
    assert opened_by_prompt.thinking == "plan first" and opened_by_prompt.text == "The answer." and opened_by_prompt.ok
    prose = chat.parse_action('Use {"name": "x"} in the config.\n{"a": 1}')
    assert prose.kind == "answer" and prose.ok
    wrong = chat.parse_action('<tool_call>{"name": "Read", "arguments": ["a.py"]}</tool_call>')
    assert wrong.reason == "call 1 (Read): arguments are not a JSON object"


# -- conversations cra refuses ---------------------------------------------------------------------------------------


def _with(index, **changes):
    example = copy.deepcopy(TURN)
    example["messages"][index].update(changes)
    return example


@pytest.mark.parametrize(
    "example, says",
    [
        ({"rows": []}, "'messages' list"),
        (_with(1, role="narrator"), "role 'narrator'"),
        (_with(2, content=42), "must be text"),
        (
            _with(2, tool_calls=[{"id": "a", "function": {"name": "Bash", "arguments": "{not json"}}]),
            "arguments are not valid JSON",
        ),
        (_with(2, tool_calls=[{"id": "a", "function": {"name": "Bash", "arguments": "[1]"}}]), "must be a JSON object"),
        (_with(2, tool_calls=[{"id": "a", "function": {"arguments": "{}"}}]), "has no tool name"),
        (_with(3, tool_call_id="toolu_nobody"), "answers none of the calls"),
        ({"messages": [{"role": "tool", "tool_call_id": "x", "content": "orphan"}]}, "does not follow an assistant"),
        ({**TURN, "tools": "{not json"}, "'tools' is not valid JSON"),
        ({**TURN, "tools": {"name": "Bash"}}, "must be a list"),
    ],
)
def test_bad_conversations_are_refused_with_the_reason(example, says):
    with pytest.raises(InputFormatError, match=says):
        chat.render(example, chat.FAMILIES["qwen3"])


def test_thinking_omit_leaves_reasoning_out():
    omitted = chat.Conversation.from_example(TURN, thinking="omit")
    for name, family in chat.FAMILIES.items():
        text = chat.render(omitted, family).text
        if name == "qwen3":  # its template closes the turn's last message with an empty block
            assert text.count("<think>\n\n</think>\n\n") == 1 and "summarise for the user" not in text
        else:
            assert "<think>" not in text


# -- templates cra has no renderer for --------------------------------------------------------------------------------


def test_any_other_template_renders_as_itself_with_its_assistant_text_found():
    import re

    plain = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", chat.CHATML_TEMPLATE)
    marked = chat.TemplateFamily(chat.CHATML_TEMPLATE)
    prefixed = chat.TemplateFamily(plain)
    ours = chat.render(TURN, chat.FAMILIES["chatml"])
    by_markers = chat.render(TURN, marked)
    assert by_markers.text == ours.text and by_markers.assistant_text == ours.assistant_text
    by_prefix = chat.render(TURN, prefixed)
    assert by_prefix.text == ours.text
    assert by_prefix.assistant_text.replace("<|im_end|>\n", "<|im_end|>") == ours.assistant_text
    # Thinking reaches any template as a <think> block at the start of the message's content.
    assert "<think>\nEverything is done; summarise for the user.\n</think>\n\n" in by_prefix.assistant_text

    counting = chat.TemplateFamily("{{ messages | length }}" + plain)  # a start that changes with the length
    with pytest.raises(InputFormatError, match="prefix-consistently"):
        chat.render(TURN, counting)


def test_resolve_family_by_setting(tmp_path):
    from cra.errors import ConfigError
    from cra.testing.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    assert chat.resolve_family(tokenizer, "auto").name == "chatml"
    assert chat.resolve_family(tokenizer, "qwen3") is chat.FAMILIES["qwen3"]
    path = tmp_path / "mine.jinja"
    path.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert chat.resolve_family(tokenizer, str(path)).name == "template"
    with pytest.raises(ConfigError, match="cannot read chat template"):
        chat.resolve_family(tokenizer, str(tmp_path / "missing.jinja"))


def test_compact_tools_keep_what_a_call_must_get_right():
    tools = json.loads(TURN["tools"])
    compact = chat.compact_tools(tools)
    grep = next(t["function"] for t in compact if t["function"]["name"] == "Grep")
    assert grep["description"] == "Searches file contents with ripgrep regular expressions."
    assert grep["parameters"]["required"] == ["pattern"]
    assert grep["parameters"]["properties"]["output_mode"] == {
        "type": "string",
        "enum": ["content", "files_with_matches", "count"],
    }
    for tool in compact:
        assert all("description" not in spec for spec in tool["function"]["parameters"]["properties"].values())
    assert len(json.dumps(compact)) < 0.6 * len(json.dumps(tools))
    long = chat.compact_tools([{"name": "X", "description": "word " * 100}])[0]["description"]
    assert len(long) <= 120 and long.endswith("...")


def test_malformed_arguments_render_as_written_only_when_asked():
    """A preference pair's rejected side may be a call with broken JSON: shown as written, never refused
    there; everywhere else (datasets, training) refused with the reason."""
    broken = _with(2, tool_calls=[{"id": "a", "function": {"name": "Grep", "arguments": '{"pattern": "x'}}])
    broken["messages"][3]["tool_call_id"] = "a"
    with pytest.raises(InputFormatError, match="arguments are not valid JSON"):
        chat.Conversation.from_example(broken)
    lenient = chat.Conversation.from_example(broken, strict=False)
    assert '{"name": "Grep", "parameters": {"pattern": "x}' in chat.render(lenient, chat.FAMILIES["llama3"]).text
    assert '{"name": "Grep", "arguments": {"pattern": "x}' in chat.render(lenient, chat.FAMILIES["qwen3"]).text
    action = chat.parse_action('{"name": "Grep", "parameters": {"pattern": "x}')
    assert action.names == ["Grep"] and not action.ok
