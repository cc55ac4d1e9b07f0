"""The local model: which files answer (a run's GGUF or adapter), loading them, and generating text
token by token in a worker thread, for a stream to read as it comes.

Two backends, both greedy by default and both fed token ids from the run's own tokenizer (as `cra
eval` does, so serving and evaluation see the same prompt): llama.cpp (llama-cpp-python, the exported
GGUF: merged, or base + adapter) and hf (transformers + the PEFT adapter).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.build import BuildOptions
from ..errors import ConfigError, MissingDependencyError, NotFoundError, StageError
from . import render
from .answer import held_back

BACKENDS = ("llama.cpp", "hf")
DEFAULT_CONTEXT = 8192  # a model's full window (128k for Llama 3.1) would allocate a KV cache serving rarely needs


@dataclass
class ModelSpec:
    """What `cra serve` loads: resolved from a run or a GGUF file, nothing loaded yet."""

    backend: str
    label: str  # shown in `cra serve status` and recorded in serve_servers.model
    tokenizer_path: str
    chat_template: str = "auto"
    model_path: str | None = None  # llama.cpp: the GGUF (merged, or the base when lora_path is set)
    lora_path: str | None = None
    base_model: str | None = None  # hf
    adapter: str | None = None  # hf
    run_id: int | None = None
    build_options: BuildOptions = field(default_factory=BuildOptions)


def _dataset_options(db, run: dict[str, Any]) -> BuildOptions:
    """The options the run's dataset was built with (system prompt, thinking, context turns, ...):
    the request is rendered with the same. Defaults when the dataset was not built by cra."""
    ref = run.get("dataset")
    if not ref or "datasets" not in db.table_names():
        return BuildOptions()
    rows = list(
        db.query(
            "SELECT params FROM datasets WHERE name = ? OR path = ? ORDER BY id DESC LIMIT 1",
            [ref, str(Path(ref).expanduser().resolve())],
        )
    )
    if not rows:
        return BuildOptions()
    params = json.loads(rows[0]["params"] or "{}")
    known = {k: v for k, v in params.items() if k in BuildOptions.__dataclass_fields__ and k != "filters"}
    try:
        return BuildOptions(**known)
    except (TypeError, ValueError):
        return BuildOptions()


def _from_run(db, run: dict[str, Any], tokenizer: str | None) -> dict[str, Any]:
    """What every spec of a run shares: its tokenizer (kept beside the adapter), template and dataset options."""
    from ..train.runs import adapter_dir

    adapter = adapter_dir(db, run)
    own = adapter if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else None
    return dict(
        tokenizer_path=tokenizer or str(own or run["base_model"]),
        chat_template=(run.get("config") or {}).get("chat_template", "auto"),
        run_id=run["id"],
        build_options=_dataset_options(db, run),
    )


def _run_spec(db, run: dict[str, Any], backend: str, tokenizer: str | None) -> ModelSpec:
    from ..eval.backends import gguf_files
    from ..train.runs import adapter_dir

    common = _from_run(db, run, tokenizer)
    if backend == "hf":
        adapter = adapter_dir(db, run)
        if adapter is None:
            raise NotFoundError(f"run {run['id']} has no adapter to serve: serve a completed training run")
        return ModelSpec(
            "hf", f"run {run['id']} (adapter {adapter})", base_model=run["base_model"], adapter=str(adapter), **common
        )
    files = gguf_files(db, run["id"])
    if "merged" in files:
        return ModelSpec("llama.cpp", f"run {run['id']} ({files['merged']})", model_path=str(files["merged"]), **common)
    if "adapter" in files and "base" in files:
        return ModelSpec(
            "llama.cpp",
            f"run {run['id']} ({files['base']} + {files['adapter']})",
            model_path=str(files["base"]),
            lora_path=str(files["adapter"]),
            **common,
        )
    raise NotFoundError(
        f"run {run['id']} has no exported GGUF: run `cra export gguf {run['id']}` first, or serve it with --backend hf"
    )


def resolve(db, ref: str | None, backend: str, tokenizer: str | None = None, chat_template: str | None = None):
    """A ModelSpec for RUN (an id, 'last', 'promoted'; default: the promoted model, else the last run)
    or a GGUF file (its run found through `artifacts`, else --tokenizer names the tokenizer)."""
    from ..export.model_files import find_run, promoted_run_id

    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}")
    if ref and ref.endswith(".gguf"):
        if backend != "llama.cpp":
            raise ConfigError("a GGUF file is served with --backend llama.cpp")
        path = Path(ref).expanduser().resolve()
        if not path.is_file():
            raise NotFoundError(f"no GGUF file at {path}")
        run = None
        if "artifacts" in db.table_names():
            row = db.execute(
                "SELECT run_id FROM artifacts WHERE kind = 'gguf' AND path = ? ORDER BY id DESC LIMIT 1", [str(path)]
            ).fetchone()
            if row:
                from ..train.runs import get_run

                run = get_run(db, row[0])
        if run is None and not tokenizer:
            raise ConfigError(
                f"{path.name} belongs to no recorded run, so its tokenizer and chat template are unknown: pass "
                "--tokenizer DIR (the model's tokenizer files) and, if it trained with one, --chat-template FILE"
            )
        common = _from_run(db, run, tokenizer) if run is not None else {"tokenizer_path": tokenizer}
        spec = ModelSpec("llama.cpp", str(path), model_path=str(path), **common)
    else:
        if ref is None:
            ref = "promoted" if promoted_run_id(db) is not None else "last"
        spec = _run_spec(db, find_run(db, ref), backend, tokenizer)
    if chat_template:
        spec.chat_template = chat_template
    return spec


# -- loading and generating --------------------------------------------------------------------------


class LocalModel:
    """A loaded model and its tokenizer. `run_tokens` is blocking: call it from a worker thread."""

    backend: str
    n_ctx: int

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.tokenizer = render.load_tokenizer(spec.tokenizer_path, spec.chat_template)
        vocab = self.tokenizer.get_vocab()
        self.stop_ids = {vocab[t] for t in (*render.END_OF_TURN, self.tokenizer.eos_token) if t in vocab}
        self.stop_strings = tuple(
            s for s in (*render.END_OF_TURN, self.tokenizer.eos_token, self.tokenizer.pad_token) if s
        )
        self.counter = render.ExactCounter(self.tokenizer, spec.chat_template)
        self.lock = threading.Lock()  # one generation at a time: a model's state is not shared

    def encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def run_tokens(self, ids: list[int], max_new: int, temperature: float | None, cancel: threading.Event, emit):
        raise NotImplementedError

    def close(self) -> None:
        pass


class LlamaCppModel(LocalModel):
    backend = "llama.cpp"

    def __init__(self, spec: ModelSpec, n_ctx: int | None = None, threads: int = 0):
        super().__init__(spec)
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError(
                "serving a GGUF needs llama-cpp-python: pip install 'cra-claude[serve,llama]' (it builds llama.cpp, "
                "about 7 minutes on 2 cores), or serve the adapter with --backend hf"
            ) from exc
        kwargs: dict[str, Any] = {"verbose": False, "seed": 0}
        if threads:
            kwargs["n_threads"] = threads
        if spec.lora_path:
            kwargs["lora_path"] = spec.lora_path
        try:
            if not n_ctx:
                probe = Llama(model_path=spec.model_path, vocab_only=True, verbose=False)
                trained = next((int(v) for k, v in probe.metadata.items() if k.endswith(".context_length")), 0)
                probe.close()
                n_ctx = min(trained or DEFAULT_CONTEXT, DEFAULT_CONTEXT)
            self.llm = Llama(model_path=spec.model_path, n_ctx=n_ctx, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise StageError(f"llama.cpp cannot load {spec.model_path}: {exc}") from exc
        self.n_ctx = self.llm.n_ctx()
        self.stop_ids.add(self.llm.token_eos())

    def run_tokens(self, ids, max_new, temperature, cancel, emit):
        if temperature:
            sampling = {"temp": float(temperature), "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
        else:
            sampling = {"temp": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
        count = 0
        # reset=True keeps the KV cache of the longest shared prefix: Claude Code resends the whole
        # conversation each step, so only the new messages are evaluated.
        for token in self.llm.generate(ids, reset=True, **sampling):
            if token in self.stop_ids:
                return "end"
            count += 1
            if emit(token) is False or cancel.is_set():
                return "cancelled"
            if count >= max_new:
                return "max_tokens"
        return "end"

    def close(self):
        self.llm.close()


class HFModel(LocalModel):
    backend = "hf"

    def __init__(self, spec: ModelSpec, n_ctx: int | None = None, threads: int = 0):
        from ..eval.backends import GenerationSettings, HFBackend

        super().__init__(spec)
        if spec.base_model is None:
            raise ConfigError(f"{spec.label}: the hf backend needs the run's base model (serve a run, not a GGUF)")
        loaded = HFBackend(
            spec.base_model,
            spec.adapter,
            spec.tokenizer_path,
            GenerationSettings(cpu_threads=threads, chat_template=spec.chat_template),
        )
        self.model, self.device = loaded.model, loaded.device
        config_ctx = getattr(self.model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT
        self.n_ctx = n_ctx or min(config_ctx, DEFAULT_CONTEXT)

    def run_tokens(self, ids, max_new, temperature, cancel, emit):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        outcome = {"stop": "end"}

        class Emit(BaseStreamer):
            def __init__(self):
                self.prompt_seen = False
                self.count = 0

            def put(self, value):
                if not self.prompt_seen:  # generate() hands the streamer the prompt first
                    self.prompt_seen = True
                    return
                for token in value.view(-1).tolist():
                    if token in stop_ids or outcome["stop"] != "end":
                        continue
                    self.count += 1
                    if emit(token) is False:
                        outcome["stop"] = "cancelled"
                    elif self.count >= max_new:
                        outcome["stop"] = "max_tokens"

            def end(self):
                pass

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = cancel.is_set() or outcome["stop"] != "end"
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        stop_ids = self.stop_ids
        sampling = {"do_sample": True, "temperature": float(temperature)} if temperature else {"do_sample": False}
        with torch.no_grad():
            self.model.generate(
                input_ids=torch.tensor([ids], device=self.device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
                max_new_tokens=max_new + 1,
                eos_token_id=sorted(stop_ids) or None,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=Emit(),
                stopping_criteria=StoppingCriteriaList([Cancelled()]),
                **sampling,
            )
        if cancel.is_set() and outcome["stop"] == "end":
            return "cancelled"
        return outcome["stop"]


def load(spec: ModelSpec, n_ctx: int | None = None, threads: int = 0) -> LocalModel:
    cls = LlamaCppModel if spec.backend == "llama.cpp" else HFModel
    return cls(spec, n_ctx=n_ctx, threads=threads)


# -- one generation, read as it comes --------------------------------------------------------------------


@dataclass
class Finished:
    stop: str  # end, max_tokens, stop_sequence, cancelled, error
    output_tokens: int
    error: str | None = None


@dataclass
class Prepared:
    input_tokens: int


class Generation:
    """One completion, produced by a worker thread and read with `await started()` then `async for`.

    The worker takes the model's lock (requests queue for one model; the tokenizer is used under it
    too), runs `prepare` (render and tokenize: -> (prompt ids, max new tokens)), then decodes token
    ids into text as they come (never splitting a character), cuts at end-of-turn strings and the
    request's stop sequences, and stops when `cancel()` is called: a client that left, or a timeout."""

    def __init__(self, model: LocalModel, prepare, temperature=None, stop_sequences=()):
        self.model = model
        self.prepare = prepare
        self.temperature = temperature
        self.stops = tuple(s for s in (*model.stop_strings, *stop_sequences) if s)
        self.user_stops = set(stop_sequences)
        self._cancel = threading.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self.result: Finished | None = None
        self.text = ""
        self.tokens_out = 0  # generated so far (read when a timeout leaves before the end)
        self._thread = threading.Thread(target=self._work, name="cra-serve-generate", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _put(self, item) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self) -> None:
        ids: list[int] = []
        try:
            with self.model.lock:
                if self._cancel.is_set():
                    self._put(Finished("cancelled", 0))
                    return
                try:
                    prompt, max_new = self.prepare()
                except Exception as exc:  # TooLong, or a template that refuses the conversation
                    self._put(exc)
                    return
                self._put(Prepared(len(prompt)))
                self._generate(prompt, max_new, ids)
        except Exception as exc:  # the model failed: the request gets an error, the server goes on
            self._put(Finished("error", len(ids), f"{type(exc).__name__}: {exc}"))

    def _generate(self, prompt: list[int], max_new: int, ids: list[int]) -> None:
        tokenizer = self.model.tokenizer
        prefix = read = 0
        state: dict[str, Any] = {"text": "", "sent": 0, "stop": None}

        def emit(token: int):
            nonlocal prefix, read
            ids.append(token)
            self.tokens_out = len(ids)
            before = tokenizer.decode(ids[prefix:read], skip_special_tokens=False)
            now = tokenizer.decode(ids[prefix:], skip_special_tokens=False)
            if len(now) <= len(before) or now.endswith("\ufffd"):
                return True  # an incomplete character: wait for the next token
            state["text"] += now[len(before) :]
            prefix, read = read, len(ids)
            text = state["text"]
            for stop in self.stops:
                at = text.find(stop, max(0, state["sent"] - len(stop)))
                if at >= 0:
                    state["text"] = text = text[: max(at, state["sent"])]
                    state["stop"] = "stop_sequence" if stop in self.user_stops else "end"
            safe = len(text) - (0 if state["stop"] else held_back(text, self.stops))
            if safe > state["sent"]:
                self._put(text[state["sent"] : safe])
                state["sent"] = safe
            return state["stop"] is None and not self._cancel.is_set()

        stop = self.model.run_tokens(prompt, max_new, self.temperature, self._cancel, emit)
        text = state["text"]
        if state["stop"] is None and len(text) > state["sent"]:
            self._put(text[state["sent"] :])
        self._put(Finished(state["stop"] or stop, len(ids)))

    async def _next(self, deadline: float | None):
        timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            self.cancel()
            raise TimeoutError from None

    async def started(self, deadline: float | None = None) -> int:
        """The prompt's token count once it is prepared; raises what `prepare` raised, or TimeoutError."""
        item = await self._next(deadline)
        if isinstance(item, Exception):
            raise item
        if isinstance(item, Finished):
            self.result = item
            return 0
        return item.input_tokens

    async def pieces(self, deadline: float | None = None):
        """Yields text pieces; sets `result` at the end. Raises TimeoutError past `deadline` (loop time)."""
        while self.result is None:
            item = await self._next(deadline)
            if isinstance(item, Finished):
                self.result = item
                return
            self.text += item
            yield item

    async def complete(self, deadline: float | None = None) -> str:
        async for _ in self.pieces(deadline):
            pass
        return self.text
