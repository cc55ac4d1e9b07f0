"""Generating the model's next action for each step: HF transformers (+PEFT adapter) or llama.cpp (GGUF).

Both backends render and tokenize the prompt as the run's training did (cra.chat: the same family,
tokenizer and template), decode greedily, and stop at the end of the assistant turn, so a difference
between them is a difference in the weights, not in the prompt.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import chat
from ..errors import MissingDependencyError, StageError
from .steps import Step

# Strings that end an assistant turn in the templates cra knows (kept in step with cra/export).
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    batch_size: int = 8
    cpu_threads: int = 0
    chat_template: str = "auto"  # as in the run's config: the template the model was trained with
    max_context_tokens: int = 0  # 0: no limit; else only the prompt's last N tokens are kept

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_tokenizer(path: str, chat_template: str):
    """The tokenizer, with the run's template file (or cra's ChatML) installed as training had it;
    `chat.resolve_family(tokenizer, chat_template)` then gives the family that renders for it."""
    from transformers import AutoTokenizer

    from ..train import loading

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load a tokenizer from {path}: {exc}") from exc
    loading._pad_token(tokenizer)
    chat.resolve_family(tokenizer, chat_template)
    return tokenizer


def render_prompt(family, step: Step) -> str:
    return chat.render_prompt(step.context, step.tools, family)


def prompt_ids(tokenizer, family, step: Step) -> list[int]:
    """The step's prompt tokenized as training tokenized it (shown and written text apart)."""
    return chat.prompt_ids(tokenizer, step.context, step.tools, family)


def cut_at_end_of_turn(text: str, extra_stops: tuple[str, ...] = ()) -> str:
    """The generated text up to the first end-of-turn marker, without padding tokens."""
    cut = len(text)
    for stop in (*END_OF_TURN, *extra_stops):
        if stop and stop in text:
            cut = min(cut, text.index(stop))
    return text[:cut].replace("<|pad|>", "").strip()


def _stop_strings(tokenizer) -> tuple[str, ...]:
    return tuple(t for t in (tokenizer.eos_token, tokenizer.pad_token) if t)


class HFBackend:
    """A base model from a hub id or directory, with a PEFT adapter on top when given."""

    name = "hf"

    def __init__(self, base: str, adapter: str | None, tokenizer_path: str, settings: GenerationSettings):
        from ..train import loading

        loading.require(("torch", "transformers") + (("peft",) if adapter else ()), what="Evaluation")
        import torch
        from transformers import AutoModelForCausalLM

        if settings.cpu_threads:
            torch.set_num_threads(settings.cpu_threads)
        self.settings = settings
        self.tokenizer = load_tokenizer(tokenizer_path, settings.chat_template)
        self.family = chat.resolve_family(self.tokenizer, settings.chat_template)
        self.tokenizer.padding_side = "left"  # batched generation continues every prompt from its last token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        try:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise StageError(f"cannot load model {base!r}: {exc}") from exc
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.to(device).eval()
        self.device = device
        vocab = self.tokenizer.get_vocab()
        self.eos_ids = sorted({vocab[t] for t in (*END_OF_TURN, self.tokenizer.eos_token) if t in vocab})

    def _encode(self, step: Step) -> list[int]:
        ids = prompt_ids(self.tokenizer, self.family, step)
        limit = self.settings.max_context_tokens
        return ids[-limit:] if limit and len(ids) > limit else ids

    def generate(self, steps: list[Step]) -> list[str]:
        import torch

        prompts = [self._encode(s) for s in steps]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths pad less
        out: list[str] = [""] * len(prompts)
        pad = self.tokenizer.pad_token_id
        size = max(1, self.settings.batch_size)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                p = prompts[i]
                ids[row, width - len(p) :] = torch.tensor(p)
                mask[row, width - len(p) :] = 1
            with torch.no_grad():
                generated = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    max_new_tokens=self.settings.max_new_tokens,
                    do_sample=False,
                    eos_token_id=self.eos_ids or None,
                    pad_token_id=pad,
                )
            for row, i in enumerate(batch):
                text = self.tokenizer.decode(generated[row, width:], skip_special_tokens=False)
                out[i] = cut_at_end_of_turn(text, _stop_strings(self.tokenizer))
        return out


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppBackend:
    """An exported GGUF through llama-cpp-python: a merged model, or a base GGUF plus an adapter GGUF.

    The prompt is tokenized by the HF tokenizer and passed as token ids, so llama.cpp sees exactly the
    tokens the HF backend sees.
    """

    name = "llama.cpp"

    def __init__(self, model_path: str, lora_path: str | None, tokenizer_path: str, settings: GenerationSettings):
        if not llama_cpp_available():
            raise MissingDependencyError(
                "--backend llama.cpp needs llama-cpp-python: pip install 'cra[llama]' (it builds llama.cpp, "
                "about 7 minutes on 2 cores)"
            )
        self.settings = settings
        self.tokenizer = load_tokenizer(tokenizer_path, settings.chat_template)
        self.family = chat.resolve_family(self.tokenizer, settings.chat_template)
        self.model_path, self.lora_path = model_path, lora_path

    def _load(self, n_ctx: int):
        from llama_cpp import Llama

        # The context is sized to the longest prompt: a model's full window (128k for Llama 3.1) would
        # allocate a KV cache far larger than evaluation needs.
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "verbose": False, "seed": 0}
        if self.settings.cpu_threads:
            kwargs["n_threads"] = self.settings.cpu_threads
        if self.lora_path:
            kwargs["lora_path"] = self.lora_path
        try:
            return Llama(model_path=self.model_path, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise StageError(f"llama.cpp cannot load {self.model_path}: {exc}") from exc

    def generate(self, steps: list[Step]) -> list[str]:
        prompts = []
        for step in steps:
            ids = prompt_ids(self.tokenizer, self.family, step)
            limit = self.settings.max_context_tokens
            prompts.append(ids[-limit:] if limit and len(ids) > limit else ids)
        llm = self._load(max(len(p) for p in prompts) + self.settings.max_new_tokens + 8)
        vocab = self.tokenizer.get_vocab()
        eos = {vocab[t] for t in (*END_OF_TURN, self.tokenizer.eos_token) if t in vocab}
        out = []
        try:
            for ids in prompts:
                # Token ids out, decoded by the HF tokenizer as the HF backend does: llama.cpp's own text
                # output drops special tokens such as <tool_call>.
                new: list[int] = []
                for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
                    if token in eos or token == llm.token_eos():
                        break
                    new.append(token)
                    if len(new) >= self.settings.max_new_tokens:
                        break
                text = self.tokenizer.decode(new, skip_special_tokens=False)
                out.append(cut_at_end_of_turn(text, _stop_strings(self.tokenizer)))
        finally:
            llm.close()
        return out


def gguf_files(db, run_id: int) -> dict[str, Path]:
    """The run's exported GGUF files by type (merged, adapter, base), newest of each."""
    found: dict[str, Path] = {}
    for row in db.query(
        "SELECT path, meta FROM artifacts WHERE run_id = ? AND kind = 'gguf' ORDER BY id DESC", [run_id]
    ):
        meta = json.loads(row["meta"] or "{}")
        kind = meta.get("type")
        if kind and kind not in found and Path(row["path"]).is_file():
            found[kind] = Path(row["path"])
    return found
