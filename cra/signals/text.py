"""Phrase detectors over prompt, assistant text and thinking: constraints, pruning, self-corrections
and announced plans. Each hit keeps its span so a reader can check it (docs/signals.md lists the
phrases).

Code is masked before matching (fenced blocks and `inline code` become spaces, offsets unchanged):
`must` in a code sample is not a constraint.
"""

import re

_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE = re.compile(r"`[^`\n]*`")
# Claude Code wraps slash commands and reminders in tags; their contents are not the user's words.
_TAGGED = re.compile(r"<(system-reminder|local-command-stdout|local-command-caveat|command-message)>.*?</\1>", re.S)

_I = re.I | re.M
_SENTENCE_START = r"(?:^|(?<=[.!?:;])\s+|(?<=\n))\s*"

CONSTRAINT_PATTERNS = [
    ("must", re.compile(r"\bmust(?:n't| not| never)?\b", _I)),
    ("should not", re.compile(r"\bshould(?:n't| not| never)\b", _I)),
    ("do not", re.compile(_SENTENCE_START + r"(?:please\s+)?(?:do not|don't|never)\b", _I)),
    ("never", re.compile(r"(?<!\bdo )(?<!\bdon't )\bnever\b", _I)),
    ("only", re.compile(r"(?<!\bnot )(?<![-\w])only\b", _I)),
    ("without", re.compile(r"\bwithout\b", _I)),
    ("avoid", re.compile(r"\bavoid(?:ing)?\b", _I)),
    ("except", re.compile(r"\bexcept\b", _I)),
    (
        "limit",
        re.compile(
            r"\b(?:at most|at least|no more than|no fewer than|no less than|not more than|up to|"
            r"maximum of|minimum of|max(?:imum)?|min(?:imum)?|limit(?:ed)? to|within|under|exactly)"
            r"\s+(?:\d[\d,.]*|one|two|three|four|five|ten|a few)\b",
            _I,
        ),
    ),
    (
        "keep",
        re.compile(
            r"\bkeep (?:it|the|this|them|all|everything)\b[^.\n]{0,40}"
            r"\b(?:unchanged|intact|as is|backward[s]? compatible|under|below|short|small)\b",
            _I,
        ),
    ),
]

# In the assistant's own words "only" and "without" mostly describe ("only one test failed"); there
# a constraint must be stated with a modal, an imperative or a limit.
ASSISTANT_CONSTRAINT_LABELS = ("must", "should not", "do not", "never", "avoid", "limit", "keep")

PRUNING_PATTERNS = [
    ("instead of", re.compile(r"\binstead of\b", _I)),
    ("rather than", re.compile(r"\brather than\b", _I)),
    ("decided against", re.compile(r"\bdecided? (?:against|not to)\b", _I)),
    ("ruled out", re.compile(r"\brul(?:e|ed|ing) (?:it |this |that )?out\b", _I)),
    (
        "no need",
        re.compile(
            r"\b(?:no need to|(?:don't|do not|won't|will not|shouldn't) need to|won't|will not|shouldn't|"
            r"should not|don't want to)\s+(?:use|go with|bother|touch|change|modify|add|rewrite|install|"
            r"pursue|try|take that)\b",
            _I,
        ),
    ),
    (
        "not worth",
        re.compile(
            r"\b(?:not|isn't|is not|wouldn't be|not really) "
            r"(?:worth|necessary|needed|the right (?:approach|fix|way|place))\b",
            _I,
        ),
    ),
    ("overkill", re.compile(r"\bover(?:kill|-?engineer(?:ed|ing)?|-?complicat(?:ed|ing))\b", _I)),
    (
        "would not work",
        re.compile(
            r"\b(?:that|this|it) (?:won't|wouldn't|will not|would not|doesn't|does not) (?:work|fit|apply|help)\b", _I
        ),
    ),
    ("discard", re.compile(r"\b(?:reject|discard|abandon)(?:ed|ing)? (?:that|this|the|it|my)\b", _I)),
    (
        "better option",
        re.compile(
            r"\b(?:a |the )?(?:better|simpler|cleaner|safer) (?:approach|option|way|fix|idea) (?:is|would be|here)\b",
            _I,
        ),
    ),
]

SELF_CORRECTION_PATTERNS = [
    ("actually", re.compile(_SENTENCE_START + r"(?:hmm,?\s+|oh,?\s+|wait,?\s+)?actually\b", _I)),
    ("wait", re.compile(_SENTENCE_START + r"(?:wait|hold on|oops|whoops)\b", _I)),
    ("I was wrong", re.compile(r"\bI (?:was|am) wrong\b|\bI was mistaken\b", _I)),
    ("my mistake", re.compile(r"\bmy (?:mistake|bad|error)\b|\bI made (?:a|an) (?:mistake|error|typo)\b", _I)),
    ("misread", re.compile(r"\bI (?:misread|misunderstood|mistyped|overlooked|missed that|forgot)\b", _I)),
    (
        "correct that",
        re.compile(r"\blet me (?:correct|redo|undo|revert) (?:that|this|my|the (?:previous|last|earlier))\b", _I),
    ),
    ("on second thought", re.compile(r"\bon second thought\b|\bcorrection:", _I)),
    ("that is wrong", re.compile(r"\b(?:that|this|it)(?:'s| is| was) (?:not right|wrong|incorrect|a mistake)\b", _I)),
    (
        "revert",
        re.compile(
            r"\b(?:revert|undo|roll back)(?:ing)? (?:my|the|that|this) "
            r"(?:previous |last |earlier )?(?:edit|change|fix)\b",
            _I,
        ),
    ),
]

# "instead of" and "rather than" also describe ("notes play together instead of in turn"): they are
# a pruning decision only in a sentence where the assistant decides something.
_DECISION = re.compile(
    r"\b(?:I'll|I will|I'd|I should|I'm going to|let me|let's|we'll|we will|we should|we can|I can|"
    r"better to|prefer|go with|use|decided?|choose|chose|opt(?:ed)? (?:for|to))\b",
    re.I,
)
NEEDS_DECISION = {"instead of", "rather than"}

PLAN_ANNOUNCEMENT = [
    (
        "plan:",
        re.compile(r"\b(?:my |the |here(?:'s| is) (?:my |the )?)?plan\b\s*(?:is\s*)?:|\bsteps?\s*:|\bapproach\s*:", _I),
    ),
    (
        "first ... then",
        re.compile(r"\bfirst(?:ly)?,?\b[^\n]{0,300}?\b(?:then|next|after that|finally|afterwards)\b", _I),
    ),
    ("I will:", re.compile(r"\b(?:I'll|I will|let me|I'm going to)\b[^\n.]{0,60}:\s*$", _I)),
]
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022]|step \d+:?)[ \t]+\S", _I)
_NUMBERED_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|step \d+:?)[ \t]+\S", _I)


def mask_code(text: str) -> str:
    """`text` with code and tool-generated tags replaced by spaces (same length, same offsets)."""
    if not text:
        return ""

    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))

    text = _FENCED.sub(blank, text)
    text = _INLINE.sub(blank, text)
    return _TAGGED.sub(blank, text)


def excerpt(text: str, start: int, end: int, width: int = 160) -> str:
    """The sentence (or line) around a match, at most `width` characters."""
    left = max(text.rfind("\n", 0, start), max(text.rfind(p, 0, start) for p in (". ", "! ", "? ")) + 1)
    left = max(left + 1 if left >= 0 else 0, start - width // 2)
    right_candidates = [
        i for i in (text.find("\n", end), text.find(". ", end), text.find("! ", end), text.find("? ", end)) if i >= 0
    ]
    right = min(right_candidates + [len(text)])
    right = min(right + 1, end + width // 2, len(text))
    return " ".join(text[left:right].split())


def find(patterns, text: str, width: int = 160):
    """All non-overlapping hits of the named patterns: [(label, start, end, match, excerpt)]."""
    masked = mask_code(text)
    hits = []
    taken: list[tuple[int, int]] = []
    for label, pattern in patterns:
        for m in pattern.finditer(masked):
            start, end = m.span()
            # Sentence-start patterns consume leading whitespace: report the phrase itself.
            while start < end and masked[start].isspace():
                start += 1
            if any(s < end and start < e for s, e in taken):
                continue
            if label in NEEDS_DECISION and not _DECISION.search(_sentence(masked, start, end)):
                continue
            taken.append((start, end))
            hits.append((label, start, end, text[start:end], excerpt(text, start, end, width)))
    hits.sort(key=lambda h: h[1])
    return hits


def _sentence(text, start, end):
    left = max(text.rfind(p, 0, start) for p in (". ", "! ", "? ", "\n"))
    rights = [i for i in (text.find(p, end) for p in (". ", "! ", "? ", "\n")) if i >= 0]
    return text[left + 1 : min(rights) if rights else len(text)]


def announced_plan(text: str, width: int = 160):
    """The evidence that `text` lays out steps before acting: a list of >= 2 numbered items, a
    bulleted list after a plan-like lead-in, or a 'plan:' / 'first ... then' phrase. None if not."""
    masked = mask_code(text)
    lines = list(_line_spans(masked))
    numbered = [(s, e) for s, e in lines if _NUMBERED_ITEM.match(masked[s:e])]
    if len(numbered) >= 2:
        start, end = numbered[0][0], numbered[-1][1]
        return ("numbered steps", start, end, text[start:end], excerpt(text, start, numbered[0][1], width))
    hits = find(PLAN_ANNOUNCEMENT, text, width)
    if hits:
        label, start, end, match, ex = hits[0]
        bullets = [(s, e) for s, e in lines if s >= end and _LIST_ITEM.match(masked[s:e])]
        if label != "I will:" or len(bullets) >= 2:
            return hits[0]
    return None


def _line_spans(text):
    pos = 0
    for line in text.split("\n"):
        yield pos, pos + len(line)
        pos += len(line) + 1
