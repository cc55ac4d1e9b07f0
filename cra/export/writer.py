"""GGUF files with the `gguf` package alone: a full model (base, optionally with a LoRA merged in) and
a LoRA adapter that llama.cpp applies at load time (`--lora`, llama-cpp-python's `lora_path`).

What llama.cpp expects, and why the code below does what it does:
- Tensor names come from gguf's own map (`model.layers.0.self_attn.q_proj.weight` -> `blk.0.attn_q.weight`).
- llama.cpp's `llama` graph applies RoPE to interleaved pairs; HF Llama rotates the two halves of each
  head. Its converter permutes q/k rows to bridge the two (k with the KV head count); so do we, and
  an adapter's B (whose rows are the output features) gets the same permutation. Qwen2 runs with
  NEOX-style RoPE in llama.cpp: no permutation.
- An adapter file has `general.type=adapter`, `adapter.type=lora`, `adapter.lora.alpha`, and per
  target `<base tensor>.lora_a` (numpy [r, in]) and `.lora_b` ([out, r]); llama.cpp scales by alpha/r
  with r read from each tensor, so a per-module alpha (PEFT's alpha_pattern) is folded into B.
- The tokenizer travels as `gpt2` BPE tokens, types and merges plus a `pre` name that selects
  llama.cpp's pre-tokenizer regex; the chat template is embedded as is (generation markers made
  neutral: they mean nothing at inference and not every runtime's Jinja knows them).

Files are streamed: header and tensor table first, then one tensor at a time, so exporting an 8B
model needs one tensor's worth of memory, not the model's. Every file is written under a temporary
name and renamed when complete: a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model_files import BaseModel, ExportError, LoraAdapter, tokenizer_dir

OUTTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m")
ADAPTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
NEEDS_LLAMA_CPP = ("q4_k_m",)

# llama.cpp's own pre-tokenizer names for the regexes HF tokenizers use (tokenizer.json's Split pattern,
# matched verbatim: kept whole on one line each so they can be compared with the tokenizer's by eye).
PRE_TOKENIZER_REGEXES = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",  # noqa: E501
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",  # noqa: E501
}
# Tokens that end an assistant turn in the chat templates cra knows; llama.cpp stops on them.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def check_outtype(outtype: str, *, adapter: bool) -> None:
    """Refuse, before any work, an outtype this machine cannot produce."""
    if adapter and outtype not in ADAPTER_OUTTYPES:
        raise ExportError(
            f"a LoRA adapter GGUF is written as {', '.join(ADAPTER_OUTTYPES)}, not {outtype}: "
            f"quantize the merged model instead (--merged --outtype {outtype})"
        )
    if outtype in NEEDS_LLAMA_CPP and not llama_cpp_available():
        raise ExportError(
            f"--outtype {outtype} needs llama.cpp's quantizer, which cra uses through llama-cpp-python: "
            "pip install 'cra[llama]' (builds llama.cpp, about 7 minutes on 2 cores). Or export --outtype f16 "
            f"and run llama.cpp's `llama-quantize model-f16.gguf model-{outtype}.gguf {outtype.upper()}`."
        )


# -- files ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it into place only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# -- tokenizer ----------------------------------------------------------------------------------------------


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    bos: int | None
    eos: int | None
    eot: int | None
    unk: int | None
    pad: int | None
    add_bos: bool
    add_eos: bool
    chat_template: str | None


def neutral_generation_markers(template: str) -> str:
    """`{% generation %}` ... `{% endgeneration %}` (TRL's assistant mask) as an always-true `if`:
    the same output, whitespace control kept, valid in any Jinja."""
    template = re.sub(r"\{%(-?)\s*generation\s*(-?)%\}", r"{%\1 if true \2%}", template)
    return re.sub(r"\{%(-?)\s*endgeneration\s*(-?)%\}", r"{%\1 endif \2%}", template)


def _pre_tokenizer_name(data: dict[str, Any], where: Path) -> str:
    pre = data.get("pre_tokenizer") or {}
    normalizer = data.get("normalizer")
    if normalizer and normalizer.get("type") != "NFC":
        raise ExportError(f"{where}: the tokenizer's {normalizer.get('type')} normalizer has no llama.cpp equivalent")
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise ExportError(f"{where}: a ByteLevel tokenizer with add_prefix_space is not supported")
        if pre.get("use_regex", True):
            return "gpt-2"
    if pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers") or []
        if (
            len(steps) == 2
            and steps[0].get("type") == "Split"
            and steps[1].get("type") == "ByteLevel"
            and not steps[1].get("use_regex", True)
            and not steps[1].get("add_prefix_space")
        ):
            regex = (steps[0].get("pattern") or {}).get("Regex")
            if regex in PRE_TOKENIZER_REGEXES:
                return PRE_TOKENIZER_REGEXES[regex]
            raise ExportError(
                f"{where}: unknown pre-tokenizer regex {regex!r}; llama.cpp would split text differently "
                "than the model was trained on"
            )
    raise ExportError(
        f"{where}: unsupported pre-tokenizer {pre.get('type')!r}: cra exports byte-level BPE tokenizers "
        "(GPT-2, Llama 3, Qwen2 style); SentencePiece tokenizers (Llama 2, Mistral) are not supported yet"
    )


def read_vocab(directory: Path, n_vocab: int) -> Vocab:
    """Everything llama.cpp needs to tokenize exactly as transformers does, or an ExportError."""
    import json

    from transformers import AutoTokenizer

    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ExportError(
            f"{directory} has no tokenizer.json (a fast tokenizer): cra exports byte-level BPE tokenizers"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError(
            f"{path}: a {model.get('type')} tokenizer{' with byte fallback' if model.get('byte_fallback') else ''} "
            "is not supported: cra exports byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2 style)"
        )
    pre = _pre_tokenizer_name(data, path)

    import gguf

    by_id: dict[int, tuple[str, int]] = {i: (t, gguf.TokenType.NORMAL) for t, i in model["vocab"].items()}
    for added in data.get("added_tokens") or []:
        kind = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[added["id"]] = (added["content"], kind)
    size = max(by_id) + 1
    if size > n_vocab:
        raise ExportError(f"the tokenizer has {size} tokens but the model's embeddings only {n_vocab} rows")
    tokens, types = [], []
    for i in range(n_vocab):  # embedding rows beyond the tokenizer are padding, never produced
        token, kind = by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED))
        tokens.append(token)
        types.append(int(kind))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    tok = AutoTokenizer.from_pretrained(str(directory))
    probe = "Hello world"
    plain = tok(probe, add_special_tokens=False)["input_ids"]
    full = tok(probe)["input_ids"]
    add_bos = tok.bos_token_id is not None and len(full) > len(plain) and full[0] == tok.bos_token_id
    add_eos = tok.eos_token_id is not None and len(full) > len(plain) and full[-1] == tok.eos_token_id
    template = tok.chat_template
    if isinstance(template, dict):  # named templates: llama.cpp reads the default one
        template = template.get("default") or next(iter(template.values()), None)
    template = neutral_generation_markers(template) if template else None
    known = {token for token, _ in by_id.values()}
    eot = next(
        (tok.convert_tokens_to_ids(t) for t in END_OF_TURN_TOKENS if template and t in template and t in known), None
    )
    return Vocab(
        tokens=tokens,
        types=types,
        merges=merges,
        pre=pre,
        bos=tok.bos_token_id,
        eos=tok.eos_token_id,
        eot=eot,
        unk=tok.unk_token_id,
        pad=tok.pad_token_id,
        add_bos=bool(add_bos),
        add_eos=bool(add_eos),
        chat_template=template,
    )


def _add_vocab(writer, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    for value, add in (
        (vocab.bos, writer.add_bos_token_id),
        (vocab.eos, writer.add_eos_token_id),
        (vocab.eot, writer.add_eot_token_id),
        (vocab.unk, writer.add_unk_token_id),
        (vocab.pad, writer.add_pad_token_id),
    ):
        if value is not None:
            add(value)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


# -- hyperparameters -------------------------------------------------------------------------------------------


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings from either transformers 5 (`rope_parameters`) or 4 (`rope_theta` + `rope_scaling`)."""
    merged = {**(config.get("rope_scaling") or {}), **(config.get("rope_parameters") or {})}
    merged.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    merged["rope_type"] = merged.get("rope_type") or merged.get("type") or "default"
    return merged


def head_dim(config: dict[str, Any]) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def _check_rope(config: dict[str, Any]) -> dict[str, Any]:
    rope = _rope(config)
    if rope["rope_type"] not in ("default", "linear", "llama3"):
        raise ExportError(
            f"RoPE scaling {rope['rope_type']!r} is not supported by cra export (default, linear, llama3 are)"
        )
    return rope


def _add_hparams(writer, config: dict[str, Any], rope: dict[str, Any]) -> None:
    import gguf

    n_head = config["num_attention_heads"]
    writer.add_context_length(config.get("max_position_embeddings", 4096))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    dim = head_dim(config)
    writer.add_rope_dimension_count(dim)
    if dim != config["hidden_size"] // n_head:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    writer.add_vocab_size(config["vocab_size"])
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def llama3_rope_factors(config: dict[str, Any], rope: dict[str, Any]):
    """Llama 3.1's frequency-dependent RoPE scaling as llama.cpp's `rope_freqs` tensor (its converter's formula)."""
    import numpy as np

    base = float(rope["rope_theta"])
    dim = head_dim(config)
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# -- tensors ----------------------------------------------------------------------------------------------------


def permute_qk(weights, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's convert_hf_to_gguf permutation: HF's half-split RoPE layout -> interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _qk_heads(hf_name: str, config: dict[str, Any]) -> int | None:
    """The head count to permute with for a Llama q/k tensor (weight or bias), else None."""
    n_head = config["num_attention_heads"]
    if re.search(r"\.q_proj\.(weight|bias)$", hf_name):
        return n_head
    if re.search(r"\.k_proj\.(weight|bias)$", hf_name):
        return config.get("num_key_value_heads") or n_head
    return None


@dataclass
class Planned:
    name: str  # GGUF tensor name
    shape: tuple[int, ...]  # numpy order ([rows, cols])
    qtype: Any  # gguf.GGMLQuantizationType
    produce: Callable[[], Any]  # -> float32 numpy array of `shape`

    def nbytes(self) -> int:
        import gguf

        if self.qtype == gguf.GGMLQuantizationType.F32:
            return 4 * math.prod(self.shape)
        if self.qtype == gguf.GGMLQuantizationType.F16:
            return 2 * math.prod(self.shape)
        return math.prod(gguf.quant_shape_to_byte_shape(self.shape, self.qtype))

    def encode(self, array):
        import gguf
        import numpy as np

        if tuple(array.shape) != self.shape:
            raise ExportError(f"internal error: {self.name} has shape {array.shape}, planned {self.shape}")
        if self.qtype == gguf.GGMLQuantizationType.F32:
            return np.ascontiguousarray(array, dtype=np.float32)
        if self.qtype == gguf.GGMLQuantizationType.F16:
            return np.ascontiguousarray(array, dtype=np.float16)
        return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), self.qtype)


def tensor_qtype(gguf_name: str, shape: tuple[int, ...], outtype: str):
    """The GGML type a tensor gets for an outtype: vectors stay F32 (as llama.cpp's converter does),
    rows that do not fill 32-wide blocks fall back to F16, and q4_0 keeps the embeddings and output at Q8_0."""
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) == 1 or outtype == "f32":
        return T.F32
    if outtype == "f16":
        return T.F16
    if outtype == "bf16":
        return T.BF16
    if shape[-1] % 32:
        return T.F16
    if outtype == "q4_0" and not gguf_name.startswith(("token_embd.", "output.")):
        return T.Q4_0
    return T.Q8_0


FILE_TYPES = {
    "f32": "ALL_F32",
    "f16": "MOSTLY_F16",
    "bf16": "MOSTLY_BF16",
    "q8_0": "MOSTLY_Q8_0",
    "q4_0": "MOSTLY_Q4_0",
}


def _name_map(base: BaseModel):
    import gguf

    arch = {name: enum for enum, name in gguf.MODEL_ARCH_NAMES.items()}[base.arch.gguf_arch]
    return gguf.get_tensor_name_map(arch, base.config["num_hidden_layers"])


def _gguf_name(tmap, hf_name: str, base: BaseModel) -> str:
    name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise ExportError(f"{base.ref}: tensor {hf_name} has no llama.cpp counterpart for {base.arch.gguf_arch}")
    return name


def _order(name: str):
    match = re.match(r"blk\.(\d+)\.", name)
    if match:
        return (1, int(match.group(1)), name)
    return (0 if name.startswith(("token_embd", "rope_freqs")) else 2, 0, name)


def plan_model(base: BaseModel, adapter: LoraAdapter | None, outtype: str, rope: dict[str, Any]) -> list[Planned]:
    config = base.config
    tmap = _name_map(base)
    tied = config.get("tie_word_embeddings", False)
    plan = []
    for hf_name in base.weight_files:
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # recomputed by llama.cpp / the same tensor as token_embd
        name = _gguf_name(tmap, hf_name, base)
        shape = base.shape(hf_name)
        plan.append(Planned(name, shape, tensor_qtype(name, shape, outtype), _producer(base, adapter, hf_name)))
    if rope["rope_type"] == "llama3":
        import gguf

        factors = llama3_rope_factors(config, rope)
        plan.append(
            Planned(
                gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                factors.shape,
                gguf.GGMLQuantizationType.F32,
                lambda: factors,
            )
        )
    return sorted(plan, key=lambda p: _order(p.name))


def _producer(base: BaseModel, adapter: LoraAdapter | None, hf_name: str):
    def produce():
        weight = base.tensor(hf_name)
        module = adapter.modules.get(hf_name) if adapter else None
        if adapter is not None and module is not None:
            # W' = W + (alpha / r) * B @ A, in float32: what PEFT's merge_and_unload computes
            weight = weight + module.scale * (adapter.tensor(module.key_b) @ adapter.tensor(module.key_a))
        heads = _qk_heads(hf_name, base.config) if base.arch.permute_qk else None
        if heads is not None:
            weight = permute_qk(weight, heads)
        return weight

    return produce


def plan_adapter(base: BaseModel, adapter: LoraAdapter, outtype: str) -> list[Planned]:
    tmap = _name_map(base)
    plan = []
    for hf_name, module in adapter.modules.items():
        name = _gguf_name(tmap, hf_name, base)
        out_features, in_features = base.shape(hf_name)
        shape_a, shape_b = (module.rank, in_features), (out_features, module.rank)

        def produce_a(module=module):
            return adapter.tensor(module.key_a)

        def produce_b(module=module, hf_name=hf_name):
            b = adapter.tensor(module.key_b) * (module.alpha / adapter.alpha)  # llama.cpp uses one alpha
            heads = _qk_heads(hf_name, base.config) if base.arch.permute_qk else None
            return permute_qk(b, heads) if heads is not None else b

        plan.append(Planned(name + ".lora_a", shape_a, tensor_qtype(name, shape_a, outtype), produce_a))
        plan.append(Planned(name + ".lora_b", shape_b, tensor_qtype(name, shape_b, outtype), produce_b))
    return sorted(plan, key=lambda p: _order(p.name))


def _write(path: Path, arch: str, add_metadata: Callable[[Any], None], plan: list[Planned]) -> dict[str, Any]:
    """Stream a GGUF file: metadata and tensor table, then each tensor computed and written in turn."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    try:
        add_metadata(writer)
        for item in plan:
            if item.qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                dtype = np.float32 if item.qtype == gguf.GGMLQuantizationType.F32 else np.float16
                writer.add_tensor_info(item.name, item.shape, np.dtype(dtype), item.nbytes())
            else:
                byte_shape = gguf.quant_shape_to_byte_shape(item.shape, item.qtype)
                writer.add_tensor_info(item.name, byte_shape, np.dtype(np.uint8), item.nbytes(), raw_dtype=item.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for item in plan:
            writer.write_tensor_data(item.encode(item.produce()))
        writer.flush()
    finally:
        writer.close()
    return {"tensors": len(plan), "types": sorted({p.qtype.name for p in plan})}


# -- the two kinds of file -------------------------------------------------------------------------------------


def prepare_model(base: BaseModel, adapter: LoraAdapter | None, outtype: str):
    """Everything a model export reads and checks, before any file exists (so refusals write nothing)."""
    rope = _check_rope(base.config)
    vocab = read_vocab(tokenizer_dir(base, adapter), base.config["vocab_size"])
    plan = plan_model(base, adapter, "f32" if outtype in NEEDS_LLAMA_CPP else outtype, rope)
    return rope, vocab, plan


def write_model(
    base: BaseModel,
    adapter: LoraAdapter | None,
    outtype: str,
    path: Path,
    *,
    name: str,
    prepared=None,
) -> dict[str, Any]:
    """A complete GGUF model: the base with `adapter` merged in (or the base alone when None)."""
    import gguf

    rope, vocab, plan = prepared or prepare_model(base, adapter, outtype)

    def metadata(writer):
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        _add_hparams(writer, base.config, rope)
        written_as = "f32" if outtype in NEEDS_LLAMA_CPP else outtype
        writer.add_file_type(gguf.LlamaFileType[FILE_TYPES[written_as]].value)
        if written_as.startswith("q"):
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_vocab(writer, vocab)

    with atomic_output(path) as tmp:
        if outtype in NEEDS_LLAMA_CPP:
            intermediate = tmp.with_name(tmp.name + ".f32")
            try:
                info = _write(intermediate, base.arch.gguf_arch, metadata, plan)
                quantize_with_llama_cpp(intermediate, tmp, outtype)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    intermediate.unlink()
            info["types"] = _tensor_types(tmp)
        else:
            info = _write(tmp, base.arch.gguf_arch, metadata, plan)
    return {**info, "path": str(path), "bytes": path.stat().st_size, "outtype": outtype}


def write_adapter(
    base: BaseModel, adapter: LoraAdapter, outtype: str, path: Path, *, name: str, plan=None
) -> dict[str, Any]:
    """The LoRA adapter as llama.cpp's adapter GGUF, for the base exported by `write_model(base, None, ...)`."""
    import gguf

    plan = plan or plan_adapter(base, adapter, outtype)

    def metadata(writer):
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_name(name)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(adapter.alpha))

    with atomic_output(path) as tmp:
        info = _write(tmp, base.arch.gguf_arch, metadata, plan)
    return {**info, "path": str(path), "bytes": path.stat().st_size, "outtype": outtype}


def _tensor_types(path: Path) -> list[str]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return sorted({t.tensor_type.name for t in reader.tensors})


LLAMA_FTYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


def quantize_with_llama_cpp(source: Path, dest: Path, outtype: str) -> None:
    """llama.cpp's own quantizer (K-quants have no numpy implementation in gguf-py)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_FTYPES[outtype])
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), ctypes.byref(params))
    if status != 0 or not dest.is_file():
        raise ExportError(f"llama.cpp's quantizer failed ({status}) turning {source.name} into {outtype}")
