"""What an export reads: the base model's weights and config, the LoRA adapter, the tokenizer.

Every check that can refuse an export lives here and runs before anything is written: an unsupported
architecture, a tokenizer llama.cpp would split differently, rsLoRA/DoRA, tokens the adapter added.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StageError


class ExportError(StageError):
    """An export refused (or failed) with a message that says what to do."""


@dataclass(frozen=True)
class Architecture:
    gguf_arch: str  # general.architecture, and the tensor name map to use
    permute_qk: bool  # llama.cpp's llama arch rotates interleaved pairs; HF rotates halves


ARCHITECTURES = {
    "LlamaForCausalLM": Architecture("llama", permute_qk=True),
    "Qwen2ForCausalLM": Architecture("qwen2", permute_qk=False),
}

# A LoRA target must be one of a decoder layer's projections: those are the tensors llama.cpp can
# apply an adapter to and that a merge changes without touching the vocabulary.
_LAYER_LINEAR = re.compile(r"^model\.layers\.\d+\.(self_attn|mlp)\.[a-z_]+_proj$")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


@dataclass
class BaseModel:
    path: Path
    ref: str  # as given (hub id or directory)
    config: dict[str, Any]
    arch: Architecture
    weight_files: dict[str, Path]  # HF tensor name -> safetensors file holding it

    def shape(self, name: str) -> tuple[int, ...]:
        from safetensors import safe_open

        with safe_open(str(self.weight_files[name]), framework="pt") as f:
            return tuple(f.get_slice(name).get_shape())

    def tensor(self, name: str):
        """One weight as float32 numpy (bf16 checkpoints included: numpy has no bf16)."""
        import torch
        from safetensors import safe_open

        with safe_open(str(self.weight_files[name]), framework="pt") as f:
            return f.get_tensor(name).to(torch.float32).numpy()


@dataclass
class LoraModule:
    key_a: str
    key_b: str
    rank: int
    alpha: float

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass
class LoraAdapter:
    path: Path
    config: dict[str, Any]
    file: Path
    alpha: float
    modules: dict[str, LoraModule] = field(default_factory=dict)  # base weight name -> its A/B

    def tensor(self, key: str):
        import torch
        from safetensors import safe_open

        with safe_open(str(self.file), framework="pt") as f:
            return f.get_tensor(key).to(torch.float32).numpy()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc


def resolve_base(ref: str) -> Path:
    """A base model as a local directory: the directory itself, or the Hugging Face cache's snapshot."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} has no config.json: pass the directory of a transformers model as --base")
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        # The training run downloaded it: export never needs the network.
        return Path(snapshot_download(ref, local_files_only=True))
    except Exception as exc:  # not cached, not a repo id, hub library missing: one answer
        raise ExportError(
            f"base model {ref!r} is neither a local directory nor in the Hugging Face cache ({type(exc).__name__}). "
            f"Download it (`hf download {ref}`) or pass its directory with --base DIR."
        ) from exc


def load_base(ref: str) -> BaseModel:
    path = resolve_base(ref)
    config = _read_json(path / "config.json")
    names = config.get("architectures") or []
    arch_name = names[0] if names else config.get("model_type", "unknown")
    if arch_name not in ARCHITECTURES:
        raise ExportError(
            f"cra export cannot convert {arch_name} models yet (supported: {', '.join(ARCHITECTURES)}). "
            "llama.cpp's convert_hf_to_gguf.py covers more architectures: merge the adapter with PEFT "
            "(merge_and_unload) and convert the result with it."
        )
    if config.get("quantization_config"):
        raise ExportError(
            f"the base model at {path} is saved quantized ({config['quantization_config'].get('quant_method', '?')}): "
            "export needs its full-precision weights (the original checkpoint, not a 4-bit copy)"
        )
    if config.get("use_sliding_window"):
        raise ExportError("sliding-window attention is not supported by cra export (llama.cpp's qwen2 ignores it)")
    index = path / "model.safetensors.index.json"
    weight_files: dict[str, Path] = {}
    if index.is_file():
        for name, file in _read_json(index)["weight_map"].items():
            weight_files[name] = path / file
    else:
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ExportError(
                f"no .safetensors weights in {path}: cra export reads safetensors only "
                "(re-save the model with save_pretrained(..., safe_serialization=True))"
            )
        from safetensors import safe_open

        for file in files:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    weight_files[name] = file
    return BaseModel(path=path, ref=ref, config=config, arch=ARCHITECTURES[arch_name], weight_files=weight_files)


def _pattern_value(patterns: dict[str, Any] | None, module: str, default):
    """PEFT's rank_pattern/alpha_pattern lookup: a key matches a module name or its dotted suffix."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


# (adapter_config key, is it set?, why cra refuses it)
_REFUSED = [
    ("use_dora", bool, "DoRA adapters have no GGUF form in llama.cpp; retrain without --use-dora"),
    (
        "use_rslora",
        bool,
        "rsLoRA scales by alpha/sqrt(r), which llama.cpp's alpha/r adapter format cannot express; "
        "retrain without use_rslora",
    ),
    (
        "modules_to_save",
        bool,
        "the adapter saves full copies of {value} (new tokens or a retrained head): not an adapter llama.cpp can apply",
    ),
    ("trainable_token_indices", bool, "the adapter trains token embeddings (new tokens): not supported"),
    ("fan_in_fan_out", bool, "fan_in_fan_out adapters (GPT-2 style Conv1D) are not supported"),
    ("lora_bias", bool, "adapters with LoRA biases are not supported"),
    ("layer_replication", bool, "layer_replication changes the layer count: not supported"),
]


def load_adapter(adapter_dir: str | Path, base: BaseModel) -> LoraAdapter:
    path = Path(adapter_dir).expanduser().resolve()
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise ExportError(f"{path} has no adapter_config.json: it is not a PEFT adapter directory")
    config = _read_json(config_file)
    if config.get("peft_type", "LORA") != "LORA":
        raise ExportError(
            f"the adapter in {path} is {config.get('peft_type')}, not LoRA: cra exports LoRA adapters only"
        )
    for key, is_set, why in _REFUSED:
        value = config.get(key)
        if value and is_set(value):
            raise ExportError(f"cannot export {path}: {why.format(value=value)}")
    if config.get("bias", "none") != "none":
        raise ExportError(
            f"cannot export {path}: the adapter trains biases (bias={config['bias']!r}); retrain with bias='none'"
        )
    file = path / "adapter_model.safetensors"
    if not file.is_file():
        raise ExportError(f"{path} has no adapter_model.safetensors (cra export reads safetensors adapters only)")

    from safetensors import safe_open

    parts: dict[str, dict[str, tuple[str, tuple[int, ...]]]] = {}
    foreign = []
    with safe_open(str(file), framework="pt") as f:
        for key in f.keys():
            match = _LORA_KEY.match(key)
            if not match:
                foreign.append(key)
                continue
            shape = tuple(f.get_slice(key).get_shape())
            parts.setdefault(match["module"], {})[match["part"]] = (key, shape)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        hint = " (new or retrained tokens)" if any("embed" in k or "lm_head" in k for k in foreign) else ""
        raise ExportError(f"cannot export {path}: it holds weights that are not LoRA A/B matrices{hint}: {shown}")
    if not parts:
        raise ExportError(f"{file} holds no LoRA weights")

    alpha = float(config.get("lora_alpha") or config.get("r") or 8)
    adapter = LoraAdapter(path=path, config=config, file=file, alpha=alpha)
    for module, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise ExportError(f"{file}: {module} has lora_{''.join(ab)} but not its pair")
        if not _LAYER_LINEAR.match(module):
            raise ExportError(
                f"cannot export {path}: LoRA on {module} is not supported "
                "(only the attention and MLP projections of the decoder layers)"
            )
        weight = module + ".weight"
        if weight not in base.weight_files:
            raise ExportError(
                f"the adapter adapts {module}, which the base model {base.ref} does not have: wrong base model?"
            )
        (key_a, shape_a), (key_b, shape_b) = ab["A"], ab["B"]
        rank = shape_a[0]
        out_features, in_features = base.shape(weight)
        if shape_b[1] != rank or shape_a[1] != in_features or shape_b[0] != out_features:
            raise ExportError(
                f"{module}: LoRA shapes A{list(shape_a)} B{list(shape_b)} do not fit the base weight "
                f"[{out_features}, {in_features}]: wrong base model?"
            )
        module_alpha = float(_pattern_value(config.get("alpha_pattern"), module, alpha))
        adapter.modules[weight] = LoraModule(key_a=key_a, key_b=key_b, rank=rank, alpha=module_alpha)
    _check_no_added_tokens(path, base)
    return adapter


def _vocab(tokenizer_json: Path) -> dict[str, int]:
    data = _read_json(tokenizer_json)
    vocab = dict(data.get("model", {}).get("vocab") or {})
    for token in data.get("added_tokens") or []:
        vocab[token["content"]] = token["id"]
    return vocab


def _check_no_added_tokens(adapter_dir: Path, base: BaseModel) -> None:
    """The adapter's tokenizer must be the base's: a new token has no embedding in the base GGUF."""
    mine, theirs = adapter_dir / "tokenizer.json", base.path / "tokenizer.json"
    if not (mine.is_file() and theirs.is_file()):
        return
    added = sorted(set(_vocab(mine).items()) - set(_vocab(theirs).items()), key=lambda kv: kv[1])
    if added:
        shown = ", ".join(repr(t) for t, _ in added[:5]) + (" ..." if len(added) > 5 else "")
        raise ExportError(
            f"the adapter's tokenizer has {len(added)} token(s) the base model lacks ({shown}): new tokens need "
            "new embedding rows, which a LoRA adapter cannot carry. Train without adding tokens."
        )


def tokenizer_dir(base: BaseModel, adapter: LoraAdapter | None) -> Path:
    """The tokenizer (and chat template) the run trained with: the adapter's copy when it saved one."""
    if adapter is not None and (adapter.path / "tokenizer.json").is_file():
        return adapter.path
    return base.path


# -- runs -----------------------------------------------------------------------------------------------


def find_run(db, ref: str) -> dict[str, Any]:
    """A run by id, 'last' (the newest completed run that produced an adapter) or 'promoted' (`cra auto`'s)."""
    from ..train import runs

    if "runs" not in db.table_names():
        raise ExportError("no runs recorded yet: train one with `cra train sft`")
    if ref == "promoted":
        promoted = promoted_run_id(db)
        if promoted is None:
            raise ExportError("no model promoted yet: `cra auto once` promotes one (or `cra auto promote RUN`)")
        return runs.get_run(db, promoted)
    if ref == "last":
        run = runs.newest_with_adapter(db)
        if run is None:
            raise ExportError("no completed run with an adapter: train one with `cra train sft`")
        return run
    if not ref.isdigit():
        raise ExportError(f"RUN is a run id, 'last' or 'promoted', not {ref!r} (`cra runs` lists them)")
    return runs.get_run(db, int(ref))


def promoted_run_id(db) -> int | None:
    """The model `cra auto` promoted (its `promotions` row marked current), if any."""
    if "promotions" not in db.table_names():
        return None
    row = db.execute("SELECT run_id FROM promotions WHERE current = 1").fetchone()
    return row[0] if row else None


def run_for_adapter(db, adapter_dir: Path) -> dict[str, Any] | None:
    """The run that produced an adapter directory, so that an export by path is still recorded."""
    if "artifacts" not in db.table_names():
        return None
    from ..train import runs

    target = str(Path(adapter_dir).resolve())
    rows = list(db.query("SELECT run_id FROM artifacts WHERE kind = 'adapter' AND path = ? ORDER BY id DESC", [target]))
    if not rows:
        rows = list(db.query("SELECT id AS run_id FROM runs WHERE ? = output_dir || '/adapter'", [target]))
    return runs.get_run(db, rows[0]["run_id"]) if rows else None
