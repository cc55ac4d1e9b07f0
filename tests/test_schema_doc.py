"""The README's schema section is generated from the migrations and must match them; the README's
example queries run as written against a database built from recorded sessions."""

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys

from conftest import REPO

README = REPO / "README.md"
from cra.db.schema import build_schema_db, column_notes  # noqa: E402

QUERY_PREFIX = 'sqlite-utils query "$(cra path)"'


def _schema_doc():
    spec = importlib.util.spec_from_file_location("schema_doc", REPO / "scripts" / "schema_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_schema_section_is_current():
    doc = _schema_doc()
    text = README.read_text(encoding="utf-8")
    assert doc.START in text and doc.END in text, "README.md lost its schema markers"
    assert doc.current_section(text) == doc.generate(), (
        "README.md's schema section is stale: run `python scripts/schema_doc.py`"
    )


def test_generated_section_covers_every_table_view_and_index():
    doc = _schema_doc()
    section = doc.generate()
    db, origin = build_schema_db()
    for name in db.table_names():
        if not name.startswith("_") and "_fts_" not in name:
            assert f"`{name}`" in section
    for view in ("tool_calls_with_turns", "turns_with_signals"):
        assert f"**`{view}`** (m003_signals)" in section
    assert "**`messages_fts`** indexes `text`, `thinking` of `messages`" in section
    # Column comments come from the CREATE TABLE text.
    assert "| `exploration_depth` | TEXT | minimal, moderate, thorough, exhaustive; NULL without tools |" in section
    assert origin["table", "signals"][0] == "m003_signals"
    # A table replaced by a view is documented once, as the view, under the migration that made it.
    assert origin["view", "api_shapes"][0] == "m008_shared_request_shapes"
    assert "**`api_shapes`** (m008_shared_request_shapes)" in section and "**`api_shapes`** (m002" not in section
    # Declared links (m013_foreign_keys) beside the column's type.
    assert "| `turn_id` | INTEGER → `turns.id` |" in section


def test_column_notes_parser():
    notes = column_notes(
        "CREATE TABLE t (\n  a INTEGER PRIMARY KEY, -- the id\n  b TEXT,\n  c TEXT -- first part\n"
        "      -- second part\n  PRIMARY KEY (a, b) -- not a column\n)"
    )
    assert notes == {"a": "the id", "c": "first part second part"}


def test_check_mode_detects_a_stale_readme(tmp_path):
    doc = _schema_doc()
    stale = tmp_path / "README.md"
    stale.write_text(f"intro\n{doc.START}\nold\n{doc.END}\noutro\n", encoding="utf-8")
    assert doc.main(["--check", "--readme", str(stale)]) == 1
    assert doc.main(["--readme", str(stale)]) == 0
    assert doc.main(["--check", "--readme", str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{doc.END}\noutro\n")


def readme_queries():
    return [
        line.strip()
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(QUERY_PREFIX)
    ]


def test_readme_has_example_queries_for_views_and_search():
    queries = " ".join(readme_queries())
    for name in ("tool_calls_with_turns", "turns_with_signals", "messages_fts", "turns_fts"):
        assert name in queries


def test_readme_example_queries_run(recorded_db, cra_home):
    """Each README query, opened with sqlite-utils on a database of recorded sessions (signals
    computed), returns rows; the first also runs as pasted into a shell."""
    import sqlite_utils
    from click.testing import CliRunner

    from cra.cli import cli

    cra_home.mkdir(parents=True, exist_ok=True)
    path = cra_home / "cra.db"
    shutil.copyfile(recorded_db, path)
    assert CliRunner().invoke(cli, ["signals"], catch_exceptions=False).exit_code == 0
    queries = readme_queries()
    assert len(queries) >= 5
    db = sqlite_utils.Database(path)
    for line in queries:
        sql = shlex.split(line)[3]
        rows = list(db.query(sql))
        assert rows, f"no rows from the README query: {line}"
    bin_dir = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(bin_dir, "sqlite-utils")):
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        line = next(q for q in queries if "turns_with_signals" in q)
        result = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (line, result.stderr)
        assert json.loads(result.stdout) == list(db.query(shlex.split(line)[3]))
