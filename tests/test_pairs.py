"""Preference pairs (mined, imported, exported) and `cra bootstrap`."""

import json

import pytest
from click.testing import CliRunner
from dataset_db import Session, answer, good_steps, new_db

from cra.cli import cli
from cra.dataset.bootstrap import TEMPLATES, generate, store_synthetic
from cra.dataset.build import BuildOptions, DatasetBuilder
from cra.dataset.pairs import PairMiner, export_pairs


@pytest.fixture
def db(tmp_path):
    return new_db(tmp_path / "cra.db")


def _pairs(db, source):
    return [
        {k: json.loads(r[k]) if k in ("prompt", "chosen", "rejected") else r[k] for k in r}
        for r in db["pairs"].rows_where("source = ?", [source])
    ]


def _call(messages):
    tc = messages[0]["tool_calls"][0]["function"]
    return tc["name"], tc["arguments"]


def test_denial_correction_and_perturbed_pairs(db):
    s = Session(db, "s1")
    s.turn(
        "clean up",
        [
            (
                "Removing the build dir.",
                [("Bash", {"command": "rm -rf build"}, "The user doesn't want to proceed", "denied")],
            ),
            ("I'll only list it instead.", [("Bash", {"command": "ls build"}, "a.o", "success")]),
            ("", [("Read", {"file_path": "/home/user/proj/missing.py"}, "File does not exist.", "failure")]),
            ("", [("Glob", {"pattern": "**/*.py"}, "src/found.py", "success")]),
            ("", [("Read", {"file_path": "/home/user/proj/src/found.py"}, "1\tx = 1", "success")]),
        ],
        answer(),
    )
    added = PairMiner(db, perturbed_per_turn=2, seed=0).mine()
    assert added["denial"] == 1 and added["correction"] == 1
    assert added.get("perturbed_tool", 0) + added.get("perturbed_args", 0) == 2

    (denial,) = _pairs(db, "denial")
    assert _call(denial["rejected"]) == ("Bash", json.dumps({"command": "rm -rf build"}))
    assert _call(denial["chosen"]) == ("Bash", json.dumps({"command": "ls build"}))
    assert [m["role"] for m in denial["prompt"]] == ["system", "user"]

    (fix,) = _pairs(db, "correction")
    assert json.loads(_call(fix["rejected"])[1])["file_path"].endswith("missing.py")
    assert json.loads(_call(fix["chosen"])[1])["file_path"].endswith("found.py")
    assert fix["prompt"][-1]["role"] == "tool"  # the context ends just before the failed call

    for source in ("perturbed_tool", "perturbed_args"):
        for p in _pairs(db, source):
            chosen, rejected = _call(p["chosen"]), _call(p["rejected"])
            assert chosen != rejected
            if source == "perturbed_tool":
                assert chosen[0] != rejected[0] and chosen[1] == rejected[1]
            else:
                assert chosen[0] == rejected[0]
                try:
                    assert json.loads(rejected[1]) != json.loads(chosen[1])  # a key dropped
                except ValueError:
                    pass  # or not JSON at all
    # mining again adds nothing
    assert PairMiner(db, perturbed_per_turn=2, seed=0).mine() == {}


def test_import_pairs_cli_and_export(db, tmp_path):
    f = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Which tool reads a file?", "chosen": "Read", "rejected": "Bash with cat"},
        {
            "prompt": [{"role": "user", "content": "list files"}],
            "chosen": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "Glob", "arguments": '{"pattern": "*"}'}}
                    ],
                }
            ],
            "rejected": [{"role": "assistant", "content": "I cannot list files."}],
            "tools": [{"type": "function"}],
        },
        # TRL implicit prompt: whole conversations sharing a prefix
        {
            "chosen": [
                {"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123"},
                {"role": "assistant", "content": "Don't paste keys."},
            ],
            "rejected": [
                {"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123"},
                {"role": "assistant", "content": "Saved it."},
            ],
        },
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["import-pairs", "-d", str(tmp_path / "cra.db"), str(f)], catch_exceptions=False)
    assert result.exit_code == 0 and "Imported 3 pairs" in result.output
    again = runner.invoke(cli, ["import-pairs", "-d", str(tmp_path / "cra.db"), str(f)], catch_exceptions=False)
    assert "Imported 0 pairs" in again.output and "3 already stored" in again.output
    implicit = _pairs(db, "imported")[2]
    assert implicit["prompt"] == [rows[2]["chosen"][0]] and implicit["chosen"] == [rows[2]["chosen"][1]]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "chosen": 3, "rejected": "y"}\n')
    result = runner.invoke(cli, ["import-pairs", "-d", str(tmp_path / "cra.db"), str(bad)])
    assert result.exit_code == 1 and "line 1" in result.output and "chosen" in result.output

    out = tmp_path / "out"
    summary = export_pairs(db, str(out), eval_fraction=0)
    assert summary["train_examples"] == 3 and summary["sources"] == {"imported": 3}
    text = (out / "train.jsonl").read_text()
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz0123" not in text and "[REDACTED:openai_key]" in text
    row = json.loads(text.splitlines()[0])
    assert row["prompt"] == [{"role": "user", "content": "Which tool reads a file?"}]


def test_dataset_pairs_cli_writes_split_files_and_row(db, tmp_path):
    for i in range(8):
        Session(db, f"s{i}").turn(f"task {i}", good_steps(str(i)), answer())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["dataset", "pairs", "-d", str(tmp_path / "cra.db"), "-o", str(out), "--eval-fraction", "0.5", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["train_examples"] + summary["eval_examples"] == 8
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert not {r["meta"]["session_id"] for r in train} & {r["meta"]["session_id"] for r in evals}
    assert all(set(r) >= {"prompt", "chosen", "rejected", "tools"} for r in train + evals)
    assert db["datasets"].count == 1 and next(db["datasets"].rows)["kind"] == "pairs"


def test_cli_pairs_on_empty_database_explains(tmp_path):
    result = CliRunner().invoke(cli, ["dataset", "pairs", "-d", str(tmp_path / "e.db")])
    assert result.exit_code == 1 and "cra import-pairs" in result.output


def test_bootstrap_templates_are_valid_and_pass_default_filters(db, tmp_path):
    workflows = list(generate(10, seed=3))
    assert {t for t, _ in workflows} == set(TEMPLATES)
    assert workflows == list(generate(10, seed=3))
    for _, messages in workflows:
        ids = [tc["id"] for m in messages for tc in m.get("tool_calls") or ()]
        assert len(ids) >= 3
        assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ids
        assert len(messages[-1]["content"].split()) >= 50
    result = CliRunner().invoke(
        cli, ["bootstrap", "-d", str(tmp_path / "cra.db"), "--synthetic", "10"], catch_exceptions=False
    )
    assert "Added 10 synthetic workflows" in result.output
    assert store_synthetic(db, 10, seed=0) == (0, {})  # same seed: nothing new
    summary = DatasetBuilder(db, BuildOptions(eval_fraction=0.9)).build(str(tmp_path / "out"))
    assert summary["train_examples"] == 10 and summary["eval_examples"] == 0
    assert summary["synthetic_examples"] == 10 and not any(summary["removed"].values())
    summary = DatasetBuilder(db, BuildOptions(synthetic=False)).build(str(tmp_path / "none"))
    assert summary["train_examples"] == 0
