"""Training throughput: cra's SFT against plain TRL SFTTrainer, same model, data and settings, one run.

    .venv/bin/python scripts/bench_train.py                 # tiny local model, CPU, ~2 minutes
    .venv/bin/python scripts/bench_train.py --steps 60 --4bit

Measures training tokens per second (real tokens, padding excluded, over the trainer's own
train_runtime) and padding waste (pad tokens / all tokens in training batches) for:
  - cra: `cra train sft` as shipped (assistant-only labels; on CPU: no packing, batches grouped by
    length), and with --packing on;
  - plain TRL: SFTTrainer with PEFT LoRA on the raw conversations (assistant_only_loss=True), padded
    batches (TRL's default) and packed.
Every variant: the same tiny Llama built locally, the same LoRA (r 16, all projections), batch, steps,
learning rate, thread count and seed. On a CUDA machine cra's backend is unsloth when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def plain_trl(model_dir, data_dir, out_dir, args, packing: bool) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from cra.train.config import ALL_PROJECTIONS
    from cra.train.sft import TokenCounter

    cuda = torch.cuda.is_available()
    data = load_dataset("json", data_files={"train": str(data_dir / "train.jsonl")})["train"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.four_bit:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, quantization_config=quant, device_map={"": 0} if cuda else {"": "cpu"}
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    config = SFTConfig(
        output_dir=str(out_dir),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        max_length=args.max_length,
        packing=packing,
        assistant_only_loss=True,
        use_cpu=not cuda,
        bf16=cuda,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        logging_steps=args.steps,
        seed=0,
        disable_tqdm=True,
    )
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=ALL_PROJECTIONS, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer, peft_config=lora)
    counter = TokenCounter(trainer.data_collator, trainer.model)
    trainer.data_collator = counter
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    return {
        "tokens_per_second": counter.real / seconds,
        "padding_fraction": 1 - counter.real / counter.total,
        "tokens": counter.real,
        "seconds": seconds,
        "loss": result.training_loss,
    }


def cra_sft(model_dir, data_dir, runs_dir, args, packing: bool) -> dict:
    from cra.db import open_db
    from cra.train.config import SFTSettings
    from cra.train.sft import train_sft

    settings = SFTSettings(
        base=str(model_dir),
        dataset=str(data_dir),
        load_in_4bit=args.four_bit,
        max_steps=args.steps,
        batch_size=args.batch,
        grad_accum=1,
        learning_rate=3e-3,
        max_length=args.max_length,
        packing="on" if packing else "auto",
        warmup_ratio=0.0,
        eval_steps=10**6,
        logging_steps=args.steps,
        seed=0,
        runs_dir=str(runs_dir),
    )
    run = train_sft(settings, open_db(), echo=lambda *a, **k: None)
    m = run["metrics"]
    return {
        "tokens_per_second": m["tokens_per_second"],
        "padding_fraction": m["padding_fraction"],
        "tokens": m["tokens"],
        "seconds": m["train_seconds"],
        "loss": m["train_loss"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every variant")
    parser.add_argument(
        "--4bit", dest="four_bit", action="store_true", help="load the base in 4-bit NF4 (QLoRA), every variant"
    )
    parser.add_argument(
        "--no-packed", action="store_true", help="skip the packed variants (slow without FlashAttention)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from cra.testing.tiny import build_model, write_dataset

    scratch = Path(tempfile.mkdtemp(prefix="cra-bench-train-"))
    os.environ["CRA_HOME"] = str(scratch / "cra-home")
    os.environ.pop("CRA_DB", None)
    model_dir = build_model(scratch / "model")
    data_dir = write_dataset(scratch / "data", n_train=args.examples, n_eval=0)

    results = {}
    # Alternate so that a machine getting busier or quieter during the run does not favour one side.
    variants = [
        ("trl (padded)", lambda: plain_trl(model_dir, data_dir, scratch / "trl-pad", args, packing=False)),
        ("cra (default)", lambda: cra_sft(model_dir, data_dir, scratch / "runs", args, packing=False)),
        ("trl (packed)", lambda: plain_trl(model_dir, data_dir, scratch / "trl-pack", args, packing=True)),
        ("cra (--packing on)", lambda: cra_sft(model_dir, data_dir, scratch / "runs", args, packing=True)),
    ]
    if args.no_packed:
        variants = variants[:2]
    for name, fn in variants:
        started = time.time()
        results[name] = fn()
        results[name]["wall_seconds"] = time.time() - started

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {args.threads} thread(s)"
    if args.json:
        print(json.dumps({"device": device, "args": vars(args), "results": results}, indent=2))
        return 0
    print(
        f"SFT throughput on the tiny Llama ({device}); {args.steps} steps x batch {args.batch}, "
        f"max_length {args.max_length}, LoRA r16 on all projections{', 4-bit base' if args.four_bit else ''}"
    )
    print(f"{'variant':<24}{'tokens/s':>10}{'padding':>10}{'tokens':>10}{'train s':>9}{'loss':>8}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['tokens_per_second']:>10.0f}{100 * r['padding_fraction']:>9.1f}%"
            f"{r['tokens']:>10}{r['seconds']:>9.1f}{r['loss']:>8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
