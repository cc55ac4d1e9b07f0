"""`cra export gguf` / `cra export ollama` on the tiny model: files read back with gguf.GGUFReader,
weights checked against transformers + PEFT, refusals write nothing, exports are recorded; and, where
llama-cpp-python is installed (CI installs it), the files run in llama.cpp with the same logits."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
gguf = pytest.importorskip("gguf")

from click.testing import CliRunner  # noqa: E402

from cra.cli import cli  # noqa: E402

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (pip install 'cra[llama]'; scripts/test.sh does)"
)

pytestmark = pytest.mark.slow  # builds and exports tiny models, runs them in llama.cpp: the heavy lane

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Llama 3.1's RoPE scaling on the tiny Llama, so the rope_freqs tensor is exercised (original context
# 64: some of the 8 frequencies are scaled, some not, some smoothed).
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
CONVERSATION = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Fix the failing test in the parser module."},
    {
        "role": "assistant",
        "content": "I will run the tests.",
        "tool_calls": [{"type": "function", "function": {"name": "Bash", "arguments": {"arg": "pytest -q"}}}],
    },
    {"role": "tool", "content": "1 failed: test_parse_empty"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
        },
    }
]


# -- the tiny model, a LoRA adapter, a recorded run ---------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from cra.testing import tiny

    return tiny.build_tokenizer()


def _build(root: Path, arch: str, tokenizer, wide: bool = False, tied: bool = False) -> dict:
    """Base (weights rescaled so logits are O(1), not ~0) + a PEFT LoRA with non-zero B on every projection.

    `wide`: hidden 256, so rows fill llama.cpp's 256-wide K-quant blocks (the tiny model's 64 do not).
    `tied`: lm_head shares the embeddings (Qwen2.5-0.5B, Llama 3.2 1B): no output.weight in the GGUF."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from cra.testing import tiny

    base_dir = tiny.build_model(root / "base", arch=arch, tokenizer=tokenizer)
    if wide or tied:
        config = AutoConfig.from_pretrained(base_dir)
        if wide:
            config.hidden_size, config.intermediate_size, config.head_dim = 256, 512, 64
        config.tie_word_embeddings = tied
        model = AutoModelForCausalLM.from_config(config)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_dir)
    generator = torch.Generator().manual_seed(7)
    std = 1.2 / model.config.hidden_size**0.5
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1 + 0.1 * noise if "norm" in name else std * noise)
    model.save_pretrained(base_dir)
    if arch == "llama":
        config = json.loads((base_dir / "config.json").read_text())
        config["rope_parameters"] = LLAMA3_ROPE
        (base_dir / "config.json").write_text(json.dumps(config, indent=2))
        model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=PROJECTIONS, lora_dropout=0.0))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero: an untrained adapter would change nothing
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    adapter_dir = root / "run" / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)  # what trainer.save_model leaves beside the adapter
    merged = peft_model.merge_and_unload()
    merged.eval()
    state = {k: v.detach().float().numpy().copy() for k, v in merged.state_dict().items()}
    text = tokenizer.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][-48:]
    with torch.no_grad():
        merged_logits = merged(torch.tensor([ids])).logits[0].numpy()
        base_model = AutoModelForCausalLM.from_pretrained(base_dir)
        base_logits = base_model(torch.tensor([ids])).logits[0].numpy()
    return {
        "arch": arch,
        "base_dir": base_dir,
        "adapter_dir": adapter_dir,
        "merged_state": state,
        "ids": ids,
        "text": text,
        "merged_logits": merged_logits,
        "base_logits": base_logits,
        "config": json.loads((base_dir / "config.json").read_text()),
    }


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request, tmp_path_factory, tokenizer):
    return _build(tmp_path_factory.mktemp(request.param), request.param, tokenizer)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tokenizer):
    return _build(tmp_path_factory.mktemp("llama-only"), "llama", tokenizer)


@pytest.fixture(scope="module")
def wide_llama(tmp_path_factory, tokenizer):
    return _build(tmp_path_factory.mktemp("llama-wide"), "llama", tokenizer, wide=True)


def make_run(tiny: dict, runs_dir: Path) -> int:
    """A completed sft run as `cra train sft` records it: a runs row plus its adapter artifact."""
    from cra.db import open_db
    from cra.train import runs

    db = open_db()
    run = runs.start_run(db, kind="sft", base_model=str(tiny["base_dir"]), dataset="tiny", config={}, runs_dir=runs_dir)
    runs.record_artifact(db, run["id"], "adapter", tiny["adapter_dir"], {"base": str(tiny["base_dir"])})
    runs.finish_run(db, run["id"], "completed", metrics={"steps": 1})
    return run["id"]


def invoke(*args: str, expect_ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


# -- what the GGUF should hold, computed independently of cra's writer ----------------------------------------

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.<i>.<module...>.<weight|bias>
    return f"blk.{parts[2]}.{HF_TO_GGUF['.'.join(parts[3:-1])]}.{parts[-1]}"


def rope_pairs(w, n_heads: int):
    """HF's [first halves | second halves] per head -> llama.cpp's interleaved pairs, written out longhand."""
    import numpy as np

    rows = w.shape[0]
    head = rows // n_heads
    order = []
    for h in range(n_heads):
        for i in range(head // 2):
            order += [h * head + i, h * head + head // 2 + i]
    return w[np.array(order)]


def expected_tensors(tiny: dict) -> dict:
    config = tiny["config"]
    out = {}
    for hf, array in tiny["merged_state"].items():
        if tiny["arch"] == "llama" and ".q_proj." in hf:
            array = rope_pairs(array, config["num_attention_heads"])
        elif tiny["arch"] == "llama" and ".k_proj." in hf:
            array = rope_pairs(array, config["num_key_value_heads"])
        out[gguf_name(hf)] = array
    return out


def assert_dequantized_close(name, actual, expected, qtype):
    """Within what the type can represent: exact for f32, half an ulp-ish for f16/bf16, a block step for Q8_0/Q4_0."""
    import numpy as np

    T = gguf.GGMLQuantizationType
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    if qtype == T.F32:
        bound = 1e-5 + 0 * expected
    elif qtype == T.F16:
        bound = np.abs(expected) * 2**-11 + 1e-7
    elif qtype == T.BF16:
        bound = np.abs(expected) * 2**-8 + 1e-12
    else:
        blocks = np.abs(expected).reshape(-1, 32).max(axis=1, keepdims=True)
        step = blocks / (127 if qtype == T.Q8_0 else 8)
        bound = np.broadcast_to(step * 1.01 + 1e-6, (blocks.shape[0], 32)).reshape(expected.shape)
    worst = float((err - bound).max())
    assert worst <= 0, f"{name} ({qtype.name}): error exceeds the type's tolerance by {worst}"


def read(path: Path):
    return gguf.GGUFReader(str(path))


def field(reader, key):
    f = reader.get_field(key)
    return None if f is None else f.contents()


# -- GGUF read back ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16", "q8_0", "q4_0"])
def test_merged_gguf_reads_back_with_hf_weights(tiny, outtype, tmp_path):
    import numpy as np

    run_id = make_run(tiny, tmp_path / "runs")
    result = invoke("export", "gguf", str(run_id), "--outtype", outtype)
    path = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf" / f"merged-{outtype}.gguf"
    assert str(path) in result.output
    reader = read(path)
    config, arch = tiny["config"], tiny["arch"]

    assert field(reader, "general.architecture") == arch
    assert field(reader, "general.type") == "model"
    assert field(reader, f"{arch}.block_count") == config["num_hidden_layers"]
    assert field(reader, f"{arch}.embedding_length") == config["hidden_size"]
    assert field(reader, f"{arch}.feed_forward_length") == config["intermediate_size"]
    assert field(reader, f"{arch}.attention.head_count") == config["num_attention_heads"]
    assert field(reader, f"{arch}.attention.head_count_kv") == config["num_key_value_heads"]
    assert field(reader, f"{arch}.context_length") == config["max_position_embeddings"]
    assert field(reader, f"{arch}.rope.dimension_count") == config["hidden_size"] // config["num_attention_heads"]
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.pre") == "gpt-2"
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == config["vocab_size"]
    assert tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert field(reader, "tokenizer.ggml.eos_token_id") == 2  # <|im_end|>, the tiny tokenizer's eos
    assert len(field(reader, "tokenizer.ggml.merges")) > 1000
    template = field(reader, "tokenizer.chat_template")
    assert "<|im_start|>" in template and "endgeneration" not in template and "{%- generation" not in template

    expected = expected_tensors(tiny)
    if arch == "llama":
        expected["rope_freqs.weight"] = None  # checked below
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(expected)
    for name, tensor in tensors.items():
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))  # GGUF lists ne innermost-first
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape)
        if name == "rope_freqs.weight":
            factors = values
            continue
        assert shape == expected[name].shape, name
        if expected[name].ndim == 1:
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32, name
        assert_dequantized_close(name, values, expected[name], tensor.tensor_type)
    types = {t.tensor_type.name for t in reader.tensors}
    wanted = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0"}[outtype]
    assert wanted in types
    if arch == "llama":
        # wavelengths below 64/4 keep factor 1, above 64 get 8, in between are smoothed
        assert factors[0] == 1.0 and factors[-1] == 8.0
        assert np.any((factors > 1) & (factors < 8))


def test_adapter_gguf_holds_lora_pairs(tiny, tmp_path):
    import numpy as np
    from safetensors.numpy import load_file

    run_id = make_run(tiny, tmp_path / "runs")
    invoke("export", "gguf", str(run_id), "--adapter", "--outtype", "f32")
    out = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf"
    assert sorted(p.name for p in out.iterdir()) == ["adapter-f32.gguf", "base-f32.gguf"]
    reader = read(out / "adapter-f32.gguf")
    assert field(reader, "general.type") == "adapter"
    assert field(reader, "general.architecture") == tiny["arch"]
    assert field(reader, "adapter.type") == "lora"
    assert field(reader, "adapter.lora.alpha") == 16.0

    weights = load_file(str(tiny["adapter_dir"] / "adapter_model.safetensors"))
    config = tiny["config"]
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * len(PROJECTIONS) * config["num_hidden_layers"]
    for key, array in weights.items():
        module = key.removeprefix("base_model.model.").split(".lora_")[0]
        part = "lora_a" if ".lora_A." in key else "lora_b"
        name = gguf_name(module + ".weight") + "." + part
        tensor = tensors[name]
        values = np.asarray(tensor.data).reshape(tuple(int(n) for n in reversed(tensor.shape.tolist())))
        if part == "lora_b" and tiny["arch"] == "llama" and ".q_proj" in module:
            array = rope_pairs(array, config["num_attention_heads"])
        elif part == "lora_b" and tiny["arch"] == "llama" and ".k_proj" in module:
            array = rope_pairs(array, config["num_key_value_heads"])
        np.testing.assert_array_equal(values, array, err_msg=name)

    base = read(out / "base-f32.gguf")  # the base alone: no adapter merged in
    q = {t.name: t for t in base.tensors}["blk.0.attn_q.weight"]
    hf = load_file(str(tiny["base_dir"] / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    if tiny["arch"] == "llama":
        hf = rope_pairs(hf, config["num_attention_heads"])
    np.testing.assert_array_equal(np.asarray(q.data).reshape(hf.shape), hf)


def test_exports_are_recorded_and_listed(tiny_llama, tmp_path):
    from cra.db import open_db

    run_id = make_run(tiny_llama, tmp_path / "runs")
    invoke("export", "gguf", str(run_id), "--merged", "--adapter", "--outtype", "q8_0")
    rows = list(open_db().query("SELECT * FROM artifacts WHERE run_id = ? AND kind = 'gguf' ORDER BY id", [run_id]))
    assert [json.loads(r["meta"])["type"] for r in rows] == ["merged", "adapter", "base"]
    for row in rows:
        assert Path(row["path"]).stat().st_size == row["bytes"] > 0
        meta = json.loads(row["meta"])
        assert meta["outtype"] == "q8_0" and meta["arch"] == "llama"
    shown = invoke("runs", "show", str(run_id)).output
    for row in rows:
        assert row["path"] in shown


def test_export_by_adapter_dir_and_last(tiny_llama, tmp_path):
    out = tmp_path / "one.gguf"
    result = invoke(
        "export",
        "gguf",
        "--adapter-dir",
        str(tiny_llama["adapter_dir"]),
        "--base",
        str(tiny_llama["base_dir"]),
        "--out",
        str(out),
        "--outtype",
        "f16",
    )
    assert out.is_file() and "Not recorded" in result.output
    run_id = make_run(tiny_llama, tmp_path / "runs")
    invoke("export", "gguf", "last", "--outtype", "f16")
    assert (tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf" / "merged-f16.gguf").is_file()


# -- refusals write nothing ----------------------------------------------------------------------------------


def _copy_adapter(tiny: dict, dest: Path, edit_config=None) -> Path:
    import shutil

    shutil.copytree(tiny["adapter_dir"], dest)
    if edit_config:
        config = json.loads((dest / "adapter_config.json").read_text())
        edit_config(config)
        (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def _refused(tmp_path, adapter_dir, base_dir, *extra) -> str:
    out = tmp_path / "out"
    result = invoke(
        "export",
        "gguf",
        "--adapter-dir",
        str(adapter_dir),
        "--base",
        str(base_dir),
        "--out",
        str(out),
        "--merged",
        "--adapter",
        *extra,
        expect_ok=False,
    )
    assert result.exit_code == 1, result.output
    assert not out.exists() or not any(out.iterdir()), "a refused export wrote files"
    return result.output


@pytest.mark.parametrize(
    "key,value,words",
    [("use_dora", True, "DoRA"), ("use_rslora", True, "rsLoRA"), ("modules_to_save", ["lm_head"], "lm_head")],
)
def test_refuses_dora_rslora_saved_modules(tiny_llama, tmp_path, key, value, words):
    adapter = _copy_adapter(tiny_llama, tmp_path / "adapter", lambda c: c.update({key: value}))
    assert words in _refused(tmp_path, adapter, tiny_llama["base_dir"])


def test_refuses_added_tokens(tiny_llama, tmp_path):
    adapter = _copy_adapter(tiny_llama, tmp_path / "adapter")
    data = json.loads((adapter / "tokenizer.json").read_text())
    data["added_tokens"].append(
        {
            "id": 2048,
            "content": "<|new|>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    (adapter / "tokenizer.json").write_text(json.dumps(data))
    output = _refused(tmp_path, adapter, tiny_llama["base_dir"])
    assert "<|new|>" in output and "new tokens" in output


def test_refuses_unsupported_architecture(tiny_llama, tmp_path):
    import shutil

    base = shutil.copytree(tiny_llama["base_dir"], tmp_path / "base")
    config = json.loads((base / "config.json").read_text())
    config["architectures"] = ["GPTNeoXForCausalLM"]
    (base / "config.json").write_text(json.dumps(config))
    output = _refused(tmp_path, tiny_llama["adapter_dir"], base)
    assert "GPTNeoXForCausalLM" in output and "LlamaForCausalLM" in output


def test_refuses_adapter_quantized_below_q8(tiny_llama, tmp_path):
    assert "quantize the merged model" in _refused(
        tmp_path, tiny_llama["adapter_dir"], tiny_llama["base_dir"], "--outtype", "q4_0"
    )


def test_q4_k_m_without_llama_cpp_says_how(tiny_llama, tmp_path, monkeypatch):
    from cra.export import writer

    monkeypatch.setattr(writer, "llama_cpp_available", lambda: False)
    out = tmp_path / "out"
    result = invoke(
        "export",
        "gguf",
        "--adapter-dir",
        str(tiny_llama["adapter_dir"]),
        "--base",
        str(tiny_llama["base_dir"]),
        "--out",
        str(out),
        "--outtype",
        "q4_k_m",
        expect_ok=False,
    )
    assert result.exit_code == 1
    assert "cra[llama]" in result.output and "llama-quantize" in result.output
    assert not out.exists()


def test_failure_part_way_leaves_no_file(tiny_llama, tmp_path, monkeypatch):
    from cra.export import writer

    encoded = []
    original = writer.Planned.encode

    def failing(self, array):
        if self.name.endswith(".lora_b") and "output.weight" in encoded:
            # part-way through the second file (the adapter), after the merged model was completed
            raise OSError(28, "No space left on device")
        encoded.append(self.name)
        return original(self, array)

    monkeypatch.setattr(writer.Planned, "encode", failing)
    out = tmp_path / "out"
    result = invoke(
        "export",
        "gguf",
        "--adapter-dir",
        str(tiny_llama["adapter_dir"]),
        "--base",
        str(tiny_llama["base_dir"]),
        "--out",
        str(out),
        "--merged",
        "--adapter",
        expect_ok=False,
    )
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    assert encoded[-1].endswith(".lora_a")
    assert list(out.iterdir()) == []  # neither the finished merged file nor the partial adapter


# -- Ollama ----------------------------------------------------------------------------------------------------


def test_ollama_modelfile_and_create(tiny_llama, tmp_path, monkeypatch):
    from cra.db import open_db

    run_id = make_run(tiny_llama, tmp_path / "runs")
    gguf_dir = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf"

    # Without Ollama: the Modelfile, and the exact command to run.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke("export", "ollama", str(run_id), "--name", "tiny-agent")
    modelfile = gguf_dir / "tiny-agent.Modelfile"
    assert f"ollama create tiny-agent -f {modelfile}" in result.output
    text = modelfile.read_text()
    assert f"FROM {gguf_dir / 'merged-f16.gguf'}\n" in text and "ADAPTER" not in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert "Function signatures:" in template and "<tool_call>" in template and "{{ .Content }}" in template

    # With Ollama on PATH: it runs `ollama create NAME -f Modelfile`, reusing the GGUF files.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ollama-args"
    fake = bin_dir / "ollama"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(log)!r}, 'w').write(' '.join(sys.argv[1:]))\nprint('success')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    merged_mtime = (gguf_dir / "merged-f16.gguf").stat().st_mtime_ns
    result = invoke("export", "ollama", str(run_id), "--name", "tiny-agent", "--adapter")
    assert log.read_text() == f"create tiny-agent -f {modelfile}"
    assert "Created Ollama model tiny-agent" in result.output
    text = modelfile.read_text()
    assert f"FROM {gguf_dir / 'base-f16.gguf'}\n" in text and f"ADAPTER {gguf_dir / 'adapter-f16.gguf'}\n" in text
    assert (gguf_dir / "merged-f16.gguf").stat().st_mtime_ns == merged_mtime

    invoke("export", "ollama", str(run_id), "--name", "tiny-agent", "--adapter")  # reuses base + adapter
    rows = list(open_db().query("SELECT kind, meta FROM artifacts WHERE run_id = ? AND kind != 'adapter'", [run_id]))
    assert [r["kind"] for r in rows].count("gguf") == 3  # merged, then adapter + base once
    modelfiles = [json.loads(r["meta"]) for r in rows if r["kind"] == "modelfile"]
    assert [m["created"] for m in modelfiles] == [False, True, True]


def test_ollama_unknown_template_needs_template_file(tiny_llama, tmp_path):
    from cra.export import ollama
    from cra.export.model_files import ExportError

    with pytest.raises(ExportError, match="--template FILE"):
        ollama.template_for("{{ messages }}")
    assert ollama.template_for("<|start_header_id|>").stops[-1] == "<|eot_id|>"


# -- llama.cpp -------------------------------------------------------------------------------------------------


def _llama(path: Path, **kwargs):
    from llama_cpp import Llama

    # An f32 KV cache: llama.cpp's default f16 cache alone moves logits by ~5e-3.
    return Llama(
        model_path=str(path),
        n_ctx=256,
        logits_all=True,
        verbose=False,
        n_threads=2,
        seed=0,
        type_k=0,
        type_v=0,
        **kwargs,
    )


def _logits(llm, ids):
    import numpy as np

    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@needs_llama_cpp
def test_llama_cpp_matches_transformers(tiny, tmp_path):
    """Merged f32 logits match transformers within 1e-3; base + adapter (lora_path) matches the merged
    model; the tokenizer splits text exactly as HF's; a chat completion with tools runs."""
    import numpy as np

    run_id = make_run(tiny, tmp_path / "runs")
    invoke("export", "gguf", str(run_id), "--merged", "--adapter", "--outtype", "f32")
    out = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf"
    ids = tiny["ids"]

    merged = _llama(out / "merged-f32.gguf")
    assert merged.tokenize(tiny["text"].encode(), add_bos=False, special=True)[-len(ids) :] == ids
    diff = np.abs(_logits(merged, ids) - tiny["merged_logits"]).max()
    assert diff < 1e-3, f"merged f32 logits differ from transformers by {diff}"

    with_adapter = _llama(out / "base-f32.gguf", lora_path=str(out / "adapter-f32.gguf"))
    diff = np.abs(_logits(with_adapter, ids) - tiny["merged_logits"]).max()
    assert diff < 1e-3, f"base + adapter differs from the merged model by {diff}"
    base_only = _llama(out / "base-f32.gguf")
    assert np.abs(_logits(base_only, ids) - tiny["base_logits"]).max() < 1e-3
    assert np.abs(tiny["base_logits"] - tiny["merged_logits"]).max() > 0.1  # the adapter matters

    reply = merged.create_chat_completion(messages=CONVERSATION[:2], tools=TOOLS, max_tokens=8, temperature=0.0)
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["prompt_tokens"] > 40  # the tools block was rendered into the prompt


@needs_llama_cpp
def test_verify_flag_runs_the_files_in_llama_cpp(tiny_llama, tmp_path, monkeypatch):
    """`--verify`: every written file run in llama.cpp against transformers, the result recorded; a file
    that does not reproduce the model fails the command (here: a deliberately wrong q/k permutation)."""
    from cra.db import open_db
    from cra.export import writer

    run_id = make_run(tiny_llama, tmp_path / "runs")
    result = invoke("export", "gguf", str(run_id), "--merged", "--adapter", "--outtype", "f32", "--verify")
    assert result.output.count("  ok") == 3, result.output
    rows = list(open_db().query("SELECT meta FROM artifacts WHERE run_id = ? AND kind = 'gguf'", [run_id]))
    checks = [json.loads(r["meta"])["verified"] for r in rows]
    assert len(checks) == 3 and all(c["ok"] and c["same_tokens"] for c in checks)
    assert all(c["max_abs_diff"] < 1e-3 and c["tokens"] > 40 for c in checks)

    monkeypatch.setattr(writer, "permute_qk", lambda weights, n_head, n_head_kv=None: weights)
    result = invoke(
        "export", "gguf", str(run_id), "--outtype", "f32", "--verify", "--out", str(tmp_path / "bad"), expect_ok=False
    )
    assert result.exit_code == 1 and "MISMATCH" in result.output and "should not be trusted" in result.output


@needs_llama_cpp
def test_llama_cpp_tied_embeddings(tmp_path, tokenizer):
    import numpy as np

    tied = _build(tmp_path / "model", "qwen2", tokenizer, tied=True)
    assert tied["config"]["tie_word_embeddings"]
    out = tmp_path / "tied.gguf"
    invoke(
        "export",
        "gguf",
        "--adapter-dir",
        str(tied["adapter_dir"]),
        "--base",
        str(tied["base_dir"]),
        "--outtype",
        "f32",
        "--out",
        str(out),
    )
    assert "output.weight" not in {t.name for t in read(out).tensors}
    diff = np.abs(_logits(_llama(out), tied["ids"]) - tied["merged_logits"]).max()
    assert diff < 1e-3, f"tied-embedding export differs from transformers by {diff}"


LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501  (verbatim)


@needs_llama_cpp
def test_llama_cpp_llama3_pre_tokenizer(tiny_llama, tmp_path):
    """Llama 3's pre-tokenizer (digits in threes, unlike GPT-2's) is named so llama.cpp splits the same way."""
    import shutil

    from transformers import AutoTokenizer

    base = shutil.copytree(tiny_llama["base_dir"], tmp_path / "base")
    adapter = shutil.copytree(tiny_llama["adapter_dir"], tmp_path / "adapter")
    for directory in (base, adapter):
        data = json.loads((directory / "tokenizer.json").read_text())
        data["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        }
        (directory / "tokenizer.json").write_text(json.dumps(data))
    out = tmp_path / "llama3.gguf"
    invoke("export", "gguf", "--adapter-dir", str(adapter), "--base", str(base), "--outtype", "f32", "--out", str(out))
    assert field(read(out), "tokenizer.ggml.pre") == "llama-bpe"
    text = "Run 1234567 tests on 2026-11-21:\n\tdef   main(): return x+1  # ok<|im_end|>"
    hf = AutoTokenizer.from_pretrained(adapter)(text, add_special_tokens=False)["input_ids"]
    assert len(hf) != len(tiny_llama_tokens(tiny_llama, text))  # the regex really changes the split
    assert _llama(out).tokenize(text.encode(), add_bos=False, special=True) == hf


def tiny_llama_tokens(tiny: dict, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny["adapter_dir"])(text, add_special_tokens=False)["input_ids"]


@needs_llama_cpp
def test_llama_cpp_quantized_exports(tiny_llama, tmp_path):
    """f16 and q8_0 stay close to transformers."""
    import numpy as np

    run_id = make_run(tiny_llama, tmp_path / "runs")
    out = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf"
    ids = tiny_llama["ids"]
    expected = tiny_llama["merged_logits"]
    scale = np.abs(expected).max()
    adapter_effect = np.abs(tiny_llama["base_logits"] - expected).max()
    # llama.cpp also rounds activations (to f16, or q8_0 blocks) in these matmuls: tolerances relative
    # to the logits' scale (measured: f16 0.24%, q8_0 4.6% on this deliberately large-weighted model).
    for outtype, tolerance in (("f16", 0.005), ("q8_0", 0.1)):
        invoke("export", "gguf", str(run_id), "--outtype", outtype)
        diff = np.abs(_logits(_llama(out / f"merged-{outtype}.gguf"), ids) - expected).max()
        assert diff < tolerance * scale, f"{outtype}: logits differ by {diff} (scale {scale})"
        assert diff < adapter_effect / 2, f"{outtype}: quantization error {diff} rivals the adapter's effect"


@needs_llama_cpp
def test_llama_cpp_q4_k_m(wide_llama, tmp_path):
    """q4_k_m goes through llama.cpp's quantizer: K-quant tensors, no intermediate left, still the model."""
    import numpy as np

    run_id = make_run(wide_llama, tmp_path / "runs")
    out = tmp_path / "runs" / f"sft-{run_id:04d}" / "gguf"
    invoke("export", "gguf", str(run_id), "--outtype", "q4_k_m")
    path = out / "merged-q4_k_m.gguf"
    reader = read(path)
    assert field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_Q4_K_M
    types = {t.tensor_type.name for t in reader.tensors}
    assert "Q4_K" in types, types
    assert sorted(p.name for p in out.iterdir()) == ["merged-q4_k_m.gguf"]  # no intermediate left
    # A random model is sensitive to 4-bit noise (here q4_0 and q4_k_m both move logits by ~0.33 on
    # average, f32 by 1e-6): judge Q4_K_M against the numpy Q4_0 export of the same weights.
    expected, ids = wide_llama["merged_logits"], wide_llama["ids"]
    k_quant = np.abs(_logits(_llama(path), ids) - expected).mean()
    invoke("export", "gguf", str(run_id), "--outtype", "q4_0")
    q4_0 = np.abs(_logits(_llama(out / "merged-q4_0.gguf"), ids) - expected).mean()
    assert k_quant < 1.25 * q4_0, f"q4_k_m mean logit error {k_quant} vs q4_0 {q4_0}"
    assert k_quant < 0.5 * np.abs(wide_llama["base_logits"] - expected).mean()  # the adapter's effect survives


# -- a run trained by `cra train sft` ----------------------------------------------------------------------------


def test_export_of_a_trained_sft_run(tmp_path):
    """The real pipeline: `cra train sft` on the tiny model, then `cra export gguf last`; the merged GGUF
    holds exactly PEFT's merge of the adapter the run saved."""
    pytest.importorskip("trl")
    import numpy as np
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from cra.testing.tiny import build_model, write_dataset

    base = build_model(tmp_path / "model", arch="qwen2")
    data = write_dataset(tmp_path / "data", n_train=8, n_eval=4)
    invoke(
        "train",
        "sft",
        "--base",
        str(base),
        "--dataset",
        str(data),
        "--no-load-in-4bit",
        "--max-steps",
        "3",
        "--eval-steps",
        "3",
        "--batch-size",
        "4",
        "--grad-accum",
        "1",
        "--max-length",
        "256",
        "--learning-rate",
        "3e-2",
        "--cpu-threads",
        "1",
        "--warmup-ratio",
        "0",
    )
    result = invoke("export", "gguf", "last", "--merged", "--adapter", "--outtype", "f32")
    from cra.db import open_db

    (run,) = open_db().query("SELECT id, output_dir FROM runs")
    out = Path(run["output_dir"]) / "gguf"
    assert f"Recorded in run {run['id']}" in result.output

    adapter_dir = Path(run["output_dir"]) / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter_dir).merge_and_unload()
    trained = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    original = {
        k: v.detach().float().numpy() for k, v in AutoModelForCausalLM.from_pretrained(base).state_dict().items()
    }
    changed = [k for k in trained if not np.array_equal(trained[k], original[k])]
    assert changed, "training changed nothing: the test would not tell a merged export from the base"
    tensors = {t.name: t for t in read(out / "merged-f32.gguf").tensors}
    for hf, expected in trained.items():
        actual = np.asarray(tensors[gguf_name(hf)].data).reshape(expected.shape)
        np.testing.assert_allclose(actual, expected, atol=1e-5, err_msg=hf)
    adapter = read(out / "adapter-f32.gguf")
    saved = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert field(adapter, "adapter.lora.alpha") == float(saved["lora_alpha"])
    assert len(adapter.tensors) == 2 * len(saved["target_modules"]) * 2  # A and B, 2 layers
