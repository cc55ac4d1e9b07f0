"""`cra dataset build`: example format, filters, splits, dedup, truncation, budget, redaction end to end."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dataset_db import Session, answer, good_steps, new_db

from cra.cli import cli
from cra.dataset.build import BuildOptions, DatasetBuilder, in_eval, to_sharegpt, truncate
from cra.dataset.filters import TurnFilters

PLANTED = Path(__file__).parent / "fixtures" / "secrets" / "planted.jsonl"


def written_text(path):
    """Everything a file says, with tool arguments (JSON inside JSON) decoded too."""
    if path.suffix != ".jsonl":
        return path.read_text()
    parts = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        parts.append(json.dumps(row, ensure_ascii=False))
        for m in row.get("messages", []):
            parts += [m.get("content") or "", m.get("reasoning") or ""]
            for tc in m.get("tool_calls") or ():
                parts += _strings(json.loads(tc["function"]["arguments"]))
    return "\n".join(parts)


def _strings(obj):
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def build(db, out, **kw):
    opts = BuildOptions(**kw)
    summary = DatasetBuilder(db, opts).build(str(out))
    rows = {
        split: [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        for split in ("train", "eval")
    }
    return summary, rows


@pytest.fixture
def db(tmp_path):
    return new_db(tmp_path / "cra.db")


def test_openai_format_carries_real_tool_calls(db, tmp_path):
    s = Session(db, "s1")
    s.turn("Find main and explain it.", good_steps(), answer())
    summary, rows = build(db, tmp_path / "out", eval_fraction=0)
    (ex,) = rows["train"]
    assert isinstance(ex["tools"], str)
    tools = json.loads(ex["tools"])
    assert {t["function"]["name"] for t in tools} >= {"Bash", "Grep", "Read"}
    roles = [m["role"] for m in ex["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    first = ex["messages"][2]
    assert first["content"] == "Let me look around."
    assert first["reasoning"] == "I should list files and grep in parallel."
    assert [tc["function"]["name"] for tc in first["tool_calls"]] == ["Bash", "Grep"]  # parallel: one message
    for tc in first["tool_calls"]:
        assert tc["type"] == "function" and tc["id"].startswith("toolu_")
        assert isinstance(tc["function"]["arguments"], str)
        json.loads(tc["function"]["arguments"])
    assert [m["tool_call_id"] for m in ex["messages"][3:5]] == [tc["id"] for tc in first["tool_calls"]]
    assert ex["messages"][3]["content"] == "a.py\nb.py (x)"
    assert ex["messages"][-1] == {"role": "assistant", "content": answer()}
    assert summary["train_examples"] == 1 and summary["eval_examples"] == 0


def test_thinking_omitted_and_used_tools_only(db, tmp_path):
    Session(db, "s1").turn("Find main.", good_steps(), answer())
    _, rows = build(db, tmp_path / "out", eval_fraction=0, thinking="omit", tools="used", system="none")
    (ex,) = rows["train"]
    assert not any("reasoning" in m for m in ex["messages"])
    assert ex["messages"][0]["role"] == "user"
    assert sorted(t["function"]["name"] for t in json.loads(ex["tools"])) == ["Bash", "Grep", "Read"]


def test_recorded_tool_schemas_win_and_mcp_tools_are_described_from_inputs(db, tmp_path):
    recorded = [
        {
            "name": "Read",
            "description": "RECORDED read",
            "input_schema": {"$schema": "x", "type": "object", "properties": {"file_path": {"type": "string"}}},
        },
        {"name": "DeferredToolPlaceholder", "description": "", "input_schema": {}},
    ]
    s = Session(db, "s1", tools=recorded, system="You are the recorded system prompt.")
    steps = good_steps() + [("", [("mcp__db__query", {"sql": "select 1", "limit": 5}, "1", "success")])]
    s.turn("q", steps, answer())
    Session(db, "s2").turn("q2", [("", [("mcp__db__query", {"sql": "select 2"}, "2", "success")])], "short")
    _, rows = build(db, tmp_path / "out", eval_fraction=0, system="recorded")
    (ex,) = rows["train"]
    tools = {t["function"]["name"]: t["function"] for t in json.loads(ex["tools"])}
    assert tools["Read"]["description"] == "RECORDED read"
    assert "$schema" not in tools["Read"]["parameters"]
    assert "DeferredToolPlaceholder" not in tools
    assert tools["Bash"]["description"].startswith("Executes a bash command")  # built-in: used, not recorded
    mcp = tools["mcp__db__query"]["parameters"]
    assert mcp["properties"] == {"sql": {"type": "string"}, "limit": {"type": "integer"}}
    assert mcp["required"] == ["sql"]  # `limit` was missing from one observed call
    assert ex["messages"][0]["content"] == "You are the recorded system prompt."


def test_filters_report_what_each_removed(db, tmp_path):
    s = Session(db, "s1")
    s.turn("good", good_steps(), answer())
    s.turn("too few", good_steps()[1:], answer())
    s.turn("short", good_steps(), "Done.")
    s.turn("interrupted", good_steps(), answer(), outcome="interrupted")
    failing = (
        [("", [("Bash", {"command": "make"}, "error", "failure")])]
        + good_steps()[1:]
        + [("", [("Grep", {"pattern": "x"}, "", "success")])]
    )
    s.turn("unrecovered", failing, answer())
    recovered = [("", [("Bash", {"command": "make"}, "error", "failure")])] + good_steps()
    s.turn("recovered", recovered, answer())
    summary, rows = build(db, tmp_path / "out", eval_fraction=0)
    assert summary["removed"]["too_few_tool_calls"] == 1
    assert summary["removed"]["short_final_answer"] == 1
    assert summary["removed"]["failed_or_interrupted"] == 1
    assert summary["removed"]["unrecovered_error"] == 1
    assert sorted(r["messages"][1]["content"] for r in rows["train"]) == ["good", "recovered"]
    # every threshold is a knob
    summary, rows = build(
        db,
        tmp_path / "out2",
        eval_fraction=0,
        filters=TurnFilters(min_tool_calls=0, min_answer_words=0, skip_failed=False, skip_unrecovered=False),
    )
    assert len(rows["train"]) == 6 and not any(summary["removed"].values())


def test_split_by_session_is_deterministic_and_synthetic_never_in_eval(db, tmp_path):
    from cra.dataset.bootstrap import store_synthetic

    sessions = []
    for i in range(30):
        s = Session(db, f"sess-{i}")
        s.turn(f"task {i}", good_steps(str(i)), answer())
        s.turn(f"task {i} again", good_steps(f"{i}b"), answer(topic=f"part {i}"))
        sessions.append(s)
    # a task notification inside a real session (turns.is_synthetic)
    sessions[0].turn("<task-notification>", good_steps("n"), answer(topic="n"), is_synthetic=1)
    store_synthetic(db, 10, seed=1)
    _, rows = build(db, tmp_path / "a", eval_fraction=0.3, seed=7)
    _, again = build(db, tmp_path / "b", eval_fraction=0.3, seed=7)
    assert rows == again
    train = {r["meta"]["session_id"] for r in rows["train"]}
    evals = {r["meta"]["session_id"] for r in rows["eval"]}
    assert train and evals and not train & evals
    assert evals == {f"sess-{i}" for i in range(30) if in_eval(f"sess-{i}", 7, 0.3)}
    assert not any(r["meta"]["synthetic"] for r in rows["eval"])
    assert sum(r["meta"]["source"] == "bootstrap" for r in rows["train"]) == 10
    # real data first: synthetic examples come after every real one
    sources = [r["meta"]["source"] for r in rows["train"]]
    assert sources == sorted(sources, key=lambda s: s == "bootstrap")
    _, other = build(db, tmp_path / "c", eval_fraction=0.3, seed=8)
    assert {r["meta"]["session_id"] for r in other["eval"]} != evals


def test_exact_duplicates_are_removed(db, tmp_path):
    for sid in ("s1", "s2"):
        Session(db, sid).turn("same prompt", good_steps(), answer())
    summary, rows = build(db, tmp_path / "out", eval_fraction=0)
    assert len(rows["train"]) == 1 and summary["removed"]["duplicate"] == 1


def test_long_outputs_truncated_with_head_tail_and_marker(db, tmp_path):
    big = "HEAD-" + "x" * 20000 + "-TAIL"
    steps = good_steps()
    steps[1] = ("Reading.", [("Read", {"file_path": "/home/user/proj/big.txt"}, big, "success")])
    Session(db, "s1").turn("read big", steps, answer())
    summary, rows = build(db, tmp_path / "out", eval_fraction=0, max_tool_output_chars=1000)
    content = rows["train"][0]["messages"][6]["content"]
    assert content.startswith("HEAD-") and content.endswith("-TAIL")
    assert "[... cra truncated 19010 characters of tool output ...]" in content
    assert summary["truncated_tool_outputs"] == 1
    text, cut = truncate("abc", 10)
    assert text == "abc" and not cut


def test_token_budget_shrinks_then_drops(db, tmp_path):
    steps = good_steps()
    steps[1] = ("Reading.", [("Read", {"file_path": "/home/user/proj/big.txt"}, "y" * 8000, "success")])
    Session(db, "s1").turn("big", steps, answer())
    summary, rows = build(db, tmp_path / "fits", eval_fraction=0, tools="used", max_tokens=2500)
    assert summary["shrunk_to_fit_budget"] == 1 and summary["tokens"]["max"] <= 2500
    assert summary["shrunk"] == {"context": 0, "tool_outputs": 1, "tool_schemas": 0}
    summary, rows = build(db, tmp_path / "drops", eval_fraction=0, tools="used", max_tokens=256)
    assert summary["removed"]["over_token_budget"] == 1 and not rows["train"]


def test_per_step_examples_and_context_turns(db, tmp_path):
    s = Session(db, "s1")
    s.turn("first", good_steps("1"), answer(topic="first"))
    s.turn("second", good_steps("2"), answer(topic="second"))
    _, rows = build(db, tmp_path / "out", eval_fraction=0, unit="step", context_turns=1)
    assert len(rows["train"]) == 6  # 3 assistant messages per turn
    for ex in rows["train"]:
        assert ex["messages"][-1]["role"] == "assistant"
    second = [r for r in rows["train"] if r["meta"]["turn_id"] == 2]
    assert [m["content"] for m in second[0]["messages"][1:4]] == ["first", answer(topic="first"), "second"]


def test_sharegpt_format(db, tmp_path):
    Session(db, "s1").turn("Find main.", good_steps(), answer())
    _, rows = build(db, tmp_path / "out", eval_fraction=0, format="sharegpt")
    (ex,) = rows["train"]
    froms = [c["from"] for c in ex["conversations"]]
    assert froms == ["human", "function_call", "observation", "function_call", "observation", "gpt"]
    parallel = json.loads(ex["conversations"][1]["value"])
    assert [c["name"] for c in parallel] == ["Bash", "Grep"] and parallel[0]["arguments"] == {"command": "ls x"}
    assert json.loads(ex["conversations"][2]["value"]) == ["a.py\nb.py (x)", "a.py:1:def main():"]
    assert ex["system"].startswith("You are Claude Code")
    assert {t["name"] for t in json.loads(ex["tools"])} >= {"Bash", "Read"}
    assert to_sharegpt(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tools": "[]"}
    )["conversations"] == [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]


def test_planted_secrets_never_reach_the_written_dataset(db, tmp_path):
    """Every planted secret, in prompts, tool inputs and tool outputs, through the whole builder."""
    entries = [json.loads(line) for line in PLANTED.read_text().splitlines()]
    s = Session(db, "secrets")
    for e in entries:
        steps = good_steps(str(e["id"]))
        prompt = f"task {e['id']}"
        if e["where"] == "prompt":
            prompt = e["text"]
        elif e["where"] == "tool_input":
            steps.append(("", [("Bash", {"command": e["text"]}, "ok", "success")]))
        elif e["where"] == "structured":
            steps.append(("", [(e["tool"], json.loads(e["text"]), "connected", "success")]))
        else:
            steps.append(("", [("Bash", {"command": "cat config"}, e["text"], "success")]))
        s.turn(prompt, steps, answer(topic=f"item {e['id']}"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["dataset", "build", "-d", str(tmp_path / "cra.db"), "-o", str(out), "--eval-fraction", "0", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["train_examples"] == len(entries)
    written = "".join(written_text(out / n) for n in ("train.jsonl", "eval.jsonl", "README.md"))
    leaked = [e["id"] for e in entries if e["secret"] in written]
    assert leaked == []
    assert sum(summary["redactions"].values()) >= len(entries)
    assert "## Redaction" in (out / "README.md").read_text()
    # the check above would catch a leak: without redaction the secrets are there
    raw = tmp_path / "raw"
    CliRunner().invoke(
        cli,
        ["dataset", "build", "-d", str(tmp_path / "cra.db"), "-o", str(raw), "--eval-fraction", "0", "--no-redact"],
        catch_exceptions=False,
    )
    raw_text = written_text(raw / "train.jsonl")
    assert all(e["secret"] in raw_text for e in entries)
    assert "**Off**" in (raw / "README.md").read_text()


def test_cli_records_dataset_row_and_card(db, tmp_path):
    Session(db, "s1").turn("Find main.", good_steps(), answer())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["dataset", "build", "-d", str(tmp_path / "cra.db"), "-o", str(out), "--name", "mine", "--eval-fraction", "0"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "1 train, 0 eval" in result.output
    row = next(db["datasets"].rows_where("name = ?", ["mine"]))
    assert row["kind"] == "sft" and row["train_count"] == 1 and row["redacted"] == 1
    assert json.loads(row["params"])["filters"]["min_tool_calls"] == 3
    card = (out / "README.md").read_text()
    assert "| too_few_tool_calls | 0 |" in card and "Token lengths" in card
    again = CliRunner().invoke(cli, ["dataset", "build", "-d", str(tmp_path / "cra.db"), "-o", str(out)])
    assert again.exit_code == 1 and "--force" in again.output


def test_cli_warns_when_the_session_split_leaves_a_side_empty(db, tmp_path):
    for i in range(3):
        Session(db, f"s{i}").turn(f"Find main {i}.", good_steps(str(i)), answer())
    # Seeds for which every session hashes into eval, and into train, at fraction 0.25.
    all_eval = next(seed for seed in range(10000) if all(in_eval(f"s{i}", seed, 0.25) for i in range(3)))
    all_train = next(seed for seed in range(10000) if not any(in_eval(f"s{i}", seed, 0.25) for i in range(3)))
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "dataset",
            "build",
            "-d",
            str(tmp_path / "cra.db"),
            "-o",
            str(tmp_path / "a"),
            "--eval-fraction",
            "0.25",
            "--seed",
            str(all_eval),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0 and "0 train, 3 eval" in result.output
    assert "warning: the train split is empty: all 3 kept session(s)" in result.output
    assert "--eval-fraction 0 to train on everything" in result.output
    result = runner.invoke(
        cli,
        [
            "dataset",
            "build",
            "-d",
            str(tmp_path / "cra.db"),
            "-o",
            str(tmp_path / "b"),
            "--eval-fraction",
            "0.25",
            "--seed",
            str(all_train),
        ],
        catch_exceptions=False,
    )
    assert "3 train, 0 eval" in result.output and "warning: the eval split is empty" in result.output
    result = runner.invoke(
        cli,
        ["dataset", "build", "-d", str(tmp_path / "cra.db"), "-o", str(tmp_path / "c"), "--eval-fraction", "0"],
        catch_exceptions=False,
    )
    assert "warning" not in result.output


def test_cli_explains_an_empty_database(tmp_path):
    result = CliRunner().invoke(cli, ["dataset", "build", "-d", str(tmp_path / "empty.db")])
    assert result.exit_code == 1
    assert "no turns recorded yet" in result.output and "cra import" in result.output
    help_text = " ".join(CliRunner().invoke(cli, ["dataset", "build", "--help"]).output.split())
    assert "--no-redact" in help_text and "exactly as recorded" in help_text


def test_hook_only_turns_fall_back_to_tool_calls(db, tmp_path):
    """A session recorded by hooks without its transcript still yields an example."""
    tid = (
        db["turns"]
        .insert(
            {
                "session_id": "h1",
                "turn_index": 0,
                "prompt_text": "do it",
                "final_answer": answer(),
                "tool_call_count": 3,
                "outcome": "completed",
            }
        )
        .last_pk
    )
    for i, (name, resp) in enumerate(
        [
            ("Bash", {"stdout": "out", "stderr": ""}),
            ("Read", {"type": "text", "file": {"content": "filetext"}}),
            ("Glob", {"filenames": ["a.py"]}),
        ]
    ):
        db["tool_calls"].insert(
            {
                "tool_use_id": f"t{i}",
                "session_id": "h1",
                "tool_name": name,
                "tool_input": "{}",
                "tool_response": json.dumps(resp),
                "status": "success",
                "seq": i,
                "turn_id": tid,
            }
        )
    summary, rows = build(db, tmp_path / "out", eval_fraction=0)
    msgs = rows["train"][0]["messages"]
    assert [m["content"] for m in msgs if m["role"] == "tool"] == ["out", "filetext", "a.py"]
    assert rows["train"][0]["meta"]["source"] == "hooks"


def test_real_client_transcripts(tmp_path, shared_dir):
    """Transcripts of the real client (imported by the transcripts stage) become valid examples."""
    from cra.transcripts import importer

    db = new_db(tmp_path / "cra.db")
    importer.import_paths(
        db.conn, [str(p) for p in sorted((shared_dir / "fixtures" / "claude-code-2.1.328").glob("*/transcripts"))]
    )
    summary, rows = build(
        db, tmp_path / "out", eval_fraction=0, filters=TurnFilters(min_tool_calls=1, min_answer_words=1)
    )
    assert summary["train_examples"] >= 10
    tools_turn = next(r for r in rows["train"] if "[[scenario:tools]]" in r["messages"][1]["content"])
    calls = [[tc["function"]["name"] for tc in m["tool_calls"]] for m in tools_turn["messages"] if m.get("tool_calls")]
    assert ["Read", "Grep", "Glob"] in calls  # one API response with three parallel calls
    assert calls[:4] == [["Bash"], ["Read", "Grep", "Glob"], ["Write"], ["Edit"]]
    for m in tools_turn["messages"]:
        if m["role"] == "assistant" and m.get("tool_calls"):
            ids = [tc["id"] for tc in m["tool_calls"]]
            i = tools_turn["messages"].index(m)
            assert [x["tool_call_id"] for x in tools_turn["messages"][i + 1 : i + 1 + len(ids)]] == ids
    assert summary["tool_schema_sources"].get("recorded", 0) > 0
    assert any(m.get("reasoning") for m in tools_turn["messages"])


def test_secret_across_the_truncation_cut_is_redacted_whole(db, tmp_path):
    token = "ghp_" + "A1b2C3d4E5" * 4
    big = "a" * 659 + " " + token + " " + "b" * 200_000 + " AKIAABCDEFGHIJKLMNOP"
    steps = good_steps()
    steps[1] = ("Reading.", [("Read", {"file_path": "/home/user/proj/big.txt"}, big, "success")])
    Session(db, "s1").turn("read big", steps, answer())
    summary, rows = build(db, tmp_path / "out", eval_fraction=0, max_tool_output_chars=1000)
    content = rows["train"][0]["messages"][6]["content"]
    assert "ghp_" not in content and "AKIA" not in content
    assert "[REDACTED:aws_access_key_id]"[:10] in content  # the tail was redacted before it was cut
    assert f"[... cra truncated {len(big) - 1000} characters" in content


def test_dataset_commands_import_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, cra.cli, cra.dataset.commands, cra.dataset.build, cra.dataset.pairs, cra.dataset.bootstrap; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'gguf') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert "dataset" in listing and "bootstrap" in listing and "import-pairs" in listing
