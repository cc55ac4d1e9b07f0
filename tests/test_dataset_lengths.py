"""Lengths that fit, by default: `cra dataset build` counts tokens as training will (the base's tokenizer,
cra's rendering), its budget is SFT's --max-length, and over-budget examples shrink in the documented
order (context, tool outputs, unused tool schemas) without cutting the system prompt or a schema."""

import json
import math

import pytest
from click.testing import CliRunner
from dataset_db import Session, answer, good_steps, new_db

from cra import chat
from cra.cli import cli
from cra.dataset.build import BuildOptions, DatasetBuilder, write_card
from cra.dataset.tool_schemas import BUILTIN
from cra.train.config import SFTSettings

SYSTEM = "You are a careful agent. " * 20
# What a session offered: long descriptions, as Claude Code's own schemas have.
OFFERED = [
    {
        "name": name,
        "description": f"{name}: " + "Long guidance about when and how to use this tool. " * 30,
        "input_schema": BUILTIN[name]["function"]["parameters"],
    }
    for name in ("Bash", "Read", "Grep", "Glob", "Edit", "Write", "WebFetch", "WebSearch")
]


def build(db, out, **options):
    """Counting by estimate unless a base is given: the same numbers on every machine."""
    options = {"eval_fraction": 0, "system": "recorded", "base": None, **options}
    summary = DatasetBuilder(db, BuildOptions(**options)).build(str(out))
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    return summary, rows


@pytest.fixture
def db(tmp_path):
    db = new_db(tmp_path / "cra.db")
    s = Session(db, "s1", tools=OFFERED, system=SYSTEM)
    s.turn("first task", good_steps("1"), answer(topic="the first task"))
    steps = good_steps("2")
    steps[1] = ("Reading.", [("Read", {"file_path": "/home/user/proj/big.txt"}, "HEAD " + "y" * 12000, "success")])
    s.turn("second task", steps, answer(topic="the second task"))
    return db


def second(rows):
    return next(r for r in rows if r["meta"]["turn_id"] == 2)


def test_the_default_budget_is_sfts_default_max_length():
    assert BuildOptions().max_tokens == SFTSettings().max_length == 8192
    text = CliRunner().invoke(cli, ["dataset", "build", "--help"], terminal_width=200).output
    assert "--max-tokens" in text and "8192" in text and "compact" in text


def test_shrinking_goes_context_then_tool_outputs_then_unused_schemas(db, tmp_path):
    full, rows = build(db, tmp_path / "full", context_turns=1, max_tokens=100000)
    n = second(rows)
    assert full["shrunk_to_fit_budget"] == 0 and n["messages"][1]["content"] == "first task"
    whole = math.ceil(len(chat.render(n, chat.FAMILIES["llama3"]).text) / 3.5)

    def budget_run(name, budget):
        summary, rows = build(db, tmp_path / name, context_turns=1, max_tokens=budget)
        return summary, second(rows) if any(r["meta"]["turn_id"] == 2 for r in rows) else None

    # Just under the full size: the earlier turn given as context goes first, nothing else changes.
    summary, ex = budget_run("context", whole - 5)
    assert summary["shrunk"] == {"context": 1, "tool_outputs": 0, "tool_schemas": 0}
    assert ex["messages"][1]["content"] == "second task" and len(json.loads(ex["tools"])) == len(OFFERED)

    # Tighter: the long tool output is cut to a smaller head and tail too.
    summary, ex = budget_run("outputs", whole - 1000)
    assert summary["shrunk"]["context"] == 1 and summary["shrunk"]["tool_outputs"] == 1
    assert summary["shrunk"]["tool_schemas"] == 0
    output = next(m["content"] for m in ex["messages"] if m["role"] == "tool" and m["content"].startswith("HEAD"))
    assert "cra truncated" in output and len(output) < 4000

    # Tighter still: schemas of tools the example does not call go, the called ones stay whole.
    summary, ex = budget_run("schemas", whole - 4000)
    assert summary["shrunk"]["tool_schemas"] >= 1
    kept = {t["function"]["name"]: t for t in json.loads(ex["tools"])}
    assert {"Bash", "Grep", "Read"} <= set(kept) and len(kept) < len(OFFERED)
    assert kept["Read"]["function"]["description"] == OFFERED[1]["description"]  # never cut in half
    assert summary["tokens"]["max"] <= whole - 4000

    # The system prompt is never cut: a budget below it drops the example instead.
    summary, ex = budget_run("drops", 400)
    assert ex is None and summary["removed"]["over_token_budget"] == 2
    for name in ("context", "outputs", "schemas"):
        for row in (json.loads(line) for line in (tmp_path / name / "train.jsonl").read_text().splitlines()):
            assert row["messages"][0] == {"role": "system", "content": SYSTEM}


def test_tools_compact_and_what_each_choice_costs(db, tmp_path):
    summary, rows = build(db, tmp_path / "compact", tools="compact", max_tokens=100000)
    tools = json.loads(rows[0]["tools"])
    assert [t["function"]["name"] for t in tools] == [t["name"] for t in OFFERED]
    assert all(len(t["function"]["description"]) <= 120 for t in tools)
    costs = summary["tool_list_tokens"]
    assert costs["compact"] < costs["offered"] / 2 and costs["used"] < costs["offered"]
    write_card(str(tmp_path / "card.md"), "compact", BuildOptions(tools="compact"), summary)
    card = (tmp_path / "card.md").read_text()
    assert "Tools listed: **compact**" in card
    for mode in ("offered", "compact", "used"):
        assert f"| {mode} | {costs[mode]:g} |" in card


@pytest.mark.slow  # builds a real-vocabulary base
def test_tokens_are_counted_with_the_bases_tokenizer(db, tmp_path, llama_cpp_models):
    from transformers import AutoTokenizer

    from cra.testing.bases import build_base

    base = build_base(tmp_path / "llama31", family="llama3.1")
    summary, rows = build(db, tmp_path / "counted", base=str(base), max_tokens=100000)
    assert summary["tokens"]["counted_with"] == f"tokenizer of {base} (llama3 rendering)"
    tokenizer = AutoTokenizer.from_pretrained(base)
    lengths = sorted(chat.count_tokens(tokenizer, row, chat.FAMILIES["llama3"]) for row in rows)
    assert [summary["tokens"]["min"], summary["tokens"]["max"]] == [lengths[0], lengths[-1]]


def test_without_the_bases_tokenizer_the_estimate_says_so(db, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    summary, rows = build(db, tmp_path / "estimated", base="meta-llama/Llama-3.1-8B-Instruct", max_tokens=100000)
    assert summary["tokens"]["counted_with"].startswith("estimate (rendered characters / 3.5, llama3 rendering")
    text = chat.render(rows[0], chat.FAMILIES["llama3"]).text
    assert summary["tokens"]["max"] >= len(text) / 3.5 - 1
