"""The generated corpus (cra/testing/secret_corpus.py): every secret kind gone, every look-alike kept.

First the redactor alone over several seeds (fresh random values each), then the corpus planted
into copies of the project's recorded real-client sessions (prompt, Bash/Read/Grep output,
Write/Edit input, a Bash command, thinking, the final text, a subagent, the tool schemas), imported
as a user's sessions are, and built into a dataset: 100% recall by kind, look-alikes kept, and the
same build without redaction shows the planting reached the output.
"""

import json
from collections import Counter

import pytest
from conftest import RECORDED, build_fixture_db

from cra.dataset.build import BuildOptions, DatasetBuilder, write_card
from cra.dataset.filters import TurnFilters
from cra.db import open_db
from cra.redact import Redactor
from cra.testing.secret_corpus import LOOKALIKE_KINDS, PLACES, SECRET_KINDS, all_strings, lookalikes, plant, secrets

SEEDS = range(5)


def test_the_corpus_is_big_and_not_one_shape():
    assert len(SECRET_KINDS) >= 150
    assert len(LOOKALIKE_KINDS) >= 30
    items = secrets(0)
    assert len({it.value for it in items}) == len(items)  # no two kinds share a value
    assert all(it.value in it.text for it in items + lookalikes(0))
    assert secrets(0) != secrets(1)  # values are random per seed


@pytest.mark.parametrize("seed", SEEDS)
def test_every_secret_kind_is_removed(seed):
    missed = []
    for item in secrets(seed):
        r = Redactor(homes=[])
        out = r.redact(item.text)
        if item.value in out or not r.counts:
            missed.append((item.kind, out[:160]))
    assert missed == []


@pytest.mark.parametrize("seed", SEEDS)
def test_every_lookalike_is_kept(seed):
    changed = []
    for item in lookalikes(seed):
        r = Redactor(homes=[])
        out = r.redact(item.text)
        if out != item.text:
            changed.append((item.kind, out[:160]))
    assert changed == []


def test_secrets_inside_structured_tool_input_are_removed_and_the_json_stays_valid():
    r = Redactor(homes=[])
    for item in secrets(3):
        out = r.redact_obj({"command": item.text, "description": "run it", "password": "hunter2!x"})
        dumped = json.dumps(out)
        assert item.value not in dumped and "hunter2!x" not in dumped, item.kind
        assert out["description"] == "run it"


def test_redacting_twice_changes_nothing():
    r = Redactor(homes=[])
    for item in secrets(4) + lookalikes(4):
        once = r.redact(item.text)
        assert r.redact(once) == once, item.kind
        assert r.findings(once) == [], item.kind


def _written(directory):
    parts = []
    for name in ("train.jsonl", "eval.jsonl"):
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            all_strings(json.loads(line), parts)
    return "\n".join(parts)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    if not all((RECORDED / name / "hooks.jsonl").is_file() for name in ("tools", "subagent")):
        pytest.skip(f"recorded fixtures missing in {RECORDED}")
    base = tmp_path_factory.mktemp("planted")
    items = secrets(seed=11) + lookalikes(seed=11)
    places = plant(RECORDED, base / "scenarios", items)
    db_path = build_fixture_db(base / "cra.db", [base / "scenarios" / "tools", base / "scenarios" / "subagent"])
    options = dict(
        eval_fraction=0,
        max_tool_output_chars=10**7,  # nothing truncated away: every planted value must be written
        max_tokens=10**7,
        filters=TurnFilters(min_tool_calls=0, min_answer_words=0, skip_failed=False, skip_unrecovered=False),
    )
    db = open_db(str(db_path), drain=False)
    summary = DatasetBuilder(db, BuildOptions(**options)).build(str(base / "redacted"))
    write_card(str(base / "redacted" / "README.md"), "planted", BuildOptions(**options), summary)
    raw_summary = DatasetBuilder(open_db(str(db_path), drain=False), BuildOptions(redact=False, **options)).build(
        str(base / "raw")
    )
    return {
        "places": places,
        "summary": summary,
        "raw_summary": raw_summary,
        "redacted": _written(base / "redacted"),
        "raw": _written(base / "raw"),
        "dir": base / "redacted",
    }


def test_planting_reached_every_place_and_the_unredacted_dataset(planted):
    assert set(planted["places"]) == set(PLACES) and all(planted["places"].values())
    missing = [it.kind for it in secrets(11) + lookalikes(11) if it.value not in planted["raw"]]
    assert missing == []


@pytest.mark.parametrize("kind", list(SECRET_KINDS))
def test_planted_secret_is_gone_from_the_dataset(planted, kind):
    item = next(it for it in secrets(11) if it.kind == kind)
    assert item.value not in planted["redacted"]


@pytest.mark.parametrize("kind", list(LOOKALIKE_KINDS))
def test_planted_lookalike_is_kept_in_the_dataset(planted, kind):
    item = next(it for it in lookalikes(11) if it.kind == kind)
    assert item.value in planted["redacted"]


def test_the_card_reports_replacements_by_kind(planted):
    counts = Counter(planted["summary"]["redactions"])
    assert sum(counts.values()) >= len(SECRET_KINDS)
    assert {"private_key", "github_token", "connection_string", "config_secret", "env_secret"} <= set(counts)
    card = (planted["dir"] / "README.md").read_text(encoding="utf-8")
    for kind, n in counts.items():
        assert f"| {kind} | {n} |" in card


def _real_session_strings(roots):
    for root in roots:
        for path in sorted(root.rglob("*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                for s in all_strings(value):
                    yield path, s


def _nothing_but_home_paths(roots):
    r = Redactor(homes=[])
    found = [
        (p.name, f.kind, s[max(0, f.start - 40) : f.end + 10])
        for p, s in _real_session_strings(roots)
        for f in r.findings(s)
        if f.kind != "home_path"
    ]
    assert found == []


def test_the_projects_recorded_sessions_have_nothing_to_redact():
    """Real client sessions (recorded against a mock API, so no real secret in them): precision on
    real transcripts, hook payloads, tool output, notebooks and code."""
    _nothing_but_home_paths([RECORDED, RECORDED.parent / "transcripts"])


def test_shared_real_sessions_have_nothing_to_redact(shared_dir):
    _nothing_but_home_paths([shared_dir / "fixtures"])
