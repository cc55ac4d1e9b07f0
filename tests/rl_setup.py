"""Shared setup for the RL tests: a tiny model pre-fitted (full parameters) so that it writes tool-call
shaped text, and a completed SFT run on top of it, built once per test session.

A random 0.36 M-parameter model barely moves with LoRA alone; a short full-parameter fit on the
synthetic conversations makes its samples look like `I will use Read on src/app.py.<tool_call>...`,
which the behavioral reward can tell apart (dense rewards, variance within a group).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

_BUILT: dict[str, Path] = {}
SFT_STEPS = 30  # enough for mostly well-formed calls: RL then has behaviour to improve, not only syntax


def prefit_tiny_model(out_dir: Path, steps: int = 100, seed: int = 0, batch: int = 8) -> Path:
    """Build the tiny model and fit all its weights on rendered synthetic conversations."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cra import chat
    from cra.testing.tiny import build_model, synthetic_conversations

    build_model(out_dir, seed=seed)
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    # Loss on the assistant's tokens only: the tool schemas in the system turn are the same everywhere.
    family = chat.resolve_family(tok, "auto")
    examples = [chat.tokenize_example(tok, c, family) for c in synthetic_conversations(256, seed=seed + 1)]
    enc = [(e["input_ids"][:320], e["labels"][:320]) for e in examples]
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than 2 on a shared 2-core machine for a model this small
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    try:
        for step in range(steps):
            rows = [enc[(step * batch + i) % len(enc)] for i in range(batch)]
            width = max(len(ids) for ids, _ in rows)
            ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in rows])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
            labels = torch.tensor([row_labels + [-100] * (width - len(row_labels)) for _, row_labels in rows])
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(out_dir)
    return out_dir


def cached_prefit_model(root: Path) -> Path:
    """The pre-fitted model, from ~/.cache/cra/test-models when an identical one was built before, else
    built into `root` and cached. The key holds everything the build depends on (the builder's sources,
    the Python whose standard library the tokenizer is trained on, the library versions), so a cached
    model is the one a fresh machine builds: the learning tests' figures were measured on fresh builds
    (CRA_TEST_CACHE pointing at an empty directory)."""
    import hashlib
    import os
    import sys

    import tokenizers
    import torch
    import transformers

    import cra.chat as chat
    import cra.testing.tiny as tiny

    key = hashlib.sha256()
    sources = sorted(Path(chat.__file__).parent.glob("*.py"))
    for source in (tiny.__file__, *sources, __file__):
        key.update(Path(source).read_bytes())
    key.update(f"{sys.version} {torch.__version__} {transformers.__version__} {tokenizers.__version__}".encode())
    cache_root = Path(os.environ.get("CRA_TEST_CACHE", Path.home() / ".cache" / "cra" / "test-models"))
    cached = cache_root / f"prefit-{key.hexdigest()[:16]}"
    if (cached / "config.json").is_file():
        return cached
    model = prefit_tiny_model(root / "model")
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = cache_root / f".{cached.name}.{os.getpid()}"
        shutil.copytree(model, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home: build it each session
    return model


_VERBS = {"Read": "Read", "Search for": "Grep", "List": "Glob", "Run": "Bash", "Edit": "Edit", "Write": "Write"}
_ARGS = {
    "Read": ["src/app.py", "README.md", "setup.cfg"],
    "Grep": ["def main", "TODO", "import os"],
    "Glob": ["*.py", "tests/*.py", "src/**"],
    "Bash": ["pytest -q", "make lint", "ls src"],
    "Edit": ["src/app.py", "src/cli.py"],
    "Write": ["notes.md", "src/new.py"],
}


def learnable_conversations(n: int, seed: int = 0) -> list[dict]:
    """Like `synthetic_conversations`, but the user's request names the tool Claude then uses
    ("Search for TODO" -> Grep TODO): contexts where the right next action can be learned, so RL has
    a signal to follow, not only the noise of a random reference."""
    import random

    from cra.testing.tiny import synthetic_conversations

    rng = random.Random(seed)
    schemas = {t["function"]["name"]: t for c in synthetic_conversations(40, seed=0) for t in json.loads(c["tools"])}
    out = []
    for i in range(n):
        verb = rng.choice(sorted(_VERBS))
        name = _VERBS[verb]
        arg = rng.choice(_ARGS[name])
        call_id = f"call_{i}"
        messages = [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"{verb} {arg}."},
            {
                "role": "assistant",
                "content": f"I will use {name} on {arg}.",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps({"arg": arg})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": f"ok: {arg}"},
            {"role": "assistant", "content": f"Done: {verb.lower()} {arg}."},
        ]
        out.append({"messages": messages, "tools": json.dumps([schemas[n] for n in sorted(schemas)])})
    return out


def write_learnable_dataset(out_dir: Path, n_train: int = 24, n_eval: int = 4, seed: int = 3) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = learnable_conversations(n_train + n_eval, seed=seed)
    for name, part in (("train.jsonl", rows[:n_train]), ("eval.jsonl", rows[n_train:])):
        (out_dir / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return out_dir


def sft_database(root: Path) -> Path:
    """A cra database holding one completed SFT run (LoRA on the pre-fitted tiny model) and its dataset;
    built once per session, copied by `use_sft_database`."""
    if "db" in _BUILT:
        return _BUILT["db"]
    import os

    from cra.db import open_db
    from cra.train.config import SFTSettings
    from cra.train.sft import train_sft

    model = cached_prefit_model(root)
    data = write_learnable_dataset(root / "data")
    db_path = root / "home" / "cra.db"
    shutil.rmtree(root / "home", ignore_errors=True)  # left by an earlier process: start clean
    db_path.parent.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("CRA_HOME")
    os.environ["CRA_HOME"] = str(root / "home")
    try:
        settings = SFTSettings(
            base=str(model),
            dataset=str(data),
            load_in_4bit=False,
            max_steps=SFT_STEPS,
            eval_steps=SFT_STEPS,
            batch_size=4,
            grad_accum=1,
            max_length=512,
            learning_rate=2e-3,
            cpu_threads=1,
            logging_steps=2,
            warmup_ratio=0,
            runs_dir=str(root / "runs"),
        )
        from transformers import set_seed

        # train_sft draws the LoRA init from the global generators before its Trainer seeds them: seed
        # here, or the adapter every RL test starts from depends on which tests ran first.
        set_seed(0)
        run = train_sft(settings, open_db(str(db_path)), echo=lambda *a, **k: None)
        assert run["status"] == "completed", run
    finally:
        if old is None:
            os.environ.pop("CRA_HOME", None)
        else:
            os.environ["CRA_HOME"] = old
    _BUILT["db"] = db_path
    _BUILT["model"] = model
    _BUILT["data"] = data
    return db_path


def use_sft_database(root: Path, cra_home: Path) -> dict:
    """Copy the session's SFT database into this test's CRA_HOME; return paths and the SFT run."""
    from cra.db import open_db

    src = sft_database(root)
    cra_home.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(cra_home / "cra.db") + suffix)
    db = open_db()
    (sft,) = db.query("SELECT * FROM runs WHERE kind = 'sft'")
    return {"db": db, "model": str(_BUILT["model"]), "data": str(_BUILT["data"]), "sft": sft}


def store_perturbed_pairs(db, n_conversations: int = 30, seed: int = 11) -> int:
    """Preference pairs as `cra dataset pairs` mines them (Claude's real call against a wrong tool or
    malformed arguments), stored in the `pairs` table; `cra dataset pairs --no-mine` exports them."""
    import random

    from cra.dataset.pairs import perturb_args, perturb_tool, store_pair
    from cra.testing.tiny import synthetic_conversations

    rng = random.Random(seed)
    added = 0
    for k, conv in enumerate(synthetic_conversations(n_conversations, seed=seed)):
        messages = conv["messages"]
        for i, m in enumerate(messages):
            if m["role"] == "assistant" and m.get("tool_calls"):
                kind = "perturbed_tool" if rng.random() < 0.5 else "perturbed_args"
                bad = perturb_tool(m, rng) if kind == "perturbed_tool" else perturb_args(m, rng)
                if bad is not None:
                    added += store_pair(db, kind, messages[:i], [m], [bad], conv["tools"], session_id=f"s{k}")
    return added
