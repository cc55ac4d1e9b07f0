"""`cra redact check` and `cra redact db`, on recorded real-client sessions with the generated corpus
planted in them (cra/testing/secret_corpus.py)."""

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import RECORDED, build_fixture_db

from cra.cli import cli
from cra.testing.secret_corpus import all_strings, lookalikes, plant, secrets

SEED = 5


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory):
    if not all((RECORDED / name / "hooks.jsonl").is_file() for name in ("tools", "subagent")):
        pytest.skip(f"recorded fixtures missing in {RECORDED}")
    base = tmp_path_factory.mktemp("planted-db")
    plant(RECORDED, base / "scenarios", secrets(SEED) + lookalikes(SEED))
    return build_fixture_db(base / "master.db", [base / "scenarios" / "tools", base / "scenarios" / "subagent"])


@pytest.fixture
def db_path(planted_db, tmp_path):
    dest = tmp_path / "cra.db"
    dest.write_bytes(planted_db.read_bytes())
    return dest


def _build(db_path, out, *extra):
    result = run(
        "dataset", "build", "-d", str(db_path), "-o", str(out), "--eval-fraction", "0",
        "--min-tool-calls", "0", "--min-answer-words", "0", "--keep-failed", "--keep-unrecovered",
        "--max-tool-output-chars", "10000000", "--max-tokens", "10000000", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_check_finds_nothing_in_a_built_dataset_and_everything_in_an_unredacted_one(db_path, tmp_path):
    _build(db_path, tmp_path / "redacted")
    clean = run("redact", "check", str(tmp_path / "redacted"))
    assert clean.exit_code == 0, clean.output
    assert "Clean: nothing to redact in 3 files." in clean.output

    _build(db_path, tmp_path / "raw", "--no-redact")
    found = run("redact", "check", str(tmp_path / "raw"), "--json")
    assert found.exit_code == 1
    report = json.loads(found.output)
    assert not report["clean"] and report["files"] == 3
    assert report["found"] >= len(secrets(SEED))
    assert {"private_key", "github_token", "connection_string", "env_secret"} <= set(report["by_kind"])
    # the report names where, never the value
    for item in secrets(SEED):
        assert item.value not in found.output, item.kind
    assert all(f["path"].endswith(("train.jsonl", "README.md")) and f["line"] >= 1 for f in report["findings"])


def test_check_a_single_file_lists_findings_with_lines(tmp_path):
    items = secrets(SEED)[:5]
    f = tmp_path / "notes.md"
    f.write_text("intro\n\n" + "\n\n".join(it.text for it in items) + "\n")
    result = run("redact", "check", str(f), "--limit", "2")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{f}:4: private_key ")  # line 3 is `$ cat id_key` and "... (" in lines[0]
    assert "... and 3 more (--limit 0 lists all)" in result.output
    assert "Found 5 values to redact in 1 files" in result.output


def test_check_errors_have_their_own_exit_status(tmp_path):
    missing = run("redact", "check", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\0\1\2" * 100)
    refused = run("redact", "check", str(binary))
    assert refused.exit_code == 2 and "binary file" in refused.output
    # in a directory, binaries and unknown suffixes are skipped, not errors
    (tmp_path / "ok.txt").write_text("nothing to see here\n")
    listed = run("redact", "check", str(tmp_path), "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.output)["skipped"] == [str(binary)]


def _stored_text(db_path):
    """Every text and blob value in every table, as one string."""
    con = sqlite3.connect(db_path)
    parts = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '%_fts%'"):
        cols = [r[1] for r in con.execute(f"PRAGMA table_info([{table}])")]
        for row in con.execute(f"SELECT {', '.join(f'[{c}]' for c in cols)} FROM [{table}]"):
            for v in row:
                if isinstance(v, bytes):
                    v = v.decode("utf-8", "replace")
                if isinstance(v, str):
                    all_strings(v, parts)
    con.close()
    return "\n".join(parts)


def _fts_counts(con):
    """How often look-alike words are found by full-text search, in both indexes."""
    words = ("AbstractSingletonProxyFactoryBean", "ConfigMap", "RFC", "idempotency_key", "commit")
    return {
        (fts, w): con.execute(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", [f'"{w}"']).fetchone()[0]
        for fts in ("messages_fts", "turns_fts")
        for w in words
    }


def _secret_words(items):
    """Long alphanumeric runs of the secrets: what full-text search indexes them under."""
    return [w for it in items for w in re.findall(r"[A-Za-z0-9]{16,}", it.value)[:1]]


def _fts_total(con, word):
    return sum(
        con.execute(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", [f'"{word}"']).fetchone()[0]
        for fts in ("messages_fts", "turns_fts")
    )


def test_db_dry_run_changes_nothing_and_says_how_to_apply(db_path):
    before = db_path.read_bytes()
    result = run("redact", "db", "-d", str(db_path))
    assert result.exit_code == 0, result.output
    assert "Would rewrite" in result.output and "Rerun with --yes" in result.output
    assert "transcript_lines.raw:" in result.output and "messages.content:" in result.output
    assert db_path.read_bytes() == before
    assert not list(db_path.parent.glob("*.before-redact-*"))


def test_db_rewrite_removes_every_secret_keeps_lookalikes_and_stays_consistent(db_path, tmp_path):
    stored = _stored_text(db_path)
    planted = [it for it in secrets(SEED) if it.value in stored]
    assert len(planted) == len(secrets(SEED))  # the planting reached the database

    with sqlite3.connect(db_path) as con:
        words_before = _fts_counts(con)
        indexed = [w for w in _secret_words(planted) if _fts_total(con, w)]
    assert len(indexed) >= 10  # secrets planted in prompts, thinking and answers are in the index
    result = run("redact", "db", "-d", str(db_path), "--yes", "--backup", str(tmp_path / "backup.db"))
    assert result.exit_code == 0, result.output
    assert "Rewrote" in result.output and "still holds the original secrets" in result.output
    backup = tmp_path / "backup.db"
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    assert all(it.value in _stored_text(backup) for it in planted)  # the backup is the original

    assert all(it.value in stored for it in lookalikes(SEED))
    after = _stored_text(db_path)
    assert [it.kind for it in planted if it.value in after] == []
    assert [it.kind for it in lookalikes(SEED) if it.value not in after] == []
    # not in the file either: no free page, WAL frame or index segment keeps an old value
    wal = db_path.with_name(db_path.name + "-wal")
    raw = db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert [it.kind for it in planted if it.value.encode() in raw] == []

    con = sqlite3.connect(db_path)
    # the full-text index follows: no secret is found any more, look-alike words are found as before
    assert [w for w in indexed if _fts_total(con, w)] == []
    assert _fts_counts(con) == words_before and sum(words_before.values()) > 0
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
    con.close()

    # everything built from it still works, and a second pass finds nothing
    _build(db_path, tmp_path / "out")
    assert run("redact", "check", str(tmp_path / "out")).exit_code == 0
    assert run("stats", "-d", str(db_path), "--json").exit_code == 0
    again = run("redact", "db", "-d", str(db_path), "--json")
    assert json.loads(again.output)["rows_changed"] == 0


def test_db_refuses_to_overwrite_a_backup(db_path, tmp_path):
    taken = tmp_path / "taken.db"
    taken.write_text("x")
    result = CliRunner().invoke(cli, ["redact", "db", "-d", str(db_path), "--yes", "--backup", str(taken)])
    assert result.exit_code == 1 and "already exists" in result.output and "Nothing was changed" not in result.output
    assert taken.read_text() == "x"
