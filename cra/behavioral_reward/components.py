"""The behavioral reward's components: each a pure function `(Context, ParsedAction) -> Component`.

Every component scores in [0, 1] with partial credit (dense: samples of one prompt differ), says why
in a short `reason`, and gives Claude's own next action (the context's reference) full marks: a
component judges an action against what Claude did at that point, so it can never reward behaviour
that contradicts Claude's real choice. docs/rl.md explains each with examples.

- format_validity: the tool calls are well-formed (parseable, a tool that was offered, valid arguments).
- agreement: the action is Claude's real next action (same tool; similar arguments; or, when Claude
  answered, a similar answer).
- constraint_adherence: no call breaks a constraint the user stated (signals' constraint detector).
- reasoning_depth: as much reasoning before acting as Claude gave, and a plan where Claude laid one out.
- tool_efficiency: no call repeats one that already answered, no more calls than Claude needed.
- self_correction: after a failed call, change course (fix the call or try an alternative), never
  repeat the failing call.
- exploration_fit: explore where Claude explored, act where Claude acted (signals' tool categories).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..chat.toolcalls import ParsedAction, ParsedCall, argument_similarity, check_call
from ..signals import text as phrases
from ..signals import tools as tool_kinds
from ..signals.config import DepthThresholds
from .context import Context, call_key


@dataclass
class Component:
    score: float
    reason: str

    def __post_init__(self):
        self.score = float(min(1.0, max(0.0, self.score)))


# -- helpers -------------------------------------------------------------------------------------------------


def _category(call) -> str:
    return tool_kinds.category(call.name, call.arguments or {})


def action_category(action: ParsedAction) -> str:
    """'answer' (no call), 'act' (any change or mutating command), else the calls' common category."""
    if not action.calls:
        return "answer"
    cats = [_category(c) for c in action.calls]
    if any(tool_kinds.is_change(c) for c in cats):
        return "act"
    if all(c == tool_kinds.EXPLORE for c in cats):
        return tool_kinds.EXPLORE
    return next(c for c in cats if c != tool_kinds.EXPLORE)


_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


_THINK = re.compile(r"<think(?:ing)?>(.*?)(?:</think(?:ing)?>|\Z)", re.S)


def split_thinking(text: str) -> tuple[str, str]:
    """(visible text, thinking) of generated text that may hold <think> blocks."""
    thinking = " ".join(m.group(1) for m in _THINK.finditer(text or ""))
    return _THINK.sub("", text or "").strip(), thinking.strip()


def visible_and_thinking(action: ParsedAction) -> tuple[str, str]:
    """The action's text and its thinking: what the parser took out, and any <thinking> block left in."""
    visible, more = split_thinking(action.text)
    return visible, " ".join(t for t in (action.thinking, more) if t)


# -- the components ------------------------------------------------------------------------------------------


def format_validity(ctx: Context, action: ParsedAction) -> Component:
    """Are the action's tool calls well-formed? Each call earns 0.4 for parsing (JSON object with a
    name and object arguments), 0.3 for naming a tool the context offered, 0.3 for arguments that fit
    its schema (less a third per problem). An answer without calls is well-formed when it has text and
    no leftover call markup; an empty message scores 0.

    >>> ctx = Context.build([{"role": "user", "content": "hi"}], [], {"role": "assistant", "content": "Hello."})
    >>> format_validity(ctx, ParsedAction("Hello there.")).score
    1.0
    """
    if not action.calls:
        text = action.text.strip()
        if not text:
            return Component(0.0, "empty message")
        if re.search(r'</?tool_call>|"arguments"\s*:|<\|im_(?:start|end)\|>', text):
            return Component(0.3, "answer with leftover tool-call markup")
        return Component(1.0, "plain answer")
    total, notes = 0.0, []
    for call in action.calls:
        v = check_call(call, ctx.schemas)
        score = 0.0
        if v.parseable:
            score += 0.4
        if v.known_tool:
            score += 0.3
        if v.parseable and v.known_tool:
            score += 0.3 * max(0.0, 1 - len(v.problems) / 3)
        total += score
        if v.problems:
            notes.append(f"{call.name or '?'}: {'; '.join(v.problems[:2])}")
    reason = "; ".join(notes) if notes else f"{len(action.calls)} well-formed call(s)"
    return Component(total / len(action.calls), reason)


def _call_match(pred: ParsedCall, ref: ParsedCall) -> float:
    if pred.name and pred.name == ref.name:
        return 0.5 + 0.5 * argument_similarity(ref.name, pred.arguments, ref.arguments)
    if pred.name and _category(pred) == _category(ref):
        return 0.15  # a different tool for the same kind of step (Grep for Glob)
    return 0.0


def _answer_similarity(a: str, b: str) -> float:
    wa, wb = set(words(a)), set(words(b))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def agreement(ctx: Context, action: ParsedAction) -> Component:
    """How close the action is to Claude's real next action at this point.

    Claude called tools: each of Claude's calls is matched with the best remaining predicted call
    (same tool: 0.5 plus 0.5 x argument similarity; another tool of the same kind: 0.15), and the sum
    is divided by the larger call count (extra or missing calls cost). Not calling scores 0.
    Claude answered: an answer scores 0.5 plus 0.5 x word overlap with Claude's; exploring instead
    scores 0.1, acting 0.

    >>> read = {"function": {"name": "Read", "arguments": '{"file_path": "a.py"}'}}
    >>> ref = {"role": "assistant", "content": "", "tool_calls": [read]}
    >>> ctx = Context.build([{"role": "user", "content": "fix a.py"}], [], ref)
    >>> from cra.chat import parse_action
    >>> action = parse_action('<tool_call>{"name": "Read", "arguments": {"file_path": "a.py"}}</tool_call>')
    >>> agreement(ctx, action).score
    1.0
    """
    ref = ctx.reference_action
    if ref.calls:
        if not action.calls:
            return Component(0.0, f"no tool call; Claude called {', '.join(n or '?' for n in ref.names)}")
        remaining = list(action.calls)
        total = 0.0
        for rc in ref.calls:
            best = max(remaining, key=lambda p: _call_match(p, rc))
            total += _call_match(best, rc)
            remaining.remove(best)
            if not remaining:
                break
        score = total / max(len(ref.calls), len(action.calls))
        same = sorted({n for n in action.names if n} & {n for n in ref.names if n})
        reason = f"Claude called {', '.join(n or '?' for n in ref.names)}; " + (
            f"same tool ({', '.join(same)}), arguments {score:.2f}"
            if same
            else f"this called {', '.join(n or '?' for n in action.names)}"
        )
        return Component(score, reason)
    if not action.calls:
        sim = _answer_similarity(action.text, ref.text)
        return Component(0.5 + 0.5 * sim, f"answered as Claude did (word overlap {sim:.2f})")
    if action_category(action) == tool_kinds.EXPLORE:
        return Component(0.1, "Claude answered; this explored further")
    return Component(0.0, "Claude answered; this acted")


# Constraint rules: what a sentence of the user's that the signals detector marks as a constraint forbids.
_NEGATED = {"do not", "never", "should not", "without", "avoid", "must", "keep"}
_CHANGE_VERBS = re.compile(
    r"\b(?:modify|modifies|modifying|change|changing|edit|editing|touch|touching|write|writing|delete|"
    r"deleting|remove|removing|rename|create|creating|overwrite|commit|push|refactor)\b",
    re.I,
)
_RUN_VERBS = re.compile(r"\b(?:run|running|execute|executing|install|installing|build|building)\b", re.I)
_READ_ONLY = re.compile(
    r"\bread[- ]only\b|\bonly (?:read|look|explain|investigate|describe|review|analy[sz]e|inspect|tell)\b"
    r"|\bjust (?:explain|look|read|tell|describe)\b",
    re.I,
)
_PATHISH = re.compile(r"(?:[\w.-]+/)+[\w.*-]*|[\w-]+\.[A-Za-z]{1,6}\b")


@dataclass
class Rule:
    kind: str  # no_change, no_run, no_tool
    target: str | None  # a path or tool name the rule is limited to
    sentence: str

    def violated_by(self, call: ParsedCall) -> bool:
        cat = _category(call)
        mentions = self.target is None or self.target.lower() in json_text(call).lower()
        if self.kind == "no_change":
            return tool_kinds.is_change(cat) and mentions
        if self.kind == "no_run":
            return cat == tool_kinds.RUN
        if self.kind == "no_tool":
            program = str((call.arguments or {}).get("command", "")).split()[:1]
            return call.name == self.target or bool(program and program[0] == (self.target or "").lower())
        return False


def json_text(call: ParsedCall) -> str:
    import json

    return json.dumps(call.arguments, ensure_ascii=False) if call.arguments is not None else call.raw


def constraint_rules(ctx: Context) -> list[Rule]:
    """The user's constraints this turn, as rules a tool call can break.

    Sentences come from signals' constraint detector (`must not`, `don't`, `never`, `only`, `without`,
    `avoid`, ...) over the user's prompt; a sentence becomes a rule when it says what not to do:
    change (or change a named file), run commands, use a named tool, or that the task is read-only.
    """
    rules = []
    text = ctx.prompt_text
    for label, _start, _end, _match, sentence in phrases.find(phrases.CONSTRAINT_PATTERNS, text, 400):
        sentence_l = sentence.lower()
        paths = [p.rstrip(".") for p in _PATHISH.findall(sentence) if p.rstrip(".")]
        if _READ_ONLY.search(sentence):
            rules.append(Rule("no_change", None, sentence))
            continue
        if label not in _NEGATED:
            continue  # "only X", "except", limits: scopes a single call cannot be checked against reliably
        if label == "must" and not re.search(r"\bmust(?:n't| not| never)\b", sentence_l):
            continue
        if label == "keep" and not paths:
            continue
        named_tools = [n for n in ctx.schemas if re.search(r"\b%s\b" % re.escape(n), sentence)]
        if named_tools and re.search(r"\b(?:use|using|call|calling)\b", sentence_l):
            rules.extend(Rule("no_tool", n, sentence) for n in named_tools)
        elif _CHANGE_VERBS.search(sentence) or label == "keep":
            if paths:
                rules.extend(Rule("no_change", p, sentence) for p in paths)
            else:
                rules.append(Rule("no_change", None, sentence))
        elif _RUN_VERBS.search(sentence):
            rules.append(Rule("no_run", None, sentence))
    # Claude's own action shows how the constraint was meant: a rule it breaks is a misreading.
    return [r for r in rules if not any(r.violated_by(c) for c in ctx.reference_action.calls)]


def constraint_adherence(ctx: Context, action: ParsedAction) -> Component:
    """Share of the action's calls that keep to the user's stated constraints (1 when none apply).

    A call breaks a rule from `constraint_rules`: changing files (or a named one) when told not to or
    that the task is read-only, running commands when told not to, using a tool the user ruled out.
    Rules Claude's own next action breaks are dropped: Claude's reading of the constraint wins.
    """
    rules = constraint_rules(ctx)
    if not rules:
        return Component(1.0, "no checkable constraint")
    if not action.calls:
        return Component(1.0, f"{len(rules)} constraint(s); no call to break them")
    broken = []
    for call in action.calls:
        hit = next((r for r in rules if r.violated_by(call)), None)
        if hit is not None:
            broken.append(f"{call.name} breaks: {hit.sentence[:80]}")
    if not broken:
        return Component(1.0, f"keeps {len(rules)} constraint(s)")
    return Component(1 - len(broken) / len(action.calls), "; ".join(broken))


def _closeness(a: int, b: int, spread: float = 10.0) -> float:
    """1 when equal, falling to 0 at a factor of `spread` apart (on counts + 1)."""
    return max(0.0, 1 - abs(math.log((a + 1) / (b + 1))) / math.log(spread))


def reasoning_depth(ctx: Context, action: ParsedAction) -> Component:
    """As much reasoning before the action as Claude gave at this point, and a plan where Claude laid one out.

    0.6 x closeness of word counts (text plus any <think> block against Claude's text plus thinking;
    1 when equal, 0 at ten times more or less) + 0.4 for a plan: present when Claude announced one
    (signals' plan detector: numbered steps, "first ... then", "plan:"), or free when Claude did not.
    """
    visible, thinking = visible_and_thinking(action)
    ref_text = (ctx.reference_action.text + "\n" + ctx.reference_reasoning).strip()
    n_pred, n_ref = len(words(visible + " " + thinking)), len(words(ref_text))
    close = _closeness(n_pred, n_ref)
    ref_plan = phrases.announced_plan(ref_text) is not None
    pred_plan = phrases.announced_plan(visible + "\n" + thinking) is not None
    plan = 1.0 if (pred_plan or not ref_plan) else 0.0
    reason = f"{n_pred} words of reasoning vs Claude's {n_ref}"
    if ref_plan:
        reason += "; Claude laid out a plan" + ("" if pred_plan else ", this did not")
    return Component(0.6 * close + 0.4 * plan, reason)


def tool_efficiency(ctx: Context, action: ParsedAction) -> Component:
    """No wasted calls: 1 less the share of calls that are redundant, less half the share beyond
    Claude's call count. Redundant: the same tool with the same arguments as a call earlier in the
    turn that succeeded with nothing changed since (or twice within the action). Claude's own repeats
    are never counted (a re-read after an external change, a re-run to check).
    """
    if not action.calls:
        return Component(1.0, "no calls")
    ref_keys = {call_key(c.name, c.arguments) for c in ctx.reference_action.calls}
    seen: set[tuple] = set()
    for prior in ctx.turn_calls:
        if tool_kinds.is_change(tool_kinds.category(prior.name, prior.arguments or {})):
            seen.clear()  # after a change, looking again is not waste
        elif not prior.failed:
            seen.add(prior.key)
    redundant = 0
    for call in action.calls:
        key = call_key(call.name, call.arguments)
        if key in seen and key not in ref_keys:
            redundant += 1
        if not tool_kinds.is_change(_category(call)):
            seen.add(key)
    n = len(action.calls)
    excess = max(0, n - len(ctx.reference_action.calls)) if ctx.reference_action.calls else 0
    score = 1 - redundant / n - 0.5 * excess / n
    parts = []
    if redundant:
        parts.append(f"{redundant} repeated call(s)")
    if excess:
        parts.append(f"{excess} call(s) more than Claude's {len(ctx.reference_action.calls)}")
    return Component(score, "; ".join(parts) or f"{n} call(s), none wasted")


def _response_to_failure(action: ParsedAction, failed) -> str:
    """repeat, retry (same tool, new arguments), alternative (another tool of the same kind), other, answer."""
    if not action.calls:
        return "answer"
    keys = {f.key for f in failed}
    if any(call_key(c.name, c.arguments) in keys for c in action.calls):
        return "repeat"
    names = {f.name for f in failed}
    if any(c.name in names for c in action.calls):
        return "retry"
    cats = {tool_kinds.category(f.name, f.arguments or {}) for f in failed}
    if any(_category(c) in cats for c in action.calls):
        return "alternative"
    return "other"


_ACKNOWLEDGE = re.compile(
    r"\b(?:error|fail(?:ed|s|ure)?|not found|doesn't exist|does not exist|missing|instead|wrong|"
    r"(?:could not|couldn't|cannot|can't) (?:find|open|read|run))\b",
    re.I,
)
_RESPONSE_CREDIT = {  # (this action's response, Claude's) -> score, when they differ
    "retry": 0.8,
    "alternative": 0.8,
    "other": 0.4,
    "answer": 0.2,
    "repeat": 0.0,
}


def self_correction(ctx: Context, action: ParsedAction) -> Component:
    """After a failed call, change course the way Claude did (1 when the last results held no failure).

    The response is classed as repeat (the failing call again, unchanged), retry (same tool, new
    arguments), alternative (another tool of the same kind, the recovery signals count), other, or
    answer (giving up). The same class as Claude's scores 1; otherwise retry/alternative 0.8, other
    0.4, answer 0.2, repeat 0; plus 0.2 (up to 1) for text acknowledging the error (signals'
    self-correction phrases, or naming the error).
    """
    failed = ctx.last_failures
    if not failed:
        return Component(1.0, "no failure to recover from")
    mine = _response_to_failure(action, failed)
    claude = _response_to_failure(ctx.reference_action, failed)
    score = 1.0 if mine == claude else _RESPONSE_CREDIT[mine]
    visible, thinking = visible_and_thinking(action)
    said = visible + "\n" + thinking
    if mine != "repeat" and (phrases.find(phrases.SELF_CORRECTION_PATTERNS, said) or _ACKNOWLEDGE.search(said)):
        score += 0.2
    return Component(score, f"after {failed[0].name} failed: this {mine}, Claude {claude}")


def exploration_fit(ctx: Context, action: ParsedAction, depth: DepthThresholds | None = None) -> Component:
    """Explore where Claude explored, act where Claude acted.

    Categories (signals' tool kinds): explore (reads, searches, read-only shell), act (edits,
    mutating commands), answer (no call), delegate/plan/other. Same as Claude's: 1. Acting while
    Claude was still exploring: 0.1, up to 0.4 as the turn's exploration so far reaches signals'
    `moderate` depth. Exploring when Claude acted: 0.5. Exploring when Claude answered: 0.4. Other
    mismatches: 0.2; stopping (answering) while Claude went on: 0.
    """
    depth = depth or DepthThresholds()
    mine, claude = action_category(action), action_category(ctx.reference_action)
    explored = 0
    for prior in ctx.turn_calls:
        cat = tool_kinds.category(prior.name, prior.arguments or {})
        if tool_kinds.is_change(cat):
            explored = 0
        elif cat == tool_kinds.EXPLORE:
            explored += 1
    if mine == claude:
        return Component(1.0, f"{mine}, as Claude did")
    if mine == "act" and claude == tool_kinds.EXPLORE:
        score = 0.1 + 0.3 * min(1.0, explored / depth.moderate)
        return Component(score, f"acted after {explored} exploring call(s); Claude kept exploring")
    if mine == tool_kinds.EXPLORE and claude == "act":
        return Component(0.5, "explored further; Claude acted")
    if mine == tool_kinds.EXPLORE and claude == "answer":
        return Component(0.4, "explored further; Claude answered")
    if mine == "answer":
        return Component(0.0, f"stopped; Claude went on ({claude})")
    return Component(0.2, f"{mine}; Claude: {claude}")


BEHAVIOR_COMPONENTS = {
    "constraint_adherence": constraint_adherence,
    "reasoning_depth": reasoning_depth,
    "tool_efficiency": tool_efficiency,
    "self_correction": self_correction,
    "exploration_fit": exploration_fit,
}
