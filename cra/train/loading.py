"""Loading a base model for LoRA training: unsloth on CUDA when installed, else transformers + PEFT.

Every heavy import happens inside a function. unsloth patches transformers, trl and peft when it is
imported, so on the unsloth path it must be imported before any of them (`import_backend` does that
first thing).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, MissingDependencyError, StageError
from . import distributed

TRAIN_EXTRA = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def require(modules=TRAIN_EXTRA, what: str = "Training") -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            "pip install 'cra[train]' (install torch for your platform first, e.g. pip install torch)"
        )


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_backend(requested: str) -> str:
    """'unsloth' or 'trl'. Explicit unsloth on a machine that cannot run it is an error, not a fallback."""
    require()
    cuda = cuda_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "unsloth":
        if not cuda:
            raise ConfigError(
                "--backend unsloth needs a CUDA GPU and this machine has none: use --backend trl (or auto)"
            )
        if not has_unsloth:
            raise MissingDependencyError("--backend unsloth needs unsloth: pip install 'cra[gpu]' (CUDA machines only)")
        return "unsloth"
    if requested == "auto":
        return "unsloth" if cuda and has_unsloth else "trl"
    return "trl"


def import_backend(backend: str) -> None:
    if backend == "unsloth":
        import unsloth  # noqa: F401  (must precede trl/transformers/peft: it patches them)


@dataclass
class Precision:
    bf16: bool
    fp16: bool
    name: str

    @property
    def torch_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def resolve_precision(setting: str) -> Precision:
    cuda = cuda_available()
    if setting == "auto":
        if not cuda:
            setting = "fp32"  # CPU autocast in bf16 is slow or unsupported on most CPUs
        else:
            import torch

            setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if setting in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"--precision {setting} needs a CUDA GPU: use --precision fp32 (or auto) on CPU")
    return Precision(bf16=setting == "bf16", fp16=setting == "fp16", name=setting)


def resolve_optim(setting: str, load_in_4bit: bool) -> str:
    from transformers.training_args import OptimizerNames

    if setting == "auto":
        # 8-bit AdamW (bitsandbytes) halves optimizer memory; its kernels need CUDA.
        return "adamw_8bit" if cuda_available() and importlib.util.find_spec("bitsandbytes") else "adamw_torch"
    known = {o.value for o in OptimizerNames}
    if setting not in known:
        raise ConfigError(f"unknown optimizer {setting!r}: use auto or one of {', '.join(sorted(known))}")
    return setting


def _pad_token(tokenizer) -> None:
    if tokenizer.pad_token is not None:
        return
    vocab = tokenizer.get_vocab()
    for candidate in ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>"):  # Llama 3.1 ships a dedicated pad token
        if candidate in vocab:
            tokenizer.pad_token = candidate
            return
    tokenizer.pad_token = tokenizer.eos_token


def _target_modules(model, wanted: list[str]) -> list[str]:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [m for m in wanted if m in present]
    if not found:
        import torch

        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)} - {"lm_head"}
        )
        raise ConfigError(
            f"none of the LoRA target modules ({','.join(wanted)}) exist in this model: "
            f"pass --target-modules with some of {','.join(linear)}"
        )
    return found


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    target_modules: list[str]
    quantized: bool


def quantization_kwargs(precision: Precision) -> dict[str, Any]:
    """`from_pretrained` arguments that load a base in 4-bit NF4 with double quantization (QLoRA), for
    every trainer: the quantization config and where the weights live."""
    import torch
    from transformers import BitsAndBytesConfig

    require(("bitsandbytes",), what="4-bit loading (--load-in-4bit)")
    # Under DDP each process holds its own 4-bit copy on its own GPU; FSDP / ZeRO-3 shard it.
    quantization, placement = distributed.four_bit_loading(precision.torch_dtype, torch.cuda.is_available())
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.torch_dtype,
        **quantization,
    )
    return {"quantization_config": config, **placement}


def load_for_lora(settings, backend: str, precision: Precision) -> Loaded:
    """Base model (4-bit NF4 when asked) with fresh LoRA adapters, and its tokenizer."""
    if settings.load_in_4bit:
        require(("bitsandbytes",), what="4-bit loading (--load-in-4bit)")
    if backend == "unsloth":
        return _load_unsloth(settings, precision)
    return _load_transformers(settings, precision)


def _load_unsloth(settings, precision: Precision) -> Loaded:
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=settings.base,
        max_seq_length=settings.max_length,
        dtype=precision.torch_dtype,
        load_in_4bit=settings.load_in_4bit,
    )
    _pad_token(tokenizer)
    targets = _target_modules(model, settings.target_modules)
    model = FastLanguageModel.get_peft_model(
        model,
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        bias="none",
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing != "off" else False,
        random_state=settings.seed,
    )
    return Loaded(model, tokenizer, targets, settings.load_in_4bit)


def _load_transformers(settings, precision: Precision) -> Loaded:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.base)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load a tokenizer from {settings.base!r}: {exc}") from exc
    _pad_token(tokenizer)
    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype}
    if cuda and importlib.util.find_spec("flash_attn") is not None:
        kwargs["attn_implementation"] = "flash_attention_2"  # varlen kernels: packing without padding or mask cost
    if settings.load_in_4bit:
        kwargs.update(quantization_kwargs(precision))
    try:
        model = AutoModelForCausalLM.from_pretrained(settings.base, **kwargs)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load model {settings.base!r}: {exc}") from exc
    if settings.load_in_4bit and not distributed.shards_parameters():  # (FSDP would flatten mixed dtypes)
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing(settings.gradient_checkpointing)
        )
    targets = _target_modules(model, settings.target_modules)
    # LoRA's A matrices are drawn from torch's global generator before any Trainer seeds it: seed
    # here, or a run depends on whatever this process drew before.
    from transformers import set_seed

    set_seed(settings.seed)
    model = get_peft_model(
        model,
        LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    return Loaded(model, tokenizer, targets, settings.load_in_4bit)


def use_packing(setting: str, model, backend: str) -> bool:
    """Packing (padding-free rows) pays off only with varlen attention kernels: FlashAttention or unsloth's.

    With SDPA/eager the flattened batch needs a dense block-diagonal mask over the whole row: on CPU
    that measured 4x slower per token than length-grouped padded batches (scripts/bench_train.py).
    """
    if setting != "auto":
        return setting == "on"
    if backend == "unsloth":
        return True
    attn = getattr(getattr(model, "config", None), "_attn_implementation", "") or ""
    return attn.startswith("flash_attention")


def gradient_checkpointing(setting: str) -> bool:
    if setting == "auto":
        return cuda_available()
    return setting == "on"
