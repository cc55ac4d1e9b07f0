"""What `cra serve` adds to llama.cpp: time to first token and tokens per second, through the server
against llama-cpp-python called directly, side by side in one run.

    .venv/bin/python scripts/bench_serve.py                  # ~26 M-parameter model, CPU, ~3 minutes
    .venv/bin/python scripts/bench_serve.py --hidden 1024 --layers 12 --runs 10 --threads 2

The model is built here (random weights, the tiny tokenizer; no download) at a size where a token
costs what it costs on a small real model, exported to GGUF through `cra export gguf`. Its output
layer never picks a special token, so every answer is `--tokens` tokens of plain text, streamed as
text deltas. Each round sends the same fresh prompt (a Claude-Code-shaped request: system, tools,
the prompt "task N") both ways, in alternating order:
  - direct: the request rendered as the server renders it, tokenized, `Llama.generate` in this
    process; first token = the first id out, rate = tokens after the first over the time they took;
  - server: `cra serve` in its own process (the same GGUF, same threads), the request over HTTP as
    Claude Code sends it, streamed; first token = the first content delta read, rate = the same.
Both keep llama.cpp's cache of the shared prefix (the system prompt) between rounds, as in use.
Prints medians and the server's overhead; `--json` for the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOOLS = [
    {
        "name": name,
        "description": f"The {name} tool.",
        "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]},
    }
    for name in ("Bash", "Read", "Edit", "Grep", "Glob", "Write")
]
SYSTEM = [{"type": "text", "text": "You are a coding agent.\n - Primary working directory: /home/user/project"}]


def build_model(root: Path, args) -> tuple[Path, Path]:
    """A random Llama of the asked size whose output never favours a special token; -> (GGUF, base dir)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    from cra.testing import tiny

    tokenizer = tiny.build_tokenizer()
    base = root / "base"
    tiny.build_model(base, tokenizer=tokenizer)  # the tokenizer and a config to grow
    config = LlamaConfig.from_pretrained(base)
    config.hidden_size, config.num_hidden_layers = args.hidden, args.layers
    config.intermediate_size = args.hidden * 11 // 4 // 32 * 32
    config.num_attention_heads, config.num_key_value_heads = args.hidden // 64, args.hidden // 128
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    special = [tokenizer.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS]
    with torch.no_grad():
        model.lm_head.weight[special] = 0.0  # logit 0 against thousands of random ones: never the maximum
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    lora.save_pretrained(root / "adapter")  # B starts at zero: the merged model is the base
    out = root / "model-f16.gguf"
    subprocess.run(
        [sys.executable, "-m", "cra", "export", "gguf", "--adapter-dir", str(root / "adapter"), "--base", str(base)]
        + ["--outtype", "f16", "--out", str(out), "-d", str(root / "cra.db")],
        check=True,
        capture_output=True,
        env={**os.environ, "CRA_HOME": str(root / "home")},
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.1f} M parameters, hidden {args.hidden}, {args.layers} layers", file=sys.stderr)
    return out, base


def request(n: int, tokens: int, stream: bool = True) -> dict:
    return {
        "model": "bench",
        "max_tokens": tokens,
        "stream": stream,
        "system": SYSTEM,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": f"task {n}: look at the project and report"}],
    }


class Direct:
    """llama-cpp-python with the prompt the server would build, timed token by token."""

    def __init__(self, gguf: Path, base: Path, args):
        from llama_cpp import Llama

        from cra.dataset.build import BuildOptions
        from cra.serve import render

        self.render = render
        self.options = BuildOptions()
        self.tokenizer = render.load_tokenizer(str(base), "auto")
        self.llm = Llama(model_path=str(gguf), n_ctx=args.ctx, n_threads=args.threads, verbose=False, seed=0)

    def run(self, n: int, tokens: int) -> dict:
        example = self.render.request_to_example(request(n, tokens), self.options)
        ids = self.tokenizer(self.render.render_prompt(self.tokenizer, example), add_special_tokens=False)["input_ids"]
        start = time.perf_counter()
        times = []
        for _ in self.llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            times.append(time.perf_counter())
            if len(times) >= tokens:
                break
        return _figures(start, times, len(times), len(ids))


class Served:
    """`cra serve` in its own process, read as a streaming client reads it."""

    def __init__(self, gguf: Path, base: Path, root: Path, args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cra", "serve", str(gguf), "--tokenizer", str(base), "--port", "0"]
            + ["--ctx", str(args.ctx), "--cpu-threads", str(args.threads), "--max-new-tokens", str(args.tokens)]
            + ["-d", str(root / "cra.db")],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CRA_HOME": str(root / "home")},
        )
        for line in self.proc.stderr:
            if line.startswith("Listening on "):
                self.url = line.split()[-1]
                break
        else:
            raise SystemExit("cra serve did not start")
        import httpx

        self.client = httpx.Client(timeout=600)

    def run(self, n: int, tokens: int) -> dict:
        start = time.perf_counter()
        times, output_tokens, input_tokens = [], 0, 0
        with self.client.stream("POST", self.url + "/v1/messages", json=request(n, tokens)) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if '"content_block_delta"' in line:
                    times.append(time.perf_counter())
                elif '"message_delta"' in line:
                    output_tokens = json.loads(line[6:])["usage"]["output_tokens"]
                elif '"message_start"' in line:
                    input_tokens = json.loads(line[6:])["message"]["usage"]["input_tokens"]
        return _figures(start, times, output_tokens, input_tokens)

    def close(self):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _figures(start: float, times: list[float], tokens: int, prompt_tokens: int) -> dict:
    first = times[0] - start
    rate = (tokens - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return {"ttft_ms": 1000 * first, "tokens_per_s": rate, "tokens": tokens, "prompt_tokens": prompt_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128, help="Tokens generated per answer.")
    parser.add_argument("--runs", type=int, default=8, help="Rounds (each: one direct, one through the server).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    gguf, base = build_model(root, args)
    direct = Direct(gguf, base, args)
    served = Served(gguf, base, root, args)
    results = {"direct": [], "server": []}
    try:
        for warmup in range(2):  # first loads and caches: not measured
            direct.run(10_000 + warmup, args.tokens)
            served.run(10_000 + warmup, args.tokens)
        for n in range(args.runs):
            order = [("direct", direct), ("server", served)] if n % 2 == 0 else [("server", served), ("direct", direct)]
            for name, side in order:
                results[name].append(side.run(n, args.tokens))
    finally:
        served.close()
    summary = {}
    for name, rows in results.items():
        summary[name] = {k: statistics.median(r[k] for r in rows) for k in ("ttft_ms", "tokens_per_s", "tokens")}
        # Noise from other work on the machine only ever adds time: the fastest round is the cleanest look.
        summary[name]["ttft_min_ms"] = min(r["ttft_ms"] for r in rows)
    d, s = summary["direct"], summary["server"]
    summary["overhead"] = {
        "ttft_ms": s["ttft_ms"] - d["ttft_ms"],
        "ttft_min_ms": s["ttft_min_ms"] - d["ttft_min_ms"],
        "ttft_ratio": s["ttft_ms"] / d["ttft_ms"],
        "tokens_per_s_ratio": s["tokens_per_s"] / d["tokens_per_s"],
    }
    if args.json:
        print(json.dumps({"summary": summary, "runs": results, "args": vars(args)}, indent=2))
        return
    print(f"{args.runs} rounds, {args.tokens} tokens each, {args.threads} thread(s); medians:")
    print(f"  {'':8} {'first token':>12} {'(fastest)':>10} {'tokens/s':>10} {'tokens':>7}")
    for name in ("direct", "server"):
        r = summary[name]
        print(
            f"  {name:8} {r['ttft_ms']:9.1f} ms {r['ttft_min_ms']:7.1f} ms {r['tokens_per_s']:10.1f} {r['tokens']:7.0f}"
        )
    o = summary["overhead"]
    print(
        f"  server adds {o['ttft_ms']:.1f} ms to the median first token ({100 * (o['ttft_ratio'] - 1):+.1f}%), "
        f"{o['ttft_min_ms']:.1f} ms to the fastest; tokens/s x{o['tokens_per_s_ratio']:.3f} "
        f"({100 * (o['tokens_per_s_ratio'] - 1):+.1f}%)"
    )


if __name__ == "__main__":
    main()
