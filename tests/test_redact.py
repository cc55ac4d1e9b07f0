"""Redaction: 100% recall on the planted-secrets corpus, zero changes to ordinary code."""

import json
from pathlib import Path

import pytest

from cra.redact import Redactor, is_secret_name

CORPUS = Path(__file__).parent / "fixtures" / "secrets"


def planted():
    return [json.loads(line) for line in (CORPUS / "planted.jsonl").read_text().splitlines() if line.strip()]


def test_corpus_is_big_and_varied():
    entries = planted()
    assert len(entries) >= 50
    assert {e["where"] for e in entries} >= {"prompt", "tool_input", "tool_output"}
    kinds = {e["kind"] for e in entries}
    for kind in (
        "aws_access_key_id",
        "github_token",
        "openai_key",
        "anthropic_key",
        "slack_token",
        "stripe_key",
        "google_api_key",
        "huggingface_token",
        "jwt",
        "private_key",
        "password",
        "connection_string",
        "auth_header",
        "home_path",
    ):
        assert kind in kinds


@pytest.mark.parametrize("entry", planted(), ids=lambda e: f"{e['id']}-{e['kind']}")
def test_every_planted_secret_is_removed(entry):
    r = Redactor(homes=[])
    if entry.get("structured"):
        out = json.dumps(r.redact_obj(json.loads(entry["text"])))
    else:
        out = r.redact(entry["text"])
    assert entry["secret"] not in out
    assert "[REDACTED:" in out or (entry["kind"] == "home_path" and "/home/user" in out or "/Users/user" in out)
    assert sum(r.counts.values()) >= 1


def test_secret_inside_json_tool_input_is_removed_and_json_stays_valid():
    r = Redactor(homes=[])
    for e in planted():
        if e["where"] == "tool_input" and not e.get("structured"):
            out = r.redact_obj({"command": e["text"], "description": "run it"})
            assert e["secret"] not in json.dumps(out)
            assert out["description"] == "run it"


@pytest.mark.parametrize("path", sorted((CORPUS / "clean").iterdir()), ids=lambda p: p.name)
def test_ordinary_code_is_not_changed(path):
    r = Redactor(homes=["/home/alice"])
    text = path.read_text()
    assert r.redact(text) == text
    assert r.redact_obj({"content": text, "file_path": "/home/user/proj/" + path.name}) == {
        "content": text,
        "file_path": "/home/user/proj/" + path.name,
    }
    assert not r.counts


def test_home_paths_become_a_neutral_absolute_home():
    r = Redactor(homes=["/home/alice"])
    assert r.redact("cd /home/alice/src && ls") == "cd /home/user/src && ls"
    assert r.redact('File "/home/bob/x.py", line 3') == 'File "/home/user/x.py", line 3'
    assert r.redact("see https://example.com/home/page") == "see https://example.com/home/page"
    assert r.counts["home_path"] == 2


def test_disabled_redactor_changes_nothing():
    r = Redactor(enabled=False)
    for e in planted():
        assert r.redact(e["text"]) == e["text"]


def test_secret_names():
    for name in ("DB_PASSWORD", "PGPASSWORD", "clientSecret", "api-key", "AWS_SECRET_ACCESS_KEY", "auth_token"):
        assert is_secret_name(name), name
    for name in (
        "password_field",
        "TOKEN_URL",
        "MAX_TOKENS",
        "author",
        "keyboard",
        "secret_name",
        "PASSWORD_MIN_LENGTH",
    ):
        assert not is_secret_name(name), name
