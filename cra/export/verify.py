"""`cra export gguf --verify`: run the exported files in llama.cpp (llama-cpp-python) and compare their
logits with transformers' on the same tokens: a tool-calling conversation rendered with the model's
own chat template.

The reference is computed in float32: the base as saved, and the base with the adapter merged by PEFT
(merge_and_unload). That means loading the base model in float32 on the CPU: cheap for small models,
about 4 bytes per parameter of memory for large ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model_files import ExportError, tokenizer_dir

# Largest max-abs logit difference accepted, relative to the largest reference logit. llama.cpp also
# rounds activations in quantized matmuls, so these are looser than the weights' own error.
RELATIVE_TOLERANCE = {"f32": 2e-4, "f16": 5e-3, "bf16": 2e-2, "q8_0": 0.1, "q4_0": 0.6, "q4_k_m": 0.6}
MAX_TOKENS = 96

SAMPLE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run a shell command and return its output.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    }
]
SAMPLE_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a coding agent working in a Python repository."},
    {"role": "user", "content": "The parser tests fail since yesterday. Find out why."},
    {
        "role": "assistant",
        "content": "Let me run them.",
        "tool_calls": [
            {"type": "function", "function": {"name": "Bash", "arguments": {"command": "pytest -q tests/"}}}
        ],
    },
    {"role": "tool", "content": "FAILED tests/test_parser.py::test_empty - IndexError: list index out of range"},
]


def sample_ids(tokenizer) -> tuple[str, list[int]]:
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            SAMPLE_CONVERSATION, tools=SAMPLE_TOOLS, tokenize=False, add_generation_prompt=True
        )
    else:
        text = "\n".join(m["content"] for m in SAMPLE_CONVERSATION)
    return text, tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_TOKENS]


def _llama_logits(model_path: str, ids: list[int], lora_path: str | None = None):
    import numpy as np
    from llama_cpp import Llama

    # f32 KV cache: the default f16 cache alone moves logits by ~5e-3, hiding what the file does.
    llm = Llama(
        model_path=model_path,
        lora_path=lora_path,
        n_ctx=len(ids) + 8,
        logits_all=True,
        verbose=False,
        type_k=0,
        type_v=0,
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)]), llm
    except Exception:
        llm.close()
        raise


def verify_files(base, adapter, written: list[dict[str, Any]], echo) -> None:
    """Add `verified` (max_abs_diff, scale, tokens, ok) to each written file's info; raise if any is off."""
    from .writer import llama_cpp_available

    if not llama_cpp_available():
        raise ExportError(
            "--verify runs the files in llama.cpp: pip install 'cra[llama]' (builds llama.cpp, ~7 minutes)"
        )
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir(base, adapter)))
    text, ids = sample_ids(tokenizer)
    echo(f"Verifying against transformers on {len(ids)} tokens of a rendered tool-calling conversation", err=True)
    by_type = {info["type"]: info for info in written}
    reference: dict[str, Any] = {}
    with torch.no_grad():
        model = AutoModelForCausalLM.from_pretrained(str(base.path), dtype=torch.float32)
        model.eval()
        if "base" in by_type:
            reference["base"] = model(torch.tensor([ids])).logits[0].numpy()
        if "merged" in by_type or "adapter" in by_type:
            from peft import PeftModel

            merged = PeftModel.from_pretrained(model, str(adapter.path)).merge_and_unload()
            reference["merged"] = merged(torch.tensor([ids])).logits[0].numpy()
        del model

    failures = []
    for info in written:
        if info["type"] == "adapter":
            if "base" not in by_type:
                echo("  adapter: not verified (no base GGUF written by this export)", err=True)
                continue
            logits, llm = _llama_logits(by_type["base"]["path"], ids, lora_path=info["path"])
            expected = reference["merged"]
        else:
            logits, llm = _llama_logits(info["path"], ids)
            expected = reference[info["type"]]
        same_tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)[: len(ids)] == ids
        llm.close()
        diff = float(np.abs(logits - expected).max())
        scale = float(np.abs(expected).max())
        ok = same_tokens and diff <= RELATIVE_TOLERANCE[info["outtype"]] * max(scale, 1.0)
        info["verified"] = {
            "max_abs_diff": diff,
            "logit_scale": scale,
            "tokens": len(ids),
            "same_tokens": same_tokens,
            "ok": ok,
        }
        what = "base + adapter" if info["type"] == "adapter" else info["type"]
        echo(
            f"  {what}: max |logit difference| {diff:.2e} (logits up to {scale:.1f})"
            + ("" if same_tokens else ", TOKENIZATION DIFFERS")
            + ("  ok" if ok else "  MISMATCH"),
            err=True,
        )
        if not ok:
            failures.append(f"{Path(info['path']).name} ({diff:.3g}{'' if same_tokens else ', tokenization differs'})")
    if failures:
        raise ExportError(
            "llama.cpp does not reproduce transformers for "
            + ", ".join(failures)
            + ": the files were written but should not be trusted; please report this with the base model's config.json"
        )
