"""`cra dataset build`: recorded turns -> tool-calling training examples on disk.

One pass over the database (streamed: see turn_chats.py), in this order per turn: filters (cheap, on
facts) -> chat -> redaction (before truncation, so a cut never leaves half a secret unmatched) ->
truncation of long tool outputs -> token budget -> exact-duplicate removal -> split (by session,
project or time: `split_plan`) -> jsonl. Bootstrap workflows (synthetic) come after all real turns,
so on a duplicate the real one wins, and they only ever go to the train split. With a focus file
(`cra eval gaps`), training examples in the situations the last model got wrong are written
`focus_factor` times (`FocusOversampler`).

Writes `<out>/train.jsonl`, `<out>/eval.jsonl` and `<out>/README.md` (the dataset card), and a
`datasets` row.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field

import jsonlines

from ..base_model import DEFAULT_BASE, DEFAULT_MAX_LENGTH, hub_reachable
from ..chat import FAMILIES, compact_tools, count_tokens, render, resolve_family
from ..redact import Redactor
from .filters import TurnFilters
from .tool_schemas import ObservedSchemas, SchemaResolver
from .turn_chats import TurnData, TurnReader, table_exists

FORMATS = ("openai", "sharegpt")
UNITS = ("turn", "step")
SPLITS = ("session", "project", "time")
# offered: every tool the session offered, schemas as recorded; compact: the same tools, names and
# parameters without the long descriptions (cra.chat.compact_tools); used: only the tools the example calls.
TOOLS_MODES = ("offered", "compact", "used")

DEFAULT_SYSTEM = (
    "You are Claude Code, an AI coding agent working in the user's project through tools. "
    "Explore before changing things, prefer the dedicated file and search tools, run independent "
    "reads in parallel, verify your changes, and finish with a clear answer."
)
# What a session without a recorded tool list is assumed to have offered (plus what it used).
CORE_TOOLS = ("Bash", "Read", "Write", "Edit", "Glob", "Grep", "Agent", "TodoWrite", "WebFetch", "WebSearch")
TRUNC_MARK = "\n\n[... cra truncated %d characters of tool output ...]\n\n"


@dataclass
class BuildOptions:
    format: str = "openai"
    unit: str = "turn"  # one example per turn, or per assistant step (the history before it + the step)
    context_turns: int = 0  # earlier turns of the session (prompt + final answer) kept as context
    thinking: str = "reasoning"  # 'reasoning': a separate field on assistant messages; 'omit'
    tools: str = "offered"  # see TOOLS_MODES
    system: str = "default"  # 'default', 'recorded' (the client's own system prompt), 'none'
    max_tool_output_chars: int = 4000
    max_tokens: int = DEFAULT_MAX_LENGTH  # the example budget: SFT's default --max-length
    base: str | None = DEFAULT_BASE  # the base the data is for: its tokenizer counts tokens (see TokenCounter)
    tokenizer: str | None = None  # a tokenizer directory to count with instead of the base's
    chat_template: str = "auto"  # how the base renders (as `cra train sft --chat-template`)
    eval_fraction: float = 0.1
    split_by: str = "session"  # session | project | time (see split_plan)
    seed: int = 0
    focus: str | None = None  # a gaps file of `cra eval gaps`: oversample the situations it lists
    focus_factor: int = 3  # each training example in a focus situation is written this many times
    redact: bool = True
    include_subagents: bool = True
    synthetic: bool = True  # include `cra bootstrap` workflows (train split only)
    limit: int | None = None  # stop after this many examples written
    filters: TurnFilters = field(default_factory=TurnFilters)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}")
        if self.split_by not in SPLITS:
            raise ValueError(f"split_by must be one of {', '.join(SPLITS)}")
        if self.focus_factor < 1:
            raise ValueError("focus factor must be at least 1")
        if self.tools not in TOOLS_MODES:
            raise ValueError(f"tools must be one of {', '.join(TOOLS_MODES)}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError("eval fraction must be in [0, 1)")
        if self.max_tool_output_chars < 200 or self.max_tokens < 256:
            raise ValueError("max tool output must be >= 200 characters and max tokens >= 256")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["filters"] = self.filters.as_dict()
        return d


class TokenCounter:
    """Tokens of an example as training will see them: rendered by the base's family, tokenized by its
    tokenizer (cra.chat, as `cra train sft` does).

    The tokenizer is the one at `tokenizer_path`, else the base's: a local directory, the local hub
    cache, or the hub when it can be reached (tokenizer files only). Without one, the rendered text's
    characters / ESTIMATE_CHARS_PER_TOKEN, which errs long (measured on recorded sessions: 4.8
    characters a token with Llama 3's tokenizer, 4.1 with Qwen's).
    """

    ESTIMATE_CHARS_PER_TOKEN = 3.5

    def __init__(self, base: str | None = None, tokenizer_path: str | None = None, chat_template: str = "auto"):
        self.tokenizer = None
        source = tokenizer_path or base
        if source and importlib.util.find_spec("transformers") is not None:
            self.tokenizer = _load_tokenizer(source, required=bool(tokenizer_path))
        if self.tokenizer is not None:
            self.family = resolve_family(self.tokenizer, chat_template)
            self.method = f"tokenizer of {source} ({self.family.name} rendering)"
        else:
            fallback = chat_template if chat_template in FAMILIES else "llama3"
            self.family = FAMILIES[fallback]
            self.method = (
                f"estimate (rendered characters / {self.ESTIMATE_CHARS_PER_TOKEN:g}, {self.family.name} rendering"
                + (f"; no tokenizer of {source} on this machine" if source else "")
                + ")"
            )

    def count(self, messages: list[dict], tools: list[dict] | str | None) -> int:
        conversation = {"messages": messages, "tools": tools}
        if self.tokenizer is None:
            return math.ceil(len(render(conversation, self.family).text) / self.ESTIMATE_CHARS_PER_TOKEN)
        return count_tokens(self.tokenizer, conversation, self.family)


def _load_tokenizer(source: str, required: bool):
    """A tokenizer from a directory or a hub id, never waiting on an unreachable hub. When not `required`
    (the base's, for counting), None where there is none; a `--tokenizer` directory must load."""
    from transformers import AutoTokenizer

    path = os.path.expanduser(source)
    if required:
        return AutoTokenizer.from_pretrained(path)
    try:
        if os.path.isdir(path):
            return AutoTokenizer.from_pretrained(path)
        return AutoTokenizer.from_pretrained(source, local_files_only=not hub_reachable())
    except (OSError, ValueError):
        return None


def truncate(text: str, limit: int, original_len: int | None = None) -> tuple[str, bool]:
    """Head and tail of a long output with a visible marker: the model still sees how it starts and ends.

    `original_len`: the length before `precut` (the marker counts what the model does not see)."""
    full = original_len or len(text)
    if full <= limit:
        return text, False
    head = limit * 2 // 3
    tail = limit - head
    return text[:head] + (TRUNC_MARK % (full - head - tail)) + text[len(text) - tail :], True


def _full_length(m: dict) -> int:
    return m.get("_original_len", len(m["content"]))


def _truncated(chat: list[dict], limit: int) -> tuple[list[dict], int]:
    """The messages with tool outputs cut to `limit` characters (head + tail); how many were cut."""
    body, cut = [], 0
    for m in chat:
        if m["role"] == "tool":
            text, was_cut = truncate(m["content"], limit, m.get("_original_len"))
            cut += was_cut
            m = {k: v for k, v in m.items() if k != "_original_len"}
            m["content"] = text
        body.append(m)
    return body, cut


PRECUT_MARGIN = 2000


def precut(m: dict, limit: int) -> dict:
    """Drop the middle of a huge tool output before redaction (redaction costs ~2 s a megabyte).

    Keeps the head and tail that any later truncation to <= `limit` can show, plus a margin so a
    secret crossing the final cut is still whole when redacted."""
    text = m.get("content") or ""
    if m["role"] != "tool" or len(text) <= limit + 2 * PRECUT_MARGIN:
        return m
    head = limit * 2 // 3 + PRECUT_MARGIN
    tail = limit - limit * 2 // 3 + PRECUT_MARGIN
    return {**m, "content": text[:head] + text[len(text) - tail :], "_original_len": len(text)}


def in_eval(session_id: str, seed: int, fraction: float) -> bool:
    """Deterministic split by session: the same seed always puts a session on the same side."""
    if fraction <= 0:
        return False
    h = hashlib.sha256(f"{seed}:{session_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def split_plan(db, split_by: str, seed: int, fraction: float):
    """session id -> True when its turns go to the eval split.

    - session: each session on its own side, by a hash of its id with the seed (stable as data grows);
    - project: every session of a project (its project dir, else its working directory) on the same
      side, by a hash of the project: the eval split holds projects the model never saw;
    - time: the newest `fraction` of the sessions (by their first turn) are held out: trained on the
      past, evaluated on the future (sessions move to train as newer ones are recorded).
    """
    if split_by == "session" or fraction <= 0:
        return lambda session_id: in_eval(session_id, seed, fraction)
    sessions = [r[0] for r in db.execute("SELECT DISTINCT session_id FROM turns")] if table_exists(db, "turns") else []
    if split_by == "project":
        project: dict[str, str] = {}
        if table_exists(db, "sessions"):
            for sid, where in db.execute("SELECT id, coalesce(project_dir, cwd) FROM sessions"):
                if where:
                    project[sid] = where
        return lambda session_id: in_eval(project.get(session_id) or session_id, seed, fraction)
    started = {
        sid: when or ""
        for sid, when in db.execute("SELECT session_id, min(started_at) FROM turns WHERE agent_id IS NULL GROUP BY 1")
    }
    ordered = sorted(sessions, key=lambda sid: (started.get(sid, ""), sid))
    held = max(1, round(fraction * len(ordered))) if len(ordered) > 1 else 0
    newest = set(ordered[len(ordered) - held :])
    return lambda session_id: session_id in newest


class FocusOversampler:
    """How many times to write a training example: `factor` when one of its steps is in a situation
    of the focus file (the gaps of the last model), else once. Situations are cra/signals/situations.py's,
    the ones `cra eval gaps` groups by, so build and eval agree on what a situation is."""

    def __init__(self, path: str | None, factor: int):
        self.factor = factor
        self.focus: set[str] = set()
        if path:
            from ..signals.situations import read_focus

            self.focus = set(read_focus(path))
        self.examples = 0
        self.copies = 0

    def copies_of(self, example: dict) -> int:
        if not self.focus or self.factor == 1:
            return 1
        from ..signals.situations import example_situations

        if not any(s.key in self.focus for s in example_situations(example)):
            return 1
        self.examples += 1
        self.copies += self.factor - 1
        return self.factor


def _digest(example: dict) -> bytes:
    """Identity for exact-duplicate removal: the content, with tool call ids replaced by their
    position (the same work recorded twice, or in two sessions, has different ids)."""
    ids: dict[str, str] = {}
    for m in example["messages"]:
        for tc in m.get("tool_calls") or ():
            ids.setdefault(tc["id"], f"call_{len(ids)}")
    blob = json.dumps([example["messages"], example["tools"]], sort_keys=True)
    for real, pos in ids.items():
        if real:
            blob = blob.replace(json.dumps(real), json.dumps(pos))
    return hashlib.blake2b(blob.encode(), digest_size=16).digest()


def redact_message(r: Redactor, m: dict) -> dict:
    """A chat message with every string redacted; tool arguments are redacted as parsed JSON, so the
    result is still valid JSON and `{"password": "..."}` is caught by its key."""
    if not r.enabled:
        return m
    out = dict(m)
    out["content"] = r.redact(m.get("content") or "")
    if m.get("reasoning"):
        out["reasoning"] = r.redact(m["reasoning"])
    if m.get("tool_calls"):
        out["tool_calls"] = []
        for tc in m["tool_calls"]:
            try:
                args = json.dumps(r.redact_obj(json.loads(tc["function"]["arguments"])), ensure_ascii=False)
            except ValueError:
                args = r.redact(tc["function"]["arguments"])
            out["tool_calls"].append({**tc, "function": {**tc["function"], "arguments": args}})
    return out


def to_sharegpt(example: dict) -> dict:
    """LLaMA-Factory's sharegpt layout: human/gpt/function_call/observation, system and tools apart.

    LLaMA-Factory has no slot for text said alongside a call, so that text is dropped; parallel calls
    are one function_call holding a list, and their results one observation holding a list."""
    conv, system = [], None
    pending_obs: list[str] = []
    for m in example["messages"]:
        role = m["role"]
        if role != "tool" and pending_obs:
            conv.append(
                {
                    "from": "observation",
                    "value": pending_obs[0] if len(pending_obs) == 1 else json.dumps(pending_obs, ensure_ascii=False),
                }
            )
            pending_obs = []
        if role == "system":
            system = m["content"]
        elif role == "user":
            conv.append({"from": "human", "value": m["content"]})
        elif role == "assistant" and m.get("tool_calls"):
            calls = [
                {"name": tc["function"]["name"], "arguments": json.loads(tc["function"]["arguments"])}
                for tc in m["tool_calls"]
            ]
            conv.append(
                {
                    "from": "function_call",
                    "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False),
                }
            )
        elif role == "assistant":
            conv.append({"from": "gpt", "value": m["content"]})
        elif role == "tool":
            pending_obs.append(m["content"])
    if pending_obs:
        conv.append(
            {
                "from": "observation",
                "value": pending_obs[0] if len(pending_obs) == 1 else json.dumps(pending_obs, ensure_ascii=False),
            }
        )
    tools = [t["function"] for t in json.loads(example["tools"] or "[]")]
    out = {"conversations": conv, "tools": json.dumps(tools, ensure_ascii=False)}
    if system is not None:
        out["system"] = system
    if "meta" in example:
        out["meta"] = example["meta"]
    return out


class DatasetBuilder:
    def __init__(
        self, db, options: BuildOptions, redactor: Redactor | None = None, counter: TokenCounter | None = None
    ):
        self.db = db
        self.o = options
        self.redactor = redactor or Redactor(enabled=options.redact)
        self.counter = counter or TokenCounter(options.base, options.tokenizer, options.chat_template)
        self.resolver = SchemaResolver(ObservedSchemas())
        self.stats: Counter[str] = Counter()
        self.seconds = 0.0
        self.removed = Counter({name: 0 for name in TurnFilters.ORDER})
        self.lengths = array("l")
        self._seen: set[bytes] = set()
        self._tools_cache: dict = {}
        self._cost_cache: dict[str, int] = {}
        self.tool_tokens: dict[str, array] = {mode: array("l") for mode in TOOLS_MODES}
        self.sessions: dict[str, set[str]] = {"train": set(), "eval": set()}
        self.focus = FocusOversampler(options.focus, options.focus_factor)

    # -- the pass -------------------------------------------------------------------------------

    def build(self, out_dir: str) -> dict:
        os.makedirs(out_dir, exist_ok=True)
        started = time.time()
        self._observe_mcp_inputs()
        self._held_out = split_plan(self.db, self.o.split_by, self.o.seed, self.o.eval_fraction)
        train_path, eval_path = os.path.join(out_dir, "train.jsonl"), os.path.join(out_dir, "eval.jsonl")
        with open(train_path, "w", encoding="utf-8") as tf, open(eval_path, "w", encoding="utf-8") as ef:
            self.writers = {"train": jsonlines.Writer(tf, compact=True), "eval": jsonlines.Writer(ef, compact=True)}
            done = False
            if table_exists(self.db, "turns"):
                reader = TurnReader(
                    self.db, thinking=self.o.thinking == "reasoning", include_subagents=self.o.include_subagents
                )
                done = self._run(reader, reader)
            if self.o.synthetic and not done and table_exists(self.db, "synthetic_workflows"):
                self._run(self._synthetic_turns(), None)
        self.seconds = round(time.time() - started, 3)
        return self.summary()

    def _run(self, turns, reader) -> bool:
        session = None
        context: list[tuple[str, str]] = []
        for turn in turns:
            key = (turn.session_id, turn.agent_id)
            if key != session:
                if reader is not None and turn.session_id != (session or (None,))[0]:
                    self.start_session(reader.session_tools(turn.session_id), reader.session_system(turn.session_id))
                elif reader is None:
                    self.start_session([], None)
                session, context = key, []
            self.stats["turns_seen"] += 1
            self.stats["synthetic_turns_seen" if turn.source == "bootstrap" else "real_turns_seen"] += 1
            if self._one_turn(turn, context):
                return True
            if turn.final_answer:
                context.append((turn.prompt_text, turn.final_answer))
                del context[: -max(self.o.context_turns, 1)]
        return False

    def start_session(self, tools: list[str], system: str | None) -> None:
        """The tools (Anthropic-format JSON lists) and system prompt the client sent in the session
        whose turns come next."""
        self.resolver.set_session(tools)
        self._tools_cache.clear()
        self._system_recorded = system

    def example(self, turn: TurnData, context: list) -> dict | None:
        """The whole turn (or the turn so far) as one example, fitted to the token budget; None when
        it cannot fit. What `cra serve` asks the model with: the rendering of every training example."""
        return self._fit(*self._parts(turn, context))

    def _parts(self, turn: TurnData, context: list) -> tuple:
        """(system, context messages, the turn's chat, tools JSON), redacted: an example's pieces."""
        r = self.redactor
        chat = [redact_message(r, precut(m, self.o.max_tool_output_chars)) for m in turn.messages]
        ctx = []
        for prompt, answer in context[-self.o.context_turns :] if self.o.context_turns else []:
            ctx += [{"role": "user", "content": r.redact(prompt)}, {"role": "assistant", "content": r.redact(answer)}]
        used = [tc["function"]["name"] for m in chat for tc in m.get("tool_calls") or ()]
        return self._system(turn), ctx, chat, self._tools_json(used, turn.source == "bootstrap")

    def _one_turn(self, turn: TurnData, context: list) -> bool:
        reason = self.o.filters.evaluate(turn.facts())
        if reason:
            self.removed[reason] += 1
            return False
        synthetic = turn.source == "bootstrap" or turn.is_synthetic
        split = "train" if turn.source == "bootstrap" else ("eval" if self._held_out(turn.session_id) else "train")
        if split == "eval" and synthetic:
            # No session in two splits, and synthetic turns never in eval: such a turn goes nowhere.
            self.removed["synthetic_in_eval_session"] += 1
            return False
        self.stats["turns_kept"] += 1

        system, ctx, chat, tools_json = self._parts(turn, context)
        ends = [len(chat)] if self.o.unit == "turn" else [i + 1 for i, m in enumerate(chat) if m["role"] == "assistant"]
        for end in ends:
            example = self._fit(system, ctx, chat[:end], tools_json)
            if example is None:
                self.removed["over_token_budget"] += 1
                continue
            example["meta"] = {
                "session_id": turn.session_id,
                "turn_id": turn.id,
                "step": end,
                "source": turn.source,
                "synthetic": bool(synthetic),
            }
            digest = _digest(example)
            if digest in self._seen:
                self.removed["duplicate"] += 1
                continue
            self._seen.add(digest)
            out = to_sharegpt(example) if self.o.format == "sharegpt" else example
            copies = self.focus.copies_of(example) if split == "train" else 1
            for _ in range(copies):
                self.writers[split].write(out)
            self.stats[f"{split}_examples"] += copies
            if synthetic:
                self.stats["synthetic_examples"] += 1
            self.sessions[split].add(turn.session_id)
            if self.o.limit and self.stats["train_examples"] + self.stats["eval_examples"] >= self.o.limit:
                return True
        return False

    # -- pieces ---------------------------------------------------------------------------------

    def _system(self, turn: TurnData) -> str | None:
        if self.o.system == "none":
            return None
        recorded = getattr(self, "_system_recorded", None)
        if self.o.system == "recorded" and recorded:
            return self.redactor.redact(recorded)
        text = DEFAULT_SYSTEM
        if turn.cwd:
            text += "\nWorking directory: " + self.redactor.redact(turn.cwd)
        return text

    def _tools_json(self, used: list[str], synthetic: bool) -> str:
        """The example's tool schemas as `--tools` asks (JSON), redacted; what each mode costs is noted."""
        offered = self.resolver.offered() or list(CORE_TOOLS)
        offered = offered + [n for n in dict.fromkeys(used) if n not in offered]
        variants = {
            "offered": self._schemas(tuple(offered), compact=False),
            "compact": self._schemas(tuple(offered), compact=True),
            "used": self._schemas(tuple(dict.fromkeys(used)), compact=False),
        }
        for mode, schemas in variants.items():
            self.tool_tokens[mode].append(self._tool_cost(schemas))
        return variants[self.o.tools]

    def _schemas(self, names: tuple[str, ...], compact: bool) -> str:
        key = (names, compact)
        cached = self._tools_cache.get(key)
        if cached is None:
            if compact:
                schemas = compact_tools(json.loads(self._schemas(names, compact=False)))
            else:
                schemas = [self.resolver.get(n) for n in names]
                if self.redactor.enabled:
                    schemas = self.redactor.redact_obj(schemas)
            cached = json.dumps(schemas, ensure_ascii=False)
            if len(self._tools_cache) > 64:
                self._tools_cache.clear()
            self._tools_cache[key] = cached
        return cached

    def _tool_cost(self, tools_json: str) -> int:
        """Tokens the tool list adds to an example (with the base's tokenizer and rendering)."""
        cost = self._cost_cache.get(tools_json)
        if cost is None:
            probe = [{"role": "user", "content": "."}]
            cost = self.counter.count(probe, tools_json) - self.counter.count(probe, None)
            if len(self._cost_cache) > 256:
                self._cost_cache.clear()
            self._cost_cache[tools_json] = cost
        return cost

    def _fit(self, system, ctx, chat, tools_json) -> dict | None:
        """The example within the token budget, shrunk in this order, else None (dropped):

        1. tool outputs over --max-tool-output-chars keep their head and tail (always);
        2. earlier turns given as context go, oldest first;
        3. tool outputs are cut tighter (head and tail, halving down to 256 characters);
        4. schemas of tools the example does not call go, largest first.
        The system prompt and the schemas of the tools the example calls are never cut.
        """
        head = [{"role": "system", "content": system}] if system else []
        tools = json.loads(tools_json) if tools_json else []
        context, limit, shrunk = list(ctx), self.o.max_tool_output_chars, set()

        def attempt():
            body, cut = _truncated(chat, limit)
            messages = head + context + body
            return messages, cut, self.counter.count(messages, tools)

        messages, truncated, n = attempt()
        while n > self.o.max_tokens and context:
            del context[:2]  # a (prompt, answer) pair
            shrunk.add("context")
            messages, truncated, n = attempt()
        while (
            n > self.o.max_tokens and limit > 256 and any(_full_length(m) > limit for m in chat if m["role"] == "tool")
        ):
            limit = max(256, limit // 2)
            shrunk.add("tool_outputs")
            messages, truncated, n = attempt()
        if n > self.o.max_tokens:
            called = {tc["function"]["name"] for m in chat for tc in m.get("tool_calls") or ()}
            unused = [t for t in tools if (t.get("function") or t).get("name") not in called]
            for tool in sorted(unused, key=lambda t: len(json.dumps(t)), reverse=True):
                tools = [t for t in tools if t is not tool]
                shrunk.add("tool_schemas")
                n = self.counter.count(messages, tools)
                if n <= self.o.max_tokens:
                    break
        if n > self.o.max_tokens:
            return None
        self.stats["truncated_tool_outputs"] += truncated
        if shrunk:
            self.stats["shrunk_to_fit_budget"] += 1
            for kind in shrunk:
                self.stats[f"shrunk_{kind}"] += 1
        self.lengths.append(n)
        return {
            "messages": messages,
            "tools": json.dumps(tools, ensure_ascii=False) if "tool_schemas" in shrunk else tools_json,
        }

    def _observe_mcp_inputs(self):
        """MCP and other unknown tools get a schema described from every input they were called with."""
        if not table_exists(self.db, "tool_calls"):
            return
        for name, inp in self.db.execute(
            "SELECT tool_name, tool_input FROM tool_calls WHERE tool_name LIKE 'mcp\\_\\_%' ESCAPE '\\'"
        ):
            try:
                self.resolver.observed.observe(name, json.loads(inp or "{}"))
            except ValueError:
                continue

    def _synthetic_turns(self):
        cur = self.db.execute("SELECT id, session_id, messages FROM synthetic_workflows ORDER BY id")
        for wid, session_id, messages in cur:
            chat = json.loads(messages)
            calls = [
                (tc["function"]["name"], "success", tc["id"], json.loads(tc["function"]["arguments"]), None)
                for m in chat
                for tc in m.get("tool_calls") or ()
            ]
            final = chat[-1]["content"] if chat and chat[-1]["role"] == "assistant" else None
            yield TurnData(
                id=wid,
                session_id=session_id,
                agent_id=None,
                turn_index=0,
                prompt_text=chat[0]["content"],
                final_answer=final,
                outcome="completed",
                is_synthetic=True,
                cwd="/home/user/project",
                messages=chat,
                calls=calls,
                tool_call_count=len(calls),
                source="bootstrap",
            )

    # -- report ---------------------------------------------------------------------------------

    def summary(self) -> dict:
        lengths = sorted(self.lengths)

        def pct(p):
            return lengths[min(len(lengths) - 1, int(p * len(lengths)))] if lengths else 0

        return {
            "turns_seen": self.stats["turns_seen"],
            "real_turns_seen": self.stats["real_turns_seen"],
            "synthetic_turns_seen": self.stats["synthetic_turns_seen"],
            "turns_kept": self.stats["turns_kept"],
            "removed": dict(self.removed),
            "train_examples": self.stats["train_examples"],
            "eval_examples": self.stats["eval_examples"],
            "synthetic_examples": self.stats["synthetic_examples"],
            "train_sessions": len(self.sessions["train"]),
            "split_by": self.o.split_by,
            "focus": {
                "file": self.o.focus,
                "situations": len(self.focus.focus),
                "examples": self.focus.examples,
                "copies": self.focus.copies,
                "factor": self.o.focus_factor,
            }
            if self.o.focus
            else None,
            "eval_sessions": len(self.sessions["eval"]),
            "truncated_tool_outputs": self.stats["truncated_tool_outputs"],
            "shrunk_to_fit_budget": self.stats["shrunk_to_fit_budget"],
            "shrunk": {kind: self.stats[f"shrunk_{kind}"] for kind in ("context", "tool_outputs", "tool_schemas")},
            "tool_list_tokens": {
                mode: round(sum(costs) / len(costs), 1) if costs else 0 for mode, costs in self.tool_tokens.items()
            },
            "redactions": dict(sorted(self.redactor.counts.items())),
            "redaction_enabled": self.redactor.enabled,
            "tool_schema_sources": {k: v for k, v in self.resolver.sources.items() if v},
            "tokens": {
                "counted_with": self.counter.method,
                "budget": self.o.max_tokens,
                "min": lengths[0] if lengths else 0,
                "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
                "median": pct(0.5),
                "p95": pct(0.95),
                "max": lengths[-1] if lengths else 0,
                "total": sum(lengths),
            },
            "seconds": self.seconds,
        }


def write_card(path: str, name: str, options: BuildOptions | None, summary: dict, kind: str = "sft") -> None:
    """The dataset's README.md; `options` are the build's (None for pairs, which have their own)."""
    s = summary
    lines = [
        f"# {name}",
        "",
        f"Built by `cra dataset {'build' if kind == 'sft' else 'pairs'}` on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.",
        "",
    ]
    if kind == "sft":
        assert options is not None
        rows = (
            "`{messages, tools}` rows, tool calls as OpenAI `tool_calls` with JSON-string arguments"
            if options.format == "openai"
            else "LLaMA-Factory sharegpt: human/gpt/function_call/observation"
        )
        lines += [
            f"Format: **{options.format}** ({rows}), "
            f"one example per **{options.unit}**. Load with "
            '`datasets.load_dataset("json", data_files={"train": "train.jsonl", "eval": "eval.jsonl"})`.',
            "",
            "## Counts",
            "",
            "| | |",
            "|---|---|",
            f"| turns seen | {s['turns_seen']} (real {s['real_turns_seen']}, synthetic {s['synthetic_turns_seen']}) |",
            f"| turns kept | {s['turns_kept']} |",
            f"| train examples | {s['train_examples']} from {s['train_sessions']} sessions |",
            f"| eval examples | {s['eval_examples']} from {s['eval_sessions']} sessions |",
            f"| synthetic examples (train only) | {s['synthetic_examples']} |",
            f"| tool outputs truncated (head + tail, marked) | {s['truncated_tool_outputs']} |",
            f"| examples shrunk to fit the token budget | {s['shrunk_to_fit_budget']} (context dropped "
            f"{s['shrunk']['context']}, tool outputs cut tighter {s['shrunk']['tool_outputs']}, unused tool schemas "
            f"dropped {s['shrunk']['tool_schemas']}) |",
            "",
            "## Filters",
            "",
            "Turns removed by each filter (the first one a turn failed):",
            "",
            "| filter | removed |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v} |" for k, v in s["removed"].items()]
        f = options.filters
        lines += [
            "",
            f"Thresholds: at least {f.min_tool_calls} tool calls, final answer at least {f.min_answer_words} words, "
            f"failed/interrupted turns {'skipped' if f.skip_failed else 'kept'}, unrecovered errors "
            f"{'skipped' if f.skip_unrecovered else 'kept'}. {_split_sentence(options)} "
            "Exact duplicates removed.",
            "",
            *_focus_lines(s.get("focus")),
            "## Token lengths",
            "",
            f"Counted with {s['tokens']['counted_with']}, budget {options.max_tokens} (`cra train sft`'s default "
            f"--max-length is {DEFAULT_MAX_LENGTH}): min {s['tokens']['min']}, mean {s['tokens']['mean']}, "
            f"median {s['tokens']['median']}, p95 {s['tokens']['p95']}, max {s['tokens']['max']}, "
            f"total {s['tokens']['total']}.",
            "",
            "An example over the budget shrinks in this order: earlier turns given as context go (oldest first), "
            "long tool outputs are cut to a tighter head and tail, then schemas of tools the example does not call "
            "go (largest first). The system prompt and the schemas of called tools are never cut; an example that "
            "still does not fit is dropped (`over_token_budget` above).",
            "",
            "## Tool schemas",
            "",
            f"Tools listed: **{options.tools}**. Schema sources: "
            + (", ".join(f"{k} {v}" for k, v in s["tool_schema_sources"].items()) or "none")
            + ".",
            "",
            "What the tool list costs per turn (mean tokens, same counting), for each `--tools` choice:",
            "",
            "| --tools | tokens |",
            "|---|---|",
        ]
        lines += [f"| {mode} | {cost:g} |" for mode, cost in s["tool_list_tokens"].items()]
    else:
        lines += [
            "Format: TRL preference rows `{prompt, chosen, rejected, tools}` (conversational).",
            "",
            "| | |",
            "|---|---|",
            f"| train pairs | {s['train_examples']} |",
            f"| eval pairs | {s['eval_examples']} |",
            "",
            "Pairs by source: " + ", ".join(f"{k} {v}" for k, v in s["sources"].items()) + ".",
        ]
    lines += ["", "## Redaction", ""]
    if s["redaction_enabled"]:
        total = sum(s["redactions"].values())
        lines += [
            f"On: {total} values replaced with `[REDACTED:<kind>]` (provider keys and tokens, private keys, "
            "passwords and secrets in env/config/code/CLI, credentials in URLs and connection strings, "
            "auth headers and cookies; home directories become `/home/user`). By kind (what each means: "
            "cra's docs/redaction.md):",
            "",
            "| kind | replaced |",
            "|---|---|",
        ] + [f"| {k} | {v} |" for k, v in s["redactions"].items()]
    else:
        lines += ["**Off** (`--no-redact`): examples contain secrets and paths exactly as recorded. Do not share."]
    lines.append("")
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))


def _split_sentence(options: BuildOptions) -> str:
    how = {
        "session": "each session on one side, by a hash of its id",
        "project": "every session of a project on the same side, by a hash of the project directory",
        "time": "the newest sessions held out (trained on the past, evaluated on the future)",
    }[options.split_by]
    return (
        f"Split by **{options.split_by}** ({how}; `--split-by`), seed {options.seed}, "
        f"eval fraction {options.eval_fraction}."
    )


def _focus_lines(focus: dict | None) -> list[str]:
    if not focus:
        return []
    return [
        "## Focus",
        "",
        f"Oversampled from `{focus['file']}` (`cra eval gaps`): {focus['examples']} training examples in one of its "
        f"{focus['situations']} focus situations were written {focus['factor']} times ({focus['copies']} extra copies; "
        "the eval split is never oversampled).",
        "",
    ]


def record_dataset(db, name, kind, fmt, path, options_dict, summary) -> int:
    row = {
        "name": name,
        "kind": kind,
        "format": fmt,
        "path": os.path.abspath(path),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": json.dumps(options_dict, default=str),
        "stats": json.dumps(summary),
        "train_count": summary["train_examples"],
        "eval_count": summary["eval_examples"],
        "redacted": int(summary["redaction_enabled"]),
    }
    return db["datasets"].insert(row).last_pk
