"""What `cra dataset build` writes is what the training stack takes: `datasets` loads it, a real chat
template renders it (tools, tool calls, tool results), TRL's SFTTrainer trains on it."""

import json

import pytest
from dataset_db import Session, answer, good_steps, new_db

from cra.dataset.bootstrap import store_synthetic
from cra.dataset.build import BuildOptions, DatasetBuilder

datasets = pytest.importorskip("datasets")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # tokenizes and trains on built datasets: the heavy lane


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ds")
    db = new_db(tmp / "cra.db")
    for i in range(6):
        s = Session(db, f"s{i}")
        s.turn(f"task {i}", good_steps(str(i)), answer(topic=f"task {i}"))
    # MCP calls with different argument keys: Arrow must not merge them into one struct
    Session(db, "mcp").turn(
        "mcp",
        good_steps("m")
        + [
            (
                "",
                [
                    ("mcp__db__query", {"sql": "select 1"}, "1", "success"),
                    ("mcp__web__get", {"url": "https://example.com", "depth": 2}, "<html>", "success"),
                ],
            )
        ],
        answer(),
    )
    store_synthetic(db, 5, seed=0)
    out = tmp / "out"
    DatasetBuilder(db, BuildOptions(eval_fraction=0.3, seed=1)).build(str(out))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    from cra.testing.tiny import build_tokenizer

    return build_tokenizer()


def test_load_dataset_reads_the_output(built):
    ds = datasets.load_dataset("json", data_files={"train": str(built / "train.jsonl")})["train"]
    assert len(ds) >= 5
    assert set(ds.column_names) >= {"messages", "tools"}
    args = [tc["function"]["arguments"] for row in ds for m in row["messages"] for tc in (m.get("tool_calls") or [])]
    assert args and all(isinstance(a, str) for a in args)
    assert {"sql": "select 1"} in [json.loads(a) for a in args]


def test_chat_template_renders_tools_calls_and_results(built, tokenizer):
    rows = [json.loads(line) for line in (built / "train.jsonl").read_text().splitlines()][:4]
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False)
        assert "<tool_call>" in text and "<tool_response>" in text and "# Tools" in text
        call = next(tc for m in row["messages"] for tc in m.get("tool_calls") or ())
        assert f'"name": "{call["function"]["name"]}"' in text
        assert row["messages"][-1]["content"] in text
        mask = tokenizer.apply_chat_template(
            row["messages"],
            tools=json.loads(row["tools"]),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        assert 0 < sum(mask["assistant_masks"]) < len(mask["input_ids"])


def test_sft_trainer_accepts_and_trains(built, tokenizer, tmp_path):
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM

    from cra.testing.tiny import build_model

    model_dir = build_model(tmp_path / "tiny", tokenizer=tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ds = datasets.load_dataset("json", data_files={"train": str(built / "train.jsonl")})["train"]
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        assistant_only_loss=True,
        max_length=4096,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    assert result.training_loss > 0


def test_token_counts_with_a_real_tokenizer(tmp_path, tokenizer):
    """The build counts what training will feed the model: cra's rendering (thinking included), tokenized."""
    from cra import chat

    tokenizer.save_pretrained(tmp_path / "tok")
    db = new_db(tmp_path / "cra.db")
    Session(db, "s1").turn("task", good_steps(), answer())
    out = tmp_path / "out"
    summary = DatasetBuilder(db, BuildOptions(eval_fraction=0, tokenizer=str(tmp_path / "tok"))).build(str(out))
    row = json.loads((out / "train.jsonl").read_text())
    family = chat.resolve_family(tokenizer, "auto")
    ids = chat.tokenize_example(tokenizer, row, family)["input_ids"]
    assert summary["tokens"]["counted_with"].startswith("tokenizer") and family.name == "chatml"
    assert summary["tokens"]["max"] == len(ids)
    # The template alone drops the reasoning; what is counted (and trained) keeps it.
    template_ids = tokenizer.apply_chat_template(
        chat.TemplateFamily.openai_messages(chat.Conversation.from_example(row, thinking="omit")),
        tools=json.loads(row["tools"]),
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    assert "I should list files" in chat.render(row, family).text and len(template_ids) < len(ids)
