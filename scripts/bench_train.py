"""Training throughput: cra's SFT against plain TRL SFTTrainer, same model, data and settings, one run.

    .venv/bin/python scripts/bench_train.py                 # tiny local model, CPU, ~2 minutes
    .venv/bin/python scripts/bench_train.py --steps 60 --4bit
    .venv/bin/python scripts/bench_train.py --gpu           # CUDA only: unsloth against TRL, < 8 minutes
    .venv/bin/python scripts/bench_train.py --gpu --cpu-check   # the same pipeline, tiny and on CPU (TRL)
    .venv/bin/python scripts/bench_train.py --memory        # CPU: peak memory of a step, logits at labels vs all

--gpu: a model of Llama 3.2 1B's shape (1.24 B parameters, random weights) with the real Llama 3
tokenizer and template (cra/testing/bases.py), a dataset `cra dataset build` makes from the recorded
Claude Code sessions (tests/fixtures/recorded; one example per step, counted with that tokenizer, rows
repeated to fill the steps), 4-bit NF4 QLoRA r16 on all projections, bf16, batch 4 x up to 8192
tokens, the same steps for `--backend unsloth` and `--backend trl`, each in its own process (unsloth
patches transformers when imported). It prints tokens/s (whole run, and steady after the first steps),
padding, packing, the attention kernel, peak GPU memory and unsloth's speed over TRL's.

--memory: one SFT step on the Llama 3.1 test base (the real 128k vocabulary) over the longest recorded
example within --max-length (default 6144), with TRL's `chunked_nll` loss (what cra trains with: the
output layer only at labelled positions) against `nll` (logits at every position), each in its own
process; prints peak RSS.

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
import subprocess
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


# -- --gpu: unsloth against TRL on a 1 B Llama with the real tokenizer -----------------------------------------


def recorded_dataset(scratch: Path, base: Path, rows_wanted: int, max_tokens: int) -> Path:
    """train.jsonl built by cra from the recorded sessions (every turn, one example per step), counted with
    the base's tokenizer, its rows repeated in order to `rows_wanted`."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import PINNED_RECORDED, RECORDED, build_fixture_db

    from cra.dataset.build import BuildOptions, DatasetBuilder
    from cra.dataset.filters import TurnFilters
    from cra.db import open_db

    db_path = build_fixture_db(scratch / "recorded.db", [RECORDED / name for name in PINNED_RECORDED])
    options = BuildOptions(
        unit="step",
        eval_fraction=0,
        base=str(base),
        max_tokens=max_tokens,
        filters=TurnFilters(min_tool_calls=1, min_answer_words=1, skip_failed=False, skip_unrecovered=False),
    )
    built = scratch / "recorded-dataset"
    summary = DatasetBuilder(open_db(str(db_path)), options).build(str(built))
    rows = (built / "train.jsonl").read_text(encoding="utf-8").splitlines()
    out = scratch / "bench-dataset"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("".join(rows[i % len(rows)] + "\n" for i in range(rows_wanted)), encoding="utf-8")
    print(
        f"dataset: {len(rows)} examples from recorded sessions (tokens: median {summary['tokens']['median']}, "
        f"max {summary['tokens']['max']}; {summary['tokens']['counted_with']}), repeated to {rows_wanted} rows",
        flush=True,
    )
    return out


def gpu_worker(args) -> dict:
    """One backend, in this process: `train_sft` as `cra train sft` runs it, timed step by step."""
    from transformers import TrainerCallback

    from cra.db import open_db
    from cra.train.config import SFTSettings
    from cra.train.sft import train_sft

    class Clock(TrainerCallback):
        """(step, time, tokens seen) at every log: TRL logs `num_tokens`, the real (non-pad) tokens so far."""

        def __init__(self):
            self.marks = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.marks.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))

    clock = Clock()
    settings = SFTSettings(
        base=args.base,
        dataset=args.data,
        backend=args.gpu_worker,
        load_in_4bit=not args.cpu_check or args.four_bit,
        lora_r=16,
        lora_alpha=32,
        batch_size=args.batch,
        grad_accum=1,
        max_steps=args.steps,
        max_length=args.max_length,
        learning_rate=2e-4,
        warmup_ratio=0.0,
        eval_steps=10**6,
        logging_steps=1,
        seed=0,
        cpu_threads=args.threads if args.cpu_check else 0,
        runs_dir=str(Path(args.data).parent / f"runs-{args.gpu_worker}"),
    )
    run = train_sft(settings, open_db(), callbacks=(clock,), echo=lambda *a, **k: None)
    m = run["metrics"]
    steady = [mark for mark in clock.marks if mark[0] >= WARMUP_STEPS]
    steady_tps = None
    if len(steady) >= 2 and steady[-1][1] > steady[0][1]:
        steady_tps = (steady[-1][2] - steady[0][2]) / (steady[-1][1] - steady[0][1])
    return {
        "backend": m["backend"],
        "tokens_per_second": m["tokens_per_second"],
        "steady_tokens_per_second": steady_tps,
        "padding_fraction": m["padding_fraction"],
        "packing": m["packing"],
        "attention": m.get("attention"),
        "loss_type": m.get("loss_type"),
        "peak_gpu_memory_mb": m.get("peak_gpu_memory_mb"),
        "tokens": m["tokens"],
        "train_seconds": m["train_seconds"],
        "steps": m["steps"],
        "loss_first": m.get("train_loss_first"),
        "loss_last": m.get("train_loss_last"),
    }


WARMUP_STEPS = 4  # compilation and allocator warm-up: steady tokens/s counts from here


def gpu_bench(args) -> int:
    import importlib.util

    import torch

    from cra.testing.bases import LLAMA32_1B, SMALL, build_base

    if not args.cpu_check and not torch.cuda.is_available():
        print("--gpu needs a CUDA GPU (--cpu-check runs the same pipeline, tiny and on CPU)", file=sys.stderr)
        return 2
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="cra-bench-gpu-"))
    os.environ["CRA_HOME"] = str(scratch / "cra-home")
    os.environ.pop("CRA_DB", None)
    sizes = SMALL if args.cpu_check else LLAMA32_1B
    dtype = None if args.cpu_check else torch.bfloat16
    base = build_base(scratch / "llama3.2-1b-shape", family="llama3.2", sizes=sizes, dtype=dtype)
    shape = "(tiny)" if args.cpu_check else "1B"
    print(f"base: Llama 3.2 {shape} shape, real Llama 3 tokenizer, {time.time() - started:.0f} s", flush=True)
    data = recorded_dataset(scratch, base, args.steps * args.batch, args.max_length)
    backends = ["trl"] if args.cpu_check else ["trl", "unsloth"]
    if "unsloth" in backends and importlib.util.find_spec("unsloth") is None:
        print("unsloth is not installed (pip install 'cra-claude[gpu]'): TRL only", flush=True)
        backends.remove("unsloth")
    results = {}
    for backend in backends:
        command = [sys.executable, __file__, "--gpu-worker", backend, "--base", str(base), "--data", str(data)]
        command += ["--steps", str(args.steps), "--batch", str(args.batch), "--max-length", str(args.max_length)]
        command += ["--threads", str(args.threads)] + (["--cpu-check"] if args.cpu_check else [])
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.worker_timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"{backend} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}", file=sys.stderr)
            return 1
        results[backend] = json.loads(lines[-1])
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (--cpu-check)"
    ratio = None
    if {"trl", "unsloth"} <= set(results):

        def speed(r):
            return r["steady_tokens_per_second"] or r["tokens_per_second"]

        ratio = speed(results["unsloth"]) / speed(results["trl"])
    if args.json:
        print(
            json.dumps({"device": device, "args": vars(args), "results": results, "unsloth_over_trl": ratio}, indent=2)
        )
        return 0
    print(
        f"\nSFT on {device}: Llama 3.2 1B shape, 4-bit NF4 QLoRA r16, batch {args.batch} x <= {args.max_length} "
        f"tokens, {args.steps} steps (steady: after step {WARMUP_STEPS}); {time.time() - started:.0f} s in all"
    )
    print(
        f"{'backend':<10}{'tokens/s':>10}{'steady':>10}{'padding':>9}{'packed':>8}  {'attention':<20}"
        f"{'peak GPU':>10}{'loss':>16}"
    )
    for name, r in results.items():
        peak = f"{r['peak_gpu_memory_mb'] / 1024:.1f} GB" if r["peak_gpu_memory_mb"] else "-"
        steady = f"{r['steady_tokens_per_second']:.0f}" if r["steady_tokens_per_second"] else "-"
        print(
            f"{name:<10}{r['tokens_per_second']:>10.0f}{steady:>10}{100 * r['padding_fraction']:>8.1f}%"
            f"{'yes' if r['packing'] else 'no':>8}  {str(r['attention']):<20}{peak:>10}"
            f"{r['loss_first']:>8.3f}->{r['loss_last']:.3f}"
        )
    if ratio is not None:
        print(f"unsloth / TRL: {ratio:.2f}x (goal: >= 1.5x)")
    return 0


# -- --memory: the output layer at labelled positions only, against logits everywhere --------------------------


def memory_worker(args) -> dict:
    import json as _json
    import resource

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from cra import chat
    from cra.train.config import ALL_PROJECTIONS

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    tokenizer.pad_token = "<|finetune_right_pad_id|>"
    family = chat.resolve_family(tokenizer, "auto")
    rows = [_json.loads(line) for line in open(Path(args.data) / "train.jsonl", encoding="utf-8")]
    fitting = [
        e
        for e in (chat.tokenize_example(tokenizer, row, family) for row in rows)
        if len(e["input_ids"]) <= args.max_length
    ]
    example = max(fitting, key=lambda e: len(e["input_ids"]))  # the longest example that fits, whole
    model = AutoModelForCausalLM.from_pretrained(args.base)
    config = SFTConfig(
        output_dir=str(Path(args.data).parent / f"memory-{args.memory_worker}"),
        max_steps=1,
        per_device_train_batch_size=1,
        max_length=args.max_length,
        loss_type=args.memory_worker,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=ALL_PROJECTIONS, task_type="CAUSAL_LM")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list([example]),
        processing_class=tokenizer,
        peft_config=lora,
    )
    result = trainer.train()
    return {
        "loss_type": args.memory_worker,
        "tokens": len(example["input_ids"]),
        "labelled": sum(1 for label in example["labels"] if label != -100),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_training_mb": before,
        "loss": result.training_loss,
    }


def memory_bench(args) -> int:
    from cra.testing.bases import build_base

    scratch = Path(tempfile.mkdtemp(prefix="cra-bench-memory-"))
    os.environ["CRA_HOME"] = str(scratch / "cra-home")
    base = build_base(scratch / "llama3.1", family="llama3.1")
    data = recorded_dataset(scratch, base, 1000, 100000)
    results = {}
    for loss_type in ("chunked_nll", "nll"):
        command = [sys.executable, __file__, "--memory-worker", loss_type, "--base", str(base), "--data", str(data)]
        command += ["--max-length", str(args.max_length), "--threads", str(args.threads)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.worker_timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"{loss_type} failed:\n{proc.stderr[-4000:]}", file=sys.stderr)
            return 1
        results[loss_type] = json.loads(lines[-1])
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    r = results["chunked_nll"]
    print(
        f"One SFT step (LoRA r16, fp32, CPU) on the Llama 3.1 test base (vocabulary 128256) over a recorded "
        f"example of {r['tokens']} tokens ({r['labelled']} labelled):"
    )
    for name, r in results.items():
        print(
            f"  loss_type {name:<12} peak RSS {r['peak_rss_mb']:>7.0f} MB "
            f"(model loaded: {r['rss_before_training_mb']:.0f} MB), loss {r['loss']:.4f}"
        )
    return 0


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
    parser.add_argument("--gpu", action="store_true", help="unsloth against TRL on a 1 B Llama (CUDA only)")
    parser.add_argument("--cpu-check", action="store_true", help="with --gpu: the same pipeline, tiny, on CPU")
    parser.add_argument("--memory", action="store_true", help="peak memory of a step: labelled logits vs all")
    parser.add_argument("--worker-timeout", type=int, default=300, help="seconds each backend may take")
    parser.add_argument("--gpu-worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpu_worker:
        print(json.dumps(gpu_worker(args)))
        return 0
    if args.memory_worker:
        print(json.dumps(memory_worker(args)))
        return 0
    if args.gpu:
        if "--steps" not in (argv or sys.argv):
            args.steps = 2 if args.cpu_check else 24
        if "--batch" not in (argv or sys.argv):
            args.batch = 1 if args.cpu_check else 4
        if "--max-length" not in (argv or sys.argv):
            args.max_length = 8192
        return gpu_bench(args)
    if args.memory:
        if "--max-length" not in (argv or sys.argv):
            args.max_length = 6144
        return memory_bench(args)

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
