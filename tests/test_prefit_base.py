"""The main job's default base: a real tokenizer and template (Qwen2.5's), pre-fitted on general tool
use in that family's own format, built once per cache key (cra/testing/prefit.py: prefitted_base)."""

import json

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # builds and fits a 152k-vocabulary model

from cra import chat  # noqa: E402
from cra.testing import bases, prefit  # noqa: E402


def test_prefitted_base_is_built_in_the_family_format_once_per_key(tmp_path, llama_cpp_models, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    base = prefit.prefitted_base("qwen2.5", cache_dir=tmp_path, steps=2)
    assert base.parent == tmp_path and base.name.startswith("prefit-qwen2.5-")
    assert [p.name for p in tmp_path.iterdir()] == [base.name]  # the work directory is gone
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert chat.resolve_family(tokenizer, "auto").name == "qwen2.5"  # the real template came along
    assert AutoConfig.from_pretrained(base).vocab_size == 151936
    # What it was fitted on is the family's own tool-call syntax, the loss on the assistant's call.
    row = prefit.keyword_conversations(1, phrasing="general")[0]
    rendered = chat.render(row, chat.resolve_family(tokenizer, "auto"))
    call = json.loads(row["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert (
        '<tool_call>\n{"name": "%s", "arguments": %s}\n</tool_call>'
        % (
            row["messages"][1]["tool_calls"][0]["function"]["name"],
            json.dumps(call),
        )
        in rendered.assistant_text
    )

    # The same key: the cached directory, nothing rebuilt.
    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached base was rebuilt")

    monkeypatch.setattr(bases, "build_base", no_rebuild)
    assert prefit.prefitted_base("qwen2.5", cache_dir=tmp_path, steps=2) == base
    # Other settings: another key.
    assert prefit.prefit_cache_key("qwen2.5", {**prefit.REAL_BASE_PREFIT, "steps": 3}) != base.name.rsplit("-", 1)[1]


def test_prefitted_base_refuses_unknown_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown pre-fit settings"):
        prefit.prefitted_base("qwen2.5", cache_dir=tmp_path, step=2)
