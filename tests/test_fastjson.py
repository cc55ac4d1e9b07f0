"""claude_hooks.fastjson must be json.loads / json.dumps, minus the import cost."""

import json
import subprocess
import sys

from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_hooks import fastjson

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", json.dumps(fn(*args, **kwargs)))  # dumps: NaN == NaN for the comparison
    except (ValueError, RecursionError, TypeError) as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=500, deadline=None)
@given(value=values, ensure_ascii=st.booleans())
def test_dumps_and_loads_match_json(value, ensure_ascii):
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert fastjson.dumps(value, ensure_ascii=ensure_ascii) == text
    assert outcome(fastjson.loads, text) == outcome(json.loads, text)


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.builds(
            lambda v, pre, post: pre + json.dumps(v) + post,
            values,
            st.sampled_from(["", " ", "\n\t", "\ufeff", "x"]),
            st.sampled_from(["", " \r\n", "x", "}", "]", "{}"]),
        ),
        st.builds(lambda v, cut: json.dumps(v)[:cut], values, st.integers(0, 50)),
    )
)
def test_loads_of_anything_matches_json(text):
    assert outcome(fastjson.loads, text) == outcome(json.loads, text)


def test_edge_cases_match_json():
    for text in [
        "",
        " ",
        "nul",
        "[1,]",
        '{"a" 1}',
        "NaN",
        "-Infinity",
        "[1e999]",
        '"\\ud800"',
        '"a\x00b"',
        "[" * 50_000 + "]" * 50_000,
        "  42  ",
        "1 2",
        '{"a": 1}{"b": 2}',
        b'{"a": 1}'.decode(),
    ]:
        assert outcome(fastjson.loads, text) == outcome(json.loads, text), text
    for value in [float("nan"), float("-inf"), {1: 2, None: 3, False: 4, 2.5: 5}, "\ud800", [object]]:
        assert outcome(fastjson.dumps, value) == outcome(json.dumps, value)


def test_hook_path_does_not_import_json():
    """The point of the module: in a bare `python -S`, parsing and dumping load neither json nor re."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from claude_hooks import fastjson as f;"
        'f.dumps(f.loads(\'{"a": [1, 2.5, null, "\\\\u00e9"]}\'), ensure_ascii=False);'
        "print(f.FAST, 'json' in sys.modules, 're' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    if sys.implementation.name == "cpython":
        assert out.stdout.split() == ["True", "False", "False"]


BAD = ['{"session_id": "5e55e', "{not json", "[1, 2", '{"a": 1} x', "", "\ufeff{}", '"\\x"', "[" * 5000]


def test_errors_in_a_fresh_process_match_json():
    """In the hook, json.decoder is not imported when the C scanner meets bad input: errors must still
    come out as json's own (a fresh process per input: the first error imports json.decoder)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from claude_hooks import fastjson as f\n"
        "try:\n    f.loads(sys.argv[2]); print('ok')\n"
        "except Exception as e:\n    print(type(e).__name__, e)"
    )
    for text in BAD:
        out = subprocess.run(
            [sys.executable, "-S", "-c", code, str(REPO), text], capture_output=True, text=True, check=True
        )
        expected = outcome(json.loads, text)
        assert out.stdout.strip() == ("ok" if expected[0] == "ok" else f"{expected[0]} {expected[1]}"), text
