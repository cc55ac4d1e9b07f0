"""Test bases with real tokenizers and chat templates: a real model's vocabulary, special tokens and
template on a small randomly initialised model of the same architecture, built offline.

What a rendering, a loss mask or a token count sees of a base is its tokenizer and its template, not
its weights: a base built here behaves, for those, like the real Llama 3.1, Qwen2.5 or Qwen3 Instruct.
Tests and the main job train on these, so what is tested is what a user's real base sees.

Where the real files come from, without a model hub: the llama-cpp-python source distribution (on
PyPI; the `llama` extra's package) ships llama.cpp's vocab-only GGUF files of real tokenizers
(`vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf` is Llama 3's, `ggml-vocab-qwen2.gguf` Qwen2's,
each with `.inp`/`.out` files of expected tokenizations) and the real chat templates of many models
(`vendor/llama.cpp/models/templates/*.jinja`). `llama_cpp_files()` downloads it once with
`pip download`, keeps only the files listed in `FILES` under `~/.cache/cra/llama-cpp-python-<version>/`
(`CRA_CACHE_DIR` moves `~/.cache/cra`), and deletes the 77 MB archive.

The vocab files are Llama 3's and Qwen2's: the later models kept the same BPE and renamed or added
special tokens, which `BASES` sets to the later names and ids (Llama 3.1's `<|python_tag|>`,
`<|eom_id|>`, `<|finetune_right_pad_id|>`; Qwen2.5's `<tool_call>` ..., Qwen3's `<think>` ...).

    python -m cra.testing.bases OUT_DIR [--family llama3.1|qwen2.5|qwen3]
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MissingDependencyError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # as in constraints.txt
_MODELS = "vendor/llama.cpp/models/"
TEMPLATE_FILES = {
    "llama3.1": "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "llama3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "llama3.3": "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "qwen2.5": "Qwen-Qwen2.5-7B-Instruct.jinja",
    "qwen3": "Qwen-Qwen3-0.6B.jinja",
}
VOCAB_FILES = ("ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf")
# Every file kept from the archive (relative to vendor/llama.cpp/models/): the vocabularies with their
# expected tokenizations, and all chat templates (a few hundred kB; tests check family detection on them).
FILES = tuple(f + ext for f in VOCAB_FILES for ext in ("", ".inp", ".out")) + ("templates/",)

_LLAMA31_SPECIAL = {128004: "<|finetune_right_pad_id|>", 128008: "<|eom_id|>", 128010: "<|python_tag|>"}
_QWEN25_ADDED = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
_QWEN3_ADDED = _QWEN25_ADDED + ["<tool_response>", "</tool_response>", "<think>", "</think>"]
# Added tokens the Qwen tokenizers mark special=False: decoding keeps them (a parser needs to see them).
_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}

# Small: the vocabulary is the real one (128k-152k rows), the rest is tiny. Sizes are multiples of 32
# (bitsandbytes' 4-bit CPU path); Llama 3.1 keeps its RoPE scaling and untied head, Qwen its tied one.
SMALL = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
# Llama 3.2 1B's shape: 1.24 B parameters with the 128k vocabulary (scripts/bench_train.py --gpu).
LLAMA32_1B = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
)


@dataclass(frozen=True)
class BaseSpec:
    vocab: str
    template: str
    arch: str  # llama | qwen2 | qwen3
    vocab_size: int
    bos: str | None
    eos: str
    pad: str | None
    eos_ids: tuple[int, ...]
    renames: dict = field(default_factory=dict)  # id -> token: special tokens the later model renamed
    added: tuple[str, ...] = ()  # special tokens from the first id after the base vocabulary
    first_added: int = 0
    config: dict = field(default_factory=dict)


BASES = {
    "llama3.1": BaseSpec(
        vocab="ggml-vocab-llama-bpe.gguf",
        template=TEMPLATE_FILES["llama3.1"],
        arch="llama",
        vocab_size=128256,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,  # Llama 3.1 has none; training picks <|finetune_right_pad_id|>
        eos_ids=(128001, 128008, 128009),
        renames=_LLAMA31_SPECIAL,
        config=dict(
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            max_position_embeddings=131072,
            tie_word_embeddings=False,
            bos_token_id=128000,
        ),
    ),
    # Llama 3.2 1B's shape (with `sizes=LLAMA32_1B`): tied embeddings, RoPE scaled by 32.
    "llama3.2": BaseSpec(
        vocab="ggml-vocab-llama-bpe.gguf",
        template=TEMPLATE_FILES["llama3.2"],
        arch="llama",
        vocab_size=128256,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,
        eos_ids=(128001, 128008, 128009),
        renames=_LLAMA31_SPECIAL,
        config=dict(
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            max_position_embeddings=131072,
            tie_word_embeddings=True,
            bos_token_id=128000,
        ),
    ),
    "qwen2.5": BaseSpec(
        vocab="ggml-vocab-qwen2.gguf",
        template=TEMPLATE_FILES["qwen2.5"],
        arch="qwen2",
        vocab_size=151936,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        eos_ids=(151645, 151643),
        added=tuple(_QWEN25_ADDED),
        first_added=151643,
        config=dict(rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=True),
    ),
    "qwen3": BaseSpec(
        vocab="ggml-vocab-qwen2.gguf",
        template=TEMPLATE_FILES["qwen3"],
        arch="qwen3",
        vocab_size=151936,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        eos_ids=(151645, 151643),
        added=tuple(_QWEN3_ADDED),
        first_added=151643,
        config=dict(rope_theta=1000000.0, max_position_embeddings=40960, tie_word_embeddings=True, head_dim=16),
    ),
}


# -- the files ----------------------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("CRA_CACHE_DIR") or Path.home() / ".cache" / "cra")


def llama_cpp_files(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The directory holding llama.cpp's vocab GGUFs and `templates/`, downloaded and extracted once."""
    target = cache_root() / f"llama-cpp-python-{version}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".llama-cpp-python-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test processes download once
        if (target / ".complete").is_file():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
            archive = _download_sdist(version, Path(scratch))
            staging = Path(scratch) / "files"
            _extract(archive, staging)
            (staging / ".complete").write_text(f"llama-cpp-python {version}\n")
            shutil.rmtree(target, ignore_errors=True)  # a partial copy from an interrupted run
            os.replace(staging, target)
    return target


def _download_sdist(version: str, into: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary=:all:",
        f"llama-cpp-python=={version}",
        "-d",
        str(into),
        "--quiet",
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingDependencyError(f"cannot download llama-cpp-python {version} with pip: {exc}") from exc
    archives = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if not line.startswith("WARNING")]
        raise MissingDependencyError(
            f"cannot download the llama-cpp-python {version} source distribution (real tokenizers and chat "
            f"templates come from it): `{' '.join(command[2:])}` failed: {' '.join(lines[-3:]) or 'no archive'}. "
            "It needs access to PyPI once; the files are then kept in " + str(cache_root())
        )
    return archives[0]


def _extract(archive: Path, into: Path) -> None:
    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            _, _, rel = member.name.partition("/" + _MODELS)
            if not rel or not member.isfile():
                continue
            if not any(rel == f or (f.endswith("/") and rel.startswith(f) and "/" not in rel[len(f) :]) for f in FILES):
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            dest = into / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out)


def real_template(name: str) -> str:
    """A real chat template by family (`TEMPLATE_FILES`) or by its file name in llama.cpp's collection."""
    path = llama_cpp_files() / "templates" / TEMPLATE_FILES.get(name, name)
    return path.read_text(encoding="utf-8")


# -- GGUF vocabularies ------------------------------------------------------------------------------------

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf_metadata(path: str | os.PathLike) -> dict:
    """The key/value section of a GGUF file (a vocab-only file has nothing else).

    gguf's GGUFReader builds an object per array element: 16 s for Llama 3's 280k merges; this 0.5 s.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"GGUF":
        raise ValueError(f"{path} is not a GGUF file")
    pos = 4 + 4 + 8  # magic, version, tensor count
    (count,) = struct.unpack_from("<Q", data, pos)
    pos += 8

    def string(pos):
        (n,) = struct.unpack_from("<Q", data, pos)
        return data[pos + 8 : pos + 8 + n].decode("utf-8"), pos + 8 + n

    def value(kind, pos):
        if kind == 8:
            return string(pos)
        if kind == 9:
            elem, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if elem in _SCALARS:
                fmt = "<%d%s" % (n, _SCALARS[elem])
                return list(struct.unpack_from(fmt, data, pos)), pos + struct.calcsize(fmt)
            items = []
            for _ in range(n):
                item, pos = value(elem, pos)
                items.append(item)
            return items, pos
        fmt = "<" + _SCALARS[kind]
        return struct.unpack_from(fmt, data, pos)[0], pos + struct.calcsize(fmt)

    out = {}
    for _ in range(count):
        key, pos = string(pos)
        (kind,) = struct.unpack_from("<I", data, pos)
        out[key], pos = value(kind, pos + 4)
    return out


def pre_tokenizer_regex(pre: str) -> str:
    """The pre-tokenizer regex for llama.cpp's `tokenizer.ggml.pre` name (cra/export keeps the table)."""
    from ..export.writer import PRE_TOKENIZER_REGEXES

    for regex, name in PRE_TOKENIZER_REGEXES.items():
        if name == pre:
            return regex
    raise ValueError(f"no pre-tokenizer regex known for {pre!r}")


def build_tokenizer(family: str = "llama3.1"):
    """The family's real tokenizer (PreTrainedTokenizerFast) with its real chat template; about 2 s."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    spec = BASES[family]
    meta = read_gguf_metadata(llama_cpp_files() / spec.vocab)
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    normal = {tok: i for i, (tok, kind) in enumerate(zip(tokens, types)) if kind == 1}
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab=normal, merges=merges, ignore_merges=spec.arch == "llama"))
    pre = meta["tokenizer.ggml.pre"]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pre_tokenizer_regex(pre)), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    if pre == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    special = {i: t for i, (t, kind) in enumerate(zip(tokens, types)) if kind != 1}
    special.update(spec.renames)
    special.update({spec.first_added + k: t for k, t in enumerate(spec.added)})
    for i in sorted(special):
        if i >= spec.vocab_size or special[i].startswith("[PAD"):
            continue
        token = AddedToken(special[i], special=special[i] not in _NOT_SPECIAL, normalized=False)
        added = tok.add_tokens([token]) if special[i] in _NOT_SPECIAL else tok.add_special_tokens([token])
        if tok.token_to_id(special[i]) != i:
            raise ValueError(f"{family}: {special[i]} landed at id {tok.token_to_id(special[i])}, not {i} ({added})")
    if spec.bos:
        bos_id = tok.token_to_id(spec.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = real_template(spec.template)
    return wrapped


# -- the model --------------------------------------------------------------------------------------------


def build_base(
    out_dir: str | os.PathLike, family: str = "llama3.1", seed: int = 0, sizes: dict | None = None, dtype=None
) -> Path:
    """Save a small random model of the family's architecture with its real tokenizer and template.

    `sizes` overrides the small shape (LLAMA32_1B: a full-size 1 B model); `dtype` the saved precision.
    """
    import torch
    from transformers import GenerationConfig

    if family not in BASES:
        raise ValueError(f"family must be one of {', '.join(BASES)}")
    spec = BASES[family]
    tokenizer = build_tokenizer(family)
    config_cls, model_cls = _classes(spec.arch)
    config = config_cls(
        vocab_size=spec.vocab_size,
        eos_token_id=list(spec.eos_ids),
        pad_token_id=tokenizer.pad_token_id,
        **{**SMALL, **(sizes or {}), **spec.config},
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    if dtype is not None:
        model = model.to(dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=list(spec.eos_ids), pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _classes(arch: str):
    import transformers

    names = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}[arch]
    return getattr(transformers, f"{names}Config"), getattr(transformers, f"{names}ForCausalLM")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build a small random model with a real tokenizer and template.")
    parser.add_argument("out_dir")
    parser.add_argument("--family", default="llama3.1", choices=sorted(BASES))
    ns = parser.parse_args()
    print(build_base(ns.out_dir, family=ns.family))
    sys.exit(0)
