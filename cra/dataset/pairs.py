"""Preference pairs: mined from sessions, imported from files, exported for DPO / reward models.

A pair is a prompt (the conversation up to a decision) with a chosen and a rejected assistant
message. Mined sources:
- `denial`: the user (or the permission rules) denied a call: that message is rejected, what Claude
  did next is chosen;
- `correction`: a call failed and a later message in the turn made a successful call of the same
  tool: the corrected message is chosen over the failed one;
- `perturbed_tool` / `perturbed_args`: Claude's real next action (all its calls succeeded) against
  the same message with a wrong tool, or with malformed arguments (a required key dropped, or
  arguments that are not valid JSON).
Stored unredacted in `pairs` (the database already holds the raw sessions); redacted when written.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter

import jsonlines

from ..jsonl import numbered_rows
from .build import CORE_TOOLS, DEFAULT_SYSTEM, in_eval, truncate
from .filters import FAILED
from .redact import Redactor
from .tool_schemas import BUILTIN, ObservedSchemas, SchemaResolver
from .turn_chats import TurnReader, table_exists

MINER_VERSION = "pairs-v1"
# Wrong-tool swaps that look plausible: the model must learn why the real one was right.
_CONFUSABLE = {
    "Read": ["Bash", "Grep", "Glob"],
    "Grep": ["Bash", "Glob", "Read"],
    "Glob": ["Bash", "Grep", "LS"],
    "Bash": ["Read", "Grep", "Write"],
    "Edit": ["Write", "Bash", "MultiEdit"],
    "Write": ["Edit", "Bash"],
    "MultiEdit": ["Edit", "Write"],
    "LS": ["Bash", "Glob"],
    "WebFetch": ["WebSearch", "Bash"],
    "WebSearch": ["WebFetch"],
    "Agent": ["Bash", "Grep"],
    "Task": ["Bash", "Grep"],
    "TodoWrite": ["Write"],
}


class PairFormatError(ValueError):
    pass


def _hash(prompt, chosen, rejected) -> str:
    blob = json.dumps([prompt, chosen, rejected], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def store_pair(
    db,
    source,
    prompt,
    chosen,
    rejected,
    tools=None,
    session_id=None,
    turn_id=None,
    tool_use_id=None,
    is_synthetic=False,
    origin=MINER_VERSION,
) -> bool:
    """Insert one pair; False when the same pair is already stored."""
    h = _hash(prompt, chosen, rejected)
    cur = db.conn.execute(
        "INSERT OR IGNORE INTO pairs (source, session_id, turn_id, tool_use_id, prompt, chosen, rejected, tools,"
        " is_synthetic, content_hash, origin, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            source,
            session_id,
            turn_id,
            tool_use_id,
            json.dumps(prompt, ensure_ascii=False),
            json.dumps(chosen, ensure_ascii=False),
            json.dumps(rejected, ensure_ascii=False),
            tools,
            int(is_synthetic),
            h,
            origin,
            _now(),
        ],
    )
    return cur.rowcount == 1


class PairMiner:
    def __init__(self, db, perturbed_per_turn: int = 1, seed: int = 0):
        self.db = db
        self.perturbed_per_turn = perturbed_per_turn
        self.seed = seed
        self.resolver = SchemaResolver(ObservedSchemas())

    def mine(self) -> dict:
        added: Counter[str] = Counter()
        if not table_exists(self.db, "turns"):
            return {}
        reader = TurnReader(self.db, thinking=True)
        session = None
        self.db.conn.execute("BEGIN")
        try:
            for turn in reader:
                if turn.session_id != session:
                    session = turn.session_id
                    self.resolver.set_session(reader.session_tools(session))
                for source, prompt, chosen, rejected, tool_use_id in self.pairs_for(turn):
                    used = {
                        tc["function"]["name"] for m in prompt + chosen + rejected for tc in m.get("tool_calls") or ()
                    }
                    offered = self.resolver.offered() or list(CORE_TOOLS)
                    names = offered + sorted(n for n in used if n not in offered)
                    tools = json.dumps([self.resolver.get(n) for n in names], ensure_ascii=False)
                    system = {
                        "role": "system",
                        "content": DEFAULT_SYSTEM + ("\nWorking directory: " + turn.cwd if turn.cwd else ""),
                    }
                    if store_pair(
                        self.db,
                        source,
                        [system] + prompt,
                        chosen,
                        rejected,
                        tools,
                        turn.session_id,
                        turn.id,
                        tool_use_id,
                        is_synthetic=turn.is_synthetic,
                    ):
                        added[source] += 1
            self.db.conn.execute("COMMIT")
        except BaseException:
            self.db.conn.execute("ROLLBACK")
            raise
        return dict(added)

    def pairs_for(self, turn):
        chat = turn.messages
        status = {cid: st for _, st, cid, _, _ in turn.calls}
        rng = random.Random(f"{self.seed}:{turn.id}")
        assistant_idx = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
        perturb_candidates = []
        for pos, i in enumerate(assistant_idx):
            m = chat[i]
            calls = m.get("tool_calls") or []
            if not calls:
                continue
            statuses = [status.get(tc["id"], "success") for tc in calls]
            later = [chat[j] for j in assistant_idx[pos + 1 :]]
            denied = next((tc for tc, st in zip(calls, statuses) if st == "denied"), None)
            failed = next((tc for tc, st in zip(calls, statuses) if st in FAILED), None)
            if denied is not None and later and _differs(later[0], m):
                yield "denial", chat[:i], [later[0]], [m], denied["id"]
            elif failed is not None:
                name = failed["function"]["name"]
                fix = next(
                    (
                        n
                        for n in later
                        for tc in n.get("tool_calls") or ()
                        if tc["function"]["name"] == name and status.get(tc["id"], "success") == "success"
                    ),
                    None,
                )
                if fix is not None and _differs(fix, m):
                    yield "correction", chat[:i], [fix], [m], failed["id"]
            elif all(st == "success" for st in statuses):
                perturb_candidates.append(i)
        for i in rng.sample(perturb_candidates, min(self.perturbed_per_turn, len(perturb_candidates))):
            m = chat[i]
            kind = rng.choice(["perturbed_tool", "perturbed_args"])
            bad = perturb_tool(m, rng) if kind == "perturbed_tool" else perturb_args(m, rng)
            if bad is None:  # nothing to perturb that way: try the other
                kind = "perturbed_args" if kind == "perturbed_tool" else "perturbed_tool"
                bad = perturb_tool(m, rng) if kind == "perturbed_tool" else perturb_args(m, rng)
            if bad is not None:
                yield kind, chat[:i], [m], [bad], m["tool_calls"][0]["id"]


def _differs(a, b) -> bool:
    key = lambda m: (
        m.get("content"),
        [(tc["function"]["name"], tc["function"]["arguments"]) for tc in m.get("tool_calls") or ()],
    )
    return key(a) != key(b)


def perturb_tool(message: dict, rng: random.Random) -> dict | None:
    tc = message["tool_calls"][0]
    name = tc["function"]["name"]
    choices = [n for n in _CONFUSABLE.get(name, ["Bash", "Read", "Grep"]) if n != name]
    if not choices:
        return None
    wrong = rng.choice(choices)
    return _with_first_call(message, {**tc, "function": {**tc["function"], "name": wrong}})


def perturb_args(message: dict, rng: random.Random) -> dict | None:
    tc = message["tool_calls"][0]
    try:
        args = json.loads(tc["function"]["arguments"])
    except ValueError:
        return None
    if isinstance(args, dict) and args and rng.random() < 0.5:
        required = BUILTIN.get(tc["function"]["name"], {}).get("function", {}).get("parameters", {}).get("required")
        key = next((k for k in (required or []) if k in args), next(iter(args)))
        bad = json.dumps({k: v for k, v in args.items() if k != key}, ensure_ascii=False)
    else:
        text = tc["function"]["arguments"]
        bad = text[: max(1, len(text) // 2)]  # cut mid-way: not valid JSON
        if bad == text:
            return None
    return _with_first_call(message, {**tc, "function": {**tc["function"], "arguments": bad}})


def _with_first_call(message, call):
    return {**message, "tool_calls": [call] + list(message["tool_calls"][1:])}


def _as_messages(value, role, field, line_no):
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, dict) and "role" in value:
        return [value]
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return value
    raise PairFormatError(f"line {line_no}: `{field}` must be a string or a list of {{role, content}} messages")


def import_pairs(db, path: str, synthetic: bool = False) -> tuple[int, int]:
    """JSONL with `prompt`, `chosen`, `rejected` (strings or message lists), optional `tools`.

    Rows without `prompt` whose chosen and rejected are whole conversations (TRL's implicit-prompt
    format) are split at their common prefix."""
    added = skipped = 0
    rows = []
    for line_no, row in numbered_rows(path, PairFormatError):
        if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
            raise PairFormatError(f"line {line_no}: each line needs `chosen` and `rejected` (and usually `prompt`)")
        chosen = _as_messages(row["chosen"], "assistant", "chosen", line_no)
        rejected = _as_messages(row["rejected"], "assistant", "rejected", line_no)
        if "prompt" in row:
            prompt = _as_messages(row["prompt"], "user", "prompt", line_no)
        else:
            n = 0
            while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
                n += 1
            prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
            if not prompt:
                raise PairFormatError(f"line {line_no}: no `prompt`, and chosen/rejected share no prefix")
        tools = row.get("tools")
        if tools is not None and not isinstance(tools, str):
            tools = json.dumps(tools, ensure_ascii=False)
        rows.append((prompt, chosen, rejected, tools))
    with db.atomic():
        for prompt, chosen, rejected, tools in rows:
            if store_pair(
                db, "imported", prompt, chosen, rejected, tools, is_synthetic=synthetic, origin=os.path.abspath(path)
            ):
                added += 1
            else:
                skipped += 1
    return added, skipped


def _redact_tools(redactor, tools):
    if not tools:
        return None
    try:
        return json.dumps(redactor.redact_obj(json.loads(tools)), ensure_ascii=False)
    except ValueError:
        return redactor.redact(tools)


def export_pairs(db, out_dir, eval_fraction=0.1, seed=0, redact=True, max_tool_output_chars=4000) -> dict:
    """Write train.jsonl / eval.jsonl of TRL preference rows; split by session (imported pairs by
    their own hash); synthetic pairs only in train."""
    from .build import redact_message

    os.makedirs(out_dir, exist_ok=True)
    redactor = Redactor(enabled=redact)
    counts, sources = Counter[str](), Counter[str]()
    cur = db.conn.execute(
        "SELECT source, session_id, turn_id, prompt, chosen, rejected, tools, is_synthetic, content_hash "
        "FROM pairs ORDER BY id"
    )
    with (
        open(os.path.join(out_dir, "train.jsonl"), "w", encoding="utf-8") as tf,
        open(os.path.join(out_dir, "eval.jsonl"), "w", encoding="utf-8") as ef,
    ):
        writers = {"train": jsonlines.Writer(tf, compact=True), "eval": jsonlines.Writer(ef, compact=True)}
        for source, session_id, turn_id, prompt, chosen, rejected, tools, synthetic, h in cur:
            split = "train" if synthetic or not in_eval(session_id or h, seed, eval_fraction) else "eval"
            prompt_msgs = []
            for m in json.loads(prompt):
                m = redact_message(redactor, m)
                if m["role"] == "tool":
                    m = {**m, "content": truncate(m["content"], max_tool_output_chars)[0]}
                prompt_msgs.append(m)
            row = {
                "prompt": prompt_msgs,
                "chosen": [redact_message(redactor, m) for m in json.loads(chosen)],
                "rejected": [redact_message(redactor, m) for m in json.loads(rejected)],
                "tools": _redact_tools(redactor, tools),
                "meta": {"source": source, "session_id": session_id, "turn_id": turn_id, "synthetic": bool(synthetic)},
            }
            writers[split].write(row)
            counts[split] += 1
            sources[source] += 1
    return {
        "train_examples": counts["train"],
        "eval_examples": counts["eval"],
        "sources": dict(sources),
        "redactions": dict(sorted(redactor.counts.items())),
        "redaction_enabled": redactor.enabled,
    }
